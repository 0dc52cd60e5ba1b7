//! A fast path for the block-style YAML that `kubectl get -o yaml` and generators
//! write: it builds the same [`Node`] trees as the saphyr path (`tree.rs`), or declines.
//!
//! It reads one chunk (as `yaml.rs` cuts them) line by line over bytes, without
//! recursion (open collections wait on explicit stacks) and without a token or an
//! allocation per token: only the `String`s and collections of the tree are
//! allocated. What it accepts:
//!
//! - blank lines, comment lines (at any indentation), a leading `---` line (with
//!   nothing but a comment after it), and blank or comment lines before it;
//! - block mappings and block sequences by indentation of spaces, including the
//!   compact `key:` / `- item` sequence at its key's indentation, `- key: v` mappings
//!   and `- - x` sequences inside entries;
//! - keys that are one-line plain, single- or double-quoted scalars (at most 1024
//!   bytes) followed by `: ` or `:` at the end of the line;
//! - one-line plain scalars (YAML 1.2's rules for where they end: ` #`, `: `, `:` at
//!   the end of the line; not starting with an indicator other than `-` followed by a
//!   non-space), one-line single-quoted scalars (`''`) and one-line double-quoted
//!   scalars with YAML's escapes;
//! - one-line flow sequences and mappings of such scalars and of one another (`[]`,
//!   `{}`, `[a, "b"]`, `{matchLabels: {app: web}}`), without empty entries, a trailing
//!   comma, `key: value` pairs inside `[ ]` or `:` and `#` inside flow plain scalars;
//! - an empty value (`key:`, `-`) where saphyr gives an empty scalar, at the same place.
//!
//! It **declines** (returns `None`) on anything else, and on anything it is not sure
//! saphyr reads the same way: anchors, aliases, tags, block scalars, multi-line
//! scalars, complex keys, tabs, control or non-printable characters, `%` directives,
//! `...`, a second `---`, an empty document, lines indented where they cannot be,
//! and every error — syntax, duplicate keys and [`Limits`] alike. The caller then runs
//! saphyr on the same chunk, which gives the answer or the error, so correctness never
//! depends on this module: it only has to be right where it accepts, which the
//! differential tests (here, in `tests/` and the `yaml_fast` fuzz target) check
//! against saphyr, tree and positions alike.
//!
//! Scalars are resolved by the saphyr path's own function ([`scalar`]), so `80`,
//! `"80"`, `true`, `~`, `0x1F` and empty values get the same [`Value`]s.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use saphyr_parser::ScalarStyle;

use crate::load::tree::{key_hash, same_key, scalar, Builder};
use crate::load::yaml::split_documents;
use crate::load::{Limits, Node, Value};

/// Whether new loaders try the fast path first (on unless a benchmark turns it off).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the fast path on or off for loaders created from now on, for benchmarks that
/// compare it with saphyr's; the trees are the same either way.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether new loaders try the fast path first.
pub(super) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// How the fast path did on one text against saphyr, chunk by chunk (for tests, fuzzing
/// and benchmarks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Chunks (one document each, mostly) of the text.
    pub chunks: usize,
    /// Chunks the fast path declined.
    pub declined: usize,
    /// The first chunk where the fast path accepted and did not give saphyr's roots.
    pub mismatch: Option<String>,
}

/// Loads every chunk of `text` both ways and says where the fast path declined and
/// whether it ever differed from saphyr where it accepted.
pub fn compare_with_saphyr(text: &str, limits: &Limits) -> Comparison {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut fast = Fast::default();
    let mut out = Comparison::default();
    for chunk in split_documents(text) {
        out.chunks += 1;
        let Some(loaded) = fast.load(chunk.text, chunk.line_offset, limits) else {
            out.declined += 1;
            continue;
        };
        if out.mismatch.is_some() {
            continue;
        }
        let slow = Builder::new(*limits).saphyr(chunk.text, chunk.line_offset);
        out.mismatch = match slow {
            Err(e) => Some(format!(
                "chunk at line {}: fast gave {:?}, saphyr failed: {e:?}\n{}",
                chunk.line_offset + 1,
                loaded.roots,
                chunk.text
            )),
            // Debug, not ==: NaN is not equal to itself.
            Ok(roots) if format!("{roots:?}") != format!("{:?}", loaded.roots) => Some(format!(
                "chunk at line {}:\nfast:   {:?}\nsaphyr: {roots:?}\n{}",
                chunk.line_offset + 1,
                loaded.roots,
                chunk.text
            )),
            Ok(_) => None,
        };
    }
    out
}

/// Implicit keys are at most this long (YAML 1.2; saphyr counts characters, this
/// counts bytes, which only declines more).
const MAX_KEY: usize = 1024;

/// Mappings up to this many keys are checked for duplicates linearly.
const LINEAR_KEY_CHECK: usize = 16;

/// Stack capacity (in nodes, 2 MiB) kept from one chunk to the next.
const KEEP_ITEMS: usize = 1 << 16;

/// What a chunk loaded by the fast path holds.
pub(super) struct Loaded {
    /// The documents' roots (zero or one).
    pub(super) roots: Vec<Node>,
    /// Nodes in the last document (for the builder's count).
    pub(super) nodes: usize,
}

/// The fast path's stacks, kept between chunks so that they are grown once.
#[derive(Default)]
pub(super) struct Fast {
    frames: Vec<Frame>,
    items: Vec<Node>,
}

/// A block collection still open.
struct Frame {
    is_map: bool,
    /// Column (0-based, in bytes: only spaces and `- ` come before it) of its keys or
    /// dashes.
    indent: usize,
    line: usize,
    column: usize,
    /// Where its children start in [`Fast::items`].
    start: usize,
    /// A key or dash whose value has not come yet: where its empty value would be.
    pending: Option<(usize, usize)>,
    /// A sequence at its key's indentation (`key:` / `- a`).
    compact: bool,
    /// Hashes of its keys once it has more than [`LINEAR_KEY_CHECK`].
    keys: Option<HashSet<u64>>,
}

/// A flow collection still open.
struct FlowOpen {
    is_map: bool,
    at: (usize, usize),
    /// Where its children start in [`Fast::items`].
    start: usize,
}

impl FlowOpen {
    fn close(&self) -> u8 {
        if self.is_map {
            b'}'
        } else {
            b']'
        }
    }

    /// The finished collection, its children taken from `items`.
    fn node(&self, items: &mut Vec<Node>) -> Node {
        Node::new(
            self.at.0,
            self.at.1,
            collection(items, self.start, self.is_map),
        )
    }
}

/// Gives up: the caller runs saphyr.
struct Decline;

type Res<T> = Result<T, Decline>;

/// One line of the chunk, without its line break.
struct Line<'t> {
    text: &'t str,
    bytes: &'t [u8],
    /// 1-based line in the file.
    no: usize,
    ascii: bool,
}

impl Line<'_> {
    /// 1-based column of byte offset `pos`, in characters.
    fn column(&self, pos: usize) -> usize {
        if self.ascii {
            pos + 1
        } else {
            self.bytes[..pos]
                .iter()
                .filter(|b| (**b & 0xC0) != 0x80)
                .count()
                + 1
        }
    }

    fn at(&self, pos: usize) -> (usize, usize) {
        (self.no, self.column(pos))
    }

    fn byte(&self, pos: usize) -> u8 {
        self.bytes.get(pos).copied().unwrap_or(b'\n')
    }

    fn skip_spaces(&self, mut pos: usize) -> usize {
        while self.bytes.get(pos) == Some(&b' ') {
            pos += 1;
        }
        pos
    }

    /// Whether only spaces and perhaps a comment (after a space) are left from `pos`.
    fn ends_at(&self, pos: usize) -> bool {
        let p = self.skip_spaces(pos);
        p == self.bytes.len() || (self.bytes[p] == b'#' && p > pos)
    }
}

/// Whether `b` is `-` followed by a space or the end of the line: a block entry.
fn is_dash(line: &Line<'_>, pos: usize) -> bool {
    line.byte(pos) == b'-' && matches!(line.byte(pos + 1), b' ' | b'\n')
}

/// A `---` or `...` marker line (at column 0, followed by white space or nothing).
fn is_marker(bytes: &[u8], marker: &[u8]) -> bool {
    bytes.starts_with(marker) && matches!(bytes.get(3), None | Some(b' ' | b'\t' | b'\r'))
}

impl Fast {
    /// The roots of the documents in `text` (a chunk whose first line is line
    /// `line_offset + 1` of its file), or `None` to have saphyr load it.
    pub(super) fn load(
        &mut self,
        text: &str,
        line_offset: usize,
        limits: &Limits,
    ) -> Option<Loaded> {
        self.frames.clear();
        self.items.clear();
        let mut run = Run {
            frames: &mut self.frames,
            items: &mut self.items,
            root: None,
            nodes: 0,
            limits,
        };
        let loaded = run.chunk(text, line_offset).ok();
        self.frames.clear();
        self.items.clear();
        // A big collection (a long flow list stopped by the nodes limit) leaves a stack
        // of its size; saphyr, which loads a declined chunk, would then build a second
        // one beside it (twice the memory the limit allows for).
        if self.items.capacity() > KEEP_ITEMS {
            self.items = Vec::new();
        }
        loaded
    }
}

struct Run<'a> {
    frames: &'a mut Vec<Frame>,
    items: &'a mut Vec<Node>,
    root: Option<Node>,
    nodes: usize,
    limits: &'a Limits,
}

impl Run<'_> {
    fn chunk(&mut self, text: &str, line_offset: usize) -> Res<Loaded> {
        let mut started = false;
        let mut rest = text;
        let mut no = line_offset;
        while !rest.is_empty() {
            no += 1;
            let (line, next) = split_line(rest)?;
            rest = next;
            let line = Line {
                text: line.0,
                bytes: line.0.as_bytes(),
                no,
                ascii: line.1,
            };
            let ind = line.skip_spaces(0);
            if ind == line.bytes.len() || line.bytes[ind] == b'#' {
                continue;
            }
            if ind == 0 {
                if is_marker(line.bytes, b"---") {
                    // A second start marker, or one after content: saphyr's.
                    if started || !line.ends_at(3) {
                        return Err(Decline);
                    }
                    started = true;
                    continue;
                }
                if is_marker(line.bytes, b"...") || line.bytes[0] == b'%' {
                    return Err(Decline);
                }
            }
            started = true;
            self.line(&line, ind)?;
        }
        self.close_all()?;
        match self.root.take() {
            Some(root) => Ok(Loaded {
                roots: vec![root],
                nodes: self.nodes,
            }),
            // An empty document (a `---` alone) is left to saphyr, for its position.
            None if started => Err(Decline),
            None => Ok(Loaded {
                roots: Vec::new(),
                nodes: 0,
            }),
        }
    }

    /// One line with content at indentation `ind`.
    fn line(&mut self, line: &Line<'_>, ind: usize) -> Res<()> {
        loop {
            let Some(top) = self.frames.last_mut() else {
                if self.root.is_some() {
                    return Err(Decline);
                }
                return self.block_node(line, ind);
            };
            if let Some(at) = top.pending {
                if ind > top.indent {
                    top.pending = None;
                    return self.block_node(line, ind);
                }
                if top.is_map && ind == top.indent && is_dash(line, ind) {
                    top.pending = None;
                    self.open(false, ind, line.at(ind), true)?;
                    return self.entry(line, ind);
                }
                // An empty entry that ends its sequence: saphyr puts it elsewhere.
                if !(top.is_map || ind == top.indent && is_dash(line, ind)) {
                    return Err(Decline);
                }
                top.pending = None;
                self.put(Node::new(at.0, at.1, Value::Null))?;
                continue;
            }
            if ind > top.indent {
                return Err(Decline);
            }
            if ind == top.indent {
                let dash = is_dash(line, ind);
                if top.is_map {
                    if dash {
                        return Err(Decline);
                    }
                    return self.key_line(line, ind, false);
                }
                if dash {
                    return self.entry(line, ind);
                }
                if !top.compact {
                    return Err(Decline);
                }
            }
            self.close()?;
        }
    }

    /// A node that starts at `pos` of a line, with only indentation or `- ` before it.
    fn block_node(&mut self, line: &Line<'_>, pos: usize) -> Res<()> {
        if is_dash(line, pos) {
            self.open(false, pos, line.at(pos), false)?;
            return self.entry(line, pos);
        }
        match line.byte(pos) {
            b'[' | b'{' => {
                let (node, end) = self.flow(line, pos)?;
                if !line.ends_at(end) {
                    return Err(Decline);
                }
                self.put(node)
            }
            _ => self.key_line(line, pos, true),
        }
    }

    /// `key: value` at `pos`; where `may_be_scalar`, a lone scalar instead.
    fn key_line(&mut self, line: &Line<'_>, pos: usize, may_be_scalar: bool) -> Res<()> {
        let (key, end) = self.block_scalar(line, pos)?;
        let is_key = line.byte(end) == b':' && matches!(line.byte(end + 1), b' ' | b'\n');
        if !is_key {
            if !may_be_scalar || !line.ends_at(end) {
                return Err(Decline);
            }
            return self.put(key);
        }
        if end - pos > MAX_KEY {
            return Err(Decline);
        }
        let in_map = matches!(self.frames.last(), Some(f) if f.is_map && f.indent == pos);
        if !in_map {
            self.open(true, pos, line.at(pos), false)?;
        }
        self.key(key)?;
        let colon = end;
        let v = line.skip_spaces(colon + 1);
        if line.ends_at(colon + 1) {
            if colon + 1 != line.bytes.len() {
                return Err(Decline);
            }
            let at = line.at(colon);
            self.frames.last_mut().expect("a mapping is open").pending = Some(at);
            return Ok(());
        }
        let (node, end) = match line.byte(v) {
            b'[' | b'{' => self.flow(line, v)?,
            b'-' if is_dash(line, v) => return Err(Decline),
            _ => self.block_scalar(line, v)?,
        };
        if !line.ends_at(end) {
            return Err(Decline);
        }
        self.put(node)
    }

    /// A block sequence entry: the dash at `pos`.
    fn entry(&mut self, line: &Line<'_>, pos: usize) -> Res<()> {
        if line.ends_at(pos + 1) {
            // saphyr puts the empty value after spaces or a comment that follow:
            // left to it.
            if pos + 1 != line.bytes.len() {
                return Err(Decline);
            }
            let top = self.frames.last_mut().expect("a sequence is open");
            // A compact sequence starts at its first entry's content, which an empty
            // entry does not have: saphyr's answer is left to saphyr.
            if top.compact && self.items.len() == top.start {
                return Err(Decline);
            }
            // saphyr's empty entry starts right after its dash.
            top.pending = Some(line.at(pos + 1));
            return Ok(());
        }
        let p = line.skip_spaces(pos + 1);
        let top = self.frames.last_mut().expect("a sequence is open");
        if top.compact && self.items.len() == top.start {
            (top.line, top.column) = line.at(p);
        }
        self.block_node(line, p)
    }

    /// Opens a block collection.
    fn open(&mut self, is_map: bool, indent: usize, at: (usize, usize), compact: bool) -> Res<()> {
        self.count(1)?;
        if self.frames.len() >= self.limits.depth {
            return Err(Decline);
        }
        self.frames.push(Frame {
            is_map,
            indent,
            line: at.0,
            column: at.1,
            start: self.items.len(),
            pending: None,
            compact,
            keys: None,
        });
        Ok(())
    }

    /// Closes the innermost block collection.
    fn close(&mut self) -> Res<()> {
        let frame = self.frames.pop().expect("a collection is open");
        let value = collection(self.items, frame.start, frame.is_map);
        self.put(Node::new(frame.line, frame.column, value))
    }

    fn close_all(&mut self) -> Res<()> {
        while let Some(top) = self.frames.last() {
            // saphyr puts an empty value at the end of the input at the end of the
            // input, not at its `:` or `-`: left to it.
            if top.pending.is_some() {
                return Err(Decline);
            }
            self.close()?;
        }
        Ok(())
    }

    /// Adds a finished node to the innermost collection, or as the root.
    fn put(&mut self, node: Node) -> Res<()> {
        if self.frames.is_empty() {
            if self.root.is_some() {
                return Err(Decline);
            }
            self.root = Some(node);
        } else {
            self.items.push(node);
        }
        Ok(())
    }

    /// Adds a key to the innermost mapping; a repeated key declines.
    fn key(&mut self, key: Node) -> Res<()> {
        let frame = self.frames.last_mut().expect("a mapping is open");
        let keys = &self.items[frame.start..];
        if keys.len() / 2 < LINEAR_KEY_CHECK {
            if keys
                .iter()
                .step_by(2)
                .any(|k| same_key(&k.value, &key.value))
            {
                return Err(Decline);
            }
        } else {
            let hashes = frame.keys.get_or_insert_with(|| {
                keys.iter().step_by(2).map(|k| key_hash(&k.value)).collect()
            });
            if !hashes.insert(key_hash(&key.value)) {
                return Err(Decline);
            }
        }
        self.items.push(key);
        Ok(())
    }

    fn count(&mut self, n: usize) -> Res<()> {
        self.nodes += n;
        if self.nodes > self.limits.nodes {
            return Err(Decline);
        }
        Ok(())
    }

    /// A scalar node from its text.
    fn scalar(&mut self, text: Cow<'_, str>, style: ScalarStyle, at: (usize, usize)) -> Res<Node> {
        self.count(1)?;
        if text.len() > self.limits.scalar_bytes {
            return Err(Decline);
        }
        Ok(Node::new(at.0, at.1, scalar(text, style, None)))
    }

    /// A plain or quoted scalar at `pos` in block context, and where it ends.
    fn block_scalar(&mut self, line: &Line<'_>, pos: usize) -> Res<(Node, usize)> {
        let b = line.bytes;
        match b[pos] {
            b'\'' | b'"' => self.quoted(line, pos),
            first => {
                let starts = match first {
                    b'-' => !matches!(line.byte(pos + 1), b' ' | b'\n'),
                    b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
                    | b'|' | b'>' | b'%' | b'@' | b'`' => false,
                    _ => true,
                };
                if !starts {
                    return Err(Decline);
                }
                let mut end = pos;
                let mut i = pos;
                while i < b.len() {
                    match b[i] {
                        b':' if matches!(line.byte(i + 1), b' ' | b'\n') => break,
                        b'#' if b[i - 1] == b' ' => break,
                        b' ' => {}
                        _ => end = i + 1,
                    }
                    i += 1;
                }
                let node = self.scalar(
                    Cow::Borrowed(&line.text[pos..end]),
                    ScalarStyle::Plain,
                    line.at(pos),
                )?;
                Ok((node, end))
            }
        }
    }

    /// A one-line quoted scalar at `pos`, and the offset after its closing quote.
    fn quoted(&mut self, line: &Line<'_>, pos: usize) -> Res<(Node, usize)> {
        let b = line.bytes;
        let quote = b[pos];
        let mut s = String::new();
        let mut run = pos + 1;
        let mut i = pos + 1;
        let end = loop {
            let Some(&c) = b.get(i) else {
                return Err(Decline);
            };
            if c == quote {
                s.push_str(&line.text[run..i]);
                if quote == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    s.push('\'');
                    i += 2;
                    run = i;
                    continue;
                }
                break i + 1;
            }
            if c == b'\\' && quote == b'"' {
                s.push_str(&line.text[run..i]);
                let (ch, len) = escape(&b[i + 1..])?;
                s.push(ch);
                i += 1 + len;
                run = i;
                continue;
            }
            i += 1;
        };
        let style = if quote == b'"' {
            ScalarStyle::DoubleQuoted
        } else {
            ScalarStyle::SingleQuoted
        };
        let node = self.scalar(Cow::Owned(s), style, line.at(pos))?;
        Ok((node, end))
    }

    /// A one-line flow collection at `pos` (`[` or `{`), of scalars and such
    /// collections, and the offset after it. Nested collections wait on a stack of
    /// their own, not on the call stack.
    fn flow(&mut self, line: &Line<'_>, pos: usize) -> Res<(Node, usize)> {
        let mut open: Vec<FlowOpen> = Vec::new();
        let mut i = pos;
        loop {
            // A value starts at `i`.
            let mut node = match line.byte(i) {
                c @ (b'[' | b'{') => {
                    self.count(1)?;
                    if self.frames.len() + open.len() >= self.limits.depth {
                        return Err(Decline);
                    }
                    open.push(FlowOpen {
                        is_map: c == b'{',
                        at: line.at(i),
                        start: self.items.len(),
                    });
                    i = line.skip_spaces(i + 1);
                    let top = open.last().expect("just pushed");
                    if line.byte(i) != top.close() {
                        if top.is_map {
                            i = self.flow_key(line, i, top.start)?;
                        }
                        continue;
                    }
                    // An empty collection: closed below.
                    let top = open.pop().expect("just pushed");
                    i += 1;
                    top.node(self.items)
                }
                _ => {
                    let (node, end) = self.flow_scalar(line, i)?;
                    i = end;
                    node
                }
            };
            // After a value: a `,` and the next, or the end of collections.
            loop {
                let Some(top) = open.last() else {
                    return Ok((node, i));
                };
                self.items.push(node);
                i = line.skip_spaces(i);
                let c = line.byte(i);
                if c == b',' {
                    i = line.skip_spaces(i + 1);
                    // No trailing comma, no empty entry.
                    if matches!(line.byte(i), b',' | b']' | b'}') {
                        return Err(Decline);
                    }
                    if top.is_map {
                        i = self.flow_key(line, i, top.start)?;
                    }
                    break;
                }
                if c != top.close() {
                    return Err(Decline);
                }
                let top = open.pop().expect("not empty");
                i += 1;
                node = top.node(self.items);
            }
        }
    }

    /// A flow mapping's key at `i` and its `: `; pushes the key and returns where its
    /// value starts. A repeated key declines.
    fn flow_key(&mut self, line: &Line<'_>, i: usize, start: usize) -> Res<usize> {
        let (key, end) = self.flow_scalar(line, i)?;
        if line.byte(end) != b':' || line.byte(end + 1) != b' ' {
            return Err(Decline);
        }
        if self.items[start..]
            .iter()
            .step_by(2)
            .any(|k| same_key(&k.value, &key.value))
        {
            return Err(Decline);
        }
        self.items.push(key);
        let v = line.skip_spaces(end + 1);
        if matches!(line.byte(v), b',' | b']' | b'}') {
            return Err(Decline);
        }
        Ok(v)
    }

    /// A scalar inside a one-line flow collection.
    fn flow_scalar(&mut self, line: &Line<'_>, pos: usize) -> Res<(Node, usize)> {
        let b = line.bytes;
        match line.byte(pos) {
            b'\'' | b'"' => self.quoted(line, pos),
            b'-' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!'
            | b'|' | b'>' | b'%' | b'@' | b'`' | b' ' | b'\n' => Err(Decline),
            _ => {
                let mut end = pos;
                let mut i = pos;
                while i < b.len() {
                    match b[i] {
                        // saphyr rejects a word `-` followed by a flow indicator.
                        b',' | b']' | b'}' if b[i - 1] == b'-' => return Err(Decline),
                        b',' | b']' | b'}' | b':' => break,
                        b'[' | b'{' | b'#' => return Err(Decline),
                        b' ' => {}
                        _ => end = i + 1,
                    }
                    i += 1;
                }
                let node = self.scalar(
                    Cow::Borrowed(&line.text[pos..end]),
                    ScalarStyle::Plain,
                    line.at(pos),
                )?;
                Ok((node, end))
            }
        }
    }
}

/// A collection's value from its children at `start..` of `items`.
fn collection(items: &mut Vec<Node>, start: usize, is_map: bool) -> Value {
    if is_map {
        let mut children = items.drain(start..);
        let mut entries = Vec::with_capacity(children.len() / 2);
        while let (Some(k), Some(v)) = (children.next(), children.next()) {
            entries.push((k, v));
        }
        Value::Map(entries.into_boxed_slice())
    } else {
        Value::Seq(items.drain(start..).collect())
    }
}

/// The escape after a `\` in a double-quoted scalar, and its length after the `\`.
fn escape(b: &[u8]) -> Res<(char, usize)> {
    let (ch, digits) = match b.first() {
        Some(b'0') => ('\0', 0),
        Some(b'a') => ('\x07', 0),
        Some(b'b') => ('\x08', 0),
        Some(b't') => ('\t', 0),
        Some(b'n') => ('\n', 0),
        Some(b'v') => ('\x0b', 0),
        Some(b'f') => ('\x0c', 0),
        Some(b'r') => ('\r', 0),
        Some(b'e') => ('\x1b', 0),
        Some(b' ') => (' ', 0),
        Some(b'"') => ('"', 0),
        Some(b'/') => ('/', 0),
        Some(b'\\') => ('\\', 0),
        Some(b'N') => ('\u{85}', 0),
        Some(b'_') => ('\u{a0}', 0),
        Some(b'L') => ('\u{2028}', 0),
        Some(b'P') => ('\u{2029}', 0),
        Some(b'x') => ('\0', 2),
        Some(b'u') => ('\0', 4),
        Some(b'U') => ('\0', 8),
        _ => return Err(Decline),
    };
    if digits == 0 {
        return Ok((ch, 1));
    }
    let hex = b.get(1..=digits).ok_or(Decline)?;
    let mut value = 0u32;
    for &h in hex {
        value = (value << 4) + char::from(h).to_digit(16).ok_or(Decline)?;
    }
    Ok((char::from_u32(value).ok_or(Decline)?, 1 + digits))
}

/// The first line of `text` without its line break (`\n` or `\r\n`) and whether it is
/// all ASCII, and the text after it. Declines on tabs, control characters, a lone
/// `\r` and characters that are not printable or that saphyr may take as breaks or
/// byte order marks.
fn split_line(text: &str) -> Res<((&str, bool), &str)> {
    let b = text.as_bytes();
    let mut ascii = true;
    let mut i = 0;
    let mut next = b.len();
    while i < b.len() {
        match b[i] {
            b'\n' => {
                next = i + 1;
                break;
            }
            b'\r' if b.get(i + 1) == Some(&b'\n') => {
                next = i + 2;
                break;
            }
            0x20..=0x7E => {}
            0x80.. => ascii = false,
            _ => return Err(Decline),
        }
        i += 1;
    }
    let line = &text[..i];
    if !ascii
        && !line.chars().all(|c| {
            c.is_ascii()
                || (c >= '\u{a0}'
                    && !matches!(
                        c,
                        '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                    ))
        })
    {
        return Err(Decline);
    }
    Ok(((line, ascii), &text[next..]))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;

    /// Asserts that the fast path never differs from saphyr on `text`; returns how many
    /// chunks it declined.
    fn same(text: &str) -> Comparison {
        let c = compare_with_saphyr(text, &Limits::default());
        if let Some(m) = &c.mismatch {
            panic!("{m}");
        }
        c
    }

    /// Asserts that the fast path accepts every chunk of `text` and agrees.
    fn accepted(text: &str) {
        let c = same(text);
        assert_eq!(c.declined, 0, "declined: {text}");
    }

    fn declined(text: &str) {
        let c = same(text);
        assert!(c.declined > 0, "accepted: {text}");
    }

    #[test]
    fn kubectl_style_is_accepted_and_identical() {
        accepted(concat!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    app: web\n",
            "    é: ü\n  name: web-1\nspec:\n  containers:\n  - image: r/x:v2\n",
            "    ports:\n    - containerPort: 80\n      name: http\n    - {}\n",
            "  finalizers:\n  - kubernetes\nstatus:\n  podIPs:\n  - ip: 198.18.0.1\n",
        ));
        accepted("a:\n  - x\n  - - y\n    - z\n  -\n  - k: v\n    l:\nb: c\n");
        accepted("k: 'it''s'\nd: \"\\u00e9\\t\\x41\\\\\"\ne: ''\nf: \"\"\n");
        accepted("a: 80\nb: \"80\"\nc: true\nd: ~\ne: 0x1F\nf: 1e3\ng: .inf\nh: null\ni:\nj: 1\n");
        accepted("a: {app: web, 'x': \"y\"}\nb: [a, 'b', \"c\", 1]\nc: [ ]\nd: { }\n");
        accepted("- -1\n- a#b\n- a #c\n- key::\n- -x\n- a:b\n- 12:30\n");
        accepted("a: 1\r\nb:\r\n- x\r\n");
        accepted("# c\n\n---   # c\n  # odd\na: 1 # c\n   # odd\nb: 2\n");
        accepted("a: [b, [c]]\nb: {c: {d: [e, 'f']}, g: []}\n");
        accepted("a: {b: [1, {c: [x, \"y\"], d: {}}, []], e: [[], [[z]]]}\n");
        accepted("- {key: tier, operator: In, values: [frontend, edge]}\n- [{a: b}, [c]]\n");
        accepted("scalar\n");
        accepted("# only a comment\n");
        accepted("[a, b]\n");
        accepted("  a: 1\n  b: 2\n");
    }

    #[test]
    fn everything_else_is_declined() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: |\n  x\n",
            "a: >\n  x\n",
            "a: b\n  c\n",
            "a: 'b\n  c'\n",
            "? x\n: y\n",
            "a:\n\tb: 1\n",
            "a: [b,\n  c]\n",
            "%YAML 1.2\n---\na: 1\n",
            "a: 1\n...\nb: 2\n",
            "---\n",
            "a: 1\na: 2\n",
            "a: b: c\n",
            "- a\nb: c\n",
            "a: 1\n b: 2\n",
            "a: [b,]\n",
            "a: [b, {c}]\n",
            "- {a: b  -, c: d}\n",
            "- [a -]\n",
            "a: {b: [c}\n",
            "a: [[b], ]\n",
            "a: [b, [c: d]]\n",
            "a: {b: {c: d}, b: e}\n",
            "a: \"\\q\"\n",
            "a: \"\\ud800\"\n",
            "a: 1\rb: 2\n",
            "a: \u{85}\n",
            ": x\n",
            "-x: [a: b]\n",
        ] {
            declined(text);
        }
    }

    #[test]
    fn limits_are_left_to_saphyr() {
        let tight = Limits {
            nodes: 5,
            scalar_bytes: 3,
            depth: 2,
            ..Limits::default()
        };
        let mut fast = Fast::default();
        for text in [
            "a: 1\nb: 2\nc: 3\n",
            "[a, b, c, d, e]\n",
            "[[[a]]]\n",
            "a: [[b]]\n",
            "a: abcd\n",
            "a:\n  b:\n    c: 1\n",
        ] {
            assert!(fast.load(text, 0, &tight).is_none(), "{text}");
        }
        assert!(fast.load("a: 1\nb: 2\n", 0, &tight).is_some());
    }

    /// One builder over all chunks of a file: the document count (and its limit) is the
    /// same whether a chunk went the fast way or saphyr's; comment-only chunks count
    /// as no document either way.
    #[test]
    fn documents_are_counted_alike_over_chunks() {
        for text in [
            "a: 1\n---\n# c\n---\nb: 2\n---\nc: 3\n",
            "# c\n---\na: 1\n---\n---\nb: 2\n",
            "a: &x 1\n---\nb: 2\n---\nc: *y\n---\nd: 4\n",
        ] {
            for documents in 1..4 {
                let limits = Limits {
                    documents,
                    ..Limits::default()
                };
                let (mut both, mut slow) = (Builder::new(limits), Builder::new(limits));
                for chunk in split_documents(text) {
                    let a = both.load(chunk.text, chunk.line_offset);
                    let b = slow.saphyr(chunk.text, chunk.line_offset);
                    assert_eq!(format!("{a:?}"), format!("{b:?}"), "{text} {documents}");
                }
            }
        }
    }

    /// Every YAML file of the repository, and the fuzz corpora.
    #[test]
    fn repository_files_are_identical_or_declined() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut dirs: Vec<PathBuf> = ["config", "tests", "docs", "rules-compiler/testdata"]
            .iter()
            .map(|d| root.join(d))
            .collect();
        if let Ok(entries) = std::fs::read_dir(root.join("fuzz")) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("corpus"))
            }));
        }
        let (mut files, mut chunks, mut declined) = (0, 0, 0);
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for path in entries.flatten().map(|e| e.path()) {
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let in_corpus = path.to_string_lossy().contains("/fuzz/corpus");
                let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
                if !(yaml || in_corpus) {
                    continue;
                }
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                // Fuzz inputs start with a mode byte.
                let text = String::from_utf8_lossy(&bytes);
                for text in [&text[..], text.get(1..).unwrap_or("")] {
                    let c = compare_with_saphyr(text, &Limits::default());
                    if let Some(m) = c.mismatch {
                        panic!("{}: {m}", path.display());
                    }
                    chunks += c.chunks;
                    declined += c.declined;
                }
                files += 1;
            }
        }
        assert!(files > 50, "{files} files");
        eprintln!("{files} files, {chunks} chunks, {declined} declined");
    }

    /// A kubectl-like tree.
    #[derive(Clone, Debug)]
    enum Tree {
        Scalar(String),
        Map(Vec<(String, Tree)>),
        Seq(Vec<Tree>),
        Flow(String),
    }

    /// Scalars the fast path must accept (as values and keys).
    const SAFE: &[&str] = &[
        "web",
        "80",
        "\"80\"",
        "true",
        "~",
        "null",
        "0x1F",
        "1e3",
        ".inf",
        "-.5",
        "'it''s'",
        "\"\\u00e9\\t\"",
        "a#b",
        "-1",
        "-x",
        "é",
        "198.18.0.1",
        "2001:db8::1",
        "a:b",
        "''",
        "\"\"",
        "a b  c",
        "FALSE",
        "0o17",
        "+12",
        ".nan",
        "12:30",
        "x/y-z.w",
        "\"a\\\\b\\\"c\"",
        "'#'",
        "\"# no\"",
        "ü ü",
    ];

    /// Keys it must accept, each of a different value.
    const KEYS: &[&str] = &[
        "web",
        "80",
        "\"8080\"",
        "true",
        "~",
        "'it''s'",
        "\"\\u00e9\\t\"",
        "a#b",
        "-1",
        "-x",
        "é",
        "a:b",
        "key:",
        "''",
        "x/y-z.w",
        "1e3",
        ".inf",
        "a b  c",
        "0x1F",
        "app",
        "name",
    ];

    /// Scalars (and worse) it may decline.
    const TRICKY: &[&str] = &[
        "&a x",
        "*a",
        "!!int 1",
        "|",
        ">-",
        "? x",
        ": x",
        "-",
        "a: b",
        "[a, [b]]",
        "{a}",
        "\"\\q\"",
        "'unclosed",
        "\"unclosed",
        "%x",
        "@x",
        "`x",
        "a\tb",
        "\"\\ud800\"",
        "[a,]",
        "{a: }",
        "[a: b]",
        "a #",
        "#c",
        "---",
        "...",
        "? ",
        "[",
        "}",
        "x\u{85}y",
        "\u{feff}",
        "a\r",
        "\"\\\n\"",
        "'a''",
        ",a",
        "a,b",
        "[a,b]",
        "{a:b}",
        "{'a':b}",
    ];

    fn scalar_text(safe: bool) -> BoxedStrategy<String> {
        let safe_s = prop::sample::select(SAFE).prop_map(str::to_string);
        if safe {
            safe_s.boxed()
        } else {
            prop_oneof![
                3 => safe_s,
                1 => prop::sample::select(TRICKY).prop_map(str::to_string),
                1 => "[a-z0-9 :#'\"\\-]{0,6}",
            ]
            .boxed()
        }
    }

    fn key_text(safe: bool) -> BoxedStrategy<String> {
        let keys = prop::sample::select(KEYS).prop_map(str::to_string);
        if safe {
            keys.boxed()
        } else {
            prop_oneof![4 => keys, 1 => scalar_text(false)].boxed()
        }
    }

    fn tree(safe: bool) -> impl Strategy<Value = Tree> {
        let flow = prop_oneof![
            Just("{}".to_string()),
            Just("[]".to_string()),
            prop::collection::vec(scalar_text(true), 1..4).prop_map(|v| {
                let items: Vec<String> = v
                    .into_iter()
                    .map(|s| {
                        if s.contains([':', '#', ',', '-']) {
                            format!("'{}'", s.replace('\'', ""))
                        } else {
                            s
                        }
                    })
                    .collect();
                format!("[{}]", items.join(", "))
            }),
            Just("{app: web, 'x': \"y\"}".to_string()),
            Just("{matchLabels: {app: web}}".to_string()),
            Just("[{key: tier, operator: In, values: [a, \"b\"]}, [], {}]".to_string()),
        ];
        let leaf = prop_oneof![
            4 => scalar_text(safe).prop_map(Tree::Scalar),
            1 => flow.prop_map(Tree::Flow),
        ];
        leaf.prop_recursive(5, 40, 5, move |inner| {
            prop_oneof![
                prop::collection::vec((key_text(safe), inner.clone()), 1..5).prop_map(Tree::Map),
                prop::collection::vec(inner, 1..5).prop_map(Tree::Seq),
            ]
        })
    }

    /// How to write a tree: indentation step, whether sequences under a key are
    /// compact (kubectl) or indented.
    fn emit(t: &Tree, indent: usize, step: usize, compact: bool, out: &mut String) {
        let pad = " ".repeat(indent);
        match t {
            Tree::Scalar(s) | Tree::Flow(s) => {
                out.push_str(&format!("{pad}{s}\n"));
            }
            Tree::Map(entries) => {
                let mut seen = std::collections::HashSet::new();
                for (k, v) in entries {
                    if !seen.insert(k.clone()) {
                        continue;
                    }
                    match v {
                        Tree::Scalar(s) | Tree::Flow(s) => {
                            out.push_str(&format!("{pad}{k}: {s}\n"))
                        }
                        Tree::Seq(_) if compact => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            emit(v, indent, step, compact, out);
                        }
                        _ => {
                            out.push_str(&format!("{pad}{k}:\n"));
                            emit(v, indent + step, step, compact, out);
                        }
                    }
                }
            }
            Tree::Seq(items) => {
                for item in items {
                    // `- ` then the item written at indent + 2, its first line after the dash.
                    let mut inner = String::new();
                    emit(item, indent + 2, step, compact, &mut inner);
                    let rest = &inner[indent + 2..];
                    out.push_str(&format!("{pad}- {rest}"));
                }
            }
        }
    }

    fn document(safe: bool) -> impl Strategy<Value = String> {
        (tree(safe), 1..4usize, any::<bool>()).prop_map(|(t, step, compact)| {
            let mut out = "---\n".to_string();
            emit(&t, 0, step, compact, &mut out);
            out
        })
    }

    /// Edits that make the text less kubectl-like: comments at odd indentation,
    /// trailing spaces, CRLF, characters inserted or deleted, lines indented.
    #[derive(Clone, Debug)]
    enum Edit {
        Comment(usize, usize),
        Trailing(usize),
        Crlf,
        Insert(usize, char),
        Delete(usize),
        Indent(usize, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), 0..8usize).prop_map(|(l, i)| Edit::Comment(l, i)),
            any::<usize>().prop_map(Edit::Trailing),
            Just(Edit::Crlf),
            (
                any::<usize>(),
                prop::sample::select(
                    &[
                        ':', '#', '-', ' ', '\'', '"', '\t', '?', '&', '\n', '[', '{', 'é', '\r',
                        '!', '|'
                    ][..]
                )
            )
                .prop_map(|(p, c)| Edit::Insert(p, c)),
            any::<usize>().prop_map(Edit::Delete),
            (any::<usize>(), 1..3usize).prop_map(|(l, n)| Edit::Indent(l, n)),
        ]
    }

    fn apply(text: &str, edits: &[Edit]) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut crlf = false;
        for e in edits {
            let n = lines.len().max(1);
            match *e {
                Edit::Comment(l, i) => lines.insert(l % n, format!("{}# c: - x", " ".repeat(i))),
                Edit::Trailing(l) => {
                    if let Some(line) = lines.get_mut(l % n) {
                        line.push_str("  ");
                    }
                }
                Edit::Crlf => crlf = true,
                Edit::Insert(p, c) => {
                    if let Some(line) = lines.get_mut(p % n) {
                        let at = line
                            .char_indices()
                            .map(|(i, _)| i)
                            .nth((p / n) % (line.len() + 1))
                            .unwrap_or(line.len());
                        line.insert(at, c);
                    }
                }
                Edit::Delete(p) => {
                    if let Some(line) = lines.get_mut(p % n) {
                        if let Some((at, _)) = line.char_indices().nth((p / n) % (line.len() + 1)) {
                            line.remove(at);
                        }
                    }
                }
                Edit::Indent(l, k) => {
                    if let Some(line) = lines.get_mut(l % n) {
                        line.insert_str(0, &" ".repeat(k));
                    }
                }
            }
        }
        let eol = if crlf { "\r\n" } else { "\n" };
        lines.iter().map(|l| format!("{l}{eol}")).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn kubectl_like_yaml_is_accepted_and_identical(doc in document(true)) {
            accepted(&doc);
        }

        #[test]
        fn edited_yaml_is_identical_or_declined(
            docs in prop::collection::vec(document(false), 1..3),
            edits in prop::collection::vec(edit(), 0..4),
        ) {
            same(&apply(&docs.concat(), &edits));
        }
    }
}
