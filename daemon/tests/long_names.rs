//! Endpoints whose names push netpol's naming to its limits, enforced for real: the
//! longest names Kubernetes allows (a 63-character namespace and a 253-character name),
//! two such names that share their first 150 characters, and two names whose hashed
//! chain names collide. Each through the real binaries and real packets in network
//! namespaces: `netpolctl apply`, `netpolctl compile | nft -f`, and netpold's metrics.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::*;
use support::{repo, text, NetNs};

/// A namespace name of the longest length Kubernetes allows (63).
fn long_namespace() -> String {
    let mut ns = "long-names-".to_string();
    while ns.len() < 63 {
        ns.push('n');
    }
    ns
}

/// Two names of the longest length Kubernetes allows (253) that share their first 150
/// characters: far more than a deny comment keeps of them.
fn long_pair() -> (String, String) {
    let mut shared = "endpoint-".to_string();
    while shared.len() < 150 {
        shared.push('x');
    }
    let name = |c: &str| format!("{shared}{}", c.repeat(253 - 150));
    (name("a"), name("b"))
}

/// Two names from rules-compiler/testdata whose ingress chains collided (namespace
/// `lab`).
fn colliding_pair() -> (String, String) {
    let data =
        std::fs::read_to_string(repo().join("rules-compiler/testdata/chain-name-collision.txt"))
            .unwrap();
    let mut names = data.lines().filter(|l| !l.starts_with('#'));
    (
        names.next().unwrap().to_string(),
        names.next().unwrap().to_string(),
    )
}

/// A lab whose inputs are: namespace `ns` with endpoints `a` (198.18.1.10, app=a) and
/// `b` (198.18.1.11, app=b); web/checkout (198.18.2.10) and web/frontend (198.18.2.11).
/// a accepts 8080/TCP from checkout only, b from frontend only.
fn lab(ns: &str, a: &str, b: &str) -> Lab {
    let lab = Lab::new();
    for sub in ["policies", "inventory"] {
        for e in std::fs::read_dir(lab.path(sub)).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
    let endpoint = |ns: &str, name: &str, app: &str, ip: &str| {
        format!(
            "---\napiVersion: netpol/v1\nkind: Endpoint\nmetadata:\n  namespace: {ns}\n  name: {name}\n  labels: {{app: {app}}}\nips: [{ip}]\n"
        )
    };
    let namespace =
        |name: &str| format!("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
    let inventory = [
        namespace(ns),
        namespace("web"),
        endpoint(ns, a, "a", "198.18.1.10"),
        endpoint(ns, b, "b", "198.18.1.11"),
        endpoint("web", "checkout", "checkout", "198.18.2.10"),
        endpoint("web", "frontend", "frontend", "198.18.2.11"),
    ]
    .concat();
    lab.write("inventory/inventory.yaml", &inventory);
    let allow = |name: &str, to: &str, from: &str| {
        format!(
            "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  namespace: {ns}
  name: {name}
spec:
  podSelector:
    matchLabels: {{app: {to}}}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {{kubernetes.io/metadata.name: web}}
      podSelector:
        matchLabels: {{app: {from}}}
    ports:
    - {{protocol: TCP, port: 8080}}
"
        )
    };
    lab.write(
        "policies/policies.yaml",
        &(allow("a-from-checkout", "a", "checkout") + &allow("b-from-frontend", "b", "frontend")),
    );
    lab
}

/// `two_hosts`, and the host also holds b's address 198.18.1.11.
fn hosts() -> Option<(NetNs, NetNs)> {
    let (host, peer) = two_hosts()?;
    host.ip(&["addr", "add", "198.18.1.11/16", "dev", "va"]);
    Some((host, peer))
}

/// Whether a TCP connect from `from` (an address of `peer`) reaches `to`:8080. Nothing
/// listens there: a connection that gets through is refused (curl exit 7), one the
/// ruleset drops times out (curl exit 28).
fn reaches(peer: &NetNs, from: &str, to: &str) -> bool {
    let url = format!("http://{to}:8080/");
    let out = peer.run(
        "curl",
        &["-s", "--connect-timeout", "2", "--interface", from, &url],
    );
    match out.status.code() {
        Some(7) => true,
        Some(28) => false,
        other => panic!(
            "curl {from} -> {to}: unexpected exit {other:?}: {}",
            text(&out.stderr)
        ),
    }
}

const CHECKOUT: &str = "198.18.2.10";
const FRONTEND: &str = "198.18.2.11";
const A: &str = "198.18.1.10";
const B: &str = "198.18.1.11";

/// Waits until checkout reaches a (the veth comes up asynchronously), then checks every
/// other cell: a only from checkout, b only from frontend.
fn assert_enforced(peer: &NetNs) {
    let start = Instant::now();
    while !reaches(peer, CHECKOUT, A) {
        assert!(start.elapsed() < PATIENCE, "checkout never reached a");
    }
    assert!(!reaches(peer, FRONTEND, A), "frontend -> a must be dropped");
    assert!(reaches(peer, FRONTEND, B), "frontend -> b is allowed");
    assert!(!reaches(peer, CHECKOUT, B), "checkout -> b must be dropped");
}

fn netpolctl_ok(ns: &NetNs, args: &[&str]) -> String {
    ns.ok(NETPOLCTL, args)
}

fn inputs(lab: &Lab) -> Vec<String> {
    let mut v = Vec::new();
    for (flag, sub) in [("--policies", "policies"), ("--inventory", "inventory")] {
        v.push(flag.to_string());
        v.push(lab.path(sub).display().to_string());
    }
    v
}

#[test]
fn apply_enforces_endpoints_with_the_longest_names() {
    let Some((host, peer)) = hosts() else { return };
    let ns = long_namespace();
    let (a, b) = long_pair();
    let lab = lab(&ns, &a, &b);
    let mut args: Vec<String> = vec!["apply".into()];
    args.extend(inputs(&lab));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // No --local: both endpoints are local by their addresses.
    let out = host.run(NETPOLCTL, &args);
    assert!(
        out.status.success(),
        "apply failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_enforced(&peer);

    // Without the inventory, `show` has only the comments, which nft cuts to 128
    // bytes: a cut one says so, and each keeps its own chain.
    let show: Value = serde_json::from_str(&netpolctl_ok(&host, &["show", "-o", "json"])).unwrap();
    let denies = show["denies"].as_array().unwrap();
    assert_eq!(denies.len(), 2, "{show:#}");
    for d in denies {
        assert!(d["endpoint"].as_str().unwrap().ends_with("..."), "{d}");
    }
    assert_ne!(denies[0]["chain"], denies[1]["chain"]);
    // With it, each counter is labelled by its chain's owner, under the whole name, and
    // counts the SYNs assert_enforced sent that endpoint (a from frontend, b from
    // checkout): nothing merged, nothing swapped.
    let inventory = lab.path("inventory").display().to_string();
    let show: Value = serde_json::from_str(&netpolctl_ok(
        &host,
        &["show", "-o", "json", "--inventory", &inventory],
    ))
    .unwrap();
    let denies = show["denies"].as_array().unwrap();
    let count = |who: &str| -> u64 {
        let of: Vec<&Value> = denies.iter().filter(|d| d["endpoint"] == who).collect();
        assert_eq!(of.len(), 1, "{who}: {show:#}");
        of[0]["packets"].as_u64().unwrap()
    };
    let (ida, idb) = (format!("{ns}/{a}"), format!("{ns}/{b}"));
    assert_eq!(denies.len(), 2, "{show:#}");
    assert!(count(&ida) >= 1 && count(&idb) >= 1, "{show:#}");
    // One more SYN to a only: a's counter grows, b's stays.
    assert!(!reaches(&peer, FRONTEND, A));
    let again: Value = serde_json::from_str(&netpolctl_ok(
        &host,
        &["show", "-o", "json", "--inventory", &inventory],
    ))
    .unwrap();
    let after = |who: &str| -> u64 {
        let d = again["denies"].as_array().unwrap();
        d.iter().find(|d| d["endpoint"] == who).unwrap()["packets"]
            .as_u64()
            .unwrap()
    };
    assert!(after(&ida) > count(&ida), "{again:#}");
    assert_eq!(after(&idb), count(&idb), "{again:#}");
    let table = host.table().expect("the table is loaded");
    assert!(
        table.contains(&format!("comment \"deny ingress {ns}/endpoint-xxx")),
        "{table}"
    );
}

#[test]
fn netpold_counts_denies_of_long_names_sharing_a_prefix_apart() {
    let Some((host, peer)) = hosts() else { return };
    let ns = long_namespace();
    let (a, b) = long_pair();
    let lab = lab(&ns, &a, &b);
    let address = "127.0.0.1:9471";
    let d = Daemon::start(
        &host,
        &lab,
        &["--metrics-address", address, "--metrics-interval-ms", "100"],
    );
    assert_enforced(&peer);
    // assert_enforced sent one dropped SYN (and its retries) to each: a from frontend,
    // b from checkout. Each endpoint's series, under its whole name, counts its own.
    let (ida, idb) = (format!("{ns}/{a}"), format!("{ns}/{b}"));
    let start = Instant::now();
    loop {
        let m = scrape(&host, address);
        let (pa, pb) = (m.denied(&ida), m.denied(&idb));
        if pa >= 1.0 && pb >= 1.0 {
            // No other deny series: nothing was merged under a cut name.
            assert_eq!(m.deny_series(), 2, "{m:?}");
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "waited in vain for both endpoints' denies (a {pa}, b {pb}):\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Only a is denied now: b's count stays.
    let before = scrape(&host, address);
    assert!(!reaches(&peer, FRONTEND, A));
    let start = Instant::now();
    loop {
        let m = scrape(&host, address);
        if m.denied(&ida) > before.denied(&ida) {
            assert_eq!(m.denied(&idb), before.denied(&idb));
            break;
        }
        assert!(start.elapsed() < PATIENCE, "a's new denies never counted");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn colliding_chain_names_stay_apart_through_compile_and_nft() {
    let Some((host, peer)) = hosts() else { return };
    let (a, b) = colliding_pair();
    let lab = lab("lab", &a, &b);
    let (ida, idb) = (format!("lab/{a}"), format!("lab/{b}"));

    // The documented text path: netpolctl compile | nft -f -.
    let mut args: Vec<String> = vec!["compile".into()];
    args.extend(inputs(&lab));
    for id in [&ida, &idb] {
        args.push("--local".into());
        args.push(id.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rules = netpolctl_ok(&host, &args);
    let mut nft = host
        .command("nft", &["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut nft.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    let out = nft.wait_with_output().unwrap();
    assert!(out.status.success(), "nft -f: {}", text(&out.stderr));

    // The kernel holds one chain per endpoint, each with its own set.
    let table = host.table().unwrap();
    let chains: Vec<&str> = table
        .lines()
        .filter_map(|l| l.trim().strip_prefix("chain in_lab_"))
        .collect();
    assert_eq!(chains.len(), 2, "{table}");
    assert_ne!(chains[0], chains[1]);
    let sets = table.matches("\tset in_lab_").count();
    assert_eq!(sets, 2, "{table}");

    // The matrix predicts a only from checkout, b only from frontend ...
    let mut margs: Vec<String> = vec!["matrix".into()];
    margs.extend(inputs(&lab));
    margs.extend(["--probe", "8080/TCP", "-o", "json"].map(String::from));
    let margs: Vec<&str> = margs.iter().map(String::as_str).collect();
    let matrix: Value = serde_json::from_str(&netpolctl_ok(&host, &margs)).unwrap();
    let probe = &matrix["probes"][0];
    let at = |id: &str| {
        probe["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .position(|e| e == id)
            .unwrap()
    };
    let allowed = |from: &str, to: &str| probe["allowed"][at(from)][at(to)].as_bool().unwrap();
    assert!(allowed("web/checkout", &ida) && !allowed("web/frontend", &ida));
    assert!(allowed("web/frontend", &idb) && !allowed("web/checkout", &idb));
    // ... and the kernel does the same with real packets.
    assert_enforced(&peer);

    // The netlink path takes the same plan.
    host.ok("nft", &["delete", "table", "inet", "netpol"]);
    let mut args: Vec<String> = vec!["apply".into()];
    args.extend(inputs(&lab));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    netpolctl_ok(&host, &args);
    assert_enforced(&peer);
}

// ------------------------------------------------------------------ metrics ----

/// The deny series of one scrape of `/metrics`.
#[derive(Debug)]
struct Metrics(Vec<(String, String, f64)>);

impl Metrics {
    /// `netpol_denied_packets_total{endpoint,direction="ingress"}` samples.
    fn parse(text: &str) -> Metrics {
        let mut out = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("netpol_denied_packets_total{") else {
                continue;
            };
            let (labels, value) = rest.rsplit_once("} ").unwrap();
            let label = |key: &str| {
                let start = labels.find(&format!("{key}=\"")).unwrap() + key.len() + 2;
                let len = labels[start..].find('"').unwrap();
                labels[start..start + len].to_string()
            };
            out.push((
                label("endpoint"),
                label("direction"),
                value.parse().unwrap(),
            ));
        }
        Metrics(out)
    }

    /// Ingress packets denied for `endpoint`; 0 while its series does not exist.
    fn denied(&self, endpoint: &str) -> f64 {
        self.0
            .iter()
            .find(|(e, d, _)| e == endpoint && d == "ingress")
            .map_or(0.0, |s| s.2)
    }

    fn deny_series(&self) -> usize {
        self.0.len()
    }
}

fn scrape(ns: &NetNs, address: &str) -> Metrics {
    let url = format!("http://{address}/metrics");
    Metrics::parse(&ns.ok("curl", &["-sS", "--fail", "--max-time", "5", &url]))
}
