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
        text: text.to_string(),
    }
}

/// Limits small enough that fuzzed inputs reach every limit's error path.
pub fn tight_limits() -> load::Limits {
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

/// Target `yaml`: every document of the text, parsed.
pub fn parse_documents(input: &Input, limits: &load::Limits) {
    let (docs, diags) = load::parse(input, limits);
    for d in &diags {
        let _ = d.to_string();
    }
    drop(docs);
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
