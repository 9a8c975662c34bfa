//! Static bearer tokens in Kubernetes' `--token-auth-file` CSV format, and token generation.
//!
//! One token per line: `token,user,uid[,"group1,group2"]`. Fields may be double-quoted
//! (a quote inside is doubled, as in CSV); blank lines and lines starting with `#` are
//! skipped. Unlike Kubernetes, which only logs them, empty and duplicate tokens are errors:
//! a silently ignored line in an authentication file is a trap.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::files;
use crate::identity::Identity;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("token file {source_name} line {line}: {reason}")]
    Line {
        source_name: String,
        line: usize,
        reason: String,
    },
    #[error("generating a random token: the system random source failed")]
    Random,
    #[error(transparent)]
    File(#[from] files::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One line of a token file.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub token: String,
    pub user: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEntry")
            .field("token", &"[redacted]")
            .field("user", &self.user)
            .field("uid", &self.uid)
            .field("groups", &self.groups)
            .finish()
    }
}

impl TokenEntry {
    /// The entry as one CSV line (with its newline), quoting fields that need it.
    pub fn to_csv_line(&self) -> String {
        let mut fields = vec![quote(&self.token), quote(&self.user), quote(&self.uid)];
        if !self.groups.is_empty() {
            fields.push(quote(&self.groups.join(",")));
        }
        let mut line = fields.join(",");
        line.push('\n');
        line
    }

    pub fn identity(&self) -> Identity {
        Identity {
            user: self.user.clone(),
            groups: self.groups.clone(),
        }
    }
}

fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) || field.starts_with(' ') {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// The tokens of a token file, looked up by token.
#[derive(Default, Clone)]
pub struct TokenFile {
    by_token: HashMap<String, TokenEntry>,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("tokens", &self.by_token.len())
            .finish()
    }
}

impl TokenFile {
    /// Reads and parses a token file; errors name the file and line.
    pub fn load(path: &Path) -> Result<TokenFile> {
        let text = files::read_to_string(path)?;
        Self::parse_named(&text, &path.display().to_string())
    }

    /// Parses token file text; errors name the line.
    pub fn parse(text: &str) -> Result<TokenFile> {
        Self::parse_named(text, "(text)")
    }

    fn parse_named(text: &str, source_name: &str) -> Result<TokenFile> {
        let mut by_token = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let err = |reason: String| Error::Line {
                source_name: source_name.to_string(),
                line,
                reason,
            };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields = split_csv_line(raw).map_err(|r| err(r.to_string()))?;
            if fields.len() < 3 {
                return Err(err(format!(
                    "need at least 3 columns (token,user,uid[,\"group1,group2\"]), found {}",
                    fields.len()
                )));
            }
            if fields.len() > 4 {
                return Err(err(format!(
                    "found {} columns; quote the groups column when it holds several groups: \"group1,group2\"",
                    fields.len()
                )));
            }
            let mut fields = fields.into_iter();
            let mut next = || fields.next().unwrap_or_default();
            let (token, user, uid, groups) = (next(), next(), next(), next());
            if token.is_empty() {
                return Err(err("token is empty".into()));
            }
            if user.is_empty() {
                return Err(err("user name is empty".into()));
            }
            let groups: Vec<String> = groups
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect();
            if by_token.contains_key(&token) {
                return Err(err(format!(
                    "duplicate token (user {user:?}); every token must be unique"
                )));
            }
            by_token.insert(
                token.clone(),
                TokenEntry {
                    token,
                    user,
                    uid,
                    groups,
                },
            );
        }
        Ok(TokenFile { by_token })
    }

    /// The identity a bearer token authenticates as, if any.
    pub fn lookup(&self, token: &str) -> Option<Identity> {
        self.by_token.get(token).map(TokenEntry::identity)
    }

    /// The full entry for a token (with its uid).
    pub fn entry(&self, token: &str) -> Option<&TokenEntry> {
        self.by_token.get(token)
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

/// Splits one CSV record: comma-separated, leading spaces trimmed (Kubernetes sets Go's
/// `TrimLeadingSpace`), fields optionally double-quoted with `""` for a quote.
fn split_csv_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') || chars.peek() == Some(&'\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field; close it with \""),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => {
                    return Err("unexpected text after a closing quote; put a comma after it")
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim_end().to_string());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err("bare \" inside an unquoted field; quote the whole field")
                    }
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim_end().to_string());
        }
    }
}

/// A new random bearer token: 32 bytes from the system's secure random source (via
/// rustls' ring provider), base64url without padding (43 characters, CSV-safe).
pub fn generate_token() -> Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(user: &str, groups: &[&str]) -> Identity {
        Identity {
            user: user.into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn lines_parse_like_kubernetes_token_auth_file() {
        let cases: [(&str, &str, Identity, &str); 7] = [
            ("plain", "t1,alice,u1", id("alice", &[]), "u1"),
            ("one group", "t1,alice,u1,dev", id("alice", &["dev"]), "u1"),
            (
                "quoted groups",
                "t1,alice,u1,\"dev,ops\"",
                id("alice", &["dev", "ops"]),
                "u1",
            ),
            (
                "leading spaces trimmed",
                "t1, alice, u1, \"system:masters, dev\"",
                id("alice", &["system:masters", "dev"]),
                "u1",
            ),
            (
                "quoted fields with an escaped quote",
                "\"t1\",\"al\"\"ice\",\"u,1\"",
                id("al\"ice", &[]),
                "u,1",
            ),
            ("empty uid", "t1,alice,", id("alice", &[]), ""),
            (
                "comment, blank line and CRLF",
                "# tokens\r\n\r\nt1,alice,u1,dev\r\n",
                id("alice", &["dev"]),
                "u1",
            ),
        ];
        for (name, text, want, uid) in cases {
            let file = TokenFile::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(file.len(), 1, "{name}");
            assert_eq!(file.lookup("t1"), Some(want), "{name}");
            assert_eq!(file.entry("t1").unwrap().uid, uid, "{name}");
            assert_eq!(file.lookup("t2"), None, "{name}");
        }
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        let cases = [
            (
                "too few columns",
                "t1,a,u\nt2,bob\n",
                2,
                "at least 3 columns",
            ),
            ("unquoted groups", "t1,a,u,dev,ops\n", 1, "quote the groups"),
            ("empty token", "# c\n\n,bob,u\n", 3, "token is empty"),
            ("empty user", "t1,,u\n", 1, "user name is empty"),
            ("duplicate", "t1,a,u\nt1,b,u\n", 2, "duplicate token"),
            ("unterminated quote", "t1,a,\"u\n", 1, "unterminated"),
            (
                "text after quote",
                "t1,\"a\"x,u\n",
                1,
                "after a closing quote",
            ),
            ("bare quote", "t1,a\"b,u\n", 1, "bare \""),
        ];
        for (name, text, line, want) in cases {
            match TokenFile::parse(text) {
                Err(Error::Line {
                    line: got, reason, ..
                }) => {
                    assert_eq!(got, line, "{name}: {reason}");
                    assert!(reason.contains(want), "{name}: {reason}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn load_names_the_file_and_entries_round_trip_through_csv() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        let entries = [
            TokenEntry {
                token: generate_token().unwrap(),
                user: "tug-admin".into(),
                uid: "tug-admin".into(),
                groups: vec!["system:masters".into(), "dev".into()],
            },
            TokenEntry {
                token: "x".into(),
                user: "we\"ird, user".into(),
                uid: " u".into(),
                groups: vec![],
            },
        ];
        let text: String = entries.iter().map(TokenEntry::to_csv_line).collect();
        crate::files::write_private(&path, text.as_bytes()).unwrap();
        let file = TokenFile::load(&path).unwrap();
        for entry in &entries {
            // Leading spaces are trimmed by the format unless quoted, which to_csv_line does.
            assert_eq!(file.entry(&entry.token), Some(entry));
        }

        std::fs::write(&path, "t,a\n").unwrap();
        let err = TokenFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("tokens.csv line 1"), "{err}");
    }

    #[test]
    fn generated_tokens_are_random_csv_safe_and_long() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn debug_output_never_shows_tokens() {
        let file = TokenFile::parse("secret-token,alice,u1\n").unwrap();
        assert!(!format!("{file:?}").contains("secret-token"));
        let entry = file.entry("secret-token").unwrap();
        assert!(!format!("{entry:?}").contains("secret-token"));
    }
}
