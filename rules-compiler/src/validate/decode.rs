//! The hand decoder's tools: a context that turns problems into diagnostics (file,
//! position, object, field path), and typed access to [`Node`]s that reports a wrong type
//! instead of stopping.
//!
//! Convention, as in Kubernetes' JSON decoding: a field whose value is `null` is the same
//! as a missing field.

use std::path::Path;
use std::sync::Arc;

use crate::diag::{quote, Diagnostic};
use crate::load::{Node, Value};
use crate::model::Source;

/// Where diagnostics go, and what they are about.
pub(super) struct Ctx<'a> {
    /// The file being decoded, shared by every [`Source`] made from it.
    pub file: &'a Arc<Path>,
    /// `Kind namespace/name` of the object being decoded, once known.
    pub object: Option<String>,
    diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a Arc<Path>, diags: &'a mut Vec<Diagnostic>) -> Self {
        Ctx {
            file,
            object: None,
            diags,
        }
    }

    /// An error about `node`, at field path `field` (empty: the object itself).
    pub fn error(&mut self, node: &Node, field: &str, message: impl Into<String>) {
        let d = self.located(
            Diagnostic::error(message),
            node.line(),
            node.column(),
            field,
        );
        self.diags.push(d);
    }

    /// A warning about `node`.
    pub fn warning(&mut self, node: &Node, field: &str, message: impl Into<String>) {
        let d = self.located(
            Diagnostic::warning(message),
            node.line(),
            node.column(),
            field,
        );
        self.diags.push(d);
    }

    /// An error at a position recorded earlier.
    pub fn error_at(&mut self, at: &Source, field: &str, message: impl Into<String>) {
        let d = self.located(Diagnostic::error(message), at.line, at.column, field);
        self.diags.push(d);
    }

    /// Where `node` is, as a model [`Source`].
    pub fn source(&self, node: &Node) -> Source {
        Source {
            file: Some(Arc::clone(self.file)),
            line: node.line(),
            column: node.column(),
        }
    }

    fn located(&self, d: Diagnostic, line: usize, column: usize, field: &str) -> Diagnostic {
        let mut d = d.in_file(&**self.file).at(line, column);
        if let Some(o) = &self.object {
            d = d.object(o.clone());
        }
        if !field.is_empty() {
            d = d.field(field);
        }
        d
    }
}

/// `parent.key`, or `key` at the top.
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(super) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// A mapping whose keys are known to be strings.
pub(super) struct Map<'n> {
    /// The mapping node itself.
    pub node: &'n Node,
    /// Its field path.
    pub path: String,
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Map<'n> {
    /// The value of `key`; `None` when missing or null.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key)
            .map(|(_, v)| v)
            .filter(|v| v.value != Value::Null)
    }

    /// Whether `key` is written at all (even as null).
    pub fn has(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// The key node of `key`, when present.
    pub fn key_node(&self, key: &str) -> Option<&'n Node> {
        self.entry(key).map(|(k, _)| k)
    }

    fn entry(&self, key: &str) -> Option<(&'n Node, &'n Node)> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, k, v)| (*k, *v))
    }

    /// The field path of `key` within this mapping.
    pub fn field(&self, key: &str) -> String {
        // Unknown keys are input: a long or unprintable one is quoted (cut, escaped),
        // so the path cannot repeat a 1 MB key or carry an escape sequence.
        if key.chars().nth(crate::diag::QUOTE_CHARS).is_some() || crate::diag::escape(key) != key {
            format!("{}[{}]", self.path, quote(key))
        } else {
            join(&self.path, key)
        }
    }

    /// Entries in input order: (key, key node, value node).
    pub fn entries(&self) -> &[(&'n str, &'n Node, &'n Node)] {
        &self.entries
    }

    /// Strict decoding: every key not in `allowed` is an error at the key.
    pub fn strict(&self, ctx: &mut Ctx<'_>, allowed: &[&str]) {
        for (key, key_node, _) in &self.entries {
            if !allowed.contains(key) {
                ctx.error(
                    key_node,
                    &self.field(key),
                    format!(
                        "unknown field {}; allowed here: {}",
                        quote(key),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// The value of a required field; an error when it is missing or null.
    pub fn required(&self, ctx: &mut Ctx<'_>, key: &str, hint: &str) -> Option<&'n Node> {
        let found = self.get(key);
        if found.is_none() {
            let (node, what) = match self.key_node(key) {
                Some(k) => (k, "is empty"),
                None => (self.node, "is missing"),
            };
            let sep = if hint.is_empty() { "" } else { "; " };
            ctx.error(
                node,
                &self.field(key),
                format!("required field {} {what}{sep}{hint}", quote(key)),
            );
        }
        found
    }

    /// An optional string field: `None` when missing, null or of the wrong type (then
    /// with an error).
    pub fn string(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<(&'n str, &'n Node)> {
        let node = self.get(key)?;
        // The field path only for the error: this runs for every string of every object.
        match &node.value {
            Value::Str(s) => Some((s, node)),
            _ => {
                type_error(ctx, node, &self.field(key), "a string");
                None
            }
        }
    }
}

/// `node` as a mapping with string keys; an error (and `None`) when it is not one.
/// Keys that are not strings are reported and left out.
pub(super) fn map<'n>(ctx: &mut Ctx<'_>, node: &'n Node, path: &str) -> Option<Map<'n>> {
    let Value::Map(pairs) = &node.value else {
        type_error(ctx, node, path, "a mapping");
        return None;
    };
    let mut entries = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        match &k.value {
            Value::Str(s) => entries.push((s.as_str(), k, v)),
            other => ctx.error(
                k,
                path,
                format!(
                    "keys must be strings, found {}; quote the key",
                    other.describe()
                ),
            ),
        }
    }
    Some(Map {
        node,
        path: path.to_string(),
        entries,
    })
}

/// `node` as a list; `None` (with an error) otherwise.
pub(super) fn seq<'n>(ctx: &mut Ctx<'_>, node: &'n Node, path: &str) -> Option<&'n [Node]> {
    match &node.value {
        Value::Seq(items) => Some(items),
        _ => {
            type_error(ctx, node, path, "a list");
            None
        }
    }
}

/// `node` as a list, where missing or null is the empty list.
pub(super) fn opt_seq<'n>(ctx: &mut Ctx<'_>, node: Option<&'n Node>, path: &str) -> &'n [Node] {
    node.and_then(|n| seq(ctx, n, path)).unwrap_or(&[])
}

/// `node` as a string; `None` (with an error) otherwise.
pub(super) fn string<'n>(ctx: &mut Ctx<'_>, node: &'n Node, path: &str) -> Option<&'n str> {
    match &node.value {
        Value::Str(s) => Some(s),
        _ => {
            type_error(ctx, node, path, "a string");
            None
        }
    }
}

/// `node` as an integer; `None` (with an error) otherwise.
pub(super) fn integer(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<i64> {
    match &node.value {
        Value::Int(i) => Some(*i),
        _ => {
            type_error(ctx, node, path, "an integer");
            None
        }
    }
}

/// `node` as a boolean; `None` (with an error) otherwise.
pub(super) fn boolean(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        _ => {
            type_error(ctx, node, path, "a boolean (true or false)");
            None
        }
    }
}

/// "expected X, found Y", with a hint when quoting would fix it.
pub(super) fn type_error(ctx: &mut Ctx<'_>, node: &Node, path: &str, expected: &str) {
    let message = match &node.value {
        Value::Invalid(why) => format!("invalid value: {why}"),
        found @ (Value::Bool(_) | Value::Int(_) | Value::Float(_)) if expected == "a string" => {
            format!(
                "expected a string, found {}; quote it to make it a string",
                found.describe()
            )
        }
        found => format!("expected {expected}, found {}", found.describe()),
    };
    ctx.error(node, path, message);
}
