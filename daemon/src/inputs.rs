//! Inputs: from paths on disk to a validated model, for the binaries.
//!
//! Reads files only; prints nothing itself. Warnings are handed back so the caller
//! decides where they go (stderr for `netpolctl`, the log for `netpold`).

use std::path::PathBuf;

use rules_compiler::diag::{Diagnostic, Rejected};
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
        format!(
            "no endpoint {name} in the inventory (namespace {} has: {})",
            name.namespace,
            known.join(", ")
        )
    })
}

/// Formats warnings one per line.
pub fn format_warnings(warnings: &[Diagnostic]) -> String {
    warnings.iter().map(|w| format!("{w}\n")).collect()
}
