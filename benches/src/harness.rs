//! What the kernel benchmarks (`apply`, `reload`, `scaling`) share: building the
//! daemon's binaries in release, checking that throwaway network namespaces can be
//! made, telling which namespace this process is in (a measuring child refuses to run
//! in the one it was started from), and reading a process's memory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The network namespace of this process, as `/proc/self/ns/net` names it.
pub fn own_namespace() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs `unshare --net -- probe…`; `Err` says why benchmarks in namespaces cannot run.
pub fn check_unshare(probe: &[&str]) -> Result<(), String> {
    match Command::new("unshare")
        .args(["--net", "--"])
        .args(probe)
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`unshare --net -- {}` failed (needs root): {}",
            probe.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run unshare: {e}")),
    }
}

/// Builds the netpol-daemon binaries in release next to the running benchmark (which
/// cargo builds in the release profile too) and returns the path of `bin`.
pub fn build_daemon_bin(bin: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--release", "-p", "netpol-daemon", "--bins"])
        .status()
        .expect("running cargo build");
    assert!(
        status.success(),
        "building the netpol-daemon binaries failed"
    );
    let exe = std::env::current_exe().expect("the benchmark's path");
    // target/release/deps/BENCH-HASH → target/release/BIN
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("the target directory")
        .join(bin);
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}

/// VmRSS and VmHWM (peak resident) of process `pid`, in KiB, from `/proc/PID/status`.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
