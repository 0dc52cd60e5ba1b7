//! Load: read files and directories and parse YAML into faithful documents that keep
//! every node's position, so later errors can say file, line and column.
//!
//! Must not judge meaning (that is `validate`) nor touch anything but the files given.
//!
//! - [`read_paths`] turns the paths an operator gave into [`Input`]s (file texts).
//! - [`parse`] turns one input into its [`Document`]s: trees of [`Node`]s with 1-based
//!   line and column, plus a diagnostic for each malformed document; [`documents`] does
//!   the same one document at a time.

mod files;
mod tree;
mod yaml;

use std::path::PathBuf;

pub use files::read_paths;
pub use yaml::{documents, parse, Document, Documents, Node, Value};

/// One input file's text, with the path messages should name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Path shown in messages.
    pub path: PathBuf,
    /// The whole file.
    pub text: String,
}
