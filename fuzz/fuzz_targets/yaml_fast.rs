//! The YAML loader's fast path (`rules-compiler/src/load/fast.rs`): on any text, for
//! every chunk (document), it declines or gives exactly the tree, positions included,
//! that saphyr-parser gives. The first byte picks default or tight limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol_fuzz::{check_fast_yaml, tight_limits};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let limits = if mode & 8 == 0 {
        rules_compiler::load::Limits::default()
    } else {
        tight_limits()
    };
    check_fast_yaml(text, &limits);
});
