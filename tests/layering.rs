//! The module boundaries the design relies on, checked on the sources:
//! git is a source like the others, so the scan matches units and never
//! touches libgit2, and the reports know findings, not git.

use std::path::Path;

/// Every `.rs` file under `dir`, with its text.
fn sources_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources_under(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    out
}

fn uses(dir: &str, needles: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let files = sources_under(&root);
    assert!(!files.is_empty(), "no sources under {}", root.display());
    let mut found = Vec::new();
    for (path, text) in files {
        for (n, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                found.push(format!("{path}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_scan_never_touches_libgit2() {
    let found = uses("src/scan", &["git2"]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_reports_know_no_git_types() {
    let found = uses("src/report", &["git2", "sources::git"]);
    assert!(found.is_empty(), "{found:#?}");
}
