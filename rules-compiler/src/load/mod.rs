//! Load: read files and directories and parse YAML into faithful documents that keep
//! every node's position, so later errors can say file, line and column.
//!
//! Must not judge meaning (that is `validate`) nor touch anything but the files given.

use std::path::PathBuf;

use crate::diag::Rejected;

/// One input file's text, with the path messages should name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Path shown in messages.
    pub path: PathBuf,
    /// The whole file.
    pub text: String,
}

/// Reads files and directories: a directory contributes every `*.yaml`/`*.yml` file in
/// it, sorted by name, skipping hidden files. Unreadable paths are errors.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<Input>, Rejected> {
    let _ = paths;
    todo!("load::read_paths")
}
