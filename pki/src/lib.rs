//! tug-pki: the cluster CA, serving/peer/client certificates, rustls configs (ring),
//! identities from client certificates, bearer token files and kubeconfig files.
//!
//! # Layout
//!
//! - [`ca`]: [`Ca`] (generate, load, save, issue server/peer/client certs) and [`CertKey`].
//! - [`tls`]: [`server_config`] / [`client_config`] and PEM parsing, ring provider only.
//! - [`identity`]: [`Identity`] and [`identity_from_cert`] (user = CN, groups = O).
//! - [`token`]: [`TokenFile`] (Kubernetes `--token-auth-file` CSV) and [`generate_token`].
//! - [`kubeconfig`]: kubectl-compatible [`Kubeconfig`], [`admin_kubeconfig`], read/write.
//! - [`cluster`]: [`init_cluster_pki`], which lays out a whole cluster's PKI directory.
//! - `files`: atomic writes with mode 0600 (secrets) or 0644 (certificates).
//! - `subject`: DER surgery for subjects with several `O=` (rcgen keeps one per type).
//!
//! # Files in a PKI directory ([`init_cluster_pki`], names in [`PkiPaths`])
//!
//! | file                          | mode | what                                              |
//! |-------------------------------|------|---------------------------------------------------|
//! | `ca.crt`, `ca.key`            | 0644 / 0600 | cluster CA (ECDSA P-256, 10 years)         |
//! | `apiserver.crt`, `.key`       | 0644 / 0600 | API serving cert (serverAuth), all replicas |
//! | `peer-<name>.crt`, `.key`     | 0644 / 0600 | raft peer cert per replica (server+client) |
//! | `admin.crt`, `admin.key`      | 0644 / 0600 | `CN=tug-admin, O=system:masters` (clientAuth) |
//! | `kubelet-client.crt`, `.key` | 0644 / 0600 | apiserver -> node agent client cert (logs, exec), `CN=kube-apiserver-kubelet-client, O=system:masters` |
//! | `admin.kubeconfig`            | 0600 | kubectl config with the admin cert embedded       |
//! | `tokens.csv`                  | 0600 | `token,user,uid,"groups"`: one admin token        |
//!
//! Leaf certificates are ECDSA P-256 and valid one year.

pub mod ca;
pub mod cluster;
pub mod files;
pub mod identity;
pub mod kubeconfig;
mod subject;
pub mod tls;
pub mod token;

pub use ca::{Ca, CertKey};
pub use cluster::{init_cluster_pki, ClusterPki, PkiPaths};
pub use identity::{identity_from_cert, identity_from_peer_certificates, Identity};
pub use kubeconfig::{admin_kubeconfig, load_kubeconfig, write_kubeconfig, Kubeconfig};
pub use tls::{client_config, server_config};
pub use token::{generate_token, TokenEntry, TokenFile};
