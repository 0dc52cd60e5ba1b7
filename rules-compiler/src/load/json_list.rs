//! A kubectl JSON `List` cut into its items, so that they can be parsed on several
//! threads and kept one by one in netpold's decode cache, as YAML documents are.
//!
//! The cut is a guess from the layout `kubectl get … -o json` prints (each item's `{`
//! and `}` alone on lines of one indent, inside an `"items": [` line and a `]` line),
//! made safe by checks: every item must parse alone as exactly one value, only a comma
//! and white space may stand between items, and the List without its items must be a
//! clean `kind: List` whose `items` is the array that was cut. A raw line break is
//! never inside a JSON string, so a cut at a line start never splits one. When any
//! check fails (another layout, a syntax error, a limit) the file is read whole, as
//! before: the cut changes speed, never a result. The checks that need parsing are
//! the caller's (`validate`), on [`json::part_value`](super::json::part_value).
//!
//! Must not judge meaning, nor read anything but the text given.

/// A List cut into the List without its items and the items.
#[derive(Debug)]
pub(crate) struct ListCut<'a> {
    /// The text with everything between the items' `[` and the line of their `]`
    /// replaced by as many line breaks: every position in it is the whole text's.
    pub wrapper: String,
    /// Where the items' `[` is in the wrapper (1-based line and column).
    pub open_at: (usize, usize),
    /// The items, in order.
    pub items: Vec<ListItem<'a>>,
}

/// One item of a cut List.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListItem<'a> {
    /// From the start of the line of its `{` to its `}`.
    pub text: &'a str,
    /// Lines before it in the whole text.
    pub line_offset: usize,
    /// Its index in `items`.
    pub index: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `text` (after its byte order mark) cut into a List's items, or `None` when it does
/// not look like a List printed by kubectl with at least one item. Byte searches only
/// (107 MB in a few tens of milliseconds): the parse is the caller's.
pub(crate) fn cut(text: &str) -> Option<ListCut<'_>> {
    let bytes = text.as_bytes();
    let skip_ws = |mut at: usize| {
        while bytes.get(at).copied().is_some_and(is_ws) {
            at += 1;
        }
        at
    };
    let line_start = |at: usize| memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |n| n + 1);
    let line_end = |at: usize| memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |n| at + n);
    let trimmed = |from: usize| text[from..line_end(from)].trim_matches([' ', '\t', '\r']);
    // The top-level object's `{` alone on its line.
    let first = skip_ws(0);
    if trimmed(line_start(first)) != "{" {
        return None;
    }
    // The items' line, `"items": [`: the first such line (the caller checks it is the
    // top-level object's member). Each line is looked at once, however many `"items"`
    // it holds: linear in the text.
    let mut checked_to = 0;
    let key = memchr::memmem::find_iter(bytes, b"\"items\"").find(|&at| {
        if at < checked_to {
            return false;
        }
        checked_to = line_end(at);
        is_items_key(trimmed(line_start(at)))
    })?;
    let open_start = line_start(key);
    let open = key + memchr::memchr(b'[', &bytes[key..])? + 1;
    let outer = text[open_start..].len() - text[open_start..].trim_start_matches(' ').len();
    let open_no = memchr::memchr_iter(b'\n', &bytes[..open_start]).count();
    let open_at = (open_no + 1, text[open_start..open].chars().count());

    let mut items: Vec<ListItem<'_>> = Vec::new();
    // Lines before `counted`, and where the items' `{` are indented.
    let (mut lines, mut counted) = (open_no, open_start);
    let mut inner: Option<(usize, memchr::memmem::Finder<'static>)> = None;
    let mut at = open;
    loop {
        let q = skip_ws(at);
        if bytes.get(q) != Some(&b'{') {
            return None;
        }
        // The item's `{` alone on its line, after the `[` or `,` line, indented by
        // spaces as the first item's.
        let start = line_start(q);
        let indent = q - start;
        if start <= at
            || trimmed(start) != "{"
            || indent <= outer
            || bytes[start..q].iter().any(|&b| b != b' ')
        {
            return None;
        }
        let (expected, finder) = inner.get_or_insert_with(|| {
            let needle = format!("\n{}}}", " ".repeat(indent));
            (
                indent,
                memchr::memmem::Finder::new(needle.as_bytes()).into_owned(),
            )
        });
        if *expected != indent {
            return None;
        }
        // Its `}` at the start of a line at the same indent.
        let close = q + finder.find(&bytes[q..])? + 1 + indent;
        lines += memchr::memchr_iter(b'\n', &bytes[counted..start]).count();
        counted = start;
        items.push(ListItem {
            text: &text[start..=close],
            line_offset: lines,
            index: items.len(),
        });
        // A comma and the next item, or the end of the array: its `]` alone (or with
        // its comma) on a line at the items' key's indent.
        let after = skip_ws(close + 1);
        match bytes.get(after) {
            Some(b',') => at = after + 1,
            Some(b']') => {
                let last = line_start(after);
                if last <= close || after - last != outer || !matches!(trimmed(last), "]" | "],") {
                    return None;
                }
                let breaks = memchr::memchr_iter(b'\n', &bytes[open..last]).count();
                let mut wrapper = String::with_capacity(open + breaks + text.len() - last);
                wrapper.push_str(&text[..open]);
                wrapper.extend(std::iter::repeat_n('\n', breaks));
                wrapper.push_str(&text[last..]);
                return Some(ListCut {
                    wrapper,
                    open_at,
                    items,
                });
            }
            _ => return None,
        }
    }
}

/// [`cut`] of an input that is JSON.
pub(crate) fn cut_input(input: &super::Input) -> Option<ListCut<'_>> {
    let text = input.text.strip_prefix('\u{feff}').unwrap_or(&input.text);
    super::json::is_json(text).then(|| cut(text)).flatten()
}

/// Whether a trimmed line is `"items": [` (spaces around the colon as JSON allows).
fn is_items_key(trimmed: &str) -> bool {
    trimmed
        .strip_prefix("\"items\"")
        .map(|r| r.trim_start_matches([' ', '\t']))
        .and_then(|r| r.strip_prefix(':'))
        .map(|r| r.trim_start_matches([' ', '\t']))
        == Some("[")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n            \"kind\": \"Namespace\",\n            \"metadata\": {\"name\": \"a\"}\n        },\n\n        {\n            \"kind\": \"Namespace\"\n        }\n    ],\n    \"kind\": \"List\"\n}\n";

    #[test]
    fn cuts_kubectl_layout_keeping_positions() {
        let cut = cut(LIST).expect("cut");
        assert_eq!(cut.items.len(), 2);
        assert_eq!(cut.open_at, (3, 14));
        assert!(cut.items[0].text.starts_with("        {\n"));
        assert!(cut.items[0].text.ends_with("        }"));
        assert_eq!((cut.items[0].line_offset, cut.items[1].line_offset), (3, 8));
        assert_eq!(cut.items[1].index, 1);
        // Same lines, same text from the `]` line on.
        assert_eq!(cut.wrapper.lines().count(), LIST.lines().count());
        assert!(cut.wrapper.ends_with("    ],\n    \"kind\": \"List\"\n}\n"));
        assert!(cut.wrapper.contains("\"items\": [\n\n"));
        assert!(!cut.wrapper.contains("Namespace"));
    }

    #[test]
    fn other_layouts_are_not_cut() {
        for text in [
            // One line.
            "{\"kind\": \"List\", \"items\": [{\"kind\": \"Namespace\"}]}",
            // No items.
            "{\n  \"items\": [\n  ],\n  \"kind\": \"List\"\n}\n",
            // An item not alone on its lines.
            "{\n  \"items\": [\n    {\"kind\": \"Namespace\"},\n    {}\n  ]\n}\n",
            // The array not closed where the last item ends.
            "{\n  \"items\": [\n    {\n    }\n    {\n    }\n  ]\n}\n",
            // No `{` first.
            "[\n  {\n  }\n]\n",
            // A trailing comma (the whole reading says so).
            "{\n  \"items\": [\n    {\n    },\n  ]\n}\n",
        ] {
            assert!(cut(text).is_none(), "{text}");
        }
    }

    /// A line of many `"items"` is looked at once, not once per `"items"` (which would
    /// take minutes here): a regression shows as a very slow test.
    #[test]
    fn a_line_of_many_items_keys_is_read_once() {
        let line = "\"items\",".repeat(1_000_000);
        let text = format!("{{\n  \"a\": [{line} 1],\n  \"kind\": \"List\"\n}}\n");
        assert!(cut(&text).is_none());
    }

    #[test]
    fn items_key_spacing() {
        assert!(is_items_key("\"items\": ["));
        assert!(is_items_key("\"items\" :["));
        assert!(!is_items_key("\"items\": [{"));
        assert!(!is_items_key("\"item\": ["));
    }
}
