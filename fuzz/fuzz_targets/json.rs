//! The JSON loader (issue 16): any bytes whose text is JSON (a first character `{` or
//! `[`) are accepted exactly when serde_json accepts them, with the same values, or give
//! a diagnostic, never a panic; then, as the `yaml` target does, the text is loaded as
//! policies (against the bundled example's inventory) or as inventory (against its
//! policies) and what loads is planned, rendered and linted (`load_against_example`).
//! The first byte picks the role (bit 0), drop or reject (bit 1), JSON output (bit 2)
//! and the limits (bit 3: small ones, so that limit errors are reached).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol_fuzz::{input, json_against_serde, limits_for, load_against_example, mode_and_text};

fuzz_target!(|data: &[u8]| {
    let Some((mode, text)) = mode_and_text(data) else {
        return;
    };
    let fuzzed = input("fuzzed.json", text);
    let limits = limits_for(mode);
    json_against_serde(&fuzzed, &limits);
    load_against_example(fuzzed, mode, &limits);
});
