//! Load: read files and directories and parse YAML or JSON into faithful documents that
//! keep every node's position, so later errors can say file, line and column.
//!
//! The content decides the format: a text whose first character after an optional byte
//! order mark and white space is `{` or `[` is JSON (`json.rs`, the fast path for
//! `kubectl … -o json`), anything else YAML (`yaml.rs`, `tree.rs`). Both build the same
//! [`Node`] trees, so nothing after `load` knows which it was. A JSON text may hold
//! several top-level values, each a document; its first syntax error ends it.
//!
//! Must not judge meaning (that is `validate`) nor touch anything but the files given.
//! Hostile input must cost bounded time, memory and stack: every read and parse is
//! held to [`Limits`], and only regular files are opened.
//!
//! - [`read_paths`] turns the paths an operator gave into [`Input`]s (file texts).
//! - [`parse`] turns one input into its [`Document`]s: trees of [`Node`]s with 1-based
//!   line and column, plus a diagnostic for each malformed document; [`documents`] does
//!   the same one document at a time.

mod fast;
mod files;
pub(crate) mod json;
#[cfg(test)]
mod json_equivalence;
pub(crate) mod json_list;
mod tree;
mod yaml;

use std::path::PathBuf;
use std::sync::Arc;

pub use fast::{compare_with_saphyr, set_enabled as set_fast_yaml, Comparison};
pub use files::{file_kind, read_paths};
pub(crate) use yaml::{chunk_documents, chunks, chunks_after_edit, Chunk, EarlierCuts};
pub use yaml::{documents, parse, pieces, Document, Documents, Node, Str, Value};

/// One input file's text, with the path messages should name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Path shown in messages.
    pub path: PathBuf,
    /// The whole file; shared, not copied, by what keeps it (netpold's inputs in force
    /// and its decode cache).
    pub text: Arc<String>,
}

/// Bounds on what one input file may cost. Each is checked as the file is read or
/// parsed, and going past one is an error that names the limit, so nothing is ever
/// silently cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in one file.
    pub file_bytes: u64,
    /// YAML documents (or JSON top-level values) in one file.
    pub documents: usize,
    /// Nodes (scalars, collections, aliases' copies) in one document.
    pub nodes: usize,
    /// Bytes in one scalar.
    pub scalar_bytes: usize,
    /// Collections nested in one another.
    pub depth: usize,
}

impl Limits {
    /// The most [`Limits::depth`] may be raised to: deeper trees could overflow the
    /// stack of the code that walks and frees them.
    pub const MAX_DEPTH: usize = 1024;

    /// The limit's name as the config file and `--limit` spell it, and its value.
    pub fn entries(&self) -> [(&'static str, u64); 5] {
        [
            ("file-bytes", self.file_bytes),
            ("documents", self.documents as u64),
            ("nodes", self.nodes as u64),
            ("scalar-bytes", self.scalar_bytes as u64),
            ("depth", self.depth as u64),
        ]
    }

    /// Sets the limit spelt `name` (as in [`Limits::entries`]); an error says what is
    /// wrong.
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), String> {
        if value == 0 {
            return Err(format!("limit {name} must be at least 1"));
        }
        let size = |v: u64| usize::try_from(v).map_err(|_| format!("limit {name} is too big"));
        match name {
            "file-bytes" => self.file_bytes = value,
            "documents" => self.documents = size(value)?,
            "nodes" => self.nodes = size(value)?,
            "scalar-bytes" => self.scalar_bytes = size(value)?,
            "depth" if value > Self::MAX_DEPTH as u64 => {
                return Err(format!(
                    "limit depth must be at most {} (deeper trees could overflow the stack)",
                    Self::MAX_DEPTH
                ))
            }
            "depth" => self.depth = size(value)?,
            _ => {
                let known: Vec<&str> = self.entries().iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown limit {}; limits are {}",
                    crate::diag::quote(name),
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    /// Far above real inputs (a 10,000-pod `kubectl get pods -A -o yaml` is about
    /// 100 MB and 3 million nodes in one document) and far below what exhausts a host.
    fn default() -> Self {
        Limits {
            file_bytes: 256 << 20,
            documents: 1_000_000,
            nodes: 8_000_000,
            scalar_bytes: 1 << 20,
            depth: 64,
        }
    }
}

/// How inputs are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// What one file may cost.
    pub limits: Limits,
    /// Whether a file with no YAML documents (blank, or only comments and markers) is
    /// taken as "no objects"; a JSON file is never empty. Off by default:
    /// an empty file is far more often one being written (`kubectl … > file`) or cut
    /// short than one meant to be empty, and taking it as empty can drop the
    /// protection its objects gave.
    pub allow_empty_files: bool,
}
