//! Verdict events through the real netpold in a network namespace: the NFLOG group is
//! bound, `status` shows the mode and the event counts, `logs` with no events prints
//! nothing and exits 0, and `logs --follow` streams until netpold goes. Needs root.
//!
//! Not yet here (the compiler does not emit the log rules on this branch yet): events
//! from real denied packets. See the branch's note.

mod support;
use std::time::Duration;

use support::daemon::*;
use support::text;

#[test]
fn logs_with_no_events_print_nothing_and_status_shows_mode_and_counts() {
    let Some((host, _peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let d = Daemon::start(&host, &lab, &["--mode", "audit"]);
    let s = d.status(&host);
    assert_eq!(s["mode"], "audit", "{s:#}");
    assert_eq!(s["audit_policies"], serde_json::json!([]), "{s:#}");
    assert_eq!(s["events"]["group"], 4713, "{s:#}");
    assert_eq!(s["events"]["deny"], 0, "{s:#}");
    assert_eq!(s["events"]["in_ring"], 0, "{s:#}");

    for args in [
        &["logs"][..],
        &["logs", "-o", "json"],
        &[
            "logs",
            "-n",
            "5",
            "--verdict",
            "deny",
            "--endpoint",
            "payments/payments-api",
        ],
    ] {
        let out = d.ctl(&host, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "", "{args:?}");
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
    let st = text(&d.ctl(&host, &["status"]).stdout);
    assert!(st.contains("mode:            audit"), "{st}");
    assert!(st.contains("events:          0 deny, 0 audit"), "{st}");

    // A follower stays connected until netpold stops, then ends cleanly.
    let mut follower = host
        .command(
            NETPOLCTL,
            &["--socket", &d.socket, "logs", "--follow", "-o", "json"],
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        follower.try_wait().unwrap().is_none(),
        "logs -f returned early"
    );
    assert!(d.terminate().success());
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success(), "logs -f after netpold stopped");
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn events_off_make_logs_an_error_and_a_bad_events_config_starts_nothing() {
    let Some((host, _peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    lab.write("off.yaml", "events: {enabled: false}\n");
    let config = lab.path("off.yaml").display().to_string();
    let d = Daemon::start(&host, &lab, &["--config", &config]);
    assert!(d.status(&host)["events"].is_null());
    let out = d.ctl(&host, &["logs"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("verdict events are off"),
        "{}",
        text(&out.stderr)
    );
    drop(d);

    lab.write("bad.yaml", "events: {rate: 0, group: -1}\n");
    let bad = lab.path("bad.yaml").display().to_string();
    let mut args = lab.args();
    args.extend(["--config".into(), bad]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_to_end(&host, &args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("events.rate") && err.contains("events.group"),
        "{err}"
    );
    assert!(
        err.contains("configuration rejected; nothing was started"),
        "{err}"
    );
}
