//! Connectivity: the exact allowed set between two ends — every protocol and port
//! range at once, not sampled probes — and how a change of inputs changes it
//! (`netpolctl diff`, netpold's reload summary, the `-o dot` pictures).
//!
//! The allowed sets are read from [`Plan`]s, the same sets the kernel gets
//! ([`Plan::accepts`] walks an endpoint chain as [`Plan::verdict`] does), so this module
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
//! Pure: no I/O. The text and Graphviz layouts are in `connectivity/text.rs` and
//! `connectivity/dot.rs` and decide nothing.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{Direction, Model, ObjectName, Peer, Peers};
use crate::plan::intervals::{from_u128, merge_spans, net_span, subtract, to_u128, Span};
use crate::plan::{Family, LocalEndpoint, Plan};

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
    endpoints: Vec<(ObjectName, Vec<IpAddr>)>,
    /// Every `cidr` and `except` of every `ipBlock` of every policy.
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
    let blocks = each_pair(old, new, |p| {
        if p.changed() {
            pairs.push(p);
        }
    });
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
    each_pair(old, new, |p| {
        if p.changed() {
            let one = summarise([&p]);
            s.allowed += one.allowed;
            s.denied += one.denied;
        }
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
    let blocks = each_pair(old, new, |p| {
        if p.families
            .iter()
            .any(|(_, b, a)| !b.is_empty() || !a.is_empty())
        {
            pairs.push(p);
        }
    });
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

/// One input, indexed for look-ups by name.
struct View<'a> {
    plan: &'a Plan,
    addresses: HashMap<&'a ObjectName, &'a [IpAddr]>,
    chains: HashMap<&'a ObjectName, &'a LocalEndpoint>,
}

/// What one direction of one end lets through for a remote address: everything
/// (no chain) or a set.
enum Gate {
    Everything,
    Only(Allowed),
}

/// What passes between two ends in one family.
enum Between {
    /// The ends have no address pair of the family: nothing passes.
    NoPair,
    Everything,
    Only(Allowed),
}

impl<'a> View<'a> {
    fn new(side: Side<'a>) -> View<'a> {
        View {
            plan: side.plan,
            addresses: side
                .ends
                .endpoints
                .iter()
                .map(|(n, ips)| (n, ips.as_slice()))
                .collect(),
            chains: side.plan.locals().iter().map(|l| (&l.id, l)).collect(),
        }
    }

    fn gate(&self, end: &Node, dir: Direction, remote: IpAddr) -> Gate {
        let Node::Endpoint(name) = end else {
            return Gate::Everything;
        };
        match self.chains.get(name).and_then(|l| l.chain(dir)) {
            Some(chain) => Gate::Only(Allowed::from_accepts(self.plan.accepts(chain, remote))),
            None => Gate::Everything,
        }
    }

    /// An endpoint's addresses in this input (none when it is not in it), or the one
    /// address a block peer stands for.
    fn addresses<'s>(&'s self, end: &Node, example: &'s Option<IpAddr>) -> &'s [IpAddr] {
        match end {
            Node::Endpoint(name) => self.addresses.get(name).copied().unwrap_or(&[]),
            Node::Block(_) => example.as_slice(),
        }
    }

    /// What every address pair of `family` allows from `from` to `to`.
    fn between(&self, from: (&Node, &[IpAddr]), to: (&Node, &[IpAddr]), family: Family) -> Between {
        let mut acc: Option<Allowed> = None;
        let mut any = false;
        for a in from.1.iter().filter(|a| Family::of(a) == family) {
            for b in to.1.iter().filter(|b| Family::of(b) == family) {
                any = true;
                for gate in [
                    self.gate(from.0, Direction::Egress, *b),
                    self.gate(to.0, Direction::Ingress, *a),
                ] {
                    if let Gate::Only(set) = gate {
                        acc = Some(match acc {
                            Some(prev) => prev.intersect(&set),
                            None => set,
                        });
                    }
                }
            }
        }
        match (any, acc) {
            (false, _) => Between::NoPair,
            (true, None) => Between::Everything,
            (true, Some(set)) => Between::Only(set),
        }
    }
}

/// Calls `f` with every considered pair (see the module doc), by receiver then sender;
/// returns the ipBlock peers.
fn each_pair(old: Side<'_>, new: Side<'_>, mut f: impl FnMut(Pair)) -> Vec<BlockPeer> {
    let (vo, vn) = (View::new(old), View::new(new));
    let mut names: BTreeSet<&ObjectName> = vo.addresses.keys().copied().collect();
    names.extend(vn.addresses.keys().copied());
    let mut locals: BTreeSet<&ObjectName> = vo.chains.keys().copied().collect();
    locals.extend(vn.chains.keys().copied());
    let blocks = block_peers(old.ends, new.ends);

    let judge = |from: &Node, from_ip: &Option<IpAddr>, to: &Node, to_ip: &Option<IpAddr>| {
        let mut families = Vec::new();
        for family in [Family::V4, Family::V6] {
            let side = |v: &View<'_>| {
                v.between(
                    (from, v.addresses(from, from_ip)),
                    (to, v.addresses(to, to_ip)),
                    family,
                )
            };
            let (b, a) = match (side(&vo), side(&vn)) {
                (Between::NoPair, Between::NoPair) => continue,
                // Both everything: equal, and no set to build (netpold's summary meets
                // this for every pair of two unpoliced ends of a big inventory).
                (Between::Everything, Between::Everything) => {
                    (Allowed::everything(), Allowed::everything())
                }
                (b, a) => (resolve(b), resolve(a)),
            };
            families.push((family, b, a));
        }
        families
    };

    for to in &names {
        let to_node = Node::Endpoint((*to).clone());
        // A pair needs a local end: every sender for a local receiver, else local ones.
        let senders: Box<dyn Iterator<Item = &&ObjectName>> = if locals.contains(to) {
            Box::new(names.iter())
        } else {
            Box::new(locals.iter())
        };
        for from in senders {
            if from == to {
                continue;
            }
            let from_node = Node::Endpoint((*from).clone());
            let families = judge(&from_node, &None, &to_node, &None);
            if !families.is_empty() {
                f(Pair {
                    from: from_node,
                    to: to_node.clone(),
                    families,
                });
            }
        }
        if locals.contains(to) {
            for b in &blocks {
                let from_node = Node::Block(b.cidr);
                let families = judge(&from_node, &Some(b.example), &to_node, &None);
                if !families.is_empty() {
                    f(Pair {
                        from: from_node,
                        to: to_node.clone(),
                        families,
                    });
                }
            }
        }
    }
    for b in &blocks {
        let to_node = Node::Block(b.cidr);
        for from in &locals {
            let from_node = Node::Endpoint((*from).clone());
            let families = judge(&from_node, &None, &to_node, &Some(b.example));
            if !families.is_empty() {
                f(Pair {
                    from: from_node,
                    to: to_node.clone(),
                    families,
                });
            }
        }
    }
    blocks
}

fn resolve(b: Between) -> Allowed {
    match b {
        Between::NoPair => Allowed::none(),
        Between::Everything => Allowed::everything(),
        Between::Only(set) => set,
    }
}

/// The ipBlock peers of two inputs: every CIDR either names, with an address of its
/// region (the CIDR minus the smaller named CIDRs inside it, minus every endpoint
/// address of either input); CIDRs with an empty region are left out.
fn block_peers(old: &Ends, new: &Ends) -> Vec<BlockPeer> {
    let blocks: BTreeSet<IpNet> = old.blocks.union(&new.blocks).copied().collect();
    let taken: BTreeSet<(Family, u128)> = old
        .endpoints
        .iter()
        .chain(&new.endpoints)
        .flat_map(|(_, ips)| ips.iter().map(|ip| to_u128(*ip)))
        .collect();
    let mut out = Vec::new();
    for &cidr in &blocks {
        let (family, span) = net_span(&cidr);
        let mut inner: Vec<Span> = blocks
            .iter()
            .filter(|b| **b != cidr && cidr.contains(*b))
            .map(|b| net_span(b).1)
            .collect();
        merge_spans(&mut inner);
        let example = subtract(span, &inner).into_iter().find_map(|(lo, hi)| {
            // Step past endpoint addresses: at most as many steps as there are.
            let mut x = lo;
            for &(_, t) in taken.range((family, lo)..=(family, hi)) {
                if t != x {
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
