//! Tests of `delta`: element changes as deletions and additions, widening, structural
//! changes refused with a reason, and (proptest) `delta(a, b)?.apply(a) == b` both ways.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::plan::{AddrRange, Chain, Hook, Set, Stmt, VerdictMap, TABLE_NAME};

fn v4(x: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(x))
}

fn v6(x: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(x))
}

fn ip(family: Family, x: u32) -> IpAddr {
    match family {
        Family::V4 => v4(x),
        Family::V6 => v6(u128::from(x)),
    }
}

/// Block `k` of a family: `[4k, 4k + 1]`, so blocks never overlap or touch.
fn block(family: Family, k: u32) -> AddrRange {
    AddrRange {
        start: ip(family, 4 * k),
        end: ip(family, 4 * k + 1),
    }
}

fn chain(name: &str, hook: Option<Hook>, rules: Vec<Stmt>) -> Chain {
    Chain {
        name: name.into(),
        hook,
        rules,
    }
}

fn plan(sets: Vec<Set>, maps: Vec<VerdictMap>) -> Plan {
    Plan {
        table: TABLE_NAME.into(),
        sets,
        maps,
        chains: vec![
            chain("input", Some(Hook::Input), vec![Stmt::CtEstablishedAccept]),
            chain(
                "output",
                Some(Hook::Output),
                vec![Stmt::CtEstablishedAccept],
            ),
            chain("in_a", None, vec![]),
            chain("in_b", None, vec![]),
        ],
        locals: vec![],
        limits: Vec::new(),
    }
}

fn addr_set(name: &str, family: Family, blocks: &[u32]) -> Set {
    Set {
        name: name.into(),
        family,
        elements: SetElements::addr(family, blocks.iter().map(|&k| block(family, k)).collect())
            .unwrap(),
    }
}

#[test]
fn equal_plans_give_an_empty_delta() {
    let a = plan(vec![addr_set("s", Family::V4, &[1, 2, 5])], vec![]);
    let d = delta(&a, &a).unwrap();
    assert!(d.is_empty());
    assert_eq!(d.apply(&a), a);
}

#[test]
fn element_changes_are_deletions_and_additions() {
    let a = plan(vec![addr_set("s", Family::V4, &[1, 2, 5])], vec![]);
    let b = plan(vec![addr_set("s", Family::V4, &[2, 5, 7, 9])], vec![]);
    let d = delta(&a, &b).unwrap();
    assert_eq!(d.sets.len(), 1);
    assert_eq!(
        d.sets[0].delete,
        SetElements::addr(Family::V4, vec![block(Family::V4, 1)]).unwrap()
    );
    assert_eq!(
        d.sets[0].add,
        SetElements::addr(Family::V4, vec![block(Family::V4, 7), block(Family::V4, 9)]).unwrap()
    );
    assert_eq!(d.changed(), 3);
    assert_eq!(d.apply(&a), b);
}

#[test]
fn a_delta_widens_only_when_nothing_allowed_before_is_left_out() {
    let with = |blocks: &[u32]| plan(vec![addr_set("s", Family::V4, blocks)], vec![]);
    let widens = |a: &Plan, b: &Plan| delta(a, b).unwrap().widens_only(b);
    assert!(widens(&with(&[1, 5]), &with(&[1, 5])), "no change");
    assert!(
        widens(&with(&[1, 5]), &with(&[1, 3, 5])),
        "an element added"
    );
    assert!(!widens(&with(&[1, 5]), &with(&[5])), "an element removed");
    assert!(!widens(&with(&[1, 5]), &with(&[3, 5])), "one moved");
    // An interval merged into a wider one is deleted and added, and still widens.
    let wide = plan(
        vec![Set {
            name: "s".into(),
            family: Family::V4,
            elements: SetElements::addr(
                Family::V4,
                vec![AddrRange {
                    start: v4(4),
                    end: v4(23),
                }],
            )
            .unwrap(),
        }],
        vec![],
    );
    let d = delta(&with(&[1, 5]), &wide).unwrap();
    assert!(!d.sets[0].delete.is_empty());
    assert!(d.widens_only(&wide));
    assert!(!widens(&wide, &with(&[1, 5])), "and back narrows");
    // A map key added isolates an address; one removed opens it.
    let map = |keys: &[u32]| VerdictMap {
        name: "input_v4".into(),
        family: Family::V4,
        elements: keys.iter().map(|&k| (v4(k), "in_a".to_string())).collect(),
    };
    let isolated = |keys: &[u32]| plan(vec![], vec![map(keys)]);
    assert!(!widens(&isolated(&[7]), &isolated(&[7, 9])));
    assert!(widens(&isolated(&[7, 9]), &isolated(&[7])));
}

#[test]
fn a_map_key_with_a_new_target_is_deleted_and_added() {
    let map = |target: &str| VerdictMap {
        name: "input_v4".into(),
        family: Family::V4,
        elements: vec![(v4(7), "in_a".into()), (v4(9), target.into())],
    };
    let a = plan(vec![], vec![map("in_a")]);
    let b = plan(vec![], vec![map("in_b")]);
    let d = delta(&a, &b).unwrap();
    assert_eq!(d.maps[0].delete, vec![(v4(9), "in_a".to_string())]);
    assert_eq!(d.maps[0].add, vec![(v4(9), "in_b".to_string())]);
    assert_eq!(d.apply(&a), b);
}

#[test]
fn structural_changes_are_refused_with_a_reason() {
    let a = plan(vec![addr_set("s", Family::V4, &[1])], vec![]);
    let renamed = plan(vec![addr_set("t", Family::V4, &[1])], vec![]);
    let refamilied = plan(vec![addr_set("s", Family::V6, &[1])], vec![]);
    let more = plan(
        vec![
            addr_set("s", Family::V4, &[1]),
            addr_set("t", Family::V4, &[1]),
        ],
        vec![],
    );
    let mut rules = a.clone();
    rules.chains[2].rules.push(Stmt::CtInvalidDrop);
    let mut chains = a.clone();
    chains.chains.pop();
    let mut kind = a.clone();
    kind.sets[0].elements = SetElements::AddrProtoPort(Default::default());
    let mut table = a.clone();
    table.table = "other".into();
    let mut map = a.clone();
    map.maps.push(VerdictMap {
        name: "input_v4".into(),
        family: Family::V4,
        elements: vec![],
    });
    for (b, why) in [
        (renamed, "set s becomes t"),
        (refamilied, "set s becomes s"),
        (more, "1 sets become 2"),
        (rules, "chain in_a changes"),
        (chains, "4 chains become 3"),
        (kind, "set s changes its type"),
        (table, "table netpol becomes other"),
        (map, "0 maps become 1"),
    ] {
        assert_eq!(delta(&a, &b), Err(Structural(why.into())));
    }
}

#[test]
fn locals_without_chains_ride_along() {
    let a = plan(vec![], vec![]);
    let mut b = a.clone();
    b.locals.push(LocalEndpoint {
        id: crate::model::ObjectName::new("ns", "x"),
        ingress_chain: None,
        egress_chain: None,
        tier_chains: Vec::new(),
        shard_chains: Vec::new(),
    });
    let d = delta(&a, &b).unwrap();
    assert!(d.is_empty());
    assert_eq!(d.apply(&a), b);
}

/// What a random set holds in one plan: blocks for an address set, (block, protocol,
/// port) for an address · protocol · port set.
#[derive(Clone, Debug)]
enum Content {
    Addr(std::collections::BTreeSet<u8>),
    Apk(std::collections::BTreeSet<(u8, bool, u16)>),
    /// A tier's `…_other` map: block → accept (true) or goto.
    AddrVerdict(std::collections::BTreeMap<u8, bool>),
    /// A tier's `…_ports` map.
    ApkVerdict(std::collections::BTreeMap<(u8, bool, u16), bool>),
}

fn content(kind: u8) -> BoxedStrategy<Content> {
    match kind {
        0 => prop::collection::btree_set(0u8..24, 0..10)
            .prop_map(Content::Addr)
            .boxed(),
        1 => prop::collection::btree_set((0u8..24, any::<bool>(), 1u16..6), 0..10)
            .prop_map(Content::Apk)
            .boxed(),
        2 => prop::collection::btree_map(0u8..24, any::<bool>(), 0..10)
            .prop_map(Content::AddrVerdict)
            .boxed(),
        _ => prop::collection::btree_map((0u8..24, any::<bool>(), 1u16..6), any::<bool>(), 0..10)
            .prop_map(Content::ApkVerdict)
            .boxed(),
    }
}

fn tier_verdict(accept: bool) -> TierVerdict {
    if accept {
        TierVerdict::Accept
    } else {
        TierVerdict::Goto("in_a".into())
    }
}

fn build_set(name: String, family: Family, c: &Content) -> Set {
    let elements = match c {
        Content::Addr(b) => SetElements::addr(
            family,
            b.iter().map(|&k| block(family, u32::from(k))).collect(),
        )
        .unwrap(),
        Content::Apk(b) => SetElements::addr_proto_port(
            family,
            b.iter()
                .map(|&(k, udp, p)| AddrProtoPort {
                    addr: block(family, u32::from(k)),
                    proto: if udp { 17 } else { 6 },
                    ports: (p * 10, p * 10 + 5),
                })
                .collect(),
        )
        .unwrap(),
        Content::AddrVerdict(b) => SetElements::addr_verdict(
            family,
            b.iter()
                .map(|(&k, &a)| (block(family, u32::from(k)), tier_verdict(a)))
                .collect(),
        )
        .unwrap(),
        Content::ApkVerdict(b) => SetElements::addr_proto_port_verdict(
            family,
            b.iter()
                .map(|(&(k, udp, p), &a)| {
                    let key = AddrProtoPort {
                        addr: block(family, u32::from(k)),
                        proto: if udp { 17 } else { 6 },
                        ports: (p * 10, p * 10 + 5),
                    };
                    (key, tier_verdict(a))
                })
                .collect(),
        )
        .unwrap(),
    };
    Set {
        name,
        family,
        elements,
    }
}

/// Two plans of the same shape: the same sets (name, family, kind) and maps, with
/// independent random elements.
fn plan_pair() -> impl Strategy<Value = (Plan, Plan)> {
    let set = (any::<bool>(), 0u8..4).prop_flat_map(|(v6, kind)| {
        let family = if v6 { Family::V6 } else { Family::V4 };
        (Just(family), content(kind), content(kind))
    });
    let map = prop::collection::btree_map(0u8..30, any::<bool>(), 0..8);
    (
        prop::collection::vec(set, 0..5),
        prop::collection::vec((map.clone(), map), 0..3),
    )
        .prop_map(|(sets, maps)| {
            let mut a_sets = Vec::new();
            let mut b_sets = Vec::new();
            for (i, (family, x, y)) in sets.iter().enumerate() {
                a_sets.push(build_set(format!("s{i}"), *family, x));
                b_sets.push(build_set(format!("s{i}"), *family, y));
            }
            let mk = |m: &std::collections::BTreeMap<u8, bool>| -> Vec<(IpAddr, String)> {
                m.iter()
                    .map(|(&k, &b)| (v4(u32::from(k)), if b { "in_a" } else { "in_b" }.into()))
                    .collect()
            };
            let mut a_maps = Vec::new();
            let mut b_maps = Vec::new();
            for (i, (x, y)) in maps.iter().enumerate() {
                let m = |e| VerdictMap {
                    name: format!("m{i}"),
                    family: Family::V4,
                    elements: e,
                };
                a_maps.push(m(mk(x)));
                b_maps.push(m(mk(y)));
            }
            (plan(a_sets, a_maps), plan(b_sets, b_maps))
        })
}

proptest! {
    #[test]
    fn a_delta_turns_the_old_plan_into_the_new(pair in plan_pair()) {
        let (a, b) = pair;
        let d = delta(&a, &b).unwrap();
        prop_assert_eq!(d.apply(&a), b.clone());
        prop_assert_eq!(d.is_empty(), a == b);
        // Nothing deleted that was not there, nothing added that was.
        for s in &d.sets {
            let old = &a.set(&s.name).unwrap().elements;
            match (old, &s.delete, &s.add) {
                (SetElements::Addr(o), SetElements::Addr(del), SetElements::Addr(add)) => {
                    prop_assert!(del.iter().all(|x| o.contains(x)));
                    prop_assert!(add.iter().all(|x| !o.contains(x)));
                }
                (SetElements::AddrProtoPort(o), SetElements::AddrProtoPort(del), SetElements::AddrProtoPort(add)) => {
                    prop_assert!(del.iter().all(|x| o.contains(x)));
                    prop_assert!(add.iter().all(|x| !o.contains(x)));
                }
                (SetElements::AddrVerdict(o), SetElements::AddrVerdict(del), SetElements::AddrVerdict(add)) => {
                    let o: Vec<_> = o.iter().collect();
                    prop_assert!(del.iter().all(|x| o.contains(&x)));
                    prop_assert!(add.iter().all(|x| !o.contains(&x)));
                }
                (SetElements::AddrProtoPortVerdict(o), SetElements::AddrProtoPortVerdict(del), SetElements::AddrProtoPortVerdict(add)) => {
                    let o: Vec<_> = o.iter().collect();
                    prop_assert!(del.iter().all(|x| o.contains(&x)));
                    prop_assert!(add.iter().all(|x| !o.contains(&x)));
                }
                _ => prop_assert!(false, "delta of another kind than its set"),
            }
        }
        // And back.
        prop_assert_eq!(delta(&b, &a).unwrap().apply(&b), a);
    }
}
