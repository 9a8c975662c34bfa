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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{identity_from_cert, Identity};
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::extensions::GeneralName;

    fn der(pem: &str) -> Vec<u8> {
        crate::tls::parse_certs(pem, "test").unwrap()[0].to_vec()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    /// Parses `pem`, checks it is signed by `ca` and hands it to `f`.
    fn with_cert<T>(
        ca: &Ca,
        pem: &str,
        f: impl FnOnce(&x509_parser::certificate::X509Certificate) -> T,
    ) -> T {
        let leaf = der(pem);
        let ca_der = der(ca.cert_pem());
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
        assert_eq!(cert.issuer(), ca_cert.subject());
        f(&cert)
    }

    fn sans(cert: &x509_parser::certificate::X509Certificate) -> Vec<String> {
        let ext = cert.subject_alternative_name().unwrap().unwrap();
        ext.value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string(),
                    _ => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string(),
                },
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn validity_days(cert: &x509_parser::certificate::X509Certificate) -> i64 {
        let v = cert.validity();
        (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400
    }

    #[test]
    fn generated_ca_is_a_ten_year_self_signed_ca() {
        let ca = Ca::generate("tug-ca").unwrap();
        let d = der(ca.cert_pem());
        let (_, cert) = x509_parser::parse_x509_certificate(&d).unwrap();
        assert!(cert.is_ca());
        assert_eq!(cert.subject(), cert.issuer());
        cert.verify_signature(None).unwrap();
        assert!(cert.validity().is_valid());
        // Valid from yesterday: one day more than the nominal lifetime.
        assert_eq!(validity_days(&cert), CA_VALIDITY_DAYS as i64 + 1);
    }

    #[test]
    fn server_cert_has_loopback_and_given_sans_and_only_server_auth() {
        let ca = Ca::generate("tug-ca").unwrap();
        let cert = ca
            .issue_server(
                "tug-apiserver",
                &strings(&["api.example", "localhost", "10.0.0.9"]),
                &["10.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            )
            .unwrap();
        with_cert(&ca, &cert.cert_pem, |c| {
            assert_eq!(
                sans(c),
                [
                    "localhost",
                    "127.0.0.1",
                    "::1",
                    "api.example",
                    "10.0.0.9",
                    "10.0.0.1"
                ]
            );
            let eku = c.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && !eku.client_auth);
            assert!(!c.is_ca());
            assert!(c.validity().is_valid());
            assert_eq!(validity_days(c), LEAF_VALIDITY_DAYS as i64 + 1);
        });
    }

    #[test]
    fn peer_cert_is_for_both_server_and_client_auth() {
        let ca = Ca::generate("tug-ca").unwrap();
        let cert = ca
            .issue_peer(
                "node-2",
                &strings(&["node-2"]),
                &["10.1.0.2".parse().unwrap()],
            )
            .unwrap();
        with_cert(&ca, &cert.cert_pem, |c| {
            let eku = c.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && eku.client_auth);
            assert!(sans(c).contains(&"10.1.0.2".to_string()));
            assert!(sans(c).contains(&"node-2".to_string()));
        });
    }

    #[test]
    fn client_cert_carries_user_and_every_group() {
        let ca = Ca::generate("tug-ca").unwrap();
        let cases: [(&str, &[&str]); 4] = [
            ("tug-admin", &["system:masters"]),
            ("alice", &[]),
            ("system:node:node-1", &["system:nodes", "dev", "ops team"]),
            ("ünïcode", &["grüppe"]),
        ];
        for (user, groups) in cases {
            let cert = ca.issue_client(user, &strings(groups)).unwrap();
            with_cert(&ca, &cert.cert_pem, |c| {
                let eku = c.extended_key_usage().unwrap().unwrap().value;
                assert!(eku.client_auth && !eku.server_auth, "{user}");
                assert!(c.validity().is_valid());
            });
            assert_eq!(
                identity_from_cert(&der(&cert.cert_pem)).unwrap(),
                Identity {
                    user: user.into(),
                    groups: strings(groups)
                },
                "{user}"
            );
        }
    }

    #[test]
    fn bad_names_are_errors_that_say_what_is_wrong() {
        let ca = Ca::generate("tug-ca").unwrap();
        let cases: Vec<(&str, Result<CertKey>, &str)> = vec![
            (
                "empty CN",
                ca.issue_server("", &[], &[]),
                "common name is empty",
            ),
            (
                "empty user",
                ca.issue_client(" ", &[]),
                "common name is empty",
            ),
            (
                "empty group",
                ca.issue_client("bob", &strings(&["a", ""])),
                "group 1 is empty",
            ),
            (
                "non-ASCII DNS",
                ca.issue_server("s", &strings(&["bäd.example"]), &[]),
                "bäd.example",
            ),
            (
                "DNS with spaces",
                ca.issue_peer("s", &strings(&["a b"]), &[]),
                "\"a b\"",
            ),
        ];
        for (name, result, want) in cases {
            let err = result.unwrap_err().to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
        assert!(Ca::generate("").is_err());
    }

    #[test]
    fn saved_ca_loads_back_and_issues_certs_it_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("tug-ca").unwrap();
        ca.save(dir.path()).unwrap();
        let mode = |f: &str| {
            std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(CA_KEY_FILE), 0o600);
        assert_eq!(mode(CA_CERT_FILE), 0o644);

        let loaded = Ca::load_dir(dir.path()).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        let cert = loaded.issue_client("bob", &strings(&["dev"])).unwrap();
        // Signed by the same key, and the issuer name matches the original CA's subject.
        with_cert(&ca, &cert.cert_pem, |_| ());
    }

    #[test]
    fn cert_key_saves_key_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("tug-ca").unwrap();
        let cert = ca.issue_client("bob", &[]).unwrap();
        let sub = dir.path().join("nested");
        cert.save(&sub, "bob").unwrap();
        let mode = std::fs::metadata(sub.join("bob.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(CertKey::load(&sub, "bob").unwrap(), cert);
        assert!(!format!("{cert:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn loading_a_ca_with_the_wrong_key_or_a_leaf_cert_fails() {
        let ca = Ca::generate("tug-ca").unwrap();
        let other = Ca::generate("other").unwrap();
        let leaf = ca.issue_server("s", &[], &[]).unwrap();

        let err = Ca::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
        assert!(matches!(err, Error::KeyMismatch { .. }), "{err}");
        let err = Ca::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
        assert!(err.to_string().contains("is not a CA"), "{err}");
        let err = Ca::from_pem(ca.cert_pem(), "garbage").unwrap_err();
        assert!(matches!(err, Error::InvalidCaKey { .. }), "{err}");
        let err = Ca::from_pem("garbage", ca.key_pem()).unwrap_err();
        assert!(matches!(err, Error::InvalidCaCert { .. }), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let err = Ca::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("ca.crt"), "{err}");
    }
}
