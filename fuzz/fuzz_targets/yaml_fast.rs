//! The YAML loader's fast path (`rules-compiler/src/load/fast.rs`): on any text, for
//! every chunk (document), it declines or gives exactly the tree, positions included,
//! that saphyr-parser gives. The first byte picks default or tight limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol_fuzz::{check_fast_yaml, limits_for, mode_and_text};

fuzz_target!(|data: &[u8]| {
    let Some((mode, text)) = mode_and_text(data) else {
        return;
    };
    let limits = limits_for(mode);
    check_fast_yaml(text, &limits);
});
