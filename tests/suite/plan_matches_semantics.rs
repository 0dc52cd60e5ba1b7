//! The plan and the semantics can never silently drift apart: for random inventories
//! and policies, every endpoint is made local, the plan is built, and for every local
//! address, remote address, protocol and port of a small universe, evaluating the
//! plan's chains and sets (`netpol_tests::plan_eval`) must give the same verdict as
//! the semantic engine (`Index::verdict`), for ingress and egress; and the compiler's
//! own evaluator (`Plan::verdict`, binary searches, which the daemon's revocation of
//! established flows uses) must agree with that naive one, down to the deciding chain.
//! Some policies are in audit mode and some hosts audit everything: the plan's
//! accept/drop must still be the enforced policies' verdict (everything accepted under
//! host-wide audit), and the log rule a packet meets must be the event of the E/F table
//! (`events::expected`). With ClusterNetworkPolicy objects (random Admin and Baseline
//! tiers, `cluster_matches_spec`'s models) the semantics are `Index::cluster_verdict`.
//! The plan must also be structurally sound (no overlapping elements, sorted map keys).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use netpol_tests::plan_eval::{self, Outcome, Packet};
use proptest::prelude::*;
use rules_compiler::connectivity::Allowed;
use rules_compiler::events;
use rules_compiler::model::{
    Direction, Endpoint, EndpointKind, Inventory, IpBlock, LabelSelector, Labels, Model, NamedPort,
    Namespace, NamespaceScope, ObjectName, Operator, Peer, Peers, Policy, PolicyMode, PortMatch,
    PortRule, Ports, Protocol, Requirement, Rule, Source, NAMESPACE_NAME_LABEL,
};
use rules_compiler::plan::{self, EventLog, Failsafe, Hook, Mode, Options};
use rules_compiler::resolve::Index;

const NAMESPACES: [&str; 3] = ["ns-a", "ns-b", "ns-c"];

fn labels_from(pairs: Vec<(&'static str, &'static str)>) -> Labels {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn label_pairs(
    keys: &'static [(&'static str, &'static [&'static str])],
) -> impl Strategy<Value = Labels> {
    let per_key: Vec<_> = keys
        .iter()
        .map(|(k, values)| {
            proptest::option::of(proptest::sample::select(*values).prop_map(move |v| (*k, v)))
        })
        .collect();
    per_key.prop_map(|opts| labels_from(opts.into_iter().flatten().collect()))
}

pub(super) const POD_LABELS: &[(&str, &[&str])] =
    &[("app", &["web", "db", "api"]), ("tier", &["fe", "be"])];
pub(super) const NS_LABELS: &[(&str, &[&str])] =
    &[("team", &["red", "blue"]), ("env", &["prod", "dev"])];

pub(super) fn selector(
    keys: &'static [(&'static str, &'static [&'static str])],
    extra_key: &'static str,
) -> impl Strategy<Value = LabelSelector> {
    let keys_vec: Vec<&'static str> = keys.iter().map(|(k, _)| *k).chain([extra_key]).collect();
    let values: Vec<&'static str> = keys.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let key = proptest::sample::select(keys_vec);
    let value_set = proptest::sample::subsequence(values.clone(), 1..3)
        .prop_map(|v| v.into_iter().map(String::from).collect::<BTreeSet<_>>());
    let operator = prop_oneof![
        value_set.clone().prop_map(Operator::In),
        value_set.prop_map(Operator::NotIn),
        Just(Operator::Exists),
        Just(Operator::DoesNotExist),
    ];
    let requirement = (key.clone(), operator).prop_map(|(k, op)| Requirement {
        key: k.to_string(),
        operator: op,
    });
    let match_label = (key, proptest::sample::select(values));
    prop_oneof![
        2 => Just(LabelSelector::everything()),
        3 => proptest::collection::vec(match_label, 1..3).prop_map(|pairs| LabelSelector {
            match_labels: pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            match_expressions: vec![],
        }),
        3 => proptest::collection::vec(requirement, 1..3).prop_map(|exprs| LabelSelector {
            match_labels: Default::default(),
            match_expressions: exprs,
        }),
    ]
}

/// CIDRs and the excepts that may go with them (each strictly inside).
const BLOCKS: &[(&str, &[&str])] = &[
    (
        "198.18.0.0/24",
        &["198.18.0.0/28", "198.18.0.12/30", "198.18.0.128/25"],
    ),
    ("198.18.0.0/28", &["198.18.0.8/29", "198.18.0.11/32"]),
    ("198.18.0.16/28", &["198.18.0.20/31"]),
    ("0.0.0.0/0", &["198.18.0.0/24", "198.18.0.14/31"]),
    ("2001:db8::/120", &["2001:db8::10/126", "2001:db8::80/121"]),
    ("2001:db8::/124", &["2001:db8::c/126"]),
    ("::/0", &["2001:db8::/120"]),
];

fn ip_block() -> impl Strategy<Value = IpBlock> {
    proptest::sample::select(BLOCKS).prop_flat_map(|(cidr, excepts)| {
        proptest::sample::subsequence(excepts.to_vec(), 0..=excepts.len()).prop_map(move |ex| {
            IpBlock {
                cidr: cidr.parse().unwrap(),
                except: ex.iter().map(|e| e.parse().unwrap()).collect(),
            }
        })
    })
}

fn peer() -> impl Strategy<Value = Peer> {
    let scope = prop_oneof![
        proptest::sample::select(NAMESPACES.to_vec())
            .prop_map(|n| NamespaceScope::Own(n.to_string())),
        selector(NS_LABELS, NAMESPACE_NAME_LABEL).prop_map(NamespaceScope::Selector),
    ];
    prop_oneof![
        3 => (scope, selector(POD_LABELS, "version")).prop_map(|(namespaces, pods)| Peer::Endpoints { namespaces, pods }),
        2 => ip_block().prop_map(Peer::IpBlock),
    ]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    proptest::sample::select(Protocol::ALL.to_vec())
}

fn port_rule() -> impl Strategy<Value = PortRule> {
    let port = prop_oneof![
        1 => Just(PortMatch::Any),
        3 => (proptest::sample::select(vec![53u16, 80, 8080, 9100]), proptest::sample::select(vec![0u16, 0, 5, 100]))
            .prop_map(|(start, width)| PortMatch::Range { start, end: start + width }),
        2 => proptest::sample::select(vec!["http", "dns", "metrics", "nope"]).prop_map(|n| PortMatch::Named(n.to_string())),
    ];
    (protocol(), port).prop_map(|(protocol, port)| PortRule { protocol, port })
}

fn rule() -> impl Strategy<Value = Rule> {
    let peers = prop_oneof![
        1 => Just(Peers::All),
        4 => proptest::collection::vec(peer(), 1..3).prop_map(Peers::List),
    ];
    let ports = prop_oneof![
        1 => Just(Ports::All),
        3 => proptest::collection::vec(port_rule(), 1..3).prop_map(Ports::List),
    ];
    (peers, ports).prop_map(|(peers, ports)| Rule { peers, ports })
}

fn rules() -> impl Strategy<Value = Option<Vec<Rule>>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(vec![])),
        3 => proptest::collection::vec(rule(), 1..3).prop_map(Some),
    ]
}

fn named_ports() -> impl Strategy<Value = Vec<NamedPort>> {
    let http =
        proptest::option::of(
            proptest::sample::select(vec![80u16, 8080]).prop_map(|p| NamedPort {
                name: "http".into(),
                port: p,
                protocol: Protocol::Tcp,
            }),
        );
    let dns = proptest::option::of(protocol().prop_map(|pr| NamedPort {
        name: "dns".into(),
        port: 53,
        protocol: pr,
    }));
    let metrics =
        proptest::option::of(proptest::sample::select(vec![9100u16, 9200]).prop_map(|p| {
            NamedPort {
                name: "metrics".into(),
                port: p,
                protocol: Protocol::Tcp,
            }
        }));
    (http, dns, metrics).prop_map(|(a, b, c)| [a, b, c].into_iter().flatten().collect())
}

/// Random models (shared with `diff_matches_explain`).
pub(super) fn model() -> impl Strategy<Value = Model> {
    let ns_labels = proptest::collection::vec(label_pairs(NS_LABELS), NAMESPACES.len());
    let endpoint = (
        proptest::sample::select(NAMESPACES.to_vec()),
        label_pairs(POD_LABELS),
        0u8..3, // 0: v4, 1: v6, 2: both
        named_ports(),
    );
    let endpoints = proptest::collection::vec(endpoint, 1..7);
    let policy = (
        proptest::sample::select(NAMESPACES.to_vec()),
        selector(POD_LABELS, "version"),
        rules(),
        rules(),
        proptest::bool::weighted(0.3),
    );
    let policies = proptest::collection::vec(policy, 0..5);
    (ns_labels, endpoints, policies).prop_map(|(ns_labels, eps, pols)| {
        let namespaces = NAMESPACES
            .iter()
            .zip(ns_labels)
            .map(|(name, mut labels)| {
                labels.insert(NAMESPACE_NAME_LABEL.into(), name.to_string());
                (
                    name.to_string(),
                    Namespace {
                        name: name.to_string(),
                        labels,
                        implicit: false,
                        source: Source::default(),
                    },
                )
            })
            .collect();
        let mut endpoints: Vec<Endpoint> = eps
            .into_iter()
            .enumerate()
            .map(|(i, (ns, labels, fam, ports))| {
                let host = 10 + i as u8;
                let mut ips: Vec<IpAddr> = Vec::new();
                if fam != 1 {
                    ips.push(format!("198.18.0.{host}").parse().unwrap());
                }
                if fam != 0 {
                    ips.push(format!("2001:db8::{host:x}").parse().unwrap());
                }
                Endpoint {
                    id: ObjectName::new(ns, format!("ep{i}")),
                    labels,
                    ips: ips.into(),
                    ports: ports.into(),
                    kind: EndpointKind::Native,
                    source: Source::default(),
                }
            })
            .collect();
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        let mut policies: Vec<Policy> = pols
            .into_iter()
            .enumerate()
            .map(|(i, (ns, pod_selector, ingress, egress, audited))| {
                let rules_in = |rules: Option<Vec<Rule>>| {
                    rules.map(|rs| {
                        rs.into_iter()
                            .map(|mut r| {
                                // A podSelector-only peer means the policy's own namespace.
                                if let Peers::List(peers) = &mut r.peers {
                                    for p in peers {
                                        if let Peer::Endpoints {
                                            namespaces: NamespaceScope::Own(own),
                                            ..
                                        } = p
                                        {
                                            *own = ns.to_string();
                                        }
                                    }
                                }
                                r
                            })
                            .collect()
                    })
                };
                Policy {
                    id: ObjectName::new(ns, format!("p{i}")),
                    mode: if audited {
                        PolicyMode::Audit
                    } else {
                        PolicyMode::Enforce
                    },
                    pod_selector,
                    ingress: rules_in(ingress),
                    egress: rules_in(egress),
                    source: Source::default(),
                }
            })
            .collect();
        policies.sort_by(|a, b| a.id.cmp(&b.id));
        Model {
            inventory: Inventory {
                namespaces,
                endpoints,
                skipped: vec![],
                ignored_kinds: BTreeMap::new(),
                nodes: vec![],
            },
            policies,
            cluster_policies: Vec::new(),
        }
    })
}

/// Remote addresses that are nobody's, inside and outside the blocks used above.
pub(super) const STRANGERS: [&str; 8] = [
    "198.18.0.3",
    "198.18.0.17",
    "198.18.0.129",
    "198.18.0.200",
    "198.19.1.1",
    "2001:db8::3",
    "2001:db8::81",
    "2001:db8:1::1",
];
const PROTOCOLS: [u8; 4] = [6, 17, 132, 1];
/// Both sides of every range bound the generator uses, and the ends of the port space.
const PORTS: [u16; 16] = [
    0, 52, 53, 54, 58, 79, 80, 81, 85, 180, 8079, 8080, 8081, 9100, 9200, 65535,
];

/// Failsafe entries on the bounds of `PORTS` and the strangers' blocks: a port range
/// from part of IPv4, one port to anywhere, and one from part of IPv6.
fn failsafe() -> Vec<Failsafe> {
    [
        "ingress:TCP:80-81:198.18.0.0/25",
        "egress:UDP:53",
        "ingress:UDP:9100:2001:db8::/64",
    ]
    .iter()
    .map(|t| t.parse().unwrap())
    .collect()
}

/// Small shard limits, 0 to 2: every port set of more elements is sharded (with 0,
/// every one), those of several address ranges into several blocks, ranges cut at
/// their boundaries. Each model is checked with the default (nothing sharded at these
/// sizes) and with one of these.
fn shard_above() -> impl Strategy<Value = usize> {
    0..3usize
}

fn check_model(model: &Model, mode: Mode, shard_above: usize) -> Result<(), TestCaseError> {
    let index = Index::new(model);
    let locals: Vec<usize> = (0..model.inventory.endpoints.len()).collect();
    let options = Options {
        mode,
        events: Some(EventLog {
            group: 1,
            rate: 10,
            burst: 10,
        }),
        failsafe: failsafe(),
        shard_above,
        ..Options::default()
    };
    let plan = plan::build(&index, &locals, &options);
    let problems = plan_eval::structural_problems(&plan);
    prop_assert!(problems.is_empty(), "plan problems: {problems:?}");

    let mut remotes: Vec<IpAddr> = STRANGERS.iter().map(|s| s.parse().unwrap()).collect();
    remotes.extend(
        model
            .inventory
            .endpoints
            .iter()
            .flat_map(|e| e.ips.iter().copied()),
    );
    for (local, ep) in model.inventory.endpoints.iter().enumerate() {
        for local_ip in ep.ips.iter() {
            for remote in remotes
                .iter()
                .filter(|r| r.is_ipv4() == local_ip.is_ipv4() && *r != local_ip)
            {
                for proto in PROTOCOLS {
                    for dport in PORTS {
                        for dir in [Direction::Ingress, Direction::Egress] {
                            let (hook, packet) = match dir {
                                Direction::Ingress => (
                                    Hook::Input,
                                    Packet {
                                        saddr: *remote,
                                        daddr: *local_ip,
                                        proto,
                                        dport,
                                    },
                                ),
                                Direction::Egress => (
                                    Hook::Output,
                                    Packet {
                                        saddr: *local_ip,
                                        daddr: *remote,
                                        proto,
                                        dport,
                                    },
                                ),
                            };
                            // The failsafe first, then the policies.
                            let safe =
                                Failsafe::find(&options.failsafe, dir, proto, dport, *remote)
                                    .is_some();
                            // All tiers: without cluster policies, `Index::verdict`.
                            let semantic = safe
                                || index
                                    .cluster_verdict(local, dir, *remote, proto, dport)
                                    .is_allowed();
                            let (outcome, logged) =
                                plan_eval::evaluate_logged(&plan, hook, &packet);
                            let kernel = outcome == Outcome::Accept;
                            // The E/F table: which event the packet gives, if any.
                            let event = (!safe)
                                .then(|| {
                                    events::expected(
                                        &index, mode, local, dir, *remote, proto, dport,
                                    )
                                })
                                .flatten();
                            prop_assert_eq!(
                                logged,
                                event,
                                "{} {} {:?} ({:?}): the plan logs {:?}, the E/F table says {:?}",
                                ep.id,
                                dir,
                                packet,
                                mode,
                                logged,
                                event
                            );
                            // The production evaluator (what revocation judges flows
                            // with) against this naive one, including which chain
                            // decided: a local endpoint's own chain, or none.
                            let production = plan.verdict(
                                hook,
                                &plan::Packet {
                                    saddr: packet.saddr,
                                    daddr: packet.daddr,
                                    proto: packet.proto,
                                    dport: packet.dport,
                                    icmpv6_type: None,
                                },
                            );
                            prop_assert_eq!(
                                production.is_accept(),
                                kernel,
                                "{} {} {:?}: the naive evaluator says {}, Plan::verdict {:?}",
                                ep.id,
                                dir,
                                packet,
                                if kernel { "allow" } else { "deny" },
                                production
                            );
                            let entry = plan.locals().iter().find(|l| l.id == ep.id);
                            let own = entry.and_then(|l| l.chain(dir));
                            // Its chain, or one of its tiers' deny chains.
                            let its = |c: Option<&str>| {
                                c == own
                                    || entry.is_some_and(|l| {
                                        l.tier_chains.iter().any(|t| {
                                            t.direction == dir && Some(t.chain.as_str()) == c
                                        }) || l.shard_chains.iter().any(|t| {
                                            t.direction == dir && Some(t.chain.as_str()) == c
                                        })
                                    })
                            };
                            prop_assert!(
                                production.chain.is_none() || its(production.chain),
                                "{} {} {:?}: decided by {:?}, its chain is {:?}",
                                ep.id,
                                dir,
                                packet,
                                production.chain,
                                own
                            );
                            if !production.is_accept() {
                                prop_assert!(production.chain.is_some() && its(production.chain));
                            }
                            // The chain resolved for every packet at once (what the
                            // connectivity diff reads) says the same of this one; the
                            // failsafe, in the base chain, comes before it.
                            let at_once = safe
                                || own.and_then(|c| plan.chain_accepts(c)).is_none_or(|c| {
                                    Allowed::from_accepts(&c.get(remote)).allows(proto, dport)
                                });
                            prop_assert_eq!(
                                at_once,
                                kernel,
                                "{} {} {:?}: chain_accepts says {}",
                                ep.id,
                                dir,
                                packet,
                                at_once
                            );
                            // E decides, unless the host only audits.
                            let semantic = semantic || mode == Mode::Audit;
                            prop_assert_eq!(
                                semantic,
                                kernel,
                                "{} {} {:?}: semantics say {}, the plan says {}",
                                ep.id,
                                dir,
                                packet,
                                if semantic { "allow" } else { "deny" },
                                if kernel { "allow" } else { "deny" }
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Admin, NetworkPolicy and Baseline objects mixed: the plan gives
    /// `Index::cluster_verdict` for every packet.
    #[test]
    fn plan_gives_the_tiers_verdict_for_every_packet(
        model in super::cluster_matches_spec::cluster_model(),
        host_audit in proptest::bool::weighted(0.25),
        shard in shard_above(),
    ) {
        let mode = if host_audit { Mode::Audit } else { Mode::Enforce };
        check_model(&model, mode, plan::SHARD_ABOVE)?;
        check_model(&model, mode, shard)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn plan_gives_the_semantic_verdict_for_every_packet(
        model in model(),
        host_audit in proptest::bool::weighted(0.25),
        shard in shard_above(),
    ) {
        let mode = if host_audit { Mode::Audit } else { Mode::Enforce };
        check_model(&model, mode, plan::SHARD_ABOVE)?;
        check_model(&model, mode, shard)?;
    }
}
