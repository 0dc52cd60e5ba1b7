//! Golden files: compare produced text with a file under `tests/golden/`, print both
//! sides on a mismatch, and rewrite the file instead when `UPDATE_GOLDEN=1` is set
//! (review the diff with `git diff tests/golden` before committing).

use std::path::{Path, PathBuf};

/// The repository root (the workspace), from this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Compares `actual` with the golden file, or rewrites it under `UPDATE_GOLDEN=1`.
/// Returns a description of the first difference, or `None` when equal.
pub fn check(path: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return None;
    }
    let expected = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            return Some(format!(
                "cannot read golden file {}: {e}\n(run with UPDATE_GOLDEN=1 to create it)",
                path.display()
            ))
        }
    };
    if expected == actual {
        return None;
    }
    Some(describe_difference(path, &expected, actual))
}

fn describe_difference(path: &Path, expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let from = first.saturating_sub(3);
    let show = |lines: &[&str]| -> String {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .take(10)
            .map(|(i, l)| format!("{:>5} | {l}\n", i + 1))
            .collect()
    };
    format!(
        "{} differs from what was produced, first at line {} \
         (expected {} lines, got {}).\n--- expected\n{}+++ actual\n{}\
         If the change is intended, run with UPDATE_GOLDEN=1 and review `git diff`.",
        path.display(),
        first + 1,
        e.len(),
        a.len(),
        show(&e),
        show(&a)
    )
}
