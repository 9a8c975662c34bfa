//! Kubeconfig loading: which cluster, which credentials, which namespace.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read kubeconfig {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kubeconfig {path} is not valid YAML: {source}")]
    Parse {
        path: PathBuf,
        source: yaml_serde::Error,
    },
    #[error("no kubeconfig found: pass --kubeconfig, set $KUBECONFIG, or create ~/.kube/config")]
    NotFound,
    #[error(transparent)]
    Resolve(#[from] tug_proto::config::v1::Error),
    #[error("context \"{0}\" not found in kubeconfig")]
    ContextNotFound(String),
    #[error("cluster \"{cluster}\" (used by context \"{context}\") not found in kubeconfig")]
    ClusterNotFound { context: String, cluster: String },
    #[error("cluster \"{cluster}\": server {server:?} is not a valid URL: {reason}")]
    InvalidServer {
        cluster: String,
        server: String,
        reason: String,
    },
    #[error("the user's token contains characters not allowed in an HTTP header; check the kubeconfig's token or token-file")]
    InvalidToken,
    #[error("tls-server-name {0:?} is not a DNS name or IP address")]
    InvalidTlsServerName(String),
    #[error("cannot read {what} file {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

use tug_proto::config::v1::AuthInfo;
/// The kubeconfig file format (`apiVersion: v1`, `kind: Config`), from `tug-proto`.
pub use tug_proto::config::v1::Config as Kubeconfig;

/// Reading and merging kubeconfig files (the type itself lives in `tug-proto`).
pub trait KubeconfigExt: Sized {
    /// Reads and parses one kubeconfig file; relative paths in it are resolved against
    /// the file's directory.
    fn read(path: &Path) -> Result<Self>;
}

impl KubeconfigExt for Kubeconfig {
    fn read(path: &Path) -> Result<Self> {
        read_kubeconfig(path)
    }
}

fn read_kubeconfig(path: &Path) -> Result<Kubeconfig> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

fn parse(text: &str, path: &Path) -> Result<Kubeconfig> {
    if text.trim().is_empty() {
        return Ok(Kubeconfig::default());
    }
    let mut config: Kubeconfig = yaml_serde::from_str(text).map_err(|source| Error::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    resolve_relative_paths(&mut config, path.parent().unwrap_or(Path::new(".")));
    Ok(config)
}

/// File references in a kubeconfig are relative to the file itself (like kubectl).
fn resolve_relative_paths(config: &mut Kubeconfig, dir: &Path) {
    let fix = |p: &mut Option<String>| {
        if let Some(path) = p {
            if !path.is_empty() && !Path::new(path.as_str()).is_absolute() {
                *path = dir.join(path.as_str()).to_string_lossy().into_owned();
            }
        }
    };
    for c in &mut config.clusters {
        fix(&mut c.cluster.certificate_authority);
    }
    for u in &mut config.users {
        fix(&mut u.user.client_certificate);
        fix(&mut u.user.client_key);
        fix(&mut u.user.token_file);
    }
}

/// Merges `other` into `base` the way kubectl merges `$KUBECONFIG` files: the first
/// file to set a value wins.
fn merge(base: &mut Kubeconfig, other: Kubeconfig) {
    if base.current_context.is_empty() {
        base.current_context = other.current_context;
    }
    for c in other.clusters {
        if !base.clusters.iter().any(|x| x.name == c.name) {
            base.clusters.push(c);
        }
    }
    for c in other.contexts {
        if !base.contexts.iter().any(|x| x.name == c.name) {
            base.contexts.push(c);
        }
    }
    for u in other.users {
        if !base.users.iter().any(|x| x.name == u.name) {
            base.users.push(u);
        }
    }
}

/// Where to look for the kubeconfig and which context to use. Empty means "the usual":
/// `$KUBECONFIG`, then `~/.kube/config`, and the file's `current-context`.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// A client identity: PEM certificate chain and PEM private key.
#[derive(Clone)]
pub struct Identity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity(<redacted>)")
    }
}

/// Everything a [`crate::Client`] needs to reach one cluster, resolved from a kubeconfig
/// context (or built by hand in tests).
#[derive(Clone)]
pub struct Config {
    /// Base URL of the apiserver, e.g. `https://127.0.0.1:6443`.
    pub server: http::Uri,
    /// PEM bundle of CAs to trust for the server's certificate.
    pub ca_pem: Option<Vec<u8>>,
    pub identity: Option<Identity>,
    pub token: Option<String>,
    /// Namespace of the context (`default` when the context has none).
    pub namespace: String,
    pub insecure_skip_tls_verify: bool,
    pub tls_server_name: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("ca_pem", &self.ca_pem.as_ref().map(|c| c.len()))
            .field("identity", &self.identity)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("namespace", &self.namespace)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .finish()
    }
}

impl Config {
    /// A config for `server` with no credentials and namespace `default`.
    pub fn new(server: http::Uri) -> Self {
        Config {
            server,
            ca_pem: None,
            identity: None,
            token: None,
            namespace: "default".to_string(),
            insecure_skip_tls_verify: false,
            tls_server_name: None,
        }
    }

    /// Loads the kubeconfig the usual way: `$KUBECONFIG` then `~/.kube/config`.
    pub fn infer() -> Result<Self> {
        Self::load(&LoadOptions::default())
    }

    /// Loads from an explicit kubeconfig file with its current context.
    pub fn from_kubeconfig_file(path: &Path) -> Result<Self> {
        Self::load(&LoadOptions {
            kubeconfig: Some(path.to_path_buf()),
            context: None,
        })
    }

    /// Loads the kubeconfig chosen by `opts` and resolves its context.
    pub fn load(opts: &LoadOptions) -> Result<Self> {
        let kubeconfig = match &opts.kubeconfig {
            Some(path) => read_kubeconfig(path)?,
            None => {
                let paths = default_paths();
                let mut existing = paths.into_iter().filter(|p| p.exists()).peekable();
                if existing.peek().is_none() {
                    return Err(Error::NotFound);
                }
                let mut merged = Kubeconfig::default();
                for path in existing {
                    merge(&mut merged, read_kubeconfig(&path)?);
                }
                merged
            }
        };
        Self::from_kubeconfig(&kubeconfig, opts.context.as_deref())
    }

    /// Resolves `context` (or the current context) of an already parsed kubeconfig.
    pub fn from_kubeconfig(kubeconfig: &Kubeconfig, context: Option<&str>) -> Result<Self> {
        // A context without a user is legal (anonymous access).
        let anonymous = AuthInfo::default();
        let (context_name, cluster_entry, user, namespace) = match kubeconfig.resolve(context) {
            Ok(r) => (r.context_name.to_string(), r.cluster, r.user, r.namespace),
            Err(tug_proto::config::v1::Error::UserNotFound { context, user })
                if user.is_empty() =>
            {
                let ctx = kubeconfig
                    .context(&context)
                    .ok_or_else(|| Error::ContextNotFound(context.clone()))?;
                let cluster =
                    kubeconfig
                        .cluster(&ctx.cluster)
                        .ok_or_else(|| Error::ClusterNotFound {
                            context: context.clone(),
                            cluster: ctx.cluster.clone(),
                        })?;
                (context, cluster, &anonymous, ctx.namespace.as_deref())
            }
            Err(e) => return Err(e.into()),
        };
        let cluster_name = kubeconfig
            .context(&context_name)
            .map(|c| c.cluster.clone())
            .unwrap_or_default();
        let server_str = cluster_entry.server.trim_end_matches('/');
        let server: http::Uri =
            server_str
                .parse()
                .map_err(|e: http::uri::InvalidUri| Error::InvalidServer {
                    cluster: cluster_name.clone(),
                    server: cluster_entry.server.clone(),
                    reason: e.to_string(),
                })?;
        if server.scheme().is_none() || server.authority().is_none() {
            return Err(Error::InvalidServer {
                cluster: cluster_name.clone(),
                server: cluster_entry.server.clone(),
                reason: "expected scheme://host:port, e.g. https://127.0.0.1:6443".into(),
            });
        }

        let ca_pem = data_or_file(
            "certificate-authority",
            &cluster_entry.certificate_authority_data,
            &cluster_entry.certificate_authority,
        )?;
        let cert = data_or_file(
            "client-certificate",
            &user.client_certificate_data,
            &user.client_certificate,
        )?;
        let key = data_or_file("client-key", &user.client_key_data, &user.client_key)?;
        let identity = match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Some(Identity { cert_pem, key_pem }),
            _ => None,
        };
        let token = match (&user.token, &user.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => Some(
                read_file("token-file", path)
                    .map(|b| String::from_utf8_lossy(&b).trim().to_string())?,
            ),
            (None, None) => None,
        };

        Ok(Config {
            server,
            ca_pem,
            identity,
            token,
            namespace: namespace
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string(),
            insecure_skip_tls_verify: cluster_entry.insecure_skip_tls_verify.unwrap_or(false),
            tls_server_name: cluster_entry.tls_server_name.clone(),
        })
    }
}

/// `$KUBECONFIG` (colon-separated) if set and non-empty, else `~/.kube/config`.
fn default_paths() -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    std::env::var_os("HOME")
        .map(|home| vec![PathBuf::from(home).join(".kube").join("config")])
        .unwrap_or_default()
}

/// `*-data` (already base64-decoded by the type) wins over the file path, as in kubectl.
fn data_or_file(
    what: &'static str,
    data: &Option<tug_proto::ByteString>,
    file: &Option<String>,
) -> Result<Option<Vec<u8>>> {
    if let Some(data) = data.as_ref().filter(|d| !d.0.is_empty()) {
        return Ok(Some(data.0.clone()));
    }
    match file.as_ref().filter(|f| !f.is_empty()) {
        Some(path) => read_file(what, path).map(Some),
        None => Ok(None),
    }
}

fn read_file(what: &'static str, path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ReadFile {
        what,
        path: PathBuf::from(path),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: admin@tug
clusters:
- name: tug
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: Q0FQRU0=
contexts:
- name: admin@tug
  context: {cluster: tug, user: admin, namespace: team-a}
- name: anon
  context: {cluster: tug, user: ""}
- name: broken
  context: {cluster: nowhere, user: admin}
users:
- name: admin
  user:
    token: s3cret
    client-certificate: certs/admin.crt
    client-key-data: S0VZ
"#;

    fn parsed() -> Kubeconfig {
        parse(KUBECONFIG, Path::new("/etc/tug/admin.conf")).unwrap()
    }

    #[test]
    fn relative_file_paths_resolve_against_the_kubeconfig_directory() {
        let k = parsed();
        assert_eq!(
            k.users[0].user.client_certificate.as_deref(),
            Some("/etc/tug/certs/admin.crt")
        );
    }

    #[test]
    fn current_context_picks_cluster_user_and_namespace() {
        let mut k = parsed();
        k.users[0].user.client_certificate = None;
        let c = Config::from_kubeconfig(&k, None).unwrap();
        assert_eq!(c.server.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(c.ca_pem.as_deref(), Some(&b"CAPEM"[..]));
        assert_eq!(c.token.as_deref(), Some("s3cret"));
        assert_eq!(c.namespace, "team-a");
        // Key without certificate is no identity.
        assert!(c.identity.is_none());
    }

    #[test]
    fn context_without_namespace_defaults_to_default() {
        let c = Config::from_kubeconfig(&parsed(), Some("anon")).unwrap();
        assert_eq!(c.namespace, "default");
        assert!(c.token.is_none());
    }

    #[test]
    fn missing_pieces_are_named_in_errors() {
        let k = parsed();
        let cases = [
            (Some("nope"), "no context named \"nope\""),
            (Some("broken"), "cluster \"nowhere\""),
        ];
        for (ctx, want) in cases {
            let err = Config::from_kubeconfig(&k, ctx).unwrap_err().to_string();
            assert!(err.contains(want), "{ctx:?}: {err}");
        }
        let err = Config::from_kubeconfig(&Kubeconfig::default(), None).unwrap_err();
        assert!(err.to_string().contains("no current-context"), "{err}");
    }

    #[test]
    fn missing_certificate_file_names_the_file() {
        let err = Config::from_kubeconfig(&parsed(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/tug/certs/admin.crt"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let mut k = parsed();
        k.users[0].user.client_certificate = None;
        let c = Config::from_kubeconfig(&k, None).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn merging_keeps_the_first_value() {
        let mut a = parsed();
        let mut b = parsed();
        b.current_context = "anon".into();
        b.clusters[0].cluster.server = "https://other:1".into();
        b.clusters.push(tug_proto::config::v1::NamedCluster {
            name: "extra".into(),
            ..Default::default()
        });
        merge(&mut a, b);
        assert_eq!(a.current_context, "admin@tug");
        assert_eq!(a.clusters[0].cluster.server, "https://127.0.0.1:6443/");
        assert_eq!(a.clusters.len(), 2);
    }
}
