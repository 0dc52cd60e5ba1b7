//! Running `nft` for cross-checks, only ever inside a throwaway network namespace
//! (`unshare --net`), so the host's own ruleset is never touched.

use std::io::Write;
use std::process::{Command, Stdio};

/// Why nft checks cannot run here, or `None` when they can. In CI (`CI` set) a kernel test that cannot run fails instead: a skip there would pass without proving anything.
pub fn unavailable() -> Option<String> {
    let why = probe_unavailable();
    if let (Some(why), Some(_)) = (&why, std::env::var_os("CI")) {
        panic!("this kernel test must run in CI, but cannot: {why}");
    }
    why
}

fn probe_unavailable() -> Option<String> {
    let probe = Command::new("unshare")
        .args(["--net", "--", "nft", "list", "tables"])
        .output();
    match probe {
        Err(e) => Some(format!(
            "cannot run unshare/nft: {e} (install nftables and util-linux)"
        )),
        Ok(out) if !out.status.success() => Some(format!(
            "`unshare --net nft list tables` failed (root needed): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// Runs `nft <args> -f -` on `script` and then `nft <after…>` in one fresh network
/// namespace; returns the stdout of the last command, or nft's error text.
pub fn run_in_netns(check_only: bool, script: &str, after: &[&str]) -> Result<String, String> {
    // One shell inside one namespace, so the loaded table is still there for `after`.
    let mut shell = String::from("set -e\nnft ");
    if check_only {
        shell.push_str("-c ");
    }
    shell.push_str("-f /dev/stdin\n");
    if !after.is_empty() {
        shell.push_str("nft ");
        shell.push_str(&after.join(" "));
        shell.push('\n');
    }
    let mut child = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", &shell])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning unshare: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| format!("writing script: {e}"))?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
