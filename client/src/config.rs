//! Kubeconfig loading: which cluster, which credentials, which namespace.

use base64::Engine;
use serde::{Deserialize, Serialize};
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
    #[error("kubeconfig has no current-context; pass --context or set current-context")]
    NoCurrentContext,
    #[error("context \"{0}\" not found in kubeconfig")]
    ContextNotFound(String),
    #[error("cluster \"{cluster}\" (used by context \"{context}\") not found in kubeconfig")]
    ClusterNotFound { context: String, cluster: String },
    #[error("user \"{user}\" (used by context \"{context}\") not found in kubeconfig")]
    UserNotFound { context: String, user: String },
    #[error("cluster \"{cluster}\": server {server:?} is not a valid URL: {reason}")]
    InvalidServer {
        cluster: String,
        server: String,
        reason: String,
    },
    #[error("cannot read {what} file {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not valid base64: {source}")]
    Base64 {
        what: &'static str,
        source: base64::DecodeError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kubeconfig file format (`apiVersion: v1`, `kind: Config`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion", skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    pub clusters: Vec<NamedCluster>,
    pub contexts: Vec<NamedContext>,
    pub users: Vec<NamedUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferences: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Cluster {
    pub server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    pub cluster: String,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedUser {
    pub name: String,
    pub user: AuthInfo,
}

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct AuthInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
}

// Credentials never reach logs, not even through `{:?}`.
impl std::fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthInfo")
            .field("client_certificate", &self.client_certificate)
            .field(
                "client_certificate_data",
                &redact(&self.client_certificate_data),
            )
            .field("client_key", &self.client_key)
            .field("client_key_data", &redact(&self.client_key_data))
            .field("token", &redact(&self.token))
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl Kubeconfig {
    /// Reads and parses one kubeconfig file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Kubeconfig::default());
        }
        let mut config: Kubeconfig = yaml_serde::from_str(text).map_err(|source| Error::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        config.resolve_relative_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// File references in a kubeconfig are relative to the file itself (like kubectl).
    fn resolve_relative_paths(&mut self, dir: &Path) {
        let fix = |p: &mut Option<String>| {
            if let Some(path) = p {
                if !Path::new(path.as_str()).is_absolute() {
                    *path = dir.join(path.as_str()).to_string_lossy().into_owned();
                }
            }
        };
        for c in &mut self.clusters {
            fix(&mut c.cluster.certificate_authority);
        }
        for u in &mut self.users {
            fix(&mut u.user.client_certificate);
            fix(&mut u.user.client_key);
            fix(&mut u.user.token_file);
        }
    }

    /// Merges `other` into `self` the way kubectl merges `$KUBECONFIG` files: the first
    /// file to set a value wins.
    fn merge(&mut self, other: Kubeconfig) {
        if self.current_context.is_none() {
            self.current_context = other.current_context;
        }
        for c in other.clusters {
            if !self.clusters.iter().any(|x| x.name == c.name) {
                self.clusters.push(c);
            }
        }
        for c in other.contexts {
            if !self.contexts.iter().any(|x| x.name == c.name) {
                self.contexts.push(c);
            }
        }
        for u in other.users {
            if !self.users.iter().any(|x| x.name == u.name) {
                self.users.push(u);
            }
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
            Some(path) => Kubeconfig::read(path)?,
            None => {
                let paths = default_paths();
                let mut existing = paths.into_iter().filter(|p| p.exists()).peekable();
                if existing.peek().is_none() {
                    return Err(Error::NotFound);
                }
                let mut merged = Kubeconfig::default();
                for path in existing {
                    merged.merge(Kubeconfig::read(&path)?);
                }
                merged
            }
        };
        Self::from_kubeconfig(&kubeconfig, opts.context.as_deref())
    }

    /// Resolves `context` (or the current context) of an already parsed kubeconfig.
    pub fn from_kubeconfig(kubeconfig: &Kubeconfig, context: Option<&str>) -> Result<Self> {
        let context_name = match context {
            Some(c) => c.to_string(),
            None => kubeconfig
                .current_context
                .clone()
                .filter(|c| !c.is_empty())
                .ok_or(Error::NoCurrentContext)?,
        };
        let ctx = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .ok_or_else(|| Error::ContextNotFound(context_name.clone()))?;
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == ctx.context.cluster)
            .ok_or_else(|| Error::ClusterNotFound {
                context: context_name.clone(),
                cluster: ctx.context.cluster.clone(),
            })?;
        // A context without a user is legal (anonymous access).
        let user = if ctx.context.user.is_empty() {
            AuthInfo::default()
        } else {
            kubeconfig
                .users
                .iter()
                .find(|u| u.name == ctx.context.user)
                .map(|u| u.user.clone())
                .ok_or_else(|| Error::UserNotFound {
                    context: context_name.clone(),
                    user: ctx.context.user.clone(),
                })?
        };

        let server_str = cluster.cluster.server.trim_end_matches('/');
        let server: http::Uri =
            server_str
                .parse()
                .map_err(|e: http::uri::InvalidUri| Error::InvalidServer {
                    cluster: cluster.name.clone(),
                    server: cluster.cluster.server.clone(),
                    reason: e.to_string(),
                })?;
        if server.scheme().is_none() || server.authority().is_none() {
            return Err(Error::InvalidServer {
                cluster: cluster.name.clone(),
                server: cluster.cluster.server.clone(),
                reason: "expected scheme://host:port, e.g. https://127.0.0.1:6443".into(),
            });
        }

        let ca_pem = data_or_file(
            "certificate-authority",
            &cluster.cluster.certificate_authority_data,
            &cluster.cluster.certificate_authority,
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
            namespace: ctx
                .context
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".to_string()),
            insecure_skip_tls_verify: cluster.cluster.insecure_skip_tls_verify.unwrap_or(false),
            tls_server_name: cluster.cluster.tls_server_name.clone(),
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

/// `*-data` (base64) wins over the file path, as in kubectl.
fn data_or_file(
    what: &'static str,
    data: &Option<String>,
    file: &Option<String>,
) -> Result<Option<Vec<u8>>> {
    if let Some(data) = data.as_ref().filter(|d| !d.is_empty()) {
        let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map(Some)
            .map_err(|source| Error::Base64 { what, source });
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
        Kubeconfig::parse(KUBECONFIG, Path::new("/etc/tug/admin.conf")).unwrap()
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
            (Some("nope"), "context \"nope\" not found"),
            (Some("broken"), "cluster \"nowhere\""),
        ];
        for (ctx, want) in cases {
            let err = Config::from_kubeconfig(&k, ctx).unwrap_err().to_string();
            assert!(err.contains(want), "{ctx:?}: {err}");
        }
        let err = Config::from_kubeconfig(&Kubeconfig::default(), None).unwrap_err();
        assert!(matches!(err, Error::NoCurrentContext));
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
        assert!(!format!("{k:?}").contains("s3cret"));
    }

    #[test]
    fn merging_keeps_the_first_value() {
        let mut a = parsed();
        let mut b = parsed();
        b.current_context = Some("anon".into());
        b.clusters[0].cluster.server = "https://other:1".into();
        b.clusters.push(NamedCluster {
            name: "extra".into(),
            cluster: Cluster::default(),
        });
        a.merge(b);
        assert_eq!(a.current_context.as_deref(), Some("admin@tug"));
        assert_eq!(a.clusters[0].cluster.server, "https://127.0.0.1:6443/");
        assert_eq!(a.clusters.len(), 2);
    }
}
