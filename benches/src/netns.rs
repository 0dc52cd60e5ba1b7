//! The data-plane benchmarks' lab (`dataplane`, `events`): pairs of throwaway network
//! namespaces, a client and a server one, joined by a veth pair; the processes started
//! in them; and `netpol-load` runs from a client namespace. Everything the lab makes is
//! removed when it drops, also when a benchmark panics (the benchmarks turn Ctrl-C into
//! a panic that unwinds through it).
//!
//! It must never touch the namespace it runs in: every pair is checked to be another
//! namespace than the benchmark's own before anything is loaded into it, and the
//! addresses given to it are the caller's (the benchmarks use only 198.18.0.0/15).

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rules_compiler::load::Input;
use rules_compiler::model::Model;

use crate::harness::{ip, own_namespace, run, TempDir};
use crate::load::Summary;

/// The baseline ruleset of the data-plane benchmarks: what any stateful filter pays
/// before its first rule (conntrack on every packet, an entry per connection), nothing
/// dropped but invalid packets. NetworkPolicy needs conntrack: replies pass as
/// established.
pub const CONNTRACK_RULESET: &str = "table inet conntrack {\n  chain input {\n    \
    type filter hook input priority 0; policy accept;\n    \
    ct state established,related accept\n    ct state invalid drop\n  }\n}\n";

/// The bundled example's inputs, loaded like netpolctl loads them.
pub fn example_model(config: &Path) -> Model {
    let read_dir = |d: &str| -> Vec<Input> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(config.join(d))
            .expect("config/")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|path| Input {
                text: std::fs::read_to_string(&path).expect("a YAML file").into(),
                path,
            })
            .collect()
    };
    rules_compiler::load_model(&read_dir("policies"), &read_dir("inventory"))
        .expect("the bundled example is valid")
        .model
}

/// `ip netns exec NS [taskset -c CPU] PROGRAM`. Both `ip netns exec` and `taskset` exec
/// what follows them, so the child's pid is the program's own.
pub fn exec(ns: &str, cpu: Option<usize>, program: &Path) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]);
    if let Some(cpu) = cpu {
        c.args(["taskset", "-c", &cpu.to_string()]);
    }
    c.arg(program);
    c
}

/// The namespace pairs, the processes started in them and the benchmark's temporary
/// directory; all removed on drop.
pub struct Lab {
    /// The namespaces' name prefix (`PREFIX-PID-K-c`, `PREFIX-PID-K-s`).
    prefix: String,
    /// (client, server) namespace names, by pair.
    pairs: Vec<(String, String)>,
    children: Vec<Child>,
    /// The inputs' directory unless kept: removed last, once the processes are gone.
    _temp: Option<TempDir>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (client, server) in &self.pairs {
            for ns in [client, server] {
                let _ = Command::new("ip")
                    .args(["netns", "del", ns])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // `_temp` is removed after this, when the fields drop.
    }
}

impl Lab {
    /// An empty lab whose namespaces will be named `PREFIX-PID-K-c` / `-s` (unique on
    /// the host: the pid). `temp` is removed when the lab drops, after its processes.
    pub fn new(prefix: &str, temp: Option<TempDir>) -> Lab {
        Lab {
            prefix: prefix.to_string(),
            pairs: Vec::new(),
            children: Vec::new(),
            _temp: temp,
        }
    }

    /// Namespaces `PREFIX-PID-K-c` and `PREFIX-PID-K-s` joined by a veth pair (`eth0`
    /// on both sides), both links up; returns K (pairs are numbered from 0).
    pub fn add_pair(&mut self) -> usize {
        let (pid, k) = (std::process::id(), self.pairs.len());
        let client = format!("{}-{pid}-{k}-c", self.prefix);
        let server = format!("{}-{pid}-{k}-s", self.prefix);
        // Recorded first, so that Drop removes a half-made pair too.
        self.pairs.push((client.clone(), server.clone()));
        ip(&["netns", "add", &client]);
        ip(&["netns", "add", &server]);
        ip(&[
            "-n", &client, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &server,
        ]);
        for ns in [&client, &server] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
        }
        let inside = run(Command::new("ip").args([
            "netns",
            "exec",
            &server,
            "readlink",
            "/proc/self/ns/net",
        ]));
        assert_ne!(
            inside.trim(),
            own_namespace(),
            "the server namespace is the benchmark's own: refusing to load rulesets"
        );
        k
    }

    /// Pair `k`'s client namespace.
    pub fn client(&self, k: usize) -> &str {
        &self.pairs[k].0
    }

    /// Pair `k`'s server namespace.
    pub fn server(&self, k: usize) -> &str {
        &self.pairs[k].1
    }

    /// Adds `addrs` (as /15s, on `eth0`) to namespace `ns` of the lab.
    pub fn address(&self, ns: &str, addrs: &[Ipv4Addr]) {
        assert!(
            self.pairs.iter().any(|(c, s)| c == ns || s == ns),
            "{ns} is not a namespace of the lab"
        );
        for a in addrs {
            ip(&["-n", ns, "addr", "add", &format!("{a}/15"), "dev", "eth0"]);
        }
    }

    /// Starts a server that prints `ready` when it listens, and waits for that line.
    pub fn start_server(&mut self, mut cmd: Command) {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("the server's stdout"))
            .read_line(&mut line)
            .expect("reading the server's stdout");
        self.children.push(child);
        assert_eq!(line.trim(), "ready", "{cmd:?} did not start");
    }

    /// Keeps `cpu` from ever going idle with a spinner of the idle scheduling class
    /// (`chrt --idle 0`: it runs only when nothing else wants the CPU, so it takes no
    /// time from what is measured). Why: in a VM, waking a halted virtual CPU costs
    /// microseconds per wake-up, which a connection loop pays twice per connection; a
    /// flood that keeps a CPU busy would then make allowed connections faster, not
    /// slower. With both CPUs spinning, every case meets the same awake CPUs.
    pub fn keep_busy(&mut self, cpu: usize) {
        let mut c = Command::new("chrt");
        c.args(["--idle", "0", "taskset", "-c", &cpu.to_string()])
            .args(["sh", "-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        self.spawn(c);
    }

    /// Starts `cmd` as it is set up (a daemon the caller waits for itself); the lab
    /// kills it when it drops. Returns its pid.
    pub fn spawn(&mut self, mut cmd: Command) -> u32 {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }
}

/// One `netpol-load` client run from namespace `ns`.
#[derive(Clone, Copy, Debug)]
pub struct LoadRun<'a> {
    /// The `netpol-load` binary.
    pub load: &'a Path,
    /// The CPU to pin the client to, if any.
    pub cpu: Option<usize>,
    /// `tcp` or `udp`.
    pub mode: &'a str,
    /// The source address to bind.
    pub from: Ipv4Addr,
    /// The server's address.
    pub to: Ipv4Addr,
    /// The server's port.
    pub port: u16,
    /// Concurrent loops.
    pub concurrency: usize,
    /// How long to keep starting attempts.
    pub seconds: f64,
    /// How long one attempt may take, in milliseconds.
    pub timeout_ms: u64,
}

impl LoadRun<'_> {
    /// Runs the client in namespace `ns` to its end and reads its summary.
    pub fn run(&self, ns: &str) -> Summary {
        let out = run(exec(ns, self.cpu, self.load)
            .arg(self.mode)
            .args(["--target", &format!("{}:{}", self.to, self.port)])
            .args(["--bind", &self.from.to_string()])
            .args(["--concurrency", &self.concurrency.to_string()])
            .args(["--duration", &self.seconds.to_string()])
            .args(["--timeout-ms", &self.timeout_ms.to_string()]));
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{out:?}: {e}"))
    }

    /// Whether one short try (one loop, 0.3 s, 300 ms timeout) gets through.
    pub fn passes(&self, ns: &str) -> bool {
        LoadRun {
            concurrency: 1,
            seconds: 0.3,
            timeout_ms: 300,
            ..*self
        }
        .run(ns)
        .count
            > 0
    }
}

/// The median of `v` (mean of the middle two for an even count); NaN for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `v` with `digits` decimals, or `–` for NaN (a column with no sample).
pub fn fmt_num(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_numbers() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
        assert_eq!(fmt_num(1.23456, 2), "1.23");
        assert_eq!(fmt_num(f64::NAN, 2), "–");
    }
}
