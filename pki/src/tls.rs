//! rustls server and client configurations (ring provider) built from the cluster's PEMs.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::ca::CertKey;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { what: String },
    #[error("{what}: invalid PEM: {source}")]
    Pem {
        what: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{what}: no usable certificate in the CA bundle: {reason}")]
    BadCaBundle { what: String, reason: String },
    #[error("a server that requires client certificates needs a client CA; pass client_ca_pem")]
    RequireWithoutCa,
    #[error("building the TLS {what} configuration: {source}")]
    Rustls { what: String, source: rustls::Error },
    #[error("building the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The one crypto provider of tug: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM bundle, in order; `what` names the source in errors.
pub fn parse_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            what: what.to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            what: what.to_string(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM text.
pub fn parse_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|source| Error::Pem {
        what: what.to_string(),
        source,
    })
}

/// A root store holding every certificate of `ca_pem`.
pub fn root_store(ca_pem: &str, what: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(parse_certs(ca_pem, what)?);
    if added == 0 {
        return Err(Error::BadCaBundle {
            what: what.to_string(),
            reason: format!("{ignored} certificate(s) could not be used as trust anchors"),
        });
    }
    Ok(roots)
}

/// A server configuration presenting `cert`.
///
/// - `client_ca_pem: None`: no client certificates are asked for.
/// - `Some(ca)`, `require_client_cert: false` (API port): a client certificate is
///   optional, but when presented it must chain to `ca`; clients without one
///   authenticate with bearer tokens.
/// - `Some(ca)`, `require_client_cert: true` (peer port): mutual TLS.
pub fn server_config(
    cert: &CertKey,
    client_ca_pem: Option<&str>,
    require_client_cert: bool,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let chain = parse_certs(&cert.cert_pem, "server certificate")?;
    let key = parse_key(&cert.key_pem, "server key")?;
    let rustls_err = |source| Error::Rustls {
        what: "server".into(),
        source,
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?;
    let builder = match client_ca_pem {
        None if require_client_cert => return Err(Error::RequireWithoutCa),
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(root_store(ca, "client CA")?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(rustls_err)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration trusting only `ca_pem` (never the system roots: tug's
/// endpoints are all signed by the cluster CA), presenting `client_cert` if given.
pub fn client_config(
    ca_pem: &str,
    client_cert: Option<&CertKey>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let roots = Arc::new(root_store(ca_pem, "cluster CA")?);
    let rustls_err = |source| Error::Rustls {
        what: "client".into(),
        source,
    };
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| Error::BadCaBundle {
            what: "cluster CA".into(),
            reason: e.to_string(),
        })?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?
        .with_webpki_verifier(verifier);
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some(cert) => builder
            .with_client_auth_cert(
                parse_certs(&cert.cert_pem, "client certificate")?,
                parse_key(&cert.key_pem, "client key")?,
            )
            .map_err(rustls_err)?,
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Ca;
    use crate::identity::{identity_from_peer_certificates, Identity};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Safety net so a broken handshake fails the test instead of hanging it; never a
    /// performance assertion.
    const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

    struct Outcome {
        /// The server's view: the client's identity (None: no certificate), or an error.
        server: Result<Option<Identity>, String>,
        /// The client's view: the ALPN protocol, once a byte from the server arrived.
        client: Result<Option<Vec<u8>>, String>,
    }

    impl Outcome {
        fn ok(&self) -> bool {
            self.server.is_ok() && self.client.is_ok()
        }
    }

    /// One TLS connection over 127.0.0.1; the server sends one byte after the handshake
    /// so the client learns whether the server accepted its certificate (in TLS 1.3 the
    /// client finishes its handshake before the server has checked it).
    async fn connect(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Outcome {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut tls = tokio_rustls::TlsAcceptor::from(server)
                .accept(tcp)
                .await
                .map_err(|e| e.to_string())?;
            let identity = identity_from_peer_certificates(tls.get_ref().1.peer_certificates())
                .map_err(|e| e.to_string())?;
            tls.write_all(b"k").await.map_err(|e| e.to_string())?;
            tls.shutdown().await.map_err(|e| e.to_string())?;
            Ok(identity)
        });
        let client_result = async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(client)
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            Ok(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
        };
        let client = tokio::time::timeout(HANG_GUARD, client_result)
            .await
            .expect("client hung");
        let server = tokio::time::timeout(HANG_GUARD, server_task)
            .await
            .expect("server hung")
            .expect("server task panicked");
        Outcome { server, client }
    }

    fn groups(g: &[&str]) -> Vec<String> {
        g.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn handshakes_accept_and_reject_the_right_peers() {
        let ca = Ca::generate("test-ca").unwrap();
        let other = Ca::generate("other-ca").unwrap();
        let server_cert = ca.issue_server("apiserver", &[], &[]).unwrap();
        let peer = ca.issue_peer("node-1", &[], &[]).unwrap();
        let admin = ca
            .issue_client("tug-admin", &groups(&["system:masters"]))
            .unwrap();
        let stranger = other
            .issue_client("tug-admin", &groups(&["system:masters"]))
            .unwrap();

        let admin_identity = Identity {
            user: "tug-admin".into(),
            groups: groups(&["system:masters"]),
        };
        let peer_identity = Identity {
            user: "node-1".into(),
            groups: vec![],
        };
        // (name, server cert, client CA of the server, require, CA the client trusts,
        //  client cert, expected identity or None for "the connection fails")
        type Case<'a> = (
            &'a str,
            &'a CertKey,
            Option<&'a str>,
            bool,
            &'a Ca,
            Option<&'a CertKey>,
            Option<Option<Identity>>,
        );
        let cases: Vec<Case> = vec![
            (
                "optional: right client cert",
                &server_cert,
                Some(ca.cert_pem()),
                false,
                &ca,
                Some(&admin),
                Some(Some(admin_identity.clone())),
            ),
            (
                "optional: no client cert",
                &server_cert,
                Some(ca.cert_pem()),
                false,
                &ca,
                None,
                Some(None),
            ),
            (
                "optional: other CA's client cert",
                &server_cert,
                Some(ca.cert_pem()),
                false,
                &ca,
                Some(&stranger),
                None,
            ),
            (
                "required: no client cert",
                &peer,
                Some(ca.cert_pem()),
                true,
                &ca,
                None,
                None,
            ),
            (
                "required: peer cert",
                &peer,
                Some(ca.cert_pem()),
                true,
                &ca,
                Some(&peer),
                Some(Some(peer_identity)),
            ),
            (
                "required: other CA's client cert",
                &peer,
                Some(ca.cert_pem()),
                true,
                &ca,
                Some(&stranger),
                None,
            ),
            (
                "required: serverAuth-only cert as client cert",
                &peer,
                Some(ca.cert_pem()),
                true,
                &ca,
                Some(&server_cert),
                None,
            ),
            (
                "no client auth: client cert not asked for",
                &server_cert,
                None,
                false,
                &ca,
                Some(&admin),
                Some(None),
            ),
            (
                "client trusts another CA",
                &server_cert,
                None,
                false,
                &other,
                None,
                None,
            ),
        ];
        for (name, server_cert, client_ca, require, trusted, client_cert, want) in cases {
            let server =
                server_config(server_cert, client_ca, require, &[b"h2", b"http/1.1"]).unwrap();
            let client = client_config(trusted.cert_pem(), client_cert, &[b"h2"]).unwrap();
            let outcome = connect(server, client).await;
            match want {
                Some(identity) => {
                    assert!(
                        outcome.ok(),
                        "{name}: server {:?} client {:?}",
                        outcome.server,
                        outcome.client
                    );
                    assert_eq!(outcome.server.unwrap(), identity, "{name}");
                    assert_eq!(
                        outcome.client.unwrap().as_deref(),
                        Some(&b"h2"[..]),
                        "{name}"
                    );
                }
                None => assert!(!outcome.ok(), "{name}: connection unexpectedly succeeded"),
            }
        }
    }

    #[test]
    fn configs_and_the_ca_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Ca>();
        send_sync::<CertKey>();
        send_sync::<Arc<ServerConfig>>();
        send_sync::<crate::TokenFile>();
    }

    #[test]
    fn requiring_client_certs_without_a_ca_is_an_error() {
        let ca = Ca::generate("test-ca").unwrap();
        let cert = ca.issue_server("s", &[], &[]).unwrap();
        assert!(matches!(
            server_config(&cert, None, true, &[]),
            Err(Error::RequireWithoutCa)
        ));
    }

    #[test]
    fn garbage_pem_is_an_error_naming_what_was_parsed() {
        let err = client_config("not a pem", None, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster CA"), "{err}");
        let bad = CertKey {
            cert_pem: "nothing".into(),
            key_pem: "nothing".into(),
        };
        let err = server_config(&bad, None, false, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server certificate"), "{err}");
    }
}
