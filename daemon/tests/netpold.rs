//! `netpold` as an operator runs it: the real binary against the real kernel, each test
//! in throwaway network namespaces (`ip netns add npd-<pid>-<n>`, removed on drop, also
//! when the test panics), with its inputs in a temporary directory removed on drop.
//! The daemon says it is ready over a `NOTIFY_SOCKET` the test listens on, as systemd
//! would. Waits are generous and polled; nothing asserts how long anything took.
//! Needs root; without it the tests say so and pass.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const NETPOLD: &str = env!("CARGO_BIN_EXE_netpold");
const NETPOLCTL: &str = env!("CARGO_BIN_EXE_netpolctl");
/// The longest any wait lasts before the test gives up.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long "nothing more happens" is watched for after a change.
const SETTLE: Duration = Duration::from_millis(1500);

static N: AtomicUsize = AtomicUsize::new(0);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A named network namespace, deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> Option<NetNs> {
        let name = format!(
            "npd-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        match Command::new("ip").args(["netns", "add", &name]).output() {
            Ok(o) if o.status.success() => Some(NetNs(name)),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot create a network namespace (needs root): {}",
                    text(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run `ip`: {e}");
                None
            }
        }
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]).args(args);
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args)
            .output()
            .expect("ip netns exec runs")
    }

    fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn ip(&self, args: &[&str]) {
        self.ok("ip", args);
    }

    /// The netpol table as nft lists it, or `None` when there is none.
    fn table(&self) -> Option<String> {
        let out = self.run("nft", &["list", "table", "inet", "netpol"]);
        out.status.success().then(|| text(&out.stdout))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A temporary directory with a copy of the bundled example, removed on drop.
struct Lab(PathBuf);

impl Lab {
    fn new() -> Lab {
        let dir = std::env::temp_dir().join(format!(
            "netpold-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        for sub in ["policies", "inventory"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            for e in std::fs::read_dir(repo().join("config").join(sub)).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
            }
        }
        Lab(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn socket(&self) -> String {
        self.path("netpold.sock").display().to_string()
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--policies".into(),
            self.path("policies").display().to_string(),
            "--inventory".into(),
            self.path("inventory").display().to_string(),
            "--socket".into(),
            self.socket(),
        ]
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running netpold, killed on drop if still running.
struct Daemon {
    child: Child,
    log: PathBuf,
    socket: String,
}

impl Daemon {
    /// Starts netpold in `ns` and waits for READY=1.
    fn start(ns: &NetNs, lab: &Lab, extra: &[&str]) -> Daemon {
        let (mut child, log, notify) = spawn(ns, lab, extra);
        let mut buf = [0u8; 4096];
        let start = Instant::now();
        loop {
            match notify.recv(&mut buf) {
                Ok(n) if text(&buf[..n]).lines().any(|l| l == "READY=1") => break,
                _ => {}
            }
            let exited = child.try_wait().unwrap();
            if exited.is_some() || start.elapsed() > PATIENCE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "netpold did not become ready ({exited:?}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
        Daemon {
            child,
            log,
            socket: lab.socket(),
        }
    }

    fn ctl(&self, ns: &NetNs, args: &[&str]) -> Output {
        let mut all = vec!["--socket", &self.socket];
        all.extend(args);
        ns.run(NETPOLCTL, &all)
    }

    fn status(&self, ns: &NetNs) -> Value {
        let out = self.ctl(ns, &["status", "-o", "json"]);
        assert!(out.status.success(), "status: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn generation(&self, ns: &NetNs) -> u64 {
        self.status(ns)["generation"].as_u64().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the status satisfies `cond`; panics with the log after PATIENCE.
    fn wait_for(&self, ns: &NetNs, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let s = self.status(ns);
            if cond(&s) {
                return s;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "waited in vain for {what}; status: {s:#}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for generation `g`, then makes sure no further reload follows.
    fn exactly_one_reload_to(&self, ns: &NetNs, g: u64, what: &str) {
        self.wait_for(ns, what, |s| s["generation"].as_u64() >= Some(g));
        std::thread::sleep(SETTLE);
        let s = self.status(ns);
        assert_eq!(
            s["generation"].as_u64(),
            Some(g),
            "{what}: expected exactly one reload; log:\n{}",
            self.log()
        );
        assert_eq!(s["reloads"]["failed"], 0, "{what}: {s:#}");
    }

    fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "netpold ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts netpold with a NOTIFY_SOCKET, its stderr in a log file.
fn spawn(ns: &NetNs, lab: &Lab, extra: &[&str]) -> (Child, PathBuf, UnixDatagram) {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let notify_path = lab.path(&format!("notify-{n}.sock"));
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = lab.path(&format!("netpold-{n}.log"));
    let mut args = lab.args();
    if !extra.contains(&"--debounce-ms") {
        args.extend(["--debounce-ms".into(), "100".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = ns
        .command(NETPOLD, &args)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("NETPOLD_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting netpold");
    (child, log, notify)
}

/// Runs netpold to its end (for start-ups that must fail).
fn run_to_end(ns: &NetNs, args: &[&str]) -> Output {
    ns.run(NETPOLD, args)
}

// ------------------------------------------------------------------ the tests ----

/// Two namespaces joined by a veth pair: `host` has payments-api's address and runs
/// netpold; `peer` has checkout's and frontend's.
fn two_hosts() -> Option<(NetNs, NetNs)> {
    let host = NetNs::new()?;
    let peer = NetNs::new()?;
    host.ip(&["link", "set", "lo", "up"]);
    peer.ip(&["link", "set", "lo", "up"]);
    host.ip(&[
        "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &peer.0,
    ]);
    host.ip(&["addr", "add", "198.18.1.10/16", "dev", "va"]);
    peer.ip(&["addr", "add", "198.18.2.10/16", "dev", "vb"]);
    peer.ip(&["addr", "add", "198.18.2.11/16", "dev", "vb"]);
    host.ip(&["link", "set", "va", "up"]);
    peer.ip(&["link", "set", "vb", "up"]);
    Some((host, peer))
}

/// Whether a TCP connect from `from` (an address of `peer`) reaches 198.18.1.10:8080.
/// Nothing listens there: a connection that gets through is refused by the host's
/// TCP stack (curl exit 7); one the ruleset drops times out (curl exit 28).
fn reaches_api(peer: &NetNs, from: &str) -> bool {
    let out = peer.run(
        "curl",
        &[
            "-s",
            "--connect-timeout",
            "2",
            "--interface",
            from,
            "http://198.18.1.10:8080/",
        ],
    );
    match out.status.code() {
        Some(7) => true,
        Some(28) => false,
        other => panic!(
            "curl from {from}: unexpected exit {other:?}: {}",
            text(&out.stderr)
        ),
    }
}

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

    // Wait until the link is up before probing (the kernel does that asynchronously).
    let start = Instant::now();
    while !reaches_api(&peer, "198.18.2.10") {
        assert!(
            start.elapsed() < PATIENCE,
            "checkout never reached payments-api"
        );
    }
    assert!(!reaches_api(&peer, "198.18.2.11"), "frontend is denied");

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
    let Some(ns) = NetNs::new() else { return };
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
    let Some(ns) = NetNs::new() else { return };
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
    let Some(ns) = NetNs::new() else { return };
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
    let Some(ns) = NetNs::new() else { return };
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
    assert_eq!(Ok(meta.gid()), netpol_daemon::control::group_id("daemon"));
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
    let Some(ns) = NetNs::new() else { return };
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
    let Some(ns) = NetNs::new() else { return };
    let lab = Lab::new();
    let d = Daemon::start(&ns, &lab, &["--local", "payments/payments-api"]);
    let table = ns.table().unwrap();
    let status = d.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(
        ns.table().unwrap(),
        table,
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
    let Some(ns) = NetNs::new() else { return };
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
