//! `pricegrid snapshots`: list the rounds in the record, newest first: when
//! each started and finished, its status, the config version it ran under
//! and its counts. Each is a snapshot `query --round` and `export --round`
//! answer for (unless compaction folded its history).

use std::io::Write;
use std::process::ExitCode;

use crate::cli::SnapshotsArgs;
use crate::render::{self, Format};

pub fn snapshots(args: &SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let rounds = args.record.open()?.rounds()?;
    let format = args
        .format
        .unwrap_or_else(|| super::default_format(Format::Json));
    let text = render::render_rounds(&rounds, format);
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
