//! Who a client is: the user and groups of a verified client certificate.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("client certificate is not valid X.509: {0}")]
    Parse(String),
    #[error("client certificate subject has no common name; the CN is the user name")]
    NoCommonName,
    #[error("client certificate subject {field} is not a string: {reason}")]
    BadAttribute { field: &'static str, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An authenticated user, as Kubernetes' `user.Info` without uid and extras.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// The identity in a leaf certificate (DER) that the TLS layer has already verified:
/// user = the subject's CN, groups = every O, in order (Kubernetes' x509 authenticator).
///
/// This does not verify anything; call it only on a chain rustls accepted.
pub fn identity_from_cert(der: &[u8]) -> Result<Identity> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| Error::Parse(e.to_string()))?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()
        .ok_or(Error::NoCommonName)?
        .as_str()
        .map_err(|e| Error::BadAttribute {
            field: "CN",
            reason: e.to_string(),
        })?
        .to_string();
    if user.is_empty() {
        return Err(Error::NoCommonName);
    }
    let groups = subject
        .iter_organization()
        .map(|o| {
            o.as_str()
                .map(str::to_string)
                .map_err(|e| Error::BadAttribute {
                    field: "O",
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Identity { user, groups })
}

/// The identity of a TLS client from rustls' `peer_certificates()` (leaf first), after
/// rustls verified the chain: `Ok(None)` when the client sent no certificate (it may
/// still authenticate with a bearer token).
pub fn identity_from_peer_certificates(
    certs: Option<&[rustls_pki_types::CertificateDer<'_>]>,
) -> Result<Option<Identity>> {
    match certs {
        Some([leaf, ..]) => identity_from_cert(leaf).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Ca;

    fn der(pem: &str) -> Vec<u8> {
        crate::tls::parse_certs(pem, "test").unwrap()[0].to_vec()
    }

    #[test]
    fn identity_is_cn_and_organizations_in_order() {
        let ca = Ca::generate("tug-ca").unwrap();
        let cert = ca
            .issue_client("jane", &["b".to_string(), "a".to_string()])
            .unwrap();
        let id = identity_from_cert(&der(&cert.cert_pem)).unwrap();
        assert_eq!(id.user, "jane");
        assert_eq!(id.groups, ["b", "a"]);
    }

    #[test]
    fn a_server_cert_yields_its_cn_and_no_groups() {
        let ca = Ca::generate("tug-ca").unwrap();
        let cert = ca.issue_server("tug-apiserver", &[], &[]).unwrap();
        let id = identity_from_cert(&der(&cert.cert_pem)).unwrap();
        assert_eq!(id.user, "tug-apiserver");
        assert!(id.groups.is_empty());
    }

    #[test]
    fn a_certificate_without_a_common_name_has_no_identity() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        let cert = params.self_signed(&key).unwrap();
        assert!(matches!(
            identity_from_cert(cert.der()),
            Err(Error::NoCommonName)
        ));
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(matches!(
            identity_from_cert(b"not der"),
            Err(Error::Parse(_))
        ));
    }
}
