//! What a rule, or one peer of a rule, allows for one endpoint, as resolved addresses
//! and ports, and whether one such set contains another: the arithmetic behind
//! `duplicate-rule`.
//!
//! A unit's set is a list of (family, first address, last address, ports) elements,
//! built with `resolve`'s own answers (which endpoints a peer selects, what a named
//! port stands for on a destination) and the plan's interval helpers (an ipBlock's
//! ranges, merged port ranges). Each set is then normalised into sorted, disjoint
//! ranges with the union of their ports, so a set is contained however its rules cut
//! it into elements, and containment is a binary search and a walk.

use std::collections::{BTreeMap, HashMap};

use super::{has_named_port, Lint};
use crate::model::{Direction, Endpoint, Peer, Peers, Ports, Rule};
use crate::plan::intervals::{block_spans, family_max, normalise_ports, to_u128, PortSet};
use crate::plan::Family;
use crate::resolve::{port_range_on, EndpointId, PolicyId};

/// A rule (`peer: None`) or one entry of its `from`/`to` (`peer: Some(k)`), ordered as
/// the model is: of two units that allow the same, the later one is the duplicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Unit {
    /// The policy.
    pub policy: PolicyId,
    /// The rule's index in the direction's list.
    pub rule: usize,
    /// The entry's index in `from`/`to`, for a peer unit.
    pub peer: Option<usize>,
}

/// The ports of an element: every protocol and port (ICMP included), or these.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PortSpec {
    All,
    Set(PortSet),
}

/// Addresses `first..=last` of one family, on these ports.
type Elem = (Family, u128, u128, PortSpec);

/// The units of these policies in one direction: every rule, and every entry of a
/// `from`/`to` list of two or more (one entry is the rule itself).
pub(super) fn units(lint: &Lint<'_, '_>, dir: Direction, policies: &[PolicyId]) -> Vec<Unit> {
    let mut out = Vec::new();
    for &policy in policies {
        for (rule, r) in lint
            .policy(policy)
            .rules(dir)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            out.push(Unit {
                policy,
                rule,
                peer: None,
            });
            if let Peers::List(list) = &r.peers {
                if list.len() > 1 {
                    out.extend((0..list.len()).map(|k| Unit {
                        policy,
                        rule,
                        peer: Some(k),
                    }));
                }
            }
        }
    }
    out
}

/// The units of `isolating` that endpoint `local` does not need, each with the unit
/// that allows all it allows. A unit that allows nothing is never in it (another
/// check says why it allows nothing).
///
/// Units are dropped one at a time, each only when one unit still there allows all it
/// allows, so what is left always allows exactly what all allowed (a unit removed is
/// inside one that stays, at that moment). Rules go first, the later of two first (so
/// of two equal rules the later is dropped); then entries of the rules left, never a
/// rule's last entry (an empty `from`/`to` would allow every peer). Any part of such a
/// set can be deleted as safely, which is what lets `duplicate-rule` report only the
/// units dropped for every group of endpoints.
pub(super) fn redundant_units(
    lint: &Lint<'_, '_>,
    dir: Direction,
    local: EndpointId,
    isolating: &[PolicyId],
    selected: &mut Selected,
) -> BTreeMap<Unit, Unit> {
    let all = units(lint, dir, isolating);
    if all.len() < 2 {
        // One rule of one entry: nothing to compare it with.
        return BTreeMap::new();
    }
    let whole = |u: &Unit| Unit { peer: None, ..*u };
    let sets: BTreeMap<Unit, Vec<Elem>> = all
        .iter()
        .map(|&u| (u, normalise(allowed(lint, dir, local, u, selected))))
        .collect();
    // What each rule allows now, as its entries are dropped.
    let mut current: BTreeMap<Unit, Vec<Elem>> = sets
        .iter()
        .filter(|(u, _)| u.peer.is_none())
        .map(|(u, set)| (*u, set.clone()))
        .collect();
    let rules: Vec<Unit> = current.keys().copied().collect();
    let mut dropped: BTreeMap<Unit, Unit> = BTreeMap::new();
    for u in rules.iter().rev() {
        if current[u].is_empty() {
            continue;
        }
        let cover = rules
            .iter()
            .find(|v| *v != u && !dropped.contains_key(v) && covers(&current[v], &current[u]));
        if let Some(v) = cover {
            dropped.insert(*u, *v);
        }
    }
    for u in all.iter().rev().filter(|u| u.peer.is_some()) {
        let rule = whole(u);
        let set = &sets[u];
        if dropped.contains_key(&rule) || set.is_empty() {
            continue;
        }
        let siblings: Vec<Unit> = all
            .iter()
            .filter(|v| v.peer.is_some() && whole(v) == rule && *v != u && !dropped.contains_key(v))
            .copied()
            .collect();
        if siblings.is_empty() {
            continue;
        }
        let by_rule = rules
            .iter()
            .find(|v| **v != rule && !dropped.contains_key(v) && covers(&current[v], set));
        let by_sibling = || siblings.iter().find(|v| covers(&sets[v], set));
        let Some(&cover) = by_rule.or_else(by_sibling) else {
            continue;
        };
        dropped.insert(*u, cover);
        let left: Vec<Elem> = siblings.iter().flat_map(|v| sets[v].clone()).collect();
        current.insert(rule, normalise(left));
    }
    dropped
}

/// The endpoints each selector peer of one direction selects, resolved once for all
/// the groups of endpoints (resolving them is most of the work; the sets built from
/// them are not kept, as they would take far more memory).
#[derive(Default)]
pub(super) struct Selected {
    known: HashMap<(PolicyId, usize, usize), Vec<EndpointId>>,
}

impl Selected {
    /// The endpoints peer `k` of rule `rule` of `policy` selects.
    fn get(
        &mut self,
        lint: &Lint<'_, '_>,
        at: (PolicyId, usize, usize),
        peer: &Peer,
    ) -> &[EndpointId] {
        self.known
            .entry(at)
            .or_insert_with(|| lint.index.peer_endpoints(peer))
    }
}

/// What a unit allows for endpoint `local`: for ingress the peers are sources and the
/// ports `local`'s; for egress the peers are destinations and own the named ports.
fn allowed(
    lint: &Lint<'_, '_>,
    dir: Direction,
    local: EndpointId,
    unit: Unit,
    selected: &mut Selected,
) -> Vec<Elem> {
    let index = lint.index;
    let rule: &Rule = &lint.policy(unit.policy).rules(dir).unwrap_or_default()[unit.rule];
    let endpoints = &index.model.inventory.endpoints;
    let fixed = (dir == Direction::Ingress).then(|| index.endpoint(local));
    // Addresses of no endpoint never match a named port, so endpoints' addresses are
    // added one by one only where a name could resolve on them.
    let by_name = dir == Direction::Egress && has_named_port(rule);
    let mut out = Vec::new();
    let peers: Vec<(usize, Option<&Peer>)> = match (&rule.peers, unit.peer) {
        (Peers::All, _) => vec![(0, None)],
        (Peers::List(list), None) => list.iter().map(Some).enumerate().collect(),
        (Peers::List(list), Some(k)) => vec![(k, Some(&list[k]))],
    };
    for (k, peer) in peers {
        match peer {
            None => {
                for family in [Family::V4, Family::V6] {
                    push(&mut out, rule, family, (0, family_max(family)), fixed);
                }
                if by_name {
                    for e in endpoints {
                        push_endpoint(&mut out, rule, e, |_| true, None);
                    }
                }
            }
            Some(Peer::IpBlock(block)) => {
                let (family, spans) = block_spans(block);
                for span in spans {
                    push(&mut out, rule, family, span, fixed);
                }
                if by_name {
                    for e in lint.in_block(block) {
                        let e = index.endpoint(e);
                        push_endpoint(&mut out, rule, e, |ip| block.contains(ip), None);
                    }
                }
            }
            Some(peer @ Peer::Endpoints { .. }) => {
                for &e in selected.get(lint, (unit.policy, unit.rule, k), peer) {
                    push_endpoint(&mut out, rule, index.endpoint(e), |_| true, fixed);
                }
            }
        }
    }
    out
}

/// Adds a range on the ports the rule gives destination `dest`, if any.
fn push(
    out: &mut Vec<Elem>,
    rule: &Rule,
    family: Family,
    (lo, hi): (u128, u128),
    dest: Option<&Endpoint>,
) {
    if let Some(ports) = ports_on(rule, dest) {
        out.push((family, lo, hi, ports));
    }
}

/// Adds the addresses of `e` that `keep` keeps; named ports resolve on `dest`, or on
/// `e` itself when `dest` is `None` (egress).
fn push_endpoint(
    out: &mut Vec<Elem>,
    rule: &Rule,
    e: &Endpoint,
    keep: impl Fn(&std::net::IpAddr) -> bool,
    dest: Option<&Endpoint>,
) {
    for ip in e.ips.iter().filter(|ip| keep(ip)) {
        let (family, x) = to_u128(*ip);
        push(out, rule, family, (x, x), dest.or(Some(e)));
    }
}

/// The ports a rule allows towards `dest`; `None` when none (a name that does not
/// resolve there).
fn ports_on(rule: &Rule, dest: Option<&Endpoint>) -> Option<PortSpec> {
    let Ports::List(list) = &rule.ports else {
        return Some(PortSpec::All);
    };
    let mut set: PortSet = list
        .iter()
        .filter_map(|pr| port_range_on(pr, dest).map(|(lo, hi)| (pr.protocol.number(), lo, hi)))
        .collect();
    normalise_ports(&mut set);
    (!set.is_empty()).then_some(PortSpec::Set(set))
}

/// A set as sorted, disjoint address ranges, each with the union of the ports the
/// elements over it allow (one sweep per family), so that containment is a walk.
fn normalise(mut elems: Vec<Elem>) -> Vec<Elem> {
    elems.sort_unstable_by_key(|e| (e.0, e.1));
    let mut out: Vec<Elem> = Vec::with_capacity(elems.len());
    for family in [Family::V4, Family::V6] {
        let mine: Vec<&Elem> = elems.iter().filter(|e| e.0 == family).collect();
        let max = family_max(family);
        // The sets of elements over an address change only at these points.
        let mut cuts: Vec<u128> = mine
            .iter()
            .flat_map(|(_, lo, hi, _)| [Some(*lo), (*hi < max).then(|| hi + 1)])
            .flatten()
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut active: Vec<&Elem> = Vec::new();
        let mut next = 0;
        for (i, &at) in cuts.iter().enumerate() {
            active.retain(|(_, _, hi, _)| *hi >= at);
            while next < mine.len() && mine[next].1 <= at {
                active.push(mine[next]);
                next += 1;
            }
            if active.is_empty() {
                continue;
            }
            // Past the last cut every active element runs to the family's end.
            let end = cuts.get(i + 1).map_or(max, |n| n - 1);
            let ports = union(active.iter().map(|(_, _, _, p)| p));
            match out.last_mut() {
                Some(last)
                    if last.0 == family && last.2.checked_add(1) == Some(at) && last.3 == ports =>
                {
                    last.2 = end;
                }
                _ => out.push((family, at, end, ports)),
            }
        }
    }
    out
}

/// The ports any of these allow.
fn union<'p>(specs: impl Iterator<Item = &'p PortSpec>) -> PortSpec {
    let mut all: PortSet = Vec::new();
    for spec in specs {
        match spec {
            PortSpec::All => return PortSpec::All,
            PortSpec::Set(set) => all.extend_from_slice(set),
        }
    }
    normalise_ports(&mut all);
    PortSpec::Set(all)
}

/// Whether normalised `b` allows everything normalised `a` allows.
fn covers(b: &[Elem], a: &[Elem]) -> bool {
    a.iter().all(|elem| covers_one(b, elem))
}

/// Whether normalised `b` allows all of one element: from the range holding its first
/// address on, contiguous ranges up to its last, each with the ports.
fn covers_one(b: &[Elem], (family, lo, hi, ports): &Elem) -> bool {
    let start = b.partition_point(|(f, l, _, _)| (*f, *l) <= (*family, *lo));
    let Some(first) = start.checked_sub(1) else {
        return false;
    };
    let mut at = *lo;
    for (f, l, h, have) in &b[first..] {
        if f != family || *l > at || *h < at || !contains_ports(have, ports) {
            return false;
        }
        if *h >= *hi {
            return true;
        }
        at = h + 1;
    }
    false
}

/// Whether `have` holds every port of `need` (both normalised).
fn contains_ports(have: &PortSpec, need: &PortSpec) -> bool {
    match (have, need) {
        (PortSpec::All, _) => true,
        (PortSpec::Set(_), PortSpec::All) => false,
        (PortSpec::Set(have), PortSpec::Set(need)) => need.iter().all(|&(proto, lo, hi)| {
            have.iter()
                .any(|&(p, l, h)| p == proto && l <= lo && hi <= h)
        }),
    }
}
