//! Decode-cache benchmark: what a load through netpold's decode cache
//! (`rules_compiler::load_model_cached`) costs after the inventory changed in each way
//! below, beside a cold load of the same input, in one run, on the compile
//! benchmark's generated YAML (by default 100 %: 10,000 policies, 50,000 pods).
//!
//! Each round loads the whole input through one cache (not timed), then for each case
//! runs its loads in order and times the last:
//! - edit: one pod's `uid` changed (one document's bytes, no line moved; another pod
//!   each round);
//! - empty, whole: the inventory read empty (a truncating write seen early), then whole;
//! - half, whole: read cut in the middle of a document half-way, then whole;
//! - in place: read empty, then cut at a third and at two thirds, then whole;
//! - rewrite: every pod's `uid` changed (every document decoded again).
//!
//! Prints per case the median [min–max], the documents decoded by the timed load, the
//! median over the cold load's, and the median of the loads before it together (what
//! the cut-short reads cost). It measures; it asserts only that each case's
//! model is the cold load's.
//!
//! Run: `cargo bench -p netpol-benches --bench decode_cache`
//! Options after `--`: `--scale PCT` (default 100), `--rounds N` (default 5),
//! `--seed N` (1).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use netpol_benches::yaml::{inventory_yaml, policies_yaml};
use netpol_benches::{generate, Scale};
use rules_compiler::load::{Input, Limits};
use rules_compiler::validate::DecodeCache;
use rules_compiler::{load_model_cached, load_model_within, Loaded};

fn input(path: &str, text: String) -> Input {
    Input {
        path: path.into(),
        text: text.into(),
    }
}

/// The byte offset of the `n`th match of `what` in `text`.
fn nth(text: &str, what: &str, n: usize) -> usize {
    text.match_indices(what)
        .nth(n)
        .unwrap_or_else(|| panic!("fewer than {} of {what:?}", n + 1))
        .0
}

/// `text` with the first hex digit of the `n`th pod's uid changed (`every`: of all).
fn uid_changed(text: &str, n: Option<usize>) -> String {
    let flip = |d: char| if d == 'f' { '0' } else { 'f' };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut seen = 0;
    while let Some(at) = rest.find("  uid: ") {
        let digit = at + "  uid: ".len();
        out.push_str(&rest[..digit]);
        let d = rest[digit..].chars().next().expect("a uid");
        out.push(if n.is_none_or(|n| n == seen) {
            flip(d)
        } else {
            d
        });
        rest = &rest[digit + 1..];
        seen += 1;
    }
    out.push_str(rest);
    out
}

/// Options (after `cargo bench … --`).
#[derive(clap::Parser, Debug)]
struct Args {
    /// The input's size, in percent of the full one.
    #[arg(long, default_value_t = 100)]
    scale: usize,
    /// Rounds of every case.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The generator's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let Args {
        scale: pct,
        rounds,
        seed,
        ..
    } = <Args as clap::Parser>::parse();
    let model = generate(&Scale::FULL.percent(pct), seed);
    let policies = [input("policies.yaml", policies_yaml(&model))];
    let whole = inventory_yaml(&model);
    let pods = whole.matches("\nkind: Pod\n").count();
    let docs = whole.matches("\n---\n").count() + 1;
    println!(
        "input: {pct} % ({} policies, {pods} pods, {docs} inventory documents), {:.1} MB",
        model.policies.len(),
        (policies[0].text.len() + whole.len()) as f64 / 1e6
    );
    let limits = Limits::default();
    let cut = |at: usize| whole[..at].to_string();
    let pod_at = |k: usize| nth(&whole, "\nkind: Pod\n", k);
    // The edit case's text is made each round.
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("edit", vec![]),
        ("empty, whole", vec![String::new(), whole.clone()]),
        (
            "half, whole",
            vec![cut(pod_at(pods / 2) + 40), whole.clone()],
        ),
        (
            "in place: empty, 1/3, 2/3, whole",
            vec![
                String::new(),
                cut(pod_at(pods / 3) + 40),
                cut(pod_at(2 * pods / 3) + 40),
                whole.clone(),
            ],
        ),
        ("rewrite", vec![uid_changed(&whole, None)]),
    ];

    // A cut-short read may be rejected (a half document); the timed loads may not.
    let load = |cache: Option<&mut DecodeCache>, text: &str| -> (Duration, Option<Loaded>) {
        let inventory = [input("inventory.yaml", text.to_string())];
        let start = Instant::now();
        let loaded = match cache {
            Some(cache) => load_model_cached(&policies, &inventory, &limits, cache),
            None => load_model_within(&policies, &inventory, &limits),
        };
        (start.elapsed(), loaded.ok())
    };
    let mut cold = Vec::new();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut before: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut decoded = vec![0; cases.len()];
    let mut cache = DecodeCache::default();
    for round in 0..rounds {
        let (t, reference) = load(None, &whole);
        let reference = reference.expect("the generated input loads");
        cold.push(t);
        let edit = [uid_changed(&whole, Some(pods / 2 + round))];
        for (i, (_, loads)) in cases.iter().enumerate() {
            let loads = if loads.is_empty() { &edit[..] } else { loads };
            load(Some(&mut cache), &whole);
            let mut last = None;
            let mut earlier = Duration::ZERO;
            for text in loads {
                earlier += last.take().map_or(Duration::ZERO, |(t, _)| t);
                last = Some(load(Some(&mut cache), text));
            }
            before[i].push(earlier);
            let (t, loaded) = last.expect("a case has loads");
            let loaded = loaded.unwrap_or_else(|| panic!("{}: the last load fails", cases[i].0));
            if loads.last() == Some(&whole) {
                assert!(
                    loaded.model == reference.model,
                    "{}: another model",
                    cases[i].0
                );
            }
            times[i].push(t);
            decoded[i] = cache.last().decoded;
        }
    }

    let stats = |t: &mut Vec<Duration>| {
        t.sort();
        (t[t.len() / 2], t[0], t[t.len() - 1])
    };
    let (cold_median, cmin, cmax) = stats(&mut cold);
    println!();
    println!(
        "| load | rounds | time, median [min–max] | documents decoded | / cold | loads before it |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| cold (no cache) | {rounds} | {cold_median:.1?} [{cmin:.1?}–{cmax:.1?}] | all | 1.00 | – |"
    );
    for (i, (name, _)) in cases.iter().enumerate() {
        let (m, min, max) = stats(&mut times[i]);
        let (b, _, _) = stats(&mut before[i]);
        println!(
            "| {name} | {rounds} | {m:.1?} [{min:.1?}–{max:.1?}] | {} | {:.2} | {b:.1?} |",
            decoded[i],
            m.as_secs_f64() / cold_median.as_secs_f64()
        );
    }
}
