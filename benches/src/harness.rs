//! What the kernel benchmarks (`apply`, `reload`, `scaling`) share: building the
//! daemon's binaries in release, checking that throwaway network namespaces can be
//! made, telling which namespace this process is in (a measuring child refuses to run
//! in the one it was started from), reading a process's memory, running `ip` and other
//! commands that must succeed, and the guards that clean up after a benchmark (its
//! directory, its daemon) also when it panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

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

/// What a kernel benchmark needs first: `None` (with `SKIPPED: why` printed) when
/// throwaway network namespaces cannot be made here, else the daemon binary `bin` —
/// `given` on the command line, or built in release.
pub fn daemon_bin_or_skip(given: Option<&Path>, bin: &str) -> Option<PathBuf> {
    if let Err(why) = check_unshare(&["true"]) {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    Some(given.map_or_else(|| build_daemon_bin(bin), Path::to_path_buf))
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

/// CPU time of process `pid` so far, all its threads, user and system (utime + stime
/// from `/proc/PID/stat`), in clock ticks (`getconf CLK_TCK`, 100 on Linux in practice).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    cpu_ticks_of(&stat)
}

/// Fields 14 and 15 (utime, stime) of a `/proc/PID/stat` line, summed. The command
/// name (field 2, in parentheses) may hold spaces and parentheses: count from the last
/// `)`.
fn cpu_ticks_of(stat: &str) -> u64 {
    let rest = &stat[stat.rfind(')').expect("a stat line") + 1..];
    // Field 3 (the state) is the first after the name; utime and stime are 14 and 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// CPU time of process `pid`'s threads alive now, in nanoseconds: the sum of the first
/// field (time on a CPU) of `/proc/PID/task/*/schedstat`. Finer than [`cpu_ticks`]'
/// 10 ms, for a daemon that works a few milliseconds; threads that have ended no longer
/// count, so it is for processes whose threads live as long as they do.
pub fn cpu_ns(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A path option of a benchmark, which must be absolute: cargo runs a benchmark from
/// its package directory, not from where the command was typed, so a relative path
/// would name another file.
pub fn absolute_path_arg(flag: &str, value: String) -> PathBuf {
    let path = PathBuf::from(value);
    assert!(
        path.is_absolute(),
        "{flag} needs an absolute path (cargo runs benchmarks from benches/)"
    );
    path
}

/// A benchmark's scratch directory (`tempfile`'s), removed when dropped.
pub use tempfile::TempDir;

/// The directory a benchmark writes its inputs to: `keep` when the user named one
/// (created if missing, left in place afterwards), else a new directory `PREFIX…` under
/// the system temp dir, removed when the returned [`TempDir`] drops.
pub fn input_dir(keep: Option<&Path>, prefix: &str) -> (PathBuf, Option<TempDir>) {
    match keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).expect("creating the input directory");
            (dir.to_owned(), None)
        }
        None => {
            let temp = TempDir::with_prefix(prefix).expect("creating a temporary directory");
            (temp.path().to_owned(), Some(temp))
        }
    }
}

/// A child process (a daemon under measurement) killed and reaped when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` to its end and gives its stdout; panics with both outputs if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip args`, as [`run`].
pub fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        // A process whose name holds a space and a parenthesis.
        let stat = "4242 (net pold)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 37 5 0 0 20 0 \
                    4 0 100 123456 789 18446744073709551615";
        assert_eq!(cpu_ticks_of(stat), 42);
        let own = cpu_ticks(std::process::id());
        assert!(own < 1_000_000, "{own}");
        // Some work: this thread has run for a while at least.
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(20) {}
        assert!(cpu_ns(std::process::id()) >= 10_000_000);
    }
}
