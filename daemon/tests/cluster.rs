//! ClusterNetworkPolicy through the real netpold, with real packets, beside the bundled
//! example (payments-api isolated by NetworkPolicy: only checkout on TCP 8080):
//! - a rule without `protocols` takes ICMP, ICMPv6 and any other protocol: an Admin
//!   `Accept` lets checkout ping (the NetworkPolicies alone drop it), an Admin `Deny`
//!   drops frontend's pings and a protocol-253 packet, and each of those is an event
//!   naming the Admin rule, counted as an Admin denial in `status`;
//! - a rule with `protocols: [tcp]` does not: frontend's pings then meet the
//!   NetworkPolicies again (an event naming them), while its TCP meets the rule;
//! - the failsafe (inbound TCP 22) comes before an Admin deny of everything.
//!
//! The conformance cases (`tests/lab/cluster-cases/`) cover the tiers' TCP and UDP
//! semantics cell by cell. Needs root.

mod support;

use support::daemon::*;
use support::text;

/// Admin `guard` on payments-api's ingress: checkout may send anything, frontend
/// nothing (`protocols` as given, or none).
fn guard(frontend_protocols: &str) -> String {
    format!(
        "apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata:
  name: guard
spec:
  tier: Admin
  priority: 1
  subject:
    pods:
      namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: payments}}}}
      podSelector: {{matchLabels: {{app: payments-api}}}}
  ingress:
  - name: checkout-anything
    action: Accept
    from:
    - pods:
        namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: web}}}}
        podSelector: {{matchLabels: {{app: checkout}}}}
  - name: no-frontend
    action: Deny
    from:
    - pods:
        namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: web}}}}
        podSelector: {{matchLabels: {{app: frontend}}}}
{frontend_protocols}"
    )
}

fn pings(peer: &support::NetNs, src: &str, dst: &str) -> bool {
    match rawsend(peer, &["ping", src, dst]).trim() {
        "reply" => true,
        "no reply" => false,
        other => panic!("rawsend ping: {other}"),
    }
}

#[test]
fn a_rule_without_protocols_takes_icmp_and_every_protocol_and_events_name_it() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    add_ipv6(&host, &peer);
    let lab = Lab::new();
    lab.write("policies/guard.yaml", &guard(""));
    lab.write(
        "netpold.yaml",
        "events: {dedup-window-ms: 2500}\nfailsafe: []\n",
    );
    let config = lab.path("netpold.yaml").display().to_string();
    let d = Daemon::start(&host, &lab, &["--config", &config]);
    link_up(&peer);
    let st = text(&d.ctl(&host, &["status"]).stdout);
    assert!(st.contains("cluster:         1 Admin, 0 Baseline"), "{st}");

    // The Admin Accept: checkout's pings pass, which the NetworkPolicies alone drop.
    assert!(
        pings(&peer, "198.18.2.10", "198.18.1.10"),
        "ICMP accepted by Admin"
    );
    assert!(
        pings(&peer, "2001:db8:2::10", "2001:db8:1::10"),
        "ICMPv6 accepted by Admin"
    );
    // The Admin Deny: frontend's pings and a packet of protocol 253 are dropped, each
    // an event naming the rule, none naming a NetworkPolicy.
    assert!(
        !pings(&peer, "198.18.2.11", "198.18.1.10"),
        "ICMP denied by Admin"
    );
    assert!(
        !pings(&peer, "2001:db8:2::11", "2001:db8:1::10"),
        "ICMPv6 denied"
    );
    rawsend(&peer, &["proto", "253", "198.18.2.11", "198.18.1.10"]);
    let got = events(&d, &host, 3);
    assert_eq!(got.len(), 3, "{got:#?}");
    let protocols: Vec<&str> = got
        .iter()
        .map(|e| e["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(protocols, ["ICMP", "ICMPv6", "253"]);
    for e in &got {
        assert_eq!(e["verdict"], "deny", "{e:#}");
        assert_eq!(e["peer"], "web/frontend", "{e:#}");
        assert_eq!(e["policies"], serde_json::json!([]), "{e:#}");
        assert_eq!(
            e["cluster_rule"],
            serde_json::json!({
                "tier": "Admin",
                "policy": "guard",
                "field": "ingress[1]",
                "name": "no-frontend",
            }),
            "{e:#}"
        );
    }
    let lines = text(&d.ctl(&host, &["logs"]).stdout);
    assert!(lines.contains("Admin/guard/no-frontend"), "{lines}");
    // Counted as Admin's: 1 + 1 + 1 packets at least (a ping's request once each).
    let s = d.status(&host);
    assert!(s["denied"]["admin"].as_u64().unwrap() >= 3, "{s:#}");
    assert_eq!(s["denied"]["baseline"], 0, "{s:#}");

    // With `protocols: [tcp]` the rule no longer takes ICMP: frontend's ping meets the
    // NetworkPolicies (denied, an event naming them), its TCP still meets the rule.
    lab.write(
        "policies/guard.yaml",
        &guard("    protocols:\n    - tcp: {}\n"),
    );
    let out = d.ctl(&host, &["reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!pings(&peer, "198.18.2.11", "198.18.1.10"));
    assert!(!reaches_api(&peer, "198.18.2.11"), "TCP denied by Admin");
    let got = events(&d, &host, 5);
    let ping = got
        .iter()
        .skip(3)
        .find(|e| e["protocol"] == "ICMP")
        .unwrap_or_else(|| panic!("{got:#?}"));
    assert!(ping.get("cluster_rule").is_none(), "{ping:#}");
    assert_eq!(
        ping["policies"],
        serde_json::json!([
            "payments/allow-checkout-to-api",
            "payments/default-deny-ingress"
        ]),
        "{ping:#}"
    );
    let tcp = got
        .iter()
        .skip(3)
        .find(|e| e["protocol"] == "TCP")
        .unwrap_or_else(|| panic!("{got:#?}"));
    assert_eq!(tcp["cluster_rule"]["name"], "no-frontend", "{tcp:#}");
    // checkout: still everything.
    assert!(pings(&peer, "198.18.2.10", "198.18.1.10"));
}

/// The failsafe comes before every tier: an Admin `Deny` of everything from every
/// endpoint (no `protocols`) leaves inbound TCP 22, the default failsafe, open.
#[test]
fn an_admin_deny_of_everything_leaves_the_failsafe_open() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    lab.write(
        "policies/lockdown.yaml",
        "apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata:
  name: lockdown
spec:
  tier: Admin
  priority: 0
  subject:
    namespaces: {}
  ingress:
  - action: Deny
    from:
    - namespaces: {}
",
    );
    let d = Daemon::start(&host, &lab, &[]);
    assert!(d.generation(&host) >= 1, "{}", d.log());
    // SSH gets through (once the link is up)...
    let start = std::time::Instant::now();
    while !reaches_api_on(&peer, "198.18.2.10", 22) {
        assert!(start.elapsed() < PATIENCE, "TCP 22 never reached");
    }
    assert!(reaches_api_on(&peer, "198.18.2.11", 22), "the failsafe");
    // ...while checkout's way in (its NetworkPolicy allows 8080) and any other port
    // are denied by Admin.
    assert!(!reaches_api(&peer, "198.18.2.10"), "denied by Admin");
    assert!(!reaches_api_on(&peer, "198.18.2.11", 23));
}
