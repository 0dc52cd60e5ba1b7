//! The gap below the first interval and the cost, moved here from the compiler's delta
//! tests with them.

use std::net::{IpAddr, Ipv4Addr};

use rules_compiler::plan::{AddrRange, Chain, Family, Hook, Set, Stmt, VerdictMap, TABLE_NAME};

use super::*;

/// Block `k`: `[4k, 4k + 1]`, so blocks never overlap or touch.
fn block(k: u32) -> AddrRange {
    AddrRange {
        start: IpAddr::V4(Ipv4Addr::from(4 * k)),
        end: IpAddr::V4(Ipv4Addr::from(4 * k + 1)),
    }
}

fn plan(blocks: &[u32], map: &[u32]) -> Plan {
    Plan::new(
        TABLE_NAME.into(),
        vec![Set::new(
            "s".into(),
            Family::V4,
            SetElements::addr(Family::V4, blocks.iter().map(|&k| block(k)).collect()).unwrap(),
        )
        .expect("a valid set")],
        vec![VerdictMap::new(
            "m".into(),
            Family::V4,
            map.iter()
                .map(|&k| (block(k).start, "in_a".to_string()))
                .collect(),
        )
        .expect("a valid verdictmap")],
        vec![
            Chain::new(
                "input".into(),
                Some(Hook::Input),
                vec![Stmt::CtEstablishedAccept],
            )
            .expect("a valid chain"),
            Chain::new("in_a".into(), None, vec![]).expect("a valid chain"),
        ],
        vec![],
        Vec::new(),
    )
    .expect("a valid plan")
}

#[test]
fn equal_plans_cost_nothing() {
    let a = plan(&[1, 2, 5], &[1]);
    let u = Update::between(&a, &a).unwrap();
    assert!(u.is_empty());
    assert_eq!(u.cost(), 0);
}

#[test]
fn each_changed_element_costs_the_size_of_its_set_or_map() {
    let a = plan(&[1, 2, 5], &[1]);
    let b = plan(&[2, 5, 7, 9], &[1, 2, 3]);
    let u = Update::between(&a, &b).unwrap();
    assert_eq!(u.changed(), 3 + 2);
    // Three elements of a set of four, two of a map of three.
    assert_eq!(u.cost(), 3 * 4 + 2 * 3);
    // Emptied: each change still costs one.
    let empty = plan(&[], &[]);
    assert_eq!(Update::between(&a, &empty).unwrap().cost(), 3 + 1);
}

#[test]
fn the_gap_below_the_first_interval_is_reported_before_and_after() {
    let a = plan(&[0, 3], &[]);
    let b = plan(&[3], &[]);
    assert_eq!(Update::between(&a, &b).unwrap().gap_below(0), (false, true));
    assert_eq!(Update::between(&b, &a).unwrap().gap_below(0), (true, false));
    let empty = plan(&[], &[]);
    assert_eq!(
        Update::between(&b, &empty).unwrap().gap_below(0),
        (true, false)
    );
}
