//! kubeconfig files (kubectl's clientcmd v1 `Config`): the admin kubeconfig, writing, loading.
//!
//! The types are `tug_proto::config::v1`, which mirror kubectl's YAML field for field, so a
//! tug kubeconfig works with kubectl and a kubectl kubeconfig loads here.

use std::path::Path;

use tug_proto::config::v1::{
    AuthInfo, Cluster, Config, Context, NamedAuthInfo, NamedCluster, NamedContext,
};
use tug_proto::ByteString;

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

/// The kubeconfig file type is tug-proto's `config::v1::Config` (one model for the whole
/// project); this module only makes, writes and reads them.
pub type Kubeconfig = Config;

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
                certificate_authority_data: Some(ByteString::from(ca_pem)),
                ..Cluster::default()
            },
        }],
        users: vec![NamedAuthInfo {
            name: user.clone(),
            user: AuthInfo {
                client_certificate_data: Some(ByteString::from(client.cert_pem.as_str())),
                client_key_data: Some(ByteString::from(client.key_pem.as_str())),
                ..AuthInfo::default()
            },
        }],
        contexts: vec![NamedContext {
            name: cluster_name.to_string(),
            context: Context {
                cluster: cluster_name.to_string(),
                user,
                ..Context::default()
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
        let decode = |s: &Option<ByteString>| String::from_utf8(s.clone().unwrap().0).unwrap();
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
