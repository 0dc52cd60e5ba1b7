//! Big and compiled plans through netlink and through `nft -f`: the same table, and
//! how long each takes.

use super::*;

/// About 100,000 set elements and 1,000 rules: 200 isolated endpoints with five rules
/// each, sharing one set of 100,000 IPv6 peers (2001:db8::/32 holds enough distinct
/// non-adjacent addresses; 198.18.0.0/15 does not).
fn big_plan() -> Plan {
    use AddrField::Saddr;
    use Family::{V4, V6};
    let v6 = |x: u128| IpAddr::V6(((0x2001_0db8_u128 << 96) | x).into());
    let peers: Vec<AddrRange> = (0..100_000u128)
        .map(|i| AddrRange {
            start: v6(0x1_0000_0000 + 2 * i),
            end: v6(0x1_0000_0000 + 2 * i),
        })
        .collect();
    let mut sets = vec![
        addr_set("big_v6_all", V6, peers),
        addr_set("some_v4_all", V4, vec![range("198.19.0.0", "198.19.0.255")]),
        ports_set(
            "some_v4_ports",
            V4,
            vec![app(range("198.19.1.0", "198.19.1.255"), 6, (8000, 8080))],
        ),
        ports_set(
            "some_v6_ports",
            V6,
            vec![app(range("2001:db8:1::", "2001:db8:1::ffff"), 17, (53, 53))],
        ),
    ];
    sets.sort_by(|a, b| a.name().cmp(b.name()));
    let mut in_v4 = Vec::new();
    let mut in_v6 = Vec::new();
    let mut chains = vec![
        Chain::new("input".into(), Some(Hook::Input), {
            let mut r = base_rules(Hook::Input);
            r.push(Stmt::Dispatch {
                family: V4,
                field: AddrField::Daddr,
                map: "ingress_v4".into(),
            });
            r.push(Stmt::Dispatch {
                family: V6,
                field: AddrField::Daddr,
                map: "ingress_v6".into(),
            });
            r
        })
        .expect("a valid chain"),
        Chain::new(
            "output".into(),
            Some(Hook::Output),
            base_rules(Hook::Output),
        )
        .expect("a valid chain"),
    ];
    let mut locals = Vec::new();
    for e in 0..200u32 {
        let name = format!("in_ns_e{e:03}");
        in_v4.push((ip(&format!("198.18.1.{}", e + 1)), name.clone()));
        in_v6.push((v6(0xffff_0000 + u128::from(e)), name.clone()));
        chains.push(
            Chain::new(
                name.clone(),
                None,
                vec![
                    Stmt::AcceptAddr {
                        family: V6,
                        field: Saddr,
                        set: "big_v6_all".into(),
                    },
                    Stmt::AcceptAddr {
                        family: V4,
                        field: Saddr,
                        set: "some_v4_all".into(),
                    },
                    Stmt::AcceptAddrProtoPort {
                        family: V4,
                        field: Saddr,
                        set: "some_v4_ports".into(),
                    },
                    Stmt::AcceptAddrProtoPort {
                        family: V6,
                        field: Saddr,
                        set: "some_v6_ports".into(),
                    },
                    Stmt::Deny {
                        action: DenyAction::Drop,
                        comment: format!("deny ingress ns/e{e:03}"),
                    },
                ],
            )
            .expect("a valid chain"),
        );
        locals.push(LocalEndpoint {
            id: ObjectName::new("ns", format!("e{e:03}")),
            ingress_chain: Some(name),
            egress_chain: None,
            tier_chains: Vec::new(),
            shard_chains: Vec::new(),
        });
    }
    in_v4.sort();
    in_v6.sort();
    Plan::new(
        TABLE_NAME.into(),
        sets,
        vec![
            VerdictMap::new("ingress_v4".into(), V4, in_v4).expect("a valid verdictmap"),
            VerdictMap::new("ingress_v6".into(), V6, in_v6).expect("a valid verdictmap"),
        ],
        chains,
        locals,
        Vec::new(),
    )
    .expect("a valid plan")
}

fn median(mut v: Vec<std::time::Duration>) -> std::time::Duration {
    v.sort();
    v[v.len() / 2]
}

netns_test! {
    /// Not a benchmark (that lives in `benches/`): a measurement for the record, run
    /// with `cargo test -p netpol-daemon --release -- --ignored --nocapture big_plan`.
    #[ignore = "a measurement, not a test; run by hand"]
    fn measure_big_plan_netlink_against_nft_f() {
        use std::time::Instant;
        let plan = big_plan();
        println!(
            "plan: {} rules, {} elements",
            plan.rule_count(),
            plan.element_count()
        );
        let script = crate::testns::TempFile::new("big.nft", &rules_compiler::render::nft(&plan));
        let mut kernel = Netlink::new();
        let nft_f = || {
            let t = Instant::now();
            let ok = Command::new("nft")
                .arg("-f")
                .arg(script.path())
                .status()
                .expect("nft")
                .success();
            assert!(ok, "nft -f failed");
            t.elapsed()
        };
        let mut rows = Vec::new();
        for (what, replace) in [("load into an empty namespace", false), ("replace the loaded table", true)] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                kernel.flush().expect("flush");
                if replace {
                    kernel.apply(&plan).expect("apply");
                }
                let t = Instant::now();
                let stats = kernel.apply(&plan).expect("apply");
                ours.push(t.elapsed());
                println!("  netlink: {stats:?}");
                kernel.flush().expect("flush");
                if replace {
                    kernel.apply(&plan).expect("apply");
                }
                theirs.push(nft_f());
            }
            rows.push(format!(
                "{what}: netlink {:?} (runs {ours:?}), nft -f {:?} (runs {theirs:?})",
                median(ours.clone()),
                median(theirs.clone())
            ));
        }
        let loaded = kernel.read().expect("read").expect("table");
        assert_eq!(loaded.element_count(), plan.element_count());
        let t = Instant::now();
        kernel.read().expect("read");
        rows.push(format!("read back: {:?}", t.elapsed()));
        for r in rows {
            println!("{r}");
        }
    }
}

const VARIETY_INVENTORY: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: red}}
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: x, name: a, labels: {app: a}}
ips: [198.18.0.1, "2001:db8::1"]
ports:
- {name: http, port: 8080}
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: x, name: b, labels: {app: b}}
ips: [198.18.0.2, "2001:db8::2"]
ports:
- {name: http, port: 9090}
- {name: metrics, port: 9100, protocol: SCTP}
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: y, name: c, labels: {app: c}}
ips: [198.18.3.7]
ports:
- {name: http, port: 80}
"#;

const VARIETY_POLICIES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: a}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 198.18.0.0/16, except: [198.18.128.0/17, 198.18.0.0/24]}
    - ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:8000::/33"]}
    ports:
    - {protocol: TCP, port: http}
    - {protocol: UDP, port: 5000, endPort: 6000}
  - from:
    - namespaceSelector: {}
      podSelector: {matchLabels: {app: b}}
  egress:
  - to:
    - namespaceSelector: {}
    ports:
    - {protocol: TCP, port: http}
    - {protocol: SCTP, port: metrics}
  - to:
    - ipBlock: {cidr: 0.0.0.0/0, except: [198.18.0.0/15]}
    ports:
    - {protocol: TCP, port: 443}
    - {protocol: UDP}
  - ports:
    - {protocol: UDP, port: 53}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: b}
spec:
  podSelector: {matchLabels: {app: b}}
  policyTypes: [Ingress, Egress]
"#;

/// Plans compiled from policies with ipBlock excepts (v4, v6), named ports meaning
/// different numbers, endPort ranges, protocol-only ports, SCTP, deny-all, both deny
/// actions.
fn compiled_plans() -> Vec<(String, Plan)> {
    use rules_compiler::load::Input;
    use rules_compiler::plan::{build, Options};
    use rules_compiler::resolve::Index;
    let input = |path: &str, text: &str| Input {
        path: path.into(),
        text: text.to_string().into(),
    };
    let loaded = rules_compiler::load_model(
        &[input("policies.yaml", VARIETY_POLICIES)],
        &[input("inventory.yaml", VARIETY_INVENTORY)],
    )
    .expect("the variety inputs are valid");
    let index = Index::new(&loaded.model);
    let id = |ns: &str, name: &str| {
        loaded
            .model
            .inventory
            .endpoint_index(&ObjectName::new(ns, name))
            .unwrap()
    };
    let mut out = Vec::new();
    for (locals, what) in [
        (vec![id("x", "a")], "x/a"),
        (vec![id("x", "b")], "x/b"),
        (vec![id("x", "a"), id("x", "b"), id("y", "c")], "all"),
        (vec![id("y", "c")], "not isolated"),
    ] {
        for deny in [DenyAction::Drop, DenyAction::Reject] {
            let plan = build(
                &index,
                &locals,
                &Options {
                    deny,
                    ..Default::default()
                },
            );
            out.push((format!("{what}, {deny:?}"), plan));
        }
    }
    out
}

netns_test! {
    fn compiled_plans_load_the_same_through_netlink_and_nft_f() {
        for (what, plan) in compiled_plans() {
            println!("{what}: {} rules, {} elements", plan.rule_count(), plan.element_count());
            assert_same_as_nft(&plan);
            let loaded = Netlink::new().read().expect("read").expect("a table");
            assert_eq!(loaded, LoadedTable::expected(&plan).unwrap(), "{what}");
        }
    }
}
