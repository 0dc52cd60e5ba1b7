//! netpol beside other firewalls (firewalld, Docker and ufw keep tables of their own):
//! a foreign table whose base chains accept everything, before and after netpol's,
//! does not open what netpol denies, and netpol never changes another table. The real
//! binary in network namespaces, with real TCP. Needs root.

mod support;
use support::daemon::*;
use support::NetNs;

/// Base chains at both sides of netpol's (priority filter, 0) that accept everything,
/// as a permissive host firewall has, and an iptables-nft style table.
const FOREIGN: &str = "
table inet fw {
  chain early_in { type filter hook input priority -200; policy accept; accept; }
  chain late_in { type filter hook input priority 200; policy accept; accept; }
  chain early_out { type filter hook output priority -200; policy accept; accept; }
}
table ip filter {
  chain INPUT { type filter hook input priority filter; policy accept; ct state new accept; }
}
";

fn foreign(ns: &NetNs) -> String {
    let fw = ns.ok("nft", &["list", "table", "inet", "fw"]);
    let filter = ns.ok("nft", &["list", "table", "ip", "filter"]);
    fw + &filter
}

#[test]
fn a_foreign_accept_does_not_open_what_netpol_denies_and_netpol_leaves_other_tables_alone() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let load = host
        .command("nft", &["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn();
    let mut load = load.unwrap();
    std::io::Write::write_all(&mut load.stdin.take().unwrap(), FOREIGN.as_bytes()).unwrap();
    assert!(load.wait().unwrap().success());
    let before = foreign(&host);
    // Nothing is denied yet: frontend reaches payments-api through the foreign accepts.
    assert!(reaches_api(&peer, "198.18.2.11"));

    let lab = Lab::new();
    let d = Daemon::start(&host, &lab, &[]);
    // netpol's drop is final; the accepts before and after it end only their own chains.
    assert_example_enforced(&peer);
    assert_eq!(foreign(&host), before, "start-up leaves other tables alone");

    // Two reloads: a port changed, and back.
    lab.write(
        "policies/payments.yaml",
        &lab.read("policies/payments.yaml")
            .replace("port: 8080", "port: 8081"),
    );
    d.wait_for(&host, "the edit to apply", |s| s["generation"] == 2);
    assert!(
        !reaches_api(&peer, "198.18.2.10"),
        "checkout is denied on 8080 now"
    );
    assert!(!reaches_api(&peer, "198.18.2.11"));
    lab.write(
        "policies/payments.yaml",
        &lab.read("policies/payments.yaml")
            .replace("port: 8081", "port: 8080"),
    );
    d.wait_for(&host, "the edit back to apply", |s| s["generation"] == 3);
    assert_example_enforced(&peer);
    assert_eq!(foreign(&host), before, "reloads leave other tables alone");

    // A drop in the other table is final too: netpol's accept cannot override it.
    // Inserted before the chain's `accept`.
    host.ok(
        "nft",
        &["insert rule inet fw late_in ip saddr 198.18.2.10 tcp dport 8080 drop"],
    );
    assert!(!reaches_api(&peer, "198.18.2.10"), "the foreign drop holds");
    host.ok(
        "nft",
        &["flush chain inet fw late_in; add rule inet fw late_in accept"],
    );
    assert_example_enforced(&peer);

    // Stopping and flushing touch only netpol's table.
    assert!(d.terminate().success());
    assert_eq!(foreign(&host), before);
    let out = host.run(NETPOLCTL, &["flush"]);
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    assert_eq!(host.table(), None);
    assert_eq!(foreign(&host), before, "flush leaves other tables alone");
    assert!(
        reaches_api(&peer, "198.18.2.11"),
        "open again without netpol"
    );
}
