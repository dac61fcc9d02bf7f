//! Dialling: awc's connector service (`Dialer`) resolves the host,
//! connects TCP and, for an https source, does the rustls handshake itself,
//! each failing in its own way (a DNS failure, a refused connection, an
//! untrusted certificate: `TlsFailure`) so that `source` can say which. The
//! connection (`Wire`) is handed to awc wrapped in `Checked`, whose framing
//! is the parent module's; nothing here reads an answer.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_rt::net::{ActixStream, Ready, TcpStream};
use actix_service::Service;
use actix_tls::connect::rustls_0_23::reexports::AsyncTlsStream;
use actix_tls::connect::rustls_0_23::TlsConnector;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Checked;

/// awc's connector service: a TCP connection, TLS on it for an https
/// source, wrapped in a `Checked` stream.
#[derive(Clone)]
pub struct Dialer {
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The real port of an https source (awc is asked for `http://` URLs,
    /// whose default port would be 80).
    port: Option<u16>,
    /// Why no connection can be made (an https source without a TLS
    /// configuration): every connect fails saying so.
    refuse: Option<Arc<str>>,
}

impl Dialer {
    /// Plain TCP to whatever host and port a request names.
    pub fn plain() -> Self {
        Self {
            tls: None,
            port: None,
            refuse: None,
        }
    }

    /// A dialer whose every connect fails with `reason`.
    pub fn refusing(reason: &str) -> Self {
        Self {
            tls: None,
            port: None,
            refuse: Some(reason.into()),
        }
    }

    /// TLS with `config` to `port` of the host a request names.
    pub fn tls(config: Arc<rustls::ClientConfig>, port: u16) -> Self {
        Self {
            tls: Some(config),
            port: Some(port),
            refuse: None,
        }
    }
}

impl Service<ConnectInfo<Uri>> for Dialer {
    type Response = Connection<Uri, Checked<Wire>>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let tls = self.tls.clone();
        let port = self.port.unwrap_or_else(|| req.port());
        let refuse = self.refuse.clone();
        Box::pin(async move {
            if let Some(reason) = refuse {
                return Err(ConnectError::Io(io::Error::other(reason.to_string())));
            }
            let uri = req.request().clone();
            let host = req.hostname().trim_start_matches('[').trim_end_matches(']');
            // Resolving, connecting and the TLS handshake fail each in their
            // own way, so that `source` can say which (a DNS failure, a
            // refused connection, an untrusted certificate).
            let addrs: Vec<_> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| ConnectError::Resolver(Box::new(e)))?
                .collect();
            if addrs.is_empty() {
                return Err(ConnectError::NoRecords);
            }
            let tcp = TcpStream::connect(&addrs[..])
                .await
                .map_err(ConnectError::Io)?;
            // Requests are small and written whole: no reason to wait for
            // an acknowledgement before sending one.
            let _ = tcp.set_nodelay(true);
            let wire = match tls {
                None => Wire::Plain(tcp),
                Some(config) => {
                    let tls = TlsConnector::service(config)
                        .call(Connection::new(uri.clone(), tcp))
                        .await
                        .map_err(|e| ConnectError::Io(io::Error::other(TlsFailure(e))))?;
                    Wire::Tls(Box::new(tls.into_parts().0))
                }
            };
            Ok(Connection::new(uri, Checked::new(wire)))
        })
    }
}

/// The TLS handshake failed (an untrusted or expired certificate, a
/// protocol mismatch): the error under a connect error's `io::Error`.
#[derive(Debug)]
pub struct TlsFailure(pub io::Error);

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS handshake failed: {}", self.0)
    }
}

impl std::error::Error for TlsFailure {}

/// A connection as dialled: TCP, or TLS over TCP.
pub enum Wire {
    Plain(TcpStream),
    Tls(Box<AsyncTlsStream<TcpStream>>),
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wire::Plain(_) => "Wire::Plain",
            Wire::Tls(_) => "Wire::Tls",
        })
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_flush(cx),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl ActixStream for Wire {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        match self {
            Wire::Plain(s) => ActixStream::poll_read_ready(s, cx),
            Wire::Tls(s) => ActixStream::poll_read_ready(s.get_ref().0, cx),
        }
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        match self {
            Wire::Plain(s) => ActixStream::poll_write_ready(s, cx),
            Wire::Tls(s) => ActixStream::poll_write_ready(s.get_ref().0, cx),
        }
    }
}
