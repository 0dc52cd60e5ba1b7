//! Verdict-events benchmark (issue 13): what logging denied connections costs the
//! connections that are allowed, and what a flood of denied SYNs costs netpold.
//!
//! Three setups, each a client and a server network namespace joined by a veth pair,
//! the server (198.18.1.10, `payments/payments-api` of the bundled example `config/`)
//! running a `netpol-load` TCP server on 8080; the measured flow is `web/checkout`
//! (198.18.2.10) → 8080/TCP, which the example allows:
//!
//! - `conntrack`: only `ct state established,related accept; ct state invalid drop`
//!   (the floor any stateful filter pays);
//! - `example`: netpold in the server namespace, `--local payments/payments-api`, with
//!   `events: {enabled: false}` (no log rules, no NFLOG reader);
//! - `example-events`: the same netpold with verdict events on, as shipped (group 4713,
//!   50/s, burst 100, 10 s dedup window): its deny path has a `log group` statement
//!   behind the `netpol_events` limit, and netpold reads NFLOG.
//!
//! The setup checks with `nft list table inet netpol` that `example-events` has log
//! rules and `example` has none, and (before and after the rounds) that checkout gets
//! through everywhere while `web/frontend` (198.18.2.11, denied on 8080 by the example)
//! gets through only under `conntrack`.
//!
//! **Rounds** (`--rounds`, many short ones because the machine is shared): every round
//! runs five cases in an order that starts one case later each round: the three setups
//! without a flood, and `example` and `example-events` while `netpol-load syn-flood`
//! sends denied SYNs from frontend to payments-api:8080 at `--flood-rate` (each from
//! another source port: each a new connection to drop, and under `example-events` to
//! log or count). Each case is `netpol-load tcp` (`--concurrency` loops,
//! `--tcp-seconds`): new connections per second. Reported: medians over the rounds and
//! medians of per-round ratios (`example-events` / `example`: the issue expects ≥ 0.97;
//! each with a flood / without). After the five cases, each round also sends
//! `--full-speed-count` denied SYNs as fast as one CPU can to `example` and to
//! `example-events`: with veth, the sending CPU also runs the server namespace's input
//! path, so the SYNs a second measure the deny path's kernel cost with and without the
//! log statement and its limit.
//!
//! **Flood phase**: for `example` and `example-events`, netpold's CPU time (utime +
//! stime from `/proc/PID/stat`, and in ns from its threads' schedstat) and resident
//! memory over an interval with a flood of `--flood-count` SYNs and over an idle
//! interval of the same length (the flood's time plus the dedup window and a second,
//! so every event of the flood is reported in it), alternating which comes first; and,
//! from netpold's status (what `netpolctl status -o json` prints), how many events it
//! reported and how many packets the rate limit kept from it.
//!
//! Client loops are pinned to CPU 0; the servers, netpold and the flood generator to
//! CPU 1 (the "server host": a real host absorbs a flood on its own CPUs). Both CPUs
//! are kept awake by spinners of the idle scheduling class (`--no-spin` to not): in
//! this VM a halted CPU's wake-up costs so much that a flood keeping CPU 1 busy doubled
//! the allowed connection rate in a check by hand, which would hide the flood's cost.
//! It measures; it asserts nothing about time.
//!
//! It must not touch the host's network: namespaces `npev-PID-K-c` / `-s`, addresses
//! only from 198.18.0.0/15, rulesets and netpold only in server namespaces checked to
//! differ from the benchmark's own; the namespaces, their processes and the temporary
//! directory are removed when it ends, also on panic and Ctrl-C (a Drop guard).
//!
//! Run (root): `cargo bench -p netpol-benches --bench events`
//! Options after `--`: `--rounds N` (12), `--tcp-seconds S` (1), `--concurrency N` (8),
//! `--flood-rate R` (40000 SYNs/s), `--flood-count N` (100000), `--flood-reps N` (2),
//! `--full-speed-count N` (50000),
//! `--netpold PATH` (skip the build; netpolctl is taken from the same directory),
//! `--no-pin`, `--no-spin`, `--keep DIR` (keep the per-round JSON and netpold's logs there).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netpol_benches::control::request;
use netpol_benches::harness::{
    absolute_path_arg, cpu_ns, cpu_ticks, daemon_bin_or_skip, input_dir, memory_kib, run,
};
use netpol_benches::load::{FloodSummary, Summary};
use netpol_benches::netns::{
    example_model, exec, fmt_num, median, Lab, LoadRun, CONNTRACK_RULESET,
};
use rules_compiler::model::Direction;
use rules_compiler::resolve::Index;
use serde_json::Value;

#[path = "common/stop.rs"]
mod stop;

/// The example's payments-api, its allowed client (web/checkout), a denied one
/// (web/frontend), and the port; checked against the example's policies at start.
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const ALLOWED: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 10);
const DENIED: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 11);
const PORT: u16 = 8080;
const LOCAL: &str = "payments/payments-api";
/// netpold's default dedup window: an event is reported when its window ends.
const DEDUP_WINDOW: Duration = Duration::from_secs(10);
/// How long netpold may take to load the example.
const PATIENCE: Duration = Duration::from_secs(30);

/// Options (after `cargo bench … --`).
#[derive(clap::Parser, Debug)]
struct Args {
    /// Rounds of the five cases.
    #[arg(long, default_value_t = 12)]
    rounds: usize,
    /// Seconds of each case's `netpol-load tcp` run.
    #[arg(long, default_value_t = 1.0)]
    tcp_seconds: f64,
    /// Client loops of each run.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Denied SYNs a second of every flood but the full-speed ones.
    #[arg(long, default_value_t = 40_000.0, value_parser = positive)]
    flood_rate: f64,
    /// SYNs of each flood of the flood phase.
    #[arg(long, default_value_t = 100_000)]
    flood_count: u64,
    /// Repetitions of the flood phase (a flood and an idle interval per netpold setup).
    #[arg(long, default_value_t = 2)]
    flood_reps: usize,
    /// SYNs of each round's full-speed flood.
    #[arg(long, default_value_t = 50_000)]
    full_speed_count: u64,
    /// netpold to run instead of building it (absolute; netpolctl from its directory).
    #[arg(long, value_parser = absolute)]
    netpold: Option<PathBuf>,
    /// Do not pin clients and servers to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// Let the CPUs go idle (no idle-class spinner on the pinned CPUs).
    #[arg(long)]
    no_spin: bool,
    /// Keep the per-round JSON and netpold's logs in this directory.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Passed by `cargo bench` to targets without the test harness.
    #[arg(long, hide = true)]
    bench: bool,
}

fn positive(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x > 0.0 => Ok(x),
        _ => Err("a number > 0 (the rounds size their floods by it)".into()),
    }
}

fn absolute(v: &str) -> Result<PathBuf, String> {
    Ok(absolute_path_arg("--netpold", v.to_string()))
}

// ------------------------------------------------------------------------ the setups --

/// A setup: pair `k` of the lab, and netpold there if it runs one.
struct Setup {
    name: &'static str,
    k: usize,
    netpold: Option<Netpold>,
    /// What the server namespace's ruleset holds, for the report.
    holds: String,
}

/// A netpold in a server namespace: its pid (the lab kills it), control socket and log.
struct Netpold {
    pid: u32,
    socket: PathBuf,
    log: PathBuf,
}

impl Netpold {
    /// `netpold --local payments/payments-api` on the bundled example in `ns`, with
    /// `config` (a file of netpold's config keys) if given; returns once it has loaded.
    #[allow(clippy::too_many_arguments)]
    fn start(
        lab: &mut Lab,
        ns: &str,
        cpu: Option<usize>,
        netpold: &Path,
        repo_config: &Path,
        dir: &Path,
        name: &str,
        config: Option<&Path>,
    ) -> Netpold {
        let socket = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("netpold-{name}.log"));
        let mut c = exec(ns, cpu, netpold);
        c.arg("--policies")
            .arg(repo_config.join("policies"))
            .arg("--inventory")
            .arg(repo_config.join("inventory"))
            .args(["--local", LOCAL])
            .arg("--socket")
            .arg(&socket);
        if let Some(config) = config {
            c.arg("--config").arg(config);
        }
        // netpold's default log level (info: every verdict event is a log line).
        c.env_remove("NETPOLD_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("netpold's log file"));
        let pid = lab.spawn(c);
        let started = Instant::now();
        while status(&socket).and_then(|s| s["generation"].as_u64()) < Some(1) {
            assert!(
                started.elapsed() < PATIENCE,
                "netpold ({name}) did not load the example:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Netpold { pid, socket, log }
    }

    /// The `events` object of `netpolctl status -o json` (null with events off).
    fn events(&self) -> Value {
        status(&self.socket).expect("netpold's status")["events"].clone()
    }
}

/// netpold's status answer over its control socket (what `netpolctl status -o json`
/// prints), or `None` when it does not answer yet.
fn status(socket: &Path) -> Option<Value> {
    let answer = request(
        socket,
        &serde_json::json!({"request": "status"}),
        Duration::from_secs(10),
    )
    .ok()?;
    (answer["response"] == "status").then_some(answer)
}

/// Clock ticks a second (`getconf CLK_TCK`; 100 on Linux everywhere in practice).
fn clock_ticks() -> f64 {
    run(Command::new("getconf").arg("CLK_TCK"))
        .trim()
        .parse()
        .expect("CLK_TCK")
}

/// The netpol table in `ns` as nft lists it.
fn netpol_table(ns: &str) -> String {
    run(Command::new("ip").args([
        "netns", "exec", ns, "nft", "list", "table", "inet", "netpol",
    ]))
}

/// Rules with a `log` statement in an `nft list` text.
fn log_rules(table: &str) -> usize {
    table
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == "log"))
        .count()
}

/// The example's addresses are what this benchmark assumes: checkout may reach
/// payments-api on 8080/TCP, frontend may not.
fn check_example(config: &Path) {
    let model = example_model(config);
    let index = Index::new(&model);
    let server = index
        .endpoint_at(&IpAddr::V4(SERVER))
        .expect("payments-api's address in config/");
    assert_eq!(index.endpoint(server).id.to_string(), LOCAL);
    let verdict = |from: Ipv4Addr| {
        index
            .verdict(server, Direction::Ingress, IpAddr::V4(from), 6, PORT)
            .is_allowed()
    };
    assert!(
        verdict(ALLOWED),
        "config/ no longer allows {ALLOWED} → {SERVER}:{PORT}"
    );
    assert!(
        !verdict(DENIED),
        "config/ no longer denies {DENIED} → {SERVER}:{PORT}"
    );
}

// ------------------------------------------------------------------------- measuring --

/// Starts `netpol-load syn-flood` of `count` SYNs from frontend in client namespace
/// `ns`, pinned to `cpu`.
fn start_flood(ns: &str, cpu: Option<usize>, load: &Path, count: u64, rate: f64) -> Child {
    exec(ns, cpu, load)
        .arg("syn-flood")
        .args(["--target", &format!("{SERVER}:{PORT}")])
        .args(["--bind", &DENIED.to_string()])
        .args(["--count", &count.to_string()])
        .args(["--rate", &rate.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting netpol-load syn-flood")
}

fn end_flood(child: Child) -> FloodSummary {
    let out = child.wait_with_output().expect("waiting for the flood");
    assert!(out.status.success(), "syn-flood failed");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// Sleeps `d` in short steps, so Ctrl-C is not ignored for long.
fn sleep(d: Duration) {
    let end = Instant::now() + d;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        assert!(!stop::stopped(), "interrupted: removing the lab");
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// One case of a round: a setup, with or without a flood.
#[derive(Clone, Copy)]
struct Case {
    setup: usize,
    flood: bool,
}

impl Case {
    fn name(&self, setups: &[Setup]) -> String {
        let s = setups[self.setup].name;
        if self.flood {
            format!("{s} + flood")
        } else {
            s.to_string()
        }
    }
}

/// One case's result in one round.
struct Sample {
    tcp: Summary,
    flood: Option<FloodSummary>,
}

/// netpold over one interval of the flood phase.
struct Interval {
    setup: &'static str,
    flood: Option<FloodSummary>,
    seconds: f64,
    cpu_s: f64,
    /// The same from the threads' schedstat, finer than the ticks' 10 ms.
    cpu_ms: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    rss_max_kib: u64,
    hwm_kib: u64,
    /// The status `events` counters' growth over the interval (None: events off).
    events: Option<BTreeMap<String, i64>>,
}

/// The growth of every numeric counter of a status `events` object.
fn events_delta(before: &Value, after: &Value) -> Option<BTreeMap<String, i64>> {
    let (Value::Object(b), Value::Object(a)) = (before, after) else {
        return None;
    };
    Some(
        a.iter()
            .filter_map(|(k, v)| {
                let (v, w) = (v.as_i64()?, b.get(k)?.as_i64()?);
                Some((k.clone(), v - w))
            })
            .collect(),
    )
}

/// `setup`'s netpold over an interval of `length`: with a flood of `count` SYNs at
/// `rate` (from client namespace `ns`) starting with it when `flood`, else idle.
#[allow(clippy::too_many_arguments)]
fn interval(
    setup: &Setup,
    ns: &str,
    cpu: Option<usize>,
    load: &Path,
    flood: bool,
    count: u64,
    rate: f64,
    length: Duration,
    ticks: f64,
) -> Interval {
    let n = setup.netpold.as_ref().expect("a netpold setup");
    let (rss_before, _) = memory_kib(n.pid);
    let events_before = n.events();
    let cpu_before = cpu_ticks(n.pid);
    let ns_before = cpu_ns(n.pid);
    let t0 = Instant::now();
    let mut child = flood.then(|| start_flood(ns, cpu, load, count, rate));
    let mut rss_max = rss_before;
    let mut sent = None;
    while t0.elapsed() < length {
        sleep(Duration::from_millis(100).min(length.saturating_sub(t0.elapsed())));
        rss_max = rss_max.max(memory_kib(n.pid).0);
        if child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
        {
            sent = child.take().map(end_flood);
        }
    }
    // A flood slower than the interval (it should not be) is waited for and counted.
    if let Some(c) = child.take() {
        eprintln!("  the flood outlasted the {length:?} interval");
        sent = Some(end_flood(c));
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu_after = cpu_ticks(n.pid);
    let ns_after = cpu_ns(n.pid);
    let (rss_after, hwm) = memory_kib(n.pid);
    let events_after = n.events();
    Interval {
        setup: setup.name,
        flood: sent,
        seconds,
        cpu_s: (cpu_after - cpu_before) as f64 / ticks,
        cpu_ms: ns_after.saturating_sub(ns_before) as f64 / 1e6,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_max_kib: rss_max,
        hwm_kib: hwm,
        events: events_delta(&events_before, &events_after),
    }
}

/// The first and third quartiles of `v` (medians of its lower and upper halves; the
/// middle value of an odd count in neither); NaN for fewer than two.
fn quartiles(mut v: Vec<f64>) -> (f64, f64) {
    if v.len() < 2 {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let half = v.len() / 2;
    (
        median(v[..half].to_vec()),
        median(v[v.len() - half..].to_vec()),
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let Some(netpold) = daemon_bin_or_skip(args.netpold.as_deref(), "netpold") else {
        return;
    };
    let netpolctl = netpold.with_file_name("netpolctl");
    let load = PathBuf::from(env!("CARGO_BIN_EXE_netpol-load"));
    let repo_config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    check_example(&repo_config);
    let (dir, temp) = input_dir(args.keep.as_deref(), "netpol-events-");
    let ticks = clock_ticks();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (client_cpu, server_cpu) = if !args.no_pin && cpus >= 2 {
        (Some(0), Some(1))
    } else {
        (None, None)
    };

    // --- the lab: three pairs, a server in each, the rulesets
    stop::catch_signals();
    let mut lab = Lab::new("npev", temp);
    if !args.no_spin {
        for cpu in client_cpu.into_iter().chain(server_cpu) {
            lab.keep_busy(cpu);
        }
    }
    let conntrack_file = dir.join("conntrack.nft");
    std::fs::write(&conntrack_file, CONNTRACK_RULESET).expect("writing the conntrack ruleset");
    let events_off = dir.join("events-off.yaml");
    std::fs::write(&events_off, "events: {enabled: false}\n").expect("writing a config");
    let mut setups: Vec<Setup> = Vec::new();
    for name in ["conntrack", "example", "example-events"] {
        let k = lab.add_pair();
        let (client, server) = (lab.client(k).to_string(), lab.server(k).to_string());
        lab.address(&client, &[ALLOWED, DENIED]);
        lab.address(&server, &[SERVER]);
        let mut cmd = exec(&server, server_cpu, &load);
        cmd.args(["tcp-server", "--port", &PORT.to_string()]);
        lab.start_server(cmd);
        let (netpold, holds) = match name {
            "conntrack" => {
                run(Command::new("ip")
                    .args(["netns", "exec", &server, "nft", "-f"])
                    .arg(&conntrack_file));
                (None, "nft: 2 rules, policy accept".to_string())
            }
            _ => {
                let config = (name == "example").then_some(events_off.as_path());
                let n = Netpold::start(
                    &mut lab,
                    &server,
                    server_cpu,
                    &netpold,
                    &repo_config,
                    &dir,
                    name,
                    config,
                );
                let table = netpol_table(&server);
                let logs = log_rules(&table);
                // The comparison is only worth something if the two differ in exactly
                // this: log rules behind the limit, and a reader of the group.
                match name {
                    "example" => assert_eq!(logs, 0, "example has log rules:\n{table}"),
                    _ => assert!(
                        logs > 0 && table.contains("netpol_events"),
                        "example-events has no log rules or no limit:\n{table}"
                    ),
                }
                let show = run(exec(&server, None, &netpolctl).arg("show"));
                let first = show.lines().next().unwrap_or_default();
                let holds = format!("netpold; {first}; {logs} rules with `log`");
                (Some(n), holds)
            }
        };
        setups.push(Setup {
            name,
            k,
            netpold,
            holds,
        });
    }
    let probe = |k: usize, from: Ipv4Addr| {
        LoadRun {
            load: &load,
            cpu: client_cpu,
            mode: "tcp",
            from,
            to: SERVER,
            port: PORT,
            concurrency: 1,
            seconds: 0.3,
            timeout_ms: 300,
        }
        .passes(lab.client(k))
    };
    let check = |when: &str| {
        for s in &setups {
            let ok = (0..5).any(|_| probe(s.k, ALLOWED));
            assert!(ok, "{} ({when}): checkout does not get through", s.name);
            let denied = probe(s.k, DENIED);
            assert_eq!(
                denied,
                s.name == "conntrack",
                "{} ({when}): frontend {}",
                s.name,
                if denied {
                    "gets through"
                } else {
                    "does not get through without a policy"
                }
            );
        }
    };
    check("before");
    println!(
        "events benchmark: {} rounds x 5 cases, TCP {} s x {} loops, floods at {} SYN/s; \
         flood phase: {} SYNs, {} repetitions; CPU {}",
        args.rounds,
        args.tcp_seconds,
        args.concurrency,
        args.flood_rate,
        args.flood_count,
        args.flood_reps,
        match (client_cpu, server_cpu) {
            (Some(c), Some(s)) => format!(
                "clients {c}, servers + netpold + flood {s}{}",
                if args.no_spin {
                    ""
                } else {
                    ", idle-class spinners on both"
                }
            ),
            _ => "not pinned".into(),
        }
    );
    for s in &setups {
        println!("  {:<15} {}", s.name, s.holds);
    }
    println!("  every setup enforces (checked before and after the rounds)");

    // --- the rounds
    let cases: Vec<Case> = vec![
        Case {
            setup: 0,
            flood: false,
        },
        Case {
            setup: 1,
            flood: false,
        },
        Case {
            setup: 2,
            flood: false,
        },
        Case {
            setup: 1,
            flood: true,
        },
        Case {
            setup: 2,
            flood: true,
        },
    ];
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let mut full_speed: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut log = String::new();
    for round in 0..args.rounds {
        for i in 0..cases.len() {
            assert!(!stop::stopped(), "interrupted: removing the lab");
            let case = cases[(round + i) % cases.len()];
            let s = &setups[case.setup];
            let client = lab.client(s.k);
            // The flood covers the whole TCP run: it starts first and lasts half a
            // second longer.
            let flood = case.flood.then(|| {
                let count = (args.flood_rate * (args.tcp_seconds + 0.6)) as u64;
                let c = start_flood(client, server_cpu, &load, count, args.flood_rate);
                std::thread::sleep(Duration::from_millis(100));
                c
            });
            let tcp = LoadRun {
                load: &load,
                cpu: client_cpu,
                mode: "tcp",
                from: ALLOWED,
                to: SERVER,
                port: PORT,
                concurrency: args.concurrency,
                seconds: args.tcp_seconds,
                timeout_ms: 1000,
            }
            .run(client);
            let flood = flood.map(end_flood);
            let name = case.name(&setups);
            eprintln!(
                "round {:2} {:<24} TCP {:7.0}/s (t/o {}, err {}){}",
                round + 1,
                name,
                tcp.rate_per_s,
                tcp.timeouts,
                tcp.errors,
                flood.as_ref().map_or(String::new(), |f| format!(
                    "  flood {} SYNs at {:.0}/s",
                    f.sent, f.rate_per_s
                ))
            );
            let _ = writeln!(
                log,
                "{{\"round\":{},\"case\":\"{name}\",\"tcp\":{},\"flood\":{}}}",
                round + 1,
                serde_json::to_string(&tcp).expect("JSON"),
                flood
                    .as_ref()
                    .map_or("null".into(), |f| serde_json::to_string(f).expect("JSON"))
            );
            samples.entry(name).or_default().push(Sample { tcp, flood });
        }
        // The deny path's own cost: denied SYNs as fast as one CPU sends them. The
        // sender's CPU also runs the server namespace's input path (veth delivers in
        // the sender's softirq), so fewer SYNs a second is more kernel time per SYN.
        for j in 0..2 {
            let s = &setups[1 + (round + j) % 2];
            let f = end_flood(start_flood(
                lab.client(s.k),
                server_cpu,
                &load,
                args.full_speed_count,
                0.0,
            ));
            eprintln!(
                "round {:2} {:<24} {} SYNs at full speed: {:.0}/s",
                round + 1,
                s.name,
                f.sent,
                f.rate_per_s
            );
            full_speed.entry(s.name).or_default().push(f.rate_per_s);
        }
    }
    check("after");

    // --- the flood phase: netpold over a flood and over an idle interval as long
    // The last round's events are reported within one dedup window: let them pass.
    sleep(DEDUP_WINDOW + Duration::from_secs(1));
    let length = Duration::from_secs_f64(args.flood_count as f64 / args.flood_rate)
        + DEDUP_WINDOW
        + Duration::from_secs(1);
    let mut intervals: Vec<Interval> = Vec::new();
    for rep in 0..args.flood_reps {
        for s in setups.iter().filter(|s| s.netpold.is_some()) {
            // Alternate which comes first, so a drift of the machine hits both alike.
            let order = if rep % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for flood in order {
                let iv = interval(
                    s,
                    lab.client(s.k),
                    server_cpu,
                    &load,
                    flood,
                    args.flood_count,
                    args.flood_rate,
                    length,
                    ticks,
                );
                eprintln!(
                    "flood phase {} {:<15} {:<5} netpold CPU {:.2} s ({:.1} ms), RSS {} -> {} MiB (max {}), events {:?}",
                    rep + 1,
                    s.name,
                    if flood { "flood" } else { "idle" },
                    iv.cpu_s,
                    iv.cpu_ms,
                    mib(iv.rss_before_kib),
                    mib(iv.rss_after_kib),
                    mib(iv.rss_max_kib),
                    iv.events
                );
                intervals.push(iv);
            }
        }
    }
    let _ = std::fs::write(dir.join("samples.jsonl"), &log);
    let warnings: Vec<String> = setups
        .iter()
        .filter_map(|s| s.netpold.as_ref())
        .map(|n| {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let count = |level: &str| text.lines().filter(|l| l.contains(level)).count();
            format!("{} warnings, {} errors", count(" WARN "), count(" ERROR "))
        })
        .collect();
    let keep_note = args.keep.as_ref().map(|_| {
        format!(
            "per-round samples and netpold's logs kept in {}",
            dir.display()
        )
    });
    drop(lab);

    // --- the tables
    // Per-round ratios: both cases of a round ran seconds apart, so what the shared
    // machine did in other rounds cancels.
    let ratios = |a: &str, b: &str| -> Vec<f64> {
        let (Some(x), Some(y)) = (samples.get(a), samples.get(b)) else {
            return Vec::new();
        };
        x.iter()
            .zip(y)
            .map(|(x, y)| x.tcp.rate_per_s / y.tcp.rate_per_s)
            .collect()
    };
    let ratio = |a: &str, b: &str| median(ratios(a, b));
    // The spread of the per-round ratios: the middle half of the rounds.
    let spread = |a: &str, b: &str| {
        let (q1, q3) = quartiles(ratios(a, b));
        format!(
            "{}, middle half of the rounds {}–{}",
            fmt_num(ratio(a, b), 3),
            fmt_num(q1, 3),
            fmt_num(q3, 3)
        )
    };
    println!();
    println!(
        "| case | new TCP conn/s ({} loops, median) | × conntrack | × example | × same setup without flood | flood SYN/s achieved (median) | timeouts / errors |",
        args.concurrency
    );
    println!("|---|---|---|---|---|---|---|");
    for case in &cases {
        let name = case.name(&setups);
        let Some(v) = samples.get(&name) else {
            continue;
        };
        let base = setups[case.setup].name;
        let faults = v
            .iter()
            .fold((0, 0), |(t, e), x| (t + x.tcp.timeouts, e + x.tcp.errors));
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} / {} |",
            fmt_num(median(v.iter().map(|x| x.tcp.rate_per_s).collect()), 0),
            fmt_num(ratio(&name, "conntrack"), 3),
            fmt_num(ratio(&name, "example"), 3),
            if case.flood {
                fmt_num(ratio(&name, base), 3)
            } else {
                "–".into()
            },
            fmt_num(
                median(
                    v.iter()
                        .filter_map(|x| x.flood.as_ref().map(|f| f.rate_per_s))
                        .collect()
                ),
                0
            ),
            faults.0,
            faults.1
        );
    }
    println!();
    println!(
        "per-round ratios, median: example-events / example {} (the issue expects ≥ 0.97); \
         with a flood each: {}; example + flood / example: {}; example-events + flood / \
         example-events: {}",
        spread("example-events", "example"),
        spread("example-events + flood", "example + flood"),
        spread("example + flood", "example"),
        spread("example-events + flood", "example-events"),
    );
    let fs = |name: &str| median(full_speed.get(name).cloned().unwrap_or_default());
    let fs_ratio = match (full_speed.get("example-events"), full_speed.get("example")) {
        (Some(a), Some(b)) => median(a.iter().zip(b).map(|(a, b)| a / b).collect()),
        _ => f64::NAN,
    };
    println!(
        "denied SYNs at full speed ({} a round, one CPU sending and running the server's input path): \
         example {}/s, example-events {}/s, per-round ratio {}",
        args.full_speed_count,
        fmt_num(fs("example"), 0),
        fmt_num(fs("example-events"), 0),
        fmt_num(fs_ratio, 3)
    );
    println!();
    println!(
        "| setup | interval | SYNs sent | in s | interval s | netpold CPU s (utime + stime) | netpold CPU ms (schedstat) | RSS before → after MiB | RSS max MiB | VmHWM MiB | events reported (deny) | deduplicated | lost: rate limit | lost: socket | lost: ring | unreadable |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for iv in &intervals {
        let ev = |k: &str| {
            iv.events
                .as_ref()
                .and_then(|e| e.get(k))
                .map_or("–".into(), |v| v.to_string())
        };
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.1} | {} → {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            iv.setup,
            if iv.flood.is_some() { "flood" } else { "idle" },
            iv.flood.as_ref().map_or("0".into(), |f| f.sent.to_string()),
            iv.flood
                .as_ref()
                .map_or("–".into(), |f| format!("{:.2}", f.seconds)),
            iv.seconds,
            iv.cpu_s,
            iv.cpu_ms,
            mib(iv.rss_before_kib),
            mib(iv.rss_after_kib),
            mib(iv.rss_max_kib),
            mib(iv.hwm_kib),
            ev("deny"),
            ev("deduplicated"),
            ev("lost_rate_limit"),
            ev("lost_socket"),
            ev("lost_ring"),
            ev("unreadable"),
        );
    }
    println!();
    println!(
        "netpold logs (example, example-events): {}",
        warnings.join("; ")
    );
    if let Some(note) = keep_note {
        println!("{note}");
    }
}
