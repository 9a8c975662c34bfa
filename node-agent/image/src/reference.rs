//! Image references parsed and normalized the way Docker does (`busybox` ->
//! `docker.io/library/busybox:latest`).

use std::fmt;

/// Docker Hub's canonical domain; `index.docker.io` is an alias of it.
pub const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid reference format {reference:?}: {reason}")]
    Invalid { reference: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port), e.g. `docker.io`, `localhost:5000`.
    pub domain: String,
    /// Repository path inside the registry, e.g. `library/busybox`.
    pub repository: String,
    /// Tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference pins a manifest digest.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(reference: &str) -> Result<Reference> {
        let invalid = |reason: &str| Error::Invalid {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.is_empty() {
            return Err(invalid(
                "the reference is empty; give a name like busybox or registry:5000/app:v1",
            ));
        }
        if reference.len() > 512 {
            return Err(invalid("the reference is longer than 512 characters"));
        }
        let (name_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => {
                validate_digest(d).map_err(|r| invalid(&r))?;
                (n, Some(d.to_string()))
            }
            None => (reference, None),
        };
        // The tag is after the last ':' that follows the last '/', so a registry port
        // (`localhost:5000/app`) is not mistaken for a tag.
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&name_tag[..i], Some(name_tag[i + 1..].to_string()))
            }
            None => (name_tag, None),
        };
        if let Some(tag) = &tag {
            validate_tag(tag).map_err(|r| invalid(&r))?;
        }
        let (domain, remainder) = split_domain(name);
        if domain.is_empty() {
            return Err(invalid("the registry host is empty"));
        }
        if domain == DOCKER_HUB && !name.contains('/') && is_hex64(remainder) {
            return Err(invalid(
                "cannot specify 64-byte hexadecimal strings as a repository name; use the image id instead",
            ));
        }
        if remainder.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        for component in remainder.split('/') {
            validate_path_component(component).map_err(|r| invalid(&r))?;
        }
        let repository = if domain == DOCKER_HUB && !remainder.contains('/') {
            format!("library/{remainder}")
        } else {
            remainder.to_string()
        };
        if domain.len() + 1 + repository.len() > 255 {
            return Err(invalid(
                "repository name must not be longer than 255 characters",
            ));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (tag, _) => tag,
        };
        Ok(Reference {
            domain,
            repository,
            tag,
            digest,
        })
    }

    /// `domain/repository` without tag or digest (Docker's "familiar name" fully qualified).
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.repository)
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Normalizes a reference like Docker: `busybox` -> `docker.io/library/busybox:latest`,
/// `localhost:5000/x` -> `localhost:5000/x:latest`, digests kept as `@sha256:<hex>`.
pub fn normalize(reference: &str) -> Result<String> {
    Ok(Reference::parse(reference)?.to_string())
}

/// Docker's rule: the first path component is a registry host when it has a '.' or a
/// ':' or is `localhost` (and is lowercase); otherwise the image is on Docker Hub.
fn split_domain(name: &str) -> (String, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if (first.contains('.') || first.contains(':') || first == "localhost")
                && first.to_lowercase() == first =>
        {
            let domain = if first == "index.docker.io" {
                DOCKER_HUB
            } else {
                first
            };
            (domain.to_string(), rest)
        }
        _ => (DOCKER_HUB.to_string(), name),
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256:<64 lowercase hex>`; other algorithms are not supported by the store.
pub(crate) fn validate_digest(d: &str) -> Result<(), String> {
    match d.split_once(':') {
        Some(("sha256", hex)) if is_hex64(hex) => Ok(()),
        Some(("sha256", _)) => Err(format!(
            "digest {d:?} must be sha256: followed by 64 lowercase hex characters"
        )),
        Some((alg, _)) => Err(format!(
            "digest algorithm {alg:?} is not supported; only sha256 is"
        )),
        None => Err(format!("digest {d:?} must look like sha256:<64 hex>")),
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1-128 of [A-Za-z0-9_.-] and not start with '.' or '-'"
        ))
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` (distribution/reference's path component).
fn validate_path_component(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "repository path component {c:?} must be lowercase letters and digits separated by '.', '_', '__' or '-'"
        ))
    };
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalize_table() {
        let dg = format!("busybox@{D}");
        let dg_want = format!("docker.io/library/busybox@{D}");
        let both = format!("localhost:5000/app:v1@{D}");
        let cases: Vec<(&str, &str)> = vec![
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/library/busybox:1",
                "docker.io/library/busybox:1",
            ),
            ("user/app", "docker.io/user/app:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("localhost:5000/x:v2", "localhost:5000/x:v2"),
            ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"),
            ("quay.io/coreos/etcd", "quay.io/coreos/etcd:latest"),
            (
                "gcr.io/google-samples/hello-app:1.0",
                "gcr.io/google-samples/hello-app:1.0",
            ),
            ("my_repo/a-b__c.d", "docker.io/my_repo/a-b__c.d:latest"),
            (&dg, &dg_want),
            (&both, &both),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn invalid_references_are_rejected_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("busybox:", "tag"),
            ("busybox:-x", "tag"),
            ("busybox@sha256:abc", "64 lowercase hex"),
            ("busybox@md5:abc", "not supported"),
            ("a//b", "path component"),
            ("-a", "path component"),
            ("a..b", "path component"),
            (
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "64-byte",
            ),
        ];
        for (input, want) in cases {
            let err = normalize(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn manifest_reference_prefers_the_digest() {
        let r = Reference::parse(&format!("localhost:5000/x:v1@{D}")).unwrap();
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.name(), "localhost:5000/x");
        assert_eq!(
            Reference::parse("x").unwrap().manifest_reference(),
            "latest"
        );
    }
}
