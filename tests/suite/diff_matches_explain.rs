//! The connectivity diff is exact: for two random models (endpoints may exist in one
//! only), every pair of ends the diff considers (every endpoint pair, and each ipBlock
//! peer with every endpoint, its `example` address standing for it) and every packet of
//! a small universe — TCP, UDP and SCTP on ports at and around those the models name,
//! port 0 and 65535, and ICMP — per family, the diff says "changed" exactly when
//! `explain` (or, for ICMP, which `explain` cannot ask about, `Index::cluster_verdict`
//! on both sides as `explain` does) gives different answers before and after. The
//! models are NetworkPolicy-only, and then with Admin and Baseline objects.

use std::collections::BTreeSet;
use std::net::IpAddr;

use proptest::prelude::*;
use rules_compiler::analysis::{self, End, FamilyFilter, Probe};
use rules_compiler::connectivity::{self, Ends, FamilyTag, Node, Side};
use rules_compiler::model::{Direction, Model, ObjectName, Protocol};
use rules_compiler::plan::{Options, Plan, SHARD_ABOVE};
use rules_compiler::resolve::Index;
use rules_compiler::Target;

use super::plan_matches_semantics::model;

/// Around what both generators name (the cluster ones: 53, 80, 8080, 9100, widths 1
/// and 100).
const PORTS: [u16; 19] = [
    0, 1, 52, 53, 54, 79, 80, 81, 180, 181, 443, 8080, 8180, 9000, 9099, 9100, 9200, 9201, 65535,
];

/// The plan of every endpoint, its sets sharded above `shard_above` elements.
fn whole(model: &Model, shard_above: usize) -> Plan {
    let names: Vec<ObjectName> = model
        .inventory
        .endpoints
        .iter()
        .map(|e| e.id.clone())
        .collect();
    let options = Options {
        shard_above,
        ..Options::default()
    };
    rules_compiler::compile(model, Target::Named(&names), &options)
        .unwrap()
        .plan
}

/// What `explain` says of one packet in one family; not allowed when an endpoint end
/// is not in this model.
fn allowed(
    index: &Index<'_>,
    from: &Node,
    to: &Node,
    example: Option<IpAddr>,
    proto: u8,
    port: u16,
    family: FamilyFilter,
) -> bool {
    let end = |n: &Node| -> Option<End> {
        match n {
            Node::Endpoint(name) => index
                .model
                .inventory
                .endpoint_index(name)
                .map(End::Endpoint),
            Node::Block(_) => Some(End::Stranger(example.expect("a block has an example"))),
        }
    };
    let (Some(a), Some(b)) = (end(from), end(to)) else {
        return false;
    };
    if let Some(protocol) = Protocol::ALL.into_iter().find(|p| p.number() == proto) {
        if port == 0 {
            // Probes start at port 1; port 0 is asked of the packet verdicts below.
        } else {
            return analysis::explain(index, a, b, Probe { port, protocol }, family, &[]).allowed;
        }
    }
    // As `explain` decides: every address pair of the family, the sender's egress and
    // the receiver's ingress (a stranger's side is not policed).
    let ips = |e: End| -> Vec<IpAddr> {
        match e {
            End::Endpoint(i) => index.endpoint(i).ips.to_vec(),
            End::Stranger(ip) => vec![ip],
        }
    };
    let mut any = false;
    for x in ips(a).into_iter().filter(|x| family.admits(x)) {
        for y in ips(b).into_iter().filter(|y| y.is_ipv4() == x.is_ipv4()) {
            any = true;
            let out = match a {
                End::Endpoint(i) => index
                    .cluster_verdict(i, Direction::Egress, y, proto, port)
                    .is_allowed(),
                End::Stranger(_) => true,
            };
            let inn = match b {
                End::Endpoint(j) => index
                    .cluster_verdict(j, Direction::Ingress, x, proto, port)
                    .is_allowed(),
                End::Stranger(_) => true,
            };
            if !(out && inn) {
                return false;
            }
        }
    }
    any
}

/// Whether the two ends have an address pair of the family in this model.
fn shares(
    index: &Index<'_>,
    from: &Node,
    to: &Node,
    example: Option<IpAddr>,
    family: FamilyFilter,
) -> bool {
    let ips = |n: &Node| -> Vec<IpAddr> {
        match n {
            Node::Endpoint(name) => index
                .model
                .inventory
                .endpoint_index(name)
                .map(|i| index.endpoint(i).ips.to_vec())
                .unwrap_or_default(),
            Node::Block(_) => example.into_iter().collect(),
        }
    };
    let (a, b) = (ips(from), ips(to));
    a.iter()
        .any(|x| family.admits(x) && b.iter().any(|y| y.is_ipv4() == x.is_ipv4()))
}

/// Shard limits for the plans: the default (nothing sharded at these sizes), or 0 to 2
/// (with 0 every port set is sharded), each side its own, so a diff also meets a set
/// sharded on one side only.
fn shard_above() -> impl Strategy<Value = usize> {
    prop_oneof![Just(SHARD_ABOVE), 0..3usize]
}

fn check(old: &Model, new: &Model, shard: (usize, usize)) -> Result<(), TestCaseError> {
    let (po, pn) = (whole(old, shard.0), whole(new, shard.1));
    let (eo, en) = (Ends::of(old), Ends::of(new));
    let d = connectivity::diff(
        Side {
            ends: &eo,
            plan: &po,
        },
        Side {
            ends: &en,
            plan: &pn,
        },
    );
    let (io, inew) = (Index::new(old), Index::new(new));
    let mut nodes: BTreeSet<Node> = old
        .inventory
        .endpoints
        .iter()
        .chain(&new.inventory.endpoints)
        .map(|e| Node::Endpoint(e.id.clone()))
        .collect();
    let examples: Vec<(Node, IpAddr)> = d
        .blocks
        .iter()
        .map(|b| (Node::Block(b.cidr), b.example))
        .collect();
    nodes.extend(examples.iter().map(|(n, _)| n.clone()));
    let example_of = |n: &Node| examples.iter().find(|(m, _)| m == n).map(|(_, ip)| *ip);
    for from in &nodes {
        for to in &nodes {
            if from == to || (matches!(from, Node::Block(_)) && matches!(to, Node::Block(_))) {
                continue;
            }
            let example = example_of(from).or(example_of(to));
            let pair = d.pairs.iter().find(|p| &p.from == from && &p.to == to);
            let (added, removed) = pair.map(|p| (p.added(), p.removed())).unwrap_or_default();
            for (family, tag) in [
                (FamilyFilter::V4, FamilyTag::V4),
                (FamilyFilter::V6, FamilyTag::V6),
            ] {
                // `any` is every family the ends share in either model; a family they
                // never share has nothing to change.
                if !shares(&io, from, to, example, family)
                    && !shares(&inew, from, to, example, family)
                {
                    continue;
                }
                for proto in [6u8, 17, 132, 1] {
                    for port in if proto == 1 { &[0u16][..] } else { &PORTS[..] } {
                        let before = allowed(&io, from, to, example, proto, *port, family);
                        let after = allowed(&inew, from, to, example, proto, *port, family);
                        let says = |sets: &Vec<(FamilyTag, connectivity::Allowed)>| {
                            sets.iter().any(|(t, s)| {
                                (*t == FamilyTag::Any || *t == tag) && s.allows(proto, *port)
                            })
                        };
                        let (plus, minus) = (says(&added), says(&removed));
                        prop_assert_eq!(
                            (plus, minus),
                            (!before && after, before && !after),
                            "{} -> {} proto {} port {} {}: explain says {} before, {} after; diff: {:?}",
                            from, to, proto, port, family, before, after, pair
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn diff_agrees_with_explain_on_every_probe(
        old in model(),
        new in model(),
        shard in (shard_above(), shard_above()),
    ) {
        check(&old, &new, shard)?;
        // Nothing changes between a model and itself, sharded or not.
        let (plan, sharded) = (whole(&old, SHARD_ABOVE), whole(&old, shard.0));
        let ends = Ends::of(&old);
        let same = connectivity::diff(Side { ends: &ends, plan: &plan }, Side { ends: &ends, plan: &sharded });
        prop_assert!(same.pairs.is_empty());
    }

    /// The same with ClusterNetworkPolicy tiers on both sides.
    #[test]
    fn diff_agrees_with_explain_with_cluster_tiers(
        old in super::cluster_matches_spec::cluster_model(),
        new in super::cluster_matches_spec::cluster_model(),
        shard in (shard_above(), shard_above()),
    ) {
        check(&old, &new, shard)?;
    }
}
