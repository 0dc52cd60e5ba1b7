//! `netpolctl diff --against-daemon` and the reload's connectivity summary against a
//! real netpold: the inputs compared with are those in force, not the files on disk
//! (which change under it); `netpolctl reload` prints what the reload changed, and
//! netpold logs it. Needs root; without it the test says so and passes.

use serde_json::Value;

mod support;
use support::daemon::*;
use support::{text, NetNs};

#[test]
fn diff_against_the_daemon_compares_with_the_inputs_in_force_and_reload_says_what_changed() {
    let Some(ns) = NetNs::new("npdiff") else {
        return;
    };
    let lab = Lab::new();
    // A window longer than the test: only `netpolctl reload` reloads.
    let d = Daemon::start(
        &ns,
        &lab,
        &["--local", "payments/payments-api", "--debounce-ms", "60000"],
    );
    // The edit, staged beside the inputs: frontend instead of checkout may call
    // payments-api.
    let staged = lab.path("next");
    std::fs::create_dir(&staged).unwrap();
    for f in ["payments.yaml", "web.yaml"] {
        std::fs::copy(lab.path(&format!("policies/{f}")), staged.join(f)).unwrap();
    }
    let edited = lab
        .read("policies/payments.yaml")
        .replace("app: checkout", "app: frontend");
    std::fs::write(staged.join("payments.yaml"), &edited).unwrap();
    let inventory = lab.path("inventory").display().to_string();
    let staged = staged.display().to_string();
    let diff = |extra: &[&str]| {
        let mut args = vec![
            "diff",
            "--policies",
            &staged,
            "--inventory",
            &inventory,
            "--against-daemon",
        ];
        args.extend(extra);
        let out = d.ctl(&ns, &args);
        assert!(out.status.success(), "diff: {}", text(&out.stderr));
        text(&out.stdout)
    };
    // On payments-api's host: its ingress alone decides.
    let local = "connectivity: +1 flow allowed, -1 denied\n\npayments/payments-api\n  - web/checkout  8080/TCP\n  + web/frontend  8080/TCP\n";
    assert_eq!(diff(&["--local", "payments/payments-api"]), local);
    // The whole cluster: frontend's own egress still denies it, checkout loses 8080.
    let whole = diff(&[]);
    assert_eq!(
        whole,
        "connectivity: +0 flows allowed, -1 denied\n\npayments/payments-api\n  - web/checkout  8080/TCP\n"
    );
    let json: Value = serde_json::from_str(&diff(&["-o", "json"])).unwrap();
    assert_eq!(
        json["changes"],
        serde_json::json!([{"from": "web/checkout", "to": "payments/payments-api",
            "family": "any", "protocol": "TCP", "ports": [[8080, 8080]],
            "before": "allowed", "after": "denied"}])
    );

    // The files on disk change (broken, even); what is in force does not, nor the diff.
    lab.write("policies/payments.yaml", "this: [is not a policy\n");
    assert_eq!(diff(&["--local", "payments/payments-api"]), local);
    assert_eq!(d.generation(&ns), 1);

    // Apply the edit: the reload says what it changed, and so does the log.
    lab.write("policies/payments.yaml", &edited);
    let out = d.ctl(&ns, &["reload"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "  connectivity:    +1 flow allowed, -1 denied (this host's local endpoints)\n"
        ),
        "{stdout}"
    );
    let log = d.log();
    assert!(
        log.contains("connectivity: +1 flow allowed, -1 denied"),
        "{log}"
    );
    // Nothing left to apply: the staged edit is what is in force now.
    assert_eq!(diff(&[]), "connectivity: +0 flows allowed, -0 denied\n");
    // A reload that changes nothing allowed says so too.
    lab.write(
        "policies/web.yaml",
        &format!("{}# a comment\n", lab.read("policies/web.yaml")),
    );
    let out = d.ctl(&ns, &["reload", "-o", "json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["outcome"], "applied", "{r:#}");
    assert_eq!(
        r["connectivity"],
        serde_json::json!({"allowed": 0, "denied": 0})
    );

    // No netpold there: an error, exit 1.
    let out = ns.run(
        NETPOLCTL,
        &[
            "--socket",
            "/nonexistent/netpold.sock",
            "diff",
            "--policies",
            &staged,
            "--inventory",
            &inventory,
            "--against-daemon",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach netpold"),
        "{}",
        text(&out.stderr)
    );
}
