//! Every call into C of netpol's libraries but one (`heap`): thin wrappers over
//! libnftnl (through `nftnl-sys`) and the netlink socket (through `mnl` and `libc`).
//!
//! Everything here is mechanical. `build` (with `bounds`, the message size checked
//! before a builder runs) turns the plain batch of `encode` into
//! netlink bytes with libnftnl's builders (`expr` for a rule's expressions) — except
//! the set elements, which `elems` writes straight into the batch in safe code, byte
//! for byte as libnftnl would (a test compares the two), because a libnftnl object per
//! element made serializing a plan of 100,000 elements several times slower. `socket`
//! sends and receives bytes, and `parse` reads kernel dumps with libnftnl's parsers
//! into plain Rust values. No decision about what to send lives here.
//!
//! Invariants that make the unsafe blocks sound:
//! - every libnftnl object is owned by an [`Obj`] that frees it exactly once, and
//!   objects handed over to a parent (`nftnl_rule_add_expr`, `nftnl_set_elem_add`) are
//!   released from their owner first; a null pointer from an allocator is never
//!   wrapped;
//! - every message is built into a scratch [`Aligned`] buffer of `nft_nlmsg_maxsize()`
//!   bytes, aligned for `nlmsghdr`, and only after checking that an upper bound of its
//!   size fits (libnftnl's builders do not check bounds);
//! - data copied by libnftnl into fixed-size fields (register data, concatenation
//!   field lengths) is checked against their size before the call;
//! - strings handed to C are `CString`s that outlive the call (libnftnl copies them);
//!   strings from C are null-checked before they are read;
//! - messages handed to libnftnl's parsers are aligned and complete: at least an
//!   `nlmsghdr` and an `nfgenmsg`, and their `nlmsg_len` within the bytes that hold
//!   them.
#![allow(unsafe_code)]

mod bounds;
mod build;
mod elems;
mod expr;
mod parse;
mod socket;

use std::ffi::{c_char, CString};
use std::ptr::NonNull;

use crate::encode::EncodeError;

pub(crate) use build::{get_request, serialize, Wire};
#[cfg(test)]
pub(crate) use elems::{elems_msg_libnftnl, elems_msg_ours};
pub(crate) use parse::{parse_chain, parse_elems, parse_gen, parse_limit, parse_rule, parse_set};
pub(crate) use socket::{readable, readable_nflog, Membership, Socket};

/// Largest message libnftnl may build (an element list nest is at most 64 KiB).
fn msg_max() -> usize {
    nftnl::nft_nlmsg_maxsize() as usize
}

/// A buffer aligned for `nlmsghdr` (8 bytes), where messages are built or received.
pub(crate) struct Aligned {
    words: Vec<u64>,
}

impl Aligned {
    /// A zeroed buffer of at least `bytes` bytes.
    pub(crate) fn new(bytes: usize) -> Aligned {
        Aligned {
            words: vec![0; bytes.div_ceil(8)],
        }
    }

    fn capacity(&self) -> usize {
        self.words.len() * 8
    }

    fn as_mut_ptr(&mut self) -> *mut c_char {
        self.words.as_mut_ptr().cast()
    }

    /// The first `len` bytes.
    pub(crate) fn bytes(&self, len: usize) -> &[u8] {
        let len = len.min(self.capacity());
        // SAFETY: the vector owns `capacity()` initialised bytes (u64s are plain data
        // with no padding), `len` is clamped to that, and the returned slice borrows
        // `self`, so the memory outlives it and is not written meanwhile.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.capacity();
        // SAFETY: as in `bytes`, with a unique borrow of `self` for a unique slice.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), len) }
    }
}

/// An owned libnftnl object, freed once on drop.
struct Obj<T> {
    ptr: NonNull<T>,
    free: unsafe extern "C" fn(*const T),
}

impl<T> Obj<T> {
    /// Takes ownership of what an `nftnl_*_alloc` returned; aborts on allocation
    /// failure as the standard library does.
    fn new(ptr: *mut T, free: unsafe extern "C" fn(*const T)) -> Obj<T> {
        Obj::try_new(ptr, free).unwrap_or_else(|| std::process::abort())
    }

    /// Takes ownership of what an `nftnl_*_alloc` returned, `None` for a null pointer
    /// (an allocator that also fails for other reasons: an unknown expression type).
    fn try_new(ptr: *mut T, free: unsafe extern "C" fn(*const T)) -> Option<Obj<T>> {
        NonNull::new(ptr).map(|ptr| Obj { ptr, free })
    }

    fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Gives up ownership, for a parent object that takes it over.
    fn into_raw(self) -> *mut T {
        let ptr = self.ptr.as_ptr();
        std::mem::forget(self);
        ptr
    }
}

impl<T> Drop for Obj<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from the matching alloc function, is owned by this value
        // alone (`into_raw` forgets the owner), and is freed only here.
        unsafe { (self.free)(self.ptr.as_ptr()) }
    }
}

fn cstring(s: &str) -> Result<CString, EncodeError> {
    CString::new(s).map_err(|_| EncodeError::new(format!("name {s:?} contains a NUL byte")))
}

fn len_u32(data: &[u8]) -> u32 {
    // Every buffer handed to libnftnl here is a key, a register value or user data of
    // at most a few hundred bytes.
    u32::try_from(data.len()).expect("attribute data fits in u32")
}

/// `nlmsghdr` and `nfgenmsg`, the start of every nf_tables message.
const NLMSG_AND_NFGEN: usize = 16 + 4;
