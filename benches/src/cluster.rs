//! Deterministic ClusterNetworkPolicy objects (`policy.networking.k8s.io/v1alpha2`) to
//! put beside a generated input: `admin` Admin and `baseline` Baseline objects with
//! `rules` rules each (defaults 100 / 100 / 25, the issue-15 benchmark).
//!
//! What they look like, drawn from the labels [`crate::generate`] gives namespaces and
//! pods:
//! - subject: namespaces by `team`, `env`, `compliance: pci` or a `matchExpressions`
//!   mix, sometimes every namespace; or pods (`app` / `tier`) in such namespaces;
//! - a rule's peers (1 to 3): namespaces or pods selected the same ways; egress rules
//!   also `networks`: blocks inside 198.18.0.0/15 and 2001:db8::/32, plus a few
//!   well-known ones (169.254.169.254/32, 10.0.0.0/8, 192.168.0.0/16, 172.16.0.0/12);
//! - protocols: none (every protocol) for one rule in five, else 1 to 3 entries of TCP,
//!   UDP or SCTP with a port, a range or every port, or a `destinationNamedPort`;
//! - actions: Admin Accept / Deny / Pass about 3:3:2, Baseline Accept / Deny / Pass
//!   about 4:4:1;
//! - the `rules` rules of an object are split between ingress and egress (an object is
//!   ingress-only, egress-only or both), at most 25 per direction as the API allows;
//! - priorities spread over 0–1000 per tier, one object in ten sharing its
//!   predecessor's (validation warns about each tie; the model orders them by name).
//!
//! [`cluster_policies`] builds them as the model holds them (sorted by
//! [`ClusterPolicy::order_key`]); [`crate::yaml::cluster_policies_yaml`] prints them.

use ipnet::IpNet;
use rules_compiler::model::{
    Action, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, LabelSelector, Operator,
    Protocol, Source, Subject, Tier, NAMESPACE_NAME_LABEL,
};

use crate::{match_labels, net, requirement, values, Rng, CATALOG, ENVS, TEAMS};

/// How many cluster policies to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterScale {
    /// Admin-tier objects.
    pub admin: usize,
    /// Baseline-tier objects.
    pub baseline: usize,
    /// Rules per object (ingress and egress together; at most 50).
    pub rules: usize,
}

impl ClusterScale {
    /// The issue-15 benchmark: 100 Admin and 100 Baseline objects, 25 rules each.
    pub const ISSUE_15: ClusterScale = ClusterScale {
        admin: 100,
        baseline: 100,
        rules: 25,
    };
}

impl Default for ClusterScale {
    fn default() -> Self {
        ClusterScale::ISSUE_15
    }
}

/// The most rules per direction the API allows.
const MAX_RULES: usize = 25;

/// Named ports the generated inputs' pods declare (and one they do not).
const NAMED_PORTS: &[&str] = &["http", "metrics", "grpc", "dns", "postgres", "unused-name"];

/// Generates the cluster policies, sorted by [`ClusterPolicy::order_key`]. The same
/// scale and seed always give the same objects; they depend on nothing else (labels
/// come from the generator's vocabulary), so they fit an input of any size.
///
/// # Panics
/// When `scale.rules` exceeds 50 (25 per direction).
pub fn cluster_policies(scale: &ClusterScale, seed: u64) -> Vec<ClusterPolicy> {
    assert!(
        scale.rules <= 2 * MAX_RULES,
        "at most {} rules per object (25 per direction)",
        2 * MAX_RULES
    );
    // A stream of its own: adding cluster policies changes nothing else of an input.
    let mut rng = Rng::new(seed ^ 0xC1A5_7E12_0000_0015);
    let mut out = Vec::with_capacity(scale.admin + scale.baseline);
    for (tier, n) in [(Tier::Admin, scale.admin), (Tier::Baseline, scale.baseline)] {
        let mut priority = 0u16;
        for i in 0..n {
            // Spread over 0..=1000; one in ten shares its predecessor's priority.
            if i == 0 || !rng.chance(1, 10) {
                priority = u16::try_from(i * 1000 / n.max(1)).expect("at most 1000");
            }
            out.push(make_policy(tier, i, priority, scale.rules, &mut rng));
        }
    }
    out.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    out
}

fn make_policy(tier: Tier, i: usize, priority: u16, rules: usize, rng: &mut Rng) -> ClusterPolicy {
    let subject = subject(rng);
    // Ingress-only, egress-only or both (a random share each).
    let ingress_count = match rng.below(4) {
        0 => rules.min(MAX_RULES),
        1 => rules.saturating_sub(MAX_RULES),
        _ => {
            let low = rules.saturating_sub(MAX_RULES);
            let high = rules.min(MAX_RULES);
            low + rng.below(high - low + 1)
        }
    };
    let egress_count = rules - ingress_count;
    let mut ingress = Vec::with_capacity(ingress_count);
    for r in 0..ingress_count {
        ingress.push(make_rule(tier, false, r, rng));
    }
    let mut egress = Vec::with_capacity(egress_count);
    for r in 0..egress_count {
        egress.push(make_rule(tier, true, r, rng));
    }
    let prefix = match tier {
        Tier::Admin => "admin",
        Tier::Baseline => "baseline",
    };
    ClusterPolicy {
        name: format!("{prefix}-{i:03}-{}", subject_tag(&subject)),
        tier,
        priority,
        subject,
        ingress,
        egress,
        source: Source::default(),
    }
}

/// A short word for an object's name, from its subject.
fn subject_tag(subject: &Subject) -> String {
    let sel = match subject {
        Subject::Namespaces(s) => s,
        Subject::Pods { pods, .. } => pods,
    };
    sel.match_labels
        .values()
        .next()
        .unwrap_or("all")
        .to_string()
}

/// A namespace selector as platform teams write them.
fn namespace_selector(rng: &mut Rng) -> LabelSelector {
    match rng.below(10) {
        0..=2 => match_labels(&[("team", *rng.pick(TEAMS))]),
        3 | 4 => match_labels(&[("env", *rng.pick(ENVS))]),
        5 => match_labels(&[("compliance", "pci")]),
        6 => match_labels(&[("team", *rng.pick(TEAMS)), ("env", *rng.pick(ENVS))]),
        7 => LabelSelector {
            match_labels: Default::default(),
            match_expressions: vec![
                requirement("env", Operator::In(values(&["prod", "staging"]))),
                requirement("compliance", Operator::DoesNotExist),
            ],
        },
        8 => match_labels(&[(NAMESPACE_NAME_LABEL, "kube-system")]),
        _ => LabelSelector::everything(),
    }
}

fn pod_selector(rng: &mut Rng) -> LabelSelector {
    match rng.below(4) {
        0 | 1 => match_labels(&[("app", rng.pick(CATALOG).name)]),
        2 => match_labels(&[("tier", *rng.pick(&["frontend", "backend", "data"]))]),
        _ => LabelSelector {
            match_labels: Default::default(),
            match_expressions: vec![requirement(
                "app",
                Operator::In(values(&[rng.pick(CATALOG).name, rng.pick(CATALOG).name])),
            )],
        },
    }
}

fn subject(rng: &mut Rng) -> Subject {
    if rng.chance(2, 3) {
        Subject::Namespaces(namespace_selector(rng))
    } else {
        Subject::Pods {
            namespaces: namespace_selector(rng),
            pods: pod_selector(rng),
        }
    }
}

/// Private ranges platform policies name (never sent to by a benchmark).
const WELL_KNOWN: &[&str] = &["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12"];
/// The test ranges whole.
const WIDE: &[&str] = &["198.18.0.0/15", "198.19.0.0/16", "2001:db8::/32"];

/// A network block: mostly inside the test ranges, some well-known ones.
fn network(rng: &mut Rng) -> IpNet {
    match rng.below(8) {
        0 => net("169.254.169.254/32"),
        1 => net(WELL_KNOWN[rng.below(WELL_KNOWN.len())]),
        2 | 3 => net(&format!(
            "198.{}.{}.0/{}",
            18 + rng.below(2),
            rng.below(256),
            *rng.pick(&[24, 22, 20])
        ))
        .trunc(),
        4 => net(&format!("198.19.{}.{}/32", rng.below(256), rng.below(256))),
        5 | 6 => net(&format!(
            "2001:db8:{:x}::/{}",
            rng.below(0x10000),
            *rng.pick(&[48, 56, 64])
        ))
        .trunc(),
        _ => net(WIDE[rng.below(WIDE.len())]),
    }
}

fn peer(egress: bool, rng: &mut Rng) -> ClusterPeer {
    match rng.below(if egress { 5 } else { 3 }) {
        0 | 1 => ClusterPeer::Namespaces(namespace_selector(rng)),
        2 => ClusterPeer::Pods {
            namespaces: namespace_selector(rng),
            pods: pod_selector(rng),
        },
        _ => {
            let mut nets: Vec<IpNet> = (0..1 + rng.below(3)).map(|_| network(rng)).collect();
            nets.sort();
            nets.dedup();
            ClusterPeer::Networks(nets)
        }
    }
}

fn port(rng: &mut Rng) -> ClusterPort {
    let protocol = *rng.pick(&[Protocol::Tcp, Protocol::Tcp, Protocol::Udp, Protocol::Sctp]);
    match rng.below(8) {
        0..=2 => ClusterPort::Protocol {
            protocol,
            ports: Some({
                let p = *rng.pick(&[80, 443, 53, 8080, 8443, 5432, 6379, 9090, 3868, 22]);
                (p, p)
            }),
        },
        3 | 4 => {
            let start = 1024 + u16::try_from(rng.below(30_000)).expect("small");
            let len = 1 + u16::try_from(rng.below(2000)).expect("small");
            ClusterPort::Protocol {
                protocol,
                ports: Some((start, start + len)),
            }
        }
        5 => ClusterPort::Protocol {
            protocol,
            ports: None,
        },
        _ => ClusterPort::Named((*rng.pick(NAMED_PORTS)).to_string()),
    }
}

fn make_rule(tier: Tier, egress: bool, r: usize, rng: &mut Rng) -> ClusterRule {
    let weights: &[(Action, usize)] = match tier {
        Tier::Admin => &[(Action::Accept, 3), (Action::Deny, 3), (Action::Pass, 2)],
        Tier::Baseline => &[(Action::Accept, 4), (Action::Deny, 4), (Action::Pass, 1)],
    };
    let total: usize = weights.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total);
    let mut action = Action::Accept;
    for &(a, w) in weights {
        if x < w {
            action = a;
            break;
        }
        x -= w;
    }
    let peers = (0..1 + rng.below(3)).map(|_| peer(egress, rng)).collect();
    let protocols = if rng.chance(1, 5) {
        None
    } else {
        Some((0..1 + rng.below(3)).map(|_| port(rng)).collect())
    };
    let verb = match action {
        Action::Accept => "accept",
        Action::Deny => "deny",
        Action::Pass => "pass",
    };
    let dir = if egress { "to" } else { "from" };
    ClusterRule {
        // One rule in six has no name, as the API allows.
        name: (!rng.chance(1, 6)).then(|| format!("{verb}-{dir}-{r}")),
        action,
        peers,
        protocols,
    }
}
