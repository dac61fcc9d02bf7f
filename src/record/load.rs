//! Reading the `cells` table into a store at start (`Record::load`): 20M
//! rows at 20M cells, so a row must cost SQLite's step and a slot write,
//! and the work is shared. For the record's one writer (the daemon, which
//! holds the record's lock, so no other writer can commit between two
//! reads) the symbols are cut in two halves of about as many rows (counted
//! on a few days spread over the record), and each half is read and placed
//! on its own thread: the caller's, in its transaction, and a scoped one
//! on a second read-only connection. Each thread fills a store builder of
//! its own (the halves share no series, so nothing is merged cell by
//! cell) and the two are joined at the end. The key is day first, so a
//! half is read a day at a time, each day one seek to its half of the
//! symbols. A row is checked (`Decoder::check`) and placed by the record's
//! integer ids (`Filler`, which PostgreSQL's load uses too): no name is
//! cloned or hashed for it. While it loads, SQLite reads the file through
//! a memory map (`mapped`), so no page is copied into its cache. A reader
//! for `query` beside a running daemon reads on one thread, in one
//! transaction: a second connection would see another moment of the
//! record. A few symbols holding most rows leave the halves uneven: still
//! correct, only slower. Reads only; decides nothing about a cell.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::names::Names;
use super::rows::{day_of, Checked, Decoder, Raw, COLUMNS};
use super::{sql, RecordError, SqliteRecord, BUSY_TIMEOUT};
use crate::store::{SeriesAt, Store, StoreBuilder};

impl SqliteRecord {
    /// What the daemon resumes from: the current value of every cell (the
    /// `cells` table) and the newest round recorded, read in one
    /// transaction so the two agree (`record::load` reads and builds).
    pub fn load(&self) -> Result<(Store, u64), RecordError> {
        let path = &self.path;
        mapped(&self.conn, path, true)?;
        let loaded = (|| {
            let tx = self
                .conn
                .unchecked_transaction()
                .map_err(sql(path, "starting to read cells"))?;
            let store = store(&tx, &*self.interned()?, path, self.writer)?;
            let last = self.last_round()?;
            tx.finish().map_err(sql(path, "reading cells"))?;
            Ok((store, last))
        })();
        mapped(&self.conn, path, false)?;
        loaded
    }
}

/// The first and the last day the record holds. Each its own query:
/// SQLite finds a lone min() or max() of the key's first column by one
/// seek, but the two in one query by a scan of every row (2 s at 20M).
pub(super) const FIRST_AND_LAST_DAY: &str =
    "SELECT (SELECT min(day) FROM cells), (SELECT max(day) FROM cells)";

/// Days sampled to cut the symbols into halves of about as many rows.
const SAMPLED_DAYS: i64 = 8;

/// Every cell of the `cells` table, in a store; `tx` is the caller's read
/// transaction, `writer` whether the caller is the record's one writer.
pub(super) fn store(
    tx: &Connection,
    names: &Names,
    path: &Path,
    writer: bool,
) -> Result<Store, RecordError> {
    let (first, last): (Option<i64>, Option<i64>) = tx
        .query_row(FIRST_AND_LAST_DAY, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql(path, "reading cells"))?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(Store::new());
    };
    let mut filler = Filler::new(names, StoreBuilder::reaching(day_of(last)));
    let split = if writer {
        split_symbols(tx, path, first, last)?
    } else {
        None
    };
    let Some(split) = split else {
        read(tx, path, first, (i64::MIN, i64::MAX), &mut filler)?;
        return Ok(filler.finish());
    };
    let mut other = filler.sibling();
    std::thread::scope(|scope| {
        let later = scope.spawn(|| {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sql(path, "opening the record to read its cells"))?;
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(sql(path, "setting the busy timeout"))?;
            mapped(&conn, path, true)?;
            read(&conn, path, first, (split, i64::MAX), &mut other)
        });
        let read = read(tx, path, first, (i64::MIN, split), &mut filler);
        let later = later
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read.and(later)
    })?;
    filler.absorb(other);
    Ok(filler.finish())
}

/// Whether `conn` reads the file's pages through a memory map (`on`) or
/// by copying each into its page cache (SQLite's default, and the
/// record's outside a load). Mapped, a load of 20M rows copies no page
/// (1.0 of 9.0 s at 20M cells). Set outside a transaction: it takes effect
/// at the next. The map is SQLite's, capped by it (2 GiB by default;
/// pages past the cap are read as usual).
pub(super) fn mapped(conn: &Connection, path: &Path, on: bool) -> Result<(), RecordError> {
    let size: i64 = if on { 1 << 40 } else { 0 };
    conn.query_row(&format!("PRAGMA mmap_size = {size}"), [], |_| Ok(()))
        .optional()
        .map_err(sql(path, "setting how the record is read"))?;
    Ok(())
}

/// The symbol id that cuts the symbols into two halves of about as many
/// cells, counted on `SAMPLED_DAYS` days spread from `first` to `last`
/// (series mostly run on to the newest day, so later days weigh each
/// series alike); `None` when there is nothing to cut.
pub(super) fn split_symbols(
    conn: &Connection,
    path: &Path,
    first: i64,
    last: i64,
) -> Result<Option<i64>, RecordError> {
    let mut stmt = conn
        .prepare("SELECT symbol, count(*) FROM cells WHERE day = ?1 GROUP BY symbol")
        .map_err(sql(path, "counting cells"))?;
    let mut rows_of: BTreeMap<i64, u64> = BTreeMap::new();
    let span = last - first;
    for k in 1..=SAMPLED_DAYS {
        let day = first + span * k / SAMPLED_DAYS;
        let mut rows = stmt.query([day]).map_err(sql(path, "counting cells"))?;
        while let Some(row) = rows.next().map_err(sql(path, "counting cells"))? {
            let (symbol, n): (i64, i64) = (
                row.get(0).map_err(sql(path, "counting cells"))?,
                row.get(1).map_err(sql(path, "counting cells"))?,
            );
            *rows_of.entry(symbol).or_default() += u64::try_from(n).unwrap_or(0);
        }
    }
    let total: u64 = rows_of.values().sum();
    let mut below = 0;
    for (&symbol, &n) in &rows_of {
        if below > 0 && 2 * below >= total {
            return Ok(Some(symbol));
        }
        below += n;
    }
    Ok(None)
}

/// Reads and places the rows of every day from `first` on whose symbol id
/// is in `symbols` (from, until): a day at a time, each one seek, and one
/// more to the next day the record holds.
fn read(
    conn: &Connection,
    path: &Path,
    first: i64,
    symbols: (i64, i64),
    filler: &mut Filler<'_>,
) -> Result<(), RecordError> {
    let doing = "reading cells";
    let mut cells = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM cells WHERE day = ?1 AND symbol >= ?2 AND symbol < ?3"
        ))
        .map_err(sql(path, doing))?;
    let mut next = conn
        .prepare("SELECT day FROM cells WHERE day > ?1 ORDER BY day LIMIT 1")
        .map_err(sql(path, doing))?;
    let decoder = Decoder::new(path, "cells");
    let mut day = Some(first);
    while let Some(d) = day {
        let mut rows = cells
            .query([d, symbols.0, symbols.1])
            .map_err(sql(path, doing))?;
        while let Some(row) = rows.next().map_err(sql(path, doing))? {
            filler.add(decoder.raw(row)?, &decoder)?;
        }
        day = next
            .query_row([d], |r| r.get(0))
            .optional()
            .map_err(sql(path, doing))?;
    }
    Ok(())
}

/// A store builder filled with rows of the record, by their ids: each
/// series and each source is named to the builder once, and a row finds
/// its series by its (exchange, symbol) ids, usually the one after the
/// last row's (a day's rows repeat the previous day's series in order).
pub(super) struct Filler<'n> {
    names: &'n Names,
    builder: StoreBuilder,
    /// Each source id's index in the builder (`None`: not named yet).
    sources: Vec<Option<u16>>,
    /// Every series named, in the order first seen.
    pairs: Vec<((i64, i64), SeriesAt)>,
    /// Where each of `pairs` is.
    index: HashMap<(i64, i64), usize>,
    /// The pair after the last row's.
    cursor: usize,
}

impl<'n> Filler<'n> {
    /// A filler of `builder`, which is given every source `names` holds,
    /// in id order.
    pub(super) fn new(names: &'n Names, mut builder: StoreBuilder) -> Self {
        let mut sources = Vec::new();
        for (id, name) in names.sources() {
            let Ok(i) = usize::try_from(id) else { continue };
            if sources.len() <= i {
                sources.resize(i + 1, None);
            }
            sources[i] = Some(builder.source(name));
        }
        Self {
            names,
            builder,
            sources,
            pairs: Vec::new(),
            index: HashMap::new(),
            cursor: 0,
        }
    }

    /// An empty filler whose builder numbers sources as this one's does.
    fn sibling(&self) -> Filler<'n> {
        Self {
            names: self.names,
            builder: self.builder.sibling(),
            sources: self.sources.clone(),
            pairs: Vec::new(),
            index: HashMap::new(),
            cursor: 0,
        }
    }

    /// Checks one row and puts its cell in place.
    pub(super) fn add(&mut self, raw: Raw, decoder: &Decoder<'_>) -> Result<(), RecordError> {
        let checked = decoder.check(raw, self.names)?;
        let at = self.series(&checked);
        let source = match checked.source {
            None => 0,
            Some((id, name)) => match usize::try_from(id)
                .ok()
                .and_then(|i| self.sources.get(i).copied().flatten())
            {
                Some(i) => i,
                None => self.builder.source(name),
            },
        };
        self.builder.place(at, checked.day, &checked.cell, source);
        Ok(())
    }

    fn series(&mut self, checked: &Checked<'_>) -> SeriesAt {
        let ids = (checked.exchange.0, checked.symbol.0);
        let i = match self.pairs.get(self.cursor) {
            Some((pair, _)) if *pair == ids => self.cursor,
            _ => match self.index.get(&ids) {
                Some(&i) => i,
                None => {
                    let at = self
                        .builder
                        .series(checked.exchange.1, checked.symbol.1, checked.day);
                    self.pairs.push((ids, at));
                    self.index.insert(ids, self.pairs.len() - 1);
                    self.pairs.len() - 1
                }
            },
        };
        self.cursor = i + 1;
        self.pairs[i].1
    }

    fn absorb(&mut self, other: Filler<'_>) {
        self.builder.absorb(other.builder);
    }

    pub(super) fn finish(self) -> Store {
        self.builder.finish()
    }
}
