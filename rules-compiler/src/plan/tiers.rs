//! A ClusterNetworkPolicy tier flattened for one endpoint, direction and family: the
//! first-matching action of every (remote address, protocol, port) as disjoint cells,
//! so the kernel answers with one verdict-map look-up instead of walking rules.
//!
//! Rules are taken in the tier's order (policies by priority then name, rules as
//! written; `Index::cluster_subjects`). A sweep over the boundaries of every rule's
//! peer addresses gives elementary address intervals, each with the rules whose peers
//! hold it; within one interval the first rule to claim a protocol and port decides it
//! (a `Pass` claims too: what it covers is left to the next tier). Protocols other than
//! TCP, UDP and SCTP can only be matched by a rule without `protocols`, so for them the
//! address alone decides (`other`). Named ports resolve on the destination, as
//! `resolve` says: the local endpoint for ingress, each peer endpoint's own address for
//! egress (so those addresses are intervals of their own). Which actions become map
//! elements is the caller's: this module only says who claims what. Decides no
//! semantics of its own: peers and ports are read as `resolve/cluster.rs` reads them.

use std::collections::BTreeSet;

use super::intervals::{family_max, from_u128, merge_spans, net_span, to_u128, Span};
use super::{Family, PORT_PROTOCOLS};
use crate::model::{Action, ClusterPeer, ClusterPort, Direction, Protocol, Tier};
use crate::resolve::{EndpointId, Index};

/// What claims the ports of one protocol in one interval: sorted, disjoint.
pub(super) type PortCells<V> = Vec<(u16, u16, V)>;

/// One elementary address interval of a flattened tier, with what decides there.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Cell<V> {
    /// The addresses, within the family's space.
    pub span: Span,
    /// The verdict for protocols without ports (ICMP and all others), if any.
    pub other: Option<V>,
    /// Per protocol of [`PORT_PROTOCOLS`], the port ranges with a verdict.
    pub ports: [PortCells<V>; 3],
}

/// How one rule's `protocols` read for one destination.
enum RulePorts<'r> {
    /// No `protocols`: every protocol and port.
    All,
    /// These entries (named ones still to resolve on the destination).
    List(&'r [ClusterPort]),
}

/// A rule of the tier, resolved for one family.
struct TierRule<'r> {
    action: Action,
    ports: RulePorts<'r>,
    /// The peer addresses, sorted and merged.
    spans: Vec<Span>,
    /// Whether a named port resolves per peer address (egress with a named entry).
    named_per_peer: bool,
}

/// The tier's cells for `local` in `dir`, family `family`: each claimed protocol and
/// port range with `keep(action)`, where that is `Some`; adjacent intervals with equal
/// cells merged, empty ones left out. Ascending by address.
/// `addresses_in(family, span)` gives the endpoint addresses inside `span`.
pub(super) fn flatten<V: Clone + PartialEq>(
    index: &Index<'_>,
    (tier, local, dir, family): (Tier, EndpointId, Direction, Family),
    addresses_in: impl Fn(Family, Span) -> Vec<u128>,
    keep: impl Fn(Action) -> Option<V>,
) -> Vec<Cell<V>> {
    let rules = tier_rules(index, tier, local, dir, family);
    if rules.is_empty() {
        return Vec::new();
    }
    // Sweep: at each boundary some rules start or stop holding the address.
    let mut events: Vec<(u128, bool, usize)> = Vec::new();
    let mut points: Vec<u128> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        for &(lo, hi) in &r.spans {
            events.push((lo, true, i));
            if hi < family_max(family) {
                events.push((hi + 1, false, i));
            }
            if r.named_per_peer {
                // Each endpoint address inside is an interval of its own.
                for x in addresses_in(family, (lo, hi)) {
                    points.push(x);
                    if x < family_max(family) {
                        points.push(x + 1);
                    }
                }
            }
        }
    }
    points.extend(events.iter().map(|e| e.0));
    points.sort_unstable();
    points.dedup();
    events.sort_unstable();

    let mut active: BTreeSet<usize> = BTreeSet::new();
    let mut next_event = 0;
    let mut out: Vec<Cell<V>> = Vec::new();
    for (k, &p) in points.iter().enumerate() {
        while next_event < events.len() && events[next_event].0 == p {
            let (_, start, i) = events[next_event];
            if start {
                active.insert(i);
            } else {
                active.remove(&i);
            }
            next_event += 1;
        }
        if active.is_empty() {
            continue;
        }
        let end = points.get(k + 1).map_or(family_max(family), |n| n - 1);
        let span = (p, end);
        let cell = claim(index, &rules, &active, local, dir, family, span, &keep);
        if cell.other.is_none() && cell.ports.iter().all(Vec::is_empty) {
            continue;
        }
        match out.last_mut() {
            Some(last)
                if last.span.1.checked_add(1) == Some(p)
                    && last.other == cell.other
                    && last.ports == cell.ports =>
            {
                last.span.1 = end;
            }
            _ => out.push(cell),
        }
    }
    out
}

/// The tier's rules that apply to `local` in `dir`, in order, resolved for `family`.
fn tier_rules<'m>(
    index: &Index<'m>,
    tier: Tier,
    local: EndpointId,
    dir: Direction,
    family: Family,
) -> Vec<TierRule<'m>> {
    let model = index.model;
    let mut out = Vec::new();
    for &id in index.cluster_subjects(local, tier) {
        for rule in model.cluster_policies[id].rules(dir) {
            let mut spans = Vec::new();
            for peer in &rule.peers {
                peer_spans(index, peer, rule.action, family, &mut spans);
            }
            merge_spans(&mut spans);
            let ports = match &rule.protocols {
                None => RulePorts::All,
                Some(list) => RulePorts::List(list),
            };
            let named_per_peer = dir == Direction::Egress
                && rule
                    .protocols
                    .iter()
                    .flatten()
                    .any(|p| matches!(p, ClusterPort::Named(_)));
            out.push(TierRule {
                action: rule.action,
                ports,
                spans,
                named_per_peer,
            });
        }
    }
    out
}

/// The addresses of `family` a peer matches, as `Index::cluster_peer_matches_addr`
/// reads it, added to `spans` (unsorted).
fn peer_spans(
    index: &Index<'_>,
    peer: &ClusterPeer,
    action: Action,
    family: Family,
    spans: &mut Vec<Span>,
) {
    let mut add_ip = |ip: &std::net::IpAddr| {
        let (f, x) = to_u128(*ip);
        if f == family {
            spans.push((x, x));
        }
    };
    match peer {
        ClusterPeer::Namespaces(_) | ClusterPeer::Pods { .. } => {
            for id in index.cluster_peer_endpoints(peer) {
                index.endpoint(id).ips.iter().for_each(&mut add_ip);
            }
        }
        ClusterPeer::Networks(nets) => {
            for net in nets {
                let (f, span) = net_span(net);
                if f == family {
                    spans.push(span);
                }
            }
        }
        ClusterPeer::Nodes(sel) => {
            for node in &index.model.inventory.nodes {
                if sel.matches(&node.labels) {
                    node.addresses.iter().for_each(&mut add_ip);
                }
            }
        }
        // Fails closed: nothing for an Accept, everything for a Deny or a Pass.
        ClusterPeer::Unknown { .. } => {
            if action != Action::Accept {
                spans.push((0, family_max(family)));
            }
        }
    }
}

/// What the active rules, first to last, claim in one interval.
#[allow(clippy::too_many_arguments)]
fn claim<V: Clone + PartialEq>(
    index: &Index<'_>,
    rules: &[TierRule<'_>],
    active: &BTreeSet<usize>,
    local: EndpointId,
    dir: Direction,
    family: Family,
    span: Span,
    keep: &impl Fn(Action) -> Option<V>,
) -> Cell<V> {
    // The destination, for named ports: the local endpoint for ingress; for egress the
    // peer endpoint at this address, when the interval is one endpoint address.
    let dest = match dir {
        Direction::Ingress => Some(index.endpoint(local)),
        Direction::Egress => (span.0 == span.1)
            .then(|| index.endpoint_at(&from_u128(family, span.0)))
            .flatten()
            .map(|id| index.endpoint(id)),
    };
    let mut other: Option<Action> = None;
    let mut ports: [PortCells<Action>; 3] = Default::default();
    for &i in active {
        let rule = &rules[i];
        match rule.ports {
            RulePorts::All => {
                other.get_or_insert(rule.action);
                for cells in &mut ports {
                    fill(cells, 0, u16::MAX, rule.action);
                }
            }
            RulePorts::List(list) => {
                for entry in list {
                    for (slot, protocol) in PORT_PROTOCOLS.iter().enumerate() {
                        let Some(protocol) =
                            Protocol::ALL.into_iter().find(|p| p.number() == *protocol)
                        else {
                            continue;
                        };
                        let range = match entry {
                            ClusterPort::Protocol { protocol: p, ports } => {
                                (*p == protocol).then(|| ports.unwrap_or((0, u16::MAX)))
                            }
                            ClusterPort::Named(name) => dest
                                .and_then(|ep| ep.named_port(name, protocol))
                                .map(|p| (p, p)),
                        };
                        if let Some((lo, hi)) = range {
                            fill(&mut ports[slot], lo, hi, rule.action);
                        }
                    }
                }
            }
        }
        if other.is_some() && ports.iter().all(covered) {
            break;
        }
    }
    Cell {
        span,
        other: other.and_then(keep),
        ports: ports.map(|cells| kept(cells, keep)),
    }
}

/// Whether the ranges cover every port 0..=65535.
fn covered<V>(cells: &PortCells<V>) -> bool {
    let mut next: u32 = 0;
    for &(lo, hi, _) in cells {
        if u32::from(lo) != next {
            return false;
        }
        next = u32::from(hi) + 1;
    }
    next == 65536
}

/// Gives the ports of `lo..=hi` that nothing claimed yet to `action`, keeping `cells`
/// sorted and disjoint.
fn fill(cells: &mut PortCells<Action>, lo: u16, hi: u16, action: Action) {
    let mut gaps = Vec::new();
    let mut from = u32::from(lo);
    for &(a, b, _) in cells.iter() {
        if u32::from(b) < from {
            continue;
        }
        if u32::from(a) > u32::from(hi) {
            break;
        }
        if u32::from(a) > from {
            gaps.push((from as u16, a - 1));
        }
        from = u32::from(b) + 1;
    }
    if from <= u32::from(hi) {
        gaps.push((from as u16, hi));
    }
    if gaps.is_empty() {
        return;
    }
    cells.extend(gaps.into_iter().map(|(a, b)| (a, b, action)));
    cells.sort_unstable_by_key(|c| c.0);
}

/// The claimed ranges whose action is kept, as `keep` says, touching equal ones merged.
fn kept<V: Clone + PartialEq>(
    cells: PortCells<Action>,
    keep: &impl Fn(Action) -> Option<V>,
) -> PortCells<V> {
    let mut out: PortCells<V> = Vec::new();
    for (lo, hi, action) in cells {
        let Some(v) = keep(action) else { continue };
        match out.last_mut() {
            Some(last) if last.2 == v && u32::from(last.1) + 1 == u32::from(lo) => last.1 = hi,
            _ => out.push((lo, hi, v)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_claims_only_what_is_free() {
        let mut c = Vec::new();
        fill(&mut c, 80, 90, Action::Deny);
        fill(&mut c, 0, 65535, Action::Accept);
        assert_eq!(
            c,
            vec![
                (0, 79, Action::Accept),
                (80, 90, Action::Deny),
                (91, 65535, Action::Accept)
            ]
        );
        assert!(covered(&c));
        fill(&mut c, 85, 100, Action::Pass);
        assert_eq!(c.len(), 3, "nothing was free");
        let keep = |a: Action| (a != Action::Pass).then_some(a == Action::Accept);
        assert_eq!(
            kept(c, &keep),
            vec![(0, 79, true), (80, 90, false), (91, 65535, true)]
        );
    }

    #[test]
    fn kept_merges_touching_ranges_of_one_verdict() {
        let c = vec![
            (0, 9, Action::Accept),
            (10, 19, Action::Pass),
            (20, 29, Action::Accept),
        ];
        // Baseline: Accept and Pass both leave the packet allowed: nothing kept.
        let deny_only = |a: Action| (a == Action::Deny).then_some(());
        assert!(kept(c.clone(), &deny_only).is_empty());
        let all = |_: Action| Some(());
        assert_eq!(kept(c, &all), vec![(0, 29, ())]);
    }
}
