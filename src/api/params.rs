//! The query parameters of the API's routes, parsed at the edge: a query
//! string becomes a typed `Params` (a `Filter`, a field, a format, a page)
//! or a `ParamError` naming the parameter and what was wrong, answered as a
//! JSON 400. Pure parsing: no handler, no store, no I/O.

use std::str::FromStr;

use actix_web::HttpResponse;
use serde::Serialize;

use crate::config::Day;
use crate::model::Symbol;
use crate::query::{self, names, Field, Filter};
use crate::render::Format;

/// A bad query parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("parameter '{parameter}': {error}")]
pub struct ParamError {
    pub parameter: String,
    pub error: String,
}

impl ParamError {
    pub(super) fn new(parameter: &str, error: impl Into<String>) -> Self {
        Self {
            parameter: parameter.to_owned(),
            error: error.into(),
        }
    }

    pub(super) fn response(&self) -> HttpResponse {
        HttpResponse::BadRequest().json(self)
    }
}

/// Rows in a page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 10_000;
/// Most rows in a page.
pub const MAX_LIMIT: usize = 100_000;
/// Longest query string answered; a longer one is a 400 naming it.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// A query string longer than `MAX_QUERY_BYTES` is refused, naming it.
/// Every route checks this (`access`), well below the HTTP layer's own
/// ceilings (a request target over 65,534 bytes, a head over 128 KiB),
/// which actix-http answers before any handler with an empty 400 or 431.
pub(super) fn check_query_size(query: &str) -> Result<(), ParamError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ParamError::new(
            "query",
            format!(
                "the query string is {} bytes, more than {MAX_QUERY_BYTES}: ask for fewer names at a time",
                query.len()
            ),
        ));
    }
    Ok(())
}

/// The parameters `/v1/prices` and `/v1/aggregate` take.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub filter: Filter,
    pub field: Option<Field>,
    pub format: Option<Format>,
    /// Rows in a page (1..=MAX_LIMIT).
    pub limit: usize,
    /// Where the page starts: the `next` of the page before.
    pub after: Option<String>,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            filter: Filter::default(),
            field: None,
            format: None,
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// Parses a query string, accepting only `allowed` parameters. Lists are
/// comma-separated (`exchange=kraken,bitstamp`) or repeated.
pub fn parse_params(query: &str, allowed: &[&str]) -> Result<Params, ParamError> {
    check_query_size(query)?;
    let mut p = Params::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let key = key.as_ref();
        if !allowed.contains(&key) {
            return Err(ParamError::new(
                key,
                format!("unknown parameter, expected one of: {}", allowed.join(", ")),
            ));
        }
        let day = |v: &str| {
            v.parse::<Day>()
                .map(|d| d.0)
                .map_err(|e| ParamError::new(key, e))
        };
        match key {
            "exchange" => {
                for name in value.split(',').filter(|s| !s.is_empty()) {
                    p.filter.exchanges.insert(
                        names::exchange(name).map_err(|e| ParamError::new(key, e.to_string()))?,
                    );
                }
            }
            "symbol" => {
                for name in value.split(',').filter(|s| !s.is_empty()) {
                    p.filter.symbols.insert(
                        names::symbol(name).map_err(|e| ParamError::new(key, e.to_string()))?,
                    );
                }
            }
            "final_only" | "exclude_flagged" => {
                let on = match value.as_ref() {
                    "" | "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(ParamError::new(
                            key,
                            format!("{other:?} is not a boolean, expected true or false"),
                        ))
                    }
                };
                if key == "final_only" {
                    p.filter.final_only = on;
                } else {
                    p.filter.exclude_flagged = on;
                }
            }
            "limit" => {
                p.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ParamError::new(
                            key,
                            format!("{value:?} is not a row count from 1 to {MAX_LIMIT}"),
                        )
                    })?
            }
            "after" => p.after = Some(value.into_owned()),
            "from" => p.filter.from = Some(day(&value)?),
            "to" => p.filter.to = Some(day(&value)?),
            "field" => {
                p.field = Some(
                    value
                        .parse()
                        .map_err(|e: query::ParseFieldError| ParamError::new(key, e.to_string()))?,
                )
            }
            "format" => p.format = Some(api_format(&value).map_err(|e| ParamError::new(key, e))?),
            _ => {}
        }
    }
    if let (Some(from), Some(to)) = (p.filter.from, p.filter.to) {
        if from > to {
            return Err(ParamError::new(
                "to",
                format!("{to} is before from = {from}"),
            ));
        }
    }
    Ok(p)
}

/// The formats the API answers in: `Format`'s own names, less `table`
/// (aligned text is for terminals, not for programs reading a URL).
pub(super) fn api_format(raw: &str) -> Result<Format, String> {
    match Format::from_str(raw) {
        Ok(f @ (Format::Json | Format::Csv)) => Ok(f),
        Ok(Format::Table) | Err(_) => Err(format!(
            "{raw:?} is not a format the API answers in, expected one of 'json', 'csv'"
        )),
    }
}

/// `symbol/YYYY-MM-DD`, the cursor of `/v1/aggregate`.
pub(super) fn parse_group_cursor(raw: &str) -> Result<(Symbol, chrono::NaiveDate), String> {
    let bad = || format!("{raw:?} is not a cursor symbol/YYYY-MM-DD (take the `next` of a page)");
    let (s, d) = raw.split_once('/').ok_or_else(bad)?;
    Ok((
        Symbol::new(s).map_err(|_| bad())?,
        d.parse::<Day>().map_err(|_| bad())?.0,
    ))
}
