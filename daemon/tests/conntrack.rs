//! Issue 3, item 4: conntrack is kept. Real TCP between two network namespaces joined
//! by a veth, with `netpolctl apply` (the real binary) loading the server's ruleset in
//! the server's namespace:
//!
//! - an established connection keeps working across repeated applies, of the same
//!   inputs and of inputs that change something else, and its replies pass although
//!   the server may send nothing new (its egress is isolated with no rule);
//! - after an apply that no longer allows the client, a new connection is dropped
//!   while the established one still works;
//! - the same across incremental reloads of `netpold` (only set elements change: the
//!   client relabelled out of the policy and back), which also keep the kernel's deny
//!   counters instead of resetting them;
//! - a TCP segment of no connection (a bare ACK), which conntrack classifies
//!   `invalid`, is dropped, where without netpol's table the server answers it with a
//!   reset.
//!
//! Namespaces are `ip netns` ones named after the process, removed by a guard also when
//! a test fails. Addresses are from 198.18.0.0/15 only. Needs root; without it the
//! tests say so and pass.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod support;
use support::{text, NetNs};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 2);
/// The port every policy version allows (for someone).
const PORT: u16 = 7000;
/// The port only the second policy version allows.
const OTHER_PORT: u16 = 7001;

impl NetNs {
    /// Runs `f` on a thread that has entered this namespace: sockets it creates
    /// belong to the namespace, wherever they are used afterwards.
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns with an open namespace file descriptor and its type; it
            // changes only this (fresh, short-lived) thread's network namespace.
            #[allow(unsafe_code)]
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .expect("the thread in the namespace panicked")
    }
}

/// A directory of inputs, removed on drop.
struct Inputs(tempfile::TempDir);

impl Inputs {
    fn new() -> Inputs {
        let temp = tempfile::TempDir::with_prefix("netpol-ct-inputs-").unwrap();
        let dir = temp.path();
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        std::fs::write(dir.join("inventory.yaml"), INVENTORY).unwrap();
        Inputs(temp)
    }

    /// Makes `policy` the only policy file.
    fn set_policy(&self, policy: &str) {
        std::fs::write(self.0.path().join("policies/server.yaml"), policy).unwrap();
    }
}

const INVENTORY: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: lab}
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: lab, name: server, labels: {app: server}}
ips: [198.18.100.1]
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: lab, name: client, labels: {app: client}}
ips: [198.18.100.2]
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: lab, name: other, labels: {app: other}}
ips: [198.18.100.3]
";

/// The client may reach the server on 7000/TCP. The server's egress is isolated with
/// no rule: everything it sends to the client must pass as a reply (conntrack).
const ALLOW_CLIENT: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: lab, name: server}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{protocol: TCP, port: 7000}]
  egress: []
";

/// Changes something else: another peer and another port.
const ALLOW_CLIENT_AND_MORE: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: lab, name: server}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
    - podSelector: {matchLabels: {app: other}}
    ports: [{protocol: TCP, port: 7000}, {protocol: TCP, port: 7001}]
  egress: []
";

/// The client may reach the server on 7000/TCP; the server's egress is open, so that
/// nothing but the ingress side can stop a reset the server sends.
const ALLOW_CLIENT_INGRESS_ONLY: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: lab, name: server}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{protocol: TCP, port: 7000}]
";

/// The client is no longer allowed; another peer is.
const ALLOW_OTHER_ONLY: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: lab, name: server}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: other}}}]
    ports: [{protocol: TCP, port: 7000}]
  egress: []
";

/// A server namespace and a client namespace joined by a veth.
struct Lab {
    server: NetNs,
    client: NetNs,
    inputs: Inputs,
}

impl Lab {
    fn new() -> Option<Lab> {
        let server = NetNs::new("netpol-ct-srv")?;
        let client = NetNs::new("netpol-ct-cli")?;
        server.ok(
            "ip",
            &[
                "link", "add", "ct0", "type", "veth", "peer", "name", "ct1", "netns", &client.0,
            ],
        );
        for (ns, dev, addr) in [(&server, "ct0", SERVER), (&client, "ct1", CLIENT)] {
            ns.ok("ip", &["addr", "add", &format!("{addr}/24"), "dev", dev]);
            ns.ok("ip", &["link", "set", dev, "up"]);
            ns.ok("ip", &["link", "set", "lo", "up"]);
        }
        Some(Lab {
            server,
            client,
            inputs: Inputs::new(),
        })
    }

    /// `netpolctl apply` of `policy` in the server's namespace, for the server.
    fn apply(&self, policy: &str) {
        self.apply_with(policy, &[]);
    }

    /// `apply` with more flags.
    fn apply_with(&self, policy: &str, extra: &[&str]) {
        self.inputs.set_policy(policy);
        let dir = self.inputs.0.path();
        let (policies, inventory) = (dir.join("policies"), dir.join("inventory.yaml"));
        let mut args = vec![
            "apply",
            "--policies",
            policies.to_str().unwrap(),
            "--inventory",
            inventory.to_str().unwrap(),
            "--local",
            "lab/server",
        ];
        args.extend(extra);
        let out = self.server.run(env!("CARGO_BIN_EXE_netpolctl"), &args);
        assert!(
            out.status.success(),
            "apply failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    /// Connects from the client's namespace to the server, waiting at most `wait`.
    fn connect(&self, port: u16, wait: Duration) -> io::Result<TcpStream> {
        let to = SocketAddr::V4(SocketAddrV4::new(SERVER, port));
        self.client
            .enter(move || TcpStream::connect_timeout(&to, wait))
    }

    /// The packets denied on the server's ingress, from `netpolctl show`.
    fn ingress_denied(&self) -> u64 {
        let show = self
            .server
            .ok(env!("CARGO_BIN_EXE_netpolctl"), &["show", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&show).unwrap();
        let deny = v["denies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["endpoint"] == "lab/server" && d["direction"] == "ingress")
            .unwrap_or_else(|| panic!("no ingress deny counter for lab/server: {show}"));
        deny["packets"].as_u64().unwrap()
    }
}

/// Echo servers on the server's side, stopped on drop.
struct Echo {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Echo {
    fn start(ns: &NetNs, ports: &[u16]) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for &port in ports {
            let listener = ns.enter(move || TcpListener::bind((SERVER, port)).expect("bind"));
            listener.set_nonblocking(true).unwrap();
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || accept_loop(listener, stop)));
        }
        Echo { stop, threads }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, stop: Arc<AtomicBool>) {
    let mut conns = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let stop = Arc::clone(&stop);
                conns.push(std::thread::spawn(move || echo(stream, stop)));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    for c in conns {
        let _ = c.join();
    }
}

fn echo(mut stream: TcpStream, stop: Arc<AtomicBool>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Sends a message over `stream` and expects it back: the request passed the server's
/// ingress and the echo, the server's egress.
fn exchange(stream: &mut TcpStream, what: &str) {
    let msg = format!("{what}\n");
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream
        .write_all(msg.as_bytes())
        .unwrap_or_else(|e| panic!("{what}: sending: {e}"));
    let mut back = vec![0u8; msg.len()];
    stream
        .read_exact(&mut back)
        .unwrap_or_else(|e| panic!("{what}: no echo: {e}"));
    assert_eq!(text(&back), msg, "{what}");
}

#[test]
fn established_connection_survives_repeated_applies_and_its_replies_pass() {
    let Some(lab) = Lab::new() else { return };
    let _echo = Echo::start(&lab.server, &[PORT, OTHER_PORT]);
    lab.apply(ALLOW_CLIENT);
    let mut conn = lab.connect(PORT, Duration::from_secs(3)).expect("connect");
    exchange(&mut conn, "after the first apply");
    // 7001 is not allowed yet: the ruleset is in force.
    let refused = lab.connect(OTHER_PORT, Duration::from_millis(700));
    assert_eq!(
        refused.as_ref().map_err(io::Error::kind).err(),
        Some(io::ErrorKind::TimedOut),
        "{refused:?}"
    );

    for i in 1..=3 {
        lab.apply(ALLOW_CLIENT);
        exchange(
            &mut conn,
            &format!("after applying the same inputs again ({i})"),
        );
    }
    for i in 1..=3 {
        lab.apply(ALLOW_CLIENT_AND_MORE);
        exchange(&mut conn, &format!("after applying a changed policy ({i})"));
        // The change took effect: 7001 now takes new connections.
        let mut other = lab
            .connect(OTHER_PORT, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("7001 after the change ({i}): {e}"));
        exchange(&mut other, &format!("a new connection to 7001 ({i})"));
        lab.apply(ALLOW_CLIENT);
        exchange(
            &mut conn,
            &format!("after applying the first policy back ({i})"),
        );
    }
}

/// With revocation off (`--revoke-established=false`), a ruleset change applies to new
/// connections only: `ct state established,related accept` comes before any policy
/// rule, so a connection that was allowed when it started keeps working after a
/// ruleset that would refuse it today, until it ends (or conntrack forgets it) —
/// Kubernetes' minimal guarantee. With revocation on (the default), the next apply
/// cuts it (`tests/revoke.rs` has the details).
#[test]
fn established_connection_outlives_a_ruleset_that_no_longer_allows_it() {
    let Some(lab) = Lab::new() else { return };
    let _echo = Echo::start(&lab.server, &[PORT]);
    lab.apply(ALLOW_CLIENT);
    let mut conn = lab.connect(PORT, Duration::from_secs(3)).expect("connect");
    exchange(&mut conn, "while allowed");

    let keep = ["--revoke-established=false"];
    lab.apply_with(ALLOW_OTHER_ONLY, &keep);
    assert_eq!(lab.ingress_denied(), 0);
    // A new connection is dropped (no reset: a timeout, not a refusal)…
    let started = Instant::now();
    let new = lab.connect(PORT, Duration::from_secs(1));
    assert_eq!(
        new.as_ref().map_err(io::Error::kind).err(),
        Some(io::ErrorKind::TimedOut),
        "{new:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    // … by the server's deny rule, which counted its SYN(s).
    assert!(lab.ingress_denied() >= 1);
    // … while the established one still works, both ways.
    for i in 1..=3 {
        exchange(&mut conn, &format!("established, no longer allowed ({i})"));
    }
    lab.apply_with(ALLOW_OTHER_ONLY, &keep);
    exchange(&mut conn, "established, after another apply");

    // The default revokes it: the server's socket is closed and the client reset.
    lab.apply(ALLOW_OTHER_ONLY);
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let sent = conn.write_all(b"after revocation\n");
    let mut buf = [0u8; 64];
    let read = conn.read(&mut buf);
    assert!(
        sent.is_err() || !matches!(read, Ok(n) if n > 0),
        "the revoked connection still echoes: {sent:?} {read:?}"
    );
}

// ------------------------------------------------------- incremental reloads ----

/// netpold running in the server's namespace for `lab/server`, killed on drop.
struct Netpold {
    child: std::process::Child,
    socket: String,
    log: PathBuf,
}

impl Netpold {
    fn start(lab: &Lab) -> Netpold {
        let dir = lab.inputs.0.path();
        let socket = dir.join("netpold.sock").display().to_string();
        let log = dir.join("netpold.log");
        let child = lab
            .server
            .command(
                env!("CARGO_BIN_EXE_netpold"),
                &[
                    "--policies",
                    dir.join("policies").to_str().unwrap(),
                    "--inventory",
                    dir.join("inventory.yaml").to_str().unwrap(),
                    "--local",
                    "lab/server",
                    "--socket",
                    &socket,
                    "--metrics-address",
                    "off",
                    // Reloads come from `netpolctl reload` only.
                    "--debounce-ms",
                    "60000",
                    // These tests are about conntrack entries surviving updates.
                    "--revoke-established=false",
                ],
            )
            .env("NETPOLD_LOG", "debug")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("starting netpold");
        let d = Netpold { child, socket, log };
        let started = Instant::now();
        while d.ctl(lab, &["status"]).is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "netpold did not start:\n{}",
                std::fs::read_to_string(&d.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// `netpolctl --socket … ARGS -o json` in the server's namespace, parsed; `None`
    /// when it fails.
    fn ctl(&self, lab: &Lab, args: &[&str]) -> Option<serde_json::Value> {
        let mut all = vec!["--socket", &self.socket];
        all.extend(args);
        all.extend(["-o", "json"]);
        let out = lab.server.run(env!("CARGO_BIN_EXE_netpolctl"), &all);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("json"))
    }

    /// Reloads and returns how the kernel took it.
    fn reload(&self, lab: &Lab) -> serde_json::Value {
        let r = self.ctl(lab, &["reload"]).unwrap_or_else(|| {
            panic!(
                "reload failed:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        });
        assert_eq!(r["outcome"], "applied", "{r:#}");
        r["kernel"].clone()
    }
}

impl Drop for Netpold {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn established_connection_and_deny_counters_survive_incremental_reloads() {
    let Some(lab) = Lab::new() else { return };
    let _echo = Echo::start(&lab.server, &[PORT]);
    // Two peers, so that the set never becomes empty: a set that empties (or fills)
    // adds or removes a rule, which is a replace.
    lab.inputs.set_policy(ALLOW_CLIENT_AND_MORE);
    let d = Netpold::start(&lab);
    let mut conn = lab.connect(PORT, Duration::from_secs(3)).expect("connect");
    exchange(&mut conn, "after netpold started");
    let inventory = lab.inputs.0.path().join("inventory.yaml");
    let relabel = |app: &str| {
        let text = INVENTORY.replace(
            "name: client, labels: {app: client}",
            &format!("name: client, labels: {{app: {app}}}"),
        );
        std::fs::write(&inventory, text).unwrap();
    };
    let mut denied = 0;
    for i in 1..=3 {
        // The client is no longer a peer: one element fewer in a set.
        relabel("nobody");
        let how = d.reload(&lab);
        assert_eq!(how["how"], "updated", "{how:#}");
        exchange(
            &mut conn,
            &format!("established, client relabelled out ({i})"),
        );
        let new = lab.connect(PORT, Duration::from_millis(700));
        assert_eq!(
            new.as_ref().map_err(io::Error::kind).err(),
            Some(io::ErrorKind::TimedOut),
            "a new connection after the relabel ({i}): {new:?}"
        );
        let now = lab.ingress_denied();
        assert!(
            now > denied,
            "the SYN(s) were counted: {now} after {denied}"
        );
        denied = now;

        // And back: allowed again, by an update that keeps the counter.
        relabel("client");
        let how = d.reload(&lab);
        assert_eq!(how["how"], "updated", "{how:#}");
        assert_eq!(
            lab.ingress_denied(),
            denied,
            "an update keeps the deny counter ({i})"
        );
        exchange(&mut conn, &format!("established, client back ({i})"));
        let mut again = lab
            .connect(PORT, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("a new connection once allowed again ({i}): {e}"));
        exchange(&mut again, &format!("a new connection ({i})"));
    }
    let status = d.ctl(&lab, &["status"]).unwrap();
    assert_eq!(status["loaded_how"]["how"], "updated", "{status:#}");
}

// ------------------------------------------------------------- invalid packets ----

/// A raw IPv4 TCP socket: sends hand-made segments (the kernel adds the IP header) and
/// sees a copy of every TCP segment that arrives in its namespace.
struct RawTcp(OwnedFd);

impl RawTcp {
    /// Opens the socket in the calling thread's network namespace.
    fn open() -> io::Result<RawTcp> {
        // SAFETY: plain socket(2); a non-negative result is a new descriptor that we
        // own from here on.
        #[allow(unsafe_code)]
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is open and owned by nothing else.
        #[allow(unsafe_code)]
        Ok(RawTcp(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn send(&self, segment: &[u8], to: Ipv4Addr) -> io::Result<()> {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(to).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: the buffer and the address are live for the call, with their lengths.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                segment.as_ptr().cast(),
                segment.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next datagram (IP header included), or `None` when none came in `wait`.
    fn recv(&self, buf: &mut [u8], wait: Duration) -> io::Result<Option<usize>> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd and its count.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if rc == 0 {
            return Ok(None);
        }
        // SAFETY: `buf` is writable for its length for the duration of the call.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(n as usize))
    }
}

const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// A 20-byte TCP header with the checksum over the IPv4 pseudo-header.
fn tcp_segment(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut seg = Vec::with_capacity(20);
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&0x1234_5678_u32.to_be_bytes()); // seq
    seg.extend_from_slice(&0x0bad_cafe_u32.to_be_bytes()); // ack
    seg.push(5 << 4); // data offset: 5 words
    seg.push(flags);
    seg.extend_from_slice(&65535_u16.to_be_bytes()); // window
    seg.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&[0, 6]);
    add(&20_u16.to_be_bytes());
    add(&seg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    seg[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    seg
}

/// Sends a bare ACK of no connection from the client (source port `sport`) to the
/// server's port 7000, and reports whether a reset came back within `wait`.
fn stray_ack_gets_reset(raw: &RawTcp, sport: u16, wait: Duration) -> bool {
    raw.send(&tcp_segment(CLIENT, SERVER, sport, PORT, TCP_ACK), SERVER)
        .expect("sending the stray ACK");
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 2048];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(n) = raw.recv(&mut buf, left).expect("raw recv") else {
            break;
        };
        let ip = &buf[..n];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if n < ihl + 20 || ip[12..16] != SERVER.octets() {
            continue;
        }
        let tcp = &ip[ihl..];
        let (from, to) = (
            u16::from_be_bytes([tcp[0], tcp[1]]),
            u16::from_be_bytes([tcp[2], tcp[3]]),
        );
        if from == PORT && to == sport && tcp[13] & TCP_RST != 0 {
            return true;
        }
    }
    false
}

/// TCP segments the server's stack has received (`Tcp: InSegs` of /proc/net/snmp).
fn tcp_in_segs(ns: &NetNs) -> u64 {
    let snmp = ns.ok("cat", &["/proc/net/snmp"]);
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "InSegs")
        .unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

const TCP_LOOSE: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_loose";

fn set_tcp_loose(ns: &NetNs, value: u8) {
    ns.ok("sh", &["-c", &format!("echo {value} > {TCP_LOOSE}")]);
    assert_eq!(ns.ok("cat", &[TCP_LOOSE]).trim(), value.to_string());
}

/// A bare ACK to the allowed port, from the allowed client, belongs to no connection.
/// (The server's egress is open here, so only the input side can stop its reset.) With `nf_conntrack_tcp_loose=0` (set inside the server's namespace only; the
/// setting is per network namespace) conntrack does not pick such a segment up as an
/// established connection but classifies it `invalid`, and netpol's `ct state invalid
/// drop` drops it: no reset comes back and the server's TCP never sees it. The two
/// controls show that the drop is that rule's doing: with loose pick-up (the kernel's
/// default) the same segment is a new connection that the policy allows, and the
/// listening socket answers it with a reset; and without netpol's table the invalid
/// segment reaches TCP too and gets a reset.
#[test]
fn invalid_tcp_is_dropped() {
    let Some(lab) = Lab::new() else { return };
    let _echo = Echo::start(&lab.server, &[PORT]);
    lab.apply(ALLOW_CLIENT_INGRESS_ONLY);
    // The netpol table's ct expressions have loaded conntrack: its settings exist now.
    let host_loose = std::fs::read_to_string(TCP_LOOSE).ok();
    set_tcp_loose(&lab.server, 0);
    assert_eq!(
        std::fs::read_to_string(TCP_LOOSE).ok(),
        host_loose,
        "the host's setting must stay as it was"
    );
    let raw = lab.client.enter(RawTcp::open).expect("raw socket");
    let wait = Duration::from_secs(1);

    let segs = tcp_in_segs(&lab.server);
    assert!(
        !stray_ack_gets_reset(&raw, 40001, wait),
        "an invalid segment got through netpol's table"
    );
    assert_eq!(
        tcp_in_segs(&lab.server),
        segs,
        "the server's TCP saw the invalid segment"
    );

    // Control 1: with loose pick-up the segment is not invalid, the policy allows it,
    // and TCP resets it.
    set_tcp_loose(&lab.server, 1);
    assert!(
        stray_ack_gets_reset(&raw, 40002, wait),
        "no reset to an allowed stray ACK: the control is broken"
    );

    // Control 2: without netpol's table the invalid segment gets its reset.
    set_tcp_loose(&lab.server, 0);
    let flushed = lab.server.ok(env!("CARGO_BIN_EXE_netpolctl"), &["flush"]);
    assert_eq!(flushed, "removed table inet netpol\n");
    assert!(
        stray_ack_gets_reset(&raw, 40003, wait),
        "no reset without netpol's table: the control is broken"
    );
}
