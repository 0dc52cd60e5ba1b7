//! Apply benchmark: loading a ruleset of about 100,000 set elements and 1,000 rules
//! into the kernel with `netpolctl apply` (the real binary: read the YAML, compile,
//! one netlink batch) against `nft -f` of the same ruleset rendered as text, in the
//! same run.
//!
//! The input is [`netpol_benches::fleet`] at [`FleetScale::DEFAULT`]: 200 isolated
//! local endpoints, all passed with `--local`. The nft text is `render::nft` of the
//! plan that `netpolctl apply` builds from the same input (checked equal to
//! `netpolctl compile`'s output), so both tools load the same table.
//!
//! Every measurement runs in a network namespace of its own: the benchmark re-executes
//! itself under `unshare --net` with `--measure TOOL SITUATION`, and that child
//! - for `empty`, starts the tool in the fresh, empty namespace;
//! - for `replace`, first loads the ruleset with the same tool (not timed), then
//!   starts the tool again, which replaces the table in one transaction;
//!
//! and times the tool's process from spawn to exit (wall time), and takes its peak
//! RSS, user and system time from `wait4`'s `rusage`. The host's ruleset is never
//! touched; the child refuses to measure in the namespace the benchmark started in.
//!
//! It also times, in this process, what `netpolctl apply` does before it talks to the
//! kernel (read + parse + validate the YAML, index + plan), to give the compile's
//! share of apply's wall time, and reads apply's own report of its encode and kernel
//! time. It measures; it asserts nothing about time.
//!
//! Run (root; `netpolctl` is built in release first, by the benchmark itself):
//! `taskset -c 0 cargo bench -p netpol-benches --bench apply`
//! Options after `--`: `--reps N` (default 7), `--netpolctl PATH` (skip the build),
//! `--keep DIR` (write the inputs there and keep them).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use netpol_benches::fleet::{inventory_yaml, policies_yaml, FleetScale};
use netpol_benches::harness::{
    absolute_path_arg, build_daemon_bin, check_unshare, input_dir, own_namespace,
};
use rules_compiler::load::Input;
use rules_compiler::model::ObjectName;
use rules_compiler::plan::{self, DenyAction};
use rules_compiler::render;
use rules_compiler::resolve::Index;

/// The namespace the benchmark started in, which `--measure` must not run in.
const ENV_PARENT: &str = "NETPOL_BENCH_PARENT_NS";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Apply,
    Nft,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Situation {
    Empty,
    Replace,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Apply => "apply",
            Tool::Nft => "nft",
        }
    }
}

impl Situation {
    fn name(self) -> &'static str {
        match self {
            Situation::Empty => "empty",
            Situation::Replace => "replace",
        }
    }
}

/// Where the inputs are and which netpolctl to run.
struct Files {
    dir: PathBuf,
    netpolctl: PathBuf,
    locals: Vec<String>,
}

impl Files {
    fn policies(&self) -> PathBuf {
        self.dir.join("policies.yaml")
    }
    fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.yaml")
    }
    fn ruleset(&self) -> PathBuf {
        self.dir.join("ruleset.nft")
    }

    /// The command that loads the ruleset with `tool`.
    fn command(&self, tool: Tool) -> Command {
        match tool {
            Tool::Apply => {
                let mut c = Command::new(&self.netpolctl);
                c.arg("apply")
                    .arg("--policies")
                    .arg(self.policies())
                    .arg("--inventory")
                    .arg(self.inventory());
                for l in &self.locals {
                    c.args(["--local", l]);
                }
                c
            }
            Tool::Nft => {
                let mut c = Command::new("nft");
                c.arg("-f").arg(self.ruleset());
                c
            }
        }
    }
}

/// One process's resource use.
#[derive(Clone, Copy, Debug)]
struct Usage {
    wall: Duration,
    user: Duration,
    sys: Duration,
    /// Peak resident set size, KiB.
    maxrss_kib: u64,
}

/// Waits for `pid` and returns its exit status and resource use. `std::process::Child`
/// has no way to get a child's `rusage`; `wait4` gives that child's own (unlike
/// `getrusage(RUSAGE_CHILDREN)`, which keeps the largest of all children's peaks).
#[allow(unsafe_code)]
fn wait4(pid: u32) -> std::io::Result<(ExitStatus, libc::rusage)> {
    use std::os::unix::process::ExitStatusExt;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    loop {
        // SAFETY: `status` and `usage` are live, writable and of the types wait4 takes;
        // `pid` is our own unwaited child, so no other code reaps it meanwhile.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((ExitStatus::from_raw(status), usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs `cmd` to completion with its stdout in `out` and returns its resource use, or
/// its stderr when it fails.
fn run_measured(mut cmd: Command, out: &Path) -> Result<Usage, String> {
    let stdout = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    cmd.stdout(stdout).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
    let (status, usage) = wait4(child.id()).map_err(|e| format!("wait4: {e}"))?;
    let wall = started.elapsed();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        return Err(format!("{cmd:?} failed ({status}): {err}"));
    }
    Ok(Usage {
        wall,
        user: tv(usage.ru_utime),
        sys: tv(usage.ru_stime),
        maxrss_kib: usage.ru_maxrss as u64,
    })
}

/// `--measure`: in a fresh namespace, one timed load; prints one `key=value` line.
fn measure_child(files: &Files, tool: Tool, situation: Situation, verify: bool) {
    let parent = std::env::var(ENV_PARENT).unwrap_or_default();
    assert!(
        !parent.is_empty() && parent != own_namespace(),
        "refusing to load rulesets outside a network namespace of the benchmark's own"
    );
    let out = files.dir.join(format!("out-{}", std::process::id()));
    if situation == Situation::Replace {
        if let Err(e) = run_measured(files.command(tool), &out) {
            panic!("preloading: {e}");
        }
    }
    let usage = run_measured(files.command(tool), &out).unwrap_or_else(|e| panic!("{e}"));
    let printed = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let mut line = format!(
        "wall_ns={} user_ns={} sys_ns={} maxrss_kib={}",
        usage.wall.as_nanos(),
        usage.user.as_nanos(),
        usage.sys.as_nanos(),
        usage.maxrss_kib
    );
    // apply reports "…; encode X ms, kernel Y ms)".
    if let Some((encode, kernel)) = encode_kernel(&printed) {
        let _ = write!(line, " encode_ms={encode} kernel_ms={kernel}");
    }
    if verify {
        // What the kernel holds now, read back over netlink: "table inet netpol: 202
        // chains, 1010 rules, 802 sets and maps, 100400 elements".
        let show = Command::new(&files.netpolctl)
            .arg("show")
            .output()
            .expect("netpolctl show");
        let first = String::from_utf8_lossy(&show.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let _ = write!(line, " loaded={}", first.replace(' ', "_"));
    }
    // An empty namespace is cheaper to tear down: keep that work out of the next run.
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", "netpol"])
        .status();
    println!("{line}");
}

fn encode_kernel(apply_stdout: &str) -> Option<(f64, f64)> {
    let line = apply_stdout
        .lines()
        .find(|l| l.starts_with("applied table"))?;
    let num = |key: &str| -> Option<f64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split(' ').next()?.parse().ok()
    };
    Some((num("encode ")?, num("kernel ")?))
}

/// One measurement as the child reported it.
#[derive(Clone, Debug)]
struct Sample {
    usage: Usage,
    encode_ms: Option<f64>,
    kernel_ms: Option<f64>,
    loaded: Option<String>,
}

fn parse_sample(line: &str) -> Sample {
    let mut usage = Usage {
        wall: Duration::ZERO,
        user: Duration::ZERO,
        sys: Duration::ZERO,
        maxrss_kib: 0,
    };
    let mut s = Sample {
        usage,
        encode_ms: None,
        kernel_ms: None,
        loaded: None,
    };
    for kv in line.split(' ') {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let ns = || Duration::from_nanos(v.parse().expect("nanoseconds"));
        match k {
            "wall_ns" => usage.wall = ns(),
            "user_ns" => usage.user = ns(),
            "sys_ns" => usage.sys = ns(),
            "maxrss_kib" => usage.maxrss_kib = v.parse().expect("KiB"),
            "encode_ms" => s.encode_ms = v.parse().ok(),
            "kernel_ms" => s.kernel_ms = v.parse().ok(),
            "loaded" => s.loaded = Some(v.replace('_', " ")),
            _ => {}
        }
    }
    s.usage = usage;
    s
}

/// Runs one measurement in a fresh network namespace.
fn measure_in_namespace(
    files: &Files,
    tool: Tool,
    situation: Situation,
    verify: bool,
) -> Result<Sample, String> {
    let exe = std::env::current_exe().expect("the benchmark's path");
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--"])
        .arg(exe)
        .args(["--measure", tool.name(), situation.name()])
        .arg("--dir")
        .arg(&files.dir)
        .arg("--netpolctl")
        .arg(&files.netpolctl)
        .env(ENV_PARENT, own_namespace());
    if verify {
        cmd.arg("--verify");
    }
    let out = cmd.output().map_err(|e| format!("unshare: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} {} failed: {stdout}{}",
            tool.name(),
            situation.name(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("wall_ns="))
        .ok_or_else(|| format!("no measurement in {stdout:?}"))?;
    Ok(parse_sample(line))
}

/// Median, fastest and slowest.
#[derive(Clone, Copy, Debug)]
struct Stats<T> {
    median: T,
    min: T,
    max: T,
}

fn stats<T: Copy + PartialOrd>(mut v: Vec<T>) -> Stats<T> {
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    Stats {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn fmt_ms(s: Stats<f64>) -> String {
    format!("{:.0} ms [{:.0}–{:.0}]", s.median, s.min, s.max)
}

fn fmt_mib(s: Stats<u64>) -> String {
    let m = |k: u64| k as f64 / 1024.0;
    format!("{:.1} MiB [{:.1}–{:.1}]", m(s.median), m(s.min), m(s.max))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn tool_version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

struct Args {
    reps: usize,
    netpolctl: Option<PathBuf>,
    keep: Option<PathBuf>,
    measure: Option<(Tool, Situation)>,
    dir: Option<PathBuf>,
    verify: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        reps: 7,
        netpolctl: None,
        keep: None,
        measure: None,
        dir: None,
        verify: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--reps" => {
                a.reps = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n > 0)
                    .expect("--reps needs a positive number");
            }
            "--netpolctl" => {
                let path = args.next().expect("--netpolctl PATH");
                a.netpolctl = Some(absolute_path_arg("--netpolctl", path));
            }
            "--keep" => a.keep = Some(args.next().expect("--keep DIR").into()),
            "--dir" => a.dir = Some(args.next().expect("--dir DIR").into()),
            "--verify" => a.verify = true,
            "--measure" => {
                let tool = match args.next().as_deref() {
                    Some("apply") => Tool::Apply,
                    Some("nft") => Tool::Nft,
                    other => panic!("--measure apply|nft, got {other:?}"),
                };
                let situation = match args.next().as_deref() {
                    Some("empty") => Situation::Empty,
                    Some("replace") => Situation::Replace,
                    other => panic!("--measure TOOL empty|replace, got {other:?}"),
                };
                a.measure = Some((tool, situation));
            }
            other => {
                panic!("unknown argument {other:?} (known: --reps N, --netpolctl PATH, --keep DIR)")
            }
        }
    }
    a
}

/// In-process timings of what `netpolctl apply` does before the kernel.
struct Compile {
    load: Stats<f64>,
    plan: Stats<f64>,
    render: Stats<f64>,
    rules: usize,
    elements: usize,
    nft_bytes: usize,
    yaml_bytes: usize,
}

fn compile(files: &Files, runs: usize) -> (Compile, String) {
    let read = |p: PathBuf| Input {
        text: std::fs::read_to_string(&p)
            .expect("reading the input")
            .into(),
        path: p,
    };
    let policies = [read(files.policies())];
    let inventory = [read(files.inventory())];
    let (mut load, mut planning, mut rendering) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let loaded = rules_compiler::load_model(&policies, &inventory)
            .unwrap_or_else(|r| panic!("the fleet input is rejected: {r}"));
        load.push(ms(t.elapsed()));
        let t = Instant::now();
        let index = Index::new(&loaded.model);
        let ids: Vec<_> = files
            .locals
            .iter()
            .map(|n| {
                let name = ObjectName::parse(n).expect("NS/NAME");
                loaded
                    .model
                    .inventory
                    .endpoint_index(&name)
                    .expect("a local endpoint of the inventory")
            })
            .collect();
        let plan = plan::build(
            &index,
            &ids,
            &plan::Options {
                deny: DenyAction::Drop,
                ..Default::default()
            },
        );
        planning.push(ms(t.elapsed()));
        let t = Instant::now();
        let text = render::nft(&plan);
        rendering.push(ms(t.elapsed()));
        last = Some((plan.rule_count(), plan.element_count(), text));
    }
    let (rules, elements, text) = last.expect("runs > 0");
    (
        Compile {
            load: stats(load),
            plan: stats(planning),
            render: stats(rendering),
            rules,
            elements,
            nft_bytes: text.len(),
            yaml_bytes: policies[0].text.len() + inventory[0].text.len(),
        },
        text,
    )
}

fn main() {
    let args = parse_args();
    if let Some((tool, situation)) = args.measure {
        let files = Files {
            dir: args.dir.expect("--measure needs --dir"),
            netpolctl: args.netpolctl.expect("--measure needs --netpolctl"),
            locals: FleetScale::DEFAULT.local_names(),
        };
        measure_child(&files, tool, situation, args.verify);
        return;
    }

    if let Err(why) = check_unshare(&["nft", "list", "ruleset"]) {
        eprintln!("SKIPPED: {why} (and nftables)");
        return;
    }
    let netpolctl = args
        .netpolctl
        .clone()
        .unwrap_or_else(|| build_daemon_bin("netpolctl"));
    let scale = FleetScale::DEFAULT;
    // The inputs, in --keep DIR or in a temporary directory removed at the end.
    let (dir, _temp) = input_dir(args.keep.as_deref(), "netpol-apply-bench-");
    let files = Files {
        dir,
        netpolctl: netpolctl.canonicalize().expect("netpolctl's path"),
        locals: scale.local_names(),
    };
    std::fs::write(files.policies(), policies_yaml(&scale)).expect("writing policies");
    std::fs::write(files.inventory(), inventory_yaml(&scale)).expect("writing inventory");

    eprintln!("compiling in process …");
    let (comp, text) = compile(&files, args.reps);
    std::fs::write(files.ruleset(), &text).expect("writing the ruleset");
    // The text nft loads must be what netpolctl itself would render.
    let mut compile_cmd = files.command(Tool::Apply);
    let argv: Vec<_> = compile_cmd
        .get_args()
        .skip(1)
        .map(|a| a.to_owned())
        .collect();
    compile_cmd = Command::new(&files.netpolctl);
    compile_cmd.arg("compile").args(argv);
    let theirs = compile_cmd.output().expect("netpolctl compile");
    assert!(
        theirs.status.success() && theirs.stdout == text.as_bytes(),
        "netpolctl compile differs from render::nft of the plan"
    );

    let cases = [
        (Tool::Apply, Situation::Empty),
        (Tool::Nft, Situation::Empty),
        (Tool::Apply, Situation::Replace),
        (Tool::Nft, Situation::Replace),
    ];
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); cases.len()];
    for rep in 0..args.reps {
        eprintln!("repetition {} of {} …", rep + 1, args.reps);
        // Rotate the order so no case always follows the same one.
        for k in 0..cases.len() {
            let i = (k + rep) % cases.len();
            let (tool, situation) = cases[i];
            let sample = measure_in_namespace(&files, tool, situation, rep == 0)
                .unwrap_or_else(|e| panic!("{e}"));
            samples[i].push(sample);
            // Let the kernel finish tearing the namespace down before the next run.
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    // Both tools must have loaded the plan: the same rules and elements read back.
    for (i, (tool, situation)) in cases.iter().enumerate() {
        let loaded = samples[i][0].loaded.clone().unwrap_or_default();
        let want = format!("{} rules", comp.rules);
        assert!(
            loaded.contains(&want) && loaded.contains(&format!("{} elements", comp.elements)),
            "{} {}: the kernel holds {loaded:?}, the plan has {} rules and {} elements",
            tool.name(),
            situation.name(),
            comp.rules,
            comp.elements
        );
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "netpol apply benchmark — fleet {} local endpoints × {} shards × {} peers, {} blocks",
        scale.locals, scale.shards, scale.peers_per_shard, scale.blocks
    );
    let online = std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "cpu: {}, {online} cores, of which this run may use {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        out,
        "kernel: {}; {}",
        tool_version("uname", "-r"),
        tool_version("nft", "--version")
    );
    let _ = writeln!(out, "netpolctl: {}", files.netpolctl.display());
    let _ = writeln!(
        out,
        "ruleset: {} rules, {} set elements; YAML {} bytes, nft text {} bytes; loaded back: {}",
        comp.rules,
        comp.elements,
        comp.yaml_bytes,
        comp.nft_bytes,
        samples[0][0].loaded.as_deref().unwrap_or("?")
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} repetitions, each in a fresh network namespace; median [min–max].",
        args.reps
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| situation | tool | wall | user | sys | peak RSS | apply's encode | apply's kernel |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let wall = |i: usize| stats(samples[i].iter().map(|s| ms(s.usage.wall)).collect());
    let rss = |i: usize| stats(samples[i].iter().map(|s| s.usage.maxrss_kib).collect());
    for (i, (tool, situation)) in cases.iter().enumerate() {
        let user = stats(samples[i].iter().map(|s| ms(s.usage.user)).collect());
        let sys = stats(samples[i].iter().map(|s| ms(s.usage.sys)).collect());
        let opt = |f: fn(&Sample) -> Option<f64>| {
            let v: Vec<f64> = samples[i].iter().filter_map(f).collect();
            if v.is_empty() {
                "-".to_string()
            } else {
                fmt_ms(stats(v))
            }
        };
        let tool_name = match tool {
            Tool::Apply => "`netpolctl apply`",
            Tool::Nft => "`nft -f`",
        };
        let _ = writeln!(
            out,
            "| {} | {tool_name} | {} | {} | {} | {} | {} | {} |",
            match situation {
                Situation::Empty => "empty namespace",
                Situation::Replace => "replace loaded table",
            },
            fmt_ms(wall(i)),
            fmt_ms(user),
            fmt_ms(sys),
            fmt_mib(rss(i)),
            opt(|s| s.encode_ms),
            opt(|s| s.kernel_ms),
        );
    }
    let _ = writeln!(out);
    let cpu = |i: usize| {
        stats(
            samples[i]
                .iter()
                .map(|s| ms(s.usage.user + s.usage.sys))
                .collect(),
        )
    };
    for (a, n, what) in [(0, 1, "empty namespace"), (2, 3, "replace")] {
        let _ = writeln!(
            out,
            "- {what}: apply / nft wall time = {:.2} (target ≤ 0.50); CPU time (user + sys) {:.2}; peak RSS apply / nft = {:.2} (target < 1)",
            wall(a).median / wall(n).median,
            cpu(a).median / cpu(n).median,
            rss(a).median as f64 / rss(n).median as f64,
        );
    }
    let median_of = |f: fn(&Sample) -> Option<f64>| {
        let v: Vec<f64> = samples[0].iter().filter_map(f).collect();
        (!v.is_empty()).then(|| stats(v).median)
    };
    if let (Some(encode), Some(kernel)) = (median_of(|s| s.encode_ms), median_of(|s| s.kernel_ms)) {
        let _ = writeln!(
            out,
            "- apply in an empty namespace, by its own report: kernel (sending the batch until the kernel's answer) {kernel:.0} ms, encode {encode:.0} ms, everything else (start, read, parse, validate, plan, exit) {:.0} ms",
            wall(0).median - kernel - encode
        );
    }
    let before = comp.load.median + comp.plan.median;
    let _ = writeln!(
        out,
        "- before the kernel, in process: load + validate YAML {}, index + plan {}: {:.0} ms, {:.0} % of apply's wall time in an empty namespace (render to nft text, which apply does not do: {})",
        fmt_ms(comp.load),
        fmt_ms(comp.plan),
        before,
        100.0 * before / wall(0).median,
        fmt_ms(comp.render),
    );
    print!("{out}");
}
