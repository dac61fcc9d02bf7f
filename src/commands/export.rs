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
            if to_stdout {
                let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                snapshot.write_to(&mut w)?;
                writeln!(w)?;
                w.flush()?;
            } else {
                snapshot
                    .write_atomic(&args.output)
                    .with_context(|| format!("writing {}", args.output.display()))?;
            }
        }
        ExportFormat::Csv => {
            let text = render::render_cells(&store);
            if to_stdout {
                std::io::stdout().lock().write_all(text.as_bytes())?;
            } else {
                write_atomic(&args.output, |file| file.write_all(text.as_bytes()))
                    .with_context(|| format!("writing {}", args.output.display()))?;
            }
        }
        ExportFormat::Parquet => {
            let parquet = |out: &mut dyn WriteSend| {
                render::parquet::write_cells(&store, out)
                    .map(drop)
                    .map_err(std::io::Error::other)
            };
            if to_stdout {
                let mut out = std::io::BufWriter::new(std::io::stdout());
                parquet(&mut out)?;
                out.flush()?;
            } else {
                write_atomic(&args.output, |file| {
                    let mut out = std::io::BufWriter::new(file);
                    parquet(&mut out)?;
                    out.flush()
                })
                .with_context(|| format!("writing {}", args.output.display()))?;
            }
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
    let parquet = |out: &mut dyn WriteSend| {
        render::parquet::write_references(&rows, out)
            .map(drop)
            .map_err(std::io::Error::other)
    };
    if args.output.as_os_str() == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout());
        parquet(&mut out)?;
        out.flush()?;
    } else {
        write_atomic(&args.output, |file| {
            let mut out = std::io::BufWriter::new(file);
            parquet(&mut out)?;
            out.flush()
        })
        .with_context(|| format!("writing {}", args.output.display()))?;
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

/// Writes a temporary file beside `path` with `write`, syncs it and renames
/// it over `path`, so a reader never sees half a file; a failed write
/// leaves no temporary file behind.
fn write_atomic(
    path: &std::path::Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    let written = write(&mut file).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
}
