//! `netpol-fleet`: writes the apply benchmark's input (see `netpol_benches::fleet`):
//! `policies.yaml`, `inventory.yaml`, and `locals.args`, the `--local NS/NAME`
//! arguments of every local endpoint, one per line (for `xargs` or `$(cat …)`).
#![forbid(unsafe_code)]

use std::fs;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use netpol_benches::fleet::{inventory_yaml, policies_yaml, FleetScale};

/// Generate a fleet of isolated local endpoints with large peer sets.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Local endpoints (five rules each), at most 1000.
    #[arg(long, default_value_t = FleetScale::DEFAULT.locals)]
    locals: usize,
    /// Client shards; each local endpoint admits one.
    #[arg(long, default_value_t = FleetScale::DEFAULT.shards)]
    shards: usize,
    /// Clients per shard.
    #[arg(long, default_value_t = FleetScale::DEFAULT.peers_per_shard)]
    peers_per_shard: usize,
    /// ipBlocks per family per local endpoint.
    #[arg(long, default_value_t = FleetScale::DEFAULT.blocks)]
    blocks: usize,
    /// Directory for the files (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let scale = FleetScale {
        locals: a.locals,
        shards: a.shards,
        peers_per_shard: a.peers_per_shard,
        blocks: a.blocks,
    };
    ensure!(scale.locals <= 1_000, "--locals: at most 1000");
    ensure!(scale.shards > 0, "--shards: at least 1");
    ensure!(
        scale.shards * scale.peers_per_shard <= 16_000,
        "--shards × --peers-per-shard: at most 16000"
    );
    fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let locals: String = scale
        .local_names()
        .iter()
        .map(|n| format!("--local\n{n}\n"))
        .collect();
    for (file, text) in [
        ("policies.yaml", policies_yaml(&scale)),
        ("inventory.yaml", inventory_yaml(&scale)),
        ("locals.args", locals),
    ] {
        let path = a.out.join(file);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "{} local endpoints: {} endpoint-chain rules, {} set elements",
        scale.locals,
        scale.endpoint_rules(),
        scale.set_elements()
    );
    Ok(())
}
