//! The exchange and symbol names a filter asks for, checked against the
//! names that are known (held by the record or the store, or configured), so
//! that a typo is an error with a suggestion rather than zero rows. Also the
//! one loose reading of a typed name: lower-cased, so `BTC` means `btc`.
//!
//! Used by `pricegrid query`/`export` and by the HTTP API's query routes
//! alike. Pure: names come in, a verdict goes out; it reads no file and
//! knows nothing of where the known names came from.

use std::collections::BTreeSet;
use std::fmt;

use crate::model::{Exchange, NameError, Symbol};
use crate::query::Filter;

/// How alike (Jaro-Winkler, 0..=1) a known name must be to a typed one to
/// be offered as "did you mean": clap's own threshold for its suggestions
/// is 0.7; a little higher keeps short names from matching anything.
const SUGGEST_ABOVE: f64 = 0.8;

/// Known names listed in a message, at most; the rest are counted.
const LISTED: usize = 20;

/// An exchange name as a person types it: lower-cased, then checked.
pub fn exchange(raw: &str) -> Result<Exchange, NameError> {
    Exchange::new(&raw.trim().to_ascii_lowercase())
}

/// A symbol name as a person types it: lower-cased, then checked.
pub fn symbol(raw: &str) -> Result<Symbol, NameError> {
    Symbol::new(&raw.trim().to_ascii_lowercase())
}

/// Which kind of name an [`UnknownName`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Exchange,
    Symbol,
}

impl NameKind {
    /// The parameter (`exchange`) or, with `--`, the option that takes it.
    pub fn parameter(self) -> &'static str {
        match self {
            NameKind::Exchange => "exchange",
            NameKind::Symbol => "symbol",
        }
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.parameter())
    }
}

/// A name asked for that nothing known is called, with the closest known
/// name if one is close, and the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct UnknownName {
    pub kind: NameKind,
    pub name: String,
    pub suggestion: Option<String>,
    pub known: Vec<String>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}: ", self.kind, self.name)?;
        if let Some(s) = &self.suggestion {
            write!(f, "did you mean {s}? ")?;
        }
        let shown: Vec<&str> = self.known.iter().take(LISTED).map(String::as_str).collect();
        write!(f, "known: {}", shown.join(", "))?;
        if self.known.len() > LISTED {
            write!(f, ", … ({} more)", self.known.len() - LISTED)?;
        }
        Ok(())
    }
}

/// The names a question may ask about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub exchanges: BTreeSet<Exchange>,
    pub symbols: BTreeSet<Symbol>,
}

impl Known {
    /// The names held by `store`.
    pub fn of_store(store: &crate::store::Store) -> Known {
        Known {
            exchanges: store.exchanges().cloned().collect(),
            symbols: store.symbols().into_iter().cloned().collect(),
        }
    }

    /// Adds the names a config's universe lists (none for "all").
    pub fn with_universe(mut self, universe: &crate::config::UniverseConfig) -> Known {
        if let Some(list) = universe.exchanges.list() {
            self.exchanges.extend(list.iter().cloned());
        }
        if let Some(list) = universe.symbols.list() {
            self.symbols.extend(list.iter().cloned());
        }
        self
    }

    /// Checks every name `filter` asks for, exchanges first. A dimension
    /// with no known name at all (an empty record, a daemon before its
    /// first answer) is not checked: there is nothing to compare with.
    pub fn check(&self, filter: &Filter) -> Result<(), UnknownName> {
        check(NameKind::Exchange, &filter.exchanges, &self.exchanges)?;
        check(NameKind::Symbol, &filter.symbols, &self.symbols)
    }
}

fn check<N: Ord + AsRef<str>>(
    kind: NameKind,
    asked: &BTreeSet<N>,
    known: &BTreeSet<N>,
) -> Result<(), UnknownName> {
    if known.is_empty() {
        return Ok(());
    }
    let Some(name) = asked.iter().find(|n| !known.contains(n)) else {
        return Ok(());
    };
    let name = name.as_ref();
    let suggestion = known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k.as_ref()), k.as_ref()))
        .filter(|(score, _)| *score > SUGGEST_ABOVE)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.to_owned());
    Err(UnknownName {
        kind,
        name: name.to_owned(),
        suggestion,
        known: known.iter().map(|k| k.as_ref().to_owned()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ex, sym};
    use super::*;

    fn known() -> Known {
        Known {
            exchanges: ["bitfinex", "bitstamp", "coinbase-pro", "kraken"]
                .into_iter()
                .map(ex)
                .collect(),
            symbols: ["btc", "eth", "ltc"].into_iter().map(sym).collect(),
        }
    }

    fn asking(exchanges: &[&str], symbols: &[&str]) -> Filter {
        Filter {
            exchanges: exchanges.iter().map(|e| ex(e)).collect(),
            symbols: symbols.iter().map(|s| sym(s)).collect(),
            ..Filter::default()
        }
    }

    #[test]
    fn a_misspelt_exchange_is_answered_with_the_closest_known_one() {
        let err = known().check(&asking(&["krakn"], &[])).unwrap_err();
        assert_eq!(err.kind, NameKind::Exchange);
        assert_eq!(err.suggestion.as_deref(), Some("kraken"));
        assert_eq!(
            err.to_string(),
            "unknown exchange \"krakn\": did you mean kraken? \
             known: bitfinex, bitstamp, coinbase-pro, kraken"
        );
    }

    #[test]
    fn a_name_like_nothing_known_gets_no_suggestion_but_the_list() {
        let err = known().check(&asking(&[], &["doge"])).unwrap_err();
        assert_eq!(err.kind, NameKind::Symbol);
        assert_eq!(err.suggestion, None);
        assert_eq!(
            err.to_string(),
            "unknown symbol \"doge\": known: btc, eth, ltc"
        );
    }

    #[test]
    fn known_names_and_no_names_pass() {
        assert_eq!(known().check(&asking(&["kraken"], &["btc", "eth"])), Ok(()));
        assert_eq!(known().check(&Filter::default()), Ok(()));
        assert_eq!(Known::default().check(&asking(&["krakn"], &["x"])), Ok(()));
    }

    #[test]
    fn a_long_list_of_known_names_is_cut_and_counted() {
        let many = Known {
            exchanges: (0..25).map(|i| ex(&format!("ex{i:02}"))).collect(),
            ..Known::default()
        };
        let text = many.check(&asking(&["zzz"], &[])).unwrap_err().to_string();
        assert!(text.ends_with("ex19, … (5 more)"), "{text}");
    }

    #[test]
    fn typed_names_are_lower_cased() {
        assert_eq!(symbol("BTC"), Ok(sym("btc")));
        assert_eq!(exchange("Kraken"), Ok(ex("kraken")));
        assert!(exchange("kra ken").is_err());
    }
}
