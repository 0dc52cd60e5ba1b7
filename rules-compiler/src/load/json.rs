//! JSON text → the same positioned [`Node`] trees the YAML path builds, for what
//! `kubectl get … -o json` writes (one object, or a `List`).
//!
//! [`documents`](super::documents) reads a file as JSON when its first character after
//! an optional byte order mark and white space is `{` or `[` ([`is_json`]): chosen by
//! content, whatever the file's name. JSON is nearly a subset of YAML, but a YAML parser
//! reads it at about 20 MB/s; this one is written for it alone, over bytes, and builds
//! the tree directly.
//!
//! Strict RFC 8259: no comments, no trailing commas, no `NaN` or `Infinity`, no leading
//! zeros or `+` signs, only JSON's escapes (a `\u` escape of a surrogate must be a
//! high-low pair), no raw control characters in strings, no key twice in one object.
//! The first error ends the file: its message says where and what was expected, and
//! that the file was read as JSON because of its first character; nothing after it is
//! read.
//!
//! A file holds one or more top-level values, separated by white space (`(kubectl get
//! ns -o json; kubectl get pods -A -o json) > inventory.json`); each is one document,
//! and a `null` one is dropped as an empty YAML document is. Values are typed as the
//! YAML path types them: an integer that fits an `i64` is [`Value::Int`] (`-0` too, as
//! `0`), any other number (a fraction, an exponent, an integer beyond `i64`) is
//! [`Value::Float`], as YAML's `9223372036854775808` is; a number too big for an `f64`
//! is an error, as serde_json makes it, not infinity.
//!
//! Positions are as YAML's: 1-based line (a line ends at `\n`; `\r` is white space) and
//! 1-based column counted in characters, so `é` and a tab are one column each; a byte
//! order mark is not counted. A collection is at its bracket, a key or a string at its
//! opening quote.
//!
//! Without recursion: open collections wait on an explicit stack, so nesting costs heap,
//! not stack, and is held to [`Limits::depth`] like every other [`Limits`] the YAML path
//! applies (documents, nodes per document, bytes per scalar), with the same messages.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::Path;

use crate::diag::{quote, Diagnostic};
use crate::load::{Document, Limits, Node, Str, Value};

/// Objects up to this many keys are checked for duplicates by comparing with every
/// earlier key; bigger ones keep a set of key hashes, so that checking stays linear.
const LINEAR_KEY_CHECK: usize = 16;

/// Whether `text` (a byte order mark already removed or not) is read as JSON: its first
/// character after white space is `{` or `[`.
pub(crate) fn is_json(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    matches!(text.bytes().find(|b| !is_ws(*b)), Some(b'{') | Some(b'['))
}

/// The roots of the top-level values of `text` (a JSON `null` included), or the first
/// error. A byte order mark at the start is skipped.
// For callers that want a file's trees at once (a per-document cache); `documents`
// takes them one at a time through [`Values`].
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn parse_json(text: &str, limits: &Limits) -> Result<Vec<Node>, JsonError> {
    let mut values = Values::new(text, *limits);
    let mut roots = Vec::new();
    while let Some(root) = values.next_value() {
        roots.push(root?);
    }
    Ok(roots)
}

/// The one value of `text`, a part of a bigger JSON text that starts at a line start
/// after `line_offset` lines (`json_list::cut`), positioned as in the whole text, with
/// the nodes it counts; `None` when `text` is not exactly one value within `limits`
/// (then the whole text is read, and says what is wrong).
pub(crate) fn part_value(text: &str, line_offset: usize, limits: Limits) -> Option<(Node, usize)> {
    let mut values = Values::new(text, limits);
    values.line += line_offset;
    let root = values.next_value()?.ok()?;
    let nodes = values.nodes;
    values.next_value().is_none().then_some((root, nodes))
}

/// Why a JSON text was refused: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JsonError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl JsonError {
    /// The error as a diagnostic of `file`.
    pub(crate) fn diagnostic(&self, file: &Path) -> Diagnostic {
        Diagnostic::error(self.message.clone())
            .in_file(file)
            .at(self.line, self.column)
    }
}

/// The top-level values of a JSON text, one at a time.
pub(crate) struct Values<'t> {
    text: &'t str,
    bytes: &'t [u8],
    /// The next byte to read.
    pos: usize,
    /// 1-based line of `pos`.
    line: usize,
    /// Where the line of `pos` starts.
    line_start: usize,
    /// UTF-8 continuation bytes between `line_start` and `pos`: a column is the
    /// characters before it, not the bytes. Only strings hold them, and a string holds
    /// no line break, so they are counted while strings are read.
    line_cont: usize,
    limits: Limits,
    /// The file's first character, `{` or `[`, for messages.
    opener: char,
    /// Top-level values so far.
    documents: usize,
    /// Nodes of the current top-level value.
    nodes: usize,
    /// After the end or an error.
    done: bool,
    /// The collections still open, innermost last.
    open: Vec<Open>,
    /// Children of the open collections, in order; an object's as key, value, key, ….
    items: Vec<Node>,
    /// A string with escapes is built here.
    scratch: String,
}

/// A collection whose closing bracket has not come yet.
struct Open {
    line: usize,
    column: usize,
    /// Where its children start in [`Values::items`].
    start: usize,
    is_map: bool,
    /// Hashes of its keys once it has more than [`LINEAR_KEY_CHECK`].
    keys: Option<HashSet<u64>>,
}

/// What a byte means inside a string.
const PLAIN: u8 = 0;
const QUOTE: u8 = 1;
const BACKSLASH: u8 = 2;
const CONTROL: u8 = 3;
const CONTINUATION: u8 = 4;

static STRING_CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = CONTROL;
        i += 1;
    }
    t[b'"' as usize] = QUOTE;
    t[b'\\' as usize] = BACKSLASH;
    let mut i = 0x80;
    while i < 0xc0 {
        t[i] = CONTINUATION;
        i += 1;
    }
    t
};

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

impl<'t> Values<'t> {
    /// Reads `text` (a byte order mark at its start is skipped) within `limits`.
    pub(crate) fn new(text: &'t str, limits: Limits) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let opener = match text.bytes().find(|b| !is_ws(*b)) {
            Some(b'[') => '[',
            _ => '{',
        };
        Values {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
            line_start: 0,
            line_cont: 0,
            limits,
            opener,
            documents: 0,
            nodes: 0,
            done: false,
            open: Vec::new(),
            items: Vec::new(),
            scratch: String::new(),
        }
    }

    /// The next non-null top-level value of `file` as a [`Document`], or the error that
    /// ends it.
    pub(crate) fn next_document<'a>(
        &mut self,
        file: &'a Path,
    ) -> Option<Result<Document<'a>, Diagnostic>> {
        loop {
            match self.next_value()? {
                Ok(root) if root.value == Value::Null => continue,
                Ok(root) => return Some(Ok(Document { file, root })),
                Err(e) => return Some(Err(e.diagnostic(file))),
            }
        }
    }

    /// The next top-level value, or the error that ends the text; `None` after the end
    /// or an error.
    pub(crate) fn next_value(&mut self) -> Option<Result<Node, JsonError>> {
        if self.done {
            return None;
        }
        self.skip_ws();
        if self.pos >= self.bytes.len() {
            self.done = true;
            return None;
        }
        let result = self.top_level();
        if result.is_err() {
            self.done = true;
            self.open.clear();
            self.items.clear();
        }
        Some(result)
    }

    /// Line and column of `pos`, which must not be before anything read so far on its
    /// line.
    fn at(&self, pos: usize) -> (usize, usize) {
        (self.line, pos - self.line_start - self.line_cont + 1)
    }

    fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    self.line_start = self.pos;
                    self.line_cont = 0;
                }
                _ => return,
            }
        }
    }

    /// An error at `pos`.
    fn error_at(&self, pos: usize, message: String) -> JsonError {
        let (line, column) = self.at(pos);
        JsonError {
            line,
            column,
            message,
        }
    }

    /// A syntax error at `pos`: "malformed JSON: {what}", and why JSON.
    fn syntax(&self, pos: usize, what: impl std::fmt::Display) -> JsonError {
        self.error_at(
            pos,
            format!(
                "malformed JSON: {what} (read as JSON: the file starts with '{}'; a YAML \
                 file starting so needs a `---` line first)",
                self.opener
            ),
        )
    }

    /// What is at `pos`, for "found …".
    fn found(&self, pos: usize) -> String {
        let Some(c) = self.text.get(pos..).and_then(|s| s.chars().next()) else {
            return "the end of the file".to_string();
        };
        match c {
            '\n' => "a line break".to_string(),
            c if c.is_ascii_alphabetic() => {
                let word: String = self.text[pos..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(20)
                    .collect();
                let hint = match word.as_str() {
                    "NaN" | "Infinity" | "inf" | "nan" => " (JSON has no NaN or Infinity)",
                    "True" | "TRUE" | "False" | "FALSE" | "Null" | "NULL" | "None" => {
                        " (JSON's literals are lowercase: true, false, null)"
                    }
                    _ => "",
                };
                format!("{}{hint}", quote(&word))
            }
            c => {
                let hint = match c {
                    '/' | '#' => " (JSON has no comments)",
                    '\'' => " (JSON strings are in double quotes)",
                    '+' => " (a JSON number has no '+' sign)",
                    '.' => " (a JSON number starts with a digit)",
                    _ => "",
                };
                format!("'{}'{hint}", shown(c))
            }
        }
    }

    /// " (the object at 3:5 is not closed)" when the end of the file is at `pos` inside
    /// a collection.
    fn unclosed(&self, pos: usize) -> String {
        match self.open.last() {
            Some(open) if pos >= self.bytes.len() => format!(
                " (the {} at {}:{} is not closed)",
                if open.is_map { "object" } else { "array" },
                open.line,
                open.column
            ),
            _ => String::new(),
        }
    }

    /// Counts one more node of the current value, which starts at `pos`.
    fn count(&mut self, pos: usize) -> Result<(), JsonError> {
        self.nodes += 1;
        if self.nodes > self.limits.nodes {
            return Err(self.error_at(
                pos,
                format!(
                    "too many JSON nodes: more than {} in one document (limit nodes)",
                    self.limits.nodes
                ),
            ));
        }
        Ok(())
    }

    fn scalar_bytes(&self, pos: usize, len: usize) -> Result<(), JsonError> {
        if len > self.limits.scalar_bytes {
            return Err(self.error_at(
                pos,
                format!(
                    "a scalar of more than {} bytes (limit scalar-bytes)",
                    self.limits.scalar_bytes
                ),
            ));
        }
        Ok(())
    }

    /// One top-level value, from `pos` at its first character.
    fn top_level(&mut self) -> Result<Node, JsonError> {
        let start = self.pos;
        self.documents += 1;
        if self.documents > self.limits.documents {
            return Err(self.error_at(
                start,
                format!(
                    "too many JSON values: more than {} in one file (limit documents)",
                    self.limits.documents
                ),
            ));
        }
        self.nodes = 0;
        if self.documents > 1
            && !matches!(
                self.bytes[start],
                b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
            )
        {
            return Err(self.syntax(
                start,
                format_args!(
                    "expected another JSON value or the end of the file after a top-level \
                     value, found {} (top-level values are separated by white space only)",
                    self.found(start)
                ),
            ));
        }
        loop {
            // A value starts here (white space skipped).
            let mut node = match self.value()? {
                Some(node) => node,
                // A collection opened: its first value (after its first key) is next.
                None => continue,
            };
            // Where the value goes, and what comes after it.
            loop {
                let Some(open) = self.open.last() else {
                    // A top-level number or literal must end where it seems to: `true1` is
                    // no two values.
                    let next = self.bytes.get(self.pos).copied();
                    if !matches!(node.value, Value::Map(_) | Value::Seq(_) | Value::Str(_))
                        && next.is_some_and(|b| !is_ws(b) && !b"[{]},:\"".contains(&b))
                    {
                        return Err(self.syntax(
                            self.pos,
                            format_args!(
                                "expected white space after a top-level value, found {}",
                                self.found(self.pos)
                            ),
                        ));
                    }
                    return Ok(node);
                };
                let is_map = open.is_map;
                self.items.push(node);
                self.skip_ws();
                let close = if is_map { b'}' } else { b']' };
                match self.bytes.get(self.pos) {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_ws();
                        if self.bytes.get(self.pos) == Some(&close) {
                            return Err(self.syntax(
                                self.pos,
                                format_args!(
                                    "expected {} after ',', found '{}' (JSON allows no \
                                     trailing comma)",
                                    if is_map { "a key" } else { "a value" },
                                    close as char
                                ),
                            ));
                        }
                        if is_map {
                            self.key()?;
                        }
                        break;
                    }
                    Some(&b) if b == close => {
                        self.pos += 1;
                        node = self.close();
                    }
                    _ => {
                        let what = if is_map {
                            "expected ',' or '}' after an object member"
                        } else {
                            "expected ',' or ']' after an array element"
                        };
                        return Err(self.syntax(
                            self.pos,
                            format_args!(
                                "{what}, found {}{}",
                                self.found(self.pos),
                                self.unclosed(self.pos)
                            ),
                        ));
                    }
                }
            }
        }
    }

    /// The value starting at `pos` (after white space): a whole scalar or empty
    /// collection, or `None` when a collection was opened (and, for an object, its
    /// first key read).
    fn value(&mut self) -> Result<Option<Node>, JsonError> {
        self.skip_ws();
        let start = self.pos;
        let Some(&b) = self.bytes.get(start) else {
            return Err(self.syntax(
                start,
                format_args!(
                    "expected a value, found the end of the file{}",
                    self.unclosed(start)
                ),
            ));
        };
        let (line, column) = self.at(start);
        let value = match b {
            b'{' | b'[' => {
                self.count(start)?;
                if self.open.len() >= self.limits.depth {
                    return Err(self.error_at(
                        start,
                        format!(
                            "nested too deep: more than {} collections in one another \
                             (limit depth)",
                            self.limits.depth
                        ),
                    ));
                }
                self.pos += 1;
                let is_map = b == b'{';
                self.open.push(Open {
                    line,
                    column,
                    start: self.items.len(),
                    is_map,
                    keys: None,
                });
                self.skip_ws();
                let close = if is_map { b'}' } else { b']' };
                if self.bytes.get(self.pos) == Some(&close) {
                    self.pos += 1;
                    return Ok(Some(self.close()));
                }
                if is_map {
                    self.key()?;
                }
                return Ok(None);
            }
            b'"' => {
                self.count(start)?;
                Value::Str(self.string()?)
            }
            b'-' | b'0'..=b'9' => {
                self.count(start)?;
                self.number()?
            }
            b't' | b'f' | b'n' => {
                let (word, value): (&[u8], Value) = match b {
                    b't' => (b"true", Value::Bool(true)),
                    b'f' => (b"false", Value::Bool(false)),
                    _ => (b"null", Value::Null),
                };
                if !self.bytes[start..].starts_with(word) {
                    return Err(self.expected_value(start));
                }
                self.count(start)?;
                self.pos += word.len();
                value
            }
            _ => return Err(self.expected_value(start)),
        };
        Ok(Some(Node::new(line, column, value)))
    }

    fn expected_value(&self, pos: usize) -> JsonError {
        self.syntax(
            pos,
            format_args!(
                "expected a value (an object, array, string, number, true, false or null), \
                 found {}",
                self.found(pos)
            ),
        )
    }

    /// Closes the innermost collection (its closing bracket read) into its node.
    fn close(&mut self) -> Node {
        let open = self.open.pop().expect("a collection is open");
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
        Node::new(open.line, open.column, value)
    }

    /// An object's key and the `:` after it, from `pos` (white space skipped); the key
    /// goes on the items.
    fn key(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        if self.bytes.get(start) != Some(&b'"') {
            return Err(self.syntax(
                start,
                format_args!(
                    "expected an object key (a string in double quotes), found {}{}",
                    self.found(start),
                    self.unclosed(start)
                ),
            ));
        }
        let (line, column) = self.at(start);
        self.count(start)?;
        let key = self.string()?;
        self.check_duplicate(&key, start)?;
        self.items.push(Node::new(line, column, Value::Str(key)));
        self.skip_ws();
        if self.bytes.get(self.pos) != Some(&b':') {
            return Err(self.syntax(
                self.pos,
                format_args!(
                    "expected ':' after an object key, found {}{}",
                    self.found(self.pos),
                    self.unclosed(self.pos)
                ),
            ));
        }
        self.pos += 1;
        Ok(())
    }

    /// An error if the innermost object already has `key` (which starts at `pos`).
    fn check_duplicate(&mut self, key: &str, pos: usize) -> Result<(), JsonError> {
        let open = self.open.last_mut().expect("a key is in an object");
        let earlier = &self.items[open.start..];
        let count = earlier.len() / 2;
        let is_key = |n: &Node| matches!(&n.value, Value::Str(s) if s == key);
        let duplicate = if count < LINEAR_KEY_CHECK {
            earlier.iter().step_by(2).any(is_key)
        } else {
            let keys = open.keys.get_or_insert_with(|| {
                earlier
                    .iter()
                    .step_by(2)
                    .filter_map(|n| match &n.value {
                        Value::Str(s) => Some(key_hash(s)),
                        _ => None,
                    })
                    .collect()
            });
            // A hash seen before is confirmed by comparing (rare).
            !keys.insert(key_hash(key)) && earlier.iter().step_by(2).any(is_key)
        };
        if duplicate {
            return Err(self.syntax(
                pos,
                format_args!("duplicate key {} in an object", quote(key)),
            ));
        }
        Ok(())
    }

    /// A string from its opening quote at `pos`; `pos` ends after its closing quote.
    fn string(&mut self) -> Result<Str, JsonError> {
        let open = self.pos;
        let (open_line, open_column) = self.at(open);
        let bytes = self.bytes;
        let mut i = open + 1;
        let mut segment = i;
        let mut escaped = false;
        loop {
            while i < bytes.len() && STRING_CLASS[bytes[i] as usize] == PLAIN {
                i += 1;
            }
            let Some(&b) = bytes.get(i) else {
                return Err(self.syntax(
                    i,
                    format_args!("the string opened at {open_line}:{open_column} is not closed"),
                ));
            };
            match STRING_CLASS[b as usize] {
                CONTINUATION => {
                    self.line_cont += 1;
                    i += 1;
                }
                QUOTE => {
                    let s = if escaped {
                        self.scratch.push_str(&self.text[segment..i]);
                        Str::from(self.scratch.as_str())
                    } else {
                        Str::from(&self.text[segment..i])
                    };
                    self.pos = i + 1;
                    self.scalar_bytes(open, s.len())?;
                    return Ok(s);
                }
                BACKSLASH => {
                    if !escaped {
                        escaped = true;
                        self.scratch.clear();
                    }
                    self.scratch.push_str(&self.text[segment..i]);
                    i = self.escape(i)?;
                    segment = i;
                    // A string past the limit is refused before it is all read.
                    if self.scratch.len() > self.limits.scalar_bytes {
                        self.scalar_bytes(open, self.scratch.len())?;
                    }
                }
                _ => {
                    return Err(self.syntax(
                        i,
                        format_args!(
                            "a control character ({}) in a string: write it as an escape \
                             ({}){}",
                            match b {
                                b'\n' => "a line break".to_string(),
                                _ => format!("U+{b:04X}"),
                            },
                            match b {
                                b'\n' => "\\n".to_string(),
                                b'\t' => "\\t".to_string(),
                                b'\r' => "\\r".to_string(),
                                _ => format!("\\u{b:04x}"),
                            },
                            if b == b'\n' {
                                format!("; the string opened at {open_line}:{open_column}")
                            } else {
                                String::new()
                            }
                        ),
                    ));
                }
            }
        }
    }

    /// The escape whose backslash is at `at`, pushed onto the scratch string; where
    /// the string goes on.
    fn escape(&mut self, at: usize) -> Result<usize, JsonError> {
        let c = match self.bytes.get(at + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let high = self.hex4(at)?;
                let (c, len) = match high {
                    0xd800..=0xdbff => {
                        let low = if self.bytes.get(at + 6..at + 8) == Some(b"\\u") {
                            Some(self.hex4(at + 6)?)
                        } else {
                            None
                        };
                        match low {
                            Some(low @ 0xdc00..=0xdfff) => {
                                let c = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                                (char::from_u32(c).expect("a surrogate pair is a char"), 12)
                            }
                            _ => {
                                return Err(self.syntax(
                                    at,
                                    format_args!(
                                        "a high surrogate \\u{high:04x} not followed by a \
                                         \\u escape of a low surrogate (\\udc00 to \\udfff)"
                                    ),
                                ))
                            }
                        }
                    }
                    0xdc00..=0xdfff => {
                        return Err(self.syntax(
                            at,
                            format_args!(
                                "a low surrogate \\u{high:04x} without a high surrogate \
                                 before it"
                            ),
                        ))
                    }
                    c => (char::from_u32(c).expect("not a surrogate"), 6),
                };
                self.scratch.push(c);
                return Ok(at + len);
            }
            None => {
                return Err(self.syntax(at + 1, "a string is not closed before the end of the file"))
            }
            Some(_) => {
                return Err(self.syntax(
                    at,
                    format_args!(
                        "invalid escape '\\{}' in a string (JSON's escapes are \\\" \\\\ \\/ \
                         \\b \\f \\n \\r \\t and \\u with four hex digits)",
                        self.text[at + 1..]
                            .chars()
                            .next()
                            .map(shown)
                            .unwrap_or_default()
                    ),
                ))
            }
        };
        self.scratch.push(c);
        Ok(at + 2)
    }

    /// The four hex digits after the `\u` whose backslash is at `at`.
    fn hex4(&self, at: usize) -> Result<u32, JsonError> {
        let digits = self.bytes.get(at + 2..at + 6);
        match digits {
            Some(d) if d.iter().all(u8::is_ascii_hexdigit) => Ok(d.iter().fold(0, |n, b| {
                n * 16 + (*b as char).to_digit(16).expect("a hex digit")
            })),
            _ => Err(self.syntax(at, "expected four hex digits after '\\u'")),
        }
    }

    /// A number from its first character at `pos`.
    fn number(&mut self) -> Result<Value, JsonError> {
        let bytes = self.bytes;
        let start = self.pos;
        let mut i = start;
        let negative = bytes[i] == b'-';
        if negative {
            i += 1;
        }
        let digits_start = i;
        match bytes.get(i) {
            Some(b'0') => {
                i += 1;
                if bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    return Err(self.syntax(
                        start,
                        "a number with a leading zero (JSON numbers are decimal, without \
                         leading zeros)",
                    ));
                }
            }
            Some(b'1'..=b'9') => {
                while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => {
                return Err(self.syntax(
                    i,
                    format_args!("expected a digit after '-', found {}", self.found(i)),
                ))
            }
        }
        let int_end = i;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(self.syntax(
                    i,
                    format_args!(
                        "expected a digit after the decimal point, found {}",
                        self.found(i)
                    ),
                ));
            }
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(self.syntax(
                    i,
                    format_args!(
                        "expected a digit in the number's exponent, found {}",
                        self.found(i)
                    ),
                ));
            }
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        self.scalar_bytes(start, i - start)?;
        self.pos = i;
        let text = &self.text[start..i];
        if i == int_end {
            // At most 18 digits always fit an i64.
            if int_end - digits_start <= 18 {
                let n = bytes[digits_start..int_end]
                    .iter()
                    .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
                return Ok(Value::Int(if negative { -n } else { n }));
            }
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Value::Int(n));
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(self.syntax(
                start,
                format_args!("the number {} is too big for a 64-bit float", quote(text)),
            )),
        }
    }
}

/// A character as messages show it: escaped (`\u{b}`) if it is not printable, so
/// that input cannot forge terminal output.
fn shown(c: char) -> String {
    if crate::diag::escape(c.encode_utf8(&mut [0; 4])).len() == c.len_utf8() && c != ' ' {
        c.to_string()
    } else {
        c.escape_debug().to_string()
    }
}

fn key_hash(key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str(s: &str) -> Value {
        Value::Str(s.into())
    }

    fn at(node: &Node) -> (usize, usize) {
        (node.line(), node.column())
    }

    /// The one root of `text`.
    fn one(text: &str) -> Node {
        let mut roots = parse_json(text, &Limits::default()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(roots.len(), 1, "{roots:?}");
        roots.remove(0)
    }

    /// The error of `text`, as (line, column, message).
    fn error_within(text: &str, limits: Limits) -> (usize, usize, String) {
        let e = parse_json(text, &limits).expect_err(text);
        (e.line, e.column, e.message)
    }

    fn error(text: &str) -> (usize, usize, String) {
        error_within(text, Limits::default())
    }

    fn entries(node: &Node) -> &[(Node, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("not an object: {other:?}"),
        }
    }

    fn items(node: &Node) -> &[Node] {
        match &node.value {
            Value::Seq(items) => items,
            other => panic!("not an array: {other:?}"),
        }
    }

    #[test]
    fn content_decides_what_is_json() {
        for text in ["{}", "[1]", "  \n\t{", "\u{feff}[", "\r\n {\"a\": 1}"] {
            assert!(is_json(text), "{text:?}");
        }
        for text in [
            "",
            "a: 1",
            "# {}\n{}",
            "- [1]",
            "\"x\"",
            "1",
            "---\n{}",
            "\u{feff}a",
        ] {
            assert!(!is_json(text), "{text:?}");
        }
    }

    #[test]
    fn every_value_type() {
        let root = one(concat!(
            r#"{"s": "x", "e": "", "i": 80, "n": -12, "z": -0, "f": 1.5, "x": 1e3, "X": 2E-2,"#,
            r#" "big": 9223372036854775808, "min": -9223372036854775808,"#,
            r#" "t": true, "F": false, "null": null, "a": [], "o": {}, "nested": [[{"k": [null]}]]}"#,
        ));
        let want = [
            ("s", str("x")),
            ("e", str("")),
            ("i", Value::Int(80)),
            ("n", Value::Int(-12)),
            // As the YAML path reads `-0`.
            ("z", Value::Int(0)),
            ("f", Value::Float(1.5)),
            ("x", Value::Float(1000.0)),
            ("X", Value::Float(0.02)),
            // Past i64: a float, as YAML's `9223372036854775808`.
            ("big", Value::Float(9223372036854775808.0)),
            ("min", Value::Int(i64::MIN)),
            ("t", Value::Bool(true)),
            ("F", Value::Bool(false)),
            ("null", Value::Null),
            ("a", Value::Seq(Box::new([]))),
            ("o", Value::Map(Box::new([]))),
        ];
        let e = entries(&root);
        assert_eq!(e.len(), want.len() + 1);
        for ((k, v), (key, value)) in e.iter().zip(&want) {
            assert_eq!((&k.value, &v.value), (&str(key), value), "{key}");
        }
        let nested = &e[want.len()].1;
        let k = &entries(&items(&items(nested)[0])[0])[0];
        assert_eq!(k.0.value, str("k"));
        assert_eq!(items(&k.1)[0].value, Value::Null);
    }

    #[test]
    fn numbers_as_the_yaml_path_types_them() {
        let yaml = |t: &str| {
            let input = crate::load::Input {
                path: "t.yaml".into(),
                text: format!("v: {t}\n").into(),
            };
            let (docs, _) = crate::load::parse(&input, &Limits::default());
            entries(&docs[0].root)[0].1.value.clone()
        };
        for t in [
            "0",
            "7",
            "-7",
            "123456789012345678",
            "1234567890123456789",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999",
            "0.5",
            "-0.0",
            "1e-400",
            "1.7976931348623157e308",
            "12.5E+3",
        ] {
            assert_eq!(
                one(&format!("[{t}]")).value,
                Value::Seq(Box::new([Node::new(1, 2, yaml(t))])),
                "{t}"
            );
        }
        let (_, column, message) = error("[1, 1e309]");
        assert_eq!(column, 5);
        assert!(
            message.contains("the number \"1e309\" is too big for a 64-bit float"),
            "{message}"
        );
    }

    #[test]
    fn positions_of_keys_values_and_collections() {
        let text = "{\n  \"metadata\": {\"name\": \"a\",\n\t\"labels\": {}},\n  \"items\": [\n    1, \"x\", [true]\n  ]\n}\n";
        let root = one(text);
        assert_eq!(at(&root), (1, 1));
        let (k, v) = &entries(&root)[0];
        assert_eq!((at(k), at(v)), ((2, 3), (2, 15)));
        let (k, name) = &entries(v)[0];
        assert_eq!((at(k), at(name)), ((2, 16), (2, 24)));
        // A tab is one column.
        let (k, labels) = &entries(v)[1];
        assert_eq!((at(k), at(labels)), ((3, 2), (3, 12)));
        let (k, list) = &entries(&root)[1];
        assert_eq!((at(k), at(list)), ((4, 3), (4, 12)));
        let got: Vec<_> = items(list).iter().map(at).collect();
        assert_eq!(got, vec![(5, 5), (5, 8), (5, 13)]);
        assert_eq!(at(&items(&items(list)[2])[0]), (5, 14));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // As the YAML path: `é` (2 bytes), `€` (3), `𝄞` (4) are one column each.
        let root = one("{\"é\": [\"ü€𝄞\", \"x\"], \"k\": 1}");
        let (k, v) = &entries(&root)[0];
        assert_eq!((at(k), at(v)), ((1, 2), (1, 7)));
        assert_eq!(items(v)[0].value, str("ü€𝄞"));
        assert_eq!(at(&items(v)[1]), (1, 15));
        assert_eq!(at(&entries(&root)[1].0), (1, 21));
        let roots = parse_json("{}\n[\"𝄞\", 2]", &Limits::default()).unwrap();
        assert_eq!(at(&items(&roots[1])[1]), (2, 7));
        // An error after multi-byte characters on its line, and on the next line.
        assert_eq!(error("[\"éé\", x]").1, 8);
        assert_eq!(error("[\"é\\q\"]").1, 4);
        assert_eq!(error("[\"éé\",\n x]").1, 2);
        // The YAML path agrees on a shared text.
        let yaml = crate::load::parse(
            &crate::load::Input {
                path: "t.yaml".into(),
                text: " {\"é€\": [\"𝄞\", \"x\"]}".to_string().into(),
            },
            &Limits::default(),
        )
        .0
        .remove(0)
        .root;
        let json = one(" {\"é€\": [\"𝄞\", \"x\"]}");
        assert_eq!(yaml, json);
    }

    #[test]
    fn escapes_and_surrogate_pairs() {
        let root =
            one(r#"["\"\\\/\b\f\n\r\t", "\u0041\u00e9\u20AC", "\ud834\udd1e", "a\u0000b", "é\n"]"#);
        let got: Vec<_> = items(&root).iter().map(|n| n.value.clone()).collect();
        assert_eq!(
            got,
            vec![
                str("\"\\/\u{8}\u{c}\n\r\t"),
                str("Aé€"),
                str("𝄞"),
                str("a\0b"),
                str("é\n"),
            ]
        );
        // Escaped keys are compared by what they decode to.
        let (_, column, message) = error(r#"{"a": 1, "\u0061": 2}"#);
        assert_eq!(column, 10);
        assert!(
            message.starts_with("malformed JSON: duplicate key \"a\" in an object"),
            "{message}"
        );
    }

    #[test]
    fn string_errors() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            ("[\"a\\x\"]", (1, 4), "invalid escape '\\x' in a string"),
            ("[\"a\\'\"]", (1, 4), "invalid escape '\\''"),
            ("[\"\\u12\"]", (1, 3), "expected four hex digits after '\\u'"),
            ("[\"\\u12G4\"]", (1, 3), "expected four hex digits after '\\u'"),
            ("[\"\\ud834\"]", (1, 3), "a high surrogate \\ud834 not followed by"),
            ("[\"\\ud834\\u0041\"]", (1, 3), "a high surrogate \\ud834 not followed by"),
            ("[\"\\ud834x\"]", (1, 3), "a high surrogate"),
            ("[\"x\\udd1e\"]", (1, 4), "a low surrogate \\udd1e without a high surrogate"),
            ("[\"a\tb\"]", (1, 4), "a control character (U+0009) in a string: write it as an escape (\\t)"),
            ("[\"a\u{1}b\"]", (1, 4), "(U+0001) in a string: write it as an escape (\\u0001)"),
            (
                "{\"a\": \"one\ntwo\"}",
                (1, 11),
                "a control character (a line break) in a string: write it as an escape (\\n); the string opened at 1:7",
            ),
            ("[\"abc", (1, 6), "the string opened at 1:2 is not closed"),
            ("[\"abc\\", (1, 7), "a string is not closed before the end of the file"),
        ];
        for (text, pos, want) in cases {
            let (line, column, message) = error(text);
            assert_eq!((line, column), *pos, "{text:?}: {message}");
            assert!(message.starts_with("malformed JSON: "), "{message}");
            assert!(message.contains(want), "{text:?}: {message}");
            assert!(
                message.contains("(read as JSON: the file starts with '"),
                "{message}"
            );
        }
    }

    #[test]
    fn syntax_errors_say_where_and_what_was_expected() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            ("{\"a\": 1 \"b\": 2}", (1, 9), "expected ',' or '}' after an object member, found '\"'"),
            ("[1 2]", (1, 4), "expected ',' or ']' after an array element, found '2'"),
            ("{\"a\": 1,}", (1, 9), "expected a key after ',', found '}' (JSON allows no trailing comma)"),
            ("[1,\n]", (2, 1), "expected a value after ',', found ']' (JSON allows no trailing comma)"),
            ("{\"a\" 1}", (1, 6), "expected ':' after an object key, found '1'"),
            ("{a: 1}", (1, 2), "expected an object key (a string in double quotes), found \"a\""),
            ("{'a': 1}", (1, 2), "found ''' (JSON strings are in double quotes)"),
            ("[1, // c\n2]", (1, 5), "found '/' (JSON has no comments)"),
            ("{\"a\": 1} # c", (1, 10), "found '#' (JSON has no comments)"),
            ("[NaN]", (1, 2), "found \"NaN\" (JSON has no NaN or Infinity)"),
            ("[-Infinity]", (1, 3), "expected a digit after '-', found \"Infinity\" (JSON has no NaN or Infinity)"),
            ("[True]", (1, 2), "found \"True\" (JSON's literals are lowercase: true, false, null)"),
            ("[tru]", (1, 2), "expected a value (an object, array, string, number, true, false or null), found \"tru\""),
            ("[nul", (1, 2), "found \"nul\""),
            ("[truex]", (1, 6), "expected ',' or ']' after an array element, found \"x\""),
            ("[+1]", (1, 2), "found '+' (a JSON number has no '+' sign)"),
            ("[.5]", (1, 2), "found '.' (a JSON number starts with a digit)"),
            ("[01]", (1, 2), "a number with a leading zero"),
            ("[-01]", (1, 2), "a number with a leading zero"),
            ("[1.]", (1, 4), "expected a digit after the decimal point, found ']'"),
            ("[1.e3]", (1, 4), "expected a digit after the decimal point, found \"e3\""),
            ("[1e]", (1, 4), "expected a digit in the number's exponent, found ']'"),
            ("[1e+]", (1, 5), "expected a digit in the number's exponent"),
            ("[0x10]", (1, 3), "expected ',' or ']' after an array element, found \"x10\""),
            ("[1]]", (1, 4), "expected another JSON value or the end of the file after a top-level value, found ']'"),
            ("{},{}", (1, 3), "found ',' (top-level values are separated by white space only)"),
            ("{\n  \"a\": [1,\n", (3, 1), "expected a value, found the end of the file (the array at 2:8 is not closed)"),
            ("{\n  \"a\": [1", (2, 10), "expected ',' or ']' after an array element, found the end of the file (the array at 2:8 is not closed)"),
            ("{\"a\": {}", (1, 9), "expected ',' or '}' after an object member, found the end of the file (the object at 1:1 is not closed)"),
            ("{\"a\"", (1, 5), "expected ':' after an object key, found the end of the file (the object at 1:1 is not closed)"),
            ("{", (1, 2), "expected an object key (a string in double quotes), found the end of the file (the object at 1:1 is not closed)"),
            ("[\u{a0}1]", (1, 2), "found '\u{a0}'"),
            ("[1,\u{b}2]", (1, 4), "found '\\u{b}'"),
        ];
        for (text, pos, want) in cases {
            let (line, column, message) = error(text);
            assert_eq!((line, column), *pos, "{text:?}: {message}");
            assert!(message.starts_with("malformed JSON: "), "{message}");
            assert!(message.contains(want), "{text:?}: {message}");
        }
        let (.., message) = error("[1 2]");
        assert_eq!(
            message,
            "malformed JSON: expected ',' or ']' after an array element, found '2' (read as \
             JSON: the file starts with '['; a YAML file starting so needs a `---` line first)"
        );
    }

    #[test]
    fn duplicate_keys_are_an_error_at_the_second_key() {
        let (line, column, message) =
            error("{\"metadata\": {\n  \"name\": \"a\",\n  \"labels\": {},\n  \"name\": \"b\"}}");
        assert_eq!((line, column), (4, 3));
        assert_eq!(
            message,
            "malformed JSON: duplicate key \"name\" in an object (read as JSON: the file \
             starts with '{'; a YAML file starting so needs a `---` line first)"
        );
        // Keys of different objects, and equal values, are no duplicates.
        let root = one("{\"a\": {\"a\": 1}, \"b\": [{\"a\": 1}, {\"a\": 1}], \"c\": \"a\"}");
        assert_eq!(entries(&root).len(), 3);
        // Big objects keep a set of hashes.
        let mut text: String = "{".to_string()
            + &(0..40)
                .map(|i| format!("\"k{i}\": {i}, "))
                .collect::<String>();
        let root = one(&(text.clone() + "\"end\": 0}"));
        assert_eq!(entries(&root).len(), 41);
        assert_eq!(entries(&root)[39].1.value, Value::Int(39));
        text += "\"k7\": 1}";
        let (_, column, message) = error(&text);
        assert_eq!(column, text.len() - 7);
        assert!(message.contains("duplicate key \"k7\""), "{message}");
    }

    #[test]
    fn several_top_level_values_and_a_bom() {
        let text = "\u{feff}{\"kind\": \"List\"}\n\n[1]  \"s\"\n7\nnull {}\n";
        let roots = parse_json(text, &Limits::default()).unwrap();
        let got: Vec<_> = roots.iter().map(at).collect();
        // The BOM is not a column.
        assert_eq!(got, vec![(1, 1), (3, 1), (3, 6), (4, 1), (5, 1), (5, 6)]);
        assert_eq!(roots[2].value, str("s"));
        assert_eq!(roots[4].value, Value::Null);
        assert!(parse_json("\u{feff} \n", &Limits::default())
            .unwrap()
            .is_empty());
        // Objects, arrays and strings need no white space between them; numbers and
        // literals do.
        assert_eq!(
            parse_json("{}[]{}\"a\"1\"b\"", &Limits::default())
                .unwrap()
                .len(),
            6
        );
        let (_, column, message) = error("{} true1");
        assert_eq!(column, 8);
        assert!(
            message.contains("expected white space after a top-level value, found '1'"),
            "{message}"
        );
        let (_, column, message) = error("{} 1-2");
        assert_eq!(column, 5);
        assert!(message.contains("found '-'"), "{message}");
    }

    #[test]
    fn documents_reads_json_by_content_and_drops_null_values() {
        let input = crate::load::Input {
            path: "inventory.yaml".into(),
            text: "\n  {\"a\": 1}\nnull\n[2]\n{\"b\" 3}\n{\"c\": 4}\n"
                .to_string()
                .into(),
        };
        let got: Vec<Result<(usize, usize), (usize, usize)>> =
            crate::load::documents(&input, &Limits::default())
                .map(|d| d.map(|d| at(&d.root)).map_err(|e| (e.line, e.column)))
                .collect();
        // Nothing after the error is read.
        assert_eq!(got, vec![Ok((2, 3)), Ok((4, 1)), Err((5, 6))]);
        let (_, diags) = crate::load::parse(&input, &Limits::default());
        assert_eq!(diags[0].file.as_deref(), Some(Path::new("inventory.yaml")));
    }

    #[test]
    fn hostile_depth_is_an_error_not_a_crash() {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let text = open.repeat(10_000) + &close.repeat(10_000);
            let (line, column, message) = error(&text);
            assert_eq!((line, column), (1, 64 * open.len() + 1), "{open}");
            assert_eq!(
                message,
                "nested too deep: more than 64 collections in one another (limit depth)"
            );
            // Even at the highest limit, and unclosed.
            let limits = Limits {
                depth: Limits::MAX_DEPTH,
                ..Limits::default()
            };
            let (.., message) = error_within(&open.repeat(100_000), limits);
            assert!(message.contains("more than 1024"), "{message}");
        }
        let limits = Limits {
            depth: 3,
            ..Limits::default()
        };
        assert!(parse_json("[[{\"a\": 1}]]", &limits).is_ok());
        let (_, column, message) = error_within("[[{\"a\": []}]]", limits);
        assert_eq!(column, 9);
        assert!(message.contains("more than 3 collections"), "{message}");
    }

    #[test]
    fn nodes_scalar_bytes_and_documents_are_bounded() {
        let limits = Limits {
            nodes: 4,
            scalar_bytes: 5,
            documents: 2,
            ..Limits::default()
        };
        // [ + 3 scalars = 4 nodes; per document. Keys count, as in YAML.
        assert_eq!(
            parse_json("[1, 2, 3] {\"a\": [1]}", &limits).unwrap().len(),
            2
        );
        let (line, column, message) = error_within("[1, 2, 3, 4]", limits);
        assert_eq!((line, column), (1, 11));
        assert_eq!(
            message,
            "too many JSON nodes: more than 4 in one document (limit nodes)"
        );
        let (_, column, _) = error_within("{\"a\": 1, \"b\": 2}", limits);
        assert_eq!(column, 15);
        // Decoded bytes count: a 6-byte key, an escaped 6-byte string, a long number.
        for (text, column) in [
            ("[\"abcde\", \"abcdef\"]", 11),
            ("{\"abcdef\": 1}", 2),
            ("[\"\\u00e9\\u00e9\\u00e9\"]", 2),
            ("[123456]", 2),
        ] {
            let (_, c, message) = error_within(text, limits);
            assert_eq!(c, column, "{text}");
            assert_eq!(
                message, "a scalar of more than 5 bytes (limit scalar-bytes)",
                "{text}"
            );
        }
        assert!(parse_json("[\"\\u00e9\\u00e9\", 12345, -1234]", &limits).is_ok());
        let (line, column, message) = error_within("[1]\n[2]\n[3]\n[4]", limits);
        assert_eq!((line, column), (3, 1));
        assert_eq!(
            message,
            "too many JSON values: more than 2 in one file (limit documents)"
        );
        // Through `documents`: the values before the limit come first, then the error
        // ends the file.
        let input = crate::load::Input {
            path: "t.json".into(),
            text: "[1]\n[2]\n[3]\n[4]".to_string().into(),
        };
        let got: Vec<bool> = crate::load::documents(&input, &limits)
            .map(|d| d.is_ok())
            .collect();
        assert_eq!(got, vec![true, true, false]);
    }
}
