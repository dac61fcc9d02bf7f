//! `pricegrid snapshots`: list the logged snapshots, newest first, with
//! each one's round and counts (read from its header alone).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::SnapshotsArgs;
use crate::render::{self, Format};
use crate::snapshot;

pub fn snapshots(args: &SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.resolve()?;
    let listed = snapshot::listing(&dir).with_context(|| format!("reading {}", dir.display()))?;
    let format = args
        .format
        .unwrap_or_else(|| super::default_format(Format::Json));
    let text = render::render_listing(&listed, format);
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
