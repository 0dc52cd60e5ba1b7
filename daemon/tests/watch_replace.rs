//! netpold keeps watching its inputs when the paths themselves are replaced: a policy
//! directory moved away and made anew, deleted and re-created, a symlinked directory or
//! file swapped to another target (issue #10, bug 2); and a burst of writes gives a
//! bounded number of reloads, not one per write (the debounce waits for quiet).
//!
//! The real binary in throwaway network namespaces, inputs in a temporary directory
//! (both removed on drop, also when a test panics). Each change must give exactly one
//! reload, and a later edit must give another: that second edit is what shows the
//! watch survived. Needs root; without it the tests say so and pass.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;
use support::daemon::*;
use support::NetNs;

/// A policy that isolates web's pods for ingress: the policy count goes 4 → 5.
const EXTRA: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
     metadata: {namespace: web, name: deny-ingress}\n\
     spec: {podSelector: {}, policyTypes: [Ingress]}\n";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn policies(d: &Daemon, ns: &NetNs) -> u64 {
    d.status(ns)["counts"]["policies"].as_u64().unwrap()
}

#[test]
fn a_replaced_policy_directory_is_still_watched_and_enforced() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let d = Daemon::start(&host, &lab, &[]);
    assert_example_enforced(&peer);

    // What a careless operator does: move the directory away, make a new one, copy
    // the files in, with frontend instead of checkout allowed to call payments-api.
    let old = lab.path("policies.bak");
    std::fs::rename(lab.path("policies"), &old).unwrap();
    std::fs::create_dir(lab.path("policies")).unwrap();
    copy_dir(&old, &lab.path("policies"));
    let edited = lab
        .read("policies/payments.yaml")
        .replace("app: checkout", "app: frontend");
    lab.write("policies/payments.yaml", &edited);
    d.exactly_one_reload_to(&host, 2, "the replaced directory");
    assert_eq!(d.status(&host)["disk"], "match");
    assert!(reaches_api(&peer, "198.18.2.11"), "frontend is allowed now");
    assert!(!reaches_api(&peer, "198.18.2.10"), "checkout is denied now");

    // The new directory is watched: a later edit is seen ...
    lab.write("policies/extra.yaml", EXTRA);
    d.exactly_one_reload_to(&host, 3, "an edit in the new directory");
    assert_eq!(policies(&d, &host), 5);
    // ... and the old one, no longer an input, is not.
    std::fs::write(old.join("extra.yaml"), EXTRA).unwrap();
    std::thread::sleep(SETTLE);
    let s = d.status(&host);
    assert_eq!(s["generation"], 3, "an edit outside the inputs: {s:#}");
    assert_eq!(
        s["reloads"]["unchanged"], 0,
        "the old directory's events still arrive: {s:#}"
    );
}

#[test]
fn a_deleted_directory_is_picked_up_when_it_is_created_again() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    let d = Daemon::start(&ns, &lab, &["--local", "web/checkout"]);
    let saved = lab.path("saved");
    copy_dir(&lab.path("policies"), &saved);

    std::fs::remove_dir_all(lab.path("policies")).unwrap();
    let s = d.wait_for(&ns, "the deletion to be noticed", |s| {
        s["reloads"]["failed"].as_u64() >= Some(1)
    });
    assert_eq!(s["generation"], 1, "a missing input applies nothing: {s:#}");

    // Created again (the parent is watched for the name): one reload.
    std::fs::create_dir(lab.path("policies")).unwrap();
    copy_dir(&saved, &lab.path("policies"));
    lab.write("policies/extra.yaml", EXTRA);
    d.wait_for(&ns, "the re-created directory", |s| s["generation"] == 2);
    std::thread::sleep(SETTLE);
    let s = d.status(&ns);
    assert_eq!(s["generation"], 2, "exactly one reload: {s:#}");
    assert!(s["last_error"].is_null(), "{s:#}");
    assert_eq!(s["counts"]["policies"], 5);

    // And later edits in it are seen (the deletion's failure stays counted, so the
    // helper that checks for no failure does not fit here).
    std::fs::remove_file(lab.path("policies/extra.yaml")).unwrap();
    d.wait_for(&ns, "an edit in the re-created directory", |s| {
        s["generation"] == 3
    });
    std::thread::sleep(SETTLE);
    let s = d.status(&ns);
    assert_eq!(s["generation"], 3, "exactly one reload: {s:#}");
    assert_eq!(s["reloads"]["failed"], 1, "{s:#}");
    assert_eq!(s["counts"]["policies"], 4);
}

#[test]
fn a_symlinked_directory_swap_is_seen_and_the_new_target_is_watched() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    // policies -> polA; polB is polA plus one policy.
    copy_dir(&lab.path("policies"), &lab.path("polA"));
    copy_dir(&lab.path("policies"), &lab.path("polB"));
    std::fs::write(lab.path("polB/extra.yaml"), EXTRA).unwrap();
    std::fs::remove_dir_all(lab.path("policies")).unwrap();
    std::os::unix::fs::symlink("polA", lab.path("policies")).unwrap();
    let d = Daemon::start(&ns, &lab, &["--local", "web/checkout"]);
    assert_eq!(policies(&d, &ns), 4);

    // `ln -s polB tmp && mv -T tmp policies`.
    std::os::unix::fs::symlink("polB", lab.path("policies.tmp")).unwrap();
    std::fs::rename(lab.path("policies.tmp"), lab.path("policies")).unwrap();
    d.exactly_one_reload_to(&ns, 2, "the directory link swap");
    assert_eq!(policies(&d, &ns), 5);

    // Edits in the new target are seen; edits in the old one are not inputs any more.
    std::fs::remove_file(lab.path("polB/extra.yaml")).unwrap();
    d.exactly_one_reload_to(&ns, 3, "an edit in the new target");
    assert_eq!(policies(&d, &ns), 4);
    std::fs::write(lab.path("polA/extra.yaml"), EXTRA).unwrap();
    std::thread::sleep(SETTLE);
    assert_eq!(d.generation(&ns), 3, "polA is not an input any more");
    assert_eq!(d.status(&ns)["disk"], "match");
}

#[test]
fn a_symlinked_file_swap_is_seen_and_the_new_target_is_watched() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    // A second policy path: a link to a file in one of two version directories, in a
    // directory of its own (the lab's directory also holds the daemon's log).
    for v in ["v1", "v2", "link"] {
        std::fs::create_dir(lab.path(v)).unwrap();
    }
    std::fs::write(lab.path("v1/extra.yaml"), EXTRA).unwrap();
    let v2 = EXTRA.replace("deny-ingress", "deny-ingress-v2");
    std::fs::write(lab.path("v2/extra.yaml"), &v2).unwrap();
    std::os::unix::fs::symlink("../v1/extra.yaml", lab.path("link/extra.yaml")).unwrap();
    let extra = lab.path("link/extra.yaml").display().to_string();
    let d = Daemon::start(
        &ns,
        &lab,
        &["--policies", &extra, "--local", "web/checkout"],
    );
    assert_eq!(policies(&d, &ns), 5);

    // `ln -s ../v2/extra.yaml tmp && mv -T tmp extra.yaml`.
    std::os::unix::fs::symlink("../v2/extra.yaml", lab.path("link/extra.tmp")).unwrap();
    std::fs::rename(lab.path("link/extra.tmp"), lab.path("link/extra.yaml")).unwrap();
    d.exactly_one_reload_to(&ns, 2, "the file link swap");

    // An edit of the new target is seen (before, only the link's directory was).
    std::fs::write(lab.path("v2/extra.yaml"), format!("{v2}# edited\n")).unwrap();
    d.exactly_one_reload_to(&ns, 3, "an edit of the link's new target");
    assert_eq!(d.status(&ns)["disk"], "match");
}

/// 40 writes 150 ms apart with a 200 ms debounce: the debounce never sees 200 ms of
/// quiet during the burst, so only its maximum delay (10 × debounce, at least 2 s, so
/// 2 s here) flushes while it lasts: about 6 s of burst gives at most 3 reloads, plus
/// the one after it ends. Gaps between writes that did reach the debounce (a slow
/// machine) each allow one more; the test counts them rather than assume none.
#[test]
fn a_burst_of_writes_gives_a_bounded_number_of_reloads() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    let d = Daemon::start(
        &ns,
        &lab,
        &["--local", "web/checkout", "--debounce-ms", "200"],
    );
    let web = lab.read("policies/web.yaml");
    let started = Instant::now();
    let mut last = started;
    let mut quiet_gaps = 0;
    for i in 0..40 {
        lab.write("policies/web.yaml", &format!("{web}# write {i}\n"));
        let now = Instant::now();
        if now - last >= Duration::from_millis(190) {
            quiet_gaps += 1;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(150));
    }
    let burst = last - started;
    let max_delay = Duration::from_secs(2);
    let bound = 1 + (burst.as_millis() / max_delay.as_millis()) as u64 + quiet_gaps;
    let s = d.wait_for(&ns, "the last write to be loaded", |s| s["disk"] == "match");
    std::thread::sleep(SETTLE);
    let s2 = d.status(&ns);
    assert_eq!(
        s2["generation"], s["generation"],
        "a reload after the quiet"
    );
    let reloads = s2["generation"].as_u64().unwrap() - 1;
    eprintln!("{reloads} reloads for 40 writes over {burst:?} (at most {bound})");
    assert!(
        (1..=bound).contains(&reloads),
        "{reloads} reloads for 40 writes over {burst:?} ({quiet_gaps} gaps of 190 ms or more); \
         at most {bound} expected\n{}",
        d.log()
    );
    assert_eq!(s2["reloads"]["failed"], 0);
}
