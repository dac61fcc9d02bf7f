//! The house's rules, read from the source itself (issue #18): the rooms
//! of `src/` (its top-level modules) import one another without a circle;
//! no actor imports from `actors/mod.rs`, which only wires them (their
//! messages live in `actors/messages.rs` or beside their handler); and no
//! file in `src/` but a module's unit tests (`tests.rs`) is over 600 lines,
//! one over 500 saying why in its opening `//!` paragraph.
//!
//! It reads `use crate::…` and `use super::…` lines as text, as a reader
//! following the code would: a path named in code without a `use` is not
//! an arrow here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MOST_LINES: usize = 600;
const SAY_WHY_ABOVE: usize = 500;

/// Every `.rs` file under `dir`, depth first, in name order.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// A file's module path under `crate`: `src/actors/supervisor/mod.rs` is
/// `["actors", "supervisor"]`, `src/lib.rs` is `[]`.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("a file under src/");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The `use` statements of `text` that start with `crate::` or `super::`,
/// each joined onto one line (a `use` may span several).
fn uses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(mut stmt) = current.take() {
            stmt.push_str(line);
            if line.ends_with(';') {
                out.push(stmt);
            } else {
                current = Some(stmt);
            }
            continue;
        }
        let rest = line
            .strip_prefix("pub(crate) use ")
            .or_else(|| line.strip_prefix("pub(super) use "))
            .or_else(|| line.strip_prefix("pub use "))
            .or_else(|| line.strip_prefix("use "));
        if let Some(rest) = rest {
            if rest.starts_with("crate::") || rest.starts_with("super::") {
                if rest.ends_with(';') {
                    out.push(rest.to_owned());
                } else {
                    current = Some(rest.to_owned());
                }
            }
        }
    }
    out
}

/// Paths named in code outside `use` lines (`crate::source::adapter(…)`):
/// an arrow as much as an import is. Comments are not code.
fn inline_paths(code: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim();
        if line.starts_with("//") || line.starts_with("use ") || line.starts_with("pub use ") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let path: String = rest[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push((
                line.to_owned(),
                path.split("::")
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect(),
            ));
            rest = &rest[at + "crate::".len()..];
        }
    }
    out
}

/// The paths a `use` names, each as its segments: `crate::{a::B, c}` gives
/// `[crate, a, B]` and `[crate, c]`.
fn paths(stmt: &str) -> Vec<Vec<String>> {
    fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
        let tree = tree.trim().trim_end_matches(';').trim();
        if tree.is_empty() {
            return;
        }
        if let Some(open) = tree.find('{') {
            let head: Vec<String> = tree[..open]
                .split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let mut base = prefix.to_vec();
            base.extend(head);
            let inner = &tree[open + 1..tree.rfind('}').expect("a closing brace")];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&base, &inner[start..], out);
        } else {
            let mut path = prefix.to_vec();
            let tree = tree.split(" as ").next().expect("a path");
            path.extend(tree.split("::").map(|s| s.trim().to_owned()));
            out.push(path);
        }
    }
    let mut out = Vec::new();
    expand(&[], stmt, &mut out);
    out
}

/// The module path a `use` path points into, made absolute from the file's
/// module `here` (`super::` climbs from it).
fn absolute(here: &[String], path: &[String]) -> Vec<String> {
    // `super` in `a/b.rs` and in `a/b/mod.rs` (both module a::b) is `a`.
    let mut base: Vec<String> = here.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => {}
    }
    base.extend(rest.iter().cloned());
    base
}

struct Source {
    file: PathBuf,
    module: Vec<String>,
    /// The whole file.
    text: String,
}

impl Source {
    /// The file up to its inline unit tests (`#[cfg(test)]`), whose
    /// `use super::*` is the file's own module.
    fn code(&self) -> &str {
        self.text
            .find("\n#[cfg(test)]")
            .map_or(self.text.as_str(), |end| &self.text[..end])
    }
}

fn sources() -> Vec<Source> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .into_iter()
        .map(|file| Source {
            module: module_of(&file),
            text: std::fs::read_to_string(&file).expect("a readable source file"),
            file,
        })
        .collect()
}

/// A module's unit tests, kept in their own file: they reach across rooms
/// freely and are not counted against the size limit.
fn is_unit_tests(s: &Source) -> bool {
    s.file.file_name().is_some_and(|n| n == "tests.rs")
}

#[test]
fn the_rooms_of_src_import_one_another_without_a_circle() {
    let mut arrows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut why: BTreeMap<(String, String), String> = BTreeMap::new();
    for s in sources().iter().filter(|s| !is_unit_tests(s)) {
        let Some(room) = s.module.first() else {
            continue;
        };
        let named = uses(s.code())
            .into_iter()
            .flat_map(|stmt| {
                paths(&stmt)
                    .into_iter()
                    .map(move |p| (format!("use {stmt}"), p))
            })
            .chain(inline_paths(s.code()));
        for (stmt, path) in named {
            {
                let target = absolute(&s.module, &path);
                let Some(to) = target.first() else { continue };
                let is_room = src().join(to).is_dir() || src().join(format!("{to}.rs")).is_file();
                if to == room || !is_room {
                    continue;
                }
                arrows.entry(room.clone()).or_default().insert(to.clone());
                why.entry((room.clone(), to.clone()))
                    .or_insert_with(|| format!("{}: {stmt}", s.file.display()));
            }
        }
    }
    // Every arrow a -> b where b also reaches a is part of a circle.
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(n) = todo.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n.clone()) {
                todo.extend(arrows.get(&n).into_iter().flatten().cloned());
            }
        }
        false
    };
    let circular: Vec<String> = arrows
        .iter()
        .flat_map(|(from, tos)| tos.iter().map(move |to| (from, to)))
        .filter(|(from, to)| reaches(to, from))
        .map(|(from, to)| format!("{from} -> {to}: {}", why[&(from.clone(), to.clone())]))
        .collect();
    assert!(
        circular.is_empty(),
        "arrows on an import circle:\n{}",
        circular.join("\n")
    );
}

#[test]
fn no_actor_imports_from_the_file_that_wires_them() {
    let srcs = sources();
    // What `actors/` holds as modules: `crate::actors::<one of these>::…`
    // is an actor's own room, anything else is `actors/mod.rs` itself.
    let rooms: BTreeSet<String> = srcs
        .iter()
        .filter(|s| s.module.len() >= 2 && s.module[0] == "actors")
        .map(|s| s.module[1].clone())
        .collect();
    let mut wrong = Vec::new();
    for s in srcs
        .iter()
        .filter(|s| s.module.len() >= 2 && s.module[0] == "actors" && !is_unit_tests(s))
    {
        for stmt in uses(s.code()) {
            for path in paths(&stmt) {
                let target = absolute(&s.module, &path);
                if target.len() >= 2
                    && target[0] == "actors"
                    && !rooms.contains(&target[1])
                    && target[1] != "self"
                {
                    wrong.push(format!("{}: use {stmt}", s.file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "actors import from actors/mod.rs:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_file_of_src_is_over_600_lines_and_one_over_500_says_why() {
    let mut wrong = Vec::new();
    for s in sources().iter().filter(|s| !is_unit_tests(s)) {
        let lines = s.text.lines().count();
        let opening: String = s
            .text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join(" ");
        if lines > MOST_LINES {
            wrong.push(format!("{}: {lines} lines", s.file.display()));
        } else if lines > SAY_WHY_ABOVE && !opening.contains("lines") {
            wrong.push(format!(
                "{}: {lines} lines, and its opening paragraph does not say why",
                s.file.display()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
