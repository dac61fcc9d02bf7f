//! Where prices come from for one process: a server already running at a
//! URL, or the built-in server started here on a loopback port (what
//! `source.url = "builtin"` asks for), kept alive for as long as the
//! `Source` is.
//!
//! Owns starting and stopping that server and the identity cells record as
//! their source; it makes no price requests beyond the reachability check.

use std::sync::Arc;

use url::Url;

use crate::clock::Clock;
use crate::config::{Config, SourceUrl};
use crate::server::{self, PriceServer, ServerOptions};
use crate::source::{ClientLimits, PriceClient, SourceError};

/// Why a price source is not ready to fetch from.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("cannot start the built-in price server: {0}")]
    BuiltinServer(#[source] std::io::Error),
    #[error("the price source is unreachable: {0}")]
    Unreachable(#[source] SourceError),
}

/// A price source ready to fetch from; keeps the built-in server (if any)
/// running for as long as it lives.
pub struct Source {
    pub url: Url,
    /// What every cell fetched from here records as its source: the URL, or
    /// for the built-in server its dataset (its URL changes at each start).
    pub identity: Arc<str>,
    pub builtin: Option<PriceServer>,
}

impl Source {
    /// A server that is already running at `url`.
    pub fn remote(url: Url) -> Source {
        Source {
            identity: Arc::from(url.as_str()),
            url,
            builtin: None,
        }
    }

    /// Starts the built-in server on a loopback ephemeral port if the
    /// config asks for it; otherwise uses the configured URL.
    pub fn start(config: &Config) -> Result<Source, OriginError> {
        Self::start_with_clock(config, &Clock::system())
    }

    /// As `start`, with the built-in server publishing prices by `clock`.
    pub fn start_with_clock(config: &Config, clock: &Clock) -> Result<Source, OriginError> {
        match &config.source.url {
            SourceUrl::Remote(url) => Ok(Source::remote(url.clone())),
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
                })
            }
        }
    }

    /// Fails with a clear error when the source does not answer `/exchanges`.
    pub async fn check_reachable(&self, config: &Config) -> Result<(), OriginError> {
        let client = PriceClient::new(&self.url, &ClientLimits::from_config(&config.source, 1));
        client.exchanges().await.map_err(OriginError::Unreachable)?;
        Ok(())
    }

    /// Stops the built-in server, if this source started one.
    pub async fn stop(&self) {
        if let Some(server) = &self.builtin {
            server.stop().await;
        }
    }
}
