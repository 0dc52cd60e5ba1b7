//! The YAML loader and decoder: any bytes give documents or diagnostics, a model or a
//! rejection, and a loaded model plans, renders and lints, never a panic. The first byte picks
//! the role of the rest: policies (against the bundled example's inventory) or
//! inventory (against its policies), drop or reject, and default or tight limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol_fuzz::{input, load_against_example, parse_documents, tight_limits};

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
    load_against_example(fuzzed, mode, &limits);
});
