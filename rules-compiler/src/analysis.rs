//! Analysis: the connectivity matrix and explanations of verdicts, from the same
//! resolution the plan is built from. No nftables vocabulary, no I/O.
//!
//! Both answer "may endpoint A open a connection to endpoint B on this port?" with the
//! packet verdicts of [`Index::cluster_verdict`]: the first packet of the connection must
//! pass A's egress (remote = B's address) and B's ingress (remote = A's address). Replies
//! are not asked about: conntrack lets them through once the connection is allowed.
//!
//! # Tiers
//!
//! Each side is decided as the data plane will decide it: a failsafe entry accepts
//! first, before any tier (the base chains hold those entries before the dispatch);
//! then the Admin ClusterNetworkPolicies, NetworkPolicy ([`Index::verdict`], final when
//! it isolates the endpoint), the Baseline ones, and allowed by default. Without
//! cluster policies this is exactly [`Index::verdict`]. [`explain`] keeps
//! NetworkPolicy's verdict and rules as they were and adds which tier decided, the
//! cluster rule that did and the `Pass` rules followed.
//!
//! # Addresses
//!
//! Endpoints may have several addresses, v4 and v6. A connection from A to B is between
//! one address of A and one address of B of the same family. We consider every such
//! pair whose family the [`FamilyFilter`] admits, and call the connection allowed only
//! when at least one pair exists and **every** pair is allowed. So an `ipBlock` that
//! admits A's IPv4 address but not its IPv6 one makes the cell false under
//! [`FamilyFilter::Any`]: the answer must hold whichever address a client picks. Ask
//! per family ([`FamilyFilter::V4`], [`FamilyFilter::V6`]) to see each separately. A
//! pair of endpoints without a common family is not connected (false).
//!
//! # Self-traffic
//!
//! Traffic from an endpoint to itself never leaves the host: it goes over loopback,
//! which the data plane always accepts. The diagonal of the matrix is therefore always
//! allowed, and [`explain`] says so instead of consulting policies.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;

use crate::model::{
    Action, ClusterPeer, ClusterPort, Direction, Endpoint, LabelSelector, NamespaceScope,
    ObjectName, Operator, Peer, Peers, PolicyMode, PortMatch, PortRule, Ports, Protocol, Tier,
};
use crate::plan::Failsafe;
use crate::resolve::cluster::cluster_port_range_on;
use crate::resolve::{
    port_range_on, ClusterRuleRef, ClusterVerdict, Decision, EndpointId, Index, PolicyId,
    RuleMatch, Verdict,
};

mod text;

/// A destination port and protocol to ask about, written `80/TCP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Probe {
    /// Destination port, 1–65535.
    pub port: u16,
    /// Transport protocol.
    pub protocol: Protocol,
}

/// Why a probe string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The port part is not a number in 1–65535.
    #[error("invalid port {0:?} in probe: expected a number from 1 to 65535, as in 80/TCP")]
    Port(String),
    /// The protocol part is none of TCP, UDP, SCTP.
    #[error("unknown protocol {0:?} in probe: expected TCP, UDP or SCTP, as in 53/UDP")]
    Protocol(String),
}

impl FromStr for Probe {
    type Err = ProbeError;

    /// `PORT[/PROTOCOL]`: the protocol is case-insensitive and defaults to TCP, as in a
    /// NetworkPolicy port entry.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (port, protocol) = match s.split_once('/') {
            Some((port, proto)) => {
                let protocol = Protocol::from_k8s(&proto.to_ascii_uppercase())
                    .ok_or_else(|| ProbeError::Protocol(proto.to_string()))?;
                (port, protocol)
            }
            None => (s, Protocol::Tcp),
        };
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Probe { port, protocol }),
            _ => Err(ProbeError::Port(port.to_string())),
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

/// Which address families to consider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyFilter {
    /// IPv4 and IPv6: every address pair must be allowed.
    #[default]
    Any,
    /// IPv4 pairs only.
    V4,
    /// IPv6 pairs only.
    V6,
}

impl FamilyFilter {
    /// Whether addresses of this family are considered.
    pub fn admits(self, ip: &IpAddr) -> bool {
        match self {
            FamilyFilter::Any => true,
            FamilyFilter::V4 => ip.is_ipv4(),
            FamilyFilter::V6 => ip.is_ipv6(),
        }
    }
}

/// Why a family filter string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown address family {0:?}: expected any, 4 or 6")]
pub struct FamilyError(String);

impl FromStr for FamilyFilter {
    type Err = FamilyError;

    /// `any`, `4`/`v4`/`ipv4`, `6`/`v6`/`ipv6`, case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "any" | "all" => Ok(FamilyFilter::Any),
            "4" | "v4" | "ipv4" => Ok(FamilyFilter::V4),
            "6" | "v6" | "ipv6" => Ok(FamilyFilter::V6),
            _ => Err(FamilyError(s.to_string())),
        }
    }
}

impl fmt::Display for FamilyFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FamilyFilter::Any => "IPv4 and IPv6",
            FamilyFilter::V4 => "IPv4",
            FamilyFilter::V6 => "IPv6",
        })
    }
}

/// Every (address of `from`, address of `to`) of one family that the filter admits,
/// in address order.
fn address_pairs(from: &[IpAddr], to: &[IpAddr], family: FamilyFilter) -> Vec<(IpAddr, IpAddr)> {
    let mut pairs = Vec::new();
    for a in from.iter().filter(|a| family.admits(a)) {
        for b in to.iter().filter(|b| b.is_ipv4() == a.is_ipv4()) {
            pairs.push((*a, *b));
        }
    }
    pairs
}

/// One cell of the matrix, with the reason a person needs to read it right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cell {
    /// From an endpoint to itself: loopback, always allowed.
    SelfTraffic,
    /// Every address pair is allowed.
    Allowed,
    /// At least one address pair is denied.
    Denied,
    /// No address pair of a considered family exists (counts as not allowed).
    NoAddressPair,
}

impl Cell {
    /// The boolean of the JSON contract.
    pub fn is_allowed(self) -> bool {
        matches!(self, Cell::SelfTraffic | Cell::Allowed)
    }

    /// The table mark: `.` allowed (the diagonal too), `X` denied, `-` no address pair.
    /// ASCII, one column wide in every font, as in the Kubernetes e2e probe tables.
    fn mark(self) -> char {
        match self {
            Cell::SelfTraffic | Cell::Allowed => '.',
            Cell::Denied => 'X',
            Cell::NoAddressPair => '-',
        }
    }
}

/// The connectivity matrix: for each probe, who may connect to whom.
///
/// Serializes to the stable JSON contract
/// `{"probes":[{"port":80,"protocol":"TCP","endpoints":["x/a",…],"allowed":[[true,…],…]}]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// One matrix per probe, in the order asked.
    pub probes: Vec<ProbeMatrix>,
    /// The families considered (shown in the table; not part of the JSON contract).
    #[serde(skip)]
    pub family: FamilyFilter,
    /// The failsafe entries taken into account (shown in the table; not part of the
    /// JSON contract).
    #[serde(skip)]
    pub failsafe: Vec<Failsafe>,
}

/// The matrix of one probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeMatrix {
    /// The port asked about.
    pub port: u16,
    /// The protocol asked about.
    pub protocol: Protocol,
    /// Every endpoint of the inventory, sorted.
    pub endpoints: Vec<ObjectName>,
    /// `allowed[i][j]`: may `endpoints[i]` open a connection to `endpoints[j]`?
    pub allowed: Vec<Vec<bool>>,
    #[serde(skip)]
    cells: Vec<Vec<Cell>>,
}

impl ProbeMatrix {
    /// The probe of this matrix.
    pub fn probe(&self) -> Probe {
        Probe {
            port: self.port,
            protocol: self.protocol,
        }
    }

    /// The cell from `endpoints[i]` to `endpoints[j]`, with its reason.
    pub fn cell(&self, i: usize, j: usize) -> Cell {
        self.cells[i][j]
    }
}

/// The connectivity matrix over every endpoint of the inventory, each enforcing its
/// policies of every tier behind `failsafe` (as netpold would on its host).
pub fn matrix(
    index: &Index<'_>,
    probes: &[Probe],
    family: FamilyFilter,
    failsafe: &[Failsafe],
) -> Matrix {
    let endpoints = &index.model.inventory.endpoints;
    let n = endpoints.len();
    let isolating = |dir| -> Vec<_> { (0..n).map(|e| index.isolating(e, dir)).collect() };
    let (egress_iso, ingress_iso) = (isolating(Direction::Egress), isolating(Direction::Ingress));
    let probes = probes
        .iter()
        .map(|probe| {
            let proto = probe.protocol.number();
            let cells: Vec<Vec<Cell>> = (0..n)
                .map(|i| {
                    (0..n)
                        .map(|j| {
                            if i == j {
                                return Cell::SelfTraffic;
                            }
                            let pairs = address_pairs(&endpoints[i].ips, &endpoints[j].ips, family);
                            if pairs.is_empty() {
                                return Cell::NoAddressPair;
                            }
                            let safe = |dir, peer| {
                                Failsafe::find(failsafe, dir, proto, probe.port, peer).is_some()
                            };
                            let all_allowed = pairs.iter().all(|&(a, b)| {
                                (safe(Direction::Egress, b)
                                    || side_allows(
                                        index,
                                        &egress_iso[i],
                                        i,
                                        Direction::Egress,
                                        b,
                                        proto,
                                        probe.port,
                                    ))
                                    && (safe(Direction::Ingress, a)
                                        || side_allows(
                                            index,
                                            &ingress_iso[j],
                                            j,
                                            Direction::Ingress,
                                            a,
                                            proto,
                                            probe.port,
                                        ))
                            });
                            if all_allowed {
                                Cell::Allowed
                            } else {
                                Cell::Denied
                            }
                        })
                        .collect()
                })
                .collect();
            ProbeMatrix {
                port: probe.port,
                protocol: probe.protocol,
                endpoints: endpoints.iter().map(|e| e.id.clone()).collect(),
                allowed: cells
                    .iter()
                    .map(|row| row.iter().map(|c| c.is_allowed()).collect())
                    .collect(),
                cells,
            }
        })
        .collect();
    Matrix {
        probes,
        family,
        failsafe: failsafe.to_vec(),
    }
}

/// Whether every tier lets the packet through at `local` in `dir`:
/// [`Index::cluster_verdict`]`(..).is_allowed()`. `isolating` is
/// [`Index::isolating`]`(local, dir)`, computed once per endpoint by the caller.
fn side_allows(
    index: &Index<'_>,
    isolating: &[PolicyId],
    local: EndpointId,
    dir: Direction,
    remote: IpAddr,
    proto: u8,
    dport: u16,
) -> bool {
    // With no cluster policy selecting `local`, both cluster tiers are `NoMatch` and
    // `cluster_verdict` is `Index::verdict` (`NotIsolated` becoming `Default`, both
    // allowed): answering with `allows_among` keeps the matrix as fast as before and
    // byte-identical for models without cluster policies.
    if index.cluster_subjects(local, Tier::Admin).is_empty()
        && index.cluster_subjects(local, Tier::Baseline).is_empty()
    {
        return index.allows_among(isolating, local, dir, remote, proto, dport);
    }
    index
        .cluster_verdict(local, dir, remote, proto, dport)
        .is_allowed()
}

/// One end of an explained connection as `--from`/`--to` name it: an endpoint by
/// `namespace/name`, or an address (an endpoint's, or a stranger's).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub enum Party {
    /// An endpoint of the inventory.
    Endpoint(ObjectName),
    /// An address; a stranger when no endpoint holds it.
    Address(IpAddr),
}

impl FromStr for Party {
    type Err = String;

    fn from_str(s: &str) -> Result<Party, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Party::Address(ip));
        }
        ObjectName::parse(s)
            .map(Party::Endpoint)
            .ok_or_else(|| format!("expected NAMESPACE/NAME or an IP address, got {s:?}"))
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Party::Endpoint(name) => name.fmt(f),
            Party::Address(ip) => ip.fmt(f),
        }
    }
}

impl From<Party> for String {
    fn from(p: Party) -> String {
        p.to_string()
    }
}

/// A [`Party`] resolved against the inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// An endpoint (named, or holding the address given).
    Endpoint(EndpointId),
    /// An address of no endpoint: matched by `ipBlock`s only, and not policed.
    Stranger(IpAddr),
}

impl From<EndpointId> for End {
    fn from(id: EndpointId) -> End {
        End::Endpoint(id)
    }
}

/// Resolves a party: an address belongs to the endpoint holding it, or to nobody (a
/// stranger); `None` for a name the inventory does not have.
pub fn resolve_party(index: &Index<'_>, party: &Party) -> Option<End> {
    match party {
        Party::Endpoint(name) => index
            .model
            .inventory
            .endpoint_index(name)
            .map(End::Endpoint),
        Party::Address(ip) => Some(resolve_address(index, *ip)),
    }
}

/// The endpoint holding an address, or a stranger.
pub fn resolve_address(index: &Index<'_>, ip: IpAddr) -> End {
    index
        .endpoint_at(&ip)
        .map_or(End::Stranger(ip), End::Endpoint)
}

/// The verdict on one connection and why, for `netpolctl explain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The sender: an endpoint's name, or a stranger's address.
    pub from: Party,
    /// The receiver.
    pub to: Party,
    /// The port and protocol.
    pub probe: Probe,
    /// The families considered.
    pub family: FamilyFilter,
    /// The final answer: self-traffic, or at least one pair and every pair allowed.
    pub allowed: bool,
    /// From an endpoint to itself: allowed over loopback, no policy consulted.
    pub self_traffic: bool,
    /// Every address pair considered (empty for self-traffic, or when the two
    /// endpoints have no address of a common considered family).
    pub pairs: Vec<PairExplanation>,
    /// Whether the model holds ClusterNetworkPolicies: the text then names the tier
    /// that decided each side (not part of the JSON: each side's `tier` says it).
    #[serde(skip)]
    pub cluster_policies: bool,
}

/// One address pair: the sender's egress and the receiver's ingress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PairExplanation {
    /// The sender's address (source).
    pub from_address: IpAddr,
    /// The receiver's address (destination).
    pub to_address: IpAddr,
    /// Both sides allow it.
    pub allowed: bool,
    /// The sender's egress; `None` for a stranger, which netpol does not police.
    pub egress: Option<SideExplanation>,
    /// The receiver's ingress; `None` for a stranger.
    pub ingress: Option<SideExplanation>,
}

/// One direction of one endpoint: its verdict and the rules behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SideExplanation {
    /// The endpoint whose policies decide.
    pub endpoint: ObjectName,
    /// Its egress (the sender) or its ingress (the receiver).
    pub direction: Direction,
    /// The other end's address, as the policies see it.
    pub remote: IpAddr,
    /// Whether this side lets the packet through.
    pub allowed: bool,
    /// The failsafe entry that accepts it before any policy (then `allowed`, whatever
    /// the tiers' `decision` says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failsafe: Option<Failsafe>,
    /// NetworkPolicy's verdict (`verdict`, `isolating`, `by`), whether or not its tier
    /// decided: an Admin rule may decide before it, and where it does not isolate a
    /// Baseline rule may decide after it.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Each entry of `by`, in words.
    pub rules: Vec<RuleExplanation>,
    /// Each audit policy isolating the endpoint in this direction, and whether it
    /// would allow the packet (audit policies never change `allowed`).
    pub audit: Vec<AuditExplanation>,
    /// What the tiers (Admin, NetworkPolicy, Baseline) say, as
    /// [`Index::cluster_verdict`]: the `Pass` rules followed (`passed`) and what
    /// decided (`decision`). Without the failsafe, `allowed` is its `is_allowed()`.
    pub tiers: ClusterVerdict,
    /// The tier that decided.
    pub tier: DecidingTier,
    /// The Admin or Baseline rule that decided (`Accept` or `Deny`), in words; `None`
    /// when NetworkPolicy decided or nothing did.
    pub cluster_rule: Option<ClusterRuleExplanation>,
    /// Each `Pass` rule followed on the way (`tiers.passed`), in words.
    pub passed_rules: Vec<ClusterRuleExplanation>,
    /// The decision in one line, as the text output says it, e.g. `Admin
    /// cnp/deny-metadata rule "block-imds" (spec.egress[0]) Deny: networks
    /// 169.254.169.254/32`.
    pub decided: String,
}

/// The tier whose answer is final for one side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidingTier {
    /// An Admin ClusterNetworkPolicy rule accepted or denied it.
    Admin,
    /// NetworkPolicies isolate the endpoint in this direction.
    NetworkPolicy,
    /// A Baseline ClusterNetworkPolicy rule accepted or denied it.
    Baseline,
    /// No tier decided: allowed.
    Default,
}

impl DecidingTier {
    /// Which tier a decision comes from.
    pub fn of(decision: &Decision) -> DecidingTier {
        match decision {
            Decision::Accept { by } | Decision::Deny { by } => match by.tier {
                Tier::Admin => DecidingTier::Admin,
                Tier::Baseline => DecidingTier::Baseline,
            },
            Decision::NetworkPolicy { .. } => DecidingTier::NetworkPolicy,
            Decision::Default => DecidingTier::Default,
        }
    }
}

/// A ClusterNetworkPolicy rule that matched a packet, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterRuleExplanation {
    /// The policy's tier.
    pub tier: Tier,
    /// The policy's name (cluster-scoped: no namespace).
    pub policy: String,
    /// The rule's `name`, when written.
    pub name: Option<String>,
    /// Where in the policy, as in its YAML: `spec.egress[0]`.
    pub field: String,
    /// The rule's action.
    pub action: Action,
    /// The first peer that matched, e.g. `networks 169.254.169.254/32` or
    /// `pods {app: checkout} in namespaces {team: web}`.
    pub peer: String,
    /// The first `protocols` entry that matched, e.g. `8080/TCP`, or `all protocols
    /// and ports` when the rule has none.
    pub protocol: String,
}

impl fmt::Display for ClusterRuleExplanation {
    /// `Admin cnp/deny-metadata rule "block-imds" (spec.egress[0]) Deny: networks
    /// 169.254.169.254/32`, with `; 8080/TCP` after the peer when the rule names
    /// protocols; an unnamed rule is `rule spec.egress[0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cnp/{} rule ", self.tier.as_str(), self.policy)?;
        match &self.name {
            Some(name) => write!(f, "{name:?} ({})", self.field)?,
            None => f.write_str(&self.field)?,
        }
        write!(f, " {}: {}", action_str(self.action), self.peer)?;
        if self.protocol != ALL_PROTOCOLS {
            write!(f, "; {}", self.protocol)?;
        }
        Ok(())
    }
}

/// How a cluster rule without `protocols` is described.
const ALL_PROTOCOLS: &str = "all protocols and ports";

/// The API spelling of an action.
fn action_str(action: Action) -> &'static str {
    match action {
        Action::Accept => "Accept",
        Action::Deny => "Deny",
        Action::Pass => "Pass",
    }
}

/// What one audit policy would do with the packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditExplanation {
    /// The audit policy.
    pub policy: ObjectName,
    /// Whether one of its rules allows the packet.
    pub would_allow: bool,
}

/// A matching rule, in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleExplanation {
    /// The policy, `namespace/name`.
    pub policy: ObjectName,
    /// Where in the policy, as in its YAML: `spec.ingress[0].from[1].ports[0]`.
    pub field: String,
    /// The peer that matched, e.g. `namespaceSelector {name: web} AND podSelector {app: checkout}`.
    pub peer: String,
    /// The port that matched, e.g. `8080/TCP` or `named port http → 8080/TCP on x/y`.
    pub port: String,
}

/// Explains whether `from` may open a connection to `to` on `probe`. Either end may
/// be a stranger (an address of no endpoint): its side is not policed, and the other
/// side's policies see its address. Each endpoint enforces behind `failsafe`.
pub fn explain(
    index: &Index<'_>,
    from: impl Into<End>,
    to: impl Into<End>,
    probe: Probe,
    family: FamilyFilter,
    failsafe: &[Failsafe],
) -> Explanation {
    let (from, to) = (from.into(), to.into());
    let party = |end: End| match end {
        End::Endpoint(id) => Party::Endpoint(index.endpoint(id).id.clone()),
        End::Stranger(ip) => Party::Address(ip),
    };
    let addresses = |end: End| match end {
        End::Endpoint(id) => index.endpoint(id).ips.to_vec(),
        End::Stranger(ip) => vec![ip],
    };
    let self_traffic = matches!((from, to), (End::Endpoint(a), End::Endpoint(b)) if a == b);
    let mut explanation = Explanation {
        from: party(from),
        to: party(to),
        probe,
        family,
        allowed: true,
        self_traffic,
        pairs: Vec::new(),
        cluster_policies: !index.model.cluster_policies.is_empty(),
    };
    if self_traffic {
        return explanation;
    }
    let proto = probe.protocol.number();
    // The packet goes to the receiver either way, so named ports resolve there.
    let receiver = match to {
        End::Endpoint(id) => Some(index.endpoint(id)),
        End::Stranger(_) => None,
    };
    let side = |end: End, dir: Direction, remote: IpAddr| {
        let End::Endpoint(local) = end else {
            return None;
        };
        let verdict = index.verdict(local, dir, remote, proto, probe.port);
        let rules = match &verdict {
            Verdict::Allowed { by, .. } => by
                .iter()
                .map(|m| describe_match(index, dir, m, receiver))
                .collect(),
            _ => Vec::new(),
        };
        let audit = index
            .isolating_in(local, dir, PolicyMode::Audit)
            .into_iter()
            .map(|p| AuditExplanation {
                policy: index.policy(p).id.clone(),
                would_allow: index.allows_among(&[p], local, dir, remote, proto, probe.port),
            })
            .collect();
        let failsafe = Failsafe::find(failsafe, dir, proto, probe.port, remote).copied();
        let decision = index.cluster_verdict(local, dir, remote, proto, probe.port);
        let words =
            |by: &ClusterRuleRef| describe_cluster_match(index, dir, by, remote, probe, receiver);
        let cluster_rule = match &decision.decision {
            Decision::Accept { by } | Decision::Deny { by } => Some(words(by)),
            Decision::NetworkPolicy { .. } | Decision::Default => None,
        };
        let passed_rules: Vec<_> = decision.passed.iter().map(words).collect();
        let decided = match (&decision.decision, &cluster_rule) {
            (_, Some(rule)) => rule.to_string(),
            (Decision::NetworkPolicy { verdict }, _) => {
                let what = if verdict.is_allowed() {
                    "allowed"
                } else {
                    "denied"
                };
                format!("NetworkPolicy: {what}")
            }
            _ => "no tier decided: allowed by default".to_string(),
        };
        Some(SideExplanation {
            endpoint: index.endpoint(local).id.clone(),
            direction: dir,
            remote,
            allowed: failsafe.is_some() || decision.is_allowed(),
            failsafe,
            verdict,
            rules,
            audit,
            tier: DecidingTier::of(&decision.decision),
            tiers: decision,
            cluster_rule,
            passed_rules,
            decided,
        })
    };
    let passes = |s: &Option<SideExplanation>| s.as_ref().is_none_or(|s| s.allowed);
    for (a, b) in address_pairs(&addresses(from), &addresses(to), family) {
        let egress = side(from, Direction::Egress, b);
        let ingress = side(to, Direction::Ingress, a);
        explanation.pairs.push(PairExplanation {
            from_address: a,
            to_address: b,
            allowed: passes(&egress) && passes(&ingress),
            egress,
            ingress,
        });
    }
    explanation.allowed =
        !explanation.pairs.is_empty() && explanation.pairs.iter().all(|p| p.allowed);
    explanation
}

fn describe_match(
    index: &Index<'_>,
    dir: Direction,
    m: &RuleMatch,
    dest: Option<&Endpoint>,
) -> RuleExplanation {
    let policy = index.policy(m.policy.id);
    let rule = &policy.rules(dir).expect("a matching rule's direction")[m.rule];
    let mut field = format!("spec.{dir}[{}]", m.rule);
    let peer = match (&rule.peers, m.peer) {
        (Peers::List(list), Some(i)) => {
            let list_name = match dir {
                Direction::Ingress => "from",
                Direction::Egress => "to",
            };
            let _ = write!(field, ".{list_name}[{i}]");
            describe_peer(&list[i])
        }
        _ => "all peers".to_string(),
    };
    let port = match (&rule.ports, m.port) {
        (Ports::List(list), Some(i)) => {
            let _ = write!(field, ".ports[{i}]");
            describe_port(&list[i], dest)
        }
        _ => "all ports and protocols".to_string(),
    };
    RuleExplanation {
        policy: policy.id.clone(),
        field,
        peer,
        port,
    }
}

/// A cluster rule that matched, in words: the first of its peers and of its
/// `protocols` entries that match the packet (the rule matched, so both exist).
fn describe_cluster_match(
    index: &Index<'_>,
    dir: Direction,
    by: &ClusterRuleRef,
    remote: IpAddr,
    probe: Probe,
    dest: Option<&Endpoint>,
) -> ClusterRuleExplanation {
    let rule = &index.model.cluster_policies[by.id].rules(dir)[by.rule];
    let peer = rule
        .peers
        .iter()
        .find(|p| index.cluster_peer_matches_addr(p, rule.action, &remote))
        .map_or_else(
            || "no peer".to_string(),
            |p| describe_cluster_peer(index, p, remote),
        );
    let protocol = match &rule.protocols {
        None => ALL_PROTOCOLS.to_string(),
        Some(entries) => entries
            .iter()
            .find(|e| {
                cluster_port_range_on(e, probe.protocol, dest)
                    .is_some_and(|(lo, hi)| lo <= probe.port && probe.port <= hi)
            })
            .map_or_else(
                || "no protocol".to_string(),
                |e| describe_cluster_port(e, probe.protocol, dest),
            ),
    };
    ClusterRuleExplanation {
        tier: by.tier,
        policy: by.policy.clone(),
        name: by.name.clone(),
        field: format!("spec.{dir}[{}]", by.rule),
        action: rule.action,
        peer,
        protocol,
    }
}

/// A cluster peer that matched `remote`, in words; for `networks` and `nodes` only the
/// block or Node that holds the address.
fn describe_cluster_peer(index: &Index<'_>, peer: &ClusterPeer, remote: IpAddr) -> String {
    match peer {
        ClusterPeer::Namespaces(ns) => format!("namespaces {}", describe_selector(ns)),
        ClusterPeer::Pods { namespaces, pods } if namespaces.is_everything() => {
            format!("pods {} in every namespace", describe_selector(pods))
        }
        ClusterPeer::Pods { namespaces, pods } => format!(
            "pods {} in namespaces {}",
            describe_selector(pods),
            describe_selector(namespaces)
        ),
        ClusterPeer::Networks(nets) => {
            let inside: Vec<String> = nets
                .iter()
                .filter(|n| n.contains(&remote))
                .map(ToString::to_string)
                .collect();
            format!("networks {}", inside.join(", "))
        }
        ClusterPeer::Nodes(sel) => {
            let holders: Vec<&str> = index
                .model
                .inventory
                .nodes
                .iter()
                .filter(|n| sel.matches(&n.labels) && n.addresses.binary_search(&remote).is_ok())
                .map(|n| n.name.as_str())
                .collect();
            format!(
                "nodes {} (node {})",
                describe_selector(sel),
                holders.join(", ")
            )
        }
        ClusterPeer::Unknown { fields } => format!(
            "a peer of a newer API ({}), which matches every address in a Deny or Pass rule",
            fields.join(", ")
        ),
    }
}

/// A `protocols` entry that matched, in words, as [`describe_port`] says ports.
fn describe_cluster_port(
    entry: &ClusterPort,
    protocol: Protocol,
    dest: Option<&Endpoint>,
) -> String {
    match entry {
        ClusterPort::Protocol { protocol: p, ports } => match ports {
            None => format!("every {p} port"),
            Some((lo, hi)) if lo == hi => format!("{lo}/{p}"),
            Some((lo, hi)) => format!("{lo}-{hi}/{p}"),
        },
        ClusterPort::Named(name) => match (dest, cluster_port_range_on(entry, protocol, dest)) {
            (Some(dest), Some((p, _))) => {
                format!("named port {name} → {p}/{protocol} on {}", dest.id)
            }
            (Some(dest), None) => {
                format!("named port {name}/{protocol}, not declared on {}", dest.id)
            }
            (None, _) => format!("named port {name}/{protocol}, on no endpoint"),
        },
    }
}

fn describe_peer(peer: &Peer) -> String {
    match peer {
        Peer::Endpoints {
            namespaces: NamespaceScope::Own(ns),
            pods,
        } => format!(
            "podSelector {} in the policy's namespace {ns}",
            describe_selector(pods)
        ),
        Peer::Endpoints {
            namespaces: NamespaceScope::Selector(nss),
            pods,
        } if pods.is_everything() => format!("namespaceSelector {}", describe_selector(nss)),
        Peer::Endpoints {
            namespaces: NamespaceScope::Selector(nss),
            pods,
        } => format!(
            "namespaceSelector {} AND podSelector {}",
            describe_selector(nss),
            describe_selector(pods)
        ),
        Peer::IpBlock(block) => {
            let mut s = format!("ipBlock {}", block.cidr);
            if !block.except.is_empty() {
                let except: Vec<String> = block.except.iter().map(|e| e.to_string()).collect();
                let _ = write!(s, " except {}", except.join(", "));
            }
            s
        }
    }
}

/// `{app: checkout, env In (prod, stage), debug DoesNotExist}`; `{}` selects all.
fn describe_selector(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    for r in &sel.match_expressions {
        let join = |vs: &std::collections::BTreeSet<String>| {
            vs.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
        };
        parts.push(match &r.operator {
            Operator::In(vs) => format!("{} In ({})", r.key, join(vs)),
            Operator::NotIn(vs) => format!("{} NotIn ({})", r.key, join(vs)),
            Operator::Exists => format!("{} Exists", r.key),
            Operator::DoesNotExist => format!("{} DoesNotExist", r.key),
        });
    }
    format!("{{{}}}", parts.join(", "))
}

fn describe_port(rule: &PortRule, dest: Option<&Endpoint>) -> String {
    let proto = rule.protocol;
    match &rule.port {
        PortMatch::Any => format!("every {proto} port"),
        PortMatch::Range { start, end } if start == end => format!("{start}/{proto}"),
        PortMatch::Range { start, end } => format!("{start}-{end}/{proto}"),
        PortMatch::Named(name) => match (dest, port_range_on(rule, dest)) {
            (Some(dest), Some((p, _))) => {
                format!("named port {name} → {p}/{proto} on {}", dest.id)
            }
            (Some(dest), None) => format!("named port {name}/{proto}, not declared on {}", dest.id),
            (None, _) => format!("named port {name}/{proto}, on no endpoint"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use crate::testkit::*;
    use serde_json::json;

    const TCP_8080: Probe = Probe {
        port: 8080,
        protocol: Protocol::Tcp,
    };
    const UDP_53: Probe = Probe {
        port: 53,
        protocol: Protocol::Udp,
    };

    fn explain_by_name(
        index: &Index<'_>,
        from: &str,
        to: &str,
        probe: Probe,
        family: FamilyFilter,
    ) -> Explanation {
        explain(index, ep(index, from), ep(index, to), probe, family, &[])
    }

    #[test]
    fn the_failsafe_allows_before_any_policy_on_the_side_it_covers() {
        let model = payments_example().build();
        let index = Index::new(&model);
        let ssh = Probe {
            port: 22,
            protocol: Protocol::Tcp,
        };
        let failsafe = Failsafe::defaults();
        let at = |m: &Matrix, from: &str, to: &str| {
            let pm = &m.probes[0];
            let i = |n: &str| {
                pm.endpoints
                    .iter()
                    .position(|e| e.to_string() == n)
                    .unwrap()
            };
            pm.cell(i(from), i(to))
        };
        // The worker's egress is open, payments-api's ingress a default deny: only the
        // failsafe lets SSH in.
        let (worker, api) = ("analytics/worker", "payments/payments-api");
        let without = matrix(&index, &[ssh], FamilyFilter::Any, &[]);
        let with = matrix(&index, &[ssh], FamilyFilter::Any, &failsafe);
        assert_eq!(at(&without, worker, api), Cell::Denied);
        assert_eq!(at(&with, worker, api), Cell::Allowed);
        assert!(with
            .render_table()
            .contains("failsafe, accepted before any policy: ingress TCP 22"));
        // Not another port, and not the sender's side: frontend's egress is a default
        // deny that no ingress failsafe opens.
        let https = Probe {
            port: 443,
            protocol: Protocol::Tcp,
        };
        let m = matrix(&index, &[https], FamilyFilter::Any, &failsafe);
        assert_eq!(at(&m, worker, api), Cell::Denied);
        assert_eq!(at(&with, "web/frontend", api), Cell::Denied);

        let e = explain(
            &index,
            ep(&index, worker),
            ep(&index, api),
            ssh,
            FamilyFilter::Any,
            &failsafe,
        );
        assert!(e.allowed);
        for pair in &e.pairs {
            let ingress = pair.ingress.as_ref().unwrap();
            assert_eq!(ingress.failsafe, Some(Failsafe::ssh()));
            assert!(ingress.allowed && !ingress.verdict.is_allowed());
            assert_eq!(pair.egress.as_ref().unwrap().failsafe, None);
        }
        let text = e.render_text();
        assert!(
            text.contains("ingress of payments/payments-api: allowed by the failsafe (ingress TCP 22), before any policy"),
            "{text}"
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json["pairs"][0]["ingress"]["failsafe"]["ports"],
            json!([22, 22])
        );
        assert!(json["pairs"][0]["egress"].get("failsafe").is_none());
    }

    #[test]
    fn probe_parses_port_and_case_insensitive_protocol() {
        let p = |s: &str| s.parse::<Probe>();
        assert_eq!(
            p("80/TCP"),
            Ok(Probe {
                port: 80,
                protocol: Protocol::Tcp
            })
        );
        assert_eq!(
            p("53/udp"),
            Ok(Probe {
                port: 53,
                protocol: Protocol::Udp
            })
        );
        assert_eq!(
            p("9/Sctp"),
            Ok(Probe {
                port: 9,
                protocol: Protocol::Sctp
            })
        );
        assert_eq!(
            p("443"),
            Ok(Probe {
                port: 443,
                protocol: Protocol::Tcp
            })
        );
        assert_eq!(p("65535/tcp").map(|p| p.port), Ok(65535));
        assert_eq!(p("0/TCP"), Err(ProbeError::Port("0".into())));
        assert_eq!(p("65536"), Err(ProbeError::Port("65536".into())));
        assert_eq!(p("http/TCP"), Err(ProbeError::Port("http".into())));
        assert_eq!(p("/TCP"), Err(ProbeError::Port("".into())));
        assert_eq!(p("80/ICMP"), Err(ProbeError::Protocol("ICMP".into())));
        assert_eq!(p("80/"), Err(ProbeError::Protocol("".into())));
        assert_eq!(p("53/udp").unwrap().to_string(), "53/UDP");
    }

    #[test]
    fn family_filter_parses() {
        assert_eq!("any".parse(), Ok(FamilyFilter::Any));
        assert_eq!("4".parse(), Ok(FamilyFilter::V4));
        assert_eq!("IPv6".parse(), Ok(FamilyFilter::V6));
        assert!("5".parse::<FamilyFilter>().is_err());
    }

    #[test]
    fn matrix_needs_both_senders_egress_and_receivers_ingress() {
        let m = payments_example().build();
        let index = Index::new(&m);
        let mx = matrix(&index, &[TCP_8080, UDP_53], FamilyFilter::Any, &[]);
        let names: Vec<String> = mx.probes[0]
            .endpoints
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "analytics/worker",
                "kube-system/kube-dns",
                "payments/payments-api",
                "web/checkout",
                "web/frontend"
            ]
        );
        let (t, f) = (true, false);
        assert_eq!(
            mx.probes[0].allowed,
            [
                [t, t, f, t, t], // worker: payments' ingress admits only web's checkout
                [t, t, f, t, t],
                [t, t, t, t, t], // payments-api is not isolated for egress
                [f, f, t, t, f], // checkout: own egress allows only DNS and payments-api
                [f, f, f, f, t], // frontend: web's default-deny egress
            ]
        );
        assert_eq!(
            mx.probes[1].allowed,
            [
                [t, t, f, t, t],
                [t, t, f, t, t],
                [t, t, t, t, t],
                [f, t, f, t, f], // DNS is the one egress exception
                [f, t, f, f, t],
            ]
        );
    }

    #[test]
    fn diagonal_is_allowed_even_when_everything_is_denied() {
        let m = ModelBuilder::new()
            .endpoint("x/a", &[], &["198.18.0.1"])
            .endpoint("x/b", &[], &["198.18.0.2"])
            .policy(policy("x/deny", sel(&[]), Some(vec![]), Some(vec![])))
            .build();
        let index = Index::new(&m);
        let mx = matrix(&index, &[TCP_8080], FamilyFilter::Any, &[]);
        assert_eq!(mx.probes[0].allowed, [[true, false], [false, true]]);
        assert_eq!(mx.probes[0].cell(0, 0), Cell::SelfTraffic);
        let e = explain_by_name(&index, "x/a", "x/a", TCP_8080, FamilyFilter::Any);
        assert!(e.allowed && e.self_traffic && e.pairs.is_empty());
        assert!(e.render_text().contains("loopback"), "{}", e.render_text());
    }

    #[test]
    fn matrix_json_is_the_documented_contract() {
        let m = ModelBuilder::new()
            .endpoint("x/b", &[], &["198.18.0.2"])
            .endpoint("x/a", &[("app", "a")], &["198.18.0.1"])
            .policy(ingress_policy("x/p", sel(&[("app", "a")]), vec![]))
            .build();
        let index = Index::new(&m);
        let mx = matrix(&index, &[TCP_8080, UDP_53], FamilyFilter::V4, &[]);
        assert_eq!(
            serde_json::to_value(&mx).unwrap(),
            json!({"probes": [
                {"port": 8080, "protocol": "TCP", "endpoints": ["x/a", "x/b"],
                 "allowed": [[true, true], [false, true]]},
                {"port": 53, "protocol": "UDP", "endpoints": ["x/a", "x/b"],
                 "allowed": [[true, true], [false, true]]},
            ]})
        );
    }

    /// x/a has both families; x/b admits only a's IPv4 address.
    fn dual_stack_half_allowed() -> crate::model::Model {
        ModelBuilder::new()
            .endpoint("x/a", &[], &["198.18.0.1", "2001:db8::1"])
            .endpoint("x/b", &[("app", "b")], &["198.18.0.2", "2001:db8::2"])
            .endpoint("x/c", &[], &["198.18.0.3"])
            .policy(ingress_policy(
                "x/p",
                sel(&[("app", "b")]),
                vec![rule(
                    peers(vec![ip_block("198.18.0.0/24", &[])]),
                    Ports::All,
                )],
            ))
            .build()
    }

    #[test]
    fn every_address_pair_must_be_allowed_and_the_family_filter_selects_pairs() {
        let m = dual_stack_half_allowed();
        let index = Index::new(&m);
        let cell = |family, i, j| matrix(&index, &[TCP_8080], family, &[]).probes[0].cell(i, j);
        // a → b: v4 allowed, v6 denied.
        assert_eq!(cell(FamilyFilter::Any, 0, 1), Cell::Denied);
        assert_eq!(cell(FamilyFilter::V4, 0, 1), Cell::Allowed);
        assert_eq!(cell(FamilyFilter::V6, 0, 1), Cell::Denied);
        // c → a: only an IPv4 pair exists.
        assert_eq!(cell(FamilyFilter::Any, 2, 0), Cell::Allowed);
        assert_eq!(cell(FamilyFilter::V4, 2, 0), Cell::Allowed);
        assert_eq!(cell(FamilyFilter::V6, 2, 0), Cell::NoAddressPair);
        assert!(!Cell::NoAddressPair.is_allowed());

        let e = explain_by_name(&index, "x/a", "x/b", TCP_8080, FamilyFilter::Any);
        assert!(!e.allowed);
        let pairs: Vec<_> = e
            .pairs
            .iter()
            .map(|p| (p.from_address, p.to_address, p.allowed))
            .collect();
        assert_eq!(
            pairs,
            [
                (ip("198.18.0.1"), ip("198.18.0.2"), true),
                (ip("2001:db8::1"), ip("2001:db8::2"), false)
            ]
        );
        assert!(explain_by_name(&index, "x/a", "x/b", TCP_8080, FamilyFilter::V4).allowed);

        let none = explain_by_name(&index, "x/c", "x/a", TCP_8080, FamilyFilter::V6);
        assert!(!none.allowed && none.pairs.is_empty() && !none.self_traffic);
        assert!(
            none.render_text().contains("no address pair"),
            "{}",
            none.render_text()
        );
    }

    #[test]
    fn matrix_and_explain_agree_on_every_cell() {
        let m = payments_example().build();
        let index = Index::new(&m);
        let probes = [
            TCP_8080,
            UDP_53,
            "53/TCP".parse().unwrap(),
            "9/SCTP".parse().unwrap(),
        ];
        for family in [FamilyFilter::Any, FamilyFilter::V4, FamilyFilter::V6] {
            let mx = matrix(&index, &probes, family, &[]);
            for (pm, probe) in mx.probes.iter().zip(probes) {
                for i in 0..pm.endpoints.len() {
                    for j in 0..pm.endpoints.len() {
                        let e = explain(&index, i, j, probe, family, &[]);
                        assert_eq!(pm.allowed[i][j], e.allowed, "{family} {probe} {i}->{j}");
                    }
                }
            }
        }
    }

    #[test]
    fn explain_names_the_allowing_rules_peers_and_ports() {
        let m = payments_example().build();
        let index = Index::new(&m);
        let e = explain_by_name(
            &index,
            "web/checkout",
            "payments/payments-api",
            TCP_8080,
            FamilyFilter::Any,
        );
        assert!(e.allowed);
        assert_eq!(e.pairs.len(), 2);
        for pair in &e.pairs {
            let egress = pair.egress.as_ref().expect("an endpoint sends");
            assert_eq!(
                egress
                    .verdict
                    .isolating()
                    .iter()
                    .map(|r| r.name.to_string())
                    .collect::<Vec<_>>(),
                ["web/checkout-to-payments", "web/default-deny-egress"]
            );
            assert_eq!(
                egress.rules,
                [RuleExplanation {
                    policy: oname("web/checkout-to-payments"),
                    field: "spec.egress[0].to[0].ports[0]".into(),
                    peer: "namespaceSelector {kubernetes.io/metadata.name: payments} AND podSelector {app: payments-api}".into(),
                    port: "named port http → 8080/TCP on payments/payments-api".into(),
                }]
            );
            assert_eq!(
                pair.ingress.as_ref().expect("an endpoint receives").rules,
                [RuleExplanation {
                    policy: oname("payments/allow-checkout"),
                    field: "spec.ingress[0].from[0].ports[0]".into(),
                    peer: "namespaceSelector {name: web} AND podSelector {app: checkout}".into(),
                    port: "8080/TCP".into(),
                }]
            );
        }
        let text = e.render_text();
        for needle in [
            "web/checkout -> payments/payments-api on 8080/TCP (IPv4 and IPv6): ALLOWED",
            "198.18.1.2 -> 198.18.0.10: allowed",
            "2001:db8:1::2 -> 2001:db8::10: allowed",
            "egress of web/checkout: allowed; isolated by web/checkout-to-payments, web/default-deny-egress",
            "web/checkout-to-payments spec.egress[0].to[0].ports[0]",
            "ingress of payments/payments-api: allowed; isolated by payments/allow-checkout, payments/default-deny-ingress",
            "payments/allow-checkout spec.ingress[0].from[0].ports[0]: peer: namespaceSelector {name: web} AND podSelector {app: checkout}; port: 8080/TCP",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn explain_names_the_isolating_policies_when_denied() {
        let m = payments_example().build();
        let index = Index::new(&m);
        let e = explain_by_name(
            &index,
            "web/frontend",
            "payments/payments-api",
            TCP_8080,
            FamilyFilter::Any,
        );
        assert!(!e.allowed);
        assert_eq!(e.pairs.len(), 1);
        let pair = &e.pairs[0];
        let (egress, ingress) = (
            pair.egress.as_ref().unwrap(),
            pair.ingress.as_ref().unwrap(),
        );
        assert!(!egress.allowed && !ingress.allowed && egress.rules.is_empty());
        let text = e.render_text();
        for needle in [
            // web/frontend has an IPv4 address only: the verdict is about IPv4.
            "web/frontend -> payments/payments-api on 8080/TCP (IPv4): DENIED",
            "egress of web/frontend: DENIED; isolated by web/default-deny-egress, and no rule of these policies allows 8080/TCP to payments/payments-api (198.18.0.10)",
            "ingress of payments/payments-api: DENIED; isolated by payments/allow-checkout, payments/default-deny-ingress, and no rule of these policies allows 8080/TCP from web/frontend (198.18.1.3)",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }

        let open = explain_by_name(
            &index,
            "analytics/worker",
            "web/checkout",
            TCP_8080,
            FamilyFilter::Any,
        );
        assert!(open.allowed);
        let text = open.render_text();
        assert!(text.contains("egress of analytics/worker: allowed, not isolated (no policy selects it for egress)"), "{text}");
        assert!(
            text.contains(
                "ingress of web/checkout: allowed, not isolated (no policy selects it for ingress)"
            ),
            "{text}"
        );
    }

    /// payments_example with an audit policy on payments-api's ingress admitting
    /// web/frontend on 8080 and the stranger block 198.19.0.0/16 on 443.
    fn with_audit() -> Model {
        payments_example()
            .policy(audit(ingress_policy(
                "payments/audit-frontend",
                sel(&[("app", "payments-api")]),
                vec![
                    rule(
                        peers(vec![ns_and_pods(sel(&[]), sel(&[("app", "frontend")]))]),
                        ports(vec![tcp(8080)]),
                    ),
                    rule(
                        peers(vec![ip_block("198.19.0.0/16", &[])]),
                        ports(vec![tcp(443)]),
                    ),
                ],
            )))
            .build()
    }

    #[test]
    fn explain_names_each_audit_policy_and_what_it_would_do() {
        let m = with_audit();
        let index = Index::new(&m);
        let e = explain_by_name(
            &index,
            "web/frontend",
            "payments/payments-api",
            TCP_8080,
            FamilyFilter::Any,
        );
        // Audit policies change nothing: still denied by the enforced ones.
        assert!(!e.allowed);
        let ingress = e.pairs[0].ingress.as_ref().unwrap();
        assert_eq!(
            ingress.audit,
            [AuditExplanation {
                policy: oname("payments/audit-frontend"),
                would_allow: true,
            }]
        );
        assert!(e
            .render_text()
            .contains("      audit policy payments/audit-frontend: would allow\n"));
        let e = explain_by_name(
            &index,
            "analytics/worker",
            "payments/payments-api",
            TCP_8080,
            FamilyFilter::Any,
        );
        assert!(!e.pairs[0].ingress.as_ref().unwrap().audit[0].would_allow);
        assert!(e
            .render_text()
            .contains("      audit policy payments/audit-frontend: would deny\n"));
        // Egress of web/frontend: no audit policy isolates it.
        assert!(e.pairs[0].egress.as_ref().unwrap().audit.is_empty());
    }

    #[test]
    fn parties_are_names_or_addresses_and_addresses_resolve_to_endpoints_or_strangers() {
        let m = with_audit();
        let index = Index::new(&m);
        let party = |s: &str| s.parse::<Party>().unwrap();
        assert_eq!(
            party("web/frontend"),
            Party::Endpoint(oname("web/frontend"))
        );
        assert_eq!(party("2001:db8::10"), Party::Address(ip("2001:db8::10")));
        assert!("web".parse::<Party>().is_err());
        assert!("198.18.0.300".parse::<Party>().is_err());
        let api = ep(&index, "payments/payments-api");
        assert_eq!(
            resolve_party(&index, &party("2001:db8::10")),
            Some(End::Endpoint(api))
        );
        assert_eq!(
            resolve_party(&index, &party("198.19.9.9")),
            Some(End::Stranger(ip("198.19.9.9")))
        );
        assert_eq!(resolve_party(&index, &party("web/nobody")), None);
    }

    #[test]
    fn explain_from_a_stranger_polices_only_the_endpoint_side() {
        let m = with_audit();
        let index = Index::new(&m);
        let api = ep(&index, "payments/payments-api");
        let stranger = End::Stranger(ip("198.19.9.9"));
        let https = Probe {
            port: 443,
            protocol: Protocol::Tcp,
        };
        let e = explain(&index, stranger, api, https, FamilyFilter::Any, &[]);
        assert_eq!(e.from, Party::Address(ip("198.19.9.9")));
        assert_eq!(e.to, Party::Endpoint(oname("payments/payments-api")));
        assert!(!e.allowed);
        // One pair: the stranger is IPv4 only.
        assert_eq!(e.pairs.len(), 1);
        let pair = &e.pairs[0];
        assert_eq!(pair.to_address, ip("198.18.0.10"));
        assert!(pair.egress.is_none());
        let ingress = pair.ingress.as_ref().unwrap();
        assert!(!ingress.allowed);
        assert!(ingress.audit[0].would_allow);
        let text = e.render_text();
        assert!(
            text.contains("egress of 198.19.9.9: allowed, not an endpoint"),
            "{text}"
        );
        assert!(text.contains("from 198.19.9.9 (no endpoint)"), "{text}");
        // To a stranger: the sender's egress decides; web/checkout's only allows DNS
        // and payments.
        let checkout = ep(&index, "web/checkout");
        let e = explain(&index, checkout, stranger, https, FamilyFilter::Any, &[]);
        assert!(!e.allowed);
        assert!(e.pairs[0].ingress.is_none());
        let e = explain(
            &index,
            ep(&index, "analytics/worker"),
            stranger,
            https,
            FamilyFilter::Any,
            &[],
        );
        assert!(e.allowed);
        assert_eq!(serde_json::to_value(&e).unwrap()["to"], json!("198.19.9.9"));
    }

    #[test]
    fn explain_json_carries_verdicts_and_words() {
        let m = payments_example().build();
        let index = Index::new(&m);
        let e = explain_by_name(
            &index,
            "web/checkout",
            "kube-system/kube-dns",
            UDP_53,
            FamilyFilter::V4,
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["from"], "web/checkout");
        assert_eq!(v["to"], "kube-system/kube-dns");
        assert_eq!(v["probe"], json!({"port": 53, "protocol": "UDP"}));
        assert_eq!(v["family"], "v4");
        assert_eq!(v["allowed"], true);
        assert_eq!(v["self_traffic"], false);
        let pair = &v["pairs"][0];
        assert_eq!(pair["from_address"], "198.18.1.2");
        assert_eq!(pair["to_address"], "198.18.3.53");
        assert_eq!(
            pair["egress"],
            json!({
                "endpoint": "web/checkout",
                "direction": "egress",
                "remote": "198.18.3.53",
                "allowed": true,
                "verdict": "allowed",
                "isolating": ["web/checkout-to-payments", "web/default-deny-egress"],
                "by": [{"policy": "web/default-deny-egress", "rule": 0, "peer": 0, "port": 0}],
                "rules": [{
                    "policy": "web/default-deny-egress",
                    "field": "spec.egress[0].to[0].ports[0]",
                    "peer": "namespaceSelector {kubernetes.io/metadata.name: kube-system} AND podSelector {k8s-app: kube-dns}",
                    "port": "53/UDP",
                }],
                "audit": [],
                "tiers": {
                    "passed": [],
                    "decision": {
                        "decision": "network_policy",
                        "verdict": {
                            "verdict": "allowed",
                            "isolating": ["web/checkout-to-payments", "web/default-deny-egress"],
                            "by": [{"policy": "web/default-deny-egress", "rule": 0, "peer": 0, "port": 0}],
                        },
                    },
                },
                "tier": "network_policy",
                "cluster_rule": null,
                "passed_rules": [],
                "decided": "NetworkPolicy: allowed",
            })
        );
        assert_eq!(pair["ingress"]["verdict"], "not_isolated");
        assert_eq!(pair["ingress"]["tier"], "default");
        assert_eq!(
            pair["ingress"]["tiers"],
            json!({"passed": [], "decision": {"decision": "default"}})
        );
        assert_eq!(
            pair["ingress"]["decided"],
            "no tier decided: allowed by default"
        );
    }

    #[test]
    fn explain_describes_selectors_blocks_and_open_rules() {
        use crate::model::Operator;
        let mut ns = expr("env", Operator::NotIn(values(&["dev", "test"])));
        ns.match_labels = labels(&[("team", "pay")]);
        ns.match_expressions.push(crate::model::Requirement {
            key: "pci".into(),
            operator: Operator::Exists,
        });
        let m = ModelBuilder::new()
            .namespace("x", &[("team", "pay"), ("pci", "")])
            .endpoint("x/a", &[("app", "a")], &["198.18.0.1"])
            .endpoint("x/b", &[], &["198.18.0.2"])
            .policy(ingress_policy(
                "x/p",
                sel(&[]),
                vec![
                    rule(
                        peers(vec![ns_and_pods(ns, sel(&[]))]),
                        ports(vec![any_port(Protocol::Tcp)]),
                    ),
                    rule(
                        peers(vec![ip_block(
                            "198.18.0.0/16",
                            &["198.18.1.0/24", "198.18.2.0/24"],
                        )]),
                        ports(vec![port_range(Protocol::Tcp, 8000, 8100)]),
                    ),
                    rule(
                        peers(vec![
                            pods_in("x", expr("app", Operator::DoesNotExist)),
                            pods_in("x", sel(&[("app", "a")])),
                        ]),
                        Ports::All,
                    ),
                    allow_all(),
                ],
            ))
            .build();
        let index = Index::new(&m);
        let e = explain_by_name(&index, "x/a", "x/b", TCP_8080, FamilyFilter::Any);
        let got: Vec<(&str, &str, &str)> = e.pairs[0]
            .ingress
            .as_ref()
            .unwrap()
            .rules
            .iter()
            .map(|r| (r.field.as_str(), r.peer.as_str(), r.port.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "spec.ingress[0].from[0].ports[0]",
                    "namespaceSelector {team: pay, env NotIn (dev, test), pci Exists}",
                    "every TCP port"
                ),
                (
                    "spec.ingress[1].from[0].ports[0]",
                    "ipBlock 198.18.0.0/16 except 198.18.1.0/24, 198.18.2.0/24",
                    "8000-8100/TCP"
                ),
                (
                    "spec.ingress[2].from[1]",
                    "podSelector {app: a} in the policy's namespace x",
                    "all ports and protocols"
                ),
                ("spec.ingress[3]", "all peers", "all ports and protocols"),
            ]
        );
    }

    #[test]
    fn table_shows_a_legend_a_grid_and_counts() {
        let m = payments_example().build();
        let index = Index::new(&m);
        let table = matrix(&index, &[TCP_8080], FamilyFilter::Any, &[]).render_table();
        let expected = "\
connectivity matrix: row = sender, column = receiver; families: IPv4 and IPv6
  .  allowed    X  denied    -  no address pair of a considered family
  the diagonal is self-traffic over loopback: always allowed

  1  analytics/worker
  2  kube-system/kube-dns
  3  payments/payments-api
  4  web/checkout
  5  web/frontend

8080/TCP
     1 2 3 4 5
  1  . . X . .
  2  . . X . .
  3  . . . . .
  4  X X . . X
  5  X X X X .
8080/TCP: 16 allowed (including 5 self), 9 denied
";
        assert_eq!(table, expected, "got:\n{table}");

        let nothing = matrix(&index, &[], FamilyFilter::Any, &[]).render_table();
        assert!(nothing.ends_with("no probes asked\n"), "{nothing}");
        let empty = crate::model::Model::default();
        let table = matrix(&Index::new(&empty), &[TCP_8080], FamilyFilter::Any, &[]).render_table();
        assert!(
            table.ends_with("no endpoints in the inventory\n"),
            "{table}"
        );
    }

    #[test]
    fn table_stacks_column_numbers_and_marks_missing_pairs() {
        let mut b = ModelBuilder::new();
        for i in 1..=12 {
            b = b.endpoint(&format!("ns/e{i:02}"), &[], &[&format!("198.18.0.{i}")]);
        }
        let b = b.endpoint("ns/v6only", &[], &["2001:db8::1"]);
        let m = b.build();
        let index = Index::new(&m);
        let table = matrix(&index, &[TCP_8080], FamilyFilter::Any, &[]).render_table();
        let lines: Vec<&str> = table.lines().collect();
        let grid_at = lines.iter().position(|l| *l == "8080/TCP").unwrap();
        let (tens, units) = (lines[grid_at + 1], lines[grid_at + 2]);
        let rows = &lines[grid_at + 3..grid_at + 16];
        assert_eq!(tens.trim(), "1 1 1 1");
        assert_eq!(units.trim(), "1 2 3 4 5 6 7 8 9 0 1 2 3");
        // Every row is as wide as the units line and each mark sits under its number.
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.len(), units.len(), "row {row:?}");
            assert_eq!(row[..4].trim(), (i + 1).to_string());
            for (j, (mark, digit)) in row.bytes().zip(units.bytes()).enumerate().skip(4) {
                assert_eq!(digit.is_ascii_digit(), mark != b' ', "row {i} column {j}");
            }
        }
        // The IPv6-only endpoint (row 13) has no pair with the IPv4-only ones.
        assert_eq!(
            rows[12].split_whitespace().collect::<Vec<_>>()[1..].join(""),
            "------------."
        );
        assert!(lines[grid_at + 16]
            .ends_with("145 allowed (including 13 self), 0 denied, 24 without an address pair"));
    }

    // ClusterNetworkPolicy tiers: each test adds cluster policies to the payments
    // example, whose NetworkPolicies isolate payments-api's ingress (only web's checkout
    // on 8080) and web's egress (DNS, and checkout to payments-api), and leave
    // analytics/worker and kube-system/kube-dns open.

    use crate::model::Action::{Accept, Deny, Pass};
    use crate::model::Tier::{Admin, Baseline};
    use crate::model::{ClusterPolicy, ClusterRule, Subject, NAMESPACE_NAME_LABEL};

    /// Selects the namespace by its name label.
    fn ns_named(ns: &str) -> LabelSelector {
        sel(&[(NAMESPACE_NAME_LABEL, ns)])
    }

    fn admin_in(
        name: &str,
        priority: u16,
        subject: Subject,
        ingress: Vec<ClusterRule>,
    ) -> ClusterPolicy {
        cnp(name, Admin, priority, subject, ingress, vec![])
    }

    fn baseline_in(
        name: &str,
        priority: u16,
        subject: Subject,
        ingress: Vec<ClusterRule>,
    ) -> ClusterPolicy {
        cnp(name, Baseline, priority, subject, ingress, vec![])
    }

    fn with_cnps(cnps: Vec<ClusterPolicy>) -> Model {
        cnps.into_iter()
            .fold(payments_example(), ModelBuilder::cluster_policy)
            .build()
    }

    /// The sides of the first address pair.
    fn sides(e: &Explanation) -> (&SideExplanation, &SideExplanation) {
        let pair = &e.pairs[0];
        (
            pair.egress.as_ref().expect("an endpoint sends"),
            pair.ingress.as_ref().expect("an endpoint receives"),
        )
    }

    fn cell_by_name(index: &Index<'_>, from: &str, to: &str, probe: Probe) -> bool {
        let m = matrix(index, &[probe], FamilyFilter::Any, &[]);
        m.probes[0].allowed[ep(index, from)][ep(index, to)]
    }

    fn assert_text(e: &Explanation, needles: &[&str]) {
        let text = e.render_text();
        for needle in needles {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn an_admin_accept_overrides_a_network_policy_deny() {
        let m = with_cnps(vec![admin_in(
            "allow-monitoring",
            10,
            subject_ns(ns_named("payments")),
            vec![named_rule(
                "scrape",
                crule(
                    Accept,
                    vec![cpeer_pods(ns_named("analytics"), sel(&[("app", "worker")]))],
                    Some(vec![cports(Protocol::Tcp, 8080, 8080)]),
                ),
            )],
        )]);
        let index = Index::new(&m);
        let (worker, api) = ("analytics/worker", "payments/payments-api");
        assert!(cell_by_name(&index, worker, api, TCP_8080));
        let e = explain_by_name(&index, worker, api, TCP_8080, FamilyFilter::Any);
        assert!(e.allowed);
        let (egress, ingress) = sides(&e);
        assert_eq!(egress.tier, DecidingTier::Default);
        assert_eq!(ingress.tier, DecidingTier::Admin);
        // NetworkPolicy alone would deny: its verdict stays in the explanation.
        assert!(ingress.allowed && !ingress.verdict.is_allowed());
        assert_eq!(
            ingress.cluster_rule,
            Some(ClusterRuleExplanation {
                tier: Admin,
                policy: "allow-monitoring".into(),
                name: Some("scrape".into()),
                field: "spec.ingress[0]".into(),
                action: Accept,
                peer: "pods {app: worker} in namespaces {kubernetes.io/metadata.name: analytics}"
                    .into(),
                protocol: "8080/TCP".into(),
            })
        );
        assert!(ingress.passed_rules.is_empty());
        assert_text(
            &e,
            &[
                "analytics/worker -> payments/payments-api on 8080/TCP (IPv4): ALLOWED",
                "ingress of payments/payments-api: allowed by Admin cnp/allow-monitoring rule \"scrape\" (spec.ingress[0]) Accept: pods {app: worker} in namespaces {kubernetes.io/metadata.name: analytics}; 8080/TCP\n",
                "      NetworkPolicy not consulted (isolated by payments/allow-checkout, payments/default-deny-ingress, it would deny)\n",
                "egress of analytics/worker: allowed by default: no tier decided",
            ],
        );
        let v = serde_json::to_value(&e).unwrap();
        let ingress = &v["pairs"][0]["ingress"];
        assert_eq!(ingress["tier"], "admin");
        assert_eq!(ingress["verdict"], "denied");
        assert_eq!(
            ingress["tiers"],
            json!({"passed": [], "decision": {"decision": "accept", "by": {
                "tier": "Admin", "policy": "allow-monitoring", "rule": 0, "name": "scrape"}}})
        );
        assert_eq!(ingress["cluster_rule"]["action"], "Accept");
        // Another port: the rule does not match, NetworkPolicy decides.
        let https = "443/TCP".parse().unwrap();
        assert!(!cell_by_name(&index, worker, api, https));
        let e = explain_by_name(&index, worker, api, https, FamilyFilter::Any);
        assert_eq!(sides(&e).1.tier, DecidingTier::NetworkPolicy);
        assert_text(
            &e,
            &["      decided by the NetworkPolicy tier: no Admin rule accepted or denied it\n"],
        );
    }

    #[test]
    fn an_admin_deny_overrides_a_network_policy_allow() {
        let m = with_cnps(vec![
            admin_in(
                "no-web-to-payments",
                5,
                subject_pods(ns_named("payments"), sel(&[("app", "payments-api")])),
                vec![crule(Deny, vec![cpeer_ns(sel(&[("name", "web")]))], None)],
            ),
            cnp(
                "deny-metadata",
                Admin,
                0,
                subject_ns(sel(&[])),
                vec![],
                vec![named_rule(
                    "block-imds",
                    crule(
                        Deny,
                        vec![networks(&["169.254.169.254/32", "10.0.0.0/8"])],
                        None,
                    ),
                )],
            ),
        ]);
        let index = Index::new(&m);
        let (checkout, api) = ("web/checkout", "payments/payments-api");
        assert!(!cell_by_name(&index, checkout, api, TCP_8080));
        let e = explain_by_name(&index, checkout, api, TCP_8080, FamilyFilter::Any);
        assert!(!e.allowed);
        for pair in &e.pairs {
            let (egress, ingress) = (
                pair.egress.as_ref().unwrap(),
                pair.ingress.as_ref().unwrap(),
            );
            assert_eq!(egress.tier, DecidingTier::NetworkPolicy);
            assert!(egress.allowed);
            assert_eq!(ingress.tier, DecidingTier::Admin);
            assert!(!ingress.allowed && ingress.verdict.is_allowed());
            assert_eq!(
                ingress.decided,
                "Admin cnp/no-web-to-payments rule spec.ingress[0] Deny: namespaces {name: web}"
            );
        }
        assert_text(
            &e,
            &[
                "ingress of payments/payments-api: DENIED by Admin cnp/no-web-to-payments rule spec.ingress[0] Deny: namespaces {name: web}\n",
                "      NetworkPolicy not consulted (isolated by payments/allow-checkout, payments/default-deny-ingress, it would allow)\n",
            ],
        );
        // To a stranger: only the sender's egress is policed, and an Admin rule of
        // every namespace denies it before NetworkPolicy (which isolates nothing here).
        let imds = End::Stranger(ip("169.254.169.254"));
        let http = "80/TCP".parse().unwrap();
        let e = explain(
            &index,
            ep(&index, "analytics/worker"),
            imds,
            http,
            FamilyFilter::Any,
            &[],
        );
        assert!(!e.allowed);
        let egress = e.pairs[0].egress.as_ref().unwrap();
        assert_eq!(egress.tier, DecidingTier::Admin);
        assert_eq!(
            egress.cluster_rule.as_ref().unwrap().peer,
            "networks 169.254.169.254/32"
        );
        assert_text(
            &e,
            &[
                "egress of analytics/worker: DENIED by Admin cnp/deny-metadata rule \"block-imds\" (spec.egress[0]) Deny: networks 169.254.169.254/32\n",
            ],
        );
        assert!(
            !e.render_text().contains("not consulted"),
            "{}",
            e.render_text()
        );
    }

    #[test]
    fn a_pass_hands_the_packet_to_network_policy() {
        let m = with_cnps(vec![
            admin_in(
                "delegate-web",
                1,
                subject_ns(ns_named("payments")),
                vec![named_rule(
                    "web-decides",
                    crule(Pass, vec![cpeer_ns(sel(&[("name", "web")]))], None),
                )],
            ),
            // Later in the tier: a Pass skips it.
            admin_in(
                "lockdown",
                2,
                subject_ns(ns_named("payments")),
                vec![crule(Deny, vec![cpeer_ns(sel(&[]))], None)],
            ),
        ]);
        let index = Index::new(&m);
        let api = "payments/payments-api";
        assert!(cell_by_name(&index, "web/checkout", api, TCP_8080));
        let e = explain_by_name(&index, "web/checkout", api, TCP_8080, FamilyFilter::Any);
        assert!(e.allowed);
        let (_, ingress) = sides(&e);
        assert_eq!(ingress.tier, DecidingTier::NetworkPolicy);
        assert_eq!(ingress.cluster_rule, None);
        assert_eq!(ingress.decided, "NetworkPolicy: allowed");
        assert_eq!(ingress.tiers.passed.len(), 1);
        assert_eq!(ingress.tiers.passed[0].policy, "delegate-web");
        assert_eq!(
            ingress.passed_rules.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["Admin cnp/delegate-web rule \"web-decides\" (spec.ingress[0]) Pass: namespaces {name: web}"]
        );
        assert_text(
            &e,
            &[
                "ingress of payments/payments-api: allowed; isolated by payments/allow-checkout, payments/default-deny-ingress; allowed by:\n",
                "      decided by the NetworkPolicy tier: no Admin rule accepted or denied it\n      after Admin cnp/delegate-web rule \"web-decides\" (spec.ingress[0]) Pass: namespaces {name: web}\n",
            ],
        );
        // NetworkPolicy denies web/frontend after the same Pass.
        let e = explain_by_name(&index, "web/frontend", api, TCP_8080, FamilyFilter::Any);
        let (_, ingress) = sides(&e);
        assert_eq!(
            (ingress.tier, ingress.allowed),
            (DecidingTier::NetworkPolicy, false)
        );
        assert_eq!(ingress.decided, "NetworkPolicy: denied");
        assert_eq!(ingress.passed_rules.len(), 1);
        // Not from web: no Pass, the later Admin rule denies.
        let e = explain_by_name(&index, "analytics/worker", api, TCP_8080, FamilyFilter::Any);
        let (_, ingress) = sides(&e);
        assert_eq!(ingress.tier, DecidingTier::Admin);
        assert_eq!(ingress.cluster_rule.as_ref().unwrap().policy, "lockdown");
    }

    #[test]
    fn a_pass_skips_to_baseline_where_network_policy_does_not_isolate() {
        let m = with_cnps(vec![
            admin_in(
                "delegate",
                1,
                subject_ns(ns_named("analytics")),
                vec![crule(Pass, vec![cpeer_ns(ns_named("payments"))], None)],
            ),
            admin_in(
                "open-analytics",
                2,
                subject_ns(ns_named("analytics")),
                vec![crule(Accept, vec![cpeer_ns(sel(&[]))], None)],
            ),
            baseline_in(
                "guard-analytics",
                1,
                subject_ns(ns_named("analytics")),
                vec![named_rule(
                    "no-payments",
                    crule(
                        Deny,
                        vec![cpeer_ns(ns_named("payments"))],
                        Some(vec![cproto(Protocol::Tcp)]),
                    ),
                )],
            ),
        ]);
        let index = Index::new(&m);
        let (api, worker) = ("payments/payments-api", "analytics/worker");
        assert!(!cell_by_name(&index, api, worker, TCP_8080));
        let e = explain_by_name(&index, api, worker, TCP_8080, FamilyFilter::Any);
        assert!(!e.allowed);
        let (egress, ingress) = sides(&e);
        assert_eq!(egress.tier, DecidingTier::Default);
        assert_eq!(ingress.tier, DecidingTier::Baseline);
        assert_eq!(ingress.verdict, Verdict::NotIsolated);
        assert_eq!(ingress.tiers.passed.len(), 1);
        assert_eq!(ingress.passed_rules[0].tier, Admin);
        assert_eq!(
            ingress.cluster_rule.as_ref().unwrap().protocol,
            "every TCP port"
        );
        assert_text(
            &e,
            &[
                "ingress of analytics/worker: DENIED by Baseline cnp/guard-analytics rule \"no-payments\" (spec.ingress[0]) Deny: namespaces {kubernetes.io/metadata.name: payments}; every TCP port\n      after Admin cnp/delegate rule spec.ingress[0] Pass: namespaces {kubernetes.io/metadata.name: payments}\n",
            ],
        );
        // Not TCP: the Baseline rule does not match either, so nothing decides.
        let e = explain_by_name(&index, api, worker, UDP_53, FamilyFilter::Any);
        assert!(e.allowed);
        let (_, ingress) = sides(&e);
        assert_eq!(
            (ingress.tier, ingress.passed_rules.len()),
            (DecidingTier::Default, 1)
        );
        // From kube-system: no Pass; the later Admin rule accepts.
        let e = explain_by_name(
            &index,
            "kube-system/kube-dns",
            worker,
            TCP_8080,
            FamilyFilter::Any,
        );
        let (_, ingress) = sides(&e);
        assert_eq!(ingress.tier, DecidingTier::Admin);
        assert!(ingress.allowed && ingress.passed_rules.is_empty());
    }

    #[test]
    fn a_baseline_rule_decides_where_network_policy_does_not_isolate() {
        let m = with_cnps(vec![baseline_in(
            "default-deny-analytics",
            100,
            subject_ns(ns_named("analytics")),
            vec![
                named_rule(
                    "only-web",
                    crule(
                        Accept,
                        vec![cpeer_ns(sel(&[("name", "web")]))],
                        Some(vec![cproto(Protocol::Tcp)]),
                    ),
                ),
                crule(Deny, vec![cpeer_ns(sel(&[]))], None),
            ],
        )]);
        let index = Index::new(&m);
        let worker = "analytics/worker";
        assert!(!cell_by_name(
            &index,
            "payments/payments-api",
            worker,
            TCP_8080
        ));
        let e = explain_by_name(
            &index,
            "payments/payments-api",
            worker,
            TCP_8080,
            FamilyFilter::Any,
        );
        let (_, ingress) = sides(&e);
        assert_eq!(
            (ingress.tier, ingress.allowed),
            (DecidingTier::Baseline, false)
        );
        assert_eq!(
            ingress.decided,
            "Baseline cnp/default-deny-analytics rule spec.ingress[1] Deny: namespaces {}"
        );
        // web/checkout's ingress side is accepted by the first rule (its own egress
        // policy still denies the connection).
        let e = explain_by_name(&index, "web/checkout", worker, TCP_8080, FamilyFilter::Any);
        let (egress, ingress) = sides(&e);
        assert!(!e.allowed && !egress.allowed && ingress.allowed);
        assert_eq!(egress.tier, DecidingTier::NetworkPolicy);
        assert_eq!(
            ingress.decided,
            "Baseline cnp/default-deny-analytics rule \"only-web\" (spec.ingress[0]) Accept: namespaces {name: web}; every TCP port"
        );
        // DNS's UDP is not TCP: the deny-all rule.
        let e = explain_by_name(
            &index,
            "kube-system/kube-dns",
            worker,
            UDP_53,
            FamilyFilter::Any,
        );
        assert_eq!(
            sides(&e).1.cluster_rule.as_ref().unwrap().field,
            "spec.ingress[1]"
        );
        assert!(!e.allowed);
    }

    #[test]
    fn baseline_is_ignored_where_network_policy_isolates() {
        let m = with_cnps(vec![baseline_in(
            "deny-everything",
            0,
            subject_ns(sel(&[])),
            vec![crule(Deny, vec![cpeer_ns(sel(&[]))], None)],
        )]);
        let index = Index::new(&m);
        let api = "payments/payments-api";
        // payments-api's ingress is isolated by NetworkPolicies: they decide, allowed.
        assert!(cell_by_name(&index, "web/checkout", api, TCP_8080));
        let e = explain_by_name(&index, "web/checkout", api, TCP_8080, FamilyFilter::Any);
        let (egress, ingress) = sides(&e);
        assert_eq!(
            (egress.tier, ingress.tier),
            (DecidingTier::NetworkPolicy, DecidingTier::NetworkPolicy)
        );
        assert!(ingress.allowed && ingress.cluster_rule.is_none());
        // ... and denied: still NetworkPolicy, not Baseline.
        let e = explain_by_name(&index, "analytics/worker", api, TCP_8080, FamilyFilter::Any);
        let (egress, ingress) = sides(&e);
        assert_eq!(
            (ingress.tier, ingress.allowed),
            (DecidingTier::NetworkPolicy, false)
        );
        // The worker's egress: no tier has a rule for it.
        assert_eq!((egress.tier, egress.allowed), (DecidingTier::Default, true));
        // kube-dns's ingress is not isolated by NetworkPolicies: Baseline denies.
        assert!(!cell_by_name(
            &index,
            "analytics/worker",
            "kube-system/kube-dns",
            UDP_53
        ));
        let e = explain_by_name(
            &index,
            "analytics/worker",
            "kube-system/kube-dns",
            UDP_53,
            FamilyFilter::Any,
        );
        let (_, ingress) = sides(&e);
        assert_eq!(
            (ingress.tier, ingress.allowed),
            (DecidingTier::Baseline, false)
        );
    }

    #[test]
    fn nothing_decides_when_no_cluster_rule_matches_and_no_network_policy_isolates() {
        let m = with_cnps(vec![baseline_in(
            "unrelated",
            0,
            subject_ns(ns_named("analytics")),
            vec![crule(Deny, vec![cpeer_ns(ns_named("nowhere"))], None)],
        )]);
        let index = Index::new(&m);
        let e = explain_by_name(
            &index,
            "payments/payments-api",
            "analytics/worker",
            TCP_8080,
            FamilyFilter::Any,
        );
        assert!(e.allowed);
        for side in [sides(&e).0, sides(&e).1] {
            assert_eq!(side.tier, DecidingTier::Default);
            assert_eq!(side.tiers.decision, Decision::Default);
            assert!(side.cluster_rule.is_none() && side.passed_rules.is_empty());
            assert_eq!(side.decided, "no tier decided: allowed by default");
        }
        assert_text(
            &e,
            &[
                "egress of payments/payments-api: allowed by default: no tier decided (no Admin or Baseline rule accepted or denied it, and no NetworkPolicy selects it for egress)\n",
                "ingress of analytics/worker: allowed by default: no tier decided (no Admin or Baseline rule accepted or denied it, and no NetworkPolicy selects it for ingress)\n",
            ],
        );
        // Without cluster policies the same sides read as before the tiers.
        let plain = payments_example().build();
        let index = Index::new(&plain);
        let e = explain_by_name(
            &index,
            "payments/payments-api",
            "analytics/worker",
            TCP_8080,
            FamilyFilter::Any,
        );
        assert_eq!(sides(&e).1.tier, DecidingTier::Default);
        let text = e.render_text();
        assert!(text.contains("ingress of analytics/worker: allowed, not isolated (no policy selects it for ingress)\n"), "{text}");
        assert!(!text.contains("tier"), "{text}");
    }

    /// Every situation above at once, plus named ports and a Pass in both tiers.
    fn every_tier() -> Model {
        let web = || cpeer_ns(sel(&[("name", "web")]));
        with_cnps(vec![
            admin_in(
                "allow-monitoring",
                10,
                subject_ns(ns_named("payments")),
                vec![crule(
                    Accept,
                    vec![cpeer_pods(ns_named("analytics"), sel(&[]))],
                    Some(vec![cnamed("http")]),
                )],
            ),
            admin_in(
                "delegate-web",
                1,
                subject_ns(sel(&[])),
                vec![crule(
                    Pass,
                    vec![web()],
                    Some(vec![cports(Protocol::Tcp, 8000, 8999)]),
                )],
            ),
            cnp(
                "no-dns-over-tcp",
                Admin,
                3,
                subject_ns(ns_named("web")),
                vec![],
                vec![crule(
                    Deny,
                    vec![cpeer_ns(ns_named("kube-system"))],
                    Some(vec![cproto(Protocol::Tcp)]),
                )],
            ),
            baseline_in(
                "guard",
                0,
                subject_ns(sel(&[])),
                vec![
                    crule(Pass, vec![cpeer_ns(ns_named("kube-system"))], None),
                    crule(Deny, vec![web()], None),
                    crule(
                        Accept,
                        vec![networks(&["198.18.0.0/16"])],
                        Some(vec![cproto(Protocol::Udp)]),
                    ),
                    crule(
                        Deny,
                        vec![cpeer_ns(sel(&[]))],
                        Some(vec![cproto(Protocol::Tcp)]),
                    ),
                ],
            ),
            cnp(
                "egress-guard",
                Baseline,
                5,
                subject_ns(ns_named("analytics")),
                vec![],
                vec![crule(Deny, vec![networks(&["2001:db8::/64"])], None)],
            ),
        ])
    }

    /// Cluster policies selecting payments-api and the worker only, so the other
    /// endpoints take the matrix's path for endpoints no cluster policy selects.
    fn some_subjects() -> Model {
        with_cnps(vec![
            admin_in(
                "allow-monitoring",
                10,
                subject_pods(ns_named("payments"), sel(&[("app", "payments-api")])),
                vec![crule(
                    Accept,
                    vec![cpeer_ns(ns_named("analytics"))],
                    Some(vec![cnamed("http")]),
                )],
            ),
            baseline_in(
                "guard-analytics",
                0,
                subject_ns(ns_named("analytics")),
                vec![crule(Deny, vec![cpeer_ns(sel(&[("name", "web")]))], None)],
            ),
        ])
    }

    #[test]
    fn matrix_and_explain_agree_on_every_cell_with_cluster_policies() {
        let probes = [
            TCP_8080,
            UDP_53,
            "53/TCP".parse().unwrap(),
            "22/TCP".parse().unwrap(),
            "8443/TCP".parse().unwrap(),
            "9/SCTP".parse().unwrap(),
        ];
        let failsafe = Failsafe::defaults();
        let plain = payments_example().build();
        let before = matrix(&Index::new(&plain), &probes, FamilyFilter::Any, &[]);
        let mut tiers_seen = std::collections::BTreeSet::new();
        for m in [every_tier(), some_subjects()] {
            let index = Index::new(&m);
            for fs in [&[][..], &failsafe[..]] {
                for family in [FamilyFilter::Any, FamilyFilter::V4, FamilyFilter::V6] {
                    let mx = matrix(&index, &probes, family, fs);
                    for (pm, probe) in mx.probes.iter().zip(probes) {
                        for i in 0..pm.endpoints.len() {
                            for j in 0..pm.endpoints.len() {
                                let e = explain(&index, i, j, probe, family, fs);
                                assert_eq!(
                                    pm.allowed[i][j], e.allowed,
                                    "{family} {probe} {i}->{j}"
                                );
                                for side in e.pairs.iter().flat_map(|p| [&p.egress, &p.ingress]) {
                                    let side = side.as_ref().unwrap();
                                    let tiers = side.tiers.is_allowed();
                                    tiers_seen.insert(format!("{:?} {tiers}", side.tier));
                                    assert_eq!(side.allowed, side.failsafe.is_some() || tiers);
                                }
                            }
                        }
                    }
                }
            }
            // The tiers change answers: the payments example alone differs.
            assert_ne!(
                matrix(&index, &probes, FamilyFilter::Any, &[]).probes,
                before.probes
            );
        }
        // The models exercise every tier, allowing and denying.
        for seen in [
            "Admin true",
            "Admin false",
            "NetworkPolicy true",
            "NetworkPolicy false",
            "Baseline true",
            "Baseline false",
            "Default true",
        ] {
            assert!(tiers_seen.contains(seen), "{seen} not in {tiers_seen:?}");
        }
    }
}
