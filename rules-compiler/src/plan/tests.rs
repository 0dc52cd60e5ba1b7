//! Tests of `plan::build`: layout per isolated/open endpoint and direction, port
//! resolution, constant rule count, determinism, and agreement with the semantic engine
//! (`Index::verdict`) on random models.

use super::*;
use crate::model::{Model, Peers, Ports, Protocol};
use crate::resolve::{EndpointId, Index};
use crate::testkit::*;

use Protocol::{Sctp, Tcp, Udp};

fn range(a: &str, b: &str) -> AddrRange {
    AddrRange {
        start: ip(a),
        end: ip(b),
    }
}

fn one(a: &str) -> AddrRange {
    range(a, a)
}

fn app(addr: AddrRange, proto: Protocol, lo: u16, hi: u16) -> AddrProtoPort {
    AddrProtoPort {
        addr,
        proto: proto.number(),
        ports: (lo, hi),
    }
}

fn build_for(model: &Model, locals: &[&str], options: &Options) -> Plan {
    let index = Index::new(model);
    let ids: Vec<EndpointId> = locals.iter().map(|id| ep(&index, id)).collect();
    build(&index, &ids, options)
}

fn addr_set<'p>(plan: &'p Plan, name: &str) -> &'p [AddrRange] {
    match &plan
        .set(name)
        .unwrap_or_else(|| panic!("no set {name}"))
        .elements
    {
        SetElements::Addr(v) => v,
        other => panic!("{name} is not an address set: {other:?}"),
    }
}

fn port_set<'p>(plan: &'p Plan, name: &str) -> &'p [AddrProtoPort] {
    match &plan
        .set(name)
        .unwrap_or_else(|| panic!("no set {name}"))
        .elements
    {
        SetElements::AddrProtoPort(v) => v,
        other => panic!("{name} is not an addr·proto·port set: {other:?}"),
    }
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<&str> {
    items.iter().map(name).collect()
}

#[test]
fn ingress_isolated_endpoint_gets_dispatch_chain_and_sets() {
    let model = payments_example().build();
    let plan = build_for(&model, &["payments/payments-api"], &Options::default());

    assert_eq!(plan.table, "netpol");
    assert_eq!(
        names(&plan.chains, |c| &c.name),
        ["input", "output", "in_payments_payments-api"]
    );
    assert_eq!(names(&plan.maps, |m| &m.name), ["ingress_v4", "ingress_v6"]);
    assert_eq!(
        names(&plan.sets, |s| &s.name),
        [
            "in_payments_payments-api_v4_ports",
            "in_payments_payments-api_v6_ports"
        ]
    );
    assert_eq!(
        plan.map("ingress_v4").unwrap().elements,
        vec![(ip("198.18.0.10"), "in_payments_payments-api".to_string())]
    );
    assert_eq!(
        plan.map("ingress_v6").unwrap().elements,
        vec![(ip("2001:db8::10"), "in_payments_payments-api".to_string())]
    );
    // Only checkout: frontend is in `web` but not `app: checkout`.
    assert_eq!(
        port_set(&plan, "in_payments_payments-api_v4_ports"),
        [app(one("198.18.1.2"), Tcp, 8080, 8080)]
    );
    assert_eq!(
        port_set(&plan, "in_payments_payments-api_v6_ports"),
        [app(one("2001:db8:1::2"), Tcp, 8080, 8080)]
    );

    let input = plan.chain("input").unwrap();
    assert_eq!(input.hook, Some(Hook::Input));
    assert_eq!(
        input.rules,
        vec![
            Stmt::CtEstablishedAccept,
            Stmt::CtInvalidDrop,
            Stmt::LoopbackAccept(Hook::Input),
            Stmt::NeighbourDiscoveryAccept,
            Stmt::Dispatch {
                family: Family::V4,
                field: AddrField::Daddr,
                map: "ingress_v4".into()
            },
            Stmt::Dispatch {
                family: Family::V6,
                field: AddrField::Daddr,
                map: "ingress_v6".into()
            },
        ]
    );
    // Egress is open: no dispatch at all on output.
    let output = plan.chain("output").unwrap();
    assert_eq!(output.hook, Some(Hook::Output));
    assert_eq!(
        output.rules,
        vec![
            Stmt::CtEstablishedAccept,
            Stmt::CtInvalidDrop,
            Stmt::LoopbackAccept(Hook::Output),
            Stmt::NeighbourDiscoveryAccept,
        ]
    );
    let chain = plan.chain("in_payments_payments-api").unwrap();
    assert_eq!(chain.hook, None);
    assert_eq!(
        chain.rules,
        vec![
            Stmt::AcceptAddrProtoPort {
                family: Family::V4,
                field: AddrField::Saddr,
                set: "in_payments_payments-api_v4_ports".into()
            },
            Stmt::AcceptAddrProtoPort {
                family: Family::V6,
                field: AddrField::Saddr,
                set: "in_payments_payments-api_v6_ports".into()
            },
            Stmt::Deny {
                action: DenyAction::Drop,
                comment: "deny ingress payments/payments-api".into()
            },
        ]
    );
    assert_eq!(
        plan.locals,
        vec![LocalEndpoint {
            id: oname("payments/payments-api"),
            ingress_chain: Some("in_payments_payments-api".into()),
            egress_chain: None,
            tier_chains: Vec::new(),
            shard_chains: Vec::new(),
        }]
    );
}

#[test]
fn egress_isolated_endpoint_dispatches_on_source_and_matches_destination() {
    let model = payments_example().build();
    let plan = build_for(&model, &["web/checkout"], &Options::default());
    assert_eq!(names(&plan.maps, |m| &m.name), ["egress_v4", "egress_v6"]);
    assert_eq!(
        names(&plan.chains, |c| &c.name),
        ["input", "output", "out_web_checkout"]
    );
    assert_eq!(
        names(&plan.sets, |s| &s.name),
        ["out_web_checkout_v4_ports", "out_web_checkout_v6_ports"]
    );
    // DNS from one policy, payments-api's named port `http` from the other.
    assert_eq!(
        port_set(&plan, "out_web_checkout_v4_ports"),
        [
            app(one("198.18.0.10"), Tcp, 8080, 8080),
            app(one("198.18.3.53"), Tcp, 53, 53),
            app(one("198.18.3.53"), Udp, 53, 53),
        ]
    );
    assert_eq!(
        port_set(&plan, "out_web_checkout_v6_ports"),
        [app(one("2001:db8::10"), Tcp, 8080, 8080)]
    );
    let output = plan.chain("output").unwrap();
    assert_eq!(
        &output.rules[4..],
        [
            Stmt::Dispatch {
                family: Family::V4,
                field: AddrField::Saddr,
                map: "egress_v4".into()
            },
            Stmt::Dispatch {
                family: Family::V6,
                field: AddrField::Saddr,
                map: "egress_v6".into()
            },
        ]
    );
    assert_eq!(plan.chain("input").unwrap().rules.len(), 4);
    assert_eq!(
        plan.chain("out_web_checkout").unwrap().rules,
        vec![
            Stmt::AcceptAddrProtoPort {
                family: Family::V4,
                field: AddrField::Daddr,
                set: "out_web_checkout_v4_ports".into()
            },
            Stmt::AcceptAddrProtoPort {
                family: Family::V6,
                field: AddrField::Daddr,
                set: "out_web_checkout_v6_ports".into()
            },
            Stmt::Deny {
                action: DenyAction::Drop,
                comment: "deny egress web/checkout".into()
            },
        ]
    );
}

#[test]
fn a_family_without_allowed_peers_gets_no_set_but_still_dispatches() {
    // frontend has v4 and v6; kube-dns, its only allowed peer, has v4 only.
    let model = payments_example()
        .endpoint(
            "web/frontend-v6",
            &[("app", "frontend")],
            &["198.18.1.4", "2001:db8:1::4"],
        )
        .build();
    let plan = build_for(&model, &["web/frontend-v6"], &Options::default());
    assert_eq!(names(&plan.maps, |m| &m.name), ["egress_v4", "egress_v6"]);
    assert_eq!(
        names(&plan.sets, |s| &s.name),
        ["out_web_frontend-v6_v4_ports"]
    );
    assert_eq!(
        plan.chain("out_web_frontend-v6").unwrap().rules.len(),
        2,
        "v4 look-up and deny"
    );
}

#[test]
fn sets_cover_only_the_families_the_local_endpoint_has() {
    // frontend is v4-only: an all-peers rule would otherwise add ::/0.
    let model = payments_example()
        .policy(egress_policy(
            "web/https-anywhere",
            sel(&[("app", "frontend")]),
            vec![rule(Peers::All, ports(vec![tcp(443)]))],
        ))
        .build();
    let plan = build_for(&model, &["web/frontend"], &Options::default());
    assert_eq!(names(&plan.maps, |m| &m.name), ["egress_v4"]);
    assert_eq!(
        names(&plan.sets, |s| &s.name),
        ["out_web_frontend_v4_ports"]
    );
    assert_eq!(
        port_set(&plan, "out_web_frontend_v4_ports"),
        [
            app(range("0.0.0.0", "198.18.3.52"), Tcp, 443, 443),
            app(one("198.18.3.53"), Tcp, 53, 53),
            app(one("198.18.3.53"), Tcp, 443, 443),
            app(one("198.18.3.53"), Udp, 53, 53),
            app(range("198.18.3.54", "255.255.255.255"), Tcp, 443, 443),
        ]
    );
}

#[test]
fn open_endpoint_gets_nothing_but_base_chains() {
    let model = payments_example().build();
    let plan = build_for(&model, &["kube-system/kube-dns"], &Options::default());
    assert!(plan.sets.is_empty());
    assert!(plan.maps.is_empty());
    assert_eq!(names(&plan.chains, |c| &c.name), ["input", "output"]);
    assert_eq!(plan.rule_count(), 8);
    assert_eq!(
        plan.locals,
        vec![LocalEndpoint {
            id: oname("kube-system/kube-dns"),
            ingress_chain: None,
            egress_chain: None,
            tier_chains: Vec::new(),
            shard_chains: Vec::new(),
        }]
    );
}

#[test]
fn empty_rules_isolate_and_deny_everything() {
    let model = ModelBuilder::new()
        .endpoint("x/a", &[], &["198.18.0.1", "2001:db8::1"])
        .policy(policy("x/deny-all", sel(&[]), Some(vec![]), Some(vec![])))
        .build();
    let plan = build_for(&model, &["x/a"], &Options::default());
    assert!(plan.sets.is_empty());
    assert_eq!(
        names(&plan.maps, |m| &m.name),
        ["egress_v4", "egress_v6", "ingress_v4", "ingress_v6"]
    );
    assert_eq!(
        plan.chain("in_x_a").unwrap().rules,
        vec![Stmt::Deny {
            action: DenyAction::Drop,
            comment: "deny ingress x/a".into()
        }]
    );
    assert_eq!(plan.chain("out_x_a").unwrap().rules.len(), 1);
}

#[test]
fn reject_option_reaches_every_deny() {
    let model = payments_example().build();
    let options = Options {
        deny: DenyAction::Reject,
        ..Default::default()
    };
    let plan = build_for(&model, &["payments/payments-api", "web/checkout"], &options);
    let denies: Vec<&Stmt> = plan
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .filter(|r| matches!(r, Stmt::Deny { .. }))
        .collect();
    assert_eq!(denies.len(), 2);
    assert!(denies.iter().all(|d| matches!(
        d,
        Stmt::Deny {
            action: DenyAction::Reject,
            ..
        }
    )));
}

#[test]
fn named_port_resolves_on_each_egress_peer() {
    let model = ModelBuilder::new()
        .endpoint("x/client", &[("app", "client")], &["198.18.0.1"])
        .endpoint("x/a", &[("role", "server")], &["198.18.0.10"])
        .named_ports("x/a", &[("http", 8080, Tcp)])
        .endpoint("x/b", &[("role", "server")], &["198.18.0.11"])
        .named_ports("x/b", &[("http", 9090, Tcp), ("http", 7070, Udp)])
        .endpoint("x/c", &[("role", "server")], &["198.18.0.12"])
        .policy(policy(
            "x/client-out",
            sel(&[("app", "client")]),
            None,
            Some(vec![rule(
                peers(vec![pods_in("x", sel(&[("role", "server")]))]),
                ports(vec![named(Tcp, "http"), port_range(Sctp, 5000, 5000)]),
            )]),
        ))
        .build();
    let plan = build_for(&model, &["x/client"], &Options::default());
    assert_eq!(
        port_set(&plan, "out_x_client_v4_ports"),
        [
            app(one("198.18.0.10"), Tcp, 8080, 8080),
            app(one("198.18.0.10"), Sctp, 5000, 5000),
            app(one("198.18.0.11"), Tcp, 9090, 9090),
            app(one("198.18.0.11"), Sctp, 5000, 5000),
            app(one("198.18.0.12"), Sctp, 5000, 5000),
        ]
    );
}

#[test]
fn named_port_on_ingress_resolves_on_the_local_endpoint() {
    let base = |local_ports: &[(&str, u16, Protocol)]| {
        ModelBuilder::new()
            .endpoint("x/server", &[("app", "s")], &["198.18.0.1"])
            .named_ports("x/server", local_ports)
            .policy(policy(
                "x/in",
                sel(&[("app", "s")]),
                Some(vec![rule(
                    peers(vec![ip_block("198.18.4.0/24", &[])]),
                    ports(vec![named(Tcp, "http")]),
                )]),
                None,
            ))
            .build()
    };
    let model = base(&[("http", 8443, Tcp)]);
    let plan = build_for(&model, &["x/server"], &Options::default());
    assert_eq!(
        port_set(&plan, "in_x_server_v4_ports"),
        [app(range("198.18.4.0", "198.18.4.255"), Tcp, 8443, 8443)]
    );
    // The local endpoint declares no such port: the rule allows nothing.
    let model = base(&[("http", 8443, Udp)]);
    let plan = build_for(&model, &["x/server"], &Options::default());
    assert!(plan.sets.is_empty());
    assert_eq!(plan.chain("in_x_server").unwrap().rules.len(), 1);
}

#[test]
fn ip_block_egress_carves_excepts_and_resolves_named_ports_on_endpoints_inside() {
    let model = ModelBuilder::new()
        .endpoint("x/client", &[("app", "client")], &["198.18.9.1"])
        .endpoint("y/inside", &[], &["198.18.0.20", "198.18.7.1"])
        .named_ports("y/inside", &[("web", 8080, Tcp)])
        .endpoint("y/excepted", &[], &["198.18.0.5"])
        .named_ports("y/excepted", &[("web", 8081, Tcp)])
        .policy(policy(
            "x/out",
            sel(&[("app", "client")]),
            None,
            Some(vec![rule(
                peers(vec![ip_block("198.18.0.0/24", &["198.18.0.0/28"])]),
                ports(vec![named(Tcp, "web"), port_range(Udp, 1000, 2000)]),
            )]),
        ))
        .build();
    let plan = build_for(&model, &["x/client"], &Options::default());
    // 198.18.7.1 of `inside` lies outside the block: no element for it.
    assert_eq!(
        port_set(&plan, "out_x_client_v4_ports"),
        [
            app(range("198.18.0.16", "198.18.0.19"), Udp, 1000, 2000),
            app(one("198.18.0.20"), Tcp, 8080, 8080),
            app(one("198.18.0.20"), Udp, 1000, 2000),
            app(range("198.18.0.21", "198.18.0.255"), Udp, 1000, 2000),
        ]
    );
}

#[test]
fn ipv6_block_with_except_and_any_port_protocol() {
    let model = ModelBuilder::new()
        .endpoint("x/a", &[], &["2001:db8::1"])
        .policy(policy(
            "x/in",
            sel(&[]),
            Some(vec![rule(
                peers(vec![ip_block("2001:db8:1::/48", &["2001:db8:1:8000::/49"])]),
                ports(vec![any_port(Udp), port_range(Tcp, 8000, 8100)]),
            )]),
            None,
        ))
        .build();
    let plan = build_for(&model, &["x/a"], &Options::default());
    assert_eq!(names(&plan.sets, |s| &s.name), ["in_x_a_v6_ports"]);
    let r = range("2001:db8:1::", "2001:db8:1:7fff:ffff:ffff:ffff:ffff");
    assert_eq!(
        port_set(&plan, "in_x_a_v6_ports"),
        [app(r, Tcp, 8000, 8100), app(r, Udp, 0, 65535)]
    );
    assert_eq!(names(&plan.maps, |m| &m.name), ["ingress_v6"]);
}

#[test]
fn all_peers_all_ports_swallow_every_narrower_rule() {
    let model = ModelBuilder::new()
        .endpoint("x/a", &[("app", "a")], &["198.18.0.1", "2001:db8::1"])
        .endpoint("x/b", &[], &["198.18.0.2"])
        .policy(policy(
            "x/narrow",
            sel(&[]),
            Some(vec![rule(
                peers(vec![pods_in("x", sel(&[]))]),
                ports(vec![tcp(80)]),
            )]),
            None,
        ))
        .policy(policy(
            "x/wide",
            sel(&[("app", "a")]),
            Some(vec![rule(Peers::All, Ports::All)]),
            None,
        ))
        .build();
    let plan = build_for(&model, &["x/a"], &Options::default());
    assert_eq!(
        names(&plan.sets, |s| &s.name),
        ["in_x_a_v4_all", "in_x_a_v6_all"]
    );
    assert_eq!(
        addr_set(&plan, "in_x_a_v4_all"),
        [range("0.0.0.0", "255.255.255.255")]
    );
    assert_eq!(
        addr_set(&plan, "in_x_a_v6_all"),
        [range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]
    );
}

#[test]
fn all_ports_peers_are_dropped_from_the_port_set() {
    let model = ModelBuilder::new()
        .endpoint("x/a", &[("app", "a")], &["198.18.0.1"])
        .endpoint("x/b", &[("app", "b")], &["198.18.0.2"])
        .endpoint("x/c", &[("app", "c")], &["198.18.0.3"])
        .policy(policy(
            "x/p",
            sel(&[("app", "a")]),
            Some(vec![
                rule(peers(vec![pods_in("x", sel(&[("app", "b")]))]), Ports::All),
                rule(
                    peers(vec![ip_block("198.18.0.0/30", &[])]),
                    ports(vec![tcp(22)]),
                ),
            ]),
            None,
        ))
        .build();
    let plan = build_for(&model, &["x/a"], &Options::default());
    assert_eq!(addr_set(&plan, "in_x_a_v4_all"), [one("198.18.0.2")]);
    assert_eq!(
        port_set(&plan, "in_x_a_v4_ports"),
        [
            app(range("198.18.0.0", "198.18.0.1"), Tcp, 22, 22),
            app(one("198.18.0.3"), Tcp, 22, 22),
        ]
    );
    assert_eq!(
        plan.chain("in_x_a").unwrap().rules[..2],
        [
            Stmt::AcceptAddr {
                family: Family::V4,
                field: AddrField::Saddr,
                set: "in_x_a_v4_all".into()
            },
            Stmt::AcceptAddrProtoPort {
                family: Family::V4,
                field: AddrField::Saddr,
                set: "in_x_a_v4_ports".into()
            },
        ]
    );
}

/// A model where `x/a` is isolated both ways, plus `extra` more policies selecting it,
/// each with its own peers and ports.
fn growing_model(extra: usize) -> Model {
    let mut b = ModelBuilder::new()
        .endpoint("x/a", &[("app", "a")], &["198.18.0.1", "2001:db8::1"])
        .endpoint("x/b", &[("app", "b")], &["198.18.0.2", "2001:db8::2"])
        .policy(policy(
            "x/base",
            sel(&[("app", "a")]),
            Some(vec![
                rule(Peers::All, ports(vec![tcp(443)])),
                rule(peers(vec![pods_in("x", sel(&[("app", "b")]))]), Ports::All),
            ]),
            Some(vec![rule(Peers::All, ports(vec![udp(53)]))]),
        ));
    for i in 0..extra {
        let i = u16::try_from(i).unwrap();
        b = b.policy(policy(
            &format!("x/p{i:03}"),
            sel(&[("app", "a")]),
            Some(vec![rule(
                peers(vec![ip_block(&format!("198.19.{i}.0/24"), &[])]),
                ports(vec![tcp(1000 + i)]),
            )]),
            Some(vec![rule(
                peers(vec![ip_block(&format!("2001:db8:{i:x}::/48"), &[])]),
                ports(vec![port_range(Tcp, 2000 + i, 3000 + i)]),
            )]),
        ));
    }
    b.build()
}

#[test]
fn rules_per_endpoint_chain_do_not_grow_with_policies() {
    let small = build_for(&growing_model(0), &["x/a"], &Options::default());
    let large = build_for(&growing_model(100), &["x/a"], &Options::default());
    for chain in ["in_x_a", "out_x_a", "input", "output"] {
        assert_eq!(
            small.chain(chain).unwrap().rules.len(),
            large.chain(chain).unwrap().rules.len(),
            "{chain}"
        );
    }
    assert_eq!(small.rule_count(), large.rule_count());
    // The 100 policies did arrive: in the sets, not in rules.
    assert!(large.element_count() >= small.element_count() + 200);
}

#[test]
fn same_inputs_same_plan_whatever_the_order_of_locals() {
    let model = growing_model(20);
    let a = build_for(&model, &["x/a", "x/b"], &Options::default());
    let b = build_for(&model, &["x/b", "x/a", "x/b"], &Options::default());
    assert_eq!(a, b);
    assert_eq!(names(&a.locals, |l| &l.id.name), ["a", "b"]);
}

#[test]
fn endpoint_chains_and_sets_are_sorted_by_name() {
    let model = payments_example().build();
    let index = Index::new(&model);
    let all: Vec<EndpointId> = (0..model.inventory.endpoints.len()).rev().collect();
    let plan = build(&index, &all, &Options::default());
    let chains = names(&plan.chains, |c| &c.name);
    assert_eq!(&chains[..2], ["input", "output"]);
    assert!(chains[2..].windows(2).all(|w| w[0] < w[1]), "{chains:?}");
    let sets = names(&plan.sets, |s| &s.name);
    assert!(sets.windows(2).all(|w| w[0] < w[1]), "{sets:?}");
    let maps = names(&plan.maps, |m| &m.name);
    assert!(maps.windows(2).all(|w| w[0] < w[1]), "{maps:?}");
    for m in &plan.maps {
        assert!(m.elements.windows(2).all(|w| w[0].0 < w[1].0));
    }
}

// Agreement with the semantics on random models is the property test in
// tests/suite/plan_matches_semantics.rs (one evaluator of plans, written for it).

/// Two real names whose hashed chain names collided (rules-compiler/testdata).
fn colliding_pair() -> (String, String) {
    let text = include_str!("../../testdata/chain-name-collision.txt");
    let mut names = text.lines().filter(|l| !l.starts_with('#'));
    let a = names.next().unwrap().to_string();
    let b = names.next().unwrap().to_string();
    (a, b)
}

#[test]
fn colliding_hashed_names_get_distinct_chains_and_sets() {
    let (a, b) = colliding_pair();
    let (ida, idb) = (format!("lab/{a}"), format!("lab/{b}"));
    assert_eq!(
        chain_name(Direction::Ingress, &oname(&ida)),
        chain_name(Direction::Ingress, &oname(&idb)),
        "the test data must collide under the plain naming"
    );
    let model = ModelBuilder::new()
        .endpoint(&ida, &[("app", "a")], &["198.18.1.10"])
        .endpoint(&idb, &[("app", "b")], &["198.18.1.11"])
        .endpoint("lab/client", &[("app", "client")], &["198.18.2.10"])
        .policy(ingress_policy(
            "lab/a-from-client",
            sel(&[("app", "a")]),
            vec![rule(
                peers(vec![pods_in("lab", sel(&[("app", "client")]))]),
                Ports::All,
            )],
        ))
        .policy(ingress_policy("lab/b-closed", sel(&[("app", "b")]), vec![]))
        .build();
    let plan = build_for(&model, &[&ida, &idb], &Options::default());

    let chains = names(&plan.chains, |c| &c.name);
    let mut unique = chains.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), chains.len(), "duplicate chains: {chains:?}");
    let sets = names(&plan.sets, |s| &s.name);
    let mut unique = sets.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), sets.len(), "duplicate sets: {sets:?}");

    let (la, lb) = (&plan.locals[0], &plan.locals[1]);
    assert_eq!(
        (la.id.to_string(), lb.id.to_string()),
        (ida.clone(), idb.clone())
    );
    let (ca, cb) = (
        la.ingress_chain.clone().unwrap(),
        lb.ingress_chain.clone().unwrap(),
    );
    assert_ne!(ca, cb);
    // Each address dispatches to its own endpoint's chain, and only a's chain allows.
    assert_eq!(
        plan.map("ingress_v4").unwrap().elements,
        vec![
            (ip("198.18.1.10"), ca.clone()),
            (ip("198.18.1.11"), cb.clone())
        ]
    );
    assert_eq!(plan.chain(&ca).unwrap().rules.len(), 2);
    assert_eq!(plan.chain(&cb).unwrap().rules.len(), 1);
    // Stable: the same input gives the same names.
    assert_eq!(plan, build_for(&model, &[&idb, &ida], &Options::default()));
}

const EVENTS: EventLog = EventLog {
    group: 7,
    rate: 20,
    burst: 50,
};

fn log(verdict: EventVerdict, direction: Direction) -> Stmt {
    Stmt::Log {
        verdict,
        direction,
        group: 7,
        limit: EVENTS_LIMIT.into(),
    }
}

/// x/a: enforced ingress allowing x/b on TCP 80, audit ingress allowing x/b on 8080
/// and an audit default-deny egress; x/b: nothing but the audit ingress.
fn audit_model() -> Model {
    let from_b = |port| {
        vec![rule(
            peers(vec![pods_in("x", sel(&[("app", "b")]))]),
            ports(vec![tcp(port)]),
        )]
    };
    ModelBuilder::new()
        .endpoint("x/a", &[("app", "a")], &["198.18.0.1"])
        .endpoint("x/b", &[("app", "b")], &["198.18.0.2"])
        .policy(ingress_policy("x/web", sel(&[("app", "a")]), from_b(80)))
        .policy(audit(ingress_policy("x/alt", sel(&[]), from_b(8080))))
        .policy(audit(egress_policy(
            "x/no-out",
            sel(&[("app", "a")]),
            vec![],
        )))
        .build()
}

#[test]
fn enforced_chains_use_e_only_and_audit_only_chains_f_with_an_audit_end() {
    let model = audit_model();
    let options = Options {
        events: Some(EVENTS),
        ..Default::default()
    };
    let plan = build_for(&model, &["x/a", "x/b"], &options);
    assert_eq!(
        names(&plan.chains, |c| &c.name),
        ["input", "output", "in_x_a", "in_x_b", "out_x_a"]
    );
    // E isolates x/a's ingress: only E's port 80, then log + deny.
    assert_eq!(
        port_set(&plan, "in_x_a_v4_ports"),
        [app(one("198.18.0.2"), Tcp, 80, 80)]
    );
    let rules = &plan.chain("in_x_a").unwrap().rules;
    assert_eq!(
        rules[1..],
        [
            log(EventVerdict::Deny, Direction::Ingress),
            Stmt::Deny {
                action: DenyAction::Drop,
                comment: "deny ingress x/a".into()
            }
        ]
    );
    // Only audit policies isolate x/b's ingress: their port 8080, then log + audit.
    assert_eq!(
        port_set(&plan, "in_x_b_v4_ports"),
        [app(one("198.18.0.2"), Tcp, 8080, 8080)]
    );
    assert_eq!(
        plan.chain("in_x_b").unwrap().rules[1..],
        [
            log(EventVerdict::Audit, Direction::Ingress),
            Stmt::Audit {
                comment: "audit ingress x/b".into()
            }
        ]
    );
    assert_eq!(
        plan.chain("out_x_a").unwrap().rules,
        [
            log(EventVerdict::Audit, Direction::Egress),
            Stmt::Audit {
                comment: "audit egress x/a".into()
            }
        ]
    );
    assert_eq!(
        plan.limits(),
        [RateLimit::new(EVENTS_LIMIT.into(), 20, 50).unwrap()]
    );
}

/// `growing_model(0)` plus `extra` audit policies, half selecting x/a (isolated by
/// enforced x/base) and half x/b (isolated by nothing enforced), both ways.
fn growing_audit_model(extra: u16) -> Model {
    let mut b = ModelBuilder::new()
        .endpoint("x/a", &[("app", "a")], &["198.18.0.1", "2001:db8::1"])
        .endpoint("x/b", &[("app", "b")], &["198.18.0.2", "2001:db8::2"])
        .policy(policy(
            "x/base",
            sel(&[("app", "a")]),
            Some(vec![rule(Peers::All, ports(vec![tcp(443)]))]),
            Some(vec![rule(Peers::All, ports(vec![udp(53)]))]),
        ));
    for i in 0..extra {
        let app = if i % 2 == 0 { "a" } else { "b" };
        b = b.policy(audit(policy(
            &format!("x/audit{i:03}"),
            sel(&[("app", app)]),
            Some(vec![rule(
                peers(vec![ip_block(&format!("198.19.{i}.0/24"), &[])]),
                ports(vec![tcp(1000 + i)]),
            )]),
            Some(vec![rule(
                peers(vec![ip_block(&format!("2001:db8:{i:x}::/48"), &[])]),
                ports(vec![udp(2000 + i)]),
            )]),
        )));
    }
    b.build()
}

#[test]
fn audit_policies_add_elements_not_rules_and_logs_come_after_every_accept() {
    let options = Options {
        events: Some(EVENTS),
        ..Default::default()
    };
    let small = build_for(&growing_audit_model(2), &["x/a", "x/b"], &options);
    let large = build_for(&growing_audit_model(100), &["x/a", "x/b"], &options);
    for chain in ["in_x_a", "out_x_a", "in_x_b", "out_x_b", "input", "output"] {
        assert_eq!(
            small.chain(chain).unwrap().rules.len(),
            large.chain(chain).unwrap().rules.len(),
            "{chain}"
        );
    }
    assert_eq!(small.rule_count(), large.rule_count());
    assert!(large.element_count() >= small.element_count() + 98);
    // The allowed path meets no log: in every endpoint chain the log is the rule
    // before the last (the deny or the audit accept), after every accept of an
    // allowed set.
    for chain in large
        .chains
        .iter()
        .filter(|c| !matches!(&*c.name, "input" | "output"))
    {
        let rules = &chain.rules;
        let logs: Vec<usize> = (0..rules.len())
            .filter(|&i| matches!(rules[i], Stmt::Log { .. }))
            .collect();
        assert_eq!(logs, [rules.len() - 2], "{}: {rules:?}", chain.name);
        assert!(
            matches!(rules.last(), Some(Stmt::Deny { .. } | Stmt::Audit { .. })),
            "{}: {rules:?}",
            chain.name
        );
    }
}

#[test]
fn failsafe_entries_are_sets_in_the_base_chains_before_the_dispatch() {
    let failsafe: Vec<Failsafe> = [
        "ingress:TCP:22",
        "ingress:UDP:5000-5010:198.18.0.0/15",
        "egress:TCP:443:2001:db8::/32",
    ]
    .iter()
    .map(|t| t.parse().unwrap())
    .collect();
    let options = Options {
        failsafe,
        ..Default::default()
    };
    let plan = build_for(&growing_model(0), &["x/a"], &options);
    let all6 = range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    // SSH from anywhere, in each family; the UDP range from the IPv4 CIDR only (the
    // address ranges split where they overlap, as concatenated sets need).
    let cidr = range("198.18.0.0", "198.19.255.255");
    assert_eq!(
        port_set(&plan, "failsafe_in_v4_ports"),
        [
            app(range("0.0.0.0", "198.17.255.255"), Tcp, 22, 22),
            app(cidr, Tcp, 22, 22),
            app(cidr, Udp, 5000, 5010),
            app(range("198.20.0.0", "255.255.255.255"), Tcp, 22, 22),
        ]
    );
    assert_eq!(
        port_set(&plan, "failsafe_in_v6_ports"),
        [app(all6, Tcp, 22, 22)]
    );
    assert_eq!(
        port_set(&plan, "failsafe_out_v6_ports"),
        [app(
            range("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
            Tcp,
            443,
            443
        )]
    );
    assert!(plan.set("failsafe_out_v4_ports").is_none());
    // After conntrack, loopback and neighbour discovery, before any dispatch; the
    // peer's address: the source coming in, the destination going out.
    let input = &plan.chain("input").unwrap().rules;
    assert_eq!(
        input[4..6],
        [
            Stmt::AcceptAddrProtoPort {
                family: Family::V4,
                field: AddrField::Saddr,
                set: "failsafe_in_v4_ports".into()
            },
            Stmt::AcceptAddrProtoPort {
                family: Family::V6,
                field: AddrField::Saddr,
                set: "failsafe_in_v6_ports".into()
            },
        ]
    );
    assert!(matches!(input[6], Stmt::Dispatch { .. }), "{input:?}");
    let output = &plan.chain("output").unwrap().rules;
    assert_eq!(
        output[4],
        Stmt::AcceptAddrProtoPort {
            family: Family::V6,
            field: AddrField::Daddr,
            set: "failsafe_out_v6_ports".into()
        }
    );
    assert!(matches!(output[5], Stmt::Dispatch { .. }), "{output:?}");
    // The endpoint chains are as without a failsafe.
    let bare = build_for(&growing_model(0), &["x/a"], &Options::default());
    assert_eq!(plan.chain("in_x_a"), bare.chain("in_x_a"));
    assert_eq!(bare.chain("input").unwrap().rules.len(), 6);
}

#[test]
fn without_events_no_log_rule_and_no_limit() {
    let plan = build_for(&audit_model(), &["x/a", "x/b"], &Options::default());
    assert!(plan.limits().is_empty());
    assert!(!plan
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .any(|r| matches!(r, Stmt::Log { .. })));
    assert_eq!(
        plan.chain("out_x_a").unwrap().rules,
        [Stmt::Audit {
            comment: "audit egress x/a".into()
        }]
    );
    // Nothing isolated, nothing logged: no limit either.
    let open = ModelBuilder::new()
        .endpoint("x/a", &[], &["198.18.0.1"])
        .build();
    let options = Options {
        events: Some(EVENTS),
        ..Default::default()
    };
    assert!(build_for(&open, &["x/a"], &options).limits().is_empty());
}

#[test]
fn host_wide_audit_ends_enforced_chains_in_audit() {
    let options = Options {
        mode: Mode::Audit,
        events: Some(EVENTS),
        ..Default::default()
    };
    let plan = build_for(&audit_model(), &["x/a"], &options);
    assert_eq!(
        plan.chain("in_x_a").unwrap().rules[1..],
        [
            log(EventVerdict::Audit, Direction::Ingress),
            Stmt::Audit {
                comment: "audit ingress x/a".into()
            }
        ]
    );
    assert!(!plan
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .any(|r| matches!(r, Stmt::Deny { .. })));
}

/// `x/s` (198.18.0.1) takes TCP 80 and UDP 53 from `clients` pods `x/c{i}`, each at
/// `198.18.1.{2i}` (every other address, so their elements do not merge), and UDP 5000
/// from 198.18.0.0/23, whose gaps between the clients become range elements.
fn many_peers(clients: &[u32], relabel: Option<u32>) -> Model {
    let mut b = ModelBuilder::new().endpoint("x/s", &[("app", "s")], &["198.18.0.1"]);
    for &i in clients {
        let app = if relabel == Some(i) { "other" } else { "c" };
        let addr = format!("198.18.{}.{}", 1 + i / 128, (2 * i) % 256);
        b = b.endpoint(&format!("x/c{i}"), &[("app", app)], &[&addr]);
    }
    b.policy(ingress_policy(
        "x/allow",
        sel(&[("app", "s")]),
        vec![
            rule(
                peers(vec![pods_in("x", sel(&[("app", "c")]))]),
                ports(vec![tcp(80), udp(53)]),
            ),
            rule(
                peers(vec![ip_block("198.18.0.0/23", &[])]),
                ports(vec![udp(5000)]),
            ),
        ],
    ))
    .build()
}

fn sharded(limit: usize) -> Options {
    Options {
        shard_above: limit,
        ..Options::default()
    }
}

#[test]
fn a_large_port_set_is_sharded_by_address_block_behind_one_map() {
    let clients: Vec<u32> = (0..64).collect();
    let model = many_peers(&clients, None);
    let whole = build_for(&model, &["x/s"], &Options::default());
    let plan = build_for(&model, &["x/s"], &sharded(16));
    let SetElements::AddrProtoPort(all) = &whole.set("in_x_s_v4_ports").unwrap().elements else {
        panic!("not sharded at the default limit")
    };
    assert!(all.len() > 16, "{}", all.len());
    // The chain looks the shard map up where the set was; the same rule count.
    let chain = plan.chain("in_x_s").unwrap();
    assert_eq!(
        chain.rules.len(),
        whole.chain("in_x_s").unwrap().rules.len()
    );
    assert_eq!(
        chain.rules[0],
        Stmt::TierClass {
            family: Family::V4,
            field: AddrField::Saddr,
            map: "in_x_s_v4_shards".into()
        }
    );
    let SetElements::AddrVerdict(map) = &plan.set("in_x_s_v4_shards").unwrap().elements else {
        panic!("no shard map")
    };
    assert!(map.len() > 2, "{}", map.len());
    let mut total = 0;
    for (k, (block, verdict)) in map.iter().enumerate() {
        let name = format!("in_x_s_v4_shard_{k}");
        assert_eq!(verdict, &TierVerdict::Jump(name.clone()));
        // An aligned block, each shard's elements inside it, at most the limit.
        let (_, lo) = intervals::to_u128(block.start);
        let (_, hi) = intervals::to_u128(block.end);
        assert!((hi - lo + 1).is_power_of_two() && lo % (hi - lo + 1) == 0);
        assert_eq!(
            plan.chain(&name).unwrap().rules,
            [Stmt::AcceptAddrProtoPort {
                family: Family::V4,
                field: AddrField::Saddr,
                set: format!("{name}_ports")
            }]
        );
        let set = apps(&plan, &format!("{name}_ports"));
        assert!(!set.is_empty() && set.len() <= 16);
        assert!(set
            .iter()
            .all(|e| block.contains(&e.addr.start) && block.contains(&e.addr.end)));
        total += set.len();
        assert!(plan.locals[0].shard_chains.contains(&ShardChain {
            direction: Direction::Ingress,
            chain: name
        }));
    }
    // Ranges across a block boundary are cut there: more elements, never fewer.
    assert!(total > all.len(), "{total} vs {}", all.len());
    // The same verdict for every packet as the unsharded plan.
    for host in 0..512u32 {
        let saddr = ip(&format!("198.18.{}.{}", host / 256, host % 256));
        for (proto, dport) in [(6, 80), (17, 53), (17, 5000), (6, 81), (1, 0)] {
            let p = Packet {
                saddr,
                daddr: ip("198.18.0.1"),
                proto,
                dport,
                icmpv6_type: None,
            };
            assert_eq!(
                plan.verdict(Hook::Input, &p).outcome,
                whole.verdict(Hook::Input, &p).outcome,
                "{p:?}"
            );
        }
    }
    assert_eq!(
        plan.owner("in_x_s_v4_shard_0").unwrap().1,
        Direction::Ingress
    );
}

#[test]
fn one_peer_edits_of_a_sharded_set_change_one_shard_and_a_new_block_is_structural() {
    let clients: Vec<u32> = (0..64).collect();
    let options = sharded(16);
    let old = build_for(&many_peers(&clients, None), &["x/s"], &options);
    let shard_sets =
        |d: &Delta| -> Vec<String> { d.sets().iter().map(|s| s.name.clone()).collect() };
    // A peer that no longer matches, and one readdressed within its block.
    let removed = build_for(&many_peers(&clients, Some(5)), &["x/s"], &options);
    let readdressed = {
        let mut m = many_peers(&clients, None);
        let c5 = m
            .inventory
            .endpoints
            .iter_mut()
            .find(|e| e.id == oname("x/c5"))
            .unwrap();
        c5.ips = [ip("198.18.1.11")].into();
        m
    };
    let readdressed = build_for(&readdressed, &["x/s"], &options);
    // x/c5 is 198.18.1.10; blocks there hold 4 clients (12 elements and 4 gaps).
    let block = old
        .locals
        .first()
        .and_then(|l| {
            l.shard_chains.iter().find(|c| {
                apps(&old, &format!("{}_ports", c.chain))
                    .iter()
                    .any(|e| e.addr.contains(&ip("198.18.1.10")))
            })
        })
        .map(|c| format!("{}_ports", c.chain))
        .unwrap();
    for new in [&removed, &readdressed] {
        let d = delta(&old, new).expect("an element change");
        assert_eq!(shard_sets(&d), std::slice::from_ref(&block), "{d}");
        assert_eq!(d.apply(&old), *new);
    }
    // Clients in a block that had none: a new shard, so new chains and sets.
    let more: Vec<u32> = (0..64).chain(200..240).collect();
    let grown = build_for(&many_peers(&more, None), &["x/s"], &options);
    assert!(delta(&old, &grown).is_err());
    // Unsharded against sharded: the set changes kind.
    let whole = build_for(&many_peers(&clients, None), &["x/s"], &Options::default());
    assert!(delta(&whole, &old).is_err());
}

fn apps<'p>(plan: &'p Plan, name: &str) -> &'p [AddrProtoPort] {
    match &plan.set(name).unwrap().elements {
        SetElements::AddrProtoPort(v) => v,
        other => panic!("{name}: {other:?}"),
    }
}
