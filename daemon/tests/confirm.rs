//! Confirm or roll back with real packets: a reload that cuts the operator's way in
//! (TCP 2222 standing in for SSH, the failsafe off) comes back by itself within the
//! window plus a second, with no further command; a confirmed one stays. Needs root.

mod support;
use std::time::{Duration, Instant};

use support::daemon::*;
use support::text;

/// checkout may reach payments-api on TCP 2222: the operator's "ssh".
const SSH_POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  \
    namespace: payments\n  name: allow-ssh\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    \
    - ipBlock: {cidr: 198.18.2.10/32}\n    ports:\n    - {protocol: TCP, port: 2222}\n";

/// A lab whose policies allow the "ssh" port, and a config with the failsafe off (so
/// the policies alone decide port 2222): the lab and the config's path.
fn ssh_lab() -> (Lab, String) {
    let lab = Lab::new();
    lab.write("policies/ssh.yaml", SSH_POLICY);
    lab.write("netpold.yaml", "failsafe: []\n");
    let config = lab.path("netpold.yaml").display().to_string();
    (lab, config)
}

fn ssh(peer: &support::NetNs) -> bool {
    reaches_api_on(peer, "198.18.2.10", 2222)
}

#[test]
fn an_unconfirmed_reload_that_cuts_ssh_comes_back_by_itself_and_a_confirmed_one_stays() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let (lab, config) = ssh_lab();
    let d = Daemon::start(&host, &lab, &["--config", &config]);
    assert!(ssh(&peer), "allowed by payments/allow-ssh");

    // The edit takes the way in away; provisional for 3 s.
    std::fs::remove_file(lab.path("policies/ssh.yaml")).unwrap();
    let out = d.ctl(&host, &["reload", "--confirm-within", "3s"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let applied = Instant::now();
    assert!(!ssh(&peer), "the new ruleset cuts it");
    let s = d.status(&host);
    assert_eq!(s["pending"]["rollback_to"], 1, "{s:#}");
    let st = text(&d.ctl(&host, &["status"]).stdout);
    assert!(st.contains("PROVISIONAL:     generation"), "{st}");
    // No command: netpold puts generation 1's inputs back by the deadline.
    let s = d.wait_for(&host, "the rollback", |s| s["rollbacks"] == 1);
    assert!(
        applied.elapsed() < Duration::from_secs(3 + 1),
        "rolled back {:?} after the reload",
        applied.elapsed()
    );
    assert!(ssh(&peer), "the way in is back");
    assert_eq!(s["held"]["trigger"], "rollback", "{s:#}");
    assert_eq!(s["disk"], "differ", "the files are not in force: {s:#}");
    assert!(s.get("pending").is_none(), "{s:#}");
    assert!(d.log().contains("was not confirmed in time"), "{}", d.log());

    // The same edit, confirmed (at once: each probe of the cut way waits 2 s): it
    // stays past its deadline.
    let out = d.ctl(&host, &["reload", "--confirm-within", "3s"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = d.ctl(&host, &["confirm"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.starts_with("confirmed: generation"), "{said}");
    std::thread::sleep(Duration::from_secs(4));
    assert!(!ssh(&peer), "confirmed: not rolled back");
    let s = d.status(&host);
    assert_eq!(s["rollbacks"], 1, "{s:#}");
    assert!(s.get("pending").is_none(), "{s:#}");
    // Nothing to confirm now: an error, exit 1.
    let out = d.ctl(&host, &["confirm"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nothing waits for confirmation"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unconfirmed_apply_is_loaded_back_by_a_process_that_outlives_netpolctl() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let run_dir = lab.path("run");
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply".to_string(), "--failsafe".into(), "none".into()];
        args.extend(lab.args().into_iter().take(4));
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = host
            .command(NETPOLCTL, &args)
            .env("NETPOL_RUN_DIR", &run_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let confirm = || {
        host.command(NETPOLCTL, &["--socket", "/nonexistent", "confirm"])
            .env("NETPOL_RUN_DIR", &run_dir)
            .output()
            .unwrap()
    };
    // Nothing in force: nothing to go back to, refused before anything is loaded.
    let mut args = vec!["apply", "--confirm-within", "2s"];
    let inputs = lab.args();
    args.extend(inputs.iter().take(4).map(String::as_str));
    let out = host
        .command(NETPOLCTL, &args)
        .env("NETPOL_RUN_DIR", &run_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no table inet netpol is in force to roll back to"));
    assert!(host.table().is_none(), "nothing loaded");

    lab.write("policies/ssh.yaml", SSH_POLICY);
    apply(&[]);
    assert!(ssh(&peer));
    std::fs::remove_file(lab.path("policies/ssh.yaml")).unwrap();
    let said = apply(&["--confirm-within", "3s"]);
    let applied = Instant::now();
    assert!(said.contains("PROVISIONAL"), "{said}");
    assert!(!ssh(&peer), "cut");
    // netpolctl has exited; its watcher loads the table back.
    while !ssh(&peer) {
        assert!(
            applied.elapsed() < Duration::from_secs(3 + 1 + 2),
            "not rolled back"
        );
    }
    assert!(
        applied.elapsed() < Duration::from_secs(3 + 1 + 2),
        "{:?}",
        applied.elapsed()
    );
    let out = confirm();
    assert!(!out.status.success(), "nothing waits");
    assert!(
        text(&out.stderr).contains("was not confirmed in time"),
        "{}",
        text(&out.stderr)
    );

    // Confirmed: it stays.
    apply(&["--confirm-within", "2s"]);
    let out = confirm();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("confirmed"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!ssh(&peer), "confirmed: stays");
}

/// A `confirm` racing the watcher at the deadline tells the truth: "confirmed" and the
/// applied table stays, or "not confirmed in time" and the old one is already back.
/// (The table's text shows which is in force: only the old one has port 2222.)
#[test]
fn a_confirm_at_the_deadline_says_what_the_kernel_holds() {
    let Some((host, _peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let run_dir = lab.path("run");
    let ctl = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if args[0] == "apply" {
            all.extend(["--failsafe".into(), "none".into()]);
            all.extend(lab.args().into_iter().take(4));
        }
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        host.command(NETPOLCTL, &all)
            .env("NETPOL_RUN_DIR", &run_dir)
            .output()
            .unwrap()
    };
    let old_in_force = || host.table().unwrap().contains("2222");
    let (mut confirmed, mut rolled_back) = (0, 0);
    for offset_ms in [-60i64, -20, 0, 20, 40, 60, 80, 100, 140] {
        lab.write("policies/ssh.yaml", SSH_POLICY);
        assert!(ctl(&["apply"]).status.success());
        std::fs::remove_file(lab.path("policies/ssh.yaml")).unwrap();
        let out = ctl(&["apply", "--confirm-within", "1s"]);
        let applied = Instant::now();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(!old_in_force());
        let at = Duration::from_millis((1000 + offset_ms) as u64);
        std::thread::sleep(at.saturating_sub(applied.elapsed()));
        let out = ctl(&["--socket", "/nonexistent", "confirm"]);
        if out.status.success() {
            confirmed += 1;
            // Past the deadline and the watcher's tick: it must have stood down.
            std::thread::sleep(Duration::from_millis(1500));
            assert!(
                !old_in_force(),
                "confirmed {offset_ms} ms after, then rolled back"
            );
        } else {
            rolled_back += 1;
            let said = text(&out.stderr);
            assert!(said.contains("was not confirmed in time"), "{said}");
            assert!(
                old_in_force(),
                "said rolled back {offset_ms} ms after, but is not"
            );
        }
    }
    eprintln!("confirmed {confirmed}, rolled back {rolled_back}");
}

/// A lock that cannot be taken (its file replaced by a directory) does not stop the
/// rollback: the unconfirmed table is replaced all the same.
#[test]
fn an_unusable_lock_file_does_not_stop_the_rollback() {
    let Some((host, _peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let run_dir = lab.path("run");
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply".to_string(), "--failsafe".into(), "none".into()];
        args.extend(lab.args().into_iter().take(4));
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = host
            .command(NETPOLCTL, &args)
            .env("NETPOL_RUN_DIR", &run_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    let old_in_force = || host.table().unwrap().contains("2222");
    lab.write("policies/ssh.yaml", SSH_POLICY);
    apply(&[]);
    std::fs::remove_file(lab.path("policies/ssh.yaml")).unwrap();
    apply(&["--confirm-within", "1s"]);
    assert!(!old_in_force());
    let lock = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "lock"))
        .expect("the apply's lock file");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let start = Instant::now();
    while !old_in_force() {
        assert!(
            start.elapsed() < Duration::from_secs(1 + 3),
            "not rolled back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_pending_rollback_survives_netpold_killed_and_restarted() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let (lab, config) = ssh_lab();
    let mut d = Daemon::start(&host, &lab, &["--config", &config]);
    assert!(ssh(&peer));
    std::fs::remove_file(lab.path("policies/ssh.yaml")).unwrap();
    let out = d.ctl(&host, &["reload", "--confirm-within", "4s"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let applied = Instant::now();
    // A crash: no chance to do anything.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let d = Daemon::start(&host, &lab, &["--config", &config]);
    let s = d.status(&host);
    assert!(s.get("pending").is_some(), "taken up: {s:#}\n{}", d.log());
    d.wait_for(&host, "the rollback", |s| s["rollbacks"] == 1);
    assert!(
        applied.elapsed() < Duration::from_secs(4 + 1 + 1),
        "{:?}",
        applied.elapsed()
    );
    assert!(ssh(&peer), "the way in is back");
}
