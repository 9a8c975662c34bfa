//! rustls client configuration (ring provider) from a [`Config`](crate::Config).

use crate::config::Config;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate-authority is not a valid PEM bundle: {0}")]
    CaPem(rustls::pki_types::pem::Error),
    #[error("certificate-authority contains no certificate")]
    NoCa,
    #[error("certificate-authority has a certificate rustls rejects: {0}")]
    BadCa(rustls::Error),
    #[error("client-certificate is not a valid PEM certificate: {0}")]
    CertPem(rustls::pki_types::pem::Error),
    #[error("client-key is not a valid PEM private key: {0}")]
    KeyPem(rustls::pki_types::pem::Error),
    #[error("https server but no certificate-authority in the kubeconfig cluster; add certificate-authority(-data) or insecure-skip-tls-verify: true")]
    NoTrust,
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls client config: trust the kubeconfig CA (or nothing, when insecure),
/// and present the client certificate if there is one.
pub fn client_config(config: &Config) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if config.insecure_skip_tls_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = &config.ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(cert.map_err(Error::CaPem)?)
                    .map_err(Error::BadCa)?;
            }
            if roots.is_empty() {
                return Err(Error::NoCa);
            }
        } else if config.server.scheme_str() == Some("https") {
            return Err(Error::NoTrust);
        }
        builder.with_root_certificates(roots)
    };
    Ok(match &config.identity {
        Some(id) => {
            let certs = CertificateDer::pem_slice_iter(&id.cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(Error::CertPem)?;
            let key = PrivateKeyDer::from_pem_slice(&id.key_pem).map_err(Error::KeyPem)?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    })
}

/// `insecure-skip-tls-verify: true`: accept any server certificate but still check the
/// handshake signatures, so the connection is at least encrypted to whoever answered.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_without_a_ca_is_refused_with_a_fix() {
        let c = Config::new("https://127.0.0.1:6443".parse().unwrap());
        let err = client_config(&c).unwrap_err().to_string();
        assert!(err.contains("certificate-authority"), "{err}");
    }

    #[test]
    fn garbage_ca_is_refused() {
        let mut c = Config::new("https://127.0.0.1:6443".parse().unwrap());
        c.ca_pem = Some(b"not a pem".to_vec());
        assert!(client_config(&c).is_err());
    }

    #[test]
    fn insecure_needs_no_ca() {
        let mut c = Config::new("https://127.0.0.1:6443".parse().unwrap());
        c.insecure_skip_tls_verify = true;
        client_config(&c).unwrap();
    }
}
