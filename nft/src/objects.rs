//! The nf_tables object model: tables, chains, sets, elements, rules and their
//! expressions as plain data, with the numbers of the nf_tables API they carry.
//!
//! `encode` lowers a plan into these objects (a [`Batch`]); `ffi` writes them onto the
//! wire. Plain data only: nothing here decides what a plan becomes, and nothing here
//! touches libnftnl or the kernel.

use std::fmt;

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
    pub const NFT_GOTO: i32 = -4;

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

    /// `NFT_OBJECT_LIMIT`: a named limit (`limit NAME { rate … }`).
    pub const NFT_OBJECT_LIMIT: u32 = 4;
    /// `NFT_LIMIT_PKTS`: a limit of packets (not bytes).
    pub const NFT_LIMIT_PKTS: u32 = 0;

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
    /// An address · protocol · service to verdict interval map (a cluster tier's
    /// `…_ports`): key byte order mixed, data host order, the concatenation's typeof
    /// record, data not an interval.
    pub const CONCAT_VERDICT_MAP: &[u8] = &[
        0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0,
    ];
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
    /// A reference to the named object `name` of type `kind` (`limit name "L"`).
    Objref {
        kind: u32,
        name: String,
    },
    /// `log prefix "P" group G`: the packet to NFLOG group `group`.
    Log {
        prefix: String,
        group: u16,
    },
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
    pub(crate) fn new(parts: &[&[u8]]) -> Key {
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

/// The verdict an element of a verdict map carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ElemVerdict {
    /// `accept` (a cluster tier's `Accept`).
    Accept,
    /// `jump CHAIN` (the dispatch maps).
    Jump(String),
    /// `goto CHAIN` (a cluster tier's deny chain).
    Goto(String),
}

impl ElemVerdict {
    /// The verdict code and the chain, as `NFTA_DATA_VERDICT` holds them.
    pub(crate) fn code_and_chain(&self) -> (i32, Option<&str>) {
        match self {
            ElemVerdict::Accept => (k::NF_ACCEPT_VERDICT, None),
            ElemVerdict::Jump(c) => (k::NFT_JUMP, Some(c)),
            ElemVerdict::Goto(c) => (k::NFT_GOTO, Some(c)),
        }
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
    /// For a verdict map: the element's verdict (none on an interval's end element).
    pub verdict: Option<ElemVerdict>,
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

/// A named limit of packets to create (`NFT_OBJECT_LIMIT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LimitDef {
    pub name: String,
    /// Packets per `unit` seconds.
    pub rate: u64,
    /// Seconds.
    pub unit: u64,
    /// Packets above the rate let through at once.
    pub burst: u32,
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
    /// A named limit (table object).
    NewLimit(LimitDef),
    /// Delete a named limit; no rule may refer to it any more.
    DelLimit {
        name: String,
    },
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
