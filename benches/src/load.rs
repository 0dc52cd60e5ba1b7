//! The data-plane load generator behind `netpol-load`: TCP and UDP servers, and clients
//! that open connections (or send datagrams) for a fixed time and summarize what
//! happened. It only talks to the addresses it is given; it never creates namespaces
//! or touches a ruleset (the `dataplane` benchmark does that around it).
//!
//! # What a TCP "connection" is here
//!
//! One client loop: new socket, `SO_LINGER` 0, bind to the source address (when given),
//! `connect` (timed: the connect latency is the time until `connect` returns, i.e. one
//! SYN / SYN-ACK round trip through both namespaces' rulesets), send a short request,
//! wait for the server's one-byte answer, close. The answer keeps the loop closed: a
//! client never opens connections faster than the server accepts them, so the accept
//! queue cannot overflow and drop SYNs (which would show up as one-second retransmits
//! that no ruleset caused). `SO_LINGER` 0 makes `close` send a RST, so neither side
//! keeps the connection in TIME_WAIT and the ephemeral ports are reused at once: a run
//! of any length needs only as many source ports as loops.
//!
//! # UDP
//!
//! One connected socket per loop sends a numbered datagram and waits for the echo; the
//! round-trip time is the latency. The socket is reused, so after the first datagram
//! conntrack sees an established flow: this measures the established path, while the
//! TCP loop measures new connections.
//!
//! # SYN flood
//!
//! [`syn_flood`] sends bare TCP SYNs from a raw socket (root: `CAP_NET_RAW`), each from
//! another source port, and never answers: to a ruleset that denies its source, every
//! one is a new connection to drop (and, with verdict events, to log or count). It
//! builds the TCP header and checksum itself ([`syn_segment`]); the kernel adds the IP
//! header with the bound source address.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// What a client run did: counts, the rate and latency percentiles.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `tcp` or `udp`.
    pub mode: String,
    /// Completed connections (TCP: connect, request, answer) or round trips (UDP).
    pub count: u64,
    /// Wall time of the run, seconds (the set duration plus the last attempts).
    pub elapsed_s: f64,
    /// `count / elapsed_s`.
    pub rate_per_s: f64,
    /// Latency samples taken (TCP: successful connects; UDP: round trips).
    pub samples: u64,
    /// Median latency, microseconds (TCP: connect; UDP: round trip).
    pub median_us: f64,
    /// 99th percentile latency (nearest rank), microseconds.
    pub p99_us: f64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Smallest latency, microseconds.
    pub min_us: f64,
    /// Largest latency, microseconds.
    pub max_us: f64,
    /// Attempts that timed out (no SYN-ACK, no answer, no echo within the timeout).
    pub timeouts: u64,
    /// Attempts that failed otherwise (refused, reset, …).
    pub errors: u64,
}

/// Nearest-rank percentile `p` (0–100] of sorted values; 0 for none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// The median of sorted values (mean of the middle two for an even count); 0 for none.
pub fn median(sorted: &[u64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2] as f64,
        _ => (sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0,
    }
}

/// What one client loop collected.
#[derive(Debug, Default)]
pub struct LoopResult {
    /// Completed attempts.
    pub count: u64,
    /// Latencies in nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Timed-out attempts.
    pub timeouts: u64,
    /// Otherwise failed attempts.
    pub errors: u64,
}

/// Merges the loops' results of one run into its [`Summary`].
pub fn summarize(mode: &str, loops: Vec<LoopResult>, elapsed: Duration) -> Summary {
    let mut all: Vec<u64> = Vec::new();
    let (mut count, mut timeouts, mut errors) = (0, 0, 0);
    for l in loops {
        count += l.count;
        timeouts += l.timeouts;
        errors += l.errors;
        all.extend(l.latencies_ns);
    }
    all.sort_unstable();
    let us = |ns: f64| ns / 1000.0;
    let elapsed_s = elapsed.as_secs_f64();
    Summary {
        mode: mode.to_string(),
        count,
        elapsed_s,
        rate_per_s: if elapsed_s > 0.0 {
            count as f64 / elapsed_s
        } else {
            0.0
        },
        samples: all.len() as u64,
        median_us: us(median(&all)),
        p99_us: us(percentile(&all, 99.0) as f64),
        mean_us: if all.is_empty() {
            0.0
        } else {
            us(all.iter().map(|&v| v as f64).sum::<f64>() / all.len() as f64)
        },
        min_us: us(all.first().copied().unwrap_or(0) as f64),
        max_us: us(all.last().copied().unwrap_or(0) as f64),
        timeouts,
        errors,
    }
}

/// What a client run is told.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The server.
    pub target: SocketAddr,
    /// The source address to bind, when the namespace has several.
    pub bind: Option<IpAddr>,
    /// Concurrent loops (one thread each).
    pub concurrency: usize,
    /// How long to keep starting new attempts.
    pub duration: Duration,
    /// How long one connect, answer or echo may take before it counts as a timeout.
    pub timeout: Duration,
    /// TCP: the least time from one attempt's start to the next's in each loop, so a
    /// run can offer a steady load instead of all the CPU can give (zero: no pause).
    pub pace: Duration,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn domain(addr: &SocketAddr) -> Domain {
    if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

/// Runs `concurrency` loops of `one` until the duration is over and summarizes them.
fn run_loops(mode: &str, cfg: &ClientConfig, one: fn(&ClientConfig, &mut LoopResult)) -> Summary {
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let loops: Vec<LoopResult> = thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.concurrency.max(1))
            .map(|_| {
                s.spawn(move || {
                    let mut r = LoopResult::default();
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        one(cfg, &mut r);
                        if let Some(rest) = cfg.pace.checked_sub(t0.elapsed()) {
                            thread::sleep(
                                rest.min(deadline.saturating_duration_since(Instant::now())),
                            );
                        }
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client loop panicked"))
            .collect()
    });
    summarize(mode, loops, start.elapsed())
}

/// One TCP attempt: connect (timed), request, answer, close with RST.
fn tcp_once(cfg: &ClientConfig, r: &mut LoopResult) {
    let attempt = || -> io::Result<u64> {
        let sock = Socket::new(domain(&cfg.target), Type::STREAM, Some(Protocol::TCP))?;
        // close() sends RST: no TIME_WAIT, the source port is free again at once.
        sock.set_linger(Some(Duration::ZERO))?;
        if let Some(ip) = cfg.bind {
            sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
        }
        let target = SockAddr::from(cfg.target);
        let t0 = Instant::now();
        sock.connect_timeout(&target, cfg.timeout)?;
        let connect_ns = t0.elapsed().as_nanos() as u64;
        sock.set_read_timeout(Some(cfg.timeout))?;
        let mut stream: std::net::TcpStream = sock.into();
        stream.write_all(b"netpol-load\n")?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer)?;
        Ok(connect_ns)
    };
    match attempt() {
        Ok(ns) => {
            r.count += 1;
            r.latencies_ns.push(ns);
        }
        Err(e) if is_timeout(&e) => r.timeouts += 1,
        Err(_) => {
            r.errors += 1;
            // A refused or reset connection returns at once: do not spin at full speed.
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The TCP client: new connections for the configured duration.
pub fn tcp_client(cfg: &ClientConfig) -> Summary {
    run_loops("tcp", cfg, tcp_once)
}

/// One UDP loop's whole life: one connected socket, numbered datagrams, echoes.
fn udp_loop(cfg: &ClientConfig, r: &mut LoopResult) {
    let deadline = Instant::now() + cfg.duration;
    let bind = SocketAddr::new(
        cfg.bind.unwrap_or(if cfg.target.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        }),
        0,
    );
    let sock = match UdpSocket::bind(bind)
        .and_then(|s| s.connect(cfg.target).map(|()| s))
        .and_then(|s| s.set_read_timeout(Some(cfg.timeout)).map(|()| s))
    {
        Ok(s) => s,
        Err(_) => {
            r.errors += 1;
            thread::sleep(Duration::from_millis(10));
            return;
        }
    };
    let mut seq: u64 = 0;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        seq += 1;
        let t0 = Instant::now();
        if sock.send(&seq.to_be_bytes()).is_err() {
            r.errors += 1;
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        // A late echo of an earlier, timed-out datagram is not this one's answer.
        loop {
            match sock.recv(&mut buf) {
                Ok(8) if buf[..8] == seq.to_be_bytes() => {
                    r.count += 1;
                    r.latencies_ns.push(t0.elapsed().as_nanos() as u64);
                    break;
                }
                Ok(_) if t0.elapsed() < cfg.timeout => continue,
                Ok(_) => {
                    r.timeouts += 1;
                    break;
                }
                Err(e) if is_timeout(&e) => {
                    r.timeouts += 1;
                    break;
                }
                Err(_) => {
                    r.errors += 1;
                    thread::sleep(Duration::from_millis(1));
                    break;
                }
            }
        }
    }
}

/// The UDP client: request–reply round trips for the configured duration.
pub fn udp_client(cfg: &ClientConfig) -> Summary {
    run_loops("udp", cfg, udp_loop)
}

/// Listens on every port of `ports` (all addresses) and serves each TCP connection: one
/// read of the request, a one-byte answer, close. `threads` acceptors per port. Calls
/// `ready` once every socket listens, then serves until the process ends.
pub fn tcp_server(ports: &[u16], threads: usize, ready: impl FnOnce()) -> io::Result<()> {
    let mut listeners = Vec::new();
    for &port in ports {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.bind(&SockAddr::from(SocketAddr::from(([0, 0, 0, 0], port))))?;
        // Deeper than std's 128, so a burst of SYNs from many loops is never dropped.
        sock.listen(4096)?;
        listeners.push(TcpListener::from(sock));
    }
    ready();
    thread::scope(|s| {
        for l in &listeners {
            for _ in 0..threads.max(1) {
                let l = l.try_clone()?;
                s.spawn(move || loop {
                    if let Ok((mut conn, _)) = l.accept() {
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 256];
                        if matches!(conn.read(&mut buf), Ok(n) if n > 0) {
                            let _ = conn.write_all(b"k");
                        }
                    }
                });
            }
        }
        Ok(())
    })
}

/// Listens on every UDP port of `ports` (all addresses) and echoes every datagram,
/// `threads` receivers per port. Calls `ready` once every socket is bound, then serves
/// until the process ends.
pub fn udp_server(ports: &[u16], threads: usize, ready: impl FnOnce()) -> io::Result<()> {
    let mut sockets = Vec::new();
    for &port in ports {
        sockets.push(UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port)))?);
    }
    ready();
    thread::scope(|s| {
        for sock in &sockets {
            for _ in 0..threads.max(1) {
                let sock = sock.try_clone()?;
                s.spawn(move || {
                    let mut buf = [0u8; 2048];
                    loop {
                        if let Ok((n, from)) = sock.recv_from(&mut buf) {
                            let _ = sock.send_to(&buf[..n], from);
                        }
                    }
                });
            }
        }
        Ok(())
    })
}

/// The ones' complement sum of `bytes` as big-endian 16-bit words (a last odd byte
/// padded with zero), added to `sum`, not yet folded or complemented: the Internet
/// checksum's core (RFC 1071), so a pseudo-header and a segment can be summed in parts.
pub fn ones_complement_add(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds the carries of a [`ones_complement_add`] sum into 16 bits.
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The sum of the IPv4 pseudo-header a TCP checksum covers (RFC 793): source,
/// destination, zero, protocol 6, the segment's length.
fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, len: u16) -> u32 {
    let mut ph = [0u8; 12];
    ph[..4].copy_from_slice(&src.octets());
    ph[4..8].copy_from_slice(&dst.octets());
    ph[9] = 6;
    ph[10..].copy_from_slice(&len.to_be_bytes());
    ones_complement_add(0, &ph)
}

/// A TCP SYN from `src:sport` to `dst:dport` with sequence number `seq`: a 20-byte
/// header without options (window 64240) and its checksum over the pseudo-header. A
/// receiver summing pseudo-header and segment gets 0xffff.
pub fn syn_segment(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, seq: u32) -> [u8; 20] {
    let mut seg = [0u8; 20];
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    seg[4..8].copy_from_slice(&seq.to_be_bytes());
    // Acknowledgment number 0; data offset 5 words, no options; flags: SYN only.
    seg[12] = 5 << 4;
    seg[13] = 0x02;
    seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let sum = ones_complement_add(pseudo_header_sum(src, dst, seg.len() as u16), &seg);
    seg[16..18].copy_from_slice(&(!fold(sum)).to_be_bytes());
    seg
}

/// What a SYN flood is told.
#[derive(Clone, Debug)]
pub struct FloodConfig {
    /// Where the SYNs go.
    pub target: SocketAddrV4,
    /// The source address (bound: the kernel's IP header carries it).
    pub bind: Ipv4Addr,
    /// How many SYNs to send.
    pub count: u64,
    /// SYNs per second to keep to; 0 for as fast as the socket takes them.
    pub rate: f64,
    /// The first source port; the next SYNs count up from it through 1024–65535 and
    /// wrap, so that consecutive floods (given other starts) do not repeat 5-tuples.
    pub first_port: u16,
}

/// What a SYN flood did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FloodSummary {
    /// SYNs the socket took.
    pub sent: u64,
    /// Wall time from the first send to the last, seconds.
    pub seconds: f64,
    /// `sent / seconds`.
    pub rate_per_s: f64,
    /// Sends retried because the socket had no room (ENOBUFS, EAGAIN).
    pub retries: u64,
}

/// The source ports a flood uses: 1024–65535 (below, ports are privileged: a listener
/// there could be real).
const FLOOD_PORTS: std::ops::RangeInclusive<u16> = 1024..=65535;

/// The `i`-th source port of a flood starting at `first`.
fn flood_port(first: u16, i: u64) -> u16 {
    let (lo, n) = (
        u64::from(*FLOOD_PORTS.start()),
        u64::from(*FLOOD_PORTS.end() - *FLOOD_PORTS.start()) + 1,
    );
    let start = u64::from(first.max(*FLOOD_PORTS.start())) - lo;
    (lo + (start + i) % n) as u16
}

/// Sends `count` SYNs from a raw socket bound to `bind`, each from the next source port
/// (see [`FloodConfig::first_port`]) with its own sequence number, at `rate` a second
/// (checked every 32 SYNs: bursts of at most 32) or as fast as possible. Nothing is read:
/// to a ruleset that drops them, each is a new connection attempt.
pub fn syn_flood(cfg: &FloodConfig) -> io::Result<FloodSummary> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP))?;
    sock.bind(&SockAddr::from(SocketAddrV4::new(cfg.bind, 0)))?;
    // The port in a raw socket's destination is ignored; the segment carries it.
    let to = SockAddr::from(SocketAddrV4::new(*cfg.target.ip(), 0));
    let mut out = FloodSummary::default();
    let start = Instant::now();
    for i in 0..cfg.count {
        if cfg.rate > 0.0 && i % 32 == 0 {
            let due = Duration::from_secs_f64(i as f64 / cfg.rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
        let seg = syn_segment(
            cfg.bind,
            *cfg.target.ip(),
            flood_port(cfg.first_port, i),
            cfg.target.port(),
            // Any value would do; a different one per SYN looks less like a retransmit.
            (i as u32).wrapping_mul(2_654_435_761),
        );
        loop {
            match sock.send_to(&seg, &to) {
                Ok(_) => break,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(105 /* ENOBUFS */) =>
                {
                    out.retries += 1;
                    thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
        out.sent += 1;
    }
    out.seconds = start.elapsed().as_secs_f64();
    out.rate_per_s = if out.seconds > 0.0 {
        out.sent as f64 / out.seconds
    } else {
        0.0
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! The statistics, and both clients against both servers in a network namespace of
    //! the test's own (a smoke test of the loops' logic; no numbers are asserted beyond
    //! "something completed").

    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 99.0), 0);
        assert_eq!(median(&[1, 2, 3, 10]), 2.5);
        assert_eq!(median(&[1, 5, 9]), 5.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn summary_merges_loops() {
        let loops = vec![
            LoopResult {
                count: 2,
                latencies_ns: vec![3000, 1000],
                timeouts: 1,
                errors: 0,
            },
            LoopResult {
                count: 1,
                latencies_ns: vec![2000],
                timeouts: 0,
                errors: 2,
            },
        ];
        let s = summarize("tcp", loops, Duration::from_secs(2));
        assert_eq!(s.count, 3);
        assert_eq!(s.samples, 3);
        assert_eq!((s.timeouts, s.errors), (1, 2));
        assert_eq!(s.rate_per_s, 1.5);
        assert_eq!(
            (s.median_us, s.min_us, s.max_us, s.mean_us),
            (2.0, 1.0, 3.0, 2.0)
        );
        assert_eq!(s.p99_us, 3.0);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Summary>(&json).unwrap(), s);
    }

    /// The address the socket tests use, on `lo` of their own network namespace.
    const LAB: [u8; 4] = [198, 18, 0, 1];
    const ENV: &str = "NETPOL_LOAD_TEST";
    const ENV_PARENT: &str = "NETPOL_LOAD_TEST_PARENT";

    /// Runs `body` in a fresh network namespace with 198.18.0.1 on `lo`: this test
    /// binary re-executes itself under `unshare --net`, filtered to the test. Without
    /// root it says why and passes without running.
    fn in_namespace(name: &str, body: impl FnOnce()) {
        use crate::harness::{check_unshare, own_namespace};
        if std::env::var(ENV).as_deref() == Ok(name) {
            assert_ne!(
                std::env::var(ENV_PARENT).unwrap_or_default(),
                own_namespace(),
                "refusing to open sockets in the namespace the test started in"
            );
            body();
            return;
        }
        if let Err(why) = check_unshare(&["true"]) {
            eprintln!("SKIPPED {name}: {why}");
            return;
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        let out = std::process::Command::new("unshare")
            .args(["--net", "--", "sh", "-c"])
            .arg("ip link set lo up && ip addr add 198.18.0.1/32 dev lo && exec \"$0\" \"$@\"")
            .arg(exe)
            .args([name, "--exact", "--test-threads=1"])
            .env(ENV, name)
            .env(ENV_PARENT, own_namespace())
            .output()
            .expect("running the test under unshare");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{name} failed in its network namespace:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A port that was free a moment ago (bound, then released for the server).
    fn free_port(udp: bool) -> u16 {
        if udp {
            UdpSocket::bind((Ipv4Addr::from(LAB), 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        } else {
            TcpListener::bind((Ipv4Addr::from(LAB), 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        }
    }

    fn start(udp: bool) -> u16 {
        let port = free_port(udp);
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let ready = move || tx.send(()).unwrap();
            if udp {
                udp_server(&[port], 1, ready)
            } else {
                tcp_server(&[port], 2, ready)
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("server ready");
        port
    }

    fn config(port: u16) -> ClientConfig {
        ClientConfig {
            target: SocketAddr::from((LAB, port)),
            bind: Some(IpAddr::from(LAB)),
            concurrency: 2,
            duration: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
            pace: Duration::ZERO,
        }
    }

    #[test]
    fn tcp_client_completes_connections_against_the_server() {
        in_namespace(
            "load::tests::tcp_client_completes_connections_against_the_server",
            || {
                let s = tcp_client(&config(start(false)));
                assert!(s.count > 0, "{s:?}");
                assert_eq!(s.samples, s.count);
                assert!(s.min_us <= s.median_us && s.median_us <= s.p99_us && s.p99_us <= s.max_us);
            },
        );
    }

    #[test]
    fn udp_client_gets_echoes_from_the_server() {
        in_namespace(
            "load::tests::udp_client_gets_echoes_from_the_server",
            || {
                let s = udp_client(&config(start(true)));
                assert!(s.count > 0, "{s:?}");
                assert_eq!(s.samples, s.count);
            },
        );
    }

    #[test]
    fn tcp_client_counts_refused_connections_as_errors() {
        in_namespace(
            "load::tests::tcp_client_counts_refused_connections_as_errors",
            || {
                // Nothing listens in this fresh namespace. Port 1 is below the
                // ephemeral range: a freed ephemeral port could be picked as a client's
                // own source port, and a TCP connection to itself succeeds.
                let s = tcp_client(&config(1));
                assert_eq!(s.count, 0);
                assert!(s.errors > 0, "{s:?}");
            },
        );
    }

    #[test]
    fn a_syn_is_the_known_packet() {
        // Computed independently (Python, RFC 1071 over pseudo-header + segment).
        let seg = syn_segment(
            Ipv4Addr::new(198, 18, 2, 11),
            Ipv4Addr::new(198, 18, 1, 10),
            40000,
            8080,
            0x1234_5678,
        );
        let want: [u8; 20] = [
            0x9c, 0x40, 0x1f, 0x90, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0,
            0x01, 0x3b, 0, 0,
        ];
        assert_eq!(seg, want);
    }

    #[test]
    fn a_syn_checksum_verifies_over_pseudo_header_and_segment() {
        let (src, dst) = (
            Ipv4Addr::new(198, 19, 255, 254),
            Ipv4Addr::new(198, 18, 0, 1),
        );
        for (sport, dport, seq) in [(1024, 1, 0), (65535, 65535, u32::MAX), (5555, 8080, 7)] {
            let seg = syn_segment(src, dst, sport, dport, seq);
            let sum = ones_complement_add(pseudo_header_sum(src, dst, 20), &seg);
            assert_eq!(fold(sum), 0xffff, "{sport} {dport} {seq}");
            assert_eq!(seg[13], 0x02, "SYN and nothing else");
            assert_eq!(seg[12] >> 4, 5, "20-byte header");
        }
        // An odd length is padded with a zero byte, as RFC 1071 says.
        assert_eq!(fold(ones_complement_add(0, &[0x12, 0x34, 0x56])), 0x6834);
        assert_eq!(fold(ones_complement_add(0xffff, &[0x00, 0x01])), 0x0001);
    }

    #[test]
    fn flood_ports_count_up_and_wrap_above_1023() {
        assert_eq!(flood_port(1024, 0), 1024);
        assert_eq!(flood_port(65535, 0), 65535);
        assert_eq!(flood_port(65535, 1), 1024);
        assert_eq!(flood_port(0, 0), 1024);
        assert_eq!(flood_port(2000, 64_512), 2000);
    }

    /// `Tcp: FIELD` of this namespace's /proc/net/snmp.
    fn tcp_stat(field: &str) -> u64 {
        let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap();
        let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
        let at = names.split_whitespace().position(|n| n == field).unwrap();
        values.split_whitespace().nth(at).unwrap().parse().unwrap()
    }

    #[test]
    fn syn_flood_segments_are_taken_as_syns_by_the_kernel() {
        in_namespace(
            "load::tests::syn_flood_segments_are_taken_as_syns_by_the_kernel",
            || {
                // A SYN to a closed port is answered with a reset: the kernel read the
                // header as a SYN (and found no checksum error).
                let (rsts, bad) = (tcp_stat("OutRsts"), tcp_stat("InCsumErrors"));
                let port = free_port(false);
                let cfg = FloodConfig {
                    target: SocketAddrV4::new(Ipv4Addr::from(LAB), port),
                    bind: Ipv4Addr::from(LAB),
                    count: 50,
                    rate: 0.0,
                    first_port: 40000,
                };
                let s = syn_flood(&cfg).unwrap();
                assert_eq!(s.sent, 50);
                assert!(tcp_stat("OutRsts") >= rsts + 50, "no reset for each SYN");
                assert_eq!(tcp_stat("InCsumErrors"), bad);
            },
        );
    }
}
