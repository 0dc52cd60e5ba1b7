//! What a client may send: a control-socket request line and a metrics request head.
//! Any bytes give a request or an error answer, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netpol_fuzz::control(data));
