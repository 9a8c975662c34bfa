//! `Client`: one HTTP(S) connection pool to the apiserver, with authentication and
//! Status-aware error handling. Typed access goes through [`crate::Api`].

use crate::config::Config;
use crate::error::{Error, Result};
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

type HttpClient = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A cheap-to-clone handle to one apiserver.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    /// `scheme://authority` plus any path prefix, without a trailing slash.
    base: String,
    auth: Option<HeaderValue>,
    default_namespace: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .field("default_namespace", &self.inner.default_namespace)
            .finish()
    }
}

/// A request body with its content type.
pub struct Body {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Body {
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self> {
        Ok(Body {
            content_type: "application/json",
            bytes: serde_json::to_vec(value).map_err(Error::Encode)?,
        })
    }
}

impl Client {
    /// Builds a client for `config`: TLS from its CA and identity, bearer token if any.
    pub fn new(config: Config) -> Result<Self> {
        let tls = crate::tls::client_config(&config)?;
        let mut http = HttpConnector::new();
        // `enforce_http(false)` lets the TLS wrapper see https:// URLs.
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_keepalive(Some(Duration::from_secs(30)));
        http.set_nodelay(true);
        let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        if let Some(name) = &config.tls_server_name {
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|_| crate::config::Error::InvalidTlsServerName(name.clone()))?;
            builder =
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
        }
        let connector = builder.enable_http1().enable_http2().wrap_connector(http);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let auth = match &config.token {
            Some(token) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| crate::config::Error::InvalidToken)?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let base = config.server.to_string().trim_end_matches('/').to_string();
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                default_namespace: config.namespace,
            }),
        })
    }

    /// Loads the kubeconfig the usual way (`$KUBECONFIG`, `~/.kube/config`).
    pub fn infer() -> Result<Self> {
        Self::new(Config::infer()?)
    }

    /// The kubeconfig context's namespace (`default` if it has none).
    pub fn default_namespace(&self) -> &str {
        &self.inner.default_namespace
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        accept: Option<&str>,
        body: Option<Body>,
    ) -> Result<(http::StatusCode, hyper::body::Incoming, String)> {
        let url = format!("{}{}", self.inner.base, path_and_query);
        let mut req = Request::builder().method(method.clone()).uri(&url);
        req = req.header(ACCEPT, accept.unwrap_or("application/json"));
        if let Some(auth) = &self.inner.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let req = match body {
            Some(b) => req
                .header(CONTENT_TYPE, b.content_type)
                .body(Full::new(Bytes::from(b.bytes))),
            None => req.body(Full::new(Bytes::new())),
        }
        .map_err(|source| Error::Request {
            url: url.clone(),
            source,
        })?;
        tracing::trace!(%method, %url, "request");
        let resp = self
            .inner
            .http
            .request(req)
            .await
            .map_err(|source| Error::Http {
                method,
                url: url.clone(),
                source,
            })?;
        let status = resp.status();
        Ok((status, resp.into_body(), url))
    }

    /// Sends a request and returns the whole response body; non-2xx answers become
    /// [`Error::Api`] with the server's `Status`.
    pub async fn request_bytes(
        &self,
        method: Method,
        path_and_query: &str,
        accept: Option<&str>,
        body: Option<Body>,
    ) -> Result<Bytes> {
        let (status, incoming, url) = self.send(method, path_and_query, accept, body).await?;
        let bytes = incoming
            .collect()
            .await
            .map_err(|source| Error::Body {
                url: url.clone(),
                source,
            })?
            .to_bytes();
        if !status.is_success() {
            return Err(Error::from_response(status.as_u16(), &bytes));
        }
        Ok(bytes)
    }

    /// Sends a request and decodes the JSON answer.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Body>,
    ) -> Result<T> {
        let bytes = self
            .request_bytes(method, path_and_query, None, body)
            .await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            url: format!("{}{}", self.inner.base, path_and_query),
            source,
        })
    }

    /// GET of any path (discovery, `/version`, Table requests) with an optional `Accept`.
    pub async fn raw_get(&self, path_and_query: &str, accept: Option<&str>) -> Result<Bytes> {
        self.request_bytes(Method::GET, path_and_query, accept, None)
            .await
    }

    /// Opens a streaming GET (a watch) and yields one item per non-empty line.
    pub async fn request_lines(
        &self,
        path_and_query: &str,
        accept: Option<&str>,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let (status, incoming, url) = self.send(Method::GET, path_and_query, accept, None).await?;
        if !status.is_success() {
            let bytes = incoming
                .collect()
                .await
                .map_err(|source| Error::Body {
                    url: url.clone(),
                    source,
                })?
                .to_bytes();
            return Err(Error::from_response(status.as_u16(), &bytes));
        }
        let frames = incoming.into_data_stream().map(move |r| {
            r.map_err(|source| Error::Body {
                url: url.clone(),
                source,
            })
        });
        Ok(lines(frames).boxed())
    }
}

/// Splits a byte stream into lines (without the newline), dropping empty ones. A stream
/// error is yielded once and ends the stream: the connection is gone.
pub(crate) fn lines<S>(frames: S) -> impl Stream<Item = Result<Bytes>> + Send + 'static
where
    S: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
{
    futures::stream::unfold(
        (frames, BytesMut::new(), false),
        |(mut frames, mut buf, mut done)| async move {
            loop {
                if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line = buf.split_to(pos + 1).freeze().slice(..pos);
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some((Ok(line), (frames, buf, done)));
                }
                if done {
                    // A last line without its newline still counts.
                    if buf.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    let line = buf.split().freeze();
                    return Some((Ok(line), (frames, buf, done)));
                }
                match frames.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    Some(Err(e)) => return Some((Err(e), (frames, BytesMut::new(), true))),
                    None => done = true,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain-HTTP/1.1 server that answers from `respond(path, authorization)`.
    async fn http1_server(
        respond: fn(&str, Option<&str>) -> (u16, &'static str),
    ) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let auth = req
                                .headers()
                                .get(AUTHORIZATION)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let path = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            let (code, body) = respond(&path, auth.as_deref());
                            async move {
                                http::Response::builder()
                                    .status(code)
                                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (url, task)
    }

    #[tokio::test]
    async fn plain_http1_servers_work_and_the_token_is_sent() {
        let (url, server) = http1_server(|path, auth| match (path, auth) {
            (_, Some(a)) if a != "Bearer t0k" => (401, r#"{"kind":"Status","status":"Failure","reason":"Unauthorized","code":401,"message":"bad token"}"#),
            ("/version", _) => (200, r#"{"gitVersion":"v1.31.0"}"#),
            ("/api/v1/namespaces/default/pods?watch=true", _) => {
                (200, "{\"type\":\"ADDED\",\"object\":{}}\n{\"type\":\"DELETED\",\"object\":{}}\n")
            }
            _ => (404, "404 page not found"),
        })
        .await;
        let mut config = Config::new(url.parse().unwrap());
        config.token = Some("t0k".into());
        let client = Client::new(config.clone()).unwrap();
        let v: serde_json::Value = client.request(Method::GET, "/version", None).await.unwrap();
        assert_eq!(v["gitVersion"], "v1.31.0");

        let lines: Vec<Bytes> = client
            .request_lines("/api/v1/namespaces/default/pods?watch=true", None)
            .await
            .unwrap()
            .map(|l| l.unwrap())
            .collect()
            .await;
        assert_eq!(lines.len(), 2);

        // A non-Status error body is kept as the message.
        let err = client.raw_get("/nothing", None).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("404 page not found"), "{err}");

        config.token = Some("wrong".into());
        let err = Client::new(config)
            .unwrap()
            .raw_get("/version", None)
            .await
            .unwrap_err();
        assert!(err.is_unauthorized(), "{err}");
        server.abort();
    }

    #[tokio::test]
    async fn lines_are_reassembled_across_chunks_and_blank_lines_dropped() {
        let chunks: Vec<Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"{\"a\":1}\n{\"b\"")),
            Ok(Bytes::from_static(b":2}\n\n")),
            Ok(Bytes::from_static(b"{\"c\":3}")),
        ];
        let got: Vec<Bytes> = lines(futures::stream::iter(chunks))
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(
            got,
            vec![
                Bytes::from_static(b"{\"a\":1}"),
                Bytes::from_static(b"{\"b\":2}"),
                Bytes::from_static(b"{\"c\":3}")
            ]
        );
    }
}
