//! Fault injection for the built-in price server: the ways a real price
//! server fails (5xx, dropped connections, stalls, garbage bodies), served on
//! purpose and at chosen rates so the daemon's reliability can be tested
//! against the real thing over loopback.
//!
//! Owns the fault options (`Faults`), the draw that decides a request's fault
//! and the faulty answers themselves. The request handler in `server` asks it
//! what to do for each `GET /price/...`; it is never consulted for
//! `/exchanges` or `/symbols`, and it never looks at the dataset.

use std::fmt;
use std::io;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web::Bytes, HttpResponse};
use chrono::NaiveDate;
use futures_util::stream;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::wire::{ErrorBody, PriceBody};

/// How long a stalled answer waits by default: longer than the daemon's
/// default `source.timeout` (10 s), so a stall is a time-out for it.
pub const DEFAULT_STALL: Duration = Duration::from_secs(30);

/// Which faults to inject into price answers, and how often. The default
/// injects none.
///
/// Each rate is an independent probability, checked in a fixed order
/// (reset, stall, fail, garbage); the first that hits decides the request's
/// one fault. So a rate alone is the share of requests getting that fault,
/// and with several set, a later kind gets its rate of what the earlier ones
/// left.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Answer `500` or `503` with a JSON error body.
    pub fail_rate: f64,
    /// Drop the connection without answering.
    pub reset_rate: f64,
    /// Wait `stall` before answering (normally).
    pub stall_rate: f64,
    pub stall: Duration,
    /// Answer `200` with a body that is not a valid price for the request.
    pub garbage_rate: f64,
    /// Request `n`'s fault is a pure function of (`seed`, `n`), so a run is
    /// reproducible in distribution, and exactly so for sequential requests.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fail_rate: 0.0,
            reset_rate: 0.0,
            stall_rate: 0.0,
            stall: DEFAULT_STALL,
            garbage_rate: 0.0,
            seed: 0,
        }
    }
}

/// Why fault options cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultsError {
    /// `option` is named as on the command line (`fail-rate`).
    #[error("--{option} is {value}, but a rate is a probability: give a number within 0..=1")]
    RateOutOfRange { option: &'static str, value: f64 },
}

/// NaN is not a probability either.
fn is_probability(value: f64) -> bool {
    (0.0..=1.0).contains(&value)
}

fn check_rate(option: &'static str, value: f64) -> Result<(), FaultsError> {
    if is_probability(value) {
        Ok(())
    } else {
        Err(FaultsError::RateOutOfRange { option, value })
    }
}

/// A command-line rate: a number within 0..=1.
pub fn parse_rate(raw: &str) -> Result<f64, String> {
    let value: f64 = raw
        .trim()
        .parse()
        .map_err(|e| format!("{raw:?} is not a number: {e}"))?;
    if is_probability(value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is not a probability: give a number within 0..=1"
        ))
    }
}

impl Faults {
    /// Checks every rate; the error names the first bad option.
    pub fn check(&self) -> Result<(), FaultsError> {
        check_rate("reset-rate", self.reset_rate)?;
        check_rate("stall-rate", self.stall_rate)?;
        check_rate("fail-rate", self.fail_rate)?;
        check_rate("garbage-rate", self.garbage_rate)?;
        Ok(())
    }

    /// Whether any fault can happen at all.
    pub fn any(&self) -> bool {
        [
            self.reset_rate,
            self.stall_rate,
            self.fail_rate,
            self.garbage_rate,
        ]
        .iter()
        .any(|r| *r > 0.0)
    }

    /// The fault for the `n`th price request (counting from 0), if any.
    ///
    /// Every draw consumes the same random numbers whatever the rates, so
    /// changing one rate does not reshuffle the others' choices.
    pub fn draw(&self, n: u64) -> Option<Fault> {
        if !self.any() {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(n);
        let mut hit = |rate: f64| rng.gen::<f64>() < rate;
        let (reset, stall, fail, garbage) = (
            hit(self.reset_rate),
            hit(self.stall_rate),
            hit(self.fail_rate),
            hit(self.garbage_rate),
        );
        let status = if rng.gen::<bool>() { 503 } else { 500 };
        let kind = match rng.gen_range(0..4) {
            0 => Garbage::Truncated,
            1 => Garbage::NotJson,
            2 => Garbage::WrongDay,
            _ => Garbage::NegativeVolume,
        };
        if reset {
            Some(Fault::Reset)
        } else if stall {
            Some(Fault::Stall(self.stall))
        } else if fail {
            Some(Fault::Fail { status })
        } else if garbage {
            Some(Fault::Garbage(kind))
        } else {
            None
        }
    }
}

/// The kinds of fault, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    Reset,
    Stall,
    Fail,
    Garbage,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Reset,
        FaultKind::Stall,
        FaultKind::Fail,
        FaultKind::Garbage,
    ];

    pub(super) fn index(self) -> usize {
        match self {
            FaultKind::Reset => 0,
            FaultKind::Stall => 1,
            FaultKind::Fail => 2,
            FaultKind::Garbage => 3,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::Reset => "reset",
            FaultKind::Stall => "stall",
            FaultKind::Fail => "5xx",
            FaultKind::Garbage => "garbage",
        })
    }
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Drop the connection without answering.
    Reset,
    /// Wait this long, then answer normally.
    Stall(Duration),
    /// Answer with this 5xx status.
    Fail { status: u16 },
    /// Answer `200` with this broken body.
    Garbage(Garbage),
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Reset => FaultKind::Reset,
            Fault::Stall(_) => FaultKind::Stall,
            Fault::Fail { .. } => FaultKind::Fail,
            Fault::Garbage(_) => FaultKind::Garbage,
        }
    }
}

/// The broken `200` bodies a garbage fault chooses among.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbage {
    /// The first half of the real price's JSON.
    Truncated,
    /// An HTML error page, as a misconfigured proxy sends.
    NotJson,
    /// A valid price whose `day` is the day after the requested one.
    WrongDay,
    /// A valid price with a negative `volume`.
    NegativeVolume,
}

/// `500`/`503` with a JSON error body; a `503` asks to come back in a second.
pub(super) fn server_error(status: u16) -> HttpResponse {
    let mut builder = if status == 503 {
        let mut b = HttpResponse::ServiceUnavailable();
        b.insert_header((header::RETRY_AFTER, "1"));
        b
    } else {
        HttpResponse::InternalServerError()
    };
    builder.json(ErrorBody::new(format!("injected fault: HTTP {status}")))
}

/// A response whose body fails on its first poll: actix-http then drops the
/// connection before writing anything, headers included, so the client sees
/// the connection closed with no answer (a transport error for any client).
///
/// Sending the headers and part of a `Content-Length` body first would be a
/// more faithful mid-answer reset, but awc takes an early EOF as the end of
/// the body and hands over the truncated bytes as a complete `200`.
pub(super) fn reset() -> HttpResponse {
    let abort = stream::once(async {
        Err::<Bytes, _>(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "injected fault: connection reset",
        ))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .streaming(abort)
}

/// A `200` whose body `kind` breaks. `body` is the honest answer (or a
/// stand-in where there is none).
pub(super) fn garbage(kind: Garbage, mut body: PriceBody) -> HttpResponse {
    let json = |b: Bytes| HttpResponse::Ok().content_type("application/json").body(b);
    match kind {
        Garbage::Truncated => {
            let full = serialize(&body);
            json(full.slice(..full.len() / 2))
        }
        Garbage::NotJson => not_json(),
        Garbage::WrongDay => {
            let Some(next) = NaiveDate::parse_from_str(&body.day, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.succ_opt())
            else {
                // An unparseable date has no day after; still break the body.
                return not_json();
            };
            body.day = next.format("%Y-%m-%d").to_string();
            json(serialize(&body))
        }
        Garbage::NegativeVolume => {
            body.volume = if body.volume > 0.0 {
                -body.volume
            } else {
                -1.0
            };
            json(serialize(&body))
        }
    }
}

fn not_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html")
        .body("<html><body><h1>502 Bad Gateway</h1>injected fault</body></html>")
}

fn serialize(body: &PriceBody) -> Bytes {
    // A struct of strings and numbers always serialises; a non-finite number
    // (impossible in a checked `Ohlcv`) would come out as `null`.
    Bytes::from(serde_json::to_vec(body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(kind: FaultKind, rate: f64) -> Faults {
        let mut f = Faults {
            seed: 9,
            ..Faults::default()
        };
        match kind {
            FaultKind::Reset => f.reset_rate = rate,
            FaultKind::Stall => f.stall_rate = rate,
            FaultKind::Fail => f.fail_rate = rate,
            FaultKind::Garbage => f.garbage_rate = rate,
        }
        f
    }

    #[test]
    fn no_faults_by_default() {
        let f = Faults::default();
        assert!(!f.any());
        assert!((0..1000).all(|n| f.draw(n).is_none()));
    }

    #[test]
    fn a_rate_of_one_always_hits_and_zero_never() {
        for kind in FaultKind::ALL {
            let f = only(kind, 1.0);
            assert!((0..200).all(|n| f.draw(n).map(|x| x.kind()) == Some(kind)));
            let f = only(kind, 0.0);
            assert!((0..200).all(|n| f.draw(n).is_none()));
        }
    }

    #[test]
    fn draws_are_reproducible_and_depend_on_the_seed() {
        let a = only(FaultKind::Fail, 0.5);
        let b = Faults {
            seed: 10,
            ..a.clone()
        };
        let run = |f: &Faults| (0..200).map(|n| f.draw(n)).collect::<Vec<_>>();
        assert_eq!(run(&a), run(&a));
        assert_ne!(run(&a), run(&b));
    }

    #[test]
    fn the_order_is_reset_stall_fail_garbage() {
        let all = Faults {
            fail_rate: 1.0,
            reset_rate: 1.0,
            stall_rate: 1.0,
            garbage_rate: 1.0,
            ..Faults::default()
        };
        assert_eq!(all.draw(0), Some(Fault::Reset));
        let no_reset = Faults {
            reset_rate: 0.0,
            ..all.clone()
        };
        assert_eq!(no_reset.draw(0).map(|f| f.kind()), Some(FaultKind::Stall));
        let fail_or_garbage = Faults {
            stall_rate: 0.0,
            ..no_reset
        };
        assert_eq!(
            fail_or_garbage.draw(0).map(|f| f.kind()),
            Some(FaultKind::Fail)
        );
    }

    #[test]
    fn every_status_and_garbage_kind_occurs() {
        let fail = only(FaultKind::Fail, 1.0);
        let statuses: std::collections::HashSet<_> = (0..100)
            .filter_map(|n| match fail.draw(n) {
                Some(Fault::Fail { status }) => Some(status),
                _ => None,
            })
            .collect();
        assert_eq!(statuses, [500, 503].into());
        let garbage = only(FaultKind::Garbage, 1.0);
        let kinds: Vec<_> = (0..100)
            .filter_map(|n| match garbage.draw(n) {
                Some(Fault::Garbage(g)) => Some(g),
                _ => None,
            })
            .collect();
        for g in [
            Garbage::Truncated,
            Garbage::NotJson,
            Garbage::WrongDay,
            Garbage::NegativeVolume,
        ] {
            assert!(kinds.contains(&g), "{g:?} never drawn");
        }
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused_by_name() {
        assert!(Faults::default().check().is_ok());
        for (faults, option) in [
            (only(FaultKind::Fail, 1.5), "--fail-rate"),
            (only(FaultKind::Reset, -0.1), "--reset-rate"),
            (only(FaultKind::Stall, f64::NAN), "--stall-rate"),
            (only(FaultKind::Garbage, 2.0), "--garbage-rate"),
        ] {
            let err = faults.check().unwrap_err().to_string();
            assert!(err.contains(option) && err.contains("0..=1"), "{err}");
        }
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert!(parse_rate("1.01").unwrap_err().contains("0..=1"));
        assert!(parse_rate("lots").unwrap_err().contains("not a number"));
    }
}
