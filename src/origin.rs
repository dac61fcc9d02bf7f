//! Where prices come from for one process: a server already running at a
//! URL, or the built-in server started here on a loopback port (what
//! `source.url = "builtin"` asks for), kept alive for as long as the
//! `Source` is.
//!
//! Owns starting and stopping that server and the identity cells record as
//! their source; it makes no price requests beyond the reachability check.
//! It stands above `config`, `server` and `source`, joining the three, so
//! that `source` (the client) never reads a config nor starts a server.

use std::path::PathBuf;
use std::sync::Arc;

use url::Url;

use crate::clock::Clock;
use crate::config::{Config, SourceUrl};
use crate::model::{Exchange, ExchangeApi};
use crate::server::{self, PriceServer, ServerOptions};
use crate::source::{exchanges, tls, ClientLimits, Endpoint, Endpoints, PriceClient, SourceError};

/// Why a price source is not ready to fetch from.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("cannot start the built-in price server: {0}")]
    BuiltinServer(#[source] std::io::Error),
    #[error("the price source is unreachable: {0}")]
    Unreachable(#[source] SourceError),
    #[error("exchanges.{exchange}: {source}")]
    Tls {
        exchange: Exchange,
        #[source]
        source: tls::TlsError,
    },
    #[error("exchanges.{exchange}: the built-in server cannot speak {api}: {reason}")]
    BuiltinDialect {
        exchange: Exchange,
        api: ExchangeApi,
        reason: String,
    },
    #[error("exchanges.{exchange}: {api}'s default URL {url:?} is not a URL")]
    DefaultUrl {
        exchange: Exchange,
        api: ExchangeApi,
        url: &'static str,
    },
}

/// A price source ready to fetch from; keeps the built-in server (if any)
/// running for as long as it lives.
pub struct Source {
    pub url: Url,
    /// What every cell fetched from here records as its source: the URL, or
    /// for the built-in server its dataset (its URL changes at each start).
    pub identity: Arc<str>,
    pub builtin: Option<PriceServer>,
    /// The exchanges asked elsewhere than `url` (`[exchanges.NAME]`).
    pub endpoints: Arc<Endpoints>,
    /// Built-in servers started for exchanges with `url = "builtin"`.
    pub dialect_servers: Vec<PriceServer>,
}

impl Source {
    /// A server that is already running at `url`.
    pub fn remote(url: Url) -> Source {
        Source {
            identity: Arc::from(url.as_str()),
            url,
            builtin: None,
            endpoints: Arc::default(),
            dialect_servers: Vec::new(),
        }
    }

    /// Starts the built-in server on a loopback ephemeral port if the
    /// config asks for it; otherwise uses the configured URL.
    pub fn start(config: &Config) -> Result<Source, OriginError> {
        Self::start_with_clock(config, &Clock::system())
    }

    /// As `start`, with the built-in server publishing prices by `clock`.
    pub fn start_with_clock(config: &Config, clock: &Clock) -> Result<Source, OriginError> {
        let mut source = Self::start_classic(config, clock)?;
        for (exchange, x) in &config.exchanges {
            let (url, identity) = match &x.url {
                Some(SourceUrl::Remote(url)) => (url.clone(), format!("{}:{url}", x.api)),
                Some(SourceUrl::Builtin) => {
                    let server = start_dialect(config, clock, exchange, x.api)?;
                    let url = server.url();
                    source.dialect_servers.push(server);
                    let seed = config.source.builtin.seed;
                    (url, format!("{}:builtin:seed={seed}", x.api))
                }
                None => match exchanges::adapter(x.api) {
                    Some(adapter) => {
                        let raw = adapter.default_url();
                        let url = Url::parse(raw).map_err(|_| OriginError::DefaultUrl {
                            exchange: exchange.clone(),
                            api: x.api,
                            url: raw,
                        })?;
                        (url.clone(), format!("{}:{url}", x.api))
                    }
                    None => (source.url.clone(), format!("classic:{}", source.identity)),
                },
            };
            let ca_files: Vec<PathBuf> = config
                .source
                .ca_file
                .iter()
                .chain(x.ca_file.iter())
                .cloned()
                .collect();
            if url.scheme() == "https" {
                tls::client_config(&ca_files).map_err(|source| OriginError::Tls {
                    exchange: exchange.clone(),
                    source,
                })?;
            }
            Arc::make_mut(&mut source.endpoints).insert(
                exchange.clone(),
                Endpoint {
                    api: x.api,
                    url,
                    identity: Arc::from(identity),
                    ca_files,
                    user_agent: x.user_agent.as_deref().map(Arc::from),
                },
            );
        }
        Ok(source)
    }

    /// The `[source]` server: remote, or the built-in one started here
    /// when something uses it (`Config::uses_classic_source`).
    fn start_classic(config: &Config, clock: &Clock) -> Result<Source, OriginError> {
        match &config.source.url {
            SourceUrl::Remote(url) => Ok(Source::remote(url.clone())),
            SourceUrl::Builtin if !config.uses_classic_source() => {
                // Nothing asks it: a URL that refuses, should anything try.
                let mut source = Source::remote(unused_url());
                source.identity = Arc::from("builtin:unused");
                Ok(source)
            }
            SourceUrl::Builtin => {
                let mut opts = ServerOptions::new(
                    std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                    config.source.builtin.seed,
                );
                opts.latency = config.source.builtin.latency;
                opts.publish_delay = config.source.builtin.publish_delay;
                opts.clock = clock.clone();
                opts.workers = 2;
                let server = server::start(&opts).map_err(OriginError::BuiltinServer)?;
                Ok(Source {
                    url: server.url(),
                    identity: Arc::from(format!("builtin:seed={}", config.source.builtin.seed)),
                    builtin: Some(server),
                    endpoints: Arc::default(),
                    dialect_servers: Vec::new(),
                })
            }
        }
    }

    /// Fails with a clear error when the source does not answer
    /// `/exchanges`; nothing to check when nothing uses it.
    pub async fn check_reachable(&self, config: &Config) -> Result<(), OriginError> {
        if !config.uses_classic_source() {
            return Ok(());
        }
        let client = PriceClient::new(&self.url, &ClientLimits::from_config(&config.source, 1));
        client.exchanges().await.map_err(OriginError::Unreachable)?;
        Ok(())
    }

    /// Stops the built-in servers this source started, if any.
    pub async fn stop(&self) {
        if let Some(server) = &self.builtin {
            server.stop().await;
        }
        for server in &self.dialect_servers {
            server.stop().await;
        }
    }
}

/// Where an unused built-in `[source]` points: the discard port on
/// loopback, which refuses.
fn unused_url() -> Url {
    Url::parse("http://127.0.0.1:9/").unwrap_or_else(|_| unreachable!("a constant URL"))
}

/// Starts the built-in server speaking `api` for `exchange`'s prices of
/// the built-in dataset, on a loopback port.
fn start_dialect(
    config: &Config,
    clock: &Clock,
    exchange: &Exchange,
    api: ExchangeApi,
) -> Result<PriceServer, OriginError> {
    let mut opts = ServerOptions::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        config.source.builtin.seed,
    );
    opts.dialect = api;
    opts.exchange = Some(exchange.clone());
    opts.latency = config.source.builtin.latency;
    opts.publish_delay = config.source.builtin.publish_delay;
    opts.clock = clock.clone();
    opts.workers = 1;
    server::start(&opts).map_err(|e| OriginError::BuiltinDialect {
        exchange: exchange.clone(),
        api,
        reason: e.to_string(),
    })
}
