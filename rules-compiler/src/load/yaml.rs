//! YAML text → positioned trees, one per document.
//!
//! saphyr-parser's events are built straight into our own small [`Node`] tree (see
//! `tree.rs`) whose positions are 1-based line *and* column (the parser's markers have a
//! 1-based line but a 0-based column), whose mappings keep their keys' positions and
//! their input order, and whose tags are looked through. `validate` decodes that tree by
//! hand, which is what lets it name the file, line, column and field path of every
//! problem, and carry on after the first one.
//!
//! A multi-document stream is cut into its documents *before* parsing, at every line
//! that starts with `---` (YAML forbids such a line inside any content, so the cut is
//! exact). The parser gives up on the whole stream at its first scan error; cutting first
//! means a broken document costs only itself, and the others are still checked.

use std::path::Path;

use crate::diag::{quote, Diagnostic};
use crate::load::json;
use crate::load::tree::{Builder, Failure};
use crate::load::{Input, Limits};

/// A YAML node with the position where it starts.
///
/// 32 bytes (a test holds it there): a document may hold millions of nodes (the
/// `nodes` limit is 8,000,000), so their size is what bounds a parse's memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// 1-based line (saturated at `u32::MAX`, past any file the limits let in).
    pub line: u32,
    /// 1-based column, in characters (saturated likewise).
    pub column: u32,
    /// The node's content.
    pub value: Value,
}

impl Node {
    /// A node at `line`:`column`.
    pub fn new(line: usize, column: usize, value: Value) -> Node {
        Node {
            line: saturate(line),
            column: saturate(column),
            value,
        }
    }

    /// Its 1-based line.
    pub fn line(&self) -> usize {
        self.line as usize
    }

    /// Its 1-based column.
    pub fn column(&self) -> usize {
        self.column as usize
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A scalar string: up to 24 bytes kept inline (no allocation), which holds nearly all
/// names, labels and ports.
pub type Str = compact_str::CompactString;

/// The content of a [`Node`], after YAML 1.2 core-schema resolution (`80` is an integer,
/// `"80"` a string, `true` a boolean, `~` and an empty value null).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~`, or nothing at all.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(Str),
    /// A sequence.
    Seq(Box<[Node]>),
    /// A mapping, in input order. Keys are unique (duplicates are a parse error).
    Map(Box<[(Node, Node)]>),
    /// A scalar that its tag says cannot be what it is (`!!int abc`), with why.
    Invalid(Box<str>),
}

impl Value {
    /// How to name this value's type in a message: "a string", "the integer 80", …
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".to_string(),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Int(i) => format!("the integer {i}"),
            Value::Float(f) => format!("the number {f}"),
            Value::Str(s) => format!("the string {}", quote(s)),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
            Value::Invalid(_) => "an invalid value".to_string(),
        }
    }
}

/// One non-empty YAML document of an input file.
#[derive(Clone, Debug, PartialEq)]
pub struct Document<'a> {
    /// The file it came from.
    pub file: &'a Path,
    /// Its root node (never null: empty and comment-only documents are dropped).
    pub root: Node,
}

/// Parses every document of an input. Documents that are empty or hold only comments
/// are skipped. Malformed YAML gives an error diagnostic at the scanner's position; the
/// other documents of the file are still returned.
pub fn parse<'a>(input: &'a Input, limits: &Limits) -> (Vec<Document<'a>>, Vec<Diagnostic>) {
    let mut docs = Vec::new();
    let mut diags = Vec::new();
    for item in documents(input, limits) {
        match item {
            Ok(doc) => docs.push(doc),
            Err(diag) => diags.push(diag),
        }
    }
    (docs, diags)
}

/// [`parse`], one document at a time, in input order, each malformed part of the
/// stream as an `Err` where it comes. A consumer that is done with each document before
/// the next never holds the trees of a whole big file.
///
/// Past one of the `limits`, the error is the last item: the rest of the file is not
/// read.
pub fn documents<'a>(input: &'a Input, limits: &Limits) -> Documents<'a> {
    let text = input.text.strip_prefix('\u{feff}').unwrap_or(&input.text);
    // JSON by content (`load/json.rs`): a first character `{` or `[`.
    if json::is_json(text) {
        return Documents {
            file: &input.path,
            chunks: Vec::new().into_iter(),
            builder: Builder::new(*limits),
            roots: Vec::new().into_iter(),
            stopped: false,
            json: Some(json::Values::new(text, *limits)),
        };
    }
    yaml_documents(input, limits)
}

/// [`documents`] read as YAML, whatever the text starts with.
pub(super) fn yaml_documents<'a>(input: &'a Input, limits: &Limits) -> Documents<'a> {
    let text = input.text.strip_prefix('\u{feff}').unwrap_or(&input.text);
    Documents {
        file: &input.path,
        chunks: split_documents(text).into_iter(),
        builder: Builder::new(*limits),
        roots: Vec::new().into_iter(),
        stopped: false,
        json: None,
    }
}

/// [`documents`] cut into at most `parts` pieces of whole chunks of about equal size, in
/// input order, so that a big file's documents can be parsed on several threads: what
/// the pieces yield, one after the other, is what [`documents`] yields, but for the
/// limits that span the file. A piece stopped by a limit ([`Documents::stopped`]) means
/// the pieces after it must be dropped; more documents in all pieces together than the
/// `documents` limit ([`Documents::seen`]) means the file must be read again with
/// [`documents`], which stops at the exact place.
///
/// A JSON input is one piece: its values are not cut apart before parsing.
pub fn pieces<'a>(input: &'a Input, limits: &Limits, parts: usize) -> Vec<Documents<'a>> {
    let text = input.text.strip_prefix('\u{feff}').unwrap_or(&input.text);
    if json::is_json(text) {
        return vec![documents(input, limits)];
    }
    let chunks = split_documents(text);
    let parts = parts.clamp(1, chunks.len().max(1));
    let per_part = text.len().div_ceil(parts).max(1);
    let mut pieces = Vec::with_capacity(parts);
    let mut current = Vec::new();
    let mut bytes = 0;
    for chunk in chunks {
        bytes += chunk.text.len();
        current.push(chunk);
        if bytes >= per_part && pieces.len() + 1 < parts {
            pieces.push(std::mem::take(&mut current));
            bytes = 0;
        }
    }
    pieces.push(current);
    pieces
        .into_iter()
        .map(|chunks| Documents {
            file: &input.path,
            chunks: chunks.into_iter(),
            builder: Builder::new(*limits),
            roots: Vec::new().into_iter(),
            stopped: false,
            json: None,
        })
        .collect()
}

/// The documents of an input, from [`documents`] or [`pieces`].
pub struct Documents<'a> {
    file: &'a Path,
    chunks: std::vec::IntoIter<Chunk<'a>>,
    builder: Builder,
    /// The roots of the last chunk not handed out yet.
    roots: std::vec::IntoIter<Node>,
    /// A limit stopped the reading.
    stopped: bool,
    /// A JSON input's values (then there are no chunks).
    json: Option<json::Values<'a>>,
}

impl Documents<'_> {
    /// Whether a limit stopped the reading (its error was the last item).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// YAML documents parsed so far, empty ones included (what the `documents` limit
    /// counts); 0 for JSON, whose one piece holds its own count.
    pub fn seen(&self) -> usize {
        self.builder.documents()
    }
}

impl<'a> Iterator for Documents<'a> {
    type Item = Result<Document<'a>, Diagnostic>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(values) = &mut self.json {
            return values.next_document(self.file);
        }
        loop {
            if let Some(root) = self.roots.find(|root| root.value != Value::Null) {
                return Some(Ok(Document {
                    file: self.file,
                    root,
                }));
            }
            let chunk = self.chunks.next()?;
            match self.builder.load(chunk.text, chunk.line_offset) {
                Ok(roots) => self.roots = roots.into_iter(),
                Err(failure) => {
                    if matches!(failure, Failure::Limit(..)) {
                        self.chunks = Vec::new().into_iter();
                        self.stopped = true;
                    }
                    return Some(Err(failure_diagnostic(self.file, &chunk, &failure)));
                }
            }
        }
    }
}

/// A piece of the stream holding one or more whole documents.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunk<'t> {
    pub(crate) text: &'t str,
    /// Lines of the file before this chunk.
    pub(crate) line_offset: usize,
}

/// A YAML input cut into its documents (at every `---` line, as [`documents`] cuts
/// it), each to be read alone with [`chunk_documents`]; `None` for a JSON input, which
/// is read whole. For the decode cache: a document's result depends only on its bytes
/// and the lines before it.
pub(crate) fn chunks(input: &Input) -> Option<Vec<Chunk<'_>>> {
    let text = input.text.strip_prefix('\u{feff}').unwrap_or(&input.text);
    (!json::is_json(text)).then(|| split_documents(text))
}

/// How [`chunks`] cut an earlier version of a file: the text's length, and each chunk's
/// start (a byte offset in that text, its byte order mark counted) and line, in order.
pub(crate) struct EarlierCuts<'a> {
    /// The earlier text's length in bytes.
    pub(crate) len: usize,
    /// `(start, line_offset)` of each chunk.
    pub(crate) starts: &'a [(usize, usize)],
}

/// [`chunks`] of `input`, given that its text starts with the first `prefix` bytes of
/// the earlier text `earlier` describes and ends with its last `suffix` bytes: the
/// chunks whose cut was decided within the unchanged start are the earlier ones, and
/// once a cut falls in the unchanged end where the earlier text had one, the chunks
/// after it are the earlier ones too, moved. Only the edited middle is cut again: a
/// one-document edit of a 38 MB inventory cuts one document, not 51,000. The same
/// chunks as [`chunks`] (tested against it), and how many of them were cut again.
pub(crate) fn chunks_after_edit<'t>(
    input: &'t Input,
    earlier: &EarlierCuts<'_>,
    prefix: usize,
    suffix: usize,
) -> Option<(Vec<Chunk<'t>>, usize)> {
    let whole: &str = &input.text;
    let text = whole.strip_prefix('\u{feff}').unwrap_or(whole);
    if json::is_json(text) {
        return None;
    }
    let bom = whole.len() - text.len();
    let starts = earlier.starts;
    // The earlier text must have been cut from the same start (a byte order mark in
    // both or neither), and the unchanged ends must fit both texts.
    if starts.first() != Some(&(bom, 0))
        || prefix < bom
        || prefix + suffix > whole.len().min(earlier.len)
    {
        let all = split_documents(text);
        let n = all.len();
        return Some((all, n));
    }
    let moved = earlier.len as isize - whole.len() as isize;
    let here = |s: usize| (s as isize - moved) as usize - bom;
    let earlier_chunk = |k: usize, lines: isize| {
        let (s, line) = starts[k];
        let end = starts.get(k + 1).map_or(text.len(), |&(e, _)| here(e));
        Chunk {
            text: &text[here(s)..end],
            line_offset: (line as isize + lines) as usize,
        }
    };
    if prefix == whole.len() && prefix == earlier.len {
        return Some(((0..starts.len()).map(|k| earlier_chunk(k, 0)).collect(), 0));
    }
    // Restart at the last earlier cut decided within the unchanged start: the cut at
    // `starts[a]` was decided on a line of chunk `a`, so wholly before `starts[a + 1]`.
    let a = starts
        .windows(2)
        .rposition(|w| w[1].0 <= prefix)
        .unwrap_or(0);
    let (from, from_line) = starts[a];
    // Where the new text's unchanged end begins.
    let tail = whole.len() - suffix;
    let mut resumed: Option<(usize, isize)> = None;
    let (middle, stopped) = split_from(text, (from - bom, from_line), |(cut, line)| {
        let at = cut + bom;
        if at < tail {
            return false;
        }
        let then = (at as isize + moved) as usize;
        match starts.binary_search_by_key(&then, |&(s, _)| s) {
            Ok(b) => {
                resumed = Some((b, line as isize - starts[b].1 as isize));
                true
            }
            Err(_) => false,
        }
    });
    let recut = middle.len();
    let mut out = Vec::with_capacity(starts.len() + middle.len());
    // Before the restart the texts are the same: nothing moved.
    out.extend(
        starts[..a]
            .iter()
            .zip(&starts[1..=a])
            .map(|(&(s, line), &(e, _))| Chunk {
                text: &text[s - bom..e - bom],
                line_offset: line,
            }),
    );
    out.extend(middle);
    if let (Some(_), Some((b, lines))) = (stopped, resumed) {
        out.extend((b..starts.len()).map(|k| earlier_chunk(k, lines)));
    }
    Some((out, recut))
}

/// The documents of one chunk of `input` (from [`chunks`]), as [`documents`] gives them
/// for that part of the file; the `documents` limit counts this chunk's alone.
pub(crate) fn chunk_documents<'a>(
    input: &'a Input,
    chunk: Chunk<'a>,
    limits: &Limits,
) -> Documents<'a> {
    Documents {
        file: &input.path,
        chunks: vec![chunk].into_iter(),
        builder: Builder::new(*limits),
        roots: Vec::new().into_iter(),
        stopped: false,
        json: None,
    }
}

/// Cuts the stream before each `---` line, except where everything so far in the
/// current chunk is blank, comments or directives (those belong to the next document).
/// After a `...` (document end), what follows it up to the `---` (directives, comments)
/// goes with the next document too.
///
/// Once the current chunk has content and no `...` is pending, only a line that starts
/// with `---` or `...` can change anything: the search jumps from one such line to the
/// next (`memmem`) and counts the newlines passed over in bulk (a 38 MB inventory is
/// cut in a few milliseconds). The `...` search is kept, not repeated, until passed:
/// a file without one is searched once.
pub(super) fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    split_from(text, (0, 0), |_| false).0
}

/// [`split_documents`] of `text` from `from` (a byte offset and its line), which must be
/// where a cut of the whole text falls (or 0): a cut leaves nothing of what came before
/// it in the splitter's state, so what follows is cut as from the start. Stops after
/// the first cut `at` with `stop(at)`, and returns it (offset and line) with the chunks
/// before it; else cuts to the end.
fn split_from(
    text: &str,
    from: (usize, usize),
    mut stop: impl FnMut((usize, usize)) -> bool,
) -> (Vec<Chunk<'_>>, Option<(usize, usize)>) {
    let bytes = text.as_bytes();
    let starts = memchr::memmem::Finder::new(b"\n---");
    let ends = memchr::memmem::Finder::new(b"\n...");
    // The next `\n...` at or after this search's start, or `None` (none to the end).
    let mut next_end: Option<(usize, Option<usize>)> = None;
    let mut chunks = Vec::new();
    let (mut start, mut start_line) = from;
    let mut has_content = false;
    // Where the current chunk's last document was ended by `...`, if nothing came since.
    let mut ended_at: Option<(usize, usize)> = None;
    let (mut pos, mut line_no) = from;
    while pos < bytes.len() {
        if has_content && ended_at.is_none() {
            // Lines that start with neither marker change nothing: skip to the next
            // that does (`pos` follows a newline here: the chunk has a line).
            let from = pos - 1;
            let end = match next_end {
                Some((searched, found)) if searched <= from && found.is_none_or(|e| e >= from) => {
                    found
                }
                _ => {
                    let found = ends.find(&bytes[from..]).map(|i| from + i);
                    next_end = Some((from, found));
                    found
                }
            };
            let start = starts.find(&bytes[from..]).map(|i| from + i);
            let to = match (start, end) {
                (Some(a), Some(b)) => a.min(b) + 1,
                (Some(a), None) | (None, Some(a)) => a + 1,
                (None, None) => bytes.len(),
            };
            line_no += memchr::memchr_iter(b'\n', &bytes[pos..to]).count();
            pos = to;
            if pos == bytes.len() {
                break;
            }
        }
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i + 1);
        let line = &text[pos..end];
        let is_start_marker = is_marker(line, "---");
        if is_start_marker && has_content {
            let (cut, cut_line) = ended_at.unwrap_or((pos, line_no));
            chunks.push(Chunk {
                text: &text[start..cut],
                line_offset: start_line,
            });
            if stop((cut, cut_line)) {
                return (chunks, Some((cut, cut_line)));
            }
            start = cut;
            start_line = cut_line;
            has_content = false;
            ended_at = None;
        }
        let content = line_has_content(line, is_start_marker);
        has_content |= content;
        if is_marker(line, "...") {
            ended_at = Some((end, line_no + 1));
        } else if content || is_start_marker {
            ended_at = None;
        }
        pos = end;
        line_no += 1;
    }
    if start < text.len() {
        chunks.push(Chunk {
            text: &text[start..],
            line_offset: start_line,
        });
    }
    (chunks, None)
}

/// `---` or `...` at column 0, followed by white space or the end of the line.
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

fn line_has_content(line: &str, is_start_marker: bool) -> bool {
    let rest = if is_start_marker { &line[3..] } else { line };
    let trimmed = rest.trim();
    !(trimmed.is_empty()
        || trimmed.starts_with('#')
        || (!is_start_marker && line.starts_with('%'))
        || is_marker(line, "..."))
}

fn failure_diagnostic(file: &Path, chunk: &Chunk<'_>, failure: &Failure) -> Diagnostic {
    // (1-based line, 0-based column) within the chunk.
    let ((line, col), message) = match failure {
        Failure::Scan(e) => (
            (e.marker().line(), e.marker().col()),
            format!("malformed YAML: {}", e.info()),
        ),
        Failure::DuplicateKey { line, col } => (
            (*line, *col),
            match key_at(chunk.text, *line, *col) {
                Some(key) => format!("malformed YAML: duplicate key {} in a mapping", quote(&key)),
                None => "malformed YAML: duplicate key in a mapping".to_string(),
            },
        ),
        Failure::AliasBudget(m) => (
            (m.line(), m.col()),
            "malformed YAML: alias expansion exceeded the maximum node budget (possible \
             billion-laughs attack)"
                .to_string(),
        ),
        Failure::Limit(m, exceeded) => ((m.line(), m.col()), exceeded.message()),
    };
    Diagnostic::error(message)
        .in_file(file)
        .at(line + chunk.line_offset, col + 1)
}

/// The key text starting at (1-based line, 0-based column), for a better message.
fn key_at(text: &str, line: usize, col: usize) -> Option<String> {
    let line = text.lines().nth(line.checked_sub(1)?)?;
    let rest: String = line.chars().skip(col).collect();
    let key = rest.split(':').next()?.trim().trim_matches(['"', '\'']);
    (!key.is_empty()).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Severity;

    #[test]
    fn a_node_is_32_bytes_and_short_strings_are_inline() {
        // What the `nodes` limit costs in memory: 8,000,000 nodes at 48 bytes and an
        // allocation per string ran a 16 MB flow list out of 1 GiB.
        assert_eq!(std::mem::size_of::<Node>(), 32);
        assert!(!Str::from("app.kubernetes.io/name").is_heap_allocated());
        assert_eq!(
            Node::new(usize::MAX, 1, Value::Null).line(),
            u32::MAX as usize
        );
    }

    fn input(text: &str) -> Input {
        Input {
            path: "t.yaml".into(),
            text: text.to_string().into(),
        }
    }

    /// [`split_documents`] as it was written first: every line looked at.
    fn split_line_by_line(text: &str) -> Vec<(usize, usize)> {
        let mut chunks = Vec::new();
        let (mut start, mut start_line, mut has_content) = (0, 0, false);
        let mut ended_at: Option<(usize, usize)> = None;
        let mut pos = 0;
        for (line_no, line) in text.split_inclusive('\n').enumerate() {
            let is_start_marker = is_marker(line, "---");
            if is_start_marker && has_content {
                let (cut, cut_line) = ended_at.unwrap_or((pos, line_no));
                chunks.push((cut - start, start_line));
                (start, start_line, has_content, ended_at) = (cut, cut_line, false, None);
            }
            let content = line_has_content(line, is_start_marker);
            has_content |= content;
            if is_marker(line, "...") {
                ended_at = Some((pos + line.len(), line_no + 1));
            } else if content || is_start_marker {
                ended_at = None;
            }
            pos += line.len();
        }
        if start < text.len() {
            chunks.push((text.len() - start, start_line));
        }
        chunks
    }

    proptest::proptest! {
        #[test]
        fn documents_are_cut_where_every_line_looked_at_cuts_them(
            lines in proptest::collection::vec(
                proptest::sample::select(vec![
                    "---", "--- # c", "---x", "--", "...", "... # c", "....", "- a", "-",
                    ".x", "a: 1", "  b: 2", "# c", "", "  ", "%YAML 1.2", "--- a: 1",
                    "---\r", "...\r", "a: ---", "b: ...", "---\t#", "-- -",
                ]),
                0..60,
            ),
            last_newline in proptest::bool::ANY,
        ) {
            let mut text = lines.join("\n");
            if last_newline {
                text.push('\n');
            }
            let fast: Vec<(usize, usize)> = split_documents(&text)
                .iter()
                .map(|c| (c.text.len(), c.line_offset))
                .collect();
            proptest::prop_assert_eq!(fast, split_line_by_line(&text));
        }
    }

    /// Each chunk as (start in the whole text, length, line offset).
    type Placed = Vec<(usize, usize, usize)>;

    fn placed(whole: &str, chunks: &[Chunk<'_>]) -> Placed {
        chunks
            .iter()
            .map(|c| {
                (
                    c.text.as_ptr() as usize - whole.as_ptr() as usize,
                    c.text.len(),
                    c.line_offset,
                )
            })
            .collect()
    }

    /// `after` cut by [`chunks_after_edit`] from the cuts of `before` and the ends they
    /// share (as the decode cache finds them), `after` cut by [`chunks`], and how many
    /// chunks the first cut again.
    fn after_edit(before: &str, after: &str) -> (Placed, Placed, usize) {
        let (old, new) = (input(before), input(after));
        let starts: Vec<(usize, usize)> = placed(&old.text, &chunks(&old).unwrap())
            .iter()
            .map(|&(s, _, line)| (s, line))
            .collect();
        let (a, b) = (before.as_bytes(), after.as_bytes());
        let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let suffix = a[prefix..]
            .iter()
            .rev()
            .zip(b[prefix..].iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        let earlier = EarlierCuts {
            len: before.len(),
            starts: &starts,
        };
        let (got, recut) = chunks_after_edit(&new, &earlier, prefix, suffix).unwrap();
        let want = chunks(&new).unwrap();
        (placed(&new.text, &got), placed(&new.text, &want), recut)
    }

    const LINES: [&str; 23] = [
        "---",
        "--- # c",
        "---x",
        "--",
        "...",
        "... # c",
        "....",
        "- a",
        "-",
        ".x",
        "a: 1",
        "  b: 2",
        "# c",
        "",
        "  ",
        "%YAML 1.2",
        "--- a: 1",
        "---\r",
        "...\r",
        "a: ---",
        "b: ...",
        "---\t#",
        "-- -",
    ];

    proptest::proptest! {
        #[test]
        fn a_file_cut_again_after_an_edit_is_cut_as_whole(
            before in proptest::collection::vec(0..LINES.len(), 0..40),
            at in 0usize..40,
            removed in 0usize..6,
            added in proptest::collection::vec(0..LINES.len(), 0..6),
            byte in proptest::option::of((0usize..400, 0usize..3)),
            boms in (proptest::bool::ANY, proptest::bool::ANY),
        ) {
            let text = |lines: &[usize], bom: bool| {
                let mut t: String = lines.iter().map(|&l| format!("{}\n", LINES[l])).collect();
                if bom {
                    t.insert(0, '\u{feff}');
                }
                t
            };
            let at = at.min(before.len());
            let mut after = before.clone();
            after.splice(at..(at + removed).min(before.len()), added);
            let old = text(&before, boms.0);
            let mut new = text(&after, boms.1);
            // Or an edit within a line: one byte replaced by `-`, `.` or a newline.
            if let Some((i, b)) = byte {
                let i = i % (new.len() + 1);
                if new.is_char_boundary(i) && new[i..].chars().next().is_some_and(|c| c.len_utf8() == 1) {
                    new.replace_range(i..=i, ["-", ".", "\n"][b]);
                }
            }
            let (got, want, _) = after_edit(&old, &new);
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_one_document_edit_cuts_only_around_it() {
        let doc =
            |i: usize| format!("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-{i}\n");
        let before: String = (0..100).map(doc).collect();
        let after = before.replace("name: ns-50\n", "name: ns-50-edited\n  labels: {a: b}\n");
        let (got, want, recut) = after_edit(&before, &after);
        assert_eq!(got, want);
        assert_eq!(want.len(), 100);
        // The edited document and the one before it (whose cut is decided on the first
        // line of the edited one) are cut again, not the other 98.
        assert!(recut <= 2, "{recut} chunks cut again");
        // An edit at the very start and at the very end.
        let (got, want, recut) = after_edit(&before, &format!("# new\n{before}"));
        assert_eq!((got, recut <= 2), (want, true));
        let (got, want, recut) = after_edit(&before, &format!("{before}---\na: 1\n"));
        assert_eq!((got, recut <= 3), (want, true));
    }

    fn get<'n>(node: &'n Node, key: &str) -> &'n Node {
        match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.value == Value::Str(key.into()))
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no key {key}")),
            other => panic!("not a mapping: {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based_line_and_column() {
        let inp = input("# c\na: 1\nb:\n  c: [x, \"80\"]\n");
        let (docs, diags) = parse(&inp, &Limits::default());
        assert!(diags.is_empty());
        assert_eq!(docs.len(), 1);
        let root = &docs[0].root;
        assert_eq!((root.line, root.column), (2, 1));
        let b = get(root, "b");
        let c = get(b, "c");
        assert_eq!((c.line, c.column), (4, 6));
        let Value::Seq(items) = &c.value else {
            panic!("seq")
        };
        assert_eq!((items[1].line, items[1].column), (4, 10));
        assert_eq!(items[1].value, Value::Str("80".into()));
        // Keys keep their own positions.
        let Value::Map(entries) = &b.value else {
            panic!()
        };
        assert_eq!((entries[0].0.line, entries[0].0.column), (4, 3));
    }

    #[test]
    fn multi_document_stream_skips_empty_and_comment_only_documents() {
        let inp = input("a: 1\n---\n# only a comment\n---\n---\nb: 2\n...\n---\nc: 3\n");
        let (docs, diags) = parse(&inp, &Limits::default());
        assert!(diags.is_empty(), "{diags:?}");
        let lines: Vec<usize> = docs.iter().map(|d| d.root.line()).collect();
        assert_eq!(lines, vec![1, 6, 9]);
    }

    #[test]
    fn malformed_document_is_reported_and_the_others_are_kept() {
        let inp = input("a: 1\n---\nb: [1, 2\nc: 3\n---\nd: 4\n");
        let (docs, diags) = parse(&inp, &Limits::default());
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].root.line, 1);
        assert_eq!(docs[1].root.line, 6);
        assert_eq!(diags.len(), 1);
        let d = &diags[0];
        assert_eq!(d.severity, Severity::Error);
        assert_eq!(d.file.as_deref(), Some(Path::new("t.yaml")));
        assert_eq!(d.line, 4);
        assert!(d.column > 0);
        assert!(d.message.starts_with("malformed YAML"), "{}", d.message);
    }

    #[test]
    fn duplicate_keys_are_an_error_at_the_second_key() {
        let inp = input("---\nmetadata:\n  name: a\n  labels: {}\n  name: b\n");
        let (docs, diags) = parse(&inp, &Limits::default());
        assert!(docs.is_empty());
        assert_eq!(diags.len(), 1);
        assert_eq!((diags[0].line, diags[0].column), (5, 3));
        assert!(
            diags[0].message.contains("duplicate key \"name\""),
            "{}",
            diags[0].message
        );
    }

    #[test]
    fn directives_and_leading_comments_stay_with_their_document() {
        let inp = input("%YAML 1.2\n# header\n---\na: 1\n");
        let (docs, diags) = parse(&inp, &Limits::default());
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].root.line, 4);
    }

    #[test]
    fn directives_after_a_document_end_go_with_the_next_document() {
        let inp = input("a: 1\n...\n%YAML 1.2\n# next\n---\nb: 2\n");
        let (docs, diags) = parse(&inp, &Limits::default());
        assert!(diags.is_empty(), "{diags:?}");
        let lines: Vec<usize> = docs.iter().map(|d| d.root.line()).collect();
        assert_eq!(lines, vec![1, 6]);
    }

    #[test]
    fn block_scalars_keep_their_comment_like_lines() {
        let inp = input("a: |\n  x\n  # not a comment\n---\nb: 2\n");
        let (docs, diags) = parse(&inp, &Limits::default());
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(
            get(&docs[0].root, "a").value,
            Value::Str("x\n# not a comment\n".into())
        );
        assert_eq!(docs[1].root.line, 5);
    }

    #[test]
    fn tags_are_looked_through_and_keep_the_outer_position() {
        let inp = input("a: !!str 80\nb: !custom x\nc: !!int nope\n");
        let (docs, _) = parse(&inp, &Limits::default());
        let root = &docs[0].root;
        assert_eq!(get(root, "a").value, Value::Str("80".into()));
        let b = get(root, "b");
        assert_eq!(b.value, Value::Str("x".into()));
        assert_eq!((b.line, b.column), (2, 4));
        assert!(matches!(get(root, "c").value, Value::Invalid(_)));
    }

    #[test]
    fn document_start_with_content_on_the_marker_line() {
        let inp = input("--- {a: 1}\n--- # comment\nb: 2\n");
        let (docs, diags) = parse(&inp, &Limits::default());
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].root.line, docs[0].root.column), (1, 5));
        assert_eq!(docs[1].root.line, 3);
    }

    #[test]
    fn documents_come_one_at_a_time_with_errors_in_place() {
        let inp = input("a: 1\n---\nb: [1\n---\n# none\n---\nc: 3\n...\nd: 4\n");
        let got: Vec<Result<usize, usize>> = documents(&inp, &Limits::default())
            .map(|d| d.map(|d| d.root.line()).map_err(|e| e.line))
            .collect();
        assert_eq!(got, vec![Ok(1), Err(4), Ok(7), Ok(9)]);
        let (docs, diags) = parse(&inp, &Limits::default());
        let lines: Vec<usize> = docs.iter().map(|d| d.root.line()).collect();
        assert_eq!(lines, vec![1, 7, 9]);
        assert_eq!(diags.len(), 1);
    }

    #[test]
    fn crlf_line_endings() {
        let inp = input("a: 1\r\n---\r\nb: 2\r\n");
        let (docs, diags) = parse(&inp, &Limits::default());
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].root.line, 3);
    }
}
