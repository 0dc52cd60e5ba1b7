//! Inputs: from paths on disk to a validated model, for the binaries.
//!
//! Reads files only; prints nothing itself. Warnings are handed back so the caller
//! decides where they go (stderr for `netpolctl`, the log for `netpold`).

use std::path::PathBuf;

use rules_compiler::diag::{Diagnostic, Rejected, SHOWN_DIAGNOSTICS};
use rules_compiler::model::ObjectName;
use rules_compiler::resolve::{EndpointId, Index};
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

/// Finds endpoints by `namespace/name`, sorted and de-duplicated; every unknown name
/// is reported at once.
pub fn find_endpoints(index: &Index<'_>, names: &[ObjectName]) -> Result<Vec<EndpointId>, String> {
    let (found, errors): (Vec<_>, Vec<_>) = names
        .iter()
        .map(|n| find_endpoint(index, n))
        .partition(Result::is_ok);
    if !errors.is_empty() {
        let errors: Vec<String> = errors.into_iter().filter_map(Result::err).collect();
        return Err(errors.join("\n"));
    }
    let mut found: Vec<EndpointId> = found.into_iter().filter_map(Result::ok).collect();
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// Finds one endpoint by `namespace/name`. An unknown name is an error that says
/// whether the object was skipped (and why) or lists what its namespace has, so a typo
/// is easy to fix.
pub fn find_endpoint(index: &Index<'_>, name: &ObjectName) -> Result<EndpointId, String> {
    let inventory = &index.model.inventory;
    if let Some(i) = inventory.endpoint_index(name) {
        return Ok(i);
    }
    let suffix = format!(" {name}");
    if let Some(s) = inventory
        .skipped
        .iter()
        .find(|s| s.object.ends_with(&suffix))
    {
        return Err(format!("{name} is not enforced: {}", s.reason));
    }
    let known: Vec<&str> = inventory
        .endpoints
        .iter()
        .filter(|e| e.id.namespace == name.namespace)
        .map(|e| e.id.name.as_str())
        .collect();
    Err(if known.is_empty() {
        format!(
            "no endpoint {name} in the inventory (no endpoints in namespace {})",
            name.namespace
        )
    } else {
        // A namespace may hold thousands of endpoints; this message also becomes the
        // daemon's last error, so it names a few and counts the rest.
        let more = match known.len().checked_sub(SHOWN_DIAGNOSTICS) {
            Some(n) if n > 0 => format!(" and {n} more"),
            _ => String::new(),
        };
        let shown: Vec<&str> = known.iter().take(SHOWN_DIAGNOSTICS).copied().collect();
        format!(
            "no endpoint {name} in the inventory (namespace {} has: {}{more})",
            name.namespace,
            shown.join(", ")
        )
    })
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

    #[test]
    fn an_unknown_endpoint_names_a_few_of_its_namespace_and_counts_the_rest() {
        let inventory: String = (0..500)
            .map(|i| {
                format!(
                    "---\napiVersion: netpol/v1\nkind: Endpoint\n\
                     metadata: {{namespace: big, name: e{i}}}\nips: [198.18.{}.{}]\n",
                    i / 200,
                    i % 200 + 1
                )
            })
            .collect();
        let inventory = [load::Input {
            path: "inventory.yaml".into(),
            text: inventory,
        }];
        let loaded = rules_compiler::load_model(&[], &inventory).unwrap();
        let index = Index::new(&loaded.model);
        let err = find_endpoint(&index, &ObjectName::new("big", "nope")).unwrap_err();
        assert!(err.ends_with(" and 450 more)"), "{err}");
        assert!(err.len() < 1000, "{} bytes: {err}", err.len());
    }
}
