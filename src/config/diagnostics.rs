//! Where a config is wrong and how that is said: `Problem`, `ConfigError`
//! and its `file:line:col: key: message` rendering, and the lookups that
//! turn a key (or one element of an array) into a position in the source.
//!
//! This module reads the parsed document (`toml_edit`) and nothing else: it
//! decides no rule (that is `validate`'s) and never reads a file.

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong with a config, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line and column, when the position is known.
    pub position: Option<(usize, usize)>,
    /// Dotted key path, e.g. `fetch.workers`, when known.
    pub key: Option<String>,
    pub message: String,
}

impl Problem {
    /// A problem of the whole file, with neither key nor position.
    pub fn of_file(message: impl Into<String>) -> Self {
        Problem {
            position: None,
            key: None,
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found, empty for a read error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

/// One line per problem: `file:line:col: key: message`, leaving out what
/// is not known.
fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let at = match p.position {
                Some((line, col)) => format!("{}:{line}:{col}", path.display()),
                None => path.display().to_string(),
            };
            match &p.key {
                Some(key) => format!("{at}: {key}: {}", p.message),
                None => format!("{at}: {}", p.message),
            }
        })
        .collect();
    lines.join("\n")
}

/// The 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A broken rule before it has a position: the key to blame is the first
/// of `keys` the file spells out (else the first), and `element` picks one
/// element of that key's array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finding {
    /// Dotted keys; a key under a table the user names (`exchanges.kraken.api`)
    /// is built at run time.
    pub keys: Vec<Cow<'static, str>>,
    pub element: Option<usize>,
    pub message: String,
}

impl Finding {
    pub fn at(key: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Finding {
            keys: vec![key.into()],
            element: None,
            message: message.into(),
        }
    }

    /// Blames the `index`th element of the array at `key`.
    pub fn at_element(key: impl Into<Cow<'static, str>>, index: usize, message: String) -> Self {
        Finding {
            keys: vec![key.into()],
            element: Some(index),
            message,
        }
    }

    /// Blames the first of `keys` that the file sets.
    pub fn at_first_set(keys: Vec<&'static str>, message: String) -> Self {
        Finding {
            keys: keys.into_iter().map(Cow::Borrowed).collect(),
            element: None,
            message,
        }
    }

    /// The key to name and where it is in the document, if it can be found.
    pub fn locate(&self, root: Option<&toml_edit::Table>) -> (&str, Option<Range<usize>>) {
        let Some(root) = root else {
            return (&self.keys[0], None);
        };
        let key: &str = self
            .keys
            .iter()
            .find(|k| find(root, k).is_some())
            .unwrap_or(&self.keys[0]);
        let element = self.element.and_then(|i| element_span(root, key, i));
        (key, element.or_else(|| span_of(root, key)))
    }

    /// As a problem of `text` (whose parsed document is `root`).
    pub fn in_text(&self, text: &str, root: Option<&toml_edit::Table>) -> Problem {
        let (key, span) = self.locate(root);
        Problem {
            position: span.map(|s| line_col(text, s.start)),
            key: Some(key.to_owned()),
            message: self.message.clone(),
        }
    }

    /// As a problem of a config built in code: its key, no position.
    pub fn without_position(self) -> Problem {
        Problem {
            position: None,
            key: Some(self.keys[0].to_string()),
            message: self.message,
        }
    }
}

/// The key and item at a dotted path, through tables and inline tables.
pub(super) fn find<'a>(
    root: &'a toml_edit::Table,
    dotted: &str,
) -> Option<(&'a toml_edit::Key, &'a toml_edit::Item)> {
    let mut table: &dyn toml_edit::TableLike = root;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let (key, item) = table.get_key_value(part)?;
        if parts.peek().is_none() {
            return Some((key, item));
        }
        table = item.as_table_like()?;
    }
    None
}

/// Where the `index`th element of the array at a dotted key is.
fn element_span(root: &toml_edit::Table, dotted: &str, index: usize) -> Option<Range<usize>> {
    let (_, item) = find(root, dotted)?;
    item.as_array()?.get(index)?.span()
}

/// The position of a dotted key in the document: the key itself if present,
/// else the deepest enclosing key that is (a table's header).
pub(super) fn span_of(root: &toml_edit::Table, dotted: &str) -> Option<Range<usize>> {
    let mut table: &dyn toml_edit::TableLike = root;
    let mut best = None;
    for part in dotted.split('.') {
        let Some((key, item)) = table.get_key_value(part) else {
            return best;
        };
        best = key.span().or(best);
        match item.as_table_like() {
            Some(inner) => table = inner,
            None => return best,
        }
    }
    best
}

/// The dotted path of the deepest key whose value covers `offset`.
pub(super) fn key_at(table: &toml_edit::Table, offset: usize) -> Option<String> {
    for (key, item) in table.iter() {
        let covers =
            |r: Option<Range<usize>>| r.is_some_and(|r| r.start <= offset && offset <= r.end);
        let key_span = table.key(key).and_then(|k| k.span());
        if let Some(sub) = item.as_table() {
            if let Some(inner) = key_at(sub, offset) {
                return Some(format!("{key}.{inner}"));
            }
            if covers(key_span) {
                return Some(key.to_owned());
            }
        } else if covers(item.span()) || covers(key_span) {
            return Some(key.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> toml_edit::ImDocument<String> {
        toml_edit::ImDocument::parse(text.to_owned()).expect("valid TOML")
    }

    #[test]
    fn line_and_column_count_characters_from_one() {
        let text = "[a]\nkey = \"é\"\nx = 1\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, text.find("x =").unwrap()), (3, 1));
        assert_eq!(
            line_col(text, text.len() + 10),
            (4, 1),
            "clamped to the end"
        );
        let after_e = text.find('é').unwrap() + 'é'.len_utf8();
        assert_eq!(line_col(text, after_e), (2, 9));
    }

    #[test]
    fn a_problem_renders_what_is_known_of_where() {
        let err = ConfigError::Invalid {
            path: PathBuf::from("c.toml"),
            problems: vec![
                Problem {
                    position: Some((3, 1)),
                    key: Some("fetch.workers".into()),
                    message: "is zero".into(),
                },
                Problem {
                    position: None,
                    key: Some("log.progress_every".into()),
                    message: "must be positive".into(),
                },
                Problem::of_file("config file is empty"),
            ],
        };
        assert_eq!(
            err.to_string(),
            "c.toml:3:1: fetch.workers: is zero\n\
             c.toml: log.progress_every: must be positive\n\
             c.toml: config file is empty"
        );
    }

    #[test]
    fn a_finding_points_at_the_first_key_the_file_sets_or_at_an_element() {
        let d = doc("[universe]\nfrom = \"2020-01-01\"\nsymbols = [\"a\", \"b\"]\n");
        let root = Some(d.as_table());
        let f = Finding::at_first_set(vec!["universe.max_tasks", "universe.from"], "big".into());
        assert_eq!(f.in_text(d.raw(), root).position, Some((2, 1)));
        assert_eq!(
            f.in_text(d.raw(), root).key.as_deref(),
            Some("universe.from")
        );
        let f = Finding::at_element("universe.symbols", 1, "twice".into());
        assert_eq!(f.in_text(d.raw(), root).position, Some((3, 17)));
        let f = Finding::at("fetch.workers", "zero");
        assert_eq!(f.in_text(d.raw(), root).position, None, "no [fetch] at all");
    }

    #[test]
    fn a_missing_key_is_placed_at_its_table_and_an_offset_names_its_key() {
        let d = doc("[fetch]\nworkers = 3\n[source.builtin]\nseed = 1\n");
        assert_eq!(
            span_of(d.as_table(), "fetch.queue").map(|r| r.start),
            Some(1)
        );
        let seed = d.raw().find("1\n").unwrap();
        assert_eq!(
            key_at(d.as_table(), seed).as_deref(),
            Some("source.builtin.seed")
        );
        assert!(find(d.as_table(), "source.builtin.seed").is_some());
        assert!(find(d.as_table(), "source.url").is_none());
    }
}
