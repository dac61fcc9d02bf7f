//! The built-in crypto price server (`pricegrid serve`, and `source.url =
//! "builtin"`): the API of `price-api.md` over actix-web.
//!
//! Owns the HTTP side only; prices come from a `Dataset`, revealed over time
//! as `publication` says (off by default: the dataset as it is), bodies are
//! the shared `wire` types, and deliberate failures of price answers come
//! from `faults` (off by default). It counts the price requests it answers
//! and the faults it injects (`ServerStats`) so tests can prove what a client
//! did or did not ask for. It never touches the daemon's actors. With a
//! `dialect`, `dialects` serves a real exchange's API over the same dataset
//! instead of the classic routes.

pub mod dataset;
pub mod dialects;
pub mod faults;
pub mod publication;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{dev::ServerHandle, web, HttpResponse};
use chrono::NaiveDate;
use serde::Serialize;

use crate::clock::Clock;
use crate::model::{Exchange, ExchangeApi, Ohlcv};
use crate::wire::{self, ErrorBody, PriceBody};

pub use dataset::{Dataset, GeneratedSpec, Lookup};
pub use faults::{Fault, FaultKind, Faults, FaultsError, Garbage};

pub use crate::model::DEFAULT_SEED;

/// How "no price" is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingStyle {
    /// `404` with a JSON error body.
    #[default]
    NotFound,
    /// `200` with the body `null`, as the classic server does.
    Null,
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    /// Delay before every price answer.
    pub latency: Duration,
    pub dataset: Arc<Dataset>,
    pub missing: MissingStyle,
    /// actix-web worker threads.
    pub workers: usize,
    /// Faults to inject into price answers; none by default.
    pub faults: Faults,
    /// What time it is, for `publish_delay`; the system clock by default.
    pub clock: Clock,
    /// With `Some(delay)`, prices appear as they would at a real exchange
    /// (see `publication`): none for a future day, a partial candle for
    /// today, none for a closed day until `delay` after its close, then
    /// the full price. `None` (the default): a dataset that runs to today
    /// (the generated one) is published with no delay, as a live exchange
    /// does; any other (a `--data` file) is served as it is.
    pub publish_delay: Option<Duration>,
    /// Which API the server speaks: `ExchangeApi::Classic` (the default) is the
    /// classic server; a real exchange's API serves that exchange's
    /// candle and instruments endpoints instead (see `dialects`).
    pub dialect: ExchangeApi,
    /// Whose prices a dialect serves: the dataset exchange of this name.
    /// `None`: the exchange named like the dialect (`kraken`). Ignored by
    /// the classic server, which serves every exchange.
    pub exchange: Option<Exchange>,
    /// Candle requests a second a dialect answers (a token bucket with a
    /// burst of `max(1, floor(N))`); over it, the dialect's throttling
    /// answer. `None`: no limit. Only for dialects.
    pub rate_limit: Option<f64>,
    /// Binance only: after this many 429s in a row, answer 418 (an IP ban)
    /// for `ban_for`.
    pub ban_after: Option<u32>,
    /// How long a Binance ban lasts.
    pub ban_for: Duration,
}

impl ServerOptions {
    /// The classic generated dataset on `listen`, no latency, one worker.
    pub fn new(listen: SocketAddr, seed: u64) -> Self {
        Self {
            listen,
            latency: Duration::ZERO,
            dataset: Arc::new(Dataset::generated(GeneratedSpec::classic(seed))),
            missing: MissingStyle::NotFound,
            workers: 1,
            faults: Faults::default(),
            clock: Clock::system(),
            publish_delay: None,
            dialect: ExchangeApi::Classic,
            exchange: None,
            rate_limit: None,
            ban_after: None,
            ban_for: dialects::DEFAULT_BAN,
        }
    }
}

/// The size of a synthetic universe to serve (`serve --exchanges N
/// --markets N --days N`; see `GeneratedSpec::universe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synthetic {
    /// `None`: one exchange, named like the dialect (`ex-0001` for the
    /// classic API); `Some(n)`: `ex-0001` ... (a dialect serves the first
    /// unless told which).
    pub exchanges: Option<usize>,
    pub markets: usize,
    pub days: u32,
}

impl ServerOptions {
    /// A synthetic universe of `size`, deterministic from `seed`, in
    /// `dialect` on `listen`; otherwise as `new`. Nothing is held per
    /// cell: each candle is computed from (seed, exchange, market, day)
    /// when asked.
    pub fn synthetic(listen: SocketAddr, seed: u64, dialect: ExchangeApi, size: Synthetic) -> Self {
        let exchanges = match size.exchanges {
            None if dialect != ExchangeApi::Classic => {
                vec![Exchange::new(dialect.as_str()).expect("a dialect's name is an exchange name")]
            }
            None => GeneratedSpec::numbered_exchanges(1),
            Some(n) => GeneratedSpec::numbered_exchanges(n),
        };
        let served = (dialect != ExchangeApi::Classic)
            .then(|| exchanges.first().cloned())
            .flatten();
        let spec = GeneratedSpec::universe(seed, exchanges, size.markets, size.days);
        Self {
            dataset: Arc::new(Dataset::generated(spec)),
            dialect,
            exchange: served,
            ..Self::new(listen, seed)
        }
    }
}

/// Requests the server has answered, and the faults it injected into them.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Classic price requests, or a dialect's candle requests (throttled
    /// ones included).
    price_requests: AtomicU64,
    /// Candle requests answered with the dialect's throttling answer (or a
    /// Binance ban).
    throttled: AtomicU64,
    /// Threads in `wait_for_price_requests`; the request path touches the
    /// lock and condvar only when there is one.
    waiters: std::sync::atomic::AtomicUsize,
    arrived: std::sync::Mutex<()>,
    arrival: std::sync::Condvar,
    /// By `FaultKind::index`.
    injected: [AtomicU64; 4],
    /// exchange -> (price requests being answered now, most at once so far).
    concurrency: std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>,
    /// Price requests being answered now, of every exchange.
    answering: AtomicU64,
    /// The most `answering` has been.
    most_answering: AtomicU64,
}

/// Counts one price request as being answered until dropped.
struct Answering<'a> {
    stats: &'a ServerStats,
    exchange: String,
}

impl<'a> Answering<'a> {
    fn new(stats: &'a ServerStats, exchange: &str) -> Self {
        let mut map = stats.concurrency.lock().unwrap_or_else(|e| e.into_inner());
        let slot = map.entry(exchange.to_owned()).or_default();
        slot.0 += 1;
        slot.1 = slot.1.max(slot.0);
        drop(map);
        let now = stats.answering.fetch_add(1, Ordering::SeqCst) + 1;
        stats.most_answering.fetch_max(now, Ordering::SeqCst);
        Self {
            stats,
            exchange: exchange.to_owned(),
        }
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        let mut map = self
            .stats
            .concurrency
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = map.get_mut(&self.exchange) {
            slot.0 = slot.0.saturating_sub(1);
        }
        self.stats.answering.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ServerStats {
    /// `GET /price/...` requests received so far.
    pub fn price_requests(&self) -> u64 {
        self.price_requests.load(Ordering::Relaxed)
    }

    /// A dialect's candle requests received so far, throttled ones
    /// included (the same count as `price_requests`, so the waiting helper
    /// serves both servers).
    pub fn candle_requests(&self) -> u64 {
        self.price_requests()
    }

    /// Candle requests answered "too many requests" (or, on Binance, with
    /// a ban) so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    fn count_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Blocks until at least `n` price requests have arrived, or `limit`
    /// passes; says whether they did. (For tests that must act mid-round.)
    pub fn wait_for_price_requests(&self, n: u64, limit: Duration) -> bool {
        let guard = self.arrived.lock().unwrap_or_else(|e| e.into_inner());
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let (guard, _) = self
            .arrival
            .wait_timeout_while(guard, limit, |_| {
                self.price_requests.load(Ordering::SeqCst) < n
            })
            .unwrap_or_else(|e| e.into_inner());
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
        self.price_requests() >= n
    }

    fn count_price_request(&self) -> u64 {
        let n = self.price_requests.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this after a waiter's check.
            drop(self.arrived.lock().unwrap_or_else(|e| e.into_inner()));
            self.arrival.notify_all();
        }
        n
    }

    /// Faults of one kind injected so far. A stall counts when it begins,
    /// so a client that gave up waiting still sees it counted.
    pub fn injected(&self, kind: FaultKind) -> u64 {
        self.injected[kind.index()].load(Ordering::Relaxed)
    }

    /// The most price requests for `exchange` answered at the same time.
    pub fn max_concurrent(&self, exchange: &str) -> u64 {
        let map = self.concurrency.lock().unwrap_or_else(|e| e.into_inner());
        map.get(exchange).map_or(0, |slot| slot.1)
    }

    /// The most price requests answered at the same time, of every
    /// exchange together.
    pub fn max_concurrent_total(&self) -> u64 {
        self.most_answering.load(Ordering::SeqCst)
    }

    /// Faults of every kind injected so far.
    pub fn injected_total(&self) -> u64 {
        FaultKind::ALL.iter().map(|k| self.injected(*k)).sum()
    }

    fn count_fault(&self, kind: FaultKind) {
        self.injected[kind.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// A server bound and running on the current actix system.
pub struct PriceServer {
    pub addr: SocketAddr,
    pub stats: Arc<ServerStats>,
    pub dataset: Arc<Dataset>,
    handle: ServerHandle,
}

impl PriceServer {
    /// `http://ADDR/`.
    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}/", self.addr))
            .expect("a socket address makes a valid URL")
    }

    /// Stops accepting and closes connections; waits until it has.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

struct State {
    latency: Duration,
    dataset: Arc<Dataset>,
    missing: MissingStyle,
    faults: Faults,
    clock: Clock,
    publish_delay: Option<Duration>,
    stats: Arc<ServerStats>,
}

/// An error answer: the `ErrorBody` the client reads, plus detail for
/// people (which name or date was wrong).
#[derive(Serialize)]
struct ErrorAnswer<'a> {
    #[serde(flatten)]
    body: ErrorBody,
    #[serde(flatten)]
    detail: BTreeMap<&'a str, &'a str>,
}

fn error_answer(status: StatusCode, error: &str, detail: &[(&str, &str)]) -> HttpResponse {
    HttpResponse::build(status).json(ErrorAnswer {
        body: ErrorBody::new(error),
        detail: detail.iter().copied().collect(),
    })
}

async fn exchanges(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(state.dataset.exchanges())
}

async fn symbols(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(state.dataset.symbols())
}

/// What a garbage body is made from where the dataset has no price: a
/// plausible one, so that it still looks like a price.
const STAND_IN: Ohlcv = Ohlcv {
    open: 1.0,
    high: 1.0,
    low: 1.0,
    close: 1.0,
    volume: 1.0,
};

/// A classic price answer is a few hundred bytes: compressing it would cost
/// more than it saves on both ends (a gzip stream's set-up alone), so it is
/// sent as it is whatever the request accepts. The dialects' pages of
/// candles, and the listings, are compressed when asked.
async fn price(state: web::Data<State>, path: web::Path<(String, String, String)>) -> HttpResponse {
    let mut answer = price_answer(state, path).await;
    answer.headers_mut().insert(
        actix_web::http::header::CONTENT_ENCODING,
        actix_web::http::header::HeaderValue::from_static("identity"),
    );
    answer
}

async fn price_answer(
    state: web::Data<State>,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let n = state.stats.count_price_request();
    let (exchange, symbol, date) = path.into_inner();
    let _answering = Answering::new(&state.stats, &exchange);
    if !state.latency.is_zero() {
        actix_rt::time::sleep(state.latency).await;
    }
    let day = NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok();
    let lookup = day.map(|d| {
        let full = state.dataset.lookup(&exchange, &symbol, d);
        publication::published(full, d, state.clock.now(), state.publish_delay)
    });
    if let Some(fault) = state.faults.draw(n) {
        state.stats.count_fault(fault.kind());
        log::debug!(
            "injecting {} into GET /price/{exchange}/{symbol}/{date} (request #{n}): {fault:?}",
            fault.kind()
        );
        match fault {
            Fault::Reset => return faults::reset(),
            Fault::Stall(stall) => actix_rt::time::sleep(stall).await,
            Fault::Fail { status } => return faults::server_error(status),
            Fault::Garbage(kind) => {
                let p = match &lookup {
                    Some(Lookup::Price(p)) => *p,
                    _ => STAND_IN,
                };
                let honest = PriceBody::new(&exchange, &symbol, &p, date.clone());
                return faults::garbage(kind, honest);
            }
        }
    }
    let Some(lookup) = lookup else {
        return error_answer(
            StatusCode::BAD_REQUEST,
            &format!("bad date {date:?}: expected YYYY-MM-DD"),
            &[("date", &date)],
        );
    };
    match lookup {
        Lookup::Price(p) => HttpResponse::Ok().json(PriceBody::new(&exchange, &symbol, &p, date)),
        Lookup::NoPrice => match state.missing {
            MissingStyle::NotFound => error_answer(
                StatusCode::NOT_FOUND,
                wire::NO_PRICE,
                &[("exchange", &exchange), ("symbol", &symbol), ("day", &date)],
            ),
            MissingStyle::Null => HttpResponse::Ok()
                .content_type("application/json")
                .body("null"),
        },
        Lookup::UnknownExchange => error_answer(
            StatusCode::NOT_FOUND,
            wire::UNKNOWN_EXCHANGE,
            &[("exchange", &exchange)],
        ),
        Lookup::UnknownSymbol => error_answer(
            StatusCode::NOT_FOUND,
            wire::UNKNOWN_SYMBOL,
            &[("symbol", &symbol)],
        ),
    }
}

async fn no_route() -> HttpResponse {
    error_answer(
        StatusCode::NOT_FOUND,
        "no such route: see GET /exchanges, /symbols, /price/{exchange}/{symbol}/{date}",
        &[],
    )
}

/// Binds and starts the server on the current actix system, in the
/// background. Logs `listening on http://ADDR`. Fault options with a rate
/// outside 0..=1 are refused (`InvalidInput`) before binding. With a
/// `dialect` other than the classic, starts that dialect's server
/// (`dialects::start`, which has its own checks).
pub fn start(opts: &ServerOptions) -> std::io::Result<PriceServer> {
    if opts.dialect != ExchangeApi::Classic {
        return dialects::start(opts);
    }
    if opts.rate_limit.is_some() || opts.ban_after.is_some() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a rate limit (and --ban-after) needs a dialect: the classic server has none",
        ));
    }
    opts.faults
        .check()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    if opts.faults.any() {
        log::info!("injecting faults into price answers: {:?}", opts.faults);
    }
    let stats = Arc::new(ServerStats::default());
    let state = web::Data::new(State {
        latency: opts.latency,
        dataset: opts.dataset.clone(),
        missing: opts.missing,
        faults: opts.faults.clone(),
        clock: opts.clock.clone(),
        publish_delay: opts.dataset.publish_delay(opts.publish_delay),
        stats: stats.clone(),
    });
    let (addr, handle) = crate::http::start_server(opts.listen, opts.workers, move |app| {
        app.app_data(state.clone())
            .route("/exchanges", web::get().to(exchanges))
            .route("/symbols", web::get().to(symbols))
            .route("/price/{exchange}/{symbol}/{date}", web::get().to(price))
            .default_service(web::to(no_route));
    })?;
    log::info!("listening on http://{addr}");
    Ok(PriceServer {
        addr,
        stats,
        dataset: opts.dataset.clone(),
        handle,
    })
}

/// Runs the server until SIGINT or SIGTERM (`pricegrid serve`).
pub async fn serve(opts: &ServerOptions) -> std::io::Result<()> {
    let server = start(opts)?;
    crate::shutdown::signal().await;
    log::info!("stopping the price server");
    server.stop().await;
    Ok(())
}
