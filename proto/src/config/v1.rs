//! The kubeconfig file (`apiVersion: v1, kind: Config`) with its kebab-case keys.
//!
//! Unlike API objects, kubeconfig tolerates unknown fields: files are shared with
//! kubectl and other tools that add their own keys.

use crate::go_json::nullable;
use crate::ByteString;
use serde::{Deserialize, Serialize};

/// Why a kubeconfig could not be resolved to a cluster and user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "kubeconfig has no current-context; set one with `current-context:` or pass a context name"
    )]
    NoCurrentContext,
    #[error("kubeconfig has no context named {0:?}")]
    ContextNotFound(String),
    #[error(
        "kubeconfig context {context:?} refers to cluster {cluster:?}, which is not in `clusters`"
    )]
    ClusterNotFound { context: String, cluster: String },
    #[error("kubeconfig context {context:?} refers to user {user:?}, which is not in `users`")]
    UserNotFound { context: String, user: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A whole kubeconfig file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub preferences: serde_json::Value,
    #[serde(deserialize_with = "nullable")]
    pub clusters: Vec<NamedCluster>,
    #[serde(deserialize_with = "nullable")]
    pub users: Vec<NamedAuthInfo>,
    #[serde(deserialize_with = "nullable")]
    pub contexts: Vec<NamedContext>,
    #[serde(rename = "current-context")]
    pub current_context: String,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub extensions: Vec<serde_json::Value>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_version: "v1".into(),
            kind: "Config".into(),
            preferences: serde_json::Value::Object(Default::default()),
            clusters: Vec::new(),
            users: Vec::new(),
            contexts: Vec::new(),
            current_context: String::new(),
            extensions: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

/// How to reach and trust an apiserver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Cluster {
    pub server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
    /// Path to a PEM CA bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// PEM CA bundle, base64 in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_compression: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub extensions: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedAuthInfo {
    pub name: String,
    pub user: AuthInfo,
}

/// Credentials: a client certificate, a bearer token, or basic auth. `Debug` redacts
/// the token and password.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct AuthInfo {
    /// Path to a PEM client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<ByteString>,
    /// Path to a PEM private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Go spells this one in camelCase.
    #[serde(rename = "tokenFile", skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    #[serde(rename = "as", skip_serializing_if = "Option::is_none")]
    pub impersonate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_provider: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub extensions: Vec<serde_json::Value>,
}

impl std::fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("AuthInfo")
            .field("client_certificate", &self.client_certificate)
            .field("client_certificate_data", &self.client_certificate_data)
            .field("client_key", &self.client_key)
            .field("client_key_data", &self.client_key_data)
            .field("token", &redacted(&self.token))
            .field("token_file", &self.token_file)
            .field("impersonate", &self.impersonate)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

/// A (cluster, user, namespace) triple.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    pub cluster: String,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub extensions: Vec<serde_json::Value>,
}

/// The cluster, user and namespace a context points at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resolved<'a> {
    pub context_name: &'a str,
    pub cluster: &'a Cluster,
    pub user: &'a AuthInfo,
    /// The context's namespace, if it names one (callers default to `default`).
    pub namespace: Option<&'a str>,
}

impl Config {
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.cluster)
    }

    pub fn user(&self, name: &str) -> Option<&AuthInfo> {
        self.users.iter().find(|u| u.name == name).map(|u| &u.user)
    }

    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.context)
    }

    /// Resolves `context` (or `current-context` when `None`) to its cluster and user.
    pub fn resolve(&self, context: Option<&str>) -> Result<Resolved<'_>> {
        let name = match context {
            Some(n) => n,
            None if self.current_context.is_empty() => return Err(Error::NoCurrentContext),
            None => self.current_context.as_str(),
        };
        let (context_name, ctx) = self
            .contexts
            .iter()
            .find(|c| c.name == name)
            .map(|c| (c.name.as_str(), &c.context))
            .ok_or_else(|| Error::ContextNotFound(name.to_string()))?;
        let cluster = self
            .cluster(&ctx.cluster)
            .ok_or_else(|| Error::ClusterNotFound {
                context: name.to_string(),
                cluster: ctx.cluster.clone(),
            })?;
        let user = self.user(&ctx.user).ok_or_else(|| Error::UserNotFound {
            context: name.to_string(),
            user: ctx.user.clone(),
        })?;
        Ok(Resolved {
            context_name,
            cluster,
            user,
            namespace: ctx.namespace.as_deref().filter(|n| !n.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: tug
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: Q0EgUEVN
    tls-server-name: apiserver
    some-future-key: tolerated
users:
- name: admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
    token: abc
contexts:
- name: admin@tug
  context:
    cluster: tug
    user: admin
    namespace: prod
current-context: admin@tug
preferences: {}
"#;

    #[test]
    fn kubeconfig_decodes_kebab_case_keys_and_tolerates_unknown_ones() {
        let cfg: Config = yaml_serde::from_str(KUBECONFIG).unwrap();
        let r = cfg.resolve(None).unwrap();
        assert_eq!(r.context_name, "admin@tug");
        assert_eq!(r.cluster.server, "https://127.0.0.1:6443");
        assert_eq!(r.cluster.tls_server_name.as_deref(), Some("apiserver"));
        assert_eq!(
            r.cluster.certificate_authority_data.as_ref().unwrap().0,
            b"CA PEM"
        );
        assert_eq!(r.user.client_key_data.as_ref().unwrap().0, b"KEY");
        assert_eq!(r.user.token.as_deref(), Some("abc"));
        assert!(
            !format!("{:?}", r.user).contains("abc"),
            "Debug must redact the token"
        );
        assert_eq!(r.namespace, Some("prod"));
    }

    #[test]
    fn kubeconfig_round_trips_with_kebab_case_keys() {
        let cfg: Config = yaml_serde::from_str(KUBECONFIG).unwrap();
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["current-context"], "admin@tug");
        assert_eq!(
            json["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0EgUEVN"
        );
        assert_eq!(
            json["users"][0]["user"]["client-certificate-data"],
            "Q0VSVA=="
        );
        let back: Config = serde_json::from_value(json).unwrap();
        assert_eq!(back.users, cfg.users);
        assert_eq!(back.contexts, cfg.contexts);
    }

    #[test]
    fn resolving_a_missing_context_cluster_or_user_names_it() {
        let mut cfg: Config = yaml_serde::from_str(KUBECONFIG).unwrap();
        let err = cfg.resolve(Some("nope")).unwrap_err();
        assert_eq!(err, Error::ContextNotFound("nope".into()));
        cfg.contexts[0].context.user = "ghost".into();
        let err = cfg.resolve(None).unwrap_err().to_string();
        assert!(err.contains("ghost"), "{err}");
        cfg.current_context.clear();
        assert_eq!(cfg.resolve(None).unwrap_err(), Error::NoCurrentContext);
        assert_eq!(Config::default().kind, "Config");
    }
}
