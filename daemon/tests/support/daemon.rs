//! netpold as an operator runs it, for the daemon's integration tests: the bundled
//! example copied into a temporary directory ([`Lab`]), the real binary started in a
//! network namespace and waited for over `NOTIFY_SOCKET` ([`Daemon`]), and two
//! namespaces joined by a veth pair to send real TCP between ([`two_hosts`]).

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{repo, text, unique, NetNs};

pub const NETPOLD: &str = env!("CARGO_BIN_EXE_netpold");
pub const NETPOLCTL: &str = env!("CARGO_BIN_EXE_netpolctl");
/// The longest any wait lasts before the test gives up.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// How long "nothing more happens" is watched for after a change.
pub const SETTLE: Duration = Duration::from_millis(1500);

impl NetNs {
    pub fn ip(&self, args: &[&str]) {
        self.ok("ip", args);
    }

    /// The netpol table as nft lists it, or `None` when there is none.
    pub fn table(&self) -> Option<String> {
        let out = self.run("nft", &["list", "table", "inet", "netpol"]);
        out.status.success().then(|| text(&out.stdout))
    }
}

/// A temporary directory with a copy of the bundled example, removed on drop.
pub struct Lab(pub tempfile::TempDir);

impl Lab {
    pub fn new() -> Lab {
        let temp = tempfile::TempDir::with_prefix("netpold-test-").unwrap();
        let dir = temp.path();
        for sub in ["policies", "inventory"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            for e in std::fs::read_dir(repo().join("config").join(sub)).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
            }
        }
        Lab(temp)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }

    pub fn socket(&self) -> String {
        self.path("netpold.sock").display().to_string()
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    /// A config file turning verdict events off, for tests that compare netpold's
    /// table with `netpolctl apply`'s (which logs nothing: no one would read it).
    pub fn events_off(&self) -> String {
        self.write("events-off.yaml", "events: {enabled: false}\n");
        self.path("events-off.yaml").display().to_string()
    }

    pub fn args(&self) -> Vec<String> {
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

/// A running netpold, killed on drop if still running.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub socket: String,
}

impl Daemon {
    /// Starts netpold in `ns` and waits for READY=1.
    pub fn start(ns: &NetNs, lab: &Lab, extra: &[&str]) -> Daemon {
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

    pub fn ctl(&self, ns: &NetNs, args: &[&str]) -> Output {
        let mut all = vec!["--socket", &self.socket];
        all.extend(args);
        ns.run(NETPOLCTL, &all)
    }

    pub fn status(&self, ns: &NetNs) -> Value {
        let out = self.ctl(ns, &["status", "-o", "json"]);
        assert!(out.status.success(), "status: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn generation(&self, ns: &NetNs) -> u64 {
        self.status(ns)["generation"].as_u64().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the status satisfies `cond`; panics with the log after PATIENCE.
    pub fn wait_for(&self, ns: &NetNs, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
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
    pub fn exactly_one_reload_to(&self, ns: &NetNs, g: u64, what: &str) {
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

    pub fn terminate(mut self) -> ExitStatus {
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
pub fn spawn(ns: &NetNs, lab: &Lab, extra: &[&str]) -> (Child, PathBuf, UnixDatagram) {
    let n = unique("netpold");
    let notify_path = lab.path(&format!("{n}.sock"));
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = lab.path(&format!("{n}.log"));
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
pub fn run_to_end(ns: &NetNs, args: &[&str]) -> Output {
    ns.run(NETPOLD, args)
}

/// Two namespaces joined by a veth pair: `host` has payments-api's address and runs
/// netpold; `peer` has checkout's and frontend's.
pub fn two_hosts() -> Option<(NetNs, NetNs)> {
    let host = NetNs::new("npd")?;
    let peer = NetNs::new("npd")?;
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

/// Waits until checkout reaches payments-api (the link comes up asynchronously), then
/// checks that frontend does not.
pub fn assert_example_enforced(peer: &NetNs) {
    link_up(peer);
    assert!(!reaches_api(peer, "198.18.2.11"), "frontend is denied");
}

/// Waits until checkout reaches payments-api: the link is up and the ruleset in force.
/// Allowed, so no verdict event.
pub fn link_up(peer: &NetNs) {
    let start = Instant::now();
    while !reaches_api(peer, "198.18.2.10") {
        assert!(
            start.elapsed() < PATIENCE,
            "checkout never reached payments-api"
        );
    }
}

/// Gives both namespaces of [`two_hosts`] the example's IPv6 addresses too:
/// payments-api's on `host`, checkout's and frontend's on `peer`, in one /32 so that
/// they reach each other without routes (no duplicate address detection: usable at
/// once).
pub fn add_ipv6(host: &NetNs, peer: &NetNs) {
    host.ip(&["addr", "add", "2001:db8:1::10/32", "dev", "va", "nodad"]);
    peer.ip(&["addr", "add", "2001:db8:2::10/32", "dev", "vb", "nodad"]);
    peer.ip(&["addr", "add", "2001:db8:2::11/32", "dev", "vb", "nodad"]);
}

/// Runs `rawsend.py` (hand-made packets from raw sockets: see its doc) in `ns` with
/// `NETPOL_TEST_PYTHON` (default `python3`) and returns what it printed.
pub fn rawsend(ns: &NetNs, args: &[&str]) -> String {
    let python = std::env::var("NETPOL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = repo().join("daemon/tests/support/rawsend.py");
    let mut all = vec![script.to_str().unwrap()];
    all.extend(args);
    ns.ok(&python, &all)
}

/// Whether a TCP connect from `from` (an address of `peer`) reaches 198.18.1.10:8080.
/// Nothing listens there: a connection that gets through is refused by the host's
/// TCP stack (curl exit 7); one the ruleset drops times out (curl exit 28).
pub fn reaches_api(peer: &NetNs, from: &str) -> bool {
    reaches_api_on(peer, from, 8080)
}

/// [`reaches_api`] on TCP `port` of 198.18.1.10.
pub fn reaches_api_on(peer: &NetNs, from: &str, port: u16) -> bool {
    let out = peer.run(
        "curl",
        &[
            "-s",
            "--connect-timeout",
            "2",
            "--interface",
            from,
            &format!("telnet://198.18.1.10:{port}"),
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

/// The events `netpolctl logs -o json` prints, waiting until there are at least `n`.
pub fn events(d: &Daemon, ns: &NetNs, n: usize) -> Vec<serde_json::Value> {
    let start = std::time::Instant::now();
    loop {
        let out = d.ctl(ns, &["logs", "-o", "json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let got: Vec<serde_json::Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if got.len() >= n {
            return got;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "waited for {n} events, got {got:#?}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
