use std::collections::{BTreeSet, HashSet};

use rules_compiler::load::Input;
use saphyr::{LoadableYamlNode, Yaml};

use super::*;
use crate::yaml::{inventory_yaml, policies_yaml};

fn small() -> Scale {
    Scale {
        namespaces: 12,
        endpoints: 300,
        policies: 90,
    }
}

/// RFC 1123 label: what Kubernetes requires of namespace names.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: what Kubernetes requires of pod and policy names.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label value (or the name part of a key): up to 63 of `[A-Za-z0-9._-]`, starting
/// and ending alphanumeric; empty allowed for values.
fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

fn is_label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => {
            is_dns_subdomain(prefix) && !name.is_empty() && is_label_value(name)
        }
        None => !k.is_empty() && is_label_value(k),
    }
}

/// IANA_SVC_NAME: what Kubernetes requires of container port names.
fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn selectors_of(p: &Policy) -> Vec<&LabelSelector> {
    let mut out = vec![&p.pod_selector];
    for rules in [&p.ingress, &p.egress].into_iter().flatten() {
        for r in rules.iter() {
            if let Peers::List(peers) = &r.peers {
                for peer in peers {
                    if let Peer::Endpoints { namespaces, pods } = peer {
                        out.push(pods);
                        if let NamespaceScope::Selector(ns) = namespaces {
                            out.push(ns);
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn same_seed_same_output_other_seed_other_output() {
    let a = generate(&small(), 7);
    let b = generate(&small(), 7);
    assert_eq!(a, b);
    assert_eq!(policies_yaml(&a), policies_yaml(&b));
    assert_eq!(inventory_yaml(&a), inventory_yaml(&b));
    let c = generate(&small(), 8);
    assert_ne!(a, c);
}

#[test]
fn counts_match_the_scale() {
    let scales = [
        small(),
        Scale::FULL.percent(1),
        Scale {
            namespaces: 1,
            endpoints: 0,
            policies: 0,
        },
        Scale {
            namespaces: 1,
            endpoints: 5,
            policies: 3,
        },
        // Fewer endpoints and policies than namespaces.
        Scale {
            namespaces: 40,
            endpoints: 7,
            policies: 9,
        },
        Scale {
            namespaces: 0,
            endpoints: 0,
            policies: 0,
        },
    ];
    for scale in scales {
        let m = generate(&scale, 3);
        assert_eq!(m.inventory.namespaces.len(), scale.namespaces, "{scale:?}");
        assert_eq!(m.inventory.endpoints.len(), scale.endpoints, "{scale:?}");
        assert_eq!(m.policies.len(), scale.policies, "{scale:?}");
    }
}

#[test]
fn percent_keeps_proportions() {
    assert_eq!(
        Scale::FULL.percent(1),
        Scale {
            namespaces: 10,
            endpoints: 500,
            policies: 100
        }
    );
    assert_eq!(Scale::FULL.percent(100), Scale::FULL);
    assert_eq!(
        Scale {
            namespaces: 3,
            endpoints: 0,
            policies: 10
        }
        .percent(1),
        Scale {
            namespaces: 1,
            endpoints: 0,
            policies: 1
        }
    );
}

#[test]
fn addresses_are_unique_and_only_from_test_ranges() {
    let m = generate(&Scale::FULL.percent(10), 11);
    let v4: IpNet = "198.18.0.0/15".parse().unwrap();
    let v6: IpNet = "2001:db8::/32".parse().unwrap();
    let mut seen = HashSet::new();
    let mut dual = 0;
    for ep in &m.inventory.endpoints {
        assert!(!ep.ips.is_empty(), "{}", ep.id);
        assert!(ep.ips.windows(2).all(|w| w[0] < w[1]), "{} sorted", ep.id);
        assert!(ep.ips.iter().any(IpAddr::is_ipv4), "{} has v4", ep.id);
        dual += usize::from(ep.ips.iter().any(IpAddr::is_ipv6));
        for ip in ep.ips.iter() {
            assert!(
                v4.contains(ip) || v6.contains(ip),
                "{ip} outside test ranges"
            );
            assert!(seen.insert(*ip), "{ip} claimed twice");
        }
    }
    // Some but not all endpoints are dual-stack.
    assert!(dual > 0 && dual < m.inventory.endpoints.len(), "{dual}");
}

#[test]
fn the_whole_v4_pool_can_be_used() {
    let m = generate(
        &Scale {
            namespaces: 3,
            endpoints: MAX_ENDPOINTS,
            policies: 0,
        },
        5,
    );
    let v4: HashSet<IpAddr> = m
        .inventory
        .endpoints
        .iter()
        .flat_map(|e| e.ips.iter().copied().filter(IpAddr::is_ipv4))
        .collect();
    assert_eq!(v4.len(), MAX_ENDPOINTS);
    assert!(!v4.contains(&"198.18.0.0".parse::<IpAddr>().unwrap()));
    assert!(!v4.contains(&"198.19.255.255".parse::<IpAddr>().unwrap()));
}

#[test]
fn names_labels_and_ports_are_valid_for_kubernetes() {
    let m = generate(&Scale::FULL.percent(10), 2);
    for (name, ns) in &m.inventory.namespaces {
        assert!(is_dns_label(name), "namespace {name}");
        assert_eq!(ns.labels.get(NAMESPACE_NAME_LABEL), Some(name.as_str()));
        for (k, v) in &ns.labels {
            assert!(is_label_key(k) && is_label_value(v), "{name}: {k}={v}");
        }
    }
    let mut ids = HashSet::new();
    for ep in &m.inventory.endpoints {
        assert!(is_dns_subdomain(&ep.id.name), "pod {}", ep.id);
        assert!(m
            .inventory
            .namespaces
            .contains_key(ep.id.namespace.as_str()));
        assert!(ids.insert(ep.id.clone()), "{} twice", ep.id);
        for (k, v) in &ep.labels {
            assert!(is_label_key(k) && is_label_value(v), "{}: {k}={v}", ep.id);
        }
        let names: BTreeSet<&str> = ep.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), ep.ports.len(), "{}: port names unique", ep.id);
        assert!(ep.ports.windows(2).all(|w| w[0].name < w[1].name));
        for p in ep.ports.iter() {
            assert!(is_port_name(&p.name), "{}: port {}", ep.id, p.name);
            assert!(p.port >= 1);
        }
    }
    assert!(m.inventory.endpoints.windows(2).all(|w| w[0].id < w[1].id));
    let mut ids = HashSet::new();
    for p in &m.policies {
        assert!(is_dns_subdomain(&p.id.name), "policy {}", p.id);
        assert!(m.inventory.namespaces.contains_key(p.id.namespace.as_str()));
        assert!(ids.insert(p.id.clone()), "{} twice", p.id);
        for sel in selectors_of(p) {
            for (k, v) in &sel.match_labels {
                assert!(is_label_key(k) && is_label_value(v), "{}: {k}={v}", p.id);
            }
            for r in &sel.match_expressions {
                assert!(is_label_key(&r.key));
                if let Operator::In(v) | Operator::NotIn(v) = &r.operator {
                    assert!(!v.is_empty(), "{}: In/NotIn needs values", p.id);
                }
            }
        }
    }
    assert!(m.policies.windows(2).all(|w| w[0].id < w[1].id));
}

#[test]
fn policies_satisfy_the_model_invariants() {
    let m = generate(&Scale::FULL.percent(10), 4);
    for p in &m.policies {
        assert!(
            p.ingress.is_some() || p.egress.is_some(),
            "{} isolates",
            p.id
        );
        for rules in [&p.ingress, &p.egress].into_iter().flatten() {
            for r in rules.iter() {
                if let Peers::List(peers) = &r.peers {
                    assert!(!peers.is_empty());
                    for peer in peers {
                        match peer {
                            Peer::IpBlock(b) => {
                                assert_eq!(b.cidr, b.cidr.trunc(), "{}: canonical", p.id);
                                for e in &b.except {
                                    assert_eq!(*e, e.trunc());
                                    assert!(
                                        b.cidr.contains(e) && e.prefix_len() > b.cidr.prefix_len(),
                                        "{}: {e} strictly inside {}",
                                        p.id,
                                        b.cidr
                                    );
                                }
                            }
                            Peer::Endpoints {
                                namespaces: NamespaceScope::Own(ns),
                                ..
                            } => assert_eq!(*ns, p.id.namespace),
                            Peer::Endpoints { .. } => {}
                        }
                    }
                }
                if let Ports::List(ports) = &r.ports {
                    assert!(!ports.is_empty());
                    for port in ports {
                        if let PortMatch::Range { start, end } = port.port {
                            assert!(1 <= start && start <= end, "{}", p.id);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn the_mix_has_every_shape() {
    let m = generate(&Scale::FULL.percent(10), 1);
    let mut ops = BTreeSet::new();
    let (mut except, mut end_port, mut named_port, mut udp, mut sctp, mut any_port) =
        (false, false, false, false, false, false);
    let (mut all_peers, mut ns_and_pods, mut v6_block, mut both) = (false, false, false, false);
    let mut default_deny = 0;
    for p in &m.policies {
        both |= p.ingress.as_ref().is_some_and(|r| !r.is_empty())
            && p.egress.as_ref().is_some_and(|r| !r.is_empty());
        if p.pod_selector.is_everything() && p.ingress.as_deref() == Some(&[]) && p.egress.is_none()
        {
            default_deny += 1;
        }
        for sel in selectors_of(p) {
            for r in &sel.match_expressions {
                ops.insert(match r.operator {
                    Operator::In(_) => "In",
                    Operator::NotIn(_) => "NotIn",
                    Operator::Exists => "Exists",
                    Operator::DoesNotExist => "DoesNotExist",
                });
            }
        }
        for r in [&p.ingress, &p.egress]
            .into_iter()
            .flatten()
            .flat_map(|r| r.iter())
        {
            match &r.peers {
                Peers::All => all_peers = true,
                Peers::List(peers) => {
                    for peer in peers {
                        match peer {
                            Peer::IpBlock(b) => {
                                except |= !b.except.is_empty();
                                v6_block |= b.cidr.addr().is_ipv6();
                            }
                            Peer::Endpoints {
                                namespaces: NamespaceScope::Selector(ns),
                                pods,
                            } => ns_and_pods |= !ns.is_everything() && !pods.is_everything(),
                            Peer::Endpoints { .. } => {}
                        }
                    }
                }
            }
            if let Ports::List(ports) = &r.ports {
                for port in ports {
                    udp |= port.protocol == Protocol::Udp;
                    sctp |= port.protocol == Protocol::Sctp;
                    match port.port {
                        PortMatch::Range { start, end } => end_port |= start < end,
                        PortMatch::Named(_) => named_port = true,
                        PortMatch::Any => any_port = true,
                    }
                }
            }
        }
    }
    assert_eq!(
        ops,
        BTreeSet::from(["DoesNotExist", "Exists", "In", "NotIn"])
    );
    assert!(except && end_port && named_port && udp && sctp && any_port);
    assert!(all_peers && ns_and_pods && v6_block && both);
    // Every namespace starts with its default deny (here there are enough policies).
    assert_eq!(default_deny, m.inventory.namespaces.len());
}

#[test]
fn one_name_means_different_numbers_on_different_endpoints() {
    let m = generate(&Scale::FULL.percent(1), 1);
    let http: BTreeSet<u16> = m
        .inventory
        .endpoints
        .iter()
        .filter_map(|e| e.named_port("http", Protocol::Tcp))
        .collect();
    assert!(http.len() >= 3, "{http:?}");
}

/// Peers named by the rules isolating an endpoint, and how many policies isolate it:
/// the straightforward computation `busiest_endpoint` must agree with.
fn policies_and_peers(
    index: &Index<'_>,
    per_policy: &[[usize; 2]],
    ep: EndpointId,
) -> (usize, usize) {
    let mut count = 0;
    let mut peers = 0;
    for (d, dir) in [Direction::Ingress, Direction::Egress]
        .into_iter()
        .enumerate()
    {
        for p in index.isolating(ep, dir) {
            count += 1;
            peers += per_policy[p][d];
        }
    }
    (count, peers)
}

fn peers_per_policy(index: &Index<'_>) -> Vec<[usize; 2]> {
    index
        .model
        .policies
        .iter()
        .map(|p| {
            [Direction::Ingress, Direction::Egress].map(|dir| {
                p.rules(dir)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| match &r.peers {
                        Peers::All => 1,
                        Peers::List(peers) => peers
                            .iter()
                            .map(|peer| match peer {
                                Peer::IpBlock(_) => 1,
                                Peer::Endpoints { .. } => index.peer_endpoints(peer).len(),
                            })
                            .sum(),
                    })
                    .sum()
            })
        })
        .collect()
}

#[test]
fn the_busiest_endpoint_is_selected_by_several_policies_and_names_the_most_peers() {
    for (pct, seed) in [(1, 1), (10, 1), (1, 99)] {
        let m = generate(&Scale::FULL.percent(pct), seed);
        let index = Index::new(&m);
        let per_policy = peers_per_policy(&index);
        let ep = busiest_endpoint(&index).expect("has endpoints");
        let (count, peers) = policies_and_peers(&index, &per_policy, ep);
        assert!(
            count >= BUSY_MIN_POLICIES,
            "{pct}%: {} selected by {count} policies",
            index.endpoint(ep).id
        );
        for other in 0..m.inventory.endpoints.len() {
            let (c, p) = policies_and_peers(&index, &per_policy, other);
            if c >= BUSY_MIN_POLICIES {
                assert!(
                    (p, c) <= (peers, count),
                    "{pct}%: {} names {p} peers in {c} policies, more than {} ({peers} in {count})",
                    index.endpoint(other).id,
                    index.endpoint(ep).id
                );
            }
        }
        // The choice grows with the input: a selector peer resolves to many endpoints.
        assert!(
            peers > m.inventory.endpoints.len() / 20,
            "{pct}%: {peers} peers"
        );
    }
}

#[test]
fn the_busiest_endpoints_start_with_the_busiest_and_are_distinct() {
    let m = generate(&Scale::FULL.percent(1), 1);
    let index = Index::new(&m);
    let all = busiest_endpoints(&index, usize::MAX);
    assert_eq!(all.len(), m.inventory.endpoints.len());
    assert_eq!(all.first().copied(), busiest_endpoint(&index));
    let distinct: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len());
    assert_eq!(busiest_endpoints(&index, 5), all[..5]);
    assert!(busiest_endpoints(&index, 0).is_empty());
}

#[test]
fn without_busy_endpoints_the_most_selected_is_chosen() {
    // One policy per namespace at most: nobody reaches BUSY_MIN_POLICIES.
    let m = generate(
        &Scale {
            namespaces: 5,
            endpoints: 40,
            policies: 5,
        },
        1,
    );
    let index = Index::new(&m);
    let ep = busiest_endpoint(&index).expect("has endpoints");
    let count = |e| {
        index.isolating(e, Direction::Ingress).len() + index.isolating(e, Direction::Egress).len()
    };
    assert!(count(ep) >= 1);
    assert!((0..m.inventory.endpoints.len()).all(|e| count(e) <= count(ep)));
}

#[test]
fn no_endpoints_no_busiest() {
    let m = generate(
        &Scale {
            namespaces: 2,
            endpoints: 0,
            policies: 4,
        },
        1,
    );
    assert_eq!(busiest_endpoint(&Index::new(&m)), None);
}

/// The YAML is well-formed and says what the model says, read with a YAML parser
/// independent of netpol's loader.
#[test]
fn yaml_streams_parse_and_carry_the_model() {
    let m = generate(&small(), 5);
    let policies = Yaml::load_from_str(&policies_yaml(&m)).expect("policies parse");
    assert_eq!(policies.len(), m.policies.len());
    for (doc, p) in policies.iter().zip(&m.policies) {
        assert_eq!(doc["kind"].as_str(), Some("NetworkPolicy"));
        assert_eq!(doc["metadata"]["name"].as_str(), Some(p.id.name.as_str()));
        assert_eq!(
            doc["metadata"]["namespace"].as_str(),
            Some(p.id.namespace.as_str())
        );
        let types: Vec<&str> = doc["spec"]["policyTypes"]
            .as_vec()
            .expect("policyTypes")
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        assert_eq!(types.contains(&"Ingress"), p.ingress.is_some(), "{}", p.id);
        assert_eq!(types.contains(&"Egress"), p.egress.is_some(), "{}", p.id);
    }
    let inventory = Yaml::load_from_str(&inventory_yaml(&m)).expect("inventory parse");
    let n = m.inventory.namespaces.len();
    assert_eq!(inventory.len(), n + m.inventory.endpoints.len());
    for doc in &inventory[..n] {
        assert_eq!(doc["kind"].as_str(), Some("Namespace"));
    }
    for (doc, ep) in inventory[n..].iter().zip(&m.inventory.endpoints) {
        assert_eq!(doc["kind"].as_str(), Some("Pod"));
        assert_eq!(doc["metadata"]["name"].as_str(), Some(ep.id.name.as_str()));
        assert_eq!(doc["status"]["phase"].as_str(), Some("Running"));
        let ips: Vec<IpAddr> = doc["status"]["podIPs"]
            .as_vec()
            .expect("podIPs")
            .iter()
            .map(|i| i["ip"].as_str().expect("ip").parse().expect("address"))
            .collect();
        assert_eq!(ips[..], ep.ips[..]);
        let mut ports = Vec::new();
        for c in doc["spec"]["containers"].as_vec().expect("containers") {
            for p in c["ports"].as_vec().into_iter().flatten() {
                ports.push(NamedPort {
                    name: p["name"].as_str().unwrap().into(),
                    port: u16::try_from(p["containerPort"].as_integer().unwrap()).unwrap(),
                    protocol: Protocol::from_k8s(p["protocol"].as_str().unwrap()).unwrap(),
                });
            }
        }
        ports.sort();
        assert_eq!(ports[..], ep.ports[..], "{}", ep.id);
        for (k, v) in &ep.labels {
            assert_eq!(doc["metadata"]["labels"][k].as_str(), Some(v));
        }
    }
}

/// The real check of (b) against (a): netpol's own loader reads the YAML back into the
/// model the generator built directly.
#[test]
fn loading_the_yaml_gives_the_direct_model() {
    let m = generate(&small(), 9);
    let policies = [Input {
        path: "policies.yaml".into(),
        text: policies_yaml(&m).into(),
    }];
    let inventory = [Input {
        path: "inventory.yaml".into(),
        text: inventory_yaml(&m).into(),
    }];
    let loaded = rules_compiler::load_model(&policies, &inventory)
        .unwrap_or_else(|e| panic!("generated YAML rejected:\n{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mut model = loaded.model;
    strip_sources(&mut model);
    assert_eq!(model.inventory.namespaces, m.inventory.namespaces);
    for (got, want) in model.inventory.endpoints.iter().zip(&m.inventory.endpoints) {
        assert_eq!(got, want);
    }
    for (got, want) in model.policies.iter().zip(&m.policies) {
        assert_eq!(got, want);
    }
    assert_eq!(model, m);
}

/// The same with ClusterNetworkPolicies beside the NetworkPolicies: their YAML loads
/// back to the directly built objects, and the only warnings are the priority ties the
/// generator makes on purpose (one per tied object).
#[test]
fn loading_the_yaml_gives_the_direct_model_with_cluster_policies() {
    let mut m = generate(&small(), 9);
    m.cluster_policies = cluster::cluster_policies(&cluster::ClusterScale::default(), 9);
    assert_eq!(m.cluster_policies.len(), 200);
    assert!(m
        .cluster_policies
        .iter()
        .all(|p| p.ingress.len() + p.egress.len() == 25));
    let policies = [
        Input {
            path: "policies.yaml".into(),
            text: policies_yaml(&m).into(),
        },
        Input {
            path: "cluster.yaml".into(),
            text: crate::yaml::cluster_policies_yaml(&m).into(),
        },
    ];
    let inventory = [Input {
        path: "inventory.yaml".into(),
        text: inventory_yaml(&m).into(),
    }];
    let loaded = rules_compiler::load_model(&policies, &inventory)
        .unwrap_or_else(|e| panic!("generated YAML rejected:\n{e}"));
    let ties = m
        .cluster_policies
        .windows(2)
        .filter(|w| (w[0].tier, w[0].priority) == (w[1].tier, w[1].priority))
        .count();
    assert!(ties > 0, "the generator makes some priority ties");
    assert_eq!(loaded.warnings.len(), ties, "{:?}", loaded.warnings);
    assert!(loaded
        .warnings
        .iter()
        .all(|w| w.message.contains("priority")));
    let mut model = loaded.model;
    strip_sources(&mut model);
    for (got, want) in model.cluster_policies.iter().zip(&m.cluster_policies) {
        assert_eq!(got, want);
    }
    assert_eq!(model, m);
}

/// The cluster policies are the same for the same seed, differ for another, and mix
/// every action, both directions, networks, named ports and rules without protocols.
#[test]
fn cluster_policies_are_deterministic_and_mixed() {
    use rules_compiler::model::{Action, ClusterPeer, ClusterPort};
    let scale = cluster::ClusterScale::default();
    let a = cluster::cluster_policies(&scale, 1);
    assert_eq!(a, cluster::cluster_policies(&scale, 1));
    assert_ne!(a, cluster::cluster_policies(&scale, 2));
    let rules: Vec<_> = a
        .iter()
        .flat_map(|p| p.ingress.iter().chain(&p.egress))
        .collect();
    for action in [Action::Accept, Action::Deny, Action::Pass] {
        assert!(rules.iter().any(|r| r.action == action), "{action:?}");
    }
    assert!(rules.iter().any(|r| r.protocols.is_none()));
    assert!(rules
        .iter()
        .flat_map(|r| r.protocols.iter().flatten())
        .any(|p| matches!(p, ClusterPort::Named(_))));
    assert!(rules
        .iter()
        .flat_map(|r| &r.peers)
        .any(|p| matches!(p, ClusterPeer::Networks(_))));
    assert!(a
        .iter()
        .all(|p| p.ingress.len() <= 25 && p.egress.len() <= 25));
}

/// The YAML loader's fast path (rules-compiler `load/fast.rs`) accepts every document
/// of the generated kubectl-style input and gives exactly saphyr's trees.
#[test]
fn yaml_fast_path_accepts_the_generated_input_and_agrees_with_saphyr() {
    let mut model = generate(&small(), 7);
    model.cluster_policies = crate::cluster::cluster_policies(
        &crate::cluster::ClusterScale {
            admin: 3,
            baseline: 3,
            rules: 4,
        },
        7,
    );
    let limits = rules_compiler::load::Limits::default();
    for text in [
        policies_yaml(&model),
        inventory_yaml(&model),
        crate::yaml::cluster_policies_yaml(&model),
    ] {
        let c = rules_compiler::load::compare_with_saphyr(&text, &limits);
        assert_eq!(c.mismatch, None);
        assert!(c.chunks >= 6, "{c:?}");
        assert_eq!(c.declined, 0, "{c:?}");
    }
}
