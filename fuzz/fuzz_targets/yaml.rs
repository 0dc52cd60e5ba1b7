//! The YAML loader and decoder: any bytes give documents or diagnostics, a model or a
//! rejection, and a loaded model plans, renders and lints, never a panic. The first byte picks
//! the role of the rest: policies (against the bundled example's inventory) or
//! inventory (against its policies), drop or reject, and default or tight limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol_fuzz::{input, limits_for, load_against_example, mode_and_text, parse_documents};

fuzz_target!(|data: &[u8]| {
    let Some((mode, text)) = mode_and_text(data) else {
        return;
    };
    let fuzzed = input("fuzzed.yaml", text);
    let limits = limits_for(mode);
    parse_documents(&fuzzed, &limits);
    load_against_example(fuzzed, mode, &limits);
});
