//! The YAML loader and decoder: any bytes give documents or diagnostics, a model or a
//! rejection, and a loaded model plans, renders and lints, never a panic. The first byte picks
//! the role of the rest: policies (against the bundled example's inventory) or
//! inventory (against its policies), drop or reject, and default or tight limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol_fuzz::{compile_all, input, lint_all, load_model, parse_documents, tight_limits};
use rules_compiler::plan::DenyAction;

const EXAMPLE_POLICIES: &[(&str, &str)] = &[
    (
        "payments.yaml",
        include_str!("../../config/policies/payments.yaml"),
    ),
    ("web.yaml", include_str!("../../config/policies/web.yaml")),
];
const EXAMPLE_INVENTORY: &[(&str, &str)] = &[
    (
        "namespaces.yaml",
        include_str!("../../config/inventory/namespaces.yaml"),
    ),
    (
        "pods.yaml",
        include_str!("../../config/inventory/pods.yaml"),
    ),
    ("vms.yaml", include_str!("../../config/inventory/vms.yaml")),
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let fuzzed = input("fuzzed.yaml", text);
    let limits = if mode & 8 == 0 {
        rules_compiler::load::Limits::default()
    } else {
        tight_limits()
    };
    parse_documents(&fuzzed, &limits);
    let example =
        |files: &[(&str, &str)]| files.iter().map(|(n, t)| input(n, t)).collect::<Vec<_>>();
    let loaded = if mode & 1 == 0 {
        load_model(&[fuzzed], &example(EXAMPLE_INVENTORY), &limits)
    } else {
        load_model(&example(EXAMPLE_POLICIES), &[fuzzed], &limits)
    };
    match loaded {
        Ok(loaded) => {
            let deny = if mode & 2 == 0 {
                DenyAction::Drop
            } else {
                DenyAction::Reject
            };
            let _ = compile_all(&loaded, deny, mode & 4 != 0);
            lint_all(&loaded);
        }
        Err(rejected) => {
            let _ = rejected.to_string();
        }
    }
});
