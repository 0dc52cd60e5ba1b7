//! Ctrl-C for the kernel benchmarks that build a lab of network namespaces: SIGINT and
//! SIGTERM set a flag that the benchmark's loop checks, and the benchmark then panics,
//! unwinding through its lab's Drop guard, so no namespace is left behind. Included in
//! each benchmark with `#[path]` (a benchmark crate may hold this unsafe call; the
//! `netpol-benches` library forbids unsafe code).

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT or SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Turns SIGINT and SIGTERM into the flag [`stopped`] reads (clients killed by the same
/// Ctrl-C fail their run, which panics and unwinds through the Drop guard too).
#[allow(unsafe_code)]
pub fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

/// Whether SIGINT or SIGTERM came.
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}
