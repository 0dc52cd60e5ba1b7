//! Render tests: exact text of small plans, element spelling, and acceptance by the real
//! nft inside a throwaway network namespace.

use std::io::Write as _;
use std::process::Command;

use tempfile::NamedTempFile;

use super::*;
use crate::model::{Model, Peers, Ports, Protocol};
use crate::plan::{self, EventLog, Failsafe, Mode, Options};
use crate::resolve::{EndpointId, Index};
use crate::testkit::*;

use Protocol::{Sctp, Tcp, Udp};

fn range(a: &str, b: &str) -> String {
    Range(&AddrRange {
        start: a.parse().unwrap(),
        end: b.parse().unwrap(),
    })
    .to_string()
}

fn plan_for(model: &Model, locals: &[&str], options: &Options) -> Plan {
    let index = Index::new(model);
    let ids: Vec<EndpointId> = locals.iter().map(|id| ep(&index, id)).collect();
    plan::build(&index, &ids, options)
}

#[test]
fn ranges_render_as_address_prefix_or_span() {
    assert_eq!(range("198.18.0.1", "198.18.0.1"), "198.18.0.1");
    assert_eq!(range("198.18.0.0", "198.18.0.255"), "198.18.0.0/24");
    assert_eq!(range("198.18.0.2", "198.18.0.3"), "198.18.0.2/31");
    assert_eq!(range("198.18.0.1", "198.18.0.2"), "198.18.0.1-198.18.0.2");
    assert_eq!(range("198.18.0.0", "198.18.0.2"), "198.18.0.0-198.18.0.2");
    assert_eq!(
        range("198.18.0.128", "198.18.1.127"),
        "198.18.0.128-198.18.1.127"
    );
    assert_eq!(range("0.0.0.0", "255.255.255.255"), "0.0.0.0/0");
    assert_eq!(
        range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        "::/0"
    );
    assert_eq!(
        range("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"),
        "2001:db8::/64"
    );
    assert_eq!(
        range("2001:db8::1", "2001:db8::5"),
        "2001:db8::1-2001:db8::5"
    );
}

#[test]
fn elements_spell_protocols_and_ports() {
    let addr = AddrRange {
        start: "198.18.0.0".parse().unwrap(),
        end: "198.18.0.15".parse().unwrap(),
    };
    let e = |proto, ports| Element(&AddrProtoPort { addr, proto, ports }).to_string();
    assert_eq!(e(6, (80, 80)), "198.18.0.0/28 . tcp . 80");
    assert_eq!(e(17, (8000, 8100)), "198.18.0.0/28 . udp . 8000-8100");
    assert_eq!(e(132, (0, 65535)), "198.18.0.0/28 . sctp . 0-65535");
}

#[test]
fn golden_payments_api() {
    let model = payments_example().build();
    let text = nft(&plan_for(
        &model,
        &["payments/payments-api"],
        &Options::default(),
    ));
    let want = r#"table inet netpol {}
delete table inet netpol
table inet netpol {
	comment "managed by netpol"
	set in_payments_payments-api_v4_ports {
		type ipv4_addr . inet_proto . inet_service; flags interval;
		elements = {
			198.18.1.2 . tcp . 8080
		}
	}
	set in_payments_payments-api_v6_ports {
		type ipv6_addr . inet_proto . inet_service; flags interval;
		elements = {
			2001:db8:1::2 . tcp . 8080
		}
	}
	map ingress_v4 {
		type ipv4_addr : verdict;
		elements = {
			198.18.0.10 : jump in_payments_payments-api
		}
	}
	map ingress_v6 {
		type ipv6_addr : verdict;
		elements = {
			2001:db8::10 : jump in_payments_payments-api
		}
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		ct state invalid drop
		iifname "lo" accept
		icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept
		ip daddr vmap @ingress_v4
		ip6 daddr vmap @ingress_v6
	}
	chain output {
		type filter hook output priority filter; policy accept;
		ct state established,related accept
		ct state invalid drop
		oifname "lo" accept
		icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept
	}
	chain in_payments_payments-api {
		ip saddr . meta l4proto . th dport @in_payments_payments-api_v4_ports accept
		ip6 saddr . meta l4proto . th dport @in_payments_payments-api_v6_ports accept
		counter drop comment "deny ingress payments/payments-api"
	}
}
"#;
    assert_eq!(text, want, "got:\n{text}");
}

#[test]
fn golden_egress_with_all_ports_peer_and_reject() {
    let model = ModelBuilder::new()
        .endpoint("x/a", &[("app", "a")], &["198.18.0.1"])
        .endpoint("x/b", &[("app", "b")], &["198.18.0.2"])
        .policy(policy(
            "x/out",
            sel(&[("app", "a")]),
            None,
            Some(vec![
                rule(peers(vec![pods_in("x", sel(&[("app", "b")]))]), Ports::All),
                rule(
                    peers(vec![ip_block("198.18.0.0/24", &["198.18.0.0/30"])]),
                    ports(vec![port_range(Tcp, 8000, 8100), udp(53)]),
                ),
            ]),
        ))
        .build();
    let options = Options {
        deny: DenyAction::Reject,
        ..Default::default()
    };
    let text = nft(&plan_for(&model, &["x/a"], &options));
    let want = r#"table inet netpol {}
delete table inet netpol
table inet netpol {
	comment "managed by netpol"
	set out_x_a_v4_all {
		type ipv4_addr; flags interval;
		elements = {
			198.18.0.2
		}
	}
	set out_x_a_v4_ports {
		type ipv4_addr . inet_proto . inet_service; flags interval;
		elements = {
			198.18.0.4-198.18.0.255 . tcp . 8000-8100,
			198.18.0.4-198.18.0.255 . udp . 53
		}
	}
	map egress_v4 {
		type ipv4_addr : verdict;
		elements = {
			198.18.0.1 : jump out_x_a
		}
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		ct state invalid drop
		iifname "lo" accept
		icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept
	}
	chain output {
		type filter hook output priority filter; policy accept;
		ct state established,related accept
		ct state invalid drop
		oifname "lo" accept
		icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept
		ip saddr vmap @egress_v4
	}
	chain out_x_a {
		ip daddr @out_x_a_v4_all accept
		ip daddr . meta l4proto . th dport @out_x_a_v4_ports accept
		counter comment "deny egress x/a"
		meta l4proto tcp reject with tcp reset
		reject with icmpx admin-prohibited
	}
}
"#;
    assert_eq!(text, want, "got:\n{text}");
}

#[test]
fn log_audit_and_the_limit_render_as_the_design_spells_them() {
    let shapes = shapes();
    let (_, plan) = shapes
        .iter()
        .find(|(name, _)| *name == "audit policies, events")
        .expect("the audit shape");
    let text = nft(plan);
    for line in [
        "\tlimit netpol_events { rate 10/second burst 20 packets }",
        "\t\tlimit name \"netpol_events\" counter log prefix \"netpol deny in\" group 3",
        "\t\tlimit name \"netpol_events\" counter log prefix \"netpol audit in\" group 3",
        "\t\tlimit name \"netpol_events\" counter log prefix \"netpol audit out\" group 3",
        "\t\tcounter accept comment \"audit ingress x/b\"",
        "\t\tcounter drop comment \"deny ingress x/a\"",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}

#[test]
fn rendering_is_deterministic() {
    let model = payments_example().build();
    let all = [
        "payments/payments-api",
        "web/checkout",
        "web/frontend",
        "kube-system/kube-dns",
    ];
    let a = nft(&plan_for(&model, &all, &Options::default()));
    let b = nft(&plan_for(&model, &all, &Options::default()));
    assert_eq!(a, b);
}

// ---- Acceptance by the real nft, only inside a throwaway network namespace ----

/// Plans of every shape the compiler emits, each with a name for messages.
fn shapes() -> Vec<(&'static str, Plan)> {
    let mut out = Vec::new();
    let model = payments_example().build();
    out.push((
        "payments, every endpoint local",
        plan_for(
            &model,
            &[
                "payments/payments-api",
                "web/checkout",
                "web/frontend",
                "kube-system/kube-dns",
            ],
            &Options::default(),
        ),
    ));
    out.push((
        "not isolated",
        plan_for(&model, &["kube-system/kube-dns"], &Options::default()),
    ));

    let mixed = ModelBuilder::new()
        .namespace("x", &[("team", "red")])
        .endpoint("x/a", &[("app", "a")], &["198.18.0.1", "2001:db8::1"])
        .named_ports("x/a", &[("http", 8080, Tcp)])
        .endpoint("x/b", &[("app", "b")], &["198.18.0.2", "2001:db8::2"])
        .named_ports("x/b", &[("http", 9090, Tcp), ("metrics", 9100, Sctp)])
        .endpoint("y/c", &[("app", "c")], &["198.18.3.7"])
        .named_ports("y/c", &[("http", 80, Tcp)])
        .policy(policy(
            "x/in",
            sel(&[("app", "a")]),
            Some(vec![
                rule(
                    peers(vec![
                        ip_block("198.18.0.0/16", &["198.18.128.0/17", "198.18.0.0/24"]),
                        ip_block("2001:db8::/32", &["2001:db8:8000::/33"]),
                    ]),
                    ports(vec![named(Tcp, "http"), port_range(Udp, 5000, 6000)]),
                ),
                rule(
                    peers(vec![ns_and_pods(sel(&[]), sel(&[("app", "b")]))]),
                    Ports::All,
                ),
            ]),
            Some(vec![
                rule(
                    peers(vec![ns_and_pods(sel(&[]), sel(&[]))]),
                    ports(vec![named(Tcp, "http"), named(Sctp, "metrics")]),
                ),
                rule(
                    peers(vec![ip_block("0.0.0.0/0", &["198.18.0.0/15"])]),
                    ports(vec![tcp(443), any_port(Udp)]),
                ),
                rule(Peers::All, ports(vec![udp(53)])),
            ]),
        ))
        .build();
    out.push((
        "v4+v6, named ports, endPort, except, all-ports peers",
        plan_for(&mixed, &["x/a"], &Options::default()),
    ));
    out.push((
        "same, reject",
        plan_for(
            &mixed,
            &["x/a", "x/b"],
            &Options {
                deny: DenyAction::Reject,
                ..Default::default()
            },
        ),
    ));

    let everything = ModelBuilder::new()
        .endpoint("x/a", &[], &["198.18.0.1", "2001:db8::1"])
        .policy(policy(
            "x/open",
            sel(&[]),
            Some(vec![rule(Peers::All, Ports::All)]),
            Some(vec![rule(Peers::All, ports(vec![tcp(80)]))]),
        ))
        .build();
    out.push((
        "whole address spaces",
        plan_for(&everything, &["x/a"], &Options::default()),
    ));

    let deny = ModelBuilder::new()
        .endpoint("x/a", &[], &["198.18.0.1", "2001:db8::1"])
        .policy(policy("x/deny", sel(&[]), Some(vec![]), Some(vec![])))
        .build();
    out.push((
        "empty isolation",
        plan_for(&deny, &["x/a"], &Options::default()),
    ));

    let long_id = format!("x/web-{}.v1", "a".repeat(240));
    let odd = ModelBuilder::new()
        .endpoint("0ns/1.pod-0", &[], &["198.18.0.1"])
        .endpoint(&long_id, &[], &["198.18.0.2"])
        .policy(policy("0ns/deny", sel(&[]), Some(vec![]), None))
        .policy(policy("x/deny", sel(&[]), Some(vec![]), None))
        .build();
    out.push((
        "odd and long names",
        plan_for(&odd, &["0ns/1.pod-0", &long_id], &Options::default()),
    ));

    // Many peers: every one of 3000 endpoints, odd ones on UDP as well.
    let mut big = ModelBuilder::new().endpoint(
        "x/a",
        &[("app", "a")],
        &["198.19.255.1", "2001:db8:ffff::1"],
    );
    for i in 0..3000u32 {
        let v4 = format!("198.18.{}.{}", i / 250, i % 250 + 1);
        let v6 = format!("2001:db8:{:x}::{:x}", i / 100, i % 100 + 1);
        let app = if i % 2 == 0 { "even" } else { "odd" };
        big = big.endpoint(&format!("p/e{i}"), &[("app", app)], &[&v4, &v6]);
    }
    let big = big
        .policy(policy(
            "x/in",
            sel(&[("app", "a")]),
            Some(vec![
                rule(
                    peers(vec![ns_and_pods(sel(&[]), sel(&[]))]),
                    ports(vec![tcp(80)]),
                ),
                rule(
                    peers(vec![ns_and_pods(sel(&[]), sel(&[("app", "odd")]))]),
                    ports(vec![udp(53)]),
                ),
            ]),
            None,
        ))
        .build();
    out.push(("3000 peers", plan_for(&big, &["x/a"], &Options::default())));
    let whole = Options {
        shard_above: usize::MAX,
        ..Options::default()
    };
    out.push(("3000 peers, unsharded", plan_for(&big, &["x/a"], &whole)));

    // Audit policies beside enforced ones, with events: Log, Audit and the limit.
    let audited = ModelBuilder::new()
        .endpoint("x/a", &[("app", "a")], &["198.18.0.1", "2001:db8::1"])
        .endpoint("x/b", &[("app", "b")], &["198.18.0.2"])
        .policy(policy(
            "x/in",
            sel(&[("app", "a")]),
            Some(vec![rule(Peers::All, ports(vec![tcp(80)]))]),
            None,
        ))
        .policy(audit(policy(
            "x/watch",
            sel(&[]),
            Some(vec![rule(Peers::All, ports(vec![tcp(8080)]))]),
            Some(vec![]),
        )))
        .build();
    let events = Some(EventLog {
        group: 3,
        rate: 10,
        burst: 20,
    });
    out.push((
        "audit policies, events",
        plan_for(
            &audited,
            &["x/a", "x/b"],
            &Options {
                events,
                ..Default::default()
            },
        ),
    ));
    out.push((
        "host-wide audit, reject, events, failsafe",
        plan_for(
            &audited,
            &["x/a", "x/b"],
            &Options {
                deny: DenyAction::Reject,
                mode: Mode::Audit,
                events,
                failsafe: vec![
                    Failsafe::ssh(),
                    "ingress:TCP:8000-8100:198.18.0.0/15".parse().unwrap(),
                    "egress:UDP:53:2001:db8::/32".parse().unwrap(),
                ],
                ..Options::default()
            },
        ),
    ));
    out
}

/// Whether this machine lets the test run nft in a fresh network namespace; prints
/// why not when it does not. In CI (`CI` set) it must: a skip there would pass without
/// proving anything.
fn netns_nft_available() -> bool {
    let available = probe_netns_nft();
    assert!(
        available || std::env::var_os("CI").is_none(),
        "this kernel test must run in CI, but cannot (see above)"
    );
    available
}

fn probe_netns_nft() -> bool {
    match Command::new("nft").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!("SKIPPED: `nft` not found; install nftables to run this test");
            return false;
        }
    }
    match Command::new("unshare")
        .args(["--net", "--", "true"])
        .output()
    {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "SKIPPED: `unshare --net` failed (needs root or CAP_SYS_ADMIN): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run `unshare`: {e}");
            false
        }
    }
}

/// A script file, removed when dropped (also when the test fails).
fn temp_script(tag: &str, text: &str) -> NamedTempFile {
    let mut file = tempfile::Builder::new()
        .prefix(&format!("netpol-render-{tag}-"))
        .suffix(".nft")
        .tempfile()
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.flush().unwrap();
    file
}

/// Runs a shell snippet (with `$1` the script) in a new, empty network namespace.
fn in_netns(snippet: &str, script: &NamedTempFile) -> std::process::Output {
    Command::new("unshare")
        .args(["--net", "--", "sh", "-ec", snippet, "sh"])
        .arg(script.path())
        .output()
        .unwrap()
}

#[test]
fn nft_checks_every_shape() {
    if !netns_nft_available() {
        return;
    }
    for (i, (name, plan)) in shapes().iter().enumerate() {
        let text = nft(plan);
        let script = temp_script(&format!("check{i}"), &text);
        let out = in_netns("nft -c -f \"$1\"", &script);
        assert!(
            out.status.success(),
            "nft -c rejected shape {name:?}:\n{}\n--- script ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            text.lines().take(200).collect::<Vec<_>>().join("\n")
        );
    }
}

/// nft rules one statement renders to.
fn nft_rules(stmt: &Stmt) -> usize {
    match stmt {
        Stmt::Deny {
            action: DenyAction::Reject,
            ..
        } => 3,
        _ => 1,
    }
}

#[test]
fn nft_loads_every_shape_twice_with_all_elements() {
    if !netns_nft_available() {
        return;
    }
    for (i, (name, plan)) in shapes().iter().enumerate() {
        let script = temp_script(&format!("load{i}"), &nft(plan));
        // Loaded twice: the first creates the table, the second replaces it.
        let out = in_netns(
            "nft -f \"$1\"; nft -f \"$1\"; nft -j list table inet netpol",
            &script,
        );
        assert!(
            out.status.success(),
            "loading shape {name:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let objects = listing["nftables"].as_array().unwrap();
        let count = |kind: &str| objects.iter().filter(|o| o.get(kind).is_some()).count();
        let elements = |kind: &str, name: &str| {
            objects
                .iter()
                .filter_map(|o| o.get(kind))
                .find(|o| o["name"] == name)
                .unwrap_or_else(|| panic!("{name:?}: no {kind} {name} loaded"))
                .get("elem")
                .map_or(0, |e| e.as_array().unwrap().len())
        };
        assert_eq!(count("table"), 1, "{name}");
        // Verdict maps among the plan's sets (tier and shard maps) list as maps.
        let set_maps = plan.sets().iter().filter(|s| s.elements().is_map()).count();
        assert_eq!(count("set"), plan.sets().len() - set_maps, "{name}");
        assert_eq!(count("map"), plan.maps().len() + set_maps, "{name}");
        assert_eq!(count("chain"), plan.chains().len(), "{name}");
        assert_eq!(count("limit"), plan.limits().len(), "{name}");
        let rules: usize = plan
            .chains()
            .iter()
            .flat_map(|c| c.rules())
            .map(nft_rules)
            .sum();
        assert_eq!(count("rule"), rules, "{name}");
        for set in plan.sets() {
            let kind = if set.elements().is_map() {
                "map"
            } else {
                "set"
            };
            assert_eq!(
                elements(kind, set.name()),
                set.elements().len(),
                "{name}: set {}",
                set.name()
            );
        }
        for map in plan.maps() {
            assert_eq!(
                elements("map", map.name()),
                map.elements().len(),
                "{name}: map {}",
                map.name()
            );
        }
    }
}
