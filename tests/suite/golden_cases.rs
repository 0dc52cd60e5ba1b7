//! Golden tests: `compile` output and the matrix for the bundled example and small
//! focused cases under `tests/golden/<case>/`. Each case has `policies.yaml`,
//! `inventory.yaml` and `case.txt` (lines `local NS/NAME`, `probe PORT/PROTO`, optionally `deny reject`,
//! `events GROUP RATE BURST`, `mode audit` and
//! `policies`/`inventory` paths relative to the repository);
//! the expected outputs are `compiled.nft` and `matrix.json`. Every compiled ruleset is
//! also checked by the kernel with `nft -c` inside a throwaway network namespace.
//!
//! Regenerate after an intended change: `UPDATE_GOLDEN=1 cargo test -p netpol-tests`,
//! then review `git diff tests/golden`.

use std::path::{Path, PathBuf};

use netpol_tests::{golden, nft};
use rules_compiler::analysis::{self, FamilyFilter, Probe};
use rules_compiler::model::ObjectName;
use rules_compiler::plan::{self, DenyAction, EventLog, Mode, Options};
use rules_compiler::resolve::Index;
use rules_compiler::{load, render};

struct Case {
    name: String,
    dir: PathBuf,
    policies: Vec<PathBuf>,
    inventory: Vec<PathBuf>,
    locals: Vec<ObjectName>,
    probes: Vec<Probe>,
    options: Options,
}

fn read_case(dir: &Path) -> Case {
    let spec = std::fs::read_to_string(dir.join("case.txt"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("case.txt").display()));
    let mut case = Case {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        dir: dir.to_path_buf(),
        policies: vec![dir.join("policies.yaml")],
        inventory: vec![dir.join("inventory.yaml")],
        locals: vec![],
        probes: vec![],
        options: Options::default(),
    };
    let root = golden::repo_root();
    // The first `policies` line replaces the case's own file; later ones add paths.
    let mut own_policies = true;
    for line in spec
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line.split_once(' ').expect("`key value` lines");
        match key {
            "local" => case.locals.push(ObjectName::parse(value).expect("NS/NAME")),
            "probe" => case.probes.push(value.parse().expect("PORT/PROTO")),
            "deny" => {
                case.options.deny = match value {
                    "drop" => DenyAction::Drop,
                    "reject" => DenyAction::Reject,
                    other => panic!("{}: deny {other}?", dir.display()),
                }
            }
            // `events GROUP RATE BURST`: verdict events reported over NFLOG.
            "events" => {
                let n: Vec<&str> = value.split(' ').collect();
                let num = |i: usize| -> u32 { n[i].parse().expect("events GROUP RATE BURST") };
                case.options.events = Some(EventLog {
                    group: u16::try_from(num(0)).expect("an NFLOG group"),
                    rate: num(1),
                    burst: num(2),
                });
            }
            "mode" => {
                case.options.mode = match value {
                    "enforce" => Mode::Enforce,
                    "audit" => Mode::Audit,
                    other => panic!("{}: mode {other}?", dir.display()),
                }
            }
            // Inputs elsewhere in the repository, e.g. the bundled example in config/.
            "policies" => {
                if std::mem::take(&mut own_policies) {
                    case.policies.clear();
                }
                case.policies.push(root.join(value));
            }
            "inventory" => case.inventory = vec![root.join(value)],
            other => panic!("{}: unknown key {other}", dir.display()),
        }
    }
    case
}

fn cases() -> Vec<Case> {
    let dir = golden::repo_root().join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter().map(|d| read_case(d)).collect()
}

/// Compiles a case; the compiled text and the matrix JSON (pretty, for readable diffs).
fn produce(case: &Case) -> (String, String) {
    let policies = load::read_paths(&case.policies, &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let inventory = load::read_paths(&case.inventory, &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let loaded = rules_compiler::load_model(&policies, &inventory)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let index = Index::new(&loaded.model);
    let locals: Vec<usize> = case
        .locals
        .iter()
        .map(|n| {
            loaded
                .model
                .inventory
                .endpoint_index(n)
                .unwrap_or_else(|| panic!("{}: no endpoint {n}", case.name))
        })
        .collect();
    let plan = plan::build(&index, &locals, &case.options);
    let nft_text = render::nft(&plan);
    let matrix = analysis::matrix(&index, &case.probes, FamilyFilter::Any, &[]);
    let json =
        serde_json::to_string_pretty(&serde_json::to_value(&matrix).unwrap()).unwrap() + "\n";
    (nft_text, json)
}

#[test]
fn golden_outputs_match() {
    let mut failures = Vec::new();
    let all = cases();
    assert!(
        all.len() >= 5,
        "expected the golden cases under tests/golden, found {}",
        all.len()
    );
    for case in &all {
        let (nft_text, matrix) = produce(case);
        failures.extend(golden::check(&case.dir.join("compiled.nft"), &nft_text));
        failures.extend(golden::check(&case.dir.join("matrix.json"), &matrix));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn compiling_twice_gives_identical_bytes() {
    for case in cases() {
        assert_eq!(produce(&case), produce(&case), "case {}", case.name);
    }
}

#[test]
fn kernel_accepts_every_golden_ruleset() {
    if let Some(why) = nft::unavailable() {
        eprintln!("SKIPPED kernel_accepts_every_golden_ruleset: {why}");
        return;
    }
    for case in cases() {
        let (nft_text, _) = produce(&case);
        if let Err(e) = nft::run_in_netns(true, &nft_text, &[]) {
            panic!(
                "nft -c rejected the ruleset of case {}:\n{e}\n---\n{nft_text}",
                case.name
            );
        }
    }
}
