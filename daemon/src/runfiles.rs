//! netpol's own files under `/run/netpol` (`NETPOL_RUN_DIR` in tests): state that must
//! outlive a process but not a boot — a pending rollback of netpold, the saved table
//! of `apply --confirm-within`. Each is root-only and written whole: a crash mid-write
//! leaves the old file or the new one, never half of one. Decides nothing else.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The directory (not made until something is written).
pub fn run_dir() -> PathBuf {
    std::env::var_os("NETPOL_RUN_DIR").map_or_else(|| PathBuf::from("/run/netpol"), PathBuf::from)
}

/// Writes `bytes` to `path` whole, mode 0600, making its directory (0755) if missing.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // NamedTempFile is made 0600 in the same directory, so the rename is atomic.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
