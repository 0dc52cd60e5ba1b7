//! Issue 11, item 3: revocation, with real packets. A server namespace runs the real
//! netpold for `lab/server`; a client namespace, joined by a veth, keeps live TCP
//! streams open to it. A policy edit then stops allowing some of them:
//!
//! - a stream the client sends on, to a port no longer allowed: the server stops
//!   receiving within a second of the reload (its socket is closed, the client reset);
//! - a stream the SERVER sends on, on such a port: the direction in which the kernel's
//!   loose TCP pick-up would re-create a deleted conntrack entry from the server's next
//!   segment (its egress is open) and let the stream resume; the client stops receiving
//!   within a second;
//! - the same over IPv6;
//! - a stream on the port still allowed keeps flowing the whole time (bytes keep
//!   arriving after the reload, no reset);
//! - with `--revoke-established=false`, a stream no longer allowed keeps flowing, as
//!   before revocation existed (so these tests can fail).
//!
//! Namespaces are `ip netns` ones removed by a guard also when a test fails; addresses
//! are from 198.18.0.0/15 and 2001:db8::/32 only. Needs root; without it the tests say
//! so and pass (in CI they fail).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod support;
use support::daemon::{Daemon, Lab};
use support::{text, NetNs};

const SERVER_V4: &str = "198.18.110.1";
const CLIENT_V4: &str = "198.18.110.2";
const SERVER_V6: &str = "2001:db8:110::1";
const CLIENT_V6: &str = "2001:db8:110::2";
/// Allowed before and after the edit.
const KEPT: u16 = 7000;
/// Allowed before the edit only.
const REVOKED: u16 = 7001;
/// How soon after the reload answered a revoked stream must have stopped: the cut is
/// part of the reload, so only the reset's way to the receiver is left. (Counted from
/// the answer, not the start: a busy machine makes the reload itself slow, which is not
/// what this test is about.)
const CUT_WITHIN: Duration = Duration::from_secs(1);
/// How long streams are watched after that.
const WATCH: Duration = Duration::from_millis(1500);

const INVENTORY: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: lab}
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: lab, name: server, labels: {app: server}}
ips: [198.18.110.1, \"2001:db8:110::1\"]
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: lab, name: client, labels: {app: client}}
ips: [198.18.110.2, \"2001:db8:110::2\"]
";

/// The client may reach the server on `ports`; the server's egress is open.
fn policy(ports: &[u16]) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|p| format!("{{protocol: TCP, port: {p}}}"))
        .collect();
    format!(
        "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{namespace: lab, name: server}}
spec:
  podSelector: {{matchLabels: {{app: server}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]
    ports: [{}]
",
        ports.join(", ")
    )
}

/// Runs `f` on a thread that has entered `ns`: sockets it creates belong there.
fn enter<T: Send + 'static>(ns: &NetNs, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.0);
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // Changes only this (fresh, short-lived) thread's network namespace.
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns: {e}"));
        f()
    })
    .join()
    .expect("the thread in the namespace panicked")
}

/// Server and client namespaces with netpold (flags `extra`) for `lab/server`,
/// allowing both ports.
struct Setup {
    server: NetNs,
    client: NetNs,
    lab: Lab,
    daemon: Daemon,
}

impl Setup {
    fn new(extra: &[&str]) -> Option<Setup> {
        let server = NetNs::new("npr-srv")?;
        let client = NetNs::new("npr-cli")?;
        server.ip(&[
            "link", "add", "rv0", "type", "veth", "peer", "name", "rv1", "netns", &client.0,
        ]);
        for (ns, dev, v4, v6) in [
            (&server, "rv0", SERVER_V4, SERVER_V6),
            (&client, "rv1", CLIENT_V4, CLIENT_V6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"]);
            ns.ip(&["link", "set", dev, "up"]);
            ns.ip(&["link", "set", "lo", "up"]);
        }
        let lab = Lab::new();
        for sub in ["policies", "inventory"] {
            std::fs::remove_dir_all(lab.path(sub)).unwrap();
            std::fs::create_dir_all(lab.path(sub)).unwrap();
        }
        lab.write("inventory/lab.yaml", INVENTORY);
        lab.write("policies/server.yaml", &policy(&[KEPT, REVOKED]));
        let mut args = vec!["--local", "lab/server", "--metrics-address", "off"];
        // Reloads come from `netpolctl reload` only.
        args.extend(["--debounce-ms", "60000"]);
        args.extend(extra);
        let daemon = Daemon::start(&server, &lab, &args);
        Some(Setup {
            server,
            client,
            lab,
            daemon,
        })
    }

    /// Applies the policy that allows `ports` only, by `netpolctl reload`, and returns
    /// when the reload has answered (the ruleset, and any revocation, done).
    fn reload_allowing(&self, ports: &[u16]) -> serde_json::Value {
        self.lab.write("policies/server.yaml", &policy(ports));
        let out = self.daemon.ctl(&self.server, &["reload", "-o", "json"]);
        assert!(
            out.status.success(),
            "reload: {}{}\n{}",
            text(&out.stdout),
            text(&out.stderr),
            self.daemon.log()
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// One side's view of a stream: bytes received so far, and how it ended.
#[derive(Clone, Default)]
struct Receiver {
    bytes: Arc<AtomicU64>,
    ended: Arc<Mutex<Option<(String, Instant)>>>,
}

impl Receiver {
    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    fn ended(&self) -> Option<String> {
        self.ended
            .lock()
            .unwrap()
            .as_ref()
            .map(|(why, _)| why.clone())
    }

    fn ended_at(&self) -> Option<Instant> {
        self.ended.lock().unwrap().as_ref().map(|(_, at)| *at)
    }

    fn end(&self, why: String) {
        *self.ended.lock().unwrap() = Some((why, Instant::now()));
    }
}

/// A TCP connection from the client to the server on which one side writes 4 KiB
/// every 5 ms and the other reads, until stopped or the connection fails.
struct Stream {
    name: &'static str,
    receiver: Receiver,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Stream {
    /// `server_sends`: the server writes and the client reads; else the other way.
    /// Streams to one address and port share its listener: binding it again while
    /// accepted connections hold the port may fail (seen once, `EADDRINUSE`).
    fn open(s: &Setup, name: &'static str, listener: &TcpListener, server_sends: bool) -> Stream {
        let at = listener.local_addr().unwrap();
        let client = enter(&s.client, move || {
            TcpStream::connect_timeout(&at, Duration::from_secs(3))
        })
        .unwrap_or_else(|e| panic!("{name}: connect: {e}"));
        let (accepted, _) = listener.accept().expect("accept");
        let (sender, receiving) = if server_sends {
            (accepted, client)
        } else {
            (client, accepted)
        };
        let stop = Arc::new(AtomicBool::new(false));
        let receiver = Receiver::default();
        let mut threads = Vec::new();
        {
            let (stop, receiver) = (Arc::clone(&stop), receiver.clone());
            let mut r = receiving;
            r.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::SeqCst) {
                    match r.read(&mut buf) {
                        Ok(0) => {
                            receiver.end("end of stream".into());
                            return;
                        }
                        Ok(n) => {
                            receiver.bytes.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => {
                            receiver.end(e.to_string());
                            return;
                        }
                    }
                }
            }));
        }
        {
            let stop = Arc::clone(&stop);
            let mut w = sender;
            w.set_write_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            threads.push(std::thread::spawn(move || {
                let chunk = [0x5au8; 4096];
                while !stop.load(Ordering::SeqCst) {
                    match w.write_all(&chunk) {
                        Ok(()) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => return,
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }
        let stream = Stream {
            name,
            receiver,
            stop,
            threads,
        };
        stream.wait_flowing();
        stream
    }

    /// Waits until bytes arrive.
    fn wait_flowing(&self) {
        let start = Instant::now();
        while self.receiver.bytes() == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{}: no data arrives",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts that bytes keep arriving over `WATCH`, without the connection failing.
    fn assert_keeps_flowing(&self, what: &str) {
        let mut last = self.receiver.bytes();
        let until = Instant::now() + WATCH;
        let mut rises = 0;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(250));
            let now = self.receiver.bytes();
            assert_eq!(
                self.receiver.ended(),
                None,
                "{}: {what}: the connection ended",
                self.name
            );
            if now > last {
                rises += 1;
            }
            last = now;
        }
        assert!(
            rises >= 5,
            "{}: {what}: data stalled (rose in {rises} of 6 intervals)",
            self.name
        );
    }

    /// Asserts that the receiver stopped getting data (its connection failed) within
    /// `CUT_WITHIN` of `answered`, when the reload that began at `since` answered, and
    /// that no byte arrives afterwards. Returns when it stopped, after `since`.
    fn assert_cut(&self, since: Instant, answered: Instant, what: &str) -> Duration {
        while self.receiver.ended_at().is_none() && answered.elapsed() < CUT_WITHIN {
            std::thread::sleep(Duration::from_millis(10));
        }
        let Some(at) = self.receiver.ended_at() else {
            panic!(
                "{}: {what}: still flowing {:?} after the reload began ({} bytes)",
                self.name,
                since.elapsed(),
                self.receiver.bytes()
            );
        };
        let took = at.saturating_duration_since(since);
        assert!(
            at.saturating_duration_since(answered) <= CUT_WITHIN,
            "{}: {what}: ended {took:?} after the reload began, {:?} after it answered",
            self.name,
            at.saturating_duration_since(answered)
        );
        let at_cut = self.receiver.bytes();
        std::thread::sleep(WATCH);
        assert_eq!(
            self.receiver.bytes(),
            at_cut,
            "{}: {what}: data after the cut",
            self.name
        );
        took
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A listener on the server at `server`:`port`.
fn listen(s: &Setup, server: &str, port: u16) -> TcpListener {
    let at = SocketAddr::new(addr(server), port);
    enter(&s.server, move || TcpListener::bind(at).expect("bind"))
}

#[test]
fn a_reload_cuts_established_streams_it_no_longer_allows_and_only_those() {
    let Some(s) = Setup::new(&[]) else { return };
    let (kept_at, revoked_at) = (listen(&s, SERVER_V4, KEPT), listen(&s, SERVER_V4, REVOKED));
    let revoked_v6_at = listen(&s, SERVER_V6, REVOKED);
    let kept = Stream::open(&s, "kept (client sends)", &kept_at, false);
    let kept_back = Stream::open(&s, "kept (server sends)", &kept_at, true);
    let client_sends = Stream::open(&s, "revoked (client sends)", &revoked_at, false);
    let server_sends = Stream::open(&s, "revoked (server sends)", &revoked_at, true);
    let over_v6 = Stream::open(&s, "revoked (IPv6)", &revoked_v6_at, false);
    kept.assert_keeps_flowing("before the edit");
    server_sends.assert_keeps_flowing("before the edit");

    let reloading = Instant::now();
    let report = s.reload_allowing(&[KEPT]);
    let answered = Instant::now();
    println!("netpolctl reload answered after {:?}", reloading.elapsed());
    assert_eq!(report["outcome"], "applied", "{report:#}");
    assert_eq!(report["revoked"]["cut"], 3, "{report:#}");
    assert_eq!(report["revoked"]["sockets_reset"], 3, "{report:#}");
    let mut took = Vec::new();
    for stream in [&client_sends, &server_sends, &over_v6] {
        took.push(stream.assert_cut(reloading, answered, "after the edit"));
    }
    println!("the revoked streams' receivers saw the end {took:?} after the reload began");
    // The server's socket was closed by the kernel (SOCK_DESTROY); the client's side of
    // the server-sending stream got the reset.
    let reset = server_sends.receiver.ended().unwrap();
    assert!(reset.contains("reset"), "{reset}");
    kept.assert_keeps_flowing("after the edit");
    kept_back.assert_keeps_flowing("after the edit");

    let log = s.daemon.log();
    assert!(
        log.contains("revoked 3 established flows that generation 2 no longer allows"),
        "{log}"
    );
    assert!(
        log.contains(&format!("tcp {CLIENT_V4}:"))
            && log.contains(&format!("-> {SERVER_V4}:{REVOKED} (lab/server, ingress)")),
        "{log}"
    );
    assert!(
        log.contains(&format!("-> [{SERVER_V6}]:{REVOKED} (lab/server, ingress)")),
        "{log}"
    );
    // A new connection to the revoked port is denied, to the kept one allowed.
    let denied = enter(&s.client, move || {
        TcpStream::connect_timeout(
            &SocketAddr::new(addr(SERVER_V4), REVOKED),
            Duration::from_millis(700),
        )
    });
    assert_eq!(
        denied.as_ref().map_err(io::Error::kind).err(),
        Some(io::ErrorKind::TimedOut),
        "{denied:?}"
    );
    kept.assert_keeps_flowing("at the end");
}

#[test]
fn with_revocation_off_established_streams_outlive_the_edit() {
    let Some(s) = Setup::new(&["--revoke-established=false"]) else {
        return;
    };
    let (kept_at, revoked_at) = (listen(&s, SERVER_V4, KEPT), listen(&s, SERVER_V4, REVOKED));
    let kept = Stream::open(&s, "kept", &kept_at, false);
    let server_sends = Stream::open(&s, "no longer allowed (server sends)", &revoked_at, true);
    let client_sends = Stream::open(&s, "no longer allowed (client sends)", &revoked_at, false);
    let report = s.reload_allowing(&[KEPT]);
    assert_eq!(report["outcome"], "applied", "{report:#}");
    assert!(report["revoked"].is_null(), "{report:#}");
    std::thread::sleep(CUT_WITHIN);
    server_sends.assert_keeps_flowing("after the edit, revocation off");
    client_sends.assert_keeps_flowing("after the edit, revocation off");
    kept.assert_keeps_flowing("after the edit, revocation off");
}
