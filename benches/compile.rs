//! Compile benchmark: how long netpol takes to turn a large input into a ruleset, at
//! 1 %, 10 % and 100 % of 10,000 policies over 50,000 endpoints in 1,000 namespaces.
//!
//! For each size it times, as median / min / max of several runs (fewer at 100 %):
//! - compile: `resolve::Index::new` + `plan::build` for one local endpoint that several
//!   policies select, from the generated model (the target: < 1 s at 100 % on one core);
//! - render: `render::nft` of that plan;
//! - load: `rules_compiler::load_model` (parse + validate) of the same input as YAML;
//! - the same as JSON (issue 16: one kubectl `List` per file), and the parse alone of
//!   both (`load::documents`, every tree built and dropped, nothing validated), in MB/s
//!   of input, so that parse and validate can be told apart.
//!
//! and prints the ratio of each median to the smallest size's, so linear growth shows
//! as a ratio close to the size ratio. The local endpoint is chosen per size by
//! [`netpol_benches::busiest_endpoint`] (the heaviest one), so the compile is also
//! shown per 1,000 plan elements, and `Index::new` alone. It measures; it asserts
//! nothing about time.
//!
//! ClusterNetworkPolicy (issue 15): every size is measured twice in the same run,
//! NetworkPolicy only and with the generated cluster policies
//! ([`netpol_benches::cluster::cluster_policies`], by default 100 Admin + 100 Baseline
//! objects × 25 rules) added to the same model, for the same local endpoint; a third
//! table puts the two side by side: compile time, plan elements (sets / verdict maps),
//! rules, the longest chain and the local endpoint's chains.
//!
//! Run: `taskset -c 0 cargo bench -p netpol-benches --bench compile`
//! Options after `--`: `--scales 1,10,100` (percent of the full size), `--seed N`,
//! `--cluster A,B,R` (Admin objects, Baseline objects, rules each; `--cluster 0,0,0`
//! measures NetworkPolicy only).
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use netpol_benches::cluster::{cluster_policies, ClusterScale};
use netpol_benches::yaml::{
    cluster_policies_json, cluster_policies_yaml, inventory_json, inventory_yaml, policies_json,
    policies_yaml,
};
use netpol_benches::{busiest_endpoint, generate, strip_sources, Scale};
use rules_compiler::load::{self, Input, Limits};
use rules_compiler::model::Direction;
use rules_compiler::resolve::Index;
use rules_compiler::{plan, render};

/// Median, fastest and slowest of a stage's runs.
#[derive(Clone, Copy)]
struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

/// Runs `f` `runs` times and returns the timings and the last result. Results are
/// dropped outside the timed region. A panic (a stage still `todo!()`) is an `Err`
/// with its message, so the other stages still get measured.
fn measure<T>(runs: usize, mut f: impl FnMut() -> T) -> Result<(Stats, T), String> {
    panic::catch_unwind(AssertUnwindSafe(|| {
        let mut times = Vec::with_capacity(runs);
        let mut last = None;
        for _ in 0..runs {
            let start = Instant::now();
            let value = black_box(f());
            times.push(start.elapsed());
            last = Some(value);
        }
        times.sort();
        let stats = Stats {
            median: times[times.len() / 2],
            min: times[0],
            max: times[times.len() - 1],
        };
        (stats, last.expect("runs > 0"))
    }))
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into())
    })
}

/// A duration with three significant digits and a unit that fits.
fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    let (v, unit) = if s >= 1.0 {
        (s, "s")
    } else if s >= 1e-3 {
        (s * 1e3, "ms")
    } else {
        (s * 1e6, "µs")
    };
    if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else if v >= 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

/// Runs per stage: enough for a stable median, fewer where one run takes seconds.
fn runs_for(pct: usize) -> usize {
    match pct {
        0..=1 => 21,
        2..=10 => 9,
        _ => 5,
    }
}

struct Row {
    pct: usize,
    /// With cluster policies (`None`: NetworkPolicy only).
    cluster: Option<ClusterScale>,
    runs: usize,
    scale: Scale,
    local: String,
    isolating: (usize, usize),
    yaml_bytes: usize,
    generate: Duration,
    index: Result<Stats, String>,
    compile: Result<Stats, String>,
    render: Result<Stats, String>,
    load: Result<Stats, String>,
    json_bytes: usize,
    load_json: Result<Stats, String>,
    /// Whether the JSON loads to the same model as the YAML.
    json_same: Option<bool>,
    parse_yaml: Result<Stats, String>,
    parse_json: Result<Stats, String>,
    elements: Option<usize>,
    rules: Option<usize>,
    nft_bytes: Option<usize>,
    round_trip: Option<bool>,
    /// Elements of plain sets, and of verdict maps (the cluster tiers' flattened maps
    /// plus the address → endpoint-chain dispatch maps).
    set_map_elements: Option<(usize, usize)>,
    /// The chain with the most rules: its name and rule count.
    longest_chain: Option<(String, usize)>,
    /// Rules of the local endpoint's ingress and egress chains (0 without one).
    local_chain_rules: Option<(usize, usize)>,
    /// Chains in the plan, and the local endpoint's tier deny chains.
    chains: Option<(usize, usize)>,
}

impl Row {
    fn input(&self) -> String {
        match self.cluster {
            None => "NetworkPolicy only".into(),
            Some(c) => format!(
                "+ {} Admin + {} Baseline × {} rules",
                c.admin, c.baseline, c.rules
            ),
        }
    }
}

fn run_scale(pct: usize, seed: u64, cluster: Option<ClusterScale>) -> Row {
    let scale = Scale::FULL.percent(pct);
    let runs = runs_for(pct);
    let start = Instant::now();
    let mut model = generate(&scale, seed);
    if let Some(c) = &cluster {
        model.cluster_policies = cluster_policies(c, seed);
    }
    let generate_time = start.elapsed();
    let (local, local_name, isolating) = {
        let index = Index::new(&model);
        let local = busiest_endpoint(&index).expect("the generated inventory has endpoints");
        (
            local,
            index.endpoint(local).id.to_string(),
            (
                index.isolating(local, Direction::Ingress).len(),
                index.isolating(local, Direction::Egress).len(),
            ),
        )
    };

    let index = measure(runs, || Index::new(&model)).map(|(s, _)| s);
    let compile = measure(runs, || {
        let index = Index::new(&model);
        plan::build(&index, &[local], &plan::Options::default())
    });
    let (compile, plan) = match compile {
        Ok((s, p)) => (Ok(s), Some(p)),
        Err(e) => (Err(e), None),
    };
    let (render, nft_bytes) = match &plan {
        Some(plan) => match measure(runs, || render::nft(plan)) {
            Ok((s, text)) => (Ok(s), Some(text.len())),
            Err(e) => (Err(e), None),
        },
        None => (Err("no plan".into()), None),
    };

    let mut policies = vec![Input {
        path: "policies.yaml".into(),
        text: policies_yaml(&model).into(),
    }];
    if cluster.is_some() {
        policies.push(Input {
            path: "cluster.yaml".into(),
            text: cluster_policies_yaml(&model).into(),
        });
    }
    let inventory = [Input {
        path: "inventory.yaml".into(),
        text: inventory_yaml(&model).into(),
    }];
    let yaml_bytes = policies.iter().map(|p| p.text.len()).sum::<usize>() + inventory[0].text.len();
    let (load, round_trip) =
        match measure(runs, || rules_compiler::load_model(&policies, &inventory)) {
            Ok((s, Ok(loaded))) => {
                let mut m = loaded.model;
                strip_sources(&mut m);
                (Ok(s), Some(m == model))
            }
            Ok((_, Err(rejected))) => (Err(format!("rejected: {rejected}")), None),
            Err(e) => (Err(e), None),
        };

    let mut policies_j = vec![Input {
        path: "policies.json".into(),
        text: policies_json(&model).into(),
    }];
    if cluster.is_some() {
        policies_j.push(Input {
            path: "cluster.json".into(),
            text: cluster_policies_json(&model).into(),
        });
    }
    let inventory_j = [Input {
        path: "inventory.json".into(),
        text: inventory_json(&model).into(),
    }];
    let json_bytes =
        policies_j.iter().map(|p| p.text.len()).sum::<usize>() + inventory_j[0].text.len();
    let (load_json, json_same) = match measure(runs, || {
        rules_compiler::load_model(&policies_j, &inventory_j)
    }) {
        Ok((s, Ok(loaded))) => {
            let mut m = loaded.model;
            strip_sources(&mut m);
            (Ok(s), Some(m == model))
        }
        Ok((_, Err(rejected))) => (Err(format!("rejected: {rejected}")), None),
        Err(e) => (Err(e), None),
    };
    // The parse alone: every document's tree built and dropped.
    let parse_all = |inputs: &[&Input]| {
        let limits = Limits::default();
        let mut docs = 0usize;
        for input in inputs {
            for doc in load::documents(input, &limits) {
                docs += usize::from(doc.expect("the generated input parses").root.line > 0);
            }
        }
        docs
    };
    let yaml_inputs: Vec<&Input> = policies.iter().chain(&inventory).collect();
    let json_inputs: Vec<&Input> = policies_j.iter().chain(&inventory_j).collect();
    let parse_yaml = measure(runs, || parse_all(&yaml_inputs)).map(|(s, _)| s);
    let parse_json = measure(runs, || parse_all(&json_inputs)).map(|(s, _)| s);

    let chain_rules = |p: &plan::Plan, name: Option<&str>| {
        name.and_then(|n| p.chain(n)).map_or(0, |c| c.rules().len())
    };
    Row {
        pct,
        cluster,
        runs,
        scale,
        local: local_name,
        isolating,
        yaml_bytes,
        generate: generate_time,
        index,
        compile,
        render,
        load,
        json_bytes,
        load_json,
        json_same,
        parse_yaml,
        parse_json,
        elements: plan.as_ref().map(|p| p.element_count()),
        rules: plan.as_ref().map(|p| p.rule_count()),
        nft_bytes,
        round_trip,
        set_map_elements: plan.as_ref().map(|p| {
            (
                p.sets()
                    .iter()
                    .filter(|s| !s.elements().is_map())
                    .map(|s| s.elements().len())
                    .sum(),
                p.sets()
                    .iter()
                    .filter(|s| s.elements().is_map())
                    .map(|s| s.elements().len())
                    .sum::<usize>()
                    + p.maps().iter().map(|m| m.elements().len()).sum::<usize>(),
            )
        }),
        longest_chain: plan.as_ref().and_then(|p| {
            p.chains()
                .iter()
                .max_by_key(|c| c.rules().len())
                .map(|c| (c.name().to_string(), c.rules().len()))
        }),
        local_chain_rules: plan.as_ref().map(|p| {
            let l = p.locals().first();
            (
                chain_rules(p, l.and_then(|l| l.chain(Direction::Ingress))),
                chain_rules(p, l.and_then(|l| l.chain(Direction::Egress))),
            )
        }),
        chains: plan.as_ref().map(|p| {
            (
                p.chains().len(),
                p.locals().first().map_or(0, |l| l.tier_chains.len()),
            )
        }),
    }
}

fn cell(stat: &Result<Stats, String>, base: Option<&Result<Stats, String>>) -> (String, String) {
    match stat {
        Ok(s) => {
            let ratio = match base {
                Some(Ok(b)) if !b.median.is_zero() => {
                    format!("×{:.1}", s.median.as_secs_f64() / b.median.as_secs_f64())
                }
                _ => "-".into(),
            };
            (
                format!("{} [{}–{}]", human(s.median), human(s.min), human(s.max)),
                ratio,
            )
        }
        Err(_) => ("n/a".into(), "-".into()),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
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

fn parse_args() -> (Vec<usize>, u64, Option<ClusterScale>) {
    let mut scales = vec![1, 10, 100];
    let mut seed = 1;
    let mut cluster = Some(ClusterScale::ISSUE_15);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--scales" => {
                scales = args
                    .next()
                    .expect("--scales needs a list such as 1,10,100")
                    .split(',')
                    .map(|s| s.trim().parse().expect("--scales: percent numbers"))
                    .collect();
            }
            "--seed" => {
                seed = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seed needs a number");
            }
            "--cluster" => {
                let v: Vec<usize> = args
                    .next()
                    .expect("--cluster needs A,B,R such as 100,100,25")
                    .split(',')
                    .map(|s| s.trim().parse().expect("--cluster: three numbers"))
                    .collect();
                let [admin, baseline, rules] = v[..] else {
                    panic!("--cluster needs three numbers: Admin, Baseline, rules each");
                };
                cluster = (admin + baseline > 0).then_some(ClusterScale {
                    admin,
                    baseline,
                    rules,
                });
            }
            other => panic!(
                "unknown argument {other:?} (known: --scales 1,10,100 --seed N --cluster A,B,R)"
            ),
        }
    }
    (scales, seed, cluster)
}

fn main() {
    let (scales, seed, cluster) = parse_args();
    // A stage that is still a stub panics; say so in one line instead of a backtrace.
    panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        eprintln!("  stage unavailable: {msg}");
    }));
    println!(
        "netpol compile benchmark — seed {seed}, full size = {} policies / {} endpoints / {} namespaces",
        Scale::FULL.policies,
        Scale::FULL.endpoints,
        Scale::FULL.namespaces
    );
    println!("cpu: {}", cpu_model());
    println!();

    let mut rows = Vec::new();
    for &pct in &scales {
        eprintln!("running {pct} % …");
        rows.push(run_scale(pct, seed, None));
        if cluster.is_some() {
            eprintln!("running {pct} % with cluster policies …");
            rows.push(run_scale(pct, seed, cluster));
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "| size | input | namespaces | endpoints | policies | local endpoint | isolating in/out | plan elements | plan rules | nft bytes | YAML bytes | YAML → same model | generate |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} % | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} |",
            r.pct,
            r.input(),
            r.scale.namespaces,
            r.scale.endpoints,
            r.scale.policies,
            r.local,
            r.isolating.0,
            r.isolating.1,
            opt(r.elements),
            opt(r.rules),
            opt(r.nft_bytes),
            r.yaml_bytes,
            r.round_trip
                .map_or("n/a", |same| if same { "yes" } else { "NO" }),
            human(r.generate),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Timings: median [min–max]; × is the median's ratio to the {} % size's of the same input (size ratio ×{}).",
        rows.first().map_or(0, |r| r.pct),
        rows.last()
            .zip(rows.first())
            .map_or(1, |(l, f)| l.pct / f.pct.max(1)),
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| size | input | runs | index alone | compile (index + plan) | × | per 1k plan elements | render nft | × | load + validate YAML | × |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let base = rows.iter().find(|b| b.cluster == r.cluster);
        let (i, _) = cell(&r.index, None);
        let (c, cx) = cell(&r.compile, base.map(|b| &b.compile));
        // The local endpoint differs per size, so time per plan element is the fair
        // measure of how the compile scales.
        let per_k = match (&r.compile, r.elements) {
            (Ok(s), Some(e)) if e > 0 => human(s.median.mul_f64(1000.0 / e as f64)),
            _ => "n/a".into(),
        };
        let (n, nx) = cell(&r.render, base.map(|b| &b.render));
        let (l, lx) = cell(&r.load, base.map(|b| &b.load));
        let _ = writeln!(
            out,
            "| {} % | {} | {} | {i} | {c} | {cx} | {per_k} | {n} | {nx} | {l} | {lx} |",
            r.pct,
            r.input(),
            r.runs
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Inputs, YAML against JSON (issue 16): the same objects, YAML as `---` documents, JSON as \
         one kubectl List per file; parse = `load::documents` alone (trees built and dropped), \
         load = parse + validate (`load_model`); MB/s of input at the median."
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| size | input | YAML bytes | parse YAML | MB/s | load YAML | JSON bytes | parse JSON | MB/s | load JSON | JSON → same model | load JSON / YAML |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let mbps = |stat: &Result<Stats, String>, bytes: usize| match stat {
            Ok(s) if !s.median.is_zero() => {
                format!("{:.0}", bytes as f64 / 1e6 / s.median.as_secs_f64())
            }
            _ => "n/a".into(),
        };
        let ratio = match (&r.load_json, &r.load) {
            (Ok(j), Ok(y)) if !y.median.is_zero() => {
                format!("×{:.2}", j.median.as_secs_f64() / y.median.as_secs_f64())
            }
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {} % | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {ratio} |",
            r.pct,
            r.input(),
            r.yaml_bytes,
            cell(&r.parse_yaml, None).0,
            mbps(&r.parse_yaml, r.yaml_bytes),
            cell(&r.load, None).0,
            r.json_bytes,
            cell(&r.parse_json, None).0,
            mbps(&r.parse_json, r.json_bytes),
            cell(&r.load_json, None).0,
            r.json_same
                .map_or("n/a", |same| if same { "yes" } else { "NO" }),
        );
    }
    if cluster.is_some() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "ClusterNetworkPolicy: each size without and with the cluster policies, same local endpoint; \
             × is with / without."
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| size | input | compile | × | plan elements (sets + verdict maps) | × | plan rules | chains | longest chain (rules) | local chain rules in / out | local tier deny chains | nft bytes | load + validate YAML | × |"
        );
        let _ = writeln!(
            out,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in &rows {
            let base = rows.iter().find(|b| b.pct == r.pct && b.cluster.is_none());
            let (c, cx) = cell(&r.compile, base.map(|b| &b.compile));
            let (l, lx) = cell(&r.load, base.map(|b| &b.load));
            let ex = match (r.elements, base.and_then(|b| b.elements)) {
                (Some(a), Some(b)) if b > 0 => format!("×{:.2}", a as f64 / b as f64),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "| {} % | {} | {c} | {cx} | {} ({}) | {ex} | {} | {} | {} | {} | {} | {} | {l} | {lx} |",
                r.pct,
                r.input(),
                opt(r.elements),
                r.set_map_elements
                    .map_or_else(|| "n/a".into(), |(s, m)| format!("{s} + {m}")),
                opt(r.rules),
                opt(r.chains.map(|c| c.0)),
                r.longest_chain
                    .as_ref()
                    .map_or_else(|| "n/a".into(), |(n, k)| format!("{n} ({k})")),
                r.local_chain_rules
                    .map_or_else(|| "n/a".into(), |(i, e)| format!("{i} / {e}")),
                opt(r.chains.map(|c| c.1)),
                opt(r.nft_bytes),
            );
        }
    }
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            [
                ("index", &r.index),
                ("compile", &r.compile),
                ("render", &r.render),
                ("load", &r.load),
                ("load JSON", &r.load_json),
                ("parse YAML", &r.parse_yaml),
                ("parse JSON", &r.parse_json),
            ]
            .into_iter()
            .filter_map(move |(what, s)| {
                s.as_ref()
                    .err()
                    .map(|e| format!("{} % {what}: {}", r.pct, e.lines().next().unwrap_or("")))
            })
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Not measured:");
        for f in failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    print!("{out}");
}
