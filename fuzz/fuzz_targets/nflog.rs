//! What a hostile sender puts on the wire, as netpold reads it from NFLOG: any bytes
//! give a packet or nothing, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netpol_fuzz::nflog(data));
