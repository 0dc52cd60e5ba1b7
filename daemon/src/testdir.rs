//! A temporary directory for unit tests, removed on drop (also when the test panics).

use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir (`tempfile`'s, with file helpers).
pub(crate) struct TempDir(tempfile::TempDir);

impl TempDir {
    /// Creates `netpol-<tag>-<random>`.
    pub(crate) fn new(tag: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("netpol-{tag}-"))
            .tempdir()
            .expect("creating a temporary directory");
        TempDir(dir)
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }

    /// Reads `name`.
    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).expect("reading a temporary file")
    }

    /// Writes `name` (creating parent directories) and returns its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating a directory");
        }
        std::fs::write(&path, text).expect("writing a temporary file");
        path
    }
}
