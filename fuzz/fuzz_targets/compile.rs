//! Compile end to end: a small generated policy set and inventory either are rejected
//! by the loader or compile (every endpoint local) to a ruleset that `nft -c` accepts
//! inside a throwaway network namespace. A ruleset nft rejects is a finding. Slow (one
//! nft process per accepted input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol_fuzz::gen::Case;
use netpol_fuzz::{compile_all, input, lint_all, load_model, nft_check};
use rules_compiler::plan::DenyAction;

fuzz_target!(|case: Case| {
    let policies = case.policies();
    let inventory = case.inventory();
    let loaded = load_model(
        &[input("policies.yaml", &policies)],
        &[input("inventory.yaml", &inventory)],
        &Default::default(),
    );
    // NETPOL_FUZZ_SHOW=1 (e.g. with -runs=0 over a corpus) says how far each case got:
    // a generator whose cases are mostly rejected tests little of the compiler.
    if std::env::var_os("NETPOL_FUZZ_SHOW").is_some() {
        match &loaded {
            Ok(l) => eprintln!(
                "loaded: {} policies, {} endpoints",
                l.model.policies.len(),
                l.model.inventory.endpoints.len()
            ),
            Err(e) => eprintln!("rejected: {}", e.to_string().lines().next().unwrap_or("")),
        }
    }
    let Ok(loaded) = loaded else {
        return;
    };
    let deny = if case.reject {
        DenyAction::Reject
    } else {
        DenyAction::Drop
    };
    let ruleset = compile_all(&loaded, deny, false);
    lint_all(&loaded);
    if let Err(e) = nft_check(&ruleset) {
        panic!(
            "nft -c rejected the ruleset:\n{e}\n--- policies ---\n{policies}\n--- inventory ---\n{inventory}\n--- ruleset ---\n{ruleset}"
        );
    }
});
