//! netpold fails closed: inputs that would take protection away because a file is cut
//! short are held, not applied, until the files change or an operator forces them; the
//! real binary in network namespaces, with real TCP. Needs root.

mod support;
use support::daemon::*;
use support::{normalised, text};

/// `pods.yaml` as a reader sees it while `kubectl get pods -o yaml > pods.yaml` is still
/// writing: cut inside payments-api's document, before its `status` (so the pod has no
/// IP yet and is skipped), and nothing after it.
fn cut_before_status(whole: &str) -> String {
    let cut = whole.find("status:").expect("payments-api has a status");
    whole[..cut].to_string()
}

#[test]
fn a_truncated_inventory_is_held_and_the_host_stays_protected() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let d = Daemon::start(&host, &lab, &[]);
    assert_eq!(
        d.status(&host)["local_endpoints"],
        serde_json::json!(["payments/payments-api"])
    );
    assert_example_enforced(&peer);

    // A half-written pods.yaml: payments-api without its address, the others missing.
    let whole = lab.read("inventory/pods.yaml");
    lab.write("inventory/pods.yaml", &cut_before_status(&whole));
    let s = d.wait_for(&host, "the reload to be held", |s| !s["held"].is_null());
    assert_eq!(s["generation"], 1, "nothing applied: {s:#}");
    assert_eq!(s["reloads"]["held"], 1);
    assert_eq!(s["disk"], "differ");
    assert!(
        s["held"]["reason"]
            .as_str()
            .unwrap()
            .contains("every local endpoint (1 -> 0)"),
        "{s:#}"
    );
    assert!(d.log().contains("reload held"), "{}", d.log());
    assert!(
        !reaches_api(&peer, "198.18.2.11"),
        "frontend is still denied while the inventory is cut short"
    );
    let st = d.ctl(&host, &["status"]);
    assert!(text(&st.stdout).contains("held:"), "{}", text(&st.stdout));
    let metrics = host.ok(
        "curl",
        &[
            "-sS",
            "--fail",
            "--max-time",
            "5",
            "http://127.0.0.1:9469/metrics",
        ],
    );
    assert!(
        metrics.lines().any(|l| l == "netpol_reload_held 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"netpol_reloads_total{result="held"} 1"#),
        "{metrics}"
    );

    // The writer finishes: back to what is loaded, no reload, the hold ends.
    lab.write("inventory/pods.yaml", &whole);
    let s = d.wait_for(&host, "the hold to end", |s| s["held"].is_null());
    assert_eq!(s["generation"], 1);
    let metrics = host.ok(
        "curl",
        &["-sS", "--max-time", "5", "http://127.0.0.1:9469/metrics"],
    );
    assert!(
        metrics.lines().any(|l| l == "netpol_reload_held 0"),
        "{metrics}"
    );
    std::thread::sleep(SETTLE);
    assert_eq!(d.generation(&host), 1);

    // Cut again; a plain reload holds too, and says how to force.
    lab.write("inventory/pods.yaml", &cut_before_status(&whole));
    d.wait_for(&host, "the reload to be held again", |s| {
        !s["held"].is_null()
    });
    let out = d.ctl(&host, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "a held reload is not a success");
    assert!(
        text(&out.stdout).contains("netpolctl reload --force"),
        "{}",
        text(&out.stdout)
    );
    assert!(!reaches_api(&peer, "198.18.2.11"));

    // The operator means it: payments-api is no longer policed here.
    let out = d.ctl(&host, &["reload", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = d.status(&host);
    assert_eq!(s["generation"], 2);
    assert!(s["held"].is_null());
    assert_eq!(s["local_endpoints"], serde_json::json!([]));
    assert!(
        reaches_api(&peer, "198.18.2.11"),
        "frontend gets through now"
    );
}

#[test]
fn a_restart_on_a_truncated_inventory_keeps_the_table_in_force() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let first = Daemon::start(&host, &lab, &[]);
    assert_example_enforced(&peer);
    assert!(first.terminate().success());
    let table = host.table().expect("SIGTERM leaves the table");

    // The daemon restarts (a crash, an upgrade) while pods.yaml is half-written.
    let whole = lab.read("inventory/pods.yaml");
    lab.write("inventory/pods.yaml", &cut_before_status(&whole));
    let d = Daemon::start(&host, &lab, &[]);
    let s = d.status(&host);
    assert_eq!(s["generation"], 0, "nothing applied: {s:#}");
    assert!(
        s["held"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("every local endpoint"),
        "{s:#}"
    );
    // The same table; only its owner changed (the new netpold took it over).
    assert_eq!(
        host.table().map(|t| normalised(&t)),
        Some(normalised(&table)),
        "the table stays"
    );
    assert!(
        !reaches_api(&peer, "198.18.2.11"),
        "frontend is still denied"
    );

    // The file is completed: the new daemon applies it.
    lab.write("inventory/pods.yaml", &whole);
    d.wait_for(&host, "the completed inventory to be applied", |s| {
        s["generation"] == 1
    });
    assert!(d.status(&host)["held"].is_null());
    assert_example_enforced(&peer);
}
