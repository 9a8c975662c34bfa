//! A whole cluster's PKI laid out in one directory (`tug-apiserver --init`, `tug cluster create`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::ca::{self, Ca, CertKey, CA_CERT_FILE, CA_KEY_FILE};
use crate::files;
use crate::kubeconfig::{self, admin_kubeconfig, write_kubeconfig, Kubeconfig};
use crate::token::{self, generate_token, TokenEntry};

/// CN of the cluster CA.
pub const CA_COMMON_NAME: &str = "tug-ca";
/// CN of the API serving certificate.
pub const APISERVER_COMMON_NAME: &str = "tug-apiserver";
/// The admin's user name (client certificate CN and token user).
pub const ADMIN_USER: &str = "tug-admin";
/// The admin's group: Kubernetes' superuser group, bound to cluster-admin.
pub const ADMIN_GROUP: &str = "system:masters";
/// The user of the apiserver's client certificate towards node agents (kubeadm's CN).
/// It is in [`ADMIN_GROUP`]: agents let only that group read logs and exec.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
/// Base name of the apiserver -> node agent client certificate files.
pub const KUBELET_CLIENT_BASE: &str = "kubelet-client";
/// Names by which pods reach the API server through its Service, as in Kubernetes.
pub const IN_CLUSTER_DNS_NAMES: [&str; 4] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("PKI directory {dir} already holds {CA_CERT_FILE}; reuse it (Ca::load_dir) or remove the directory to start over")]
    AlreadyInitialized { dir: PathBuf },
    #[error("replica {index}: name is empty; give every replica a name")]
    EmptyReplicaName { index: usize },
    #[error("replica name {name:?} is used twice; replica names must be unique")]
    DuplicateReplica { name: String },
    #[error("replica name {name:?} cannot be a file name; use letters, digits, '-' and '.'")]
    BadReplicaName { name: String },
    #[error(transparent)]
    Ca(#[from] ca::Error),
    #[error(transparent)]
    Token(#[from] token::Error),
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::Error),
    #[error(transparent)]
    File(#[from] files::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where each file of a cluster's PKI lives (see the crate docs for the layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    pub dir: PathBuf,
}

impl PkiPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PkiPaths { dir: dir.into() }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join(CA_KEY_FILE)
    }
    pub fn apiserver_cert(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }
    pub fn apiserver_key(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }
    /// Base name (without `.crt`/`.key`) of replica `name`'s peer certificate.
    pub fn peer_base(name: &str) -> String {
        format!("peer-{name}")
    }
    pub fn peer_cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.crt", Self::peer_base(name)))
    }
    pub fn peer_key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.key", Self::peer_base(name)))
    }
    pub fn admin_cert(&self) -> PathBuf {
        self.dir.join("admin.crt")
    }
    pub fn admin_key(&self) -> PathBuf {
        self.dir.join("admin.key")
    }
    /// The apiserver's client certificate towards node agents (logs, exec).
    pub fn kubelet_client_cert(&self) -> PathBuf {
        self.dir.join(format!("{KUBELET_CLIENT_BASE}.crt"))
    }
    pub fn kubelet_client_key(&self) -> PathBuf {
        self.dir.join(format!("{KUBELET_CLIENT_BASE}.key"))
    }
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }
    pub fn tokens(&self) -> PathBuf {
        self.dir.join("tokens.csv")
    }
}

/// Everything [`init_cluster_pki`] generated, already written to disk.
#[derive(Debug)]
pub struct ClusterPki {
    pub paths: PkiPaths,
    pub ca: Ca,
    /// Serving certificate of the API port, shared by every replica.
    pub apiserver: CertKey,
    /// Peer certificate of each replica, in the order given.
    pub peers: Vec<(String, CertKey)>,
    pub admin: CertKey,
    /// The apiserver's client certificate towards node agents
    /// (`CN=kube-apiserver-kubelet-client, O=system:masters`).
    pub kubelet_client: CertKey,
    /// The admin's bearer token (also in `tokens.csv`).
    pub admin_token: String,
    pub kubeconfig: Kubeconfig,
}

/// Generates a cluster's CA and certificates and writes them under `dir` (created if
/// missing; refused if it already holds a CA, so a cluster is never re-keyed by mistake).
///
/// The API serving certificate's SANs are `api_sans`, localhost/loopback, the in-cluster
/// `kubernetes.default.svc...` names, and every replica's name and IPs, so that the one
/// certificate is valid on any replica. Each replica's peer certificate has its name and
/// IPs (plus localhost). The admin certificate is `CN=tug-admin, O=system:masters`.
pub fn init_cluster_pki(
    dir: &Path,
    cluster_name: &str,
    server_url: &str,
    api_sans: (&[String], &[IpAddr]),
    replicas: &[(String, Vec<IpAddr>)],
) -> Result<ClusterPki> {
    let paths = PkiPaths::new(dir);
    if paths.ca_cert().exists() {
        return Err(Error::AlreadyInitialized {
            dir: dir.to_path_buf(),
        });
    }
    check_replica_names(replicas)?;

    let ca = Ca::generate(CA_COMMON_NAME)?;

    let mut api_dns: Vec<String> = api_sans.0.to_vec();
    api_dns.extend(IN_CLUSTER_DNS_NAMES.iter().map(|s| s.to_string()));
    api_dns.extend(replicas.iter().map(|(name, _)| name.clone()));
    let mut api_ips: Vec<IpAddr> = api_sans.1.to_vec();
    api_ips.extend(replicas.iter().flat_map(|(_, ips)| ips.iter().copied()));
    let apiserver = ca.issue_server(APISERVER_COMMON_NAME, &api_dns, &api_ips)?;

    let peers = replicas
        .iter()
        .map(|(name, ips)| {
            Ok((
                name.clone(),
                ca.issue_peer(name, std::slice::from_ref(name), ips)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;

    let admin = ca.issue_client(ADMIN_USER, &[ADMIN_GROUP.to_string()])?;
    let kubelet_client = ca.issue_client(KUBELET_CLIENT_USER, &[ADMIN_GROUP.to_string()])?;
    let admin_token = generate_token()?;
    let kubeconfig = admin_kubeconfig(cluster_name, server_url, ca.cert_pem(), &admin);

    // The CA goes last: its presence marks a complete directory, so an interrupted run
    // can simply be repeated.
    apiserver.save(dir, "apiserver")?;
    for (name, cert) in &peers {
        cert.save(dir, &PkiPaths::peer_base(name))?;
    }
    admin.save(dir, "admin")?;
    kubelet_client.save(dir, KUBELET_CLIENT_BASE)?;
    write_kubeconfig(&paths.admin_kubeconfig(), &kubeconfig)?;
    let tokens = TokenEntry {
        token: admin_token.clone(),
        user: ADMIN_USER.to_string(),
        uid: ADMIN_USER.to_string(),
        groups: vec![ADMIN_GROUP.to_string()],
    };
    files::write_private(&paths.tokens(), tokens.to_csv_line().as_bytes())?;
    ca.save(dir)?;

    Ok(ClusterPki {
        paths,
        ca,
        apiserver,
        peers,
        admin,
        kubelet_client,
        admin_token,
        kubeconfig,
    })
}

fn check_replica_names(replicas: &[(String, Vec<IpAddr>)]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (index, (name, _)) in replicas.iter().enumerate() {
        if name.is_empty() {
            return Err(Error::EmptyReplicaName { index });
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            || name.starts_with('.')
        {
            return Err(Error::BadReplicaName { name: name.clone() });
        }
        if !seen.insert(name.as_str()) {
            return Err(Error::DuplicateReplica { name: name.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::identity_from_cert;
    use crate::token::TokenFile;
    use std::os::unix::fs::PermissionsExt;

    fn replicas() -> Vec<(String, Vec<IpAddr>)> {
        vec![
            ("node-1".into(), vec!["10.0.0.1".parse().unwrap()]),
            ("node-2".into(), vec!["10.0.0.2".parse().unwrap()]),
        ]
    }

    #[test]
    fn init_lays_out_every_file_with_the_right_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let pki = init_cluster_pki(
            &dir,
            "tug",
            "https://10.0.0.1:6443",
            (
                &["api.tug.local".to_string()],
                &["10.96.0.1".parse().unwrap()],
            ),
            &replicas(),
        )
        .unwrap();

        let mut files: Vec<(String, u32)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                (e.file_name().to_string_lossy().into_owned(), mode)
            })
            .collect();
        files.sort();
        let want: Vec<(String, u32)> = [
            ("admin.crt", 0o644),
            ("admin.key", 0o600),
            ("admin.kubeconfig", 0o600),
            ("apiserver.crt", 0o644),
            ("apiserver.key", 0o600),
            ("ca.crt", 0o644),
            ("ca.key", 0o600),
            ("kubelet-client.crt", 0o644),
            ("kubelet-client.key", 0o600),
            ("peer-node-1.crt", 0o644),
            ("peer-node-1.key", 0o600),
            ("peer-node-2.crt", 0o644),
            ("peer-node-2.key", 0o600),
            ("tokens.csv", 0o600),
        ]
        .iter()
        .map(|(n, m)| (n.to_string(), *m))
        .collect();
        assert_eq!(files, want);

        // What is on disk is what was returned, and it fits together.
        let ca = Ca::load_dir(&dir).unwrap();
        assert_eq!(ca.cert_pem(), pki.ca.cert_pem());
        assert_eq!(CertKey::load(&dir, "admin").unwrap(), pki.admin);
        let admin_der = crate::tls::parse_certs(&pki.admin.cert_pem, "admin").unwrap();
        let admin = identity_from_cert(&admin_der[0]).unwrap();
        assert_eq!(admin.user, ADMIN_USER);
        assert_eq!(admin.groups, [ADMIN_GROUP]);
        assert_eq!(
            CertKey::load(&dir, KUBELET_CLIENT_BASE).unwrap(),
            pki.kubelet_client
        );
        let kc_der = crate::tls::parse_certs(&pki.kubelet_client.cert_pem, "kc").unwrap();
        let kc = identity_from_cert(&kc_der[0]).unwrap();
        assert_eq!(kc.user, KUBELET_CLIENT_USER);
        assert_eq!(kc.groups, [ADMIN_GROUP]);
        let tokens = TokenFile::load(&pki.paths.tokens()).unwrap();
        assert_eq!(tokens.lookup(&pki.admin_token), Some(admin));
        assert_eq!(
            kubeconfig::load_kubeconfig(&pki.paths.admin_kubeconfig()).unwrap(),
            pki.kubeconfig
        );
        assert_eq!(
            pki.kubeconfig.clusters[0].cluster.server,
            "https://10.0.0.1:6443"
        );
        assert_eq!(pki.peers.len(), 2);
        assert_eq!(
            CertKey::load(&dir, &PkiPaths::peer_base("node-2")).unwrap(),
            pki.peers[1].1
        );

        // The one serving cert names every replica and the in-cluster Service names.
        let api_der = crate::tls::parse_certs(&pki.apiserver.cert_pem, "api").unwrap();
        let (_, api) = x509_parser::parse_x509_certificate(&api_der[0]).unwrap();
        let sans = format!(
            "{:?}",
            api.subject_alternative_name().unwrap().unwrap().value
        );
        for want in [
            "api.tug.local",
            "kubernetes.default.svc.cluster.local",
            "node-1",
            "node-2",
            "[10, 96, 0, 1]",
            "[10, 0, 0, 2]",
        ] {
            assert!(sans.contains(want), "{want} not in {sans}");
        }
    }

    #[test]
    fn init_refuses_a_directory_that_already_has_a_ca() {
        let tmp = tempfile::tempdir().unwrap();
        init_cluster_pki(tmp.path(), "tug", "https://127.0.0.1:6443", (&[], &[]), &[]).unwrap();
        let before = std::fs::read_to_string(tmp.path().join("ca.key")).unwrap();
        let err = init_cluster_pki(tmp.path(), "tug", "https://127.0.0.1:6443", (&[], &[]), &[])
            .unwrap_err();
        assert!(matches!(err, Error::AlreadyInitialized { .. }), "{err}");
        let after = std::fs::read_to_string(tmp.path().join("ca.key")).unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn bad_replica_names_are_rejected_before_anything_is_written() {
        let cases: [(&[&str], &str); 4] = [
            (&["a", "a"], "used twice"),
            (&[""], "name is empty"),
            (&["../x"], "cannot be a file name"),
            (&["a/b"], "cannot be a file name"),
        ];
        for (names, want) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let replicas: Vec<(String, Vec<IpAddr>)> =
                names.iter().map(|n| (n.to_string(), vec![])).collect();
            let err = init_cluster_pki(tmp.path(), "tug", "https://x", (&[], &[]), &replicas)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{names:?}: {err}");
            assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        }
    }
}
