//! Syntax checks for names, label keys and label values, with Kubernetes' messages.
//!
//! Each check returns `Err(message)` describing what is wrong and what is allowed; the
//! apiserver turns messages into `Invalid` causes on the offending field.

/// Result of one syntax check: `Err` holds a human-readable message.
pub type Check = Result<(), String>;

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
}

/// A DNS label (RFC 1123): namespaces, node-local names, container and port names.
pub fn dns1123_label(s: &str) -> Check {
    if s.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_dns1123_label(s) {
        return Err(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric \
             characters or '-', and must start and end with an alphanumeric character \
             (e.g. 'my-name', or '123-abc')"
                .into(),
        );
    }
    Ok(())
}

/// A DNS subdomain (RFC 1123): most object names, label key prefixes.
pub fn dns1123_subdomain(s: &str) -> Check {
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if !s.split('.').all(is_dns1123_label) {
        return Err("a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an \
             alphanumeric character (e.g. 'example.com')"
            .into());
    }
    Ok(())
}

/// A DNS-1035 label (starts with a letter): Service names.
pub fn dns1035_label(s: &str) -> Check {
    if s.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_dns1123_label(s) || !s.as_bytes()[0].is_ascii_lowercase() {
        return Err(
            "a DNS-1035 label must consist of lower case alphanumeric characters \
             or '-', start with an alphabetic character, and end with an alphanumeric \
             character (e.g. 'my-name', or 'abc-123')"
                .into(),
        );
    }
    Ok(())
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, also accepting the empty string.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')))
}

/// `[prefix/]name`, as used by label and annotation keys, finalizers and condition types.
pub fn qualified_name(s: &str) -> Check {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if name.contains('/') {
        return Err(
            "a qualified name must consist of alphanumeric characters, '-', '_' or \
             '.', and must start and end with an alphanumeric character, with an optional \
             DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
                .into(),
        );
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        dns1123_subdomain(p).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > QUALIFIED_NAME_MAX {
        return Err(format!(
            "name part must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !is_name_part(name) {
        return Err(
            "name part must consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character (e.g. 'MyName', or \
             'my.name', or '123-abc')"
                .into(),
        );
    }
    Ok(())
}

/// A label value: empty, or up to 63 of `[-A-Za-z0-9_.]` starting and ending alphanumeric.
pub fn label_value(s: &str) -> Check {
    if s.len() > LABEL_VALUE_MAX {
        return Err(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !is_name_part(s) {
        return Err(
            "a valid label must be an empty string or consist of alphanumeric \
             characters, '-', '_' or '.', and must start and end with an alphanumeric \
             character (e.g. 'MyValue', or 'my_value', or '12345')"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_kubernetes() {
        let long64 = "a".repeat(64);
        type Validator = fn(&str) -> Check;
        let cases: &[(Validator, &str, bool)] = &[
            (dns1123_label, "web-1", true),
            (dns1123_label, "Web", false),
            (dns1123_label, "-web", false),
            (dns1123_label, "", false),
            (dns1123_label, &long64, false),
            (dns1123_subdomain, "my.app-1", true),
            (dns1123_subdomain, "my..app", false),
            (dns1123_subdomain, "app.", false),
            (dns1035_label, "web", true),
            (dns1035_label, "1web", false),
            (qualified_name, "app", true),
            (qualified_name, "app.kubernetes.io/name", true),
            (qualified_name, "Example_Key.1", true),
            (qualified_name, "/app", false),
            (qualified_name, "a/b/c", false),
            (qualified_name, "Bad.Prefix/x", false),
            (qualified_name, "app-", false),
            (qualified_name, "", false),
            (qualified_name, &long64, false),
            (label_value, "", true),
            (label_value, "v1.2_3-x", true),
            (label_value, "-x", false),
            (label_value, "a b", false),
            (label_value, &long64, false),
        ];
        for (check, input, ok) in cases {
            assert_eq!(check(input).is_ok(), *ok, "{input:?}: {:?}", check(input));
        }
    }
}
