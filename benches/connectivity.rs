//! Connectivity summary benchmark: what netpold's reload summary
//! (`rules_compiler::connectivity::summary`, computed after each applied reload) costs
//! at 1 %, 10 % and 100 % of 10,000 policies over 50,000 endpoints, for one local
//! endpoint (the busiest, [`netpol_benches::busiest_endpoint`]) as netpold's usual
//! case, and for 10 local endpoints.
//!
//! The changes: every policy of the local endpoint's namespace that isolates it is
//! removed (its connectivity changes a lot; the plans differ in their chains), and a
//! peer's address moved ([`netpol_benches::edits::find_edit`], `MoveIp`: the plans
//! differ in set elements only, as in most reloads). Timed, median / min / max of several runs:
//! `Ends::of` (done for each applied model) and `summary` (every local endpoint with
//! every endpoint and ipBlock peer, both ways). The plans are built once, outside the
//! timings. It measures; it asserts nothing about time.
//!
//! Run: `taskset -c 0 cargo bench -p netpol-benches --bench connectivity`
//! Options after `--`: `--scales 1,10,100` (percent of the full size), `--seed N`.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use netpol_benches::edits::{find_edit, EditKind};
use netpol_benches::{busiest_endpoint, generate, Scale};
use rules_compiler::connectivity::{self, Ends, Side};
use rules_compiler::model::{Direction, ObjectName};
use rules_compiler::resolve::Index;
use rules_compiler::{plan, Target};

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(black_box(f()));
        times.push(t.elapsed());
    }
    times.sort();
    (
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        last.unwrap(),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let scales: Vec<usize> = value("--scales")
        .unwrap_or_else(|| "1,10,100".into())
        .split(',')
        .map(|s| s.parse().expect("--scales: percentages"))
        .collect();
    let seed: u64 = value("--seed").map_or(1, |s| s.parse().expect("--seed N"));
    println!(
        "| size | locals | change | ends | Ends::of ms | summary ms (median / min / max) | flows +/- |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for pct in scales {
        let scale = Scale::FULL.percent(pct);
        let old = generate(&scale, seed);
        let index = Index::new(&old);
        let busiest = busiest_endpoint(&index).expect("an endpoint");
        let local = old.inventory.endpoints[busiest].id.clone();
        let isolating = index.isolating(busiest, Direction::Ingress);
        let mut new = old.clone();
        let mut gone: Vec<usize> = isolating;
        gone.sort_unstable();
        for p in gone.into_iter().rev() {
            new.policies.remove(p);
        }
        let ten: Vec<ObjectName> = std::iter::once(local.clone())
            .chain(
                old.inventory
                    .endpoints
                    .iter()
                    .step_by((old.inventory.endpoints.len() / 9).max(1))
                    .map(|e| e.id.clone()),
            )
            .take(10)
            .collect();
        for locals in [vec![local.clone()], ten] {
            let plan_of = |m| {
                rules_compiler::compile(m, Target::Named(&locals), &plan::Options::default())
                    .unwrap()
                    .plan
            };
            let (pa, pb) = (plan_of(&old), plan_of(&new));
            let runs = if pct >= 100 { 5 } else { 11 };
            let (ends_ms, _, _, ea) = time(runs, || Ends::of(&old));
            let moved = find_edit(&old, &locals, &pa, EditKind::MoveIp, seed + 7, 40)
                .expect("a peer whose address can move");
            let changes = [
                ("policies removed", Ends::of(&new), pb),
                ("a peer's address moved", Ends::of(&moved.model), moved.plan),
            ];
            for (change, eb, pb) in &changes {
                let (med, min, max, s) = time(runs, || {
                    connectivity::summary(
                        Side {
                            ends: &ea,
                            plan: &pa,
                        },
                        Side { ends: eb, plan: pb },
                    )
                });
                println!(
                    "| {pct} % ({} endpoints, {} policies) | {} | {change} | {} | {} | {} / {} / {} | +{} / -{} |",
                    scale.endpoints,
                    scale.policies,
                    locals.len(),
                    ea.len(),
                    ms(ends_ms),
                    ms(med),
                    ms(min),
                    ms(max),
                    s.allowed,
                    s.denied
                );
            }
        }
    }
}
