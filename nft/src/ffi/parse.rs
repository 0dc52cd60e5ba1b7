//! Kernel dump messages read with libnftnl's parsers into plain Rust values: chains,
//! rules (their counter and comment), sets, set elements (counted), the generation.
//!
//! Only reads; what the values mean is `readback`'s.

use std::ffi::{c_char, CStr};

use nftnl::nftnl_sys as sys;

use super::{Aligned, Obj};
use crate::encode::k;
use crate::reply;

/// A chain read back.
#[derive(Debug)]
pub(crate) struct ChainInfo {
    pub table: String,
    pub name: String,
    pub hooknum: Option<u32>,
}

/// A rule read back: its chain, counters and comment.
#[derive(Debug)]
pub(crate) struct RuleInfo {
    pub table: String,
    pub chain: String,
    /// (packets, bytes) of its counter expression, if it has one.
    pub counter: Option<(u64, u64)>,
    pub comment: Option<String>,
}

/// A set read back.
#[derive(Debug)]
pub(crate) struct SetInfo {
    pub table: String,
    pub name: String,
    pub flags: u32,
}

/// Runs `f` on `msg` as a complete, aligned `nlmsghdr`.
fn with_aligned<R>(msg: &[u8], f: impl FnOnce(*const libc::nlmsghdr) -> R) -> Option<R> {
    let len = reply::header(msg)?.len as usize;
    if len > msg.len() {
        return None;
    }
    if (msg.as_ptr() as usize) % 8 == 0 {
        return Some(f(msg.as_ptr().cast()));
    }
    let mut copy = Aligned::new(len);
    copy.bytes_mut()[..len].copy_from_slice(&msg[..len]);
    Some(f(copy.bytes(len).as_ptr().cast()))
}

/// A NUL-terminated string that libnftnl returns (or none).
///
/// # Safety
/// `p` is null or points to a NUL-terminated string valid for the call.
unsafe fn owned_str(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller's promise.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Parses a `NFT_MSG_NEWCHAIN` of a dump.
pub(crate) fn parse_chain(msg: &[u8]) -> Option<ChainInfo> {
    with_aligned(msg, |nlh| {
        // SAFETY: `nlh` is complete and aligned (`with_aligned`); the chain is freed by
        // `Obj`; strings are copied out before it is.
        unsafe {
            let c = Obj::new(sys::nftnl_chain_alloc(), sys::nftnl_chain_free);
            if sys::nftnl_chain_nlmsg_parse(nlh, c.as_ptr()) < 0 {
                return None;
            }
            let p = c.as_ptr();
            let hooknum = sys::nftnl_chain_is_set(p, sys::NFTNL_CHAIN_HOOKNUM as u16)
                .then(|| sys::nftnl_chain_get_u32(p, sys::NFTNL_CHAIN_HOOKNUM as u16));
            Some(ChainInfo {
                table: owned_str(sys::nftnl_chain_get_str(p, sys::NFTNL_CHAIN_TABLE as u16)),
                name: owned_str(sys::nftnl_chain_get_str(p, sys::NFTNL_CHAIN_NAME as u16)),
                hooknum,
            })
        }
    })
    .flatten()
}

/// Parses a `NFT_MSG_NEWRULE` of a dump.
pub(crate) fn parse_rule(msg: &[u8]) -> Option<RuleInfo> {
    with_aligned(msg, |nlh| {
        // SAFETY: as in `parse_chain`; the iterator is destroyed before the rule, and
        // expressions it yields are owned by the rule; user data is copied out.
        unsafe {
            let r = Obj::new(sys::nftnl_rule_alloc(), sys::nftnl_rule_free);
            if sys::nftnl_rule_nlmsg_parse(nlh, r.as_ptr()) < 0 {
                return None;
            }
            let p = r.as_ptr();
            let mut counter = None;
            let iter = sys::nftnl_expr_iter_create(p);
            if !iter.is_null() {
                loop {
                    let e = sys::nftnl_expr_iter_next(iter);
                    if e.is_null() {
                        break;
                    }
                    let name =
                        CStr::from_ptr(sys::nftnl_expr_get_str(e, sys::NFTNL_EXPR_NAME as u16));
                    if name == c"counter" {
                        counter = Some((
                            sys::nftnl_expr_get_u64(e, sys::NFTNL_EXPR_CTR_PACKETS as u16),
                            sys::nftnl_expr_get_u64(e, sys::NFTNL_EXPR_CTR_BYTES as u16),
                        ));
                    }
                }
                sys::nftnl_expr_iter_destroy(iter);
            }
            let mut comment = None;
            if sys::nftnl_rule_is_set(p, sys::NFTNL_RULE_USERDATA as u16) {
                let mut len = 0u32;
                let data = sys::nftnl_rule_get_data(p, sys::NFTNL_RULE_USERDATA as u16, &mut len);
                if !data.is_null() {
                    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
                    comment = reply::udata_comment(bytes);
                }
            }
            Some(RuleInfo {
                table: owned_str(sys::nftnl_rule_get_str(p, sys::NFTNL_RULE_TABLE as u16)),
                chain: owned_str(sys::nftnl_rule_get_str(p, sys::NFTNL_RULE_CHAIN as u16)),
                counter,
                comment,
            })
        }
    })
    .flatten()
}

/// Parses a `NFT_MSG_NEWSET` of a dump.
pub(crate) fn parse_set(msg: &[u8]) -> Option<SetInfo> {
    with_aligned(msg, |nlh| {
        // SAFETY: as in `parse_chain`.
        unsafe {
            let s = Obj::new(sys::nftnl_set_alloc(), sys::nftnl_set_free);
            if sys::nftnl_set_nlmsg_parse(nlh, s.as_ptr()) < 0 {
                return None;
            }
            let p = s.as_ptr();
            let flags = if sys::nftnl_set_is_set(p, sys::NFTNL_SET_FLAGS as u16) {
                sys::nftnl_set_get_u32(p, sys::NFTNL_SET_FLAGS as u16)
            } else {
                0
            };
            Some(SetInfo {
                table: owned_str(sys::nftnl_set_get_str(p, sys::NFTNL_SET_TABLE as u16)),
                name: owned_str(sys::nftnl_set_get_str(p, sys::NFTNL_SET_NAME as u16)),
                flags,
            })
        }
    })
    .flatten()
}

/// Parses a `NFT_MSG_NEWSETELEM` of a dump: the set's name and how many of its
/// elements are not interval ends (one per plan element).
pub(crate) fn parse_elems(msg: &[u8]) -> Option<(String, usize)> {
    with_aligned(msg, |nlh| {
        // SAFETY: as in `parse_chain`; elements yielded by the iterator are owned by
        // the set, and the iterator is destroyed before the set.
        unsafe {
            let s = Obj::new(sys::nftnl_set_alloc(), sys::nftnl_set_free);
            if sys::nftnl_set_elems_nlmsg_parse(nlh, s.as_ptr()) < 0 {
                return None;
            }
            let p = s.as_ptr();
            let name = owned_str(sys::nftnl_set_get_str(p, sys::NFTNL_SET_NAME as u16));
            let mut count = 0;
            let iter = sys::nftnl_set_elems_iter_create(p);
            if !iter.is_null() {
                // `_next` yields the current element and moves on (the first call
                // yields the first element), null at the end.
                loop {
                    let e = sys::nftnl_set_elems_iter_next(iter);
                    if e.is_null() {
                        break;
                    }
                    let flags = if sys::nftnl_set_elem_is_set(e, sys::NFTNL_SET_ELEM_FLAGS as u16) {
                        sys::nftnl_set_elem_get_u32(e, sys::NFTNL_SET_ELEM_FLAGS as u16)
                    } else {
                        0
                    };
                    if flags & k::NFT_SET_ELEM_INTERVAL_END == 0 {
                        count += 1;
                    }
                }
                sys::nftnl_set_elems_iter_destroy(iter);
            }
            Some((name, count))
        }
    })
    .flatten()
}

/// Parses a `NFT_MSG_NEWGEN`: the ruleset generation.
pub(crate) fn parse_gen(msg: &[u8]) -> Option<u32> {
    with_aligned(msg, |nlh| {
        // SAFETY: as in `parse_chain`.
        unsafe {
            let g = Obj::new(sys::nftnl_gen_alloc(), sys::nftnl_gen_free);
            if sys::nftnl_gen_nlmsg_parse(nlh, g.as_ptr()) < 0 {
                return None;
            }
            Some(sys::nftnl_gen_get_u32(g.as_ptr(), sys::NFTNL_GEN_ID as u16))
        }
    })
    .flatten()
}
