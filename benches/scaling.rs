//! Scaling benchmark: how the control plane grows with the input. For every point of
//! a grid of endpoints × policies (default 1,000 / 10,000 / 50,000 endpoints ×
//! 100 / 1,000 / 10,000 policies) it generates the synthetic input
//! ([`netpol_benches::generate`], seed 1; namespaces = endpoints / 50, at most
//! policies / 10, at least 3) and measures, for the busiest local endpoint:
//!
//! - in this process: the YAML size, `load + validate` (parse and validate the YAML
//!   text, in memory) and `plan` (index + plan build), medians of `--reps` runs; the
//!   plan's rules and set elements, and the size of its `nft` text;
//! - in a network namespace of its own (the benchmark re-executes itself under
//!   `unshare --net` with `--child DIR`; the child refuses to run in the namespace the
//!   benchmark started in, so the host's ruleset is never touched): the netlink batch
//!   size, the kernel apply of the plan into the empty namespace (`apply empty`), a
//!   replace of the loaded table (`apply replace`, median of `--reps`), an incremental
//!   update for a one-endpoint change (`update`: a peer of the local endpoint leaves
//!   the inventory, then comes back; median of 2 × `--reps` updates, found by
//!   [`netpol_benches::edits::find_edit`]), each timed after a 60 ms pause as netpold's
//!   reloads are (see the `incremental` benchmark), and the real `netpold`'s start-up
//!   (spawn to the table in the kernel) and its VmRSS / VmHWM 0.5 s after it has
//!   loaded the input.
//!
//! It measures; it asserts nothing about time.
//!
//! Run (root; `netpold` is built in release by the benchmark itself):
//! `cargo bench -p netpol-benches --bench scaling`
//! Options after `--`: `--endpoints 1000,10000,50000`, `--policies 100,1000,10000`,
//! `--reps N` (default 3), `--netpold /ABS/PATH` (skip the build), `--shard-above N`
//! (the plans' `shard_above`, default `plan::SHARD_ABOVE`; netpold's start-up keeps
//! its own default).
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netpol_benches::edits::{find_edit_with, plan_with, EditKind};
use netpol_benches::harness::{
    absolute_path_arg, daemon_bin_or_skip, memory_kib, own_namespace, KillOnDrop, TempDir,
};
use netpol_benches::netns::median;
use netpol_benches::yaml::{inventory_yaml, policies_yaml};
use netpol_benches::{busiest_endpoint, generate, Scale};
use netpol_nft::{Backend, GenerationReader, Netlink, Update};
use rules_compiler::load::Input;
use rules_compiler::model::ObjectName;
use rules_compiler::plan::{self, Plan, SetElements};
use rules_compiler::render;
use rules_compiler::resolve::Index;
use rules_compiler::Loaded;

/// The namespace the benchmark started in, which `--child` must not run in.
const ENV_PARENT: &str = "NETPOL_BENCH_PARENT_NS";
/// The longest netpold may take to load an input.
const PATIENCE: Duration = Duration::from_secs(300);
/// Quiet time before each timed kernel operation, as in the `incremental` benchmark:
/// the kernel frees deleted elements after an RCU grace period, which the next
/// transaction would otherwise wait for.
const SETTLE: Duration = Duration::from_millis(60);

struct Args {
    endpoints: Vec<usize>,
    policies: Vec<usize>,
    reps: usize,
    netpold: Option<PathBuf>,
    child: Option<PathBuf>,
    /// The plan's `shard_above` (`plan::SHARD_ABOVE` unless `--shard-above N`).
    shard_above: usize,
}

impl Args {
    fn options(&self) -> plan::Options {
        plan::Options {
            shard_above: self.shard_above,
            ..plan::Options::default()
        }
    }
}

fn list(v: &str) -> Vec<usize> {
    v.split(',')
        .map(|n| n.trim().parse().expect("a comma-separated list of counts"))
        .collect()
}

fn parse_args() -> Args {
    let mut a = Args {
        endpoints: vec![1_000, 10_000, 50_000],
        policies: vec![100, 1_000, 10_000],
        reps: 3,
        netpold: None,
        child: None,
        shard_above: plan::SHARD_ABOVE,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--endpoints" => a.endpoints = list(&value()),
            "--policies" => a.policies = list(&value()),
            "--reps" => a.reps = value().parse::<usize>().expect("--reps N").max(1),
            "--netpold" => a.netpold = Some(absolute_path_arg("--netpold", value())),
            "--child" => a.child = Some(PathBuf::from(value())),
            "--shard-above" => a.shard_above = value().parse().expect("--shard-above N"),
            // cargo bench passes --bench to harness = false benchmarks.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The inputs of one grid point, as files in `dir`.
struct Point {
    dir: PathBuf,
    local: String,
}

impl Point {
    fn policies(&self) -> PathBuf {
        self.dir.join("policies")
    }
    fn inventory(&self) -> PathBuf {
        self.dir.join("inventory")
    }
    fn read(&self) -> (Vec<Input>, Vec<Input>) {
        let read = |d: PathBuf, file: &str| {
            let path = d.join(file);
            vec![Input {
                text: std::fs::read_to_string(&path)
                    .expect("reading an input")
                    .into(),
                path,
            }]
        };
        (
            read(self.policies(), "policies.yaml"),
            read(self.inventory(), "inventory.yaml"),
        )
    }
}

fn namespaces_for(endpoints: usize, policies: usize) -> usize {
    (endpoints / 50).min(policies / 10).max(3)
}

/// Generates the input of one grid point into `dir` and names its busiest endpoint.
fn prepare(dir: &Path, scale: &Scale) -> Point {
    let model = generate(scale, 1);
    for (sub, file, text) in [
        ("policies", "policies.yaml", policies_yaml(&model)),
        ("inventory", "inventory.yaml", inventory_yaml(&model)),
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join(file), text).unwrap();
    }
    let index = Index::new(&model);
    let ep = busiest_endpoint(&index).expect("the input has an isolated endpoint");
    let local = index.endpoint(ep).id.to_string();
    std::fs::write(dir.join("local"), &local).unwrap();
    Point {
        dir: dir.to_path_buf(),
        local,
    }
}

fn load(point: &Point) -> Loaded {
    let (policies, inventory) = point.read();
    rules_compiler::load_model(&policies, &inventory)
        .unwrap_or_else(|r| panic!("the synthetic input is rejected: {r}"))
}

fn locals(point: &Point) -> [ObjectName; 1] {
    [ObjectName::parse(&point.local).expect("NS/NAME")]
}

/// What this process measures of one grid point.
struct Compile {
    yaml_bytes: usize,
    load_ms: f64,
    plan_ms: f64,
    rules: usize,
    elements: usize,
    nft_bytes: usize,
    /// Address · protocol · port sets, the largest one's elements, shard blocks.
    shape: (usize, usize, usize),
}

/// The plan's address · protocol · port sets, the largest one's elements and the
/// blocks of its shard maps.
fn shape(plan: &Plan) -> (usize, usize, usize) {
    let (mut sets, mut largest, mut blocks) = (0, 0, 0);
    for s in plan.sets() {
        match s.elements() {
            SetElements::AddrProtoPort(v) => {
                sets += 1;
                largest = largest.max(v.len());
            }
            SetElements::AddrVerdict(v) if s.name().ends_with("_shards") => blocks += v.len(),
            _ => {}
        }
    }
    (sets, largest, blocks)
}

fn compile(point: &Point, args: &Args) -> Compile {
    let reps = args.reps;
    let (policies, inventory) = point.read();
    let yaml_bytes = policies[0].text.len() + inventory[0].text.len();
    let (mut loads, mut plans) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        let loaded = rules_compiler::load_model(&policies, &inventory)
            .unwrap_or_else(|r| panic!("the synthetic input is rejected: {r}"));
        loads.push(ms(t.elapsed()));
        let t = Instant::now();
        let plan = plan_with(&loaded.model, &locals(point), &args.options());
        plans.push(ms(t.elapsed()));
        last = Some(plan);
    }
    let plan = last.expect("reps > 0");
    Compile {
        yaml_bytes,
        load_ms: median(loads),
        plan_ms: median(plans),
        rules: plan.rule_count(),
        elements: plan.element_count(),
        nft_bytes: render::nft(&plan).len(),
        shape: shape(&plan),
    }
}

/// The child, in a fresh network namespace: kernel applies and netpold's memory.
/// Prints one `RESULT key=value…` line.
fn child(args: &Args, dir: &Path) {
    let parent = std::env::var(ENV_PARENT).unwrap_or_default();
    assert!(
        !parent.is_empty() && parent != own_namespace(),
        "refusing to touch nftables outside a network namespace of the benchmark's own"
    );
    let local = std::fs::read_to_string(dir.join("local")).expect("the local endpoint");
    let point = Point {
        dir: dir.to_path_buf(),
        local: local.trim().to_string(),
    };
    let loaded = load(&point);
    let locals = locals(&point);
    let options = args.options();
    let plan = plan_with(&loaded.model, &locals, &options);
    let edited = find_edit_with(
        &loaded.model,
        &locals,
        &plan,
        EditKind::Remove,
        (1, 200),
        &options,
    );
    drop(loaded);

    let mut kernel = Netlink::new();
    let t = Instant::now();
    let first = kernel.apply(&plan).expect("apply into the empty namespace");
    let empty = ms(t.elapsed());
    let mut replace = Vec::new();
    for _ in 0..args.reps {
        std::thread::sleep(SETTLE);
        let t = Instant::now();
        kernel.apply(&plan).expect("replace");
        replace.push(ms(t.elapsed()));
    }
    // The edit and back, as updates of what the kernel holds.
    let mut update = Vec::new();
    if let Some(edit) = &edited {
        for _ in 0..args.reps {
            for (from, to) in [(&plan, &edit.plan), (&edit.plan, &plan)] {
                let d = Update::between(from, to).expect("an element-only edit");
                std::thread::sleep(SETTLE);
                let t = Instant::now();
                kernel.update(&d).expect("update");
                update.push(ms(t.elapsed()));
            }
        }
    }
    kernel.flush().expect("flush");
    drop((plan, edited));

    // netpold from its own start to the loaded table, then its memory.
    let mut generation = GenerationReader::open().expect("netlink socket");
    let g0 = generation.read().expect("generation");
    let netpold = args.netpold.as_ref().expect("--netpold");
    let log = dir.join("netpold.log");
    let started = Instant::now();
    let mut daemon = KillOnDrop(
        Command::new(netpold)
            .arg("--policies")
            .arg(point.policies())
            .arg("--inventory")
            .arg(point.inventory())
            .args(["--local", &point.local])
            .arg("--socket")
            .arg(dir.join("netpold.sock"))
            .args(["--metrics-address", "127.0.0.1:9470"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting netpold"),
    );
    while generation.read().expect("generation") == g0 {
        if daemon.0.try_wait().unwrap().is_some() || started.elapsed() > PATIENCE {
            panic!(
                "netpold did not load the input:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let startup = ms(started.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    let (rss, hwm) = memory_kib(daemon.0.id());
    drop(daemon);

    println!(
        "RESULT batch_bytes={} apply_empty_ms={:.1} apply_replace_ms={:.1} update_ms={:.1} netpold_startup_ms={:.0} rss_kib={rss} hwm_kib={hwm}",
        first.bytes,
        empty,
        median(replace),
        // NaN (printed "NaN") when no peer's removal changes the plan by elements alone.
        if update.is_empty() { f64::NAN } else { median(update) },
        startup,
    );
}

/// Runs the child for `point` and returns its `key=value` numbers.
fn kernel_side(args: &Args, netpold: &Path, point: &Point) -> Vec<(String, f64)> {
    let exe = std::env::current_exe().expect("the benchmark's path");
    let out = Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .arg("--child")
        .arg(&point.dir)
        .args(["--reps", &args.reps.to_string()])
        .args(["--shard-above", &args.shard_above.to_string()])
        .arg("--netpold")
        .arg(netpold)
        .env(ENV_PARENT, own_namespace())
        .stderr(Stdio::inherit())
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the measuring child failed:\n{stdout}"
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("a RESULT line");
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().expect("a number")))
        .collect()
}

fn kib(bytes: f64) -> String {
    format!("{:.0}", bytes / 1024.0)
}

fn main() {
    let args = parse_args();
    if let Some(dir) = &args.child {
        child(&args, dir);
        return;
    }
    let Some(netpold) = daemon_bin_or_skip(args.netpold.as_deref(), "netpold") else {
        return;
    };
    let temp = TempDir::with_prefix("netpol-scaling-bench-").unwrap();
    let base = temp.path();
    println!(
        "scaling benchmark: seed 1, {} reps, netpold {}, sets sharded above {} elements \
         (netpold's own plans: its default)",
        args.reps,
        netpold.display(),
        args.shard_above
    );
    println!();
    println!("| endpoints | policies | namespaces | YAML | load + validate | plan | rules | elements | nft text | netlink batch | apply (empty) | apply (replace) | update (one endpoint) | netpold start-up | netpold VmRSS / VmHWM |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut shapes = Vec::new();
    for &endpoints in &args.endpoints {
        for &policies in &args.policies {
            let scale = Scale {
                namespaces: namespaces_for(endpoints, policies),
                endpoints,
                policies,
            };
            let dir = base.join(format!("{endpoints}-{policies}"));
            let point = prepare(&dir, &scale);
            let c = compile(&point, &args);
            let k = kernel_side(&args, &netpold, &point);
            let get = |key: &str| {
                k.iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| *v)
                    .unwrap_or_else(|| panic!("the child did not report {key}"))
            };
            println!(
                "| {endpoints} | {policies} | {} | {} KiB | {:.0} ms | {:.1} ms | {} | {} | {} KiB | {} KiB | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} ms | {:.1} / {:.1} MiB |",
                scale.namespaces,
                kib(c.yaml_bytes as f64),
                c.load_ms,
                c.plan_ms,
                c.rules,
                c.elements,
                kib(c.nft_bytes as f64),
                kib(get("batch_bytes")),
                get("apply_empty_ms"),
                get("apply_replace_ms"),
                get("update_ms"),
                get("netpold_startup_ms"),
                get("rss_kib") / 1024.0,
                get("hwm_kib") / 1024.0,
            );
            let (sets, largest, blocks) = c.shape;
            shapes.push(format!(
                "{endpoints} x {policies}: {sets} address . protocol . port sets, the largest \
                 {largest} elements; {blocks} shard blocks"
            ));
            std::fs::remove_dir_all(&dir).ok();
        }
    }
    println!();
    for line in shapes {
        println!("{line}");
    }
}
