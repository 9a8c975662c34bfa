//! kubeconfig files (kubectl's clientcmd v1 `Config`): the admin kubeconfig, writing, loading.
//!
//! The types mirror kubectl's YAML field for field, so a tug kubeconfig works with kubectl
//! and a kubectl kubeconfig loads here. Unknown fields (exec plugins, extensions) are
//! ignored on load, as client-go does.

use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::ca::CertKey;
use crate::files;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubeconfig {path}: invalid YAML: {reason}")]
    Parse { path: String, reason: String },
    #[error("kubeconfig: cannot serialize: {0}")]
    Serialize(String),
    #[error(transparent)]
    File(#[from] files::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion", default = "api_version_v1")]
    pub api_version: String,
    #[serde(default = "kind_config")]
    pub kind: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub users: Vec<NamedAuthInfo>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(default)]
    pub current_context: String,
}

impl Default for Kubeconfig {
    fn default() -> Self {
        Kubeconfig {
            api_version: api_version_v1(),
            kind: kind_config(),
            clusters: Vec::new(),
            users: Vec::new(),
            contexts: Vec::new(),
            current_context: String::new(),
        }
    }
}

fn api_version_v1() -> String {
    "v1".into()
}

fn kind_config() -> String {
    "Config".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_tls_verify: bool,
    /// Path of a CA bundle file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// Base64 of the CA bundle PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NamedAuthInfo {
    pub name: String,
    pub user: AuthInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuthInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// Base64 of the client certificate PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// Base64 of the client key PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// kubectl spells this one in camelCase.
    #[serde(rename = "tokenFile", default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Base64 (standard, padded) as kubeconfig `*-data` fields hold it.
pub fn encode_data(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem.as_bytes())
}

/// A kubeconfig for the cluster admin: one cluster, user `<cluster>-admin` with the
/// client certificate embedded, and one context named after the cluster, made current.
pub fn admin_kubeconfig(
    cluster_name: &str,
    server_url: &str,
    ca_pem: &str,
    client: &CertKey,
) -> Kubeconfig {
    let user = format!("{cluster_name}-admin");
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: cluster_name.to_string(),
            cluster: Cluster {
                server: server_url.to_string(),
                certificate_authority_data: Some(encode_data(ca_pem)),
                ..Cluster::default()
            },
        }],
        users: vec![NamedAuthInfo {
            name: user.clone(),
            user: AuthInfo {
                client_certificate_data: Some(encode_data(&client.cert_pem)),
                client_key_data: Some(encode_data(&client.key_pem)),
                ..AuthInfo::default()
            },
        }],
        contexts: vec![NamedContext {
            name: cluster_name.to_string(),
            context: Context {
                cluster: cluster_name.to_string(),
                user,
                namespace: None,
            },
        }],
        current_context: cluster_name.to_string(),
        ..Kubeconfig::default()
    }
}

/// Writes `config` as YAML to `path` with mode 0600 (it holds a private key or token).
pub fn write_kubeconfig(path: &Path, config: &Kubeconfig) -> Result<()> {
    let yaml = to_yaml(config)?;
    files::write_private(path, yaml.as_bytes())?;
    Ok(())
}

pub fn to_yaml(config: &Kubeconfig) -> Result<String> {
    yaml_serde::to_string(config).map_err(|e| Error::Serialize(e.to_string()))
}

/// Reads a kubeconfig YAML file.
pub fn load_kubeconfig(path: &Path) -> Result<Kubeconfig> {
    let text = files::read_to_string(path)?;
    parse_kubeconfig(&text, &path.display().to_string())
}

/// Parses kubeconfig YAML; `source` names it in errors.
pub fn parse_kubeconfig(text: &str, source: &str) -> Result<Kubeconfig> {
    yaml_serde::from_str(text).map_err(|e| Error::Parse {
        path: source.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Ca;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn admin_kubeconfig_round_trips_through_yaml_with_mode_0600() {
        let ca = Ca::generate("tug-ca").unwrap();
        let admin = ca
            .issue_client("tug-admin", &["system:masters".into()])
            .unwrap();
        let config = admin_kubeconfig("tug", "https://127.0.0.1:6443", ca.cert_pem(), &admin);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.kubeconfig");
        write_kubeconfig(&path, &config).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let read: Kubeconfig = yaml_serde::from_str(&text).unwrap();
        assert_eq!(read, config);
        assert_eq!(load_kubeconfig(&path).unwrap(), config);

        // kubectl's field names, and the data decodes back to the PEMs.
        for key in [
            "apiVersion: v1",
            "kind: Config",
            "current-context: tug",
            "certificate-authority-data:",
            "client-certificate-data:",
            "client-key-data:",
            "user: tug-admin",
        ] {
            assert!(text.contains(key), "missing {key:?} in\n{text}");
        }
        let decode = |s: &Option<String>| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(s.as_deref().unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(
            decode(&read.clusters[0].cluster.certificate_authority_data),
            ca.cert_pem()
        );
        assert_eq!(decode(&read.users[0].user.client_key_data), admin.key_pem);
        assert_eq!(read.contexts[0].context.user, "tug-admin");
    }

    #[test]
    fn a_kubectl_written_kubeconfig_loads_ignoring_unknown_fields() {
        let text = r#"
apiVersion: v1
kind: Config
preferences: {}
clusters:
- cluster:
    certificate-authority: /etc/ca.crt
    server: https://10.0.0.1:6443
    extensions:
    - name: x
      extension: {}
  name: c1
contexts:
- context:
    cluster: c1
    namespace: dev
    user: u1
  name: ctx
current-context: ctx
users:
- name: u1
  user:
    token: abc
    tokenFile: /t
- name: u2
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: aws
"#;
        let config = parse_kubeconfig(text, "test").unwrap();
        assert_eq!(config.current_context, "ctx");
        assert_eq!(
            config.clusters[0].cluster.certificate_authority.as_deref(),
            Some("/etc/ca.crt")
        );
        assert_eq!(config.contexts[0].context.namespace.as_deref(), Some("dev"));
        assert_eq!(config.users[0].user.token.as_deref(), Some("abc"));
        assert_eq!(config.users[0].user.token_file.as_deref(), Some("/t"));
    }

    #[test]
    fn invalid_yaml_names_the_source() {
        let err = parse_kubeconfig("clusters: 3", "/x/config").unwrap_err();
        assert!(err.to_string().contains("/x/config"), "{err}");
    }
}
