//! The point-in-time reads of the record: the store as it was at the end of
//! a round (`store_at`), filtered in SQL (`cells_at`), and the round that
//! had finished by a given time (`round_at`), all read from `history`.
//! Read-only: nothing here writes, and a round that compaction folded is an
//! error naming what was kept.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::OptionalExtension;

use super::rows::{self, columns, int, round_time, Decoder};
use super::{sql, Record, RecordError};
use crate::model::{Exchange, Symbol, TaskKey};
use crate::store::{Cell, Store};

impl Record {
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
        for (key, cell) in self.history_at(round, &Filter::default())? {
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
                [round_time(t)],
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
    /// symbol-day's rows, through `history_by_symbol_day`.
    pub fn cells_at(
        &self,
        round: u64,
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

    fn history_at(
        &self,
        round: u64,
        filter: &Filter<'_>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        use rusqlite::types::Value;
        let path = &self.path;
        let doing = "reading history";
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sql(path, doing))?;
        self.check_round(round)?;
        let mut params = vec![Value::Integer(int(round))];
        // SQLite takes the other columns from the row holding the MAX.
        let mut query = format!(
            "SELECT {} FROM history WHERE round <= ?1",
            columns("MAX(round)")
        );
        let lists: [(&str, Vec<&str>); 2] = [
            (
                "exchange",
                filter.exchanges.iter().map(Exchange::as_str).collect(),
            ),
            (
                "symbol",
                filter.symbols.iter().map(Symbol::as_str).collect(),
            ),
        ];
        for (column, names) in lists.iter().filter(|(_, names)| !names.is_empty()) {
            let marks: Vec<String> = names
                .iter()
                .map(|name| {
                    params.push(Value::Text((*name).to_owned()));
                    format!("?{}", params.len())
                })
                .collect();
            query.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
        }
        for (bound, op) in [(filter.from, ">="), (filter.to, "<=")] {
            if let Some(day) = bound {
                params.push(Value::Text(rows::day_text(day)));
                query.push_str(&format!(" AND day {op} ?{}", params.len()));
            }
        }
        // Grouped in the order of the index the filter can use, so SQLite
        // walks it instead of sorting.
        query.push_str(if filter.symbols.is_empty() {
            " GROUP BY exchange, symbol, day"
        } else {
            " GROUP BY symbol, day, exchange"
        });
        let mut out = Vec::new();
        {
            let mut stmt = tx.prepare(&query).map_err(sql(path, doing))?;
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(sql(path, doing))?;
            let mut decoder = Decoder::new(path, "history");
            while let Some(row) = rows.next().map_err(sql(path, doing))? {
                out.push(decoder.decode(row)?);
            }
        }
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
