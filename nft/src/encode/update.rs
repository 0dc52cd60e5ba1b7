//! Element changes of a loaded table (an [`Update`]) as one batch: every deletion, then
//! every addition, each element encoded as a full load encodes it.
//!
//! Pure, like the rest of `encode`; which update to send is the daemon's choice, and
//! its cost [`Update::cost`].

use std::net::IpAddr;

use rules_compiler::plan::{Delta, MapDelta, SetDelta, SetElements};

use super::elems::{
    concat_elems, concat_verdict_elems, describe_set_element, interval_elems_of,
    interval_verdict_elems, ip_key, value_key,
};
use super::{push_elems, Batch, Elem, ElemSource, ElemVerdict, EncodeError, Labelled, Slot};
use crate::Update;

/// Element changes of existing sets and maps in one batch: every deletion, then every
/// addition, so that an element can be replaced (a map key with a new target, an
/// interval that grew) within the transaction. Elements are encoded exactly as a full
/// load of the new plan encodes them, so that the kernel ends up holding the same.
/// `slot` says under which names the plan is loaded.
pub(crate) fn encode_update(delta: &Update, slot: Slot) -> Result<Batch, EncodeError> {
    let mut msgs = Msgs::default();
    for (i, d) in delta.sets().iter().enumerate() {
        set_changes(&mut msgs, i, d, delta.gap_below(i), slot);
    }
    for (i, d) in delta.maps().iter().enumerate() {
        map_changes(&mut msgs, i, d, slot);
    }
    let Msgs { mut dels, adds } = msgs;
    dels.extend(adds);
    Ok(Batch {
        msgs: dels,
        rules: 0,
        elements: delta.changed(),
    })
}

/// The deletions and the additions of an update, kept apart until the end.
#[derive(Default)]
struct Msgs {
    dels: Vec<Labelled>,
    adds: Vec<Labelled>,
}

impl Msgs {
    /// Appends the deletions and the additions of one set or map (`delta.sets[index]`,
    /// or `delta.maps[index]` for a `map`).
    fn push(
        &mut self,
        name: &str,
        what: &str,
        index: usize,
        map: bool,
        del: Vec<Elem>,
        add: Vec<Elem>,
    ) {
        let source = |delete| ElemSource::Delta { index, map, delete };
        push_elems(&mut self.dels, name, 0, source(true), del, what, true);
        push_elems(&mut self.adds, name, 0, source(false), add, what, false);
    }
}

/// The changes of set `delta.sets[i]`. `gap`: whether the old and the new plan have a gap
/// below its first interval ([`Update::gap_below`]).
fn set_changes(msgs: &mut Msgs, i: usize, d: &SetDelta, gap: (bool, bool), slot: Slot) {
    let name = slot.name(d.name());
    let kind = if d.delete().is_map() { "map" } else { "set" };
    let what = format!("{kind} {name}");
    let encode = |elements: &SetElements| match elements {
        SetElements::Addr(ranges) => interval_elems_of(d.family(), ranges),
        SetElements::AddrProtoPort(items) => concat_elems(d.family(), items),
        SetElements::AddrVerdict(v) => interval_verdict_elems(d.family(), v, slot, false),
        SetElements::AddrProtoPortVerdict(v) => concat_verdict_elems(d.family(), v, slot),
    };
    let mut del = encode(d.delete());
    let mut add = encode(d.add());
    // The end element at 0 that closes the gap below the first interval (see
    // `interval_elems`) goes with whichever plan has such a gap.
    if let SetElements::Addr(_) | SetElements::AddrVerdict(_) = d.delete() {
        let gap_elem = Elem {
            key: value_key(d.family(), 0),
            key_end: None,
            interval_end: true,
            open: false,
            verdict: None,
            origin: u32::MAX,
        };
        match gap {
            (true, false) => del.push(gap_elem),
            (false, true) => add.insert(0, gap_elem),
            _ => {}
        }
    }
    msgs.push(&name, &what, i, false, del, add);
}

/// The changes of map `delta.maps[i]`: keys and the chains they jump to.
fn map_changes(msgs: &mut Msgs, i: usize, d: &MapDelta, slot: Slot) {
    let name = slot.name(d.name());
    let what = format!("map {name}");
    let encode = |elements: &[(IpAddr, String)]| -> Vec<Elem> {
        elements
            .iter()
            .enumerate()
            .map(|(j, (ip, chain))| Elem {
                key: ip_key(ip),
                key_end: None,
                interval_end: false,
                open: false,
                verdict: Some(ElemVerdict::Jump(slot.name(chain))),
                origin: j as u32,
            })
            .collect()
    };
    let (del, add) = (encode(d.delete()), encode(d.add()));
    msgs.push(&name, &what, i, true, del, add);
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
        let d = delta.maps().get(index)?;
        let list = if delete { &d.delete() } else { &d.add() };
        list.get(i)
            .map(|(ip, chain)| format!("{ip} : jump {chain}"))?
    } else {
        let d = delta.sets().get(index)?;
        if origin == u32::MAX {
            "the interval end at address 0".to_string()
        } else {
            describe_set_element(if delete { d.delete() } else { d.add() }, i)?
        }
    };
    Some(format!("{verb} {what}"))
}
