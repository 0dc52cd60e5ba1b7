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
//! a replace works whether or not it exists), every chain, every named limit (a table
//! object), every set and map with its elements, then the rules in chain order, an
//! anonymous set right before its rule.
//!
//! [`encode_update`] encodes an [`Update`](crate::Update): deletions then additions of elements, each
//! element as the full load encodes it (interval start and end elements, the gap
//! element at address 0, open intervals), so the kernel ends as a full load leaves it.
//!
//! [`encode_stage`] and [`encode_swap`] replace a loaded plan in two transactions: the
//! new plan's sets, maps, limits and endpoint chains under the other [`Slot`]'s names first,
//! then the base chains' rules pointed at them and the old objects deleted. A packet
//! never meets a set that its own transaction is still filling: in one transaction the
//! kernel drops new connections while it commits (`benches/scripts/replace-drops`).
//!
//! Submodules: `stmt` (each statement's rule), `elems` (set and map elements, and
//! naming them in errors), `update` (element deltas). This module must not touch
//! libnftnl or the kernel: its output is plain data ([`crate::objects`]).

mod elems;
mod stmt;
mod update;

use std::collections::HashMap;

use rules_compiler::plan::{Family, Hook, Plan, SetElements, TABLE_COMMENT};

pub(crate) use crate::objects::*;
pub(crate) use crate::slot::Loaded;
pub use crate::slot::Slot;
pub(crate) use elems::describe_element;
use elems::{concat_elems, concat_verdict_elems, interval_elems, interval_verdict_elems, ip_key};
pub(crate) use update::{describe_delta_element, encode_update};

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
    if let Some(v) = &e.verdict {
        let chain = v.code_and_chain().1.map_or(0, |c| attr(c.len() + 1));
        n += attr(attr(attr(4) + chain));
    }
    if e.open {
        n += attr(udata::ELEM_INTERVAL_OPEN.len());
    }
    n
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
    enc.chains(Which::Endpoints);
    enc.limits();
    enc.sets_and_maps();
    enc.rules(Which::Endpoints)?;
    Ok(enc.batch(plan.element_count()))
}

/// The second: the base chains' rules replaced by `plan`'s, which use the objects
/// [`encode_stage`] made under `slot`, and `old`'s objects deleted (maps first: they
/// jump to the chains; chains before the sets and limits their rules use; a cluster
/// tier's maps after the chains whose rules use them, before the deny chains they go
/// to).
pub(crate) fn encode_swap(plan: &Plan, slot: Slot, old: &Loaded) -> Result<Batch, EncodeError> {
    if old.slot == slot {
        return Err(EncodeError::new(format!(
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
        .sets()
        .iter()
        .map(|s| s.name())
        .chain(plan.maps().iter().map(|m| m.name()))
    {
        enc.set_ids.insert(name.to_owned(), 0);
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
    // The tiers' objects, each once nothing uses it (see `Loaded::tier_maps`).
    for (maps, chains) in [
        (&old.tier_maps, &old.tier_layouts),
        (&old.tier_layout_maps, &old.tier_chains),
    ] {
        for name in maps {
            enc.push(
                Msg::DelSet { name: name.clone() },
                format!("deleting map {name}"),
            );
        }
        for name in chains {
            enc.push(
                Msg::DelChain { name: name.clone() },
                format!("deleting chain {name}"),
            );
        }
    }
    for name in &old.sets {
        enc.push(
            Msg::DelSet { name: name.clone() },
            format!("deleting set {name}"),
        );
    }
    for name in &old.limits {
        enc.push(
            Msg::DelLimit { name: name.clone() },
            format!("deleting limit {name}"),
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
        return Err(EncodeError::new(format!(
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
            Which::Base => chain.hook().is_some(),
            Which::Endpoints => chain.hook().is_none(),
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
        match chain.hook() {
            Some(_) => chain.name().to_owned(),
            None => self.slot.name(chain.name()),
        }
    }

    fn all(&mut self) -> Result<(), EncodeError> {
        let t = self.plan.table();
        self.push(
            Msg::NewTable {
                name: t.to_owned(),
                exclusive: false,
                create: None,
            },
            format!("table inet {t}"),
        );
        self.push(
            Msg::DelTable { name: t.to_owned() },
            format!("deleting the previous table inet {t}"),
        );
        self.push(
            Msg::NewTable {
                name: t.to_owned(),
                exclusive: true,
                create: Some(TableDef {
                    flags: 0,
                    comment: Some(TABLE_COMMENT.to_string()),
                }),
            },
            format!("table inet {t}"),
        );
        self.chains(Which::All);
        self.limits();
        self.sets_and_maps();
        self.rules(Which::All)?;
        Ok(())
    }

    fn chains(&mut self, which: Which) {
        let plan = self.plan;
        for chain in plan.chains().iter().filter(|c| which.has(c)) {
            let name = self.chain_name(chain);
            let hook = chain.hook().map(|h| BaseHook {
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
    }

    /// The plan's named limits, under the slot's names: each slot has its own, so a
    /// two-transaction replace makes the new ones (with the new rate) beside the old,
    /// which the old chains use until the swap deletes both. (The kernel cannot change
    /// the rate of a limit in place, and a limit in use cannot be deleted.)
    fn limits(&mut self) {
        let plan = self.plan;
        for limit in plan.limits() {
            let name = self.slot.name(limit.name());
            self.push(
                Msg::NewLimit(LimitDef {
                    name: name.clone(),
                    rate: u64::from(limit.rate()),
                    unit: 1,
                    burst: limit.burst(),
                }),
                format!("limit {name}"),
            );
        }
    }

    fn sets_and_maps(&mut self) {
        let plan = self.plan;
        for (i, set) in plan.sets().iter().enumerate() {
            self.named_set(i, set);
        }
        for (i, map) in plan.maps().iter().enumerate() {
            self.map(i, map);
        }
    }

    fn rules(&mut self, which: Which) -> Result<(), EncodeError> {
        let plan = self.plan;
        for chain in plan.chains().iter().filter(|c| which.has(c)) {
            let name = self.chain_name(chain);
            for (i, stmt) in chain.rules().iter().enumerate() {
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
            EncodeError::new(format!(
                "{what} uses @{name}, which the plan does not define"
            ))
        })
    }

    fn elems(&mut self, set: &str, set_id: u32, source: ElemSource, elems: Vec<Elem>, what: &str) {
        push_elems(&mut self.msgs, set, set_id, source, elems, what, false);
    }

    fn named_set(&mut self, index: usize, set: &rules_compiler::plan::Set) {
        let name = self.slot.name(set.name());
        let kind = if set.elements().is_map() {
            "map"
        } else {
            "set"
        };
        let what = format!("{kind} {name}");
        let id = self.new_set_id();
        let (addr_type, addr_len) = addr_type(set.family());
        let def = match set.elements() {
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
                key_type: concat_type(addr_type),
                key_len: addr_len + 4 + 4,
                verdict_map: false,
                size: None,
                concat: vec![addr_len as u8, 1, 2],
                udata: udata::CONCAT_SET,
            },
            SetElements::AddrVerdict(_) => SetDef {
                name: name.clone(),
                id,
                flags: k::NFT_SET_INTERVAL | k::NFT_SET_MAP,
                key_type: addr_type,
                key_len: addr_len,
                verdict_map: true,
                size: None,
                concat: Vec::new(),
                udata: udata::VERDICT_MAP,
            },
            SetElements::AddrProtoPortVerdict(_) => SetDef {
                name: name.clone(),
                id,
                flags: k::NFT_SET_INTERVAL | k::NFT_SET_CONCAT | k::NFT_SET_MAP,
                key_type: concat_type(addr_type),
                key_len: addr_len + 4 + 4,
                verdict_map: true,
                size: None,
                concat: vec![addr_len as u8, 1, 2],
                udata: udata::CONCAT_VERDICT_MAP,
            },
        };
        self.push(Msg::NewSet(def), what.clone());
        self.set_ids.entry(set.name().to_owned()).or_insert(id);
        let elems = match set.elements() {
            SetElements::Addr(ranges) => interval_elems(set.family(), ranges),
            SetElements::AddrProtoPort(items) => concat_elems(set.family(), items),
            SetElements::AddrVerdict(v) => interval_verdict_elems(set.family(), v, self.slot, true),
            SetElements::AddrProtoPortVerdict(v) => {
                concat_verdict_elems(set.family(), v, self.slot)
            }
        };
        self.elems(&name, id, ElemSource::Set(index), elems, &what);
    }

    fn map(&mut self, index: usize, map: &rules_compiler::plan::VerdictMap) {
        let name = self.slot.name(map.name());
        let what = format!("map {name}");
        let id = self.new_set_id();
        let (key_type, key_len) = addr_type(map.family());
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
        self.set_ids.entry(map.name().to_owned()).or_insert(id);
        let mut elems = Vec::with_capacity(map.elements().len());
        for (i, (ip, chain)) in map.elements().iter().enumerate() {
            elems.push(Elem {
                key: ip_key(ip),
                key_end: None,
                interval_end: false,
                open: false,
                verdict: Some(ElemVerdict::Jump(self.slot.name(chain))),
                origin: i as u32,
            });
        }
        self.elems(&name, id, ElemSource::Map(index), elems, &what);
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
}

/// The key type of `address . inet_proto . inet_service`.
fn concat_type(addr_type: u32) -> u32 {
    ((addr_type << k::TYPE_BITS | k::TYPE_INET_PROTOCOL) << k::TYPE_BITS) | k::TYPE_INET_SERVICE
}

fn addr_type(family: Family) -> (u32, u32) {
    match family {
        Family::V4 => (k::TYPE_IPADDR, 4),
        Family::V6 => (k::TYPE_IP6ADDR, 16),
    }
}

#[cfg(test)]
mod tests;
