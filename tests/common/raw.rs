//! A raw HTTP server on 127.0.0.1 that writes exactly the bytes a script
//! says, one script per request, over plain TCP or TLS: for answers no real
//! server library would send (cut bodies, bad framing, stray bytes).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// One thing a raw server does after reading a request.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes as they are.
    Send(Vec<u8>),
    /// Do nothing for this long (a behaviour under test, such as closing a
    /// connection some time after answering).
    Wait(Duration),
}

/// What happens to the connection once a script's steps are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Close it.
    Close,
    /// Read the next request on it (keep-alive).
    ReadNext,
    /// Keep it open, sending nothing more, until the client goes away.
    Hold,
}

/// A server's answer to one request, byte for byte.
#[derive(Debug, Clone)]
pub struct Script {
    pub steps: Vec<Step>,
    pub then: Then,
}

impl Script {
    pub fn send(bytes: impl Into<Vec<u8>>, then: Then) -> Script {
        Script {
            steps: vec![Step::Send(bytes.into())],
            then,
        }
    }
}

/// Most connections one raw server accepts (bounds its accept loop), and
/// most requests it reads on one connection.
const MAX_CONNECTIONS: usize = 10_000;
/// Largest request head a raw server reads.
const MAX_HEAD: usize = 64 * 1024;
/// No connection is served longer than this.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(60);

/// Starts a raw server on 127.0.0.1:0 that answers every request with
/// `respond(path)`; runs on the test's runtime until the test ends.
pub async fn raw_server(respond: impl Fn(&str) -> Script + 'static) -> Url {
    start(None, respond).await.0
}

/// Every request head a raw server read, in order (request line and
/// headers as text), for tests whose subject is what the client sends.
pub type Heads = Rc<RefCell<Vec<String>>>;

/// `raw_server`, and the heads of the requests it has read.
pub async fn raw_server_recording(respond: impl Fn(&str) -> Script + 'static) -> (Url, Heads) {
    let heads = Heads::default();
    let url = start_recording(None, respond, heads.clone()).await.0;
    (url, heads)
}

/// `raw_server`, and the count of connections it has accepted.
pub async fn raw_server_counted(
    respond: impl Fn(&str) -> Script + 'static,
) -> (Url, Rc<Cell<usize>>) {
    start(None, respond).await
}

/// `raw_server` over TLS with `tls`: the URL is https.
pub async fn raw_tls_server(
    tls: Arc<rustls::ServerConfig>,
    respond: impl Fn(&str) -> Script + 'static,
) -> Url {
    start(Some(tokio_rustls::TlsAcceptor::from(tls)), respond)
        .await
        .0
}

async fn start(
    tls: Option<tokio_rustls::TlsAcceptor>,
    respond: impl Fn(&str) -> Script + 'static,
) -> (Url, Rc<Cell<usize>>) {
    start_recording(tls, respond, Heads::default()).await
}

async fn start_recording(
    tls: Option<tokio_rustls::TlsAcceptor>,
    respond: impl Fn(&str) -> Script + 'static,
    heads: Heads,
) -> (Url, Rc<Cell<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let respond = Rc::new(respond);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let accepted = Rc::new(Cell::new(0));
    let count = accepted.clone();
    actix_rt::spawn(async move {
        for _ in 0..MAX_CONNECTIONS {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.set(count.get() + 1);
            let respond = respond.clone();
            let tls = tls.clone();
            let heads = heads.clone();
            actix_rt::spawn(async move {
                let _ = actix_rt::time::timeout(CONNECTION_DEADLINE, async move {
                    match tls {
                        None => serve_connection(stream, respond.as_ref(), &heads).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_connection(stream, respond.as_ref(), &heads).await;
                            }
                        }
                    }
                })
                .await;
            });
        }
    });
    (format!("{scheme}://{addr}/").parse().unwrap(), accepted)
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    respond: &dyn Fn(&str) -> Script,
    heads: &Heads,
) {
    let mut buf = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let Some(head) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let Some(path) = head.split_whitespace().nth(1).map(str::to_owned) else {
            return;
        };
        heads.borrow_mut().push(head);
        let script = respond(&path);
        for step in &script.steps {
            match step {
                Step::Send(bytes) => {
                    if stream.write_all(bytes).await.is_err() || stream.flush().await.is_err() {
                        return;
                    }
                }
                Step::Wait(d) => actix_rt::time::sleep(*d).await,
            }
        }
        match script.then {
            Then::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            Then::ReadNext => {}
            Then::Hold => {
                // Until the client closes (it reads nothing more from us).
                let mut sink = [0u8; 1024];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        }
    }
}

/// Reads one request head (GETs have no body); returns it, or None when
/// the client closed or sent something too large.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
