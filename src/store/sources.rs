//! The store's source identities, interned: a cell's slot holds a `u16`
//! index, 0 meaning "unknown", and the name is found by hash, not by a scan
//! (an exchange with its own API has one source per market: 20,000 in the
//! 20M-cell universe, where a scan for each result was the daemon's main
//! cost). Owns only the names; what a cell holds is `store`'s.

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub(super) struct Sources {
    /// By index; index 0 is "" (unknown).
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u16>,
}

impl Default for Sources {
    fn default() -> Self {
        Self::from_names(std::iter::empty())
    }
}

impl PartialEq for Sources {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl std::ops::Deref for Sources {
    type Target = [Arc<str>];
    fn deref(&self) -> &[Arc<str>] {
        &self.names
    }
}

impl Sources {
    /// Index 0 unknown, then `names` in order (as a snapshot numbers them).
    pub(super) fn from_names(names: impl IntoIterator<Item = Arc<str>>) -> Sources {
        let mut s = Sources {
            names: vec![Arc::from("")],
            ids: HashMap::new(),
        };
        for name in names {
            let i = u16::try_from(s.names.len()).unwrap_or(0);
            s.ids.entry(name.clone()).or_insert(i);
            s.names.push(name);
        }
        s
    }

    /// The index of `source` if it is named already (0 for "").
    pub(super) fn find(&self, source: &str) -> Option<u16> {
        if source.is_empty() {
            return Some(0);
        }
        self.ids.get(source).copied()
    }

    /// The index of `source`, added if new; 0 for "" and, past 65,535
    /// distinct sources, for the ones beyond (recorded as unknown).
    pub(super) fn index(&mut self, source: &str) -> u16 {
        if source.is_empty() {
            return 0;
        }
        if let Some(&i) = self.ids.get(source) {
            return i;
        }
        match u16::try_from(self.names.len()) {
            Ok(i) => {
                let name: Arc<str> = Arc::from(source);
                self.names.push(name.clone());
                self.ids.insert(name, i);
                i
            }
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_index_and_twenty_thousand_are_found_by_hash() {
        let mut s = Sources::default();
        assert_eq!(s.index(""), 0);
        let names: Vec<String> = (0..20_000)
            .map(|i| format!("http://x/ S{i:05}USDT"))
            .collect();
        let ids: Vec<u16> = names.iter().map(|n| s.index(n)).collect();
        assert_eq!(ids[0], 1);
        assert_eq!(ids[19_999], 20_000);
        assert!(names
            .iter()
            .zip(&ids)
            .all(|(n, i)| s.index(n) == *i && &*s[usize::from(*i)] == n));
        let loaded = Sources::from_names(names.iter().map(|n| Arc::from(n.as_str())));
        assert_eq!(loaded, s);
    }
}
