//! The actors' house rule, read from the source: `src/actors/mod.rs` only
//! wires; no actor imports from it (the messages several actors handle are
//! `actors/messages.rs`), so the wiring can change without touching them.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, bounded in depth.
fn rust_files(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    assert!(depth < 8, "{}: nested too deep", dir.display());
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, depth + 1, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The items `actors/mod.rs` defines or re-exports for callers outside.
const WIRING: [&str; 5] = [
    "Pipeline",
    "PipelineOptions",
    "Reconfigure",
    "SourceRef",
    "Stop",
];

#[test]
fn no_actor_imports_from_the_file_that_wires_them() {
    let actors = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/actors");
    let mut files = Vec::new();
    rust_files(&actors, 0, &mut files);
    assert!(files.len() > 5, "the actors' files are found: {files:?}");
    let mut found = Vec::new();
    for file in files.iter().filter(|f| **f != actors.join("mod.rs")) {
        let text = std::fs::read_to_string(file).expect("a source file");
        // Where `super` is `actors`: `actors/x.rs` and `actors/x/mod.rs`.
        let parent = file.parent();
        let top = parent == Some(actors.as_path())
            || (file.ends_with("mod.rs")
                && parent.and_then(Path::parent) == Some(actors.as_path()));
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            // `super::` where it means `actors`, or `crate::actors::` from
            // any file, reaching an item of mod.rs rather than a module.
            let reaches_mod = |prefix: &str| {
                line.split(prefix).skip(1).any(|rest| {
                    WIRING.iter().any(|item| {
                        rest.starts_with(item)
                            && !rest[item.len()..].starts_with(|c: char| c.is_alphanumeric())
                            || rest.starts_with('{') && rest.contains(item)
                    })
                })
            };
            if reaches_mod("crate::actors::") || (top && reaches_mod("super::")) {
                found.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "imports from actors/mod.rs:\n{}",
        found.join("\n")
    );
}
