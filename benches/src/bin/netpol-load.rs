//! `netpol-load`: the data-plane benchmark's load generator. Servers (`tcp-server`,
//! `udp-server`) listen on all addresses and answer; clients (`tcp`, `udp`) run
//! concurrent loops for a fixed time and print one JSON line of statistics
//! ([`netpol_benches::load::Summary`]). See [`netpol_benches::load`] for what one TCP
//! connection and one UDP round trip are. `syn-flood` sends bare SYNs from a raw socket
//! (root) and prints what it sent ([`netpol_benches::load::FloodSummary`]).
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use netpol_benches::load::{self, ClientConfig, FloodConfig};

/// TCP and UDP load between network namespaces.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Accept TCP connections: read the request, answer one byte, close.
    TcpServer(Server),
    /// Echo UDP datagrams.
    UdpServer(Server),
    /// Loops of connect (timed), request, answer, close with RST.
    Tcp(Client),
    /// Loops of datagram and echo (round trip timed) on one socket each.
    Udp(Client),
    /// Bare TCP SYNs from a raw socket, each from the next source port (root).
    SynFlood(Flood),
}

#[derive(Debug, clap::Args)]
struct Flood {
    /// Where the SYNs go, IPV4:PORT.
    #[arg(long)]
    target: SocketAddrV4,
    /// The source address (must be one of this namespace's).
    #[arg(long)]
    bind: Ipv4Addr,
    /// How many SYNs to send.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// SYNs per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// The first source port (1024-65535; the next SYNs count up from it and wrap).
    /// Default: from the clock, so that floods in a row use other 5-tuples.
    #[arg(long)]
    first_port: Option<u16>,
}

#[derive(Debug, clap::Args)]
struct Server {
    /// Port to listen on (repeat for several).
    #[arg(long = "port", required = true)]
    ports: Vec<u16>,
    /// Accepting (TCP) or receiving (UDP) threads per port.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

#[derive(Debug, clap::Args)]
struct Client {
    /// The server, ADDRESS:PORT.
    #[arg(long)]
    target: SocketAddr,
    /// Source address to bind.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Concurrent loops.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds to keep starting attempts (fractions allowed).
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Milliseconds one connect, answer or echo may take.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// TCP: milliseconds from one attempt's start to the next's at least, per loop
    /// (0: as fast as the loop goes).
    #[arg(long, default_value_t = 0.0)]
    pace_ms: f64,
}

impl Client {
    fn config(&self) -> ClientConfig {
        ClientConfig {
            target: self.target,
            bind: self.bind,
            concurrency: self.concurrency,
            duration: Duration::from_secs_f64(self.duration),
            timeout: Duration::from_millis(self.timeout_ms),
            pace: Duration::from_secs_f64(self.pace_ms / 1000.0),
        }
    }
}

/// Tells whoever started the server that it listens.
fn ready() {
    println!("ready");
    let _ = std::io::stdout().flush();
}

fn main() -> Result<()> {
    match Args::parse().mode {
        Mode::TcpServer(s) => load::tcp_server(&s.ports, s.threads, ready).context("tcp-server"),
        Mode::UdpServer(s) => load::udp_server(&s.ports, s.threads, ready).context("udp-server"),
        Mode::Tcp(c) => {
            println!("{}", serde_json::to_string(&load::tcp_client(&c.config()))?);
            Ok(())
        }
        Mode::Udp(c) => {
            println!("{}", serde_json::to_string(&load::udp_client(&c.config()))?);
            Ok(())
        }
        Mode::SynFlood(f) => {
            let first_port = f.first_port.unwrap_or_else(|| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                (nanos % 65536) as u16
            });
            let cfg = FloodConfig {
                target: f.target,
                bind: f.bind,
                count: f.count,
                rate: f.rate,
                first_port,
            };
            let sent = load::syn_flood(&cfg).context("syn-flood (needs root)")?;
            println!("{}", serde_json::to_string(&sent)?);
            Ok(())
        }
    }
}
