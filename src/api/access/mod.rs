//! Who may ask the API what: one middleware in front of every route that
//! checks, in order, the query string's size, the `Host` header (against
//! DNS rebinding), a state-changing request's `Origin` (against cross-site
//! requests), the bearer token (`api.token_file`) and a `POST`'s
//! `Content-Type`, and answers a refusal as JSON naming the problem.
//!
//! It decides from the request head alone: it never reads a body, never
//! touches the daemon's state, and knows nothing of the routes beyond which
//! paths are the page's own files (`/`, `/web/...`), served without a token
//! so that the page can ask for one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use subtle::ConstantTimeEq;

use super::{check_query_size, ParamError};
use crate::config::HostName;

/// Shortest token accepted: a guessable token is no lock.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The names a loopback listener answers to, with its port.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// A bearer token, read from `api.token_file`. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Why `api.token_file` gives no usable token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("api.token_file {}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("api.token_file {}: {problem}", path.display())]
    Unusable { path: PathBuf, problem: String },
}

impl Token {
    /// The token in the file at `path`: its text less surrounding
    /// whitespace (an editor's final newline).
    pub fn read(path: &Path) -> Result<Token, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.to_owned(),
            source,
        })?;
        Token::new(&text).map_err(|problem| TokenError::Unusable {
            path: path.to_owned(),
            problem,
        })
    }

    /// `raw`, trimmed, if it is a token a header can carry and long enough
    /// not to be guessed.
    pub fn new(raw: &str) -> Result<Token, String> {
        let token = raw.trim();
        if token.is_empty() {
            return Err("is empty: write a token into it, e.g. `openssl rand -hex 32`".into());
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "holds a character other than visible ASCII: a header cannot carry it".into(),
            );
        }
        if token.len() < MIN_TOKEN_CHARS {
            return Err(format!(
                "the token is {} characters, fewer than {MIN_TOKEN_CHARS}: use a longer one, e.g. `openssl rand -hex 32`",
                token.len()
            ));
        }
        Ok(Token(token.to_owned()))
    }

    /// Whether `presented` is this token, in time that does not depend on
    /// where they differ.
    fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

/// What the API accepts: the hosts it may be named by, and the token (if
/// any) every route but the page's files requires.
#[derive(Debug, Clone)]
pub struct Access {
    /// The bound address (a port of 0 already replaced by the real one).
    listen: SocketAddr,
    allowed_hosts: Vec<HostName>,
    token: Option<Token>,
}

/// Why a request is refused, each with the status it is answered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400, as `{"parameter": "query", "error"}`.
    #[error(transparent)]
    Query(ParamError),
    /// 421: a name this API is not known by (DNS rebinding).
    #[error("{0}")]
    Host(String),
    /// 403: a cross-site request.
    #[error("{0}")]
    Origin(String),
    /// 401.
    #[error("{0}")]
    Token(String),
    /// 415.
    #[error("{0}")]
    ContentType(String),
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Query(_) => StatusCode::BAD_REQUEST,
            Refusal::Host(_) => StatusCode::MISDIRECTED_REQUEST,
            Refusal::Origin(_) => StatusCode::FORBIDDEN,
            Refusal::Token(_) => StatusCode::UNAUTHORIZED,
            Refusal::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    fn response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status());
        match self {
            Refusal::Query(e) => resp.json(e),
            Refusal::Token(_) => resp
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"pricegrid\""))
                .json(serde_json::json!({ "error": self.to_string() })),
            _ => resp.json(serde_json::json!({ "error": self.to_string() })),
        }
    }
}

impl Access {
    /// The rules of an API bound to `listen`.
    pub fn new(listen: SocketAddr, allowed_hosts: Vec<HostName>, token: Option<Token>) -> Self {
        Self {
            listen,
            allowed_hosts,
            token,
        }
    }

    /// Whether a token is required.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Checks a request's head; `Ok` lets it through to its route.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        self.check_host(headers)?;
        check_query_size(query).map_err(Refusal::Query)?;
        let safe = matches!(*method, Method::GET | Method::HEAD);
        if !safe {
            self.check_origin(headers)?;
        }
        let page_file = safe && (path == "/" || path.starts_with("/web/"));
        if !page_file {
            self.check_token(headers)?;
        }
        if *method == Method::POST {
            check_json(headers)?;
        }
        Ok(())
    }

    /// The `Host` header names this API: its listen address, a loopback
    /// name on its port, or one of `api.allowed_hosts`.
    fn check_host(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(raw) = headers.get(header::HOST) else {
            return Err(Refusal::Host(format!(
                "the request has no Host header: expected {}",
                self.expected_hosts()
            )));
        };
        let raw = raw.to_str().unwrap_or("");
        match raw.parse::<HostName>() {
            Ok(host) if self.is_own(&host) => Ok(()),
            _ => Err(Refusal::Host(format!(
                "Host {raw:?} is not a name of this API: expected {} (add a name to api.allowed_hosts)",
                self.expected_hosts()
            ))),
        }
    }

    /// A state-changing request from a browser comes from a page of this
    /// API, or from no page at all (no `Origin`: not a browser).
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(raw) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let raw = raw.to_str().unwrap_or("");
        let own = url::Url::parse(raw).ok().is_some_and(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|host| {
                    self.is_own(&HostName {
                        host: host.to_owned(),
                        port: url.port_or_known_default(),
                    })
                })
        });
        if own {
            Ok(())
        } else {
            Err(Refusal::Origin(format!(
                "Origin {raw:?} is not this API: a page elsewhere may not change the daemon"
            )))
        }
    }

    fn check_token(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .and_then(|v| {
                let (scheme, rest) = v.split_at_checked(7)?;
                scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
            });
        match presented {
            None => Err(Refusal::Token(
                "this route needs Authorization: Bearer <the token in api.token_file>".into(),
            )),
            Some(p) if token.matches(p) => Ok(()),
            Some(_) => Err(Refusal::Token(
                "the bearer token is not the one in api.token_file".into(),
            )),
        }
    }

    fn is_own(&self, host: &HostName) -> bool {
        let port = Some(self.listen.port());
        let listen = HostName::of_addr(self.listen);
        (*host == listen && !self.listen.ip().is_unspecified())
            || (host.port == port && LOOPBACK_NAMES.contains(&host.host.as_str()))
            || self
                .allowed_hosts
                .iter()
                .any(|a| a.host == host.host && (a.port.is_none() || a.port == host.port))
    }

    /// The hosts accepted, for a refusal's message.
    fn expected_hosts(&self) -> String {
        let port = self.listen.port();
        let mut names: Vec<String> = Vec::new();
        if !self.listen.ip().is_unspecified() && !self.listen.ip().is_loopback() {
            names.push(HostName::of_addr(self.listen).to_string());
        }
        names.extend(LOOPBACK_NAMES.iter().map(|n| format!("{n}:{port}")));
        names.extend(self.allowed_hosts.iter().map(|h| h.to_string()));
        names.join(", ")
    }
}

/// A `POST` carries JSON: a form or `text/plain` is what a page elsewhere
/// can send without asking the browser first.
fn check_json(headers: &HeaderMap) -> Result<(), Refusal> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let json = raw
        .and_then(|r| r.parse::<actix_web::mime::Mime>().ok())
        .is_some_and(|m| m.essence_str() == "application/json");
    if json {
        return Ok(());
    }
    Err(Refusal::ContentType(match raw {
        Some(raw) => format!("Content-Type {raw:?}: a POST needs Content-Type: application/json"),
        None => "no Content-Type: a POST needs Content-Type: application/json".into(),
    }))
}

/// The middleware: refuses what `access` refuses, before any route runs.
pub(super) async fn guard(
    access: Arc<Access>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The path as the router matches it (percent-encoding resolved), so
    // that what is exempt is exactly what the page's routes serve.
    let path = req.match_info().as_str().to_owned();
    let checked = access.check(req.method(), &path, req.query_string(), req.headers());
    match checked {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => {
            log::debug!(
                "refused {} {}: {refusal} ({})",
                req.method(),
                req.path(),
                refusal.status()
            );
            let resp = refusal.response();
            Ok(req.into_response(resp).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests;
