//! Shared helpers of the fuzz targets: every call into netpol's API lives here, one
//! small function per target, so a change of the loader's signature (input limits,
//! options) is adapted in one place.
//!
//! Must not write files, touch the host's network or ruleset: the only outside process
//! is `nft -c` (check mode) inside a throwaway network namespace (`unshare --net`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use rules_compiler::load::{self, Input};
use rules_compiler::plan::{self, DenyAction};
use rules_compiler::resolve::Index;
use rules_compiler::{diag::Rejected, render, Loaded};

pub mod gen;

/// An input named like a file, for messages.
pub fn input(name: &str, text: &str) -> Input {
    Input {
        path: PathBuf::from(name),
        text: text.to_string().into(),
    }
}

/// A fuzz input as the targets read it: the first byte (the mode, whose bits each
/// target gives a meaning) and the rest as text; `None` without a byte or when the rest
/// is not UTF-8.
pub fn mode_and_text(data: &[u8]) -> Option<(u8, &str)> {
    let (&mode, rest) = data.split_first()?;
    Some((mode, std::str::from_utf8(rest).ok()?))
}

/// The limits that bit 3 of a target's mode picks: the defaults, or [`tight_limits`].
pub fn limits_for(mode: u8) -> load::Limits {
    if mode & 8 == 0 {
        load::Limits::default()
    } else {
        tight_limits()
    }
}

/// Limits small enough that fuzzed inputs reach every limit's error path.
fn tight_limits() -> load::Limits {
    load::Limits {
        file_bytes: 1 << 20,
        documents: 20,
        nodes: 2_000,
        scalar_bytes: 256,
        depth: 8,
    }
}

/// Target `yaml_fast`: the loader's fast path declines or agrees with saphyr on every
/// chunk of the text; a difference panics with both trees.
pub fn check_fast_yaml(text: &str, limits: &load::Limits) {
    let c = load::compare_with_saphyr(text, limits);
    if let Some(mismatch) = c.mismatch {
        panic!("the YAML fast path differs from saphyr: {mismatch}");
    }
}

/// Target `json_list`: `text` (after the earlier version before a NUL byte, if any)
/// read with its JSON `List`s cut into items, cold and through a decode cache, gives
/// what reading it whole gives; a difference panics with where.
pub fn check_json_list_cut(mode: u8, text: &str) {
    let (before, after) = match text.split_once('\0') {
        Some((before, after)) => (before, after),
        None if mode & 2 != 0 => (text, text),
        None => ("", text),
    };
    let limits = limits_for(mode);
    let (before, after) = (
        [input("fuzzed.json", before)],
        [input("fuzzed.json", after)],
    );
    if let Some(difference) =
        rules_compiler::validate::cut_differs(&before, &after, mode & 1 != 0, &limits)
    {
        panic!("a cut List reads otherwise than whole: {difference}");
    }
}

/// Target `yaml`: every document of the text, parsed.
pub fn parse_documents(input: &Input, limits: &load::Limits) {
    let (docs, diags) = load::parse(input, limits);
    for d in &diags {
        let _ = d.to_string();
    }
    drop(docs);
}

/// Target `json`: every document of a text, parsed; when the text is JSON (its first
/// character after a byte order mark and white space is `{` or `[`), checked against
/// serde_json reading it as a stream of values: accepted exactly when serde_json accepts
/// it, with the same values (a `null` value is no document). Excepted: a duplicate key
/// (serde_json keeps the last) and a limit (serde_json has its own depth, 128).
pub fn json_against_serde(input: &Input, limits: &load::Limits) {
    let (docs, diags) = load::parse(input, limits);
    for d in &diags {
        let _ = d.to_string();
    }
    let text = input.text.strip_prefix('\u{feff}').unwrap_or(&input.text);
    let first = text
        .bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if !matches!(first, Some(b'{' | b'[')) {
        return;
    }
    let mut theirs = Vec::new();
    let mut accepted = true;
    for value in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        match value {
            Ok(v) => theirs.push(v),
            Err(_) => {
                accepted = false;
                break;
            }
        }
    }
    match diags.first() {
        None => {
            assert!(
                accepted,
                "netpol accepts JSON that serde_json refuses: {text:?}"
            );
            theirs.retain(|v| !v.is_null());
            assert_eq!(docs.len(), theirs.len(), "{text:?}");
            for (doc, theirs) in docs.iter().zip(&theirs) {
                assert!(
                    same_json(&node_json(&doc.root), theirs),
                    "{text:?}: {:?} / {theirs:?}",
                    doc.root
                );
            }
        }
        Some(d) if d.message.contains("duplicate key") || d.message.contains("(limit ") => {}
        Some(d) => assert!(
            !accepted,
            "netpol refuses JSON that serde_json accepts: {text:?}: {d}"
        ),
    }
}

/// A loaded tree as serde_json's value.
fn node_json(node: &load::Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        load::Value::Null => J::Null,
        load::Value::Bool(b) => J::Bool(*b),
        load::Value::Int(i) => J::from(*i),
        load::Value::Float(f) => J::from(*f),
        load::Value::Str(s) => J::String(s.to_string()),
        load::Value::Seq(items) => J::Array(items.iter().map(node_json).collect()),
        load::Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| match &k.value {
                    load::Value::Str(k) => (k.to_string(), node_json(v)),
                    other => panic!("a JSON key that is not a string: {other:?}"),
                })
                .collect(),
        ),
        load::Value::Invalid(why) => panic!("an invalid value from JSON: {why}"),
    }
}

/// Equal values, with netpol's typing of numbers (an integer beyond i64 is a float, `-0`
/// the integer 0) and within serde_json's float rounding (two units in the last place).
fn same_json(ours: &serde_json::Value, theirs: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (ours, theirs) {
        (J::Number(a), J::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            (Some(0), None) => b.as_f64() == Some(0.0),
            (Some(_), None) | (None, Some(_)) => false,
            (None, None) => {
                let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(1.0));
                x == y || (x.signum() == y.signum() && x.to_bits().abs_diff(y.to_bits()) <= 2)
            }
        },
        (J::Array(a), J::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_json(a, b))
        }
        (J::Object(a), J::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => ours == theirs,
    }
}

/// Loads and validates (targets `yaml` and `compile`).
pub fn load_model(
    policies: &[Input],
    inventory: &[Input],
    limits: &load::Limits,
) -> Result<Loaded, Rejected> {
    rules_compiler::load_model_within(policies, inventory, limits)
}

/// Plans every endpoint of the model as local and renders the nft text, as
/// `netpolctl compile` does (daemon/src/ctl.rs); with `json`, the plan as JSON too.
pub fn compile_all(loaded: &Loaded, deny: DenyAction, json: bool) -> String {
    let index = Index::new(&loaded.model);
    let ids: Vec<usize> = (0..loaded.model.inventory.endpoints.len()).collect();
    // Events on, so the log rules and the table's limit are planned and rendered too.
    let options = plan::Options {
        deny,
        events: Some(plan::EventLog {
            group: 4713,
            rate: 50,
            burst: 100,
        }),
        ..Default::default()
    };
    let plan = plan::build(&index, &ids, &options);
    if json {
        serde_json::to_string_pretty(&plan).expect("a plan serialises");
    }
    // Warnings are rendered to stderr by the commands; render them too.
    for w in &loaded.warnings {
        let _ = w.to_string();
    }
    render::nft(&plan)
}

/// `netpolctl lint` of a loaded model: every check runs, every finding formats.
pub fn lint_all(loaded: &Loaded) -> usize {
    let index = Index::new(&loaded.model);
    let findings = rules_compiler::lint::lint(&index, &loaded.spans);
    for f in &findings {
        assert!(f.line > 0, "a finding points at a place: {f:?}");
        serde_json::to_string(f).expect("a finding serialises");
    }
    findings.len()
}

/// Target `config`: the daemon's config-file parser.
pub fn check_config(input: &Input) {
    for d in netpol_daemon::config::check_file(input) {
        let _ = d.to_string();
    }
}

/// Target `control`: one control-socket request line and one metrics request head.
pub fn control(bytes: &[u8]) {
    if let Ok(request) = netpol_daemon::control::decode_request(bytes) {
        // What decodes must encode and decode to the same request.
        let line = serde_json::to_string(&request).expect("a request serialises");
        assert_eq!(
            netpol_daemon::control::decode_request(line.as_bytes()).as_ref(),
            Ok(&request)
        );
    }
    let _ = netpol_daemon::scrape::parse_head(bytes);
}

/// Target `nflog`: what a hostile sender controls of a logged packet, its bytes from
/// the IP header on, wrapped in the NFLOG message the kernel would send; and the same
/// bytes as a whole message. Never a panic; a packet read has addresses of one family
/// and no ports unless TCP, UDP or SCTP.
pub fn nflog(bytes: &[u8]) {
    use netpol_nft::nflog::{message, parse_packet};
    let wrapped = message(Some(b"netpol deny in\0"), Some(bytes));
    for msg in [&wrapped[..], bytes] {
        if let Some(p) = parse_packet(msg) {
            assert_eq!(p.src.is_ipv4(), p.dst.is_ipv4(), "{p:?}");
            if ![6, 17, 132].contains(&p.protocol) {
                assert_eq!((p.src_port, p.dst_port), (0, 0), "{p:?}");
            }
        }
    }
}

/// Checks `ruleset` with `nft -c -f -` inside a new, empty network namespace (check
/// mode: nothing is loaded anywhere). `Err` holds nft's message.
pub fn nft_check(ruleset: &str) -> Result<(), String> {
    let mut child = Command::new("unshare")
        .args(["--net", "--", "nft", "-c", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning unshare --net nft -c (needs root, util-linux and nftables)");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(ruleset.as_bytes())
        .expect("writing the ruleset to nft");
    let out = child.wait_with_output().expect("waiting for nft");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The bundled example's policies, the counterpart of a fuzzed inventory.
const EXAMPLE_POLICIES: &[(&str, &str)] = &[
    (
        "payments.yaml",
        include_str!("../../config/policies/payments.yaml"),
    ),
    ("web.yaml", include_str!("../../config/policies/web.yaml")),
];
/// The bundled example's inventory, the counterpart of fuzzed policies.
const EXAMPLE_INVENTORY: &[(&str, &str)] = &[
    (
        "namespaces.yaml",
        include_str!("../../config/inventory/namespaces.yaml"),
    ),
    (
        "pods.yaml",
        include_str!("../../config/inventory/pods.yaml"),
    ),
    ("vms.yaml", include_str!("../../config/inventory/vms.yaml")),
];

/// Loads `fuzzed` as policies against the bundled example's inventory (bit 0 of `mode`
/// clear) or as inventory against its policies, then plans (drop, or reject with bit 1;
/// JSON output with bit 2), renders and lints what loads: never a panic.
pub fn load_against_example(fuzzed: Input, mode: u8, limits: &load::Limits) {
    let example =
        |files: &[(&str, &str)]| files.iter().map(|(n, t)| input(n, t)).collect::<Vec<_>>();
    let loaded = if mode & 1 == 0 {
        load_model(&[fuzzed], &example(EXAMPLE_INVENTORY), limits)
    } else {
        load_model(&example(EXAMPLE_POLICIES), &[fuzzed], limits)
    };
    match loaded {
        Ok(loaded) => {
            let deny = if mode & 2 == 0 {
                DenyAction::Drop
            } else {
                DenyAction::Reject
            };
            let _ = compile_all(&loaded, deny, mode & 4 != 0);
            lint_all(&loaded);
        }
        Err(rejected) => {
            let _ = rejected.to_string();
        }
    }
}
