//! Data-plane benchmark: what a ruleset costs every new connection. Each setup gets a
//! client and a server network namespace joined by a veth pair, the server
//! namespace's ruleset being:
//!
//! - `none`: no ruleset at all (no conntrack either);
//! - `conntrack`: only `ct state established,related accept; ct state invalid drop`,
//!   policy accept: what any stateful filter pays before its first rule;
//! - `example`: netpol enforcing the bundled example (`config/`) for
//!   `payments/payments-api`, the client being `web/checkout` on 8080/TCP (allowed),
//!   behind netpolctl's default failsafe (inbound TCP 22, a set lookup in the base
//!   chain);
//! - `example-nofs`: the same with `--failsafe none`, for what the failsafe costs;
//! - `synth-50k`: netpol enforcing the synthetic input of `netpol-synth --namespaces
//!   1000 --endpoints 50000 --policies 10000 --seed 1` for the endpoint netpol-synth
//!   prints (the busiest), the client having the address of an endpoint that one of its
//!   ingress rules allows: among that endpoint's rules, the one whose peer set is the
//!   largest, and a peer that this one rule alone allows (picked with
//!   [`Index::verdict`], the same resolution the plan is built from);
//! - `synth-10k`: the same with `--endpoints 10000`;
//! - `synth-50k-1k` (issue 16): the `scaling` benchmark's 50,000 endpoints × 1,000
//!   policies point (100 namespaces), its busiest endpoint as the server: about
//!   176,000 elements, its port set sharded by address block (`plan::SHARD_ABOVE`);
//! - `synth-50k-cnp` (issue 15): `synth-50k`'s input, server and flows plus the
//!   generated ClusterNetworkPolicies ([`netpol_benches::cluster::cluster_policies`]:
//!   100 Admin + 100 Baseline objects × 25 rules, seed 1), loaded with the same
//!   `netpolctl apply`. So that the measured flows are still allowed *and* go through
//!   the Admin tier to the NetworkPolicies (not decided early by an Admin `Accept`),
//!   every Admin rule that would decide a measured flow at the server
//!   ([`Index::cluster_tier`]) has its action changed to `Pass`, and so has an Admin
//!   `Accept` that would decide the denied address's flow; then [`Index::cluster_verdict`]
//!   must say the measured flows are decided by the NetworkPolicies (allowed) and the
//!   denied one is not allowed. The server is isolated on ingress, so Baseline is never
//!   reached for these flows; its maps are loaded all the same;
//! - `linear-1k`, `linear-10k`: no netpol; one nftables rule per allowed (peer, port)
//!   of `synth-50k`'s server (`ip saddr X tcp dport P accept`, the rule-per-peer design
//!   of iptables-style enforcers) after `ct state established,related accept`, 1,000 or
//!   10,000 rules, the measured flows' rules last.
//!
//! Every ruleset is loaded once, into its own server namespace (`netpolctl apply
//! --local …` or `nft -f`), with a `netpol-load` TCP and UDP server there. Then each
//! setup is checked to enforce (the measured flows pass; the same port from an address
//! the policy does not allow gets no answer, while under `none` and `conntrack` it
//! must get one), and the rounds run: in every round every setup, in an order that
//! starts one setup later each round, gets `netpol-load tcp` with `--concurrency`
//! loops (new connections per second), `netpol-load tcp` with one loop (connect
//! latency without queueing behind other loops) and `netpol-load udp` (round trips on
//! established flows), all from its client namespace. Many short rounds, because the
//! machine is shared: a busy moment hits every setup of a round alike. The
//! enforcement check runs again after the rounds. Client and servers are pinned to
//! different CPUs with taskset when the machine has two or more.
//!
//! Reported per setup: medians over the rounds of the connection rate, the connect
//! latency's median and p99, the UDP rate and round-trip median and p99, and the
//! median of the per-round ratios to `none` (and of the latency to `example`); a ratio
//! taken within one round is immune to what the machine did in other rounds. It
//! measures; it asserts nothing about time.
//!
//! Network hygiene: namespaces `npdp-PID-K-c` and `npdp-PID-K-s`, addresses from
//! 198.18.0.0/15 (the inputs' own), every ruleset loaded with `ip netns exec` into a
//! server namespace (checked to differ from the benchmark's own); the namespaces,
//! their processes and the temporary inputs are removed when the benchmark ends, also
//! on panic and on Ctrl-C (a Drop guard).
//!
//! Run (root): `cargo bench -p netpol-benches --bench dataplane`
//! Options after `--`: `--rounds N` (20), `--tcp-seconds S` (1, the rate run),
//! `--latency-seconds S` (1, the one-loop latency run), `--udp-seconds S` (0.5),
//! `--concurrency N` (8 TCP loops), `--udp-concurrency N` (4), `--setups a,b,…`
//! (all), `--netpolctl PATH` (skip the build), `--no-pin`, `--keep DIR` (write the
//! inputs and per-round JSON there and keep them), `--cluster A,B,R` (the cluster
//! policies of `synth-50k-cnp`: Admin and Baseline objects, rules each; 100,100,25),
//! `--nft-like-cnp NAME=FILE` (repeatable: an extra setup NAME loading FILE with `nft
//! -f`, measured with `synth-50k-cnp`'s addresses and flows; for diagnostics),
//! `--netpolctl-before PATH` (another build's netpolctl: every netpol setup chosen is
//! measured a second time as `NAME-before`, loaded by it, in the same rounds).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ipnet::IpNet;
use netpol_benches::cluster::{cluster_policies, ClusterScale};
use netpol_benches::harness::{absolute_path_arg, daemon_bin_or_skip, input_dir, run};
use netpol_benches::load::Summary;
use netpol_benches::netns::{
    example_model, exec, fmt_num, median, Lab, LoadRun, CONNTRACK_RULESET,
};
use netpol_benches::yaml::{cluster_policies_yaml, inventory_yaml, policies_yaml};
use netpol_benches::{busiest_endpoint, generate, Scale};
use rules_compiler::model::{Action, Direction, Peer, Peers, PortMatch, Ports, Tier};
use rules_compiler::resolve::{
    port_range_on, ClusterRuleRef, Decision, EndpointId, Index, TierOutcome, Verdict,
};

const TCP: u8 = 6;
const UDP: u8 = 17;

struct Args {
    rounds: usize,
    tcp_seconds: f64,
    udp_seconds: f64,
    latency_seconds: f64,
    concurrency: usize,
    udp_concurrency: usize,
    setups: Option<Vec<String>>,
    netpolctl: Option<PathBuf>,
    /// Another build's `netpolctl`: every netpol setup once more with it, `NAME-before`.
    netpolctl_before: Option<PathBuf>,
    pin: bool,
    keep: Option<PathBuf>,
    /// The cluster policies of `synth-50k-cnp`.
    cluster: ClusterScale,
    /// Extra setups `NAME=FILE`: `nft -f FILE` with `synth-50k-cnp`'s server and flows.
    nft_like_cnp: Vec<(String, PathBuf)>,
}

fn parse_args() -> Args {
    let mut a = Args {
        rounds: 20,
        tcp_seconds: 1.0,
        udp_seconds: 0.5,
        latency_seconds: 1.0,
        concurrency: 8,
        udp_concurrency: 4,
        setups: None,
        netpolctl: None,
        netpolctl_before: None,
        pin: true,
        keep: None,
        cluster: ClusterScale::ISSUE_15,
        nft_like_cnp: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => a.rounds = value().parse().expect("--rounds N"),
            "--tcp-seconds" => a.tcp_seconds = value().parse().expect("--tcp-seconds S"),
            "--udp-seconds" => a.udp_seconds = value().parse().expect("--udp-seconds S"),
            "--latency-seconds" => {
                a.latency_seconds = value().parse().expect("--latency-seconds S")
            }
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency N"),
            "--udp-concurrency" => {
                a.udp_concurrency = value().parse().expect("--udp-concurrency N")
            }
            "--setups" => a.setups = Some(value().split(',').map(str::to_string).collect()),
            "--netpolctl" => a.netpolctl = Some(absolute_path_arg("--netpolctl", value())),
            "--netpolctl-before" => {
                a.netpolctl_before = Some(absolute_path_arg("--netpolctl-before", value()))
            }
            "--no-pin" => a.pin = false,
            "--keep" => a.keep = Some(PathBuf::from(value())),
            "--nft-like-cnp" => {
                let v = value();
                let (name, file) = v.split_once('=').expect("--nft-like-cnp NAME=FILE");
                a.nft_like_cnp.push((
                    name.to_string(),
                    absolute_path_arg("--nft-like-cnp", file.to_string()),
                ));
            }
            "--cluster" => {
                let v: Vec<usize> = value()
                    .split(',')
                    .map(|s| s.trim().parse().expect("--cluster A,B,R"))
                    .collect();
                let [admin, baseline, rules] = v[..] else {
                    panic!("--cluster needs three numbers: Admin, Baseline, rules each");
                };
                a.cluster = ClusterScale {
                    admin,
                    baseline,
                    rules,
                };
            }
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

// ------------------------------------------------------------------------ the setups --

/// How the server namespace's ruleset is made.
#[derive(Clone, Debug)]
enum Ruleset {
    None,
    Netpol {
        policies: PathBuf,
        inventory: PathBuf,
        local: String,
        /// Keep netpolctl's default failsafe (inbound TCP 22 before any policy);
        /// `false`: `--failsafe none`.
        failsafe: bool,
        /// Another `netpolctl` than the benchmark's (`--netpolctl-before`).
        netpolctl: Option<PathBuf>,
    },
    /// `nft -f FILE`; `held` says what it loads.
    Nft {
        file: PathBuf,
        held: String,
    },
}

/// One measured flow: from `client` to the server's `port`.
#[derive(Clone, Copy, Debug)]
struct Flow {
    client: Ipv4Addr,
    port: u16,
}

#[derive(Clone, Debug)]
struct Setup {
    name: String,
    ruleset: Ruleset,
    server: Ipv4Addr,
    tcp: Flow,
    udp: Option<Flow>,
    /// A source the ruleset must drop on the TCP flow's port (under `none`, pass).
    denied: Ipv4Addr,
    /// What the ruleset is, for the table.
    about: String,
    /// Whether the ruleset drops `denied` (otherwise it must let it pass).
    enforces: bool,
}

fn first_v4(index: &Index<'_>, ep: EndpointId) -> Option<Ipv4Addr> {
    index.endpoint(ep).ips.iter().find_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    })
}

/// The flows a setup measures on `server`'s ingress, chosen from the policies.
struct Picked {
    server: Ipv4Addr,
    tcp: Flow,
    udp: Option<Flow>,
    denied: Ipv4Addr,
    about: String,
}

/// For `proto`: among `server`'s isolating ingress rules with selector peers and a
/// port of that protocol, the one with the largest peer set, and in it a peer whose
/// address that one rule alone allows (any allowing peer when none is allowed by
/// exactly one). Returns the flow, the rule's policy, its peer-set size and how many
/// (policy, rule, peer, port) allow the flow.
fn pick_flow(
    index: &Index<'_>,
    server: EndpointId,
    proto: u8,
) -> Option<(Flow, String, usize, usize)> {
    let model = index.model;
    let server_ep = index.endpoint(server);
    let server_ip = first_v4(index, server)?;
    let mut candidates: Vec<(usize, u16, Vec<EndpointId>, String)> = Vec::new();
    for p in index.isolating(server, Direction::Ingress) {
        let policy = &model.policies[p];
        for rule in policy.rules(Direction::Ingress).unwrap_or_default() {
            let (Peers::List(peers), Ports::List(ports)) = (&rule.peers, &rule.ports) else {
                continue;
            };
            let Some(port) = ports
                .iter()
                .filter(|pr| pr.protocol.number() == proto)
                .find_map(|pr| port_range_on(pr, Some(server_ep)).map(|(start, _)| start))
            else {
                continue;
            };
            let mut eps: Vec<EndpointId> = Vec::new();
            for peer in peers {
                if let Peer::Endpoints { .. } = peer {
                    eps.extend(index.peer_endpoints(peer));
                }
            }
            eps.sort_unstable();
            eps.dedup();
            candidates.push((eps.len(), port, eps, policy.id.to_string()));
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (size, port, eps, policy) in candidates {
        let mut fallback = None;
        for &ep in eps.iter().filter(|&&ep| ep != server).take(2000) {
            let Some(ip) = first_v4(index, ep) else {
                continue;
            };
            if ip == server_ip {
                continue;
            }
            match index.verdict(server, Direction::Ingress, IpAddr::V4(ip), proto, port) {
                Verdict::Allowed { by, .. } if by.len() == 1 => {
                    return Some((Flow { client: ip, port }, policy, size, 1));
                }
                Verdict::Allowed { by, .. } => {
                    fallback.get_or_insert((Flow { client: ip, port }, by.len()));
                }
                _ => {}
            }
        }
        if let Some((flow, matches)) = fallback {
            return Some((flow, policy, size, matches));
        }
    }
    None
}

fn pick(index: &Index<'_>, server: EndpointId) -> Picked {
    let name = &index.endpoint(server).id;
    let server_ip = first_v4(index, server).unwrap_or_else(|| panic!("{name} has no IPv4"));
    let (tcp, tcp_policy, tcp_peers, tcp_matches) = pick_flow(index, server, TCP)
        .unwrap_or_else(|| panic!("no TCP rule of {name}'s ingress allows a peer"));
    let udp = pick_flow(index, server, UDP);
    // An address of an endpoint the policies do not allow, or else one of no endpoint
    // (from the top of 198.18.0.0/15, where the inputs' addresses do not reach).
    let unused = (1..=1000u32)
        .map(|k| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 255, 255)) - k))
        .filter(|ip| index.endpoint_at(&IpAddr::V4(*ip)).is_none());
    let denied = index
        .model
        .inventory
        .endpoints
        .iter()
        .enumerate()
        .filter(|&(ep, _)| ep != server)
        .filter_map(|(ep, _)| first_v4(index, ep))
        .chain(unused)
        .filter(|ip| *ip != server_ip && *ip != tcp.client)
        .find(|ip| {
            !index
                .verdict(server, Direction::Ingress, IpAddr::V4(*ip), TCP, tcp.port)
                .is_allowed()
        })
        .unwrap_or_else(|| panic!("every address may reach {name} on {}/TCP", tcp.port));
    let mut about = format!(
        "{name}; TCP {} -> {}:{} by {tcp_policy} ({tcp_peers} peers; {tcp_matches} \
         matching rule entries)",
        tcp.client, server_ip, tcp.port
    );
    if let Some((u, p, n, m)) = &udp {
        let _ = write!(
            about,
            "; UDP {} -> :{} by {p} ({n} peers; {m} matching rule entries)",
            u.client, u.port
        );
    }
    let _ = write!(about, "; must drop TCP from {denied}");
    Picked {
        server: server_ip,
        tcp,
        udp: udp.map(|(f, _, _, _)| f),
        denied,
        about,
    }
}

/// One allowed source and what it may reach: `None` every protocol and port, else
/// (protocol, first port, last port).
type Allowed = (IpNet, Option<(u8, u16, u16)>);

/// One rule per allowed (source, port) of `server`'s ingress, in policy order.
fn allow_list(index: &Index<'_>, server: EndpointId) -> Vec<Allowed> {
    let model = index.model;
    let server_ep = index.endpoint(server);
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for p in index.isolating(server, Direction::Ingress) {
        for rule in model.policies[p]
            .rules(Direction::Ingress)
            .unwrap_or_default()
        {
            let mut sources: Vec<IpNet> = Vec::new();
            match &rule.peers {
                Peers::All => sources.push("0.0.0.0/0".parse().expect("a CIDR")),
                Peers::List(peers) => {
                    for peer in peers {
                        match peer {
                            Peer::IpBlock(b) if b.cidr.addr().is_ipv4() && b.except.is_empty() => {
                                sources.push(b.cidr)
                            }
                            // A block with holes is several rules in a linear design;
                            // the synthetic input's are few, leave them out.
                            Peer::IpBlock(_) => {}
                            Peer::Endpoints { .. } => {
                                for ep in index.peer_endpoints(peer) {
                                    if let Some(ip) = first_v4(index, ep) {
                                        sources.push(IpNet::from(IpAddr::V4(ip)));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let mut ports: Vec<Option<(u8, u16, u16)>> = Vec::new();
            match &rule.ports {
                Ports::All => ports.push(None),
                Ports::List(list) => {
                    for pr in list {
                        let proto = pr.protocol.number();
                        if proto != TCP && proto != UDP {
                            continue;
                        }
                        match (&pr.port, port_range_on(pr, Some(server_ep))) {
                            (PortMatch::Any, _) => ports.push(Some((proto, 0, 65535))),
                            (_, Some((a, b))) => ports.push(Some((proto, a, b))),
                            _ => {}
                        }
                    }
                }
            }
            for s in &sources {
                for p in &ports {
                    if seen.insert((*s, *p)) {
                        out.push((*s, *p));
                    }
                }
            }
        }
    }
    out
}

/// The linear ruleset: `rules` accept rules, the measured flows' last (TCP's very last).
fn linear_ruleset(
    allow: &[Allowed],
    rules: usize,
    tcp: Flow,
    udp: Option<Flow>,
) -> (String, usize) {
    let clients: Vec<Ipv4Addr> = std::iter::once(tcp.client)
        .chain(udp.map(|u| u.client))
        .collect();
    let measured = 1 + usize::from(udp.is_some());
    let mut text = String::from(
        "table inet linear {\n  chain input {\n    type filter hook input priority 0; policy drop;\n    \
         ct state established,related accept\n    ct state invalid drop\n    iif \"lo\" accept\n",
    );
    let rule = |src: &IpNet, port: &Option<(u8, u16, u16)>| -> String {
        let ports = match port {
            None => String::new(),
            Some((p, 0, 65535)) => format!(" meta l4proto {}", proto_name(*p)),
            Some((p, a, b)) if a == b => format!(" {} dport {a}", proto_name(*p)),
            Some((p, a, b)) => format!(" {} dport {a}-{b}", proto_name(*p)),
        };
        format!("    ip saddr {src}{ports} accept\n")
    };
    let mut n = 0;
    for (src, port) in allow {
        if n + measured >= rules {
            break;
        }
        // Nothing before the measured rules may match the measured flows.
        if clients
            .iter()
            .any(|c| src.contains(&IpAddr::V4(*c)) || src.prefix_len() == 0)
        {
            continue;
        }
        text.push_str(&rule(src, port));
        n += 1;
    }
    if let Some(u) = udp {
        text.push_str(&rule(
            &IpNet::from(IpAddr::V4(u.client)),
            &Some((UDP, u.port, u.port)),
        ));
        n += 1;
    }
    text.push_str(&rule(
        &IpNet::from(IpAddr::V4(tcp.client)),
        &Some((TCP, tcp.port, tcp.port)),
    ));
    n += 1;
    text.push_str("  }\n}\n");
    (text, n)
}

fn proto_name(p: u8) -> &'static str {
    match p {
        TCP => "tcp",
        UDP => "udp",
        _ => unreachable!("only TCP and UDP rules"),
    }
}

/// The synthetic input at `endpoints` endpoints, written to `dir`, with its setup.
fn synth_setup(dir: &Path, endpoints: usize) -> (Setup, Vec<Allowed>) {
    let scale = Scale {
        endpoints,
        ..Scale::FULL
    };
    synth_setup_of(dir, &scale, format!("synth-{}k", endpoints / 1000))
}

/// A netpol setup of the synthetic input of `scale` (seed 1), named `name`.
fn synth_setup_of(dir: &Path, scale: &Scale, name: String) -> (Setup, Vec<Allowed>) {
    let model = generate(scale, 1);
    std::fs::create_dir_all(dir).expect("the input directory");
    let (policies, inventory) = (dir.join("policies.yaml"), dir.join("inventory.yaml"));
    std::fs::write(&policies, policies_yaml(&model)).expect("writing policies.yaml");
    std::fs::write(&inventory, inventory_yaml(&model)).expect("writing inventory.yaml");
    let index = Index::new(&model);
    let server = busiest_endpoint(&index).expect("a busiest endpoint");
    let p = pick(&index, server);
    let allow = allow_list(&index, server);
    let setup = Setup {
        name,
        ruleset: Ruleset::Netpol {
            policies,
            inventory,
            local: index.endpoint(server).id.to_string(),
            failsafe: true,
            netpolctl: None,
        },
        server: p.server,
        tcp: p.tcp,
        udp: p.udp,
        denied: p.denied,
        about: p.about,
        enforces: true,
    };
    (setup, allow)
}

/// `base` (a `synth-*` setup of `endpoints` endpoints) with the generated cluster
/// policies added, written to `dir` (`policies/` holding `policies.yaml` and
/// `cluster.yaml`, and `inventory.yaml`). Admin rules that would decide the measured
/// flows (or accept the denied one) become `Pass` (see the module documentation).
fn synth_cnp_setup(dir: &Path, endpoints: usize, base: &Setup, cluster: &ClusterScale) -> Setup {
    let scale = Scale {
        endpoints,
        ..Scale::FULL
    };
    let mut model = generate(&scale, 1);
    model.cluster_policies = cluster_policies(cluster, 1);
    let (server, server_name) = {
        let index = Index::new(&model);
        let server = busiest_endpoint(&index).expect("a busiest endpoint");
        (server, index.endpoint(server).id.to_string())
    };
    let Ruleset::Netpol { local, .. } = &base.ruleset else {
        panic!("{} is not a netpol setup", base.name);
    };
    assert_eq!(&server_name, local, "the same server as {}", base.name);
    // (source, protocol, port, must be allowed)
    let mut flows = vec![(base.tcp.client, TCP, base.tcp.port, true)];
    flows.extend(base.udp.map(|u| (u.client, UDP, u.port, true)));
    flows.push((base.denied, TCP, base.tcp.port, false));
    let mut passed: Vec<String> = Vec::new();
    for &(client, proto, port, allowed) in &flows {
        loop {
            let index = Index::new(&model);
            let outcome = index.cluster_tier(
                Tier::Admin,
                server,
                Direction::Ingress,
                IpAddr::V4(client),
                proto,
                port,
            );
            let by: ClusterRuleRef = match outcome {
                TierOutcome::Matched { action, by }
                    if action == Action::Accept || (allowed && action == Action::Deny) =>
                {
                    by
                }
                _ => break,
            };
            drop(index);
            let cp = &model.cluster_policies[by.id];
            passed.push(format!(
                "{}/ingress[{}] {:?}",
                cp.name, by.rule, cp.ingress[by.rule].action
            ));
            let rule = &mut model.cluster_policies[by.id].ingress[by.rule];
            rule.action = Action::Pass;
        }
    }
    let index = Index::new(&model);
    let mut traversed = 0;
    for &(client, proto, port, allowed) in &flows {
        let v = index.cluster_verdict(server, Direction::Ingress, IpAddr::V4(client), proto, port);
        if allowed {
            assert!(
                matches!(&v.decision, Decision::NetworkPolicy { verdict } if verdict.is_allowed()),
                "{client} -> {port}/{proto}: {v:?}"
            );
            traversed += v.passed.len();
        } else {
            assert!(!v.is_allowed(), "{client} -> {port}/{proto}: {v:?}");
        }
    }
    let admin_subjects = index.cluster_subjects(server, Tier::Admin).len();
    let baseline_subjects = index.cluster_subjects(server, Tier::Baseline).len();
    drop(index);
    std::fs::create_dir_all(dir.join("policies")).expect("the input directory");
    let (policies, inventory) = (dir.join("policies"), dir.join("inventory.yaml"));
    std::fs::write(policies.join("policies.yaml"), policies_yaml(&model))
        .expect("writing policies.yaml");
    std::fs::write(policies.join("cluster.yaml"), cluster_policies_yaml(&model))
        .expect("writing cluster.yaml");
    std::fs::write(&inventory, inventory_yaml(&model)).expect("writing inventory.yaml");
    Setup {
        name: format!("synth-{}k-cnp", endpoints / 1000),
        ruleset: Ruleset::Netpol {
            policies,
            inventory,
            local: server_name,
            failsafe: true,
            netpolctl: None,
        },
        about: format!(
            "{} + {} Admin + {} Baseline ClusterNetworkPolicies x {} rules ({} Admin and \
             {} Baseline select the server; Admin rules changed to Pass: {}; Admin Pass \
             rules the measured flows follow to the NetworkPolicies: {})",
            base.name,
            cluster.admin,
            cluster.baseline,
            cluster.rules,
            admin_subjects,
            baseline_subjects,
            if passed.is_empty() {
                "none".to_string()
            } else {
                passed.join(", ")
            },
            traversed
        ),
        ..base.clone()
    }
}

// --------------------------------------------------------------------------- the lab --

#[path = "common/stop.rs"]
mod stop;

/// Gives pair `k`'s namespaces the addresses `setup` uses.
fn address(lab: &Lab, k: usize, setup: &Setup) {
    let mut client: Vec<Ipv4Addr> = vec![setup.tcp.client, setup.denied];
    client.extend(setup.udp.map(|u| u.client));
    client.sort();
    client.dedup();
    lab.address(lab.client(k), &client);
    lab.address(lab.server(k), &[setup.server]);
}

/// Loads `setup`'s ruleset into pair `k`'s server namespace; returns the seconds the
/// load took and what the kernel holds.
fn load_ruleset(lab: &Lab, k: usize, setup: &Setup, netpolctl: &Path) -> (f64, String) {
    let server = lab.server(k);
    let t0 = Instant::now();
    let held = match &setup.ruleset {
        Ruleset::None => String::from("empty"),
        Ruleset::Netpol {
            policies,
            inventory,
            local,
            failsafe,
            netpolctl: other,
        } => {
            let netpolctl = other.as_deref().unwrap_or(netpolctl);
            let none: &[&str] = if *failsafe {
                &[]
            } else {
                &["--failsafe", "none"]
            };
            run(exec(server, None, netpolctl)
                .arg("apply")
                .arg("--policies")
                .arg(policies)
                .arg("--inventory")
                .arg(inventory)
                .args(["--local", local])
                .args(none));
            let secs = t0.elapsed().as_secs_f64();
            let show = run(exec(server, None, netpolctl).arg("show"));
            let first = show.lines().next().unwrap_or_default().to_string();
            return (secs, first);
        }
        Ruleset::Nft { file, held } => {
            run(Command::new("ip")
                .args(["netns", "exec", server, "nft", "-f"])
                .arg(file));
            held.clone()
        }
    };
    (t0.elapsed().as_secs_f64(), held)
}

// ------------------------------------------------------------------------- measuring --

struct Client<'a> {
    lab: &'a Lab,
    load: &'a Path,
    cpu: Option<usize>,
}

impl Client<'_> {
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        k: usize,
        mode: &str,
        from: Ipv4Addr,
        to: Ipv4Addr,
        port: u16,
        concurrency: usize,
        seconds: f64,
        timeout_ms: u64,
    ) -> Summary {
        LoadRun {
            load: self.load,
            cpu: self.cpu,
            mode,
            from,
            to,
            port,
            concurrency,
            seconds,
            timeout_ms,
        }
        .run(self.lab.client(k))
    }

    /// Whether one short try from `from` gets through.
    fn passes(&self, k: usize, mode: &str, from: Ipv4Addr, to: Ipv4Addr, port: u16) -> bool {
        self.run(k, mode, from, to, port, 1, 0.3, 300).count > 0
    }

    /// Setup `k` enforces: the measured flows pass, the address the policy does not
    /// allow gets no answer on the TCP flow's port (under `none` and `conntrack` it
    /// must get one: the check can tell the difference).
    fn check(&self, k: usize, s: &Setup) {
        let ok = (0..5).any(|_| self.passes(k, "tcp", s.tcp.client, s.server, s.tcp.port));
        assert!(ok, "{}: the measured TCP flow does not pass", s.name);
        let denied_passes = self.passes(k, "tcp", s.denied, s.server, s.tcp.port);
        assert_eq!(
            denied_passes,
            !s.enforces,
            "{}: TCP from {} to {}:{} {}",
            s.name,
            s.denied,
            s.server,
            s.tcp.port,
            if denied_passes {
                "passes: the ruleset does not enforce"
            } else {
                "fails without any ruleset: the lab is broken"
            }
        );
        if let Some(u) = s.udp {
            let ok = (0..5).any(|_| self.passes(k, "udp", u.client, s.server, u.port));
            assert!(ok, "{}: the measured UDP flow does not pass", s.name);
        }
    }
}

/// One setup's results in one round.
struct Sample {
    /// `--concurrency` loops: the connection rate.
    tcp: Summary,
    /// One loop: the connect latency without queueing behind the other loops.
    lat: Summary,
    udp: Option<Summary>,
}

fn main() {
    let args = parse_args();
    let Some(netpolctl) = daemon_bin_or_skip(args.netpolctl.as_deref(), "netpolctl") else {
        return;
    };
    let load = PathBuf::from(env!("CARGO_BIN_EXE_netpol-load"));
    let (dir, temp) = input_dir(args.keep.as_deref(), "netpol-dataplane-");

    // --- the setups
    let t0 = Instant::now();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let example = example_model(&config);
    let ex_index = Index::new(&example);
    let ex_server = (0..example.inventory.endpoints.len())
        .find(|&e| ex_index.endpoint(e).id.to_string() == "payments/payments-api")
        .expect("payments/payments-api in config/");
    let ex = pick(&ex_index, ex_server);
    assert_eq!(
        ex_index
            .endpoint_at(&IpAddr::V4(ex.tcp.client))
            .map(|e| ex_index.endpoint(e).id.to_string()),
        Some("web/checkout".to_string()),
        "the example's allowed client of payments-api should be web/checkout"
    );
    let none = Setup {
        name: "none".into(),
        ruleset: Ruleset::None,
        server: ex.server,
        tcp: ex.tcp,
        // With no filter any port answers; the example's flows are as good as any.
        udp: Some(Flow {
            client: ex.tcp.client,
            port: 5353,
        }),
        denied: ex.denied,
        about: "no ruleset, no conntrack".into(),
        enforces: false,
    };
    // What any stateful filter pays before its first rule: conntrack on every packet,
    // an entry per connection. NetworkPolicy needs it (replies pass as established).
    let conntrack_file = dir.join("conntrack.nft");
    std::fs::write(&conntrack_file, CONNTRACK_RULESET).expect("writing the conntrack ruleset");
    let conntrack = Setup {
        name: "conntrack".into(),
        ruleset: Ruleset::Nft {
            file: conntrack_file,
            held: "2 rules, policy accept".into(),
        },
        about: "nft: ct state established,related accept; ct state invalid drop; policy accept"
            .into(),
        ..none.clone()
    };
    let example_setup = Setup {
        name: "example".into(),
        ruleset: Ruleset::Netpol {
            policies: config.join("policies"),
            inventory: config.join("inventory"),
            local: "payments/payments-api".into(),
            failsafe: true,
            netpolctl: None,
        },
        server: ex.server,
        tcp: ex.tcp,
        udp: ex.udp,
        denied: ex.denied,
        about: format!("netpol, config/: {}", ex.about),
        enforces: true,
    };
    let (mut synth50, allow) = synth_setup(&dir.join("synth-50k"), 50_000);
    synth50.about = format!(
        "netpol, 10,000 policies, 50,000 endpoints: {}",
        synth50.about
    );
    let synth50cnp = synth_cnp_setup(&dir.join("synth-50k-cnp"), 50_000, &synth50, &args.cluster);
    // The `scaling` benchmark's 50,000 x 1,000 point (issue 16): its busiest endpoint
    // holds 176,000 elements, the port set sharded (plan::SHARD_ABOVE).
    let point = Scale {
        namespaces: 100,
        endpoints: 50_000,
        policies: 1_000,
    };
    let (mut synth50_1k, _) =
        synth_setup_of(&dir.join("synth-50k-1k"), &point, "synth-50k-1k".into());
    synth50_1k.about = format!(
        "netpol, 1,000 policies, 50,000 endpoints (scaling's point): {}",
        synth50_1k.about
    );
    let (mut synth10, _) = synth_setup(&dir.join("synth-10k"), 10_000);
    synth10.about = format!(
        "netpol, 10,000 policies, 10,000 endpoints: {}",
        synth10.about
    );
    // The example without the failsafe's set lookup in the base chain: what the
    // default failsafe costs a new connection.
    let example_bare = Setup {
        name: "example-nofs".into(),
        ruleset: Ruleset::Netpol {
            policies: config.join("policies"),
            inventory: config.join("inventory"),
            local: "payments/payments-api".into(),
            failsafe: false,
            netpolctl: None,
        },
        about: "netpol, config/, --failsafe none".into(),
        ..example_setup.clone()
    };
    // Diagnostics: a ruleset file (say, netpolctl compile's output for synth-50k-cnp
    // with one map emptied) measured on synth-50k-cnp's addresses and flows.
    let like_cnp: Vec<Setup> = args
        .nft_like_cnp
        .iter()
        .map(|(name, file)| Setup {
            name: name.clone(),
            ruleset: Ruleset::Nft {
                file: file.clone(),
                held: format!("nft -f {}", file.display()),
            },
            about: format!("nft -f {}, flows of synth-50k-cnp", file.display()),
            ..synth50cnp.clone()
        })
        .collect();
    let mut setups = vec![
        none,
        conntrack,
        example_setup,
        example_bare,
        synth50.clone(),
        synth50cnp,
        synth50_1k,
        synth10,
    ];
    setups.extend(like_cnp);
    for rules in [1_000, 10_000] {
        let (text, n) = linear_ruleset(&allow, rules, synth50.tcp, synth50.udp);
        let file = dir.join(format!("linear-{}k.nft", rules / 1000));
        std::fs::write(&file, text).expect("writing the linear ruleset");
        setups.push(Setup {
            name: format!("linear-{}k", rules / 1000),
            ruleset: Ruleset::Nft {
                file,
                held: format!("{n} rules + 3"),
            },
            about: format!(
                "nft, {n} rules `ip saddr X tcp dport P accept` from synth-50k's allow-list \
                 ({} (source, port) pairs), measured flows last",
                allow.len()
            ),
            ..synth50.clone()
        });
    }
    if let Some(only) = &args.setups {
        setups.retain(|s| only.contains(&s.name));
        assert!(!setups.is_empty(), "--setups names none of the setups");
    }
    // Before and after a change in one run: each netpol setup also loaded by the other
    // build's netpolctl.
    if let Some(before) = &args.netpolctl_before {
        let twins: Vec<Setup> = setups
            .iter()
            .filter(|s| matches!(s.ruleset, Ruleset::Netpol { .. }))
            .map(|s| {
                let mut twin = s.clone();
                twin.name = format!("{}-before", s.name);
                if let Ruleset::Netpol { netpolctl, .. } = &mut twin.ruleset {
                    *netpolctl = Some(before.clone());
                }
                twin.about = format!("{}; loaded by {}", s.about, before.display());
                twin
            })
            .collect();
        setups.extend(twins);
    }
    println!(
        "dataplane benchmark: {} rounds x {} setups, TCP {} s x {} loops, UDP {} s x {} loops \
         (inputs prepared in {:.1} s)",
        args.rounds,
        setups.len(),
        args.tcp_seconds,
        args.concurrency,
        args.udp_seconds,
        args.udp_concurrency,
        t0.elapsed().as_secs_f64()
    );
    for s in &setups {
        println!("  {:<11} {}", s.name, s.about);
    }

    // --- the lab and its servers
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (client_cpu, server_cpu) = if args.pin && cpus >= 2 {
        (Some(0), Some(1))
    } else {
        (None, None)
    };
    stop::catch_signals();
    let mut lab = Lab::new("npdp", temp);
    let mut loads: Vec<(f64, String)> = Vec::new();
    for s in &setups {
        let k = lab.add_pair();
        address(&lab, k, s);
        loads.push(load_ruleset(&lab, k, s, &netpolctl));
        let server = lab.server(k).to_string();
        let mut modes = vec![("tcp-server", s.tcp.port)];
        modes.extend(s.udp.map(|u| ("udp-server", u.port)));
        for (mode, port) in modes {
            let mut cmd = exec(&server, server_cpu, &load);
            cmd.args([mode, "--port", &port.to_string()]);
            lab.start_server(cmd);
        }
    }
    let client = Client {
        lab: &lab,
        load: &load,
        cpu: client_cpu,
    };
    for (k, s) in setups.iter().enumerate() {
        client.check(k, s);
    }
    println!("  every setup enforces (checked before and after the rounds)");

    // --- the rounds
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let mut log = String::new();
    for round in 0..args.rounds {
        for i in 0..setups.len() {
            assert!(!stop::stopped(), "interrupted: removing the lab");
            let k = (round + i) % setups.len();
            let s = &setups[k];
            let tcp = client.run(
                k,
                "tcp",
                s.tcp.client,
                s.server,
                s.tcp.port,
                args.concurrency,
                args.tcp_seconds,
                1000,
            );
            let lat = client.run(
                k,
                "tcp",
                s.tcp.client,
                s.server,
                s.tcp.port,
                1,
                args.latency_seconds,
                1000,
            );
            let udp = s.udp.map(|u| {
                client.run(
                    k,
                    "udp",
                    u.client,
                    s.server,
                    u.port,
                    args.udp_concurrency,
                    args.udp_seconds,
                    1000,
                )
            });
            eprintln!(
                "round {:2} {:<11} TCP {:7.0}/s (t/o {}, err {}) 1 loop: median {:5.1} us p99 {:6.1} us  UDP {}",
                round + 1,
                s.name,
                tcp.rate_per_s,
                tcp.timeouts + lat.timeouts,
                tcp.errors + lat.errors,
                lat.median_us,
                lat.p99_us,
                udp.as_ref().map_or("–".into(), |u| format!(
                    "{:8.0}/s median {:6.1} us p99 {:7.1} us (t/o {}, err {})",
                    u.rate_per_s, u.median_us, u.p99_us, u.timeouts, u.errors
                ))
            );
            let _ = writeln!(
                log,
                "{{\"round\":{},\"setup\":\"{}\",\"tcp\":{},\"tcp_1_loop\":{},\"udp\":{}}}",
                round + 1,
                s.name,
                serde_json::to_string(&tcp).expect("JSON"),
                serde_json::to_string(&lat).expect("JSON"),
                udp.as_ref()
                    .map_or("null".into(), |u| serde_json::to_string(u).expect("JSON"))
            );
            samples
                .entry(s.name.clone())
                .or_default()
                .push(Sample { tcp, lat, udp });
        }
    }
    // Still enforcing after the rounds: no number above is of a ruleset that let go.
    for (k, s) in setups.iter().enumerate() {
        client.check(k, s);
    }
    let _ = std::fs::write(dir.join("samples.jsonl"), &log);
    drop(lab);

    // --- the table
    // Per-round ratios: round r's samples of both setups ran minutes apart at
    // most, so the machine's state cancels better than in a ratio of medians.
    let ratio = |name: &str, base: &str, f: &dyn Fn(&Sample) -> Option<f64>| -> f64 {
        let (Some(a), Some(b)) = (samples.get(name), samples.get(base)) else {
            return f64::NAN;
        };
        median(
            a.iter()
                .zip(b)
                .filter_map(|(x, y)| Some(f(x)? / f(y)?))
                .collect(),
        )
    };
    println!();
    println!(
        "| setup | new TCP conn/s ({} loops) | × none | connect median µs (1 loop) | × example | connect p99 µs (1 loop) | connect median µs ({} loops) | UDP round trips/s | × none | UDP median µs | UDP p99 µs | timeouts / errors | load s | kernel holds |",
        args.concurrency, args.concurrency
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (s, (load_secs, held)) in setups.iter().zip(&loads) {
        let Some(v) = samples.get(&s.name) else {
            continue;
        };
        let med = |f: &dyn Fn(&Sample) -> Option<f64>| median(v.iter().filter_map(f).collect());
        let faults: (u64, u64) = v.iter().fold((0, 0), |(t, e), x| {
            let (ut, ue) = x.udp.as_ref().map_or((0, 0), |u| (u.timeouts, u.errors));
            (
                t + x.tcp.timeouts + x.lat.timeouts + ut,
                e + x.tcp.errors + x.lat.errors + ue,
            )
        });
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} |",
            s.name,
            fmt_num(med(&|x| Some(x.tcp.rate_per_s)), 0),
            fmt_num(ratio(&s.name, "none", &|x| Some(x.tcp.rate_per_s)), 3),
            fmt_num(med(&|x| Some(x.lat.median_us)), 1),
            fmt_num(ratio(&s.name, "example", &|x| Some(x.lat.median_us)), 3),
            fmt_num(med(&|x| Some(x.lat.p99_us)), 1),
            fmt_num(med(&|x| Some(x.tcp.median_us)), 1),
            fmt_num(med(&|x| x.udp.as_ref().map(|u| u.rate_per_s)), 0),
            fmt_num(
                ratio(&s.name, "none", &|x| x.udp.as_ref().map(|u| u.rate_per_s)),
                3
            ),
            fmt_num(med(&|x| x.udp.as_ref().map(|u| u.median_us)), 1),
            fmt_num(med(&|x| x.udp.as_ref().map(|u| u.p99_us)), 1),
            faults.0,
            faults.1,
            fmt_num(*load_secs, 2),
            held
        );
    }
    println!();
    for synth in ["synth-50k", "synth-10k"] {
        if !samples.contains_key(synth) {
            continue;
        }
        println!(
            "{synth}: connection rate {} of none's (target ≥ 0.90), {} of conntrack's; connect \
             latency (1 loop) median {} and p99 {} of example's (target ≤ 1.10)",
            fmt_num(ratio(synth, "none", &|x| Some(x.tcp.rate_per_s)), 3),
            fmt_num(ratio(synth, "conntrack", &|x| Some(x.tcp.rate_per_s)), 3),
            fmt_num(ratio(synth, "example", &|x| Some(x.lat.median_us)), 3),
            fmt_num(ratio(synth, "example", &|x| Some(x.lat.p99_us)), 3),
        );
    }
    if samples.contains_key("synth-50k-cnp") {
        println!(
            "synth-50k-cnp (issue 15): connection rate {} of synth-50k's, {} of conntrack's; \
             connect latency (1 loop) median {} and p99 {} of synth-50k's; UDP round trips/s {} \
             of synth-50k's (medians of per-round ratios)",
            fmt_num(
                ratio("synth-50k-cnp", "synth-50k", &|x| Some(x.tcp.rate_per_s)),
                3
            ),
            fmt_num(
                ratio("synth-50k-cnp", "conntrack", &|x| Some(x.tcp.rate_per_s)),
                3
            ),
            fmt_num(
                ratio("synth-50k-cnp", "synth-50k", &|x| Some(x.lat.median_us)),
                3
            ),
            fmt_num(
                ratio("synth-50k-cnp", "synth-50k", &|x| Some(x.lat.p99_us)),
                3
            ),
            fmt_num(
                ratio("synth-50k-cnp", "synth-50k", &|x| x
                    .udp
                    .as_ref()
                    .map(|u| u.rate_per_s)),
                3
            ),
        );
    }
    // Before and after (`--netpolctl-before`): each netpol setup against its twin and
    // both against conntrack, medians of per-round ratios.
    for s in &setups {
        let before = format!("{}-before", s.name);
        if !samples.contains_key(&before) {
            continue;
        }
        let rate = |x: &Sample| Some(x.tcp.rate_per_s);
        let lat = |x: &Sample| Some(x.lat.median_us);
        println!(
            "{}: connection rate {} of conntrack's after, {} before ({} of before's); connect \
             latency (1 loop) median {} of conntrack's after, {} before ({} of before's)",
            s.name,
            fmt_num(ratio(&s.name, "conntrack", &rate), 3),
            fmt_num(ratio(&before, "conntrack", &rate), 3),
            fmt_num(ratio(&s.name, &before, &rate), 3),
            fmt_num(ratio(&s.name, "conntrack", &lat), 3),
            fmt_num(ratio(&before, "conntrack", &lat), 3),
            fmt_num(ratio(&s.name, &before, &lat), 3),
        );
    }
    for (name, _) in &args.nft_like_cnp {
        println!(
            "{name}: connection rate {} of synth-50k's, {} of synth-50k-cnp's; connect latency \
             (1 loop) median {} of synth-50k's, {} of synth-50k-cnp's (medians of per-round \
             ratios)",
            fmt_num(ratio(name, "synth-50k", &|x| Some(x.tcp.rate_per_s)), 3),
            fmt_num(ratio(name, "synth-50k-cnp", &|x| Some(x.tcp.rate_per_s)), 3),
            fmt_num(ratio(name, "synth-50k", &|x| Some(x.lat.median_us)), 3),
            fmt_num(ratio(name, "synth-50k-cnp", &|x| Some(x.lat.median_us)), 3),
        );
    }
    if args.keep.is_some() {
        println!("inputs and per-round samples kept in {}", dir.display());
    }
}
