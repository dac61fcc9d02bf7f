//! The point-in-time reads of the record: the store as it was at the end of
//! a round (`store_at`), filtered in SQL (`cells_at`, and `cells_now` for
//! the current values), and the round that had finished by a given time
//! (`round_at`). A cell's past is its
//! `history` rows (the values it held before its current one) and its
//! `cells` row from `since` on; both are read in key order and merged.
//! Read-only: nothing here writes, and a round that compaction folded is an
//! error naming what was kept.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::OptionalExtension;

use super::rows::{self, int, millis, Decoder, COLUMNS, ROUND_COLUMN};
use super::{sql, RecordError, SqliteRecord};
use crate::model::{Exchange, Symbol, TaskKey};
use crate::store::{Cell, Store};

impl SqliteRecord {
    /// Checks that `round` can be answered for: it is recorded and its
    /// history was not folded by compaction.
    pub(super) fn check_round(&self, round: u64) -> Result<(), RecordError> {
        let known = self
            .conn
            .query_row(
                "SELECT 1 FROM rounds WHERE round = ?1",
                [int(round)],
                |_| Ok(()),
            )
            .optional()
            .map_err(sql(&self.path, "looking up a round"))?;
        if known.is_some() {
            return Ok(());
        }
        if let Some(retained_from) = self.retained_from()?.filter(|r| round < *r) {
            return Err(RecordError::Compacted {
                path: self.path.clone(),
                round,
                retained_from,
            });
        }
        let newest = self
            .conn
            .query_row("SELECT MAX(round) FROM rounds", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(sql(&self.path, "looking up a round"))?;
        Err(RecordError::NoSuchRound {
            path: self.path.clone(),
            round,
            newest: newest.and_then(|n| u64::try_from(n).ok()),
        })
    }

    /// The store as it was at the end of `round` (or as far as it got, for
    /// a round still running): each cell's latest history row of a round
    /// at or before it. A cell read from history carries the round that
    /// recorded that value. An error names the round if it is not recorded
    /// or older than what compaction kept.
    pub fn store_at(&self, round: u64) -> Result<Store, RecordError> {
        let mut store = Store::new();
        for (key, cell) in self.history_at(Some(round), &Filter::default())? {
            store.put(&key, &cell);
        }
        Ok(store)
    }

    /// The newest round that finished (or was aborted) at or before `t`.
    pub fn round_at(&self, t: DateTime<Utc>) -> Result<Option<u64>, RecordError> {
        let round: Option<i64> = self
            .conn
            .query_row(
                "SELECT round FROM rounds WHERE finished IS NOT NULL AND finished <= ?1 \
                 ORDER BY finished DESC, round DESC LIMIT 1",
                [millis(t)],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path, "finding the round at a time"))?;
        Ok(round.and_then(|r| u64::try_from(r).ok()))
    }

    /// Like `store_at(round)`, filtered in SQL and returned in key order:
    /// only `exchanges` and `symbols` (an empty slice means every one), and
    /// days in `from..=to`. One symbol-day across every exchange
    /// (`&[]`, `&[symbol]`, `Some(day)`, `Some(day)`) reads only that
    /// symbol-day's rows, a range of each table's primary key.
    pub fn cells_at(
        &self,
        round: u64,
        exchanges: &[Exchange],
        symbols: &[Symbol],
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        self.filtered(Some(round), exchanges, symbols, from, to)
    }

    /// The current value of each cell `cells_at`'s filter keeps (the
    /// `cells` table alone, as `load` reads it whole), in key order: what
    /// `query` without `--round` answers, reading only the rows asked for.
    pub fn cells_now(
        &self,
        exchanges: &[Exchange],
        symbols: &[Symbol],
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        self.filtered(None, exchanges, symbols, from, to)
    }

    fn filtered(
        &self,
        round: Option<u64>,
        exchanges: &[Exchange],
        symbols: &[Symbol],
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        let mut cells = self.history_at(
            round,
            &Filter {
                exchanges,
                symbols,
                from,
                to,
            },
        )?;
        cells.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(cells)
    }

    /// The cells `filter` keeps as they were at the end of `round`, or now
    /// (`None`: the `cells` table alone, no history read).
    fn history_at(
        &self,
        round: Option<u64>,
        filter: &Filter<'_>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        use rusqlite::types::Value;
        let path = &self.path;
        let doing = "reading history";
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sql(path, doing))?;
        if let Some(round) = round {
            self.check_round(round)?;
        }
        let names = self.interned()?;
        // ?1 is the round; now, every round is at or before it.
        let this_round = round.map_or(i64::MAX, int);
        let mut params = vec![Value::Integer(this_round)];
        let mut conditions = String::new();
        let lists: [(&str, Vec<Option<i64>>); 2] = [
            (
                "exchange",
                filter
                    .exchanges
                    .iter()
                    .map(|e| names.exchange_id(e.as_str()))
                    .collect(),
            ),
            (
                "symbol",
                filter
                    .symbols
                    .iter()
                    .map(|s| names.symbol_id(s.as_str()))
                    .collect(),
            ),
        ];
        for (column, ids) in lists.iter().filter(|(_, ids)| !ids.is_empty()) {
            let ids: Vec<i64> = ids.iter().flatten().copied().collect();
            if ids.is_empty() {
                // Only names the record has no cell of: nothing to read.
                return Ok(Vec::new());
            }
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            conditions.push_str(&format!(" AND {column} IN ({})", list.join(", ")));
        }
        let symbols_asked = !filter.symbols.is_empty();
        let (from, to) = match (filter.from, filter.to) {
            // Symbols over every day: sought day by day through the days
            // the record holds, not found by reading every row.
            (from, to) if symbols_asked && (from.is_none() || to.is_none()) => {
                let (first, last): (Option<i64>, Option<i64>) = tx
                    .query_row(super::load::FIRST_AND_LAST_DAY, [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(sql(path, doing))?;
                (
                    from.or(first.and_then(rows::day_of)),
                    to.or(last.and_then(rows::day_of)),
                )
            }
            bounds => bounds,
        };
        conditions.push_str(&day_condition(from, to, symbols_asked, &mut params));
        // Both in key order (day, symbol, exchange[, round]): merged below
        // in one pass. A cell's `cells` row answers from `since` on; before
        // that, its newest history row at or before the round. Read at a
        // round before the cell's own, its row carries `since` as round:
        // the round that recorded what it holds.
        let current = format!(
            "SELECT {COLUMNS}, since FROM cells WHERE since <= ?1{conditions} \
             ORDER BY day, symbol, exchange"
        );
        let past = format!(
            "SELECT {COLUMNS} FROM history WHERE round <= ?1{conditions} \
             ORDER BY day, symbol, exchange, round"
        );
        let mut out = Vec::new();
        {
            let mut current = tx.prepare(&current).map_err(sql(path, doing))?;
            let mut current = current
                .query(rusqlite::params_from_iter(&params))
                .map_err(sql(path, doing))?;
            // Now, every cell's `cells` row answers: no history is read.
            let mut past = match round {
                Some(_) => Some(tx.prepare(&past).map_err(sql(path, doing))?),
                None => None,
            };
            let mut past = match past.as_mut() {
                Some(past) => Some(
                    past.query(rusqlite::params_from_iter(&params))
                        .map_err(sql(path, doing))?,
                ),
                None => None,
            };
            let cells = Decoder::new(path, "cells");
            let history = Decoder::new(path, "history");
            // The key's order: day, symbol, exchange (`COLUMNS` begins
            // with symbol, day, exchange).
            let key_of = |row: &rusqlite::Row<'_>| -> rusqlite::Result<[i64; 3]> {
                Ok([row.get(1)?, row.get(0)?, row.get(2)?])
            };
            // A row read ahead: its key, its cell, and for `cells` its own
            // round and `since`.
            type Ahead = ([i64; 3], (TaskKey, Cell), i64, i64);
            let read = |rows: Option<&mut rusqlite::Rows<'_>>,
                        decoder: &Decoder<'_>,
                        current: bool|
             -> Result<Option<Ahead>, RecordError> {
                let Some(rows) = rows else {
                    return Ok(None);
                };
                let Some(row) = rows.next().map_err(sql(path, doing))? else {
                    return Ok(None);
                };
                let key = key_of(row).map_err(sql(path, doing))?;
                let cell = decoder.decode(row, &names)?;
                let (own, since) = if current {
                    (
                        row.get(ROUND_COLUMN).map_err(sql(path, doing))?,
                        row.get(15).map_err(sql(path, doing))?,
                    )
                } else {
                    (0, 0)
                };
                Ok(Some((key, cell, own, since)))
            };
            let mut now = read(Some(&mut current), &cells, true)?;
            let mut then = read(past.as_mut(), &history, false)?;
            loop {
                let key = match (&now, &then) {
                    (None, None) => break,
                    (Some(c), Some(h)) => c.0.min(h.0),
                    (Some((k, ..)), None) | (None, Some((k, ..))) => *k,
                };
                let mut latest = None;
                while let Some(h) = then.take_if(|h| h.0 == key) {
                    latest = Some(h.1);
                    then = read(past.as_mut(), &history, false)?;
                }
                match now.take_if(|c| c.0 == key) {
                    Some((_, (key, mut cell), own, since)) => {
                        if own > this_round {
                            cell.round = u64::try_from(since).unwrap_or(0);
                        }
                        out.push((key, cell));
                        now = read(Some(&mut current), &cells, true)?;
                    }
                    None => out.extend(latest),
                }
            }
        }
        drop(names);
        tx.finish().map_err(sql(path, doing))?;
        Ok(out)
    }
}

/// Which cells `history_at` reads.
#[derive(Default)]
struct Filter<'a> {
    exchanges: &'a [Exchange],
    symbols: &'a [Symbol],
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// Most days a bounded range is asked as, one day at a time.
const DAYS_ASKED_ONE_BY_ONE: i64 = 100_000;

/// The SQL condition on `day` for `from..=to`, its values pushed onto
/// `params`. The key is day first: a range of days is read whole, every
/// symbol of every day in it, so where symbols are asked a bounded range
/// is asked day by day (`day IN` a series), which lets the symbols be
/// sought in each day (one symbol over a year of a 20M-cell record: 365
/// seeks, not 7.3M rows read).
pub(super) fn day_condition(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    symbols_asked: bool,
    params: &mut Vec<rusqlite::types::Value>,
) -> String {
    use rusqlite::types::Value;
    let mut push = |day: NaiveDate| {
        params.push(Value::Integer(rows::day_number(day)));
        params.len()
    };
    match (from, to) {
        (Some(from), Some(to)) if from == to => format!(" AND day = ?{}", push(from)),
        (Some(from), Some(to))
            if symbols_asked && (0..=DAYS_ASKED_ONE_BY_ONE).contains(&(to - from).num_days()) =>
        {
            let (a, b) = (push(from), push(to));
            format!(
                " AND day IN (WITH RECURSIVE d(x) AS (SELECT ?{a} UNION ALL \
                 SELECT x + 1 FROM d WHERE x < ?{b}) SELECT x FROM d)"
            )
        }
        (from, to) => {
            let mut condition = String::new();
            if let Some(from) = from {
                condition.push_str(&format!(" AND day >= ?{}", push(from)));
            }
            if let Some(to) = to {
                condition.push_str(&format!(" AND day <= ?{}", push(to)));
            }
            condition
        }
    }
}
