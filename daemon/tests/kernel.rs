//! `netpolctl apply`, `show` and `flush` as an operator runs them, against the real
//! kernel, each test in network namespaces of its own (`ip netns`, removed on drop,
//! also when the test fails). Needs root; without it the tests say so and pass.

use std::io::Write as _;
use std::process::{Command, Output};

mod support;
use support::{repo, text, NetNs};

const EXAMPLE: [&str; 4] = [
    "--policies",
    "config/policies",
    "--inventory",
    "config/inventory",
];

impl NetNs {
    fn netpolctl(&self, args: &[&str]) -> Output {
        self.run(env!("CARGO_BIN_EXE_netpolctl"), args)
    }
}

fn args<'a>(cmd: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![cmd];
    v.extend(EXAMPLE);
    v.extend(rest);
    v
}

/// A new file `PREFIX…SUFFIX` under the system temp dir holding `bytes`, removed when
/// dropped.
fn temp_file(prefix: &str, suffix: &str, bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .tempfile()
        .unwrap();
    file.write_all(bytes).unwrap();
    file.flush().unwrap();
    file
}

#[test]
fn apply_finds_local_endpoints_then_show_and_flush() {
    let Some(ns) = NetNs::new("netpol-test") else {
        return;
    };
    // This "host" has payments-api's addresses.
    ns.ok(
        "ip",
        &["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
    );
    ns.ok("ip", &["addr", "add", "198.18.1.10/24", "dev", "v0"]);
    ns.ok(
        "ip",
        &["addr", "add", "2001:db8:1::10/64", "dev", "v0", "nodad"],
    );
    ns.ok("nft", &["add", "table", "inet", "other"]);

    let out = ns.netpolctl(&args("apply", &[]));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with(
            "local endpoints (by this host's addresses):\n  payments/payments-api (198.18.1.10, 2001:db8:1::10)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("applied table inet netpol in one transaction"),
        "{stdout}"
    );
    assert_eq!(
        ns.ok("nft", &["list", "tables"]),
        "table inet other\ntable inet netpol\n"
    );

    let show = ns.ok(env!("CARGO_BIN_EXE_netpolctl"), &["show", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    let denies = v["denies"].as_array().unwrap();
    assert_eq!(denies.len(), 1, "{show}");
    assert_eq!(denies[0]["endpoint"], "payments/payments-api");
    assert_eq!(denies[0]["direction"], "ingress");
    assert_eq!(denies[0]["packets"], 0);
    let text_show = ns.ok(env!("CARGO_BIN_EXE_netpolctl"), &["show"]);
    assert!(
        text_show.starts_with("table inet netpol: 3 chains"),
        "{text_show}"
    );

    // Apply again with named endpoints: the table is replaced, not added to.
    let out = ns.netpolctl(&args(
        "apply",
        &[
            "--local",
            "web/checkout",
            "--local",
            "payments/payments-api",
            "--deny",
            "reject",
        ],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("local endpoints (named):\n"));
    let listing = ns.ok("nft", &["list", "table", "inet", "netpol"]);
    assert!(listing.contains("chain out_web_checkout"), "{listing}");
    assert!(
        listing.contains("reject with icmpx admin-prohibited"),
        "{listing}"
    );

    let out = ns.ok(env!("CARGO_BIN_EXE_netpolctl"), &["flush"]);
    assert_eq!(out, "removed table inet netpol\n");
    assert_eq!(ns.ok("nft", &["list", "tables"]), "table inet other\n");
    let out = ns.ok(env!("CARGO_BIN_EXE_netpolctl"), &["flush"]);
    assert_eq!(out, "no table inet netpol to remove\n");
    let out = ns.ok(env!("CARGO_BIN_EXE_netpolctl"), &["show"]);
    assert_eq!(out, "no table inet netpol is loaded\n");
}

#[test]
fn invalid_input_fails_and_never_reaches_the_kernel() {
    let Some(ns) = NetNs::new("netpol-test") else {
        return;
    };
    let tmp = temp_file(
        "netpol-kernel-bad-",
        ".yaml",
        b"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: web, name: x}\nspec:\n  podSelector: {}\n  ingres: []\n",
    );
    let bad = tmp.path().to_str().unwrap();
    let out = ns.netpolctl(&[
        "apply",
        "--policies",
        bad,
        "--inventory",
        "config/inventory",
        "--local",
        "web/checkout",
    ]);
    drop(tmp);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("ingres"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(ns.ok("nft", &["list", "ruleset"]), "");

    let out = ns.netpolctl(&args("apply", &["--local", "web/nobody"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no endpoint web/nobody"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(ns.ok("nft", &["list", "ruleset"]), "");
}

/// The bytecode listing with each set's raw elements sorted: a verdict map (a hash)
/// lists its elements in bucket order, which depends on a random seed of the set.
fn sort_elements(listing: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for line in listing.lines().chain(std::iter::once("")) {
        if line.starts_with("\telement ") {
            run.push(line);
            continue;
        }
        run.sort_unstable();
        out.extend(run.drain(..).map(String::from));
        out.push(line.to_string());
    }
    out
}

/// Issue 3, item 5: `netpolctl apply` in one namespace and `netpolctl compile | nft -f`
/// in another list the same table.
#[test]
fn apply_and_compile_through_nft_f_list_the_same_table() {
    let locals = [
        "--local",
        "payments/payments-api",
        "--local",
        "web/checkout",
        "--local",
        "web/frontend",
        "--local",
        "analytics/worker",
    ];
    for deny in ["drop", "reject"] {
        let Some(applied) = NetNs::new("netpol-test") else {
            return;
        };
        let Some(loaded) = NetNs::new("netpol-test") else {
            return;
        };
        let mut rest = locals.to_vec();
        rest.extend(["--deny", deny]);
        let out = applied.netpolctl(&args("apply", &rest));
        assert!(out.status.success(), "{}", text(&out.stderr));

        let compiled = Command::new(env!("CARGO_BIN_EXE_netpolctl"))
            .current_dir(repo())
            .args(args("compile", &rest))
            .output()
            .unwrap();
        assert!(compiled.status.success(), "{}", text(&compiled.stderr));
        let script = temp_file(&format!("netpol-kernel-{deny}-"), ".nft", &compiled.stdout);
        let load = loaded.run("nft", &["-f", script.path().to_str().unwrap()]);
        drop(script);
        assert!(load.status.success(), "{}", text(&load.stderr));

        let list = ["list", "table", "inet", "netpol"];
        let ours = applied.ok("nft", &list);
        let theirs = loaded.ok("nft", &list);
        assert!(ours.contains("jump "), "{ours}");
        assert_eq!(
            ours, theirs,
            "deny {deny}: apply and compile | nft -f differ"
        );
        // The same with every rule's expressions and every raw set element.
        let bytecode = ["--debug=netlink", "list", "table", "inet", "netpol"];
        let ours = sort_elements(&applied.ok("nft", &bytecode));
        let theirs = sort_elements(&loaded.ok("nft", &bytecode));
        assert!(
            ours.iter().any(|l| l.contains("[ lookup reg 1 set ")),
            "{ours:?}"
        );
        assert_eq!(ours, theirs, "deny {deny}: the bytecode differs");
    }
}
