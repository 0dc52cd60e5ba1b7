//! The JSON loader (issue 16): any bytes whose text is JSON (a first character `{` or
//! `[`) are accepted exactly when serde_json accepts them, with the same values, or give
//! a diagnostic, never a panic; then, as the `yaml` target does, the text is loaded as
//! policies (against the bundled example's inventory) or as inventory (against its
//! policies) and what loads is planned and rendered. The first byte picks the role
//! (bit 0) and the limits (bit 3: small ones, so that limit errors are reached).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol_fuzz::{compile_all, input, json_against_serde, load_model, tight_limits};
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
    let fuzzed = input("fuzzed.json", text);
    let limits = if mode & 8 == 0 {
        rules_compiler::load::Limits::default()
    } else {
        tight_limits()
    };
    json_against_serde(&fuzzed, &limits);
    let example =
        |files: &[(&str, &str)]| files.iter().map(|(n, t)| input(n, t)).collect::<Vec<_>>();
    let loaded = if mode & 1 == 0 {
        load_model(&[fuzzed], &example(EXAMPLE_INVENTORY), &limits)
    } else {
        load_model(&example(EXAMPLE_POLICIES), &[fuzzed], &limits)
    };
    match loaded {
        Ok(loaded) => {
            let _ = compile_all(&loaded, DenyAction::Drop, mode & 4 != 0);
        }
        Err(rejected) => {
            let _ = rejected.to_string();
        }
    }
});
