//! Diagnostics: errors and warnings about the input, with enough context for an
//! operator to act on them (file, line, column, object, field path, what is wrong).
//!
//! Every stage that looks at input collects all its diagnostics instead of stopping at
//! the first. This module only carries and formats them; it must not decide what is
//! valid.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Most characters of an input value that a message repeats; the rest is left out and
/// its length given, so a 20 MB label cannot become 20 MB of stderr, log and status.
pub const QUOTE_CHARS: usize = 64;

/// Most characters of a diagnostic's message, and of its file, object and field, when
/// displayed: a backstop for text that [`quote`] did not cut.
pub const DISPLAY_CHARS: usize = 2000;

/// Most diagnostics a [`Rejected`] shows; the count of the others is given.
pub const SHOWN_DIAGNOSTICS: usize = 50;

/// An input string as messages show it: in double quotes, with control, format and
/// bidirectional characters escaped as Rust's `{:?}` escapes them (`\n`, `\u{1b}`,
/// `\u{202e}`), so input cannot forge lines or colours on a terminal or in the journal;
/// cut after [`QUOTE_CHARS`] characters, with the whole length.
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &s[..end], s.len()),
    }
}

/// An input string shown without quotes (a name inside `Kind namespace/name`): escaped
/// as [`quote`] does, cut after [`QUOTE_CHARS`] characters with `…`.
pub fn clip(s: &str) -> String {
    cut(&escape(s), QUOTE_CHARS).into_owned()
}

/// `s` with control, format and bidirectional characters escaped as `{:?}` does; `s`
/// itself when it has none.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Characters that move the cursor, change colours or reorder text when printed.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// `s` cut after `max` characters, with `…` and the whole length in bytes.
fn cut(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((end, _)) => Cow::Owned(format!("{}… ({} bytes)", &s[..end], s.len())),
    }
}

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
        // File names come from directories anyone with write access fills, and every
        // part may carry input: escaped and cut here whatever the caller did.
        let show = |s: &str| cut(&escape(s), DISPLAY_CHARS).into_owned();
        if let Some(file) = &self.file {
            write!(f, "{}", show(&file.to_string_lossy()))?;
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
            write!(f, "{}: ", show(object))?;
        }
        if let Some(field) = &self.field {
            write!(f, "{}: ", show(field))?;
        }
        f.write_str(&show(&self.message))
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
    for d in diags.iter().take(SHOWN_DIAGNOSTICS) {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    if diags.len() > SHOWN_DIAGNOSTICS {
        out.push_str(&format!(
            "… and {} more (errors and warnings)\n",
            diags.len() - SHOWN_DIAGNOSTICS
        ));
    }
    out.push_str(&format!(
        "{errors} error{} in the input; nothing was compiled",
        if errors == 1 { "" } else { "s" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_what_could_forge_output_and_cuts_long_values() {
        assert_eq!(quote("web"), r#""web""#);
        assert_eq!(
            quote("a\u{1b}[31mb\nc\u{202e}d\"e"),
            r#""a\u{1b}[31mb\nc\u{202e}d\"e""#
        );
        let long = "x".repeat(2_000_000);
        let q = quote(&long);
        assert_eq!(
            q,
            format!("\"{}\"… (2000000 bytes)", "x".repeat(QUOTE_CHARS))
        );
        // Cut on a character boundary.
        let wide = "é".repeat(100);
        assert!(quote(&wide).starts_with(&format!("\"{}\"…", "é".repeat(QUOTE_CHARS))));
    }

    #[test]
    fn clip_escapes_without_quotes() {
        assert_eq!(clip("api"), "api");
        assert_eq!(clip("a\nb\u{2066}"), r"a\nb\u{2066}");
        assert!(clip(&"n".repeat(500)).ends_with("… (500 bytes)"));
    }

    #[test]
    fn display_escapes_every_part_and_cuts_the_message() {
        let d = Diagnostic::error(format!("bad\u{1b}]0;title\u{7}{}", "m".repeat(5000)))
            .in_file("/etc/netpol/evil\nnetpold: applied.yaml")
            .at(1, 2)
            .object("Pod ns/a\rb")
            .field("spec\u{202e}");
        let shown = d.to_string();
        assert!(!shown.chars().any(needs_escape), "{shown}");
        assert!(shown.starts_with(
            r"/etc/netpol/evil\nnetpold: applied.yaml:1:2: error: Pod ns/a\rb: spec\u{202e}: bad\u{1b}]0;title\u{7}"
        ));
        assert!(shown.len() < DISPLAY_CHARS + 300, "{}", shown.len());
        // The length is of the escaped message: 22 bytes of escapes and text, 5,000 of m.
        assert!(shown.ends_with("… (5022 bytes)"), "{shown}");
    }

    #[test]
    fn a_rejection_shows_its_first_diagnostics_and_counts_the_rest() {
        let diags: Vec<Diagnostic> = (0..5000)
            .map(|i| Diagnostic::error(format!("problem {i}")))
            .collect();
        let text = Rejected(diags).to_string();
        assert_eq!(text.lines().count(), SHOWN_DIAGNOSTICS + 2, "{text}");
        assert!(text.contains("error: problem 49\n… and 4950 more (errors and warnings)\n"));
        assert!(text.ends_with("5000 errors in the input; nothing was compiled"));
    }
}
