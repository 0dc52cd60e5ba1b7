//! Set element messages written in safe code, byte for byte as
//! `nftnl_set_elems_nlmsg_build_payload` writes them (the tests compare the two): a
//! libnftnl object per element made a plan of 100,000 elements several times slower to
//! serialize.
//!
//! Only the header comes from libnftnl. Mechanical, like the rest of `ffi`.

use std::ffi::CStr;

#[cfg(test)]
use nftnl::nftnl_sys as sys;

use super::bounds::elems_bound;
use super::build::{Writer, NLM_F_CREATE, NLM_F_EXCL};
use super::{cstring, msg_max, NLMSG_AND_NFGEN};
#[cfg(test)]
use super::{len_u32, Obj};
use crate::encode::{k, udata, Elem, ElemsDef, EncodeError};

// libnftnl's free functions take `*const`, except nftnl_set_elem_free, which is
// wrapped to fit `Obj`.
#[cfg(test)]
unsafe extern "C" fn set_elem_free(e: *const sys::nftnl_set_elem) {
    // SAFETY: called only by `Obj::drop` with a pointer from `nftnl_set_elem_alloc`.
    unsafe { sys::nftnl_set_elem_free(e.cast_mut()) }
}

#[cfg(test)]
fn elem_obj(e: &Elem) -> Result<Obj<sys::nftnl_set_elem>, EncodeError> {
    // SAFETY: an allocation without arguments; `Obj` refuses a null result (abort) and
    // owns the object.
    let el = Obj::new(unsafe { sys::nftnl_set_elem_alloc() }, set_elem_free);
    let verdict = e.verdict.as_ref().map(|v| v.code_and_chain());
    let chain = verdict.and_then(|(_, c)| c).map(cstring).transpose()?;
    // SAFETY: `el` is live; keys are at most 24 bytes (libnftnl's key buffers hold 64);
    // strings and user data are copied.
    unsafe {
        let p = el.as_ptr();
        let key = e.key.as_slice();
        sys::nftnl_set_elem_set(
            p,
            sys::NFTNL_SET_ELEM_KEY as u16,
            key.as_ptr().cast(),
            len_u32(key),
        );
        if let Some(end) = &e.key_end {
            let end = end.as_slice();
            sys::nftnl_set_elem_set(
                p,
                sys::NFTNL_SET_ELEM_KEY_END as u16,
                end.as_ptr().cast(),
                len_u32(end),
            );
        }
        if e.interval_end {
            sys::nftnl_set_elem_set_u32(
                p,
                sys::NFTNL_SET_ELEM_FLAGS as u16,
                k::NFT_SET_ELEM_INTERVAL_END,
            );
        }
        if let Some((code, _)) = verdict {
            sys::nftnl_set_elem_set_u32(p, sys::NFTNL_SET_ELEM_VERDICT as u16, code as u32);
        }
        if let Some(chain) = &chain {
            sys::nftnl_set_elem_set_str(p, sys::NFTNL_SET_ELEM_CHAIN as u16, chain.as_ptr());
        }
        if e.open {
            let u = udata::ELEM_INTERVAL_OPEN;
            sys::nftnl_set_elem_set(
                p,
                sys::NFTNL_SET_ELEM_USERDATA as u16,
                u.as_ptr().cast(),
                len_u32(u),
            );
        }
    }
    Ok(el)
}

/// `NFT_MSG_NEWSETELEM` (or `NFT_MSG_DELSETELEM` when `delete`) of `e`'s elements.
pub(super) fn elems_msg(
    w: &mut Writer,
    seq: u32,
    table: &CStr,
    e: &ElemsDef,
    delete: bool,
) -> Result<(usize, usize), EncodeError> {
    // The kernel reads the elements from one attribute, whose length is 16 bits.
    if elems_bound(e) > msg_max() {
        return Err(EncodeError::new(format!(
            "set {}: {} elements do not fit in one message",
            e.set,
            e.elems.len()
        )));
    }
    let name = cstring(&e.set)?;
    // The header from libnftnl (cheap, no allocation); the attributes are written here,
    // byte for byte as `nftnl_set_elems_nlmsg_build_payload` writes them (see the
    // tests), without a libnftnl object per element: a big plan has 100,000 of them,
    // and allocating, filling and freeing each was most of the time of serializing.
    let (msg_type, flags) = if delete {
        (libc::NFT_MSG_DELSETELEM as u16, 0)
    } else {
        (libc::NFT_MSG_NEWSETELEM as u16, NLM_F_CREATE | NLM_F_EXCL)
    };
    w.append(NLMSG_AND_NFGEN, |buf| {
        Writer::header(buf, msg_type, flags, seq)
    })?;
    let start = w.out.len() - NLMSG_AND_NFGEN;
    let mut a = Attrs { out: &mut w.out };
    a.strz(NFTA_SET_ELEM_LIST_SET, name.as_bytes_with_nul());
    a.u32_be(NFTA_SET_ELEM_LIST_SET_ID, e.set_id);
    a.strz(NFTA_SET_ELEM_LIST_TABLE, table.to_bytes_with_nul());
    if !e.elems.is_empty() {
        let list = a.nest_start(NFTA_SET_ELEM_LIST_ELEMENTS);
        for (i, el) in e.elems.iter().enumerate() {
            // libnftnl numbers the element nests from 1; the kernel ignores the type.
            let nest = a.nest_start(u16::try_from(i + 1).unwrap_or(u16::MAX));
            a.elem(el)?;
            a.nest_end(nest);
        }
        a.nest_end(list);
    }
    let len = w.out.len() - start;
    let len32 = u32::try_from(len).expect("a message is at most 64 KiB");
    w.out[start..start + 4].copy_from_slice(&len32.to_ne_bytes());
    Ok((start, len))
}

const NLA_F_NESTED: u16 = 0x8000;
/// `NFNL_BATCH_GENID` of the batch begin marker (linux/netfilter/nfnetlink.h).
pub(super) const NFNL_BATCH_GENID: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// Netlink attributes appended to a message, as libmnl writes them: a 4-byte header
/// (length without padding, type), the payload, zeros up to a multiple of 4.
pub(super) struct Attrs<'a> {
    pub(super) out: &'a mut Vec<u8>,
}

impl Attrs<'_> {
    fn put(&mut self, kind: u16, payload: &[u8]) {
        let len = u16::try_from(4 + payload.len()).expect("an attribute fits 64 KiB");
        self.out.extend_from_slice(&len.to_ne_bytes());
        self.out.extend_from_slice(&kind.to_ne_bytes());
        self.out.extend_from_slice(payload);
        let padded = self.out.len().next_multiple_of(4);
        self.out.resize(padded, 0);
    }

    /// A string attribute; `with_nul` ends with its NUL.
    fn strz(&mut self, kind: u16, with_nul: &[u8]) {
        self.put(kind, with_nul);
    }

    pub(super) fn u32_be(&mut self, kind: u16, v: u32) {
        self.put(kind, &v.to_be_bytes());
    }

    /// Opens a nest; returns where it starts, for [`Attrs::nest_end`].
    fn nest_start(&mut self, kind: u16) -> usize {
        let at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        self.out
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn nest_end(&mut self, at: usize) {
        let len = u16::try_from(self.out.len() - at).expect("a nest fits 64 KiB");
        self.out[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// One element's attributes, in `nftnl_set_elem_nlmsg_build_payload`'s order.
    fn elem(&mut self, e: &Elem) -> Result<(), EncodeError> {
        if e.interval_end {
            self.u32_be(NFTA_SET_ELEM_FLAGS, k::NFT_SET_ELEM_INTERVAL_END);
        }
        let key = self.nest_start(NFTA_SET_ELEM_KEY);
        self.put(NFTA_DATA_VALUE, e.key.as_slice());
        self.nest_end(key);
        if let Some(end) = &e.key_end {
            let nest = self.nest_start(NFTA_SET_ELEM_KEY_END);
            self.put(NFTA_DATA_VALUE, end.as_slice());
            self.nest_end(nest);
        }
        if let Some(v) = &e.verdict {
            let (code, chain) = v.code_and_chain();
            let chain = chain.map(cstring).transpose()?;
            let data = self.nest_start(NFTA_SET_ELEM_DATA);
            let verdict = self.nest_start(NFTA_DATA_VERDICT);
            self.u32_be(NFTA_VERDICT_CODE, code as u32);
            if let Some(chain) = &chain {
                self.strz(NFTA_VERDICT_CHAIN, chain.as_bytes_with_nul());
            }
            self.nest_end(verdict);
            self.nest_end(data);
        }
        if e.open {
            self.put(NFTA_SET_ELEM_USERDATA, udata::ELEM_INTERVAL_OPEN);
        }
        Ok(())
    }
}

/// The elements message as libnftnl builds it, for the tests that check [`elems_msg`]
/// against it byte for byte.
#[cfg(test)]
pub(crate) fn elems_msg_libnftnl(seq: u32, table: &str, e: &ElemsDef) -> Vec<u8> {
    let table = cstring(table).unwrap();
    let mut w = Writer::new(msg_max(), Vec::new());
    let name = cstring(&e.set).unwrap();
    // SAFETY: an allocation without arguments; `Obj` refuses a null result (abort) and
    // owns the object.
    let set = Obj::new(unsafe { sys::nftnl_set_alloc() }, sys::nftnl_set_free);
    // SAFETY: `set` is live; strings are copied.
    unsafe {
        let p = set.as_ptr();
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FAMILY as u16, u32::from(k::NFPROTO_INET));
        sys::nftnl_set_set_str(p, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
        sys::nftnl_set_set_str(p, sys::NFTNL_SET_NAME as u16, name.as_ptr());
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_ID as u16, e.set_id);
    }
    for elem in &e.elems {
        let el = elem_obj(elem).unwrap();
        // SAFETY: the set takes ownership of the element, released from `el` first; it
        // is freed with the set.
        unsafe { sys::nftnl_set_elem_add(set.as_ptr(), el.into_raw()) };
    }
    w.append(elems_bound(e), |buf| {
        let nlh = Writer::header(
            buf,
            libc::NFT_MSG_NEWSETELEM as u16,
            NLM_F_CREATE | NLM_F_EXCL,
            seq,
        );
        // SAFETY: `nlh` heads the scratch buffer, which holds `elems_bound` bytes, an
        // upper bound of this message.
        unsafe { sys::nftnl_set_elems_nlmsg_build_payload(nlh, set.as_ptr()) };
        nlh
    })
    .unwrap();
    w.out
}

/// Serializes one message alone with [`elems_msg`], for the same tests.
#[cfg(test)]
pub(crate) fn elems_msg_ours(seq: u32, table: &str, e: &ElemsDef) -> Vec<u8> {
    let table = cstring(table).unwrap();
    let mut w = Writer::new(msg_max(), Vec::new());
    elems_msg(&mut w, seq, &table, e, false).unwrap();
    w.out
}
