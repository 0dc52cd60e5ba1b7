//! saphyr-parser events → our [`Node`] trees, in one pass.
//!
//! Loading saphyr's own tree first and converting it took more time than parsing: a
//! hash map per mapping, a second walk, and a copy of every string. Here each scalar's
//! text moves into its node, and each collection is allocated once, at its final size:
//! children wait on one shared stack while their collection is open.
//!
//! What saphyr's loader did is done here with the same results: scalars typed per the
//! YAML 1.2 core schema, tags looked through, aliases expanded within a node budget
//! (against "billion laughs"), and a key written twice in one mapping an error at its
//! second occurrence. Where saphyr went wrong, we do not follow (each is tested below):
//! a key whose value does not match its tag (`!!int x: 1`) stays a key instead of
//! shifting the rest of the mapping; keys are compared without their tags, as everything
//! after us sees them; a repeated collection key is reported at its start, not at its
//! closing bracket; and nodes inside keys count towards the alias budget.
//!
//! Events are pulled from the parser one at a time, never through its recursive
//! `load`, whose stack grows with the nesting of block collections: 40 KB of `- - - …`
//! overflowed it. Nesting, nodes, scalar sizes and documents are held to [`Limits`],
//! and loading stops at the first one exceeded.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use saphyr_parser::{BufferedInput, Event, Marker, Parser, ScalarStyle, ScanError, Span, Tag};

use crate::load::fast::{self, Fast};
use crate::load::{Limits, Node, Str, Value};

/// Most nodes that alias expansion may produce in one chunk of input (saphyr's default).
/// Real inventories use few anchors, if any; a handful of nested anchors can otherwise
/// expand into billions of nodes.
const ALIAS_BUDGET: usize = 100_000;

/// Mappings up to this many keys are checked for duplicates by comparing with every
/// earlier key; bigger ones keep a set of key hashes, so that checking stays linear.
const LINEAR_KEY_CHECK: usize = 16;

/// Why a chunk of input could not be loaded.
#[derive(Debug)]
pub(super) enum Failure {
    /// The scanner or parser rejected the text.
    Scan(ScanError),
    /// A mapping repeats the key that starts at this (1-based line, 0-based column) of
    /// the chunk.
    DuplicateKey { line: usize, col: usize },
    /// Expanding the alias at this marker would exceed [`ALIAS_BUDGET`].
    AliasBudget(Marker),
    /// The node starting at this marker goes past one of the [`Limits`].
    Limit(Marker, Exceeded),
}

/// Which of the [`Limits`] a file went past, with the limit's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Exceeded {
    Documents(usize),
    Nodes(usize),
    ScalarBytes(usize),
    Depth(usize),
}

impl Exceeded {
    /// What went wrong, naming the limit as the config spells it.
    pub(super) fn message(self) -> String {
        match self {
            Exceeded::Documents(n) => {
                format!("too many YAML documents: more than {n} in one file (limit documents)")
            }
            Exceeded::Nodes(n) => {
                format!("too many YAML nodes: more than {n} in one document (limit nodes)")
            }
            Exceeded::ScalarBytes(n) => {
                format!("a scalar of more than {n} bytes (limit scalar-bytes)")
            }
            Exceeded::Depth(n) => {
                format!("nested too deep: more than {n} collections in one another (limit depth)")
            }
        }
    }
}

/// Receives a chunk's events and builds the root node of each of its documents.
pub(super) struct Builder {
    /// Lines of the file before the chunk, added to every node's line.
    line_offset: usize,
    /// The collections still open, innermost last.
    open: Vec<Open>,
    /// Children of the open collections, in order; a mapping's as key, value, key, ….
    items: Vec<Node>,
    /// Finished document roots.
    roots: Vec<Node>,
    /// Anchored values by the parser's anchor id (unique within a chunk).
    anchors: HashMap<usize, Value>,
    /// What alias expansion may still produce.
    alias_budget: usize,
    /// The first failure; events after it are ignored.
    failure: Option<Failure>,
    limits: Limits,
    /// Nodes in the current document.
    nodes: usize,
    /// Documents of the file so far (over all its chunks).
    documents: usize,
    /// The fast path for kubectl-style YAML, tried first unless turned off.
    fast: Option<Fast>,
}

/// A collection whose end event has not come yet.
struct Open {
    line: usize,
    column: usize,
    anchor: usize,
    /// Where its children start in [`Builder::items`].
    start: usize,
    /// Hashes of its keys once it has more than [`LINEAR_KEY_CHECK`]; `None` for a
    /// sequence and for a small mapping.
    keys: Option<HashSet<u64>>,
    is_map: bool,
}

impl Builder {
    pub(super) fn new(limits: Limits) -> Self {
        Builder {
            line_offset: 0,
            open: Vec::new(),
            items: Vec::new(),
            roots: Vec::new(),
            anchors: HashMap::new(),
            alias_budget: ALIAS_BUDGET,
            failure: None,
            limits,
            nodes: 0,
            documents: 0,
            fast: fast::enabled().then(Fast::default),
        }
    }

    /// Documents begun so far, over every chunk loaded.
    pub(super) fn documents(&self) -> usize {
        self.documents
    }

    /// The root nodes of the documents in `text`, whose first line is line
    /// `line_offset + 1` of its file; or the first failure.
    ///
    /// One builder serves all the chunks of a file, so that its stacks are grown once.
    pub(super) fn load(&mut self, text: &str, line_offset: usize) -> Result<Vec<Node>, Failure> {
        // The fast path gives the same roots or declines (on every failure too).
        if let Some(loaded) = self
            .fast
            .as_mut()
            .and_then(|f| f.load(text, line_offset, &self.limits))
        {
            let documents = self.documents + loaded.roots.len();
            if documents <= self.limits.documents {
                self.documents = documents;
                if !loaded.roots.is_empty() {
                    self.nodes = loaded.nodes;
                }
                return Ok(loaded.roots);
            }
        }
        self.saphyr(text, line_offset)
    }

    /// [`Builder::load`] by saphyr-parser alone.
    pub(super) fn saphyr(&mut self, text: &str, line_offset: usize) -> Result<Vec<Node>, Failure> {
        self.line_offset = line_offset;
        self.open.clear();
        self.items.clear();
        self.anchors.clear();
        self.alias_budget = ALIAS_BUDGET;
        self.failure = None;
        let mut parser = Parser::new(BufferedInput::new(text.chars()));
        let parsed = loop {
            match parser.next_event() {
                None => break Ok(()),
                Some(Err(e)) => break Err(e),
                Some(Ok((ev, span))) => {
                    if self.failure.is_none() {
                        if let Err(f) = self.event(ev, span) {
                            // Past a limit, reading on is what the limit prevents.
                            if matches!(f, Failure::Limit(..)) {
                                self.open.clear();
                                self.items.clear();
                                self.roots.clear();
                                return Err(f);
                            }
                            self.failure = Some(f);
                        }
                    }
                }
            }
        };
        let roots = std::mem::take(&mut self.roots);
        // A parse error wins over a failure found while building, whichever came
        // first: saphyr reported it so, and it is the more basic problem.
        parsed.map_err(Failure::Scan)?;
        match self.failure.take() {
            Some(f) => Err(f),
            None => Ok(roots),
        }
    }

    /// Counts `n` more nodes of the current document.
    fn count(&mut self, n: usize, at: Marker) -> Result<(), Failure> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.nodes {
            return Err(Failure::Limit(at, Exceeded::Nodes(self.limits.nodes)));
        }
        Ok(())
    }

    fn event(&mut self, ev: Event<'_>, span: Span) -> Result<(), Failure> {
        let (line, column) = (span.start.line() + self.line_offset, span.start.col() + 1);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, span.start)?;
                if text.len() > self.limits.scalar_bytes {
                    let limit = Exceeded::ScalarBytes(self.limits.scalar_bytes);
                    return Err(Failure::Limit(span.start, limit));
                }
                let value = scalar(text, style, tag.as_deref());
                self.add(Node::new(line, column, value), anchor)
            }
            // Tags on collections are looked through: the core schema's say nothing
            // new (`!!map`), and any other one is no concern of ours.
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.count(1, span.start)?;
                if self.open.len() >= self.limits.depth {
                    return Err(Failure::Limit(
                        span.start,
                        Exceeded::Depth(self.limits.depth),
                    ));
                }
                self.open.push(Open {
                    line,
                    column,
                    anchor,
                    start: self.items.len(),
                    keys: None,
                    is_map: matches!(ev, Event::MappingStart(..)),
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let open = self.open.pop().expect("the parser balances its events");
                let value = if open.is_map {
                    let mut children = self.items.drain(open.start..);
                    let mut entries = Vec::with_capacity(children.len() / 2);
                    while let (Some(k), Some(v)) = (children.next(), children.next()) {
                        entries.push((k, v));
                    }
                    Value::Map(entries.into_boxed_slice())
                } else {
                    Value::Seq(self.items.drain(open.start..).collect())
                };
                let node = Node::new(open.line, open.column, value);
                self.add(node, open.anchor)
            }
            // The copy is where the alias is; what is inside it stays where it was
            // written.
            Event::Alias(id) => {
                let value = self.expand(id, span.start)?;
                self.add(Node::new(line, column, value), 0)
            }
            Event::DocumentStart(_) => {
                self.nodes = 0;
                self.documents += 1;
                if self.documents > self.limits.documents {
                    let limit = Exceeded::Documents(self.limits.documents);
                    return Err(Failure::Limit(span.start, limit));
                }
                Ok(())
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => Ok(()),
        }
    }

    /// Adds a finished node to the innermost open collection, or as a document root.
    fn add(&mut self, node: Node, anchor: usize) -> Result<(), Failure> {
        // The parser numbers anchors from 1; 0 is none.
        if anchor > 0 {
            self.anchors.insert(anchor, node.value.clone());
        }
        let Some(open) = self.open.last_mut() else {
            self.roots.push(node);
            return Ok(());
        };
        self.items.push(node);
        let count = self.items.len() - open.start;
        // Checked when the value is done, not at the key, as saphyr did: an error inside
        // the value comes first.
        if open.is_map && count % 2 == 0 {
            check_last_key(open, &self.items[open.start..]).map_err(|key| {
                Failure::DuplicateKey {
                    // Saturating: positions past u32::MAX (a file of 4 billion lines,
                    // only with file-bytes raised) are clamped.
                    line: key.line().saturating_sub(self.line_offset),
                    col: key.column() - 1,
                }
            })?;
        }
        Ok(())
    }

    /// A copy of the value anchored as `id`, if the budget allows it.
    fn expand(&mut self, id: usize, at: Marker) -> Result<Value, Failure> {
        let Some(anchored) = self.anchors.get(&id) else {
            // The parser knows the anchor but its node is not finished: the alias is
            // inside the node it names (`&a [*a]`).
            return Ok(Value::Invalid("alias to a node that contains it".into()));
        };
        let size = size_within(anchored, self.alias_budget);
        let Some(left) = self.alias_budget.checked_sub(size) else {
            return Err(Failure::AliasBudget(at));
        };
        // A copy nests as deep as its original, wherever it is put: anchors that alias
        // each other could otherwise stack past the depth limit.
        if self.open.len() + depth(anchored) > self.limits.depth {
            return Err(Failure::Limit(at, Exceeded::Depth(self.limits.depth)));
        }
        let copy = anchored.clone();
        self.alias_budget = left;
        self.count(size, at)?;
        Ok(copy)
    }
}

/// How many collections deep a value is (0 for a scalar). Values here were built within
/// the depth limit, so the recursion is bounded by it.
fn depth(value: &Value) -> usize {
    match value {
        Value::Seq(items) => 1 + items.iter().map(|n| depth(&n.value)).max().unwrap_or(0),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| depth(&k.value).max(depth(&v.value)))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// The number of nodes in a value (keys included), or more than `limit` if it has more
/// than `limit`: counting stops there, so a huge anchor costs no more than the budget.
fn size_within(value: &Value, limit: usize) -> usize {
    let mut size = 1;
    let mut add = |v: &Value| {
        if size <= limit {
            size += size_within(v, limit - size);
        }
    };
    match value {
        Value::Seq(items) => items.iter().for_each(|n| add(&n.value)),
        Value::Map(entries) => entries.iter().for_each(|(k, v)| {
            add(&k.value);
            add(&v.value);
        }),
        _ => {}
    }
    size
}

/// Checks the last key of a mapping's children (`key, value, key, value, …`, ending with
/// a value) against the earlier keys; the repeated key node is the error.
fn check_last_key<'n>(open: &mut Open, children: &'n [Node]) -> Result<(), &'n Node> {
    let last = children.len() - 2;
    let key = &children[last];
    let earlier = || children[..last].iter().step_by(2);
    let repeated = if last / 2 < LINEAR_KEY_CHECK {
        earlier().any(|k| same_key(&k.value, &key.value))
    } else {
        let hashes = open
            .keys
            .get_or_insert_with(|| earlier().map(|k| key_hash(&k.value)).collect());
        // A hash seen before is almost always the same key; compare to be sure.
        !hashes.insert(key_hash(&key.value)) && earlier().any(|k| same_key(&k.value, &key.value))
    };
    if repeated {
        Err(key)
    } else {
        Ok(())
    }
}

/// Key equality as saphyr's mappings had it: by value, where all NaNs are equal (and so
/// are `0.0` and `-0.0`), an integer is not a float, and tags are no part of a key.
pub(super) fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_key(&a.value, &b.value))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|((ak, av), (bk, bv))| {
                    same_key(&ak.value, &bk.value) && same_key(&av.value, &bv.value)
                })
        }
        // Whatever the reason: saphyr had one `BadValue` for all of them.
        (Value::Invalid(_), Value::Invalid(_)) => true,
        _ => a == b,
    }
}

/// A hash consistent with [`same_key`].
pub(super) fn key_hash(v: &Value) -> u64 {
    fn feed(v: &Value, h: &mut impl Hasher) {
        std::mem::discriminant(v).hash(h);
        match v {
            Value::Null | Value::Invalid(_) => {}
            Value::Bool(b) => b.hash(h),
            Value::Int(i) => i.hash(h),
            Value::Float(f) => {
                let f = if f.is_nan() {
                    f64::NAN
                } else if *f == 0.0 {
                    0.0
                } else {
                    *f
                };
                f.to_bits().hash(h);
            }
            Value::Str(s) => s.hash(h),
            Value::Seq(items) => items.iter().for_each(|n| feed(&n.value, h)),
            Value::Map(entries) => entries.iter().for_each(|(k, v)| {
                feed(&k.value, h);
                feed(&v.value, h);
            }),
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    feed(v, &mut h);
    h.finish()
}

/// A scalar's value per the YAML 1.2 core schema, as saphyr resolved it: quoted scalars
/// are strings; a core-schema tag (`!!int`) forces its type, or gives
/// [`Value::Invalid`] when the text is not of it; other tags (`!custom`) are ignored.
pub(super) fn scalar(text: Cow<'_, str>, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if style != ScalarStyle::Plain {
        return Value::Str(Str::from(text));
    }
    let Some(tag) = tag.filter(|t| t.is_yaml_core_schema()) else {
        return if text.is_empty() {
            Value::Null
        } else {
            plain(text)
        };
    };
    let typed = match tag.suffix.as_str() {
        "bool" => text.parse().ok().map(Value::Bool),
        "int" => text.parse().ok().map(Value::Int),
        "float" => core_float(&text).map(Value::Float),
        "null" => matches!(&*text, "~" | "null").then_some(Value::Null),
        "str" => Some(Value::Str(Str::from(text))),
        _ => None,
    };
    typed.unwrap_or_else(|| Value::Invalid("the value does not match its tag".into()))
}

/// An untagged plain scalar: null, boolean, integer, float, or else a string.
fn plain(text: Cow<'_, str>) -> Value {
    let s = &*text;
    let bytes = s.as_bytes();
    if bytes.len() >= 2 {
        // `from_str_radix` and `parse` take a sign of their own, which the core schema
        // does not allow after a prefix (`0x-1`, `+-1`).
        let int = match (bytes[0], bytes[1]) {
            (b'0', b'x') if !s[2..].starts_with(['+', '-']) => {
                i64::from_str_radix(&s[2..], 16).ok()
            }
            (b'0', b'o') if !s[2..].starts_with(['+', '-']) => i64::from_str_radix(&s[2..], 8).ok(),
            (b'+', b'0'..=b'9') => s[1..].parse().ok(),
            _ => None,
        };
        if let Some(i) = int {
            return Value::Int(i);
        }
    }
    match s {
        "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    // Most scalars are names: skip the number parsers unless a digit or a `.` (`.inf`,
    // `.nan`) could make it one.
    if !bytes.iter().any(|b| b.is_ascii_digit() || *b == b'.') {
        return Value::Str(Str::from(text));
    }
    if let Ok(i) = s.parse() {
        return Value::Int(i);
    }
    match core_float(s) {
        Some(f) => Value::Float(f),
        None => Value::Str(Str::from(text)),
    }
}

/// A float per the core schema: Rust's syntax (which wants a digit, so `inf` and `nan`
/// stay strings) plus `.inf`, `-.inf` and `.nan` in their three spellings.
fn core_float(s: &str) -> Option<f64> {
    match s {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ if s.bytes().any(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::diag::Diagnostic;
    use crate::load::{Input, Limits, Node, Value};

    /// The root of each document, and the diagnostics.
    fn load(text: &str) -> (Vec<Node>, Vec<Diagnostic>) {
        load_within(text, Limits::default())
    }

    fn load_within(text: &str, limits: Limits) -> (Vec<Node>, Vec<Diagnostic>) {
        let input = Input {
            path: "t.yaml".into(),
            text: text.to_string().into(),
        };
        // As YAML, also a flow collection that would make the file JSON (`load/json.rs`).
        let (mut roots, mut diags) = (Vec::new(), Vec::new());
        for doc in crate::load::yaml::yaml_documents(&input, &limits) {
            match doc {
                Ok(doc) => roots.push(doc.root),
                Err(diag) => diags.push(diag),
            }
        }
        (roots, diags)
    }

    /// The one diagnostic of loading `text`, as (line, column, message).
    fn only_error(text: &str, limits: Limits) -> (usize, usize, String) {
        let (roots, diags) = load_within(text, limits);
        assert!(roots.is_empty(), "{roots:?}");
        assert_eq!(diags.len(), 1, "{diags:?}");
        (diags[0].line, diags[0].column, diags[0].message.clone())
    }

    #[test]
    fn deep_block_nesting_is_an_error_at_the_first_level_too_deep() {
        // 20,000 levels overflowed the stack in the parser's recursive loader.
        let text = "- ".repeat(20_000) + "x\n";
        let (line, column, message) = only_error(&text, Limits::default());
        assert_eq!((line, column), (1, 2 * 64 + 1));
        assert_eq!(
            message,
            "nested too deep: more than 64 collections in one another (limit depth)"
        );
        // Mappings, across lines.
        let text: String = (0..100).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let (line, ..) = only_error(&text, Limits::default());
        assert_eq!(line, 65);
        // Flow collections and a mix.
        let text = "[".repeat(50) + &"{a: ".repeat(50) + "x" + &"}".repeat(50) + &"]".repeat(50);
        let (_, column, _) = only_error(&text, Limits::default());
        assert_eq!(column, 50 + 14 * 4 + 1);
    }

    #[test]
    fn aliases_cannot_stack_copies_past_the_depth_limit() {
        // Each anchor holds a copy of the one before, 10 levels further down.
        let mut text = format!("a0: &a0 {}x{}\n", "[".repeat(10), "]".repeat(10));
        for i in 1..10 {
            let (open, close) = ("[".repeat(10), "]".repeat(10));
            text += &format!("a{i}: &a{i} {open}*a{}{close}\n", i - 1);
        }
        let (line, column, message) = only_error(&text, Limits::default());
        // a6 would be 1 + 7 × 10 deep: its alias of a5 (1 + 10 + 6 × 10) is the error.
        assert_eq!((line, column), (7, 19));
        assert!(message.contains("limit depth"), "{message}");
        // Within the limit, copies are made as before.
        let limits = Limits {
            depth: 101,
            ..Limits::default()
        };
        assert_eq!(load_within(&text, limits).1, vec![]);
    }

    #[test]
    fn nesting_at_the_depth_limit_loads_and_the_limit_can_be_raised() {
        let limits = Limits {
            depth: 3,
            ..Limits::default()
        };
        assert_eq!(load_within("- - - x\n", limits).1, vec![]);
        assert!(only_error("- - - - x\n", limits).2.contains("more than 3"));
        let deep = "- ".repeat(1000) + "x\n";
        let limits = Limits {
            depth: Limits::MAX_DEPTH,
            ..Limits::default()
        };
        assert_eq!(load_within(&deep, limits).1, vec![]);
    }

    #[test]
    fn a_long_flow_collection_streams_instead_of_queueing_until_it_closes() {
        // A scan error after 20,000 items (`@` cannot start a scalar). Upstream
        // saphyr-parser queued every item's token (the collection might be an implicit
        // key) and met the error before any event; patched, the events come as the items
        // do, and the node limit stops the load long before the error.
        let limits = Limits {
            nodes: 100,
            ..Limits::default()
        };
        let long = "[".to_string() + &"a, ".repeat(20_000) + "@]";
        let tall = "[\n".to_string() + &"a,\n".repeat(20_000) + "@]";
        for text in [long, tall] {
            let (_, _, message) = only_error(&text, limits);
            assert!(message.contains("limit nodes"), "{message}");
        }
        // What YAML 1.2 says implicit keys are: one line outside flow mappings, any
        // number of lines inside them.
        assert!(load("[a,\n b]: c\n").1[0]
            .message
            .starts_with("malformed YAML"));
        let root = one("{multi\n line: v}\n");
        assert_eq!(entries(&root)[0].0.value, str("multi line"));
        assert_eq!(one("[a, b]: c\n").line, 1);
    }

    #[test]
    fn nodes_scalar_bytes_and_documents_are_bounded() {
        let limits = Limits {
            nodes: 4,
            scalar_bytes: 5,
            documents: 2,
            ..Limits::default()
        };
        // [ + 3 scalars = 4 nodes; per document.
        assert_eq!(load_within("[a, b, c]\n---\n[a, b, c]\n", limits).1, vec![]);
        let (line, column, message) = only_error("[a, b, c, d]\n", limits);
        assert_eq!((line, column), (1, 11));
        assert_eq!(
            message,
            "too many YAML nodes: more than 4 in one document (limit nodes)"
        );
        // Copies made by aliases count.
        assert!(only_error("[&x [a, b], *x]\n", limits)
            .2
            .contains("limit nodes"));
        let (_, column, message) = only_error("[abcde, abcdef]\n", limits);
        assert_eq!(column, 9);
        assert_eq!(
            message,
            "a scalar of more than 5 bytes (limit scalar-bytes)"
        );
        let (roots, diags) = load_within("a\n---\nb\n---\nc\n---\nd\n", limits);
        // The documents before the limit are kept; nothing after it is read.
        assert_eq!(roots.len(), 2);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].line, 4);
        assert_eq!(
            diags[0].message,
            "too many YAML documents: more than 2 in one file (limit documents)"
        );
    }

    fn one(text: &str) -> Node {
        let (mut roots, diags) = load(text);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(roots.len(), 1);
        roots.remove(0)
    }

    fn entries(node: &Node) -> &[(Node, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("not a mapping: {other:?}"),
        }
    }

    fn items(node: &Node) -> &[Node] {
        match &node.value {
            Value::Seq(items) => items,
            other => panic!("not a list: {other:?}"),
        }
    }

    fn get<'n>(node: &'n Node, key: &str) -> &'n Node {
        entries(node)
            .iter()
            .find(|(k, _)| k.value == Value::Str(key.into()))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no key {key}"))
    }

    fn at(node: &Node) -> (usize, usize) {
        (node.line(), node.column())
    }

    fn str(s: &str) -> Value {
        Value::Str(s.into())
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        let cases: &[(&str, Value)] = &[
            ("~", Value::Null),
            ("null", Value::Null),
            ("NULL", Value::Null),
            ("nUll", str("nUll")),
            ("True", Value::Bool(true)),
            ("FALSE", Value::Bool(false)),
            ("yes", str("yes")),
            ("80", Value::Int(80)),
            ("-0", Value::Int(0)),
            ("+12", Value::Int(12)),
            ("007", Value::Int(7)),
            ("0x1F", Value::Int(31)),
            ("0o17", Value::Int(15)),
            ("0x-1", str("0x-1")),
            ("+-1", str("+-1")),
            ("1_000", str("1_000")),
            ("9223372036854775808", Value::Float(9223372036854775808.0)),
            ("1e3", Value::Float(1000.0)),
            ("-.5", Value::Float(-0.5)),
            (".inf", Value::Float(f64::INFINITY)),
            ("-.Inf", Value::Float(f64::NEG_INFINITY)),
            ("inf", str("inf")),
            ("12:30", str("12:30")),
            ("198.18.0.1", str("198.18.0.1")),
            ("2001:db8::1", str("2001:db8::1")),
        ];
        for (text, want) in cases {
            let root = one(&format!("v: {text}\n"));
            assert_eq!(&get(&root, "v").value, want, "{text}");
        }
        let root = one("v: .nan\n");
        assert!(matches!(get(&root, "v").value, Value::Float(f) if f.is_nan()));
    }

    #[test]
    fn quoted_scalars_are_always_strings() {
        let root = one("a: '80'\nb: \"true\"\nc: ''\nd: \"~\"\ne: !!int '80'\n");
        assert_eq!(get(&root, "a").value, str("80"));
        assert_eq!(get(&root, "b").value, str("true"));
        assert_eq!(get(&root, "c").value, str(""));
        assert_eq!(get(&root, "d").value, str("~"));
        // As in saphyr: a quoted scalar is a string whatever its tag says.
        assert_eq!(get(&root, "e").value, str("80"));
    }

    #[test]
    fn core_tags_force_a_type_and_other_tags_are_ignored() {
        let root = one(concat!(
            "a: !!int 80\nb: !!float 1\nc: !!bool true\nd: !!null ~\ne: !!str 1.5\n",
            "f: !!int x\ng: !!bool yes\nh: !custom 80\ni: !custom\nj: !!map 1\n",
        ));
        assert_eq!(get(&root, "a").value, Value::Int(80));
        assert_eq!(get(&root, "b").value, Value::Float(1.0));
        assert_eq!(get(&root, "c").value, Value::Bool(true));
        assert_eq!(get(&root, "d").value, Value::Null);
        assert_eq!(get(&root, "e").value, str("1.5"));
        for key in ["f", "g", "j"] {
            assert_eq!(
                get(&root, key).value,
                Value::Invalid("the value does not match its tag".into()),
                "{key}"
            );
        }
        assert_eq!(get(&root, "h").value, Value::Int(80));
        // An empty scalar with a non-core tag is still null.
        assert_eq!(get(&root, "i").value, Value::Null);
    }

    #[test]
    fn keys_and_values_have_their_own_positions() {
        let root = one("spec:\n  ports:\n  - port: 80\n    name:\n      http\n  x: {a: b}\n");
        let (spec_key, spec) = &entries(&root)[0];
        assert_eq!(at(spec_key), (1, 1));
        // A block mapping starts at its first key.
        assert_eq!(at(spec), (2, 3));
        let (ports_key, ports) = &entries(spec)[0];
        assert_eq!(at(ports_key), (2, 3));
        // The parser starts a sequence written at its key's indentation at its first
        // entry's content, not at the dash.
        assert_eq!(at(ports), (3, 5));
        let port = &items(ports)[0];
        assert_eq!(at(port), (3, 5));
        let (k, v) = &entries(port)[0];
        assert_eq!((at(k), at(v)), ((3, 5), (3, 11)));
        let (k, v) = &entries(port)[1];
        assert_eq!((at(k), at(v)), ((4, 5), (5, 7)));
        assert_eq!(v.value, str("http"));
        let (k, v) = &entries(spec)[1];
        assert_eq!((at(k), at(v)), ((6, 3), (6, 6)));
        let (k, v) = &entries(v)[0];
        assert_eq!((at(k), at(v)), ((6, 7), (6, 10)));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let root = one("é: [ü, x]\n");
        let (k, v) = &entries(&root)[0];
        assert_eq!(k.value, str("é"));
        assert_eq!(at(v), (1, 4));
        assert_eq!(at(&items(v)[1]), (1, 8));
    }

    #[test]
    fn nested_flow_collections() {
        let root = one("a: {b: [1, {c: [x, \"y\"], d: {}}, []], e: [[], [[z]]]}\n");
        let a = get(&root, "a");
        assert_eq!(at(a), (1, 4));
        let b = items(get(a, "b"));
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].value, Value::Int(1));
        assert_eq!(at(&b[1]), (1, 12));
        let c = items(get(&b[1], "c"));
        assert_eq!(c[0].value, str("x"));
        assert_eq!((at(&c[1]), &c[1].value), ((1, 20), &str("y")));
        assert_eq!(get(&b[1], "d").value, Value::Map(Box::new([])));
        assert_eq!(b[2].value, Value::Seq(Box::new([])));
        let e = items(get(a, "e"));
        assert_eq!(e[0].value, Value::Seq(Box::new([])));
        assert_eq!(at(&e[1]), (1, 47));
        let z = &items(&items(&e[1])[0])[0];
        assert_eq!((at(z), &z.value), ((1, 49), &str("z")));
    }

    #[test]
    fn multi_line_scalars_start_where_they_are_written() {
        let root = one(concat!(
            "plain: one\n  two\n\n  three\n",
            "double: \"a\n  b \\\n  c\"\n",
            "single: 'x\n\n  y'\n",
            "literal: |\n  l1\n   l2\n",
            "folded: >-\n  f1\n  f2\n\n  f3\n",
            "keep: |+\n  k\n\n",
        ));
        // The parser starts a block scalar (`|`, `>`) at its first line of content.
        let cases = [
            ("plain", (1, 8), "one two\nthree"),
            ("double", (5, 9), "a b c"),
            ("single", (8, 9), "x\ny"),
            ("literal", (12, 3), "l1\n l2\n"),
            ("folded", (15, 3), "f1 f2\nf3"),
            ("keep", (20, 3), "k\n\n"),
        ];
        for (key, pos, text) in cases {
            let v = get(&root, key);
            assert_eq!((at(v), &v.value), (pos, &str(text)), "{key}");
        }
    }

    #[test]
    fn aliases_are_copies_placed_at_the_alias() {
        let root = one(concat!(
            "base: &labels\n  app: web\n  tier: [a, b]\n",
            "x: *labels\n",
            "y: [*labels, &n 80, *n]\n",
            "*n : number key\n",
        ));
        let base = get(&root, "base");
        let x = get(&root, "x");
        assert_eq!(x.value, base.value);
        assert_eq!(at(base), (1, 7));
        assert_eq!(at(x), (4, 4));
        // Inside the copy, nodes keep the positions they were written at.
        assert_eq!(at(&entries(x)[0].0), (2, 3));
        let y = items(get(&root, "y"));
        assert_eq!(y[0].value, base.value);
        assert_eq!(at(&y[0]), (5, 5));
        assert_eq!((at(&y[1]), &y[1].value), ((5, 14), &Value::Int(80)));
        assert_eq!((at(&y[2]), &y[2].value), ((5, 21), &Value::Int(80)));
        let (k, v) = &entries(&root)[3];
        assert_eq!((at(k), &k.value), ((6, 1), &Value::Int(80)));
        assert_eq!(v.value, str("number key"));
    }

    #[test]
    fn a_redefined_anchor_names_its_latest_node() {
        let root = one("a: &x 1\nb: *x\nc: &x 2\nd: *x\n");
        assert_eq!(get(&root, "b").value, Value::Int(1));
        assert_eq!(get(&root, "d").value, Value::Int(2));
    }

    #[test]
    fn an_alias_inside_its_own_anchor_is_invalid() {
        let root = one("a: &x [1, *x]\n");
        let a = items(get(&root, "a"));
        assert_eq!(
            (at(&a[1]), &a[1].value),
            (
                (1, 11),
                &Value::Invalid("alias to a node that contains it".into())
            )
        );
    }

    #[test]
    fn an_unknown_alias_is_a_scan_error() {
        let (roots, diags) = load("a: *nope\n---\nb: 1\n");
        assert_eq!(roots.len(), 1);
        assert_eq!(diags.len(), 1);
        assert_eq!((diags[0].line, diags[0].column), (1, 4));
        assert_eq!(
            diags[0].message,
            "malformed YAML: while parsing node, found unknown anchor"
        );
    }

    /// `n` aliases of a 10-node list.
    fn aliases(n: usize) -> String {
        let mut text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb:\n".to_string();
        text.extend(std::iter::repeat_n("- *a\n", n));
        text
    }

    #[test]
    fn alias_expansion_is_bounded() {
        // 10,000 copies of 10 nodes fit the budget of 100,000 exactly.
        let (roots, diags) = load(&aliases(10_000));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(items(get(&roots[0], "b")).len(), 10_000);

        let (roots, diags) = load(&format!("{}---\nc: 1\n", aliases(10_001)));
        assert_eq!(roots.len(), 1, "the other document is kept");
        assert_eq!(roots[0].line, 10_005);
        assert_eq!(diags.len(), 1);
        // At the alias that would go over.
        assert_eq!((diags[0].line, diags[0].column), (10_003, 3));
        assert_eq!(
            diags[0].message,
            "malformed YAML: alias expansion exceeded the maximum node budget (possible \
             billion-laughs attack)"
        );
    }

    #[test]
    fn billion_laughs_is_stopped_early() {
        let mut text = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_string();
        let mut prev = 'a';
        for name in 'b'..='j' {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
            prev = name;
        }
        let (roots, diags) = load(&text);
        assert!(roots.is_empty());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("billion-laughs"), "{diags:?}");
        // b, c and d cost 12,330 nodes; e's copies of d (11,111 nodes each) exhaust
        // the budget at the 8th, long before the billions.
        assert_eq!((diags[0].line, diags[0].column), (5, 36));
    }

    #[test]
    fn alias_budget_counts_nodes_inside_keys() {
        // Each level is a mapping whose one key holds 10 copies of the level below:
        // counting such a key as one node would let the expansion grow unchecked.
        let mut text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n".to_string();
        let mut prev = 'a';
        for name in 'b'..='f' {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} {{? [{refs}] : v}}\n"));
            prev = name;
        }
        let (roots, diags) = load(&text);
        assert!(roots.is_empty());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("billion-laughs"), "{diags:?}");
        // b, c and d cost 12,570 nodes; e's copies of d (11,333 nodes each) exhaust
        // the budget at the 8th.
        assert_eq!((diags[0].line, diags[0].column), (5, 39));
    }

    #[test]
    fn duplicate_keys_compare_values_not_spelling() {
        for (text, key) in [
            ("a: 1\n'a': 2\n", "'a'"),
            ("1: a\n0x1: b\n", "0x1"),
            ("~: a\nnull: b\n", "null"),
            (".nan: a\n.NaN: b\n", ".NaN"),
            ("0.0: a\n-0.0: b\n", "-0.0"),
            ("!!str x: a\nx: b\n", "x"),
            ("x: a\n!custom x: b\n", "!custom x"),
        ] {
            let (roots, diags) = load(text);
            assert!(roots.is_empty(), "{text}");
            assert_eq!(diags.len(), 1, "{text}");
            assert_eq!((diags[0].line, diags[0].column), (2, 1), "{text}");
            let want = format!("malformed YAML: duplicate key {key:?} in a mapping");
            assert_eq!(diags[0].message, want.replace('\'', ""), "{text}");
        }
        for text in ["1: a\n'1': b\n", "1: a\n1.0: b\n", "true: a\n'true': b\n"] {
            let (roots, diags) = load(text);
            assert!(diags.is_empty(), "{text}: {diags:?}");
            assert_eq!(entries(&roots[0]).len(), 2);
        }
    }

    #[test]
    fn duplicate_keys_in_big_mappings() {
        let mut text: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        let root = one(&text);
        assert_eq!(entries(&root).len(), 40);
        assert_eq!(get(&root, "k39").value, Value::Int(39));

        text.push_str("k40: x\nk7: again\n");
        let (roots, diags) = load(&text);
        assert!(roots.is_empty());
        assert_eq!(diags.len(), 1);
        assert_eq!((diags[0].line, diags[0].column), (42, 1));
        assert_eq!(
            diags[0].message,
            "malformed YAML: duplicate key \"k7\" in a mapping"
        );
    }

    #[test]
    fn duplicate_collection_keys_are_reported_at_the_second_key() {
        let (roots, diags) = load("a:\n  ? [x, y]\n  : 1\n  ? [x, y]\n  : 2\n");
        assert!(roots.is_empty());
        assert_eq!(diags.len(), 1);
        assert_eq!((diags[0].line, diags[0].column), (4, 5));
        assert_eq!(
            diags[0].message,
            "malformed YAML: duplicate key \"[x, y]\" in a mapping"
        );
    }

    #[test]
    fn an_error_in_a_value_comes_before_its_keys_duplicate() {
        // The inner duplicate is complete first, as the key is only checked with its
        // value.
        let (_, diags) = load("a: 1\na:\n  b: 1\n  b: 2\n");
        assert_eq!(diags.len(), 1);
        assert_eq!((diags[0].line, diags[0].column), (4, 3));
    }

    #[test]
    fn a_scan_error_wins_over_an_earlier_duplicate_key() {
        let (_, diags) = load("a: 1\na: 2\nb: [1\n");
        assert_eq!(diags.len(), 1);
        assert_ne!(diags[0].line, 2, "{diags:?}");
        assert!(!diags[0].message.contains("duplicate"), "{diags:?}");
    }

    #[test]
    fn a_key_with_an_invalid_value_stays_a_key() {
        // saphyr took the value for a key here and shifted the rest of the mapping.
        let root = one("!!int x: 1\nb: 2\n");
        let e = entries(&root);
        assert_eq!(e.len(), 2);
        assert!(matches!(e[0].0.value, Value::Invalid(_)));
        assert_eq!(e[0].1.value, Value::Int(1));
        assert_eq!(get(&root, "b").value, Value::Int(2));
    }

    #[test]
    fn documents_after_a_document_end_in_one_chunk() {
        // No `---` between them: one chunk, two documents.
        let (roots, diags) = load("a: &x 1\n...\nb: 2\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(roots.len(), 2);
        assert_eq!(
            (at(&roots[1]), &get(&roots[1], "b").value),
            ((3, 1), &Value::Int(2))
        );
    }
}
