//! Diagnostics: errors and warnings about the input, with enough context for an
//! operator to act on them (file, line, column, object, field path, what is wrong).
//!
//! Every stage that looks at input collects all its diagnostics instead of stopping at
//! the first. This module only carries and formats them; it must not decide what is
//! valid.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input is accepted; something deserves a look.
    Warning,
    /// The input is rejected: nothing is compiled from it.
    Error,
}

/// One finding about the input.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, when known.
    pub file: Option<PathBuf>,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// The object, as `Kind namespace/name`, when known.
    pub object: Option<String>,
    /// The field path within the object, e.g. `spec.ingress[0].ports[1].port`.
    pub field: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl Diagnostic {
    /// An error with only a message; add context with the builder methods.
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: None,
            line: 0,
            column: 0,
            object: None,
            field: None,
            message: message.into(),
        }
    }

    /// A warning with only a message.
    pub fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    /// Sets the file.
    pub fn in_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Sets line and column (1-based).
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = line;
        self.column = column;
        self
    }

    /// Sets the object (`Kind namespace/name`).
    pub fn object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    /// Sets the field path.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `file:line:col: error: Kind ns/name: field: message`, leaving out what is unknown.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if self.line > 0 {
                write!(f, ":{}:{}", self.line, self.column)?;
            }
            write!(f, ": ")?;
        }
        match self.severity {
            Severity::Error => write!(f, "error: ")?,
            Severity::Warning => write!(f, "warning: ")?,
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The input was rejected: every error found (and the warnings seen on the way).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_list(.0))]
pub struct Rejected(pub Vec<Diagnostic>);

impl Rejected {
    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }
}

fn render_list(diags: &[Diagnostic]) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out.push_str(&format!(
        "{errors} error{} in the input; nothing was compiled",
        if errors == 1 { "" } else { "s" }
    ));
    out
}
