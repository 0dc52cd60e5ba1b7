//! `netpold`: the daemon. Parses and checks its settings (exit 2 on a usage or config
//! error, before touching anything), sets up logging, and runs
//! `netpol_daemon::daemon::run` (exit 1 when it fails).

use std::process::ExitCode;

use clap::Parser;
use netpol_daemon::config::{Flags, LogFormat, Settings};
use netpol_daemon::daemon;
use netpol_daemon::netlink::Netlink;

// A reload of a big inventory is mostly small allocations on several threads: mimalloc
// takes a quarter less time than glibc, and with its purge delay at 0 and without
// transparent huge pages (first thing in `main`) less memory too (benches/README.md,
// issue 16).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    netpol_nft::heap::purge_freed_pages_at_once();
    // Not fatal: a kernel without the flag has no transparent huge pages to turn off.
    let no_thp = netpol_nft::heap::without_transparent_huge_pages();
    let flags = Flags::parse();
    let settings = match Settings::resolve(&flags) {
        Ok(s) => s,
        Err(rejected) => {
            for d in &rejected.0 {
                eprintln!("netpold: {d}");
            }
            eprintln!("netpold: configuration rejected; nothing was started");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NETPOLD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(false);
    match settings.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    if let Err(e) = no_thp {
        tracing::debug!("transparent huge pages left as the system has them: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let backend = if settings.own_table {
        Netlink::owner()
    } else {
        Netlink::new()
    };
    match runtime.block_on(daemon::run(settings, backend)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
