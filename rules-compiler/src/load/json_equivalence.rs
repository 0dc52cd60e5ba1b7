//! JSON input against the two references it must agree with: the YAML path (the same
//! model and the same diagnostics, at the JSON's own places) and serde_json (the same
//! texts accepted, the same values).

use proptest::prelude::*;
use serde_json::Value as Json;

use crate::diag::{Diagnostic, Rejected};
use crate::load::json::parse_json;
use crate::load::{self, Input, Limits, Node, Value};
use crate::{load_model, Loaded};

const POLICIES: &[(&str, &str)] = &[
    (
        "payments.yaml",
        include_str!("../../../config/policies/payments.yaml"),
    ),
    (
        "web.yaml",
        include_str!("../../../config/policies/web.yaml"),
    ),
    (
        "guardrails.yaml",
        include_str!("../../../config/cluster/guardrails.yaml"),
    ),
];
const INVENTORY: &[(&str, &str)] = &[
    (
        "namespaces.yaml",
        include_str!("../../../config/inventory/namespaces.yaml"),
    ),
    (
        "pods.yaml",
        include_str!("../../../config/inventory/pods.yaml"),
    ),
    (
        "vms.yaml",
        include_str!("../../../config/inventory/vms.yaml"),
    ),
];

/// A tree as JSON text, indented by four spaces as kubectl writes it.
fn to_json(node: &Node, indent: usize, out: &mut String) {
    let pad = |n: usize| "    ".repeat(n);
    match &node.value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(&b.to_string()),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&serde_json::to_string(f).unwrap()),
        Value::Str(s) => out.push_str(&serde_json::to_string(s).unwrap()),
        Value::Seq(items) if items.is_empty() => out.push_str("[]"),
        Value::Map(entries) if entries.is_empty() => out.push_str("{}"),
        Value::Seq(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                to_json(item, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Value::Map(entries) => {
            out.push_str("{\n");
            for (i, (k, v)) in entries.iter().enumerate() {
                let Value::Str(key) = &k.value else {
                    panic!("a key that is not a string: {k:?}")
                };
                out.push_str(&pad(indent + 1));
                out.push_str(&serde_json::to_string(key).unwrap());
                out.push_str(": ");
                to_json(v, indent + 1, out);
                out.push_str(if i + 1 < entries.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Value::Invalid(why) => panic!("an invalid value: {why}"),
    }
}

/// The documents of a YAML text, as JSON: one top-level value each, or one kubectl
/// `List` of them all.
fn yaml_to_json(name: &str, yaml: &str, as_list: bool) -> String {
    let input = Input {
        path: name.into(),
        text: yaml.to_string().into(),
    };
    let (docs, diags) = load::parse(&input, &Limits::default());
    assert!(diags.is_empty(), "{diags:?}");
    let mut out = String::new();
    let is_list = |n: &Node| {
        matches!(&n.value, Value::Map(e) if e.iter().any(|(k, v)|
        k.value == Value::Str("kind".into()) && v.value == Value::Str("List".into())))
    };
    if as_list && !docs.iter().any(|d| is_list(&d.root)) {
        out.push_str("{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n");
        for (i, doc) in docs.iter().enumerate() {
            out.push_str("        ");
            to_json(&doc.root, 2, &mut out);
            out.push_str(if i + 1 < docs.len() { ",\n" } else { "\n" });
        }
        out.push_str(
            "    ],\n    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n",
        );
    } else {
        for doc in &docs {
            to_json(&doc.root, 0, &mut out);
            out.push('\n');
        }
    }
    assert!(load::json::is_json(&out), "{out}");
    out
}

fn inputs(files: &[(&str, &str)]) -> Vec<Input> {
    files
        .iter()
        .map(|(p, t)| Input {
            path: p.into(),
            text: t.to_string().into(),
        })
        .collect()
}

/// The same files as JSON, under the same names (the content decides the format).
fn as_json(files: &[(&str, &str)], as_list: bool) -> Vec<Input> {
    files
        .iter()
        .map(|(p, t)| Input {
            path: p.into(),
            text: yaml_to_json(p, t, as_list).into(),
        })
        .collect()
}

/// `value` without the places objects were read from (`source`: file, line, column),
/// which are the only thing a JSON and a YAML spelling may differ in.
fn without_places(mut value: Json) -> Json {
    fn strip(v: &mut Json) {
        match v {
            Json::Object(map) => {
                map.remove("source");
                map.values_mut().for_each(strip);
            }
            Json::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

fn model_json(loaded: &Loaded) -> Json {
    without_places(serde_json::to_value(&loaded.model).unwrap())
}

/// Diagnostics as (object, field, message, severity), without their places, also
/// those in messages (`also declared at inventory:6:1`).
fn unplaced(diags: &[Diagnostic]) -> Vec<(Option<String>, Option<String>, String, bool)> {
    diags
        .iter()
        .map(|d| {
            (
                d.object.clone(),
                d.field.clone(),
                without_line_column(&d.message),
                d.is_error(),
            )
        })
        .collect()
}

/// `text` with every `:LINE:COLUMN` left out.
fn without_line_column(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(':') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n = digits(after);
        if n > 0 && after[n..].starts_with(':') && digits(&after[n + 1..]) > 0 {
            rest = &after[n + 1 + digits(&after[n + 1..])..];
        } else {
            out.push(':');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn the_bundled_example_as_json_gives_the_same_model() {
    let yaml = load_model(&inputs(POLICIES), &inputs(INVENTORY)).expect("the example loads");
    assert!(!yaml.model.policies.is_empty() && !yaml.model.inventory.endpoints.is_empty());
    for as_list in [false, true] {
        let policies = as_json(POLICIES, as_list);
        let inventory = as_json(INVENTORY, as_list);
        let json = load_model(&policies, &inventory).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(model_json(&json), model_json(&yaml), "as_list {as_list}");
        assert_eq!(unplaced(&json.warnings), unplaced(&yaml.warnings));
        // Each object's place is its own in the JSON: where its `{` is.
        for policy in &json.model.policies {
            let file = policy.source.file.as_ref().unwrap();
            let input = policies.iter().find(|i| *i.path == **file).unwrap();
            let at = token_at(&input.text, policy.source.line, policy.source.column);
            assert!(at.starts_with('{'), "{}: {at:?}", policy.source);
        }
    }
    // And the YAML model's places are the YAML's.
    assert!(yaml.model.policies[0].source.line > 1);
}

/// The text at (1-based line, 1-based column in characters).
fn token_at(text: &str, line: usize, column: usize) -> String {
    let l = text.lines().nth(line - 1).expect("the line exists");
    l.chars().skip(column - 1).take(12).collect()
}

/// Loads a policy and an inventory file (both YAML or both JSON) and returns the
/// rejection.
fn rejected(policy: &str, inventory: &str) -> Vec<Diagnostic> {
    let policies = inputs(&[("policy", policy)]);
    let inventory = inputs(&[("inventory", inventory)]);
    match load_model(&policies, &inventory) {
        Ok(loaded) => panic!("accepted; warnings {:?}", loaded.warnings),
        Err(Rejected(diags)) => diags,
    }
}

const NAMESPACE_YAML: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n";
const POD_YAML: &str = "apiVersion: v1
kind: Pod
metadata:
  namespace: web
  name: front
  labels: {app: front}
status:
  podIP: 198.18.0.10
";

/// The same invalid inputs as YAML and as JSON: the same diagnostics (object, field,
/// message), each at the place its own text gives.
#[test]
fn invalid_inputs_give_the_same_diagnostics_at_the_jsons_places() {
    let policy = |spec: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  namespace: web\n  name: p\nspec:\n{spec}"
        )
    };
    let inventory = format!("{NAMESPACE_YAML}---\n{POD_YAML}");
    let cases: Vec<(&str, String, String)> = vec![
        (
            "an unknown field",
            policy("  podSelector: {}\n  ingres: []\n"),
            inventory.clone(),
        ),
        (
            "a bad CIDR",
            policy(
                "  podSelector: {}\n  egress:\n  - to:\n    - ipBlock: {cidr: 198.18.0.300/24}\n",
            ),
            inventory.clone(),
        ),
        (
            "a port as a string",
            policy(
                "  podSelector: {}\n  ingress:\n  - ports:\n    - {port: \"80\", protocol: TCP}\n",
            ),
            inventory.clone(),
        ),
        (
            "a duplicate endpoint",
            policy("  podSelector: {}\n"),
            format!("{inventory}---\n{POD_YAML}"),
        ),
    ];
    for (what, policy_yaml, inventory_yaml) in cases {
        let yaml = rejected(&policy_yaml, &inventory_yaml);
        let policy_json = yaml_to_json("policy", &policy_yaml, false);
        let inventory_json = yaml_to_json("inventory", &inventory_yaml, true);
        let json = rejected(&policy_json, &inventory_json);
        assert!(yaml.iter().any(Diagnostic::is_error), "{what}");
        assert_eq!(unplaced(&json), unplaced(&yaml), "{what}");
        // Every place is in the JSON text, and at the token the YAML place is at.
        for (j, y) in json.iter().zip(&yaml) {
            let file = j.file.as_ref().unwrap().to_str().unwrap();
            let (jt, yt) = match file {
                "policy" => (&policy_json, &policy_yaml),
                _ => (&inventory_json, &inventory_yaml),
            };
            let (jat, yat) = (
                token_at(jt, j.line, j.column),
                token_at(yt, y.line, y.column),
            );
            // A YAML block mapping starts at its first key, a JSON object at its `{`.
            if !jat.starts_with('{') {
                let first = |s: &str| s.trim_start_matches('"').chars().next();
                assert_eq!(first(&jat), first(&yat), "{what}: {j} / {y}");
            }
        }
    }
}

/// Two of them with their exact places, in hand-written JSON.
#[test]
fn json_diagnostics_name_their_line_and_column() {
    let inventory = r#"{"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}},
  {"apiVersion": "v1", "kind": "Pod",
   "metadata": {"namespace": "web", "name": "front", "labels": {"app": "front"}},
   "status": {"podIP": "198.18.0.10"}}
]}
"#;
    let policy = r#"{
  "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
  "metadata": {"namespace": "web", "name": "p"},
  "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": "80"}]}],
           "egress": [{"to": [{"ipBlock": {"cidr": "198.18.0.300/24"}}]}]}
}
"#;
    let diags = rejected(policy, inventory);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 2, "{diags:?}");
    let place = |d: &Diagnostic| (d.line, d.column, d.field.clone().unwrap());
    assert_eq!(
        place(errors[0]),
        (4, 63, "spec.ingress[0].ports[0].port".to_string())
    );
    assert_eq!(
        place(errors[1]),
        (5, 52, "spec.egress[0].to[0].ipBlock.cidr".to_string())
    );
    assert_eq!(
        errors[0].to_string().split(": error").next().unwrap(),
        "policy:4:63"
    );
}

#[test]
fn a_json_syntax_error_is_a_diagnostic_of_the_file_and_the_others_still_load() {
    let inventory = inputs(&[
        ("a.json", "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\",\n \"metadata\": {\"name\": \"web\",}}\n"),
        ("b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: bad_name}\n"),
    ]);
    let Err(Rejected(diags)) = load_model(&[], &inventory) else {
        panic!("accepted")
    };
    let shown: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].starts_with(
            "a.json:2:29: error: malformed JSON: expected a key after ',', found '}' (JSON \
             allows no trailing comma)"
        ),
        "{}",
        shown[0]
    );
    assert!(shown[1].starts_with("b.yaml:3:"), "{}", shown[1]);
}

// serde_json as the reference for what is JSON and what it means.

/// What our tree says, as serde_json's values; numbers as ours are typed.
fn ours_as_json(node: &Node) -> Json {
    match &node.value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => Json::from(*f),
        Value::Str(s) => Json::String(s.to_string()),
        Value::Seq(items) => Json::Array(items.iter().map(ours_as_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| match &k.value {
                    Value::Str(k) => (k.to_string(), ours_as_json(v)),
                    other => panic!("a key {other:?}"),
                })
                .collect(),
        ),
        Value::Invalid(why) => panic!("invalid: {why}"),
    }
}

/// Whether ours and serde_json's values agree: an integer beyond i64 is our float, and
/// `-0` our integer 0; floats within serde_json's rounding (it does not promise the
/// nearest float without its `float_roundtrip` feature; Rust's `parse`, which ours is,
/// does).
fn same(ours: &Json, theirs: &Json) -> bool {
    match (ours, theirs) {
        (Json::Number(a), Json::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            // `-0`: serde_json's -0.0.
            (Some(0), None) => b.as_f64() == Some(0.0),
            (Some(_), None) | (None, Some(_)) => false,
            (None, None) => {
                let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                // Within two units in the last place (subnormals too).
                x == y || (x.signum() == y.signum() && x.to_bits().abs_diff(y.to_bits()) <= 2)
            }
        },
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => ours == theirs,
    }
}

/// Every node's place holds the character its kind starts with.
fn check_places(text: &str, node: &Node) {
    let lines: Vec<&str> = text.split('\n').collect();
    let c = lines[node.line() - 1]
        .chars()
        .nth(node.column() - 1)
        .unwrap_or_else(|| panic!("no character at {}:{}", node.line, node.column));
    let ok = match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                check_places(text, k);
                check_places(text, v);
            }
            c == '{'
        }
        Value::Seq(items) => {
            items.iter().for_each(|n| check_places(text, n));
            c == '['
        }
        Value::Str(_) => c == '"',
        Value::Int(_) | Value::Float(_) => c == '-' || c.is_ascii_digit(),
        Value::Bool(b) => c == if *b { 't' } else { 'f' },
        Value::Null => c == 'n',
        Value::Invalid(_) => false,
    };
    assert!(
        ok,
        "{:?} at {}:{} starts with {c:?}",
        node.value, node.line, node.column
    );
}

/// Checks `text` against serde_json's reading of it as a stream of values.
fn agree(text: &str) -> Result<(), TestCaseError> {
    let limits = Limits::default();
    let ours = parse_json(text, &limits);
    // A byte order mark at the start is ours to skip (as the YAML path does), not
    // serde_json's.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut theirs = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Json>();
    let theirs_ok = loop {
        match stream.next() {
            None => break true,
            Some(Ok(v)) => theirs.push(v),
            Some(Err(_)) => break false,
        }
    };
    match ours {
        Ok(roots) => {
            prop_assert!(theirs_ok, "we accept what serde_json refuses: {text:?}");
            prop_assert_eq!(roots.len(), theirs.len(), "{:?}", text);
            for (ours, theirs) in roots.iter().zip(&theirs) {
                prop_assert!(
                    same(&ours_as_json(ours), theirs),
                    "{text:?}: {ours:?} / {theirs:?}"
                );
                check_places(text, ours);
            }
        }
        Err(e) => {
            // serde_json keeps the last of duplicate keys; everything else it refuses too.
            let duplicate = e.message.contains("duplicate key");
            prop_assert!(
                !theirs_ok || duplicate,
                "we refuse what serde_json accepts: {text:?}: {e:?}"
            );
            prop_assert!(e.line >= 1 && e.column >= 1);
        }
    }
    Ok(())
}

/// A JSON string literal: plain characters (any Unicode), every escape, and `\u`
/// escapes of any code unit but a surrogate, and of surrogate pairs (lone surrogates are
/// among the mutations).
fn string_literal() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>()
                .prop_filter("not raw in a string", |c| !matches!(c, '"' | '\\' | '\0'..='\x1f'))
                .prop_map(String::from),
            1 => prop::sample::select(vec!["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"])
                .prop_map(str::to_string),
            1 => any::<u16>()
                .prop_filter("lone surrogates are mutations", |u| !(0xd800..0xe000).contains(u))
                .prop_map(|u| format!("\\u{u:04x}")),
            1 => (0xd800u32..0xdc00, 0xdc00u32..0xe000)
                .prop_map(|(h, l)| format!("\\u{h:04X}\\u{l:04x}")),
        ],
        0..8,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()))
}

fn number_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|u| u.to_string()),
        "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?",
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
    ]
}

/// White space, usually none.
fn ws() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => "[ \t\r\n]{1,3}",
    ]
}

/// JSON text of any value, with white space anywhere it may be; keys plain and
/// distinct (escaped keys and duplicates are unit tests' concern).
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        string_literal(),
        number_literal(),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("null".to_string()),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec((ws(), inner.clone(), ws()), 0..6).prop_map(|items| {
                let parts: Vec<String> = items
                    .into_iter()
                    .map(|(a, v, b)| format!("{a}{v}{b}"))
                    .collect();
                format!("[{}]", parts.join(","))
            }),
            prop::collection::btree_map("[a-zA-Z_é]{0,6}", (ws(), inner, ws()), 0..6).prop_map(
                |entries| {
                    let parts: Vec<String> = entries
                        .into_iter()
                        .map(|(k, (a, v, b))| format!("{a}\"{k}\"{b}:{a}{v}{b}"))
                        .collect();
                    format!("{{{}}}", parts.join(","))
                }
            ),
        ]
    })
}

/// One to three values, separated by white space.
fn json_stream() -> impl Strategy<Value = String> {
    (
        ws(),
        prop::collection::vec((json_text(), "[ \t\r\n]{1,2}"), 1..4),
    )
        .prop_map(|(lead, vs)| {
            let mut text = lead;
            for (v, sep) in vs {
                text.push_str(&v);
                text.push_str(&sep);
            }
            text
        })
}

/// A change to a text: at a character index, delete some, insert a piece, or replace.
fn mutation() -> impl Strategy<Value = (usize, usize, String)> {
    let pieces = prop::sample::select(vec![
        "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "0", "01", "-", ".", "e", "+",
        "1e999", "tru", "true", "nul", "NaN", " ", "\n", "\t", "\u{1}", "é", "/", "//", "'",
        "\u{feff}", "\u{a0}",
    ]);
    (any::<usize>(), 0usize..3, pieces.prop_map(str::to_string))
}

fn mutate(text: &str, (at, delete, piece): &(usize, usize, String)) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = at % (chars.len() + 1);
    let end = (at + delete).min(chars.len());
    let mut out: String = chars[..at].iter().collect();
    out.push_str(piece);
    out.extend(&chars[end..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn valid_json_reads_as_serde_json_reads_it(text in json_stream()) {
        agree(&text)?;
        // Valid text is accepted whole.
        prop_assert!(parse_json(&text, &Limits::default()).is_ok(), "{:?}", text);
    }

    #[test]
    fn mutated_json_is_accepted_exactly_when_serde_json_accepts_it(
        text in json_stream(),
        changes in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut text = text;
        for change in &changes {
            text = mutate(&text, change);
        }
        agree(&text)?;
    }
}
