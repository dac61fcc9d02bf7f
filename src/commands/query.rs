//! `pricegrid query`: read prices from a logged snapshot (no daemon
//! needed). Picks the snapshot (`--snapshot`, or the newest in the snapshot
//! directory, or the one in force `--at` a time), selects rows with
//! `crate::query` and prints them with `crate::render`.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::QueryArgs;
use crate::query::{self, Filter};
use crate::render::{self, Format};
use crate::snapshot::{self, Snapshot};

pub fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from > to {
            anyhow::bail!("--to {} is before --from {}", to.0, from.0);
        }
    }
    let path = match &args.snapshot {
        Some(path) => path.clone(),
        None => snapshot::find(&args.dir.resolve()?, args.at)?.path,
    };
    let snap = Snapshot::load(&path)?;
    let filter = Filter {
        exchanges: args.exchange.into_iter().collect(),
        symbols: args.symbol.into_iter().collect(),
        from: args.from.map(|d| d.0),
        to: args.to.map(|d| d.0),
        final_only: args.final_only,
        exclude_flagged: args.exclude_flagged,
    };
    let rows = query::rows(&snap.prices, &filter);
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
