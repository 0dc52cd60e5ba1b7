//! The connectivity diff on small models built in code: both sides combined, ipBlock
//! peers and their excepts, named ports, families, "all ports" and port 0, endpoints
//! that come and go, and the three layouts.

use super::*;
use crate::model::Protocol::{Sctp, Tcp, Udp};
use crate::model::{Peers, Ports, NAMESPACE_NAME_LABEL};
use crate::plan::Options;
use crate::testkit::*;
use crate::Target;

/// The plan that makes every endpoint local, and the model's ends.
fn whole(model: &Model) -> (Ends, Plan) {
    let names: Vec<ObjectName> = model
        .inventory
        .endpoints
        .iter()
        .map(|e| e.id.clone())
        .collect();
    let plan = crate::compile(model, Target::Named(&names), &Options::default())
        .unwrap()
        .plan;
    (Ends::of(model), plan)
}

fn diff_of(old: &Model, new: &Model) -> Diff {
    let (a, b) = (whole(old), whole(new));
    diff(
        Side {
            ends: &a.0,
            plan: &a.1,
        },
        Side {
            ends: &b.0,
            plan: &b.1,
        },
    )
}

/// `+ from -> to: label` / `- …` lines, one per change set.
fn lines(d: &Diff) -> Vec<String> {
    let mut out = Vec::new();
    for p in &d.pairs {
        for (sign, sets) in [('+', p.added()), ('-', p.removed())] {
            for (tag, set) in sets {
                out.push(format!(
                    "{sign} {} -> {}: {}",
                    p.from,
                    p.to,
                    text::tagged_label(tag, &set)
                ));
            }
        }
    }
    out
}

/// web/frontend may call payments-api on its named port `http`, from both sides.
fn frontend_to_api() -> Vec<crate::model::Policy> {
    vec![
        ingress_policy(
            "payments/allow-frontend",
            sel(&[("app", "payments-api")]),
            vec![rule(
                peers(vec![ns_and_pods(
                    sel(&[("name", "web")]),
                    sel(&[("app", "frontend")]),
                )]),
                ports(vec![named(Tcp, "http")]),
            )],
        ),
        egress_policy(
            "web/frontend-to-payments",
            sel(&[("app", "frontend")]),
            vec![rule(
                peers(vec![ns_and_pods(
                    sel(&[(NAMESPACE_NAME_LABEL, "payments")]),
                    sel(&[("app", "payments-api")]),
                )]),
                ports(vec![tcp(8080)]),
            )],
        ),
    ]
}

#[test]
fn a_flow_changes_only_when_both_sides_allow_it() {
    let old = payments_example().build();
    // The ingress policy alone changes nothing: frontend's egress still denies.
    let ingress_only = payments_example()
        .policy(frontend_to_api().remove(0))
        .build();
    assert_eq!(lines(&diff_of(&old, &ingress_only)), Vec::<String>::new());
    let mut b = payments_example();
    for p in frontend_to_api() {
        b = b.policy(p);
    }
    let new = b.build();
    let d = diff_of(&old, &new);
    // frontend has IPv4 only: the change holds for every family they share.
    assert_eq!(
        lines(&d),
        ["+ web/frontend -> payments/payments-api: 8080/TCP"]
    );
    assert_eq!(
        d.summary(),
        Summary {
            allowed: 1,
            denied: 0
        }
    );
    let back = diff_of(&new, &old);
    assert_eq!(
        lines(&back),
        ["- web/frontend -> payments/payments-api: 8080/TCP"]
    );
    assert!(diff_of(&new, &new).pairs.is_empty());
}

#[test]
fn json_has_one_change_per_protocol_with_port_ranges() {
    let old = payments_example().build();
    let mut b = payments_example();
    for p in frontend_to_api() {
        b = b.policy(p);
    }
    let d = diff_of(&old, &b.build());
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["changes"],
        serde_json::json!([{
            "from": "web/frontend",
            "to": "payments/payments-api",
            "family": "any",
            "protocol": "TCP",
            "ports": [[8080, 8080]],
            "before": "denied",
            "after": "allowed"
        }])
    );
    assert_eq!(json["endpoints_added"], serde_json::json!([]));
}

#[test]
fn ip_block_peers_are_regions_between_named_cidrs() {
    let old = payments_example().build();
    // worker may reach the internet except 10.0.0.0/8, on 443/TCP.
    let new = payments_example()
        .policy(egress_policy(
            "analytics/out",
            sel(&[]),
            vec![rule(
                peers(vec![ip_block("0.0.0.0/0", &["10.0.0.0/8"])]),
                ports(vec![tcp(443)]),
            )],
        ))
        .build();
    let d = diff_of(&old, &new);
    let blocks: Vec<String> = d
        .blocks
        .iter()
        .map(|b| format!("{} {}", b.cidr, b.example))
        .collect();
    assert_eq!(blocks, ["0.0.0.0/0 0.0.0.0", "10.0.0.0/8 10.0.0.0"]);
    let l = lines(&d);
    // Worker was open: now only 443/TCP outside 10/8, nothing inside it; its other
    // egress (to every endpoint) is gone too.
    assert!(
        l.contains(&"- analytics/worker -> 10.0.0.0/8: all".to_string()),
        "{l:#?}"
    );
    assert!(
        l.contains(
            &"- analytics/worker -> 0.0.0.0/0: 0-442,444-65535/TCP, */UDP+SCTP, other".to_string()
        ),
        "{l:#?}"
    );
    assert!(
        l.contains(
            &"- analytics/worker -> kube-system/kube-dns: 0-442,444-65535/TCP, */UDP+SCTP, other"
                .to_string()
        ),
        "{l:#?}"
    );
    // Ingress from blocks is unchanged (nothing isolates the worker's ingress).
    assert!(
        !l.iter().any(|x| x.contains("0.0.0.0/0 -> analytics")),
        "{l:#?}"
    );
}

#[test]
fn a_block_region_skips_endpoint_addresses_and_empty_regions_are_no_peers() {
    let m = payments_example()
        .policy(ingress_policy(
            "payments/blocks",
            sel(&[("app", "payments-api")]),
            vec![rule(
                peers(vec![
                    // Holds only payments-api's own address: no region.
                    ip_block("198.18.0.10/32", &[]),
                    // Starts at kube-dns' address: the example steps past it.
                    ip_block("198.18.3.53/31", &[]),
                ]),
                Ports::All,
            )],
        ))
        .build();
    let d = diff_of(&m, &m);
    let blocks: Vec<String> = d
        .blocks
        .iter()
        .map(|b| format!("{} {}", b.cidr, b.example))
        .collect();
    assert_eq!(blocks, ["198.18.3.52/31 198.18.3.52"]);
}

#[test]
fn families_are_tagged_when_they_differ() {
    let old = payments_example().build();
    // checkout (v4 and v6) may reach payments-api from web's v4 range only, on 9000.
    let new = payments_example()
        .policy(ingress_policy(
            "payments/v4-only",
            sel(&[("app", "payments-api")]),
            vec![rule(
                peers(vec![ip_block("198.18.1.0/24", &[])]),
                ports(vec![tcp(9000), tcp(8080)]),
            )],
        ))
        .policy(egress_policy(
            "web/checkout-9000",
            sel(&[("app", "checkout")]),
            vec![rule(Peers::All, ports(vec![tcp(9000)]))],
        ))
        .build();
    let l = lines(&diff_of(&old, &new));
    assert!(
        l.contains(&"+ web/checkout -> payments/payments-api: 9000/TCP (IPv4 only)".to_string()),
        "{l:#?}"
    );
    assert!(
        l.contains(&"+ 198.18.1.0/24 -> payments/payments-api: 8080,9000/TCP".to_string()),
        "{l:#?}"
    );
}

#[test]
fn all_ports_of_a_protocol_include_port_0_and_differ_from_no_ports() {
    let with = |p: Ports| {
        payments_example()
            .policy(ingress_policy(
                "analytics/in",
                sel(&[]),
                vec![rule(peers(vec![pods_in("analytics", sel(&[]))]), p)],
            ))
            .endpoint("analytics/batch", &[], &["198.18.2.5"])
            .build()
    };
    let any_tcp = with(ports(vec![any_port(Tcp)]));
    let ranged = with(ports(vec![port_range(Tcp, 1, 65535)]));
    let everything = with(Ports::All);
    assert_eq!(
        lines(&diff_of(&ranged, &any_tcp)),
        [
            "+ analytics/worker -> analytics/batch: 0/TCP",
            "+ analytics/batch -> analytics/worker: 0/TCP"
        ]
    );
    assert_eq!(
        lines(&diff_of(&any_tcp, &everything)),
        [
            "+ analytics/worker -> analytics/batch: */UDP+SCTP, other",
            "+ analytics/batch -> analytics/worker: */UDP+SCTP, other"
        ]
    );
    let udp_sctp = with(ports(vec![any_port(Udp), any_port(Sctp), udp(53)]));
    assert_eq!(
        lines(&diff_of(&udp_sctp, &any_tcp))[0],
        "+ analytics/worker -> analytics/batch: */TCP"
    );
}

#[test]
fn adjacent_and_overlapping_ranges_change_only_what_differs() {
    let with = |list: Vec<crate::model::PortRule>| {
        payments_example()
            .policy(ingress_policy(
                "payments/ranges",
                sel(&[("app", "payments-api")]),
                vec![rule(
                    peers(vec![ip_block("192.0.2.0/24", &[])]),
                    ports(list),
                )],
            ))
            .build()
    };
    let old = with(vec![port_range(Tcp, 1000, 1999), tcp(2000)]);
    let new = with(vec![port_range(Tcp, 1500, 2500), tcp(999)]);
    assert_eq!(
        lines(&diff_of(&old, &new)),
        [
            "+ 192.0.2.0/24 -> payments/payments-api: 999,2001-2500/TCP",
            "- 192.0.2.0/24 -> payments/payments-api: 1000-1499/TCP"
        ]
    );
}

#[test]
fn named_ports_resolve_on_each_destination() {
    // checkout's egress names `http`: 8080 on payments-api, 9090 on a second API.
    let api2 = |b: crate::testkit::ModelBuilder| {
        b.endpoint(
            "payments/api2",
            &[("app", "payments-api")],
            &["198.18.0.11"],
        )
        .named_ports("payments/api2", &[("http", 9090, Tcp)])
    };
    let old = api2(payments_example()).build();
    let new = api2(payments_example())
        .policy(ingress_policy(
            "payments/all-from-web",
            sel(&[]),
            vec![rule(
                peers(vec![ns_and_pods(sel(&[("name", "web")]), sel(&[]))]),
                Ports::All,
            )],
        ))
        .build();
    let l = lines(&diff_of(&old, &new));
    // payments-api admitted checkout on 8080 already; api2 now admits it on its own
    // `http`, which checkout's egress allows there.
    assert_eq!(l, ["+ web/checkout -> payments/api2: 9090/TCP"]);
}

#[test]
fn endpoints_that_come_or_go_have_all_their_flows_added_or_removed() {
    let old = payments_example().build();
    let new = payments_example()
        .endpoint("analytics/batch", &[], &["198.18.2.5"])
        .build();
    let d = diff_of(&old, &new);
    assert_eq!(d.endpoints_added, [ObjectName::new("analytics", "batch")]);
    let l = lines(&d);
    assert!(
        l.contains(&"+ analytics/worker -> analytics/batch: all".to_string()),
        "{l:#?}"
    );
    assert!(
        l.iter()
            .all(|x| x.starts_with('+') && x.contains("analytics/batch")),
        "{l:#?}"
    );
    let back = diff_of(&new, &old);
    assert_eq!(
        back.endpoints_removed,
        [ObjectName::new("analytics", "batch")]
    );
    assert_eq!(back.summary().denied, d.summary().allowed);
    assert!(back
        .render_text()
        .contains("gone endpoints (every flow to or from them is removed): analytics/batch"));
}

#[test]
fn local_pairs_judge_only_this_hosts_chains() {
    let old = payments_example().build();
    let ingress_only = payments_example()
        .policy(frontend_to_api().remove(0))
        .build();
    // On payments-api's host the ingress change is all there is: frontend's own egress
    // is another host's business.
    let local = [ObjectName::new("payments", "payments-api")];
    let plan = |m: &Model| {
        crate::compile(m, Target::Named(&local), &Options::default())
            .unwrap()
            .plan
    };
    let (pa, pb) = (Ends::of(&old), Ends::of(&ingress_only));
    let (a, b) = (plan(&old), plan(&ingress_only));
    let s = summary(
        Side {
            ends: &pa,
            plan: &a,
        },
        Side {
            ends: &pb,
            plan: &b,
        },
    );
    assert_eq!(
        s,
        Summary {
            allowed: 1,
            denied: 0
        }
    );
    let d = diff(
        Side {
            ends: &pa,
            plan: &a,
        },
        Side {
            ends: &pb,
            plan: &b,
        },
    );
    assert_eq!(
        lines(&d),
        ["+ web/frontend -> payments/payments-api: 8080/TCP"]
    );
    assert_eq!(s.to_string(), "+1 flow allowed, -0 denied");
}

#[test]
fn text_groups_by_destination() {
    let old = payments_example().build();
    let mut b = payments_example();
    for p in frontend_to_api() {
        b = b.policy(p);
    }
    let text = diff_of(&old, &b.build()).render_text();
    assert_eq!(
        text,
        "connectivity: +1 flow allowed, -0 denied\n\npayments/payments-api\n  + web/frontend  8080/TCP\n"
    );
}

#[test]
fn dot_clusters_namespaces_and_colours_a_diff() {
    let old = payments_example().build();
    let mut b = payments_example();
    for p in frontend_to_api() {
        b = b.policy(p);
    }
    let new = b.build();
    let (a, b) = (whole(&old), whole(&new));
    let (sa, sb) = (
        Side {
            ends: &a.0,
            plan: &a.1,
        },
        Side {
            ends: &b.0,
            plan: &b.1,
        },
    );
    let g = graph(sa).render_dot();
    assert!(g.starts_with("digraph netpol {"), "{g}");
    assert!(
        g.contains("subgraph \"cluster_payments\" {\n    label=\"payments\";"),
        "{g}"
    );
    assert!(
        g.contains(
            "\"web/checkout\" -> \"payments/payments-api\" [label=\"8080/TCP\", color=\"black\""
        ),
        "{g}"
    );
    assert!(
        g.contains("\"web/checkout\" -> \"kube-system/kube-dns\" [label=\"53/TCP+UDP\""),
        "{g}"
    );
    assert!(
        !g.contains("\"web/frontend\" -> \"payments/payments-api\""),
        "{g}"
    );
    let d = diff_graph(sa, sb).render_dot();
    assert!(d.contains("\"web/frontend\" -> \"payments/payments-api\" [label=\"+ 8080/TCP\", color=\"#1a7f37\""), "{d}");
    assert!(
        d.contains(
            "\"web/checkout\" -> \"payments/payments-api\" [label=\"8080/TCP\", color=\"#8c959f\""
        ),
        "{d}"
    );
}

/// [`each_pair`] of `old` and `new` both ways, skipping still ends and judging every
/// pair, for `locals` (every endpoint when `None`): asserts the same pairs come out,
/// and returns how many pairs each judged.
fn skipped_and_all(old: &Model, new: &Model, locals: Option<&[ObjectName]>) -> (usize, usize) {
    let plan = |m: &Model| match locals {
        Some(l) => {
            crate::compile(m, Target::Named(l), &Options::default())
                .unwrap()
                .plan
        }
        None => whole(m).1,
    };
    let (ea, eb) = (Ends::of(old), Ends::of(new));
    let (pa, pb) = (plan(old), plan(new));
    let run = |judge| {
        let mut pairs = Vec::new();
        let a = Side {
            ends: &ea,
            plan: &pa,
        };
        let b = Side {
            ends: &eb,
            plan: &pb,
        };
        let (_, judged) = each_pair(a, b, judge, |p| pairs.push(p));
        (pairs, judged)
    };
    let (skipping, judged) = run(Judge::Changed);
    let (all, every) = run(Judge::ChangedJudgingAll);
    assert_eq!(skipping, all);
    (judged, every)
}

/// `model` with endpoint `id` changed by `f`.
fn with_endpoint(mut model: Model, id: &str, f: impl FnOnce(&mut crate::model::Endpoint)) -> Model {
    let id = oname(id);
    f(model
        .inventory
        .endpoints
        .iter_mut()
        .find(|e| e.id == id)
        .unwrap());
    model
}

/// A pair whose ends kept their addresses, outside every set element that changed, is
/// not judged, and the changes are what judging every pair finds: addresses moved
/// (peers and not), endpoints added, removed and relabelled, and a policy change (no
/// skipping), for one local endpoint and for every endpoint.
#[test]
fn pairs_of_still_ends_are_not_judged_and_the_changes_are_the_same() {
    let base = || {
        let mut b = payments_example();
        for p in frontend_to_api() {
            b = b.policy(p);
        }
        b
    };
    let old = base().build();
    let v4 = |s: &str| -> Arc<[IpAddr]> { Arc::from(vec![ip(s)]) };
    let edits: Vec<(&str, Model)> = vec![
        (
            "a peer's address",
            with_endpoint(old.clone(), "web/checkout", |e| {
                e.ips = Arc::from(vec![ip("198.18.1.20"), ip("2001:db8:1::2")])
            }),
        ),
        (
            "a bystander's address",
            with_endpoint(old.clone(), "analytics/worker", |e| {
                e.ips = v4("198.18.2.40")
            }),
        ),
        (
            "a peer added",
            base()
                .endpoint("web/frontend-2", &[("app", "frontend")], &["198.18.1.4"])
                .build(),
        ),
        (
            "a peer relabelled",
            with_endpoint(old.clone(), "web/frontend", |e| {
                e.labels = labels(&[("app", "checkout")])
            }),
        ),
        ("a bystander removed", {
            let mut m = old.clone();
            m.inventory
                .endpoints
                .retain(|e| e.id != oname("analytics/worker"));
            m
        }),
        (
            // Its peers keep their addresses, but the elements holding them change.
            "a named port renumbered",
            with_endpoint(old.clone(), "payments/payments-api", |e| {
                e.ports = Arc::from(vec![crate::model::NamedPort {
                    name: "http".into(),
                    port: 8081,
                    protocol: Tcp,
                }])
            }),
        ),
        ("a policy removed", payments_example().build()),
    ];
    let api = [oname("payments/payments-api")];
    for (what, new) in &edits {
        for locals in [Some(&api[..]), None] {
            let (judged, every) = skipped_and_all(&old, new, locals);
            if locals.is_none() {
                // Every endpoint local (`netpolctl diff`): moved addresses are locals'.
                if what.ends_with("address") {
                    assert!(
                        judged < every,
                        "{what}, every endpoint: {judged} of {every}"
                    );
                }
                continue;
            }
            match *what {
                // Only the bystander's pairs with payments-api: its address is in no set.
                "a bystander's address" | "a bystander removed" => {
                    assert_eq!(judged, 2, "{what}: {judged} of {every}")
                }
                // Also the pairs of frontend, whose address shared checkout's element.
                "a peer's address" | "a peer added" | "a named port renumbered" => {
                    assert!(0 < judged && judged < every, "{what}: {judged} of {every}")
                }
                _ => {}
            }
        }
    }
}

/// The ipBlock peers as first written: every block against every other, and a tree of
/// the endpoint addresses. The reference for [`block_peers`].
fn block_peers_reference(old: &Ends, new: &Ends) -> Vec<BlockPeer> {
    let blocks: BTreeSet<IpNet> = old.blocks.union(&new.blocks).copied().collect();
    let taken: BTreeSet<(Family, u128)> = old
        .endpoints
        .iter()
        .chain(&new.endpoints)
        .flat_map(|(_, ips)| ips.iter().map(|ip| to_u128(*ip)))
        .collect();
    let mut out = Vec::new();
    for &cidr in &blocks {
        let (family, span) = net_span(&cidr);
        let mut inner: Vec<Span> = blocks
            .iter()
            .filter(|b| **b != cidr && cidr.contains(*b))
            .map(|b| net_span(b).1)
            .collect();
        merge_spans(&mut inner);
        let example = subtract(span, &inner).into_iter().find_map(|(lo, hi)| {
            let mut x = lo;
            for &(_, t) in taken.range((family, lo)..=(family, hi)) {
                if t != x {
                    break;
                }
                if x == hi {
                    return None;
                }
                x += 1;
            }
            Some(from_u128(family, x))
        });
        if let Some(example) = example {
            out.push(BlockPeer { cidr, example });
        }
    }
    out
}

/// Offsets in the last byte that put blocks and addresses at each other's edges.
fn edges() -> proptest::sample::Select<u8> {
    proptest::sample::select(vec![0, 1, 2, 3, 4, 31, 32, 60, 61, 62, 63])
}

proptest::proptest! {
    /// Blocks nested, overlapping, of both families, covered by endpoint addresses or
    /// not, on either side: the same peers as the reference.
    #[test]
    fn block_peers_are_the_references(
        blocks in proptest::collection::vec((proptest::bool::ANY, edges(), 24u8..33), 0..12),
        addresses in proptest::collection::vec((proptest::bool::ANY, edges()), 0..40),
        split in 0usize..40,
    ) {
        let net = |v6: bool, at: u8, len: u8| -> IpNet {
            let n: IpNet = if v6 {
                format!("2001:db8::{at:x}/{}", len + 96).parse().unwrap()
            } else {
                format!("198.18.0.{at}/{len}").parse().unwrap()
            };
            n.trunc()
        };
        let ip = |v6: bool, at: u8| -> IpAddr {
            if v6 { format!("2001:db8::{at:x}") } else { format!("198.18.0.{at}") }.parse().unwrap()
        };
        let ends = |part: &[(bool, u8)], blocks: BTreeSet<IpNet>| Ends {
            endpoints: part
                .iter()
                .enumerate()
                .map(|(i, &(v6, at))| (ObjectName::new("ns", format!("e{i}")), Arc::from(vec![ip(v6, at)])))
                .collect(),
            blocks,
        };
        let all: BTreeSet<IpNet> = blocks.iter().map(|&(v6, at, len)| net(v6, at, len)).collect();
        let half = all.len() / 2;
        let split = split.min(addresses.len());
        let old = ends(&addresses[..split], all.iter().take(half + 1).copied().collect());
        let new = ends(&addresses[split..], all.iter().skip(half).copied().collect());
        proptest::prop_assert_eq!(block_peers(&old, &new), block_peers_reference(&old, &new));
    }
}
