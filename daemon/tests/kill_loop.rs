//! The kill -9 loop (issue 11): netpold killed at random moments of its reloads, both
//! replaces and incremental updates; after every kill the kernel must hold exactly the
//! table before the reload or the table after it, never a mix, never none.
//!
//! The input is the benchmarks' synthetic one (`netpol_benches`), with two local
//! endpoints: the busiest (`busiest_endpoint`, large sets) and one whose egress no
//! policy isolates. Four states, the bits of a number:
//!
//! - bit 0: a peer of the locals has another address (`edits::find_edit`, `MoveIp`):
//!   toggling it changes set elements only, an **update**;
//! - bit 1: `kill-loop.yaml` isolates the second local's egress (allowing UDP 53),
//!   a new chain, a **replace**; off, the same policy selects no pod.
//!
//! The loop walks 0 → 1 → 3 → 2 → 0 …, so updates and replaces alternate. The expected
//! table of each state is computed once: `netpolctl compile` of its files, loaded with
//! `nft -f` into a scratch namespace, listed, made comparable (`support::normalised`:
//! counters zeroed, elements sorted; the owner's head comment, the table's flags line
//! and blank lines dropped).
//!
//! Each kill: netpold runs in its namespace on state X (ready over `NOTIFY_SOCKET`);
//! the files are switched to Y atomically (a hard link renamed over the input); kills
//! 0, 1 (mod 4) also send SIGHUP, kills 2, 3 leave the reload to the file watch (100 ms
//! debounce); after a random delay netpold gets SIGKILL; the table is listed and must
//! equal X's or Y's, or X's with Y's sets, maps and chains loaded beside it but used by
//! no base chain (`support::enforced` leaves them out; killed between the two
//! transactions of a replace: `Slot` in the netlink module). netpold is then started again on Y, must become ready at
//! generation 1, and the kernel must then hold Y. The delays: before the loop one
//! reload of each kind is timed (`netpolctl reload`, with the table checked after it):
//! T, from the request to the answer, C, to the end of the kernel transaction (netpold's
//! compile + apply), and K, the transaction (apply); a kill without SIGHUP adds 120 ms
//! for the file watch's debounce. Kills 0–3 (mod 8) wait uniformly in 0..1.25 T
//! (before, during and after the reload), kills 4–7 in C − K − 0.15 C .. 1.05 C
//! (around the kernel transaction, whose share of a reload is small: parsing the YAML
//! dominates).
//!
//! Size and count (the whole loop at the size takes about 20 minutes, too long
//! for every `cargo test`):
//!
//! - `NETPOL_KILL_LOOP_KILLS` (default 24): kills;
//! - `NETPOL_KILL_LOOP_ENDPOINTS` (default 2,000; the input is 50,000, which is
//!   `netpol-synth`'s full size): endpoints, with namespaces and policies in the full
//!   input's proportions (1/50, 1/5);
//! - `NETPOL_KILL_LOOP_SEED`: the seed of the delays (default: from the clock; printed).
//!
//! The loop, with release binaries (`--release` builds the test's netpold and
//! netpolctl in release too; in debug, 50,000 endpoints take 23 s a compile):
//! `NETPOL_KILL_LOOP_KILLS=200 NETPOL_KILL_LOOP_ENDPOINTS=50000 cargo test --release -p
//! netpol-daemon --test kill_loop -- --nocapture`. Needs root; without it the test
//! says so and passes (in CI it fails).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netpol_benches::edits::{egress_policy, find_edit, plan_for, unisolated_egress, EditKind};
use netpol_benches::{busiest_endpoint, generate, yaml, Rng, Scale};
use rules_compiler::resolve::Index;
use serde_json::Value;

mod support;
use support::daemon::{Daemon, Lab, NETPOLCTL};
use support::{enforced, normalised, text, NetNs};

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// The inputs of the four states, kept in `store/`, and the locals.
struct Inputs {
    store: PathBuf,
    locals: Vec<String>,
    elements: usize,
}

impl Inputs {
    fn inventory(&self, state: usize) -> PathBuf {
        self.store
            .join(format!("inventory-{}.yaml", ["a", "b"][state & 1]))
    }

    fn extra(&self, state: usize) -> PathBuf {
        self.store
            .join(format!("kill-loop-{}.yaml", ["off", "on"][state >> 1 & 1]))
    }

    fn policies(&self) -> PathBuf {
        self.store.join("policies.yaml")
    }
}

/// Generates the input, picks the locals and the update edit, and writes the files of
/// every state under `store`.
fn prepare(store: &Path, endpoints: usize) -> Inputs {
    let scale = Scale::with_endpoints(endpoints);
    let model = generate(&scale, 1);
    let index = Index::new(&model);
    let busiest = busiest_endpoint(&index).expect("an endpoint isolated by some policy");
    let first = index.endpoint(busiest).id.clone();
    drop(index);
    // The second local: outside the busiest one's namespace, its egress not isolated
    // (so the extra policy adds a chain).
    let second = unisolated_egress(&model, &first.namespace)
        .expect("an endpoint whose egress is not isolated");
    let locals = vec![first, second.clone()];
    let base = plan_for(&model, &locals);
    let edit = find_edit(&model, &locals, &base, EditKind::MoveIp, 8, 40)
        .expect("a peer whose address change changes only set elements");
    println!("update edit: {}", edit.what);
    std::fs::create_dir_all(store).unwrap();
    std::fs::write(store.join("policies.yaml"), yaml::policies_yaml(&model)).unwrap();
    std::fs::write(store.join("inventory-a.yaml"), yaml::inventory_yaml(&model)).unwrap();
    std::fs::write(
        store.join("inventory-b.yaml"),
        yaml::inventory_yaml(&edit.model),
    )
    .unwrap();
    for on in [false, true] {
        let name = if on { "on" } else { "off" };
        std::fs::write(
            store.join(format!("kill-loop-{name}.yaml")),
            egress_policy(&second.namespace, "kill-loop", on),
        )
        .unwrap();
    }
    Inputs {
        store: store.to_path_buf(),
        locals: locals.iter().map(ToString::to_string).collect(),
        elements: base.sets().iter().map(|s| s.elements().len()).sum(),
    }
}

/// The expected table of `state`: its `compile` output loaded with `nft -f` in
/// `scratch`, listed, made comparable.
fn expected(inputs: &Inputs, state: usize, scratch: &NetNs) -> String {
    let mut args: Vec<String> = vec!["compile".into()];
    for (flag, path) in [
        ("--policies", inputs.policies()),
        ("--policies", inputs.extra(state)),
        ("--inventory", inputs.inventory(state)),
    ] {
        args.extend([flag.to_string(), path.display().to_string()]);
    }
    for l in &inputs.locals {
        args.extend(["--local".to_string(), l.clone()]);
    }
    let out = Command::new(NETPOLCTL).args(&args).output().unwrap();
    assert!(out.status.success(), "compile: {}", text(&out.stderr));
    let file = inputs.store.join(format!("state-{state}.nft"));
    std::fs::write(&file, &out.stdout).unwrap();
    scratch.ok("nft", &["-f", &file.display().to_string()]);
    normalised(&scratch.table().expect("the table nft -f loaded"))
}

/// Puts the files of `state` in place, each with a rename: an input is the old file or
/// the new one, never a part. Only the files that differ from `from`'s are touched.
fn switch(lab: &Lab, inputs: &Inputs, from: usize, to: usize) {
    let swap = |source: PathBuf, dir: &str, name: &str| {
        let tmp = lab.path(&format!("{dir}/.{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        std::fs::hard_link(source, &tmp).unwrap();
        std::fs::rename(&tmp, lab.path(&format!("{dir}/{name}"))).unwrap();
    };
    if from & 1 != to & 1 || from == to {
        swap(inputs.inventory(to), "inventory", "inventory.yaml");
    }
    if from & 2 != to & 2 || from == to {
        swap(inputs.extra(to), "policies", "kill-loop.yaml");
    }
}

/// The state after `state` in the walk 0 → 1 → 3 → 2 → 0: bit 0 flips from even
/// states' side (0 → 1, 3 → 2), bit 1 from the others (1 → 3, 2 → 0).
fn next(state: usize) -> usize {
    match state {
        0 => 1,
        1 => 3,
        3 => 2,
        _ => 0,
    }
}

fn is_update(from: usize, to: usize) -> bool {
    from & 2 == to & 2
}

fn start(ns: &NetNs, lab: &Lab, locals: &[String], extra: &[&str]) -> Daemon {
    // Events off: compared with `netpolctl compile`'s table, which has no log rules.
    let off = lab.events_off();
    let mut args: Vec<&str> = vec!["--config", &off];
    args.extend_from_slice(extra);
    for l in locals {
        args.extend(["--local", l]);
    }
    Daemon::start(ns, lab, &args)
}

/// How one kind of reload went, the slower of the two timed: from the request to the
/// answer, to the end of the kernel transaction (netpold's compile + apply), and the
/// transaction alone (apply).
#[derive(Default, Clone, Copy)]
struct Timing {
    total: Duration,
    commit: Duration,
    kernel: Duration,
}

/// Where a listing first differs from an expected one, clipped.
fn first_difference(listed: &str, expected: &str, name: &str) -> String {
    let clip = |l: &str| l.chars().take(160).collect::<String>();
    match listed
        .lines()
        .zip(expected.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        Some((i, (a, b))) => format!(
            "against the {name} table, line {}:\n  kernel:   {}\n  expected: {}",
            i + 1,
            clip(a),
            clip(b)
        ),
        None => format!(
            "against the {name} table: {} lines, expected {}",
            listed.lines().count(),
            expected.lines().count()
        ),
    }
}

#[derive(Default)]
struct Tally {
    old: usize,
    /// The old table in force, with the new plan's objects loaded beside it but not
    /// used: killed between the two transactions of a replace.
    staged: usize,
    new: usize,
}

#[test]
fn kill_9_at_random_moments_of_reloads_leaves_the_old_or_the_new_table() {
    let kills = env_number("NETPOL_KILL_LOOP_KILLS", 24) as usize;
    let endpoints = env_number("NETPOL_KILL_LOOP_ENDPOINTS", 2_000) as usize;
    let seed = env_number(
        "NETPOL_KILL_LOOP_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let Some(ns) = NetNs::new("npkill") else {
        return;
    };
    let Some(scratch) = NetNs::new("npkill") else {
        return;
    };
    let began = Instant::now();
    let lab = Lab::new();
    for sub in ["policies", "inventory"] {
        for e in std::fs::read_dir(lab.path(sub)).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
    let inputs = prepare(&lab.path("store"), endpoints);
    std::fs::hard_link(inputs.policies(), lab.path("policies/policies.yaml")).unwrap();
    switch(&lab, &inputs, 0, 0);
    println!(
        "kill loop: {kills} kills, {endpoints} endpoints, locals {:?}, {} set elements, seed {seed}",
        inputs.locals, inputs.elements
    );
    let expect: Vec<String> = (0..4).map(|s| expected(&inputs, s, &scratch)).collect();
    for a in 0..4 {
        for b in a + 1..4 {
            assert_ne!(expect[a], expect[b], "states {a} and {b} must differ");
        }
    }
    println!(
        "expected tables ready after {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let check = |state: usize, what: &str| {
        let listed = ns.table().unwrap_or_else(|| panic!("{what}: no table"));
        assert!(
            normalised(&listed) == expect[state],
            "{what}: the kernel does not hold state {state}"
        );
    };

    // One reload of each kind through `netpolctl reload` (no file watch in the way):
    // the kinds as netpold reports them, and their times.
    let mut timing = [Timing::default(); 2];
    {
        let d = start(&ns, &lab, &inputs.locals, &["--debounce-ms", "600000"]);
        check(0, "start-up");
        let mut state = 0;
        for _ in 0..4 {
            let to = next(state);
            switch(&lab, &inputs, state, to);
            let t0 = Instant::now();
            let out = d.ctl(&ns, &["reload", "-o", "json"]);
            let total = t0.elapsed();
            assert!(
                out.status.success(),
                "reload: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            let r: Value = serde_json::from_slice(&out.stdout).unwrap();
            let how = if is_update(state, to) {
                "updated"
            } else {
                "replaced"
            };
            assert_eq!(r["kernel"]["how"], how, "{state} -> {to}: {r:#}");
            check(to, &format!("reload {state} -> {to}"));
            let t = &mut timing[usize::from(!is_update(state, to))];
            // The slower of the two of each kind.
            t.total = t.total.max(total);
            let ms = |key: &str| Duration::from_secs_f64(r[key].as_f64().unwrap() / 1000.0);
            t.commit = t.commit.max(ms("compile_ms") + ms("apply_ms"));
            t.kernel = t.kernel.max(ms("apply_ms"));
            state = to;
        }
        d.terminate();
    }
    for (kind, t) in ["update", "replace"].iter().zip(timing) {
        println!(
            "{kind}: {:.0} ms from the request to the answer, committed after {:.0} ms, {:.1} ms of it in the kernel",
            t.total.as_secs_f64() * 1000.0,
            t.commit.as_secs_f64() * 1000.0,
            t.kernel.as_secs_f64() * 1000.0
        );
    }

    let mut rng = Rng::new(seed);
    let mut tally: [[Tally; 2]; 2] = Default::default();
    let mut state = 0;
    let mut d = start(&ns, &lab, &inputs.locals, &[]);
    check(0, "start-up");
    for k in 0..kills {
        let to = next(state);
        let update = is_update(state, to);
        // Kinds alternate with k; triggers and windows change every 2 and 4 kills, so
        // every 8 kills cover each combination once.
        let sighup = k / 2 % 2 == 0;
        let timing = timing[usize::from(!update)];
        // The file watch's debounce (the support code's 100 ms) and its events.
        let watch = if sighup {
            0
        } else {
            Duration::from_millis(120).as_micros() as usize
        };
        let us = |d: Duration| d.as_micros() as usize;
        let delay_us = if k / 4 % 2 == 0 {
            rng.below((us(timing.total) + watch) * 5 / 4 + 1)
        } else {
            // From a little before the transaction starts to a little after it ends.
            let (commit, kernel) = (us(timing.commit), us(timing.kernel));
            let from = (commit - kernel).saturating_sub(commit * 15 / 100);
            watch + from + rng.below(commit + commit / 20 - from + 1)
        };
        let pid = d.child.id();
        switch(&lab, &inputs, state, to);
        if sighup {
            let ok = Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        std::thread::sleep(Duration::from_micros(delay_us as u64));
        assert!(
            d.child.try_wait().unwrap().is_none(),
            "kill {k}: netpold exited on its own:\n{}",
            d.log()
        );
        d.child.kill().unwrap();
        d.child.wait().unwrap();
        let what = format!(
            "kill {k} ({state} -> {to}, {}, {}, after {:.1} ms)",
            if update { "update" } else { "replace" },
            if sighup { "SIGHUP" } else { "file watch" },
            delay_us as f64 / 1000.0
        );
        let raw = ns
            .table()
            .unwrap_or_else(|| panic!("{what}: no table in the kernel"));
        let listed = normalised(&raw);
        let t = &mut tally[usize::from(!update)][usize::from(!sighup)];
        if listed == expect[state] {
            t.old += 1;
            println!("{what}: old");
        } else if !update && normalised(&enforced(&raw)) == expect[state] {
            t.staged += 1;
            println!("{what}: old, the new objects staged beside it");
        } else if listed == expect[to] {
            t.new += 1;
            println!("{what}: new");
        } else {
            panic!(
                "{what}: the kernel holds neither the old nor the new table:\n{}\n{}",
                first_difference(&listed, &expect[state], "old"),
                first_difference(&listed, &expect[to], "new")
            );
        }
        state = to;
        d = start(&ns, &lab, &inputs.locals, &[]);
        assert_eq!(
            d.generation(&ns),
            1,
            "{what}: the restarted netpold applied its files:\n{}",
            d.log()
        );
        check(state, &format!("{what}, restarted"));
    }
    drop(d);
    let sum = |f: &dyn Fn(&Tally) -> usize| -> usize { tally.iter().flatten().map(f).sum() };
    println!(
        "kill loop: {kills} kills in {:.0} s: {} old table, {} old with the new staged, {} new table",
        began.elapsed().as_secs_f64(),
        sum(&|t| t.old),
        sum(&|t| t.staged),
        sum(&|t| t.new)
    );
    for (i, kind) in ["updates", "replaces"].iter().enumerate() {
        for (j, trigger) in ["SIGHUP", "file watch"].iter().enumerate() {
            let t = &tally[i][j];
            println!(
                "  {kind}, {trigger}: {} old, {} staged, {} new",
                t.old, t.staged, t.new
            );
        }
    }
}

/// The filter the loop relies on: only objects a base chain reaches stay.
#[test]
fn enforced_leaves_out_what_no_base_chain_reaches() {
    let old = "table inet netpol {
\tset in_a_v4 {
\t\ttype ipv4_addr
\t}

\tmap ingress_v4 {
\t\ttype ipv4_addr : verdict
\t\telements = { 198.18.0.1 : jump in_a }
\t}

\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tip daddr vmap @ingress_v4
\t}

\tchain in_a {
\t\tip saddr @in_a_v4 accept
\t}
";
    let staged = "\tset b.in_a_v4 {
\t\ttype ipv4_addr
\t}

\tmap b.ingress_v4 {
\t\ttype ipv4_addr : verdict
\t\telements = { 198.18.0.1 : jump b.in_a }
\t}

\tchain b.in_a {
\t\tip saddr @b.in_a_v4 accept
\t}
";
    let both = format!("{old}\n{staged}}}\n");
    let old = format!("{old}}}\n");
    assert_eq!(normalised(&enforced(&both)), normalised(&old));
    assert_ne!(normalised(&both), normalised(&old));
    // A used object is never left out.
    let used = both.replace("vmap @ingress_v4", "vmap @b.ingress_v4");
    assert_ne!(normalised(&enforced(&used)), normalised(&old));
}
