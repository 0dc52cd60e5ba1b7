//! Nobody else changes netpol's rules (issue #11): netpold's table is owned by it and
//! outlives it; where it is not owned, anyone's change to it is put back within a
//! second; `netpolctl apply` does not replace a table that is not netpol's. The real
//! binaries in network namespaces, with real TCP (frontend must stay denied). Needs
//! root.

use std::time::{Duration, Instant};

mod support;
use support::daemon::*;
use support::{normalised, text, NetNs};

/// What each foreign change is given to be put right.
const REPAIR_WITHIN: Duration = Duration::from_secs(1);

/// `nft args` in `ns`: (succeeded, stderr).
fn try_nft(ns: &NetNs, args: &[&str]) -> (bool, String) {
    let out = ns.run("nft", args);
    (out.status.success(), text(&out.stderr))
}

/// The table's listing, normalised (counters, owner and flags aside).
fn listing(ns: &NetNs) -> Option<String> {
    ns.table().map(|t| normalised(&t))
}

/// Someone else's changes to the table, each as an operator might make them.
const ATTACKS: [(&str, &[&str]); 5] = [
    ("delete the table", &["delete", "table", "inet", "netpol"]),
    (
        "insert an accept at the top of input",
        &["insert", "rule", "inet", "netpol", "input", "accept"],
    ),
    (
        "flush the input chain",
        &["flush", "chain", "inet", "netpol", "input"],
    ),
    (
        "empty the ingress map",
        &["flush", "map", "inet", "netpol", "ingress_v4"],
    ),
    ("flush the whole ruleset", &["flush", "ruleset"]),
];

#[test]
fn netpold_owns_its_table_and_nobody_else_can_change_it() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let d = Daemon::start(&host, &lab, &[]);
    assert_example_enforced(&peer);
    let before = listing(&host).expect("a table");
    let status = d.status(&host);
    assert_eq!(status["ownership"], "owned", "{status:#}");
    assert!(
        host.table().unwrap().contains("\tflags owner"),
        "nft shows the owner flag"
    );

    for (what, args) in ATTACKS {
        let (ok, err) = try_nft(&host, args);
        if args == ["flush", "ruleset"] {
            // Succeeds, and passes the owned table by.
            assert!(ok, "{what}: {err}");
        } else {
            assert!(!ok, "{what}: nft succeeded on netpold's table");
            assert!(err.contains("Operation not permitted"), "{what}: {err}");
        }
        assert_eq!(
            listing(&host).as_ref(),
            Some(&before),
            "{what}: the table changed"
        );
        assert!(
            !reaches_api(&peer, "198.18.2.11"),
            "{what}: frontend got through"
        );
    }

    // netpolctl is someone else too, and is told who owns the table.
    let out = host.run(
        NETPOLCTL,
        &[
            "apply",
            "--policies",
            lab.path("policies").to_str().unwrap(),
            "--inventory",
            lab.path("inventory").to_str().unwrap(),
        ],
    );
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "netpolctl apply replaced netpold's table"
    );
    let pid = format!("netpold (pid {})", d.child.id());
    assert!(
        err.contains(&pid) && err.contains("only it may change"),
        "{err}"
    );
    let out = host.run(NETPOLCTL, &["flush"]);
    assert!(
        !out.status.success(),
        "netpolctl flush removed netpold's table"
    );
    assert_eq!(listing(&host).as_ref(), Some(&before));
    let status = d.status(&host);
    assert_eq!(status["drift"]["repairs"], 0, "{status:#}");
    let show = text(&host.run(NETPOLCTL, &["show"]).stdout);
    assert!(
        show.contains(&format!(
            "made by netpol; owned by {pid}: only it may change"
        )),
        "{show}"
    );
}

#[test]
fn after_kill_9_the_table_stays_in_force_and_the_next_netpold_takes_it_over() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let mut d = Daemon::start(&host, &lab, &[]);
    assert_example_enforced(&peer);
    let before = listing(&host).expect("a table");
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    // Without its owner the table stays in force as it was.
    assert_eq!(listing(&host).as_ref(), Some(&before));
    let show = text(&host.run(NETPOLCTL, &["show"]).stdout);
    assert!(show.contains("persistent, its owner ended"), "{show}");
    assert!(!reaches_api(&peer, "198.18.2.11"), "frontend got through");
    drop(d);

    let d = Daemon::start(&host, &lab, &[]);
    assert!(
        d.log().contains("took over table inet netpol"),
        "{}",
        d.log()
    );
    let (ok, err) = try_nft(&host, &["delete", "table", "inet", "netpol"]);
    assert!(!ok && err.contains("Operation not permitted"), "{err}");
    assert_eq!(listing(&host).as_ref(), Some(&before));
    assert_example_enforced(&peer);
}

#[test]
fn without_ownership_every_foreign_change_is_repaired_within_a_second() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let d = Daemon::start(&host, &lab, &["--no-own-table"]);
    assert_example_enforced(&peer);
    let before = listing(&host).expect("a table");
    let status = d.status(&host);
    assert_eq!(status["ownership"], "off", "{status:#}");
    let generation = status["generation"].clone();

    for (n, (what, args)) in ATTACKS.iter().enumerate() {
        let (ok, err) = try_nft(&host, args);
        assert!(ok, "{what}: {err}");
        let changed = Instant::now();
        // Put back within a second: the same table as before.
        loop {
            if listing(&host).as_ref() == Some(&before) {
                let s = d.status(&host);
                if s["drift"]["repairs"].as_u64() == Some(n as u64 + 1) {
                    break;
                }
            }
            assert!(
                changed.elapsed() < REPAIR_WITHIN,
                "{what}: not repaired within {REPAIR_WITHIN:?}; status {:#}\nlog:\n{}",
                d.status(&host),
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        println!("{what}: repaired in {:?}", changed.elapsed());
        assert!(
            !reaches_api(&peer, "198.18.2.11"),
            "{what}: frontend got through"
        );
        let s = d.status(&host);
        let last = &s["drift"]["last"];
        assert_eq!(last["outcome"], "repaired", "{what}: {s:#}");
        assert!(
            last["by"].as_str().unwrap().starts_with("nft (pid "),
            "{what}: {s:#}"
        );
        assert!(
            !last["changes"].as_array().unwrap().is_empty(),
            "{what}: {s:#}"
        );
        // A repair is not a reload: the inputs in force are the same generation.
        assert_eq!(s["generation"], generation, "{what}");
    }
    assert_example_enforced(&peer);
    let log = d.log();
    for words in [
        "table inet netpol was changed by nft (pid",
        "deleted table",
        "rules added to chain input",
        "rules deleted from chain input",
        "elements deleted from ingress_v4",
        "repaired: replaced it",
    ] {
        assert!(log.contains(words), "the log lacks {words:?}:\n{log}");
    }
    let text = d.ctl(&host, &["status"]);
    let text = support::text(&text.stdout);
    assert!(
        text.contains("foreign changes: 5 repaired, 0 not repaired"),
        "{text}"
    );

    // Another table's change is no drift: nothing is repaired.
    host.ok("nft", &["add", "table", "ip", "other"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.status(&host)["drift"]["repairs"], 5);
    // And an incremental update still builds on it (no needless replace).
    lab.write(
        "inventory/pods.yaml",
        &lab.read("inventory/pods.yaml")
            .replace("198.18.2.10", "198.18.2.12"),
    );
    let s = d.wait_for(&host, "the edit", |s| s["generation"] != generation);
    assert_eq!(s["loaded_how"]["how"], "updated", "{s:#}");
    assert!(
        !reaches_api(&peer, "198.18.2.10"),
        "checkout has moved away"
    );
}

#[test]
fn netpolctl_apply_and_flush_leave_a_table_netpol_did_not_make_unless_forced() {
    let Some(ns) = NetNs::new("npo") else {
        return;
    };
    let lab = Lab::new();
    ns.ok("nft", &["add", "table", "inet", "netpol"]);
    ns.ok("nft", &["add", "chain", "inet", "netpol", "mine"]);
    let theirs = ns.table().unwrap();
    let (policies, inventory) = (lab.path("policies"), lab.path("inventory"));
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "apply",
            "--policies",
            policies.to_str().unwrap(),
            "--inventory",
            inventory.to_str().unwrap(),
            "--local",
            "payments/payments-api",
        ];
        args.extend(extra);
        ns.run(NETPOLCTL, &args)
    };
    for out in [apply(&[]), ns.run(NETPOLCTL, &["flush"])] {
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(
            err.contains("netpol did not make it") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(ns.table().as_ref(), Some(&theirs), "changed anyway");
    }
    let out = apply(&["--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ours = ns.table().unwrap();
    assert!(ours.contains("comment \"managed by netpol\""), "{ours}");
    // netpol's own table is replaced and removed without asking.
    assert!(apply(&[]).status.success());
    let out = ns.run(NETPOLCTL, &["flush"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(ns.table(), None);
}
