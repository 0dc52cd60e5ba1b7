//! The plan: the nftables ruleset for a set of local endpoints, as a plain value.
//!
//! One plan, two renderings: `render` turns it into `nft -f` text for people, tests and
//! cross-checks; the daemon encodes the same value into one netlink batch. Rule shapes
//! are a closed enum ([`Stmt`]) so that both renderings, and the plan evaluator of the
//! property test, must handle every shape.
//!
//! The data-plane layout (ARCHITECTURE.md, "Kernel data plane"): base chains accept
//! established/related, drop invalid, accept loopback and the ICMPv6 of neighbour and
//! router discovery and MLD, then dispatch by local address through a verdict map (one
//! per direction and family) to one chain per isolated local endpoint and direction. That chain has at most two look-ups per family (an address
//! set for "all ports" peers and an address · protocol · port interval set) and ends in
//! a counted deny — or, where only audit policies isolate the endpoint or the host is in
//! audit mode, a counted accept ([`Stmt::Audit`]), with a [`Stmt::Log`] before it when
//! events are reported. An address · protocol · port set of more than
//! [`Options::shard_above`] elements is sharded by address block (`shards.rs`): a map
//! from block to a chain holding that block's set, so no kernel transaction clones a
//! large `pipapo` set. A new connection therefore meets a constant number of rules
//! however many policies, peers and ports there are. This module decides no semantics:
//! peers and ports come from `resolve`.

use std::net::IpAddr;

use serde::Serialize;

use crate::model::{Direction, ObjectName, Tier};

mod checked;
mod compile;
mod delta;
mod failsafe;
pub(crate) mod intervals;
mod names;
mod shards;
#[cfg(test)]
mod tests;
mod tiers;
#[cfg(feature = "test-support")]
pub mod unchecked;
mod verdict;

pub use checked::{AddrProtoPorts, AddrRanges, Parts, PlanError, Verdicts, MAX_NAME};
pub use delta::{delta, Delta, MapDelta, SetDelta, Structural};
pub use failsafe::{
    parse_cidr, parse_direction, parse_ports, parse_protocol, Failsafe, FailsafeError,
};
pub use names::{
    audit_comment, chain_name, chain_owners, deny_comment, log_prefix, parse_log_prefix,
    tier_comment, COMMENT_CUT_MARK, MAX_COMMENT,
};
pub use verdict::{Accepts, ChainAccepts, Outcome, Packet, Verdict};

/// Name of the table's one rate limit, shared by every [`Stmt::Log`] rule.
pub const EVENTS_LIMIT: &str = "netpol_events";

/// Name of the one table netpol owns (family `inet`).
pub const TABLE_NAME: &str = "netpol";

/// The comment netpol gives its table: how a table named `inet netpol` is told from
/// one that someone else made (which `netpolctl apply` does not replace unasked).
pub const TABLE_COMMENT: &str = "managed by netpol";

/// ICMPv6 types always accepted so a host keeps its addresses and neighbours:
/// MLD query/report/done (130–132), router solicitation/advertisement (133, 134),
/// neighbour solicitation/advertisement (135, 136), MLDv2 report (143).
pub const ICMPV6_ALWAYS: [u8; 8] = [130, 131, 132, 133, 134, 135, 136, 143];

/// Address family of a set, map or rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Family {
    /// IPv4 (`ip`).
    V4,
    /// IPv6 (`ip6`).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// Which address of the packet a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AddrField {
    /// Source address.
    Saddr,
    /// Destination address.
    Daddr,
}

/// An inclusive address range of one family (`start <= end`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AddrRange {
    /// First address.
    pub start: IpAddr,
    /// Last address, inclusive, same family as `start`.
    pub end: IpAddr,
}

impl AddrRange {
    /// Whether the range holds this address.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        Family::of(ip) == Family::of(&self.start) && self.start <= *ip && *ip <= self.end
    }
}

/// An element of an address · protocol · port set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AddrProtoPort {
    /// The remote addresses.
    pub addr: AddrRange,
    /// IP protocol number (6, 17, 132).
    pub proto: u8,
    /// Inclusive destination port range.
    pub ports: (u16, u16),
}

/// IP protocols whose packets a cluster tier's `…_ports` map judges by destination port
/// (TCP, UDP, SCTP); every other protocol meets the tier's `…_other` map, keyed by
/// address alone ([`Stmt::TierOther`]).
pub const PORT_PROTOCOLS: [u8; 3] = [6, 17, 132];

/// What a cluster tier's verdict map does with a packet whose key it holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TierVerdict {
    /// `accept`: an Admin `Accept`, final for this direction.
    Accept,
    /// `goto CHAIN`: the tier's deny chain of this endpoint and direction (log, deny).
    Goto(String),
    /// `jump CHAIN`: the chain of one port layout of the tier (a class of addresses
    /// with the same cells), whose end comes back here, to the next rule.
    Jump(String),
}

/// What a set holds. Elements are sorted and never overlap (the kernel refuses
/// overlapping interval elements): the element types can only be built so. The
/// `…Verdict` kinds are verdict maps (a key, then `: accept` or `: goto CHAIN`): a
/// cluster tier's first-matching actions, flattened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SetElements {
    /// `type ipv4_addr|ipv6_addr; flags interval`.
    Addr(AddrRanges),
    /// `type ipvN_addr . inet_proto . inet_service; flags interval`.
    AddrProtoPort(AddrProtoPorts),
    /// `type ipvN_addr : verdict; flags interval` (a tier's `…_other` map).
    AddrVerdict(Verdicts<AddrRanges>),
    /// `type ipvN_addr . inet_proto . inet_service : verdict; flags interval` (a tier's
    /// `…_ports` map).
    AddrProtoPortVerdict(Verdicts<AddrProtoPorts>),
}

impl SetElements {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            SetElements::Addr(v) => v.len(),
            SetElements::AddrProtoPort(v) => v.len(),
            SetElements::AddrVerdict(v) => v.len(),
            SetElements::AddrProtoPortVerdict(v) => v.len(),
        }
    }

    /// Whether this is a verdict map (elements carry a [`TierVerdict`]).
    pub fn is_map(&self) -> bool {
        matches!(
            self,
            SetElements::AddrVerdict(_) | SetElements::AddrProtoPortVerdict(_)
        )
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named set of the table ([`Set::new`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Set {
    name: String,
    family: Family,
    elements: SetElements,
}

/// A verdict map from a local address to the chain that polices it ([`VerdictMap::new`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerdictMap {
    name: String,
    family: Family,
    elements: Vec<(IpAddr, String)>,
}

/// Netfilter hook of a base chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Hook {
    /// Packets to this host.
    Input,
    /// Packets from this host.
    Output,
}

/// Host-wide mode: `Audit` accepts what the policies would deny, and reports it
/// (`netpold --mode audit`, the first day of netpol on a host).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// What the policies deny is denied (default).
    #[default]
    Enforce,
    /// Nothing is denied; what would be is accepted and reported.
    Audit,
}

/// Reporting of denied and audited connections: their packets are logged to NFLOG
/// `group`, at most `rate` a second with bursts of `burst`, for the whole table (one
/// shared limit, so a flood costs netpold no more than this).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EventLog {
    /// NFLOG group netpold listens on.
    pub group: u16,
    /// Packets a second, over the whole table.
    pub rate: u32,
    /// Packets above the rate let through at once.
    pub burst: u32,
}

/// What a logged packet met: a deny, or an audit (accepted, but a policy in audit
/// mode, or the host-wide audit mode, would deny it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventVerdict {
    /// Dropped or rejected.
    Deny,
    /// Accepted, reported.
    Audit,
}

/// A named rate limit of the table (`limit NAME { rate R/second burst B packets }`),
/// shared by every rule that names it ([`RateLimit::new`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    name: String,
    rate: u32,
    burst: u32,
}

/// What an isolated chain does with what no rule allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum DenyAction {
    /// Silently drop (default).
    #[default]
    Drop,
    /// TCP reset for TCP, ICMP(v6) administratively-prohibited otherwise.
    Reject,
}

/// One rule. A closed set of shapes; every renderer handles each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Stmt {
    /// `ct state established,related accept`
    CtEstablishedAccept,
    /// `ct state invalid drop`
    CtInvalidDrop,
    /// `iifname "lo" accept` (input) or `oifname "lo" accept` (output).
    LoopbackAccept(Hook),
    /// `icmpv6 type { ICMPV6_ALWAYS } accept`
    NeighbourDiscoveryAccept,
    /// `ip daddr vmap @map` — jump to the local endpoint's chain.
    Dispatch {
        /// Family of the address.
        family: Family,
        /// Which address identifies the local endpoint.
        field: AddrField,
        /// The verdict map.
        map: String,
    },
    /// `ip saddr @set accept` — peers allowed on every protocol and port.
    AcceptAddr {
        /// Family of the address.
        family: Family,
        /// Which address is the peer's.
        field: AddrField,
        /// An [`SetElements::Addr`] set.
        set: String,
    },
    /// `ip saddr . meta l4proto . th dport @set accept`
    AcceptAddrProtoPort {
        /// Family of the address.
        family: Family,
        /// Which address is the peer's.
        field: AddrField,
        /// An [`SetElements::AddrProtoPort`] set.
        set: String,
    },
    /// `counter drop` or `counter reject …`, with a comment naming endpoint and direction.
    Deny {
        /// Drop or reject.
        action: DenyAction,
        /// e.g. `deny ingress payments/payments-api`, for people: at most
        /// [`MAX_COMMENT`] bytes, cut ones ending in [`COMMENT_CUT_MARK`]. Not an identity;
        /// [`Plan::locals`] says which endpoint a chain polices.
        comment: String,
    },
    /// `limit name "LIMIT" counter log prefix "PREFIX" group GROUP`: the packet to
    /// netpold over NFLOG, within the table's rate limit, counted (what the limit held
    /// back is the terminal counter less this one); the prefix ([`log_prefix`]) says the
    /// verdict and direction, netpold finds the rest from the packet. Not terminal.
    Log {
        /// What the packet meets next.
        verdict: EventVerdict,
        /// The chain's direction.
        direction: Direction,
        /// NFLOG group.
        group: u16,
        /// The [`RateLimit`] it is counted against.
        limit: String,
    },
    /// `ip saddr . meta l4proto . th dport vmap @map`: a cluster tier's verdict for TCP,
    /// UDP and SCTP (the map holds only those protocols). No element: the next rule.
    TierPorts {
        /// Family of the address.
        family: Family,
        /// Which address is the peer's.
        field: AddrField,
        /// An [`SetElements::AddrProtoPortVerdict`] map.
        map: String,
    },
    /// `ip saddr vmap @map`: an address map ([`SetElements::AddrVerdict`]). A cluster
    /// tier's: `accept` or `goto` the deny chain where every protocol and port of the
    /// address has that verdict, else `jump` to the chain of its port layout (which
    /// looks the protocol and port up with [`Stmt::TierPorts`] and [`Stmt::TierOther`]
    /// over maps whose one address range is the whole family). Or a sharded set's shard
    /// map (`…_shards`, [`Options::shard_above`]): `jump` to the chain of the address's
    /// block, whose one [`Stmt::AcceptAddrProtoPort`] looks up that block's elements.
    /// No element (or a jump that comes back): the next rule.
    TierClass {
        /// Family of the address.
        family: Family,
        /// Which address is the peer's.
        field: AddrField,
        /// An [`SetElements::AddrVerdict`] map.
        map: String,
    },
    /// `meta l4proto != 6 meta l4proto != 17 meta l4proto != 132 ip saddr vmap @map`: a
    /// cluster tier's verdict for every other protocol (ICMP included), which only a rule
    /// without `protocols` can match, so the address alone decides. No element: the
    /// next rule.
    TierOther {
        /// Family of the address.
        family: Family,
        /// Which address is the peer's.
        field: AddrField,
        /// An [`SetElements::AddrVerdict`] map.
        map: String,
    },
    /// `counter accept comment "…"`: the end of a chain whose denials are audited (a
    /// policy in audit mode isolates the endpoint, or the host is in audit mode). The
    /// counter counts what would have been denied.
    Audit {
        /// e.g. `audit ingress payments/payments-api`; as [`Stmt::Deny`]'s.
        comment: String,
    },
}

/// A chain of the table ([`Chain::new`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Chain {
    name: String,
    hook: Option<Hook>,
    rules: Vec<Stmt>,
}

/// How a local endpoint is policed in the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LocalEndpoint {
    /// The endpoint.
    pub id: ObjectName,
    /// Its ingress chain; `None` when no policy (enforced or audit) isolates its ingress.
    pub ingress_chain: Option<String>,
    /// Its egress chain; `None` when no policy (enforced or audit) isolates its egress.
    pub egress_chain: Option<String>,
    /// The cluster tiers' chains its chains reach: the deny chains they `goto` and the
    /// port layouts' chains they `jump` to, sorted.
    pub tier_chains: Vec<TierChain>,
    /// The chains of its sharded sets ([`Options::shard_above`]), sorted: one per
    /// address block of a set, which its chain's shard map `jump`s to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shard_chains: Vec<ShardChain>,
}

/// A shard chain of an endpoint's chain for one direction: the accept rule of one
/// address block of a sharded address · protocol · port set, whose end returns to the
/// endpoint's chain.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ShardChain {
    /// The direction.
    pub direction: Direction,
    /// The chain's name.
    pub chain: String,
}

/// A chain of a cluster tier for one endpoint and direction: where its `Deny` ends (a
/// log rule with events, then the deny, or an audit accept under host-wide audit,
/// counted apart from the NetworkPolicy deny), or one of its port layouts' chains.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TierChain {
    /// The direction.
    pub direction: Direction,
    /// Admin or Baseline.
    pub tier: Tier,
    /// The chain's name.
    pub chain: String,
}

impl LocalEndpoint {
    /// The chain for a direction.
    pub fn chain(&self, dir: Direction) -> Option<&str> {
        match dir {
            Direction::Ingress => self.ingress_chain.as_deref(),
            Direction::Egress => self.egress_chain.as_deref(),
        }
    }
}

/// The whole ruleset: one `inet` table, whole and consistent ([`Plan::new`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    table: String,
    sets: Vec<Set>,
    maps: Vec<VerdictMap>,
    chains: Vec<Chain>,
    locals: Vec<LocalEndpoint>,
    limits: Vec<RateLimit>,
}

impl Plan {
    /// Table name (family `inet`).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Sets, sorted by name.
    pub fn sets(&self) -> &[Set] {
        &self.sets
    }

    /// Verdict maps, sorted by name.
    pub fn maps(&self) -> &[VerdictMap] {
        &self.maps
    }

    /// Base chains first, then endpoint chains sorted by name.
    pub fn chains(&self) -> &[Chain] {
        &self.chains
    }

    /// The local endpoints, sorted: which endpoint and direction each endpoint chain
    /// polices (the identity of its deny counter).
    pub fn locals(&self) -> &[LocalEndpoint] {
        &self.locals
    }

    /// Named rate limits, sorted by name.
    pub fn limits(&self) -> &[RateLimit] {
        &self.limits
    }

    /// The endpoint and direction an endpoint chain (or a tier's deny chain) polices.
    pub fn owner(&self, chain: &str) -> Option<(&ObjectName, Direction)> {
        self.locals.iter().find_map(|l| {
            [Direction::Ingress, Direction::Egress]
                .into_iter()
                .find(|&d| l.chain(d) == Some(chain))
                .or_else(|| {
                    l.tier_chains
                        .iter()
                        .find(|t| t.chain == chain)
                        .map(|t| t.direction)
                })
                .or_else(|| {
                    l.shard_chains
                        .iter()
                        .find(|t| t.chain == chain)
                        .map(|t| t.direction)
                })
                .map(|d| (&l.id, d))
        })
    }

    /// Total number of rules.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    /// Total number of set and map elements.
    pub fn element_count(&self) -> usize {
        self.sets.iter().map(|s| s.elements.len()).sum::<usize>()
            + self.maps.iter().map(|m| m.elements.len()).sum::<usize>()
    }

    /// A set by name.
    pub fn set(&self, name: &str) -> Option<&Set> {
        let i = self.sets.binary_search_by(|s| s.name.as_str().cmp(name));
        i.ok().map(|i| &self.sets[i])
    }

    /// A verdict map by name.
    pub fn map(&self, name: &str) -> Option<&VerdictMap> {
        let i = self.maps.binary_search_by(|m| m.name.as_str().cmp(name));
        i.ok().map(|i| &self.maps[i])
    }

    /// A chain by name.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        let base = self.chains.partition_point(|c| c.hook.is_some());
        self.chains[..base]
            .iter()
            .find(|c| c.name == name)
            .or_else(|| self.endpoint_chain(name))
    }

    /// An endpoint chain by name: they follow the base chains, sorted by name.
    pub(crate) fn endpoint_chain(&self, name: &str) -> Option<&Chain> {
        let base = self.chains.partition_point(|c| c.hook.is_some());
        let endpoint = &self.chains[base..];
        let i = endpoint.binary_search_by(|c| c.name.as_str().cmp(name));
        i.ok().map(|i| &endpoint[i])
    }
}

/// The most elements an address · protocol · port set of an endpoint chain holds before
/// it is sharded ([`Options::shard_above`]): measured in benches/README.md
/// ("Sharded sets (issue 16)").
pub const SHARD_ABOVE: usize = 4096;

/// Options that change the plan but not what is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Drop or reject what is denied.
    pub deny: DenyAction,
    /// Host-wide mode.
    pub mode: Mode,
    /// Report denied and audited connections over NFLOG; `None`: not reported.
    pub events: Option<EventLog>,
    /// Accepted before any policy, for every local endpoint (empty here; the tools'
    /// default is [`Failsafe::defaults`]).
    pub failsafe: Vec<Failsafe>,
    /// An endpoint chain's address · protocol · port set of more elements than this is
    /// sharded by address block, so that no kernel transaction clones a large `pipapo`
    /// set (see [`Stmt::TierClass`]); default [`SHARD_ABOVE`]. Tests set it small.
    pub shard_above: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            deny: DenyAction::default(),
            mode: Mode::default(),
            events: None,
            failsafe: Vec::new(),
            shard_above: SHARD_ABOVE,
        }
    }
}

/// Builds the plan for these local endpoints.
///
/// Each local endpoint that some enforced policy isolates in a direction gets one chain
/// for it (or, when none does but an audit policy does, one with the audit policies'
/// sets and an audit end), reached through the direction's verdict maps by each of its
/// addresses; an endpoint open in a direction gets no entry and falls through to
/// accept. The chain accepts, per family of the endpoint's addresses, the peers allowed
/// on every port from one address set and the rest from one address · protocol · port
/// set, then logs (with `options.events`) and denies (or audits under
/// [`Mode::Audit`]). Set
/// contents are normalised (no overlaps, touching ranges merged) and everything is
/// sorted, so equal inputs give equal plans. Duplicate `locals` count once.
pub fn build(
    index: &crate::resolve::Index<'_>,
    locals: &[crate::resolve::EndpointId],
    options: &Options,
) -> Plan {
    compile::build(index, locals, options)
}
