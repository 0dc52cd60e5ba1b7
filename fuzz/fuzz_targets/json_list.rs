//! A kubectl JSON `List` cut into its items (issue 16, `load/json_list.rs`) reads as the
//! whole List does: the same model, spans and diagnostics cold on several threads and
//! through netpold's decode cache after an earlier version of the file was loaded. The
//! text before a NUL byte, if any, is that earlier version; without one, it is the same
//! text (bit 1 of the first byte) or nothing. The first byte also picks the role
//! (bit 0: policies) and the limits (bit 3: small ones, so that limits are reached).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpol_fuzz::{check_json_list_cut, mode_and_text};

fuzz_target!(|data: &[u8]| {
    let Some((mode, text)) = mode_and_text(data) else {
        return;
    };
    check_json_list_cut(mode, text);
});
