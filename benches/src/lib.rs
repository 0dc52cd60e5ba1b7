//! # netpol-benches
//!
//! Deterministic synthetic inputs for benchmarks: Kubernetes-shaped namespaces, pods and
//! NetworkPolicies at any scale, from a seed.
//!
//! One generator, two outputs that describe the same thing:
//! [`generate`] builds the validated [`Model`] directly (fast, for timing the compile
//! alone), and [`yaml::policies_yaml`] / [`yaml::inventory_yaml`] print that model as
//! the YAML an operator would feed the loader (NetworkPolicy documents; Namespace and
//! Pod documents as kubectl prints them). Loading the YAML gives the direct model back,
//! up to source positions (see [`strip_sources`]).
//!
//! ```
//! use netpol_benches::{generate, busiest_endpoint, Scale};
//! use rules_compiler::resolve::Index;
//! let model = generate(&Scale::FULL.percent(1), 1);
//! let index = Index::new(&model);
//! let local = busiest_endpoint(&index).unwrap();
//! println!("{}", index.endpoint(local).id);
//! ```
//!
//! What the inputs look like: namespace 0 is `kube-system` (kube-dns pods), namespace 1
//! is `monitoring` (prometheus, statsd), the rest are `TEAM-ENV-N` with labels `team`,
//! `env`, `name`. Pods carry `app`, `tier`, `version` and `pod-template-hash`, an IPv4
//! address from 198.18.0.0/15 (a quarter of the namespaces are dual-stack with an IPv6
//! address from 2001:db8::/32) and named ports whose numbers differ between apps and
//! versions. Every namespace starts with a default-deny-ingress policy, half of them
//! also deny egress except DNS, and the rest is a weighted mix of the shapes real
//! clusters use (same-app, namespace AND pod selectors, matchExpressions, ipBlock with
//! except, endPort ranges, named ports, UDP and SCTP egress, ingress + egress in one).
//!
//! ClusterNetworkPolicies (Admin and Baseline tiers) to add to a generated model:
//! [`cluster::cluster_policies`], printed by [`yaml::cluster_policies_yaml`].
#![forbid(unsafe_code)]

pub mod cluster;
pub mod control;
pub mod edits;
pub mod fleet;
pub mod harness;
pub mod load;
pub mod netns;
pub mod yaml;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use rules_compiler::model::{
    Direction, Endpoint, EndpointKind, Inventory, IpBlock, LabelSelector, Labels, Model, NamedPort,
    Namespace, NamespaceScope, ObjectName, Operator, Peer, Peers, Policy, PolicyMode, PortMatch,
    PortRule, Ports, Protocol, Requirement, Rule, Source, NAMESPACE_NAME_LABEL,
};
use rules_compiler::resolve::{EndpointId, Index};

/// The most endpoints one input can have: every IPv4 address of 198.18.0.0/15 except
/// the first and the last.
pub const MAX_ENDPOINTS: usize = 131_070;

/// How big an input to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Number of namespaces.
    pub namespaces: usize,
    /// Number of endpoints (pods), spread over the namespaces.
    pub endpoints: usize,
    /// Number of NetworkPolicies, spread over the namespaces.
    pub policies: usize,
}

impl Scale {
    /// The target size of the compile benchmark: 1,000 namespaces, 50,000 endpoints,
    /// 10,000 policies.
    pub const FULL: Scale = Scale {
        namespaces: 1_000,
        endpoints: 50_000,
        policies: 10_000,
    };

    /// [`FULL`](Self::FULL)'s proportions for `endpoints` endpoints: a namespace per 50
    /// endpoints and a policy per 5 (at least 3 and 10); `FULL` itself at 50,000.
    pub fn with_endpoints(endpoints: usize) -> Scale {
        if endpoints == Scale::FULL.endpoints {
            return Scale::FULL;
        }
        Scale {
            namespaces: (endpoints / 50).max(3),
            endpoints,
            policies: (endpoints / 5).max(10),
        }
    }

    /// This scale times `pct` percent, each count rounded to nearest (a non-empty count
    /// stays at least 1), so every size keeps the same proportions.
    pub fn percent(&self, pct: usize) -> Scale {
        let part = |n: usize| {
            if n == 0 {
                0
            } else {
                ((n * pct + 50) / 100).max(1)
            }
        };
        Scale {
            namespaces: part(self.namespaces),
            endpoints: part(self.endpoints),
            policies: part(self.policies),
        }
    }
}

/// A tiny deterministic PRNG (splitmix64): the same seed gives the same stream on every
/// platform and Rust version, which `rand`'s default generators do not promise.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must not be 0.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        // Multiply-shift instead of `%`: no modulo bias worth mentioning, no division.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// An application: pod name prefix, labels, and the named ports its pods declare.
struct AppKind {
    name: &'static str,
    pod_prefix: &'static str,
    tier: &'static str,
    ports: &'static [(&'static str, u16, Protocol)],
}

const fn app(
    name: &'static str,
    tier: &'static str,
    ports: &'static [(&'static str, u16, Protocol)],
) -> AppKind {
    AppKind {
        name,
        pod_prefix: name,
        tier,
        ports,
    }
}

use Protocol::{Sctp, Tcp, Udp};

/// Apps placed in ordinary namespaces. The same port name deliberately means different
/// numbers in different apps (`http` is 8080, 3000, 8000 or 9200), so named ports
/// resolve per peer.
const CATALOG: &[AppKind] = &[
    app(
        "web",
        "frontend",
        &[("http", 8080, Tcp), ("metrics", 9090, Tcp)],
    ),
    app(
        "frontend",
        "frontend",
        &[("http", 3000, Tcp), ("metrics", 9100, Tcp)],
    ),
    app(
        "gateway",
        "frontend",
        &[
            ("http", 8080, Tcp),
            ("https", 8443, Tcp),
            ("metrics", 9090, Tcp),
        ],
    ),
    app(
        "api",
        "backend",
        &[
            ("http", 8000, Tcp),
            ("grpc", 9000, Tcp),
            ("metrics", 9090, Tcp),
        ],
    ),
    app(
        "auth",
        "backend",
        &[("http", 8080, Tcp), ("grpc", 50051, Tcp)],
    ),
    app(
        "orders",
        "backend",
        &[
            ("http", 8080, Tcp),
            ("grpc", 9000, Tcp),
            ("metrics", 9102, Tcp),
        ],
    ),
    app("worker", "backend", &[("metrics", 9090, Tcp)]),
    app(
        "search",
        "backend",
        &[("http", 9200, Tcp), ("transport", 9300, Tcp)],
    ),
    app(
        "diameter",
        "backend",
        &[("diameter", 3868, Sctp), ("metrics", 9090, Tcp)],
    ),
    app(
        "postgres",
        "data",
        &[("postgres", 5432, Tcp), ("metrics", 9187, Tcp)],
    ),
    app(
        "redis",
        "data",
        &[("redis", 6379, Tcp), ("metrics", 9121, Tcp)],
    ),
    app(
        "kafka",
        "data",
        &[("kafka", 9092, Tcp), ("metrics", 7071, Tcp)],
    ),
    app(
        "memcached",
        "data",
        &[("memcache", 11211, Tcp), ("memcache-udp", 11211, Udp)],
    ),
];

const KUBE_DNS: AppKind = AppKind {
    name: "kube-dns",
    pod_prefix: "coredns",
    tier: "infra",
    ports: &[
        ("dns", 53, Udp),
        ("dns-tcp", 53, Tcp),
        ("metrics", 9153, Tcp),
    ],
};
const PROMETHEUS: AppKind = app("prometheus", "infra", &[("http", 9090, Tcp)]);
const STATSD: AppKind = app(
    "statsd",
    "infra",
    &[("statsd", 8125, Udp), ("admin", 8126, Tcp)],
);

/// Ports of the service-mesh sidecar some apps carry (in a second container).
const SIDECAR_PORTS: &[(&str, u16, Protocol)] =
    &[("envoy-admin", 15000, Tcp), ("envoy-metrics", 15090, Tcp)];
/// The label a sidecar-injected pod carries.
const SIDECAR_LABEL: (&str, &str) = ("security.istio.io/tlsMode", "istio");

const TEAMS: &[&str] = &[
    "payments",
    "checkout",
    "search",
    "identity",
    "catalog",
    "shipping",
    "billing",
    "ads",
    "analytics",
    "mobile",
    "messaging",
    "media",
    "risk",
    "support",
    "inventory",
    "pricing",
    "reviews",
    "loyalty",
    "notifications",
    "maps",
    "ledger",
    "growth",
    "data",
    "platform",
];
const ENVS: &[&str] = &["prod", "staging", "dev"];
const VERSIONS: &[&str] = &["v1", "v2", "v3"];

/// Characters Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Multiplier of the address permutation: prime, so coprime with [`MAX_ENDPOINTS`]
/// (2·3·5·17·257), which makes `i ↦ i·m + a mod MAX_ENDPOINTS` a bijection.
const IP_MULTIPLIER: u64 = 48_271;
/// Multiplier of the pod-suffix permutation: not a multiple of 3, so a bijection on
/// 27⁵ (five characters of [`NAME_ALPHABET`]).
const SUFFIX_MULTIPLIER: u64 = 1_000_003;
const SUFFIX_SPACE: u64 = 27 * 27 * 27 * 27 * 27;

const V4_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
/// `2001:db8:0:1::/64`, where dual-stack pods get their IPv6 address.
const V6_BASE: u128 = 0x2001_0db8_0000_0001_0000_0000_0000_0000;

/// The IPv4 address with this offset in 198.18.0.0/15 (`1..=MAX_ENDPOINTS`).
fn v4(offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(V4_BASE + offset)
}

/// What the generator decided about one namespace before making its objects.
struct NsPlan {
    name: String,
    labels: Labels,
    team: &'static str,
    /// Apps with pods here, as (kind, primary version).
    apps: Vec<(&'static AppKind, &'static str)>,
    endpoint_count: usize,
    policy_count: usize,
    dual_stack: bool,
    /// Whether the namespace denies egress (except DNS).
    egress_locked: bool,
}

/// Generates an input at this scale. The same scale and seed always give the same
/// model. Endpoints and policies are sorted by `namespace/name` as `validate` leaves
/// them; sources are empty.
///
/// # Panics
/// When `scale.endpoints` exceeds [`MAX_ENDPOINTS`], or when there are endpoints or
/// policies but no namespace to put them in.
pub fn generate(scale: &Scale, seed: u64) -> Model {
    assert!(
        scale.endpoints <= MAX_ENDPOINTS,
        "at most {MAX_ENDPOINTS} endpoints fit in 198.18.0.0/15"
    );
    assert!(
        scale.namespaces > 0 || (scale.endpoints == 0 && scale.policies == 0),
        "endpoints and policies need at least one namespace"
    );
    let mut rng = Rng::new(seed);
    let ip_offset = rng.next_u64() % MAX_ENDPOINTS as u64;
    let suffix_offset = rng.next_u64() % SUFFIX_SPACE;

    let plans = plan_namespaces(scale, &mut rng);
    let mut inventory = Inventory::default();
    let mut global = 0u64;
    for plan in &plans {
        inventory.namespaces.insert(
            plan.name.clone(),
            Namespace {
                name: plan.name.clone(),
                labels: plan.labels.clone(),
                implicit: false,
                source: Source::default(),
            },
        );
        for ep in make_endpoints(plan, &mut rng, &mut global, ip_offset, suffix_offset) {
            inventory.endpoints.push(ep);
        }
    }
    inventory.endpoints.sort_by(|a, b| a.id.cmp(&b.id));

    let teams: Vec<&'static str> = plans
        .iter()
        .skip(2)
        .map(|p| p.team)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut policies = Vec::with_capacity(scale.policies);
    for plan in &plans {
        make_policies(plan, &teams, &mut rng, &mut policies);
    }
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    Model {
        inventory,
        policies,
        cluster_policies: Vec::new(),
    }
}

/// Splits `total` into `parts` counts: each part gets its weight's share, the remainder
/// goes one by one to randomly chosen parts.
fn split(total: usize, weights: &[usize], rng: &mut Rng) -> Vec<usize> {
    let sum: usize = weights.iter().sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut counts: Vec<usize> = weights.iter().map(|w| total * w / sum).collect();
    let mut order: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0).collect();
    rng.shuffle(&mut order);
    let mut left = total - counts.iter().sum::<usize>();
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

fn plan_namespaces(scale: &Scale, rng: &mut Rng) -> Vec<NsPlan> {
    let n = scale.namespaces;
    // kube-system holds two DNS pods whatever the scale; the others share the rest,
    // unevenly (weights 1..=4) as real namespaces do.
    let dns_pods = if n > 1 {
        scale.endpoints.min(2)
    } else {
        scale.endpoints
    };
    let weights: Vec<usize> = (0..n)
        .map(|i| if i == 0 { 0 } else { 1 + rng.below(4) })
        .collect();
    let mut endpoint_counts = split(scale.endpoints - dns_pods, &weights, rng);
    if n > 0 {
        endpoint_counts[0] = dns_pods;
    }
    let policy_counts = split(scale.policies, &vec![1; n], rng);

    let mut plans = Vec::with_capacity(n);
    for i in 0..n {
        let (name, team, env) = match i {
            0 => ("kube-system".to_string(), "platform", "prod"),
            1 => ("monitoring".to_string(), "platform", "prod"),
            _ => {
                let team = *rng.pick(TEAMS);
                let env = *rng.pick(ENVS);
                (format!("{team}-{env}-{i}"), team, env)
            }
        };
        let mut labels = Labels::new();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.clone());
        if i > 0 {
            labels.insert("team".into(), team.into());
            labels.insert("env".into(), env.into());
            labels.insert("name".into(), name.clone());
            if rng.chance(1, 5) {
                labels.insert("compliance".into(), "pci".into());
            }
        }
        let endpoint_count = endpoint_counts[i];
        let apps: Vec<&'static AppKind> = match i {
            0 => vec![&KUBE_DNS],
            1 => vec![&PROMETHEUS, &STATSD],
            _ => {
                let mut kinds: Vec<&'static AppKind> = CATALOG.iter().collect();
                rng.shuffle(&mut kinds);
                kinds.truncate((endpoint_count / 6).clamp(1, 6));
                kinds
            }
        };
        let apps = apps
            .into_iter()
            .take(endpoint_count)
            .map(|k| (k, *rng.pick(VERSIONS)))
            .collect();
        plans.push(NsPlan {
            name,
            labels,
            team,
            apps,
            endpoint_count,
            policy_count: policy_counts[i],
            dual_stack: rng.chance(1, 4),
            egress_locked: i > 0 && rng.chance(1, 2),
        });
    }
    plans
}

/// A Kubernetes-style random name part (`pod-template-hash`).
fn random_name(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(*rng.pick(NAME_ALPHABET)))
        .collect()
}

/// A five-character pod suffix, unique per `global` index (a bijection on 27⁵).
fn pod_suffix(global: u64, offset: u64) -> String {
    let mut x = (global * SUFFIX_MULTIPLIER + offset) % SUFFIX_SPACE;
    let mut s = [0u8; 5];
    for c in s.iter_mut().rev() {
        *c = NAME_ALPHABET[(x % 27) as usize];
        x /= 27;
    }
    String::from_utf8(s.to_vec()).expect("ASCII alphabet")
}

fn make_endpoints(
    plan: &NsPlan,
    rng: &mut Rng,
    global: &mut u64,
    ip_offset: u64,
    suffix_offset: u64,
) -> Vec<Endpoint> {
    let mut out = Vec::with_capacity(plan.endpoint_count);
    if plan.apps.is_empty() {
        return out;
    }
    // Every app gets one replica, the rest are spread unevenly.
    let weights: Vec<usize> = plan.apps.iter().map(|_| 1 + rng.below(3)).collect();
    let extra = split(plan.endpoint_count - plan.apps.len(), &weights, rng);
    for (&(kind, version), extra) in plan.apps.iter().zip(extra) {
        let replicas = 1 + extra;
        let sidecar = kind.tier != "infra" && rng.chance(1, 3);
        // A canary: one pod of a bigger app runs the next version.
        let canary = replicas >= 3 && rng.chance(1, 3);
        let hashes = [random_name(rng, 10), random_name(rng, 10)];
        for r in 0..replicas {
            let (version, hash) = if canary && r == 0 {
                (next_version(version), &hashes[1])
            } else {
                (version, &hashes[0])
            };
            let mut labels = Labels::new();
            labels.insert("app".into(), kind.name.into());
            labels.insert("tier".into(), kind.tier.into());
            labels.insert("version".into(), version.into());
            labels.insert("pod-template-hash".into(), hash.clone());
            if kind.name == KUBE_DNS.name {
                labels.insert("k8s-app".into(), "kube-dns".into());
            }
            let mut ports: Vec<NamedPort> = kind
                .ports
                .iter()
                .map(|&(name, port, protocol)| NamedPort {
                    name: name.into(),
                    // v3 moved its HTTP port: one name, two numbers inside one app.
                    port: if name == "http" && version == "v3" {
                        port + 1
                    } else {
                        port
                    },
                    protocol,
                })
                .collect();
            if sidecar {
                labels.insert(SIDECAR_LABEL.0.into(), SIDECAR_LABEL.1.into());
                ports.extend(
                    SIDECAR_PORTS
                        .iter()
                        .map(|&(name, port, protocol)| NamedPort {
                            name: name.into(),
                            port,
                            protocol,
                        }),
                );
            }
            ports.sort();
            let offset = 1 + (*global * IP_MULTIPLIER + ip_offset) % MAX_ENDPOINTS as u64;
            let offset = u32::try_from(offset).expect("offset below 2^17");
            let mut ips = vec![IpAddr::V4(v4(offset))];
            if plan.dual_stack {
                ips.push(IpAddr::V6(Ipv6Addr::from(V6_BASE + u128::from(offset))));
            }
            let name = format!(
                "{}-{}-{}",
                kind.pod_prefix,
                hash,
                pod_suffix(*global, suffix_offset)
            );
            *global += 1;
            out.push(Endpoint {
                id: ObjectName::new(plan.name.clone(), name),
                labels,
                ips: ips.into(),
                ports: ports.into(),
                kind: EndpointKind::Pod,
                source: Source::default(),
            });
        }
    }
    out
}

fn next_version(v: &str) -> &'static str {
    match v {
        "v1" => "v2",
        "v2" => "v3",
        _ => "v4",
    }
}

// --- policy building blocks -----------------------------------------------------------

fn labels_of(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn match_labels(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels_of(pairs),
        match_expressions: Vec::new(),
    }
}

fn requirement(key: &str, operator: Operator) -> Requirement {
    Requirement {
        key: key.into(),
        operator,
    }
}

fn values(vals: &[&str]) -> BTreeSet<String> {
    vals.iter().map(|v| v.to_string()).collect()
}

fn named(protocol: Protocol, name: &str) -> PortRule {
    PortRule {
        protocol,
        port: PortMatch::Named(name.into()),
    }
}

fn range(protocol: Protocol, start: u16, end: u16) -> PortRule {
    PortRule {
        protocol,
        port: PortMatch::Range { start, end },
    }
}

fn own(ns: &str, pods: LabelSelector) -> Peer {
    Peer::Endpoints {
        namespaces: NamespaceScope::Own(ns.into()),
        pods,
    }
}

fn in_namespaces(namespaces: LabelSelector, pods: LabelSelector) -> Peer {
    Peer::Endpoints {
        namespaces: NamespaceScope::Selector(namespaces),
        pods,
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("literal CIDR")
}

fn rule(peers: Vec<Peer>, ports: Vec<PortRule>) -> Rule {
    Rule {
        peers: if peers.is_empty() {
            Peers::All
        } else {
            Peers::List(peers)
        },
        ports: if ports.is_empty() {
            Ports::All
        } else {
            Ports::List(ports)
        },
    }
}

/// The shapes of policy the generator mixes, after the per-namespace defaults.
#[derive(Clone, Copy, Debug)]
enum Template {
    SameApp,
    TeamFrontend,
    Expressions,
    IpBlockIngress,
    ExternalEgress,
    PortRanges,
    Monitoring,
    EgressToData,
    AllowAll,
    StatsdSctp,
    BothDirections,
}

/// Templates with their weights: the common shapes are common.
const TEMPLATES: &[(Template, usize)] = &[
    (Template::SameApp, 4),
    (Template::TeamFrontend, 4),
    (Template::Expressions, 2),
    (Template::IpBlockIngress, 1),
    (Template::ExternalEgress, 1),
    (Template::PortRanges, 2),
    (Template::Monitoring, 2),
    (Template::EgressToData, 2),
    (Template::AllowAll, 1),
    (Template::StatsdSctp, 1),
    (Template::BothDirections, 1),
];

fn pick_template(rng: &mut Rng) -> Template {
    let total: usize = TEMPLATES.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total);
    for &(t, w) in TEMPLATES {
        if x < w {
            return t;
        }
        x -= w;
    }
    unreachable!("x < total")
}

fn policy(
    ns: &str,
    name: String,
    pod_selector: LabelSelector,
    ingress: Option<Vec<Rule>>,
    egress: Option<Vec<Rule>>,
) -> Policy {
    Policy {
        id: ObjectName::new(ns, name),
        mode: PolicyMode::Enforce,
        pod_selector,
        ingress: ingress.map(Into::into),
        egress: egress.map(Into::into),
        source: Source::default(),
    }
}

fn make_policies(plan: &NsPlan, teams: &[&'static str], rng: &mut Rng, out: &mut Vec<Policy>) {
    let ns = plan.name.as_str();
    for slot in 0..plan.policy_count {
        let p = match slot {
            0 => policy(
                ns,
                "default-deny-ingress".into(),
                LabelSelector::everything(),
                Some(vec![]),
                None,
            ),
            1 if ns == "kube-system" => policy(
                ns,
                "allow-dns".into(),
                match_labels(&[("k8s-app", "kube-dns")]),
                Some(vec![rule(
                    vec![in_namespaces(
                        LabelSelector::everything(),
                        LabelSelector::everything(),
                    )],
                    vec![named(Udp, "dns"), named(Tcp, "dns-tcp")],
                )]),
                None,
            ),
            1 if plan.egress_locked => policy(
                ns,
                "default-deny-egress".into(),
                LabelSelector::everything(),
                None,
                Some(vec![rule(
                    vec![in_namespaces(
                        match_labels(&[(NAMESPACE_NAME_LABEL, "kube-system")]),
                        match_labels(&[("k8s-app", "kube-dns")]),
                    )],
                    vec![range(Udp, 53, 53), range(Tcp, 53, 53)],
                )]),
            ),
            _ => from_template(pick_template(rng), plan, slot, teams, rng),
        };
        out.push(p);
    }
}

/// The app a policy is about: one with pods in the namespace, or (in a namespace
/// without pods) any, so the policy selects nothing as real stale policies do.
fn pick_app(plan: &NsPlan, rng: &mut Rng) -> &'static AppKind {
    if plan.apps.is_empty() {
        rng.pick(CATALOG)
    } else {
        rng.pick(&plan.apps).0
    }
}

/// The first named port of an app that is not a metrics or sidecar port: what other
/// apps talk to.
fn service_port(kind: &AppKind) -> Option<(&'static str, Protocol)> {
    kind.ports
        .iter()
        .find(|(name, _, _)| *name != "metrics")
        .map(|&(name, _, protocol)| (name, protocol))
}

fn from_template(
    template: Template,
    plan: &NsPlan,
    slot: usize,
    teams: &[&'static str],
    rng: &mut Rng,
) -> Policy {
    let ns = plan.name.as_str();
    let kind = pick_app(plan, rng);
    let app = kind.name;
    let by_app = match_labels(&[("app", app)]);
    let team = if teams.is_empty() {
        plan.team
    } else {
        *rng.pick(teams)
    };
    match template {
        Template::SameApp => {
            let ports = service_port(kind)
                .map(|(name, protocol)| vec![named(protocol, name)])
                .unwrap_or_default();
            policy(
                ns,
                format!("allow-{app}-from-{app}-{slot}"),
                by_app.clone(),
                Some(vec![rule(vec![own(ns, by_app)], ports)]),
                None,
            )
        }
        Template::TeamFrontend => {
            let env = *rng.pick(ENVS);
            policy(
                ns,
                format!("allow-{app}-from-{team}-frontend-{slot}"),
                by_app,
                Some(vec![rule(
                    vec![in_namespaces(
                        match_labels(&[("team", team), ("env", env)]),
                        match_labels(&[("tier", "frontend")]),
                    )],
                    vec![named(Tcp, "http"), range(Tcp, 8443, 8443)],
                )]),
                None,
            )
        }
        Template::Expressions => {
            let mut selector = LabelSelector {
                match_labels: Labels::new(),
                match_expressions: vec![requirement(
                    "tier",
                    Operator::In(values(&["backend", "data"])),
                )],
            };
            if rng.chance(1, 2) {
                selector
                    .match_expressions
                    .push(requirement("canary", Operator::DoesNotExist));
            }
            let namespaces = LabelSelector {
                match_labels: Labels::new(),
                match_expressions: vec![
                    requirement("env", Operator::NotIn(values(&["dev"]))),
                    requirement("team", Operator::Exists),
                ],
            };
            let pods = LabelSelector {
                match_labels: Labels::new(),
                match_expressions: vec![
                    requirement("app", Operator::In(values(&["web", "gateway", "frontend"]))),
                    requirement("version", Operator::NotIn(values(&["v1"]))),
                ],
            };
            policy(
                ns,
                format!("allow-backends-from-web-{slot}"),
                selector,
                Some(vec![rule(
                    vec![in_namespaces(namespaces, pods)],
                    vec![named(Tcp, "grpc"), named(Tcp, "http")],
                )]),
                None,
            )
        }
        Template::IpBlockIngress => {
            let a = rng.below(256);
            let b = (a + 1 + rng.below(255)) % 256;
            let v6 = 1 + rng.below(0xffff);
            policy(
                ns,
                format!("allow-{app}-from-lab-net-{slot}"),
                by_app,
                Some(vec![rule(
                    vec![
                        Peer::IpBlock(IpBlock {
                            cidr: net("198.18.0.0/16"),
                            except: vec![
                                net(&format!("198.18.{a}.0/24")),
                                net(&format!("198.18.{b}.0/24")),
                            ],
                        }),
                        Peer::IpBlock(IpBlock {
                            cidr: net("2001:db8::/32"),
                            except: vec![net(&format!("2001:db8:{v6:x}::/48"))],
                        }),
                    ],
                    vec![range(Tcp, 443, 443), range(Tcp, 8443, 8443)],
                )]),
                None,
            )
        }
        Template::ExternalEgress => {
            let a = rng.below(256);
            policy(
                ns,
                format!("allow-{app}-egress-external-{slot}"),
                by_app,
                None,
                Some(vec![rule(
                    vec![Peer::IpBlock(IpBlock {
                        cidr: net("198.19.0.0/16"),
                        except: vec![net(&format!("198.19.{a}.0/24"))],
                    })],
                    vec![range(Tcp, 443, 443), range(Tcp, 30000, 32767)],
                )]),
            )
        }
        Template::PortRanges => {
            let env = *rng.pick(ENVS);
            policy(
                ns,
                format!("allow-{app}-port-ranges-{slot}"),
                by_app,
                Some(vec![rule(
                    vec![in_namespaces(
                        match_labels(&[("env", env)]),
                        LabelSelector::everything(),
                    )],
                    vec![range(Tcp, 8000, 8100), range(Udp, 5000, 5010)],
                )]),
                None,
            )
        }
        Template::Monitoring => policy(
            ns,
            format!("allow-prometheus-scrape-{slot}"),
            LabelSelector::everything(),
            Some(vec![rule(
                vec![in_namespaces(
                    match_labels(&[("team", "platform")]),
                    match_labels(&[("app", "prometheus")]),
                )],
                vec![named(Tcp, "metrics"), named(Tcp, "envoy-metrics")],
            )]),
            None,
        ),
        Template::EgressToData => policy(
            ns,
            format!("allow-backend-egress-to-data-{slot}"),
            match_labels(&[("tier", "backend")]),
            None,
            Some(vec![
                rule(
                    vec![own(ns, match_labels(&[("tier", "data")]))],
                    vec![
                        named(Tcp, "postgres"),
                        named(Tcp, "redis"),
                        named(Tcp, "kafka"),
                        named(Tcp, "memcache"),
                        named(Udp, "memcache-udp"),
                    ],
                ),
                rule(
                    vec![in_namespaces(
                        match_labels(&[("team", team)]),
                        match_labels(&[("app", "api")]),
                    )],
                    vec![named(Tcp, "grpc")],
                ),
            ]),
        ),
        Template::AllowAll => {
            // Two spellings of "everyone may connect": `from: [{namespaceSelector: {}}]`
            // (every pod of every namespace) and `- {}` (every address).
            let peers = if rng.chance(1, 2) {
                vec![in_namespaces(
                    LabelSelector::everything(),
                    LabelSelector::everything(),
                )]
            } else {
                vec![]
            };
            policy(
                ns,
                format!("allow-all-to-{app}-{slot}"),
                by_app,
                Some(vec![rule(peers, vec![])]),
                None,
            )
        }
        Template::StatsdSctp => policy(
            ns,
            format!("allow-egress-statsd-{slot}"),
            LabelSelector::everything(),
            None,
            Some(vec![
                rule(
                    vec![in_namespaces(
                        match_labels(&[("team", "platform")]),
                        match_labels(&[("app", "statsd")]),
                    )],
                    vec![named(Udp, "statsd")],
                ),
                rule(
                    vec![in_namespaces(
                        match_labels(&[("team", team)]),
                        LabelSelector::everything(),
                    )],
                    vec![range(Sctp, 3868, 3868)],
                ),
            ]),
        ),
        Template::BothDirections => policy(
            ns,
            format!("{app}-ingress-egress-{slot}"),
            by_app,
            Some(vec![rule(
                vec![own(ns, match_labels(&[("tier", "frontend")]))],
                vec![named(Tcp, "http")],
            )]),
            // `ports: [{protocol: TCP}]`: every TCP port, nothing else.
            Some(vec![rule(
                vec![own(ns, match_labels(&[("tier", "data")]))],
                vec![PortRule {
                    protocol: Tcp,
                    port: PortMatch::Any,
                }],
            )]),
        ),
    }
}

/// How many policies must isolate an endpoint before [`busiest_endpoint`] considers
/// it (ingress and egress counted separately).
pub const BUSY_MIN_POLICIES: usize = 3;

/// A local endpoint whose compile has real work to do: among the endpoints isolated by
/// at least [`BUSY_MIN_POLICIES`] policies, the one whose isolating rules name the most
/// peers (endpoints a selector peer resolves to, plus one per `ipBlock` or "all"
/// peer), so that its plan grows with the input as the worst cases do. Ties go to
/// more policies, then to the first in model order. When no endpoint is isolated by
/// that many policies, the one isolated by the most. `None` without endpoints.
pub fn busiest_endpoint(index: &Index<'_>) -> Option<EndpointId> {
    busiest_endpoints(index, 1).into_iter().next()
}

/// The `n` busiest endpoints (fewer when the model has fewer), busiest first, by the
/// order [`busiest_endpoint`] picks its one by: endpoints isolated by at least
/// [`BUSY_MIN_POLICIES`] policies first, by the peers their isolating rules name, then
/// by their policies; then the others by their policies alone; ties to the first in
/// model order. The `hosts` benchmark gives each of its hosts one of them.
pub fn busiest_endpoints(index: &Index<'_>, n: usize) -> Vec<EndpointId> {
    let model = index.model;
    // Peers repeat across policies (`namespaceSelector: {}` is everywhere), so each
    // distinct peer is resolved once.
    let mut resolved: BTreeMap<String, usize> = BTreeMap::new();
    let mut peer_work = |peer: &Peer| -> usize {
        match peer {
            Peer::IpBlock(_) => 1,
            Peer::Endpoints { .. } => *resolved
                .entry(format!("{peer:?}"))
                .or_insert_with(|| index.peer_endpoints(peer).len()),
        }
    };
    let mut work = |p: usize, dir: Direction| -> usize {
        model.policies[p]
            .rules(dir)
            .unwrap_or_default()
            .iter()
            .map(|r| match &r.peers {
                Peers::All => 1,
                Peers::List(peers) => peers.iter().map(&mut peer_work).sum(),
            })
            .sum()
    };
    let mut policy_work: BTreeMap<(usize, Direction), usize> = BTreeMap::new();
    let mut keyed: Vec<_> = (0..model.inventory.endpoints.len())
        .map(|ep| {
            let mut count = 0;
            let mut total = 0;
            for dir in [Direction::Ingress, Direction::Egress] {
                for p in index.isolating(ep, dir) {
                    count += 1;
                    total += *policy_work.entry((p, dir)).or_insert_with(|| work(p, dir));
                }
            }
            let busy = count >= BUSY_MIN_POLICIES;
            (busy, if busy { total } else { 0 }, count, Reverse(ep))
        })
        .collect();
    // Largest key first; the keys are distinct (the endpoint is in them).
    keyed.sort_unstable_by(|a, b| b.cmp(a));
    keyed
        .into_iter()
        .take(n)
        .map(|(_, _, _, Reverse(ep))| ep)
        .collect()
}

/// Clears every [`Source`] of a model, so a model loaded from files compares equal to
/// the generated one, which has none.
pub fn strip_sources(model: &mut Model) {
    for ns in model.inventory.namespaces.values_mut() {
        ns.source = Source::default();
    }
    for ep in &mut model.inventory.endpoints {
        ep.source = Source::default();
    }
    for s in &mut model.inventory.skipped {
        s.source = Source::default();
    }
    for p in &mut model.policies {
        p.source = Source::default();
    }
    for p in &mut model.cluster_policies {
        p.source = Source::default();
    }
    for n in &mut model.inventory.nodes {
        n.source = Source::default();
    }
}

#[cfg(test)]
mod tests;
