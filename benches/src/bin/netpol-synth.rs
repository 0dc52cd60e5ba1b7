//! `netpol-synth`: writes a synthetic policies and inventory pair for benchmarks and
//! prints one local endpoint that several policies select.
#![forbid(unsafe_code)]

use std::fs;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use netpol_benches::cluster::{cluster_policies, ClusterScale};
use netpol_benches::yaml::{
    cluster_policies_json, cluster_policies_yaml, inventory_json, inventory_yaml, policies_json,
    policies_yaml,
};
use netpol_benches::{busiest_endpoint, generate, Scale, MAX_ENDPOINTS};
use rules_compiler::resolve::Index;

/// Generate synthetic NetworkPolicy and inventory YAML (or JSON), deterministically from a
/// seed.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Number of namespaces.
    #[arg(long, default_value_t = Scale::FULL.namespaces)]
    namespaces: usize,
    /// Number of endpoints (pods), at most 131070.
    #[arg(long, default_value_t = Scale::FULL.endpoints)]
    endpoints: usize,
    /// Number of NetworkPolicies.
    #[arg(long, default_value_t = Scale::FULL.policies)]
    policies: usize,
    /// Seed: the same seed and sizes give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for policies.yaml and inventory.yaml, or their .json (created if
    /// missing).
    #[arg(long)]
    out: PathBuf,
    /// Also write cluster.yaml: ClusterNetworkPolicies as ADMIN,BASELINE,RULES (objects
    /// per tier, rules per object; 100,100,25 is the issue-15 benchmark). Put it beside
    /// policies.yaml in the policies path.
    #[arg(long, value_name = "ADMIN,BASELINE,RULES")]
    cluster: Option<String>,
    /// Write the same objects as JSON instead, as `kubectl get … -o json` prints them:
    /// policies.json, inventory.json (and cluster.json), one `kind: List` each.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.endpoints <= MAX_ENDPOINTS,
        "--endpoints: at most {MAX_ENDPOINTS} fit in 198.18.0.0/15"
    );
    ensure!(
        args.namespaces > 0 || (args.endpoints == 0 && args.policies == 0),
        "--namespaces: endpoints and policies need at least one namespace"
    );
    let scale = Scale {
        namespaces: args.namespaces,
        endpoints: args.endpoints,
        policies: args.policies,
    };
    let mut model = generate(&scale, args.seed);
    if let Some(spec) = &args.cluster {
        let v: Vec<usize> = spec
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--cluster {spec:?}: three numbers"))?;
        let [admin, baseline, rules] = v[..] else {
            anyhow::bail!("--cluster {spec:?}: three numbers, ADMIN,BASELINE,RULES");
        };
        ensure!(
            rules <= 50,
            "--cluster: at most 50 rules per object (25 per direction)"
        );
        model.cluster_policies = cluster_policies(
            &ClusterScale {
                admin,
                baseline,
                rules,
            },
            args.seed,
        );
    }
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut files = if args.json {
        vec![
            ("policies.json", policies_json(&model)),
            ("inventory.json", inventory_json(&model)),
        ]
    } else {
        vec![
            ("policies.yaml", policies_yaml(&model)),
            ("inventory.yaml", inventory_yaml(&model)),
        ]
    };
    if args.cluster.is_some() {
        files.push(if args.json {
            ("cluster.json", cluster_policies_json(&model))
        } else {
            ("cluster.yaml", cluster_policies_yaml(&model))
        });
    }
    for (file, text) in files {
        let path = args.out.join(file);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let index = Index::new(&model);
    match busiest_endpoint(&index) {
        Some(ep) => println!("{}", index.endpoint(ep).id),
        None => eprintln!("netpol-synth: no endpoints, so no local endpoint to suggest"),
    }
    Ok(())
}
