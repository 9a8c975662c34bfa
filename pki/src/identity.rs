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
