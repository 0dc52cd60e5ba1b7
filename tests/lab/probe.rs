//! Probes: real TCP connections and UDP round trips from one host's namespace to an
//! address of another, many at once.
//!
//! A ruleset that drops what it denies makes a denied TCP connection time out (or
//! fail at once with EPERM when the sender's own output hook drops it) and a denied
//! UDP datagram go unanswered; one that rejects answers TCP with a reset
//! (ECONNREFUSED) and UDP with an ICMP "administratively prohibited". Any other
//! failure (no route, …) is not a verdict of a ruleset but a broken lab, and is
//! reported as such.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use rules_compiler::model::Protocol;

use crate::net::enter;

/// How long a probe waits before it calls the flow dropped. Every allowed flow in the
/// lab crosses one bridge and answers in well under a millisecond.
pub const TIMEOUT: Duration = Duration::from_millis(300);

/// Probes in flight at once.
const WORKERS: usize = 64;

/// One flow to try.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    /// Index of the sending host (its namespace).
    pub from: usize,
    /// The sender's address: the only one of its family on the host, so the kernel
    /// picks it as the source; checked for TCP, bound for UDP.
    pub src: IpAddr,
    /// The receiver's address.
    pub dst: IpAddr,
    /// Destination port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

/// What the kernel did with one flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Connected (TCP) or echoed (UDP).
    Allowed,
    /// No answer within [`TIMEOUT`]: dropped on the way.
    TimedOut,
    /// Failed at once with EPERM: the sender's own output hook dropped it (a reject
    /// there drops it too).
    LocalDrop,
    /// An ICMP "administratively prohibited" came back: a reject (EHOSTUNREACH over
    /// IPv4, EACCES over IPv6).
    Rejected,
    /// ECONNREFUSED: a TCP reset, or an ICMP "port unreachable". After the baseline
    /// has found a listener for every flow, only a ruleset's `reject with tcp reset`.
    Reset,
    /// None of these: the lab is broken (no listener, no route, …).
    Broken(String),
}

/// Gives each UDP probe a source port of its own, so that no probe can match the
/// conntrack entry of an earlier one (an established UDP flow passes any policy).
/// Probed ports stay below [`FIRST_SOURCE_PORT`].
pub struct SourcePorts(AtomicU16);

/// The first UDP source port handed out (defined with the case format, which keeps
/// probed ports below it).
pub use crate::case::FIRST_SOURCE_PORT;

impl SourcePorts {
    /// Ports from [`FIRST_SOURCE_PORT`] up.
    pub fn new() -> SourcePorts {
        SourcePorts(AtomicU16::new(FIRST_SOURCE_PORT))
    }

    fn next(&self) -> u16 {
        let p = self.0.fetch_add(1, Ordering::Relaxed);
        assert!(p < u16::MAX, "the lab ran out of UDP source ports");
        p
    }
}

/// The outcome an error stands for, if it stands for a verdict of a ruleset.
fn verdict_of(e: &io::Error) -> Option<Outcome> {
    match e.raw_os_error() {
        Some(libc::EPERM) => Some(Outcome::LocalDrop),
        Some(libc::EHOSTUNREACH | libc::EACCES) => Some(Outcome::Rejected),
        Some(libc::ECONNREFUSED) => Some(Outcome::Reset),
        _ if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Some(Outcome::TimedOut)
        }
        _ => None,
    }
}

fn tcp(job: &Job) -> Outcome {
    match TcpStream::connect_timeout(&SocketAddr::new(job.dst, job.port), TIMEOUT) {
        Ok(stream) => match stream.local_addr() {
            Ok(local) if local.ip() == job.src => Outcome::Allowed,
            Ok(local) => Outcome::Broken(format!(
                "connected from {}, not from {}",
                local.ip(),
                job.src
            )),
            Err(e) => Outcome::Broken(format!("local address: {e}")),
        },
        Err(e) => verdict_of(&e).unwrap_or_else(|| Outcome::Broken(format!("connect: {e}"))),
    }
}

fn udp(job: &Job, ports: &SourcePorts) -> Outcome {
    let src = SocketAddr::new(job.src, ports.next());
    let dst = SocketAddr::new(job.dst, job.port);
    let socket = match UdpSocket::bind(src) {
        Ok(s) => s,
        Err(e) => return Outcome::Broken(format!("bind {src}: {e}")),
    };
    // Connected, so that an ICMP error (no listener) comes back as an error.
    if let Err(e) = socket.connect(dst) {
        return Outcome::Broken(format!("connect {dst}: {e}"));
    }
    let token = format!("netpol-lab {src} {dst}");
    match socket.send(token.as_bytes()) {
        Ok(_) => {}
        Err(e) => return verdict_of(&e).unwrap_or_else(|| Outcome::Broken(format!("send: {e}"))),
    }
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::TimedOut;
        }
        socket
            .set_read_timeout(Some(left))
            .expect("a non-zero read timeout");
        match socket.recv(&mut buf) {
            Ok(n) if &buf[..n] == token.as_bytes() => return Outcome::Allowed,
            Ok(_) => continue,
            Err(e) => {
                return verdict_of(&e).unwrap_or_else(|| Outcome::Broken(format!("receive: {e}")))
            }
        }
    }
}

/// Runs every job from its sender's namespace (`hosts[job.from]`), [`WORKERS`] at a
/// time, and returns the outcomes in the order of `jobs`.
pub fn run(hosts: &[&File], jobs: &[Job], ports: &SourcePorts) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; jobs.len()]);
    thread::scope(|scope| {
        for _ in 0..WORKERS.min(jobs.len()) {
            scope.spawn(|| {
                // This thread only: it ends with the scope, in whatever namespace.
                let mut current = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let outcome = if current == Some(job.from) {
                        Ok(())
                    } else {
                        enter(hosts[job.from]).map(|()| current = Some(job.from))
                    }
                    .map_or_else(
                        |e| Outcome::Broken(format!("setns: {e}")),
                        |()| match job.protocol {
                            Protocol::Tcp => tcp(job),
                            Protocol::Udp => udp(job, ports),
                            Protocol::Sctp => Outcome::Broken("SCTP is never probed".into()),
                        },
                    );
                    results.lock().unwrap()[i] = Some(outcome);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|o| o.expect("every job ran"))
        .collect()
}
