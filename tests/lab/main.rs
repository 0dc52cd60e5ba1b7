//! The namespace lab: real packets between network namespaces, enforced by rulesets
//! that `netpolctl apply` loaded, compared cell by cell with `netpolctl matrix` and
//! with a table written by hand. See README.md next to this file for what a case is
//! and how to read `expected.txt`.
//!
//! Needs root (namespaces, `ip`, setns); without it every case prints why and passes
//! without running.

mod case;
mod net;
mod probe;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use netpol_daemon::inputs::{self, Paths};
use rules_compiler::analysis::Probe;
use rules_compiler::model::Protocol;

use case::{Case, Family, Host, Mark};
use net::{Listeners, Network};
use probe::{Job, Outcome, SourcePorts};

const NETPOLCTL: &str = env!("CARGO_BIN_EXE_netpolctl");

/// Declares one test per case directory, and `CASES`, the list of them.
macro_rules! cases {
    ($($test:ident => $dir:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run_case($dir);
            }
        )*
        const CASES: &[&str] = &[$($dir),*];
    };
}

cases! {
    default_deny_ingress => "default-deny-ingress",
    default_deny_egress => "default-deny-egress",
    default_deny_both => "default-deny-both",
    allow_all => "allow-all",
    empty_lists => "empty-lists",
    stacked_policies => "stacked-policies",
    and_vs_or => "and-vs-or",
    namespace_selector_empty => "namespace-selector-empty",
    match_expressions => "match-expressions",
    named_ports => "named-ports",
    named_port_ip_block => "named-port-ip-block",
    end_port => "end-port",
    ip_block_except => "ip-block-except",
    ip_block_strangers => "ip-block-strangers",
    overlapping_rules => "overlapping-rules",
    egress_only => "egress-only",
    ingress_egress_independent => "ingress-egress-independent",
    protocol_only => "protocol-only",
    reject => "reject",
    udp => "udp",
    metadata_name_label => "metadata-name-label",
    dns_egress => "dns-egress",
    payments_example => "payments-example",
    sctp => "sctp",
}

/// The ClusterNetworkPolicy cases translated from the upstream conformance suite
/// (`tests/lab/cluster-cases/`, see README.md): one test per directory, `CLUSTER_CASES`.
macro_rules! cluster_cases {
    ($($test:ident => $dir:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run_case_in(&case::cluster_cases_dir(), $dir);
            }
        )*
        const CLUSTER_CASES: &[&str] = &[$($dir),*];
    };
}

cluster_cases! {
    cluster_admin_egress_rules_ingress_unaffected => "admin-egress-rules-ingress-unaffected",
    cluster_admin_gress_rules => "admin-gress-rules",
    cluster_admin_gress_rules_deny_first => "admin-gress-rules-deny-first",
    cluster_admin_gress_rules_pass_first => "admin-gress-rules-pass-first",
    cluster_admin_ingress_rules_egress_unaffected => "admin-ingress-rules-egress-unaffected",
    cluster_admin_udp_rules => "admin-udp-rules",
    cluster_admin_udp_rules_deny_first => "admin-udp-rules-deny-first",
    cluster_admin_udp_rules_pass_first => "admin-udp-rules-pass-first",
    cluster_baseline_egress_rules_ingress_unaffected => "baseline-egress-rules-ingress-unaffected",
    cluster_baseline_egress_udp_rules => "baseline-egress-udp-rules",
    cluster_baseline_egress_udp_rules_deny_first => "baseline-egress-udp-rules-deny-first",
    cluster_baseline_gress_rules => "baseline-gress-rules",
    cluster_baseline_gress_rules_deny_first => "baseline-gress-rules-deny-first",
    cluster_baseline_ingress_rules_egress_unaffected => "baseline-ingress-rules-egress-unaffected",
    cluster_baseline_ingress_udp_rules => "baseline-ingress-udp-rules",
    cluster_baseline_ingress_udp_rules_deny_first => "baseline-ingress-udp-rules-deny-first",
    cluster_baseline_named_port_egress => "baseline-named-port-egress",
    cluster_baseline_node_peers => "baseline-node-peers",
    cluster_baseline_same_priority_shared_subject => "baseline-same-priority-shared-subject",
    cluster_hairpin_without_service => "hairpin-without-service",
    cluster_inline_cidr_allow_pod_ips => "inline-cidr-allow-pod-ips",
    cluster_inline_cidr_deny => "inline-cidr-deny",
    cluster_integration_admin_deny => "integration-admin-deny",
    cluster_integration_pass_to_baseline => "integration-pass-to-baseline",
    cluster_integration_pass_to_network_policy => "integration-pass-to-network-policy",
    cluster_named_port_egress => "named-port-egress",
    cluster_node_peers => "node-peers",
    cluster_pod_selectors => "pod-selectors",
    cluster_port_ranges => "port-ranges",
    cluster_priority_deny_first => "priority-deny-first",
    cluster_priority_pass_to_baseline => "priority-pass-to-baseline",
    cluster_same_priority => "same-priority",
    cluster_same_priority_shared_subject => "same-priority-shared-subject",
}

#[test]
fn every_cluster_case_directory_has_a_test() {
    let mut dirs: Vec<String> = std::fs::read_dir(case::cluster_cases_dir())
        .expect("tests/lab/cluster-cases")
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut listed: Vec<String> = CLUSTER_CASES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        dirs, listed,
        "tests/lab/cluster-cases and the cluster_cases! list differ"
    );
}

#[test]
fn every_case_directory_has_a_test() {
    let mut dirs: Vec<String> = std::fs::read_dir(case::cases_dir())
        .expect("tests/lab/cases")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut listed: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(dirs, listed, "tests/lab/cases and the cases! list differ");
}

/// Why the lab cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    match std::fs::metadata("/proc/self") {
        Ok(m) if m.uid() == 0 => {}
        Ok(m) => {
            return Some(format!(
                "not root (uid {}): the lab needs network namespaces",
                m.uid()
            ))
        }
        Err(e) => return Some(format!("cannot tell who runs the test: {e}")),
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`ip -V` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Some(format!("cannot run `ip` (iproute2): {e}")),
    }
}

/// A host of the lab: an endpoint of the case's inventory, in the inventory's sorted
/// order (the order of `netpolctl matrix`), or after them a stranger (see
/// [`Host::Stranger`]).
struct Endpoint {
    name: String,
    ips: Vec<IpAddr>,
    /// Its alias in `expected.txt`.
    alias: usize,
    /// Not in the inventory.
    stranger: bool,
}

impl Endpoint {
    fn address(&self, family: Family) -> Option<IpAddr> {
        self.ips.iter().copied().find(|ip| family.admits(ip))
    }
}

/// The case's hosts: the endpoints of its inventory, matched against `expected.txt`,
/// then its strangers.
fn endpoints(case: &Case) -> Vec<Endpoint> {
    let paths = Paths {
        policies: vec![case.policies.clone()],
        inventory: vec![case.inventory.clone()],
        options: Default::default(),
    };
    let loaded = inputs::load(&paths).unwrap_or_else(|rejected| {
        panic!("case {}: the inputs are rejected:\n{rejected}", case.name)
    });
    let mut endpoints: Vec<Endpoint> = loaded
        .model
        .inventory
        .endpoints
        .iter()
        .map(|e| {
            let name = e.id.to_string();
            let alias = case
                .endpoints
                .iter()
                .position(|(_, h)| *h == Host::Endpoint(name.clone()))
                .unwrap_or_else(|| {
                    panic!(
                        "case {}: expected.txt does not name endpoint {name}",
                        case.name
                    )
                });
            Endpoint {
                name,
                ips: e.ips.to_vec(),
                alias,
                stranger: false,
            }
        })
        .collect();
    let named = case
        .endpoints
        .iter()
        .filter(|(_, h)| matches!(h, Host::Endpoint(_)))
        .count();
    assert_eq!(
        endpoints.len(),
        named,
        "case {}: expected.txt names endpoints the inventory does not have",
        case.name
    );
    for (alias, (name, host)) in case.endpoints.iter().enumerate() {
        if let Host::Stranger(ips) = host {
            for ip in ips {
                if let Some(owner) = endpoints.iter().find(|e| e.ips.contains(ip)) {
                    panic!(
                        "case {}: stranger {name} has {ip}, an address of {}",
                        case.name, owner.name
                    );
                }
            }
            endpoints.push(Endpoint {
                name: format!("{name} (not in the inventory)"),
                ips: ips.clone(),
                alias,
                stranger: true,
            });
        }
    }
    for e in &endpoints {
        for f in Family::BOTH {
            let n = e.ips.iter().filter(|ip| f.admits(ip)).count();
            // With one address per family, the kernel's source address is the one
            // the probe means.
            assert!(
                n <= 1,
                "case {}: {} has {n} {f} addresses; the lab takes at most one per family",
                case.name,
                e.name
            );
        }
        for ip in &e.ips {
            assert!(
                net::is_test_address(ip),
                "case {}: {} has {ip}, outside 198.18.0.0/15 and 2001:db8::/32",
                case.name,
                e.name
            );
        }
    }
    endpoints
}

/// `netpolctl matrix … --family F -o json`: `allowed[(probe, family)][from][to]`.
fn matrix(case: &Case, endpoints: &[Endpoint]) -> BTreeMap<(usize, Family), Vec<Vec<bool>>> {
    let mut out = BTreeMap::new();
    for family in Family::BOTH {
        let mut cmd = Command::new(NETPOLCTL);
        cmd.arg("matrix")
            .arg("--policies")
            .arg(&case.policies)
            .arg("--inventory")
            .arg(&case.inventory);
        for p in &case.probes {
            cmd.arg("--probe").arg(p.to_string());
        }
        cmd.args(["--family", family.flag(), "-o", "json"]);
        let run = net::run(&mut cmd);
        let json: serde_json::Value =
            serde_json::from_slice(&run.stdout).expect("matrix -o json is JSON");
        for (k, p) in json["probes"]
            .as_array()
            .expect("probes")
            .iter()
            .enumerate()
        {
            let names: Vec<&str> = p["endpoints"]
                .as_array()
                .expect("endpoints")
                .iter()
                .map(|n| n.as_str().expect("a name"))
                .collect();
            let ours: Vec<&str> = endpoints
                .iter()
                .filter(|e| !e.stranger)
                .map(|e| e.name.as_str())
                .collect();
            assert_eq!(names, ours, "matrix endpoints");
            let probe = format!("{}/{}", p["port"], p["protocol"].as_str().unwrap());
            assert_eq!(probe, case.probes[k].to_string(), "matrix probe order");
            let allowed: Vec<Vec<bool>> =
                serde_json::from_value(p["allowed"].clone()).expect("allowed is [[bool]]");
            out.insert((k, family), allowed);
        }
    }
    out
}

/// One cell of the tables: a probe, a family, a sender and a receiver (indices into
/// the case's probes and the inventory's endpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Cell {
    probe: usize,
    family: Family,
    from: usize,
    to: usize,
}

impl Cell {
    fn describe(self, case: &Case, endpoints: &[Endpoint]) -> String {
        format!(
            "{} {}: {} → {}",
            case.probes[self.probe],
            self.family,
            endpoints[self.from].name,
            endpoints[self.to].name
        )
    }
}

/// Every cell the kernel can be asked about: probes over TCP or UDP, between two
/// endpoints that both have an address of the family; with the flow that asks.
fn flows(case: &Case, endpoints: &[Endpoint]) -> Vec<(Cell, Job)> {
    let mut flows = Vec::new();
    for (k, probe) in case.probes.iter().enumerate() {
        if probe.protocol == Protocol::Sctp {
            continue;
        }
        for family in Family::BOTH {
            for (i, from) in endpoints.iter().enumerate() {
                for (j, to) in endpoints.iter().enumerate() {
                    if let (Some(src), Some(dst)) = (from.address(family), to.address(family)) {
                        let cell = Cell {
                            probe: k,
                            family,
                            from: i,
                            to: j,
                        };
                        let job = Job {
                            from: i,
                            src,
                            dst,
                            port: probe.port,
                            protocol: probe.protocol,
                        };
                        flows.push((cell, job));
                    }
                }
            }
        }
    }
    flows
}

/// What the kernel did with every flow.
struct Verdicts {
    /// Never [`Outcome::Broken`].
    outcomes: BTreeMap<Cell, Outcome>,
    /// Flows that passed only on their second try.
    late: usize,
}

/// The lab of one case. Dropped in field order: listeners (and their sockets) first,
/// then the namespaces.
struct Lab {
    /// Held for their drop, which stops them and closes their sockets.
    _listeners: Vec<Listeners>,
    network: Network,
    ports: SourcePorts,
}

impl Lab {
    /// The network of the case's endpoints, with listeners on every probed TCP and
    /// UDP port of every address.
    fn build(case: &Case, endpoints: &[Endpoint]) -> Lab {
        let addresses: Vec<Vec<IpAddr>> = endpoints.iter().map(|e| e.ips.clone()).collect();
        let network = Network::build(&addresses);
        let ports_of = |proto| -> Vec<u16> {
            case.probes
                .iter()
                .filter(|p| p.protocol == proto)
                .map(|p| p.port)
                .collect()
        };
        let (tcp, udp) = (ports_of(Protocol::Tcp), ports_of(Protocol::Udp));
        let listeners = network
            .hosts
            .iter()
            .zip(endpoints)
            .map(|(host, e)| Listeners::start(host, &e.ips, &tcp, &udp))
            .collect();
        Lab {
            _listeners: listeners,
            network,
            ports: SourcePorts::new(),
        }
    }

    /// `netpolctl apply --local <endpoint>` in every endpoint's namespace (not in the
    /// strangers').
    fn apply(&self, case: &Case, endpoints: &[Endpoint]) {
        for (host, e) in self.network.hosts.iter().zip(endpoints) {
            if e.stranger {
                continue;
            }
            let out = host.exec(
                Path::new(NETPOLCTL),
                &[
                    "apply",
                    "--policies",
                    case.policies.to_str().unwrap(),
                    "--inventory",
                    case.inventory.to_str().unwrap(),
                    "--local",
                    &e.name,
                    "--deny",
                    if case.reject { "reject" } else { "drop" },
                ],
            );
            assert!(
                out.status.success(),
                "case {}: netpolctl apply --local {} failed in {}:\n{}{}",
                case.name,
                e.name,
                host.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Runs every flow, then once more those that timed out: a policy cannot allow a
    /// flow only sometimes, so a second try can only catch a probe the lab lost.
    /// Fails with every flow that broke for a reason other than a drop.
    fn probe(&self, flows: &[(Cell, Job)]) -> Result<Verdicts, Vec<(Cell, String)>> {
        let hosts: Vec<_> = self.network.hosts.iter().map(|h| h.file()).collect();
        let jobs: Vec<Job> = flows.iter().map(|(_, j)| *j).collect();
        let mut outcomes = probe::run(&hosts, &jobs, &self.ports);
        let again: Vec<usize> = (0..jobs.len())
            .filter(|&i| outcomes[i] == Outcome::TimedOut)
            .collect();
        let retry: Vec<Job> = again.iter().map(|&i| jobs[i]).collect();
        let mut late = 0;
        for (i, o) in again
            .into_iter()
            .zip(probe::run(&hosts, &retry, &self.ports))
        {
            late += usize::from(o == Outcome::Allowed);
            outcomes[i] = o;
        }
        let mut broken = Vec::new();
        let mut verdicts = BTreeMap::new();
        for ((cell, _), outcome) in flows.iter().zip(outcomes) {
            match outcome {
                Outcome::Broken(why) => broken.push((*cell, why)),
                o => {
                    verdicts.insert(*cell, o);
                }
            }
        }
        if broken.is_empty() {
            Ok(Verdicts {
                outcomes: verdicts,
                late,
            })
        } else {
            Err(broken)
        }
    }
}

/// Builds the lab, checks that every flow passes before any policy, applies, probes,
/// and tears the lab down. Returns the verdicts and the namespaces it used.
fn kernel(case: &Case, endpoints: &[Endpoint]) -> (Verdicts, Vec<String>) {
    let flows = flows(case, endpoints);
    let list = |cells: Vec<(Cell, String)>| -> String {
        cells
            .into_iter()
            .map(|(c, why)| format!("\n  {}: {why}", c.describe(case, endpoints)))
            .collect()
    };
    let lab = Lab::build(case, endpoints);
    // Before any policy every flow must pass: otherwise the lab, not a policy, would
    // decide the cells below. This also fills the neighbour caches.
    let failed: Vec<(Cell, String)> = match lab.probe(&flows) {
        Ok(v) => v
            .outcomes
            .into_iter()
            .filter(|(_, o)| *o != Outcome::Allowed)
            .map(|(c, o)| (c, describe_outcome(&o).to_string()))
            .collect(),
        Err(broken) => broken,
    };
    assert!(
        failed.is_empty(),
        "case {}: before any policy was applied, the lab network failed:{}",
        case.name,
        list(failed)
    );
    lab.apply(case, endpoints);
    let verdicts = lab.probe(&flows).unwrap_or_else(|broken| {
        panic!(
            "case {}: probes failed for a reason other than a drop:{}",
            case.name,
            list(broken)
        )
    });
    (verdicts, lab.network.names())
}

fn describe_outcome(o: &Outcome) -> &'static str {
    match o {
        Outcome::Allowed => "allowed",
        Outcome::TimedOut => "denied (timed out)",
        Outcome::LocalDrop => "denied (dropped at the sender: EPERM)",
        Outcome::Rejected => "denied (rejected: ICMP administratively prohibited)",
        Outcome::Reset => "denied (reset: ECONNREFUSED)",
        Outcome::Broken(_) => "broken",
    }
}

fn verdict(allowed: bool) -> &'static str {
    if allowed {
        "allowed"
    } else {
        "denied"
    }
}

/// Compares the three tables cell by cell; returns the number of cells and a line for
/// every cell where they differ. A denial must also have the form of the case's deny
/// action: with `reject`, no denied flow may go unanswered; with `drop`, none may be
/// rejected.
fn compare(
    case: &Case,
    endpoints: &[Endpoint],
    predicted: &BTreeMap<(usize, Family), Vec<Vec<bool>>>,
    kernel: &BTreeMap<Cell, Outcome>,
) -> (usize, Vec<String>) {
    let mut cells = 0;
    let mut differ = Vec::new();
    for probe in 0..case.probes.len() {
        for family in Family::BOTH {
            let expected = &case.expected[&(probe, family)];
            let matrix = &predicted[&(probe, family)];
            for (i, from) in endpoints.iter().enumerate() {
                for (j, to) in endpoints.iter().enumerate() {
                    cells += 1;
                    let cell = Cell {
                        probe,
                        family,
                        from: i,
                        to: j,
                    };
                    let place = cell.describe(case, endpoints);
                    let mark = expected[from.alias][to.alias];
                    let has_pair = from.address(family).is_some() && to.address(family).is_some();
                    if (mark == Mark::NoPair) == has_pair {
                        differ.push(if has_pair {
                            format!("{place}: expected.txt says `-`, but both have an address of this family")
                        } else {
                            format!("{place}: expected.txt gives a verdict, but one has no address of this family")
                        });
                        continue;
                    }
                    let expected = match mark {
                        Mark::Allowed => true,
                        Mark::Denied => false,
                        // The matrix calls self-traffic allowed whatever the family.
                        Mark::NoPair => i == j,
                    };
                    let kernel = kernel.get(&cell);
                    let matrix = (!from.stranger && !to.stranger).then(|| matrix[i][j]);
                    let wrong_form = |o: &Outcome| {
                        // EPERM at the sender is both: a reject on the output hook
                        // drops the packet too (and sends the ICMP error to itself).
                        if case.reject {
                            *o == Outcome::TimedOut
                        } else {
                            matches!(o, Outcome::Rejected | Outcome::Reset)
                        }
                    };
                    if matrix.is_some_and(|m| m != expected)
                        || kernel
                            .is_some_and(|o| (*o == Outcome::Allowed) != expected || wrong_form(o))
                    {
                        differ.push(format!(
                            "{place}: kernel {}, matrix {}, expected {}",
                            kernel.map_or("not probed", describe_outcome),
                            matrix.map_or("n/a (not in the inventory)", verdict),
                            match mark {
                                Mark::NoPair => "- (no address pair)",
                                _ => verdict(expected),
                            }
                        ));
                    }
                }
            }
        }
    }
    (cells, differ)
}

fn run_case(name: &str) {
    run_case_in(&case::cases_dir(), name);
}

fn run_case_in(dir: &Path, name: &str) {
    if let Some(why) = unavailable() {
        // In CI (`CI` set) a skip would pass without proving anything.
        assert!(
            std::env::var_os("CI").is_none(),
            "lab case {name} must run in CI, but cannot: {why}"
        );
        eprintln!("SKIPPED lab case {name}: {why}");
        return;
    }
    let started = Instant::now();
    let case = Case::read_in(dir, name);
    let endpoints = endpoints(&case);
    let predicted = matrix(&case, &endpoints);
    let (kernel, namespaces) = kernel(&case, &endpoints);
    let left: Vec<String> = net::listed_namespaces()
        .into_iter()
        .filter(|n| namespaces.contains(n))
        .collect();
    assert!(
        left.is_empty(),
        "case {name}: namespaces left behind: {left:?}"
    );

    let mut notes = String::new();
    if kernel.late > 0 {
        let _ = writeln!(
            notes,
            "  note: {} flows connected only on their second try",
            kernel.late
        );
    }
    let sctp: Vec<String> = case
        .probes
        .iter()
        .filter(|p| p.protocol == Protocol::Sctp)
        .map(Probe::to_string)
        .collect();
    if !sctp.is_empty() {
        let _ = writeln!(
            notes,
            "  note: {} not probed (the lab sends no SCTP: the kernels it runs on have no SCTP sockets): checked against the matrix only, after the SCTP rules loaded in every namespace",
            sctp.join(", ")
        );
    }
    let (cells, differ) = compare(&case, &endpoints, &predicted, &kernel.outcomes);
    assert!(
        differ.is_empty(),
        "case {name}: {} of {cells} cells differ (kernel = what the packets did, matrix = netpolctl matrix, expected = expected.txt; denied flows must be {}):\n  {}\n{notes}",
        differ.len(),
        if case.reject { "rejected" } else { "dropped" },
        differ.join("\n  ")
    );
    let probes: Vec<String> = case.probes.iter().map(Probe::to_string).collect();
    let strangers = endpoints.iter().filter(|e| e.stranger).count();
    let hosts = match strangers {
        0 => format!("{} endpoints", endpoints.len()),
        n => format!(
            "{} endpoints and {n} hosts outside the inventory",
            endpoints.len() - n
        ),
    };
    println!(
        "lab case {name}: {hosts}, {}; {cells} cells, {} probed in the kernel: kernel, matrix and expected agree ({:.1} s)\n{notes}",
        probes.join(" "),
        kernel.outcomes.len(),
        started.elapsed().as_secs_f64()
    );
}
