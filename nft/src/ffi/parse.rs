//! Kernel dump messages read with libnftnl's parsers into plain Rust values: chains,
//! rules (their counter and comment), sets, set elements (counted), the generation.
//!
//! Only reads; what the values mean is `readback`'s.

use std::ffi::{c_char, CStr};

use nftnl::nftnl_sys as sys;

use super::{Aligned, Obj, NLMSG_AND_NFGEN};
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
    /// The prefix of its log expression, if it has one.
    pub log: Option<String>,
}

/// A named limit read back.
#[derive(Debug)]
pub(crate) struct LimitInfo {
    pub table: String,
    pub name: String,
    pub rate: u64,
    pub burst: u32,
}

/// A set read back.
#[derive(Debug)]
pub(crate) struct SetInfo {
    pub table: String,
    pub name: String,
    pub flags: u32,
}

/// Why a message was not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    /// Shorter than an `nlmsghdr` and an `nfgenmsg`, or than its own `nlmsg_len` says:
    /// never handed to libnftnl, whose parsers read those without checking.
    #[error(
        "an incomplete netlink message ({have} bytes, nlmsg_len {claimed:?}; an nf_tables \
         message has at least {NLMSG_AND_NFGEN})"
    )]
    Short {
        /// The bytes there are.
        have: usize,
        /// What its header says, if it has a length.
        claimed: Option<usize>,
    },
    /// libnftnl's parser refused it.
    #[error("libnftnl could not parse a {0} message")]
    Refused(&'static str),
}

/// Runs `f` on `msg` as a complete, aligned `nlmsghdr`: at least a header and an
/// `nfgenmsg`, and no longer than the bytes there are. Anything else is refused before
/// `f` (a libnftnl parser) sees it.
fn with_aligned<R>(
    msg: &[u8],
    f: impl FnOnce(*const libc::nlmsghdr) -> Result<R, Malformed>,
) -> Result<R, Malformed> {
    let have = msg.len();
    let len = reply::header(msg).map(|h| h.len as usize);
    let len = match len {
        Some(len) if (NLMSG_AND_NFGEN..=have).contains(&len) => len,
        claimed => return Err(Malformed::Short { have, claimed }),
    };
    if (msg.as_ptr() as usize) % 8 == 0 {
        return f(msg.as_ptr().cast());
    }
    let mut copy = Aligned::new(len);
    copy.bytes_mut()[..len].copy_from_slice(&msg[..len]);
    f(copy.bytes(len).as_ptr().cast())
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
pub(crate) fn parse_chain(msg: &[u8]) -> Result<ChainInfo, Malformed> {
    with_aligned(msg, |nlh| {
        // SAFETY: `nlh` is complete and aligned (`with_aligned`); the chain is freed by
        // `Obj`; strings are null-checked and copied out before it is (`owned_str`).
        unsafe {
            let c = Obj::new(sys::nftnl_chain_alloc(), sys::nftnl_chain_free);
            if sys::nftnl_chain_nlmsg_parse(nlh, c.as_ptr()) < 0 {
                return Err(Malformed::Refused("chain"));
            }
            let p = c.as_ptr();
            let hooknum = sys::nftnl_chain_is_set(p, sys::NFTNL_CHAIN_HOOKNUM as u16)
                .then(|| sys::nftnl_chain_get_u32(p, sys::NFTNL_CHAIN_HOOKNUM as u16));
            Ok(ChainInfo {
                table: owned_str(sys::nftnl_chain_get_str(p, sys::NFTNL_CHAIN_TABLE as u16)),
                name: owned_str(sys::nftnl_chain_get_str(p, sys::NFTNL_CHAIN_NAME as u16)),
                hooknum,
            })
        }
    })
}

/// Parses a `NFT_MSG_NEWRULE` of a dump.
pub(crate) fn parse_rule(msg: &[u8]) -> Result<RuleInfo, Malformed> {
    with_aligned(msg, |nlh| {
        // SAFETY: as in `parse_chain`; the iterator is destroyed before the rule, and
        // expressions it yields are owned by the rule; an expression's name is read only
        // when not null; user data (null-checked, `len` bytes) is copied out.
        unsafe {
            let r = Obj::new(sys::nftnl_rule_alloc(), sys::nftnl_rule_free);
            if sys::nftnl_rule_nlmsg_parse(nlh, r.as_ptr()) < 0 {
                return Err(Malformed::Refused("rule"));
            }
            let p = r.as_ptr();
            let mut counter = None;
            let mut log = None;
            let iter = sys::nftnl_expr_iter_create(p);
            if !iter.is_null() {
                loop {
                    let e = sys::nftnl_expr_iter_next(iter);
                    if e.is_null() {
                        break;
                    }
                    let name = sys::nftnl_expr_get_str(e, sys::NFTNL_EXPR_NAME as u16);
                    if !name.is_null() && CStr::from_ptr(name) == c"counter" {
                        counter = Some((
                            sys::nftnl_expr_get_u64(e, sys::NFTNL_EXPR_CTR_PACKETS as u16),
                            sys::nftnl_expr_get_u64(e, sys::NFTNL_EXPR_CTR_BYTES as u16),
                        ));
                    } else if !name.is_null() && CStr::from_ptr(name) == c"log" {
                        let prefix = sys::nftnl_expr_get_str(e, sys::NFTNL_EXPR_LOG_PREFIX as u16);
                        log = Some(owned_str(prefix));
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
            Ok(RuleInfo {
                table: owned_str(sys::nftnl_rule_get_str(p, sys::NFTNL_RULE_TABLE as u16)),
                chain: owned_str(sys::nftnl_rule_get_str(p, sys::NFTNL_RULE_CHAIN as u16)),
                counter,
                comment,
                log,
            })
        }
    })
}

/// Parses a `NFT_MSG_NEWOBJ` of a dump: `None` for an object that is not a limit.
pub(crate) fn parse_limit(msg: &[u8]) -> Result<Option<LimitInfo>, Malformed> {
    with_aligned(msg, |nlh| {
        // SAFETY: as in `parse_chain`; numbers are read only when libnftnl set them.
        unsafe {
            let o = Obj::new(sys::nftnl_obj_alloc(), sys::nftnl_obj_free);
            if sys::nftnl_obj_nlmsg_parse(nlh, o.as_ptr()) < 0 {
                return Err(Malformed::Refused("object"));
            }
            let p = o.as_ptr();
            let is = |a: u32| sys::nftnl_obj_is_set(p, a as u16);
            if !is(sys::NFTNL_OBJ_TYPE)
                || sys::nftnl_obj_get_u32(p, sys::NFTNL_OBJ_TYPE as u16) != k::NFT_OBJECT_LIMIT
            {
                return Ok(None);
            }
            let rate = if is(sys::NFTNL_OBJ_LIMIT_RATE) {
                sys::nftnl_obj_get_u64(p, sys::NFTNL_OBJ_LIMIT_RATE as u16)
            } else {
                0
            };
            let burst = if is(sys::NFTNL_OBJ_LIMIT_BURST) {
                sys::nftnl_obj_get_u32(p, sys::NFTNL_OBJ_LIMIT_BURST as u16)
            } else {
                0
            };
            Ok(Some(LimitInfo {
                table: owned_str(sys::nftnl_obj_get_str(p, sys::NFTNL_OBJ_TABLE as u16)),
                name: owned_str(sys::nftnl_obj_get_str(p, sys::NFTNL_OBJ_NAME as u16)),
                rate,
                burst,
            }))
        }
    })
}

/// Parses a `NFT_MSG_NEWSET` of a dump.
pub(crate) fn parse_set(msg: &[u8]) -> Result<SetInfo, Malformed> {
    with_aligned(msg, |nlh| {
        // SAFETY: as in `parse_chain`.
        unsafe {
            let s = Obj::new(sys::nftnl_set_alloc(), sys::nftnl_set_free);
            if sys::nftnl_set_nlmsg_parse(nlh, s.as_ptr()) < 0 {
                return Err(Malformed::Refused("set"));
            }
            let p = s.as_ptr();
            let flags = if sys::nftnl_set_is_set(p, sys::NFTNL_SET_FLAGS as u16) {
                sys::nftnl_set_get_u32(p, sys::NFTNL_SET_FLAGS as u16)
            } else {
                0
            };
            Ok(SetInfo {
                table: owned_str(sys::nftnl_set_get_str(p, sys::NFTNL_SET_TABLE as u16)),
                name: owned_str(sys::nftnl_set_get_str(p, sys::NFTNL_SET_NAME as u16)),
                flags,
            })
        }
    })
}

/// Parses a `NFT_MSG_NEWSETELEM` of a dump: the set's name and how many of its
/// elements are not interval ends (one per plan element).
pub(crate) fn parse_elems(msg: &[u8]) -> Result<(String, usize), Malformed> {
    with_aligned(msg, |nlh| {
        // SAFETY: as in `parse_chain`; elements yielded by the iterator are owned by
        // the set, and the iterator is destroyed before the set.
        unsafe {
            let s = Obj::new(sys::nftnl_set_alloc(), sys::nftnl_set_free);
            if sys::nftnl_set_elems_nlmsg_parse(nlh, s.as_ptr()) < 0 {
                return Err(Malformed::Refused("set element"));
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
            Ok((name, count))
        }
    })
}

/// Parses a `NFT_MSG_NEWGEN`: the ruleset generation.
pub(crate) fn parse_gen(msg: &[u8]) -> Result<u32, Malformed> {
    with_aligned(msg, |nlh| {
        // SAFETY: as in `parse_chain`.
        unsafe {
            let g = Obj::new(sys::nftnl_gen_alloc(), sys::nftnl_gen_free);
            if sys::nftnl_gen_nlmsg_parse(nlh, g.as_ptr()) < 0 {
                return Err(Malformed::Refused("generation"));
            }
            Ok(sys::nftnl_gen_get_u32(g.as_ptr(), sys::NFTNL_GEN_ID as u16))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message of `len` bytes whose header says `claimed`.
    fn message(len: usize, claimed: u32) -> Vec<u8> {
        let mut m = vec![0u8; len];
        if len >= 4 {
            m[..4].copy_from_slice(&claimed.to_ne_bytes());
        }
        m
    }

    #[test]
    fn messages_shorter_than_a_header_and_nfgenmsg_are_refused_unparsed() {
        let never = |_: *const libc::nlmsghdr| -> Result<(), Malformed> {
            panic!("an incomplete message was handed to the parser")
        };
        let cases = [
            (message(3, 0), None),
            // A header alone, no nfgenmsg.
            (message(16, 16), Some(16)),
            // A length under the minimum, however many bytes follow.
            (message(24, 8), Some(8)),
            // A length past the bytes there are.
            (message(24, 100), Some(100)),
        ];
        for (msg, claimed) in cases {
            let have = msg.len();
            let want = Err(Malformed::Short { have, claimed });
            assert_eq!(with_aligned(&msg, never), want, "{have} bytes");
            assert!(parse_chain(&msg).is_err());
            assert!(parse_rule(&msg).is_err());
            assert!(parse_set(&msg).is_err());
            assert!(parse_elems(&msg).is_err());
            assert!(parse_gen(&msg).is_err());
            assert!(parse_limit(&msg).is_err());
        }
        let err = parse_gen(&message(16, 16)).unwrap_err().to_string();
        assert!(err.contains("incomplete"), "{err}");
        // Complete and unaligned: handed over, from an aligned copy.
        let mut buf = Aligned::new(24);
        buf.bytes_mut()[1..5].copy_from_slice(&20u32.to_ne_bytes());
        let aligned = with_aligned(&buf.bytes(21)[1..], |nlh| Ok((nlh as usize) % 8 == 0));
        assert_eq!(aligned, Ok(true));
    }
}
