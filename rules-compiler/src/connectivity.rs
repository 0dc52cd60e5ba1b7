//! Connectivity: the exact allowed set between two ends — every protocol and port
//! range at once, not sampled probes — and how a change of inputs changes it
//! (`netpolctl diff`, netpold's reload summary, the `-o dot` pictures).
//!
//! The allowed sets are read from [`Plan`]s, the same sets the kernel gets
//! ([`Plan::chain_accepts`] walks an endpoint chain as [`Plan::verdict`] does), so this module
//! re-derives no semantics: a connection from A to B passes A's egress chain (remote: B's
//! address) and B's ingress chain (remote: A's address); an end with no chain for that
//! direction in the plan (not isolated, not local, or an ipBlock peer) lets everything
//! through. Self-traffic (loopback) is never a pair.
//!
//! # Ends
//!
//! - Every endpoint of either input, by `namespace/name`. An endpoint that exists in one
//!   input only has no address in the other, so nothing reaches it there: its flows
//!   show as all added (new endpoint) or all removed (gone endpoint).
//! - An ipBlock peer for every CIDR that any policy of either input names in an
//!   `ipBlock` (`cidr` or `except`). The peer `C` stands for the addresses of `C` that
//!   lie in no smaller named CIDR and belong to no endpoint of either input. On those
//!   addresses every `ipBlock` of every policy matches alike (each block is a union and
//!   difference of named CIDRs), no selector matches them and no named port resolves on
//!   them, so one address of the region (its `example`) speaks for all of it exactly.
//!   A CIDR whose region is empty (covered by smaller ones, or by endpoint addresses) is
//!   no peer. ipBlock peers are not policed; only their pairs with endpoints count.
//!
//! # Pairs
//!
//! A pair is considered when one of its ends is local in either plan: `netpolctl diff`
//! makes every endpoint local (the whole cluster), `--local` and netpold make only the
//! host's, and then the other end's policies are not asked — exactly what this host's
//! table enforces.
//!
//! # Families
//!
//! Per address family the two ends share (in either input), the allowed set is what
//! **every** pair of their addresses of that family allows, as in the matrix. Changes
//! and edges are then split: the part equal in both families is `any` (it holds
//! whichever address a client picks), the rest is tagged `ipv4` or `ipv6`. Ends that
//! share one family only have everything as `any`.
//!
//! # Flows
//!
//! A flow is one (from, to, family tag, protocol, port range); "other protocols" (no
//! ports) is one flow. `+N flows allowed, -M denied` counts them.
//!
//! # Cost
//!
//! When the two plans differ only in set elements (an endpoint's address or labels
//! changed, as in most reloads), a pair whose ends have the same addresses on both
//! sides, none inside a changed element, cannot have changed and is not judged
//! ([`moved_spans`]): the summary then costs the changed elements' ends, not all.
//!
//! Pure: no I/O. The text and Graphviz layouts are in `connectivity/text.rs` and
//! `connectivity/dot.rs` and decide nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{ClusterPeer, Direction, Model, ObjectName, Peer, Peers};
use crate::plan::intervals::{from_u128, merge_spans, net_span, subtract, to_u128, Span};
use crate::plan::{Accepts, AddrRange, ChainAccepts, Family, LocalEndpoint, Plan, SetElements};

mod dot;
pub mod ports;
mod text;

pub use ports::{Allowed, PortRanges, Proto};

/// What the connectivity of one input needs besides its plan: every endpoint's name and
/// addresses, and every CIDR the policies name in an `ipBlock`. Small next to the model
/// (netpold keeps it between reloads for the summary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ends {
    /// Every endpoint and its addresses, sorted by name.
    endpoints: Vec<(ObjectName, Arc<[IpAddr]>)>,
    /// Every `cidr` and `except` of every `ipBlock` of every policy, every `networks`
    /// CIDR of every ClusterNetworkPolicy, and the addresses of Nodes that `nodes`
    /// peers may select.
    blocks: BTreeSet<IpNet>,
}

impl Ends {
    /// The ends of a model.
    pub fn of(model: &Model) -> Ends {
        let endpoints = model
            .inventory
            .endpoints
            .iter()
            .map(|e| (e.id.clone(), e.ips.clone()))
            .collect();
        let mut blocks = BTreeSet::new();
        for p in &model.policies {
            for dir in [Direction::Ingress, Direction::Egress] {
                for rule in p.rules(dir).unwrap_or_default() {
                    let Peers::List(list) = &rule.peers else {
                        continue;
                    };
                    for peer in list {
                        if let Peer::IpBlock(b) = peer {
                            blocks.insert(b.cidr.trunc());
                            blocks.extend(b.except.iter().map(IpNet::trunc));
                        }
                    }
                }
            }
        }
        // ClusterNetworkPolicy `networks` (canonical already), and the addresses of
        // `nodes` peers: a Node's address as a block of one.
        for cp in &model.cluster_policies {
            for rule in cp.egress.iter().chain(&cp.ingress) {
                for peer in &rule.peers {
                    match peer {
                        ClusterPeer::Networks(nets) => blocks.extend(nets.iter().copied()),
                        ClusterPeer::Nodes(_) => {
                            for node in &model.inventory.nodes {
                                blocks.extend(node.addresses.iter().map(|&ip| IpNet::from(ip)));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ends { endpoints, blocks }
    }

    /// Endpoints and ipBlock CIDRs: the ends a local endpoint is paired with.
    pub fn len(&self) -> usize {
        self.endpoints.len() + self.blocks.len()
    }

    /// No ends at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One input: its ends and its plan.
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    /// The ends.
    pub ends: &'a Ends,
    /// The plan of the local endpoints (every endpoint, for the whole cluster).
    pub plan: &'a Plan,
}

/// One end of a pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    /// An endpoint, `namespace/name`.
    Endpoint(ObjectName),
    /// An ipBlock peer: the addresses of this CIDR outside smaller named CIDRs and
    /// endpoints (see the module doc).
    Block(IpNet),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Endpoint(n) => n.fmt(f),
            Node::Block(net) => net.fmt(f),
        }
    }
}

impl Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which families a change or an edge holds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FamilyTag {
    /// Every family the two ends share.
    #[serde(rename = "any")]
    Any,
    /// IPv4 only.
    #[serde(rename = "ipv4")]
    V4,
    /// IPv6 only.
    #[serde(rename = "ipv6")]
    V6,
}

/// Before or after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    /// Allowed.
    Allowed,
    /// Denied.
    Denied,
}

/// One pair's allowed sets per family, before and after (equal for a single input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// The sender.
    pub from: Node,
    /// The receiver.
    pub to: Node,
    /// Per family that the ends share in either input: (family, before, after).
    families: Vec<(Family, Allowed, Allowed)>,
}

impl Pair {
    /// Splits `pick(before, after)` per family into the part common to every shared
    /// family (`any`) and the rest per family; empty parts left out.
    fn split(&self, pick: impl Fn(&Allowed, &Allowed) -> Allowed) -> Vec<(FamilyTag, Allowed)> {
        let sets: Vec<(Family, Allowed)> = self
            .families
            .iter()
            .map(|(f, b, a)| (*f, pick(b, a)))
            .collect();
        let common = sets.iter().skip(1).fold(
            sets.first().map(|s| s.1.clone()).unwrap_or_default(),
            |acc, s| acc.intersect(&s.1),
        );
        let mut out = vec![(FamilyTag::Any, common.clone())];
        if sets.len() > 1 {
            for (f, s) in &sets {
                let tag = match f {
                    Family::V4 => FamilyTag::V4,
                    Family::V6 => FamilyTag::V6,
                };
                out.push((tag, s.minus(&common)));
            }
        }
        out.retain(|(_, s)| !s.is_empty());
        out
    }

    /// What the change allows that was denied.
    pub fn added(&self) -> Vec<(FamilyTag, Allowed)> {
        self.split(|before, after| after.minus(before))
    }

    /// What the change denies that was allowed.
    pub fn removed(&self) -> Vec<(FamilyTag, Allowed)> {
        self.split(|before, after| before.minus(after))
    }

    /// What is allowed before and after.
    pub fn kept(&self) -> Vec<(FamilyTag, Allowed)> {
        self.split(|before, after| before.intersect(after))
    }

    fn changed(&self) -> bool {
        self.families.iter().any(|(_, b, a)| b != a)
    }
}

/// An ipBlock peer and one address it stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockPeer {
    /// The CIDR.
    pub cidr: IpNet,
    /// An address of its region (for `netpolctl explain --from ADDRESS`).
    pub example: IpAddr,
}

/// One change of one flow set: `ports` of `protocol` from `from` to `to` went from
/// `before` to `after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The sender.
    pub from: Node,
    /// The receiver.
    pub to: Node,
    /// The families it holds for.
    pub family: FamilyTag,
    /// The protocol.
    pub protocol: Proto,
    /// Inclusive port ranges; empty for `other` (no ports).
    pub ports: Vec<[u16; 2]>,
    /// Before the change.
    pub before: Reach,
    /// After it.
    pub after: Reach,
}

/// How connectivity changed from one input to another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// The pairs whose allowed set changed, by receiver then sender.
    pub pairs: Vec<Pair>,
    /// Endpoints only in the new input.
    pub endpoints_added: Vec<ObjectName>,
    /// Endpoints only in the old input.
    pub endpoints_removed: Vec<ObjectName>,
    /// The ipBlock peers considered.
    pub blocks: Vec<BlockPeer>,
}

/// The JSON form of a [`Diff`]: `{"changes":[{"from","to","family","protocol","ports",
/// "before","after"}],"endpoints_added":[…],"endpoints_removed":[…],"ip_blocks":[…]}`.
#[derive(Serialize)]
struct DiffJson<'a> {
    changes: Vec<Change>,
    endpoints_added: &'a [ObjectName],
    endpoints_removed: &'a [ObjectName],
    ip_blocks: &'a [BlockPeer],
}

impl Serialize for Diff {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DiffJson {
            changes: self.changes(),
            endpoints_added: &self.endpoints_added,
            endpoints_removed: &self.endpoints_removed,
            ip_blocks: &self.blocks,
        }
        .serialize(s)
    }
}

/// Flows newly allowed and newly denied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Summary {
    /// Flows denied before, allowed after.
    pub allowed: usize,
    /// Flows allowed before, denied after.
    pub denied: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "+{} flow{} allowed, -{} denied",
            self.allowed,
            if self.allowed == 1 { "" } else { "s" },
            self.denied
        )
    }
}

impl Diff {
    /// Every change, one per pair, family tag, protocol and direction of change.
    pub fn changes(&self) -> Vec<Change> {
        let mut out = Vec::new();
        for p in &self.pairs {
            for (sets, before, after) in [
                (p.added(), Reach::Denied, Reach::Allowed),
                (p.removed(), Reach::Allowed, Reach::Denied),
            ] {
                for (family, set) in sets {
                    for (protocol, ranges) in set.parts() {
                        out.push(Change {
                            from: p.from.clone(),
                            to: p.to.clone(),
                            family,
                            protocol,
                            ports: ranges.ranges().iter().map(|&(lo, hi)| [lo, hi]).collect(),
                            before,
                            after,
                        });
                    }
                }
            }
        }
        out
    }

    /// Flows newly allowed and denied.
    pub fn summary(&self) -> Summary {
        summarise(&self.pairs)
    }
}

fn summarise<'p>(pairs: impl IntoIterator<Item = &'p Pair>) -> Summary {
    let mut s = Summary::default();
    for p in pairs {
        s.allowed += p.added().iter().map(|(_, a)| a.flows()).sum::<usize>();
        s.denied += p.removed().iter().map(|(_, a)| a.flows()).sum::<usize>();
    }
    s
}

/// Every pair whose allowed set differs between `old` and `new`.
pub fn diff(old: Side<'_>, new: Side<'_>) -> Diff {
    let mut pairs = Vec::new();
    let (blocks, _) = each_pair(old, new, Judge::Changed, |p| pairs.push(p));
    let names = |s: Side<'_>| -> BTreeSet<ObjectName> {
        s.ends.endpoints.iter().map(|(n, _)| n.clone()).collect()
    };
    let (before, after) = (names(old), names(new));
    Diff {
        pairs,
        endpoints_added: after.difference(&before).cloned().collect(),
        endpoints_removed: before.difference(&after).cloned().collect(),
        blocks,
    }
}

/// Only the counts of [`diff`], without keeping the pairs: netpold's reload summary.
pub fn summary(old: Side<'_>, new: Side<'_>) -> Summary {
    let mut s = Summary::default();
    each_pair(old, new, Judge::Changed, |p| {
        let one = summarise([&p]);
        s.allowed += one.allowed;
        s.denied += one.denied;
    });
    s
}

/// What one input allows: every pair with something allowed, and every end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    /// Endpoints and ipBlock peers.
    pub nodes: Vec<Node>,
    /// Pairs with something allowed (or, for a diff's graph, allowed before or after).
    pub pairs: Vec<Pair>,
    /// Whether before and after differ (a diff's graph colours what changed).
    pub is_diff: bool,
}

/// The graph of one input (`matrix -o dot`).
pub fn graph(side: Side<'_>) -> Graph {
    graph_between(side, side, false)
}

/// The graph of a change (`diff -o dot`): what is kept, added and removed.
pub fn diff_graph(old: Side<'_>, new: Side<'_>) -> Graph {
    graph_between(old, new, true)
}

fn graph_between(old: Side<'_>, new: Side<'_>, is_diff: bool) -> Graph {
    let mut pairs = Vec::new();
    let (blocks, _) = each_pair(old, new, Judge::Any, |p| pairs.push(p));
    let mut names: BTreeSet<&ObjectName> = old.ends.endpoints.iter().map(|(n, _)| n).collect();
    names.extend(new.ends.endpoints.iter().map(|(n, _)| n));
    let mut nodes: Vec<Node> = names.into_iter().cloned().map(Node::Endpoint).collect();
    nodes.extend(blocks.into_iter().map(|b| Node::Block(b.cidr)));
    Graph {
        nodes,
        pairs,
        is_diff,
    }
}

/// One end of the pairs: its node, and per side (old, new) its addresses and its
/// chains, resolved once so that each pair costs a few binary searches.
struct End<'a> {
    /// An endpoint's name (borrowed: a node is made only for a pair that is kept), or
    /// `None` for a block.
    name: Option<&'a ObjectName>,
    /// Per side; empty when the endpoint is not in that input. Unused for blocks.
    ips: [&'a [IpAddr]; 2],
    /// A block peer: its CIDR and the one address it stands for.
    block: Option<(IpNet, IpAddr)>,
    /// Per side, per direction (ingress, egress): its chain; `None` when open (not
    /// isolated, not local, or a block). Boxed, and only for local ends: the other
    /// 50,000 ends of a big input stay small.
    chains: Option<Box<Chains<'a>>>,
    /// Local in either plan.
    local: bool,
    /// Its addresses are the same on both sides and in no span of the set elements
    /// that differ (see [`moved_spans`]); always false when the plans differ in more.
    still: bool,
}

/// An end's chains, per side, per direction.
type Chains<'a> = [[Option<ChainAccepts<'a>>; 2]; 2];

const INGRESS: usize = 0;
const EGRESS: usize = 1;

impl<'a> End<'a> {
    fn ips(&self, side: usize) -> &[IpAddr] {
        match &self.block {
            Some((_, ip)) => std::slice::from_ref(ip),
            None => self.ips[side],
        }
    }

    fn chain(&self, side: usize, dir: usize) -> Option<&ChainAccepts<'a>> {
        self.chains.as_ref().and_then(|c| c[side][dir].as_ref())
    }

    fn node(&self) -> Node {
        match (self.name, self.block) {
            (Some(name), _) => Node::Endpoint(name.clone()),
            (None, Some((cidr, _))) => Node::Block(cidr),
            (None, None) => unreachable!("an end is an endpoint or a block"),
        }
    }

    /// What each chain on the way says of every address pair of `family` from `self`
    /// to `to` in `side` (answers of "everything" left out, so equal lists mean equal
    /// allowed sets); `None` when the ends have no address pair of the family there.
    fn gates(&self, to: &End<'a>, side: usize, family: Family) -> Option<Vec<Accepts<'a>>> {
        let mut gates = Vec::new();
        let mut any = false;
        for a in self.ips(side).iter().filter(|a| Family::of(a) == family) {
            for b in to.ips(side).iter().filter(|b| Family::of(b) == family) {
                any = true;
                for (chain, remote) in [(self.chain(side, EGRESS), b), (to.chain(side, INGRESS), a)]
                {
                    match chain.map(|c| c.get(remote)) {
                        None | Some(Accepts::Everything) => {}
                        Some(accepts) => gates.push(accepts),
                    }
                }
            }
        }
        any.then_some(gates)
    }
}

/// The allowed set of a pair from its gates: nothing without an address pair, else
/// what every gate allows.
fn allowed_of(gates: Option<&[Accepts<'_>]>) -> Allowed {
    match gates {
        None => Allowed::none(),
        Some(list) => list.iter().fold(Allowed::everything(), |acc, g| {
            acc.intersect(&Allowed::from_accepts(g))
        }),
    }
}

/// Every endpoint of either side, by name, with its addresses and chains per side.
fn endpoint_ends<'a>(old: Side<'a>, new: Side<'a>) -> Vec<End<'a>> {
    let sides = [old, new];
    // A tree, not a hash map: a few locals, asked about every endpoint's name.
    let locals: [BTreeMap<&ObjectName, &LocalEndpoint>; 2] =
        sides.map(|s| s.plan.locals().iter().map(|l| (&l.id, l)).collect());
    let chains = |side: usize, name: &ObjectName| -> [Option<ChainAccepts<'a>>; 2] {
        let local = locals[side].get(name);
        [Direction::Ingress, Direction::Egress].map(|dir| {
            local
                .and_then(|l| l.chain(dir))
                .and_then(|c| sides[side].plan.chain_accepts(c))
        })
    };
    let (a, b) = (&old.ends.endpoints, &new.ends.endpoints);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    // Both lists are sorted by name: merge them.
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (name, ips) = match order {
            std::cmp::Ordering::Less => {
                i += 1;
                (&a[i - 1].0, [&a[i - 1].1[..], &[][..]])
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (&b[j - 1].0, [&[][..], &b[j - 1].1[..]])
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                (&a[i - 1].0, [&a[i - 1].1[..], &b[j - 1].1[..]])
            }
        };
        let local = locals[0].contains_key(name) || locals[1].contains_key(name);
        out.push(End {
            name: Some(name),
            ips,
            block: None,
            chains: local.then(|| Box::new([chains(0, name), chains(1, name)])),
            local,
            still: false,
        });
    }
    out
}

/// Which pairs [`each_pair`] gives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Judge {
    /// Those whose allowed set differs between the sides; pairs of still ends (see
    /// [`moved_spans`]) are known not to, and are not judged.
    Changed,
    /// The same, every pair judged: the reference for `Changed` in tests.
    #[cfg(test)]
    ChangedJudgingAll,
    /// Those with anything allowed on either side.
    Any,
}

/// Calls `f` with the considered pairs (see the module doc), by receiver then sender,
/// as `which` says. Returns the ipBlock peers, and how many pairs were judged.
fn each_pair(
    old: Side<'_>,
    new: Side<'_>,
    which: Judge,
    mut f: impl FnMut(Pair),
) -> (Vec<BlockPeer>, usize) {
    let changed_only = which != Judge::Any;
    let blocks = block_peers(old.ends, new.ends);
    let mut endpoints = endpoint_ends(old, new);
    let mut block_ends: Vec<End<'_>> = blocks
        .iter()
        .map(|b| End {
            name: None,
            ips: [&[], &[]],
            block: Some((b.cidr, b.example)),
            chains: None,
            local: false,
            still: false,
        })
        .collect();
    if which == Judge::Changed {
        if let Some(moved) = moved_spans(old.plan, new.plan) {
            for end in endpoints.iter_mut().chain(&mut block_ends) {
                end.still = end.ips(0) == end.ips(1)
                    && end.ips(0).iter().all(|ip| {
                        let (family, x) = to_u128(*ip);
                        !in_spans(&moved[family_index(family)], x)
                    });
            }
        }
    }
    let locals: Vec<&End<'_>> = endpoints.iter().filter(|e| e.local).collect();

    let mut judged = 0;
    let mut judge = |from: &End<'_>, to: &End<'_>| {
        if from.still && to.still {
            return;
        }
        judged += 1;
        let gates = [Family::V4, Family::V6]
            .map(|family| (family, from.gates(to, 0, family), from.gates(to, 1, family)));
        if changed_only && gates.iter().all(|(_, b, a)| b == a) {
            return;
        }
        let families: Vec<(Family, Allowed, Allowed)> = gates
            .iter()
            .filter(|(_, b, a)| b.is_some() || a.is_some())
            .map(|(family, b, a)| (*family, allowed_of(b.as_deref()), allowed_of(a.as_deref())))
            .collect();
        let pair = Pair {
            from: from.node(),
            to: to.node(),
            families,
        };
        let wanted = if changed_only {
            pair.changed()
        } else {
            pair.families
                .iter()
                .any(|(_, b, a)| !b.is_empty() || !a.is_empty())
        };
        if wanted {
            f(pair);
        }
    };

    for to in &endpoints {
        // A pair needs a local end: every sender for a local receiver, else local ones.
        let senders: Box<dyn Iterator<Item = &End<'_>>> = if to.local {
            Box::new(endpoints.iter().chain(&block_ends))
        } else {
            Box::new(locals.iter().copied())
        };
        for from in senders {
            // Never an end with itself (loopback, always allowed).
            if !std::ptr::eq(from, to) {
                judge(from, to);
            }
        }
    }
    for to in &block_ends {
        for from in &locals {
            judge(from, to);
        }
    }
    (blocks, judged)
}

/// The address spans, per family (v4, v6), of the set elements that differ between
/// two plans alike in all else (table, chains, set definitions, local endpoints);
/// `None` when they differ in more. For an address in none of these spans every set
/// holds it, or not, through the same elements in both plans, so every chain gives it
/// the same answer ([`ChainAccepts::get`]): a pair whose two ends have the same
/// addresses in both inputs, all outside the spans, has the same allowed set. (The
/// verdict maps, from a local address to its chain, are not read by a chain's walk; a
/// local whose address moved is not still anyway.)
fn moved_spans(old: &Plan, new: &Plan) -> Option<[Vec<Span>; 2]> {
    if old.locals() != new.locals() {
        return None;
    }
    let delta = crate::plan::delta(old, new).ok()?;
    let mut spans: [Vec<Span>; 2] = Default::default();
    let mut add = |r: &AddrRange| {
        let (family, lo) = to_u128(r.start);
        spans[family_index(family)].push((lo, to_u128(r.end).1));
    };
    for set in delta.sets() {
        for elements in [set.delete(), set.add()] {
            match elements {
                SetElements::Addr(v) => v.iter().for_each(&mut add),
                SetElements::AddrProtoPort(v) => v.iter().for_each(|e| add(&e.addr)),
                SetElements::AddrVerdict(v) => v.keys().iter().for_each(&mut add),
                SetElements::AddrProtoPortVerdict(v) => v.keys().iter().for_each(|e| add(&e.addr)),
            }
        }
    }
    for s in &mut spans {
        merge_spans(s);
    }
    Some(spans)
}

fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// Whether sorted, disjoint `spans` hold `x`.
fn in_spans(spans: &[Span], x: u128) -> bool {
    let after = spans.partition_point(|&(lo, _)| lo <= x);
    after > 0 && x <= spans[after - 1].1
}

/// The ipBlock peers of two inputs: every CIDR either names, with an address of its
/// region (the CIDR minus the smaller named CIDRs inside it, minus every endpoint
/// address of either input); CIDRs with an empty region are left out.
fn block_peers(old: &Ends, new: &Ends) -> Vec<BlockPeer> {
    let blocks: BTreeSet<IpNet> = old.blocks.union(&new.blocks).copied().collect();
    if blocks.is_empty() {
        return Vec::new();
    }
    // Sorted once (a tree of 100,000 addresses took most of an element-only summary).
    let mut taken: Vec<(Family, u128)> =
        Vec::with_capacity(old.endpoints.len() + new.endpoints.len());
    for (_, ips) in old.endpoints.iter().chain(&new.endpoints) {
        taken.extend(ips.iter().map(|ip| to_u128(*ip)));
    }
    taken.sort_unstable();
    taken.dedup();
    let mut out = Vec::new();
    for &cidr in &blocks {
        let (family, span) = net_span(&cidr);
        // The blocks inside `cidr` start within it: in CIDR order (address, then prefix
        // length) they follow its network address with prefix 0, up to its last address.
        let from = IpNet::new(cidr.network(), 0).expect("a prefix of 0 is valid");
        let mut inner: Vec<Span> = blocks
            .range(from..)
            .take_while(|b| b.addr() <= cidr.broadcast())
            .filter(|b| **b != cidr && cidr.contains(*b))
            .map(|b| net_span(b).1)
            .collect();
        merge_spans(&mut inner);
        let example = subtract(span, &inner).into_iter().find_map(|(lo, hi)| {
            // Step past endpoint addresses: at most as many steps as there are.
            let mut x = lo;
            let first = taken.partition_point(|&t| t < (family, lo));
            for &(f, t) in &taken[first..] {
                if f != family || t != x {
                    break;
                }
                if x == hi {
                    return None;
                }
                x += 1;
            }
            Some(from_u128(family, x))
        });
        if let Some(example) = example {
            out.push(BlockPeer { cidr, example });
        }
    }
    out
}

#[cfg(test)]
mod tests;
