//! Inputs: from paths on disk to a validated model, for the binaries.
//!
//! Reads files only; prints nothing itself. Warnings are handed back so the caller
//! decides where they go (stderr for `netpolctl`, the log for `netpold`).

use std::path::PathBuf;

use rules_compiler::diag::{Diagnostic, Rejected, SHOWN_DIAGNOSTICS};
use rules_compiler::{load, Loaded};

/// Where the policies and the inventory are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// Policy files or directories.
    pub policies: Vec<PathBuf>,
    /// Inventory files or directories.
    pub inventory: Vec<PathBuf>,
    /// How they are read.
    pub options: load::Options,
}

/// Reads and validates everything. On rejection every error of every file is in the
/// `Err`.
pub fn load(paths: &Paths) -> Result<Loaded, Rejected> {
    let policies = load::read_paths(&paths.policies, &paths.options);
    let inventory = load::read_paths(&paths.inventory, &paths.options);
    match (policies, inventory) {
        (Ok(p), Ok(i)) => rules_compiler::load_model_within(&p, &i, &paths.options.limits),
        (p, i) => {
            // Report unreadable paths of both kinds at once.
            let mut all = Vec::new();
            for r in [p, i] {
                if let Err(Rejected(d)) = r {
                    all.extend(d);
                }
            }
            Err(Rejected(all))
        }
    }
}

/// Formats warnings one per line: the first [`SHOWN_DIAGNOSTICS`], then how many more,
/// so 5,000 skipped pods cannot flood stderr (errors are capped the same way by
/// `Rejected`'s Display).
pub fn format_warnings(warnings: &[Diagnostic]) -> String {
    let mut out: String = warnings
        .iter()
        .take(SHOWN_DIAGNOSTICS)
        .map(|w| format!("{w}\n"))
        .collect();
    if let Some(more) = more_warnings(warnings.len()) {
        out.push_str(&more);
        out.push('\n');
    }
    out
}

/// `… and N more warnings` when `count` is over [`SHOWN_DIAGNOSTICS`].
pub fn more_warnings(count: usize) -> Option<String> {
    let more = count.checked_sub(SHOWN_DIAGNOSTICS).filter(|&n| n > 0)?;
    Some(format!(
        "… and {more} more warning{}",
        if more == 1 { "" } else { "s" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_show_the_first_fifty_and_count_the_rest() {
        let few: Vec<Diagnostic> = (0..SHOWN_DIAGNOSTICS)
            .map(|i| Diagnostic::warning(format!("w{i}")))
            .collect();
        assert_eq!(format_warnings(&few).lines().count(), SHOWN_DIAGNOSTICS);
        let many: Vec<Diagnostic> = (0..5000)
            .map(|i| Diagnostic::warning(format!("w{i}")))
            .collect();
        let text = format_warnings(&many);
        assert_eq!(text.lines().count(), SHOWN_DIAGNOSTICS + 1, "{text}");
        assert!(
            text.ends_with("warning: w49\n… and 4950 more warnings\n"),
            "{text}"
        );
        assert_eq!(
            more_warnings(SHOWN_DIAGNOSTICS + 1).as_deref(),
            Some("… and 1 more warning")
        );
    }
}
