//! What a [`Plan`] does with the first packet of a new connection, computed from the plan
//! itself: the base chain of the hook, its dispatch maps, the endpoint chain and its
//! sets, rule by rule, as the kernel walks the table the plan is loaded as.
//!
//! The daemon uses it to find established connections that a newly applied plan would
//! not allow any more (revocation), so it must agree with the kernel exactly; the
//! property test `plan_matches_semantics` checks it against an independent, naive
//! evaluator of the same plan. Look-ups are binary searches: maps, sets and endpoint
//! chains are sorted, and set elements never overlap (see [`SetElements`]), so judging a
//! packet costs a few logarithmic look-ups whatever the size of the plan. Pure: it
//! reads the plan and nothing else.

use std::net::IpAddr;

use super::{AddrField, AddrProtoPort, AddrRange, Chain, Hook, Plan, SetElements, Stmt};
use super::{Family, TierVerdict, ICMPV6_ALWAYS, PORT_PROTOCOLS};

/// IP protocol number of ICMPv6.
const IPPROTO_ICMPV6: u8 = 58;
/// Endpoint chains only jump from base chains; deeper nesting means a broken plan.
const MAX_DEPTH: usize = 8;

/// The first packet of a connection as a hook of the table sees it: not on the loopback
/// interface (the table accepts everything there), and `new` to conntrack (the table
/// accepts `established` and `related` before any policy, and drops `invalid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Source address.
    pub saddr: IpAddr,
    /// Destination address.
    pub daddr: IpAddr,
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP, 58 ICMPv6, …).
    pub proto: u8,
    /// Destination port; ignored for protocols without ports (no set of the plan holds
    /// them).
    pub dport: u16,
    /// The ICMPv6 type, for ICMPv6 packets.
    pub icmpv6_type: Option<u8>,
}

/// Accepted or denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Accepted by a rule, or by the base chain's `accept` policy.
    Accept,
    /// Dropped or rejected by an endpoint chain's deny rule.
    Deny,
}

/// What the table does with a packet, and which endpoint chain decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Verdict<'p> {
    /// Accepted or denied.
    pub outcome: Outcome,
    /// The endpoint chain whose rule decided (see [`Plan::locals`] for whose it is);
    /// `None` when the base chain did: no endpoint chain for the packet's local
    /// address (not isolated in that direction, or not a local endpoint), or a message
    /// every host needs (neighbour discovery).
    pub chain: Option<&'p str>,
}

impl Verdict<'_> {
    /// Whether the packet passes.
    pub fn is_accept(&self) -> bool {
        self.outcome == Outcome::Accept
    }
}

impl Plan {
    /// What the table does with the first packet of a new connection at `hook` (see
    /// [`Packet`] for what is assumed of it).
    ///
    /// A plan without a base chain for the hook accepts everything there, as a kernel
    /// without such a chain does.
    pub fn verdict(&self, hook: Hook, packet: &Packet) -> Verdict<'_> {
        let Some(base) = self.chains.iter().find(|c| c.hook == Some(hook)) else {
            return ACCEPT;
        };
        self.run(base, packet, 0).unwrap_or(ACCEPT)
    }

    /// The chain's verdict, or `None` when it ends without one (back to the caller).
    fn run<'p>(&'p self, chain: &'p Chain, packet: &Packet, depth: usize) -> Option<Verdict<'p>> {
        let this = chain.hook.is_none().then_some(chain.name.as_str());
        let decided = |outcome| {
            Some(Verdict {
                outcome,
                chain: this,
            })
        };
        for rule in &chain.rules {
            match rule {
                // A new packet off the loopback interface matches none of these.
                Stmt::CtEstablishedAccept | Stmt::CtInvalidDrop | Stmt::LoopbackAccept(_) => {}
                Stmt::NeighbourDiscoveryAccept => {
                    if packet.proto == IPPROTO_ICMPV6
                        && packet
                            .icmpv6_type
                            .is_some_and(|t| ICMPV6_ALWAYS.contains(&t))
                    {
                        return decided(Outcome::Accept);
                    }
                }
                Stmt::Dispatch { family, field, map } => {
                    let ip = field_of(packet, *field);
                    if Family::of(&ip) != *family || depth >= MAX_DEPTH {
                        continue;
                    }
                    let Some(map) = self.map(map) else {
                        continue;
                    };
                    let Ok(i) = map.elements.binary_search_by(|(k, _)| k.cmp(&ip)) else {
                        continue;
                    };
                    let Some(target) = self.endpoint_chain(&map.elements[i].1) else {
                        continue;
                    };
                    if let Some(v) = self.run(target, packet, depth + 1) {
                        return Some(v);
                    }
                }
                Stmt::AcceptAddr { family, field, set } => {
                    let ip = field_of(packet, *field);
                    if Family::of(&ip) != *family {
                        continue;
                    }
                    if let Some(SetElements::Addr(elements)) = self.set(set).map(|s| &s.elements) {
                        if addr_in(elements, &ip) {
                            return decided(Outcome::Accept);
                        }
                    }
                }
                Stmt::AcceptAddrProtoPort { family, field, set } => {
                    let ip = field_of(packet, *field);
                    if Family::of(&ip) != *family {
                        continue;
                    }
                    if let Some(SetElements::AddrProtoPort(elements)) =
                        self.set(set).map(|s| &s.elements)
                    {
                        if addr_proto_port_in(elements, &ip, packet.proto, packet.dport) {
                            return decided(Outcome::Accept);
                        }
                    }
                }
                Stmt::TierPorts { family, field, map } => {
                    let ip = field_of(packet, *field);
                    if Family::of(&ip) != *family {
                        continue;
                    }
                    let Some(SetElements::AddrProtoPortVerdict(v)) =
                        self.set(map).map(|s| &s.elements)
                    else {
                        continue;
                    };
                    if let Some(i) = find_addr_proto_port(v.keys(), &ip, packet.proto, packet.dport)
                    {
                        match self.tier(&v.verdicts()[i], this, packet, depth) {
                            Flow::Return(v) => return v,
                            Flow::Next => {}
                        }
                    }
                }
                Stmt::TierClass { family, field, map } | Stmt::TierOther { family, field, map } => {
                    let ip = field_of(packet, *field);
                    // `TierOther` is for protocols without ports only.
                    let ports_only = matches!(rule, Stmt::TierOther { .. })
                        && PORT_PROTOCOLS.contains(&packet.proto);
                    if Family::of(&ip) != *family || ports_only {
                        continue;
                    }
                    let Some(SetElements::AddrVerdict(v)) = self.set(map).map(|s| &s.elements)
                    else {
                        continue;
                    };
                    if let Some(i) = find_addr(v.keys(), &ip) {
                        match self.tier(&v.verdicts()[i], this, packet, depth) {
                            Flow::Return(v) => return v,
                            Flow::Next => {}
                        }
                    }
                }
                Stmt::Log { .. } => {}
                Stmt::Audit { .. } => return decided(Outcome::Accept),
                Stmt::Deny { .. } => return decided(Outcome::Deny),
            }
        }
        None
    }

    /// A tier map's verdict: `accept` here; `goto` a chain, whose end (no verdict)
    /// would return to the base chain, not to this one; or `jump` to a chain whose end
    /// comes back here, to the next rule.
    fn tier<'p>(
        &'p self,
        verdict: &'p TierVerdict,
        this: Option<&'p str>,
        packet: &Packet,
        depth: usize,
    ) -> Flow<'p> {
        let target = match verdict {
            TierVerdict::Accept => {
                return Flow::Return(Some(Verdict {
                    outcome: Outcome::Accept,
                    chain: this,
                }))
            }
            TierVerdict::Goto(t) | TierVerdict::Jump(t) => t,
        };
        let Some(chain) = self.endpoint_chain(target).filter(|_| depth < MAX_DEPTH) else {
            return Flow::Return(None);
        };
        match (verdict, self.run(chain, packet, depth + 1)) {
            (_, Some(v)) => Flow::Return(Some(v)),
            (TierVerdict::Jump(_), None) => Flow::Next,
            (_, None) => Flow::Return(None),
        }
    }
}

/// What a rule that went to another chain leaves its own chain to do.
enum Flow<'p> {
    /// End the chain with this (`None`: back to the base chain).
    Return(Option<Verdict<'p>>),
    /// Go on with the next rule.
    Next,
}

/// What an endpoint chain accepts of new connections with one remote address: the
/// peer's address for an ingress chain, the destination's for an egress chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepts<'p> {
    /// Every protocol and port: an address set of the chain holds the address, or the
    /// chain ends in an audit accept (or without a verdict: the base chain accepts).
    Everything,
    /// Only the elements of these runs of the chain's address · protocol · port sets
    /// (each run: the elements of one address range, protocol and ports sorted; no run:
    /// nothing, the chain's deny). Borrowed from the plan, so that two answers compare
    /// without building anything.
    Ports(Vec<&'p [AddrProtoPort]>),
    /// A chain with cluster tiers, walked rule by rule: exactly these (per protocol of
    /// [`PORT_PROTOCOLS`] sorted, disjoint, not touching port ranges), and the protocols
    /// without ports when `other`. Never everything ([`Accepts::Everything`] then).
    Exact {
        /// Protocols other than TCP, UDP and SCTP are accepted.
        other: bool,
        /// `(protocol number, first port, last port)`, normalised.
        ports: Vec<(u8, u16, u16)>,
    },
}

impl Accepts<'_> {
    /// The accepted `(protocol number, first port, last port)`; `None` for everything.
    /// With [`Accepts::Exact`], also see [`Accepts::other`].
    pub fn ports(&self) -> Option<Box<dyn Iterator<Item = (u8, u16, u16)> + '_>> {
        match self {
            Accepts::Everything => None,
            Accepts::Ports(runs) => {
                Some(Box::new(runs.iter().flat_map(|r| {
                    r.iter().map(|e| (e.proto, e.ports.0, e.ports.1))
                })))
            }
            Accepts::Exact { ports, .. } => Some(Box::new(ports.iter().copied())),
        }
    }

    /// Whether protocols without ports (ICMP, …) are accepted.
    pub fn other(&self) -> bool {
        match self {
            Accepts::Everything => true,
            Accepts::Ports(_) => false,
            Accepts::Exact { other, .. } => *other,
        }
    }
}

/// An endpoint chain resolved once for many look-ups ([`Plan::chain_accepts`]): its
/// sets per family and how it ends. Rule order matters only at the end: an address
/// set that holds the address accepts everything wherever it stands, and the port sets'
/// elements add up, so the walk of [`Plan::verdict`] for every packet at once is this.
#[derive(Clone, Debug)]
pub struct ChainAccepts<'p> {
    /// Per family (v4, v6).
    families: [FamilySets<'p>; 2],
    /// The chain ends in an audit accept, or in no verdict (the base chain accepts).
    accepts_at_end: bool,
    /// A chain with cluster tiers: its rules, walked in order for each remote address
    /// (order matters there: a tier's map claims what later rules would accept).
    tiered: Option<(&'p Plan, &'p Chain)>,
}

/// One family's sets of a chain: the address sets, the address · protocol · port sets.
type FamilySets<'p> = (Vec<&'p [AddrRange]>, Vec<&'p [AddrProtoPort]>);

impl<'p> ChainAccepts<'p> {
    /// What the chain accepts with `remote` as the other end.
    pub fn get(&self, remote: &IpAddr) -> Accepts<'p> {
        if let Some((plan, chain)) = self.tiered {
            return plan.walk_tiered(chain, remote);
        }
        if self.accepts_at_end {
            return Accepts::Everything;
        }
        let (all, ports) = &self.families[family_slot(Family::of(remote))];
        if all.iter().any(|set| addr_in(set, remote)) {
            return Accepts::Everything;
        }
        Accepts::Ports(
            ports
                .iter()
                .map(|set| run_of(set, remote))
                .filter(|run| !run.is_empty())
                .collect(),
        )
    }
}

fn family_slot(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl Plan {
    /// The endpoint chain `chain` resolved for [`ChainAccepts::get`]: what it accepts
    /// for every protocol and port at once, from each remote address (the connectivity
    /// diff's allowed sets). `None` for a chain the plan does not have.
    pub fn chain_accepts(&self, chain: &str) -> Option<ChainAccepts<'_>> {
        let chain = self.endpoint_chain(chain)?;
        let mut out = ChainAccepts {
            families: Default::default(),
            accepts_at_end: true,
            tiered: None,
        };
        let tiered = |r: &Stmt| {
            matches!(
                r,
                Stmt::TierPorts { .. } | Stmt::TierOther { .. } | Stmt::TierClass { .. }
            )
        };
        if chain.rules.iter().any(tiered) {
            out.tiered = Some((self, chain));
            return Some(out);
        }
        for rule in &chain.rules {
            match rule {
                Stmt::AcceptAddr { family, set, .. } => {
                    if let Some(SetElements::Addr(elements)) = self.set(set).map(|s| &s.elements) {
                        out.families[family_slot(*family)].0.push(elements);
                    }
                }
                Stmt::AcceptAddrProtoPort { family, set, .. } => {
                    if let Some(SetElements::AddrProtoPort(elements)) =
                        self.set(set).map(|s| &s.elements)
                    {
                        out.families[family_slot(*family)].1.push(elements);
                    }
                }
                Stmt::Audit { .. } => break,
                Stmt::Deny { .. } => {
                    out.accepts_at_end = false;
                    break;
                }
                _ => {}
            }
        }
        Some(out)
    }
}

/// Port ranges of one protocol, sorted and disjoint.
type Ranges = Vec<(u16, u16)>;

/// `ranges` ∩ `lo..=hi`.
fn within(ranges: &Ranges, lo: u16, hi: u16) -> Ranges {
    ranges
        .iter()
        .filter(|&&(a, b)| a <= hi && lo <= b)
        .map(|&(a, b)| (a.max(lo), b.min(hi)))
        .collect()
}

/// `ranges` less `lo..=hi`.
fn without(ranges: &Ranges, lo: u16, hi: u16) -> Ranges {
    let mut out = Vec::new();
    for &(a, b) in ranges {
        if b < lo || hi < a {
            out.push((a, b));
            continue;
        }
        if a < lo {
            out.push((a, lo - 1));
        }
        if hi < b {
            out.push((hi + 1, b));
        }
    }
    out
}

impl Plan {
    /// [`ChainAccepts::get`] for a chain with cluster tiers: its rules in order, each
    /// claiming what it matches of what no rule before claimed, into the chains its
    /// verdict maps go to; what the endpoint chain leaves undecided at its end goes
    /// back to the base chain, which accepts.
    fn walk_tiered<'p>(&'p self, chain: &'p Chain, remote: &IpAddr) -> Accepts<'p> {
        let (mut accepted, rest) = self.walk(chain, remote, Region::everything(), 0);
        accepted.add(rest);
        let Region { ports, other } = accepted;
        let mut list = Vec::new();
        for (i, mut acc) in ports.into_iter().enumerate() {
            acc.sort_unstable();
            let mut merged: Ranges = Vec::new();
            for (a, b) in acc {
                match merged.last_mut() {
                    Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            list.extend(merged.into_iter().map(|(a, b)| (PORT_PROTOCOLS[i], a, b)));
        }
        let everything =
            other && list.len() == 3 && list.iter().all(|&(_, a, b)| a == 0 && b == u16::MAX);
        if everything {
            Accepts::Everything
        } else {
            Accepts::Exact { other, ports: list }
        }
    }

    /// Walks `chain` for the packets of `open` (from or to `remote`): what its rules
    /// accept, and what reaches its end undecided (the caller's to go on with).
    fn walk(
        &self,
        chain: &Chain,
        remote: &IpAddr,
        mut open: Region,
        depth: usize,
    ) -> (Region, Region) {
        let family = Family::of(remote);
        let slot = |proto: u8| PORT_PROTOCOLS.iter().position(|&p| p == proto);
        let mut accepted = Region::default();
        if depth >= MAX_DEPTH {
            return (accepted, Region::default());
        }
        for rule in &chain.rules {
            match rule {
                Stmt::AcceptAddr { family: f, set, .. } if *f == family => {
                    if let Some(SetElements::Addr(e)) = self.set(set).map(|s| &s.elements) {
                        if addr_in(e, remote) {
                            accepted.add(open);
                            return (accepted, Region::default());
                        }
                    }
                }
                Stmt::AcceptAddrProtoPort { family: f, set, .. } if *f == family => {
                    if let Some(SetElements::AddrProtoPort(e)) = self.set(set).map(|s| &s.elements)
                    {
                        for el in run_of(e, remote) {
                            if let Some(i) = slot(el.proto) {
                                accepted.add(open.take_ports(i, el.ports));
                            }
                        }
                    }
                }
                Stmt::TierPorts { family: f, map, .. } if *f == family => {
                    if let Some(SetElements::AddrProtoPortVerdict(v)) =
                        self.set(map).map(|s| &s.elements)
                    {
                        let keys = v.keys();
                        for k in run_range(keys, remote) {
                            let Some(i) = slot(keys[k].proto) else {
                                continue;
                            };
                            let claimed = open.take_ports(i, keys[k].ports);
                            self.go(
                                &v.verdicts()[k],
                                remote,
                                claimed,
                                &mut accepted,
                                &mut open,
                                depth,
                            );
                        }
                    }
                }
                Stmt::TierOther { family: f, map, .. } | Stmt::TierClass { family: f, map, .. }
                    if *f == family =>
                {
                    if let Some(SetElements::AddrVerdict(v)) = self.set(map).map(|s| &s.elements) {
                        if let Some(k) = find_addr(v.keys(), remote) {
                            // `TierOther` claims the protocols without ports, `TierClass`
                            // every packet still open.
                            let claimed = match rule {
                                Stmt::TierOther { .. } => open.take_other(),
                                _ => std::mem::take(&mut open),
                            };
                            self.go(
                                &v.verdicts()[k],
                                remote,
                                claimed,
                                &mut accepted,
                                &mut open,
                                depth,
                            );
                        }
                    }
                }
                Stmt::Audit { .. } => {
                    accepted.add(open);
                    return (accepted, Region::default());
                }
                Stmt::Deny { .. } => return (accepted, Region::default()),
                _ => {}
            }
        }
        (accepted, open)
    }

    /// What a tier map's verdict does with the packets it `claimed`: `accept` them;
    /// `goto` a chain (what it leaves undecided goes back to the base chain: accepted);
    /// `jump` to a chain (what it leaves undecided comes back to `open`).
    fn go(
        &self,
        verdict: &TierVerdict,
        remote: &IpAddr,
        claimed: Region,
        accepted: &mut Region,
        open: &mut Region,
        depth: usize,
    ) {
        if claimed.is_empty() {
            return;
        }
        let target = match verdict {
            TierVerdict::Accept => return accepted.add(claimed),
            TierVerdict::Goto(t) | TierVerdict::Jump(t) => t,
        };
        let Some(chain) = self.endpoint_chain(target) else {
            // The kernel would not have taken the plan; `Plan::new` refuses it.
            return;
        };
        let (acc, rest) = self.walk(chain, remote, claimed, depth + 1);
        accepted.add(acc);
        match verdict {
            TierVerdict::Jump(_) => open.add(rest),
            _ => accepted.add(rest),
        }
    }
}

/// Packets of one remote address: per protocol of [`PORT_PROTOCOLS`] port ranges
/// (disjoint), and whether every other protocol is in.
#[derive(Clone, Debug, Default)]
struct Region {
    ports: [Ranges; 3],
    other: bool,
}

impl Region {
    fn everything() -> Region {
        Region {
            ports: std::array::from_fn(|_| vec![(0, u16::MAX)]),
            other: true,
        }
    }

    fn is_empty(&self) -> bool {
        !self.other && self.ports.iter().all(Vec::is_empty)
    }

    /// Adds `r` (disjoint from `self` where it is used).
    fn add(&mut self, r: Region) {
        for (a, b) in self.ports.iter_mut().zip(r.ports) {
            a.extend(b);
        }
        self.other |= r.other;
    }

    /// Takes out and returns the ports `lo..=hi` of protocol slot `i`.
    fn take_ports(&mut self, i: usize, (lo, hi): (u16, u16)) -> Region {
        let mut out = Region::default();
        out.ports[i] = within(&self.ports[i], lo, hi);
        self.ports[i] = without(&self.ports[i], lo, hi);
        out
    }

    /// Takes out and returns the other protocols.
    fn take_other(&mut self) -> Region {
        Region {
            ports: Default::default(),
            other: std::mem::take(&mut self.other),
        }
    }
}

const ACCEPT: Verdict<'static> = Verdict {
    outcome: Outcome::Accept,
    chain: None,
};

fn field_of(packet: &Packet, field: AddrField) -> IpAddr {
    match field {
        AddrField::Saddr => packet.saddr,
        AddrField::Daddr => packet.daddr,
    }
}

/// Whether sorted, disjoint ranges hold `ip`.
fn addr_in(ranges: &[AddrRange], ip: &IpAddr) -> bool {
    find_addr(ranges, ip).is_some()
}

/// The index of the range of sorted, disjoint `ranges` that holds `ip`.
fn find_addr(ranges: &[AddrRange], ip: &IpAddr) -> Option<usize> {
    // The last range starting at or before `ip` is the only one that can hold it.
    let after = ranges.partition_point(|r| r.start <= *ip);
    (after > 0 && ranges[after - 1].contains(ip)).then(|| after - 1)
}

/// The elements of an address · protocol · port set whose address range holds `ip`
/// (empty when none does): a contiguous run, sorted by protocol and ports.
fn run_of<'e>(elements: &'e [AddrProtoPort], ip: &IpAddr) -> &'e [AddrProtoPort] {
    &elements[run_range(elements, ip)]
}

/// Where [`run_of`]'s run is in `elements`.
fn run_range(elements: &[AddrProtoPort], ip: &IpAddr) -> std::ops::Range<usize> {
    let after = elements.partition_point(|e| e.addr.start <= *ip);
    if after == 0 {
        return 0..0;
    }
    let range = elements[after - 1].addr;
    if !range.contains(ip) {
        return 0..0;
    }
    let first = elements[..after].partition_point(|e| e.addr < range);
    first..after
}

/// Whether an address · protocol · port set holds the triple. The compiler's elements
/// are sorted by address range, then protocol and ports; two elements' address ranges
/// are equal or disjoint (elementary intervals, each with its normalised port set).
fn addr_proto_port_in(elements: &[AddrProtoPort], ip: &IpAddr, proto: u8, port: u16) -> bool {
    find_addr_proto_port(elements, ip, proto, port).is_some()
}

/// The index of the element that holds the triple (see [`addr_proto_port_in`]).
fn find_addr_proto_port(
    elements: &[AddrProtoPort],
    ip: &IpAddr,
    proto: u8,
    port: u16,
) -> Option<usize> {
    let range = run_range(elements, ip);
    let run = &elements[range.clone()];
    let key = (proto, port);
    let next = run.partition_point(|e| (e.proto, e.ports.0) <= key);
    if next == 0 {
        return None;
    }
    let e = &run[next - 1];
    (e.proto == proto && e.ports.0 <= port && port <= e.ports.1).then(|| range.start + next - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectName;
    use crate::plan::{DenyAction, LocalEndpoint, Set, VerdictMap};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn range(a: &str, b: &str) -> AddrRange {
        AddrRange {
            start: ip(a),
            end: ip(b),
        }
    }

    /// One local endpoint, 198.18.0.1, isolated for ingress: 198.18.1.0/24 on every
    /// port, 198.18.2.0–198.18.2.127 on 80/TCP and 53/UDP, 198.18.2.128/25 on 443/TCP.
    fn plan() -> Plan {
        let chain = "in_ns_server".to_string();
        Plan {
            table: "netpol".into(),
            sets: vec![
                Set {
                    name: format!("{chain}_v4_all"),
                    family: Family::V4,
                    elements: SetElements::addr(
                        Family::V4,
                        vec![range("198.18.1.0", "198.18.1.255")],
                    )
                    .unwrap(),
                },
                Set {
                    name: format!("{chain}_v4_ports"),
                    family: Family::V4,
                    elements: SetElements::addr_proto_port(
                        Family::V4,
                        vec![
                            AddrProtoPort {
                                addr: range("198.18.2.0", "198.18.2.127"),
                                proto: 6,
                                ports: (80, 80),
                            },
                            AddrProtoPort {
                                addr: range("198.18.2.0", "198.18.2.127"),
                                proto: 17,
                                ports: (53, 53),
                            },
                            AddrProtoPort {
                                addr: range("198.18.2.128", "198.18.2.255"),
                                proto: 6,
                                ports: (443, 443),
                            },
                        ],
                    )
                    .unwrap(),
                },
            ],
            maps: vec![VerdictMap {
                name: "ingress_v4".into(),
                family: Family::V4,
                elements: vec![(ip("198.18.0.1"), chain.clone())],
            }],
            chains: vec![
                Chain {
                    name: "input".into(),
                    hook: Some(Hook::Input),
                    rules: vec![
                        Stmt::CtEstablishedAccept,
                        Stmt::CtInvalidDrop,
                        Stmt::LoopbackAccept(Hook::Input),
                        Stmt::NeighbourDiscoveryAccept,
                        Stmt::Dispatch {
                            family: Family::V4,
                            field: AddrField::Daddr,
                            map: "ingress_v4".into(),
                        },
                    ],
                },
                Chain {
                    name: "output".into(),
                    hook: Some(Hook::Output),
                    rules: vec![Stmt::CtEstablishedAccept],
                },
                Chain {
                    name: chain.clone(),
                    hook: None,
                    rules: vec![
                        Stmt::AcceptAddr {
                            family: Family::V4,
                            field: AddrField::Saddr,
                            set: format!("{chain}_v4_all"),
                        },
                        Stmt::AcceptAddrProtoPort {
                            family: Family::V4,
                            field: AddrField::Saddr,
                            set: format!("{chain}_v4_ports"),
                        },
                        Stmt::Deny {
                            action: DenyAction::Drop,
                            comment: "deny ingress ns/server".into(),
                        },
                    ],
                },
            ],
            locals: vec![LocalEndpoint {
                id: ObjectName::parse("ns/server").unwrap(),
                ingress_chain: Some(chain),
                egress_chain: None,
                tier_chains: Vec::new(),
                shard_chains: Vec::new(),
            }],
            limits: Vec::new(),
        }
    }

    fn to_server(from: &str, proto: u8, dport: u16) -> Packet {
        Packet {
            saddr: ip(from),
            daddr: ip("198.18.0.1"),
            proto,
            dport,
            icmpv6_type: None,
        }
    }

    #[test]
    fn peers_ports_and_protocols_decide_in_the_endpoint_chain() {
        let plan = plan();
        let cases = [
            ("198.18.1.7", 6, 1, Outcome::Accept),
            ("198.18.1.255", 132, 9, Outcome::Accept),
            ("198.18.2.5", 6, 80, Outcome::Accept),
            ("198.18.2.5", 17, 53, Outcome::Accept),
            ("198.18.2.5", 6, 53, Outcome::Deny),
            ("198.18.2.5", 17, 80, Outcome::Deny),
            ("198.18.2.5", 6, 443, Outcome::Deny),
            ("198.18.2.200", 6, 443, Outcome::Accept),
            ("198.18.2.200", 6, 80, Outcome::Deny),
            ("198.18.3.1", 6, 80, Outcome::Deny),
            ("198.18.0.255", 1, 0, Outcome::Deny),
        ];
        for (from, proto, port, want) in cases {
            let v = plan.verdict(Hook::Input, &to_server(from, proto, port));
            assert_eq!(v.outcome, want, "{from} {proto} {port}");
            assert_eq!(v.chain, Some("in_ns_server"), "{from} {proto} {port}");
        }
    }

    #[test]
    fn the_base_chain_decides_for_other_addresses_hooks_and_neighbour_discovery() {
        let plan = plan();
        let mut other = to_server("198.18.3.1", 6, 80);
        other.daddr = ip("198.18.0.2");
        assert_eq!(plan.verdict(Hook::Input, &other), ACCEPT);
        // The output hook has no dispatch: open.
        let out = Packet {
            saddr: ip("198.18.0.1"),
            daddr: ip("198.18.3.1"),
            proto: 6,
            dport: 80,
            icmpv6_type: None,
        };
        assert_eq!(plan.verdict(Hook::Output, &out), ACCEPT);
        // IPv6 to a local address with no v6 dispatch: open.
        let v6 = Packet {
            saddr: ip("2001:db8::1"),
            daddr: ip("2001:db8::2"),
            proto: 58,
            dport: 0,
            icmpv6_type: Some(128),
        };
        assert_eq!(plan.verdict(Hook::Input, &v6), ACCEPT);
    }

    #[test]
    fn neighbour_discovery_is_accepted_before_dispatch() {
        let mut plan = plan();
        plan.maps[0].elements = vec![(ip("2001:db8::1"), "in_ns_server".into())];
        plan.maps[0].family = Family::V6;
        plan.chains[0].rules[4] = Stmt::Dispatch {
            family: Family::V6,
            field: AddrField::Daddr,
            map: "ingress_v4".into(),
        };
        let mut p = Packet {
            saddr: ip("2001:db8::9"),
            daddr: ip("2001:db8::1"),
            proto: 58,
            dport: 0,
            icmpv6_type: Some(135),
        };
        assert_eq!(plan.verdict(Hook::Input, &p), ACCEPT);
        p.icmpv6_type = Some(128);
        assert_eq!(
            plan.verdict(Hook::Input, &p),
            Verdict {
                outcome: Outcome::Deny,
                chain: Some("in_ns_server")
            }
        );
    }
}
