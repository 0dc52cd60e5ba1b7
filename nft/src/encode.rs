//! The plan as nf_tables objects: plain data, no FFI, no kernel.
//!
//! Every statement is encoded the way `nft` 1.0.6 encodes the text that `render::nft`
//! writes for it (checked with `nft --debug=netlink,mnl` inside a throwaway namespace):
//! the same expressions, registers, set flags, key types, set user data and interval
//! elements. That is what makes `nft list table` of a netlink-applied plan equal to
//! the listing of the same plan loaded with `nft -f` (the "two renderings cannot
//! drift" test in `tests.rs`).
//!
//! The batch order is nft's as well: the table (created, deleted and created again so
//! a replace works whether or not it exists), every chain, every set and map with its
//! elements, then the rules in chain order, an anonymous set right before its rule.
//!
//! [`encode_update`] encodes an [`Update`]: deletions then additions of elements, each
//! element as the full load encodes it (interval start and end elements, the gap
//! element at address 0, open intervals), so the kernel ends as a full load leaves it.
//!
//! [`encode_stage`] and [`encode_swap`] replace a loaded plan in two transactions: the
//! new plan's sets, maps and endpoint chains under the other [`Slot`]'s names first,
//! then the base chains' rules pointed at them and the old objects deleted. A packet
//! never meets a set that its own transaction is still filling: in one transaction the
//! kernel drops new connections while it commits (`benches/scripts/replace-drops`).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use crate::Update;
use rules_compiler::plan::{
    self, AddrField, AddrProtoPort, AddrRange, Delta, DenyAction, Family, Hook, Plan, SetElements,
    Stmt, ICMPV6_ALWAYS, TABLE_COMMENT,
};

/// Numbers of the nf_tables netlink API (linux/netfilter/nf_tables.h) and of nft's
/// data types (nftables/include/datatype.h) that the batch uses.
pub(crate) mod k {
    pub const NFPROTO_INET: u16 = 1;
    pub const NFPROTO_IPV4: u8 = 2;
    pub const NFPROTO_IPV6: u8 = 10;

    pub const NF_INET_LOCAL_IN: u32 = 1;
    pub const NF_INET_LOCAL_OUT: u32 = 3;
    pub const NF_ACCEPT: u32 = 1;
    pub const NF_DROP: i32 = 0;
    pub const NF_ACCEPT_VERDICT: i32 = 1;
    pub const NFT_JUMP: i32 = -3;

    /// `NFT_TABLE_F_OWNER`: only the netlink socket that made the table may change it.
    pub const NFT_TABLE_F_OWNER: u32 = 0x2;
    /// `NFT_TABLE_F_PERSIST`: an owned table outlives its owner's socket (Linux 6.9+);
    /// not in Debian 12's headers.
    pub const NFT_TABLE_F_PERSIST: u32 = 0x4;
    /// What netpold makes its table with where the kernel has both.
    pub const TABLE_OWNED: u32 = NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST;

    pub const NFT_SET_ANONYMOUS: u32 = 0x1;
    pub const NFT_SET_CONSTANT: u32 = 0x2;
    pub const NFT_SET_INTERVAL: u32 = 0x4;
    pub const NFT_SET_MAP: u32 = 0x8;
    pub const NFT_SET_CONCAT: u32 = 0x80;
    pub const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
    pub const NFT_DATA_VERDICT: u32 = 0xffff_ff00;

    pub const NFT_REG_VERDICT: u32 = 0;
    pub const NFT_REG_1: u32 = 1;
    pub const NFT_REG32_00: u32 = 8;

    pub const NFT_META_IIFNAME: u32 = 6;
    pub const NFT_META_OIFNAME: u32 = 7;
    pub const NFT_META_NFPROTO: u32 = 15;
    pub const NFT_META_L4PROTO: u32 = 16;
    pub const NFT_CT_STATE: u32 = 0;
    pub const NFT_CMP_EQ: u32 = 0;
    pub const NFT_CMP_NEQ: u32 = 1;
    pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
    pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
    pub const NFT_BYTEORDER_HTON: u32 = 1;
    pub const NFT_REJECT_TCP_RST: u32 = 1;
    pub const NFT_REJECT_ICMPX_UNREACH: u32 = 2;
    pub const NFT_REJECT_ICMPX_ADMIN_PROHIBITED: u8 = 3;

    /// conntrack state bits (`NF_CT_STATE_BIT`), host byte order.
    pub const CT_INVALID: u32 = 1;
    pub const CT_ESTABLISHED_RELATED: u32 = 2 | 4;

    /// nft data types (`TYPE_*`) and how nft combines them into a concatenation.
    pub const TYPE_IPADDR: u32 = 7;
    pub const TYPE_IP6ADDR: u32 = 8;
    pub const TYPE_INET_PROTOCOL: u32 = 12;
    pub const TYPE_INET_SERVICE: u32 = 13;
    pub const TYPE_ICMP6_TYPE: u32 = 29;
    pub const TYPE_BITS: u32 = 6;

    pub const IPPROTO_TCP: u8 = 6;
    pub const IPPROTO_ICMPV6: u8 = 58;

    /// Longest table, chain and set name the kernel takes (`NFT_NAME_MAXLEN` less the NUL).
    pub const NAME_MAX: usize = 255;
}

/// Set user data exactly as nft 1.0.6 writes it (`NFTNL_UDATA_SET_*` TLVs, values in
/// host byte order). `nft list` reads it back to print keys, so the bytes are copied
/// from what nft sends rather than derived.
pub(crate) mod udata {
    /// An address interval set: key byte order big endian.
    pub const ADDR_SET: &[u8] = &[0, 4, 2, 0, 0, 0];
    /// An address · protocol · service set: mixed byte order, and an empty "typeof"
    /// record naming a concatenation.
    pub const CONCAT_SET: &[u8] = &[0, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0];
    /// An address to verdict map: key big endian, data host order, data not an interval.
    pub const VERDICT_MAP: &[u8] = &[0, 4, 2, 0, 0, 0, 1, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0];
    /// The anonymous `icmpv6 type { … }` set: big endian, typeof `icmpv6 type`.
    pub const ICMPV6_TYPE_SET: &[u8] = &[
        0, 4, 2, 0, 0, 0, 3, 20, 0, 4, 7, 0, 0, 0, 1, 12, 0, 4, 14, 0, 0, 0, 1, 4, 1, 0, 0, 0,
    ];
    /// On the start element of an interval that runs to the last address: the interval
    /// is open (`NFTNL_SET_ELEM_F_INTERVAL_OPEN`), there is no end element.
    pub const ELEM_INTERVAL_OPEN: &[u8] = &[1, 4, 1, 0, 0, 0];
}

/// A plan the encoder refuses: a bug upstream, caught before anything reaches the kernel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(String);

impl EncodeError {
    pub(crate) fn new(msg: String) -> EncodeError {
        EncodeError(msg)
    }
}

/// A verdict of an `immediate` expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accept,
    Drop,
}

/// One nf_tables expression, attributes as libnftnl names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    Meta {
        key: u32,
        dreg: u32,
    },
    Ct {
        key: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor`, over `mask.len()` bytes.
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Byteorder {
        sreg: u32,
        dreg: u32,
        op: u32,
        len: u32,
        size: u32,
    },
    Lookup {
        sreg: u32,
        /// `Some(NFT_REG_VERDICT)` for a verdict map.
        dreg: Option<u32>,
        set: String,
        set_id: u32,
    },
    Counter,
    Immediate(Verdict),
    Reject {
        kind: u32,
        code: u8,
    },
}

/// A set key of up to 24 bytes (IPv6 · protocol · port), kept inline: a big plan has
/// hundreds of thousands of them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    bytes: [u8; 24],
    len: u8,
}

impl Key {
    fn new(parts: &[&[u8]]) -> Key {
        let mut key = Key {
            bytes: [0; 24],
            len: 0,
        };
        for part in parts {
            let at = usize::from(key.len);
            key.bytes[at..at + part.len()].copy_from_slice(part);
            key.len += part.len() as u8;
        }
        key
    }

    /// The key bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One set element as netlink carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Elem {
    pub key: Key,
    /// Inclusive end of a concatenated range (`NFTA_SET_ELEM_KEY_END`).
    pub key_end: Option<Key>,
    /// `NFT_SET_ELEM_INTERVAL_END`: the first key after an interval.
    pub interval_end: bool,
    /// The interval runs to the last address (user data for nft's listing).
    pub open: bool,
    /// For a verdict map: `jump` to this chain.
    pub jump: Option<String>,
    /// Index of the plan element this netlink element comes from.
    pub origin: u32,
}

/// A base chain's hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BaseHook {
    pub hooknum: u32,
    pub priority: i32,
    pub policy: u32,
}

/// A chain to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainDef {
    pub name: String,
    pub hook: Option<BaseHook>,
}

/// A set or map to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SetDef {
    pub name: String,
    pub id: u32,
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    /// Verdict map: data type `NFT_DATA_VERDICT`, data length 0.
    pub verdict_map: bool,
    /// `NFTA_SET_DESC_SIZE` (anonymous sets).
    pub size: Option<u32>,
    /// `NFTA_SET_DESC_CONCAT` field lengths in bytes; empty when not concatenated.
    pub concat: Vec<u8>,
    pub udata: &'static [u8],
}

/// Where elements come from, to name the failing one in an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ElemSource {
    /// `plan.sets[i]`.
    Set(usize),
    /// `plan.maps[i]`.
    Map(usize),
    /// The constant ICMPv6 types of neighbour discovery.
    Icmpv6Types,
    /// `delta.sets[index]` (or `delta.maps[index]`), its deletions or its additions.
    Delta {
        index: usize,
        map: bool,
        delete: bool,
    },
}

/// Elements to add to a set, one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ElemsDef {
    /// The set in words, `set in_x_v4`.
    pub owner: String,
    pub set: String,
    pub set_id: u32,
    pub elems: Vec<Elem>,
    pub source: ElemSource,
}

/// A rule to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleDef {
    pub chain: String,
    pub exprs: Vec<Expr>,
    pub comment: Option<String>,
}

/// One message of the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    /// Create the table; `exclusive` fails if it exists. Without `create` (flags and
    /// comment) the message only makes sure the table exists: on one that does, it
    /// changes nothing, whoever owns it.
    NewTable {
        name: String,
        exclusive: bool,
        create: Option<TableDef>,
    },
    DelTable {
        name: String,
    },
    NewChain(ChainDef),
    NewSet(SetDef),
    NewElems(ElemsDef),
    /// Elements to delete from an existing set or map.
    DelElems(ElemsDef),
    NewRule(RuleDef),
    /// Delete every rule of a chain (`flush chain`).
    FlushChain {
        chain: String,
    },
    /// Delete a chain and its rules; nothing may refer to it any more.
    DelChain {
        name: String,
    },
    /// Delete a set or map; no rule may refer to it any more.
    DelSet {
        name: String,
    },
}

/// What a new table is made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableDef {
    /// `NFT_TABLE_F_*`: [`k::TABLE_OWNED`] or 0.
    pub flags: u32,
    /// Its comment ([`TABLE_COMMENT`]); none when taking over a table (the kernel keeps
    /// a table's comment).
    pub comment: Option<String>,
}

/// What a message is about, for errors: `set in_x_v4`, `rule 2 of chain input`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Labelled {
    pub msg: Msg,
    pub what: String,
}

/// The whole batch, between the begin and end markers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Batch {
    pub msgs: Vec<Labelled>,
    /// Rules the kernel will hold.
    pub rules: usize,
    /// Plan elements (not netlink elements: an interval is one element here).
    pub elements: usize,
}

impl Batch {
    /// Makes the table this batch creates with `flags` (`NFT_TABLE_F_*`).
    pub(crate) fn table_flags(&mut self, flags: u32) {
        for m in &mut self.msgs {
            if let Msg::NewTable {
                create: Some(def), ..
            } = &mut m.msg
            {
                def.flags = flags;
            }
        }
    }
}

/// Which of two names the objects of a loaded plan have in the kernel. A plan's sets,
/// maps and endpoint chains are loaded under the names of the slot not in use, so the
/// old ones stay whole until the base chains point at the new ones. Base chains keep
/// their names. [`Slot::Plain`] names are the plan's (a full replace loads those, and
/// `netpolctl compile` prints them); [`Slot::Next`] names carry [`Slot::NEXT_PREFIX`],
/// which no plan name starts with (they start with `in_`, `out_`, `ingress_`,
/// `egress_`, `input` or `output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The plan's own names.
    Plain,
    /// The plan's names after [`Slot::NEXT_PREFIX`].
    Next,
}

impl Slot {
    /// What starts every name of the [`Slot::Next`] slot.
    pub const NEXT_PREFIX: &'static str = "b.";

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::Plain => Slot::Next,
            Slot::Next => Slot::Plain,
        }
    }

    /// The kernel's name for the plan object `name` (not a base chain).
    pub fn name(self, name: &str) -> String {
        match self {
            Slot::Plain => name.to_string(),
            Slot::Next => format!("{}{name}", Slot::NEXT_PREFIX),
        }
    }

    /// The plan's name for a kernel object of either slot.
    pub fn plan_name(kernel: &str) -> &str {
        kernel.strip_prefix(Slot::NEXT_PREFIX).unwrap_or(kernel)
    }

    /// An `nft list` of netpol's table with every name as the plan has it: what a full
    /// load of the same plan lists. A name follows a space (`set b.x`, `jump b.x`) or
    /// an `@`; nothing else in a listing of netpol's table holds `b.` after those.
    pub fn plain_listing(listing: &str) -> String {
        let prefix = Slot::NEXT_PREFIX;
        let mut out = String::with_capacity(listing.len());
        let mut rest = listing;
        while let Some(at) = rest.find(prefix) {
            out.push_str(&rest[..at]);
            if !matches!(rest[..at].chars().last(), Some(' ' | '@')) {
                out.push_str(prefix);
            }
            rest = &rest[at + prefix.len()..];
        }
        out.push_str(rest);
        out
    }
}

/// The objects of a loaded plan that a two-transaction replace deletes, and the base
/// chains it keeps: what the backend remembers of the table it loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub slot: Slot,
    /// Base chains: name and hook.
    pub base: Vec<(String, Hook)>,
    /// Kernel names of the endpoint chains, sets and maps.
    pub chains: Vec<String>,
    pub sets: Vec<String>,
    pub maps: Vec<String>,
}

impl Loaded {
    /// `plan` as loaded under `slot`.
    pub(crate) fn of(plan: &Plan, slot: Slot) -> Loaded {
        Loaded {
            slot,
            base: base_chains(plan),
            chains: plan
                .chains
                .iter()
                .filter(|c| c.hook.is_none())
                .map(|c| slot.name(&c.name))
                .collect(),
            sets: plan.sets.iter().map(|s| slot.name(&s.name)).collect(),
            maps: plan.maps.iter().map(|m| slot.name(&m.name)).collect(),
        }
    }

    /// Whether `plan` can replace this in two transactions: the same table and base
    /// chains (only their rules are swapped).
    pub(crate) fn swappable(&self, plan: &Plan) -> bool {
        self.base == base_chains(plan)
    }
}

fn base_chains(plan: &Plan) -> Vec<(String, Hook)> {
    plan.chains
        .iter()
        .filter_map(|c| c.hook.map(|h| (c.name.clone(), h)))
        .collect()
}

/// Taking over an existing table: flags `flags` on it (the kernel gives an orphaned
/// persistent table to the socket that sets `NFT_TABLE_F_OWNER` on it).
pub(crate) fn encode_claim(table: &str, flags: u32) -> Result<Batch, EncodeError> {
    check_name("table", table)?;
    Ok(Batch {
        msgs: vec![Labelled {
            msg: Msg::NewTable {
                name: table.into(),
                exclusive: false,
                create: Some(TableDef {
                    flags,
                    comment: None,
                }),
            },
            what: format!("taking over table inet {table}"),
        }],
        rules: 0,
        elements: 0,
    })
}

/// Room for the elements of one message: the kernel's attribute length is 16 bits and
/// the nest of all elements must fit, with margin for the header and set names.
const ELEMS_PER_MSG_BYTES: usize = 60_000;

/// Upper bound of one element's encoding (`NFTA_LIST_ELEM` nest with key, key end,
/// flags, verdict data and user data), so a chunk never outgrows a message.
pub(crate) fn elem_wire_len(e: &Elem) -> usize {
    fn attr(payload: usize) -> usize {
        4 + payload.div_ceil(4) * 4
    }
    let key = |k: &Key| attr(attr(k.as_slice().len()));
    let mut n = 4 + key(&e.key);
    if let Some(end) = &e.key_end {
        n += key(end);
    }
    if e.interval_end {
        n += attr(4);
    }
    if let Some(chain) = &e.jump {
        n += attr(attr(attr(4) + attr(chain.len() + 1)));
    }
    if e.open {
        n += attr(udata::ELEM_INTERVAL_OPEN.len());
    }
    n
}

/// A 32-bit register slot as nft names it: slots that start a 128-bit register use
/// that register's number (`NFT_REG_1` …), others `NFT_REG32_xx`.
fn reg(slot: u32) -> u32 {
    if slot % 4 == 0 {
        k::NFT_REG_1 + slot / 4
    } else {
        k::NFT_REG32_00 + slot
    }
}

/// The full replace of `plan.table` in one batch, under the plan's own names.
pub(crate) fn encode(plan: &Plan) -> Result<Batch, EncodeError> {
    let mut enc = Encoder::new(plan, Slot::Plain);
    enc.all()?;
    Ok(enc.batch(plan.element_count()))
}

/// The first of a two-transaction replace: `plan`'s endpoint chains, sets and maps
/// under `slot`'s names, filled, in a table whose base chains do not use them yet.
pub(crate) fn encode_stage(plan: &Plan, slot: Slot) -> Result<Batch, EncodeError> {
    let mut enc = Encoder::new(plan, slot);
    check_name("table", &plan.table)?;
    enc.chains(Which::Endpoints)?;
    enc.sets_and_maps()?;
    enc.rules(Which::Endpoints)?;
    Ok(enc.batch(plan.element_count()))
}

/// The second: the base chains' rules replaced by `plan`'s, which use the objects
/// [`encode_stage`] made under `slot`, and `old`'s objects deleted (maps first: they
/// jump to the chains; chains before the sets their rules look up).
pub(crate) fn encode_swap(plan: &Plan, slot: Slot, old: &Loaded) -> Result<Batch, EncodeError> {
    if old.slot == slot {
        return Err(EncodeError(format!(
            "a swap to the objects in use ({slot:?}) would delete them"
        )));
    }
    let mut enc = Encoder::new(plan, slot);
    for (name, _) in &old.base {
        enc.push(
            Msg::FlushChain {
                chain: name.clone(),
            },
            format!("flushing chain {name}"),
        );
    }
    // Made by the first transaction: looked up by name.
    for name in plan
        .sets
        .iter()
        .map(|s| &s.name)
        .chain(plan.maps.iter().map(|m| &m.name))
    {
        enc.set_ids.insert(name.clone(), 0);
    }
    enc.rules(Which::Base)?;
    for name in &old.maps {
        enc.push(
            Msg::DelSet { name: name.clone() },
            format!("deleting map {name}"),
        );
    }
    for name in &old.chains {
        enc.push(
            Msg::DelChain { name: name.clone() },
            format!("deleting chain {name}"),
        );
    }
    for name in &old.sets {
        enc.push(
            Msg::DelSet { name: name.clone() },
            format!("deleting set {name}"),
        );
    }
    Ok(enc.batch(0))
}

/// Appends `elems` to the batch as add (or delete) messages, as many as their size needs.
fn push_elems(
    msgs: &mut Vec<Labelled>,
    set: &str,
    set_id: u32,
    source: ElemSource,
    mut elems: Vec<Elem>,
    what: &str,
    delete: bool,
) {
    // Where each message's elements start; the vector is then cut there from the
    // back, so every element moves at most once (most sets fit one message and do
    // not move at all).
    let mut starts = Vec::new();
    let mut bytes = 0;
    for (i, e) in elems.iter().enumerate() {
        let n = elem_wire_len(e);
        if bytes + n > ELEMS_PER_MSG_BYTES && i > 0 {
            starts.push(i);
            bytes = 0;
        }
        bytes += n;
    }
    let mut chunks = Vec::with_capacity(starts.len() + 1);
    for &at in starts.iter().rev() {
        chunks.push(elems.split_off(at));
    }
    chunks.push(elems);
    for chunk in chunks.into_iter().rev() {
        let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
            continue;
        };
        let name = format!("{what} (elements {} to {})", first.origin, last.origin);
        let def = ElemsDef {
            owner: what.into(),
            set: set.into(),
            set_id,
            elems: chunk,
            source,
        };
        let msg = if delete {
            Msg::DelElems(def)
        } else {
            Msg::NewElems(def)
        };
        msgs.push(Labelled { msg, what: name });
    }
}

/// Element changes of existing sets and maps in one batch: every deletion, then every
/// addition, so that an element can be replaced (a map key with a new target, an
/// interval that grew) within the transaction. Elements are encoded exactly as a full
/// load of the new plan encodes them, so that the kernel ends up holding the same.
/// `slot` says under which names the plan is loaded.
pub(crate) fn encode_update(delta: &Update, slot: Slot) -> Result<Batch, EncodeError> {
    check_name("table", &delta.table)?;
    let mut dels = Vec::new();
    let mut adds = Vec::new();
    for (i, d) in delta.sets.iter().enumerate() {
        let name = slot.name(&d.name);
        check_name("set", &name)?;
        let what = format!("set {name}");
        let encode = |elements: &SetElements| match elements {
            SetElements::Addr(ranges) => interval_elems_of(d.family, ranges),
            SetElements::AddrProtoPort(items) => concat_elems(d.family, items),
        };
        let mut del = encode(&d.delete).map_err(|e| EncodeError(format!("{what}: {e}")))?;
        let mut add = encode(&d.add).map_err(|e| EncodeError(format!("{what}: {e}")))?;
        // The end element at 0 that closes the gap below the first interval (see
        // `interval_elems`) goes with whichever plan has such a gap.
        if let SetElements::Addr(_) = d.delete {
            let gap = Elem {
                key: value_key(d.family, 0),
                key_end: None,
                interval_end: true,
                open: false,
                jump: None,
                origin: u32::MAX,
            };
            match delta.gap_below(i) {
                (true, false) => del.push(gap),
                (false, true) => add.insert(0, gap),
                _ => {}
            }
        }
        let source = |delete| ElemSource::Delta {
            index: i,
            map: false,
            delete,
        };
        push_elems(&mut dels, &name, 0, source(true), del, &what, true);
        push_elems(&mut adds, &name, 0, source(false), add, &what, false);
    }
    for (i, d) in delta.maps.iter().enumerate() {
        let name = slot.name(&d.name);
        check_name("map", &name)?;
        let what = format!("map {name}");
        let encode = |elements: &[(IpAddr, String)]| -> Result<Vec<Elem>, EncodeError> {
            elements
                .iter()
                .enumerate()
                .map(|(j, (ip, chain))| {
                    if Family::of(ip) != d.family {
                        return Err(EncodeError(format!(
                            "{what}: key {ip} is not of the map's family"
                        )));
                    }
                    let chain = slot.name(chain);
                    check_name("chain", &chain)?;
                    Ok(Elem {
                        key: ip_key(ip),
                        key_end: None,
                        interval_end: false,
                        open: false,
                        jump: Some(chain),
                        origin: j as u32,
                    })
                })
                .collect()
        };
        let source = |delete| ElemSource::Delta {
            index: i,
            map: true,
            delete,
        };
        push_elems(
            &mut dels,
            &name,
            0,
            source(true),
            encode(&d.delete)?,
            &what,
            true,
        );
        push_elems(
            &mut adds,
            &name,
            0,
            source(false),
            encode(&d.add)?,
            &what,
            false,
        );
    }
    dels.extend(adds);
    Ok(Batch {
        msgs: dels,
        rules: 0,
        elements: delta.changed(),
    })
}

/// Deleting `table` and nothing else.
pub(crate) fn encode_delete(table: &str) -> Result<Batch, EncodeError> {
    check_name("table", table)?;
    Ok(Batch {
        msgs: vec![Labelled {
            msg: Msg::DelTable { name: table.into() },
            what: format!("table inet {table}"),
        }],
        rules: 0,
        elements: 0,
    })
}

fn check_name(what: &str, name: &str) -> Result<(), EncodeError> {
    if name.is_empty() || name.len() > k::NAME_MAX || name.contains('\0') {
        return Err(EncodeError(format!(
            "{what} name {name:?} is not a valid nftables name (1 to {} bytes, no NUL)",
            k::NAME_MAX
        )));
    }
    Ok(())
}

/// Which chains of the plan (and their rules) a batch makes.
#[derive(Clone, Copy)]
enum Which {
    All,
    Base,
    Endpoints,
}

impl Which {
    fn has(self, chain: &rules_compiler::plan::Chain) -> bool {
        match self {
            Which::All => true,
            Which::Base => chain.hook.is_some(),
            Which::Endpoints => chain.hook.is_none(),
        }
    }
}

struct Encoder<'a> {
    plan: &'a Plan,
    /// Under whose names the plan's objects go.
    slot: Slot,
    msgs: Vec<Labelled>,
    next_set_id: u32,
    /// Named sets and maps made so far, by plan name: their id (a big plan has a
    /// thousand rules that each look one up among a thousand sets).
    set_ids: HashMap<String, u32>,
    rules: usize,
}

impl<'a> Encoder<'a> {
    fn new(plan: &'a Plan, slot: Slot) -> Encoder<'a> {
        Encoder {
            plan,
            slot,
            msgs: Vec::new(),
            next_set_id: 1,
            set_ids: HashMap::new(),
            rules: 0,
        }
    }

    fn batch(self, elements: usize) -> Batch {
        Batch {
            msgs: self.msgs,
            rules: self.rules,
            elements,
        }
    }

    fn push(&mut self, msg: Msg, what: String) {
        self.msgs.push(Labelled { msg, what });
    }

    /// A chain's name in the kernel: base chains keep theirs.
    fn chain_name(&self, chain: &rules_compiler::plan::Chain) -> String {
        match chain.hook {
            Some(_) => chain.name.clone(),
            None => self.slot.name(&chain.name),
        }
    }

    fn all(&mut self) -> Result<(), EncodeError> {
        let t = &self.plan.table;
        check_name("table", t)?;
        self.push(
            Msg::NewTable {
                name: t.clone(),
                exclusive: false,
                create: None,
            },
            format!("table inet {t}"),
        );
        self.push(
            Msg::DelTable { name: t.clone() },
            format!("deleting the previous table inet {t}"),
        );
        self.push(
            Msg::NewTable {
                name: t.clone(),
                exclusive: true,
                create: Some(TableDef {
                    flags: 0,
                    comment: Some(TABLE_COMMENT.to_string()),
                }),
            },
            format!("table inet {t}"),
        );
        self.chains(Which::All)?;
        self.sets_and_maps()?;
        self.rules(Which::All)?;
        Ok(())
    }

    fn chains(&mut self, which: Which) -> Result<(), EncodeError> {
        let plan = self.plan;
        for chain in plan.chains.iter().filter(|c| which.has(c)) {
            let name = self.chain_name(chain);
            check_name("chain", &name)?;
            let hook = chain.hook.map(|h| BaseHook {
                hooknum: match h {
                    Hook::Input => k::NF_INET_LOCAL_IN,
                    Hook::Output => k::NF_INET_LOCAL_OUT,
                },
                priority: 0,
                policy: k::NF_ACCEPT,
            });
            self.push(
                Msg::NewChain(ChainDef {
                    name: name.clone(),
                    hook,
                }),
                format!("chain {name}"),
            );
        }
        Ok(())
    }

    fn sets_and_maps(&mut self) -> Result<(), EncodeError> {
        let plan = self.plan;
        for (i, set) in plan.sets.iter().enumerate() {
            self.named_set(i, set)?;
        }
        for (i, map) in plan.maps.iter().enumerate() {
            self.map(i, map)?;
        }
        Ok(())
    }

    fn rules(&mut self, which: Which) -> Result<(), EncodeError> {
        let plan = self.plan;
        for chain in plan.chains.iter().filter(|c| which.has(c)) {
            let name = self.chain_name(chain);
            for (i, stmt) in chain.rules.iter().enumerate() {
                self.stmt(&name, i + 1, stmt)?;
            }
        }
        Ok(())
    }

    fn new_set_id(&mut self) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        id
    }

    fn set_id(&self, name: &str, what: &str) -> Result<u32, EncodeError> {
        self.set_ids.get(name).copied().ok_or_else(|| {
            EncodeError(format!(
                "{what} uses @{name}, which the plan does not define"
            ))
        })
    }

    fn elems(&mut self, set: &str, set_id: u32, source: ElemSource, elems: Vec<Elem>, what: &str) {
        push_elems(&mut self.msgs, set, set_id, source, elems, what, false);
    }

    fn named_set(
        &mut self,
        index: usize,
        set: &rules_compiler::plan::Set,
    ) -> Result<(), EncodeError> {
        let name = self.slot.name(&set.name);
        check_name("set", &name)?;
        let what = format!("set {name}");
        let id = self.new_set_id();
        let (addr_type, addr_len) = addr_type(set.family);
        let def = match &set.elements {
            SetElements::Addr(_) => SetDef {
                name: name.clone(),
                id,
                flags: k::NFT_SET_INTERVAL,
                key_type: addr_type,
                key_len: addr_len,
                verdict_map: false,
                size: None,
                concat: Vec::new(),
                udata: udata::ADDR_SET,
            },
            SetElements::AddrProtoPort(_) => SetDef {
                name: name.clone(),
                id,
                flags: k::NFT_SET_INTERVAL | k::NFT_SET_CONCAT,
                key_type: ((addr_type << k::TYPE_BITS | k::TYPE_INET_PROTOCOL) << k::TYPE_BITS)
                    | k::TYPE_INET_SERVICE,
                key_len: addr_len + 4 + 4,
                verdict_map: false,
                size: None,
                concat: vec![addr_len as u8, 1, 2],
                udata: udata::CONCAT_SET,
            },
        };
        self.push(Msg::NewSet(def), what.clone());
        self.set_ids.entry(set.name.clone()).or_insert(id);
        let elems = match &set.elements {
            SetElements::Addr(ranges) => interval_elems(set.family, ranges)
                .map_err(|e| EncodeError(format!("{what}: {e}")))?,
            SetElements::AddrProtoPort(items) => {
                concat_elems(set.family, items).map_err(|e| EncodeError(format!("{what}: {e}")))?
            }
        };
        self.elems(&name, id, ElemSource::Set(index), elems, &what);
        Ok(())
    }

    fn map(
        &mut self,
        index: usize,
        map: &rules_compiler::plan::VerdictMap,
    ) -> Result<(), EncodeError> {
        let name = self.slot.name(&map.name);
        check_name("map", &name)?;
        let what = format!("map {name}");
        let id = self.new_set_id();
        let (key_type, key_len) = addr_type(map.family);
        self.push(
            Msg::NewSet(SetDef {
                name: name.clone(),
                id,
                flags: k::NFT_SET_MAP,
                key_type,
                key_len,
                verdict_map: true,
                size: None,
                concat: Vec::new(),
                udata: udata::VERDICT_MAP,
            }),
            what.clone(),
        );
        self.set_ids.entry(map.name.clone()).or_insert(id);
        let mut elems = Vec::with_capacity(map.elements.len());
        for (i, (ip, chain)) in map.elements.iter().enumerate() {
            if Family::of(ip) != map.family {
                return Err(EncodeError(format!(
                    "{what}: key {ip} is not of the map's family"
                )));
            }
            elems.push(Elem {
                key: ip_key(ip),
                key_end: None,
                interval_end: false,
                open: false,
                jump: Some(self.slot.name(chain)),
                origin: i as u32,
            });
        }
        self.elems(&name, id, ElemSource::Map(index), elems, &what);
        Ok(())
    }

    fn rule(&mut self, chain: &str, what: String, exprs: Vec<Expr>, comment: Option<String>) {
        self.rules += 1;
        self.push(
            Msg::NewRule(RuleDef {
                chain: chain.into(),
                exprs,
                comment,
            }),
            what,
        );
    }

    fn stmt(&mut self, chain: &str, n: usize, stmt: &Stmt) -> Result<(), EncodeError> {
        let r1 = k::NFT_REG_1;
        let what = format!("rule {n} of chain {chain}");
        let accept = Expr::Immediate(Verdict::Accept);
        match stmt {
            Stmt::CtEstablishedAccept | Stmt::CtInvalidDrop => {
                let (bits, verdict) = match stmt {
                    Stmt::CtEstablishedAccept => (k::CT_ESTABLISHED_RELATED, Verdict::Accept),
                    _ => (k::CT_INVALID, Verdict::Drop),
                };
                let exprs = vec![
                    Expr::Ct {
                        key: k::NFT_CT_STATE,
                        dreg: r1,
                    },
                    Expr::Bitwise {
                        sreg: r1,
                        dreg: r1,
                        mask: bits.to_ne_bytes().to_vec(),
                        xor: vec![0; 4],
                    },
                    Expr::Cmp {
                        sreg: r1,
                        op: k::NFT_CMP_NEQ,
                        data: vec![0; 4],
                    },
                    Expr::Immediate(verdict),
                ];
                self.rule(chain, what, exprs, None);
            }
            Stmt::LoopbackAccept(hook) => {
                let key = match hook {
                    Hook::Input => k::NFT_META_IIFNAME,
                    Hook::Output => k::NFT_META_OIFNAME,
                };
                let mut name = vec![0u8; 16];
                name[..2].copy_from_slice(b"lo");
                let exprs = vec![
                    Expr::Meta { key, dreg: r1 },
                    Expr::Cmp {
                        sreg: r1,
                        op: k::NFT_CMP_EQ,
                        data: name,
                    },
                    accept,
                ];
                self.rule(chain, what, exprs, None);
            }
            Stmt::NeighbourDiscoveryAccept => {
                let id = self.new_set_id();
                let set_what = format!("the ICMPv6 type set of {what}");
                self.push(
                    Msg::NewSet(SetDef {
                        name: "__set%d".into(),
                        id,
                        flags: k::NFT_SET_ANONYMOUS | k::NFT_SET_CONSTANT,
                        key_type: k::TYPE_ICMP6_TYPE,
                        key_len: 1,
                        verdict_map: false,
                        size: Some(ICMPV6_ALWAYS.len() as u32),
                        concat: Vec::new(),
                        udata: udata::ICMPV6_TYPE_SET,
                    }),
                    set_what.clone(),
                );
                let elems = ICMPV6_ALWAYS
                    .iter()
                    .enumerate()
                    .map(|(i, t)| Elem {
                        key: Key::new(&[&[*t]]),
                        key_end: None,
                        interval_end: false,
                        open: false,
                        jump: None,
                        origin: i as u32,
                    })
                    .collect();
                self.elems("__set%d", id, ElemSource::Icmpv6Types, elems, &set_what);
                let exprs = vec![
                    Expr::Meta {
                        key: k::NFT_META_NFPROTO,
                        dreg: r1,
                    },
                    Expr::Cmp {
                        sreg: r1,
                        op: k::NFT_CMP_EQ,
                        data: vec![k::NFPROTO_IPV6],
                    },
                    Expr::Meta {
                        key: k::NFT_META_L4PROTO,
                        dreg: r1,
                    },
                    Expr::Cmp {
                        sreg: r1,
                        op: k::NFT_CMP_EQ,
                        data: vec![k::IPPROTO_ICMPV6],
                    },
                    Expr::Payload {
                        base: k::NFT_PAYLOAD_TRANSPORT_HEADER,
                        offset: 0,
                        len: 1,
                        dreg: r1,
                    },
                    Expr::Lookup {
                        sreg: r1,
                        dreg: None,
                        set: "__set%d".into(),
                        set_id: id,
                    },
                    accept,
                ];
                self.rule(chain, what, exprs, None);
            }
            Stmt::Dispatch { family, field, map } => {
                let set_id = self.set_id(map, &what)?;
                let mut exprs = addr_load(*family, *field, 0);
                exprs.push(Expr::Lookup {
                    sreg: r1,
                    dreg: Some(k::NFT_REG_VERDICT),
                    set: self.slot.name(map),
                    set_id,
                });
                self.rule(chain, what, exprs, None);
            }
            Stmt::AcceptAddr { family, field, set } => {
                let set_id = self.set_id(set, &what)?;
                let mut exprs = addr_load(*family, *field, 0);
                exprs.push(Expr::Lookup {
                    sreg: r1,
                    dreg: None,
                    set: self.slot.name(set),
                    set_id,
                });
                exprs.push(accept);
                self.rule(chain, what, exprs, None);
            }
            Stmt::AcceptAddrProtoPort { family, field, set } => {
                let set_id = self.set_id(set, &what)?;
                let mut exprs = addr_load(*family, *field, 0);
                // The protocol and the port follow the address in the next 32-bit slots.
                let proto = match family {
                    Family::V4 => 1,
                    Family::V6 => 4,
                };
                exprs.extend([
                    Expr::Meta {
                        key: k::NFT_META_L4PROTO,
                        dreg: reg(proto),
                    },
                    // nft emits this (a no-op for one byte) for the host-order protocol
                    // inside a concatenation; kept so both renderings list the same.
                    Expr::Byteorder {
                        sreg: reg(proto),
                        dreg: reg(proto),
                        op: k::NFT_BYTEORDER_HTON,
                        len: 1,
                        size: 2,
                    },
                    Expr::Payload {
                        base: k::NFT_PAYLOAD_TRANSPORT_HEADER,
                        offset: 2,
                        len: 2,
                        dreg: reg(proto + 1),
                    },
                    Expr::Lookup {
                        sreg: r1,
                        dreg: None,
                        set: self.slot.name(set),
                        set_id,
                    },
                    accept,
                ]);
                self.rule(chain, what, exprs, None);
            }
            Stmt::Deny { action, comment } => {
                // The compiler cuts comments to this same limit; this guards plans from
                // elsewhere (a hand-made plan, a future compiler).
                if comment.len() > plan::MAX_COMMENT || comment.contains('\0') {
                    return Err(EncodeError(format!(
                        "{what}: comment {comment:?} is longer than nft allows ({} bytes) or holds a NUL",
                        plan::MAX_COMMENT
                    )));
                }
                match action {
                    DenyAction::Drop => {
                        let exprs = vec![Expr::Counter, Expr::Immediate(Verdict::Drop)];
                        self.rule(chain, what, exprs, Some(comment.clone()));
                    }
                    DenyAction::Reject => {
                        // As render writes it: count once, then a TCP reset for TCP and an
                        // ICMP(v6) administratively-prohibited for the rest.
                        self.rule(
                            chain,
                            what.clone(),
                            vec![Expr::Counter],
                            Some(comment.clone()),
                        );
                        let exprs = vec![
                            Expr::Meta {
                                key: k::NFT_META_L4PROTO,
                                dreg: r1,
                            },
                            Expr::Cmp {
                                sreg: r1,
                                op: k::NFT_CMP_EQ,
                                data: vec![k::IPPROTO_TCP],
                            },
                            Expr::Reject {
                                kind: k::NFT_REJECT_TCP_RST,
                                code: 0,
                            },
                        ];
                        self.rule(chain, format!("{what} (tcp reset)"), exprs, None);
                        let exprs = vec![Expr::Reject {
                            kind: k::NFT_REJECT_ICMPX_UNREACH,
                            code: k::NFT_REJECT_ICMPX_ADMIN_PROHIBITED,
                        }];
                        self.rule(chain, format!("{what} (icmpx reject)"), exprs, None);
                    }
                }
            }
        }
        Ok(())
    }
}

fn addr_type(family: Family) -> (u32, u32) {
    match family {
        Family::V4 => (k::TYPE_IPADDR, 4),
        Family::V6 => (k::TYPE_IP6ADDR, 16),
    }
}

/// `meta nfproto ipvN` then the address into the register at `slot`: in an inet table
/// the family must be checked before the network header is read.
fn addr_load(family: Family, field: AddrField, slot: u32) -> Vec<Expr> {
    let (nfproto, offset, len) = match (family, field) {
        (Family::V4, AddrField::Saddr) => (k::NFPROTO_IPV4, 12, 4),
        (Family::V4, AddrField::Daddr) => (k::NFPROTO_IPV4, 16, 4),
        (Family::V6, AddrField::Saddr) => (k::NFPROTO_IPV6, 8, 16),
        (Family::V6, AddrField::Daddr) => (k::NFPROTO_IPV6, 24, 16),
    };
    vec![
        Expr::Meta {
            key: k::NFT_META_NFPROTO,
            dreg: k::NFT_REG_1,
        },
        Expr::Cmp {
            sreg: k::NFT_REG_1,
            op: k::NFT_CMP_EQ,
            data: vec![nfproto],
        },
        Expr::Payload {
            base: k::NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len,
            dreg: reg(slot),
        },
    ]
}

fn ip_key(ip: &IpAddr) -> Key {
    match ip {
        IpAddr::V4(a) => Key::new(&[&a.octets()]),
        IpAddr::V6(a) => Key::new(&[&a.octets()]),
    }
}

fn ip_value(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn family_max(family: Family) -> u128 {
    match family {
        Family::V4 => u128::from(u32::MAX),
        Family::V6 => u128::MAX,
    }
}

/// An address in network byte order, without a heap allocation: encoding a big plan
/// calls this for every element.
fn value_key(family: Family, v: u128) -> Key {
    match family {
        Family::V4 => Key::new(&[&(v as u32).to_be_bytes()]),
        Family::V6 => Key::new(&[&v.to_be_bytes()]),
    }
}

fn check_range(family: Family, r: &AddrRange) -> Result<(u128, u128), String> {
    if Family::of(&r.start) != family || Family::of(&r.end) != family {
        return Err(format!(
            "range {} is not of the set's family",
            show_range(r)
        ));
    }
    let (lo, hi) = (ip_value(&r.start), ip_value(&r.end));
    if lo > hi {
        return Err(format!("range {} ends before it starts", show_range(r)));
    }
    Ok((lo, hi))
}

/// Interval elements as nft sends them: when the first range does not start at the
/// first address, an end element at 0 closes the gap below it; each range is a start
/// element and an end element at the address after it, except a range that runs to
/// the last address, which is marked open instead. Ranges must be sorted and not
/// overlap (the plan's contract): the kernel rejects overlaps, and so do we.
fn interval_elems(family: Family, ranges: &[AddrRange]) -> Result<Vec<Elem>, String> {
    let mut out = Vec::with_capacity(ranges.len() * 2 + 1);
    if ranges.first().is_some_and(|r| ip_value(&r.start) != 0) {
        out.push(Elem {
            key: value_key(family, 0),
            key_end: None,
            interval_end: true,
            open: false,
            jump: None,
            origin: 0,
        });
    }
    out.extend(interval_elems_of(family, ranges)?);
    Ok(out)
}

/// The start and end elements of each range, without the gap element below the first:
/// [`interval_elems`] for a whole set, this alone for ranges added to or deleted from
/// one.
fn interval_elems_of(family: Family, ranges: &[AddrRange]) -> Result<Vec<Elem>, String> {
    let max = family_max(family);
    let mut out = Vec::with_capacity(ranges.len() * 2);
    let mut prev_end: Option<u128> = None;
    for (i, r) in ranges.iter().enumerate() {
        let (lo, hi) = check_range(family, r)?;
        if prev_end.is_some_and(|p| lo <= p) {
            return Err(format!(
                "element {i} ({}) overlaps or precedes the one before it",
                show_range(r)
            ));
        }
        prev_end = Some(hi);
        let origin = i as u32;
        let elem = |v: u128, interval_end: bool, open: bool| Elem {
            key: value_key(family, v),
            key_end: None,
            interval_end,
            open,
            jump: None,
            origin,
        };
        out.push(elem(lo, false, hi == max));
        if hi != max {
            out.push(elem(hi + 1, true, false));
        }
    }
    Ok(out)
}

/// Address · protocol · port elements: one element with a key and an inclusive key
/// end, each field padded to 32 bits, the port in network byte order.
fn concat_elems(family: Family, items: &[AddrProtoPort]) -> Result<Vec<Elem>, String> {
    let mut out = Vec::with_capacity(items.len());
    for (i, e) in items.iter().enumerate() {
        let (lo, hi) = check_range(family, &e.addr)?;
        if e.ports.0 > e.ports.1 {
            return Err(format!(
                "element {i}: port range {}-{} is empty",
                e.ports.0, e.ports.1
            ));
        }
        let proto = [e.proto, 0, 0, 0];
        let port = |p: u16| {
            let [a, b] = p.to_be_bytes();
            [a, b, 0, 0]
        };
        out.push(Elem {
            key: Key::new(&[value_key(family, lo).as_slice(), &proto, &port(e.ports.0)]),
            key_end: Some(Key::new(&[
                value_key(family, hi).as_slice(),
                &proto,
                &port(e.ports.1),
            ])),
            interval_end: false,
            open: false,
            jump: None,
            origin: i as u32,
        });
    }
    Ok(out)
}

fn show_range(r: &AddrRange) -> String {
    if r.start == r.end {
        r.start.to_string()
    } else {
        format!("{}-{}", r.start, r.end)
    }
}

/// A plan element in words, for an error that names it.
pub(crate) fn describe_element(plan: &Plan, source: ElemSource, origin: u32) -> Option<String> {
    let i = origin as usize;
    match source {
        ElemSource::Set(s) => describe_set_element(&plan.sets.get(s)?.elements, i),
        ElemSource::Map(m) => plan
            .maps
            .get(m)?
            .elements
            .get(i)
            .map(|(ip, chain)| format!("{ip} : jump {chain}")),
        ElemSource::Icmpv6Types => ICMPV6_ALWAYS.get(i).map(|t| format!("icmpv6 type {t}")),
        ElemSource::Delta { .. } => None,
    }
}

/// An element of a delta in words; see [`describe_element`].
pub(crate) fn describe_delta_element(
    delta: &Delta,
    source: ElemSource,
    origin: u32,
) -> Option<String> {
    let i = origin as usize;
    let ElemSource::Delta { index, map, delete } = source else {
        return None;
    };
    let verb = if delete { "deleting" } else { "adding" };
    let what = if map {
        let d = delta.maps.get(index)?;
        let list = if delete { &d.delete } else { &d.add };
        list.get(i)
            .map(|(ip, chain)| format!("{ip} : jump {chain}"))?
    } else {
        let d = delta.sets.get(index)?;
        if origin == u32::MAX {
            "the interval end at address 0".to_string()
        } else {
            describe_set_element(if delete { &d.delete } else { &d.add }, i)?
        }
    };
    Some(format!("{verb} {what}"))
}

fn describe_set_element(elements: &SetElements, i: usize) -> Option<String> {
    match elements {
        SetElements::Addr(v) => v.get(i).map(show_range),
        SetElements::AddrProtoPort(v) => v.get(i).map(|e| {
            let mut out = format!("{} . ", show_range(&e.addr));
            match e.proto {
                6 => out.push_str("tcp"),
                17 => out.push_str("udp"),
                132 => out.push_str("sctp"),
                p => {
                    let _ = write!(out, "{p}");
                }
            }
            let _ = if e.ports.0 == e.ports.1 {
                write!(out, " . {}", e.ports.0)
            } else {
                write!(out, " . {}-{}", e.ports.0, e.ports.1)
            };
            out
        }),
    }
}

#[cfg(test)]
mod tests;
