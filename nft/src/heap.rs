//! Giving freed heap back to the system after a reload.
//!
//! netpold's Rust heap is mimalloc's (its `#[global_allocator]`): a reload of a large
//! inventory builds and frees trees of tens of megabytes on several threads, which
//! mimalloc does a quarter faster than glibc. The bundled mimalloc (v3) returns freed
//! pages to the system a second after they are freed, so a daemon that reloads every few
//! seconds would keep a reload's garbage mapped; [`purge_freed_pages_at_once`] makes it
//! immediate, which left netpold with less memory than glibc with `malloc_trim`
//! (benches/README.md, issue 16).
//! The C libraries (libnftnl, libmnl) still allocate from glibc, whose arenas keep
//! freed memory until `malloc_trim(0)`: [`release_free_heap`].
//! Transparent huge pages are turned off for the daemon
//! ([`without_transparent_huge_pages`]): mimalloc asks for them, and a 2 MiB page
//! faulted in and zeroed whole for a few live objects made netpold hold more between
//! reloads, and peak higher, for no gain in speed.
//!
//! This module must hold nothing but these calls. It lives in this crate because every
//! call into C of netpol does (with `ffi`); the daemon calls it as `memory`.
#![allow(unsafe_code)]

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (include/mimalloc.h, v2 and v3
/// alike; libmimalloc-sys names only some options). Its default in v3 is 1000 (ms,
/// src/options.c); the test below checks that, so a renumbering would fail it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc give freed pages back to the system when they are freed, rather than
/// a second later. Call once, early; a no-op where mimalloc is not the allocator in use.
pub fn purge_freed_pages_at_once() {
    // SAFETY: sets one of mimalloc's options, an integer it reads when it next purges;
    // it takes no pointer and is safe from any thread at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// Turns transparent huge pages off for this process (and what it starts), whatever
/// the system's setting: every page is then 4 KiB, given back as soon as it is free.
pub fn without_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes integers only and changes one flag of this
    // process; it is safe from any thread at any time.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Returns glibc's free pages to the system. A no-op where the C library is not glibc.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its locks;
    // it takes no pointer from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        // SAFETY: reads one of mimalloc's options.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // Only this test changes it: its default first (v3's), then ours.
        assert_eq!(get(), 1000);
        purge_freed_pages_at_once();
        assert_eq!(get(), 0);
    }

    #[test]
    fn transparent_huge_pages_are_off_after_the_call() {
        // SAFETY: reads one flag of this process.
        let thp_disabled = || unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        without_transparent_huge_pages().expect("prctl");
        assert_eq!(thp_disabled(), 1);
    }
}
