//! Netlink messages of a batch built with libnftnl: the batch markers, tables, chains,
//! sets, rules and the `GET*` requests of a read, each into the scratch buffer and
//! appended to one contiguous batch.
//!
//! Mechanical: the objects come from `encode`, whose decisions this module must not
//! make again.

use std::ffi::{c_char, CStr};

use nftnl::nftnl_sys as sys;

use super::bounds::{chain_bound, limit_bound, request_bound, rule_bound, set_bound, table_bound};
use super::elems::{elems_msg, Attrs, NFNL_BATCH_GENID};
use super::expr::expr_obj;
use super::{cstring, len_u32, msg_max, Aligned, Obj, NLMSG_AND_NFGEN};
use crate::encode::{
    elem_wire_len, k, BaseHook, ChainDef, EncodeError, Labelled, LimitDef, Msg, RuleDef, SetDef,
    TableDef,
};

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
pub(super) struct Writer {
    pub(super) scratch: Aligned,
    pub(super) out: Vec<u8>,
}

impl Writer {
    /// A writer whose scratch buffer holds `scratch` bytes.
    pub(super) fn new(scratch: usize, out: Vec<u8>) -> Writer {
        Writer {
            scratch: Aligned::new(scratch),
            out,
        }
    }

    /// Runs `build`, which writes one message of at most `bound` bytes at the start of
    /// the scratch buffer and returns its header, then appends the message (padded to 4
    /// bytes). The bound is checked against the buffer first: libnftnl's builders do
    /// not check, so a message that might not fit is refused before any is written.
    pub(super) fn append(
        &mut self,
        bound: usize,
        build: impl FnOnce(*mut c_char) -> *mut libc::nlmsghdr,
    ) -> Result<(usize, usize), EncodeError> {
        let capacity = self.scratch.capacity();
        if bound > capacity {
            return Err(EncodeError::new(format!(
                "a netlink message of up to {bound} bytes does not fit in {capacity} (nothing \
                 was written)"
            )));
        }
        // Stale bytes would be harmless (the header says how long the message is) but
        // zeroing keeps padding deterministic.
        let zeroed = capacity.min(64);
        self.scratch.bytes_mut()[..zeroed].fill(0);
        let nlh = build(self.scratch.as_mut_ptr());
        assert_eq!(
            nlh.cast::<c_char>(),
            self.scratch.as_mut_ptr(),
            "libnftnl built the message elsewhere"
        );
        let bytes = self.scratch.bytes(capacity);
        let len = u32::from_ne_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
        // The bound is an upper bound of what libnftnl writes (the tests build every
        // kind of message): more is a wrong bound, a bug to stop at.
        assert!(
            len <= bound,
            "libnftnl wrote a netlink message of {len} bytes, over its bound of {bound}"
        );
        let start = self.out.len();
        self.out.extend_from_slice(&bytes[..len]);
        self.out.resize(start + len.div_ceil(4) * 4, 0);
        Ok((start, len))
    }

    /// The `nlmsghdr` and `nfgenmsg` of a message at `buf`, the start of the scratch
    /// buffer, inside [`append`](Writer::append) (which checked that at least
    /// [`NLMSG_AND_NFGEN`] bytes fit).
    pub(super) fn header(
        buf: *mut c_char,
        msg_type: u16,
        flags: u16,
        seq: u32,
    ) -> *mut libc::nlmsghdr {
        // SAFETY: `buf` is the start of the scratch buffer, aligned for `nlmsghdr`, and
        // `append` checked that the message's bound, at least a header plus `nfgenmsg`,
        // fits in it.
        let nlh = unsafe { sys::nftnl_nlmsg_build_hdr(buf, msg_type, k::NFPROTO_INET, flags, seq) };
        // libnftnl puts the header at `buf`; anything else (null) is not written through.
        assert_eq!(nlh.cast::<c_char>(), buf, "libnftnl put a header elsewhere");
        nlh
    }
}

const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
pub(super) const NLM_F_CREATE: u16 = libc::NLM_F_CREATE as u16;
pub(super) const NLM_F_EXCL: u16 = libc::NLM_F_EXCL as u16;
const NLM_F_APPEND: u16 = libc::NLM_F_APPEND as u16;
const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;

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
    let mut w = Writer::new(msg_max(), Vec::with_capacity(room + 64));
    let begin_seq = first_seq;
    let (begin_at, _) = w.append(NLMSG_AND_NFGEN, |buf| {
        // SAFETY: `buf` is the aligned scratch buffer, and `append` checked that the
        // marker (a header and `nfgenmsg`) fits.
        let nlh = unsafe { sys::nftnl_batch_begin(buf, begin_seq) };
        nlh.cast()
    })?;
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
        let span = message(&mut w, seq, &table, &m.msg)
            .map_err(|e| EncodeError::new(format!("{}: {e}", m.what)))?;
        spans.push(span);
    }
    let end_seq = begin_seq + 1 + msgs.len() as u32;
    let (end_at, _) = w.append(NLMSG_AND_NFGEN, |buf| {
        // SAFETY: as for the begin marker.
        let nlh = unsafe { sys::nftnl_batch_end(buf, end_seq) };
        nlh.cast()
    })?;
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

/// Appends one message of the batch; returns its span.
fn message(
    w: &mut Writer,
    seq: u32,
    table: &CStr,
    msg: &Msg,
) -> Result<(usize, usize), EncodeError> {
    match msg {
        Msg::NewTable {
            name,
            exclusive,
            create,
        } => {
            let flags = NLM_F_CREATE | if *exclusive { NLM_F_EXCL } else { 0 };
            let kind = libc::NFT_MSG_NEWTABLE as u16;
            table_msg(w, kind, flags, seq, name, create.as_ref())
        }
        Msg::DelTable { name } => table_msg(w, libc::NFT_MSG_DELTABLE as u16, 0, seq, name, None),
        Msg::NewChain(c) => chain_msg(w, seq, table, c, true),
        Msg::NewSet(s) => set_msg(w, seq, table, &s.name, Some(s)),
        Msg::NewElems(e) => elems_msg(w, seq, table, e, false),
        Msg::DelElems(e) => elems_msg(w, seq, table, e, true),
        Msg::NewRule(r) => rule_msg(w, seq, table, r, true),
        // A rule message naming a chain and no rule: every rule of the chain.
        Msg::FlushChain { chain } => {
            let all = RuleDef {
                chain: chain.clone(),
                exprs: Vec::new(),
                comment: None,
            };
            rule_msg(w, seq, table, &all, false)
        }
        // The kernel deletes the chain's rules with it.
        Msg::DelChain { name } => {
            let c = ChainDef {
                name: name.clone(),
                hook: None,
            };
            chain_msg(w, seq, table, &c, false)
        }
        Msg::DelSet { name } => set_msg(w, seq, table, name, None),
        Msg::NewLimit(l) => limit_msg(w, seq, table, &l.name, Some(l)),
        Msg::DelLimit { name } => limit_msg(w, seq, table, name, None),
    }
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
    let udata = create
        .and_then(|c| c.comment.as_deref())
        .map(comment_udata)
        .transpose()?;
    let bound = table_bound(&name, udata.as_deref());
    // SAFETY: an allocation without arguments; `Obj` refuses a null result (abort) and
    // owns the object.
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
    w.append(bound, |buf| {
        let nlh = Writer::header(buf, msg_type, flags, seq);
        // SAFETY: `nlh` heads the scratch buffer, which holds `bound` bytes, an upper
        // bound of this table's message.
        unsafe { sys::nftnl_table_nlmsg_build_payload(nlh, t.as_ptr()) };
        nlh
    })
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
    // SAFETY: an allocation without arguments; `Obj` refuses a null result (abort) and
    // owns the object.
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
    w.append(chain_bound(table, &name), |buf| {
        let nlh = Writer::header(buf, kind as u16, flags, seq);
        // SAFETY: `nlh` heads the scratch buffer, which holds `chain_bound` bytes, an
        // upper bound of this chain's message.
        unsafe { sys::nftnl_chain_nlmsg_build_payload(nlh, ch.as_ptr()) };
        nlh
    })
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
    // SAFETY: an allocation without arguments; `Obj` refuses a null result (abort) and
    // owns the object.
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
    w.append(set_bound(table, &name, def), |buf| {
        let nlh = Writer::header(buf, kind as u16, flags, seq);
        // SAFETY: `nlh` heads the scratch buffer, which holds `set_bound` bytes, an upper
        // bound of this set's message.
        unsafe { sys::nftnl_set_nlmsg_build_payload(nlh, set.as_ptr()) };
        nlh
    })
}

/// `NFT_MSG_NEWOBJ` of the limit `def`, or `NFT_MSG_DELOBJ` of the limit `name`
/// without one.
fn limit_msg(
    w: &mut Writer,
    seq: u32,
    table: &CStr,
    name: &str,
    def: Option<&LimitDef>,
) -> Result<(usize, usize), EncodeError> {
    let name = cstring(name)?;
    // SAFETY: an allocation without arguments; `Obj` refuses a null result (abort) and
    // owns the object.
    let obj = Obj::new(unsafe { sys::nftnl_obj_alloc() }, sys::nftnl_obj_free);
    // SAFETY: `obj` is live; strings are copied by libnftnl; the limit attributes are
    // set after the type, which selects the limit's attribute table.
    unsafe {
        let p = obj.as_ptr();
        sys::nftnl_obj_set_u32(p, sys::NFTNL_OBJ_FAMILY as u16, u32::from(k::NFPROTO_INET));
        sys::nftnl_obj_set_str(p, sys::NFTNL_OBJ_TABLE as u16, table.as_ptr());
        sys::nftnl_obj_set_str(p, sys::NFTNL_OBJ_NAME as u16, name.as_ptr());
        sys::nftnl_obj_set_u32(p, sys::NFTNL_OBJ_TYPE as u16, k::NFT_OBJECT_LIMIT);
        if let Some(l) = def {
            sys::nftnl_obj_set_u64(p, sys::NFTNL_OBJ_LIMIT_RATE as u16, l.rate);
            sys::nftnl_obj_set_u64(p, sys::NFTNL_OBJ_LIMIT_UNIT as u16, l.unit);
            sys::nftnl_obj_set_u32(p, sys::NFTNL_OBJ_LIMIT_BURST as u16, l.burst);
            sys::nftnl_obj_set_u32(p, sys::NFTNL_OBJ_LIMIT_TYPE as u16, k::NFT_LIMIT_PKTS);
            sys::nftnl_obj_set_u32(p, sys::NFTNL_OBJ_LIMIT_FLAGS as u16, 0);
        }
    }
    let (kind, flags) = match def {
        Some(_) => (libc::NFT_MSG_NEWOBJ, NLM_F_CREATE | NLM_F_EXCL),
        None => (libc::NFT_MSG_DELOBJ, 0),
    };
    w.append(limit_bound(table, &name), |buf| {
        let nlh = Writer::header(buf, kind as u16, flags, seq);
        // SAFETY: `nlh` heads the scratch buffer, which holds `limit_bound` bytes, an
        // upper bound of this limit's message.
        unsafe { sys::nftnl_obj_nlmsg_build_payload(nlh, obj.as_ptr()) };
        nlh
    })
}

/// A rule or table comment as nft stores it: one `NFTNL_UDATA_*_COMMENT` TLV (type 0) holding the
/// string and its NUL.
pub(crate) fn comment_udata(comment: &str) -> Result<Vec<u8>, EncodeError> {
    let len = u8::try_from(comment.len() + 1)
        .map_err(|_| EncodeError::new(format!("comment {comment:?} is over 254 bytes")))?;
    let mut out = vec![sys::NFTNL_UDATA_RULE_COMMENT as u8, len];
    out.extend_from_slice(comment.as_bytes());
    out.push(0);
    Ok(out)
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
    // SAFETY: an allocation without arguments; `Obj` refuses a null result (abort) and
    // owns the object.
    let rule = Obj::new(unsafe { sys::nftnl_rule_alloc() }, sys::nftnl_rule_free);
    // SAFETY: `rule` is live; strings are copied.
    unsafe {
        let p = rule.as_ptr();
        sys::nftnl_rule_set_u32(p, sys::NFTNL_RULE_FAMILY as u16, u32::from(k::NFPROTO_INET));
        sys::nftnl_rule_set_str(p, sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
        sys::nftnl_rule_set_str(p, sys::NFTNL_RULE_CHAIN as u16, chain.as_ptr());
    }
    let udata = r.comment.as_deref().map(comment_udata).transpose()?;
    let bound = rule_bound(table, &chain, r, udata.as_deref());
    for e in &r.exprs {
        let ex = expr_obj(e)?;
        // SAFETY: the rule takes ownership of the expression, released from `ex` first.
        unsafe { sys::nftnl_rule_add_expr(rule.as_ptr(), ex.into_raw()) };
    }
    if let Some(u) = &udata {
        // SAFETY: `rule` is live; the user data (at most 256 bytes: type, length,
        // comment, NUL) is copied.
        unsafe {
            sys::nftnl_rule_set_data(
                rule.as_ptr(),
                sys::NFTNL_RULE_USERDATA as u16,
                u.as_ptr().cast(),
                len_u32(u),
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
    w.append(bound, |buf| {
        let nlh = Writer::header(buf, kind as u16, flags, seq);
        // SAFETY: `nlh` heads the scratch buffer, which holds `bound` bytes, an upper
        // bound of this rule's message.
        unsafe { sys::nftnl_rule_nlmsg_build_payload(nlh, rule.as_ptr()) };
        nlh
    })
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
    let mut w = Writer::new(4096, Vec::new());
    let flags = NLM_F_ACK | if dump { NLM_F_DUMP } else { 0 };
    let msg_type = msg_type as u16;
    w.append(request_bound(&table, set.as_deref()), |buf| {
        let nlh = Writer::header(buf, msg_type, flags, seq);
        // SAFETY: each object is allocated (`Obj` aborts on null), filled with copied
        // strings, serialized into the aligned scratch buffer, which holds
        // `request_bound` bytes, an upper bound of the request, and freed.
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
                libc::NFT_MSG_GETOBJ => {
                    let o = Obj::new(sys::nftnl_obj_alloc(), sys::nftnl_obj_free);
                    sys::nftnl_obj_set_str(o.as_ptr(), sys::NFTNL_OBJ_TABLE as u16, table.as_ptr());
                    sys::nftnl_obj_nlmsg_build_payload(nlh, o.as_ptr());
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
    })?;
    Ok(w.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{Expr, Verdict};

    fn rule_of(exprs: Vec<Expr>) -> RuleDef {
        RuleDef {
            chain: "input".into(),
            exprs,
            comment: Some("deny ingress a/b".into()),
        }
    }

    #[test]
    fn a_message_over_the_buffer_is_refused_before_libnftnl_writes_anything() {
        // 5,000 comparisons of 16 bytes: far over the 64 KiB a message may have.
        let cmp = Expr::Cmp {
            sreg: 1,
            op: k::NFT_CMP_EQ,
            data: vec![7; 16],
        };
        let rule = rule_of(vec![cmp; 5000]);
        let mut w = Writer::new(msg_max(), Vec::new());
        w.scratch.bytes_mut().fill(0xa5);
        let err = rule_msg(&mut w, 1, c"netpol", &rule, true).expect_err("too big");
        assert!(err.to_string().contains("does not fit"), "{err}");
        assert!(w
            .scratch
            .bytes(w.scratch.capacity())
            .iter()
            .all(|b| *b == 0xa5));
        assert!(w.out.is_empty());
        // Through `serialize`, the error names the message.
        let msgs = vec![Labelled {
            msg: Msg::NewRule(rule),
            what: "rule 1 of chain input".into(),
        }];
        let err = serialize(&msgs, "netpol", 1, None).err().expect("too big");
        assert!(
            err.to_string().starts_with("rule 1 of chain input: "),
            "{err}"
        );
        // A request's buffer is 4 KiB: a longer name is refused the same way.
        let err = get_request(libc::NFT_MSG_GETTABLE, false, 1, &"t".repeat(5000), None);
        assert!(err.is_err());
    }

    #[test]
    fn register_data_over_libnftnls_field_is_refused_before_it_is_copied() {
        let too_long = Expr::Cmp {
            sreg: 1,
            op: k::NFT_CMP_EQ,
            data: vec![0; super::super::expr::REG_DATA_MAX + 1],
        };
        let err = expr_obj(&too_long).err().expect("refused");
        assert!(err.to_string().contains("register data"), "{err}");
        let uneven = Expr::Bitwise {
            sreg: 1,
            dreg: 1,
            mask: vec![0; 4],
            xor: vec![0; 8],
        };
        assert!(expr_obj(&uneven).is_err());
        assert!(expr_obj(&Expr::Immediate(Verdict::Accept)).is_ok());
    }

    #[test]
    fn bounds_hold_for_messages_of_every_kind() {
        // `append` asserts that what libnftnl wrote is within the bound; long names and
        // a long comment come closest to it.
        let name = "n".repeat(255);
        let table = cstring(&name).unwrap();
        let mut w = Writer::new(msg_max(), Vec::new());
        let def = TableDef {
            flags: k::TABLE_OWNED,
            comment: Some("c".repeat(253)),
        };
        table_msg(&mut w, 0, 0, 1, &name, Some(&def)).unwrap();
        let hook = Some(BaseHook {
            hooknum: k::NF_INET_LOCAL_IN,
            priority: 0,
            policy: k::NF_ACCEPT,
        });
        let chain = ChainDef {
            name: name.clone(),
            hook,
        };
        chain_msg(&mut w, 2, &table, &chain, true).unwrap();
        let set = SetDef {
            name: name.clone(),
            id: 1,
            flags: k::NFT_SET_INTERVAL | k::NFT_SET_CONCAT,
            key_type: 0,
            key_len: 24,
            verdict_map: true,
            size: Some(3),
            concat: vec![16; 15],
            udata: crate::encode::udata::CONCAT_SET,
        };
        set_msg(&mut w, 3, &table, &name, Some(&set)).unwrap();
        let lookup = Expr::Lookup {
            sreg: 1,
            dreg: Some(0),
            set: name.clone(),
            set_id: 1,
        };
        let mut rule = rule_of(vec![lookup; 20]);
        rule.chain = name.clone();
        rule.comment = Some("c".repeat(253));
        rule_msg(&mut w, 4, &table, &rule, true).unwrap();
        let log = Expr::Log {
            prefix: "p".repeat(127),
            group: u16::MAX,
        };
        let objref = Expr::Objref {
            kind: k::NFT_OBJECT_LIMIT,
            name: name.clone(),
        };
        let mut rule = rule_of(vec![objref, Expr::Counter, log]);
        rule.chain = name.clone();
        rule_msg(&mut w, 5, &table, &rule, true).unwrap();
        let limit = LimitDef {
            name: name.clone(),
            rate: u64::MAX,
            unit: 1,
            burst: u32::MAX,
        };
        limit_msg(&mut w, 6, &table, &name, Some(&limit)).unwrap();
        limit_msg(&mut w, 7, &table, &name, None).unwrap();
        get_request(libc::NFT_MSG_GETSETELEM, true, 8, &name, Some(&name)).unwrap();
        get_request(libc::NFT_MSG_GETOBJ, true, 9, &name, None).unwrap();
    }
}
