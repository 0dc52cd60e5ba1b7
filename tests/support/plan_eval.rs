//! An evaluator of a compiled [`Plan`], written for the tests: it walks the base chain
//! of a hook the way the kernel would for the first packet of a new connection, looks
//! elements up in the plan's sets and maps, and returns the verdict. Independent of
//! how the plan was built, so comparing it with the semantic engine checks the plan.

use std::net::IpAddr;

use rules_compiler::plan::{
    AddrField, EventVerdict, Family, Hook, Plan, SetElements, Stmt, TierVerdict,
};

/// The first packet of a connection, as the hooks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub saddr: IpAddr,
    /// Destination address.
    pub daddr: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port (ignored by the plan for protocols without ports).
    pub dport: u16,
}

/// What the table does with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by a rule, or by the base chain's accept policy.
    Accept,
    /// Dropped or rejected by a deny rule.
    Deny,
}

/// Evaluates a new (conntrack state `new`), non-loopback packet at a hook.
pub fn evaluate(plan: &Plan, hook: Hook, packet: &Packet) -> Outcome {
    evaluate_logged(plan, hook, packet).0
}

/// [`evaluate`], and the verdict of the log rule the packet met, if any (every log
/// rule is taken as logging: the rate limit is not modelled).
pub fn evaluate_logged(
    plan: &Plan,
    hook: Hook,
    packet: &Packet,
) -> (Outcome, Option<EventVerdict>) {
    let base = plan
        .chains()
        .iter()
        .find(|c| c.hook() == Some(hook))
        .unwrap_or_else(|| panic!("plan has no base chain for {hook:?}"));
    let mut logged = None;
    let outcome = run_chain(plan, base.rules(), packet, 0, &mut logged).unwrap_or(Outcome::Accept);
    (outcome, logged)
}

fn addr(packet: &Packet, field: AddrField) -> IpAddr {
    match field {
        AddrField::Saddr => packet.saddr,
        AddrField::Daddr => packet.daddr,
    }
}

fn family_matches(family: Family, ip: &IpAddr) -> bool {
    Family::of(ip) == family
}

/// `None`: the chain ended without a verdict (return to the caller).
fn run_chain(
    plan: &Plan,
    rules: &[Stmt],
    packet: &Packet,
    depth: usize,
    logged: &mut Option<EventVerdict>,
) -> Option<Outcome> {
    assert!(depth < 8, "jump depth exceeded: a loop in the plan");
    for rule in rules {
        match rule {
            // New, valid, non-loopback packets match none of these.
            Stmt::CtEstablishedAccept | Stmt::CtInvalidDrop | Stmt::LoopbackAccept(_) => {}
            Stmt::NeighbourDiscoveryAccept => {
                if packet.proto == 58 {
                    // The tests do not model ICMPv6 types; they send no ICMPv6.
                    panic!("packet generator produced ICMPv6, which this evaluator does not model");
                }
            }
            Stmt::Dispatch { family, field, map } => {
                let ip = addr(packet, *field);
                if !family_matches(*family, &ip) {
                    continue;
                }
                let map = plan.map(map).unwrap_or_else(|| panic!("no map {map}"));
                assert_eq!(map.family(), *family, "map {} family", map.name());
                if let Some((_, target)) = map.elements().iter().find(|(k, _)| *k == ip) {
                    let chain = plan
                        .chain(target)
                        .unwrap_or_else(|| panic!("jump to missing chain {target}"));
                    assert!(chain.hook().is_none(), "jump to base chain {target}");
                    if let Some(outcome) = run_chain(plan, chain.rules(), packet, depth + 1, logged)
                    {
                        return Some(outcome);
                    }
                }
            }
            Stmt::AcceptAddr { family, field, set } => {
                let ip = addr(packet, *field);
                if !family_matches(*family, &ip) {
                    continue;
                }
                let set = plan.set(set).unwrap_or_else(|| panic!("no set {set}"));
                let SetElements::Addr(elements) = set.elements() else {
                    panic!("set {} is not an address set", set.name());
                };
                if elements.iter().any(|r| r.contains(&ip)) {
                    return Some(Outcome::Accept);
                }
            }
            Stmt::AcceptAddrProtoPort { family, field, set } => {
                let ip = addr(packet, *field);
                if !family_matches(*family, &ip) {
                    continue;
                }
                let set = plan.set(set).unwrap_or_else(|| panic!("no set {set}"));
                let SetElements::AddrProtoPort(elements) = set.elements() else {
                    panic!("set {} is not an address·protocol·port set", set.name());
                };
                if elements.iter().any(|e| {
                    e.addr.contains(&ip)
                        && e.proto == packet.proto
                        && e.ports.0 <= packet.dport
                        && packet.dport <= e.ports.1
                }) {
                    return Some(Outcome::Accept);
                }
            }
            Stmt::TierPorts { family, field, map } => {
                let ip = addr(packet, *field);
                if !family_matches(*family, &ip) {
                    continue;
                }
                let set = plan.set(map).unwrap_or_else(|| panic!("no map {map}"));
                let SetElements::AddrProtoPortVerdict(v) = set.elements() else {
                    panic!("{map} is not an address·protocol·port verdict map");
                };
                let hit = v.iter().find(|(e, _)| {
                    e.addr.contains(&ip)
                        && e.proto == packet.proto
                        && e.ports.0 <= packet.dport
                        && packet.dport <= e.ports.1
                });
                if let Some((_, verdict)) = hit {
                    if let Some(o) = tier_verdict(plan, verdict, packet, depth, logged) {
                        return o;
                    }
                }
            }
            Stmt::TierOther { family, field, map } | Stmt::TierClass { family, field, map } => {
                let ip = addr(packet, *field);
                // `TierOther`: `meta l4proto != tcp, udp, sctp` first.
                let ports_only =
                    matches!(rule, Stmt::TierOther { .. }) && [6, 17, 132].contains(&packet.proto);
                if !family_matches(*family, &ip) || ports_only {
                    continue;
                }
                let set = plan.set(map).unwrap_or_else(|| panic!("no map {map}"));
                let SetElements::AddrVerdict(v) = set.elements() else {
                    panic!("{map} is not an address verdict map");
                };
                if let Some((_, verdict)) = v.iter().find(|(r, _)| r.contains(&ip)) {
                    if let Some(o) = tier_verdict(plan, verdict, packet, depth, logged) {
                        return o;
                    }
                }
            }
            Stmt::Log { verdict, .. } => {
                assert!(logged.is_none(), "a packet logged twice");
                *logged = Some(*verdict);
            }
            Stmt::Audit { .. } => return Some(Outcome::Accept),
            Stmt::Deny { .. } => return Some(Outcome::Deny),
        }
    }
    None
}

/// A verdict map's answer for the chain that looked it up: `Some(what it returns)`
/// (`accept`; `goto` a chain, whose end returns to the base chain, past the rest of
/// this one), or `None` to go on with the next rule (a `jump` whose chain ended
/// without a verdict).
fn tier_verdict(
    plan: &Plan,
    verdict: &TierVerdict,
    packet: &Packet,
    depth: usize,
    logged: &mut Option<EventVerdict>,
) -> Option<Option<Outcome>> {
    let (target, jump) = match verdict {
        TierVerdict::Accept => return Some(Some(Outcome::Accept)),
        TierVerdict::Goto(t) => (t, false),
        TierVerdict::Jump(t) => (t, true),
    };
    let chain = plan
        .chain(target)
        .unwrap_or_else(|| panic!("missing chain {target}"));
    assert!(chain.hook().is_none(), "to a base chain {target}");
    match run_chain(plan, chain.rules(), packet, depth + 1, logged) {
        None if jump => None,
        outcome => Some(outcome),
    }
}

/// Checks what the kernel would refuse or what would make a lookup ambiguous: elements
/// of one set that overlap, a key of the wrong family, an unsorted set. Returns the
/// problems found.
pub fn structural_problems(plan: &Plan) -> Vec<String> {
    let mut problems = Vec::new();
    for set in plan.sets() {
        match set.elements() {
            SetElements::Addr(v) => {
                for w in v.windows(2) {
                    if w[0].end >= w[1].start {
                        problems.push(format!(
                            "{}: {:?} overlaps or is not before {:?}",
                            set.name(),
                            w[0],
                            w[1]
                        ));
                    }
                }
                for r in v.iter() {
                    if Family::of(&r.start) != set.family()
                        || Family::of(&r.end) != set.family()
                        || r.start > r.end
                    {
                        problems.push(format!("{}: bad range {r:?}", set.name()));
                    }
                }
            }
            SetElements::AddrVerdict(v) => {
                for w in v.keys().windows(2) {
                    if w[0].end >= w[1].start {
                        problems.push(format!("{}: {:?} overlaps {:?}", set.name(), w[0], w[1]));
                    }
                }
            }
            SetElements::AddrProtoPortVerdict(v) => {
                let keys = v.keys();
                for (i, a) in keys.iter().enumerate() {
                    if ![6, 17, 132].contains(&a.proto) {
                        problems.push(format!("{}: protocol without ports {a:?}", set.name()));
                    }
                    for b in &keys[i + 1..] {
                        let addr_overlap = a.addr.start <= b.addr.end && b.addr.start <= a.addr.end;
                        let port_overlap = a.ports.0 <= b.ports.1 && b.ports.0 <= a.ports.1;
                        if addr_overlap && a.proto == b.proto && port_overlap {
                            problems.push(format!("{}: {a:?} overlaps {b:?}", set.name()));
                        }
                    }
                }
            }
            SetElements::AddrProtoPort(v) => {
                for (i, a) in v.iter().enumerate() {
                    if Family::of(&a.addr.start) != set.family()
                        || a.addr.start > a.addr.end
                        || a.ports.0 > a.ports.1
                    {
                        problems.push(format!("{}: bad element {a:?}", set.name()));
                    }
                    for b in &v[i + 1..] {
                        let addr_overlap = a.addr.start <= b.addr.end && b.addr.start <= a.addr.end;
                        let port_overlap = a.ports.0 <= b.ports.1 && b.ports.0 <= a.ports.1;
                        if addr_overlap && a.proto == b.proto && port_overlap {
                            problems.push(format!("{}: {a:?} overlaps {b:?}", set.name()));
                        }
                    }
                }
            }
        }
    }
    for map in plan.maps() {
        for w in map.elements().windows(2) {
            if w[0].0 >= w[1].0 {
                problems.push(format!(
                    "{}: keys not strictly sorted: {} {}",
                    map.name(),
                    w[0].0,
                    w[1].0
                ));
            }
        }
    }
    problems
}
