//! Syntax checks for names, label keys and values, env var names, config keys and port
//! names, with Kubernetes' exact messages (the `IsDNS1123Label` family of
//! k8s.io/apimachinery/pkg/util/validation).
//!
//! Each check returns the list of problems, empty when the value is valid; the apiserver
//! turns them into `Invalid` causes on the offending field.

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const LABEL_VALUE_MAX: usize = 63;
const QUALIFIED_NAME_MAX: usize = 63;
const CONFIG_KEY_MAX: usize = 253;
const IANA_SVC_NAME_MAX: usize = 15;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const ENV_VAR_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_dns1123_label_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_lower_alnum(b[0] as char)
        && is_lower_alnum(b[b.len() - 1] as char)
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
}

/// `IsDNS1123Label`: Namespace names, container and volume names.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len(DNS1123_LABEL_MAX));
    }
    if !is_dns1123_label_syntax(s) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// `IsDNS1123Subdomain`: most object names.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len(DNS1123_SUBDOMAIN_MAX));
    }
    if !s.split('.').all(is_dns1123_label_syntax) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// `IsDNS1035Label`: Service names (they become DNS names and env var prefixes).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len(DNS1123_LABEL_MAX));
    }
    let starts_alpha = s.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts_alpha || !is_dns1123_label_syntax(s) {
        errs.push(DNS1035_LABEL_MSG.to_string());
    }
    errs
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `IsQualifiedName`: label and annotation keys, `[prefix/]name`.
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )]
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!("name part {}", max_len(QUALIFIED_NAME_MAX)));
    }
    if !name.is_empty() && !is_qualified_name_part(name) {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errs
}

/// `IsValidLabelValue`.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > LABEL_VALUE_MAX {
        errs.push(max_len(LABEL_VALUE_MAX));
    }
    if !s.is_empty() && !is_qualified_name_part(s) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// `IsEnvVarName`.
pub fn env_var_name(s: &str) -> Vec<String> {
    let ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_'))
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    let mut errs = Vec::new();
    if !ok {
        errs.push(ENV_VAR_MSG.to_string());
    }
    errs.extend(dot_names(s));
    errs
}

fn dot_names(s: &str) -> Vec<String> {
    match s {
        "." => vec!["must not be '.'".to_string()],
        ".." => vec!["must not be '..'".to_string()],
        _ if s.starts_with("..") => vec!["must not start with '..'".to_string()],
        _ => Vec::new(),
    }
}

/// `IsConfigMapKey`: keys of ConfigMap and Secret `data`.
pub fn config_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > CONFIG_KEY_MAX {
        errs.push(max_len(CONFIG_KEY_MAX));
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        errs.push(CONFIG_KEY_MSG.to_string());
    }
    errs.extend(dot_names(s));
    errs
}

/// `IsValidPortName`: IANA service names used for named ports.
pub fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > IANA_SVC_NAME_MAX {
        errs.push(max_len(IANA_SVC_NAME_MAX));
    }
    if !s.chars().all(|c| is_lower_alnum(c) || c == '-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_kubernetes() {
        let long64 = "a".repeat(64);
        type Validator = fn(&str) -> Vec<String>;
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
            assert_eq!(
                check(input).is_empty(),
                *ok,
                "{input:?}: {:?}",
                check(input)
            );
        }
    }

    #[test]
    fn name_checks() {
        type Check = fn(&str) -> Vec<String>;
        let cases: &[(&str, Check, &str, bool)] = &[
            ("label ok", dns1123_label, "my-name", true),
            ("label digits first ok", dns1123_label, "123-abc", true),
            ("label upper case", dns1123_label, "Foo", false),
            ("label dot", dns1123_label, "a.b", false),
            ("label trailing dash", dns1123_label, "a-", false),
            ("label empty", dns1123_label, "", false),
            ("label too long", dns1123_label, &"a".repeat(64), false),
            ("subdomain ok", dns1123_subdomain, "example.com", true),
            ("subdomain empty segment", dns1123_subdomain, "a..b", false),
            ("subdomain underscore", dns1123_subdomain, "a_b", false),
            ("1035 ok", dns1035_label, "web", true),
            ("1035 digit first", dns1035_label, "1web", false),
            ("key ok", qualified_name, "app", true),
            (
                "key with prefix ok",
                qualified_name,
                "app.kubernetes.io/name",
                true,
            ),
            ("key upper ok", qualified_name, "MyName", true),
            ("key two slashes", qualified_name, "a/b/c", false),
            ("key empty name", qualified_name, "example.com/", false),
            ("key bad prefix", qualified_name, "Example.com/a", false),
            ("key space", qualified_name, "a b", false),
            ("value empty ok", label_value, "", true),
            ("value ok", label_value, "v1.2_3-x", true),
            ("value slash", label_value, "a/b", false),
            ("value too long", label_value, &"a".repeat(64), false),
            ("env ok", env_var_name, "MY_ENV.NAME", true),
            ("env digit first", env_var_name, "1A", false),
            ("env space", env_var_name, "A B", false),
            ("config key ok", config_key, "key.name", true),
            ("config key dotdot", config_key, "..a", false),
            ("config key slash", config_key, "a/b", false),
            ("port name ok", port_name, "http", true),
            ("port name digits only", port_name, "123", false),
            ("port name too long", port_name, "abcdefghijklmnop", false),
        ];
        for (name, check, input, ok) in cases {
            let errs = check(input);
            assert_eq!(errs.is_empty(), *ok, "{name}: {errs:?}");
        }
    }

    #[test]
    fn subdomain_message_matches_kubernetes() {
        assert_eq!(
            dns1123_subdomain("Foo"),
            vec![DNS1123_SUBDOMAIN_MSG.to_string()]
        );
        assert!(DNS1123_SUBDOMAIN_MSG.starts_with("a lowercase RFC 1123 subdomain must consist of"));
    }
}
