//! Incremental benchmark: the kernel time of an incremental update for a one-endpoint
//! change (an endpoint added, removed, relabelled, or given another address) against a
//! full replace of the table with the same new plan, on the synthetic input, and where
//! the rest of netpold's reload time goes.
//!
//! The benchmark re-executes itself under `unshare --net` (`--measure`); that child
//! refuses to run in the namespace the benchmark started in, so the host's ruleset is
//! never touched. In the fresh namespace it:
//!
//! 1. generates the synthetic input (`netpol-synth`'s generator, the same sizes and
//!    seed options) and plans it for its busiest endpoint (the one `netpol-synth`
//!    prints, which the reload benchmark also uses);
//! 2. finds one edit of each kind that changes the plan by set elements alone (a peer
//!    of the local endpoint: see [`netpol_benches::edits`]);
//! 3. loads the base plan with [`Netlink::apply`], then for `--rounds` rounds and each
//!    kind, interleaved (the order of the three rotates every round): an update to
//!    the edited plan and back, a replace with the edited plan and back by the backend
//!    that loaded the table (two transactions, as netpold replaces), and a replace by
//!    a fresh backend (one transaction), each timed after a pause of 60 ms (see
//!    `SETTLE`). The time is the kernel's (from sending the batch to its answer, as
//!    [`ApplyStats::kernel`], both transactions for a two-transaction replace), and
//!    separately encode + kernel;
//! 4. times netpold's whole pipeline for each edit, as netpold runs it: read + hash
//!    the files, parse + validate, index + plan, delta, kernel update.
//!
//! Reported: per kind, median, p99 (nearest rank) and max of each, the ratio of the
//! medians, the elements changed; the pipeline medians; the sizes of the table and of
//! the plan netpold keeps. It measures; it asserts nothing about time.
//!
//! Run (root): `cargo bench -p netpol-benches --bench incremental`
//! Options after `--`: `--endpoints N --policies N --namespaces N` (default 50000,
//! 10000, 1000), `--seed S` (1), `--rounds N` (15), `--pipeline-rounds N` (3).
#![deny(unsafe_code)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netpol_benches::edits::{find_edit, plan_bytes, plan_for, EditKind};
use netpol_benches::harness::{check_unshare, own_namespace, TempDir};
use netpol_benches::yaml::{inventory_yaml, policies_yaml};
use netpol_benches::{busiest_endpoint, generate, Scale};
use netpol_nft::{ApplyStats, Backend, Monitor, Netlink, News, Quiet, Update};
use rules_compiler::load;
use rules_compiler::plan::{self, Plan};
use rules_compiler::resolve::Index;
use sha2::{Digest, Sha256};

/// The namespace the benchmark started in, which `--measure` must not run in.
const ENV_PARENT: &str = "NETPOL_BENCH_PARENT_NS";

struct Args {
    measure: bool,
    scale: Scale,
    seed: u64,
    rounds: usize,
    pipeline_rounds: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        measure: false,
        scale: Scale::FULL,
        seed: 1,
        rounds: 15,
        pipeline_rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--measure" => a.measure = true,
            "--endpoints" => a.scale.endpoints = value().parse().expect("--endpoints N"),
            "--policies" => a.scale.policies = value().parse().expect("--policies N"),
            "--namespaces" => a.scale.namespaces = value().parse().expect("--namespaces N"),
            "--seed" => a.seed = value().parse().expect("--seed S"),
            "--rounds" => a.rounds = value().parse().expect("--rounds N"),
            "--pipeline-rounds" => {
                a.pipeline_rounds = value().parse().expect("--pipeline-rounds N")
            }
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn median(s: &[f64]) -> f64 {
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn p99(s: &[f64]) -> f64 {
    let rank = ((0.99 * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn stats(v: Vec<f64>) -> String {
    let s = sorted(v);
    format!("{:.1} / {:.1} / {:.1}", median(&s), p99(&s), s[s.len() - 1])
}

/// Times of one operation: kernel alone, and encode + kernel.
#[derive(Default)]
struct Times {
    kernel: Vec<f64>,
    total: Vec<f64>,
}

impl Times {
    fn push(&mut self, started: Instant, s: &ApplyStats) {
        self.total.push(ms(started.elapsed()));
        self.kernel.push(ms(s.kernel));
    }
}

/// Quiet time before each timed operation. The kernel frees what a transaction deleted
/// after an RCU grace period, in a work item that the next transaction waits for; back
/// to back, each operation would pay for the one before. netpold's reloads are at least
/// its debounce window apart, so each is timed after this pause.
const SETTLE: Duration = Duration::from_millis(60);

fn update(kernel: &mut Netlink, from: &Plan, to: &Plan) -> (Instant, ApplyStats) {
    let d = Update::between(from, to).expect("an element-only edit");
    std::thread::sleep(SETTLE);
    let t = Instant::now();
    let s = kernel.update(&d).expect("update");
    (t, s)
}

fn replace(kernel: &mut Netlink, to: &Plan) -> (Instant, ApplyStats) {
    std::thread::sleep(SETTLE);
    let t = Instant::now();
    let s = kernel.apply(to).expect("replace");
    (t, s)
}

/// A reader of nftables' notifications, as netpold runs one, on a thread of its own
/// until finished: the kernel builds a notification for every object of a transaction
/// while anyone listens.
struct Listener {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(usize, usize)>,
}

impl Listener {
    /// Starts one, and gives the handle that silences it (as netpold's backend has).
    fn start() -> (Listener, Quiet) {
        let mut monitor = Monitor::open().expect("subscribing to nftables notifications");
        let quiet = monitor
            .quiet()
            .expect("a handle on the notification socket");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut commits, mut lost) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                for n in monitor.read().expect("reading notifications") {
                    match n {
                        News::Commit(_) => commits += 1,
                        News::Lost => lost += 1,
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (commits, lost)
        });
        (Listener { stop, thread }, quiet)
    }

    /// Commits seen and overflows.
    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Replaces and updates with no notification listener, with one, and with one that
/// the backend silences during its commits and a table it owns (as netpold runs),
/// interleaved: what the drift watch and ownership cost the kernel.
fn watched(kernel: &mut Netlink, base: &Plan, edited: &Plan, rounds: usize) {
    const MODES: [&str; 3] = [
        "no listener",
        "listener",
        "listener, silenced, table owned (netpold)",
    ];
    let mut times: [[Vec<f64>; 3]; 2] = Default::default();
    let mut seen = [(0, 0); 3];
    for round in 0..rounds {
        for step in 0..3 {
            let mode = (round + step) % 3;
            // As netpold's backend: it owns the table (dropped at the end of the round,
            // the table stays, orphaned, for the plain backend to replace).
            let mut fresh = Netlink::owner();
            let (listener, backend) = match mode {
                0 => (None, &mut *kernel),
                1 => (Some(Listener::start().0), &mut *kernel),
                _ => {
                    let (l, quiet) = Listener::start();
                    fresh.quiet_during_commits(quiet);
                    (Some(l), &mut fresh)
                }
            };
            // Untimed: the backend then knows the table, and the timed replace is
            // two transactions as netpold's are.
            replace(backend, base);
            let (_, s) = replace(backend, edited);
            times[0][mode].push(ms(s.kernel));
            replace(backend, base);
            let (_, s) = update(backend, base, edited);
            times[1][mode].push(ms(s.kernel));
            update(backend, edited, base);
            if let Some(l) = listener {
                std::thread::sleep(SETTLE);
                let (c, o) = l.finish();
                seen[mode].0 += c;
                seen[mode].1 += o;
            }
        }
    }
    // The plain backend replaces next: give it the table back.
    kernel.apply(base).expect("loading the base plan again");
    println!("the drift watch: kernel time in ms (median / p99 / max over {rounds} rounds), interleaved:");
    println!();
    println!(
        "| operation | {} | {} | {} | ratios of the medians to no listener |",
        MODES[0], MODES[1], MODES[2]
    );
    println!("|---|---|---|---|---|");
    for (k, name) in ["replace", "update"].iter().enumerate() {
        let m: Vec<f64> = times[k]
            .iter()
            .map(|t| median(&sorted(t.clone())))
            .collect();
        println!(
            "| {name} | {} | {} | {} | {:.2} / {:.2} |",
            stats(times[k][0].clone()),
            stats(times[k][1].clone()),
            stats(times[k][2].clone()),
            m[1] / m[0],
            m[2] / m[0],
        );
    }
    println!();
    for mode in 1..3 {
        println!(
            "{}: the listener saw {} commits and {} overflows (lost notifications)",
            MODES[mode], seen[mode].0, seen[mode].1
        );
    }
    println!();
}

/// netpold's reload pipeline for the inputs in `dir`, stage by stage, ending in an
/// update of the kernel from `base`; returns the stage times in ms.
fn pipeline(
    dir: &Path,
    local: &rules_compiler::model::ObjectName,
    base: &Plan,
    kernel: &mut Netlink,
) -> [f64; 5] {
    let t = Instant::now();
    let policies =
        load::read_paths(&[dir.join("policies.yaml")], &Default::default()).expect("read");
    let inventory =
        load::read_paths(&[dir.join("inventory.yaml")], &Default::default()).expect("read");
    let mut h = Sha256::new();
    for i in policies.iter().chain(&inventory) {
        h.update(i.text.as_bytes());
    }
    let _ = h.finalize();
    let read = ms(t.elapsed());
    let t = Instant::now();
    let loaded = rules_compiler::load_model(&policies, &inventory).expect("valid input");
    let parse = ms(t.elapsed());
    let t = Instant::now();
    let index = Index::new(&loaded.model);
    let id = loaded
        .model
        .inventory
        .endpoint_index(local)
        .expect("the local endpoint");
    let new = plan::build(&index, &[id], &plan::Options::default());
    let planning = ms(t.elapsed());
    let t = Instant::now();
    let d = Update::between(base, &new).expect("an element-only edit");
    let delta = ms(t.elapsed());
    std::thread::sleep(SETTLE);
    let t = Instant::now();
    kernel.update(&d).expect("update");
    let update = ms(t.elapsed());
    // Back to the base plan for the next measurement.
    kernel
        .update(&Update::between(&new, base).unwrap())
        .expect("update back");
    [read, parse, planning, delta, update]
}

fn measure(args: &Args) {
    let parent = std::env::var(ENV_PARENT).unwrap_or_default();
    assert!(
        !parent.is_empty() && parent != own_namespace(),
        "refusing to touch nftables outside a network namespace of the benchmark's own"
    );
    let t = Instant::now();
    let model = generate(&args.scale, args.seed);
    let local = {
        let index = Index::new(&model);
        let ep = busiest_endpoint(&index).expect("an endpoint");
        index.endpoint(ep).id.clone()
    };
    let locals = [local.clone()];
    let base = plan_for(&model, &locals);
    println!(
        "input: {} namespaces, {} endpoints, {} policies (seed {}); local endpoint {local}; generated and planned in {:.1} s",
        args.scale.namespaces,
        args.scale.endpoints,
        args.scale.policies,
        args.seed,
        t.elapsed().as_secs_f64()
    );
    println!(
        "table: {} rules, {} set elements in {} sets and {} maps, biggest set {} elements; the plan netpold keeps: about {:.1} MiB",
        base.rule_count(),
        base.element_count(),
        base.sets().len(),
        base.maps().len(),
        base.sets().iter().map(|s| s.elements().len()).max().unwrap_or(0),
        plan_bytes(&base) as f64 / (1 << 20) as f64
    );
    let mut edits = Vec::new();
    for kind in EditKind::ALL {
        match find_edit(&model, &locals, &base, kind, args.seed + 7, 40) {
            Some(e) => {
                let d = plan::delta(&base, &e.plan).unwrap();
                println!("edit {}: {} ({d})", kind.name(), e.what);
                edits.push((kind, e, d.changed()));
            }
            None => println!(
                "edit {}: none found that changes only elements",
                kind.name()
            ),
        }
    }
    println!();

    let mut kernel = Netlink::new();
    kernel.apply(&base).expect("loading the base plan");
    let mut upd: Vec<Times> = edits.iter().map(|_| Times::default()).collect();
    let mut rep: Vec<Times> = edits.iter().map(|_| Times::default()).collect();
    let mut one: Vec<Times> = edits.iter().map(|_| Times::default()).collect();
    for round in 0..args.rounds {
        for (k, (_, e, _)) in edits.iter().enumerate() {
            for step in 0..3 {
                match (round + step) % 3 {
                    0 => {
                        let (t, s) = update(&mut kernel, &base, &e.plan);
                        upd[k].push(t, &s);
                        update(&mut kernel, &e.plan, &base);
                    }
                    1 => {
                        // The backend knows the table it loaded: two transactions.
                        let (t, s) = replace(&mut kernel, &e.plan);
                        rep[k].push(t, &s);
                        replace(&mut kernel, &base);
                    }
                    _ => {
                        // A backend that loaded nothing replaces in one transaction;
                        // then `kernel` no longer knows the table, and puts the base
                        // plan back in one too.
                        let mut fresh = Netlink::new();
                        let (t, s) = replace(&mut fresh, &e.plan);
                        one[k].push(t, &s);
                        drop(fresh);
                        replace(&mut kernel, &base);
                    }
                }
            }
        }
    }
    println!(
        "kernel time in ms, median / p99 / max over {} rounds, update and replaces interleaved:",
        args.rounds
    );
    println!();
    println!("| edit | elements changed | update: kernel | update: encode + kernel | replace: kernel | replace: encode + kernel | replace in one transaction: kernel | replace / update (kernel medians) | two / one transaction (kernel medians) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (k, (kind, _, changed)) in edits.iter().enumerate() {
        let med = |v: &[f64]| median(&sorted(v.to_vec()));
        let ratio = med(&rep[k].kernel) / med(&upd[k].kernel);
        let two_one = med(&rep[k].kernel) / med(&one[k].kernel);
        println!(
            "| {} | {changed} | {} | {} | {} | {} | {} | {ratio:.0}× | {two_one:.2} |",
            kind.name(),
            stats(upd[k].kernel.clone()),
            stats(upd[k].total.clone()),
            stats(rep[k].kernel.clone()),
            stats(rep[k].total.clone()),
            stats(one[k].kernel.clone()),
        );
    }
    println!();
    watched(&mut kernel, &base, &edits[0].1.plan, args.rounds);

    // The pipeline, with the inputs as files, edited one endpoint at a time.
    let temp = TempDir::with_prefix("netpol-incremental-bench-").unwrap();
    let dir = temp.path().to_owned();
    std::fs::write(dir.join("policies.yaml"), policies_yaml(&model)).unwrap();
    let bytes = std::fs::metadata(dir.join("policies.yaml")).unwrap().len();
    let mut stages: Vec<[Vec<f64>; 5]> = edits.iter().map(|_| Default::default()).collect();
    let mut inv_bytes = 0;
    for _ in 0..args.pipeline_rounds {
        for (k, (_, e, _)) in edits.iter().enumerate() {
            std::fs::write(dir.join("inventory.yaml"), inventory_yaml(&e.model)).unwrap();
            inv_bytes = std::fs::metadata(dir.join("inventory.yaml")).unwrap().len();
            let times = pipeline(&dir, &local, &base, &mut kernel);
            for (s, t) in stages[k].iter_mut().zip(times) {
                s.push(t);
            }
        }
    }
    println!(
        "netpold's pipeline for the same edits (inputs {:.1} MB of YAML), median ms over {} rounds:",
        (bytes + inv_bytes) as f64 / 1e6,
        args.pipeline_rounds
    );
    println!();
    println!("| edit | read + hash | parse + validate | index + plan | delta | kernel update (encode + kernel) | total |");
    println!("|---|---|---|---|---|---|---|");
    for (k, (kind, _, _)) in edits.iter().enumerate() {
        let m: Vec<f64> = stages[k]
            .iter()
            .map(|v| median(&sorted(v.clone())))
            .collect();
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            kind.name(),
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m.iter().sum::<f64>()
        );
    }
}

fn main() {
    let args = parse_args();
    if args.measure {
        measure(&args);
        return;
    }
    if let Err(why) = check_unshare(&["true"]) {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let exe = std::env::current_exe().expect("the benchmark's path");
    let status = std::process::Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .arg("--measure")
        .args(std::env::args().skip(1).filter(|a| a != "--bench"))
        .env(ENV_PARENT, own_namespace())
        .status()
        .expect("unshare");
    assert!(status.success(), "the measurement failed");
}
