//! X.509 subjects with repeated attributes (one `O=` per group), which rcgen cannot express.
//!
//! rcgen's `DistinguishedName` keeps one value per attribute type, but Kubernetes reads a
//! client's groups from *every* Organization attribute of the subject. So client
//! certificates are issued by rcgen with a CN-only subject, and the subject is then
//! replaced in the to-be-signed bytes and the certificate re-signed with the CA key.

use rcgen::SigningKey;

/// OID 2.5.4.3 (commonName), DER-encoded.
const OID_COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
/// OID 2.5.4.10 (organizationName), DER-encoded.
const OID_ORGANIZATION: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0a];

const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_BIT_STRING: u8 = 0x03;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot parse the certificate rcgen produced: {0}")]
    Parse(String),
    #[error("signing the certificate with the CA key: {0}")]
    Sign(#[from] rcgen::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// DER of a Name: one RDN per organization (in order), then the common name, as
/// `openssl req -subj "/O=system:masters/CN=kubernetes-admin"` produces.
pub fn encode_subject(common_name: &str, organizations: &[String]) -> Vec<u8> {
    let mut rdns = Vec::new();
    for org in organizations {
        rdns.extend(rdn(OID_ORGANIZATION, org));
    }
    rdns.extend(rdn(OID_COMMON_NAME, common_name));
    tlv(TAG_SEQUENCE, &rdns)
}

fn rdn(oid: &[u8], value: &str) -> Vec<u8> {
    let mut attr = oid.to_vec();
    attr.extend(tlv(TAG_UTF8_STRING, value.as_bytes()));
    tlv(TAG_SET, &tlv(TAG_SEQUENCE, &attr))
}

/// Returns `cert_der` with its subject replaced by `subject_der`, re-signed by `signer`
/// (which must be the key that signed `cert_der`: the signature algorithm is kept).
pub fn replace_subject(
    cert_der: &[u8],
    subject_der: &[u8],
    signer: &impl SigningKey,
) -> Result<Vec<u8>> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| Error::Parse(e.to_string()))?;
    let tbs: &[u8] = cert.tbs_certificate.as_ref();
    let subject = cert.subject().as_raw();
    let tbs_start = offset_in(cert_der, tbs)?;
    let subject_start = offset_in(tbs, subject)?;

    // The TBS is SEQUENCE { version, serial, signature, issuer, validity, subject, ... }:
    // keep every field around the subject as is, and re-wrap with the new length.
    let tbs_header = header_len(tbs)?;
    let mut tbs_content = tbs[tbs_header..subject_start].to_vec();
    tbs_content.extend_from_slice(subject_der);
    tbs_content.extend_from_slice(&tbs[subject_start + subject.len()..]);
    let new_tbs = tlv(TAG_SEQUENCE, &tbs_content);

    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }.
    let after_tbs = &cert_der[tbs_start + tbs.len()..];
    let algorithm = &after_tbs[..tlv_len(after_tbs)?];

    let signature = signer.sign(&new_tbs)?;
    let mut bits = vec![0u8]; // no unused bits
    bits.extend(signature);

    let mut content = new_tbs;
    content.extend_from_slice(algorithm);
    content.extend(tlv(TAG_BIT_STRING, &bits));
    Ok(tlv(TAG_SEQUENCE, &content))
}

/// Where `inner` (a sub-slice borrowed from `outer`) starts within `outer`.
fn offset_in(outer: &[u8], inner: &[u8]) -> Result<usize> {
    let start = (inner.as_ptr() as usize)
        .checked_sub(outer.as_ptr() as usize)
        .filter(|start| start + inner.len() <= outer.len())
        .ok_or_else(|| Error::Parse("field outside its parent".into()))?;
    Ok(start)
}

/// Length of the tag and length octets of the DER value at the start of `der`.
fn header_len(der: &[u8]) -> Result<usize> {
    Ok(tlv_parts(der)?.0)
}

/// Total length (header and content) of the DER value at the start of `der`.
fn tlv_len(der: &[u8]) -> Result<usize> {
    let (header, content) = tlv_parts(der)?;
    let total = header + content;
    if total > der.len() {
        return Err(Error::Parse("truncated DER value".into()));
    }
    Ok(total)
}

fn tlv_parts(der: &[u8]) -> Result<(usize, usize)> {
    let truncated = || Error::Parse("truncated DER header".into());
    let first = *der.get(1).ok_or_else(truncated)?;
    if first < 0x80 {
        return Ok((2, usize::from(first)));
    }
    let octets = usize::from(first & 0x7f);
    if octets == 0 || octets > std::mem::size_of::<usize>() {
        return Err(Error::Parse("unsupported DER length".into()));
    }
    let bytes = der.get(2..2 + octets).ok_or_else(truncated)?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Ok((2 + octets, len))
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_short_and_long_form() {
        let cases: [(usize, &[u8]); 4] = [
            (0, &[0x04, 0x00]),
            (127, &[0x04, 0x7f]),
            (128, &[0x04, 0x81, 0x80]),
            (300, &[0x04, 0x82, 0x01, 0x2c]),
        ];
        for (len, want_header) in cases {
            let der = tlv(0x04, &vec![0xaa; len]);
            assert_eq!(&der[..want_header.len()], want_header, "len {len}");
            assert_eq!(tlv_len(&der).unwrap(), der.len(), "len {len}");
        }
    }

    #[test]
    fn encoded_subject_parses_back_with_every_organization() {
        let der = encode_subject("alice", &["dev".into(), "ops".into()]);
        use x509_parser::prelude::FromDer;
        let (rest, name) = x509_parser::x509::X509Name::from_der(&der).unwrap();
        assert!(rest.is_empty());
        let orgs: Vec<_> = name
            .iter_organization()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(orgs, ["dev", "ops"]);
        let cn: Vec<_> = name
            .iter_common_name()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["alice"]);
    }

    #[test]
    fn truncated_der_is_an_error_not_a_panic() {
        for der in [&[][..], &[0x30], &[0x30, 0x82, 0x01], &[0x30, 0x05, 0x00]] {
            assert!(tlv_len(der).is_err(), "{der:?}");
        }
    }
}
