//! One test per rule of the module doc (issue 15's semantics), on packets.

use super::*;
use crate::model::Action::{Accept, Deny, Pass};
use crate::model::Protocol::{Sctp, Tcp, Udp};
use crate::model::Tier::{Admin, Baseline};
use crate::model::{ClusterPolicy, NAMESPACE_NAME_LABEL};
use crate::testkit::proto::{ICMP, SCTP, TCP, UDP};
use crate::testkit::*;
use Direction::{Egress, Ingress};

/// An address of no endpoint and no node, per family.
const OUTSIDE: &str = "198.19.200.1";
const OUTSIDE6: &str = "2001:db8:ff::1";

/// Three namespaces, four endpoints (two dual-stack), two nodes; no policies.
fn world() -> ModelBuilder {
    ModelBuilder::new()
        .namespace("web", &[("team", "web")])
        .namespace("payments", &[("team", "pay")])
        .namespace("analytics", &[("team", "data")])
        .endpoint(
            "web/checkout",
            &[("app", "checkout")],
            &["198.18.0.2", "2001:db8::2"],
        )
        .endpoint("web/frontend", &[("app", "frontend")], &["198.18.0.3"])
        .endpoint(
            "payments/api",
            &[("app", "api")],
            &["198.18.0.10", "2001:db8::10"],
        )
        .named_ports("payments/api", &[("http", 8080, Tcp), ("dns", 53, Udp)])
        .endpoint("payments/db", &[("app", "db")], &["198.18.0.11"])
        .endpoint(
            "analytics/worker",
            &[("app", "worker")],
            &["198.18.1.20", "2001:db8:1::20"],
        )
        .node(
            "node-a",
            &[("role", "worker")],
            &["198.18.9.1", "2001:db8:9::1"],
        )
        .node("node-b", &[("role", "control")], &["198.18.9.2"])
}

/// Every namespace.
fn all_ns() -> Subject {
    subject_ns(sel(&[]))
}

/// The subject `payments/api`.
fn api() -> Subject {
    subject_pods(sel(&[("team", "pay")]), sel(&[("app", "api")]))
}

/// Peer: every endpoint.
fn anyone() -> ClusterPeer {
    cpeer_ns(sel(&[]))
}

/// Peer: the `web` namespace.
fn web() -> ClusterPeer {
    cpeer_ns(sel(&[("team", "web")]))
}

fn admin(name: &str, priority: u16, subject: Subject, ingress: Vec<ClusterRule>) -> ClusterPolicy {
    cnp(name, Admin, priority, subject, ingress, vec![])
}

fn baseline(
    name: &str,
    priority: u16,
    subject: Subject,
    ingress: Vec<ClusterRule>,
) -> ClusterPolicy {
    cnp(name, Baseline, priority, subject, ingress, vec![])
}

fn verdict(
    index: &Index<'_>,
    local: &str,
    dir: Direction,
    remote: &str,
    p: u8,
    port: u16,
) -> ClusterVerdict {
    index.cluster_verdict(ep(index, local), dir, ip(remote), p, port)
}

/// The verdict in a word: `accept Admin a#0`, `deny Baseline b#1`, `np allowed`,
/// `np denied`, `default`; then ` after pass …` for each Pass rule followed.
fn said(v: &ClusterVerdict) -> String {
    let rule = |r: &ClusterRuleRef| format!("{} {}#{}", r.tier.as_str(), r.policy, r.rule);
    let mut s = match &v.decision {
        Decision::Accept { by } => format!("accept {}", rule(by)),
        Decision::Deny { by } => format!("deny {}", rule(by)),
        Decision::NetworkPolicy { verdict } if verdict.is_allowed() => "np allowed".into(),
        Decision::NetworkPolicy { .. } => "np denied".into(),
        Decision::Default => "default".into(),
    };
    for p in &v.passed {
        s += &format!(" after pass {}", rule(p));
    }
    s
}

/// [`said`] of one ingress TCP packet to `payments/api` port 8080 from `remote`.
fn into_api(index: &Index<'_>, remote: &str) -> String {
    said(&verdict(index, "payments/api", Ingress, remote, TCP, 8080))
}

/// A NetworkPolicy isolating `payments/api`'s ingress, allowing only `web`.
fn np_api_from_web() -> crate::model::Policy {
    ingress_policy(
        "payments/np",
        sel(&[("app", "api")]),
        vec![rule(
            peers(vec![ns_and_pods(sel(&[("team", "web")]), sel(&[]))]),
            crate::model::Ports::All,
        )],
    )
}

// --- Tiers and actions ---------------------------------------------------------------

#[test]
fn admin_accept_and_deny_are_final_over_networkpolicy() {
    let m = world()
        .policy(np_api_from_web())
        .cluster_policy(admin(
            "a",
            10,
            api(),
            vec![
                crule(Accept, vec![cpeer_ns(sel(&[("team", "data")]))], None),
                crule(Deny, vec![web()], None),
            ],
        ))
        .build();
    let index = Index::new(&m);
    // NetworkPolicy denies analytics, Admin accepts it.
    assert_eq!(into_api(&index, "198.18.1.20"), "accept Admin a#0");
    assert!(verdict(&index, "payments/api", Ingress, "198.18.1.20", TCP, 1).is_allowed());
    // NetworkPolicy allows web, Admin denies it.
    assert_eq!(into_api(&index, "198.18.0.2"), "deny Admin a#1");
    assert!(!verdict(&index, "payments/api", Ingress, "198.18.0.2", TCP, 1).is_allowed());
    // Neither rule matches: NetworkPolicy decides (payments/db is not allowed by it).
    assert_eq!(into_api(&index, "198.18.0.11"), "np denied");
    assert_eq!(
        index.cluster_tier(
            Admin,
            ep(&index, "payments/api"),
            Ingress,
            ip("198.18.0.11"),
            TCP,
            8080
        ),
        TierOutcome::NoMatch
    );
}

#[test]
fn baseline_accept_and_deny_decide_when_not_isolated() {
    let m = world()
        .cluster_policy(baseline(
            "b",
            10,
            api(),
            vec![
                crule(Accept, vec![web()], None),
                crule(Deny, vec![anyone()], None),
            ],
        ))
        .build();
    let index = Index::new(&m);
    assert_eq!(into_api(&index, "198.18.0.3"), "accept Baseline b#0");
    assert_eq!(into_api(&index, "198.18.1.20"), "deny Baseline b#1");
    assert!(!verdict(&index, "payments/api", Ingress, "198.18.1.20", TCP, 8080).is_allowed());
    // An address of no endpoint matches neither rule: allowed by default.
    assert_eq!(into_api(&index, OUTSIDE), "default");
    // Another endpoint is no subject: allowed by default.
    assert_eq!(
        said(&verdict(
            &index,
            "payments/db",
            Ingress,
            "198.18.1.20",
            TCP,
            1
        )),
        "default"
    );
}

#[test]
fn admin_pass_goes_on_to_networkpolicy() {
    let m = world()
        .policy(np_api_from_web())
        .cluster_policy(admin(
            "a",
            1,
            api(),
            vec![crule(Pass, vec![anyone()], None)],
        ))
        // Skipped by the Pass: the rest of the Admin tier.
        .cluster_policy(admin(
            "z",
            2,
            api(),
            vec![crule(Accept, vec![networks(&["0.0.0.0/0"])], None)],
        ))
        .cluster_policy(baseline(
            "b",
            0,
            api(),
            vec![crule(Accept, vec![anyone()], None)],
        ))
        .build();
    let index = Index::new(&m);
    assert_eq!(
        into_api(&index, "198.18.0.2"),
        "np allowed after pass Admin a#0"
    );
    // Isolated by NetworkPolicy: its deny is final, Baseline's Accept is not reached.
    assert_eq!(
        into_api(&index, "198.18.1.20"),
        "np denied after pass Admin a#0"
    );
    // The outside matches no Pass peer: Admin's later Accept decides.
    assert_eq!(into_api(&index, OUTSIDE), "accept Admin z#0");
}

#[test]
fn admin_pass_goes_on_to_baseline_when_not_isolated() {
    let m = world()
        .cluster_policy(admin("a", 1, api(), vec![crule(Pass, vec![web()], None)]))
        .cluster_policy(admin("z", 2, api(), vec![crule(Accept, vec![web()], None)]))
        .cluster_policy(baseline(
            "b",
            1,
            api(),
            vec![crule(Deny, vec![web()], None)],
        ))
        .build();
    let index = Index::new(&m);
    assert_eq!(
        into_api(&index, "198.18.0.3"),
        "deny Baseline b#0 after pass Admin a#0"
    );
}

#[test]
fn baseline_pass_leaves_the_default_allow() {
    let m = world()
        .cluster_policy(admin("a", 1, api(), vec![crule(Pass, vec![web()], None)]))
        .cluster_policy(baseline(
            "b",
            1,
            api(),
            vec![crule(Pass, vec![web()], None)],
        ))
        .cluster_policy(baseline(
            "c",
            2,
            api(),
            vec![crule(Deny, vec![anyone()], None)],
        ))
        .build();
    let index = Index::new(&m);
    assert_eq!(
        into_api(&index, "198.18.0.3"),
        "default after pass Admin a#0 after pass Baseline b#0"
    );
    assert!(verdict(&index, "payments/api", Ingress, "198.18.0.3", TCP, 8080).is_allowed());
    assert_eq!(into_api(&index, "198.18.1.20"), "deny Baseline c#0");
}

#[test]
fn networkpolicy_isolation_is_final_over_baseline() {
    let m = world()
        .policy(np_api_from_web())
        .cluster_policy(baseline(
            "b",
            0,
            all_ns(),
            vec![
                crule(Deny, vec![web()], None),
                crule(Accept, vec![anyone()], None),
            ],
        ))
        .build();
    let index = Index::new(&m);
    // Isolated: NetworkPolicy allows web (Baseline would deny), denies analytics
    // (Baseline would accept).
    assert_eq!(into_api(&index, "198.18.0.2"), "np allowed");
    assert_eq!(into_api(&index, "198.18.1.20"), "np denied");
    // Egress of payments/api is not isolated: Baseline decides.
    assert_eq!(
        said(&verdict(
            &index,
            "payments/api",
            Egress,
            "198.18.0.2",
            TCP,
            80
        )),
        "default"
    );
    let egress = cnp(
        "e",
        Baseline,
        0,
        all_ns(),
        vec![],
        vec![crule(Deny, vec![web()], None)],
    );
    let m = world()
        .policy(np_api_from_web())
        .cluster_policy(egress)
        .build();
    let index = Index::new(&m);
    assert_eq!(
        said(&verdict(
            &index,
            "payments/api",
            Egress,
            "198.18.0.2",
            TCP,
            80
        )),
        "deny Baseline e#0"
    );
}

#[test]
fn without_cluster_policies_the_verdict_is_networkpolicys() {
    let m = world().policy(np_api_from_web()).build();
    let index = Index::new(&m);
    for (local, remote) in [
        ("payments/api", "198.18.0.2"),
        ("payments/api", "198.18.1.20"),
        ("payments/db", "198.18.1.20"),
    ] {
        let l = ep(&index, local);
        let np = index.verdict(l, Ingress, ip(remote), TCP, 8080);
        let all = index.cluster_verdict(l, Ingress, ip(remote), TCP, 8080);
        assert!(all.passed.is_empty());
        assert_eq!(all.is_allowed(), np.is_allowed());
        match np {
            Verdict::NotIsolated => assert_eq!(all.decision, Decision::Default),
            verdict => assert_eq!(all.decision, Decision::NetworkPolicy { verdict }),
        }
    }
}

#[test]
fn egress_accept_still_meets_the_receivers_ingress() {
    let m = world()
        .cluster_policy(cnp(
            "out",
            Admin,
            0,
            subject_ns(sel(&[("team", "web")])),
            vec![],
            vec![crule(Accept, vec![anyone()], None)],
        ))
        .cluster_policy(admin("in", 1, api(), vec![crule(Deny, vec![web()], None)]))
        .build();
    let index = Index::new(&m);
    let out = verdict(&index, "web/checkout", Egress, "198.18.0.10", TCP, 8080);
    assert_eq!(said(&out), "accept Admin out#0");
    assert_eq!(into_api(&index, "198.18.0.2"), "deny Admin in#0");
    // Each direction is asked of its own endpoint: the egress rule is not the
    // receiver's, the ingress rule not the sender's.
    assert_eq!(
        said(&verdict(
            &index,
            "web/checkout",
            Ingress,
            "198.18.0.10",
            TCP,
            80
        )),
        "default"
    );
    assert_eq!(
        said(&verdict(
            &index,
            "payments/api",
            Egress,
            "198.18.0.2",
            TCP,
            80
        )),
        "default"
    );
}

// --- Order ---------------------------------------------------------------------------

#[test]
fn lower_priority_is_evaluated_first_whatever_the_insertion_order() {
    let m = world()
        .cluster_policy(admin(
            "a-late",
            20,
            api(),
            vec![crule(Accept, vec![web()], None)],
        ))
        .cluster_policy(admin(
            "z-early",
            5,
            api(),
            vec![crule(Deny, vec![web()], None)],
        ))
        .build();
    let index = Index::new(&m);
    assert_eq!(into_api(&index, "198.18.0.2"), "deny Admin z-early#0");
    let ids = index.cluster_subjects(ep(&index, "payments/api"), Admin);
    let names: Vec<&str> = ids
        .iter()
        .map(|&i| m.cluster_policies[i].name.as_str())
        .collect();
    assert_eq!(names, ["z-early", "a-late"]);
}

#[test]
fn equal_priorities_are_ordered_by_name() {
    for (first, second) in [("a", "b"), ("b", "a")] {
        // Whichever is added first, `a` decides.
        let mk = |name: &str| {
            let action = if name == "a" { Deny } else { Accept };
            baseline(name, 7, api(), vec![crule(action, vec![web()], None)])
        };
        let m = world()
            .cluster_policy(mk(first))
            .cluster_policy(mk(second))
            .build();
        let index = Index::new(&m);
        assert_eq!(into_api(&index, "198.18.0.2"), "deny Baseline a#0");
    }
}

#[test]
fn admin_comes_before_baseline_whatever_the_priorities() {
    let m = world()
        .cluster_policy(baseline(
            "b",
            0,
            api(),
            vec![crule(Deny, vec![web()], None)],
        ))
        .cluster_policy(admin(
            "a",
            1000,
            api(),
            vec![crule(Accept, vec![web()], None)],
        ))
        .build();
    let index = Index::new(&m);
    assert_eq!(into_api(&index, "198.18.0.2"), "accept Admin a#0");
}

#[test]
fn first_matching_rule_in_written_order_decides_and_is_named() {
    let m = world()
        .cluster_policy(admin(
            "a",
            1,
            api(),
            vec![
                // Does not match: wrong peer.
                crule(Deny, vec![cpeer_ns(sel(&[("team", "data")]))], None),
                // Does not match: wrong port.
                crule(Deny, vec![web()], Some(vec![cports(Tcp, 9000, 9000)])),
                named_rule("web-in", crule(Accept, vec![web()], None)),
                crule(Deny, vec![web()], None),
            ],
        ))
        .build();
    let index = Index::new(&m);
    let v = verdict(&index, "payments/api", Ingress, "198.18.0.2", TCP, 8080);
    assert_eq!(said(&v), "accept Admin a#2");
    let Decision::Accept { by } = v.decision else {
        panic!("{v:?}")
    };
    assert_eq!(by.name.as_deref(), Some("web-in"));
    assert_eq!(by.id, 0);
    assert_eq!(
        said(&verdict(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            9000
        )),
        "deny Admin a#1"
    );
}

// --- Subjects ------------------------------------------------------------------------

#[test]
fn subject_namespaces_selects_every_endpoint_of_matching_namespaces() {
    let m = world()
        .cluster_policy(admin(
            "a",
            1,
            subject_ns(sel(&[("team", "pay")])),
            vec![crule(Deny, vec![anyone()], None)],
        ))
        .build();
    let index = Index::new(&m);
    for local in ["payments/api", "payments/db"] {
        assert_eq!(
            said(&verdict(&index, local, Ingress, "198.18.0.2", TCP, 80)),
            "deny Admin a#0"
        );
        assert_eq!(index.cluster_subjects(ep(&index, local), Admin), [0]);
        assert!(index
            .cluster_subjects(ep(&index, local), Baseline)
            .is_empty());
    }
    for local in ["web/checkout", "analytics/worker"] {
        assert_eq!(
            said(&verdict(&index, local, Ingress, "198.18.0.10", TCP, 80)),
            "default"
        );
        assert!(index.cluster_subjects(ep(&index, local), Admin).is_empty());
    }
    // By name, through the label every namespace carries.
    let m = world()
        .cluster_policy(admin(
            "a",
            1,
            subject_ns(sel(&[(NAMESPACE_NAME_LABEL, "analytics")])),
            vec![crule(Deny, vec![anyone()], None)],
        ))
        .build();
    let index = Index::new(&m);
    assert_eq!(
        said(&verdict(
            &index,
            "analytics/worker",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        )),
        "deny Admin a#0"
    );
}

#[test]
fn subject_pods_needs_both_selectors() {
    let m = world()
        .cluster_policy(admin(
            "a",
            1,
            subject_pods(sel(&[("team", "pay")]), sel(&[("app", "db")])),
            vec![crule(Deny, vec![anyone()], None)],
        ))
        // The pod selector matches in the wrong namespace only.
        .cluster_policy(admin(
            "b",
            2,
            subject_pods(sel(&[("team", "web")]), sel(&[("app", "db")])),
            vec![crule(Deny, vec![anyone()], None)],
        ))
        .build();
    let index = Index::new(&m);
    assert_eq!(
        said(&verdict(
            &index,
            "payments/db",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        )),
        "deny Admin a#0"
    );
    for local in ["payments/api", "web/checkout", "web/frontend"] {
        assert_eq!(
            said(&verdict(&index, local, Ingress, "198.18.0.11", TCP, 80)),
            "default",
            "{local}"
        );
    }
}

// --- Peers ---------------------------------------------------------------------------

/// `payments/api` egress under one Admin rule with these peers.
fn egress_with(action: Action, peers: Vec<ClusterPeer>) -> crate::model::Model {
    world()
        .cluster_policy(cnp(
            "a",
            Admin,
            1,
            api(),
            vec![],
            vec![crule(action, peers, None)],
        ))
        .build()
}

fn out_of_api(index: &Index<'_>, remote: &str) -> String {
    said(&verdict(index, "payments/api", Egress, remote, TCP, 443))
}

#[test]
fn peer_namespaces_and_pods_match_endpoint_addresses_of_both_families() {
    let m = egress_with(Deny, vec![web()]);
    let index = Index::new(&m);
    for remote in ["198.18.0.2", "2001:db8::2", "198.18.0.3"] {
        assert_eq!(out_of_api(&index, remote), "deny Admin a#0", "{remote}");
    }
    for remote in [
        "198.18.1.20",
        "2001:db8:1::20",
        OUTSIDE,
        OUTSIDE6,
        "198.18.9.1",
    ] {
        assert_eq!(out_of_api(&index, remote), "default", "{remote}");
    }
    let m = egress_with(
        Deny,
        vec![cpeer_pods(
            sel(&[("team", "web")]),
            sel(&[("app", "checkout")]),
        )],
    );
    let index = Index::new(&m);
    assert_eq!(out_of_api(&index, "2001:db8::2"), "deny Admin a#0");
    assert_eq!(out_of_api(&index, "198.18.0.2"), "deny Admin a#0");
    assert_eq!(out_of_api(&index, "198.18.0.3"), "default");
}

#[test]
fn peer_networks_contain_any_address_including_endpoints() {
    let m = egress_with(
        Deny,
        vec![networks(&[
            "198.18.0.2/32",
            "2001:db8:1::/64",
            "198.19.0.0/16",
        ])],
    );
    let index = Index::new(&m);
    for remote in ["198.18.0.2", "2001:db8:1::20", OUTSIDE, "2001:db8:1::ffff"] {
        assert_eq!(out_of_api(&index, remote), "deny Admin a#0", "{remote}");
    }
    for remote in [
        "198.18.0.3",
        "2001:db8::2",
        OUTSIDE6,
        "198.18.1.20",
        "198.18.0.1",
    ] {
        assert_eq!(out_of_api(&index, remote), "default", "{remote}");
    }
}

#[test]
fn peer_nodes_match_the_addresses_of_selected_nodes() {
    let m = egress_with(Deny, vec![nodes(sel(&[("role", "worker")]))]);
    let index = Index::new(&m);
    assert_eq!(out_of_api(&index, "198.18.9.1"), "deny Admin a#0");
    assert_eq!(out_of_api(&index, "2001:db8:9::1"), "deny Admin a#0");
    // node-b is not selected; its neighbour address is no node's.
    assert_eq!(out_of_api(&index, "198.18.9.2"), "default");
    assert_eq!(out_of_api(&index, "198.18.9.3"), "default");
    assert_eq!(out_of_api(&index, "198.18.0.2"), "default");
    let m = egress_with(Deny, vec![nodes(sel(&[]))]);
    let index = Index::new(&m);
    assert_eq!(out_of_api(&index, "198.18.9.2"), "deny Admin a#0");
}

#[test]
fn unknown_peer_matches_nothing_for_accept_and_everything_for_deny_and_pass() {
    let remotes = ["198.18.0.2", "2001:db8::2", OUTSIDE, OUTSIDE6, "198.18.9.1"];
    let m = egress_with(Accept, vec![unknown_peer()]);
    let index = Index::new(&m);
    for remote in remotes {
        assert_eq!(out_of_api(&index, remote), "default", "{remote}");
    }
    let m = egress_with(Deny, vec![unknown_peer()]);
    let index = Index::new(&m);
    for remote in remotes {
        assert_eq!(out_of_api(&index, remote), "deny Admin a#0", "{remote}");
    }
    // Beside a known peer: the known peer still matches in an Accept rule.
    let m = egress_with(Accept, vec![unknown_peer(), web()]);
    let index = Index::new(&m);
    assert_eq!(out_of_api(&index, "198.18.0.2"), "accept Admin a#0");
    assert_eq!(out_of_api(&index, OUTSIDE), "default");
    // Pass: everything goes on to the next tier.
    let m = world()
        .cluster_policy(cnp(
            "a",
            Admin,
            1,
            api(),
            vec![],
            vec![crule(Pass, vec![unknown_peer()], None)],
        ))
        .cluster_policy(cnp(
            "z",
            Admin,
            2,
            api(),
            vec![],
            vec![crule(Deny, vec![networks(&["0.0.0.0/0", "::/0"])], None)],
        ))
        .build();
    let index = Index::new(&m);
    for remote in remotes {
        assert_eq!(
            out_of_api(&index, remote),
            "default after pass Admin a#0",
            "{remote}"
        );
    }
}

// --- Protocols -----------------------------------------------------------------------

/// `payments/api` ingress from `web` under one Admin Deny rule with these protocols.
fn ingress_protocols(protocols: Option<Vec<ClusterPort>>) -> crate::model::Model {
    world()
        .cluster_policy(admin(
            "a",
            1,
            api(),
            vec![crule(Deny, vec![web()], protocols)],
        ))
        .build()
}

fn denies(index: &Index<'_>, local: &str, dir: Direction, remote: &str, p: u8, port: u16) -> bool {
    !verdict(index, local, dir, remote, p, port).is_allowed()
}

fn denied_in(index: &Index<'_>, p: u8, port: u16) -> bool {
    denies(index, "payments/api", Ingress, "198.18.0.2", p, port)
}

#[test]
fn no_protocols_match_every_protocol_and_port_icmp_included() {
    let m = ingress_protocols(None);
    let index = Index::new(&m);
    for (p, port) in [
        (TCP, 0),
        (TCP, 65535),
        (UDP, 53),
        (SCTP, 9),
        (ICMP, 0),
        (47, 0),
    ] {
        assert!(denied_in(&index, p, port), "{p}/{port}");
    }
    // IPv6 too.
    assert!(denies(
        &index,
        "payments/api",
        Ingress,
        "2001:db8::2",
        ICMP,
        0
    ));
}

#[test]
fn protocol_without_port_matches_every_port_of_it_only() {
    let m = ingress_protocols(Some(vec![cproto(Udp)]));
    let index = Index::new(&m);
    for port in [0, 1, 53, 65535] {
        assert!(denied_in(&index, UDP, port), "{port}");
    }
    for p in [TCP, SCTP, ICMP] {
        assert!(!denied_in(&index, p, 53), "{p}");
    }
}

#[test]
fn port_range_bounds_are_inclusive() {
    let m = ingress_protocols(Some(vec![cports(Tcp, 8000, 8080), cports(Sctp, 9, 9)]));
    let index = Index::new(&m);
    assert!(!denied_in(&index, TCP, 7999));
    assert!(denied_in(&index, TCP, 8000));
    assert!(denied_in(&index, TCP, 8080));
    assert!(!denied_in(&index, TCP, 8081));
    assert!(!denied_in(&index, UDP, 8000));
    assert!(denied_in(&index, SCTP, 9));
    assert!(!denied_in(&index, SCTP, 10));
}

#[test]
fn icmp_is_matched_only_by_rules_without_protocols() {
    let m = ingress_protocols(Some(vec![
        cproto(Tcp),
        cproto(Udp),
        cproto(Sctp),
        cnamed("http"),
    ]));
    let index = Index::new(&m);
    assert!(!denied_in(&index, ICMP, 0));
    assert!(!denies(
        &index,
        "payments/api",
        Ingress,
        "2001:db8::2",
        58,
        0
    ));
    assert!(denied_in(&index, TCP, 1));
}

#[test]
fn ingress_named_port_resolves_on_the_local_endpoint_with_its_protocol() {
    let m = ingress_protocols(Some(vec![cnamed("http"), cnamed("dns")]));
    let index = Index::new(&m);
    assert!(denied_in(&index, TCP, 8080));
    assert!(denied_in(&index, UDP, 53));
    // The name's protocol only.
    assert!(!denied_in(&index, UDP, 8080));
    assert!(!denied_in(&index, TCP, 53));
    assert!(!denied_in(&index, TCP, 8081));
    // An endpoint declaring no such name: no match.
    let m = world()
        .cluster_policy(admin(
            "a",
            1,
            all_ns(),
            vec![crule(Deny, vec![web()], Some(vec![cnamed("http")]))],
        ))
        .build();
    let index = Index::new(&m);
    assert!(!denies(
        &index,
        "payments/db",
        Ingress,
        "198.18.0.2",
        TCP,
        8080
    ));
    assert!(denies(
        &index,
        "payments/api",
        Ingress,
        "198.18.0.2",
        TCP,
        8080
    ));
}

#[test]
fn egress_named_port_resolves_on_the_remote_endpoint() {
    let m = world()
        .cluster_policy(cnp(
            "a",
            Admin,
            1,
            subject_ns(sel(&[("team", "web")])),
            vec![],
            vec![crule(
                Deny,
                vec![networks(&["0.0.0.0/0", "::/0"])],
                Some(vec![cnamed("http")]),
            )],
        ))
        .build();
    let index = Index::new(&m);
    let out = |remote: &str, port| denies(&index, "web/checkout", Egress, remote, TCP, port);
    assert!(out("198.18.0.10", 8080));
    assert!(out("2001:db8::10", 8080));
    assert!(!out("198.18.0.10", 80));
    // payments/db declares no `http`; an address of no endpoint never matches a name.
    assert!(!out("198.18.0.11", 8080));
    assert!(!out(OUTSIDE, 8080));
    assert!(!out(OUTSIDE6, 8080));
    assert!(!out("198.18.9.1", 8080));
}

#[test]
fn cluster_port_range_on_gives_the_ranges_the_plan_will_need() {
    let m = world().build();
    let index = Index::new(&m);
    let api = index.endpoint(ep(&index, "payments/api"));
    assert_eq!(
        cluster_port_range_on(&cproto(Tcp), Tcp, None),
        Some((0, 65535))
    );
    assert_eq!(cluster_port_range_on(&cproto(Tcp), Udp, None), None);
    assert_eq!(
        cluster_port_range_on(&cports(Udp, 5, 9), Udp, None),
        Some((5, 9))
    );
    assert_eq!(
        cluster_port_range_on(&cnamed("http"), Tcp, Some(api)),
        Some((8080, 8080))
    );
    assert_eq!(cluster_port_range_on(&cnamed("http"), Udp, Some(api)), None);
    assert_eq!(cluster_port_range_on(&cnamed("http"), Tcp, None), None);
}

#[test]
fn cluster_verdict_serializes_with_names() {
    let m = world()
        .cluster_policy(admin(
            "a",
            1,
            api(),
            vec![named_rule("no-web", crule(Deny, vec![web()], None))],
        ))
        .build();
    let index = Index::new(&m);
    let v = verdict(&index, "payments/api", Ingress, "198.18.0.2", TCP, 80);
    assert_eq!(
        serde_json::to_value(&v).unwrap(),
        serde_json::json!({
            "passed": [],
            "decision": {
                "decision": "deny",
                "by": {"tier": "Admin", "policy": "a", "rule": 0, "name": "no-web"}
            }
        })
    );
}
