//! Soak benchmark (issue 11): netpold reloads over and over, alternating replaces and
//! incremental updates, while traffic it allows keeps flowing: long-lived TCP streams
//! that carry data all along, and a load generator opening new connections. What is
//! counted: resets and stalls of the streams, allowed new connections that failed,
//! reloads by how the kernel took them, and netpold's resident memory and open file
//! descriptors along the way.
//!
//! # The lab
//!
//! Two network namespaces, `npsoak-PID-s` (server) and `npsoak-PID-c` (client), joined
//! by a veth pair; the server has the IPv4 address of the input's busiest endpoint,
//! the client 198.19.254.1 (allowed) and 198.19.254.2 (no endpoint's: denied). In the
//! server namespace: netpold (release build) with `--local` that endpoint and a second
//! one (below), a `netpol-load tcp-server` on port 7001, and this benchmark's own echo
//! server (`--stream-server 7000`). In the client namespace: this benchmark's stream
//! client (`--stream-client`) and, run after run, `netpol-load tcp`. Everything is
//! removed at the end, also on panic and on Ctrl-C.
//!
//! # The input
//!
//! The synthetic input (`netpol_benches::generate`, seed 1) at `--endpoints` (default
//! 10,000, with namespaces and policies in `netpol-synth`'s proportions, 1/50 and 1/5),
//! plus `soak.yaml` in each directory: a namespace `netpol-soak` with the client
//! endpoint, and a policy in the server's namespace allowing it TCP 7000–7001. The
//! second local endpoint is one whose egress no policy isolates
//! (`edits::unisolated_egress`).
//!
//! # The reloads
//!
//! `--reloads` (default 1,000) file edits, each written atomically (a temporary file, or
//! a hard link to a prepared version, renamed over the input), alternately:
//!
//! - odd: `soak-edit.yaml` in the policies isolates the second local endpoint's egress,
//!   or stops selecting it (`edits::egress_policy`): a chain added or removed, a
//!   **replace**;
//! - even: the inventory switches between the input and the input with one peer of the
//!   local endpoints at another address (`edits::find_edit`, `MoveIp`): set elements
//!   only, an **update**.
//!
//! netpold sees each through its file watch (debounce `--debounce-ms`, default 200, its
//! own default); the benchmark polls `status` every 10 ms until the generation moves,
//! then takes the next step. How the kernel took each reload (`loaded_how`) is counted
//! against the kind the edit should give.
//!
//! # The traffic, all through the server's ruleset
//!
//! - `--streams` (default 8) TCP connections to port 7000, each sending 1 KiB, reading
//!   its echo back and checking it, every `--stream-pace-ms` (default 2): about
//!   0.5 MB/s each way per stream. A **reset** is any error or end of a stream (it then
//!   reconnects); a **stall** is a stream that got no bytes back for more than
//!   `--stall-ms` (default 1,000), counted once per gap; the longest gap of any stream is
//!   reported too.
//! - `netpol-load tcp` (`--load-loops`, default 2, loops, one attempt at least
//!   `--load-pace-ms`, default 5, apart: up to 400 new connections a second), 5 s per
//!   run, run after run: every attempt connects to port 7001, sends a request and waits
//!   for the answer, with a 1 s timeout (a dropped SYN is retransmitted after 1 s, so a
//!   connection the ruleset denies is a timeout). Attempts that time out or fail are
//!   **wrongly denied new allowed connections** (or lost for another reason: nothing
//!   else should lose them on a veth).
//! - Enforcement: before the reloads, after them and every 50 reloads, 0.3 s of
//!   connections from the denied address must all fail (counted when one passes), and
//!   before and after the allowed one must pass.
//!
//! # Memory and descriptors
//!
//! netpold's VmRSS (and VmHWM, its peak) from `/proc/PID/status` and the number of
//! entries in `/proc/PID/fd`, after start-up and every `--sample-every` (default 25)
//! reloads. Warm-up is the first 10 % of the reloads: "after warm-up" is the sample
//! there; the report gives the series' first, after-warm-up, last, minimum and maximum
//! after warm-up, and the whole series (`--keep DIR` also keeps it as a file).
//!
//! It measures and reports; it asserts only that the lab works (the allowed flow
//! passes, the denied one does not, before the reloads).
//!
//! Run (root; netpold is built in release by the benchmark itself):
//! `cargo bench -p netpol-benches --bench soak`
//! Options after `--`: `--reloads N` (1000), `--endpoints N` (10000), `--streams N`
//! (8), `--load-loops N` (2), `--load-pace-ms MS` (5), `--stream-pace-ms MS` (2),
//! `--stall-ms MS` (1000), `--debounce-ms MS` (200), `--sample-every N` (25),
//! `--no-incremental` (passed to netpold: every reload a replace), `--netpold
//! /ABS/PATH` (skip the build), `--keep DIR` (write the inputs, netpold's
//! log and the samples there and keep them).
#![deny(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use netpol_benches::control::status;
use netpol_benches::edits::{egress_policy, find_edit, plan_for, unisolated_egress, EditKind};
use netpol_benches::harness::{
    absolute_path_arg, daemon_bin_or_skip, ip, memory_kib, own_namespace, run,
};
use netpol_benches::load::Summary;
use netpol_benches::yaml::{inventory_yaml, policies_yaml};
use netpol_benches::{busiest_endpoint, generate, Scale};
use rules_compiler::resolve::Index;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const STREAM_PORT: u16 = 7000;
const LOAD_PORT: u16 = 7001;
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 1);
const DENIED: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 2);
/// Bytes a stream sends (and reads back) at a time.
const CHUNK: usize = 1024;
/// The longest any one wait lasts.
const PATIENCE: Duration = Duration::from_secs(120);

struct Args {
    reloads: usize,
    endpoints: usize,
    streams: usize,
    load_loops: usize,
    load_pace_ms: f64,
    stream_pace_ms: u64,
    stall_ms: u64,
    debounce_ms: u64,
    sample_every: usize,
    no_incremental: bool,
    netpold: Option<PathBuf>,
    keep: Option<PathBuf>,
    /// `--stream-server PORT`: the echo server (in the server namespace).
    stream_server: Option<u16>,
    /// `--stream-client ADDRESS:PORT`: the streams (in the client namespace).
    stream_client: Option<SocketAddr>,
}

fn parse_args() -> Args {
    let mut a = Args {
        reloads: 1000,
        endpoints: 10_000,
        streams: 8,
        load_loops: 2,
        load_pace_ms: 5.0,
        stream_pace_ms: 2,
        stall_ms: 1000,
        debounce_ms: 200,
        sample_every: 25,
        no_incremental: false,
        netpold: None,
        keep: None,
        stream_server: None,
        stream_client: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--reloads" => a.reloads = value().parse().expect("--reloads N"),
            "--endpoints" => a.endpoints = value().parse().expect("--endpoints N"),
            "--streams" => a.streams = value().parse().expect("--streams N"),
            "--load-loops" => a.load_loops = value().parse().expect("--load-loops N"),
            "--load-pace-ms" => a.load_pace_ms = value().parse().expect("--load-pace-ms MS"),
            "--stream-pace-ms" => {
                a.stream_pace_ms = value().parse().expect("--stream-pace-ms MS");
            }
            "--stall-ms" => a.stall_ms = value().parse().expect("--stall-ms MS"),
            "--debounce-ms" => a.debounce_ms = value().parse().expect("--debounce-ms MS"),
            "--sample-every" => a.sample_every = value().parse().expect("--sample-every N"),
            "--no-incremental" => a.no_incremental = true,
            "--netpold" => a.netpold = Some(absolute_path_arg("--netpold", value())),
            "--keep" => a.keep = Some(absolute_path_arg("--keep", value())),
            "--stream-server" => a.stream_server = Some(value().parse().expect("a port")),
            "--stream-client" => a.stream_client = Some(value().parse().expect("ADDRESS:PORT")),
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(a.sample_every > 0, "--sample-every must be at least 1");
    a
}

// ----------------------------------------------------------------- the stream server --

/// Echoes every connection to `port` until it ends; prints `ready` once listening.
fn stream_server(port: u16) {
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).expect("listen");
    println!("ready");
    let _ = std::io::stdout().flush();
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        thread::spawn(move || {
            let _ = conn.set_nodelay(true);
            let mut buf = [0u8; 16 * 1024];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

// ----------------------------------------------------------------- the stream client --

/// What the streams did, as the client prints it at the end.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StreamReport {
    streams: usize,
    /// Bytes echoed back and checked, per stream.
    bytes: Vec<u64>,
    /// Streams that ended or failed (read or write error, end of stream).
    resets: u64,
    /// Connects that failed (the first of each stream, or after a reset).
    connect_failures: u64,
    /// Echoes that came back different from what was sent.
    corrupt: u64,
    /// Gaps longer than the stall threshold with no bytes back, over all streams.
    stalls: u64,
    /// The longest gap of any stream with no bytes back, ms (its start excluded:
    /// measured from the stream's first echo).
    max_gap_ms: u64,
}

/// One stream's counters, shared with the watcher.
#[derive(Default)]
struct StreamState {
    bytes: AtomicU64,
    /// ms since the client started at the last byte back (0: none yet).
    last_ms: AtomicU64,
    resets: AtomicU64,
    connect_failures: AtomicU64,
    corrupt: AtomicU64,
}

fn connect(target: SocketAddr, bind: IpAddr) -> std::io::Result<TcpStream> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    sock.bind(&SockAddr::from(SocketAddr::new(bind, 0)))?;
    sock.connect_timeout(&SockAddr::from(target), Duration::from_secs(2))?;
    let s: TcpStream = sock.into();
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(s)
}

/// One stream's life: connect, then send a chunk, read its echo back, check it, pause;
/// on any error count a reset and connect again.
fn stream_loop(
    target: SocketAddr,
    st: &StreamState,
    stop: &AtomicBool,
    start: Instant,
    pace: Duration,
) {
    let mut seq: u64 = 0;
    let (mut out, mut back) = ([0u8; CHUNK], [0u8; CHUNK]);
    'connect: while !stop.load(Ordering::Relaxed) {
        let mut s = match connect(target, IpAddr::V4(CLIENT)) {
            Ok(s) => s,
            Err(_) => {
                st.connect_failures.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        while !stop.load(Ordering::Relaxed) {
            seq += 1;
            for (j, b) in out.iter_mut().enumerate() {
                *b = (seq as usize).wrapping_mul(31).wrapping_add(j) as u8;
            }
            if s.write_all(&out).is_err() {
                st.resets.fetch_add(1, Ordering::Relaxed);
                continue 'connect;
            }
            let mut got = 0;
            while got < CHUNK {
                match s.read(&mut back[got..]) {
                    Ok(0) => {
                        st.resets.fetch_add(1, Ordering::Relaxed);
                        continue 'connect;
                    }
                    Ok(n) => {
                        got += n;
                        st.bytes.fetch_add(n as u64, Ordering::Relaxed);
                        st.last_ms
                            .store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                    }
                    Err(_) => {
                        st.resets.fetch_add(1, Ordering::Relaxed);
                        continue 'connect;
                    }
                }
            }
            if back != out {
                st.corrupt.fetch_add(1, Ordering::Relaxed);
            }
            thread::sleep(pace);
        }
    }
}

/// `--stream-client`: `streams` streams to `target` until stdin closes; prints `ready`
/// once every stream has had an echo, then at the end one JSON [`StreamReport`].
fn stream_client(target: SocketAddr, streams: usize, pace: Duration, stall: Duration) {
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let states: Vec<StreamState> = (0..streams).map(|_| StreamState::default()).collect();
    let report = thread::scope(|s| {
        for st in &states {
            let stop = &stop;
            s.spawn(move || stream_loop(target, st, stop, start, pace));
        }
        // The watcher: gaps between bytes back, per stream.
        let watcher = s.spawn(|| {
            let (mut stalls, mut max_gap) = (0u64, 0u64);
            let mut stalled = vec![false; streams];
            let mut ready = false;
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(10));
                let now = start.elapsed().as_millis() as u64;
                let lasts: Vec<u64> = states
                    .iter()
                    .map(|st| st.last_ms.load(Ordering::Relaxed))
                    .collect();
                if !ready {
                    if lasts.iter().all(|&l| l > 0) {
                        ready = true;
                        println!("ready");
                        let _ = std::io::stdout().flush();
                    }
                    continue;
                }
                for (i, &last) in lasts.iter().enumerate() {
                    let gap = now.saturating_sub(last);
                    max_gap = max_gap.max(gap);
                    if gap > stall.as_millis() as u64 {
                        if !stalled[i] {
                            stalled[i] = true;
                            stalls += 1;
                        }
                    } else {
                        stalled[i] = false;
                    }
                }
            }
            (stalls, max_gap)
        });
        // Until stdin closes.
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        stop.store(true, Ordering::Relaxed);
        let (stalls, max_gap_ms) = watcher.join().expect("the watcher");
        let sum = |f: fn(&StreamState) -> &AtomicU64| -> u64 {
            states.iter().map(|st| f(st).load(Ordering::Relaxed)).sum()
        };
        StreamReport {
            streams,
            bytes: states
                .iter()
                .map(|st| st.bytes.load(Ordering::Relaxed))
                .collect(),
            resets: sum(|st| &st.resets),
            connect_failures: sum(|st| &st.connect_failures),
            corrupt: sum(|st| &st.corrupt),
            stalls,
            max_gap_ms,
        }
    });
    println!("{}", serde_json::to_string(&report).expect("JSON"));
}

// --------------------------------------------------------------------------- the lab --

/// Set by SIGINT or SIGTERM: the reloads stop and the lab's Drop removes everything.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

#[allow(unsafe_code)]
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

/// The two namespaces, the processes in them and the temporary directory; all removed
/// on drop.
struct Lab {
    server: String,
    client: String,
    children: Vec<Child>,
    /// Removed last (a field), once the processes are gone.
    _temp: Option<netpol_benches::harness::TempDir>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `ip netns exec NS PROGRAM` (which execs PROGRAM: the child's pid is the program's).
fn exec(ns: &str, program: &Path) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

impl Lab {
    fn new(temp: Option<netpol_benches::harness::TempDir>, server_ip: Ipv4Addr) -> Lab {
        let pid = std::process::id();
        let lab = Lab {
            server: format!("npsoak-{pid}-s"),
            client: format!("npsoak-{pid}-c"),
            children: Vec::new(),
            _temp: temp,
        };
        ip(&["netns", "add", &lab.server]);
        ip(&["netns", "add", &lab.client]);
        ip(&[
            "-n",
            &lab.client,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &lab.server,
        ]);
        for ns in [&lab.client, &lab.server] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
        }
        let server_addr = format!("{server_ip}/15");
        ip(&[
            "-n",
            &lab.server,
            "addr",
            "add",
            &server_addr,
            "dev",
            "eth0",
        ]);
        for a in [CLIENT, DENIED] {
            ip(&[
                "-n",
                &lab.client,
                "addr",
                "add",
                &format!("{a}/15"),
                "dev",
                "eth0",
            ]);
        }
        let inside = run(Command::new("ip").args([
            "netns",
            "exec",
            &lab.server,
            "readlink",
            "/proc/self/ns/net",
        ]));
        assert_ne!(
            inside.trim(),
            own_namespace(),
            "the server namespace is the benchmark's own: refusing to run netpold there"
        );
        lab
    }

    /// Starts `cmd` and waits for its first line, `ready`; returns its index and the
    /// reader of what it prints later.
    fn start_ready(&mut self, mut cmd: Command) -> (usize, BufReader<ChildStdout>) {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("reading the first line");
        assert_eq!(line.trim(), "ready", "{cmd:?} did not start");
        self.children.push(child);
        (self.children.len() - 1, out)
    }
}

// ------------------------------------------------------------------------- the input --

/// The inputs: directories netpold reads, and the versions of the edited files.
struct Input {
    policies: PathBuf,
    inventory: PathBuf,
    store: PathBuf,
    locals: Vec<String>,
    server_ip: Ipv4Addr,
    second_namespace: String,
    update_edit: String,
}

fn prepare(dir: &Path, endpoints: usize) -> Input {
    let scale = Scale::with_endpoints(endpoints);
    let model = generate(&scale, 1);
    let index = Index::new(&model);
    let server = busiest_endpoint(&index).expect("a busiest endpoint");
    let server_ep = index.endpoint(server);
    let server_id = server_ep.id.clone();
    let server_ip = server_ep
        .ips
        .iter()
        .find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .expect("the server has an IPv4 address");
    drop(index);
    for a in [CLIENT, DENIED] {
        assert!(
            model
                .inventory
                .endpoints
                .iter()
                .all(|e| !e.ips.contains(&IpAddr::V4(a))),
            "{a} belongs to an endpoint of the input"
        );
    }
    let second = unisolated_egress(&model, &server_id.namespace)
        .expect("an endpoint whose egress is not isolated");
    let locals = vec![server_id.clone(), second.clone()];
    let base = plan_for(&model, &locals);
    let edit = find_edit(&model, &locals, &base, EditKind::MoveIp, 8, 40)
        .expect("a peer whose address change changes only set elements");
    for a in [CLIENT, DENIED] {
        assert!(
            edit.model
                .inventory
                .endpoints
                .iter()
                .all(|e| !e.ips.contains(&IpAddr::V4(a))),
            "the update edit moves an endpoint to {a}"
        );
    }
    let (policies, inventory, store) = (
        dir.join("policies"),
        dir.join("inventory"),
        dir.join("store"),
    );
    for d in [&policies, &inventory, &store] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(policies.join("policies.yaml"), policies_yaml(&model)).unwrap();
    std::fs::write(
        policies.join("soak.yaml"),
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{namespace: \
             {}, name: netpol-soak-allow}}\nspec:\n  podSelector: {{}}\n  policyTypes: \
             [Ingress]\n  ingress:\n  - from: [{{namespaceSelector: {{matchLabels: \
             {{kubernetes.io/metadata.name: netpol-soak}}}}}}]\n    ports: [{{protocol: \
             TCP, port: {STREAM_PORT}, endPort: {LOAD_PORT}}}]\n",
            server_id.namespace
        ),
    )
    .unwrap();
    std::fs::write(
        inventory.join("soak.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: netpol-soak\n  labels: \
             {{kubernetes.io/metadata.name: netpol-soak}}\n---\napiVersion: netpol/v1\n\
             kind: Endpoint\nmetadata: {{namespace: netpol-soak, name: client, labels: \
             {{app: soak-client}}}}\nips: [{CLIENT}]\n"
        ),
    )
    .unwrap();
    std::fs::write(store.join("inventory-a.yaml"), inventory_yaml(&model)).unwrap();
    std::fs::write(store.join("inventory-b.yaml"), inventory_yaml(&edit.model)).unwrap();
    std::fs::hard_link(
        store.join("inventory-a.yaml"),
        inventory.join("inventory.yaml"),
    )
    .unwrap();
    std::fs::write(
        policies.join("soak-edit.yaml"),
        egress_policy(&second.namespace, "netpol-soak-edit", false),
    )
    .unwrap();
    Input {
        policies,
        inventory,
        store,
        locals: locals.iter().map(ToString::to_string).collect(),
        server_ip,
        second_namespace: second.namespace.to_string(),
        update_edit: edit.what,
    }
}

// ---------------------------------------------------------------------- the observer --

/// The observer table's counters: packets from the allowed client before netpol's
/// chains (priority −10) and after them (10), for the new connections' SYNs and for the
/// streams. What went in and did not come out, netpol dropped.
#[derive(Debug, Default)]
struct Observed {
    syn_in: u64,
    syn_passed: u64,
    stream_in: u64,
    stream_passed: u64,
}

/// Adds table `inet netpol_soak_observe` to the server namespace: base chains on
/// `input` at priorities −10 and 10 (netpol's are at 0) that count, and accept, the
/// allowed client's SYNs to the load port and its packets to the stream port. Set up
/// before netpold starts and only read afterwards, so it never moves the ruleset's
/// generation under netpold.
fn observe(server_ns: &str, server: Ipv4Addr) {
    let rule = |counter: &str, port: u16, syn: bool| {
        format!(
            "ip saddr {CLIENT} ip daddr {server} tcp dport {port} {}counter name \"{counter}\"",
            if syn {
                "tcp flags & (fin|syn|rst|ack) == syn "
            } else {
                ""
            }
        )
    };
    let ruleset = format!(
        "table inet netpol_soak_observe {{\n\
         counter syn_in {{}}\ncounter syn_passed {{}}\n\
         counter stream_in {{}}\ncounter stream_passed {{}}\n\
         chain before {{ type filter hook input priority -10; policy accept;\n{}\n{}\n}}\n\
         chain after {{ type filter hook input priority 10; policy accept;\n{}\n{}\n}}\n}}\n",
        rule("syn_in", LOAD_PORT, true),
        rule("stream_in", STREAM_PORT, false),
        rule("syn_passed", LOAD_PORT, true),
        rule("stream_passed", STREAM_PORT, false),
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", server_ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .expect("nft's stdin")
        .write_all(ruleset.as_bytes())
        .expect("writing the observer table");
    assert!(
        child.wait().expect("nft").success(),
        "nft -f of:\n{ruleset}"
    );
}

impl Observed {
    fn syn_dropped(&self) -> u64 {
        self.syn_in.saturating_sub(self.syn_passed)
    }
}

fn observed(server_ns: &str) -> Observed {
    let out = run(Command::new("ip").args([
        "netns",
        "exec",
        server_ns,
        "nft",
        "-j",
        "list",
        "counters",
        "table",
        "inet",
        "netpol_soak_observe",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("nft -j output");
    let mut o = Observed::default();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let c = &item["counter"];
        let packets = c["packets"].as_u64().unwrap_or(0);
        match c["name"].as_str() {
            Some("syn_in") => o.syn_in = packets,
            Some("syn_passed") => o.syn_passed = packets,
            Some("stream_in") => o.stream_in = packets,
            Some("stream_passed") => o.stream_passed = packets,
            _ => {}
        }
    }
    o
}

// ------------------------------------------------------------------------- measuring --

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// One sample of netpold: after how many reloads, VmRSS and VmHWM (KiB), open fds.
#[derive(Clone, Copy, Debug)]
struct Sample {
    reloads: usize,
    rss_kib: u64,
    hwm_kib: u64,
    fds: usize,
}

fn sample(pid: u32, reloads: usize) -> Sample {
    let (rss_kib, hwm_kib) = memory_kib(pid);
    Sample {
        reloads,
        rss_kib,
        hwm_kib,
        fds: fds(pid),
    }
}

/// New connections from the load generator, added up over its runs.
#[derive(Default, Clone, Copy)]
struct LoadTotals {
    runs: u64,
    completed: u64,
    timeouts: u64,
    errors: u64,
    max_connect_us: f64,
}

/// `netpol-load tcp` from the client namespace; its summary.
fn load_run(
    client_ns: &str,
    load: &Path,
    from: Ipv4Addr,
    to: SocketAddr,
    args: &[&str],
) -> Summary {
    let out = run(exec(client_ns, load)
        .arg("tcp")
        .args(["--target", &to.to_string()])
        .args(["--bind", &from.to_string()])
        .args(args));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{out:?}: {e}"))
}

/// Whether 0.3 s of one-loop connections from `from` got any through.
fn passes(client_ns: &str, load: &Path, from: Ipv4Addr, to: SocketAddr) -> bool {
    let s = load_run(
        client_ns,
        load,
        from,
        to,
        &[
            "--concurrency",
            "1",
            "--duration",
            "0.3",
            "--timeout-ms",
            "300",
        ],
    );
    s.count > 0
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Puts `source` at `target` with a hard link renamed over it: one step.
fn swap_in(source: &Path, target: &Path) {
    let tmp = target.with_file_name(format!(
        ".{}.tmp",
        target.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::fs::hard_link(source, &tmp).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

/// Writes `text` to `target` through a temporary file renamed over it.
fn write_atomically(target: &Path, text: &str) {
    let tmp = target.with_file_name(format!(
        ".{}.tmp",
        target.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

#[allow(clippy::too_many_lines)]
fn main() {
    let args = parse_args();
    if let Some(port) = args.stream_server {
        stream_server(port);
        return;
    }
    if let Some(target) = args.stream_client {
        stream_client(
            target,
            args.streams,
            Duration::from_millis(args.stream_pace_ms),
            Duration::from_millis(args.stall_ms),
        );
        return;
    }
    let Some(netpold) = daemon_bin_or_skip(args.netpold.as_deref(), "netpold") else {
        return;
    };
    catch_signals();
    let load = PathBuf::from(env!("CARGO_BIN_EXE_netpol-load"));
    let exe = std::env::current_exe().expect("the benchmark's path");
    let (dir, temp) = netpol_benches::harness::input_dir(args.keep.as_deref(), "netpol-soak-");
    let began = Instant::now();
    let input = prepare(&dir, args.endpoints);
    println!(
        "soak: {} reloads, {} endpoints, locals {:?}, server {}, update edit: {}; input ready after {:.1} s",
        args.reloads,
        args.endpoints,
        input.locals,
        input.server_ip,
        input.update_edit,
        began.elapsed().as_secs_f64()
    );
    let mut lab = Lab::new(temp, input.server_ip);
    let stream_target = SocketAddr::from((input.server_ip, STREAM_PORT));
    let load_target = SocketAddr::from((input.server_ip, LOAD_PORT));

    // The servers.
    let mut c = exec(&lab.server, &load);
    c.args(["tcp-server", "--port", &LOAD_PORT.to_string()]);
    lab.start_ready(c);
    let mut c = exec(&lab.server, &exe);
    c.args(["--stream-server", &STREAM_PORT.to_string()]);
    lab.start_ready(c);

    // The observer: a table of the benchmark's own around netpol's chains.
    observe(&lab.server, input.server_ip);

    // netpold.
    let socket = dir.join("netpold.sock");
    let log_path = dir.join("netpold.log");
    let mut c = exec(&lab.server, &netpold);
    c.arg("--policies")
        .arg(&input.policies)
        .arg("--inventory")
        .arg(&input.inventory)
        .arg("--socket")
        .arg(&socket)
        .args(["--debounce-ms", &args.debounce_ms.to_string()]);
    if args.no_incremental {
        c.arg("--no-incremental");
    }
    for l in &input.locals {
        c.args(["--local", l]);
    }
    c.env("NETPOLD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    let child = c.spawn().expect("starting netpold");
    let pid = child.id();
    lab.children.push(child);
    let started = Instant::now();
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut generation = loop {
        if let Some(s) = status(&socket).filter(|s| s.generation >= 1) {
            break s.generation;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "netpold did not start:\n{}",
            read_log()
        );
        thread::sleep(Duration::from_millis(20));
    };
    println!(
        "netpold ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The lab enforces: allowed passes, denied does not.
    let ok = (0..10).any(|_| passes(&lab.client, &load, CLIENT, load_target));
    assert!(ok, "the allowed client does not get through");
    assert!(
        !passes(&lab.client, &load, DENIED, load_target),
        "the denied address gets through: the ruleset does not enforce"
    );

    // The streams.
    let mut c = exec(&lab.client, &exe);
    c.args(["--stream-client", &stream_target.to_string()])
        .args(["--streams", &args.streams.to_string()])
        .args(["--stream-pace-ms", &args.stream_pace_ms.to_string()])
        .args(["--stall-ms", &args.stall_ms.to_string()])
        .stdin(Stdio::piped());
    let (streams, mut streams_out) = lab.start_ready(c);
    let streams_stdin: ChildStdin = lab.children[streams].stdin.take().expect("stdin");

    // The load generator, run after run until told to stop.
    let stop_load = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Mutex::new(LoadTotals::default()));
    let load_thread = {
        let (stop, totals) = (stop_load.clone(), totals.clone());
        let (client_ns, load) = (lab.client.clone(), load.clone());
        let loops = args.load_loops.to_string();
        let pace = args.load_pace_ms.to_string();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let s = load_run(
                    &client_ns,
                    &load,
                    CLIENT,
                    load_target,
                    &[
                        "--concurrency",
                        &loops,
                        "--duration",
                        "5",
                        "--timeout-ms",
                        "1000",
                        "--pace-ms",
                        &pace,
                    ],
                );
                let mut t = totals.lock().unwrap();
                t.runs += 1;
                t.completed += s.count;
                t.timeouts += s.timeouts;
                t.errors += s.errors;
                t.max_connect_us = t.max_connect_us.max(s.max_us);
            }
        })
    };

    // The reloads.
    let mut samples = vec![sample(pid, 0)];
    let mut latencies: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    // [expected update, expected replace] × [updated, replaced]
    let mut kinds = [[0usize; 2]; 2];
    let mut extra = 0u64;
    let mut denied_passed = 0usize;
    let mut denied_probes = 0usize;
    let (mut egress_on, mut inventory_b) = (false, false);
    let soak_began = Instant::now();
    let mut done = 0;
    // SYNs of allowed new connections netpol dropped: while an edit of each kind was
    // being applied (from the write to the status showing it), and between.
    // Signed: `syn_dropped` reads two counters while packets are between them, so one
    // reading can be a SYN too high and the next delta -1 (it wrapped to 2^64-1).
    let mut drops_during = [0i64; 2];
    let mut drops_between = 0i64;
    let mut last_dropped = observed(&lab.server).syn_dropped();
    let dropped_at_start = last_dropped;
    for i in 1..=args.reloads {
        if STOP.load(Ordering::SeqCst) {
            println!("interrupted after {done} reloads");
            break;
        }
        let replace = i % 2 == 1;
        let before = observed(&lab.server).syn_dropped();
        drops_between += before as i64 - last_dropped as i64;
        let t0 = Instant::now();
        if replace {
            egress_on = !egress_on;
            write_atomically(
                &input.policies.join("soak-edit.yaml"),
                &egress_policy(&input.second_namespace, "netpol-soak-edit", egress_on),
            );
        } else {
            inventory_b = !inventory_b;
            let version = if inventory_b { "b" } else { "a" };
            swap_in(
                &input.store.join(format!("inventory-{version}.yaml")),
                &input.inventory.join("inventory.yaml"),
            );
        }
        let s = loop {
            if let Some(s) = status(&socket).filter(|s| s.generation > generation) {
                break s;
            }
            assert!(
                t0.elapsed() < PATIENCE,
                "reload {i}: netpold never applied it:\n{}",
                read_log()
            );
            thread::sleep(Duration::from_millis(10));
        };
        latencies[usize::from(replace)].push(t0.elapsed().as_secs_f64() * 1000.0);
        let after = observed(&lab.server).syn_dropped();
        drops_during[usize::from(replace)] += after as i64 - before as i64;
        if after > before {
            println!(
                "reload {i} ({}): {} SYNs dropped",
                if replace { "replace" } else { "update" },
                after - before
            );
        }
        last_dropped = after;
        extra += s.generation - generation - 1;
        generation = s.generation;
        match s.loaded_how.as_deref() {
            Some("updated") => kinds[usize::from(replace)][0] += 1,
            Some("replaced") => kinds[usize::from(replace)][1] += 1,
            how => panic!("reload {i}: status says nothing of the kernel ({how:?})"),
        }
        done = i;
        if i % args.sample_every == 0 {
            samples.push(sample(pid, i));
        }
        if i % 50 == 0 {
            denied_probes += 1;
            if passes(&lab.client, &load, DENIED, load_target) {
                denied_passed += 1;
            }
        }
        if i % 100 == 0 {
            let t = *totals.lock().unwrap();
            println!(
                "{i} reloads, {:.0} s: new connections {} completed, {} timed out, {} failed",
                soak_began.elapsed().as_secs_f64(),
                t.completed,
                t.timeouts,
                t.errors
            );
        }
    }
    let soak_s = soak_began.elapsed().as_secs_f64();
    if samples.last().is_none_or(|s| s.reloads != done) {
        samples.push(sample(pid, done));
    }

    // Stop the traffic; the last checks.
    stop_load.store(true, Ordering::Relaxed);
    load_thread.join().expect("the load thread");
    drop(streams_stdin);
    let mut line = String::new();
    streams_out.read_line(&mut line).expect("the stream report");
    let streams_report: StreamReport =
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    let dropped = observed(&lab.server);
    let allowed_after = (0..10).any(|_| passes(&lab.client, &load, CLIENT, load_target));
    let denied_after = passes(&lab.client, &load, DENIED, load_target);
    let final_status = status(&socket).expect("status at the end");
    let log = read_log();
    if let Some(keep) = &args.keep {
        let series: Vec<String> = samples
            .iter()
            .map(|s| format!("{} {} {} {}", s.reloads, s.rss_kib, s.hwm_kib, s.fds))
            .collect();
        std::fs::write(
            keep.join("samples.txt"),
            format!("# reloads VmRSS_KiB VmHWM_KiB fds\n{}\n", series.join("\n")),
        )
        .unwrap();
    }

    // The report.
    let t = *totals.lock().unwrap();
    let mib = |kib: u64| kib as f64 / 1024.0;
    for l in &mut latencies {
        l.sort_by(f64::total_cmp);
    }
    let warm = done / 10;
    let after_warm: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.reloads >= warm)
        .collect();
    let at_warm = after_warm.first().copied().unwrap_or(samples[0]);
    let last = *samples.last().unwrap();
    let rss = |s: &[Sample]| {
        (
            s.iter().map(|s| s.rss_kib).min().unwrap_or(0),
            s.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        )
    };
    let fd_range = |s: &[Sample]| {
        (
            s.iter().map(|s| s.fds).min().unwrap_or(0),
            s.iter().map(|s| s.fds).max().unwrap_or(0),
        )
    };
    let (rss_min, rss_max) = rss(&after_warm);
    let (fd_min, fd_max) = fd_range(&after_warm);
    let bytes: u64 = streams_report.bytes.iter().sum();
    println!();
    println!(
        "reloads: {done} in {soak_s:.0} s ({} failed, {} extra); edits meant as updates: {} updated, {} replaced; meant as replaces: {} replaced, {} updated",
        final_status.failed_reloads, extra, kinds[0][0], kinds[0][1], kinds[1][1], kinds[1][0]
    );
    for (name, l) in ["update", "replace"].iter().zip(&latencies) {
        println!(
            "  {name}: write → status {:.0} ms median, {:.0} ms p99, {:.0} ms max (debounce {} ms included)",
            median(l),
            percentile(l, 99.0),
            l.last().copied().unwrap_or(f64::NAN),
            args.debounce_ms
        );
    }
    println!(
        "streams: {}, {:.1} MB echoed ({} min per stream), {} resets, {} stalls (> {} ms), longest gap {} ms, {} corrupt echoes, {} failed connects",
        streams_report.streams,
        bytes as f64 / 1e6,
        streams_report.bytes.iter().min().copied().unwrap_or(0),
        streams_report.resets,
        streams_report.stalls,
        args.stall_ms,
        streams_report.max_gap_ms,
        streams_report.corrupt,
        streams_report.connect_failures
    );
    println!(
        "new connections: {} attempted, {} completed, {} timed out, {} failed ({} runs of 5 s, {} loops, {} ms pace; longest connect {:.1} ms)",
        t.completed + t.timeouts + t.errors,
        t.completed,
        t.timeouts,
        t.errors,
        t.runs,
        args.load_loops,
        args.load_pace_ms,
        t.max_connect_us / 1000.0
    );
    println!(
        "dropped by netpol (observer table): {} of {} SYNs of allowed new connections ({} before the reloads; during updates {}, during replaces {}, between reloads {}), {} of {} packets of the streams",
        dropped.syn_dropped(),
        dropped.syn_in,
        dropped_at_start,
        drops_during[0],
        drops_during[1],
        drops_between,
        dropped.stream_in - dropped.stream_passed,
        dropped.stream_in
    );
    println!(
        "enforcement: denied address got through in {denied_passed} of {denied_probes} probes; after the soak allowed {} and denied {}",
        if allowed_after { "passes" } else { "FAILS" },
        if denied_after { "PASSES" } else { "is denied" }
    );
    println!(
        "netpold VmRSS: start {:.1} MiB, after warm-up ({} reloads) {:.1} MiB, last {:.1} MiB; after warm-up min {:.1} max {:.1} MiB; VmHWM at the end {:.1} MiB",
        mib(samples[0].rss_kib),
        at_warm.reloads,
        mib(at_warm.rss_kib),
        mib(last.rss_kib),
        mib(rss_min),
        mib(rss_max),
        mib(last.hwm_kib)
    );
    println!(
        "netpold fds: start {}, after warm-up {}, last {}; after warm-up min {} max {}",
        samples[0].fds, at_warm.fds, last.fds, fd_min, fd_max
    );
    let every = (samples.len() / 20).max(1);
    let series: Vec<String> = samples
        .iter()
        .step_by(every)
        .chain(std::iter::once(&last))
        .map(|s| format!("{}:{:.1}/{}", s.reloads, mib(s.rss_kib), s.fds))
        .collect();
    println!("series (reloads:VmRSS MiB/fds): {}", series.join(" "));
    let warnings = log.lines().filter(|l| l.contains(" WARN ")).count();
    let errors = log.lines().filter(|l| l.contains(" ERROR ")).count();
    println!("netpold log: {warnings} warnings, {errors} errors");
    println!("total {:.0} s", began.elapsed().as_secs_f64());
}
