//! One netpold per network namespace: two would replace each other's table on every
//! reload. The daemon holds an exclusive `flock` on a file named for its network
//! namespace (the inode of `/proc/self/ns/net`) under `/run/netpol` for as long as it
//! runs; a second one finds it held and names the first from the pid written there.
//!
//! The directory is root's (systemd's `RuntimeDirectory=`, mode 0755), so an
//! unprivileged user cannot take the name first and keep netpold from starting. Must not
//! touch the ruleset.

use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Where the instance locks live.
pub const LOCK_DIR: &str = "/run/netpol";

/// The lock of this network namespace's netpold, held until dropped.
#[derive(Debug)]
pub struct Instance {
    _lock: Flock<File>,
    path: PathBuf,
}

impl Instance {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes this network namespace's lock in `dir`, or says who holds it.
pub fn claim(dir: &Path) -> Result<Instance, String> {
    let netns = fs::metadata("/proc/self/ns/net")
        .map_err(|e| format!("cannot identify this network namespace: {e}"))?
        .ino();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("netpold-net-{netns}.lock"));
    // A holder that exits leaves the file; one that is replaced under us (someone
    // removed it) is retried, so two daemons never hold locks on different files.
    for _ in 0..3 {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(format!(
                    "another netpold{} is running in this network namespace (it holds {}); \
                     two would replace each other's rules: stop it first",
                    if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                    path.display()
                ));
            }
            Err((_, e)) => return Err(format!("cannot lock {}: {e}", path.display())),
        };
        let same = fs::metadata(&path)
            .and_then(|m| Ok(m.ino() == lock.metadata()?.ino()))
            .unwrap_or(false);
        if !same {
            continue;
        }
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{}", std::process::id()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        return Ok(Instance { _lock: lock, path });
    }
    Err(format!("{} keeps being replaced", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;

    #[test]
    fn a_second_claim_in_one_namespace_is_refused_and_names_the_first() {
        let dir = TempDir::new("instance");
        let first = claim(dir.path()).unwrap();
        let err = claim(dir.path()).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "another netpold (pid {}) is running in this network namespace",
                std::process::id()
            )),
            "{err}"
        );
        assert!(err.contains(&first.path().display().to_string()), "{err}");
        drop(first);
        // Released with the daemon: the next one starts.
        let again = claim(dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(again.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }
}
