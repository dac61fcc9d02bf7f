//! Raw HTTP/1.1 requests over loopback TCP, for tests whose subject is a
//! header a client library would set for them (`Host`, `Origin`) or a
//! request no client would send (a query larger than the server reads).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The bound of one exchange: connect, write, read to the server's close.
const LIMIT: Duration = Duration::from_secs(20);

/// An answer as it came: status, head and body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and headers, as text.
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// The body as JSON (panics, naming the answer, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", self.status, self.body))
    }

    /// A header's value (the first, by case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A request to send: method, target, and each header exactly as given
/// (no `Host` unless the test adds one).
#[derive(Debug, Clone)]
pub struct RawRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl RawRequest {
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
        }
    }

    /// `GET target` with `Host: <addr>`, as a client of `addr` sends it.
    pub fn get(addr: SocketAddr, target: &str) -> Self {
        Self::new("GET", target).header("Host", &addr.to_string())
    }

    /// `POST target` with `Host: <addr>` and no body.
    pub fn post(addr: SocketAddr, target: &str) -> Self {
        Self::new("POST", target).header("Host", &addr.to_string())
    }

    /// Adds a header, or replaces one of the same name.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends it to `addr` (on a blocking thread) and reads the answer to
    /// the server's close.
    pub async fn send(self, addr: SocketAddr) -> RawResponse {
        actix_rt::task::spawn_blocking(move || self.send_blocking(addr))
            .await
            .expect("the request thread ends")
    }

    /// As `send`, from a plain thread.
    pub fn send_blocking(&self, addr: SocketAddr) -> RawResponse {
        let mut text = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
        let mut stream = TcpStream::connect_timeout(&addr, LIMIT)
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_read_timeout(Some(LIMIT)).expect("a timeout");
        stream.set_write_timeout(Some(LIMIT)).expect("a timeout");
        // A server refusing a large head may answer and close before it is
        // all written: what it answered is still there to read.
        let _ = stream.write_all(text.as_bytes());
        let mut raw = Vec::new();
        if let Err(e) = stream.read_to_end(&mut raw) {
            assert!(
                !raw.is_empty(),
                "{} {}: no answer: {e}",
                self.method,
                self.target.len()
            );
        }
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP head in {raw:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        RawResponse {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }
}
