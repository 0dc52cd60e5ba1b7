//! The lab's network: one namespace per endpoint, each joined by a veth pair to a
//! bridge that lives in a namespace of its own, so nothing is added to the namespace
//! the test runs in. Every namespace is deleted on drop, after the listeners that hold
//! sockets in it are stopped (a socket keeps its namespace alive).

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the links of a new network may take to come up.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(20);

/// Moves the calling thread, and only it, into the network namespace `ns`. Sockets
/// it creates afterwards belong to that namespace for their whole life.
pub fn enter(ns: &File) -> io::Result<()> {
    // With CLONE_NEWNET, setns changes the network namespace of the calling thread only.
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// Runs a command and fails with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {} {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// A named network namespace (`ip netns`), deleted on drop.
pub struct Netns {
    /// `npl-<pid>-<n>`: unique on this machine while this process lives.
    pub name: String,
    file: Option<File>,
}

impl Netns {
    /// A fresh namespace with a unique name.
    pub fn create() -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "npl-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        // From here on, drop deletes it, also if opening it fails.
        let mut ns = Netns { name, file: None };
        let path = Path::new("/var/run/netns").join(&ns.name);
        ns.file = Some(File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        ns
    }

    /// The namespace's handle, for [`enter`].
    pub fn file(&self) -> &File {
        self.file.as_ref().expect("opened in create")
    }

    /// `ip -n NAME args…`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        run(Command::new("ip").args(["-n", &self.name]).args(args));
    }

    /// The links of this namespace whose operational state is up.
    fn links_up(&self) -> Vec<String> {
        let out = run(Command::new("ip").args(["-n", &self.name, "-o", "link", "show", "up"]));
        // `2: eth0@if5: <BROADCAST,…,UP,LOWER_UP> mtu 1500 … state UP …`
        text(&out.stdout)
            .lines()
            .filter(|l| l.contains(" state UP "))
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|name| {
                let name = name.trim_end_matches(':');
                name.split_once('@').map_or(name, |(n, _)| n).to_string()
            })
            .collect()
    }

    /// `ip netns exec NAME program args…`; the caller judges the outcome.
    pub fn exec(&self, program: &Path, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ip netns exec {}: {e}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.file = None;
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "lab: could not delete namespace {}: {}",
                self.name,
                text(&o.stderr)
            ),
            Err(e) => eprintln!("lab: could not delete namespace {}: {e}", self.name),
        }
    }
}

/// Every namespace name `ip netns list` shows.
pub fn listed_namespaces() -> Vec<String> {
    let out = run(Command::new("ip").args(["netns", "list"]));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The on-link prefix every endpoint gets its address with, so that all test
/// addresses are one hop apart on the bridge whatever /24 or /64 they come from.
fn on_link_prefix(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 15,
        IpAddr::V6(_) => 32,
    }
}

/// Whether `ip` is in the test ranges 198.18.0.0/15 or 2001:db8::/32.
pub fn is_test_address(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 198 && (o[1] == 18 || o[1] == 19)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            s[0] == 0x2001 && s[1] == 0x0db8
        }
    }
}

/// The namespaces of one case: a bridge and one host per endpoint.
pub struct Network {
    /// One namespace per endpoint, in the inventory's (sorted) order. Declared before
    /// the bridge so they go first: their veth ends take the bridge ports with them.
    pub hosts: Vec<Netns>,
    bridge: Netns,
}

impl Network {
    /// Builds the network: `addresses[k]` are endpoint k's addresses, all from the
    /// test ranges. Each host has lo and `eth0` up, its addresses on `eth0` (IPv6
    /// without duplicate address detection, so they are usable at once).
    pub fn build(addresses: &[Vec<IpAddr>]) -> Network {
        let bridge = Netns::create();
        bridge.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        bridge.ip(&["link", "set", "br0", "up"]);
        let mut net = Network {
            hosts: Vec::new(),
            bridge,
        };
        for (k, ips) in addresses.iter().enumerate() {
            let host = Netns::create();
            let port = format!("p{k}");
            host.ip(&[
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &net.bridge.name,
            ]);
            net.hosts.push(host);
            let host = &net.hosts[k];
            for ip in ips {
                assert!(is_test_address(ip), "{ip} is not a test address");
                let cidr = format!("{ip}/{}", on_link_prefix(ip));
                let mut args = vec!["addr", "add", cidr.as_str(), "dev", "eth0"];
                if ip.is_ipv6() {
                    args.push("nodad");
                }
                host.ip(&args);
            }
            host.ip(&["link", "set", "lo", "up"]);
            host.ip(&["link", "set", "eth0", "up"]);
            net.bridge
                .ip(&["link", "set", &port, "master", "br0", "up"]);
        }
        net.wait_until_up();
        net
    }

    /// Waits until every link of the network is operationally up. The kernel turns a
    /// link on (its queue included) asynchronously, and when many namespaces are made
    /// at once that can take a second or more; packets sent before are lost.
    fn wait_until_up(&self) {
        let ports: Vec<String> = (0..self.hosts.len()).map(|k| format!("p{k}")).collect();
        let mut waiting: Vec<(&Netns, Vec<String>)> = self
            .hosts
            .iter()
            .map(|h| (h, vec!["eth0".to_string()]))
            .chain([(&self.bridge, [vec!["br0".to_string()], ports].concat())])
            .collect();
        let deadline = Instant::now() + LINK_UP_TIMEOUT;
        loop {
            waiting.retain_mut(|(ns, links)| {
                let up = ns.links_up();
                links.retain(|l| !up.contains(l));
                !links.is_empty()
            });
            if waiting.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "links still not up after {LINK_UP_TIMEOUT:?}: {:?}",
                waiting
                    .iter()
                    .map(|(ns, links)| format!("{}: {}", ns.name, links.join(" ")))
                    .collect::<Vec<_>>()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The names of every namespace of this network.
    pub fn names(&self) -> Vec<String> {
        self.hosts
            .iter()
            .chain([&self.bridge])
            .map(|n| n.name.clone())
            .collect()
    }
}

/// TCP and UDP listeners in one host, on each of its addresses; UDP echoes what it
/// receives, TCP accepts and closes. Stopped (and its sockets closed) on drop.
pub struct Listeners {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listeners {
    /// Binds every `ips × tcp` and `ips × udp` inside `ns`, then serves them from a
    /// thread of its own until dropped.
    pub fn start(ns: &Netns, ips: &[IpAddr], tcp: &[u16], udp: &[u16]) -> Listeners {
        let file = ns.file().try_clone().expect("dup of the namespace handle");
        let (ips, tcp, udp) = (ips.to_vec(), tcp.to_vec(), udp.to_vec());
        let name = ns.name.clone();
        // Bind from a thread that enters the namespace and then ends, so that no
        // thread outlives its purpose inside a namespace that is about to go.
        let bound = thread::spawn(move || -> io::Result<(Vec<TcpListener>, Vec<UdpSocket>)> {
            enter(&file)?;
            let mut listeners = Vec::new();
            let mut sockets = Vec::new();
            for ip in &ips {
                for &p in &tcp {
                    listeners.push(TcpListener::bind(SocketAddr::new(*ip, p))?);
                }
                for &p in &udp {
                    sockets.push(UdpSocket::bind(SocketAddr::new(*ip, p))?);
                }
            }
            Ok((listeners, sockets))
        })
        .join()
        .expect("the binding thread does not panic");
        let (listeners, sockets) =
            bound.unwrap_or_else(|e| panic!("listeners in namespace {name}: {e}"));
        for l in &listeners {
            l.set_nonblocking(true).expect("nonblocking listener");
        }
        for s in &sockets {
            s.set_nonblocking(true).expect("nonblocking socket");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                for l in &listeners {
                    while let Ok((conn, _)) = l.accept() {
                        drop(conn);
                    }
                }
                for s in &sockets {
                    while let Ok((n, from)) = s.recv_from(&mut buf) {
                        let _ = s.send_to(&buf[..n], from);
                    }
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
        Listeners {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
