//! Set and map elements as netlink carries them: interval start and end elements (and
//! the gap element below the first interval), address · protocol · port ranges, map
//! keys; and plan elements named in words for errors.
//!
//! Pure: no libnftnl, no kernel. The element bytes are `ffi`'s.

use std::fmt::Write as _;
use std::net::IpAddr;

use rules_compiler::plan::{
    AddrProtoPort, AddrProtoPorts, AddrRange, AddrRanges, Family, Plan, SetElements, TierVerdict,
    Verdicts, ICMPV6_ALWAYS,
};

use super::{Elem, ElemSource, ElemVerdict, Key, Slot};

pub(super) fn ip_key(ip: &IpAddr) -> Key {
    match ip {
        IpAddr::V4(a) => Key::new(&[&a.octets()]),
        IpAddr::V6(a) => Key::new(&[&a.octets()]),
    }
}

pub(super) fn ip_value(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

pub(super) fn family_max(family: Family) -> u128 {
    match family {
        Family::V4 => u128::from(u32::MAX),
        Family::V6 => u128::MAX,
    }
}

/// An address in network byte order, without a heap allocation: encoding a big plan
/// calls this for every element.
pub(super) fn value_key(family: Family, v: u128) -> Key {
    match family {
        Family::V4 => Key::new(&[&(v as u32).to_be_bytes()]),
        Family::V6 => Key::new(&[&v.to_be_bytes()]),
    }
}

/// The bounds of a range of the plan (of its set's family, not reversed: the plan's
/// types say so).
fn bounds(r: &AddrRange) -> (u128, u128) {
    (ip_value(&r.start), ip_value(&r.end))
}

/// Interval elements as nft sends them: when the first range does not start at the
/// first address, an end element at 0 closes the gap below it; each range is a start
/// element and an end element at the address after it, except a range that runs to
/// the last address, which is marked open instead. The ranges are sorted and disjoint
/// ([`rules_compiler::plan::AddrRanges`]).
pub(super) fn interval_elems(family: Family, ranges: &[AddrRange]) -> Vec<Elem> {
    let mut out = Vec::with_capacity(ranges.len() * 2 + 1);
    if ranges.first().is_some_and(|r| ip_value(&r.start) != 0) {
        out.push(Elem {
            key: value_key(family, 0),
            key_end: None,
            interval_end: true,
            open: false,
            verdict: None,
            origin: 0,
        });
    }
    out.extend(interval_elems_of(family, ranges));
    out
}

/// The start and end elements of each range, without the gap element below the first:
/// [`interval_elems`] for a whole set, this alone for ranges added to or deleted from
/// one.
pub(super) fn interval_elems_of(family: Family, ranges: &[AddrRange]) -> Vec<Elem> {
    let max = family_max(family);
    let mut out = Vec::with_capacity(ranges.len() * 2);
    for (i, r) in ranges.iter().enumerate() {
        let (lo, hi) = bounds(r);
        let origin = i as u32;
        let elem = |v: u128, interval_end: bool, open: bool| Elem {
            key: value_key(family, v),
            key_end: None,
            interval_end,
            open,
            verdict: None,
            origin,
        };
        out.push(elem(lo, false, hi == max));
        if hi != max {
            out.push(elem(hi + 1, true, false));
        }
    }
    out
}

/// Address · protocol · port elements: one element with a key and an inclusive key
/// end, each field padded to 32 bits, the port in network byte order.
pub(super) fn concat_elems(family: Family, items: &[AddrProtoPort]) -> Vec<Elem> {
    let mut out = Vec::with_capacity(items.len());
    for (i, e) in items.iter().enumerate() {
        let (lo, hi) = bounds(&e.addr);
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
            verdict: None,
            origin: i as u32,
        });
    }
    out
}

/// A cluster tier's verdict as an element carries it: `accept`, `goto` the deny chain or
/// `jump` to a layout's chain, under `slot`'s names.
fn tier_verdict(v: &TierVerdict, slot: Slot) -> ElemVerdict {
    match v {
        TierVerdict::Accept => ElemVerdict::Accept,
        TierVerdict::Goto(chain) => ElemVerdict::Goto(slot.name(chain)),
        TierVerdict::Jump(chain) => ElemVerdict::Jump(slot.name(chain)),
    }
}

/// Gives each start element (not an interval's end element, nor the gap element at
/// 0) the verdict of the plan element it comes from, as nft sends an interval map.
fn with_verdicts(mut elems: Vec<Elem>, verdicts: &[TierVerdict], slot: Slot) -> Vec<Elem> {
    for e in elems.iter_mut().filter(|e| !e.interval_end) {
        e.verdict = verdicts
            .get(e.origin as usize)
            .map(|v| tier_verdict(v, slot));
    }
    elems
}

/// The elements of a whole tier `…_other` map: [`interval_elems`], each start with its
/// verdict.
pub(super) fn interval_verdict_elems(
    family: Family,
    v: &Verdicts<AddrRanges>,
    slot: Slot,
    gap: bool,
) -> Vec<Elem> {
    let elems = if gap {
        interval_elems(family, v.keys())
    } else {
        interval_elems_of(family, v.keys())
    };
    with_verdicts(elems, v.verdicts(), slot)
}

/// The elements of a tier `…_ports` map: [`concat_elems`] with verdicts.
pub(super) fn concat_verdict_elems(
    family: Family,
    v: &Verdicts<AddrProtoPorts>,
    slot: Slot,
) -> Vec<Elem> {
    with_verdicts(concat_elems(family, v.keys()), v.verdicts(), slot)
}

pub(super) fn show_range(r: &AddrRange) -> String {
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
        ElemSource::Set(s) => describe_set_element(plan.sets().get(s)?.elements(), i),
        ElemSource::Map(m) => plan
            .maps()
            .get(m)?
            .elements()
            .get(i)
            .map(|(ip, chain)| format!("{ip} : jump {chain}")),
        ElemSource::Icmpv6Types => ICMPV6_ALWAYS.get(i).map(|t| format!("icmpv6 type {t}")),
        ElemSource::Delta { .. } => None,
    }
}

pub(super) fn describe_set_element(elements: &SetElements, i: usize) -> Option<String> {
    let verdict = |v: &TierVerdict| match v {
        TierVerdict::Accept => " : accept".to_string(),
        TierVerdict::Goto(c) => format!(" : goto {c}"),
        TierVerdict::Jump(c) => format!(" : jump {c}"),
    };
    match elements {
        SetElements::Addr(v) => v.get(i).map(show_range),
        SetElements::AddrProtoPort(v) => v.get(i).map(show_addr_proto_port),
        SetElements::AddrVerdict(v) => {
            Some(show_range(v.keys().get(i)?) + &verdict(v.verdicts().get(i)?))
        }
        SetElements::AddrProtoPortVerdict(v) => {
            Some(show_addr_proto_port(v.keys().get(i)?) + &verdict(v.verdicts().get(i)?))
        }
    }
}

fn show_addr_proto_port(e: &AddrProtoPort) -> String {
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
}
