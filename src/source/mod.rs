//! The client side of the crypto price API: discovery (`/exchanges`,
//! `/symbols`) and one price request, with awc.
//!
//! Owns URL building (only from checked names), how a request introduces
//! itself (`User-Agent: pricegrid/<version>`, or the operator's
//! `user_agent`, or an exchange's own: `endpoint`; `Accept-Encoding: gzip`
//! only where an answer can be large enough for it to pay, listings and
//! pages of many days, never a one-day answer of a few hundred bytes:
//! `reading::Coding`) and the request limits (`source.timeout` bounds a whole request, body included; a body cap,
//! which bounds a gzipped body once decoded too; a body shorter than its
//! framing says is an error, not a short answer; the framing itself is
//! followed under awc by `transport`, below the content coding). It
//! holds no state between requests beyond awc's connection pool, and it
//! never decides about retries: it only says whether a failure is worth
//! retrying (see `response`). Reading a body against its framing, and
//! classifying a request that got no answer, is `reading`'s. Which server
//! to ask, and starting the built-in one, is `crate::origin`'s (`Source`);
//! this module reads no config (`ClientLimits` are built from `[source]`
//! in `config`) and starts no server.

mod endpoint;
pub mod exchanges;
mod join;
mod reading;
pub mod response;
pub mod tls;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use url::Url;

use crate::model::OhlcOrder;
use crate::model::{DayRange, Exchange, NameError, Symbol, TaskKey};
pub use endpoint::{default_user_agent, Endpoint, Endpoints};
use exchanges::{CandleApi, CandleRequest, DayAnswer, Instrument, Method, PageResult};
pub use reading::unreachable_kind;
use reading::{describe, framing, gunzip, read_body, Coding, NoAnswer};
pub use response::{Answer, FetchFailure, FetchResult, Throttle, Unreachable};

/// Why a discovery request failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot reach the price source at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent a body that is not a JSON list of names: {reason}")]
    Body { url: String, reason: String },
    #[error("{url} sent a market listing that cannot be read: {reason}")]
    Listing { url: String, reason: String },
    #[error("{url} listed an invalid name: {source}")]
    BadName {
        url: String,
        #[source]
        source: NameError,
    },
}

/// How a `PriceClient` bounds its requests, and how it introduces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLimits {
    /// Bounds each request, connecting included.
    pub timeout: Duration,
    /// Largest price body accepted.
    pub max_body: usize,
    /// Cap of awc's connection pool for this client.
    pub connections: usize,
    /// What to do with prices whose open or close lie outside low..=high.
    pub ohlc_order: OhlcOrder,
    /// The `User-Agent` sent; `None`: `default_user_agent()`.
    pub user_agent: Option<Arc<str>>,
}

impl ClientLimits {
    /// These limits with `user_agent` instead, when there is one (an
    /// exchange's own `user_agent` over `source.user_agent`).
    pub fn with_user_agent(mut self, user_agent: Option<&Arc<str>>) -> Self {
        if let Some(ua) = user_agent {
            self.user_agent = Some(ua.clone());
        }
        self
    }
}

/// An awc client bound to one price server. Not `Send`: build one per thread.
pub struct PriceClient {
    client: awc::Client,
    base: Url,
    /// Requests go to awc as http:// URLs, TLS being `transport`'s.
    https: bool,
    timeout: Duration,
    max_body: usize,
    ohlc_order: OhlcOrder,
}

/// Largest answer to a market listing (Binance's is several MiB).
const MAX_LISTING_BYTES: usize = 32 << 20;

impl PriceClient {
    /// A client for `base`; an https base trusts the built-in roots only.
    pub fn new(base: &Url, limits: &ClientLimits) -> Self {
        let tls = (base.scheme() == "https")
            .then(|| match tls::client_config(&[]) {
                Ok(c) => Some(c),
                Err(e) => {
                    log::error!("{base}: {e}");
                    None
                }
            })
            .flatten();
        Self::with_tls(base, limits, tls)
    }

    /// A client for `base` whose https connections trust the built-in roots
    /// and the certificates of `ca_files`.
    pub fn with_ca_files(
        base: &Url,
        limits: &ClientLimits,
        ca_files: &[std::path::PathBuf],
    ) -> Result<Self, tls::TlsError> {
        if ca_files.is_empty() {
            return Ok(Self::new(base, limits));
        }
        Ok(Self::with_tls(
            base,
            limits,
            Some(tls::client_config(ca_files)?),
        ))
    }

    fn with_tls(
        base: &Url,
        limits: &ClientLimits,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Self {
        let ClientLimits {
            timeout,
            max_body,
            connections,
            ohlc_order,
            ref user_agent,
        } = *limits;
        // Validated by check-config; a value no header can carry (awc's
        // builder would panic on it) falls back to the default.
        let user_agent = user_agent
            .as_deref()
            .and_then(|ua| match awc::http::header::HeaderValue::from_str(ua) {
                Ok(v) => Some(v),
                Err(_) => {
                    log::error!("user_agent {ua:?} cannot be sent; sending the default");
                    None
                }
            })
            .unwrap_or_else(|| {
                awc::http::header::HeaderValue::from_str(&default_user_agent())
                    .unwrap_or(awc::http::header::HeaderValue::from_static("pricegrid"))
            });
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // awc is asked for http:// URLs even for an https source: the
        // dialer does TLS beneath awc so that `transport` sees plain HTTP.
        let https = base.scheme() == "https";
        let dialer = match (https, tls) {
            (false, _) => transport::Dialer::plain(),
            (true, Some(tls)) => {
                transport::Dialer::tls(tls, base.port_or_known_default().unwrap_or(443))
            }
            (true, None) => transport::Dialer::refusing("no TLS configuration (see the log)"),
        };
        let connector = awc::Connector::new()
            .connector(dialer)
            .limit(connections.max(1))
            .timeout(timeout);
        // Some exchanges refuse a request without a User-Agent (Coinbase's
        // 400, HTX's 403). No timer of awc's own: `send` bounds the whole
        // request, body included, and a second timer per request is work.
        let client = awc::Client::builder()
            .connector(connector)
            .disable_timeout()
            .disable_redirects()
            .add_default_header((awc::http::header::USER_AGENT, user_agent))
            .finish();
        Self {
            client,
            base,
            https,
            timeout,
            max_body,
            ohlc_order,
        }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        // Names are [a-z0-9-] and dates are digits and dashes, and adapters
        // build market names from checked forms, so joining cannot escape
        // the base path.
        join::join(&self.base, path)
    }

    /// `GET /exchanges`.
    pub async fn exchanges(&self) -> Result<Vec<Exchange>, SourceError> {
        self.names("exchanges", Exchange::new).await
    }

    /// `GET /symbols`.
    pub async fn symbols(&self) -> Result<Vec<Symbol>, SourceError> {
        self.names("symbols", Symbol::new).await
    }

    /// A list of names. Invalid names are skipped and duplicates dropped,
    /// each with a warning: one bad entry in a source's listing must not
    /// stop a round.
    async fn names<T: PartialEq + std::fmt::Display>(
        &self,
        path: &str,
        make: impl Fn(&str) -> Result<T, NameError>,
    ) -> Result<Vec<T>, SourceError> {
        let url = self.url(path);
        let (status, _, body) = self
            .get(&url, self.max_body.max(1 << 20), Coding::Gzip)
            .await
            .map_err(|e| SourceError::Unreachable {
                url: url.clone(),
                reason: e.reason,
            })?;
        if status != 200 {
            return Err(SourceError::Status { url, status });
        }
        let body = body.map_err(|reason| SourceError::Body {
            url: url.clone(),
            reason,
        })?;
        let raw: Vec<String> = serde_json::from_slice(&body).map_err(|e| SourceError::Body {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let mut out: Vec<T> = Vec::with_capacity(raw.len());
        for name in &raw {
            match make(name) {
                Ok(n) if out.contains(&n) => {
                    log::warn!("{url} lists \"{n}\" twice; fetching it once");
                }
                Ok(n) => out.push(n),
                Err(e) => log::warn!("{url} lists an invalid name, skipped: {e}"),
            }
        }
        Ok(out)
    }

    /// One GET: the status, `Retry-After`, and the body read whole (or why
    /// it could not be: cut off, too large, unreadable). The outer error is
    /// a request that got no answer at all. Bounded by `source.timeout` as
    /// a whole, body included.
    async fn get(
        &self,
        url: &str,
        limit: usize,
        coding: Coding,
    ) -> Result<(u16, Option<String>, Result<Bytes, String>), NoAnswer> {
        self.send(Method::Get, url, None, limit, coding).await
    }

    /// One request as `get` does it, with a method and a JSON body.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        limit: usize,
        coding: Coding,
    ) -> Result<(u16, Option<String>, Result<Bytes, String>), NoAnswer> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        match actix_rt::time::timeout(
            self.timeout,
            self.get_unbounded(method, url, body, limit, coding),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(NoAnswer {
                reason: format!(
                    "timed out after {} (source.timeout)",
                    humantime::format_duration(self.timeout)
                ),
                unreachable: None,
            }),
        }
    }

    /// `host:port` of the server this client asks, for a failure reason.
    fn host(&self) -> String {
        let host = self.base.host_str().unwrap_or("?");
        match self.base.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    async fn get_unbounded(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
        limit: usize,
        coding: Coding,
    ) -> Result<(u16, Option<String>, Result<Bytes, String>), NoAnswer> {
        use awc::error::{ConnectError, SendRequestError};
        use awc::http::{header, Version};
        // A pooled connection the server closed in the meantime fails before
        // any answer byte arrives; a GET (or a POST that only reads, as
        // CEX.IO's candles) is safe to send once more.
        let url = match url.strip_prefix("https://") {
            Some(rest) if self.https => format!("http://{rest}"),
            _ => url.to_owned(),
        };
        let url = url.as_str();
        let send = || {
            let request = match method {
                Method::Post => self
                    .client
                    .post(url)
                    .insert_header((header::CONTENT_TYPE, "application/json")),
                Method::Get => self.client.get(url),
            }
            .insert_header((header::ACCEPT_ENCODING, coding.header()));
            match method {
                Method::Post => request.send_body(body.clone().unwrap_or_default()),
                Method::Get => request.send(),
            }
        };
        let mut resp = match send().await {
            Err(SendRequestError::Connect(ConnectError::Disconnected)) => send().await,
            other => other,
        }
        .map_err(|e| match unreachable_kind(&e) {
            Some(kind) => NoAnswer {
                reason: format!("cannot reach {}: {kind} ({})", self.host(), describe(&e)),
                unreachable: Some(kind),
            },
            None => NoAnswer {
                reason: describe(&e),
                unreachable: None,
            },
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers();
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = text(header::RETRY_AFTER);
        let framing = framing(
            resp.version(),
            text(header::TRANSFER_ENCODING).as_deref(),
            text(header::CONTENT_LENGTH).as_deref(),
        );
        // awc pools an HTTP/1.0 connection that has a Content-Length unless
        // it says `Connection: close`, and the next request on it then fails.
        // Stopping at the declared length (never polling the stream's end)
        // keeps it out of the pool.
        let keep_alive = headers
            .get_all(header::CONNECTION)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("keep-alive"));
        let stop_at_length = resp.version() < Version::HTTP_11 && !keep_alive;
        let coding = text(header::CONTENT_ENCODING);
        let body = read_body(&mut resp, framing, limit, stop_at_length)
            .await
            .and_then(|body| match coding.as_deref().map(str::trim) {
                None | Some("") => Ok(body),
                Some(c) if c.eq_ignore_ascii_case("identity") => Ok(body),
                Some(c) if c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("x-gzip") => {
                    gunzip(&body, limit)
                }
                Some(other) => Err(format!(
                    "the body is in a content coding pricegrid did not ask for: {other:?}"
                )),
            });
        Ok((status, retry_after, body))
    }

    /// One page of a real exchange's daily candles for `market` over
    /// `days`: one answer per day, or why there are none.
    pub async fn candles(&self, api: &dyn CandleApi, market: &str, days: DayRange) -> PageResult {
        let call = api.candles_call(market, days);
        let url = self.url(&call.path);
        // A page holds up to page_days candles of a few hundred bytes each.
        let limit = self
            .max_body
            .saturating_mul(api.page_days() as usize)
            .clamp(self.max_body, 16 << 20);
        let (status, retry_after, body) = self
            .send(
                call.method,
                &url,
                call.body.as_ref(),
                limit,
                Coding::for_days(days.len()),
            )
            .await
            .map_err(NoAnswer::failure)?;
        let body =
            body.map_err(|e| FetchFailure::retryable(format!("cannot read the body: {e}")))?;
        api.parse_candles(
            market,
            days,
            status,
            retry_after.as_deref(),
            &body,
            self.ohlc_order,
        )
    }

    /// The exchange's market listing.
    pub async fn instruments(&self, api: &dyn CandleApi) -> Result<Vec<Instrument>, SourceError> {
        let call: CandleRequest = api.instruments_call();
        let url = self.url(&call.path);
        let (status, _, body) = self
            .send(
                call.method,
                &url,
                call.body.as_ref(),
                MAX_LISTING_BYTES,
                Coding::Gzip,
            )
            .await
            .map_err(|e| SourceError::Unreachable {
                url: url.clone(),
                reason: e.reason,
            })?;
        let body = body.map_err(|reason| SourceError::Listing {
            url: url.clone(),
            reason,
        })?;
        api.parse_instruments(status, &body)
            .map_err(|reason| SourceError::Listing { url, reason })
    }

    /// The classic price of `key`, as a page of one day.
    pub async fn price_page(&self, key: &TaskKey) -> PageResult {
        self.price(key).await.map(|answer| {
            vec![DayAnswer {
                day: key.day,
                answer,
                open: false,
            }]
        })
    }

    /// `GET /price/{exchange}/{symbol}/{date}`, checked.
    pub async fn price(&self, key: &TaskKey) -> FetchResult {
        let url = self.url(&format!(
            "price/{}/{}/{}",
            key.exchange, key.symbol, key.day
        ));
        let (status, retry_after, body) = self
            .get(&url, self.max_body, Coding::for_days(1))
            .await
            .map_err(NoAnswer::failure)?;
        response::classify(
            key,
            status,
            retry_after.as_deref(),
            body.as_deref().map_err(Clone::clone),
            self.ohlc_order,
        )
    }
}

#[cfg(test)]
mod tests;
