//! The agent's own certificates: a client certificate (`system:node:<name>` in group
//! `system:nodes`) to talk to the apiserver, and a serving certificate for its
//! logs/exec port whose SANs hold the node's IP and hostname (what the apiserver dials).
//!
//! On a local cluster the agent holds the cluster CA (`--pki-dir`), so it issues both
//! itself once and keeps them in `<root>/pki/`; elsewhere they are given as files.

use anyhow::Context as _;
use std::net::IpAddr;
use std::path::Path;
use tug_pki::{Ca, CertKey};

pub struct NodeCerts {
    pub ca_pem: String,
    pub client: CertKey,
    pub serving: CertKey,
}

/// Loads `<root>/pki/{client,serving}` or issues them from the CA in `pki_dir`.
pub fn ensure(
    pki_dir: &Path,
    root: &Path,
    node: &str,
    ip: IpAddr,
    hostname: &str,
) -> anyhow::Result<NodeCerts> {
    let ca = Ca::load_dir(pki_dir)
        .with_context(|| format!("loading the cluster CA from {}", pki_dir.display()))?;
    let dir = root.join("pki");
    let client = match CertKey::load(&dir, "node-client") {
        Ok(c) => c,
        Err(_) => {
            let c = ca
                .issue_client(
                    &format!("system:node:{node}"),
                    &["system:nodes".to_string()],
                )
                .context("issuing the node's client certificate")?;
            c.save(&dir, "node-client")
                .context("saving the node's client certificate")?;
            c
        }
    };
    let serving = match CertKey::load(&dir, "node-serving") {
        Ok(c) => c,
        Err(_) => {
            let c = ca
                .issue_server(node, &[hostname.to_string(), node.to_string()], &[ip])
                .context("issuing the node's serving certificate")?;
            c.save(&dir, "node-serving")
                .context("saving the node's serving certificate")?;
            c
        }
    };
    Ok(NodeCerts {
        ca_pem: ca.cert_pem().to_string(),
        client,
        serving,
    })
}

/// A client config for `server` with the node's identity.
pub fn client_config(server: &str, certs: &NodeCerts) -> anyhow::Result<tug_client::Config> {
    let uri: http::Uri = server
        .parse()
        .with_context(|| format!("invalid --server URL {server:?}"))?;
    let mut config = tug_client::Config::new(uri);
    config.ca_pem = Some(certs.ca_pem.clone().into_bytes());
    config.identity = Some(tug_client::config::Identity {
        cert_pem: certs.client.cert_pem.clone().into_bytes(),
        key_pem: certs.client.key_pem.clone().into_bytes(),
    });
    Ok(config)
}
