//! ClusterNetworkPolicy's tiers (`resolve/cluster.rs`) against the specification read
//! naively: for random models mixing Admin, NetworkPolicy and Baseline objects (and
//! inventory Nodes), for every endpoint, direction, remote address, protocol and port of
//! a small universe, `Index::cluster_tier` and `Index::cluster_verdict` must give what a
//! straight reading of issue 15 gives — objects sorted here by priority then name,
//! rules walked in written order, peers and ports matched by scanning the inventory,
//! with no index. The NetworkPolicy tier is taken from `Index::verdict`, which
//! `plan_matches_semantics` holds to the plan; only whether it isolates and what it says
//! is used here.

use std::net::IpAddr;

use proptest::prelude::*;
use rules_compiler::model::{
    Action, ClusterNode, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, Direction, Endpoint,
    LabelSelector, Model, Protocol, Source, Subject, Tier, NAMESPACE_NAME_LABEL,
};
use rules_compiler::resolve::{
    ClusterRuleRef, ClusterVerdict, Decision, Index, TierOutcome, Verdict,
};

use super::plan_matches_semantics::{
    label_pairs, model, selector, NS_LABELS, POD_LABELS, STRANGERS,
};

const NODE_LABELS: &[(&str, &[&str])] = &[("role", &["worker", "control"]), ("zone", &["a", "b"])];

/// `networks` blocks: around the endpoints (198.18.0.10-16, 2001:db8::a-10), the
/// strangers and the nodes.
const NETWORKS: &[&str] = &[
    "198.18.0.0/28",
    "198.18.0.16/28",
    "198.18.0.200/32",
    "198.19.0.0/16",
    "0.0.0.0/0",
    "2001:db8::/124",
    "2001:db8::80/121",
    "::/0",
];

/// Node addresses: strangers, and one endpoint's address (a node may share one).
const NODE_ADDRS: &[&str] = &["198.18.0.200", "2001:db8::81", "198.19.1.1", "198.18.0.10"];

fn cluster_peer() -> impl Strategy<Value = ClusterPeer> {
    prop_oneof![
        3 => selector(NS_LABELS, NAMESPACE_NAME_LABEL).prop_map(ClusterPeer::Namespaces),
        3 => (selector(NS_LABELS, NAMESPACE_NAME_LABEL), selector(POD_LABELS, "version"))
            .prop_map(|(namespaces, pods)| ClusterPeer::Pods { namespaces, pods }),
        2 => proptest::sample::subsequence(NETWORKS.to_vec(), 1..3)
            .prop_map(|n| ClusterPeer::Networks(n.iter().map(|c| c.parse().unwrap()).collect())),
        2 => selector(NODE_LABELS, "kubernetes.io/hostname").prop_map(ClusterPeer::Nodes),
        1 => Just(ClusterPeer::Unknown { fields: vec!["futurePeer".into()] }),
    ]
}

fn cluster_port() -> impl Strategy<Value = ClusterPort> {
    let protocol = proptest::sample::select(Protocol::ALL.to_vec());
    let range = (
        proptest::sample::select(vec![53u16, 80, 8080, 9100]),
        proptest::sample::select(vec![0u16, 0, 1, 100]),
    )
        .prop_map(|(start, width)| Some((start, start + width)));
    prop_oneof![
        2 => (protocol.clone(), Just(None)).prop_map(|(protocol, ports)| ClusterPort::Protocol { protocol, ports }),
        3 => (protocol, range).prop_map(|(protocol, ports)| ClusterPort::Protocol { protocol, ports }),
        2 => proptest::sample::select(vec!["http", "dns", "metrics", "nope"])
            .prop_map(|n| ClusterPort::Named(n.into())),
    ]
}

fn cluster_rule() -> impl Strategy<Value = ClusterRule> {
    let action = proptest::sample::select(vec![Action::Accept, Action::Deny, Action::Pass]);
    let protocols = prop_oneof![
        1 => Just(None),
        2 => proptest::collection::vec(cluster_port(), 1..3).prop_map(Some),
    ];
    (
        proptest::option::of(Just("named".to_string())),
        action,
        proptest::collection::vec(cluster_peer(), 1..3),
        protocols,
    )
        .prop_map(|(name, action, peers, protocols)| ClusterRule {
            name,
            action,
            peers,
            protocols,
        })
}

fn cluster_policy() -> impl Strategy<Value = ClusterPolicy> {
    let tier = proptest::sample::select(vec![Tier::Admin, Tier::Baseline]);
    let subject = prop_oneof![
        selector(NS_LABELS, NAMESPACE_NAME_LABEL).prop_map(Subject::Namespaces),
        (
            selector(NS_LABELS, NAMESPACE_NAME_LABEL),
            selector(POD_LABELS, "version")
        )
            .prop_map(|(namespaces, pods)| Subject::Pods { namespaces, pods }),
    ];
    let rules = || proptest::collection::vec(cluster_rule(), 0..4);
    // Few priorities, so that ties (broken by name) are common.
    (tier, 0u16..3, subject, rules(), rules()).prop_map(
        |(tier, priority, subject, ingress, egress)| ClusterPolicy {
            name: String::new(),
            tier,
            priority,
            subject,
            ingress,
            egress,
            source: Source::default(),
        },
    )
}

fn node() -> impl Strategy<Value = ClusterNode> {
    (
        label_pairs(NODE_LABELS),
        proptest::sample::subsequence(NODE_ADDRS.to_vec(), 0..3),
    )
        .prop_map(|(labels, addrs)| {
            let mut addresses: Vec<IpAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
            addresses.sort();
            ClusterNode {
                name: String::new(),
                labels,
                addresses,
                source: Source::default(),
            }
        })
}

/// `plan_matches_semantics`' random models with cluster policies and Nodes.
pub(super) fn cluster_model() -> impl Strategy<Value = Model> {
    (
        model(),
        proptest::collection::vec(cluster_policy(), 0..6),
        proptest::collection::vec(node(), 0..3),
    )
        .prop_map(|(mut m, cps, nodes)| {
            // Names in reverse of generation order, so that sorting matters.
            let n = cps.len();
            m.cluster_policies = cps
                .into_iter()
                .enumerate()
                .map(|(i, cp)| ClusterPolicy {
                    name: format!("c{}", n - i),
                    ..cp
                })
                .collect();
            m.cluster_policies
                .sort_by(|a, b| a.order_key().cmp(&b.order_key()));
            m.inventory.nodes = nodes
                .into_iter()
                .enumerate()
                .map(|(i, node)| ClusterNode {
                    name: format!("node{i}"),
                    ..node
                })
                .collect();
            m
        })
}

// --- The naive reading ---------------------------------------------------------------

/// Which rule decided, or what else: comparable between the two evaluators.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Said {
    /// A rule of a cluster tier (tier, policy name, rule index) with this action.
    Rule(Action, Tier, String, usize),
    /// NetworkPolicy isolates; allowed or not.
    NetworkPolicy(bool),
    /// Nothing decided.
    Default,
}

fn owner<'m>(model: &'m Model, ip: &IpAddr) -> Option<&'m Endpoint> {
    model
        .inventory
        .endpoints
        .iter()
        .find(|e| e.ips.contains(ip))
}

fn ns_matches(model: &Model, sel: &LabelSelector, ep: &Endpoint) -> bool {
    model
        .inventory
        .namespaces
        .get(ep.id.namespace.as_str())
        .is_some_and(|n| sel.matches(&n.labels))
}

fn subject_has(model: &Model, subject: &Subject, ep: &Endpoint) -> bool {
    match subject {
        Subject::Namespaces(ns) => ns_matches(model, ns, ep),
        Subject::Pods { namespaces, pods } => {
            ns_matches(model, namespaces, ep) && pods.matches(&ep.labels)
        }
    }
}

fn peer_has(model: &Model, peer: &ClusterPeer, action: Action, remote: &IpAddr) -> bool {
    match peer {
        ClusterPeer::Namespaces(ns) => {
            owner(model, remote).is_some_and(|e| ns_matches(model, ns, e))
        }
        ClusterPeer::Pods { namespaces, pods } => owner(model, remote)
            .is_some_and(|e| ns_matches(model, namespaces, e) && pods.matches(&e.labels)),
        ClusterPeer::Networks(nets) => nets.iter().any(|n| n.contains(remote)),
        ClusterPeer::Nodes(sel) => model
            .inventory
            .nodes
            .iter()
            .any(|n| sel.matches(&n.labels) && n.addresses.contains(remote)),
        ClusterPeer::Unknown { .. } => action != Action::Accept,
    }
}

fn port_has(entry: &ClusterPort, dest: Option<&Endpoint>, proto: u8, dport: u16) -> bool {
    match entry {
        ClusterPort::Protocol { protocol, ports } => {
            protocol.number() == proto
                && ports.is_none_or(|(start, end)| start <= dport && dport <= end)
        }
        ClusterPort::Named(name) => dest.is_some_and(|d| {
            d.ports
                .iter()
                .any(|p| p.name == name && p.protocol.number() == proto && p.port == dport)
        }),
    }
}

/// The first matching rule of a tier, straight from the text.
fn naive_tier(
    model: &Model,
    tier: Tier,
    local: &Endpoint,
    dir: Direction,
    remote: &IpAddr,
    proto: u8,
    dport: u16,
) -> Option<(Action, Tier, String, usize)> {
    let dest = match dir {
        Direction::Ingress => Some(local),
        Direction::Egress => owner(model, remote),
    };
    let mut objects: Vec<&ClusterPolicy> = model
        .cluster_policies
        .iter()
        .filter(|p| p.tier == tier)
        .collect();
    objects.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
    for p in objects {
        if !subject_has(model, &p.subject, local) {
            continue;
        }
        let rules = match dir {
            Direction::Ingress => &p.ingress,
            Direction::Egress => &p.egress,
        };
        for (i, r) in rules.iter().enumerate() {
            let peers = r.peers.iter().any(|x| peer_has(model, x, r.action, remote));
            let ports = match &r.protocols {
                None => true,
                Some(list) => list.iter().any(|e| port_has(e, dest, proto, dport)),
            };
            if peers && ports {
                return Some((r.action, tier, p.name.clone(), i));
            }
        }
    }
    None
}

/// Admin → NetworkPolicy → Baseline → allow, with the Pass rules followed.
fn naive(
    model: &Model,
    np: &Verdict,
    local: &Endpoint,
    dir: Direction,
    remote: &IpAddr,
    proto: u8,
    dport: u16,
) -> (Said, Vec<(Tier, String, usize)>) {
    let mut passed = Vec::new();
    for tier in [Tier::Admin, Tier::Baseline] {
        if tier == Tier::Baseline && *np != Verdict::NotIsolated {
            return (Said::NetworkPolicy(np.is_allowed()), passed);
        }
        match naive_tier(model, tier, local, dir, remote, proto, dport) {
            Some((Action::Pass, t, name, i)) => passed.push((t, name, i)),
            Some((action, t, name, i)) => return (Said::Rule(action, t, name, i), passed),
            None => {}
        }
    }
    (Said::Default, passed)
}

fn key(r: &ClusterRuleRef) -> (Tier, String, usize) {
    (r.tier, r.policy.clone(), r.rule)
}

fn said_by(v: &ClusterVerdict) -> Said {
    match &v.decision {
        Decision::Accept { by } => Said::Rule(Action::Accept, by.tier, by.policy.clone(), by.rule),
        Decision::Deny { by } => Said::Rule(Action::Deny, by.tier, by.policy.clone(), by.rule),
        Decision::NetworkPolicy { verdict } => Said::NetworkPolicy(verdict.is_allowed()),
        Decision::Default => Said::Default,
    }
}

fn tier_said(o: &TierOutcome) -> Option<(Action, Tier, String, usize)> {
    match o {
        TierOutcome::NoMatch => None,
        TierOutcome::Matched { action, by } => Some((*action, by.tier, by.policy.clone(), by.rule)),
    }
}

const PROTOCOLS: [u8; 5] = [6, 17, 132, 1, 58];
const PORTS: [u16; 11] = [0, 53, 54, 80, 81, 180, 8080, 8081, 9100, 9200, 65535];

fn check(model: &Model) -> Result<(), TestCaseError> {
    let index = Index::new(model);
    let mut remotes: Vec<IpAddr> = STRANGERS.iter().map(|s| s.parse().unwrap()).collect();
    remotes.extend(NODE_ADDRS.iter().map(|s| s.parse::<IpAddr>().unwrap()));
    remotes.extend(
        model
            .inventory
            .endpoints
            .iter()
            .flat_map(|e| e.ips.iter().copied()),
    );
    remotes.sort();
    remotes.dedup();
    for (l, local) in model.inventory.endpoints.iter().enumerate() {
        let families: Vec<bool> = local.ips.iter().map(|i| i.is_ipv4()).collect();
        for remote in remotes.iter().filter(|r| families.contains(&r.is_ipv4())) {
            for proto in PROTOCOLS {
                for dport in PORTS {
                    for dir in [Direction::Ingress, Direction::Egress] {
                        for tier in [Tier::Admin, Tier::Baseline] {
                            let got = index.cluster_tier(tier, l, dir, *remote, proto, dport);
                            let want = naive_tier(model, tier, local, dir, remote, proto, dport);
                            prop_assert_eq!(
                                tier_said(&got),
                                want,
                                "{} {} {} {}/{} tier {:?}",
                                local.id,
                                dir,
                                remote,
                                proto,
                                dport,
                                tier
                            );
                        }
                        let np = index.verdict(l, dir, *remote, proto, dport);
                        let got = index.cluster_verdict(l, dir, *remote, proto, dport);
                        let (want, passed) = naive(model, &np, local, dir, remote, proto, dport);
                        let got_passed: Vec<_> = got.passed.iter().map(key).collect();
                        prop_assert_eq!(
                            (said_by(&got), got_passed),
                            (want.clone(), passed),
                            "{} {} {} {}/{}",
                            local.id,
                            dir,
                            remote,
                            proto,
                            dport
                        );
                        let allowed = match want {
                            Said::Rule(action, ..) => action == Action::Accept,
                            Said::NetworkPolicy(allowed) => allowed,
                            Said::Default => true,
                        };
                        prop_assert_eq!(got.is_allowed(), allowed);
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cluster_verdict_follows_the_tiers_as_written(model in cluster_model()) {
        check(&model)?;
    }
}
