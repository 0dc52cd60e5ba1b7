//! Giving freed heap back to the system after a reload.
//!
//! A reload of a large inventory parses tens of megabytes of YAML into trees that live
//! for a moment; glibc's allocator keeps such freed memory mapped in its arenas (it
//! returns only the top of the main heap, past a threshold), so without this a daemon
//! that reloaded once would stay at its peak size. `malloc_trim(0)` returns every free
//! page of every arena. It takes a few milliseconds and touches no live allocation.
//!
//! This module must hold nothing but that call. It lives in this crate because every
//! call into C of netpol does (with `ffi`); the daemon calls it as `memory`.
#![allow(unsafe_code)]

/// Returns the allocator's free pages to the system. A no-op where the C library is not
/// glibc.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its locks;
    // it takes no pointer from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
