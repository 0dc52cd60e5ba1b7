//! Hostile and broken input files against the real binaries: netpold keeps running and
//! answering, keeps the last good ruleset in force (checked with real TCP between
//! network namespaces), and says what is wrong and where; netpolctl stops with a located
//! error in bounded memory. Needs root for the namespaces.

mod support;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::daemon::*;
use support::text;

/// Waits until the daemon's last error contains `what`, and returns its message.
fn wait_for_error(d: &Daemon, host: &support::NetNs, what: &str) -> String {
    let s = d.wait_for(host, what, |s| {
        s["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(what))
    });
    s["last_error"]["message"].as_str().unwrap().to_string()
}

fn assert_running(d: &mut Daemon) {
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "netpold exited:\n{}",
        d.log()
    );
}

#[test]
fn an_emptied_policy_file_is_an_error_and_nothing_opens() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let d = Daemon::start(&host, &lab, &[]);
    assert_example_enforced(&peer);

    // Half of the policies, among them the one that isolates payments-api: taken as
    // "no objects", frontend would get through.
    let whole = lab.read("policies/payments.yaml");
    lab.write("policies/payments.yaml", "");
    let message = wait_for_error(&d, &host, "empty: no YAML documents");
    assert!(message.contains("payments.yaml"), "{message}");
    assert_eq!(d.generation(&host), 1, "nothing applied");
    assert!(
        !reaches_api(&peer, "198.18.2.11"),
        "frontend is still denied"
    );

    // Written again: in force as before, and the error is gone.
    lab.write("policies/payments.yaml", &whole);
    d.wait_for(&host, "the error to clear", |s| s["last_error"].is_null());
    assert_example_enforced(&peer);
}

#[test]
fn an_empty_file_is_no_objects_when_the_config_allows_it() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let d = Daemon::start(&host, &lab, &["--allow-empty-files"]);
    assert_example_enforced(&peer);
    lab.write("policies/web.yaml", "# nothing here yet\n");
    d.wait_for(&host, "the empty file to be applied", |s| {
        s["generation"] == 2
    });
    assert!(d.status(&host)["last_error"].is_null());
    assert_example_enforced(&peer);
}

#[test]
fn deep_nesting_is_a_located_error_and_netpold_keeps_running() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let mut d = Daemon::start(&host, &lab, &[]);
    assert_example_enforced(&peer);

    // 40 KB: a stack overflow (abort) in both binaries before, and a crash loop.
    lab.write("policies/zz.yaml", &("- ".repeat(20_000) + "x\n"));
    let message = wait_for_error(&d, &host, "nested too deep");
    assert!(message.contains("zz.yaml:1:129: error"), "{message}");
    assert_running(&mut d);
    assert_eq!(d.generation(&host), 1);
    assert_example_enforced(&peer);

    let out = host.run(
        NETPOLCTL,
        &[
            "compile",
            "--policies",
            lab.path("policies").to_str().unwrap(),
            "--inventory",
            lab.path("inventory").to_str().unwrap(),
            "--local",
            "payments/payments-api",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("zz.yaml:1:129: error: nested too deep"),
        "{}",
        text(&out.stderr)
    );

    std::fs::remove_file(lab.path("policies/zz.yaml")).unwrap();
    d.wait_for(&host, "the error to clear", |s| s["last_error"].is_null());
    assert_running(&mut d);
}

#[test]
fn a_fifo_in_the_policy_directory_neither_hangs_nor_opens() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let mut d = Daemon::start(&host, &lab, &[]);
    assert_example_enforced(&peer);

    // Opening it for reading blocked netpold's main thread for good before.
    let fifo = lab.path("policies/zz.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let message = wait_for_error(&d, &host, "not a regular file (a FIFO)");
    assert!(message.contains("zz.yaml"), "{message}");
    let started = Instant::now();
    let out = d.ctl(&host, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_running(&mut d);
    assert!(!reaches_api(&peer, "198.18.2.11"));

    // Edits after it are applied: only the default deny is left for payments.
    std::fs::remove_file(&fifo).unwrap();
    let whole = lab.read("policies/payments.yaml");
    let deny_only = whole.split("\n---").next().unwrap();
    assert!(deny_only.contains("default-deny-ingress"), "{deny_only}");
    lab.write("policies/payments.yaml", deny_only);
    d.wait_for(&host, "the edit to be applied", |s| s["generation"] == 2);
    assert!(d.status(&host)["last_error"].is_null());
    let start = Instant::now();
    while reaches_api(&peer, "198.18.2.10") {
        assert!(start.elapsed() < PATIENCE, "checkout is still allowed");
    }
}

/// `netpolctl compile` of `policies` with the example inventory, under an address-space
/// limit (`prlimit --as`) as a small host would run it. Pure compilation: no namespace
/// needed.
fn compile_within(policies: &Path, lab: &Lab, extra: &[&str]) -> Output {
    let inventory = lab.path("inventory");
    Command::new("prlimit")
        // 1 GiB; prlimit takes bytes (no suffixes).
        .arg("--as=1073741824")
        .arg(NETPOLCTL)
        .args(["compile", "--local", "payments/payments-api", "--policies"])
        .arg(policies)
        .arg("--inventory")
        .arg(inventory)
        .args(extra)
        .output()
        .expect("running prlimit (util-linux)")
}

fn fails_with(out: &Output, message: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(message), "{}", text(&out.stderr));
}

#[test]
fn huge_and_endless_files_are_refused_in_bounded_memory() {
    let lab = Lab::new();
    // 16 MB of one list: 2.8 GB before (tokens queued until the list closed), now
    // stopped by the node limit (8,000,000 and the list itself). A file starting with `[`
    // is JSON (so `[a, …]` is an error at its first `a`); the list as JSON numbers:
    let flow = lab.path("flow.yaml");
    std::fs::write(&flow, "[".to_string() + &"a,".repeat(8_000_000) + "a]\n").unwrap();
    let out = compile_within(&flow, &lab, &[]);
    fails_with(
        &out,
        "flow.yaml:1:2: error: malformed JSON: expected a value",
    );
    let json = lab.path("flow.json");
    std::fs::write(&json, "[".to_string() + &"1,".repeat(8_000_000) + "1]\n").unwrap();
    let out = compile_within(&json, &lab, &[]);
    fails_with(&out, "flow.json:1:16000000: error: too many JSON nodes");
    // The same list as YAML: after `---`, after a comment, or as a mapping's value. Ran
    // out of 1 GiB before (48-byte nodes, a string allocation each, and the fast path's
    // stack of the whole list kept beside saphyr's); about 370 MB now.
    let list = "[".to_string() + &"a,".repeat(8_000_000) + "a]\n";
    for (name, text, at) in [
        ("marker.yaml", format!("---\n{list}"), "2:16000000"),
        ("comment.yaml", format!("# a list\n{list}"), "2:16000000"),
        ("value.yaml", format!("key: {list}"), "1:16000001"),
    ] {
        let file = lab.path(name);
        std::fs::write(&file, text).unwrap();
        let out = compile_within(&file, &lab, &[]);
        fails_with(
            &out,
            &format!("{name}:{at}: error: too many YAML nodes: more than 8000000"),
        );
        std::fs::remove_file(&file).unwrap();
    }

    // A link to an endless device: read until memory ran out before.
    let zero = lab.path("policies/zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let out = compile_within(&lab.path("policies"), &lab, &[]);
    fails_with(
        &out,
        "zero.yaml: error: cannot read: not a regular file (a character device)",
    );
    std::fs::remove_file(&zero).unwrap();

    // Past the size limit, with the limit named; raising it lets the file through.
    let big = lab.path("big.yaml");
    std::fs::write(&big, "# padding\n".repeat(200_000)).unwrap();
    let out = compile_within(
        &big,
        &lab,
        &["--allow-empty-files", "--limit", "file-bytes=1000000"],
    );
    fails_with(
        &out,
        "big.yaml: error: too big: more than 1000000 bytes (limit file-bytes)",
    );
    let out = compile_within(
        &big,
        &lab,
        &["--allow-empty-files", "--limit", "file-bytes=3000000"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}
