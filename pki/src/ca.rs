//! The cluster certificate authority and the serving, peer and client certificates it issues.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::{files, subject};

/// File names of the CA inside a PKI directory.
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";

/// The CA lives ten years, like kubeadm's.
pub const CA_VALIDITY_DAYS: u64 = 3650;
/// Leaf certificates live one year, like kubeadm's.
pub const LEAF_VALIDITY_DAYS: u64 = 365;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("generating {what}: {source}")]
    Generate { what: String, source: rcgen::Error },
    #[error("{what}: common name is empty; give a non-empty name")]
    EmptyCommonName { what: String },
    #[error("{what}: group {index} is empty; remove it or give it a name")]
    EmptyGroup { what: String, index: usize },
    #[error(
        "{what}: subject alternative name {name:?} is neither an IP address nor an ASCII DNS name"
    )]
    InvalidSan { what: String, name: String },
    #[error("CA certificate {what}: {reason}")]
    InvalidCaCert { what: String, reason: String },
    #[error(
        "CA key {what}: {reason}; expected a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)"
    )]
    InvalidCaKey { what: String, reason: String },
    #[error(
        "CA key {key} does not belong to CA certificate {cert}; use the key generated with it"
    )]
    KeyMismatch { cert: String, key: String },
    #[error(transparent)]
    Subject(#[from] subject::Error),
    #[error(transparent)]
    File(#[from] files::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys never reach logs.
        f.debug_struct("CertKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

impl CertKey {
    /// Writes `<dir>/<base_name>.crt` (0644) and `<dir>/<base_name>.key` (0600), creating
    /// `dir` if needed.
    pub fn save(&self, dir: &Path, base_name: &str) -> Result<()> {
        files::create_dir_all(dir)?;
        files::write_public(
            &dir.join(format!("{base_name}.crt")),
            self.cert_pem.as_bytes(),
        )?;
        files::write_private(
            &dir.join(format!("{base_name}.key")),
            self.key_pem.as_bytes(),
        )?;
        Ok(())
    }

    /// Reads `<dir>/<base_name>.crt` and `<dir>/<base_name>.key`.
    pub fn load(dir: &Path, base_name: &str) -> Result<CertKey> {
        Ok(CertKey {
            cert_pem: files::read_to_string(&dir.join(format!("{base_name}.crt")))?,
            key_pem: files::read_to_string(&dir.join(format!("{base_name}.key")))?,
        })
    }
}

/// A certificate authority able to issue certificates.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

impl Ca {
    /// A new self-signed CA (ECDSA P-256) valid for [`CA_VALIDITY_DAYS`].
    pub fn generate(common_name: &str) -> Result<Ca> {
        let what = format!("CA {common_name:?}");
        non_empty(common_name, &what)?;
        let gen = |source| Error::Generate {
            what: what.clone(),
            source,
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        set_validity(&mut params, CA_VALIDITY_DAYS);
        let key = KeyPair::generate().map_err(gen)?;
        let cert = params.self_signed(&key).map_err(gen)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A CA from its certificate and key PEM; checks that the certificate is a CA and that
    /// the key is its key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        Self::from_pem_named(cert_pem, key_pem, "(PEM)", "(PEM)")
    }

    /// Loads a CA from two PEM files (for example `ca.crt` and `ca.key`).
    pub fn load(cert_pem_path: &Path, key_pem_path: &Path) -> Result<Ca> {
        let cert_pem = files::read_to_string(cert_pem_path)?;
        let key_pem = files::read_to_string(key_pem_path)?;
        Self::from_pem_named(
            &cert_pem,
            &key_pem,
            &cert_pem_path.display().to_string(),
            &key_pem_path.display().to_string(),
        )
    }

    /// Loads `<dir>/ca.crt` and `<dir>/ca.key`.
    pub fn load_dir(dir: &Path) -> Result<Ca> {
        Self::load(&dir.join(CA_CERT_FILE), &dir.join(CA_KEY_FILE))
    }

    fn from_pem_named(
        cert_pem: &str,
        key_pem: &str,
        cert_what: &str,
        key_what: &str,
    ) -> Result<Ca> {
        let bad_cert = |reason: String| Error::InvalidCaCert {
            what: cert_what.to_string(),
            reason,
        };
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::InvalidCaKey {
            what: key_what.to_string(),
            reason: e.to_string(),
        })?;
        let der = crate::tls::parse_certs(cert_pem, cert_what)
            .map_err(|e| bad_cert(e.to_string()))?
            .into_iter()
            .next()
            .ok_or_else(|| bad_cert("no certificate".into()))?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| bad_cert(format!("not an X.509 certificate: {e}")))?;
        if !x509.is_ca() {
            return Err(bad_cert(
                "is not a CA (basicConstraints CA:TRUE is missing)".into(),
            ));
        }
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(Error::KeyMismatch {
                cert: cert_what.to_string(),
                key: key_what.to_string(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(|e| bad_cert(e.to_string()))?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
        })
    }

    /// Writes `<dir>/ca.crt` (0644) and `<dir>/ca.key` (0600), creating `dir` if needed.
    pub fn save(&self, dir: &Path) -> Result<()> {
        files::create_dir_all(dir)?;
        files::write_public(&dir.join(CA_CERT_FILE), self.cert_pem.as_bytes())?;
        files::write_private(&dir.join(CA_KEY_FILE), self.key_pem.as_bytes())?;
        Ok(())
    }

    /// The CA certificate, PEM: what clients and servers trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A serving certificate (serverAuth) for the API port. Its SANs are `localhost`,
    /// `127.0.0.1`, `::1` and everything passed.
    pub fn issue_server(
        &self,
        common_name: &str,
        dns: &[String],
        ips: &[IpAddr],
    ) -> Result<CertKey> {
        let what = format!("serving certificate {common_name:?}");
        let sans = sans(&what, dns, ips)?;
        self.issue(
            &what,
            common_name,
            sans,
            &[ExtendedKeyUsagePurpose::ServerAuth],
        )
    }

    /// A raft peer certificate: serverAuth and clientAuth, because each peer both accepts
    /// and opens mutually authenticated connections. SANs as in [`Ca::issue_server`].
    pub fn issue_peer(&self, common_name: &str, dns: &[String], ips: &[IpAddr]) -> Result<CertKey> {
        let what = format!("peer certificate {common_name:?}");
        let sans = sans(&what, dns, ips)?;
        self.issue(
            &what,
            common_name,
            sans,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A client certificate (clientAuth) for `user` (the CN) in `groups` (one O each), as
    /// the API server's x509 authenticator reads them.
    pub fn issue_client(&self, user: &str, groups: &[String]) -> Result<CertKey> {
        let what = format!("client certificate for user {user:?}");
        if let Some(index) = groups.iter().position(|g| g.is_empty()) {
            return Err(Error::EmptyGroup { what, index });
        }
        let mut issued = self.issue(
            &what,
            user,
            Vec::new(),
            &[ExtendedKeyUsagePurpose::ClientAuth],
        )?;
        if !groups.is_empty() {
            let der = crate::tls::parse_certs(&issued.cert_pem, &what)
                .ok()
                .and_then(|certs| certs.into_iter().next())
                .ok_or_else(|| subject::Error::Parse("no certificate in rcgen output".into()))?;
            let subject = subject::encode_subject(user, groups);
            let der = subject::replace_subject(&der, &subject, self.issuer.key())?;
            issued.cert_pem = pem_encode("CERTIFICATE", &der);
        }
        Ok(issued)
    }

    fn issue(
        &self,
        what: &str,
        common_name: &str,
        sans: Vec<SanType>,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> Result<CertKey> {
        non_empty(common_name, what)?;
        let gen = |source| Error::Generate {
            what: what.to_string(),
            source,
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages.to_vec();
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, LEAF_VALIDITY_DAYS);
        let key = KeyPair::generate().map_err(gen)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(gen)?;
        Ok(CertKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn non_empty(common_name: &str, what: &str) -> Result<()> {
    if common_name.trim().is_empty() {
        return Err(Error::EmptyCommonName {
            what: what.to_string(),
        });
    }
    Ok(())
}

/// Valid from yesterday (so a peer whose clock is a little behind accepts it) for `days`.
fn set_validity(params: &mut CertificateParams, days: u64) {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    // rcgen takes `time` dates; build them from calendar fields rather than adding `time`.
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    params.not_before = ymd(today - chrono::Days::new(1));
    params.not_after = ymd(today + chrono::Days::new(days));
}

/// localhost and the loopback addresses first, then the caller's names, without
/// duplicates. A "DNS name" that parses as an IP address becomes an IP SAN.
fn sans(what: &str, dns: &[String], ips: &[IpAddr]) -> Result<Vec<SanType>> {
    let mut out: Vec<SanType> = Vec::new();
    let mut push = |san: SanType| {
        if !out.contains(&san) {
            out.push(san);
        }
    };
    let dns_san = |name: &str| -> Result<SanType> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(SanType::IpAddress(ip));
        }
        let invalid = || Error::InvalidSan {
            what: what.to_string(),
            name: name.to_string(),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(invalid());
        }
        Ok(SanType::DnsName(name.try_into().map_err(|_| invalid())?))
    };
    push(dns_san("localhost")?);
    push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    for name in dns {
        push(dns_san(name)?);
    }
    for ip in ips {
        push(SanType::IpAddress(*ip));
    }
    Ok(out)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
