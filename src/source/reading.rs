//! What a request got, short of its meaning: no answer at all, in words an
//! operator can act on and classified as unreachable or not
//! (`unreachable_kind`, `NoAnswer`), or a body read whole against its
//! framing and within the body cap, and decoded from gzip within it too
//! (`read_body`, `gunzip`); and whether to ask for gzip at all (`Coding`).
//! It never decides about retries, and what a body says is `response`'s
//! and the adapters'.

use actix_web::web::{Bytes, BytesMut};

use super::{transport, FetchFailure, Unreachable};

/// A request error in words an operator can act on.
pub(super) fn describe(e: &awc::error::SendRequestError) -> String {
    use awc::error::{ConnectError, SendRequestError};
    match e {
        SendRequestError::Timeout => "timed out (source.timeout)".into(),
        SendRequestError::Connect(ConnectError::Disconnected) => {
            "connection dropped before any answer".into()
        }
        SendRequestError::Connect(ConnectError::Timeout) => "timed out connecting".into(),
        SendRequestError::Connect(c) => format!("cannot connect: {c}"),
        other => format!("request failed: {other}"),
    }
}

/// Whether a request failed because no connection could be made at all,
/// and how: the name did not resolve, the port refused, there is no
/// route, or the TLS handshake failed (`transport` tells these apart).
pub fn unreachable_kind(e: &awc::error::SendRequestError) -> Option<Unreachable> {
    use awc::error::{ConnectError, SendRequestError};
    let SendRequestError::Connect(c) = e else {
        return None;
    };
    match c {
        ConnectError::Resolver(_) | ConnectError::NoRecords | ConnectError::Unresolved => {
            Some(Unreachable::Dns)
        }
        ConnectError::Io(io) => {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<transport::TlsFailure>())
            {
                return Some(Unreachable::Tls);
            }
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some(Unreachable::Refused),
                std::io::ErrorKind::NetworkUnreachable | std::io::ErrorKind::HostUnreachable => {
                    Some(Unreachable::NoRoute)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether a request asks for a gzipped answer (`Accept-Encoding`). A body
/// that says gzip is decoded either way (within the body cap): only the
/// asking differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coding {
    Gzip,
    Identity,
}

impl Coding {
    /// Answers of fewer days than this are not asked gzipped: a daily
    /// candle is 100-200 bytes, and below about a kilobyte gzip's header
    /// and the inflater's set-up (its tables, a 32 KiB window) cost more
    /// than the bytes saved. Binance's one-day klines: 150 bytes.
    const GZIP_FROM_DAYS: usize = 8;

    /// For an answer of `days` days.
    pub(super) fn for_days(days: usize) -> Coding {
        if days >= Self::GZIP_FROM_DAYS {
            Coding::Gzip
        } else {
            Coding::Identity
        }
    }

    /// Its `Accept-Encoding`. "identity" is said outright: a server may
    /// gzip for a client that names no coding at all (RFC 9110 §12.5.3).
    pub(super) fn header(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }
}

/// A request that got no answer at all, and whether no connection could
/// be made.
#[derive(Debug, Clone)]
pub(super) struct NoAnswer {
    pub(super) reason: String,
    pub(super) unreachable: Option<Unreachable>,
}

impl NoAnswer {
    pub(super) fn failure(self) -> FetchFailure {
        match self.unreachable {
            Some(kind) => FetchFailure::unreachable(kind, self.reason),
            None => FetchFailure::retryable(self.reason),
        }
    }
}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Length(u64),
    Chunked,
    /// No length: the body ends when the connection closes (`transport`
    /// shows awc an HTTP/1.1 answer without one as HTTP/1.0 for this).
    UntilClose,
    /// A Content-Length header that is not a number.
    BadLength,
}

pub(super) fn framing(
    version: awc::http::Version,
    transfer: Option<&str>,
    length: Option<&str>,
) -> Framing {
    if version >= awc::http::Version::HTTP_11
        && transfer.is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
    {
        return Framing::Chunked;
    }
    match length.map(|l| l.trim().parse::<u64>()) {
        Some(Ok(n)) => Framing::Length(n),
        Some(Err(_)) => Framing::BadLength,
        None => Framing::UntilClose,
    }
}

/// Reads a body whole, checking it against its framing: a body shorter than
/// its Content-Length is an error, not a short answer (so is a chunked body
/// without its last chunk, which `transport` reports as a read error).
pub(super) async fn read_body(
    resp: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
    >,
    framing: Framing,
    limit: usize,
    stop_at_length: bool,
) -> Result<Bytes, String> {
    use futures_util::StreamExt;
    if framing == Framing::BadLength {
        return Err("the Content-Length header is not a number".into());
    }
    if let Framing::Length(n) = framing {
        if n > limit as u64 {
            return Err(format!("the body ({n} bytes) is larger than {limit} bytes"));
        }
    }
    let mut body = BytesMut::new();
    loop {
        if let Framing::Length(n) = framing {
            if stop_at_length && body.len() as u64 == n {
                break;
            }
        }
        match resp.next().await {
            Some(Ok(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(format!("the body is larger than {limit} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            // `transport`'s own words ("body cut off: ..."), not awc's
            // wrapping of them.
            Some(Err(awc::error::PayloadError::Incomplete(Some(e)))) => return Err(e.to_string()),
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    match framing {
        Framing::Length(n) if (body.len() as u64) < n => Err(format!(
            "body cut off: {} of the {n} bytes its Content-Length declares",
            body.len()
        )),
        _ => Ok(body.freeze()),
    }
}

/// Decodes a gzip body, refusing (never allocating) more than `limit`
/// decoded bytes: a small body that inflates to gigabytes (a "gzip bomb")
/// fails naming the limit.
pub(super) fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, String> {
    use std::io::Read;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the gzip body cannot be decoded: {e}"))?;
    if out.len() > limit {
        return Err(format!(
            "the body is larger than {limit} bytes once decoded (gzip)"
        ));
    }
    Ok(Bytes::from(out))
}
