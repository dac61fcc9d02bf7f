//! `pricegrid export`: write the aggregate as it stands (or as it stood at
//! the end of `--round N`, or of the newest round finished `--at` a time)
//! as a JSON snapshot (the file format `crate::snapshot` owns, which
//! `query --snapshot` and the daemon's one-time import read), as CSV, or as
//! Parquet (`render::parquet`).
//!
//! Reads the record read-only, beside a running daemon; writes only the
//! output file, atomically (or standard output).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{ExportArgs, ExportFormat};
use crate::model::Counts;
use crate::query::Filter;
use crate::render;
use crate::snapshot::Snapshot;

pub fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    if args.reference && !matches!(args.format, ExportFormat::Parquet) {
        anyhow::bail!(
            "--reference is written as Parquet only (--format parquet); `pricegrid query \
             --reference` prints the reference closes as a table, CSV or JSON"
        );
    }
    let record = args.record.open()?;
    let asked = args.point.round(&record)?;
    if args.reference {
        return export_references(args, &record, asked);
    }
    let store = super::query::selected(&record, asked, &Filter::default())?;
    let rounds = record.rounds()?;
    // The header: the round asked for, else the newest recorded.
    let header = match asked {
        Some(round) => rounds.iter().find(|r| r.round == round),
        None => rounds.first(),
    };
    let (round, config_version, counts) = match header {
        Some(r) => (r.round, r.config_version, r.counts),
        None => (asked.unwrap_or(0), 0, Counts::default()),
    };
    let stored = store.counts_by_state();
    let cells: usize = stored.values().sum();
    let to_stdout = args.output.as_os_str() == "-";
    match args.format {
        ExportFormat::Json => {
            let snapshot = Snapshot::new(config_version, round, counts, store);
            write_output(&args.output, |out| {
                snapshot
                    .write_to(&mut *out)
                    .map_err(std::io::Error::other)?;
                if to_stdout {
                    writeln!(out)?;
                }
                Ok(())
            })?;
        }
        ExportFormat::Csv => {
            let text = render::render_cells(&store);
            write_output(&args.output, |out| out.write_all(text.as_bytes()))?;
        }
        ExportFormat::Parquet => {
            write_output(&args.output, |out| {
                render::parquet::write_cells(&store, out)
                    .map(drop)
                    .map_err(std::io::Error::other)
            })?;
        }
    }
    if !to_stdout {
        let by_state = stored
            .iter()
            .map(|(state, n)| format!("{} {n}", state.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "round {round} ({cells} cells: {by_state}) -> {}",
            args.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `export --format parquet --reference`: the reference closes as they
/// stood at the round asked for (now, without one).
fn export_references(
    args: &ExportArgs,
    record: &crate::record::Record,
    asked: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let rows = record.references(None, None, None, asked)?;
    write_output(&args.output, |out| {
        render::parquet::write_references(&rows, out)
            .map(drop)
            .map_err(std::io::Error::other)
    })?;
    if args.output.as_os_str() != "-" {
        println!(
            "{} reference closes ({}) -> {}",
            rows.len(),
            asked.map_or("now".to_owned(), |r| format!("round {r}")),
            args.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A writer the Parquet encoder may hold (it asks for `Send`).
trait WriteSend: Write + Send {}
impl<W: Write + Send> WriteSend for W {}

/// Writes `output` with `write`: to stdout for `-`, otherwise whole or not
/// at all (`crate::atomic`), an error naming the file.
fn write_output(
    output: &std::path::Path,
    write: impl FnOnce(&mut dyn WriteSend) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    if output.as_os_str() == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout());
        write(&mut out)?;
        out.flush()?;
    } else {
        crate::atomic::write_file(output, |out| write(out))
            .with_context(|| format!("writing {}", output.display()))?;
    }
    Ok(())
}
