//! `pricegrid coverage`: per (exchange, symbol) of the record, now or as it
//! stood at the end of `--round N` or of the newest round finished `--at`
//! a time, the first and last day held, the cells by state, the gaps (runs
//! of missing, failed and "none" days) and the share final, over the
//! window `--from..--to` (by default the days the selected cells span).
//! The figures are `crate::query::coverage`'s, the text `crate::render`'s.
//!
//! Opens the record read-only, as `query` does, so it runs beside a daemon.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::CoverageArgs;
use crate::query::coverage::{coverage_page, window};
use crate::query::Known;
use crate::render::{self, Format};

pub fn coverage(args: CoverageArgs) -> anyhow::Result<ExitCode> {
    let filter = super::selection(args.exchange, args.symbol, args.from, args.to)?;
    let record = args.record.open()?;
    let (exchanges, symbols) = record.names()?;
    Known { exchanges, symbols }.check(&filter)?;
    let round = args.point.round(&record)?;
    let store = super::query::selected(&record, round, &filter)?;
    let rows = match window(&store, &filter, None) {
        Some(days) => coverage_page(&store, &filter, days, None, usize::MAX).0,
        None => Vec::new(),
    };
    let format = args
        .format
        .unwrap_or_else(|| super::default_format(Format::Csv));
    let text = render::render_coverage(&rows, format);
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
