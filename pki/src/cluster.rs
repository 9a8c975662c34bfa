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
    let admin_token = generate_token()?;
    let kubeconfig = admin_kubeconfig(cluster_name, server_url, ca.cert_pem(), &admin);

    // The CA goes last: its presence marks a complete directory, so an interrupted run
    // can simply be repeated.
    apiserver.save(dir, "apiserver")?;
    for (name, cert) in &peers {
        cert.save(dir, &PkiPaths::peer_base(name))?;
    }
    admin.save(dir, "admin")?;
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
