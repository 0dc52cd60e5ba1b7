//! The daemon's config-file parser: any bytes give settings or diagnostics, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        netpol_fuzz::check_config(&netpol_fuzz::input("/etc/netpol/netpold.yaml", text));
    }
});
