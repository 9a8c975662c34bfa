//! The client's error type: transport, decoding, and API errors carrying the server's `Status`.

use tug_proto::meta::v1::{reason, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::Error),
    /// The server answered with an error `Status` (404, 409, 422, ...).
    #[error("{}", display_status(.0))]
    Api(Box<Status>),
    #[error("{method} {url}: {source}")]
    Http {
        method: http::Method,
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading the response of {url}: {source}")]
    Body {
        url: String,
        #[source]
        source: hyper::Error,
    },
    #[error("cannot decode the response of {url}: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode the request body: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("invalid request {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: http::Error,
    },
    #[error("watch stream of {url} sent an invalid line: {source}")]
    WatchLine {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn display_status(s: &Status) -> String {
    let reason = s.reason.as_deref().unwrap_or("Unknown");
    let message = s.message.as_deref().unwrap_or("(no message)");
    // kubectl's wording, so users recognise it.
    format!("Error from server ({reason}): {message}")
}

impl Error {
    /// Builds an API error from a status code and a response body that may be a `Status`.
    pub(crate) fn from_response(code: u16, body: &[u8]) -> Self {
        let status = match serde_json::from_slice::<Status>(body) {
            Ok(s) if s.code.is_some() || s.reason.is_some() || s.message.is_some() => {
                let mut s = s;
                s.code.get_or_insert(i32::from(code));
                s
            }
            // Not a Status (a proxy's HTML page, plain text): keep the text as the message.
            _ => Status::failure(
                code,
                reason_for_code(code),
                String::from_utf8_lossy(body).trim().to_string(),
            ),
        };
        Error::Api(Box::new(status))
    }

    /// The server's `Status`, if this is an API error.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Api(s) => Some(s),
            _ => None,
        }
    }

    /// The HTTP status code of an API error.
    pub fn code(&self) -> Option<u16> {
        self.status()
            .and_then(|s| s.code)
            .and_then(|c| u16::try_from(c).ok())
    }

    fn is(&self, code: u16, reasons: &[&str]) -> bool {
        self.code() == Some(code)
            || self
                .status()
                .and_then(|s| s.reason.as_deref())
                .is_some_and(|r| reasons.contains(&r))
    }

    pub fn is_not_found(&self) -> bool {
        self.is(404, &[reason::NOT_FOUND])
    }

    pub fn is_already_exists(&self) -> bool {
        self.status()
            .and_then(|s| s.reason.as_deref())
            .is_some_and(|r| r == reason::ALREADY_EXISTS)
    }

    /// 409 Conflict: a stale resourceVersion on update.
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409) && !self.is_already_exists()
    }

    /// 410 Gone / Expired: the watch started before the compacted history; re-list.
    pub fn is_gone(&self) -> bool {
        self.is(410, &[reason::GONE, reason::EXPIRED])
    }

    pub fn is_invalid(&self) -> bool {
        self.is(422, &[reason::INVALID])
    }

    pub fn is_forbidden(&self) -> bool {
        self.is(403, &[reason::FORBIDDEN])
    }

    pub fn is_unauthorized(&self) -> bool {
        self.is(401, &[reason::UNAUTHORIZED])
    }
}

fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => reason::BAD_REQUEST,
        401 => reason::UNAUTHORIZED,
        403 => reason::FORBIDDEN,
        404 => reason::NOT_FOUND,
        405 => reason::METHOD_NOT_ALLOWED,
        409 => reason::CONFLICT,
        410 => reason::GONE,
        415 => reason::UNSUPPORTED_MEDIA_TYPE,
        422 => reason::INVALID,
        429 => reason::TOO_MANY_REQUESTS,
        503 => reason::SERVICE_UNAVAILABLE,
        504 => reason::TIMEOUT,
        _ => reason::INTERNAL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies_are_decoded_and_classified() {
        type Check = fn(&Error) -> bool;
        let cases: [(u16, &str, Check); 5] = [
            (
                404,
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" not found","reason":"NotFound","code":404}"#,
                Error::is_not_found,
            ),
            (
                409,
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"exists","reason":"AlreadyExists","code":409}"#,
                Error::is_already_exists,
            ),
            (
                409,
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"changed","reason":"Conflict","code":409}"#,
                Error::is_conflict,
            ),
            (
                410,
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old","reason":"Expired","code":410}"#,
                Error::is_gone,
            ),
            (422, "<html>nope</html>", Error::is_invalid),
        ];
        for (code, body, check) in cases {
            let e = Error::from_response(code, body.as_bytes());
            assert!(check(&e), "{code} {body}: {e:?}");
            assert_eq!(e.code(), Some(code));
        }
    }

    #[test]
    fn already_exists_is_not_a_conflict() {
        let e = Error::from_response(
            409,
            br#"{"status":"Failure","reason":"AlreadyExists","code":409,"message":"x"}"#,
        );
        assert!(!e.is_conflict());
    }

    #[test]
    fn api_errors_read_like_kubectl() {
        let e = Error::from_response(
            404,
            br#"{"message":"pods \"x\" not found","reason":"NotFound","code":404}"#,
        );
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): pods \"x\" not found"
        );
    }
}
