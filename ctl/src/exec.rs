//! `tug exec [-i] [-t] POD [-c C] -- CMD...`: a command in a container, over a WebSocket
//! to the apiserver's `pods/{name}/exec` (subprotocols `v5.channel.k8s.io`, then
//! `v4.channel.k8s.io`), which the apiserver splices to the node agent.
//!
//! Frames carry a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status`, 4
//! terminal size; v5's 255 closes stdin. The remote exit code becomes tug's (kubectl's
//! `command terminated with exit code N`).
//!
//! Also here: [`Dialer`], one raw HTTP/1.1 TLS connection to the apiserver with the
//! kubeconfig's credentials, which `logs` uses too: the pooled [`tug_client::Client`]
//! negotiates HTTP/2, where WebSocket upgrades do not exist.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http::header::{HeaderValue, AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tug_client::{Config, LoadOptions};

use crate::logs::resolve;
use crate::{Cli, Ctx};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Run the command on a terminal (raw mode locally when stdin is one).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The container (default: the only one, or the `kubectl.kubernetes.io/default-container`).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The remote command ended with a non-zero exit code: tug exits with it.
#[derive(Debug, thiserror::Error)]
#[error("command terminated with exit code {0}")]
pub struct RemoteExit(pub i32);

/// One raw HTTPS connection per request to the kubeconfig's server.
pub struct Dialer {
    config: Config,
    tls: Arc<rustls::ClientConfig>,
    host: String,
    port: u16,
    /// The server URL's path prefix, without a trailing slash.
    base: String,
}

impl Dialer {
    pub fn from_cli(cli: &Cli) -> anyhow::Result<Self> {
        let config = Config::load(&LoadOptions {
            kubeconfig: cli.kubeconfig.clone(),
            context: cli.context.clone(),
        })
        .context("loading the kubeconfig")?;
        Self::new(config)
    }

    pub fn new(config: Config) -> anyhow::Result<Self> {
        if config.server.scheme_str() != Some("https") {
            anyhow::bail!(
                "logs and exec need an https:// server in the kubeconfig (got {})",
                config.server
            );
        }
        let mut tls = tug_client::tls::client_config(&config).context("building the TLS config")?;
        // HTTP/1.1 only: a WebSocket is an HTTP/1.1 upgrade.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let host = config
            .server
            .host()
            .context("the kubeconfig's server has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = config.server.port_u16().unwrap_or(443);
        let base = config.server.path().trim_end_matches('/').to_string();
        Ok(Dialer {
            config,
            tls: Arc::new(tls),
            host,
            port,
            base,
        })
    }

    async fn connect(&self) -> anyhow::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to {}:{}", self.host, self.port))?;
        let _ = tcp.set_nodelay(true);
        let name = self
            .config
            .tls_server_name
            .clone()
            .unwrap_or_else(|| self.host.clone());
        let name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|_| anyhow::anyhow!("{name:?} is not a valid TLS server name"))?;
        tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {}:{}", self.host, self.port))
    }

    fn auth(&self) -> Option<HeaderValue> {
        self.config
            .token
            .as_ref()
            .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok())
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// A streaming GET of `path` (with query).
    pub async fn get(&self, path: &str) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the apiserver")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = http::Request::get(format!("{}{path}", self.base))
            .header(http::header::HOST, self.authority())
            .header(http::header::ACCEPT, "*/*");
        if let Some(auth) = self.auth() {
            req = req.header(AUTHORIZATION, auth);
        }
        let req = req.body(Empty::<Bytes>::new())?;
        sender
            .send_request(req)
            .await
            .with_context(|| format!("GET {path}"))
    }

    /// Opens a WebSocket on `path`, offering v5 then v4; returns it and the chosen protocol.
    pub async fn websocket(
        &self,
        path: &str,
    ) -> anyhow::Result<(WebSocketStream<TlsStream<TcpStream>>, String)> {
        let stream = self.connect().await?;
        let url = format!("wss://{}{}{path}", self.authority(), self.base);
        let mut request = url.as_str().into_client_request()?;
        request.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"),
        );
        if let Some(auth) = self.auth() {
            request.headers_mut().insert(AUTHORIZATION, auth);
        }
        let (ws, resp) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => anyhow::anyhow!(
                    "{}",
                    api_error(
                        resp.status().as_u16(),
                        resp.body().as_deref().unwrap_or_default()
                    )
                ),
                e => anyhow::Error::new(e).context("opening the exec WebSocket"),
            })?;
        let protocol = resp
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok((ws, protocol))
    }
}

/// A failed response as kubectl shows it: `Error from server (Reason): message`.
pub fn api_error(code: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v["kind"] == "Status" || v["message"].is_string() => format!(
            "Error from server ({}): {}",
            v["reason"].as_str().unwrap_or("Unknown"),
            v["message"].as_str().unwrap_or("(no message)")
        ),
        _ => format!(
            "the server answered HTTP {code}: {}",
            String::from_utf8_lossy(body).trim()
        ),
    }
}

/// The exit code in a channel-3 `Status`, or the failure it reports.
pub fn exit_code(status: &Value) -> anyhow::Result<i32> {
    if status["status"] == "Success" {
        return Ok(0);
    }
    if status["reason"] == "NonZeroExitCode" {
        let code = status["details"]["causes"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["reason"] == "ExitCode"))
            .and_then(|c| c["message"].as_str())
            .and_then(|m| m.parse().ok());
        if let Some(code) = code {
            return Ok(code);
        }
    }
    anyhow::bail!(
        "{}",
        status["message"]
            .as_str()
            .unwrap_or("the command failed without a message")
    )
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut b = BytesMut::with_capacity(data.len() + 1);
    b.put_u8(channel);
    b.put_slice(data);
    Message::Binary(b.freeze())
}

fn query(args: &Args, container: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for c in &args.command {
        q.append_pair("command", c);
    }
    q.append_pair("container", container);
    q.append_pair("stdin", if args.stdin { "true" } else { "false" });
    q.append_pair("stdout", "true");
    // A terminal merges stderr into stdout.
    q.append_pair("stderr", if args.tty { "false" } else { "true" });
    q.append_pair("tty", if args.tty { "true" } else { "false" });
    q.finish()
}

/// Reads the process's stdin on a plain thread (a tokio blocking read would keep the
/// runtime, and so tug, alive after the command ended until the user pressed Enter).
fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

pub async fn run(ctx: &mut Ctx<'_>, cli: &Cli, args: &Args) -> anyhow::Result<bool> {
    let (pod, container) = resolve(ctx, &args.pod, args.container.as_deref()).await?;
    let dialer = Dialer::from_cli(cli)?;
    let stdin = args.stdin.then(stdin_chunks);
    let interactive_tty = args.tty && args.stdin && std::io::stdin().is_terminal();
    let raw = if interactive_tty {
        Some(term::RawMode::enable().context("putting the terminal in raw mode")?)
    } else {
        None
    };
    let code = session(ctx, &dialer, &pod, &container, args, stdin, interactive_tty).await;
    drop(raw);
    match code? {
        0 => Ok(true),
        n => Err(RemoteExit(n).into()),
    }
}

/// Runs one exec session; returns the remote exit code. `stdin` chunks end with the
/// channel closing (EOF); `resize` sends the local terminal's size (and its changes).
pub async fn session(
    ctx: &mut Ctx<'_>,
    dialer: &Dialer,
    pod: &str,
    container: &str,
    args: &Args,
    stdin: Option<mpsc::Receiver<Vec<u8>>>,
    resize: bool,
) -> anyhow::Result<i32> {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{pod}/exec?{}",
        ctx.namespace,
        query(args, container)
    );
    let (ws, protocol) = dialer.websocket(&path).await?;
    let v5 = protocol == V5;
    let (mut sink, mut incoming) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(16);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
    });
    if let Some(mut input) = stdin {
        let tx = tx.clone();
        tasks.spawn(async move {
            while let Some(chunk) = input.recv().await {
                if tx.send(frame(STDIN, &chunk)).await.is_err() {
                    return;
                }
            }
            if v5 {
                let _ = tx.send(frame(CLOSE, &[STDIN])).await;
            }
        });
    }
    if resize {
        let tx = tx.clone();
        tasks.spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut winch = signal(SignalKind::window_change()).ok();
            loop {
                if let Some((w, h)) = term::size() {
                    let size = serde_json::json!({"Width": w, "Height": h}).to_string();
                    if tx.send(frame(RESIZE, size.as_bytes())).await.is_err() {
                        return;
                    }
                }
                match &mut winch {
                    Some(s) => {
                        if s.recv().await.is_none() {
                            return;
                        }
                    }
                    None => return,
                }
            }
        });
    }
    drop(tx);
    let mut status: Option<Value> = None;
    while let Some(msg) = incoming.next().await {
        let data: Bytes = match msg {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Text(t)) => Bytes::copy_from_slice(t.as_bytes()),
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => {
                if status.is_some() {
                    break;
                }
                tasks.shutdown().await;
                return Err(anyhow::Error::new(e).context("the exec stream broke"));
            }
        };
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        match channel {
            STDOUT => {
                ctx.out.write_all(payload)?;
                ctx.out.flush()?;
            }
            STDERR => {
                ctx.err.write_all(payload)?;
                ctx.err.flush()?;
            }
            STATUS => {
                status = Some(
                    serde_json::from_slice(payload)
                        .context("the exec status message is not JSON")?,
                );
            }
            _ => {}
        }
    }
    tasks.shutdown().await;
    match status {
        Some(s) => exit_code(&s),
        None => {
            anyhow::bail!("the exec connection closed before the command's exit status arrived")
        }
    }
}

/// The local terminal: raw mode and size. The size needs an ioctl, which nix only
/// exposes as an unsafe function.
#[allow(unsafe_code)]
mod term {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

    nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::pty::Winsize);

    /// Columns and rows of the terminal on stdout (else stdin).
    pub fn size() -> Option<(u16, u16)> {
        for fd in [1, 0] {
            let mut ws = nix::pty::Winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCGWINSZ writes one `winsize` into `ws`, which lives for the call;
            // on a descriptor that is not a terminal it fails with ENOTTY and writes nothing.
            if unsafe { tiocgwinsz(fd, &mut ws) }.is_ok() && ws.ws_col > 0 {
                return Some((ws.ws_col, ws.ws_row));
            }
        }
        None
    }

    /// Raw mode on stdin until dropped.
    pub struct RawMode {
        saved: Termios,
    }

    impl RawMode {
        pub fn enable() -> nix::Result<RawMode> {
            let stdin = std::io::stdin();
            let saved = tcgetattr(&stdin)?;
            let mut raw = saved.clone();
            cfmakeraw(&mut raw);
            tcsetattr(&stdin, SetArg::TCSANOW, &raw)?;
            Ok(RawMode { saved })
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_messages_give_the_exit_code_or_the_failure() {
        assert_eq!(exit_code(&json!({"status": "Success"})).unwrap(), 0);
        let failed = json!({"status": "Failure", "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "42"}]}});
        assert_eq!(exit_code(&failed).unwrap(), 42);
        let err = exit_code(&json!({"status": "Failure", "message": "boom"})).unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }

    #[test]
    fn the_query_carries_the_command_in_order_and_no_stderr_with_a_tty() {
        let args = Args {
            stdin: true,
            tty: true,
            pod: "p".into(),
            container: None,
            command: vec!["sh".into(), "-c".into(), "echo a b".into()],
        };
        assert_eq!(
            query(&args, "c"),
            "command=sh&command=-c&command=echo+a+b&container=c&stdin=true&stdout=true&stderr=false&tty=true"
        );
    }

    #[test]
    fn errors_read_like_kubectls() {
        let body = br#"{"kind":"Status","reason":"BadRequest","message":"container x is not valid for pod p"}"#;
        assert_eq!(
            api_error(400, body),
            "Error from server (BadRequest): container x is not valid for pod p"
        );
        assert_eq!(
            api_error(502, b"bad gateway"),
            "the server answered HTTP 502: bad gateway"
        );
    }
}
