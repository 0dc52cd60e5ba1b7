//! The only unsafe code of netpol: thin wrappers over libnftnl (through `nftnl-sys`)
//! and the netlink socket (through `mnl` and `libc`).
//!
//! Everything here is mechanical. [`serialize`] turns the plain batch of
//! `encode.rs` into netlink bytes with libnftnl's builders — except the set elements,
//! which safe code writes straight into the batch, byte for byte as libnftnl would
//! (a test compares the two), because a libnftnl object per element made serializing
//! a plan of 100,000 elements several times slower. The socket sends and receives
//! bytes, and the `parse_*` functions read kernel dumps with libnftnl's parsers into
//! plain Rust values. No decision about what to send lives here.
//!
//! Invariants that make the unsafe blocks sound:
//! - every libnftnl object is owned by an [`Obj`] that frees it exactly once, and
//!   objects handed over to a parent (`nftnl_rule_add_expr`, `nftnl_set_elem_add`) are
//!   released from their owner first;
//! - every message is built into a [`Scratch`] of `nft_nlmsg_maxsize()` bytes, aligned
//!   for `nlmsghdr`, and only after checking that its content fits (libnftnl's builders
//!   do not check bounds);
//! - strings handed to C are `CString`s that outlive the call (libnftnl copies them);
//! - messages handed to libnftnl's parsers are aligned, and complete: their
//!   `nlmsg_len` has been checked against the bytes that hold them.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CStr, CString};
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::time::Duration;

use nftnl::nftnl_sys as sys;

use super::encode::{
    elem_wire_len, k, BaseHook, ChainDef, Elem, ElemsDef, EncodeError, Expr, Labelled, Msg,
    RuleDef, SetDef, TableDef, Verdict,
};
use super::reply;

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
        match NonNull::new(ptr) {
            Some(ptr) => Obj { ptr, free },
            None => std::process::abort(),
        }
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

// libnftnl's free functions take `*const`, except nftnl_set_elem_free, which is
// wrapped to fit `Obj`.
#[cfg(test)]
unsafe extern "C" fn set_elem_free(e: *const sys::nftnl_set_elem) {
    // SAFETY: called only by `Obj::drop` with a pointer from `nftnl_set_elem_alloc`.
    unsafe { sys::nftnl_set_elem_free(e.cast_mut()) }
}

fn cstring(s: &str) -> Result<CString, EncodeError> {
    CString::new(s).map_err(|_| EncodeError::new(format!("name {s:?} contains a NUL byte")))
}

fn len_u32(data: &[u8]) -> u32 {
    // Every buffer handed to libnftnl here is a key, a register value or user data of
    // at most a few hundred bytes.
    u32::try_from(data.len()).expect("attribute data fits in u32")
}

// ---------------------------------------------------------------- serialization ----

/// A serialized batch: begin marker, the messages in order, end marker, in one
/// contiguous buffer so that it goes to the kernel in one `sendto`.
pub(crate) struct Wire {
    pub bytes: Vec<u8>,
    /// Byte range of `msgs[i]` in `bytes`.
    pub spans: Vec<(usize, usize)>,
    pub begin_seq: u32,
    pub end_seq: u32,
}

impl Wire {
    /// Index in `msgs` of a sequence number, if it is a message's.
    pub(crate) fn index_of(&self, seq: u32) -> Option<usize> {
        let i = seq.checked_sub(self.begin_seq + 1)? as usize;
        (i < self.spans.len()).then_some(i)
    }
}

/// Builds each message into the scratch buffer and appends it to `out`.
struct Writer {
    scratch: Aligned,
    out: Vec<u8>,
}

impl Writer {
    /// Runs `build`, which writes one message at the start of the scratch buffer and
    /// returns its header, then appends the message (padded to 4 bytes).
    fn append(&mut self, build: impl FnOnce(*mut c_char) -> *mut libc::nlmsghdr) -> (usize, usize) {
        // Stale bytes would be harmless (the header says how long the message is) but
        // zeroing keeps padding deterministic.
        self.scratch.bytes_mut()[..64].fill(0);
        let nlh = build(self.scratch.as_mut_ptr());
        debug_assert_eq!(nlh.cast::<c_char>(), self.scratch.as_mut_ptr());
        let bytes = self.scratch.bytes(self.scratch.capacity());
        let len = u32::from_ne_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
        assert!(
            len <= self.scratch.capacity(),
            "netlink message of {len} bytes outgrew its buffer"
        );
        let start = self.out.len();
        self.out.extend_from_slice(&bytes[..len]);
        self.out.resize(start + len.div_ceil(4) * 4, 0);
        (start, len)
    }

    fn header(buf: *mut c_char, msg_type: u16, flags: u16, seq: u32) -> *mut libc::nlmsghdr {
        // SAFETY: `buf` is the start of the scratch buffer, aligned and far larger than a
        // header plus `nfgenmsg`.
        unsafe { sys::nftnl_nlmsg_build_hdr(buf, msg_type, k::NFPROTO_INET, flags, seq) }
    }
}

const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
const NLM_F_CREATE: u16 = libc::NLM_F_CREATE as u16;
const NLM_F_EXCL: u16 = libc::NLM_F_EXCL as u16;
const NLM_F_APPEND: u16 = libc::NLM_F_APPEND as u16;
pub(crate) const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;

/// Serializes the batch with sequence numbers from `first_seq` on. With a `genid`, the
/// kernel refuses the whole batch (`ERESTART`) unless its ruleset generation is still
/// that one: nothing else changed the ruleset since it was read.
pub(crate) fn serialize(
    msgs: &[Labelled],
    table: &str,
    first_seq: u32,
    genid: Option<u32>,
) -> Result<Wire, EncodeError> {
    let table = cstring(table)?;
    // Room for the whole batch up front: growing a buffer of megabytes step by step
    // copies it again and again. Pages not written are never touched.
    let room: usize = msgs
        .iter()
        .map(|m| match &m.msg {
            Msg::NewElems(e) | Msg::DelElems(e) => {
                1024 + e.elems.iter().map(elem_wire_len).sum::<usize>()
            }
            _ => 4096,
        })
        .sum();
    let mut w = Writer {
        scratch: Aligned::new(msg_max()),
        out: Vec::with_capacity(room + 64),
    };
    let begin_seq = first_seq;
    let (begin_at, _) = w.append(|buf| {
        // SAFETY: `buf` is the aligned scratch buffer, large enough for the marker.
        unsafe { sys::nftnl_batch_begin(buf, begin_seq) }
    });
    if let Some(genid) = genid {
        // `NFNL_BATCH_GENID` after the marker's `nfgenmsg`, and the marker's length
        // grown by it (the marker is padded to 4 bytes already).
        let mut a = Attrs { out: &mut w.out };
        a.u32_be(NFNL_BATCH_GENID, genid);
        let len = u32::try_from(w.out.len() - begin_at).expect("a small marker");
        w.out[begin_at..begin_at + 4].copy_from_slice(&len.to_ne_bytes());
    }
    let mut spans = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let seq = begin_seq + 1 + i as u32;
        let span = match &m.msg {
            Msg::NewTable {
                name,
                exclusive,
                create,
            } => {
                let flags = NLM_F_CREATE | if *exclusive { NLM_F_EXCL } else { 0 };
                let kind = libc::NFT_MSG_NEWTABLE as u16;
                table_msg(&mut w, kind, flags, seq, name, create.as_ref())?
            }
            Msg::DelTable { name } => {
                table_msg(&mut w, libc::NFT_MSG_DELTABLE as u16, 0, seq, name, None)?
            }
            Msg::NewChain(c) => chain_msg(&mut w, seq, &table, c, true)?,
            Msg::NewSet(s) => set_msg(&mut w, seq, &table, &s.name, Some(s))?,
            Msg::NewElems(e) => elems_msg(&mut w, seq, &table, e, false)?,
            Msg::DelElems(e) => elems_msg(&mut w, seq, &table, e, true)?,
            Msg::NewRule(r) => rule_msg(&mut w, seq, &table, r, true)?,
            // A rule message naming a chain and no rule: every rule of the chain.
            Msg::FlushChain { chain } => {
                let all = RuleDef {
                    chain: chain.clone(),
                    exprs: Vec::new(),
                    comment: None,
                };
                rule_msg(&mut w, seq, &table, &all, false)?
            }
            // The kernel deletes the chain's rules with it.
            Msg::DelChain { name } => {
                let c = ChainDef {
                    name: name.clone(),
                    hook: None,
                };
                chain_msg(&mut w, seq, &table, &c, false)?
            }
            Msg::DelSet { name } => set_msg(&mut w, seq, &table, name, None)?,
        };
        spans.push(span);
    }
    let end_seq = begin_seq + 1 + msgs.len() as u32;
    let (end_at, _) = w.append(|buf| {
        // SAFETY: as for the begin marker.
        unsafe { sys::nftnl_batch_end(buf, end_seq) }
    });
    // Kernels since 6.10 acknowledge the end of a batch that asks for it: the sign that
    // the whole batch was committed.
    let flags_at = end_at + 6;
    let flags = u16::from_ne_bytes([w.out[flags_at], w.out[flags_at + 1]]) | NLM_F_ACK;
    w.out[flags_at..flags_at + 2].copy_from_slice(&flags.to_ne_bytes());
    Ok(Wire {
        bytes: w.out,
        spans,
        begin_seq,
        end_seq,
    })
}

fn table_msg(
    w: &mut Writer,
    msg_type: u16,
    flags: u16,
    seq: u32,
    name: &str,
    create: Option<&TableDef>,
) -> Result<(usize, usize), EncodeError> {
    let name = cstring(name)?;
    let udata = create.and_then(|c| c.comment.as_deref()).map(comment_udata);
    // SAFETY: plain allocation; ownership goes to `Obj`.
    let t = Obj::new(unsafe { sys::nftnl_table_alloc() }, sys::nftnl_table_free);
    // SAFETY: `t` is a live table; libnftnl copies the string and the user data.
    unsafe {
        sys::nftnl_table_set_u32(
            t.as_ptr(),
            sys::NFTNL_TABLE_FAMILY as u16,
            u32::from(k::NFPROTO_INET),
        );
        sys::nftnl_table_set_str(t.as_ptr(), sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
        // No flags attribute on a table that may exist: the kernel would take it as a
        // change of the flags (refused on a table someone owns).
        if let Some(c) = create {
            sys::nftnl_table_set_u32(t.as_ptr(), sys::NFTNL_TABLE_FLAGS as u16, c.flags);
        }
        if let Some(u) = &udata {
            sys::nftnl_table_set_data(
                t.as_ptr(),
                sys::NFTNL_TABLE_USERDATA as u16,
                u.as_ptr().cast(),
                len_u32(u),
            );
        }
    }
    Ok(w.append(|buf| {
        let nlh = Writer::header(buf, msg_type, flags, seq);
        // SAFETY: `nlh` heads the scratch buffer; a table message is a few dozen bytes.
        unsafe { sys::nftnl_table_nlmsg_build_payload(nlh, t.as_ptr()) };
        nlh
    }))
}

/// `NFT_MSG_NEWCHAIN` (`new`) or `NFT_MSG_DELCHAIN`.
fn chain_msg(
    w: &mut Writer,
    seq: u32,
    table: &CStr,
    c: &ChainDef,
    new: bool,
) -> Result<(usize, usize), EncodeError> {
    let name = cstring(&c.name)?;
    // SAFETY: plain allocation; ownership goes to `Obj`.
    let ch = Obj::new(unsafe { sys::nftnl_chain_alloc() }, sys::nftnl_chain_free);
    // SAFETY: `ch` is a live chain; strings are copied.
    unsafe {
        let p = ch.as_ptr();
        sys::nftnl_chain_set_u32(
            p,
            sys::NFTNL_CHAIN_FAMILY as u16,
            u32::from(k::NFPROTO_INET),
        );
        sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_TABLE as u16, table.as_ptr());
        sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_NAME as u16, name.as_ptr());
        if let Some(BaseHook {
            hooknum,
            priority,
            policy,
        }) = c.hook
        {
            sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_HOOKNUM as u16, hooknum);
            sys::nftnl_chain_set_s32(p, sys::NFTNL_CHAIN_PRIO as u16, priority);
            sys::nftnl_chain_set_str(p, sys::NFTNL_CHAIN_TYPE as u16, c"filter".as_ptr());
            sys::nftnl_chain_set_u32(p, sys::NFTNL_CHAIN_POLICY as u16, policy);
        }
    }
    let (kind, flags) = if new {
        (libc::NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL)
    } else {
        (libc::NFT_MSG_DELCHAIN, 0)
    };
    Ok(w.append(|buf| {
        let nlh = Writer::header(buf, kind as u16, flags, seq);
        // SAFETY: `nlh` heads the scratch buffer; names are at most 255 bytes.
        unsafe { sys::nftnl_chain_nlmsg_build_payload(nlh, ch.as_ptr()) };
        nlh
    }))
}

/// `NFT_MSG_NEWSET` of `def`, or `NFT_MSG_DELSET` of the set or map `name` without one.
fn set_msg(
    w: &mut Writer,
    seq: u32,
    table: &CStr,
    name: &str,
    def: Option<&SetDef>,
) -> Result<(usize, usize), EncodeError> {
    let name = cstring(name)?;
    if def.is_some_and(|s| s.concat.len() >= 16) {
        return Err(EncodeError::new(format!(
            "set {}: too many concatenated fields",
            name.to_string_lossy()
        )));
    }
    // SAFETY: plain allocation; ownership goes to `Obj`.
    let set = Obj::new(unsafe { sys::nftnl_set_alloc() }, sys::nftnl_set_free);
    // SAFETY: `set` is live; strings and data are copied by libnftnl; the concat field
    // lengths are a u8 array shorter than libnftnl's 16-entry field table.
    unsafe {
        let p = set.as_ptr();
        sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FAMILY as u16, u32::from(k::NFPROTO_INET));
        sys::nftnl_set_set_str(p, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
        sys::nftnl_set_set_str(p, sys::NFTNL_SET_NAME as u16, name.as_ptr());
        if let Some(s) = def {
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_ID as u16, s.id);
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_FLAGS as u16, s.flags);
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_TYPE as u16, s.key_type);
            sys::nftnl_set_set_u32(p, sys::NFTNL_SET_KEY_LEN as u16, s.key_len);
            if s.verdict_map {
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_TYPE as u16, k::NFT_DATA_VERDICT);
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DATA_LEN as u16, 0);
            }
            if let Some(size) = s.size {
                sys::nftnl_set_set_u32(p, sys::NFTNL_SET_DESC_SIZE as u16, size);
            }
            if !s.concat.is_empty() {
                sys::nftnl_set_set_data(
                    p,
                    sys::NFTNL_SET_DESC_CONCAT as u16,
                    s.concat.as_ptr().cast(),
                    len_u32(&s.concat),
                );
            }
            sys::nftnl_set_set_data(
                p,
                sys::NFTNL_SET_USERDATA as u16,
                s.udata.as_ptr().cast(),
                len_u32(s.udata),
            );
        }
    }
    let (kind, flags) = match def {
        Some(_) => (libc::NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL),
        None => (libc::NFT_MSG_DELSET, 0),
    };
    Ok(w.append(|buf| {
        let nlh = Writer::header(buf, kind as u16, flags, seq);
        // SAFETY: `nlh` heads the scratch buffer; a set definition is a few hundred bytes.
        unsafe { sys::nftnl_set_nlmsg_build_payload(nlh, set.as_ptr()) };
        nlh
    }))
}

#[cfg(test)]
fn elem_obj(e: &Elem) -> Result<Obj<sys::nftnl_set_elem>, EncodeError> {
    // SAFETY: plain allocation; ownership goes to `Obj`.
    let el = Obj::new(unsafe { sys::nftnl_set_elem_alloc() }, set_elem_free);
    let chain = e.jump.as_deref().map(cstring).transpose()?;
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
        if let Some(chain) = &chain {
            sys::nftnl_set_elem_set_u32(p, sys::NFTNL_SET_ELEM_VERDICT as u16, k::NFT_JUMP as u32);
            sys::nftnl_set_elem_set_str(p, sys::NFTNL_SET_ELEM_CHAIN as u16, chain.as_ptr());
        }
        if e.open {
            let u = super::encode::udata::ELEM_INTERVAL_OPEN;
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

fn elems_msg(
    w: &mut Writer,
    seq: u32,
    table: &CStr,
    e: &ElemsDef,
    delete: bool,
) -> Result<(usize, usize), EncodeError> {
    // The kernel reads the elements from one attribute, whose length is 16 bits.
    let need: usize = 64 + 2 * (4 + 256) + e.elems.iter().map(elem_wire_len).sum::<usize>();
    if need > msg_max() {
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
    w.append(|buf| Writer::header(buf, msg_type, flags, seq));
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

/// `nlmsghdr` and `nfgenmsg`, the start of every nf_tables message.
const NLMSG_AND_NFGEN: usize = 16 + 4;

const NLA_F_NESTED: u16 = 0x8000;
/// `NFNL_BATCH_GENID` of the batch begin marker (linux/netfilter/nfnetlink.h).
const NFNL_BATCH_GENID: u16 = 1;
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
struct Attrs<'a> {
    out: &'a mut Vec<u8>,
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

    fn u32_be(&mut self, kind: u16, v: u32) {
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
        if let Some(chain) = &e.jump {
            let chain = cstring(chain)?;
            let data = self.nest_start(NFTA_SET_ELEM_DATA);
            let verdict = self.nest_start(NFTA_DATA_VERDICT);
            self.u32_be(NFTA_VERDICT_CODE, k::NFT_JUMP as u32);
            self.strz(NFTA_VERDICT_CHAIN, chain.as_bytes_with_nul());
            self.nest_end(verdict);
            self.nest_end(data);
        }
        if e.open {
            self.put(
                NFTA_SET_ELEM_USERDATA,
                super::encode::udata::ELEM_INTERVAL_OPEN,
            );
        }
        Ok(())
    }
}

/// The elements message as libnftnl builds it, for the tests that check [`elems_msg`]
/// against it byte for byte.
#[cfg(test)]
pub(crate) fn elems_msg_libnftnl(seq: u32, table: &str, e: &ElemsDef) -> Vec<u8> {
    let table = cstring(table).unwrap();
    let mut w = Writer {
        scratch: Aligned::new(msg_max()),
        out: Vec::new(),
    };
    let name = cstring(&e.set).unwrap();
    // SAFETY: plain allocation; ownership goes to `Obj`.
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
    w.append(|buf| {
        let nlh = Writer::header(
            buf,
            libc::NFT_MSG_NEWSETELEM as u16,
            NLM_F_CREATE | NLM_F_EXCL,
            seq,
        );
        // SAFETY: `nlh` heads the scratch buffer; the tests' elements fit.
        unsafe { sys::nftnl_set_elems_nlmsg_build_payload(nlh, set.as_ptr()) };
        nlh
    });
    w.out
}

/// Serializes one message alone with [`elems_msg`], for the same tests.
#[cfg(test)]
pub(crate) fn elems_msg_ours(seq: u32, table: &str, e: &ElemsDef) -> Vec<u8> {
    let table = cstring(table).unwrap();
    let mut w = Writer {
        scratch: Aligned::new(msg_max()),
        out: Vec::new(),
    };
    elems_msg(&mut w, seq, &table, e, false).unwrap();
    w.out
}

fn expr_obj(e: &Expr) -> Result<Obj<sys::nftnl_expr>, EncodeError> {
    let name: &CStr = match e {
        Expr::Meta { .. } => c"meta",
        Expr::Ct { .. } => c"ct",
        Expr::Cmp { .. } => c"cmp",
        Expr::Bitwise { .. } => c"bitwise",
        Expr::Payload { .. } => c"payload",
        Expr::Byteorder { .. } => c"byteorder",
        Expr::Lookup { .. } => c"lookup",
        Expr::Counter => c"counter",
        Expr::Immediate(_) => c"immediate",
        Expr::Reject { .. } => c"reject",
    };
    // SAFETY: `name` is a known expression type; ownership goes to `Obj`.
    let ex = Obj::new(
        unsafe { sys::nftnl_expr_alloc(name.as_ptr()) },
        sys::nftnl_expr_free,
    );
    let p = ex.as_ptr();
    let u32_ = |attr: u32, v: u32| {
        // SAFETY: `p` is a live expression of the type that has `attr` as a u32.
        unsafe { sys::nftnl_expr_set_u32(p, attr as u16, v) }
    };
    let data = |attr: u32, v: &[u8]| {
        // SAFETY: as above; register data is at most 16 bytes (libnftnl holds 64) and
        // is copied.
        unsafe { sys::nftnl_expr_set(p, attr as u16, v.as_ptr().cast(), len_u32(v)) };
    };
    match e {
        Expr::Meta { key, dreg } => {
            u32_(sys::NFTNL_EXPR_META_KEY, *key);
            u32_(sys::NFTNL_EXPR_META_DREG, *dreg);
        }
        Expr::Ct { key, dreg } => {
            u32_(sys::NFTNL_EXPR_CT_KEY, *key);
            u32_(sys::NFTNL_EXPR_CT_DREG, *dreg);
        }
        Expr::Cmp { sreg, op, data: d } => {
            u32_(sys::NFTNL_EXPR_CMP_SREG, *sreg);
            u32_(sys::NFTNL_EXPR_CMP_OP, *op);
            data(sys::NFTNL_EXPR_CMP_DATA, d);
        }
        Expr::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => {
            u32_(sys::NFTNL_EXPR_BITWISE_SREG, *sreg);
            u32_(sys::NFTNL_EXPR_BITWISE_DREG, *dreg);
            u32_(sys::NFTNL_EXPR_BITWISE_LEN, len_u32(mask));
            data(sys::NFTNL_EXPR_BITWISE_MASK, mask);
            data(sys::NFTNL_EXPR_BITWISE_XOR, xor);
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            u32_(sys::NFTNL_EXPR_PAYLOAD_DREG, *dreg);
            u32_(sys::NFTNL_EXPR_PAYLOAD_BASE, *base);
            u32_(sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset);
            u32_(sys::NFTNL_EXPR_PAYLOAD_LEN, *len);
        }
        Expr::Byteorder {
            sreg,
            dreg,
            op,
            len,
            size,
        } => {
            u32_(sys::NFTNL_EXPR_BYTEORDER_SREG, *sreg);
            u32_(sys::NFTNL_EXPR_BYTEORDER_DREG, *dreg);
            u32_(sys::NFTNL_EXPR_BYTEORDER_OP, *op);
            u32_(sys::NFTNL_EXPR_BYTEORDER_LEN, *len);
            u32_(sys::NFTNL_EXPR_BYTEORDER_SIZE, *size);
        }
        Expr::Lookup {
            sreg,
            dreg,
            set,
            set_id,
        } => {
            let set = cstring(set)?;
            u32_(sys::NFTNL_EXPR_LOOKUP_SREG, *sreg);
            if let Some(dreg) = dreg {
                u32_(sys::NFTNL_EXPR_LOOKUP_DREG, *dreg);
            }
            // SAFETY: `p` is a live lookup expression; the string is copied.
            unsafe { sys::nftnl_expr_set_str(p, sys::NFTNL_EXPR_LOOKUP_SET as u16, set.as_ptr()) };
            u32_(sys::NFTNL_EXPR_LOOKUP_SET_ID, *set_id);
        }
        Expr::Counter => {}
        Expr::Immediate(v) => {
            u32_(sys::NFTNL_EXPR_IMM_DREG, k::NFT_REG_VERDICT);
            let code = match v {
                Verdict::Accept => k::NF_ACCEPT_VERDICT,
                Verdict::Drop => k::NF_DROP,
            };
            u32_(sys::NFTNL_EXPR_IMM_VERDICT, code as u32);
        }
        Expr::Reject { kind, code } => {
            u32_(sys::NFTNL_EXPR_REJECT_TYPE, *kind);
            // SAFETY: `p` is a live reject expression, whose code is a u8.
            unsafe { sys::nftnl_expr_set_u8(p, sys::NFTNL_EXPR_REJECT_CODE as u16, *code) };
        }
    }
    Ok(ex)
}

/// A rule or table comment as nft stores it: one `NFTNL_UDATA_*_COMMENT` TLV (type 0) holding the
/// string and its NUL.
pub(crate) fn comment_udata(comment: &str) -> Vec<u8> {
    let len = u8::try_from(comment.len() + 1).expect("comment length checked by encode");
    let mut out = vec![sys::NFTNL_UDATA_RULE_COMMENT as u8, len];
    out.extend_from_slice(comment.as_bytes());
    out.push(0);
    out
}

/// `NFT_MSG_NEWRULE` (`new`, appended) or `NFT_MSG_DELRULE`.
fn rule_msg(
    w: &mut Writer,
    seq: u32,
    table: &CStr,
    r: &RuleDef,
    new: bool,
) -> Result<(usize, usize), EncodeError> {
    let chain = cstring(&r.chain)?;
    // SAFETY: plain allocation; ownership goes to `Obj`.
    let rule = Obj::new(unsafe { sys::nftnl_rule_alloc() }, sys::nftnl_rule_free);
    // SAFETY: `rule` is live; strings are copied.
    unsafe {
        let p = rule.as_ptr();
        sys::nftnl_rule_set_u32(p, sys::NFTNL_RULE_FAMILY as u16, u32::from(k::NFPROTO_INET));
        sys::nftnl_rule_set_str(p, sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
        sys::nftnl_rule_set_str(p, sys::NFTNL_RULE_CHAIN as u16, chain.as_ptr());
    }
    for e in &r.exprs {
        let ex = expr_obj(e)?;
        // SAFETY: the rule takes ownership of the expression, released from `ex` first.
        unsafe { sys::nftnl_rule_add_expr(rule.as_ptr(), ex.into_raw()) };
    }
    if let Some(comment) = &r.comment {
        let u = comment_udata(comment);
        // SAFETY: `rule` is live; the user data (at most 131 bytes: type, length, comment, NUL) is copied.
        unsafe {
            sys::nftnl_rule_set_data(
                rule.as_ptr(),
                sys::NFTNL_RULE_USERDATA as u16,
                u.as_ptr().cast(),
                len_u32(&u),
            )
        };
    }
    let (kind, flags) = if new {
        (
            libc::NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND | NLM_F_EXCL,
        )
    } else {
        (libc::NFT_MSG_DELRULE, 0)
    };
    Ok(w.append(|buf| {
        let nlh = Writer::header(buf, kind as u16, flags, seq);
        // SAFETY: `nlh` heads the scratch buffer; a rule of a dozen expressions is well
        // under a kilobyte.
        unsafe { sys::nftnl_rule_nlmsg_build_payload(nlh, rule.as_ptr()) };
        nlh
    }))
}

// ------------------------------------------------------------------- requests ----

/// A `GET*` request for `table` (and `set`), a dump when `dump` is set.
pub(crate) fn get_request(
    msg_type: i32,
    dump: bool,
    seq: u32,
    table: &str,
    set: Option<&str>,
) -> Result<Vec<u8>, EncodeError> {
    let table = cstring(table)?;
    let set = set.map(cstring).transpose()?;
    let mut w = Writer {
        scratch: Aligned::new(4096),
        out: Vec::new(),
    };
    let flags = NLM_F_ACK | if dump { NLM_F_DUMP } else { 0 };
    let msg_type = msg_type as u16;
    w.append(|buf| {
        let nlh = Writer::header(buf, msg_type, flags, seq);
        // SAFETY: each object is allocated, filled with copied strings, serialized into
        // the 4 KiB aligned scratch buffer (names are at most 255 bytes) and freed.
        unsafe {
            match msg_type as i32 {
                libc::NFT_MSG_GETTABLE => {
                    let t = Obj::new(sys::nftnl_table_alloc(), sys::nftnl_table_free);
                    sys::nftnl_table_set_str(
                        t.as_ptr(),
                        sys::NFTNL_TABLE_NAME as u16,
                        table.as_ptr(),
                    );
                    sys::nftnl_table_nlmsg_build_payload(nlh, t.as_ptr());
                }
                libc::NFT_MSG_GETCHAIN => {
                    let c = Obj::new(sys::nftnl_chain_alloc(), sys::nftnl_chain_free);
                    sys::nftnl_chain_set_str(
                        c.as_ptr(),
                        sys::NFTNL_CHAIN_TABLE as u16,
                        table.as_ptr(),
                    );
                    sys::nftnl_chain_nlmsg_build_payload(nlh, c.as_ptr());
                }
                libc::NFT_MSG_GETRULE => {
                    let r = Obj::new(sys::nftnl_rule_alloc(), sys::nftnl_rule_free);
                    sys::nftnl_rule_set_str(
                        r.as_ptr(),
                        sys::NFTNL_RULE_TABLE as u16,
                        table.as_ptr(),
                    );
                    sys::nftnl_rule_nlmsg_build_payload(nlh, r.as_ptr());
                }
                libc::NFT_MSG_GETSET | libc::NFT_MSG_GETSETELEM => {
                    let s = Obj::new(sys::nftnl_set_alloc(), sys::nftnl_set_free);
                    sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_TABLE as u16, table.as_ptr());
                    if let Some(set) = &set {
                        sys::nftnl_set_set_str(
                            s.as_ptr(),
                            sys::NFTNL_SET_NAME as u16,
                            set.as_ptr(),
                        );
                    }
                    sys::nftnl_set_nlmsg_build_payload(nlh, s.as_ptr());
                }
                _ => {}
            }
        }
        nlh
    });
    Ok(w.out)
}

// -------------------------------------------------------------------- parsing ----

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

// --------------------------------------------------------------------- socket ----

/// A duplicate descriptor of a subscribed socket: leaving and joining its group acts on
/// the socket itself.
#[derive(Debug)]
pub(crate) struct Membership {
    fd: std::os::fd::OwnedFd,
    group: i32,
}

impl Membership {
    /// Leaves the group: the socket gets nothing from it until [`join`](Self::join).
    pub(crate) fn leave(&self) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        setsockopt_int(
            fd,
            libc::SOL_NETLINK,
            libc::NETLINK_DROP_MEMBERSHIP,
            self.group,
        )
    }

    /// Joins the group again.
    pub(crate) fn join(&self) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        setsockopt_int(
            fd,
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            self.group,
        )
    }
}

/// `inner` registered with tokio's reactor, to wait for it to be readable.
pub(crate) fn readable<T: AsRawFd>(inner: T) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: the callers' `inner` owns a socket (`Socket`) that it closes only on drop
    // and never swaps: its descriptor stays open and the same while the `AsyncFd`, which
    // owns `inner`, lives.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)
}

/// A netlink socket of the current network namespace (`NETLINK_NETFILTER` unless
/// opened on another bus).
pub(crate) struct Socket {
    sock: mnl::Socket,
}

// SAFETY: an `mnl::Socket` is a file descriptor and libmnl's record of its address, with
// no thread-local state and nothing shared with another object; every use takes
// `&self` or `&mut self` of the one owner, so moving the owner to another thread (the
// daemon's backend lives in a tokio task) cannot race.
unsafe impl Send for Socket {}

fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `fd` is an open socket; the option value is a live `c_int` whose size
    // is passed along.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast::<c_void>(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Socket {
    /// Opens and binds the socket, asking for extended acknowledgements (which say
    /// which attribute failed) without the echoed request (which may be 64 KiB).
    pub(crate) fn open() -> io::Result<Socket> {
        Socket::open_bus(mnl::Bus::Netfilter)
    }

    /// Like [`open`](Socket::open), for another netlink protocol (`NETLINK_SOCK_DIAG`).
    pub(crate) fn open_bus(bus: mnl::Bus) -> io::Result<Socket> {
        let sock = mnl::Socket::new(bus)?;
        let fd = sock.as_raw_fd();
        setsockopt_int(fd, libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, 1)?;
        setsockopt_int(fd, libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1)?;
        Ok(Socket { sock })
    }

    /// The port id the kernel answers to.
    pub(crate) fn portid(&self) -> u32 {
        self.sock.portid()
    }

    /// The file descriptor, to wait on.
    pub(crate) fn raw_fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    /// Joins multicast `group` and sizes the receive buffer to `buffer` bytes (the
    /// system maximum is passed as root).
    pub(crate) fn subscribe(&self, group: u32, buffer: i32) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        let group = i32::try_from(group).map_err(io::Error::other)?;
        setsockopt_int(fd, libc::SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, group)?;
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, buffer).is_err() {
            setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, buffer)?;
        }
        Ok(())
    }

    /// A second descriptor of this socket, whose multicast groups can be left and
    /// joined again from another thread ([`Membership`]).
    pub(crate) fn membership(&self, group: u32) -> io::Result<Membership> {
        let fd = self.sock.as_raw_fd();
        // SAFETY: `fd` is this socket's descriptor, open for as long as `self` lives,
        // which outlives this call; the borrow only serves to duplicate it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        Ok(Membership {
            fd: borrowed.try_clone_to_owned()?,
            group: i32::try_from(group).map_err(io::Error::other)?,
        })
    }

    /// Throws away whatever is queued (answers to a batch that failed part-way).
    pub(crate) fn drain(&self, buf: &mut Aligned) {
        while let Ok(Some(_)) = self.recv(buf, None) {}
    }

    /// Sizes the buffers for one batch of `send` bytes with room for `replies`
    /// answers: a batch is one datagram, and a 4 MB batch needs a 4 MB send buffer.
    /// The forcing options pass the system maximum (root only); without them the
    /// plain ones are tried.
    pub(crate) fn size_buffers(&self, send: usize, replies: usize) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let snd = clamp(send + 64 * 1024);
        let rcv = clamp((replies * 2048).max(1 << 20));
        for (force, plain, size) in [
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, snd),
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, rcv),
        ] {
            if setsockopt_int(fd, libc::SOL_SOCKET, force, size).is_err() {
                setsockopt_int(fd, libc::SOL_SOCKET, plain, size)?;
            }
        }
        Ok(())
    }

    /// Sends `bytes` as one datagram (one `sendto`): the kernel reads a batch from a
    /// single message only.
    pub(crate) fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let sent = self.sock.send(bytes)?;
        if sent != bytes.len() {
            return Err(io::Error::other(format!(
                "sent {sent} of {} bytes of the batch",
                bytes.len()
            )));
        }
        Ok(())
    }

    /// Receives one datagram into `buf`; waits at most `wait` (`None`: not at all).
    /// `Ok(None)` when nothing arrived in time.
    pub(crate) fn recv(
        &self,
        buf: &mut Aligned,
        wait: Option<Duration>,
    ) -> io::Result<Option<usize>> {
        let fd = self.sock.as_raw_fd();
        if let Some(wait) = wait {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
            // SAFETY: one valid pollfd, its count, and a timeout.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(None);
                }
                return Err(e);
            }
            if rc == 0 {
                return Ok(None);
            }
        }
        let cap = buf.capacity();
        // SAFETY: the buffer is writable for `cap` bytes and borrowed uniquely for the
        // call; `recv` writes at most `cap` bytes.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast::<c_void>(),
                cap,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let n = n as usize;
        if n > cap {
            return Err(io::Error::other(format!(
                "a netlink answer of {n} bytes did not fit in {cap}"
            )));
        }
        Ok(Some(n))
    }
}
