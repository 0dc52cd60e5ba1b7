//! `netpolctl apply --confirm-within`, without netpold: the table in force before the
//! apply is saved as nft text, and a detached process (`netpolctl rollback-at`, in a
//! session of its own, so it outlives the terminal and the SSH connection) loads it
//! back at the deadline unless `netpolctl confirm` removed the pending file first.
//!
//! The saved text replaces the table in one `nft -f` transaction (`add`, `delete`, the
//! listing): the host is never without a table, and a refused load leaves the applied
//! one and is tried again every second. Nothing is saved or armed when no netpol table
//! is in force: there would be nothing to go back to. Files live in `/run/netpol`
//! (`NETPOL_RUN_DIR`), named after the network namespace, so namespaces never meet.
//! One `flock` per namespace orders `apply`, `confirm` and the watcher's rollback: a
//! `confirm` either ends the wait before the rollback starts, or finds it done and
//! says so — never "confirmed" for a table already gone. Must not decide what is allowed.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use rules_compiler::plan::TABLE_NAME;

/// How often the watcher looks at the pending file, and retries a refused load.
const TICK: Duration = Duration::from_millis(100);
const RETRY: Duration = Duration::from_secs(1);

/// What the watcher waits for: written by `apply`, removed by `confirm`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The deadline, milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    /// The saved table.
    pub saved: PathBuf,
}

/// `/run/netpol/apply-NETNS.EXT`: one of each per network namespace.
fn file(ext: &str) -> Result<PathBuf> {
    let ns = std::fs::metadata("/proc/self/ns/net")
        .context("reading this process's network namespace")?
        .ino();
    Ok(crate::runfiles::run_dir().join(format!("apply-{ns}.{ext}")))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Held while the pending file and the table are looked at and changed together.
pub struct Lock(#[allow(dead_code)] Flock<File>);

/// Waits for this namespace's lock (`apply-NETNS.lock`); released on drop.
pub fn lock() -> Result<Lock> {
    let path = file("lock")?;
    std::fs::create_dir_all(crate::runfiles::run_dir())
        .with_context(|| format!("creating {}", crate::runfiles::run_dir().display()))?;
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map(Lock)
        .map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", path.display()))
}

/// [`write_private`](crate::runfiles::write_private), with the path in the error.
fn write_private(path: &Path, text: &[u8]) -> Result<()> {
    crate::runfiles::write_private(path, text)
        .with_context(|| format!("writing {}", path.display()))
}

/// What a rollback would load: the table in force now, as a replacing nft script. A
/// pending rollback's is kept (it goes back to before the first unconfirmed apply).
pub fn save() -> Result<PathBuf> {
    let saved = file("nft")?;
    if read_pending()?.is_some() && saved.exists() {
        return Ok(saved);
    }
    let out = Command::new("nft")
        .args(["list", "table", "inet", TABLE_NAME])
        .output()
        .context("running nft list table (nftables)")?;
    if !out.status.success() {
        bail!(
            "--confirm-within: no table inet {TABLE_NAME} is in force to roll back to \
             (apply once without it first): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut script =
        format!("table inet {TABLE_NAME}\ndelete table inet {TABLE_NAME}\n").into_bytes();
    script.extend_from_slice(&out.stdout);
    write_private(&saved, &script)?;
    Ok(saved)
}

fn read_pending() -> Result<Option<Pending>> {
    let path = file("pending")?;
    match std::fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Arms the rollback of `saved` in `within`: writes the pending file and starts the
/// watcher (`setsid -f netpolctl rollback-at`). The line to print.
pub fn arm(saved: PathBuf, within: Duration) -> Result<String> {
    let pending = Pending {
        deadline_ms: now_ms() + within.as_millis() as u64,
        saved,
    };
    let path = file("pending")?;
    write_private(&path, &serde_json::to_vec(&pending)?)?;
    let _ = std::fs::remove_file(file("rolled-back")?);
    let exe = std::env::current_exe().context("finding netpolctl's own path")?;
    let status = Command::new("setsid")
        .arg("-f")
        .arg(exe)
        .arg("rollback-at")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("starting the rollback watcher (setsid, util-linux)")?;
    if !status.success() {
        let _ = std::fs::remove_file(&path);
        bail!("starting the rollback watcher failed: {status}; nothing is pending");
    }
    Ok(format!(
        "PROVISIONAL: `netpolctl confirm` within {} keeps this ruleset; otherwise the table \
         in force before is loaded back (saved in {})\n",
        humantime::format_duration(within),
        pending.saved.display()
    ))
}

/// `netpolctl confirm` without netpold: ends a pending rollback of this namespace.
/// `None` when none is pending.
pub fn confirm() -> Result<Option<String>> {
    let _lock = lock()?;
    let Some(p) = read_pending()? else {
        return Ok(None);
    };
    std::fs::remove_file(file("pending")?).context("removing the pending rollback")?;
    let _ = std::fs::remove_file(&p.saved);
    Ok(Some(
        "confirmed: the ruleset netpolctl apply loaded stays\n".into(),
    ))
}

/// The watcher (`netpolctl rollback-at PENDING`): waits for the deadline of the pending
/// file it was started for; gone or re-armed (another apply): exits; due: loads the
/// saved table back, retrying every second while the kernel refuses.
pub fn watch(pending_path: &Path) -> Result<()> {
    let mine = std::fs::read(pending_path).context("reading the pending rollback")?;
    let pending: Pending = serde_json::from_slice(&mine)?;
    let still_mine = || std::fs::read(pending_path).is_ok_and(|now| now == mine);
    while now_ms() < pending.deadline_ms {
        if !still_mine() {
            return Ok(());
        }
        std::thread::sleep(TICK);
    }
    let _lock = loop {
        // Without the lock a `confirm` may race the rollback, but giving up would leave
        // the unconfirmed table in force: roll back anyway, and say so.
        let lock = lock()
            .map_err(|e| log(&format!("rolling back without the lock: {e:#}")))
            .ok();
        if !still_mine() {
            return Ok(());
        }
        let out = Command::new("nft").arg("-f").arg(&pending.saved).output();
        match out {
            Ok(o) if o.status.success() => break lock,
            Ok(o) => log(&format!(
                "rolling back the unconfirmed netpolctl apply failed, retrying: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => log(&format!("rolling back: running nft: {e}; retrying")),
        }
        drop(lock);
        std::thread::sleep(RETRY);
    };
    let _ = std::fs::remove_file(pending_path);
    let _ = std::fs::remove_file(&pending.saved);
    let line = format!(
        "netpolctl apply was not confirmed in time: the table in force before it was loaded \
         back at {}",
        humantime::format_rfc3339_millis(SystemTime::now())
    );
    write_private(&file("rolled-back")?, line.as_bytes())?;
    log(&line);
    Ok(())
}

/// The last rollback of this namespace's `apply`, if any (for `confirm` to say so).
pub fn rolled_back() -> Option<String> {
    std::fs::read_to_string(file("rolled-back").ok()?).ok()
}

/// To the system log, best effort (the watcher has no terminal).
fn log(line: &str) {
    let _ = Command::new("logger")
        .args(["-t", "netpolctl", "-p", "user.warning", line])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
