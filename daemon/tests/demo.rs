//! `scripts/demo`, the README's first command, run as a test: with this build's
//! `netpold` and `netpolctl` (`NETPOL_DEMO_BIN`), so that it needs no release build and
//! takes no cargo lock. The script checks every verdict itself (kernel, matrix and the
//! example's meaning) and exits 1 on any difference; this test also reads its output
//! for the verdicts that matter, the hot reload, the audit step's events, and that
//! nothing is left behind.
//! Needs root and socat (scripts/install-deps); without root it says so and passes.
//! One test only, and the script takes a lock, so demos never overlap.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

const NETPOLD: &str = env!("CARGO_BIN_EXE_netpold");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The verdict row of `flow` in a table of the demo's output: expected, IPv4, IPv6 and
/// matrix marks.
fn row<'a>(table: &'a str, flow: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(flow))
        .unwrap_or_else(|| panic!("no row for {flow} in:\n{table}"));
    line[flow.len()..].split_whitespace().take(4).collect()
}

/// The part of `out` from the line containing `from` to the next `###` heading.
fn section<'a>(out: &'a str, from: &str) -> &'a str {
    let start = out
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in the demo's output:\n{out}"));
    let rest = &out[start..];
    let end = rest[3..].find("\n###").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

#[test]
fn the_demo_enforces_the_example_hot_reloads_and_audits() {
    match std::fs::metadata("/proc/self") {
        Ok(m) if m.uid() == 0 => {}
        _ => {
            support::skip("scripts/demo: not root (it creates network namespaces)");
            return;
        }
    }
    let bin = Path::new(NETPOLD).parent().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("scripts/demo"))
        .env("NETPOL_DEMO_BIN", bin)
        .env("NETPOL_DEMO_NO_INSTALL", "1")
        .output()
        .expect("running scripts/demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/demo failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );

    let before = section(&stdout, "### real traffic");
    let after = section(&stdout, "### the same flows after the edit");
    let allowed = ["allowed", "✓", "✓", "✓"];
    let denied = ["denied", "✗", "✗", "✗"];
    let api = "web/checkout -> payments/payments-api 8080/TCP";
    let frontend = "web/frontend -> payments/payments-api 8080/TCP";
    let worker = "analytics/worker -> payments/payments-api 8080/TCP";
    let dns_udp = "web/checkout -> kube-system/kube-dns 53/UDP";
    let dns_tcp = "web/checkout -> kube-system/kube-dns 53/TCP";
    let analytics = "web/frontend -> analytics/worker 9100/TCP";
    assert_eq!(row(before, api), allowed);
    assert_eq!(row(before, frontend), denied);
    assert_eq!(row(before, worker), denied);
    assert_eq!(row(before, dns_udp), allowed);
    assert_eq!(row(before, dns_tcp), allowed);
    assert_eq!(row(before, analytics), denied);
    // The edit lets frontend in, and nothing else changes.
    assert_eq!(row(after, frontend), allowed);
    assert_eq!(row(after, api), allowed);
    assert_eq!(row(after, worker), denied);
    assert_eq!(row(after, analytics), denied);

    // Every daemon reloaded from the files, once: generation 2, 2 applied, 0 failed.
    // Before any netpold sees the edit, `netpolctl diff` says exactly what it does:
    // one flow allowed, nothing else.
    let diff = section(
        &stdout,
        "### netpolctl diff of the edit, before it is applied",
    );
    let lines: Vec<&str> = diff.lines().skip(1).map(str::trim_end).collect();
    assert_eq!(
        lines,
        [
            "  connectivity: +1 flow allowed, -0 denied",
            "",
            "  payments/payments-api",
            "    + web/frontend  8080/TCP",
            "  moved the edited files into $tmp/policies",
        ],
        "{diff}"
    );
    let reload = section(&stdout, "### every netpold saw the files change");
    for endpoint in [
        "payments/payments-api",
        "web/checkout",
        "web/frontend",
        "analytics/worker",
        "kube-system/kube-dns",
    ] {
        let cols = row(reload, endpoint);
        assert_eq!(cols[0], "2", "{endpoint}: generation\n{reload}");
        assert_eq!(cols[1], "files", "{endpoint}: trigger\n{reload}");
        assert!(cols[3].ends_with("/0"), "{endpoint}: failures\n{reload}");
    }
    assert!(stdout.contains("hot reload: every daemon applied the edit"));
    assert!(
        section(&stdout, "### netpolctl show in payments-api")
            .contains("payments/payments-api  ingress"),
        "payments-api's deny counter is shown:\n{stdout}"
    );

    // Audit mode: the audited policy's flow passes and is reported as `audit` (one event
    // per family); enforced, it is dropped and reported as `deny`, naming the policy.
    let checkout = "analytics/worker -> web/checkout 8000/TCP";
    let audited = section(&stdout, "### audit mode: a new policy");
    assert_eq!(row(audited, checkout), allowed);
    assert_eq!(row(audited, api), allowed);
    let enforced = section(&stdout, "### enforcing it");
    assert_eq!(row(enforced, checkout), denied);
    assert_eq!(row(enforced, api), allowed);
    for (heading, verdict) in [
        ("### netpolctl logs in checkout's", "audit"),
        ("### netpolctl logs --verdict deny", "deny"),
    ] {
        let logs = section(&stdout, heading);
        let events: Vec<&str> = logs.lines().skip(1).filter(|l| !l.is_empty()).collect();
        assert_eq!(events.len(), 2, "one {verdict} event per family:\n{logs}");
        for e in events {
            let words: Vec<&str> = e.split_whitespace().collect();
            assert_eq!(
                words[1..6],
                [verdict, "ingress", "web/checkout", "<-", "analytics/worker"],
                "{logs}"
            );
            assert_eq!(words[7], "web/checkout-ingress", "{logs}");
        }
    }

    // Nothing is left: the namespaces the demo named are gone.
    let prefix = stdout
        .split_once("in its own (")
        .and_then(|(_, r)| r.split_once("-*)"))
        .map(|(p, _)| p.to_string())
        .expect("the demo names its namespaces");
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.lines().any(|l| l.starts_with(&format!("{prefix}-"))),
        "namespaces {prefix}-* left behind:\n{list}"
    );
    assert!(stdout.contains("every verdict as expected; removing the lab"));
}
