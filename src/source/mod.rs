//! The client side of the crypto price API: discovery (`/exchanges`,
//! `/symbols`) and one price request, with awc.
//!
//! Owns URL building (only from checked names) and the request limits
//! (timeout, body cap). It holds no state between requests beyond awc's
//! connection pool, and it never decides about retries: it only says whether
//! a failure is worth retrying (see `response`).

pub mod response;

use std::time::Duration;

use url::Url;

use crate::model::{Exchange, NameError, Symbol, TaskKey};
pub use response::{Answer, FetchFailure, FetchResult};

/// Why a discovery request failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot reach the price source at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent a body that is not a JSON list of names: {reason}")]
    Body { url: String, reason: String },
    #[error("{url} listed an invalid name: {source}")]
    BadName {
        url: String,
        #[source]
        source: NameError,
    },
}

/// A request error in words an operator can act on.
fn describe(e: &awc::error::SendRequestError) -> String {
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

/// How a `PriceClient` bounds its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Bounds each request, connecting included.
    pub timeout: Duration,
    /// Largest price body accepted.
    pub max_body: usize,
    /// Cap of awc's connection pool for this client.
    pub connections: usize,
    /// Reject prices whose open or close lie outside low..=high.
    pub check_order: bool,
}

impl ClientLimits {
    pub fn from_config(source: &crate::config::SourceConfig, connections: usize) -> Self {
        Self {
            timeout: source.timeout,
            max_body: source.max_body_bytes,
            connections,
            // Until the source can mark a price with a quality flag, "flag"
            // keeps the old default of refusing the price.
            check_order: source.ohlc_order != crate::config::OhlcOrder::Ignore,
        }
    }
}

/// An awc client bound to one price server. Not `Send`: build one per thread.
pub struct PriceClient {
    client: awc::Client,
    base: Url,
    max_body: usize,
    check_order: bool,
}

impl PriceClient {
    pub fn new(base: &Url, limits: &ClientLimits) -> Self {
        let ClientLimits {
            timeout,
            max_body,
            connections,
            check_order,
        } = *limits;
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let connector = awc::Connector::new()
            .limit(connections.max(1))
            .timeout(timeout);
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(timeout)
            .disable_redirects()
            .finish();
        Self {
            client,
            base,
            max_body,
            check_order,
        }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        // Names are [a-z0-9-] and dates are digits and dashes, so joining
        // cannot escape the base path.
        self.base
            .join(path)
            .map_or_else(|_| format!("{}{path}", self.base), String::from)
    }

    /// `GET /exchanges`.
    pub async fn exchanges(&self) -> Result<Vec<Exchange>, SourceError> {
        self.names("exchanges", Exchange::new).await
    }

    /// `GET /symbols`.
    pub async fn symbols(&self) -> Result<Vec<Symbol>, SourceError> {
        self.names("symbols", Symbol::new).await
    }

    async fn names<T>(
        &self,
        path: &str,
        make: impl Fn(&str) -> Result<T, NameError>,
    ) -> Result<Vec<T>, SourceError> {
        let url = self.url(path);
        let mut resp =
            self.client
                .get(&url)
                .send()
                .await
                .map_err(|e| SourceError::Unreachable {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        if resp.status().as_u16() != 200 {
            return Err(SourceError::Status {
                url,
                status: resp.status().as_u16(),
            });
        }
        let body = resp
            .body()
            .limit(self.max_body.max(1 << 20))
            .await
            .map_err(|e| SourceError::Body {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let raw: Vec<String> = serde_json::from_slice(&body).map_err(|e| SourceError::Body {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        raw.iter()
            .map(|n| make(n))
            .collect::<Result<_, _>>()
            .map_err(|source| SourceError::BadName { url, source })
    }

    /// `GET /price/{exchange}/{symbol}/{date}`, checked.
    pub async fn price(&self, key: &TaskKey) -> FetchResult {
        let url = self.url(&format!(
            "price/{}/{}/{}",
            key.exchange, key.symbol, key.day
        ));
        let mut resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| FetchFailure::retryable(describe(&e)))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(awc::http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .body()
            .limit(self.max_body)
            .await
            .map_err(|e| e.to_string());
        response::classify(
            key,
            status,
            retry_after.as_deref(),
            body.as_deref().map_err(Clone::clone),
            self.check_order,
        )
    }
}
