//! `netpold` as an operator runs it: the real binary against the real kernel, each test
//! in throwaway network namespaces (`ip netns add npd-<pid>-<n>`, removed on drop, also
//! when the test panics), with its inputs in a temporary directory removed on drop.
//! The daemon says it is ready over a `NOTIFY_SOCKET` the test listens on, as systemd
//! would. Waits are generous and polled; nothing asserts how long anything took.
//! Needs root; without it the tests say so and pass.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::daemon::*;
use support::{normalised, text, NetNs};

#[test]
fn start_up_applies_and_an_edit_changes_the_rules_and_the_traffic() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    assert_eq!(host.table(), None);
    let d = Daemon::start(&host, &lab, &[]);
    let s = d.status(&host);
    assert_eq!(s["generation"], 1);
    assert_eq!(s["follows_host"], true);
    assert_eq!(
        s["local_endpoints"],
        serde_json::json!(["payments/payments-api"])
    );
    assert_eq!(s["disk"], "match");
    let mode = std::fs::metadata(lab.path("netpold.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the control socket is root's alone");
    let table = host.table().expect("the table is loaded");
    assert!(table.contains("8080"), "{table}");
    let show = host.ok(NETPOLCTL, &["show"]);
    assert!(show.contains("payments/payments-api  ingress"), "{show}");

    assert_example_enforced(&peer);

    // Now frontend instead of checkout may call payments-api on 8080.
    let edited = lab
        .read("policies/payments.yaml")
        .replace("app: checkout", "app: frontend");
    lab.write("policies/payments.yaml", &edited);
    d.exactly_one_reload_to(&host, 2, "an in-place edit");
    assert!(reaches_api(&peer, "198.18.2.11"), "frontend is allowed now");
    assert!(!reaches_api(&peer, "198.18.2.10"), "checkout is denied now");
    assert_ne!(host.table().unwrap(), table);
}

#[test]
fn each_kind_of_file_change_triggers_exactly_one_reload() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    let d = Daemon::start(&ns, &lab, &["--local", "web/checkout"]);
    assert_eq!(d.generation(&ns), 1);

    // In-place write.
    let web = lab.read("policies/web.yaml");
    lab.write("policies/web.yaml", &format!("{web}# edited in place\n"));
    d.exactly_one_reload_to(&ns, 2, "in-place write");

    // An editor's rename-replace.
    lab.write("policies/.web.yaml.tmp", &format!("{web}# renamed over\n"));
    std::fs::rename(
        lab.path("policies/.web.yaml.tmp"),
        lab.path("policies/web.yaml"),
    )
    .unwrap();
    d.exactly_one_reload_to(&ns, 3, "rename-replace");

    // A new file, then its deletion.
    lab.write(
        "policies/extra.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {namespace: analytics, name: deny-all}\nspec: {podSelector: {}}\n",
    );
    d.exactly_one_reload_to(&ns, 4, "added file");
    assert_eq!(d.status(&ns)["counts"]["policies"], 5);
    std::fs::remove_file(lab.path("policies/extra.yaml")).unwrap();
    d.exactly_one_reload_to(&ns, 5, "deleted file");
    assert_eq!(d.status(&ns)["counts"]["policies"], 4);

    // An inventory file changes too.
    let pods = lab.read("inventory/pods.yaml");
    lab.write("inventory/pods.yaml", &format!("{pods}# edited\n"));
    d.exactly_one_reload_to(&ns, 6, "inventory edit");

    // The same bytes written again: an event, a look, no reload.
    let unchanged = d.status(&ns)["reloads"]["unchanged"].as_u64().unwrap();
    let same = lab.read("policies/web.yaml");
    lab.write("policies/web.yaml", &same);
    d.wait_for(&ns, "the identical write to be looked at", |s| {
        s["reloads"]["unchanged"].as_u64() > Some(unchanged)
    });
    std::thread::sleep(SETTLE);
    assert_eq!(d.generation(&ns), 6, "identical content must not reload");

    // netpolctl status reads the files too: that must not trigger anything either.
    std::thread::sleep(SETTLE);
    let s = d.status(&ns);
    assert_eq!(s["generation"], 6);
    assert_eq!(s["disk"], "match");
}

#[test]
fn a_configmap_symlink_swap_triggers_exactly_one_reload() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    // The layout of a mounted ConfigMap: files are links through `..data`, which links
    // to a timestamped directory; an update writes a new directory and swaps `..data`.
    let cm = lab.path("cm");
    let first = cm.join("..2026_01_01_00_00_00.1");
    std::fs::create_dir_all(&first).unwrap();
    for f in ["payments.yaml", "web.yaml"] {
        std::fs::copy(lab.path("policies").join(f), first.join(f)).unwrap();
        std::os::unix::fs::symlink(format!("..data/{f}"), cm.join(f)).unwrap();
    }
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.1", cm.join("..data")).unwrap();
    std::fs::remove_dir_all(lab.path("policies")).unwrap();
    std::os::unix::fs::symlink(&cm, lab.path("policies")).unwrap();
    // `policies` is now a link to the mount, as a pod spec's mountPath would be.
    let d = Daemon::start(&ns, &lab, &["--local", "web/checkout"]);
    assert_eq!(d.status(&ns)["counts"]["policies"], 4);

    let second = cm.join("..2026_01_01_00_01_00.2");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::copy(first.join("payments.yaml"), second.join("payments.yaml")).unwrap();
    let web = std::fs::read_to_string(first.join("web.yaml")).unwrap();
    std::fs::write(second.join("web.yaml"), format!("{web}# v2\n")).unwrap();
    std::os::unix::fs::symlink("..2026_01_01_00_01_00.2", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();
    d.exactly_one_reload_to(&ns, 2, "..data swap");
    assert_eq!(d.status(&ns)["disk"], "match");
}

#[test]
fn a_broken_file_keeps_the_old_ruleset_and_the_fix_recovers() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    let d = Daemon::start(&ns, &lab, &["--local", "payments/payments-api"]);
    let table = ns.table().unwrap();

    let good = lab.read("policies/payments.yaml");
    lab.write(
        "policies/payments.yaml",
        &good.replace("port: 8080", "port: [8080"),
    );
    let s = d.wait_for(&ns, "the failure", |s| s["reloads"]["failed"] == 1);
    assert_eq!(s["generation"], 1);
    assert_eq!(s["disk"], "differ");
    let message = s["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("payments.yaml:"), "{message}");
    assert_eq!(s["last_error"]["stage"], "load");
    assert_eq!(
        ns.table().unwrap(),
        table,
        "the kernel keeps the last good ruleset"
    );
    assert!(d.log().contains("reload failed"), "{}", d.log());

    // netpolctl reload tries again, fails, says why and exits 1.
    let out = d.ctl(&ns, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("reload failed at the load stage; generation 1 stays in force"),
        "{stdout}"
    );
    assert!(stdout.contains("payments.yaml:"), "{stdout}");
    assert_eq!(d.status(&ns)["reloads"]["failed"], 2);
    let human = text(&d.ctl(&ns, &["status"]).stdout);
    assert!(human.contains("last error:      at "), "{human}");

    // The fix: a new generation, no error.
    lab.write(
        "policies/payments.yaml",
        &good.replace("port: 8080", "port: 8081"),
    );
    let s = d.wait_for(&ns, "the recovery", |s| s["generation"] == 2);
    assert!(s["last_error"].is_null(), "{s:#}");
    assert!(ns.table().unwrap().contains("8081"));
}

#[test]
fn netpolctl_reload_reports_what_changed() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    // A window longer than the test: only netpolctl reloads.
    let d = Daemon::start(
        &ns,
        &lab,
        &[
            "--local",
            "web/checkout",
            "--debounce-ms",
            "60000",
            "--socket-group",
            "daemon",
        ],
    );
    let meta = std::fs::metadata(lab.path("netpold.sock")).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "the group may connect"
    );
    assert_eq!(Ok(meta.gid()), netpol_daemon::config::group_id("daemon"));
    let out = d.ctl(&ns, &["reload"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("unchanged: the inputs are what generation 1 loaded"));

    lab.write(
        "policies/extra.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {namespace: web, name: deny-ingress}\n\
         spec: {podSelector: {}, policyTypes: [Ingress]}\n",
    );
    let out = d.ctl(&ns, &["reload", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["response"], "reload");
    assert_eq!(r["outcome"], "applied");
    assert_eq!(r["trigger"], "control");
    assert_eq!(r["generation"], 2);
    assert_eq!(r["before"]["policies"], 4);
    assert_eq!(r["after"]["policies"], 5);
    assert!(
        r["after"]["rules"].as_u64() > r["before"]["rules"].as_u64(),
        "{r:#}"
    );

    std::fs::remove_file(lab.path("policies/extra.yaml")).unwrap();
    let out = d.ctl(&ns, &["reload"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("reloaded: generation 3 applied"),
        "{stdout}"
    );
    assert!(stdout.contains("  policies:        5 -> 4\n"), "{stdout}");
    assert!(
        stdout.contains("  endpoints:       5 (unchanged)\n"),
        "{stdout}"
    );

    // SIGHUP reloads too.
    lab.write(
        "policies/web.yaml",
        &format!("{}# hup\n", lab.read("policies/web.yaml")),
    );
    let pid = d.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let s = d.wait_for(&ns, "the SIGHUP reload", |s| s["generation"] == 4);
    assert_eq!(s["loaded_by"], "signal");

    let out = ns.run(
        NETPOLCTL,
        &["--socket", "/nonexistent/netpold.sock", "status"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot reach netpold at /nonexistent/netpold.sock"));
}

#[test]
fn an_address_added_makes_its_endpoint_local_and_enforced() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    ns.ip(&["link", "set", "lo", "up"]);
    let d = Daemon::start(&ns, &lab, &[]);
    let s = d.status(&ns);
    assert_eq!(s["local_endpoints"], serde_json::json!([]));
    assert!(!ns.table().unwrap().contains("payments"));

    ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ns.ip(&["addr", "add", "2001:db8:1::10/64", "dev", "v0", "nodad"]);
    let s = d.wait_for(&ns, "payments-api to become local", |s| {
        s["local_endpoints"] == serde_json::json!(["payments/payments-api"])
    });
    assert_eq!(s["generation"], 2);
    assert_eq!(s["loaded_by"], "addresses");
    let show = ns.ok(NETPOLCTL, &["show"]);
    assert!(show.contains("payments/payments-api  ingress"), "{show}");

    // Its second address changes nothing; removing both makes it remote again.
    ns.ip(&["addr", "add", "198.18.1.10/24", "dev", "v0"]);
    std::thread::sleep(SETTLE);
    assert_eq!(d.generation(&ns), 2);
    ns.ip(&["addr", "del", "198.18.1.10/24", "dev", "v0"]);
    ns.ip(&["addr", "del", "2001:db8:1::10/64", "dev", "v0"]);
    d.wait_for(&ns, "payments-api to be remote again", |s| {
        s["local_endpoints"] == serde_json::json!([])
    });
}

#[test]
fn sigterm_keeps_the_table_and_a_new_daemon_takes_it_over() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    let d = Daemon::start(&ns, &lab, &["--local", "payments/payments-api"]);
    let table = ns.table().unwrap();
    let status = d.terminate();
    assert!(status.success(), "{status}");
    // The same table, without its owner now.
    assert_eq!(
        normalised(&ns.table().unwrap()),
        normalised(&table),
        "SIGTERM leaves the ruleset in force"
    );
    assert!(!lab.path("netpold.sock").exists(), "the socket is removed");

    lab.write(
        "policies/payments.yaml",
        &lab.read("policies/payments.yaml")
            .replace("port: 8080", "port: 8443"),
    );
    let d = Daemon::start(
        &ns,
        &lab,
        &["--local", "payments/payments-api", "--flush-on-exit"],
    );
    let s = d.status(&ns);
    assert_eq!(s["generation"], 1);
    let taken_over = ns.table().unwrap();
    assert!(
        taken_over.contains("8443") && !taken_over.contains("8080"),
        "{taken_over}"
    );
    assert!(d.terminate().success());
    assert_eq!(ns.table(), None, "--flush-on-exit removes the table");
}

#[test]
fn bad_config_and_a_failing_first_load_start_nothing() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    lab.write(
        "netpold.yaml",
        "policies: policies\ninventory: inventory\ndebounce: 5\n",
    );
    let config = lab.path("netpold.yaml").display().to_string();
    let out = run_to_end(&ns, &["--config", &config]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{config}:3:1: error: debounce: unknown key")),
        "{stderr}"
    );

    // A good config file, overridden by a flag to a broken inventory: exit 1.
    lab.write("netpold.yaml", "policies: policies\ninventory: inventory\n");
    lab.write("inventory/broken.yaml", "kind: Pod\nmetadata: [\n");
    let socket = lab.socket();
    let out = run_to_end(
        &ns,
        &[
            "--config",
            &config,
            "--socket",
            &socket,
            "--local",
            "web/checkout",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("broken.yaml"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(ns.table(), None, "the kernel is untouched");
    assert!(!lab.path("netpold.sock").exists());

    // Fixed, it starts and tells systemd it is ready, with a one-line status.
    std::fs::remove_file(lab.path("inventory/broken.yaml")).unwrap();
    let (mut child, log, notify) = spawn(&ns, &lab, &[]);
    notify.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 256];
    let ready = notify.recv(&mut buf).map(|n| text(&buf[..n]));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ready
            .as_deref()
            .is_ok_and(|m| m.starts_with("READY=1\nSTATUS=generation 1:")),
        "{ready:?}\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

// ------------------------------------------------------------------ metrics ----

/// A sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// One scrape of `/metrics`: `name{labels} value` samples (comments skipped).
struct Metrics(Vec<Sample>);

impl Metrics {
    /// Parses the Prometheus text format, as far as netpold writes it (label values
    /// without escaped quotes).
    fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a value: {line}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), Vec::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let labels = body
                        .split(',')
                        .filter(|l| !l.is_empty())
                        .map(|l| {
                            let (k, v) = l.split_once('=').expect("label=value");
                            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                            (k.to_string(), v.expect("a quoted value").to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
            };
            samples.push((name, labels, value));
        }
        Metrics(samples)
    }

    /// The value of the series with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        self.0.iter().find_map(|(n, l, v)| {
            let mut l = l.clone();
            l.sort();
            (n == name && l == want).then_some(*v)
        })
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in the scrape"))
    }

    fn reloads(&self, result: &str) -> f64 {
        self.value("netpol_reloads_total", &[("result", result)])
    }

    fn denied(&self, what: &str) -> f64 {
        self.value(
            &format!("netpol_denied_{what}_total"),
            &[
                ("endpoint", "payments/payments-api"),
                ("direction", "ingress"),
                ("tier", "NetworkPolicy"),
            ],
        )
    }
}

/// Scrapes `http://ADDRESS/metrics` from inside `ns`.
fn scrape(ns: &NetNs, address: &str) -> Metrics {
    let url = format!("http://{address}/metrics");
    Metrics::parse(&ns.ok("curl", &["-sS", "--fail", "--max-time", "5", &url]))
}

/// The kernel's own deny counter of payments-api's ingress, from `netpolctl show`.
fn kernel_denied_packets(ns: &NetNs) -> f64 {
    let show: Value = serde_json::from_str(&ns.ok(NETPOLCTL, &["show", "-o", "json"])).unwrap();
    let denies = show["denies"].as_array().expect("deny counters");
    let d = denies
        .iter()
        .find(|d| d["chain"].as_str().is_some_and(|c| c.starts_with("in_")))
        .unwrap_or_else(|| panic!("no ingress deny counter: {show:#}"));
    d["packets"].as_f64().unwrap()
}

/// The gauges say what `netpolctl status -o json` says.
fn assert_gauges_match_status(m: &Metrics, s: &Value) {
    let c = &s["counts"];
    for (gauge, key) in [
        ("netpol_policies", "policies"),
        ("netpol_endpoints", "endpoints"),
        ("netpol_local_endpoints", "local_endpoints"),
        ("netpol_rules", "rules"),
        ("netpol_set_elements", "elements"),
    ] {
        assert_eq!(
            Some(m.value(gauge, &[])),
            c[key].as_f64(),
            "{gauge} vs status {key}: {s:#}"
        );
    }
    assert_eq!(
        Some(m.value("netpol_generation", &[])),
        s["generation"].as_f64()
    );
}

/// Polls scrapes until `cond` holds; panics after PATIENCE.
fn scrape_until(ns: &NetNs, address: &str, what: &str, cond: impl Fn(&Metrics) -> bool) -> Metrics {
    let start = Instant::now();
    loop {
        let m = scrape(ns, address);
        if cond(&m) {
            return m;
        }
        assert!(start.elapsed() < PATIENCE, "waited in vain for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_follow_reloads_sizes_and_denied_traffic() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let lab = Lab::new();
    let address = "127.0.0.1:9470";
    // Only netpolctl reloads (a window longer than the test); counters read often.
    let d = Daemon::start(
        &host,
        &lab,
        &[
            "--metrics-address",
            address,
            "--metrics-interval-ms",
            "100",
            "--debounce-ms",
            "60000",
        ],
    );
    let m = scrape(&host, address);
    assert_eq!(m.reloads("success"), 1.0);
    assert_eq!(m.reloads("failure"), 0.0);
    assert_eq!(m.reloads("skipped"), 0.0);
    assert_gauges_match_status(&m, &d.status(&host));
    assert_eq!(m.value("netpol_compile_duration_seconds_count", &[]), 1.0);
    assert_eq!(
        m.value(
            "netpol_apply_duration_seconds_count",
            &[("kind", "replace")]
        ),
        1.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = m.value("netpol_last_successful_reload_timestamp_seconds", &[]);
    assert!(last <= now && last > now - 120.0, "{last} vs now {now}");
    assert_eq!(m.denied("packets"), 0.0);

    // Denied traffic: frontend's SYNs to payments-api.
    assert_example_enforced(&peer);
    let kernel = kernel_denied_packets(&host);
    assert!(kernel >= 1.0, "the kernel counted the SYNs");
    let m = scrape_until(&host, address, "the denied SYNs", |m| {
        m.denied("packets") >= kernel
    });
    let (packets, bytes) = (m.denied("packets"), m.denied("bytes"));
    // A SYN is at least 40 bytes (IPv4 and TCP headers).
    assert!(bytes >= 40.0 * packets, "{packets} packets, {bytes} bytes");

    // A failure at the load stage: counted by result and stage, nothing else moves.
    let good = lab.read("policies/payments.yaml");
    lab.write(
        "policies/payments.yaml",
        &good.replace("port: 8080", "port: [8080"),
    );
    assert_eq!(d.ctl(&host, &["reload"]).status.code(), Some(1));
    let m = scrape(&host, address);
    assert_eq!(m.reloads("failure"), 1.0);
    assert_eq!(
        m.value("netpol_reload_failures_total", &[("stage", "load")]),
        1.0
    );
    assert_eq!(
        m.value("netpol_reload_failures_total", &[("stage", "kernel")]),
        0.0
    );
    assert_eq!(m.reloads("success"), 1.0);
    assert_eq!(
        m.value("netpol_last_successful_reload_timestamp_seconds", &[]),
        last
    );
    assert!(m.denied("packets") >= packets);

    // The fix (with a policy that isolates payments-api's egress too, a new chain)
    // replaces the table, whose counters start again at zero: the metric carries what
    // the old table counted.
    lab.write(
        "policies/payments.yaml",
        &format!("{good}---\n{EGRESS_OPEN}"),
    );
    let out = d.ctl(&host, &["reload"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(
        kernel_denied_packets(&host),
        0.0,
        "a new table, new counters"
    );
    let m = scrape(&host, address);
    assert_eq!(m.reloads("success"), 2.0);
    assert_eq!(m.reloads("failure"), 1.0);
    assert_eq!(m.value("netpol_compile_duration_seconds_count", &[]), 2.0);
    assert!(m.value("netpol_last_successful_reload_timestamp_seconds", &[]) >= last);
    assert_gauges_match_status(&m, &d.status(&host));
    assert_eq!(m.denied("packets"), packets, "no count lost, none made up");
    assert_eq!(m.denied("bytes"), bytes);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        scrape(&host, address).denied("packets"),
        packets,
        "periodic reads of the new table do not lower the total"
    );

    // More denied traffic adds to the carried total.
    assert!(
        !reaches_api(&peer, "198.18.2.11"),
        "frontend is still denied"
    );
    let kernel = kernel_denied_packets(&host);
    assert!(kernel >= 1.0);
    let m = scrape_until(&host, address, "the new denied SYNs", |m| {
        m.denied("packets") >= packets + kernel
    });
    assert_eq!(m.denied("packets"), packets + kernel_denied_packets(&host));

    // An endpoint added changes set elements only: an update, which keeps the kernel's
    // counters (so nothing is carried, nothing counted twice).
    lab.write("inventory/extra.yaml", EXTRA_CHECKOUT);
    let r = reload(&d, &host);
    assert_eq!(r["kernel"]["how"], "updated", "{r:#}");
    assert_eq!(
        kernel_denied_packets(&host),
        kernel,
        "an update keeps the counters"
    );
    std::thread::sleep(Duration::from_millis(500));
    let m = scrape(&host, address);
    assert_eq!(
        m.denied("packets"),
        packets + kernel,
        "no count lost, none made up"
    );
    assert_eq!(
        m.value("netpol_apply_duration_seconds_count", &[("kind", "update")]),
        1.0
    );
    assert_eq!(
        m.value(
            "netpol_apply_duration_seconds_count",
            &[("kind", "replace")]
        ),
        2.0
    );
    assert_eq!(m.value("netpol_incremental_fallbacks_total", &[]), 0.0);

    // Nothing changed: skipped.
    assert!(d.ctl(&host, &["reload"]).status.success());
    assert_eq!(scrape(&host, address).reloads("skipped"), 1.0);

    // A second daemon in the namespace stops before touching anything, naming the first.
    let other = lab.path("other.sock").display().to_string();
    let policies = lab.path("policies").display().to_string();
    let inventory = lab.path("inventory").display().to_string();
    let args = [
        "--policies",
        &policies,
        "--inventory",
        &inventory,
        "--socket",
        &other,
        "--metrics-address",
        "127.0.0.1:9471",
    ];
    let out = run_to_end(&host, &args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let first = d.status(&host)["pid"].as_u64().unwrap();
    assert!(
        stderr.contains(&format!(
            "another netpold (pid {first}) is running in this network namespace"
        )),
        "{stderr}"
    );
    assert_eq!(d.generation(&host), 3, "the running daemon is untouched");
}

#[test]
fn a_metrics_port_in_use_stops_netpold_before_it_touches_anything() {
    let Some(host) = NetNs::new("npd") else {
        return;
    };
    host.ip(&["link", "set", "lo", "up"]);
    let address = "127.0.0.1:9470";
    // Something else listens there (socat, until it is killed).
    let mut holder = host
        .command(
            "socat",
            &["TCP-LISTEN:9470,bind=127.0.0.1,reuseaddr", "STDOUT"],
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !host
        .run("ss", &["-Hltn", "sport = :9470"])
        .stdout
        .starts_with(b"LISTEN")
    {
        assert!(start.elapsed() < PATIENCE, "socat never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let lab = Lab::new();
    let mut args: Vec<String> = lab.args();
    args.extend(["--metrics-address".to_string(), address.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_to_end(&host, &args);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("serving metrics on {address}")) && stderr.contains("in use"),
        "{stderr}"
    );
    assert_eq!(host.table(), None, "nothing applied");
}

// ------------------------------------------------------------ incremental reloads ----

impl NetNs {
    /// The netpol table, listed and as bytecode, normalised (see [`normalised`]).
    fn kernel_state(&self) -> String {
        let list = self.ok("nft", &["list", "table", "inet", "netpol"]);
        let bytecode = self.ok(
            "nft",
            &["--debug=netlink", "list", "table", "inet", "netpol"],
        );
        format!("{}\n----\n{}", normalised(&list), normalised(&bytecode))
    }
}

/// `netpolctl apply` of `lab`'s inputs for `locals` in `ns`, a fresh replace each time.
fn apply_fresh(ns: &NetNs, lab: &Lab, locals: &[String]) {
    let mut args = vec![
        "apply".to_string(),
        "--policies".into(),
        lab.path("policies").display().to_string(),
        "--inventory".into(),
        lab.path("inventory").display().to_string(),
    ];
    for l in locals {
        args.extend(["--local".to_string(), l.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ns.ok(NETPOLCTL, &args);
}

/// Reloads through `netpolctl reload`; returns the report.
fn reload(d: &Daemon, ns: &NetNs) -> Value {
    let out = d.ctl(ns, &["reload", "-o", "json"]);
    assert!(
        out.status.success(),
        "reload: {}{}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        d.log()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts the daemon's kernel state equals a fresh `netpolctl apply` elsewhere.
fn assert_same_as_fresh(host: &NetNs, fresh: &NetNs, lab: &Lab, locals: &[String], what: &str) {
    apply_fresh(fresh, lab, locals);
    let (a, b) = (host.kernel_state(), fresh.kernel_state());
    if a != b {
        let diff: Vec<String> = a
            .lines()
            .zip(b.lines())
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .take(8)
            .map(|(i, (x, y))| format!("line {}:\n  netpold: {x}\n  fresh:   {y}", i + 1))
            .collect();
        panic!(
            "{what}: the kernel state differs from a fresh apply ({} vs {} lines):\n{}",
            a.lines().count(),
            b.lines().count(),
            diff.join("\n")
        );
    }
}

/// Isolates the egress of every endpoint in `payments` and allows all of it: a new
/// chain, so a replace.
const EGRESS_OPEN: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: payments, name: egress-open}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{}]
";

const EXTRA_CHECKOUT: &str = "\
apiVersion: v1
kind: Pod
metadata:
  namespace: web
  name: checkout-2
  labels: {app: checkout}
status:
  podIPs: [{ip: 198.18.2.13}, {ip: \"2001:db8:2::13\"}]
";

/// What a step does, how, and which sources may reach payments-api afterwards.
type Step<'a> = (&'a str, &'a dyn Fn(), &'a [(&'a str, bool)]);

#[test]
fn membership_changes_are_updates_that_enforce_like_a_fresh_apply() {
    let Some((host, peer)) = two_hosts() else {
        return;
    };
    let Some(fresh) = NetNs::new("npd") else {
        return;
    };
    let lab = Lab::new();
    let locals = vec!["payments/payments-api".to_string()];
    // Events off: compared with `netpolctl apply`'s table, which has no log rules.
    let off = lab.events_off();
    let d = Daemon::start(&host, &lab, &["--debounce-ms", "60000", "--config", &off]);
    assert_example_enforced(&peer);
    assert_same_as_fresh(&host, &fresh, &lab, &locals, "at start");
    peer.ip(&["addr", "add", "198.18.2.12/16", "dev", "vb"]);
    peer.ip(&["addr", "add", "198.18.2.13/16", "dev", "vb"]);

    let pods = lab.read("inventory/pods.yaml");
    let relabelled = pods.replace("app: frontend", "app: checkout");
    let moved = relabelled.replace("198.18.2.11", "198.18.2.12");
    let steps: [Step; 5] = [
        (
            "frontend relabelled as checkout",
            &|| lab.write("inventory/pods.yaml", &relabelled),
            &[
                ("198.18.2.10", true),
                ("198.18.2.11", true),
                ("198.18.2.12", false),
            ],
        ),
        (
            "its address changed",
            &|| lab.write("inventory/pods.yaml", &moved),
            &[("198.18.2.11", false), ("198.18.2.12", true)],
        ),
        (
            "another checkout added",
            &|| lab.write("inventory/extra.yaml", EXTRA_CHECKOUT),
            &[("198.18.2.13", true), ("198.18.2.10", true)],
        ),
        (
            "the other checkout removed",
            &|| std::fs::remove_file(lab.path("inventory/extra.yaml")).unwrap(),
            &[("198.18.2.13", false), ("198.18.2.12", true)],
        ),
        (
            "frontend back as it was",
            &|| lab.write("inventory/pods.yaml", &pods),
            &[
                ("198.18.2.10", true),
                ("198.18.2.11", false),
                ("198.18.2.12", false),
            ],
        ),
    ];
    for (what, edit, probes) in steps {
        edit();
        let r = reload(&d, &host);
        assert_eq!(r["outcome"], "applied", "{what}: {r:#}");
        assert_eq!(r["kernel"]["how"], "updated", "{what}: {r:#}");
        assert!(r["kernel"]["elements"].as_u64() > Some(0), "{what}: {r:#}");
        assert_same_as_fresh(&host, &fresh, &lab, &locals, what);
        for (from, allowed) in probes {
            assert_eq!(reaches_api(&peer, from), *allowed, "{what}: from {from}");
        }
    }
    let out = d.ctl(&host, &["status"]);
    let status = text(&out.stdout);
    assert!(
        status.contains("kernel:          updated in place ("),
        "{status}"
    );
}

#[test]
fn random_edits_of_a_synthetic_input_end_as_a_fresh_apply_would() {
    use netpol_benches::{busiest_endpoint, generate, yaml, Rng, Scale};
    use rules_compiler::resolve::Index;
    let Some(host) = NetNs::new("npd") else {
        return;
    };
    let Some(fresh) = NetNs::new("npd") else {
        return;
    };
    let lab = Lab::new();
    for sub in ["policies", "inventory"] {
        for e in std::fs::read_dir(lab.path(sub)).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
    let scale = Scale {
        namespaces: 12,
        endpoints: 400,
        policies: 80,
    };
    let mut model = generate(&scale, 5);
    lab.write("policies/synth.yaml", &yaml::policies_yaml(&model));
    lab.write("inventory/synth.yaml", &yaml::inventory_yaml(&model));
    // The busiest endpoint and two more of other namespaces, kept as they are.
    let locals: Vec<String> = {
        let index = Index::new(&model);
        let busiest = busiest_endpoint(&index).unwrap();
        let mut ids = vec![index.endpoint(busiest).id.clone()];
        for e in &model.inventory.endpoints {
            if ids.len() < 3 && ids.iter().all(|i| i.namespace != e.id.namespace) {
                ids.push(e.id.clone());
            }
        }
        ids.iter().map(ToString::to_string).collect()
    };
    // Events off: compared with `netpolctl apply`'s table, which has no log rules.
    let off = lab.events_off();
    let mut extra: Vec<&str> = vec!["--debounce-ms", "60000", "--config", &off];
    for l in &locals {
        extra.extend(["--local", l]);
    }
    let d = Daemon::start(&host, &lab, &extra);
    assert_same_as_fresh(&host, &fresh, &lab, &locals, "at start");

    let mut rng = Rng::new(42);
    let mut next_ip: u32 = u32::from(std::net::Ipv4Addr::new(198, 19, 200, 1));
    let (mut updates, mut replaces) = (0, 0);
    for step in 0..50 {
        let eps = &mut model.inventory.endpoints;
        let movable: Vec<usize> = (0..eps.len())
            .filter(|&i| !locals.contains(&eps[i].id.to_string()))
            .collect();
        let i = *rng.pick(&movable);
        let what = match rng.below(5) {
            // A local endpoint relabelled: other policies isolate it, usually new or
            // removed chains, so a replace between the updates.
            4 => {
                let local = eps
                    .iter()
                    .position(|e| e.id.to_string() == locals[step % locals.len()])
                    .unwrap();
                let j = rng.below(eps.len());
                let app = eps[j].labels.get("app").unwrap_or_default().to_string();
                eps[local].labels.insert("app".into(), app.clone());
                format!("local {} relabelled app={app}", eps[local].id)
            }
            0 => {
                // Relabel: take the app label of another endpoint.
                let j = rng.below(eps.len());
                let app = eps[j].labels.get("app").unwrap_or_default().to_string();
                eps[i].labels.insert("app".into(), app.clone());
                format!("{} relabelled app={app}", eps[i].id)
            }
            1 => {
                let ip = std::net::IpAddr::V4(next_ip.into());
                next_ip += 1;
                let v4 = eps[i].ips.iter().position(|a| a.is_ipv4()).unwrap_or(0);
                let mut ips = eps[i].ips.to_vec();
                ips[v4] = ip;
                ips.sort();
                eps[i].ips = ips.into();
                format!("{} moved to {ip}", eps[i].id)
            }
            2 => {
                let gone = eps.remove(i);
                format!("{} removed", gone.id)
            }
            _ => {
                let mut e = eps[i].clone();
                e.id.name = format!("{}-copy{step}", e.id.name).into();
                e.ips = [std::net::IpAddr::V4(next_ip.into())].into();
                next_ip += 1;
                let name = e.id.to_string();
                eps.push(e);
                format!("{name} added")
            }
        };
        lab.write("inventory/synth.yaml", &yaml::inventory_yaml(&model));
        let r = reload(&d, &host);
        if r["outcome"] == "unchanged" {
            // The label it got was the one it had.
            continue;
        }
        assert_eq!(r["outcome"], "applied", "step {step}, {what}: {r:#}");
        match r["kernel"]["how"].as_str() {
            Some("updated") => updates += 1,
            Some("replaced") => replaces += 1,
            other => panic!("step {step}: {other:?}"),
        }
        assert_same_as_fresh(
            &host,
            &fresh,
            &lab,
            &locals,
            &format!("step {step}, {what}"),
        );
    }
    println!("{updates} updates, {replaces} replaces");
    assert!(
        updates >= 25,
        "most edits are element changes: {updates} updates, {replaces} replaces"
    );
}

/// A `netpolctl reload` that arrives while file events queue up during a slow reload
/// is answered, not dropped with the skipped file events.
#[test]
fn a_control_request_queued_behind_file_events_is_answered() {
    use netpol_benches::{generate, yaml, Scale};
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    for sub in ["policies", "inventory"] {
        for e in std::fs::read_dir(lab.path(sub)).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
    // Big enough that a reload takes a good fraction of a second.
    let model = generate(
        &Scale {
            namespaces: 50,
            endpoints: 5_000,
            policies: 500,
        },
        3,
    );
    let policies = yaml::policies_yaml(&model);
    lab.write("policies/synth.yaml", &policies);
    lab.write("inventory/synth.yaml", &yaml::inventory_yaml(&model));
    let local = model.inventory.endpoints[0].id.to_string();
    let d = Daemon::start(&ns, &lab, &["--local", &local, "--debounce-ms", "10"]);
    for round in 1..=3 {
        // A first edit sets off a slow reload; a second edit's event and then a
        // control request queue up behind it.
        lab.write(
            "policies/synth.yaml",
            &format!("{policies}# edit {round}a\n"),
        );
        std::thread::sleep(Duration::from_millis(150));
        lab.write(
            "policies/synth.yaml",
            &format!("{policies}# edit {round}b\n"),
        );
        std::thread::sleep(Duration::from_millis(100));
        let out = d.ctl(&ns, &["reload", "-o", "json"]);
        assert!(
            out.status.success(),
            "round {round}: the reload request got no answer: {}{}\n{}",
            text(&out.stdout),
            text(&out.stderr),
            d.log()
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_ne!(r["outcome"], "failed", "round {round}: {r:#}");
    }
}

#[test]
fn status_says_the_files_differ_while_a_change_waits_for_its_reload() {
    let Some(ns) = NetNs::new("npd") else { return };
    let lab = Lab::new();
    // A window longer than the test: the change waits until netpolctl reloads.
    let d = Daemon::start(
        &ns,
        &lab,
        &["--local", "web/checkout", "--debounce-ms", "60000"],
    );
    assert_eq!(d.status(&ns)["disk"], "match");
    let web = lab.read("policies/web.yaml");
    lab.write("policies/web.yaml", &format!("{web}# edited\n"));
    // netpold does not read the files for status: the watch has seen the write.
    let s = d.wait_for(&ns, "the write to be seen", |s| s["disk"] == "differ");
    assert_eq!(s["generation"], 1, "nothing reloaded yet: {s:#}");
    let out = d.ctl(&ns, &["reload"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let s = d.status(&ns);
    assert_eq!(s["generation"], 2);
    assert_eq!(s["disk"], "match", "read by the reload: {s:#}");
}
