//! `netpolctl` as an operator runs it: the real binary, the bundled example, exit codes
//! and messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn netpolctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netpolctl"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("netpolctl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const EXAMPLE: [&str; 4] = [
    "--policies",
    "config/policies",
    "--inventory",
    "config/inventory",
];

fn with_example(cmd: &str, rest: &[&str]) -> Output {
    let mut args = vec![cmd];
    args.extend(EXAMPLE);
    args.extend(rest);
    netpolctl(&args)
}

/// A scratch directory removed on drop, also when the test fails.
fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("netpolctl-{tag}-"))
        .tempdir()
        .unwrap()
}

#[test]
fn compile_prints_the_table_for_the_local_endpoint() {
    let out = with_example("compile", &["--local", "payments/payments-api"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let nft = text(&out.stdout);
    assert!(nft.contains("table inet netpol"), "{nft}");
    // checkout's address is the only peer allowed in, on 8080/tcp.
    assert!(nft.contains("198.18.2.10 . tcp . 8080"), "{nft}");
    assert!(
        !nft.contains("198.18.2.11"),
        "frontend must not be allowed: {nft}"
    );
}

#[test]
fn compile_json_is_the_plan() {
    let out = with_example("compile", &["--local", "web/checkout", "-o", "json"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(plan["table"], "netpol");
    assert_eq!(plan["locals"][0]["id"], "web/checkout");
}

#[test]
fn compile_needs_a_local_endpoint_and_names_unknown_ones() {
    // Bad usage (2), as the README promises; an unknown endpoint is rejected input (1).
    let out = with_example("compile", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--local"),
        "{}",
        text(&out.stderr)
    );

    let out = with_example("compile", &["--local", "web/chekout"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("no endpoint web/chekout"), "{err}");
    assert!(
        err.contains("checkout, frontend"),
        "lists what web has: {err}"
    );
}

#[test]
fn matrix_json_follows_the_contract() {
    let out = with_example("matrix", &["--probe", "8080/TCP", "-o", "json"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let probe = &m["probes"][0];
    assert_eq!(probe["port"], 8080);
    assert_eq!(probe["protocol"], "TCP");
    let endpoints: Vec<&str> = probe["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let mut sorted = endpoints.clone();
    sorted.sort();
    assert_eq!(endpoints, sorted, "endpoints are sorted");
    let at = |name: &str| endpoints.iter().position(|e| *e == name).unwrap();
    let allowed = |from: &str, to: &str| probe["allowed"][at(from)][at(to)].as_bool().unwrap();
    assert!(allowed("web/checkout", "payments/payments-api"));
    assert!(!allowed("web/frontend", "payments/payments-api"));
    assert!(!allowed("analytics/worker", "payments/payments-api"));
    // web's default-deny-egress stops frontend even where the receiver is open.
    assert!(!allowed("web/frontend", "analytics/worker"));
    assert!(allowed("analytics/worker", "web/frontend"));
}

#[test]
fn matrix_table_is_for_people() {
    let out = with_example("matrix", &["--probe", "53/UDP"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("53/UDP"), "{table}");
    assert!(table.contains("kube-system/kube-dns"), "{table}");
}

#[test]
fn explain_names_the_rule_that_allows_and_the_policies_that_deny() {
    let out = with_example(
        "explain",
        &[
            "--from",
            "web/checkout",
            "--to",
            "payments/payments-api",
            "--port",
            "8080/TCP",
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let why = text(&out.stdout);
    assert!(why.contains("payments/allow-checkout-to-api"), "{why}");
    assert!(why.contains("web/allow-checkout-to-payments"), "{why}");

    let out = with_example(
        "explain",
        &[
            "--from",
            "analytics/worker",
            "--to",
            "payments/payments-api",
            "--port",
            "8080/TCP",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["allowed"], false, "{json}");
    let pairs = json["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 2, "one v4 and one v6 pair: {json}");
    for pair in pairs {
        // worker's egress is open; payments-api's ingress is isolated and nothing allows it.
        assert_eq!(pair["egress"]["verdict"], "not_isolated", "{pair}");
        assert_eq!(pair["ingress"]["allowed"], false, "{pair}");
        let isolating = pair["ingress"]["isolating"].to_string();
        assert!(
            isolating.contains("payments/default-deny-ingress"),
            "{pair}"
        );
    }
}

#[test]
fn bad_input_is_reported_with_file_line_and_field_and_fails() {
    let dir = scratch("bad");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: web, name: broken}\nspec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - port: 70000\n",
    )
    .unwrap();
    let out = netpolctl(&[
        "compile",
        "--policies",
        bad.to_str().unwrap(),
        "--inventory",
        "config/inventory",
        "--local",
        "web/checkout",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "nothing compiled: {}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(err.contains("bad.yaml:8:"), "{err}");
    assert!(err.contains("NetworkPolicy web/broken"), "{err}");
    assert!(err.contains("spec.ingress[0].ports[0].port"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let out = netpolctl(&["compile", "--policies", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn explain_takes_addresses_of_endpoints_and_of_strangers() {
    let explain = |from: &str, to: &str| {
        with_example(
            "explain",
            &[
                "--from", from, "--to", to, "--port", "8080/TCP", "-o", "json",
            ],
        )
    };
    // web/checkout's IPv6 address stands for web/checkout.
    let out = explain("2001:db8:2::10", "payments/payments-api");
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["from"], "web/checkout", "{json}");
    assert_eq!(json["allowed"], true, "{json}");

    // A stranger: its side is not policed, payments-api's ingress denies it.
    let out = explain("198.19.77.1", "payments/payments-api");
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["from"], "198.19.77.1", "{json}");
    assert_eq!(json["allowed"], false, "{json}");
    let pairs = json["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 1, "the stranger is IPv4 only: {json}");
    assert_eq!(pairs[0]["egress"], serde_json::Value::Null, "{json}");
    assert_eq!(pairs[0]["ingress"]["allowed"], false, "{json}");

    let out = with_example(
        "explain",
        &[
            "--from",
            "payments/payments-api",
            "--to",
            "198.19.77.1",
            "--port",
            "443/TCP",
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let why = text(&out.stdout);
    assert!(
        why.contains("ingress of 198.19.77.1: allowed, not an endpoint"),
        "{why}"
    );

    // Neither a name nor an address: bad usage, naming both forms.
    let out = explain("198.19.77", "payments/payments-api");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("NAMESPACE/NAME or an IP address"));
}

/// Every missing required option is bad usage (exit 2, naming the option), whatever
/// the command; never exit 1, which means rejected input or a failure.
#[test]
fn missing_required_options_exit_2_naming_them() {
    let cases: [(&str, &[&str], &str); 5] = [
        ("compile", &[], "--local"),
        ("matrix", &[], "--probe"),
        (
            "explain",
            &["--from", "web/checkout", "--port", "80/TCP"],
            "--to",
        ),
        (
            "explain",
            &["--to", "web/checkout", "--port", "80/TCP"],
            "--from",
        ),
        (
            "explain",
            &["--from", "web/checkout", "--to", "web/frontend"],
            "--port",
        ),
    ];
    for (cmd, rest, missing) in cases {
        let out = with_example(cmd, rest);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd} {rest:?}: {err}");
        assert!(err.contains(missing), "{cmd} {rest:?}: {err}");
    }
    // Usage is checked before anything is read or sent to the kernel.
    for (cmd, missing) in [("compile", "--inventory"), ("apply", "--inventory")] {
        let out = netpolctl(&[cmd, "--policies", "config/policies", "--local", "a/b"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains(missing), "{cmd}: {err}");
    }
}

#[test]
fn hostile_names_and_huge_values_give_short_escaped_errors() {
    let dir = scratch("hostile-names");
    let huge = "v".repeat(1_000_000);
    // A name that would clear the screen, forge a log line and reverse the text after it,
    // and a 1 MB label value (just under the scalar limit): before, both came out raw and whole.
    let bad = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  \
         name: \"x\\e[2J\\nnetpold: reload applied\\u202E\"\n  namespace: web\n  \
         labels: {{team: {huge}}}\nspec: {{podSelector: {{}}}}\n"
    );
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, &bad).unwrap();
    let policies = file.to_str().unwrap();
    let compile = |policies: &str| {
        netpolctl(&[
            "compile",
            "--policies",
            policies,
            "--inventory",
            "config/inventory",
            "--local",
            "payments/payments-api",
        ])
    };
    let out = compile(policies);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.len() < 2_000, "{} bytes of stderr", err.len());
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{202e}'),
        "{err}"
    );
    assert!(
        err.contains(r#"invalid name "x\u{1b}[2J\nnetpold: reload applied\u{202e}""#),
        "{err}"
    );
    assert!(err.contains(r#"invalid label value "vvvv"#), "{err}");
    assert!(err.contains("… (1000000 bytes)"), "{err}");
    // One line per diagnostic, and the summary: nothing a name could add.
    assert_eq!(err.lines().count(), 3, "{err}");

    // 5,000 bad objects: the first 50, then how many more.
    let many: String = (0..5000)
        .map(|i| format!("---\nkind: NetworkPolicy\nmetadata: {{name: p{i}}}\n"))
        .collect();
    std::fs::write(&file, many).unwrap();
    let out = compile(policies);
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 52, "{err}");
    assert!(err.contains("… and "), "{err}");
    assert!(
        err.ends_with("errors in the input; nothing was compiled\n"),
        "{err}"
    );
}

#[test]
fn thousands_of_warnings_print_fifty_and_a_count() {
    let dir = scratch("many-warnings");
    for f in ["namespaces.yaml", "pods.yaml", "vms.yaml"] {
        std::fs::copy(repo().join("config/inventory").join(f), dir.path().join(f)).unwrap();
    }
    // 5,000 pods without an address yet: each is skipped with a warning.
    let pending: String = (0..5000)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{namespace: payments, name: p{i}}}\n\
                 status: {{phase: Pending}}\n"
            )
        })
        .collect();
    std::fs::write(dir.path().join("pending.yaml"), pending).unwrap();
    let inventory = dir.path().to_str().unwrap();
    let out = netpolctl(&[
        "compile",
        "--policies",
        "config/policies",
        "--inventory",
        inventory,
        "--local",
        "payments/payments-api",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 51, "{err}");
    assert!(err.ends_with("… and 4950 more warnings\n"), "{err}");
}

/// `diff` of the demo's edit (docs/example-edit.yaml) against the example.
fn diff_edit(rest: &[&str]) -> Output {
    let mut args = vec![
        "diff",
        "--policies",
        "config/policies",
        "--policies",
        "docs/example-edit.yaml",
        "--inventory",
        "config/inventory",
        "--against-policies",
        "config/policies",
        "--against-inventory",
        "config/inventory",
    ];
    args.extend(rest);
    netpolctl(&args)
}

#[test]
fn diff_says_what_an_edit_allows_and_denies_as_text_json_and_dot() {
    let out = diff_edit(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "connectivity: +1 flow allowed, -0 denied\n\npayments/payments-api\n  + web/frontend  8080/TCP\n"
    );
    let out = diff_edit(&["-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "changes": [{"from": "web/frontend", "to": "payments/payments-api", "family": "any",
                "protocol": "TCP", "ports": [[8080, 8080]], "before": "denied", "after": "allowed"}],
            "endpoints_added": [], "endpoints_removed": [], "ip_blocks": []
        })
    );
    let out = diff_edit(&["-o", "dot"]);
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph netpol {\n"), "{dot}");
    assert!(
        dot.contains("\"web/frontend\" -> \"payments/payments-api\" [label=\"+ 8080/TCP\", color=\"#1a7f37\""),
        "{dot}"
    );
    // Seen from another host: worker's table does not change.
    let out = diff_edit(&["--local", "analytics/worker"]);
    assert_eq!(
        text(&out.stdout),
        "connectivity: +0 flows allowed, -0 denied\n"
    );
    // The other way round, the flow is removed.
    let out = netpolctl(&[
        "diff",
        "--policies",
        "config/policies",
        "--inventory",
        "config/inventory",
        "--against-policies",
        "config/policies",
        "--against-policies",
        "docs/example-edit.yaml",
        "--against-inventory",
        "config/inventory",
    ]);
    assert!(
        text(&out.stdout).contains("  - web/frontend  8080/TCP\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn diff_usage_and_unknown_endpoints() {
    // Something to compare with is required; files and the daemon exclude each other.
    for (rest, expect) in [
        (&[][..], "--against-policies"),
        (
            &["--against-policies", "config/policies"][..],
            "--against-inventory",
        ),
        (
            &[
                "--against-daemon",
                "--against-policies",
                "config/policies",
                "--against-inventory",
                "config/inventory",
            ][..],
            "cannot be used with",
        ),
    ] {
        let out = with_example("diff", rest);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{rest:?}: {err}");
        assert!(err.contains(expect), "{rest:?}: {err}");
    }
    let out = diff_edit(&["--local", "web/nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no endpoint web/nobody in either input"),
        "{}",
        text(&out.stderr)
    );
    // matrix needs a probe, except as a graph.
    let out = with_example("matrix", &["-o", "dot"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("subgraph \"cluster_web\""));
}

/// `netpolctl lint` of these policies against the example's inventory, as text.
fn lint_text(policies: &str) -> Output {
    netpolctl(&[
        "lint",
        "--policies",
        policies,
        "--inventory",
        "config/inventory",
    ])
}

/// The lint findings of these policies against the example's inventory, as JSON, with
/// the exit code.
fn lint_json(policies: &str, rest: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec![
        "lint",
        "--policies",
        policies,
        "--inventory",
        "config/inventory",
        "-o",
        "json",
    ];
    args.extend(rest);
    let out = netpolctl(&args);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    (out.status.code(), json, text(&out.stdout))
}

#[test]
fn lint_json_follows_the_contract_and_warnings_fail_only_on_request() {
    let (code, json, raw) = lint_json("config/policies", &[]);
    assert_eq!(code, Some(0), "warnings do not fail by default: {raw}");
    let findings = json["findings"].as_array().expect("findings");
    assert!(!findings.is_empty(), "{raw}");
    for f in findings {
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec![
            "check", "severity", "policy", "file", "line", "column", "message", "hint",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected, "{f}");
        assert!(f["line"].as_u64().unwrap() > 0 && f["column"].as_u64().unwrap() > 0);
        assert!(f["file"].as_str().unwrap().ends_with(".yaml"), "{f}");
        assert_eq!(f["severity"], "warning", "{f}");
    }
    // The keys come in the contract's order.
    let at = |key: &str| raw.find(&format!("\"{key}\"")).unwrap();
    let order = [
        "check", "severity", "policy", "file", "line", "column", "message", "hint",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{raw}");

    assert_eq!(
        lint_json("config/policies", &["--fail-on", "warning"]).0,
        Some(1)
    );
    assert_eq!(
        lint_json("config/policies", &["--fail-on", "never"]).0,
        Some(0)
    );
}

#[test]
fn lint_fails_on_errors_unless_never_and_exits_2_on_bad_input() {
    let dir = scratch("lint");
    let policy = dir.path().join("p.yaml");
    // Egress rules that policyTypes leaves out: ignored-rules, an error.
    std::fs::write(
        &policy,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: web, name: p}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n  egress:\n  - {}\n",
    )
    .unwrap();
    let path = policy.to_str().unwrap();
    let (code, json, raw) = lint_json(path, &[]);
    assert_eq!(code, Some(1), "{raw}");
    let ignored: Vec<_> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "ignored-rules")
        .collect();
    assert_eq!(ignored.len(), 1, "{raw}");
    assert_eq!(ignored[0]["severity"], "error");
    assert_eq!(ignored[0]["policy"], "web/p");
    assert_eq!(
        (&ignored[0]["line"], &ignored[0]["column"]),
        (&7.into(), &3.into())
    );
    assert_eq!(lint_json(path, &["--fail-on", "never"]).0, Some(0));

    // Text: one block per finding, then the count.
    let out = lint_text(path);
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!(
            "error[ignored-rules] web/p  {path}:7:3\n  egress holds 1 rule"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("\n  hint: add Egress to policyTypes"),
        "{shown}"
    );
    assert!(shown.ends_with("lint: 1 error, 0 warnings\n"), "{shown}");

    // Input that does not load: reported with its place, exit 2.
    std::fs::write(&policy, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: web, name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 0}]\n").unwrap();
    let out = lint_text(path);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("p.yaml:7:") && err.contains("spec.ingress[0].ports[0].port"),
        "{err}"
    );
}

/// The bundled example's namespaces and pods as `kubectl get namespaces,pods -A -o json`
/// prints them: one `List` (trimmed as the YAML is).
const EXAMPLE_INVENTORY_JSON: &str = r#"{
    "apiVersion": "v1",
    "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments", "labels": {"team": "payments"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web", "labels": {"name": "web"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "analytics"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"labels": {"app": "payments-api"}, "name": "payments-api", "namespace": "payments"},
            "spec": {"containers": [{"image": "registry.example/payments-api:1.4", "name": "api",
                "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": "198.18.1.10",
                "podIPs": [{"ip": "198.18.1.10"}, {"ip": "2001:db8:1::10"}]}
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"labels": {"app": "checkout"}, "name": "checkout", "namespace": "web"},
            "spec": {"containers": [{"image": "registry.example/checkout:2.0", "name": "checkout",
                "ports": [{"containerPort": 8000, "name": "http"}]}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "198.18.2.10"}, {"ip": "2001:db8:2::10"}]}
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"labels": {"app": "frontend"}, "name": "frontend", "namespace": "web"},
            "spec": {"containers": [{"image": "registry.example/frontend:3.1", "name": "frontend",
                "ports": [{"containerPort": 8080, "name": "http"}]}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "198.18.2.11"}, {"ip": "2001:db8:2::11"}]}
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"labels": {"k8s-app": "kube-dns"}, "name": "kube-dns", "namespace": "kube-system"},
            "spec": {"containers": [{"image": "registry.example/coredns:1.11", "name": "coredns",
                "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                          {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "198.18.0.10"}, {"ip": "2001:db8::10"}]}
        }
    ],
    "kind": "List",
    "metadata": {
        "resourceVersion": ""
    }
}
"#;

#[test]
fn compile_reads_a_kubectl_json_inventory_as_it_reads_the_yaml() {
    let dir = scratch("json");
    // The name does not matter: the first character `{` makes it JSON.
    let inventory = dir.path().join("cluster-dump");
    std::fs::write(&inventory, EXAMPLE_INVENTORY_JSON).unwrap();
    for local in ["payments/payments-api", "web/checkout"] {
        let yaml = with_example("compile", &["--local", local]);
        assert!(yaml.status.success(), "stderr: {}", text(&yaml.stderr));
        let json = netpolctl(&[
            "compile",
            "--policies",
            "config/policies",
            "--inventory",
            inventory.to_str().unwrap(),
            "--inventory",
            "config/inventory/vms.yaml",
            "--local",
            local,
        ]);
        assert!(json.status.success(), "stderr: {}", text(&json.stderr));
        assert_eq!(text(&json.stdout), text(&yaml.stdout), "{local}");
    }
    // A directory gives its *.json entries too.
    std::fs::write(dir.path().join("inventory.json"), EXAMPLE_INVENTORY_JSON).unwrap();
    std::fs::remove_file(&inventory).unwrap();
    std::fs::copy(
        repo().join("config/inventory/vms.yaml"),
        dir.path().join("vms.yaml"),
    )
    .unwrap();
    let out = netpolctl(&[
        "compile",
        "--policies",
        "config/policies",
        "--inventory",
        dir.path().to_str().unwrap(),
        "--local",
        "payments/payments-api",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("198.18.2.10 . tcp . 8080"));
}

#[test]
fn a_json_syntax_error_names_file_line_and_column() {
    let dir = scratch("json-bad");
    let bad = dir.path().join("inventory.json");
    // A trailing comma in the first pod's metadata, on line 11.
    let broken = EXAMPLE_INVENTORY_JSON.replacen(
        "\"namespace\": \"payments\"},",
        "\"namespace\": \"payments\",},",
        1,
    );
    assert_ne!(broken, EXAMPLE_INVENTORY_JSON);
    std::fs::write(&bad, broken).unwrap();
    let out = netpolctl(&[
        "compile",
        "--policies",
        "config/policies",
        "--inventory",
        bad.to_str().unwrap(),
        "--local",
        "payments/payments-api",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing compiled");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:11:109: error: malformed JSON: expected a key after ',', found '}}' (JSON \
             allows no trailing comma) (read as JSON: the file starts with '{{'",
            bad.display()
        )),
        "{err}"
    );
}
