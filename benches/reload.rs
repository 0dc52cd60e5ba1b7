//! Reload benchmark: how long `netpold` takes from a policy file write to the new
//! ruleset being in the kernel, and how much memory it holds, for the bundled example
//! and for the 50,000-endpoint synthetic input.
//!
//! For each input the benchmark re-executes itself under `unshare --net`
//! (`--measure SIZE`); that child refuses to run in the namespace the benchmark
//! started in, so the host's ruleset is never touched. In the fresh namespace it starts
//! the real `netpold` (release build) with one `--local` endpoint and waits until
//! `status` says generation 1. Then, `--edits` times (default 100):
//!
//! 1. reads the kernel's ruleset generation (`NFT_MSG_GETGEN` over a kept netlink
//!    socket: [`netpol_nft::GenerationReader`]);
//! 2. takes the time and rewrites `bench-edit.yaml` in the policies directory in
//!    place (`fs::write`): a policy selecting every endpoint of the local endpoint's
//!    namespace that allows ingress on one TCP port, a new port each time, so every
//!    edit changes the local endpoint's ruleset;
//! 3. polls the kernel's generation every 100 µs until it moves: the time since the
//!    write is the latency (the kernel increments the generation when it commits a
//!    transaction, and only netpold commits in this namespace);
//! 4. waits until `status` shows the new generation, then lets the debounce window
//!    and a margin pass and checks that no second reload followed.
//!
//! Reported: median, p99 (nearest rank), min and max of the latency, the same minus
//! the configured debounce window (`--debounce-ms`, default 200, netpold's default),
//! the median compile and apply times netpold logged for the reloads, the start-up
//! time, and netpold's VmRSS and VmHWM (from `/proc/PID/status`) after start-up and
//! after the edits, and its VmRSS again after 3 s idle (what the allocator gave back
//! between reloads). It measures; it asserts nothing about time.
//!
//! With `--edit endpoint`, step 2 instead rewrites the inventory file with one endpoint
//! changed and back, alternately: a peer of the local endpoint gets another address
//! (for the example, `web/checkout` 198.18.2.10 ↔ 198.18.2.20; for the synthetic
//! input, a peer found by [`netpol_benches::edits::find_edit`]). That changes only set
//! elements, so netpold sends an incremental update — unless `--no-incremental` is
//! given, which is passed on to netpold so both can be compared.
//!
//! Run (root; netpold and netpolctl are built in release by the benchmark itself):
//! `cargo bench -p netpol-benches --bench reload`
//! Options after `--`: `--edits N` (default 100), `--debounce-ms MS` (default 200),
//! `--sizes example,synth,synth-json` (default example,synth; `synth-json` is synth as
//! kubectl JSON Lists), `--edit policy|endpoint` (default policy),
//! `--no-incremental`, `--both` (each input with and then without `--no-incremental`,
//! in the same run), `--netpold /ABS/PATH` (skip the build), `--keep DIR` (write the
//! inputs there and keep them).
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netpol_benches::control::status;
use netpol_benches::edits::{find_edit, plan_for, EditKind};
use netpol_benches::harness::{
    absolute_path_arg, daemon_bin_or_skip, input_dir, memory_kib, own_namespace, KillOnDrop,
};
use netpol_benches::yaml::{inventory_json, inventory_yaml, policies_json, policies_yaml};
use netpol_benches::{busiest_endpoint, generate, Scale};
use netpol_nft::GenerationReader;
use rules_compiler::resolve::Index;

/// The namespace the benchmark started in, which `--measure` must not run in.
const ENV_PARENT: &str = "NETPOL_BENCH_PARENT_NS";
/// The longest any one wait lasts.
const PATIENCE: Duration = Duration::from_secs(120);
/// How long netpold is left idle after the last edit before its memory is read again.
const IDLE: Duration = Duration::from_secs(3);

struct Args {
    measure: Option<String>,
    edits: usize,
    debounce_ms: u64,
    sizes: Vec<String>,
    netpold: Option<PathBuf>,
    dir: Option<PathBuf>,
    keep: bool,
    /// `policy` or `endpoint`.
    edit: String,
    no_incremental: bool,
    /// Each input twice in this run: netpold as configured by default, then with
    /// `--no-incremental`.
    both: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        measure: None,
        edits: 100,
        debounce_ms: 200,
        sizes: vec!["example".into(), "synth".into()],
        netpold: None,
        dir: None,
        keep: false,
        edit: "policy".into(),
        no_incremental: false,
        both: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--measure" => a.measure = Some(value()),
            "--edits" => a.edits = value().parse().expect("--edits N"),
            "--debounce-ms" => a.debounce_ms = value().parse().expect("--debounce-ms MS"),
            "--sizes" => a.sizes = value().split(',').map(str::to_string).collect(),
            "--netpold" => a.netpold = Some(absolute_path_arg("--netpold", value())),
            "--edit" => {
                a.edit = value();
                assert!(
                    a.edit == "policy" || a.edit == "endpoint",
                    "--edit policy|endpoint"
                );
            }
            "--no-incremental" => a.no_incremental = true,
            "--both" => a.both = true,
            "--dir" => a.dir = Some(PathBuf::from(value())),
            "--keep" => {
                a.dir = Some(PathBuf::from(value()));
                a.keep = true;
            }
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// The inputs of one size: directories, the local endpoint, its namespace.
struct Input {
    policies: PathBuf,
    inventory: PathBuf,
    local: String,
    namespace: String,
}

fn input(dir: &Path, size: &str) -> Input {
    let base = dir.join(size);
    let local = std::fs::read_to_string(base.join("local")).expect("the local endpoint");
    let local = local.trim().to_string();
    let namespace = local.split('/').next().unwrap_or_default().to_string();
    Input {
        policies: base.join("policies"),
        inventory: base.join("inventory"),
        local,
        namespace,
    }
}

/// Writes the inputs of `size` under `dir/size`.
fn prepare(dir: &Path, size: &str) {
    let base = dir.join(size);
    let (policies, inventory) = (base.join("policies"), base.join("inventory"));
    for d in [&policies, &inventory] {
        std::fs::create_dir_all(d).unwrap();
    }
    let local = match size {
        "example" => {
            let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
            for (from, to) in [("policies", &policies), ("inventory", &inventory)] {
                for f in std::fs::read_dir(config.join(from)).unwrap() {
                    let f = f.unwrap().path();
                    std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
                }
            }
            let pods = std::fs::read_to_string(inventory.join("pods.yaml")).unwrap();
            write_endpoint_edit(
                &base,
                &inventory.join("pods.yaml"),
                &pods,
                &pods.replace("198.18.2.10", "198.18.2.20"),
            );
            "payments/payments-api".to_string()
        }
        "synth" | "synth-json" => {
            // The same bytes as `netpol-synth --namespaces 1000 --endpoints 50000
            // --policies 10000 --seed 1` (with `--json`: kubectl JSON Lists), and the
            // local endpoint it prints.
            let model = generate(&Scale::FULL, 1);
            type Print = fn(&rules_compiler::model::Model) -> String;
            let (ext, policies_text, inventory_text): (_, Print, Print) = if size == "synth" {
                ("yaml", policies_yaml, inventory_yaml)
            } else {
                ("json", policies_json, inventory_json)
            };
            let file = inventory.join(format!("inventory.{ext}"));
            std::fs::write(
                policies.join(format!("policies.{ext}")),
                policies_text(&model),
            )
            .unwrap();
            std::fs::write(&file, inventory_text(&model)).unwrap();
            let index = Index::new(&model);
            let ep = busiest_endpoint(&index).expect("a local endpoint");
            let local = index.endpoint(ep).id.clone();
            drop(index);
            let locals = [local.clone()];
            let base_plan = plan_for(&model, &locals);
            let edit = find_edit(&model, &locals, &base_plan, EditKind::MoveIp, 8, 40)
                .expect("a peer whose address change changes only set elements");
            write_endpoint_edit(
                &base,
                &file,
                &inventory_text(&model),
                &inventory_text(&edit.model),
            );
            local.to_string()
        }
        other => panic!("unknown size {other} (example, synth, synth-json)"),
    };
    std::fs::write(base.join("local"), &local).unwrap();
}

/// Keeps the endpoint edit of an input: the file to rewrite and its two versions.
fn write_endpoint_edit(base: &Path, target: &Path, a: &str, b: &str) {
    std::fs::write(base.join("edit-target"), target.display().to_string()).unwrap();
    std::fs::write(base.join("edit-a"), a).unwrap();
    std::fs::write(base.join("edit-b"), b).unwrap();
}

/// The edit: every endpoint of `namespace` accepts TCP `port` from anywhere.
fn edit(namespace: &str, port: u32) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  \
         namespace: {namespace}\n  name: bench-edit\nspec:\n  podSelector: {{}}\n  \
         policyTypes: [Ingress]\n  ingress:\n  - ports:\n    - protocol: TCP\n      \
         port: {port}\n"
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1]
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The numbers netpold logged for its applied reloads (`compile_ms=… apply_ms=…`),
/// start-up excluded.
fn logged(log: &str, key: &str) -> Vec<f64> {
    let mut v: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("applied generation") && !l.contains("trigger=Start"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|x| x.parse().ok())
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// `--measure SIZE`: in a fresh namespace, the whole run for one input; prints one
/// Markdown table row.
fn measure(args: &Args, size: &str) {
    let parent = std::env::var(ENV_PARENT).unwrap_or_default();
    assert!(
        !parent.is_empty() && parent != own_namespace(),
        "refusing to run netpold outside a network namespace of the benchmark's own"
    );
    let dir = args.dir.as_ref().expect("--dir");
    let inp = input(dir, size);
    let base = dir.join(size);
    let endpoint_edit = (args.edit == "endpoint").then(|| {
        let target = std::fs::read_to_string(base.join("edit-target")).unwrap();
        let a = std::fs::read_to_string(base.join("edit-a")).unwrap();
        let b = std::fs::read_to_string(base.join("edit-b")).unwrap();
        (PathBuf::from(target), a, b)
    });
    let edit_file = match &endpoint_edit {
        Some((target, a, _)) => {
            std::fs::write(target, a).unwrap();
            target.clone()
        }
        None => {
            let f = inp.policies.join("bench-edit.yaml");
            std::fs::write(&f, edit(&inp.namespace, 20_000)).unwrap();
            f
        }
    };
    let socket = dir.join(format!("{size}.sock"));
    let log_path = dir.join(format!("{size}.log"));
    let netpold = args.netpold.as_ref().expect("--netpold");

    let started = Instant::now();
    let mut command = Command::new(netpold);
    if args.no_incremental {
        command.arg("--no-incremental");
    }
    let child = command
        .arg("--policies")
        .arg(&inp.policies)
        .arg("--inventory")
        .arg(&inp.inventory)
        .args(["--local", &inp.local])
        .arg("--socket")
        .arg(&socket)
        .args(["--debounce-ms", &args.debounce_ms.to_string()])
        .args(["--metrics-address", "127.0.0.1:9469"])
        .env("NETPOLD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("starting netpold");
    let pid = child.id();
    let mut daemon = KillOnDrop(child);
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    loop {
        if status(&socket).is_some_and(|s| s.generation >= 1) {
            break;
        }
        if daemon.0.try_wait().unwrap().is_some() || started.elapsed() > PATIENCE {
            panic!("netpold did not start:\n{}", read_log());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let startup = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let mem_start = memory_kib(pid);

    let mut gen = GenerationReader::open().expect("netlink socket");
    let settle = Duration::from_millis(args.debounce_ms + 300);
    let mut latencies = Vec::with_capacity(args.edits);
    let mut extra = 0;
    for i in 1..=args.edits {
        let g0 = gen.read().expect("generation");
        let text = match &endpoint_edit {
            Some((_, a, b)) => (if i % 2 == 1 { b } else { a }).clone(),
            None => edit(&inp.namespace, 20_000 + i as u32),
        };
        let t0 = Instant::now();
        std::fs::write(&edit_file, text).unwrap();
        loop {
            if gen.read().expect("generation") != g0 {
                break;
            }
            if t0.elapsed() > PATIENCE {
                panic!("edit {i}: the kernel never changed:\n{}", read_log());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        latencies.push(ms(t0.elapsed()));
        let want = 1 + i as u64;
        while status(&socket).is_none_or(|s| s.generation < want) {
            assert!(t0.elapsed() < PATIENCE, "edit {i}: status never showed it");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(settle);
        let g = gen.read().expect("generation");
        if g != g0.wrapping_add(1) {
            extra += g.wrapping_sub(g0) as usize - 1;
        }
    }
    let mem_after = memory_kib(pid);
    // Between reloads: what the allocator has given back once netpold has been idle.
    std::thread::sleep(IDLE);
    let mem_idle = memory_kib(pid);
    let s = status(&socket).expect("status at the end");
    assert_eq!(s.failed_reloads, 0, "failed reloads:\n{}", read_log());
    drop(daemon);

    let log = read_log();
    let compile = logged(&log, "compile_ms=");
    let apply = logged(&log, "apply_ms=");
    latencies.sort_by(f64::total_cmp);
    let beyond: Vec<f64> = latencies
        .iter()
        .map(|l| l - args.debounce_ms as f64)
        .collect();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "| {size}{} (`{}`) | {} ({} extra) | {:.1} ms | {:.1} ms | {:.1}–{:.1} ms | **{:.1} ms** | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} ms | {:.1} / {:.1} MiB | {:.1} / {:.1} MiB | {:.1} MiB |",
        if args.no_incremental {
            ", --no-incremental"
        } else {
            ""
        },
        inp.local,
        latencies.len(),
        extra,
        median(&latencies),
        percentile(&latencies, 99.0),
        latencies[0],
        latencies[latencies.len() - 1],
        median(&beyond),
        percentile(&beyond, 99.0),
        if compile.is_empty() { f64::NAN } else { median(&compile) },
        if apply.is_empty() { f64::NAN } else { median(&apply) },
        ms(startup),
        mib(mem_start.0),
        mib(mem_start.1),
        mib(mem_after.0),
        mib(mem_after.1),
        mib(mem_idle.0),
    );
}

fn main() {
    let args = parse_args();
    if let Some(size) = &args.measure {
        measure(&args, size);
        return;
    }
    let Some(netpold) = daemon_bin_or_skip(args.netpold.as_deref(), "netpold") else {
        return;
    };
    let (dir, _temp) = input_dir(
        args.dir.as_deref().filter(|_| args.keep),
        "netpol-reload-bench-",
    );
    println!(
        "reload benchmark: {} edits per input ({}), debounce {} ms, netpold {}{}",
        args.edits,
        if args.edit == "endpoint" {
            "one endpoint's address, and back"
        } else {
            "a policy"
        },
        args.debounce_ms,
        netpold.display(),
        if args.no_incremental {
            " --no-incremental"
        } else {
            ""
        }
    );
    println!();
    println!("| input (local endpoint) | edits | median | p99 | min–max | median − debounce | p99 − debounce | compile (median, logged) | apply (median, logged) | start-up | after start-up VmRSS / VmHWM | after the edits VmRSS / VmHWM | VmRSS idle 3 s later |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let modes: &[bool] = if args.both {
        &[false, true]
    } else if args.no_incremental {
        &[true]
    } else {
        &[false]
    };
    for size in &args.sizes {
        prepare(&dir, size);
        for &no_incremental in modes {
            let exe = std::env::current_exe().expect("the benchmark's path");
            let status = Command::new("unshare")
                .args(["--net", "--"])
                .arg(exe)
                .args(["--measure", size])
                .args(["--edits", &args.edits.to_string()])
                .args(["--debounce-ms", &args.debounce_ms.to_string()])
                .args(["--edit", &args.edit])
                .args(no_incremental.then_some("--no-incremental"))
                .arg("--netpold")
                .arg(&netpold)
                .arg("--dir")
                .arg(&dir)
                .env(ENV_PARENT, own_namespace())
                .status()
                .expect("unshare");
            assert!(status.success(), "measuring {size} failed");
        }
    }
}
