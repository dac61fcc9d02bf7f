//! The connections under awc: dials TCP (and, for an https source, does the
//! rustls handshake itself), then follows each HTTP/1 answer on the
//! connection so that a body is framed as RFC 9112 §6.3 says.
//!
//! Owns two corrections awc cannot make from above: an HTTP/1.1 answer with
//! neither `Content-Length` nor chunked encoding runs until the connection
//! closes (awc reads no body at all; it is shown to awc as `HTTP/1.0`, which
//! awc reads to the close and never pools), and a connection that closes
//! inside a length-delimited or chunked body (before the `0` chunk and the
//! trailer section's end) is an `UnexpectedEof` "body cut off" error (awc
//! ends such a body as if it were whole). Interim `1xx` answers are skipped,
//! `204`/`304` have no body whatever their headers say, and awc is never
//! handed a byte past the end of the answer it is reading, so a connection
//! with stray bytes after an answer fails awc's idle-connection check and
//! leaves the pool. awc stays the HTTP client (requests, pooling, timeouts):
//! this layer only watches and, where the framing needs it, rewrites an
//! answer's head. TLS is done here rather than by awc because awc layers
//! its TLS above any connector, where the tap would see ciphertext; the
//! client asks awc for `http://` URLs and this connector speaks TLS to the
//! real host (SNI and `Host` unchanged); dialling is `transport::dial`. It
//! decides nothing about answers: that is `response`'s.
//!
//! A little over 500 lines: the framing is one state machine (`State`,
//! `Chunk`, `Body` and the `Checked` stream that drives them), and cutting
//! it would split one RFC section's rules across files.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_rt::net::{ActixStream, Ready};
use actix_web::web::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;

/// As many header lines as awc accepts in an answer.
const MAX_HEADERS: usize = 96;
/// Largest answer head (awc's own limit).
const MAX_HEAD: usize = 128 * 1024;
/// Longest chunk-size line or trailer section accepted.
const MAX_CHUNK_META: usize = 64 * 1024;
/// Most interim (`1xx`) answers skipped before one final answer.
const MAX_INTERIM: usize = 16;
/// Bytes asked of the socket at a time.
const READ_SIZE: usize = 16 * 1024;

mod dial;
pub use dial::{Dialer, TlsFailure, Wire};

/// Where a connection is in the answer it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// No request waits for an answer: bytes now are unsolicited and pass
    /// as they are (awc's idle check then drops the connection).
    Idle,
    /// A request was sent; its answer's head is being collected (held back
    /// until whole, since it may be rewritten).
    Head { interim: usize },
    /// A body with this many bytes still to come.
    Length(u64),
    /// A chunked body, at this point of it.
    Chunked(Chunk),
    /// A body that ends when the connection closes.
    UntilClose,
}

/// A point in a chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line (extensions included), so far.
    Size(Vec<u8>),
    /// Inside a chunk's data: this many bytes to come.
    Data(u64),
    /// After a chunk's data: its CRLF, so far.
    DataEnd(Vec<u8>),
    /// After the `0` chunk: the trailer section's current line, and the
    /// section's length so far.
    Trailers { line: Vec<u8>, total: usize },
}

/// How an answer's body is delimited, decided from its head.
#[derive(Debug, PartialEq, Eq)]
enum Body {
    /// A `1xx` other than 101: another head follows.
    Interim,
    /// `204` and `304`: none, whatever the headers say.
    Nothing,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A stream that follows the HTTP/1 answers read through it: see the
/// module's `//!`. Generic so that its framing can be tested on any stream.
pub struct Checked<IO> {
    io: IO,
    state: State,
    /// Read from `io`, not yet examined.
    unread: BytesMut,
    /// Examined, for awc to read.
    ready: BytesMut,
    eof: bool,
    /// The connection ended without TLS's close_notify.
    unclean: bool,
    /// Why the connection is unusable; repeated to every later read.
    failed: Option<(io::ErrorKind, String)>,
}

impl<IO> fmt::Debug for Checked<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checked")
            .field("state", &self.state)
            .field("unread", &self.unread.len())
            .field("ready", &self.ready.len())
            .field("eof", &self.eof)
            .finish()
    }
}

fn malformed(what: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed answer: {what}"),
    )
}

fn cut_off(what: impl fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("body cut off: {what}"),
    )
}

/// The body an answer with this status, version and headers has (RFC 9112
/// §6.3), or why its framing cannot be trusted. Requests are GETs only, so
/// a HEAD's answer is never seen here.
fn body_of(status: u16, http11: bool, headers: &[httparse::Header<'_>]) -> io::Result<Body> {
    if (100..200).contains(&status) && status != 101 {
        return Ok(Body::Interim);
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_seen = false;
    for h in headers {
        let value = std::str::from_utf8(h.value).map(str::trim);
        if h.name.eq_ignore_ascii_case("content-length") {
            let Ok(v) = value else {
                return Err(malformed("a Content-Length that is not text"));
            };
            let n = (!v.starts_with('+'))
                .then(|| v.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| malformed(format!("Content-Length {v:?} is not a number")))?;
            if let Some(first) = length {
                return Err(malformed(format!(
                    "two Content-Length headers ({first} and {n})"
                )));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("upgrade")
            && value.is_ok_and(|v| v.eq_ignore_ascii_case("websocket"))
        {
            // awc would read such an answer as having no body at all.
            return Err(malformed("an Upgrade to websocket nobody asked for"));
        } else if http11 && h.name.eq_ignore_ascii_case("transfer-encoding") {
            if transfer_seen {
                return Err(malformed("two Transfer-Encoding headers"));
            }
            transfer_seen = true;
            match value {
                Ok(v) if v.eq_ignore_ascii_case("chunked") => chunked = true,
                Ok(v) if v.eq_ignore_ascii_case("identity") => {}
                _ => {
                    return Err(malformed(format!(
                        "Transfer-Encoding {:?} (only chunked is read)",
                        String::from_utf8_lossy(h.value)
                    )))
                }
            }
        }
    }
    Ok(match status {
        204 | 304 => Body::Nothing,
        101 => Body::UntilClose,
        _ if chunked => Body::Chunked,
        _ => length.map_or(Body::UntilClose, Body::Length),
    })
}

impl<IO> Checked<IO> {
    pub fn new(io: IO) -> Self {
        Self {
            io,
            state: State::Idle,
            unread: BytesMut::new(),
            ready: BytesMut::new(),
            eof: false,
            unclean: false,
            failed: None,
        }
    }

    fn pass(&mut self, n: usize) {
        let bytes = self.unread.split_to(n);
        self.ready.extend_from_slice(&bytes);
    }

    /// Moves what can be handed to awc from `unread` to `ready`; stops at
    /// the end of an answer (what follows waits for the next read) and at
    /// an incomplete head.
    fn examine(&mut self) -> io::Result<()> {
        while !self.unread.is_empty() {
            match &mut self.state {
                State::Idle | State::UntilClose => self.pass(self.unread.len()),
                State::Head { interim } => {
                    let interim = *interim;
                    if !self.head(interim)? {
                        return Ok(());
                    }
                    if self.state == State::Idle {
                        return Ok(());
                    }
                }
                State::Length(left) => {
                    let n = (*left).min(self.unread.len() as u64);
                    *left -= n;
                    let done = *left == 0;
                    self.pass(n as usize);
                    if done {
                        self.state = State::Idle;
                        return Ok(());
                    }
                }
                State::Chunked(_) => {
                    if self.chunked()? {
                        self.state = State::Idle;
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads a head from `unread` if it is whole: hands it to awc (as
    /// framing requires) and sets the body's state. False: not whole yet.
    fn head(&mut self, interim: usize) -> io::Result<bool> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        let mut config = httparse::ParserConfig::default();
        config.allow_spaces_after_header_name_in_responses(true);
        let (len, body, http11) = match config.parse_response(&mut res, &self.unread) {
            Ok(httparse::Status::Complete(len)) => {
                let status = res.code.unwrap_or(0);
                let http11 = res.version == Some(1);
                (len, body_of(status, http11, res.headers)?, http11)
            }
            Ok(httparse::Status::Partial) if self.unread.len() < MAX_HEAD => return Ok(false),
            Ok(httparse::Status::Partial) => {
                return Err(malformed(format!("a head longer than {MAX_HEAD} bytes")))
            }
            Err(e) => return Err(malformed(format!("its head: {e}"))),
        };
        let mut head = self.unread.split_to(len);
        self.state = match body {
            Body::Interim if interim + 1 >= MAX_INTERIM => {
                return Err(malformed(format!("{MAX_INTERIM} interim (1xx) answers")))
            }
            Body::Interim => {
                // Skipped: awc would take it for the final answer.
                self.state = State::Head {
                    interim: interim + 1,
                };
                return Ok(true);
            }
            Body::Nothing => {
                head = without_framing(&head);
                State::Idle
            }
            Body::Length(0) => State::Idle,
            Body::Length(n) => State::Length(n),
            Body::Chunked => State::Chunked(Chunk::Size(Vec::new())),
            Body::UntilClose => {
                if http11 {
                    // awc reads an HTTP/1.0 answer with no length to the close.
                    if let Some(at) = head.windows(8).position(|w| w == b"HTTP/1.1") {
                        head[at..at + 8].copy_from_slice(b"HTTP/1.0");
                    }
                }
                State::UntilClose
            }
        };
        self.ready.extend_from_slice(&head);
        Ok(true)
    }

    /// Follows a chunked body through `unread`, handing awc what it passed.
    /// True at the end of the trailer section.
    fn chunked(&mut self) -> io::Result<bool> {
        let State::Chunked(chunk) = &mut self.state else {
            return Ok(false);
        };
        let mut used = 0;
        let mut done = false;
        while used < self.unread.len() && !done {
            let rest = &self.unread[used..];
            match chunk {
                Chunk::Data(left) => {
                    let n = (*left).min(rest.len() as u64);
                    *left -= n;
                    used += n as usize;
                    if *left == 0 {
                        *chunk = Chunk::DataEnd(Vec::new());
                    }
                }
                Chunk::Size(line) | Chunk::DataEnd(line) | Chunk::Trailers { line, .. } => {
                    let byte = rest[0];
                    used += 1;
                    line.push(byte);
                    if line.len() > MAX_CHUNK_META {
                        return Err(malformed("a chunk-size line or trailer too long"));
                    }
                    if byte == b'\n' {
                        (*chunk, done) = after_line(chunk)?;
                    } else if matches!(chunk, Chunk::DataEnd(l) if l.len() >= 2) {
                        return Err(malformed("chunk data longer than its size"));
                    }
                }
            }
        }
        self.pass(used);
        Ok(done)
    }

    /// The connection closed: the end of what awc reads, or a cut.
    fn at_eof(&self) -> io::Result<()> {
        match &self.state {
            State::UntilClose if self.unclean => Err(cut_off(
                "the TLS connection closed without close_notify before the end of a body \
                 that runs to the close",
            )),
            State::Idle | State::UntilClose => Ok(()),
            State::Head { .. } if self.unread.is_empty() => Ok(()),
            State::Head { .. } => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed in the middle of the answer's head",
            )),
            State::Length(left) => Err(cut_off(format!(
                "the connection closed {left} bytes short of its Content-Length"
            ))),
            State::Chunked(_) => Err(cut_off(
                "the connection closed before the chunked body's last chunk and its end",
            )),
        }
    }
}

/// The state after a whole line of a chunked body (a chunk-size line, the
/// CRLF after a chunk's data, or a trailer line), and whether the body ended.
fn after_line(chunk: &Chunk) -> io::Result<(Chunk, bool)> {
    match chunk {
        Chunk::Size(line) => match httparse::parse_chunk_size(line) {
            Ok(httparse::Status::Complete((_, 0))) => Ok((
                Chunk::Trailers {
                    line: Vec::new(),
                    total: 0,
                },
                false,
            )),
            Ok(httparse::Status::Complete((_, n))) => Ok((Chunk::Data(n), false)),
            _ => Err(malformed(format!(
                "a chunk-size line {:?}",
                String::from_utf8_lossy(line).trim_end()
            ))),
        },
        Chunk::DataEnd(line) if line == b"\r\n" => Ok((Chunk::Size(Vec::new()), false)),
        Chunk::DataEnd(_) => Err(malformed("chunk data longer than its size")),
        Chunk::Trailers { line, total } => {
            let total = total + line.len();
            if total > MAX_CHUNK_META {
                return Err(malformed("a trailer section too long"));
            }
            let end = line == b"\r\n" || line == b"\n";
            Ok((
                Chunk::Trailers {
                    line: Vec::new(),
                    total,
                },
                end,
            ))
        }
        Chunk::Data(_) => Ok((chunk.clone(), false)),
    }
}

/// A head with its Content-Length and Transfer-Encoding lines replaced by
/// `Content-Length: 0`: an answer that has no body (204, 304) as awc must
/// read it.
fn without_framing(head: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(head.len() + 20);
    let mut lines = head.split_inclusive(|b| *b == b'\n');
    if let Some(status_line) = lines.next() {
        out.extend_from_slice(status_line);
    }
    for line in lines {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        let name = name.trim_ascii();
        if line.trim_ascii().is_empty()
            || name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            continue;
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

impl<IO: AsyncRead + Unpin> AsyncRead for Checked<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if let Some((kind, why)) = &this.failed {
                return Poll::Ready(Err(io::Error::new(*kind, why.clone())));
            }
            if let Err(e) = this.examine() {
                this.failed = Some((e.kind(), e.to_string()));
                continue;
            }
            if !this.ready.is_empty() {
                continue;
            }
            if this.eof {
                if let Err(e) = this.at_eof() {
                    this.failed = Some((e.kind(), e.to_string()));
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            // Straight into `unread`'s spare room: no buffer to zero and
            // copy at each read (a pending read costs nothing).
            this.unread.reserve(READ_SIZE);
            match ready!(poll_read_buf(Pin::new(&mut this.io), cx, &mut this.unread)) {
                Ok(0) => this.eof = true,
                Ok(_) => {}
                // rustls: the peer closed without close_notify. The end of
                // a framed answer is known without it; a body that runs
                // to the close is then not known to be whole.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    this.eof = true;
                    this.unclean = true;
                    continue;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Checked<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        if n > 0 && this.state == State::Idle {
            this.state = State::Head { interim: 0 };
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: ActixStream> ActixStream for Checked<IO> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        if !self.ready.is_empty() || !self.unread.is_empty() || self.failed.is_some() {
            return Poll::Ready(Ok(Ready::READABLE));
        }
        self.io.poll_read_ready(cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        self.io.poll_write_ready(cx)
    }
}

#[cfg(test)]
mod tests;
