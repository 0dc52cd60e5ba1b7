//! `plan::build`: from resolved policies to sets, maps and chains.
//!
//! For each local endpoint and direction that some policy isolates, the allowed peers
//! and ports are gathered as (address range, port set) contributions, normalised by
//! [`super::intervals`], and laid out as at most two sets per family behind one chain.
//! A chain exists where the enforced policies (E) isolate, with their allow sets and a
//! deny (an audit under host-wide audit), or else where audit policies isolate, with
//! theirs and an audit; a log rule before the end when events are reported.
//!
//! ClusterNetworkPolicy tiers wrap that: the Admin tier's address maps come first
//! (`accept`, `goto` the endpoint's Admin deny chain, or `jump` to the chain of the
//! address's port layout, see [`tier_maps`]; a `Pass` or no rule falls through), then
//! the NetworkPolicy sets; where the enforced NetworkPolicies do not
//! isolate, the Baseline tier's maps (only its denials: its `Accept`, `Pass` and no rule
//! all end allowed) come before anything an audit policy adds, and the chain's end
//! returns to the base chain, which accepts. Flattening a tier is [`super::tiers`]'s.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::intervals::{
    block_spans, family_max, from_u128, net_span, to_u128, Normalised, PortSet, PortSets, Space,
    Span,
};
use super::names::{audit_comment, chain_name, deny_comment, disambiguate, tier_comment};
use super::shards::shard;
use super::tiers::{flatten, Cell, PortCells};
use super::{
    AddrField, AddrProtoPort, AddrProtoPorts, AddrRange, AddrRanges, Chain, EventVerdict, Failsafe,
    Family, Hook, LocalEndpoint, Mode, Options, Plan, RateLimit, Set, SetElements, ShardChain,
    Stmt, TierChain, TierVerdict, VerdictMap, EVENTS_LIMIT, PORT_PROTOCOLS, TABLE_NAME,
};
use crate::model::{
    Action, Direction, Endpoint, Peer, Peers, PolicyMode, PortMatch, PortRule, Ports, Tier,
};
use crate::resolve::{port_range_on, EndpointId, Index, PolicyId};

const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

fn family_tag(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

fn family_slot(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// The verdict map dispatching one direction and family.
fn map_name(dir: Direction, family: Family) -> String {
    format!("{dir}_{}", family_tag(family))
}

/// Builds the plan; see [`super::build`].
pub(super) fn build(index: &Index<'_>, locals: &[EndpointId], options: &Options) -> Plan {
    // Endpoint ids index the inventory, which is sorted by name: sorting ids sorts names.
    let mut locals = locals.to_vec();
    locals.sort_unstable();
    locals.dedup();

    let compiler = Compiler {
        index,
        addresses: OnceCell::new(),
    };
    let mut sets = Vec::new();
    let mut chains = Vec::new();
    let mut maps: BTreeMap<String, (Family, Vec<(IpAddr, String)>)> = BTreeMap::new();
    let mut plan_locals = Vec::new();

    // Every (endpoint, direction) that E or F isolates or a cluster tier polices, and its
    // chain's name, in the order of `locals`, so that telling colliding names apart is
    // deterministic.
    let mut isolated: Vec<Policed> = Vec::new();
    for &local in &locals {
        for dir in [Direction::Ingress, Direction::Egress] {
            let enforced = index.isolating(local, dir);
            let e_isolates = !enforced.is_empty();
            let (tail, policies) = if e_isolates {
                let tail = match options.mode {
                    Mode::Enforce => Tail::Deny,
                    Mode::Audit => Tail::Audit,
                };
                (Some(tail), enforced)
            } else {
                // Only audit policies isolate: F's allow sets, whose end accepts and
                // reports.
                let audited = index.isolating_in(local, dir, PolicyMode::Audit);
                ((!audited.is_empty()).then_some(Tail::Audit), audited)
            };
            let admin = compiler.tier(Tier::Admin, local, dir);
            // Baseline decides only where the enforced NetworkPolicies do not isolate.
            let baseline = if !e_isolates {
                compiler.tier(Tier::Baseline, local, dir)
            } else {
                Default::default()
            };
            let cells = |t: &TierCells| t.iter().any(|f| !f.is_empty());
            if tail.is_some() || cells(&admin) || cells(&baseline) {
                isolated.push(Policed {
                    local,
                    dir,
                    np: tail.map(|t| (t, policies)),
                    admin,
                    baseline,
                });
            }
        }
    }
    let mut names: Vec<String> = isolated
        .iter()
        .map(|p| chain_name(p.dir, &index.endpoint(p.local).id))
        .collect();
    disambiguate(&mut names);
    let mut isolated = isolated.into_iter().zip(names).peekable();

    for &local in &locals {
        let endpoint = index.endpoint(local);
        let mut entry = LocalEndpoint {
            id: endpoint.id.clone(),
            ingress_chain: None,
            egress_chain: None,
            tier_chains: Vec::new(),
            shard_chains: Vec::new(),
        };
        while let Some((policed, name)) = isolated.next_if(|(p, _)| p.local == local) {
            let dir = policed.dir;
            let built = compiler.endpoint_chain(&policed, &name, options, &mut sets);
            chains.extend(built.tier_chains.iter().map(|(_, c)| c.clone()));
            entry
                .shard_chains
                .extend(built.shard_chains.iter().map(|c| ShardChain {
                    direction: dir,
                    chain: c.name().to_string(),
                }));
            chains.extend(built.shard_chains);
            entry
                .tier_chains
                .extend(built.tier_chains.into_iter().map(|(tier, c)| TierChain {
                    direction: dir,
                    tier,
                    chain: c.name().to_string(),
                }));
            chains.push(built.chain);
            for ip in endpoint.ips.iter() {
                let family = Family::of(ip);
                maps.entry(map_name(dir, family))
                    .or_insert_with(|| (family, Vec::new()))
                    .1
                    .push((*ip, name.clone()));
            }
            match dir {
                Direction::Ingress => entry.ingress_chain = Some(name),
                Direction::Egress => entry.egress_chain = Some(name),
            }
        }
        entry.tier_chains.sort();
        entry.shard_chains.sort();
        plan_locals.push(entry);
    }

    let maps: Vec<VerdictMap> = maps
        .into_iter()
        .map(|(name, (family, mut elements))| {
            elements.sort();
            VerdictMap::new(name, family, elements).expect(BUG)
        })
        .collect();
    chains.sort_by(|a: &Chain, b: &Chain| a.name.cmp(&b.name));
    let mut all_chains = vec![
        base_chain(Hook::Input, &maps, &options.failsafe, &mut sets),
        base_chain(Hook::Output, &maps, &options.failsafe, &mut sets),
    ];
    // Set names are their chain's name plus a suffix of their own (`failsafe_…` for the
    // base chains', which no endpoint chain's `in_`/`out_` name can be), so distinct
    // chain names give distinct set names (Plan::new checks).
    sets.sort_by(|a: &Set, b: &Set| a.name.cmp(&b.name));
    // One limit for the whole table, so a flood anywhere costs netpold no more than it.
    let limits = match options.events {
        Some(events) if !chains.is_empty() => {
            vec![RateLimit::new(EVENTS_LIMIT.to_string(), events.rate, events.burst).expect(BUG)]
        }
        _ => Vec::new(),
    };
    all_chains.extend(chains);
    Plan::new(
        TABLE_NAME.to_string(),
        sets,
        maps,
        all_chains,
        plan_locals,
        limits,
    )
    .expect(BUG)
}

/// A tier's verdict before chains have names: accept, or the tier's deny chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TierAction {
    Accept,
    Deny,
}

/// A flattened tier, per family (v4, v6); empty for a family the endpoint lacks.
type TierCells = [Vec<Cell<TierAction>>; 2];

/// One endpoint and direction that gets a chain, and what goes in it.
struct Policed {
    local: EndpointId,
    dir: Direction,
    /// The NetworkPolicies that isolate it (E, or else F) and how the chain ends.
    np: Option<(Tail, Vec<PolicyId>)>,
    admin: TierCells,
    /// Empty where E isolates: the Baseline tier is never reached.
    baseline: TierCells,
}

/// An endpoint chain, the tiers' chains it goes to (deny and layout chains) and the
/// chains of its sharded sets.
struct Built {
    chain: Chain,
    tier_chains: Vec<(Tier, Chain)>,
    shard_chains: Vec<Chain>,
}

/// How an endpoint chain ends, for what its allow sets do not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tail {
    /// Enforced: denied (logged as `deny`).
    Deny,
    /// Accepted and counted (logged as `audit`): only audit policies isolate, or the
    /// host is in audit mode.
    Audit,
}

const BUG: &str = "plan::build makes consistent plans";

/// `input` or `output`: conntrack, loopback, neighbour discovery, the failsafe entries
/// of its direction (one set per family, `failsafe_in_v4` …, added to `sets`), then
/// dispatch to the endpoint chains through whichever maps exist. The failsafe comes
/// before the dispatch, so no endpoint's policies are consulted for it.
fn base_chain(
    hook: Hook,
    maps: &[VerdictMap],
    failsafe: &[Failsafe],
    sets: &mut Vec<Set>,
) -> Chain {
    let (name, dir, field) = match hook {
        Hook::Input => ("input", Direction::Ingress, AddrField::Daddr),
        Hook::Output => ("output", Direction::Egress, AddrField::Saddr),
    };
    let mut rules = vec![
        Stmt::CtEstablishedAccept,
        Stmt::CtInvalidDrop,
        Stmt::LoopbackAccept(hook),
        Stmt::NeighbourDiscoveryAccept,
    ];
    let mut ports = PortSets::default();
    let mut spaces = FAMILIES.map(|f| Space::new(family_max(f)));
    for f in failsafe.iter().filter(|f| f.direction() == dir) {
        let (lo, hi) = f.ports();
        let Some(id) = ports.intern(vec![(f.protocol().number(), lo, hi)]) else {
            continue;
        };
        let spans = match f.cidr() {
            Some(net) => vec![net_span(&net)],
            None => FAMILIES
                .map(|family| (family, (0, family_max(family))))
                .to_vec(),
        };
        for (family, span) in spans {
            spaces[family_slot(family)].add_ports(span, id);
        }
    }
    let prefix = match dir {
        Direction::Ingress => "failsafe_in",
        Direction::Egress => "failsafe_out",
    };
    // The peer's address: the source of what comes in, the destination of what goes out.
    let peer = match dir {
        Direction::Ingress => AddrField::Saddr,
        Direction::Egress => AddrField::Daddr,
    };
    for (family, space) in FAMILIES.into_iter().zip(spaces) {
        // The failsafe's few entries are never sharded: no endpoint owns its chains.
        let (set, rule, _) = allow_sets(prefix, family, space, &mut ports, peer, usize::MAX);
        sets.extend(set);
        rules.extend(rule);
    }
    for family in FAMILIES {
        let map = map_name(dir, family);
        if maps.iter().any(|m| m.name == map) {
            rules.push(Stmt::Dispatch { family, field, map });
        }
    }
    Chain::new(name.to_string(), Some(hook), rules).expect(BUG)
}

/// The sets and accept rules of one family's allowed `space`: `{prefix}_{v4|v6}_all`
/// for peers allowed on every port, `{prefix}_{v4|v6}_ports` for the rest; none for
/// an empty space. `field` is the peer's address. A `…_ports` set of more than
/// `shard_above` elements is sharded ([`super::shards`]): the map
/// `{prefix}_{v4|v6}_shards` (a [`Stmt::TierClass`] rule) jumps by address block to
/// the chains `{prefix}_{v4|v6}_shard_{k}` (the third part), each accepting from its
/// set `{prefix}_{v4|v6}_shard_{k}_ports`, `k` counting blocks in address order.
fn allow_sets(
    prefix: &str,
    family: Family,
    space: Space,
    ports: &mut PortSets,
    field: AddrField,
    shard_above: usize,
) -> (Vec<Set>, Vec<Stmt>, Vec<Chain>) {
    let (mut sets, mut rules, mut chains) = (Vec::new(), Vec::new(), Vec::new());
    let Normalised { all, ported } = space.normalise(ports);
    let tag = family_tag(family);
    let range = |(lo, hi): Span| AddrRange {
        start: from_u128(family, lo),
        end: from_u128(family, hi),
    };
    if !all.is_empty() {
        let set = format!("{prefix}_{tag}_all");
        let ranges = AddrRanges::new(family, all.into_iter().map(range).collect());
        let elements = SetElements::Addr(ranges.expect(BUG));
        sets.push(Set::new(set.clone(), family, elements).expect(BUG));
        rules.push(Stmt::AcceptAddr { family, field, set });
    }
    if !ported.is_empty() {
        // Spans ascend and port sets are sorted, so the elements come out sorted.
        let elements: Vec<AddrProtoPort> = ported
            .into_iter()
            .flat_map(|(lo, hi, id)| {
                let addr = range((lo, hi));
                ports
                    .get(id)
                    .iter()
                    .map(move |&(proto, plo, phi)| AddrProtoPort {
                        addr,
                        proto,
                        ports: (plo, phi),
                    })
            })
            .collect();
        if elements.len() > shard_above {
            let mut blocks = Vec::new();
            for (k, s) in shard(family, &elements, shard_above)
                .into_iter()
                .enumerate()
            {
                let chain = format!("{prefix}_{tag}_shard_{k}");
                let set = format!("{chain}_ports");
                let elements = SetElements::addr_proto_port(family, s.elements).expect(BUG);
                sets.push(Set::new(set.clone(), family, elements).expect(BUG));
                let accept = Stmt::AcceptAddrProtoPort { family, field, set };
                chains.push(Chain::new(chain.clone(), None, vec![accept]).expect(BUG));
                blocks.push((s.block, TierVerdict::Jump(chain)));
            }
            let map = format!("{prefix}_{tag}_shards");
            let elements = SetElements::addr_verdict(family, blocks).expect(BUG);
            sets.push(Set::new(map.clone(), family, elements).expect(BUG));
            rules.push(Stmt::TierClass { family, field, map });
            return (sets, rules, chains);
        }
        let set = format!("{prefix}_{tag}_ports");
        let elements = AddrProtoPorts::new(family, elements).expect(BUG);
        let elements = SetElements::AddrProtoPort(elements);
        sets.push(Set::new(set.clone(), family, elements).expect(BUG));
        rules.push(Stmt::AcceptAddrProtoPort { family, field, set });
    }
    (sets, rules, chains)
}

fn tier_tag(tier: Tier) -> &'static str {
    match tier {
        Tier::Admin => "admin",
        Tier::Baseline => "baseline",
    }
}

fn tail_verb(tail: Tail) -> &'static str {
    match tail {
        Tail::Deny => "deny",
        Tail::Audit => "audit",
    }
}

/// The end of a chain: the log rule (with events; after every accept, so allowed
/// connections never meet it), then the deny or the audit accept.
fn push_tail(
    rules: &mut Vec<Stmt>,
    tail: Tail,
    dir: Direction,
    options: &Options,
    comment: impl FnOnce() -> String,
) {
    let verdict = match tail {
        Tail::Deny => EventVerdict::Deny,
        Tail::Audit => EventVerdict::Audit,
    };
    if let Some(events) = options.events {
        rules.push(Stmt::Log {
            verdict,
            direction: dir,
            group: events.group,
            limit: EVENTS_LIMIT.to_string(),
        });
    }
    rules.push(match tail {
        Tail::Deny => Stmt::Deny {
            action: options.deny,
            comment: comment(),
        },
        Tail::Audit => Stmt::Audit { comment: comment() },
    });
}

/// One family's maps of a flattened tier, the rules that look them up, and the chains
/// of its port layouts. The address map `{prefix}_{v4|v6}` (`Stmt::TierClass`) gives
/// each address interval its cell's verdict when that is one for every protocol and
/// port (`accept`, or `goto deny`), else `jump` to the chain of its layout,
/// `{prefix}_{v4|v6}_{k}`: one per distinct layout, in order of first appearance,
/// whose `…_ports` and `…_other` maps (one address range: the whole family) decide the
/// protocol and port. Few layouts cover many scattered addresses, so the address map is
/// a tree look-up and the port maps stay small, however many peers.
fn tier_maps(
    prefix: &str,
    family: Family,
    field: AddrField,
    cells: &[Cell<TierAction>],
    deny: &str,
) -> (Vec<Set>, Vec<Stmt>, Vec<Chain>) {
    let verdict = |a: &TierAction| match a {
        TierAction::Accept => TierVerdict::Accept,
        TierAction::Deny => TierVerdict::Goto(deny.to_string()),
    };
    let range = |(lo, hi): Span| AddrRange {
        start: from_u128(family, lo),
        end: from_u128(family, hi),
    };
    let tag = family_tag(family);
    let whole = range((0, family_max(family)));
    let (mut sets, mut chains) = (Vec::new(), Vec::new());
    // Layouts by content (other protocols, ports), each with its chain's name.
    type Layout<'c> = (&'c Option<TierAction>, &'c [PortCells<TierAction>; 3]);
    let mut layouts: HashMap<Layout<'_>, String> = HashMap::new();
    let mut elements = Vec::new();
    for cell in cells {
        let uniform = cell.other.filter(|v| {
            cell.ports
                .iter()
                .all(|p| p.len() == 1 && p[0].0 == 0 && p[0].1 == u16::MAX && p[0].2 == *v)
        });
        if let Some(v) = uniform {
            elements.push((range(cell.span), verdict(&v)));
            continue;
        }
        let chain = match layouts.get(&(&cell.other, &cell.ports)) {
            Some(name) => name.clone(),
            None => {
                let name = format!("{prefix}_{tag}_{}", layouts.len());
                let mut rules = Vec::new();
                let ports: Vec<(AddrProtoPort, TierVerdict)> = PORT_PROTOCOLS
                    .iter()
                    .zip(&cell.ports)
                    .flat_map(|(proto, list)| {
                        list.iter().map(move |&(lo, hi, a)| (*proto, lo, hi, a))
                    })
                    .map(|(proto, lo, hi, a)| {
                        let key = AddrProtoPort {
                            addr: whole,
                            proto,
                            ports: (lo, hi),
                        };
                        (key, verdict(&a))
                    })
                    .collect();
                if !ports.is_empty() {
                    let map = format!("{name}_ports");
                    let elements = SetElements::addr_proto_port_verdict(family, ports).expect(BUG);
                    sets.push(Set::new(map.clone(), family, elements).expect(BUG));
                    rules.push(Stmt::TierPorts { family, field, map });
                }
                if let Some(a) = &cell.other {
                    let map = format!("{name}_other");
                    let elements =
                        SetElements::addr_verdict(family, vec![(whole, verdict(a))]).expect(BUG);
                    sets.push(Set::new(map.clone(), family, elements).expect(BUG));
                    rules.push(Stmt::TierOther { family, field, map });
                }
                chains.push(Chain::new(name.clone(), None, rules).expect(BUG));
                layouts.insert((&cell.other, &cell.ports), name.clone());
                name
            }
        };
        elements.push((range(cell.span), TierVerdict::Jump(chain)));
    }
    let mut rules = Vec::new();
    if !elements.is_empty() {
        let map = format!("{prefix}_{tag}");
        let elements = SetElements::addr_verdict(family, elements).expect(BUG);
        sets.push(Set::new(map.clone(), family, elements).expect(BUG));
        rules.push(Stmt::TierClass { family, field, map });
    }
    (sets, rules, chains)
}

/// What a rule's port list allows regardless of the destination.
enum Fixed {
    /// `ports` missing or empty: every protocol and port.
    All,
    /// This port set.
    Ports(u32),
    /// Nothing (e.g. only named ports that do not resolve).
    Nothing,
}

struct Compiler<'a, 'm> {
    index: &'a Index<'m>,
    /// Every endpoint address, sorted, for named ports on `ipBlock` peers; built on
    /// first need.
    addresses: OnceCell<Vec<(Family, u128, EndpointId)>>,
}

/// The contributions for one chain.
struct Contributions {
    ports: PortSets,
    /// Per family; `None` when the local endpoint has no address of that family, since
    /// the chain is only reached through its own addresses' family.
    spaces: [Option<Space>; 2],
}

impl Contributions {
    fn add(&mut self, family: Family, span: Span, fixed: &Fixed) {
        let Some(space) = self.spaces[family_slot(family)].as_mut() else {
            return;
        };
        match fixed {
            Fixed::All => space.add_all(span),
            Fixed::Ports(id) => space.add_ports(span, *id),
            Fixed::Nothing => {}
        }
    }

    fn wants(&self, family: Family) -> bool {
        self.spaces[family_slot(family)].is_some()
    }
}

impl Compiler<'_, '_> {
    fn addresses(&self) -> &[(Family, u128, EndpointId)] {
        self.addresses.get_or_init(|| {
            let mut v: Vec<(Family, u128, EndpointId)> = self
                .index
                .model
                .inventory
                .endpoints
                .iter()
                .enumerate()
                .flat_map(|(i, ep)| {
                    ep.ips.iter().map(move |ip| {
                        let (f, x) = to_u128(*ip);
                        (f, x, i)
                    })
                })
                .collect();
            v.sort_unstable();
            v
        })
    }

    /// Endpoint addresses inside `span`.
    fn addresses_in(&self, family: Family, span: Span) -> &[(Family, u128, EndpointId)] {
        let all = self.addresses();
        let from = all.partition_point(|&(f, x, _)| (f, x) < (family, span.0));
        let to = all.partition_point(|&(f, x, _)| (f, x) <= (family, span.1));
        &all[from..to]
    }

    /// A cluster tier flattened for `local` in `dir`, per family the endpoint has.
    fn tier(&self, tier: Tier, local: EndpointId, dir: Direction) -> TierCells {
        let endpoint = self.index.endpoint(local);
        let keep = move |action: Action| match (tier, action) {
            (_, Action::Deny) => Some(TierAction::Deny),
            (Tier::Admin, Action::Accept) => Some(TierAction::Accept),
            // Admin Pass: the next tier decides; Baseline Accept or Pass: allowed, as
            // when nothing matches.
            _ => None,
        };
        FAMILIES.map(|family| {
            if !endpoint.ips.iter().any(|ip| Family::of(ip) == family) {
                return Vec::new();
            }
            let addresses_in = |f: Family, span: Span| {
                self.addresses_in(f, span)
                    .iter()
                    .map(|&(_, x, _)| x)
                    .collect()
            };
            flatten(self.index, (tier, local, dir, family), addresses_in, keep)
        })
    }

    /// One endpoint chain, its sets and maps, and the tiers' deny and layout chains.
    fn endpoint_chain(
        &self,
        policed: &Policed,
        name: &str,
        options: &Options,
        sets: &mut Vec<Set>,
    ) -> Built {
        let (local, dir) = (policed.local, policed.dir);
        let endpoint = self.index.endpoint(local);
        let field = match dir {
            Direction::Ingress => AddrField::Saddr,
            Direction::Egress => AddrField::Daddr,
        };
        let mut rules = Vec::new();
        let mut tier_chains = Vec::new();
        let mut shard_chains = Vec::new();
        let mut tier = |tier: Tier, cells: &TierCells, rules: &mut Vec<Stmt>| {
            let deny = format!("{name}_{}", tier_tag(tier));
            let mut used = false;
            for (family, cells) in FAMILIES.into_iter().zip(cells) {
                let (maps, stmts, classes) = tier_maps(
                    &format!("{name}_{}", tier_tag(tier)),
                    family,
                    field,
                    cells,
                    &deny,
                );
                used |= !maps.is_empty();
                sets.extend(maps);
                rules.extend(stmts);
                tier_chains.extend(classes.into_iter().map(|c| (tier, c)));
            }
            let goes_to_deny = cells.iter().flatten().any(|c| {
                c.other == Some(TierAction::Deny)
                    || c.ports.iter().flatten().any(|p| p.2 == TierAction::Deny)
            });
            if used && goes_to_deny {
                let tail = match options.mode {
                    Mode::Enforce => Tail::Deny,
                    Mode::Audit => Tail::Audit,
                };
                let mut deny_rules = Vec::new();
                push_tail(&mut deny_rules, tail, dir, options, || {
                    tier_comment(tier, tail_verb(tail), dir, &endpoint.id)
                });
                tier_chains.push((tier, Chain::new(deny, None, deny_rules).expect(BUG)));
            }
        };
        tier(Tier::Admin, &policed.admin, &mut rules);
        match &policed.np {
            Some((Tail::Deny, policies)) if !policies.is_empty() => {
                rules.extend(self.np_sets(
                    local,
                    dir,
                    policies,
                    name,
                    options,
                    sets,
                    &mut shard_chains,
                ));
                push_tail(&mut rules, Tail::Deny, dir, options, || {
                    deny_comment(dir, &endpoint.id)
                });
            }
            Some((tail, policies)) => {
                // An audit end: E under host-wide audit (Baseline is empty then), or only
                // audit policies isolate, where Baseline's denials are real and come first.
                tier(Tier::Baseline, &policed.baseline, &mut rules);
                rules.extend(self.np_sets(
                    local,
                    dir,
                    policies,
                    name,
                    options,
                    sets,
                    &mut shard_chains,
                ));
                push_tail(&mut rules, *tail, dir, options, || {
                    audit_comment(dir, &endpoint.id)
                });
            }
            None => tier(Tier::Baseline, &policed.baseline, &mut rules),
        }
        Built {
            chain: Chain::new(name.to_string(), None, rules).expect(BUG),
            tier_chains,
            shard_chains,
        }
    }

    /// The NetworkPolicy allow sets of one chain (added to `sets`, their shards' chains
    /// to `shard_chains`) and their rules.
    #[allow(clippy::too_many_arguments)]
    fn np_sets(
        &self,
        local: EndpointId,
        dir: Direction,
        policies: &[PolicyId],
        name: &str,
        options: &Options,
        sets: &mut Vec<Set>,
        shard_chains: &mut Vec<Chain>,
    ) -> Vec<Stmt> {
        let endpoint = self.index.endpoint(local);
        let has = |family: Family| endpoint.ips.iter().any(|ip| Family::of(ip) == family);
        let mut c = Contributions {
            ports: PortSets::default(),
            spaces: FAMILIES.map(|f| has(f).then(|| Space::new(family_max(f)))),
        };
        for &p in policies {
            for rule in self.index.policy(p).rules(dir).unwrap_or_default() {
                self.add_rule(endpoint, dir, &rule.peers, &rule.ports, &mut c);
            }
        }
        let field = match dir {
            Direction::Ingress => AddrField::Saddr,
            Direction::Egress => AddrField::Daddr,
        };
        let mut rules = Vec::new();
        let Contributions { mut ports, spaces } = c;
        for (family, space) in FAMILIES.into_iter().zip(spaces) {
            let Some(space) = space else { continue };
            let (set, rule, chains) =
                allow_sets(name, family, space, &mut ports, field, options.shard_above);
            sets.extend(set);
            rules.extend(rule);
            shard_chains.extend(chains);
        }
        rules
    }

    /// Adds what one rule allows. `local` is the endpoint being policed.
    fn add_rule(
        &self,
        local: &Endpoint,
        dir: Direction,
        peers: &Peers,
        ports: &Ports,
        c: &mut Contributions,
    ) {
        // Named ports resolve on the destination: for ingress that is `local`, so they
        // are fixed numbers; for egress they depend on the peer address.
        let mut named: Vec<&PortRule> = Vec::new();
        let fixed = match ports {
            Ports::All => Fixed::All,
            Ports::List(list) => {
                let mut set: PortSet = Vec::new();
                for rule in list {
                    if dir == Direction::Egress && matches!(rule.port, PortMatch::Named(_)) {
                        named.push(rule);
                    } else if let Some((lo, hi)) = port_range_on(rule, Some(local)) {
                        set.push((rule.protocol.number(), lo, hi));
                    }
                }
                c.ports.intern(set).map_or(Fixed::Nothing, Fixed::Ports)
            }
        };

        match peers {
            Peers::All => {
                for family in FAMILIES {
                    c.add(family, (0, family_max(family)), &fixed);
                }
                if !named.is_empty() {
                    for (id, ep) in self.index.model.inventory.endpoints.iter().enumerate() {
                        self.add_named(id, ep.ips.iter().copied(), &named, c);
                    }
                }
            }
            Peers::List(list) => {
                for peer in list {
                    match peer {
                        Peer::Endpoints { .. } => {
                            for id in self.index.peer_endpoints(peer) {
                                let ep = self.index.endpoint(id);
                                for ip in ep.ips.iter() {
                                    let (family, x) = to_u128(*ip);
                                    c.add(family, (x, x), &fixed);
                                }
                                if !named.is_empty() {
                                    self.add_named(id, ep.ips.iter().copied(), &named, c);
                                }
                            }
                        }
                        Peer::IpBlock(block) => {
                            let (family, spans) = block_spans(block);
                            if !c.wants(family) {
                                continue;
                            }
                            for &span in &spans {
                                c.add(family, span, &fixed);
                            }
                            if named.is_empty() {
                                continue;
                            }
                            // Only endpoint addresses inside the block carry named ports,
                            // each resolved on its own endpoint.
                            for &span in &spans {
                                for &(_, x, id) in self.addresses_in(family, span) {
                                    let ip = from_u128(family, x);
                                    self.add_named(id, std::iter::once(ip), &named, c);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds named ports resolved on endpoint `id` for these of its addresses.
    fn add_named(
        &self,
        id: EndpointId,
        ips: impl Iterator<Item = IpAddr>,
        named: &[&PortRule],
        c: &mut Contributions,
    ) {
        let ep = self.index.endpoint(id);
        let set: PortSet = named
            .iter()
            .filter_map(|rule| {
                port_range_on(rule, Some(ep)).map(|(lo, hi)| (rule.protocol.number(), lo, hi))
            })
            .collect();
        let Some(set) = c.ports.intern(set) else {
            return;
        };
        for ip in ips {
            let (family, x) = to_u128(ip);
            c.add(family, (x, x), &Fixed::Ports(set));
        }
    }
}
