//! Hosts benchmark (issue 16, "Many hosts"): a fleet on one machine. N real `netpold`s
//! (default 50), each in a network namespace of its own with a local endpoint of its
//! own (`--local`), all watching ONE policy directory and ONE inventory directory (the
//! same files). After each edit of those files it measures how long until every host
//! has the new ruleset, and the CPU all netpolds spent on it.
//!
//! Setup, per input (`--sizes example,synth`):
//!
//! - **example**: a copy of `config/`; the locals are the example's endpoints, busiest
//!   first ([`netpol_benches::busiest_endpoints`]), repeated in that order when there
//!   are fewer than N, so several hosts share an endpoint.
//! - **synth**: the bytes of `netpol-synth --namespaces 1000 --endpoints 50000
//!   --policies 10000 --seed 1` (generated in process, as the `reload` benchmark does);
//!   the locals are the N busiest endpoints (distinct).
//! - Both: `bench-edit.yaml` in the policies directory holds one NetworkPolicy
//!   `bench-edit` per namespace of a local endpoint, allowing ingress on TCP 20000 to
//!   every pod of that namespace; it is there from the start.
//!
//! The benchmark makes namespaces `nphosts-PID-K` (`ip netns add`; checked to be another
//! namespace than its own before anything runs in them; removed by a guard when it ends,
//! panics or is interrupted), starts `netpold --policies DIR --inventory DIR --local
//! NS/NAME --debounce-ms 200 --metrics-address off` in each (`ip netns exec`), with its
//! own socket and `NETPOL_RUN_DIR`, `--start-batch` at a time (default 2), and waits for
//! each to answer `status` with generation 1 before starting the next batch. It opens a
//! [`netpol_nft::GenerationReader`] inside each namespace (a thread `setns`es into it
//! and opens the socket, which stays bound to that namespace).
//!
//! Each edit (`--edit policy,endpoint`, default both; `--edits` of each, default 20 for
//! the example and 5 for synth):
//!
//! - **policy**: `bench-edit.yaml` rewritten in place (`fs::write`) with the next port
//!   (20001, 20002, …): every host's local endpoint is selected, so every host's
//!   ruleset changes (the report counts the hosts whose ruleset did).
//! - **endpoint**: the inventory file rewritten in place with one peer's address
//!   changed and back, alternately (example: `web/checkout` 198.18.2.10 ↔ 198.18.2.20;
//!   synth: the peer of the busiest endpoint that `reload --edit endpoint` moves,
//!   [`netpol_benches::edits::find_edit`]). Only hosts whose ruleset names that peer
//!   change; every host still reads and compiles the inputs (their hash changed) and
//!   sends an empty update, which does not move the kernel's generation.
//!
//! Measured per edit:
//!
//! - **to kernel**: for each host whose ruleset changed, the time from just before the
//!   write until the last change of its namespace's ruleset generation (one thread
//!   polls all N generations, every 1 ms for the first 2 s, then every 10 ms, until
//!   every host's `status` shows the reload): a replace commits two transactions (new
//!   sets and chains, then the base chains switched to them), an update one, so the
//!   last change is when the whole new ruleset is in force. The commits seen are
//!   reported too.
//! - **applied**: for every host, `loaded_at` of its `status` (netpold's wall clock,
//!   to the millisecond, taken right after the apply, revocation and connectivity
//!   summary) minus the wall-clock time of the write: this covers the hosts whose
//!   kernel did not change too.
//! - **CPU**: utime + stime of every netpold (`/proc/PID/stat`), summed, after the
//!   edit minus before (10 ms ticks per process; it includes answering this
//!   benchmark's `status` requests, 1–3 per host for the example, about one a second
//!   while a host is still busy for synth).
//! - **reloads**: from each host's `status` — its generation must move by one, and its
//!   reload counts (applied, unchanged, failed, held) must grow by exactly one, checked
//!   after a quiet of the debounce + 300 ms and again before the next edit ("extra");
//!   `failed`/`held` are counted and reported; "no change" counts the hosts that
//!   applied an update of 0 elements (the reload happened, the ruleset is the same).
//!
//! Reported: a row per edit, then per input and kind the medians over edits of the
//! per-edit median and max over hosts (and the max of those max), "− debounce" (the
//! configured `--debounce-ms`, default 200), the CPU per edit (total and per host),
//! and each netpold's VmRSS / VmHWM (median and max over hosts, and the fleet's total
//! RSS) after start-up and after the edits. It measures; it asserts nothing about time.
//!
//! Run (root): `cargo bench -p netpol-benches --bench hosts`
//! Options after `--`: `--hosts N` (default 50), `--sizes example,synth` (default
//! both), `--edit policy,endpoint` (default both), `--edits N` (default 20 for the
//! example, 5 for synth), `--debounce-ms MS` (default 200), `--start-batch K` (default
//! 2), `--timeout-s S` (per edit, default 900), `--netpold /ABS/PATH` (skip the build),
//! `--keep DIR` (write the inputs and logs there and keep them), `--min-available-mib
//! MIB` (default 2048: the run stops, and removes its fleet, when the machine's
//! MemAvailable falls below it — every host reloads at once, and each netpold's peak
//! during a synth reload is a few hundred MiB).
#![deny(unsafe_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use netpol_benches::control::request;
use netpol_benches::edits::{find_edit, plan_for, EditKind};
use netpol_benches::harness::{
    absolute_path_arg, cpu_ticks, daemon_bin_or_skip, input_dir, ip, memory_kib, own_namespace, run,
};
use netpol_benches::netns::{example_model, fmt_num, median};
use netpol_benches::yaml::{inventory_yaml, policies_yaml};
use netpol_benches::{busiest_endpoints, generate, Scale};
use netpol_nft::GenerationReader;
use rules_compiler::resolve::Index;
use serde_json::Value;

/// The longest a netpold may take to start.
const START_PATIENCE: Duration = Duration::from_secs(600);
/// Clock ticks per second of utime and stime (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Set by SIGINT or SIGTERM: the wait loops panic, and the guards remove everything.
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

fn check_stop() {
    assert!(!STOP.load(Ordering::SeqCst), "interrupted");
    let available = mem_available_mib();
    let least = MIN_AVAILABLE_MIB.load(Ordering::SeqCst);
    assert!(
        available >= least,
        "the machine is short of memory ({available} MiB available, --min-available-mib \
         {least}): stopping the fleet before the kernel's OOM killer picks a process (fewer \
         --hosts, or a larger limit if the machine is yours)"
    );
}

/// The least MemAvailable the benchmark tolerates while its fleet runs (`--min-available-mib`).
static MIN_AVAILABLE_MIB: AtomicU64 = AtomicU64::new(2048);

/// MemAvailable from `/proc/meminfo`, in MiB.
fn mem_available_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kib| kib / 1024)
}

/// Sets its flag when dropped: the generation poller stops also when the status wait
/// panics (a scope waits for its threads, so a poller that never stopped would hang).
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Policy,
    Endpoint,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Policy => "policy",
            Kind::Endpoint => "endpoint",
        }
    }
}

struct Args {
    hosts: usize,
    sizes: Vec<String>,
    kinds: Vec<Kind>,
    edits: Option<usize>,
    debounce_ms: u64,
    start_batch: usize,
    timeout: Duration,
    netpold: Option<PathBuf>,
    keep: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        hosts: 50,
        sizes: vec!["example".into(), "synth".into()],
        kinds: vec![Kind::Policy, Kind::Endpoint],
        edits: None,
        debounce_ms: 200,
        start_batch: 2,
        timeout: Duration::from_secs(900),
        netpold: None,
        keep: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--hosts" => a.hosts = value().parse().expect("--hosts N"),
            "--sizes" => a.sizes = value().split(',').map(str::to_string).collect(),
            "--edit" => {
                a.kinds = value()
                    .split(',')
                    .map(|k| match k {
                        "policy" => Kind::Policy,
                        "endpoint" => Kind::Endpoint,
                        other => panic!("--edit policy,endpoint: not {other}"),
                    })
                    .collect();
            }
            "--edits" => a.edits = Some(value().parse().expect("--edits N")),
            "--debounce-ms" => a.debounce_ms = value().parse().expect("--debounce-ms MS"),
            "--start-batch" => a.start_batch = value().parse().expect("--start-batch K"),
            "--timeout-s" => {
                a.timeout = Duration::from_secs(value().parse().expect("--timeout-s S"));
            }
            "--netpold" => a.netpold = Some(absolute_path_arg("--netpold", value())),
            "--min-available-mib" => MIN_AVAILABLE_MIB.store(
                value().parse().expect("--min-available-mib MIB"),
                Ordering::SeqCst,
            ),
            "--keep" => a.keep = Some(absolute_path_arg("--keep", value())),
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(a.hosts >= 1, "--hosts must be at least 1");
    assert!(a.start_batch >= 1, "--start-batch must be at least 1");
    a
}

// ------------------------------------------------------------------------- inputs --

/// The inputs of one size, written under `dir/size`.
struct Input {
    policies: PathBuf,
    inventory: PathBuf,
    /// One local endpoint per host.
    locals: Vec<String>,
    /// The namespaces of the locals, each once: `bench-edit.yaml` has a policy in each.
    namespaces: Vec<String>,
    /// The endpoint edit: the file rewritten, its two versions, and what changes.
    edit_target: PathBuf,
    edit_a: String,
    edit_b: String,
    edit_what: String,
}

/// `bench-edit.yaml`: in each of `namespaces`, every pod accepts TCP `port` from
/// anywhere.
fn bench_edit(namespaces: &[String], port: u32) -> String {
    namespaces
        .iter()
        .map(|ns| {
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  \
                 namespace: {ns}\n  name: bench-edit\nspec:\n  podSelector: {{}}\n  \
                 policyTypes: [Ingress]\n  ingress:\n  - ports:\n    - protocol: TCP\n      \
                 port: {port}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn prepare(dir: &Path, size: &str, hosts: usize) -> Input {
    let base = dir.join(size);
    let (policies, inventory) = (base.join("policies"), base.join("inventory"));
    for d in [&policies, &inventory] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (locals, edit_target, edit_a, edit_b, edit_what) = match size {
        "example" => {
            let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
            for (from, to) in [("policies", &policies), ("inventory", &inventory)] {
                for f in std::fs::read_dir(config.join(from)).unwrap() {
                    let f = f.unwrap().path();
                    std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
                }
            }
            let model = example_model(&config);
            let index = Index::new(&model);
            let all: Vec<String> = busiest_endpoints(&index, usize::MAX)
                .into_iter()
                .map(|ep| index.endpoint(ep).id.to_string())
                .collect();
            let locals = all.iter().cycle().take(hosts).cloned().collect();
            let pods = std::fs::read_to_string(inventory.join("pods.yaml")).unwrap();
            let moved = pods.replace("198.18.2.10", "198.18.2.20");
            (
                locals,
                inventory.join("pods.yaml"),
                pods,
                moved,
                "web/checkout moved from 198.18.2.10 to 198.18.2.20".to_string(),
            )
        }
        "synth" => {
            let model = generate(&Scale::FULL, 1);
            let text = inventory_yaml(&model);
            std::fs::write(policies.join("policies.yaml"), policies_yaml(&model)).unwrap();
            std::fs::write(inventory.join("inventory.yaml"), &text).unwrap();
            let index = Index::new(&model);
            let ids = busiest_endpoints(&index, hosts);
            assert_eq!(ids.len(), hosts, "fewer endpoints than hosts");
            let locals: Vec<String> = ids
                .iter()
                .map(|&ep| index.endpoint(ep).id.to_string())
                .collect();
            let first = [index.endpoint(ids[0]).id.clone()];
            drop(index);
            // The same edit as `reload --edit endpoint`: a peer of the busiest endpoint.
            let base_plan = plan_for(&model, &first);
            let edit = find_edit(&model, &first, &base_plan, EditKind::MoveIp, 8, 40)
                .expect("a peer whose address change changes only set elements");
            (
                locals,
                inventory.join("inventory.yaml"),
                text,
                inventory_yaml(&edit.model),
                edit.what,
            )
        }
        other => panic!("unknown size {other} (example, synth)"),
    };
    let mut seen = BTreeSet::new();
    let namespaces: Vec<String> = locals
        .iter()
        .map(|l: &String| l.split('/').next().unwrap_or_default().to_string())
        .filter(|ns| seen.insert(ns.clone()))
        .collect();
    std::fs::write(
        policies.join("bench-edit.yaml"),
        bench_edit(&namespaces, 20_000),
    )
    .unwrap();
    Input {
        policies,
        inventory,
        locals,
        namespaces,
        edit_target,
        edit_a,
        edit_b,
        edit_what,
    }
}

// -------------------------------------------------------------------------- fleet --

/// One host: its namespace, its netpold, where its files are.
struct Host {
    ns: String,
    local: String,
    socket: PathBuf,
    log: PathBuf,
    pid: u32,
    startup: Duration,
}

/// The namespaces and the netpolds in them; all killed and removed on drop (also on a
/// panic or an interrupt, which the wait loops turn into a panic).
struct Fleet {
    namespaces: Vec<String>,
    children: Vec<Child>,
    hosts: Vec<Host>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// netpold's status as JSON, or `None` when it does not answer.
fn status(socket: &Path) -> Option<Value> {
    let answer = request(
        socket,
        &serde_json::json!({"request": "status"}),
        Duration::from_secs(60),
    )
    .ok()?;
    (answer.get("response")?.as_str()? == "status").then_some(answer)
}

fn generation(s: &Value) -> u64 {
    s["generation"].as_u64().unwrap_or(0)
}

/// applied + unchanged + failed + held.
fn reloads(s: &Value) -> u64 {
    ["applied", "unchanged", "failed", "held"]
        .iter()
        .map(|k| s["reloads"][k].as_u64().unwrap_or(0))
        .sum()
}

fn count(s: &Value, key: &str) -> u64 {
    s["reloads"][key].as_u64().unwrap_or(0)
}

fn tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Fleet {
    fn start(args: &Args, netpold: &Path, input: &Input, dir: &Path) -> Fleet {
        let mut fleet = Fleet {
            namespaces: Vec::new(),
            children: Vec::new(),
            hosts: Vec::new(),
        };
        let own = own_namespace();
        for k in 0..input.locals.len() {
            let ns = format!("nphosts-{}-{k}", std::process::id());
            // Recorded first, so that Drop removes a half-made one too.
            fleet.namespaces.push(ns.clone());
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let inside = run(Command::new("ip").args([
                "netns",
                "exec",
                &ns,
                "readlink",
                "/proc/self/ns/net",
            ]));
            assert_ne!(
                inside.trim(),
                own,
                "{ns} is the benchmark's own namespace: refusing to run netpold there"
            );
        }
        let runs = dir.join("hosts");
        let started_all = Instant::now();
        for batch in (0..input.locals.len())
            .collect::<Vec<_>>()
            .chunks(args.start_batch)
        {
            let mut starting = Vec::new();
            for &k in batch {
                let ns = fleet.namespaces[k].clone();
                let home = runs.join(format!("h{k}"));
                std::fs::create_dir_all(&home).unwrap();
                let socket = home.join("netpold.sock");
                let log = home.join("netpold.log");
                let started = Instant::now();
                let child = Command::new("ip")
                    .args(["netns", "exec", &ns])
                    .arg(netpold)
                    .arg("--policies")
                    .arg(&input.policies)
                    .arg("--inventory")
                    .arg(&input.inventory)
                    .args(["--local", &input.locals[k]])
                    .arg("--socket")
                    .arg(&socket)
                    .args(["--debounce-ms", &args.debounce_ms.to_string()])
                    .args(["--metrics-address", "off"])
                    .env("NETPOL_RUN_DIR", home.join("run"))
                    .env("NETPOLD_LOG", "info")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).unwrap())
                    .spawn()
                    .expect("starting netpold");
                // `ip netns exec` execs netpold: the pid is netpold's own.
                let pid = child.id();
                fleet.children.push(child);
                starting.push((k, ns, socket, log, pid, started));
            }
            for (k, ns, socket, log, pid, started) in starting {
                loop {
                    check_stop();
                    if status(&socket).is_some_and(|s| generation(&s) >= 1) {
                        break;
                    }
                    let exited = fleet.children[k].try_wait().unwrap().is_some();
                    if exited || started.elapsed() > START_PATIENCE {
                        panic!("netpold {k} ({ns}) did not start:\n{}", tail(&log));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                fleet.hosts.push(Host {
                    ns,
                    local: input.locals[k].clone(),
                    socket,
                    log,
                    pid,
                    startup: started.elapsed(),
                });
            }
        }
        eprintln!(
            "  {} netpolds up in {:.1} s ({} at a time)",
            fleet.hosts.len(),
            started_all.elapsed().as_secs_f64(),
            args.start_batch
        );
        fleet
    }
}

/// A [`GenerationReader`] opened inside network namespace `ns` (`/run/netns/NS`): a
/// thread enters the namespace and opens the netlink socket, which stays bound to that
/// namespace wherever it is read from afterwards.
fn reader_in(ns: &str) -> GenerationReader {
    let path = Path::new("/run/netns").join(ns);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("/run/netns/NS");
        enter(&file);
        // Only this thread is in the namespace; it ends here.
        GenerationReader::open().expect("netlink socket")
    })
    .join()
    .expect("opening a generation reader")
}

#[allow(unsafe_code)]
fn enter(ns: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a valid namespace descriptor changes this thread's network
    // namespace only; no memory is involved.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

// ------------------------------------------------------------------------ measure --

/// One host's part of one edit.
struct HostEdit {
    /// From the write to the last change of its kernel's generation, if it changed.
    to_kernel: Option<f64>,
    /// Changes of its kernel's generation seen (2 for a replace, 1 for an update).
    commits: u64,
    /// From the write to `loaded_at` (wall clock), if it applied.
    applied: Option<f64>,
    /// It applied an update of 0 elements: reloaded, same ruleset.
    no_change: bool,
    failed: bool,
    held: bool,
}

/// One edit over the fleet.
struct EditResult {
    hosts: Vec<HostEdit>,
    cpu_ms: f64,
    extra: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn wall_ms(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn fleet_cpu_ticks(fleet: &Fleet) -> u64 {
    fleet.hosts.iter().map(|h| cpu_ticks(h.pid)).sum()
}

/// Waits until every host answered `status` with its generation or its failed/held
/// counts moved past `before`; returns the answers.
fn wait_all(
    fleet: &Fleet,
    before: &[Value],
    t0: Instant,
    debounce: Duration,
    timeout: Duration,
    label: &str,
) -> Vec<Value> {
    let mut after: Vec<Option<Value>> = vec![None; fleet.hosts.len()];
    std::thread::sleep(debounce);
    loop {
        check_stop();
        for (k, h) in fleet.hosts.iter().enumerate() {
            if after[k].is_some() {
                continue;
            }
            check_stop();
            let Some(s) = status(&h.socket) else { continue };
            let b = &before[k];
            if generation(&s) > generation(b)
                || count(&s, "failed") > count(b, "failed")
                || count(&s, "held") > count(b, "held")
            {
                after[k] = Some(s);
            }
        }
        let pending = after.iter().filter(|a| a.is_none()).count();
        if pending == 0 {
            return after.into_iter().map(Option::unwrap).collect();
        }
        if t0.elapsed() > timeout {
            let k = after.iter().position(Option::is_none).unwrap();
            panic!(
                "{label}: {pending} hosts had not reloaded after {:?}; host {k} ({}):\n{}",
                timeout,
                fleet.hosts[k].ns,
                tail(&fleet.hosts[k].log)
            );
        }
        // Often at first, then about once a second: each status costs netpold a little.
        let every = (t0.elapsed() / 20).clamp(Duration::from_millis(50), Duration::from_secs(1));
        std::thread::sleep(every);
    }
}

/// Polls every reader until `done` is set (and once more after it), recording for each
/// host the time of the last change of its generation, in ns since `t0` (0: none), and
/// how many changes were seen: a replace commits two transactions (the new sets and
/// chains, then the base chains switched to them), an update one, so the new ruleset is
/// whole in the kernel at the last change.
fn poll_generations(
    readers: &mut [GenerationReader],
    base: &[u32],
    t0: Instant,
    last: &[AtomicU64],
    changes: &[AtomicU64],
    done: &AtomicBool,
) {
    let mut seen = base.to_vec();
    loop {
        let stop = done.load(Ordering::SeqCst);
        for (k, r) in readers.iter_mut().enumerate() {
            let g = r.read().expect("generation");
            if g != seen[k] {
                // Changes between two reads count as one: a lower bound.
                changes[k].fetch_add(1, Ordering::SeqCst);
                last[k].store(t0.elapsed().as_nanos().max(1) as u64, Ordering::SeqCst);
                seen[k] = g;
            }
        }
        if stop {
            return;
        }
        let every = if t0.elapsed() < Duration::from_secs(2) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        };
        std::thread::sleep(every);
    }
}

#[allow(clippy::too_many_arguments)]
fn one_edit(
    fleet: &Fleet,
    readers: &mut [GenerationReader],
    before: &[Value],
    file: &Path,
    text: &str,
    args: &Args,
    label: &str,
) -> (EditResult, Vec<Value>) {
    let base: Vec<u32> = readers
        .iter_mut()
        .map(|r| r.read().expect("generation"))
        .collect();
    let moved: Vec<AtomicU64> = (0..readers.len()).map(|_| AtomicU64::new(0)).collect();
    let changes: Vec<AtomicU64> = (0..readers.len()).map(|_| AtomicU64::new(0)).collect();
    let done = AtomicBool::new(false);
    let debounce = Duration::from_millis(args.debounce_ms);
    let cpu0 = fleet_cpu_ticks(fleet);
    let wall0 = wall_ms(SystemTime::now());
    let t0 = Instant::now();
    std::fs::write(file, text).unwrap();
    let after = std::thread::scope(|s| {
        let _stop_poller = SetOnDrop(&done);
        s.spawn(|| poll_generations(readers, &base, t0, &moved, &changes, &done));
        wait_all(fleet, before, t0, debounce, args.timeout, label)
    });
    // Anything more (a second reload) would come within the debounce and its reload.
    std::thread::sleep(debounce + Duration::from_millis(300));
    let cpu1 = fleet_cpu_ticks(fleet);
    let mut extra = 0;
    let mut settled = Vec::with_capacity(after.len());
    for (k, h) in fleet.hosts.iter().enumerate() {
        let s = status(&h.socket).unwrap_or_else(|| panic!("{label}: host {k} is gone"));
        extra += (reloads(&s) - reloads(&before[k])).saturating_sub(1);
        settled.push(s);
    }
    let hosts = after
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let b = &before[k];
            let applied = generation(s) > generation(b);
            let loaded_at = s["loaded_at"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok());
            let how = &s["loaded_how"];
            HostEdit {
                to_kernel: match moved[k].load(Ordering::SeqCst) {
                    0 => None,
                    ns => Some(ns as f64 / 1e6),
                },
                applied: loaded_at.filter(|_| applied).map(|t| wall_ms(t) - wall0),
                commits: changes[k].load(Ordering::SeqCst),
                no_change: applied && how["how"] == "updated" && how["elements"] == 0,
                failed: count(s, "failed") > count(b, "failed"),
                held: count(s, "held") > count(b, "held"),
            }
        })
        .collect();
    let result = EditResult {
        hosts,
        cpu_ms: (cpu1 - cpu0) as f64 / TICKS_PER_SECOND * 1000.0,
        extra,
    };
    (result, settled)
}

/// `median / max` of `v` in ms, or `–`.
fn med_max(v: &[f64]) -> String {
    if v.is_empty() {
        return "–".into();
    }
    format!("{:.0} / {:.0}", median(v.to_vec()), max(v))
}

fn memory_row(fleet: &Fleet) -> (Vec<f64>, Vec<f64>) {
    let mib = |k: u64| k as f64 / 1024.0;
    let m: Vec<(u64, u64)> = fleet.hosts.iter().map(|h| memory_kib(h.pid)).collect();
    (
        sorted(m.iter().map(|x| mib(x.0)).collect()),
        sorted(m.iter().map(|x| mib(x.1)).collect()),
    )
}

fn memory_text((rss, hwm): &(Vec<f64>, Vec<f64>)) -> String {
    format!(
        "{:.1} / {:.1} MiB; VmHWM {:.1} / {:.1} MiB; fleet RSS {:.0} MiB",
        median(rss.clone()),
        max(rss),
        median(hwm.clone()),
        max(hwm),
        rss.iter().sum::<f64>()
    )
}

struct Summary {
    line: String,
}

fn measure(args: &Args, netpold: &Path, dir: &Path, size: &str) -> Vec<Summary> {
    eprintln!("{size}: writing the inputs");
    let input = prepare(dir, size, args.hosts);
    let distinct: BTreeSet<&String> = input.locals.iter().collect();
    println!();
    println!(
        "### {size}: {} hosts, {} distinct local endpoints, {} namespaces in bench-edit.yaml",
        input.locals.len(),
        distinct.len(),
        input.namespaces.len()
    );
    println!();
    let fleet = Fleet::start(args, netpold, &input, dir);
    let startups = sorted(fleet.hosts.iter().map(|h| ms(h.startup)).collect());
    std::thread::sleep(Duration::from_millis(500));
    let mem_start = memory_row(&fleet);
    println!(
        "start-up per host (spawn → generation 1, {} at a time) median / max: {}; \
         after start-up VmRSS median / max {}",
        args.start_batch,
        med_max(&startups),
        memory_text(&mem_start)
    );
    let mut readers: Vec<GenerationReader> = fleet.hosts.iter().map(|h| reader_in(&h.ns)).collect();
    let mut before: Vec<Value> = fleet
        .hosts
        .iter()
        .map(|h| status(&h.socket).expect("status"))
        .collect();
    let edits = args.edits.unwrap_or(if size == "synth" { 5 } else { 20 });
    let mut summaries = Vec::new();
    let mut late_extra = 0;
    println!();
    println!("| input | edit | # | hosts changed | reloaded, no change | failed / held | kernel commits | to kernel, changed hosts: median / max | applied, all hosts: median / max | fleet CPU | extra |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &kind in &args.kinds {
        let mut results = Vec::new();
        for i in 1..=edits {
            check_stop();
            let (file, text) = match kind {
                Kind::Policy => (
                    input.policies.join("bench-edit.yaml"),
                    bench_edit(&input.namespaces, 20_000 + i as u32),
                ),
                Kind::Endpoint => (
                    input.edit_target.clone(),
                    if i % 2 == 1 {
                        input.edit_b.clone()
                    } else {
                        input.edit_a.clone()
                    },
                ),
            };
            // A reload since the last edit settled is an extra one, late.
            let now: Vec<Value> = fleet
                .hosts
                .iter()
                .map(|h| status(&h.socket).expect("status"))
                .collect();
            for (b, n) in before.iter().zip(&now) {
                late_extra += reloads(n) - reloads(b);
            }
            let label = format!("{size} {} edit {i}", kind.name());
            let (r, settled) = one_edit(&fleet, &mut readers, &now, &file, &text, args, &label);
            before = settled;
            let kernel: Vec<f64> = r.hosts.iter().filter_map(|h| h.to_kernel).collect();
            let applied: Vec<f64> = r.hosts.iter().filter_map(|h| h.applied).collect();
            println!(
                "| {size} | {} | {i} | {} | {} | {} / {} | {} | {} ms | {} ms | {:.0} ms | {} |",
                kind.name(),
                kernel.len(),
                r.hosts.iter().filter(|h| h.no_change).count(),
                r.hosts.iter().filter(|h| h.failed).count(),
                r.hosts.iter().filter(|h| h.held).count(),
                r.hosts.iter().map(|h| h.commits).sum::<u64>(),
                med_max(&kernel),
                med_max(&applied),
                r.cpu_ms,
                r.extra,
            );
            results.push(r);
        }
        summaries.push(summarize(args, size, kind, &results, fleet.hosts.len()));
    }
    // A reload after the last edit settled.
    std::thread::sleep(Duration::from_millis(args.debounce_ms + 300));
    for (h, b) in fleet.hosts.iter().zip(&before) {
        late_extra += reloads(&status(&h.socket).expect("status")) - reloads(b);
    }
    let mem_end = memory_row(&fleet);
    println!();
    println!(
        "after the edits: VmRSS median / max {}; late extra reloads (after an edit had settled): {late_extra}",
        memory_text(&mem_end)
    );
    let hosts_line: Vec<String> = distinct
        .iter()
        .map(|l| {
            let n = fleet.hosts.iter().filter(|h| &&h.local == l).count();
            format!("`{l}` ×{n}")
        })
        .collect();
    if distinct.len() < fleet.hosts.len() {
        println!("local endpoints: {}", hosts_line.join(", "));
    } else {
        println!(
            "local endpoints: {} distinct, the busiest first: `{}` …",
            distinct.len(),
            fleet.hosts[0].local
        );
    }
    println!("endpoint edit: {}", input.edit_what);
    for s in &mut summaries {
        s.line = s.line.replace(
            "MEM",
            &format!(
                "{:.1} / {:.1} MiB | {:.1} / {:.1} MiB",
                median(mem_start.0.clone()),
                max(&mem_start.1),
                median(mem_end.0.clone()),
                max(&mem_end.1)
            ),
        );
    }
    drop(readers);
    drop(fleet);
    summaries
}

fn summarize(args: &Args, size: &str, kind: Kind, results: &[EditResult], hosts: usize) -> Summary {
    let per_edit = |f: &dyn Fn(&EditResult) -> Vec<f64>| -> (Vec<f64>, Vec<f64>) {
        let v: Vec<Vec<f64>> = results.iter().map(f).filter(|v| !v.is_empty()).collect();
        (
            v.iter().map(|x| median(x.clone())).collect(),
            v.iter().map(|x| max(x)).collect(),
        )
    };
    let (k_med, k_max) = per_edit(&|r| r.hosts.iter().filter_map(|h| h.to_kernel).collect());
    let (a_med, a_max) = per_edit(&|r| r.hosts.iter().filter_map(|h| h.applied).collect());
    let d = args.debounce_ms as f64;
    let changed: Vec<f64> = results
        .iter()
        .map(|r| r.hosts.iter().filter(|h| h.to_kernel.is_some()).count() as f64)
        .collect();
    let cpu: Vec<f64> = results.iter().map(|r| r.cpu_ms).collect();
    let failed: usize = results
        .iter()
        .map(|r| r.hosts.iter().filter(|h| h.failed || h.held).count())
        .sum();
    let extra: u64 = results.iter().map(|r| r.extra).sum();
    Summary {
        line: format!(
            "| {size} | {} | {hosts} | {} | {} | {} ms | {} ms | **{} ms** | {} ms | {} ms | **{} ms** | {} ms | {:.0} ms ({:.1} ms per host) | {failed} | {extra} | MEM |",
            kind.name(),
            results.len(),
            fmt_num(median(changed), 0),
            fmt_num(median(k_med), 0),
            fmt_num(median(k_max.clone()), 0),
            fmt_num(median(k_max.clone()) - d, 0),
            fmt_num(max(&k_max), 0),
            fmt_num(median(a_med), 0),
            fmt_num(median(a_max.clone()), 0),
            fmt_num(max(&a_max), 0),
            median(cpu.clone()),
            median(cpu) / hosts as f64,
        ),
    }
}

fn main() {
    let args = parse_args();
    catch_signals();
    let Some(netpold) = daemon_bin_or_skip(args.netpold.as_deref(), "netpold") else {
        return;
    };
    let (dir, _temp) = input_dir(args.keep.as_deref(), "netpol-hosts-bench-");
    println!(
        "hosts benchmark: {} hosts, edits {:?} ({} each; default 20 example, 5 synth), \
         debounce {} ms, netpold {}",
        args.hosts,
        args.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        args.edits
            .map_or_else(|| "default".to_string(), |e| e.to_string()),
        args.debounce_ms,
        netpold.display()
    );
    let started = Instant::now();
    let mut summaries = Vec::new();
    for size in &args.sizes {
        let t = Instant::now();
        summaries.extend(measure(&args, &netpold, &dir, size));
        eprintln!("{size}: {:.0} s", t.elapsed().as_secs_f64());
    }
    println!();
    println!("### Summary (medians over edits; \"max\" is the max over hosts of one edit)");
    println!();
    println!("| input | edit | hosts | edits | hosts changed (median) | to kernel: median host | to kernel: median of max | median of max − debounce | to kernel: max of max | applied: median host | applied: median of max | applied: max of max | fleet CPU per edit | failed / held | extra | VmRSS after start-up median / VmHWM max | VmRSS after edits median / VmHWM max |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &summaries {
        println!("{}", s.line);
    }
    println!();
    println!("whole run: {:.0} s", started.elapsed().as_secs_f64());
}
