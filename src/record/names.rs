//! The record's interned names: each exchange, symbol and source (with
//! the market it names) is written once in its own table under an integer
//! id, and rows carry the id. This file owns those tables and the
//! connection's copy of them (`Names`): ids to names for reading, names to
//! ids for writing, adding a name the first time it is written. It reads
//! and writes no cell. A name read from the file is checked before use: a
//! bad one is an error naming the table.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use super::RecordError;
use crate::model::{Exchange, Market, Symbol};

/// One table of names, as far as this connection has read it. Ids are
/// given by SQLite (`INTEGER PRIMARY KEY`) and never reused: names are
/// only ever added, so what was read stays true and only newer ids need
/// reading (`refresh`).
#[derive(Debug)]
struct Table<T> {
    by_id: Vec<Option<T>>,
    ids: HashMap<Arc<str>, i64>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            by_id: Vec::new(),
            ids: HashMap::new(),
        }
    }
}

impl<T: Clone> Table<T> {
    fn newest(&self) -> i64 {
        self.by_id.len() as i64 - 1
    }

    fn put(&mut self, id: i64, name: Arc<str>, value: T) {
        let Ok(i) = usize::try_from(id) else { return };
        if self.by_id.len() <= i {
            self.by_id.resize_with(i + 1, || None);
        }
        self.by_id[i] = Some(value);
        self.ids.insert(name, id);
    }

    fn get(&self, id: i64) -> Option<&T> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.by_id.get(i))
            .and_then(Option::as_ref)
    }
}

/// Names with their ids.
pub(super) type Named<T> = Vec<(i64, T)>;

/// The names of one connection's record, both ways.
#[derive(Debug, Default)]
pub(super) struct Names {
    exchanges: Table<Exchange>,
    symbols: Table<Symbol>,
    sources: Table<Arc<str>>,
}

impl Names {
    /// Reads the names added since the last call (all of them the first
    /// time).
    pub(super) fn refresh(&mut self, conn: &Connection, path: &Path) -> Result<(), RecordError> {
        let sql = |source| RecordError::Sql {
            path: path.to_owned(),
            doing: "reading the record's names",
            source,
        };
        for table in ["exchanges", "symbols", "sources"] {
            let column = if table == "sources" { "url" } else { "name" };
            let newest = self.newest(table);
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT id, {column} FROM {table} WHERE id > ?1 ORDER BY id"
                ))
                .map_err(sql)?;
            let mut rows = stmt.query([newest]).map_err(sql)?;
            while let Some(row) = rows.next().map_err(sql)? {
                let id: i64 = row.get(0).map_err(sql)?;
                let name: String = row.get(1).map_err(sql)?;
                self.add(table, id, &name, path)?;
            }
        }
        Ok(())
    }

    /// The newest id read of `table` (`exchanges`, `symbols` or
    /// `sources`; -1 when none was).
    pub(super) fn newest(&self, table: &str) -> i64 {
        match table {
            "exchanges" => self.exchanges.newest(),
            "symbols" => self.symbols.newest(),
            _ => self.sources.newest(),
        }
    }

    /// Adds a name read from `table` under `id`, checked: a bad one is an
    /// error naming the table and id.
    pub(super) fn add(
        &mut self,
        table: &str,
        id: i64,
        name: &str,
        path: &Path,
    ) -> Result<(), RecordError> {
        let bad = |reason: String| RecordError::Corrupt {
            path: path.to_owned(),
            at: format!("table {table}, id {id}"),
            reason,
        };
        let key: Arc<str> = Arc::from(name);
        match table {
            "exchanges" => {
                let e = Exchange::new(name).map_err(|e| bad(e.to_string()))?;
                self.exchanges.put(id, key, e);
            }
            "symbols" => {
                let s = Symbol::new(name).map_err(|e| bad(e.to_string()))?;
                self.symbols.put(id, key, s);
            }
            _ => self.sources.put(id, key.clone(), key),
        }
        Ok(())
    }

    /// The id of a source identity this connection knows.
    pub(super) fn source_id(&self, url: &str) -> Option<i64> {
        self.sources.ids.get(url).copied()
    }

    pub(super) fn exchange(&self, id: i64) -> Option<&Exchange> {
        self.exchanges.get(id)
    }

    pub(super) fn symbol(&self, id: i64) -> Option<&Symbol> {
        self.symbols.get(id)
    }

    pub(super) fn source(&self, id: i64) -> Option<&Arc<str>> {
        self.sources.get(id)
    }

    /// Every source identity read, with its id, in id order.
    pub(super) fn sources(&self) -> impl Iterator<Item = (i64, &Arc<str>)> {
        self.sources
            .by_id
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as i64, s)))
    }

    /// The id of an exchange the record knows (`None`: no cell of it).
    pub(super) fn exchange_id(&self, name: &str) -> Option<i64> {
        self.exchanges.ids.get(name).copied()
    }

    pub(super) fn symbol_id(&self, name: &str) -> Option<i64> {
        self.symbols.ids.get(name).copied()
    }

    /// Every exchange and every symbol named, with its id.
    pub(super) fn all(&self) -> (Named<Exchange>, Named<Symbol>) {
        fn listed<T: Clone>(t: &Table<T>) -> Vec<(i64, T)> {
            t.by_id
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.clone().map(|v| (i as i64, v)))
                .collect()
        }
        (listed(&self.exchanges), listed(&self.symbols))
    }

    /// The id of `exchange`, added to `exchanges` if it is new. Runs in
    /// the caller's transaction: if that rolls back, the caller must drop
    /// these `Names` (`Record::forget_names`), which would otherwise hold
    /// an id the file does not.
    pub(super) fn intern_exchange(
        &mut self,
        conn: &Connection,
        exchange: &Exchange,
    ) -> rusqlite::Result<i64> {
        if let Some(id) = self.exchange_id(exchange.as_str()) {
            return Ok(id);
        }
        let id = insert(
            conn,
            "INSERT INTO exchanges (name) VALUES (?1)",
            exchange.as_str(),
        )?;
        self.exchanges
            .put(id, Arc::from(exchange.as_str()), exchange.clone());
        Ok(id)
    }

    /// Like `intern_exchange`, for a symbol.
    pub(super) fn intern_symbol(
        &mut self,
        conn: &Connection,
        symbol: &Symbol,
    ) -> rusqlite::Result<i64> {
        if let Some(id) = self.symbol_id(symbol.as_str()) {
            return Ok(id);
        }
        let id = insert(
            conn,
            "INSERT INTO symbols (name) VALUES (?1)",
            symbol.as_str(),
        )?;
        self.symbols
            .put(id, Arc::from(symbol.as_str()), symbol.clone());
        Ok(id)
    }

    /// Like `intern_exchange`, for a source identity; a new one also
    /// interns the market it names, if any.
    pub(super) fn intern_source(
        &mut self,
        conn: &Connection,
        source: &Arc<str>,
    ) -> rusqlite::Result<i64> {
        if let Some(id) = self.sources.ids.get(&**source) {
            return Ok(*id);
        }
        let market = match Market::of_source(source) {
            None => None,
            Some(m) => {
                conn.execute("INSERT OR IGNORE INTO markets (name) VALUES (?1)", [m])?;
                Some(
                    conn.query_row("SELECT id FROM markets WHERE name = ?1", [m], |r| {
                        r.get::<_, i64>(0)
                    })?,
                )
            }
        };
        conn.execute(
            "INSERT INTO sources (url, market) VALUES (?1, ?2)",
            rusqlite::params![&**source, market],
        )?;
        let id = conn.last_insert_rowid();
        self.sources.put(id, source.clone(), source.clone());
        Ok(id)
    }
}

fn insert(conn: &Connection, statement: &str, name: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(statement)?.execute([name])?;
    Ok(conn.last_insert_rowid())
}
