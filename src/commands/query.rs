//! `pricegrid query`: read prices from the record (no daemon needed): the
//! current values, or the aggregate as it stood at the end of `--round N`
//! or of the newest round finished `--at` a time; or from a JSON snapshot
//! file (`--snapshot`); or the reference closes (`--reference`, from the
//! record's `reference` table). Selects rows with `crate::query` and prints them
//! with `crate::render`.
//!
//! Opens the record read-only, so it runs beside a daemon writing it; a
//! question is filtered in SQL (`Record::cells_now`, or `Record::cells_at`
//! at a point in time), so asking for one symbol reads that symbol's rows
//! only.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::QueryArgs;
use crate::query::{self, Filter, Known};
use crate::record::Record;
use crate::render::{self, Format};
use crate::snapshot::Snapshot;
use crate::store::Store;

pub fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let filter = Filter {
        final_only: args.final_only,
        exclude_flagged: args.exclude_flagged,
        ..super::selection(args.exchange, args.symbol, args.from, args.to)?
    };
    if args.reference {
        return reference(&args.record, &args.point, args.format, &filter);
    }
    let store = match &args.snapshot {
        Some(path) => {
            let store = Snapshot::load(path)?.prices;
            Known::of_store(&store).check(&filter)?;
            store
        }
        None => {
            let record = args.record.open()?;
            let (exchanges, symbols) = record.names()?;
            Known { exchanges, symbols }.check(&filter)?;
            let round = args.point.round(&record)?;
            selected(&record, round, &filter)?
        }
    };
    let rows = query::rows(&store, &filter);
    let format = args
        .format
        .unwrap_or_else(|| super::default_format(Format::Csv));
    let text = if args.across {
        render::render_across(&query::across(&rows), format)
    } else {
        render::render_rows(&rows, args.field, format)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The cells `filter` may keep: the current ones, or those at the end of
/// `round`, read through the record's indexes. Only a question that names
/// nothing (every exchange, symbol and day) loads the whole record.
pub(crate) fn selected(
    record: &Record,
    round: Option<u64>,
    filter: &Filter,
) -> anyhow::Result<Store> {
    let exchanges: Vec<_> = filter.exchanges.iter().cloned().collect();
    let symbols: Vec<_> = filter.symbols.iter().cloned().collect();
    let (from, to) = (filter.from, filter.to);
    let cells = match round {
        Some(round) => record.cells_at(round, &exchanges, &symbols, from, to)?,
        None if exchanges.is_empty() && symbols.is_empty() && from.is_none() && to.is_none() => {
            return Ok(record.load()?.0)
        }
        None => record.cells_now(&exchanges, &symbols, from, to)?,
    };
    let mut store = Store::new();
    for (key, cell) in cells {
        store.put(&key, &cell);
    }
    Ok(store)
}

/// `query --reference`: the record's reference closes, now or as they
/// stood at the end of `--round`/`--at`.
fn reference(
    record: &crate::cli::RecordArgs,
    point: &crate::cli::PointArgs,
    format: Option<Format>,
    filter: &Filter,
) -> anyhow::Result<ExitCode> {
    let record = record.open()?;
    let (_, symbols) = record.names()?;
    Known {
        exchanges: Default::default(),
        symbols,
    }
    .check(filter)?;
    let round = point.round(&record)?;
    let mut rows = Vec::new();
    let symbols: Vec<Option<&crate::model::Symbol>> = if filter.symbols.is_empty() {
        vec![None]
    } else {
        filter.symbols.iter().map(Some).collect()
    };
    // Each constituent's close and volume are its cell's at the same point.
    let cells = selected(&record, round, filter)?;
    for symbol in symbols {
        for recorded in record.references(symbol, filter.from, filter.to, round)? {
            rows.push(
                recorded
                    .with_cells(&cells)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", record.path().display()))?,
            );
        }
    }
    let format = format.unwrap_or_else(|| super::default_format(Format::Csv));
    let text = render::render_references(&rows, format);
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
