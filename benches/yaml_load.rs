//! YAML load benchmark: the loader's fast path for kubectl-style YAML
//! (`rules-compiler/src/load/fast.rs`) against saphyr-parser alone, side by side in one
//! run, on the compile benchmark's generated input (by default 100 %: 10,000
//! policies, 50,000 pods, 1,000 namespaces, 38 MB).
//!
//! For each run, both ways in turn (fast first on even runs, saphyr first on odd ones):
//! - parse: `load::parse` of every input (split + `Builder::load` of every chunk), as
//!   MB/s of YAML (freeing the trees afterwards is not timed);
//! - stream: `load::documents` of every input, each tree freed as soon as it comes
//!   (what a consumer done with each document before the next pays: mostly scanning);
//! - load + validate: `rules_compiler::load_model` of the same inputs.
//!
//! Prints medians [min–max], and how many chunks (documents) the fast path declined;
//! fails if the fast path ever gave another tree than saphyr or the two models differ.
//!
//! Run: `taskset -c 0 cargo bench -p netpol-benches --bench yaml_load`
//! Options after `--`: `--scale PCT` (default 100), `--runs N` (default 7), `--seed N`.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use netpol_benches::yaml::{inventory_yaml, policies_yaml};
use netpol_benches::{generate, Scale};
use rules_compiler::load::{self, Input, Limits};

fn main() {
    let mut pct = 100;
    let mut runs = 7;
    let mut seed = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} wants a number"))
        };
        match arg.as_str() {
            "--scale" => pct = value() as usize,
            "--runs" => runs = value() as usize,
            "--seed" => seed = value(),
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    let model = generate(&Scale::FULL.percent(pct), seed);
    let policies = [Input {
        path: "policies.yaml".into(),
        text: policies_yaml(&model).into(),
    }];
    let inventory = [Input {
        path: "inventory.yaml".into(),
        text: inventory_yaml(&model).into(),
    }];
    let bytes: usize = policies[0].text.len() + inventory[0].text.len();
    let limits = Limits::default();

    let (mut chunks, mut declined) = (0, 0);
    // For profiling: no comparison, the fast path only.
    let only_fast = std::env::var_os("YAML_LOAD_ONLY_FAST").is_some();
    let compare = !only_fast;
    for input in policies.iter().chain(&inventory).filter(|_| compare) {
        let c = load::compare_with_saphyr(&input.text, &limits);
        assert_eq!(c.mismatch, None, "the fast path differs from saphyr");
        chunks += c.chunks;
        declined += c.declined;
    }
    println!(
        "input: {pct} % ({} policies, {} pods, {} namespaces), {:.1} MB, {chunks} chunks, \
         {declined} declined by the fast path ({:.2} %)",
        model.policies.len(),
        model.inventory.endpoints.len(),
        model.inventory.namespaces.len(),
        bytes as f64 / 1e6,
        100.0 * declined as f64 / chunks.max(1) as f64,
    );

    // [fast, saphyr] × [parse, load + validate, stream]
    let mut times: [[Vec<Duration>; 3]; 2] = Default::default();
    let mut models = [None, None];
    for run in 0..runs {
        for i in 0..2 {
            let way = if run % 2 == 0 { i } else { 1 - i };
            if way == 1 && only_fast {
                continue;
            }
            load::set_fast_yaml(way == 0);
            let start = Instant::now();
            let parsed: Vec<_> = policies
                .iter()
                .chain(&inventory)
                .map(|input| load::parse(input, &limits))
                .collect();
            times[way][0].push(start.elapsed());
            // Freeing the trees is the same work both ways: not timed.
            drop(black_box(parsed));
            let start = Instant::now();
            for input in policies.iter().chain(&inventory) {
                for doc in load::documents(input, &limits) {
                    drop(black_box(doc));
                }
            }
            times[way][2].push(start.elapsed());
            let start = Instant::now();
            let loaded = black_box(rules_compiler::load_model(&policies, &inventory));
            times[way][1].push(start.elapsed());
            models[way] = Some(loaded.expect("the generated input loads").model);
        }
    }
    load::set_fast_yaml(true);
    if only_fast {
        return;
    }
    assert!(
        models[0] == models[1],
        "the two ways loaded different models"
    );

    let stats = |t: &mut Vec<Duration>| {
        t.sort();
        (t[t.len() / 2], t[0], t[t.len() - 1])
    };
    let mbps = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    println!();
    println!(
        "| path | runs | parse (split + Builder::load) | MB/s | stream (each tree freed at once) | MB/s | load + validate |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut medians = [[Duration::ZERO; 3]; 2];
    for (way, name) in [(0, "fast path"), (1, "saphyr only")] {
        let (pm, pmin, pmax) = stats(&mut times[way][0]);
        let (lm, lmin, lmax) = stats(&mut times[way][1]);
        let (sm, smin, smax) = stats(&mut times[way][2]);
        medians[way] = [pm, lm, sm];
        println!(
            "| {name} | {runs} | {pm:.3?} [{pmin:.3?}–{pmax:.3?}] | {:.0} | {sm:.3?} [{smin:.3?}–{smax:.3?}] | {:.0} | {lm:.3?} [{lmin:.3?}–{lmax:.3?}] |",
            mbps(pm),
            mbps(sm),
        );
    }
    println!();
    println!(
        "speed-up of the medians: parse ×{:.1}, stream ×{:.1}, load + validate ×{:.2}",
        medians[1][0].as_secs_f64() / medians[0][0].as_secs_f64(),
        medians[1][2].as_secs_f64() / medians[0][2].as_secs_f64(),
        medians[1][1].as_secs_f64() / medians[0][1].as_secs_f64(),
    );
}
