//! The decode cache: what each document of the last load decoded to, so that a reload
//! after a one-object edit of a big file decodes that one document, not all of them.
//! netpold keeps one across reloads; `netpolctl` reads cold.
//!
//! A YAML input is cut into its documents as `load` cuts it (where the last load cut the
//! same file, only its edited middle is cut again: `load::chunks_after_edit`); a kubectl
//! JSON `List` into the List without its items and each item (`load::json_list`); any
//! other JSON input is one piece. A piece's result depends only on its role (policies or inventory), its
//! kind (YAML documents, a whole file, a List without its items, a List item: the same
//! bytes can be a whole file in one load and an item in the next), its file's path, its
//! bytes, the line it starts at, its index in a List and the limits.
//! The cache keeps each input's text (shared, not copied) and finds a piece's earlier
//! result by its bytes: where the piece lies in the text's unchanged start or end
//! (compared with the last load's text, so an edit costs a comparison of the file, not
//! a hash of it), the entry cut from the same bytes there; elsewhere by the SHA-256 of
//! its bytes, so that a crafted input cannot collide with another and be taken for it.
//! A result is reused where its piece starts at the same line (with diagnostics, which
//! may name `items[i]`, also at the same index); an inventory piece without
//! diagnostics also where it moved (lines added or removed above it), its positions
//! shifted. A piece with diagnostics (whose messages may name lines) or of policies
//! (whose field spans would move too) is decoded again when it moves. A List whose
//! parts do not stand alone is read whole, and not kept in parts.
//!
//! The entries a load did not reuse are kept, by their SHA-256, for a few more loads
//! (spares): a file read empty or half-written, then whole again, finds its documents
//! there instead of decoding them all. Spares are held to what the cache held before
//! the load beyond this load's pieces (plus a few), so that a rewrite of every document
//! does not keep two caches' worth.
//!
//! What goes into the model is cloned from the lent results, but an endpoint's
//! addresses, ports and labels and a policy's rules and spans are reference-counted:
//! a clone shares them, so the cache and the model netpold holds keep one copy.
//!
//! Must not change any result: a cached load gives the same model, spans and
//! diagnostics, in the same order, as an uncached one (tested against it).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::inventory::Decoded;
use super::{
    cut_fails, decode_list_part, decode_piece, merge, on_threads, roles, Decoded1, Found, ListPart,
    Role,
};
use crate::diag::Diagnostic;
use crate::load::json_list::{self, ListCut};
use crate::load::{self, Input, Limits};
use crate::model::Source;

/// The SHA-256 of a piece's bytes.
type Key = [u8; 32];

/// What the documents of the last load decoded to, for the next one
/// ([`crate::load_model_cached`]). Holds about as much as the decoded objects, and
/// shares the texts they were decoded from; empty until the first load.
#[derive(Default)]
pub struct DecodeCache {
    /// Each input's pieces, in the order of the last load's inputs.
    inputs: Vec<Pieces>,
    /// Where each input (role and path) is in `inputs`.
    index: HashMap<(Role, PathBuf), usize>,
    /// The limits the results were decoded within: other limits, other results.
    limits: Option<Limits>,
    /// Entries the last loads left, newest first (see the module's doc).
    spares: Vec<Spare>,
    last: CacheStats,
}

/// How many loads an entry is kept for after the load that last used it.
const SPARE_LOADS: u8 = 3;
/// Spare entries kept beyond what the cache held before a load.
const SPARE_SLACK: usize = 64;

/// Entries of one input (role and path) a load did not reuse, all with their keys.
struct Spare {
    role: Role,
    path: PathBuf,
    /// Loads since these entries were last used.
    age: u8,
    /// Without a text: found by key only.
    pieces: Pieces,
}

/// How the last cached load went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Pieces (documents; a JSON file is one) whose earlier result was reused.
    pub reused: usize,
    /// Pieces decoded.
    pub decoded: usize,
    /// YAML documents (or runs of them) cut from their file again: all of a file the
    /// last load did not cut, only around the edit of one it did.
    pub recut: usize,
}

impl DecodeCache {
    /// How the last load through this cache went.
    pub fn last(&self) -> CacheStats {
        self.last
    }

    /// The entries held: this load's and the spares.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let count = |p: &Pieces| p.entries.iter().flatten().count();
        (
            self.inputs.iter().map(count).sum(),
            self.spares.iter().map(|s| count(&s.pieces)).sum(),
        )
    }
}

impl std::fmt::Debug for DecodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeCache")
            .field("inputs", &self.inputs.len())
            .field("spares", &self.spares.len())
            .field("last", &self.last)
            .finish()
    }
}

/// One input's pieces, in order, and the text they were cut from. Entries are moved
/// out by the next load that reuses them (no copy of the objects, nor a free of the
/// old ones).
#[derive(Default)]
struct Pieces {
    /// The input's text (shared with the `Input` it was read into).
    text: Arc<String>,
    /// Boxed: an entry moves from load to load, and a box moves as a pointer.
    entries: Vec<Option<Box<Entry>>>,
    /// `(start, end, entry)` of each entry cut from `text`, in text order.
    spans: Vec<(usize, usize, usize)>,
    /// Where the last [`Pieces::at_span`] stopped in `spans`.
    cursor: usize,
    /// Built on the first lookup by key: the first entry with each key, and for each
    /// entry the next with its key (a document written twice). foldhash, seeded per
    /// process, not SipHash: a key is already a digest.
    first: Option<foldhash::HashMap<Key, usize>>,
    next: Vec<Option<usize>>,
    /// Not kept: the input went past its documents limit, and was read whole.
    whole: Option<Decoded1>,
}

/// What a piece is, which its result depends on beside its bytes: the same bytes are a
/// whole JSON file in one load and an item of a List in another.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Some YAML documents (`load::chunks`).
    Documents,
    /// A whole file, read in one piece.
    Whole,
    /// A cut List without its items.
    Wrapper,
    /// An item of a cut List.
    Item,
}

/// One piece's result, its kind, and the line (and List index) it was decoded at.
struct Entry {
    kind: Kind,
    /// The SHA-256 of its bytes, once computed (always for a cut List's wrapper, which
    /// is not a part of the text).
    key: Option<Key>,
    line_offset: usize,
    index: usize,
    decoded: Decoded1,
}

impl Pieces {
    fn push(&mut self, span: Option<(usize, usize)>, entry: Box<Entry>) {
        if let Some((start, end)) = span {
            self.spans.push((start, end, self.entries.len()));
        }
        self.entries.push(Some(entry));
    }

    /// Where the last load cut `text` into YAML documents: each piece's start and line,
    /// when its pieces were all documents (not a JSON file or List, not read whole) and
    /// cover the text from its first piece to its end.
    fn cuts(&self) -> Option<Vec<(usize, usize)>> {
        if self.whole.is_some() || self.spans.len() != self.entries.len() {
            return None;
        }
        let mut cuts = Vec::with_capacity(self.spans.len());
        let mut end = self.spans.first()?.0;
        for &(s, e, i) in &self.spans {
            let entry = self.entries[i].as_ref()?;
            if entry.kind != Kind::Documents || s != end {
                return None;
            }
            cuts.push((s, entry.line_offset));
            end = e;
        }
        (end == self.text.len()).then_some(cuts)
    }

    /// The entry cut from exactly `start..end` of `text`. A load asks in text order, so
    /// a cursor walks `spans` once; asked out of order, it searches.
    fn at_span(&mut self, start: usize, end: usize) -> Option<usize> {
        let spans = &self.spans;
        let at = if self.cursor > 0 && spans[self.cursor - 1].0 >= start {
            spans.partition_point(|&(s, _, _)| s < start)
        } else {
            let mut at = self.cursor;
            while spans.get(at).is_some_and(|&(s, _, _)| s < start) {
                at += 1;
            }
            at
        };
        self.cursor = at;
        self.spans
            .get(at)
            .filter(|&&(s, e, _)| (s, e) == (start, end))
            .map(|&(_, _, i)| i)
    }

    /// The keys of the entries not taken yet, hashed where not known, on `threads`.
    fn index_keys(&mut self, threads: usize) {
        if self.first.is_some() {
            return;
        }
        let mut spans = vec![None; self.entries.len()];
        for &(s, e, i) in &self.spans {
            spans[i] = Some((s, e));
        }
        let todo: Vec<(usize, &str)> = (0..self.entries.len())
            .filter(|&i| self.entries[i].as_ref().is_some_and(|e| e.key.is_none()))
            .filter_map(|i| spans[i].map(|(s, e)| (i, &self.text[s..e])))
            .collect();
        for (i, key) in todo.iter().map(|&(i, _)| i).zip(hash_all(&todo, threads)) {
            if let Some(e) = &mut self.entries[i] {
                e.key = Some(key);
            }
        }
        let mut first = foldhash::HashMap::default();
        self.next = vec![None; self.entries.len()];
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(key) = e.as_ref().and_then(|e| e.key) {
                // At the chain's head: lookups take the last that fits.
                self.next[i] = first.insert(key, i);
            }
        }
        self.first = Some(first);
    }

    /// Moves out entry `i` if it may stand for a piece of `kind` and `role` starting
    /// after `line_offset` lines at `index` in a List, its positions shifted there.
    fn take_at(
        &mut self,
        i: usize,
        (role, kind): (Role, Kind),
        line_offset: usize,
        index: usize,
    ) -> Option<Box<Entry>> {
        let e = self.entries[i].as_ref()?;
        if e.kind != kind || (!fits_at(e, line_offset, index) && !movable(e, role)) {
            return None;
        }
        let mut e = self.entries[i].take()?;
        let by = line_offset as i64 - e.line_offset as i64;
        if by != 0 {
            for d in &mut e.decoded.inventory {
                shift(d, by);
            }
        }
        e.line_offset = line_offset;
        e.index = index;
        Some(e)
    }

    /// Moves out an entry of `key` (see [`Pieces::take_at`]); [`Pieces::index_keys`]
    /// first.
    fn take_key(
        &mut self,
        (role, kind): (Role, Kind),
        key: &Key,
        line_offset: usize,
        index: usize,
    ) -> Option<Box<Entry>> {
        let first = self.first.as_ref()?;
        let find = |fits: &dyn Fn(&Entry) -> bool| {
            let mut at = first.get(key).copied();
            while let Some(i) = at {
                if self.entries[i].as_deref().is_some_and(fits) {
                    return Some(i);
                }
                at = self.next[i];
            }
            None
        };
        let i = find(&|e| e.kind == kind && fits_at(e, line_offset, index))
            .or_else(|| find(&|e| e.kind == kind && movable(e, role)))?;
        self.take_at(i, (role, kind), line_offset, index)
    }
}

/// Whether an entry stands for a piece at `line_offset` and `index` as it is: at the
/// same line, and (with diagnostics, which may name `items[i]`) at the same index.
fn fits_at(e: &Entry, line_offset: usize, index: usize) -> bool {
    e.line_offset == line_offset && (e.index == index || e.decoded.diags.is_empty())
}

/// Whether an entry may move: only a clean inventory piece (see the module's doc).
fn movable(e: &Entry, role: Role) -> bool {
    role == Role::Inventory && e.decoded.diags.is_empty()
}

/// The SHA-256 of each text, on `threads` threads.
fn hash_all(texts: &[(usize, &str)], threads: usize) -> Vec<Key> {
    if texts.len() < 256 {
        return texts
            .iter()
            .map(|(_, t)| Sha256::digest(t.as_bytes()).into())
            .collect();
    }
    on_threads(
        texts.chunks(256).collect(),
        threads,
        |some: &[(usize, &str)]| {
            some.iter()
                .map(|(_, t)| Sha256::digest(t.as_bytes()).into())
                .collect::<Vec<Key>>()
        },
    )
    .concat()
}

/// How many bytes `a` and `b` have in common at their starts.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    // Block by block (memcmp), then byte by byte in the first block that differs.
    const BLOCK: usize = 4096;
    let n = a.len().min(b.len());
    let mut at = 0;
    while at + BLOCK <= n && a[at..at + BLOCK] == b[at..at + BLOCK] {
        at += BLOCK;
    }
    at + a[at..n]
        .iter()
        .zip(&b[at..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// How many bytes `a` and `b` have in common at their ends.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 4096;
    let n = a.len().min(b.len());
    let (la, lb) = (a.len(), b.len());
    let mut k = 0;
    while k + BLOCK <= n && a[la - k - BLOCK..la - k] == b[lb - k - BLOCK..lb - k] {
        k += BLOCK;
    }
    k + a[..la - k]
        .iter()
        .rev()
        .zip(b[..lb - k].iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

/// One piece of one input: a YAML chunk, a part of a cut JSON List, or a whole JSON
/// file.
struct Piece<'a> {
    input: usize,
    chunk: Option<load::Chunk<'a>>,
    list: Option<ListPart<'a>>,
    /// Its bytes.
    text: &'a str,
    /// Where they are in the input's text; `None` for a cut List's wrapper.
    span: Option<(usize, usize)>,
}

impl Piece<'_> {
    fn kind(&self) -> Kind {
        match (self.chunk, self.list) {
            (Some(_), _) => Kind::Documents,
            (_, Some(ListPart::Wrapper(_))) => Kind::Wrapper,
            (_, Some(ListPart::Items(_))) => Kind::Item,
            (None, None) => Kind::Whole,
        }
    }

    fn line_offset(&self) -> usize {
        match (self.chunk, self.list) {
            (Some(c), _) => c.line_offset,
            (_, Some(ListPart::Items([item]))) => item.line_offset,
            _ => 0,
        }
    }

    fn index(&self) -> usize {
        match self.list {
            Some(ListPart::Items([item])) => item.index,
            _ => 0,
        }
    }
}

/// Where `part` is in `whole`, of which it is a subslice.
fn span_in(whole: &str, part: &str) -> (usize, usize) {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    debug_assert!(start + part.len() <= whole.len());
    (start, start + part.len())
}

/// [`super::decode_inputs`] through `cache`: the same objects and diagnostics, in the
/// same order, with only the pieces not in the cache decoded (on up to `threads`
/// threads). The cache then holds this load's pieces only, and lends them to the
/// result.
pub(super) fn decode_inputs_cached<'c>(
    policies: &[Input],
    inventory: &[Input],
    limits: &Limits,
    threads: usize,
    cache: &'c mut DecodeCache,
) -> (Found<'c>, Vec<Diagnostic>) {
    let inputs = roles(policies, inventory);
    let files: Vec<Arc<Path>> = inputs.iter().map(|(_, i)| Arc::from(&*i.path)).collect();
    // A List's items are kept as documents are, so no more of them than the documents
    // limit allows (a List of millions of `{}` would otherwise cost an entry each).
    let cuts: Vec<Option<ListCut<'_>>> = inputs
        .iter()
        .map(|(_, input)| {
            json_list::cut_input(input).filter(|cut| cut.items.len() <= limits.documents)
        })
        .collect();
    let mut old = std::mem::take(&mut cache.inputs);
    let old_index = std::mem::take(&mut cache.index);
    let mut spares = std::mem::take(&mut cache.spares);
    if cache.limits != Some(*limits) {
        old.clear();
        spares.clear();
    }
    let held_before = old
        .iter()
        .chain(spares.iter().map(|s| &s.pieces))
        .map(|p| p.entries.iter().flatten().count())
        .sum::<usize>();
    // Each input's spares, newest first.
    let spare_of: Vec<Vec<usize>> = inputs
        .iter()
        .map(|&(role, input)| {
            (0..spares.len())
                .filter(|&s| spares[s].role == role && spares[s].path == input.path)
                .collect()
        })
        .collect();
    // Each input's earlier pieces, and how much of its text is unchanged at either end.
    let before: Vec<Option<(usize, usize, usize)>> = inputs
        .iter()
        .map(|&(role, input)| {
            let at = old_index
                .get(&(role, input.path.clone()))
                .copied()
                .filter(|&at| at < old.len())?;
            let (a, b) = (old[at].text.as_bytes(), input.text.as_bytes());
            let prefix = common_prefix(a, b);
            Some((at, prefix, common_suffix(&a[prefix..], &b[prefix..])))
        })
        .collect();
    let mut pieces = Vec::new();
    let mut recut = 0;
    for (n, (_, input)) in inputs.iter().enumerate() {
        let whole = &*input.text;
        if let Some(cut) = &cuts[n] {
            pieces.push(Piece {
                input: n,
                chunk: None,
                list: Some(ListPart::Wrapper(cut)),
                text: &cut.wrapper,
                span: None,
            });
            pieces.extend(cut.items.iter().map(|item| Piece {
                input: n,
                chunk: None,
                list: Some(ListPart::Items(std::slice::from_ref(item))),
                text: item.text,
                span: Some(span_in(whole, item.text)),
            }));
            continue;
        }
        // Cut again only where the text changed, when the last load cut it too.
        let chunks = match before[n].and_then(|(at, prefix, suffix)| {
            let cuts = old[at].cuts()?;
            let earlier = load::EarlierCuts {
                len: old[at].text.len(),
                starts: &cuts,
            };
            load::chunks_after_edit(input, &earlier, prefix, suffix)
        }) {
            Some((chunks, count)) => {
                recut += count;
                Some(chunks)
            }
            None => load::chunks(input).inspect(|c| recut += c.len()),
        };
        match chunks {
            Some(chunks) => pieces.extend(chunks.into_iter().map(|c| Piece {
                input: n,
                chunk: Some(c),
                list: None,
                text: c.text,
                span: Some(span_in(whole, c.text)),
            })),
            None => pieces.push(Piece {
                input: n,
                chunk: None,
                list: None,
                text: whole,
                span: Some((0, whole.len())),
            }),
        }
    }

    // Each piece's earlier result: first those whose bytes are in an unchanged prefix
    // or suffix (compared, not hashed), at the same place there; then the others by
    // the SHA-256 of their bytes.
    let mut results: Vec<Option<Box<Entry>>> = Vec::with_capacity(pieces.len());
    for piece in &pieces {
        let (role, input) = inputs[piece.input];
        let found = before[piece.input]
            .zip(piece.span)
            .and_then(|(b, (start, end))| {
                let (at, prefix, suffix) = b;
                let old_len = old[at].text.len();
                let new_len = input.text.len();
                let i = if end <= prefix {
                    old[at].at_span(start, end)
                } else if start >= new_len - suffix {
                    old[at].at_span(start + old_len - new_len, end + old_len - new_len)
                } else {
                    None
                }?;
                old[at].take_at(i, (role, piece.kind()), piece.line_offset(), piece.index())
            });
        results.push(found);
    }
    // Hashed only where earlier pieces are left to be found, and a wrapper always (it
    // is found by its key only).
    let left: Vec<bool> = (0..inputs.len())
        .map(|n| {
            before[n].is_some_and(|(at, _, _)| old[at].entries.iter().any(Option::is_some))
                || !spare_of[n].is_empty()
        })
        .collect();
    let unkeyed: Vec<(usize, &str)> = (0..pieces.len())
        .filter(|&i| results[i].is_none() && (left[pieces[i].input] || pieces[i].span.is_none()))
        .map(|i| (i, pieces[i].text))
        .collect();
    let mut keys: Vec<Option<Key>> = vec![None; pieces.len()];
    for (&(i, _), key) in unkeyed.iter().zip(hash_all(&unkeyed, threads)) {
        keys[i] = Some(key);
    }
    for &(i, _) in &unkeyed {
        let piece = &pieces[i];
        let Some(key) = keys[i] else { continue };
        let (role, _) = inputs[piece.input];
        let (kind, line, index) = (piece.kind(), piece.line_offset(), piece.index());
        if let Some((at, _, _)) = before[piece.input] {
            old[at].index_keys(threads);
            results[i] = old[at].take_key((role, kind), &key, line, index);
        }
        for &s in &spare_of[piece.input] {
            if results[i].is_some() {
                break;
            }
            spares[s].pieces.index_keys(threads);
            results[i] = spares[s].pieces.take_key((role, kind), &key, line, index);
        }
    }
    let missing: Vec<usize> = (0..pieces.len())
        .filter(|&i| results[i].is_none())
        .collect();
    cache.last = CacheStats {
        reused: pieces.len() - missing.len(),
        decoded: missing.len(),
        recut,
    };
    let decoded = on_threads(missing.clone(), threads, |i| {
        let piece = &pieces[i];
        let (role, input) = inputs[piece.input];
        let mut decoded = match (piece.chunk, piece.list) {
            (_, Some(part)) => decode_list_part(role, &files[piece.input], part, limits),
            (Some(chunk), _) => decode_piece(
                role,
                &files[piece.input],
                load::chunk_documents(input, chunk, limits),
            ),
            (None, None) => decode_piece(role, &files[piece.input], load::documents(input, limits)),
        };
        decoded.shrink_to_fit();
        decoded
    });
    for (i, decoded) in missing.into_iter().zip(decoded) {
        results[i] = Some(Box::new(Entry {
            kind: pieces[i].kind(),
            key: keys[i],
            line_offset: pieces[i].line_offset(),
            index: pieces[i].index(),
            decoded,
        }));
    }
    // What was not reused (the documents edited away) is kept as spares.
    cache.spares = spares_after(
        old,
        &old_index,
        spares,
        held_before.saturating_sub(pieces.len()) + SPARE_SLACK,
        threads,
    );

    let mut per_input = vec![0; inputs.len()];
    for piece in &pieces {
        per_input[piece.input] += 1;
    }
    let mut results = results
        .into_iter()
        .map(|r| r.expect("every piece reused or decoded"))
        .zip(&pieces)
        .peekable();
    for (n, &(role, input)) in inputs.iter().enumerate() {
        let mut mine = Pieces {
            text: Arc::clone(&input.text),
            entries: Vec::with_capacity(per_input[n]),
            spans: Vec::with_capacity(per_input[n]),
            ..Pieces::default()
        };
        while let Some((entry, piece)) = results.next_if(|(_, p)| p.input == n) {
            mine.push(piece.span, entry);
        }
        let seen: usize = mine.entries.iter().flatten().map(|e| e.decoded.seen).sum();
        let parts = || mine.entries.iter().flatten().map(|e| &e.decoded);
        if seen > limits.documents || (cuts[n].is_some() && cut_fails(parts(), limits)) {
            // Past the file's documents limit: read in one piece, which stops there,
            // and not kept, so that the next load stops there too. The same for a List
            // whose parts do not stand alone: the whole reading says why.
            let whole = decode_piece(role, &files[n], load::documents(input, limits));
            mine = Pieces {
                whole: Some(whole),
                ..Pieces::default()
            };
        }
        cache.index.insert((role, input.path.clone()), n);
        cache.inputs.push(mine);
    }
    cache.limits = Some(*limits);

    let cache: &'c DecodeCache = cache;
    let mut found = Found::default();
    let mut diags = Vec::new();
    for input in &cache.inputs {
        let pieces = input
            .whole
            .iter()
            .chain(input.entries.iter().flatten().map(|e| &e.decoded));
        merge(&mut found, &mut diags, pieces.map(Cow::Borrowed));
    }
    (found, diags)
}

/// The spares after a load: the entries of `old` it left (hashed now where they were
/// not), then the older spares it left, one load older; those past [`SPARE_LOADS`]
/// dropped, and the oldest beyond `budget` entries.
fn spares_after(
    mut old: Vec<Pieces>,
    old_index: &HashMap<(Role, PathBuf), usize>,
    older: Vec<Spare>,
    budget: usize,
    threads: usize,
) -> Vec<Spare> {
    let mut spares = Vec::new();
    let mut inputs: Vec<(&(Role, PathBuf), usize)> =
        old_index.iter().map(|(k, &at)| (k, at)).collect();
    inputs.sort_unstable_by_key(|&(_, at)| at);
    for ((role, path), at) in inputs {
        let Some(pieces) = old.get_mut(at) else {
            continue;
        };
        if pieces.entries.iter().all(Option::is_none) {
            continue;
        }
        pieces.index_keys(threads);
        let entries = std::mem::take(&mut pieces.entries)
            .into_iter()
            .filter(|e| e.as_ref().is_some_and(|e| e.key.is_some()))
            .collect();
        spares.push(Spare {
            role: *role,
            path: path.clone(),
            age: 0,
            pieces: Pieces {
                entries,
                ..Pieces::default()
            },
        });
    }
    drop(old);
    spares.extend(older.into_iter().filter_map(|mut s| {
        s.age += 1;
        s.pieces.entries.retain(Option::is_some);
        s.pieces.first = None;
        (s.age < SPARE_LOADS && !s.pieces.entries.is_empty()).then_some(s)
    }));
    let mut room = budget;
    for s in &mut spares {
        let keep = s.pieces.entries.len().min(room);
        s.pieces.entries.truncate(keep);
        room -= keep;
    }
    spares.retain(|s| !s.pieces.entries.is_empty());
    spares
}

/// Moves every position of an inventory object by `by` lines.
fn shift(d: &mut Decoded, by: i64) {
    let source = |s: &mut Source| {
        if s.line > 0 {
            s.line = (s.line as i64 + by) as usize;
        }
    };
    match d {
        Decoded::Namespace { namespace, .. } => source(&mut namespace.source),
        Decoded::Endpoint { endpoint, ips, .. } => {
            source(&mut endpoint.source);
            for ip in ips {
                source(&mut ip.source);
            }
        }
        Decoded::Skipped(s) => source(&mut s.source),
        Decoded::Node(n) => source(&mut n.source),
        Decoded::Ignored(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::piece_tests::{inventory, POLICY};
    use super::super::testutil::inputs;
    use super::super::{decode_inputs_on, finish, PIECE_BYTES};
    use super::*;

    /// A load's whole outcome, positions included, as text.
    fn outcome(found: Found, diags: Vec<Diagnostic>, p: &[Input], i: &[Input]) -> String {
        format!(
            "{:?}",
            finish(found, diags, p, i).map(|l| (l.model, l.spans, l.warnings))
        )
    }

    /// Loads the files cold and through `cache`; asserts both give the same and returns
    /// the cache's stats.
    fn same(
        cache: &mut DecodeCache,
        policies: &[(&str, &str)],
        inventory: &[(&str, &str)],
        limits: &Limits,
    ) -> CacheStats {
        let (p, i) = (inputs(policies), inputs(inventory));
        let (found, diags) = decode_inputs_on(&p, &i, limits, 1, PIECE_BYTES);
        let cold = outcome(found, diags, &p, &i);
        // Through this cache on several threads, and through a new one on one.
        let (found, diags) = decode_inputs_cached(&p, &i, limits, 3, cache);
        let cached = outcome(found, diags, &p, &i);
        assert!(cached == cold, "{}", first_difference(&cached, &cold));
        let mut new = DecodeCache::default();
        let (found, diags) = decode_inputs_cached(&p, &i, limits, 1, &mut new);
        let fresh = outcome(found, diags, &p, &i);
        assert!(fresh == cold, "{}", first_difference(&fresh, &cold));
        cache.last()
    }

    fn first_difference(a: &str, b: &str) -> String {
        let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
        let from = at.saturating_sub(200);
        format!(
            "cached …{}…\\ncold   …{}…",
            &a[from..(at + 200).min(a.len())],
            &b[from..(at + 200).min(b.len())]
        )
    }

    const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-1}\n";

    #[test]
    fn a_span_is_found_asked_in_order_or_not() {
        let mut p = Pieces {
            spans: vec![(0, 5, 0), (5, 9, 1), (9, 20, 2), (20, 21, 3)],
            ..Pieces::default()
        };
        let asks = [
            ((0, 5), Some(0)),
            ((5, 9), Some(1)),
            ((9, 19), None),
            ((20, 21), Some(3)),
            // Out of order: behind the cursor.
            ((9, 20), Some(2)),
            ((0, 5), Some(0)),
            ((1, 5), None),
            ((21, 30), None),
            ((5, 9), Some(1)),
        ];
        for ((start, end), want) in asks {
            assert_eq!(p.at_span(start, end), want, "{start}..{end}");
        }
    }

    #[test]
    fn a_reload_decodes_only_what_changed_and_gives_what_a_cold_load_gives() {
        let limits = Limits::default();
        let mut cache = DecodeCache::default();
        let base = inventory(1000);
        let pieces = base.matches("---\n").count() + 2;
        let load = |cache: &mut DecodeCache, inv: &str| {
            same(
                cache,
                &[("p.yaml", POLICY)],
                &[("a.yaml", inv), ("b.yaml", NAMESPACE)],
                &limits,
            )
        };
        let first = load(&mut cache, &base);
        assert_eq!((first.reused, first.decoded), (0, pieces));
        // Every document of every file was cut from its file: there was no last load.
        assert_eq!(first.recut, pieces);
        let again = load(&mut cache, &base);
        assert_eq!((again.reused, again.decoded), (pieces, 0));
        // The same bytes: nothing is cut again.
        assert_eq!(again.recut, 0);

        // One address changed, no line moved: that document alone, and cut again only
        // around it (itself and the one whose end is decided on its first line).
        let moved_ip = base.replacen("ips: [198.18.0.41]", "ips: [198.18.9.41]", 1);
        assert_ne!(moved_ip, base);
        let stats = load(&mut cache, &moved_ip);
        assert_eq!(stats.decoded, 1);
        assert!(stats.recut <= 4, "{stats:?}");

        // A line added near the top: every document below moves. Those without
        // diagnostics are shifted, the two with some (a YAML error and an unknown
        // field, both below) are decoded again, with their new lines.
        let grown = moved_ip.replacen("name: ep-10\n", "name: ep-10\n  annotations: {a: b}\n", 1);
        let stats = load(&mut cache, &grown);
        assert_eq!(stats.decoded, 3);
        assert!(stats.recut <= 4, "{stats:?}");
        // A document removed: only the two with diagnostics again.
        let cut = grown.replacen(
            "---\napiVersion: netpol/v1\nkind: Endpoint\nmetadata:\n  namespace: ns-6\n  \
             name: ep-20\n  labels: {app: a7}\nips: [198.18.0.21]\n",
            "",
            1,
        );
        assert_ne!(cut, grown);
        assert_eq!(load(&mut cache, &cut).decoded, 2);
        // A document copied (same bytes twice, one of them a duplicate endpoint), and a
        // fault fixed.
        let doc = "---\napiVersion: netpol/v1\nkind: Endpoint\nmetadata:\n  namespace: ns-2\n  name: twin\n  labels: {app: a1}\nips: [198.19.7.7]\n";
        let twins = format!("{doc}{}{doc}", cut.replacen("bogus: 1\n", "", 1));
        load(&mut cache, &twins);
        assert_eq!(load(&mut cache, &twins).decoded, 0);

        // A policy moved down by a line: decoded again (its spans move too).
        let stats = same(
            &mut cache,
            &[("p.yaml", &format!("# a comment\n{POLICY}"))],
            &[("a.yaml", &twins), ("b.yaml", NAMESPACE)],
            &limits,
        );
        assert_eq!(stats.decoded, 1);

        // The same bytes under another path are another file's.
        let stats = same(
            &mut cache,
            &[("p.yaml", &format!("# a comment\n{POLICY}"))],
            &[("c.yaml", &twins), ("b.yaml", NAMESPACE)],
            &limits,
        );
        assert_eq!(stats.reused, 2);
    }

    /// A file read empty, cut short or gone, then whole again, finds its documents
    /// among the spares; spares stay few after edits, and within what the cache held
    /// after a rewrite of every document.
    #[test]
    fn a_file_read_cut_short_then_whole_is_not_decoded_again() {
        let limits = Limits::default();
        let mut cache = DecodeCache::default();
        let base = inventory(1000);
        let docs = base.matches("---\n").count();
        let load = |cache: &mut DecodeCache, inv: Option<&str>| {
            let mut files = vec![("b.yaml", NAMESPACE)];
            files.extend(inv.map(|inv| ("a.yaml", inv)));
            same(cache, &[("p.yaml", POLICY)], &files, &limits)
        };
        let whole = |cache: &mut DecodeCache| load(cache, Some(&base)).decoded;
        let doc_at = |n: usize| base.match_indices("---\n").nth(n).unwrap().0;
        assert_eq!(whole(&mut cache), docs + 2);
        assert_eq!(cache.held(), (docs + 2, 0));

        load(&mut cache, Some(""));
        assert_eq!(whole(&mut cache), 0);
        load(&mut cache, None);
        assert_eq!(whole(&mut cache), 0);
        // Cut at a document's start, then in the middle of one.
        load(&mut cache, Some(&base[..doc_at(docs / 2)]));
        assert_eq!(whole(&mut cache), 0);
        assert_eq!(
            load(&mut cache, Some(&base[..doc_at(docs / 2) + 30])).decoded,
            1
        );
        assert_eq!(whole(&mut cache), 0);
        // Written in place: empty, then a third, two thirds, all.
        load(&mut cache, Some(""));
        load(&mut cache, Some(&base[..doc_at(docs / 3) + 50]));
        load(&mut cache, Some(&base[..doc_at(2 * docs / 3) + 20]));
        assert_eq!(whole(&mut cache), 0);

        // One-address edits: only the few documents edited away are kept.
        for n in 0..6 {
            let ip = format!("ips: [198.18.0.{}]", 11 + n);
            let edited = base.replacen(&ip, "ips: [198.19.9.9]", 1);
            assert_ne!(edited, base);
            assert_eq!(load(&mut cache, Some(&edited)).decoded, 1);
        }
        // Each edit leaves two: the document edited away, and the one it edits back
        // (taken again by the next edit).
        assert_eq!(cache.held(), (docs + 2, 1 + SPARE_LOADS as usize));
        // Every endpoint rewritten: the old ones are not all kept.
        let before = cache.held().1;
        let rewritten = base.replace("  labels: {", "  labels: {tier: t, ");
        assert_eq!(load(&mut cache, Some(&rewritten)).decoded, docs - 2);
        let (now, spare) = cache.held();
        assert_eq!(now, docs + 2);
        assert!(spare <= before + SPARE_SLACK, "{spare} spare");
    }

    /// A byte that differs at the very end or the very start of the text (the last
    /// byte of the last document, the first of the first) is not taken for unchanged.
    #[test]
    fn an_edit_of_the_first_or_last_byte_is_seen() {
        let mut cache = DecodeCache::default();
        let base = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-1}\n---\n\
                    apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-a";
        // (reused, decoded): the policy and the documents whose bytes are the same.
        for (text, want) in [
            (base.to_string(), (0, 3)),
            (base.replace("ns-a", "ns-b"), (2, 1)),
            // The first document's first byte; the last is back as it was (a spare).
            (base.replacen('a', "b", 1), (2, 1)),
            (base.replacen('a', "c", 1), (2, 1)),
            (base.to_string(), (3, 0)),
        ] {
            let stats = same(
                &mut cache,
                &[("p.yaml", POLICY)],
                &[("a.yaml", &text)],
                &Limits::default(),
            );
            assert_eq!((stats.reused, stats.decoded), want);
        }
    }

    proptest! {
        /// The unchanged start and end of two texts, block by block, are what a byte by
        /// byte comparison finds, across block boundaries.
        #[test]
        fn common_ends_are_found(
            common in prop::collection::vec(any::<u8>(), 0..9000),
            a in prop::collection::vec(0..3u8, 0..20),
            b in prop::collection::vec(0..3u8, 0..20),
            at in 0..9000usize,
        ) {
            let at = at.min(common.len());
            let with = |x: &[u8]| [&common[..at], x, &common[at..]].concat();
            let (a, b) = (with(&a), with(&b));
            let naive = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            prop_assert_eq!(common_prefix(&a, &b), naive);
            let naive = a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count();
            prop_assert_eq!(common_suffix(&a, &b), naive);
        }
    }

    #[test]
    fn json_files_are_one_piece() {
        let limits = Limits::default();
        let mut cache = DecodeCache::default();
        let json = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-1"}},
            {"apiVersion": "netpol/v1", "kind": "Endpoint",
             "metadata": {"namespace": "ns-1", "name": "e"}, "ips": ["198.18.0.1"]}]}"#;
        let files = [("a.json", json), ("b.yaml", NAMESPACE)];
        assert_eq!(
            same(&mut cache, &[("p.yaml", POLICY)], &files, &limits).decoded,
            3
        );
        assert_eq!(
            same(&mut cache, &[("p.yaml", POLICY)], &files, &limits).reused,
            3
        );
        let edited = json.replace("198.18.0.1", "198.18.0.2");
        let files = [("a.json", edited.as_str()), ("b.yaml", NAMESPACE)];
        assert_eq!(
            same(&mut cache, &[("p.yaml", POLICY)], &files, &limits).decoded,
            1
        );
    }

    #[test]
    fn limits_stop_a_cached_load_where_they_stop_a_cold_one() {
        let mut cache = DecodeCache::default();
        let text = inventory(300);
        let files = [("a.yaml", text.as_str()), ("b.yaml", NAMESPACE)];
        same(
            &mut cache,
            &[("p.yaml", POLICY)],
            &files,
            &Limits::default(),
        );
        // Other limits: nothing reused.
        let few = Limits {
            documents: 123,
            ..Limits::default()
        };
        let stats = same(&mut cache, &[("p.yaml", POLICY)], &files, &few);
        assert_eq!(stats.reused, 0);
        same(&mut cache, &[("p.yaml", POLICY)], &files, &few);
        // A per-document limit in the middle of the file drops what follows it.
        let small = Limits {
            scalar_bytes: 100,
            ..Limits::default()
        };
        let big = text.replacen(
            "name: ep-120\n",
            &format!("name: ep-120\n  annotations: {{a: {}}}\n", "x".repeat(200)),
            1,
        );
        let files = [("a.yaml", big.as_str()), ("b.yaml", NAMESPACE)];
        same(&mut cache, &[("p.yaml", POLICY)], &files, &small);
        same(&mut cache, &[("p.yaml", POLICY)], &files, &small);
    }

    /// Documents to build files from: clean ones, ones with a warning or an error, one
    /// that is not YAML, a comment, an explicit end.
    const DOCS: [&str; 8] = [
        "apiVersion: netpol/v1\nkind: Endpoint\nmetadata: {namespace: ns-1, name: a}\nips: [198.18.0.1]\n",
        "apiVersion: netpol/v1\nkind: Endpoint\nmetadata:\n  namespace: ns-1\n  name: b\n  labels: {app: x}\nips: [198.18.0.2, \"2001:db8::2\"]\n",
        "apiVersion: v1\nkind: Pod\nmetadata: {namespace: ns-2, name: c}\nspec: {hostNetwork: true}\nstatus: {podIP: 198.18.0.3}\n",
        "apiVersion: netpol/v1\nkind: Endpoint\nmetadata: {namespace: ns-1, name: d}\nips: [198.18.0.1]\nextra: 1\n",
        "kind: [unclosed\n",
        "# only a comment\n",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-2\n...\n",
        "apiVersion: v1\nkind: Service\nmetadata: {namespace: ns-1, name: s}\n",
    ];

    fn file(docs: &[usize]) -> String {
        docs.iter().map(|&d| format!("---\n{}", DOCS[d])).collect()
    }

    /// Items of kubectl JSON Lists, as `kubectl get … -o json` prints them (one key per
    /// line): clean ones, with a warning or an error, a List in a List, one that is not
    /// an object, broken JSON, a duplicate key, one too deep for a lowered depth limit.
    const ITEMS: [&str; 10] = [
        r#"{"apiVersion": "netpol/v1", "kind": "Endpoint", "metadata": {"namespace": "ns-1", "name": "a"}, "ips": ["198.18.0.1"]}"#,
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "ns-2", "name": "c", "labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]}, "status": {"podIP": "198.18.0.3", "podIPs": [{"ip": "198.18.0.3"}]}}"#,
        r#"{"apiVersion": "netpol/v1", "kind": "Endpoint", "metadata": {"namespace": "ns-1", "name": "d"}, "ips": ["198.18.0.1"], "extra": 1}"#,
        r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-2"}}"#,
        r#"{"apiVersion": "v1", "kind": "List", "items": []}"#,
        r#"{"kind": "Endpoint"}"#,
        r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BROKEN}}"#,
        r#"{"apiVersion": "v1", "kind": "Namespace", "kind": "Namespace"}"#,
        r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "ns-1", "name": "s"}}"#,
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "ns-2", "name": "e"}, "spec": {"a": {"b": {"c": {}}}}}"#,
    ];

    /// A List of `items` printed as kubectl prints it; `wrapper` picks the List's own
    /// fields (0: clean, then faults of its own).
    fn json_list(items: &[usize], wrapper: usize) -> String {
        let pretty = |s: &str| -> String {
            match serde_json::from_str::<serde_json::Value>(s) {
                Ok(v) => serde_json::to_string_pretty(&v).unwrap(),
                // Not JSON (on purpose): printed as is, on one line.
                Err(_) => s.to_string(),
            }
        };
        let items: Vec<String> = items
            .iter()
            .map(|&i| {
                // A duplicate key is lost by serde_json: kept by hand.
                let text = if i == 7 {
                    "{\n  \"kind\": \"Namespace\",\n  \"kind\": \"Namespace\"\n}".to_string()
                } else {
                    pretty(ITEMS[i])
                };
                text.lines()
                    .map(|l| format!("        {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        // Faults that keep the items (a wrong version, an unknown field) and one that
        // drops them all (no version: the List is not an object).
        let head = match wrapper {
            1 => "    \"apiVersion\": \"v2\",\n",
            2 => "    \"apiVersion\": \"v1\",\n    \"bogus\": 1,\n",
            3 => "",
            _ => "    \"apiVersion\": \"v1\",\n",
        };
        format!(
            "{{\n{head}    \"items\": [\n{}\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {{\n        \"resourceVersion\": \"\"\n    }}\n}}\n",
            items.join(",\n")
        )
    }

    /// A kubectl JSON List read cut short (not JSON at all then) or empty, then whole,
    /// finds its items and the List without them among the spares.
    #[test]
    fn a_list_read_cut_short_then_whole_is_not_decoded_again() {
        let mut cache = DecodeCache::default();
        let clean = json_list(&[0, 1, 3, 8], 0);
        let list = |cache: &mut DecodeCache, text: &str| {
            same(
                cache,
                &[("p.yaml", POLICY)],
                &[("a.json", text)],
                &Limits::default(),
            )
        };
        assert_eq!(list(&mut cache, &clean).decoded, 1 + 1 + 4);
        for short in [&clean[..clean.len() / 2], ""] {
            list(&mut cache, short);
            assert_eq!(list(&mut cache, &clean).decoded, 0, "after {short:?}");
        }
    }

    /// A cut List decodes as the List read whole, cold on several threads and through
    /// the cache, including where its parts cannot stand alone.
    #[test]
    fn a_cut_list_loads_as_the_whole_list() {
        let list = |cache: &mut DecodeCache, text: &str, limits: &Limits| {
            same(cache, &[("p.yaml", POLICY)], &[("a.json", text)], limits)
        };
        let mut cache = DecodeCache::default();
        let clean = json_list(&[0, 1, 3, 8], 0);
        let stats = list(&mut cache, &clean, &Limits::default());
        assert_eq!(
            stats.decoded,
            1 + 1 + 4,
            "the policy, the List, its 4 items"
        );
        // One item edited: that item alone.
        let edited = clean.replace("198.18.0.3", "198.18.0.4");
        let stats = list(&mut cache, &edited, &Limits::default());
        assert_eq!((stats.decoded, stats.reused), (1, 5));
        // An item inserted at the top: the clean ones below move and are shifted.
        let grown = json_list(&[3, 0, 1, 3, 8], 0).replace("198.18.0.3", "198.18.0.4");
        let stats = list(&mut cache, &grown, &Limits::default());
        assert_eq!(
            stats.decoded, 2,
            "the new item and the List without its items"
        );
        // An item on one line, a trailing comma: not cut, one piece.
        for text in [
            json_list(&[0, 6, 1], 0),
            clean.replace("\n    ],", ",\n    ],"),
        ] {
            assert!(json_list::cut(&text).is_none());
            list(&mut cache, &text, &Limits::default());
            let stats = list(&mut cache, &text, &Limits::default());
            assert_eq!((stats.reused, stats.decoded), (2, 0));
        }
        // An item that cannot stand alone (a duplicate key): read whole, not kept.
        let text = json_list(&[0, 7, 1], 0);
        assert!(json_list::cut(&text).is_some());
        list(&mut cache, &text, &Limits::default());
        let stats = list(&mut cache, &text, &Limits::default());
        assert_eq!(stats.reused, 1, "the policy only");
        // Limits that hold for each item but not for the List: read whole.
        for limits in [
            Limits {
                nodes: 40,
                ..Limits::default()
            },
            Limits {
                depth: 5,
                ..Limits::default()
            },
        ] {
            let text = json_list(&[1, 1, 9, 1], 0);
            list(&mut DecodeCache::default(), &text, &limits);
        }
        // An `items` array in the List's metadata, cut first: not the List's items.
        let item = |i: usize| {
            let v: serde_json::Value = serde_json::from_str(ITEMS[i]).unwrap();
            let text = serde_json::to_string_pretty(&v).unwrap();
            text.lines()
                .map(|l| format!("            {l}\n"))
                .collect::<String>()
        };
        let text = format!(
            "{{\n    \"apiVersion\": \"v1\",\n    \"metadata\": {{\n        \"items\": [\n{},\n{}        ]\n    }},\n    \"items\": [\n    ],\n    \"kind\": \"List\"\n}}\n",
            item(0).trim_end(),
            item(3)
        );
        assert!(json_list::cut(&text).is_some());
        list(&mut cache, &text, &Limits::default());
        cold_on_threads(&[("a.json", &text)], &Limits::default());
        // Faults of the List's own: those that keep its items, and one that drops them.
        for wrapper in 1..=3 {
            let text = json_list(&[0, 1, 3], wrapper);
            assert!(json_list::cut(&text).is_some());
            list(&mut cache, &text, &Limits::default());
            cold_on_threads(&[("a.json", &text)], &Limits::default());
        }
        // More items than the documents limit: one piece, not an entry per item.
        let limits = Limits {
            documents: 3,
            ..Limits::default()
        };
        let stats = list(&mut DecodeCache::default(), &clean, &limits);
        assert_eq!(stats.decoded, 2, "the policy, the List whole");
    }

    /// A piece is reused only as the same kind of piece: a JSON file with the very bytes
    /// of a List item (a `kind: List` is unwrapped in one, refused in the other) is
    /// decoded again when the file becomes a List holding it, and back.
    #[test]
    fn a_file_is_not_taken_for_a_list_item() {
        let list = json_list(&[4], 0);
        let item = json_list::cut(&list).expect("cut").items[0]
            .text
            .to_string();
        let mut cache = DecodeCache::default();
        for text in [&item, &list, &item] {
            same(
                &mut cache,
                &[("p.yaml", POLICY)],
                &[("a.json", text)],
                &Limits::default(),
            );
        }
    }

    fn cold_on_threads(inventory: &[(&str, &str)], limits: &Limits) {
        let (p, i) = (inputs(&[("p.yaml", POLICY)]), inputs(inventory));
        let (found, diags) = decode_inputs_on(&p, &i, limits, 1, PIECE_BYTES);
        let whole = outcome(found, diags, &p, &i);
        let (found, diags) = decode_inputs_on(&p, &i, limits, 3, 0);
        let cut = outcome(found, diags, &p, &i);
        assert!(cut == whole, "{}", first_difference(&cut, &whole));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_sequence_of_lists_loads_as_whole(
            versions in prop::collection::vec(
                (prop::collection::vec(0..ITEMS.len(), 0..8), 0..4usize, 0..3usize),
                1..5,
            )
        ) {
            let mut cache = DecodeCache::default();
            for (items, wrapper, limit) in versions {
                let text = json_list(&items, wrapper);
                let limits = match limit {
                    0 => Limits::default(),
                    1 => Limits { nodes: 60, ..Limits::default() },
                    _ => Limits { depth: 6, ..Limits::default() },
                };
                let files = [("a.json", text.as_str()), ("b.yaml", NAMESPACE)];
                same(&mut cache, &[("p.yaml", POLICY)], &files, &limits);
                cold_on_threads(&files, &limits);
            }
        }

        #[test]
        fn any_sequence_of_files_loads_as_cold(
            versions in prop::collection::vec(
                (
                    prop::collection::vec(0..DOCS.len(), 0..12),
                    prop::collection::vec(0..DOCS.len(), 0..4),
                    prop::bool::ANY,
                ),
                1..5,
            )
        ) {
            let mut cache = DecodeCache::default();
            for (a, b, bom) in versions {
                let (mut a, b) = (file(&a), file(&b));
                if bom {
                    a.insert(0, '\u{feff}');
                }
                same(&mut cache, &[("p.yaml", POLICY)], &[("a.yaml", &a), ("b.yaml", &b)], &Limits::default());
            }
        }
    }
}
