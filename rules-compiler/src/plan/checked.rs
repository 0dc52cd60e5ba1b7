//! The plan's invariants, in its types: every way to build a [`Plan`] and its parts
//! checks them, so a plan that exists is one the kernel can take and every renderer may
//! trust it. Set elements sorted and disjoint, each of its set's family; map keys
//! unique and sorted; names within the kernel's limits and plain nft identifiers;
//! every set, map and chain a rule names present and of the right kind and family.
//! Each check is linear in what it checks.

use std::net::IpAddr;
use std::ops::Deref;

use serde::Serialize;

use super::intervals::to_u128;
use super::{
    AddrProtoPort, AddrRange, Chain, Family, Hook, LocalEndpoint, Plan, RateLimit, Set,
    SetElements, Stmt, TierVerdict, VerdictMap, MAX_COMMENT, PORT_PROTOCOLS,
};

/// Longest table, set, map or chain name of a plan: the kernel's 255 bytes
/// (`NFT_NAME_MAXLEN` less the NUL), less room for a prefix a backend may add to stage a
/// replace beside the table in force.
pub const MAX_NAME: usize = 240;

/// Why a plan, or part of one, cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A name that is empty, too long or not a plain nft identifier.
    #[error("{what} name {name:?} is not a plain nft identifier of 1 to {MAX_NAME} bytes")]
    Name {
        /// Table, set, map or chain.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// An element of a set or map that breaks its order or family.
    #[error("{what} element {index} ({element}): {why}")]
    Element {
        /// Set or map.
        what: &'static str,
        /// Position in the list.
        index: usize,
        /// The element, for people.
        element: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Something of the plan as a whole: duplicates, order, references.
    #[error("{0}")]
    Structure(String),
}

fn element(what: &'static str, index: usize, element: String, why: &'static str) -> PlanError {
    PlanError::Element {
        what,
        index,
        element,
        why,
    }
}

/// Whether `name` is a plain nft identifier (a letter, then letters, digits, `.`, `-`,
/// `_`) of at most [`MAX_NAME`] bytes: nft reads it unquoted, the kernel takes it.
pub fn is_plain_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn check_name(what: &'static str, name: &str) -> Result<(), PlanError> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(PlanError::Name {
            what,
            name: name.to_string(),
        })
    }
}

/// The numeric bounds of a range of `family`, or why it is not one.
fn bounds(family: Family, r: &AddrRange) -> Result<(u128, u128), &'static str> {
    let ((fa, lo), (fb, hi)) = (to_u128(r.start), to_u128(r.end));
    if fa != family || fb != family {
        return Err("not of the set's family");
    }
    if lo > hi {
        return Err("ends before it starts");
    }
    Ok((lo, hi))
}

/// Address ranges of one family, sorted and disjoint (touching is allowed: the kernel
/// takes `a-b, b+1-c`; the compiler merges such ranges anyway).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AddrRanges(pub(super) Vec<AddrRange>);

impl AddrRanges {
    /// Checks `ranges`: each of `family` and not reversed, each after the one before.
    pub fn new(family: Family, ranges: Vec<AddrRange>) -> Result<AddrRanges, PlanError> {
        let mut prev: Option<u128> = None;
        for (i, r) in ranges.iter().enumerate() {
            let show = || format!("{}-{}", r.start, r.end);
            let (lo, hi) = bounds(family, r).map_err(|why| element("set", i, show(), why))?;
            if prev.is_some_and(|p| lo <= p) {
                return Err(element(
                    "set",
                    i,
                    show(),
                    "overlaps or precedes the one before it",
                ));
            }
            prev = Some(hi);
        }
        Ok(AddrRanges(ranges))
    }

    /// The ranges.
    pub fn into_vec(self) -> Vec<AddrRange> {
        self.0
    }

    /// Elements the allocation holds room for (memory accounting).
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl Deref for AddrRanges {
    type Target = [AddrRange];
    fn deref(&self) -> &[AddrRange] {
        &self.0
    }
}

/// Address · protocol · port elements of one family, sorted: each one's address range
/// either is the one before's (and then its protocol and ports come after that one's,
/// without overlap) or starts after it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AddrProtoPorts(pub(super) Vec<AddrProtoPort>);

impl AddrProtoPorts {
    /// Checks `elements` as the type says.
    pub fn new(family: Family, elements: Vec<AddrProtoPort>) -> Result<AddrProtoPorts, PlanError> {
        let mut prev: Option<(u128, u128, u8, u16)> = None;
        for (i, e) in elements.iter().enumerate() {
            let show = || {
                format!(
                    "{}-{} . {} . {}-{}",
                    e.addr.start, e.addr.end, e.proto, e.ports.0, e.ports.1
                )
            };
            let (lo, hi) = bounds(family, &e.addr).map_err(|why| element("set", i, show(), why))?;
            if e.ports.0 > e.ports.1 {
                return Err(element(
                    "set",
                    i,
                    show(),
                    "port range ends before it starts",
                ));
            }
            let in_order = match prev {
                None => true,
                Some((plo, phi, pproto, pport)) if (plo, phi) == (lo, hi) => {
                    e.proto > pproto || (e.proto == pproto && e.ports.0 > pport)
                }
                Some((_, phi, _, _)) => lo > phi,
            };
            if !in_order {
                return Err(element(
                    "set",
                    i,
                    show(),
                    "overlaps or precedes the one before it",
                ));
            }
            prev = Some((lo, hi, e.proto, e.ports.1));
        }
        Ok(AddrProtoPorts(elements))
    }

    /// The elements.
    pub fn into_vec(self) -> Vec<AddrProtoPort> {
        self.0
    }

    /// Elements the allocation holds room for (memory accounting).
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl Deref for AddrProtoPorts {
    type Target = [AddrProtoPort];
    fn deref(&self) -> &[AddrProtoPort] {
        &self.0
    }
}

/// A verdict map's elements: checked keys (an address set's), each with its verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdicts<K> {
    keys: K,
    verdicts: Vec<TierVerdict>,
}

impl<K: Deref<Target = [T]>, T> Verdicts<K> {
    /// Pairs `keys` with `verdicts`, one each.
    pub fn new(keys: K, verdicts: Vec<TierVerdict>) -> Result<Verdicts<K>, PlanError> {
        if keys.len() != verdicts.len() {
            return Err(PlanError::Structure(format!(
                "a verdict map of {} keys and {} verdicts",
                keys.len(),
                verdicts.len()
            )));
        }
        Ok(Verdicts { keys, verdicts })
    }

    /// The keys, sorted and disjoint.
    pub fn keys(&self) -> &[T] {
        &self.keys
    }

    /// The verdicts, one per key.
    pub fn verdicts(&self) -> &[TierVerdict] {
        &self.verdicts
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.verdicts.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.verdicts.is_empty()
    }

    /// Keys and verdicts, to change and check again with [`Verdicts::new`].
    pub fn into_parts(self) -> (K, Vec<TierVerdict>) {
        (self.keys, self.verdicts)
    }

    /// The elements as (key, verdict) pairs.
    pub fn iter<'a>(&'a self) -> impl Iterator<Item = (&'a T, &'a TierVerdict)>
    where
        T: 'a,
    {
        self.keys.iter().zip(&self.verdicts)
    }
}

impl SetElements {
    /// Address ranges of `family`, checked ([`AddrRanges::new`]).
    pub fn addr(family: Family, ranges: Vec<AddrRange>) -> Result<SetElements, PlanError> {
        AddrRanges::new(family, ranges).map(SetElements::Addr)
    }

    /// Address · protocol · port elements of `family`, checked ([`AddrProtoPorts::new`]).
    pub fn addr_proto_port(
        family: Family,
        elements: Vec<AddrProtoPort>,
    ) -> Result<SetElements, PlanError> {
        AddrProtoPorts::new(family, elements).map(SetElements::AddrProtoPort)
    }

    /// A tier's `…_other` map of `family`, keys checked as [`AddrRanges::new`].
    pub fn addr_verdict(
        family: Family,
        elements: Vec<(AddrRange, TierVerdict)>,
    ) -> Result<SetElements, PlanError> {
        let (keys, verdicts) = elements.into_iter().unzip();
        Verdicts::new(AddrRanges::new(family, keys)?, verdicts).map(SetElements::AddrVerdict)
    }

    /// A tier's `…_ports` map of `family`, keys checked as [`AddrProtoPorts::new`] and
    /// each of TCP, UDP or SCTP ([`PORT_PROTOCOLS`]).
    pub fn addr_proto_port_verdict(
        family: Family,
        elements: Vec<(AddrProtoPort, TierVerdict)>,
    ) -> Result<SetElements, PlanError> {
        let (keys, verdicts): (Vec<AddrProtoPort>, _) = elements.into_iter().unzip();
        if let Some((i, e)) = keys
            .iter()
            .enumerate()
            .find(|(_, e)| !PORT_PROTOCOLS.contains(&e.proto))
        {
            return Err(element(
                "map",
                i,
                format!("{}-{} . {}", e.addr.start, e.addr.end, e.proto),
                "not TCP, UDP or SCTP",
            ));
        }
        Verdicts::new(AddrProtoPorts::new(family, keys)?, verdicts)
            .map(SetElements::AddrProtoPortVerdict)
    }

    /// The `goto` and `jump` targets of a verdict map's elements.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        let verdicts = match self {
            SetElements::AddrVerdict(v) => v.verdicts(),
            SetElements::AddrProtoPortVerdict(v) => v.verdicts(),
            _ => &[],
        };
        verdicts.iter().filter_map(|v| match v {
            TierVerdict::Goto(chain) | TierVerdict::Jump(chain) => Some(chain.as_str()),
            TierVerdict::Accept => None,
        })
    }

    /// The family of the elements (`None` when there are none).
    fn family(&self) -> Option<Family> {
        match self {
            SetElements::Addr(v) => v.first().map(|r| Family::of(&r.start)),
            SetElements::AddrProtoPort(v) => v.first().map(|e| Family::of(&e.addr.start)),
            SetElements::AddrVerdict(v) => v.keys().first().map(|r| Family::of(&r.start)),
            SetElements::AddrProtoPortVerdict(v) => {
                v.keys().first().map(|e| Family::of(&e.addr.start))
            }
        }
    }
}

impl Set {
    /// A set named `name` of `family` holding `elements`.
    pub fn new(name: String, family: Family, elements: SetElements) -> Result<Set, PlanError> {
        check_name("set", &name)?;
        if elements.family().is_some_and(|f| f != family) {
            return Err(PlanError::Structure(format!(
                "set {name}: elements of another family than {family:?}"
            )));
        }
        Ok(Set {
            name,
            family,
            elements,
        })
    }

    /// Set name, unique in the table.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Address family of its address field.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The elements.
    pub fn elements(&self) -> &SetElements {
        &self.elements
    }

    /// Name, family and elements, to change and check again with [`Set::new`].
    pub fn into_parts(self) -> (String, Family, SetElements) {
        (self.name, self.family, self.elements)
    }
}

impl VerdictMap {
    /// A map named `name` from addresses of `family` to chains, sorted by address, each
    /// address once. That the chains exist is [`Plan::new`]'s to check.
    pub fn new(
        name: String,
        family: Family,
        elements: Vec<(IpAddr, String)>,
    ) -> Result<VerdictMap, PlanError> {
        check_name("map", &name)?;
        for (i, (ip, chain)) in elements.iter().enumerate() {
            let show = || format!("{ip} : jump {chain}");
            if Family::of(ip) != family {
                return Err(element("map", i, show(), "not of the map's family"));
            }
            if i > 0 && elements[i - 1].0 >= *ip {
                return Err(element(
                    "map",
                    i,
                    show(),
                    "repeats or precedes the key before it",
                ));
            }
        }
        Ok(VerdictMap {
            name,
            family,
            elements,
        })
    }

    /// Map name, unique in the table.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Family of its keys.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Sorted by address: address → `jump` target chain.
    pub fn elements(&self) -> &[(IpAddr, String)] {
        &self.elements
    }

    /// Name, family and elements, to change and check again with [`VerdictMap::new`].
    pub fn into_parts(self) -> (String, Family, Vec<(IpAddr, String)>) {
        (self.name, self.family, self.elements)
    }
}

impl Chain {
    /// A chain: a base chain when it has a hook, else one that rules jump to. Deny
    /// comments must fit nft ([`MAX_COMMENT`] bytes, no NUL).
    pub fn new(name: String, hook: Option<Hook>, rules: Vec<Stmt>) -> Result<Chain, PlanError> {
        check_name("chain", &name)?;
        for rule in &rules {
            if let Stmt::Deny { comment, .. } | Stmt::Audit { comment } = rule {
                if comment.len() > MAX_COMMENT || comment.contains('\0') {
                    return Err(PlanError::Structure(format!(
                        "chain {name}: comment {comment:?} is longer than nft allows \
                         ({MAX_COMMENT} bytes) or holds a NUL"
                    )));
                }
            }
        }
        Ok(Chain { name, hook, rules })
    }

    /// Chain name, unique in the table.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// For base chains: the hook (type filter, priority filter, policy accept).
    pub fn hook(&self) -> Option<Hook> {
        self.hook
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Stmt] {
        &self.rules
    }

    /// Name, hook and rules, to change and check again with [`Chain::new`].
    pub fn into_parts(self) -> (String, Option<Hook>, Vec<Stmt>) {
        (self.name, self.hook, self.rules)
    }
}

impl RateLimit {
    /// A limit named `name` of `rate` packets a second (at least 1) with bursts of
    /// `burst`.
    pub fn new(name: String, rate: u32, burst: u32) -> Result<RateLimit, PlanError> {
        check_name("limit", &name)?;
        if rate == 0 {
            return Err(PlanError::Structure(format!(
                "limit {name}: a rate of 0 a second"
            )));
        }
        Ok(RateLimit { name, rate, burst })
    }

    /// Limit name, unique in the table.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Packets a second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Packets above the rate let through at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// Names sorted and unique.
fn sorted_unique<T: Ord + std::fmt::Display>(
    what: &str,
    names: impl Iterator<Item = T>,
) -> Result<(), PlanError> {
    let mut prev: Option<T> = None;
    for n in names {
        if prev.as_ref().is_some_and(|p| *p >= n) {
            return Err(PlanError::Structure(format!(
                "{what} {n} repeats or is out of order"
            )));
        }
        prev = Some(n);
    }
    Ok(())
}

/// A plan taken apart ([`Plan::into_parts`]): each part still checked on its own, the
/// whole checked again by [`Parts::build`].
#[derive(Clone, Debug)]
pub struct Parts {
    /// The table's name.
    pub table: String,
    /// Its sets.
    pub sets: Vec<Set>,
    /// Its verdict maps.
    pub maps: Vec<VerdictMap>,
    /// Its chains.
    pub chains: Vec<Chain>,
    /// Its local endpoints.
    pub locals: Vec<LocalEndpoint>,
    /// Its named rate limits.
    pub limits: Vec<RateLimit>,
}

impl Parts {
    /// The plan again, checked as [`Plan::new`] checks.
    pub fn build(self) -> Result<Plan, PlanError> {
        Plan::new(
            self.table,
            self.sets,
            self.maps,
            self.chains,
            self.locals,
            self.limits,
        )
    }
}

impl Plan {
    /// A whole table: sets and maps sorted by name; base chains (at most one per hook)
    /// before the others, which are sorted by name; every set, map and chain that a
    /// rule, map element or local endpoint names is there, of the kind and family it is
    /// used as; local endpoints sorted; rate limits sorted by name.
    pub fn new(
        table: String,
        sets: Vec<Set>,
        maps: Vec<VerdictMap>,
        chains: Vec<Chain>,
        locals: Vec<LocalEndpoint>,
        limits: Vec<RateLimit>,
    ) -> Result<Plan, PlanError> {
        check_name("table", &table)?;
        sorted_unique("limit", limits.iter().map(|l| l.name.as_str()))?;
        sorted_unique("set", sets.iter().map(|s| s.name.as_str()))?;
        sorted_unique("map", maps.iter().map(|m| m.name.as_str()))?;
        let base = chains.iter().take_while(|c| c.hook.is_some()).count();
        if chains[base..].iter().any(|c| c.hook.is_some()) {
            return Err(PlanError::Structure(
                "a base chain comes after an endpoint chain".into(),
            ));
        }
        let shared_hook = (1..base).any(|i| chains[..i].iter().any(|c| c.hook == chains[i].hook));
        if shared_hook {
            return Err(PlanError::Structure("two base chains share a hook".into()));
        }
        sorted_unique("chain", chains[base..].iter().map(|c| c.name.as_str()))?;
        let plan = Plan {
            table,
            sets,
            maps,
            chains,
            locals,
            limits,
        };
        plan.check_references(base)?;
        Ok(plan)
    }

    /// The plan taken apart, to change and check again with [`Parts::build`].
    pub fn into_parts(self) -> Parts {
        Parts {
            table: self.table,
            sets: self.sets,
            maps: self.maps,
            chains: self.chains,
            locals: self.locals,
            limits: self.limits,
        }
    }

    fn check_references(&self, base: usize) -> Result<(), PlanError> {
        // Sorted and unique (checked by `new`): a binary search, no allocation.
        let is_endpoint_chain = |name: &str| self.endpoint_chain(name).is_some();
        if self.chains[..base]
            .iter()
            .any(|c| is_endpoint_chain(&c.name))
        {
            return Err(PlanError::Structure(
                "a base chain and an endpoint chain share a name".into(),
            ));
        }
        let missing = |what: &str, name: &str, by: &str| {
            Err(PlanError::Structure(format!(
                "{by} names {what} {name}, which the plan does not have or holds of another kind or family"
            )))
        };
        for chain in &self.chains {
            for rule in &chain.rules {
                let (what, name, ok) = match rule {
                    Stmt::Dispatch { family, map, .. } => {
                        let ok = self.map(map).is_some_and(|m| m.family == *family);
                        ("map", map, ok)
                    }
                    Stmt::AcceptAddr { family, set, .. } => {
                        let ok = self.set(set).is_some_and(|s| {
                            s.family == *family && matches!(s.elements, SetElements::Addr(_))
                        });
                        ("set", set, ok)
                    }
                    Stmt::Log { limit, .. } => {
                        let ok = self
                            .limits
                            .binary_search_by(|l| l.name.as_str().cmp(limit))
                            .is_ok();
                        ("limit", limit, ok)
                    }
                    Stmt::AcceptAddrProtoPort { family, set, .. } => {
                        let ok = self.set(set).is_some_and(|s| {
                            s.family == *family
                                && matches!(s.elements, SetElements::AddrProtoPort(_))
                        });
                        ("set", set, ok)
                    }
                    Stmt::TierPorts { family, map, .. } => {
                        let ok = self.set(map).is_some_and(|s| {
                            s.family == *family
                                && matches!(s.elements, SetElements::AddrProtoPortVerdict(_))
                        });
                        ("map", map, ok)
                    }
                    Stmt::TierClass { family, map, .. } => {
                        let ok = self.set(map).is_some_and(|s| {
                            s.family == *family && matches!(s.elements, SetElements::AddrVerdict(_))
                        });
                        ("map", map, ok)
                    }
                    Stmt::TierOther { family, map, .. } => {
                        let ok = self.set(map).is_some_and(|s| {
                            s.family == *family && matches!(s.elements, SetElements::AddrVerdict(_))
                        });
                        ("map", map, ok)
                    }
                    _ => continue,
                };
                if !ok {
                    return missing(what, name, &format!("a rule of chain {}", chain.name));
                }
            }
        }
        for set in &self.sets {
            for target in set.elements.targets() {
                if !is_endpoint_chain(target) {
                    return missing("chain", target, &format!("map {}", set.name));
                }
            }
        }
        for map in &self.maps {
            for (_, target) in &map.elements {
                if !is_endpoint_chain(target) {
                    return missing("chain", target, &format!("map {}", map.name));
                }
            }
        }
        sorted_unique("local endpoint", self.locals.iter().map(|l| &l.id))?;
        for local in &self.locals {
            let tiers = local.tier_chains.iter().map(|t| &t.chain);
            let tiers = tiers.chain(local.shard_chains.iter().map(|t| &t.chain));
            for chain in [&local.ingress_chain, &local.egress_chain]
                .into_iter()
                .flatten()
                .chain(tiers)
            {
                if !is_endpoint_chain(chain) {
                    return missing("chain", chain, &format!("local endpoint {}", local.id));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{AddrField, DenyAction};

    fn r(a: &str, b: &str) -> AddrRange {
        AddrRange {
            start: a.parse().unwrap(),
            end: b.parse().unwrap(),
        }
    }

    fn app(a: &str, b: &str, proto: u8, ports: (u16, u16)) -> AddrProtoPort {
        AddrProtoPort {
            addr: r(a, b),
            proto,
            ports,
        }
    }

    #[test]
    fn address_ranges_must_be_sorted_disjoint_and_of_the_family() {
        let v4 = Family::V4;
        assert!(AddrRanges::new(v4, vec![r("198.18.0.1", "198.18.0.9")]).is_ok());
        // Touching is fine, overlapping or out of order is not.
        assert!(AddrRanges::new(
            v4,
            vec![
                r("198.18.0.1", "198.18.0.9"),
                r("198.18.0.10", "198.18.0.20")
            ]
        )
        .is_ok());
        let overlap = vec![
            r("198.18.0.1", "198.18.0.9"),
            r("198.18.0.9", "198.18.0.20"),
        ];
        let e = AddrRanges::new(v4, overlap).unwrap_err();
        assert_eq!(
            e.to_string(),
            "set element 1 (198.18.0.9-198.18.0.20): overlaps or precedes the one before it"
        );
        let backwards = vec![
            r("198.18.0.30", "198.18.0.40"),
            r("198.18.0.1", "198.18.0.9"),
        ];
        assert!(AddrRanges::new(v4, backwards).is_err());
        let reversed = AddrRanges::new(v4, vec![r("198.18.0.9", "198.18.0.1")]).unwrap_err();
        assert!(reversed.to_string().ends_with("ends before it starts"));
        let mixed = AddrRanges::new(v4, vec![r("2001:db8::1", "2001:db8::2")]).unwrap_err();
        assert!(mixed.to_string().ends_with("not of the set's family"));
        // A set of one family cannot take elements of the other.
        let v6 = SetElements::addr(Family::V6, vec![r("2001:db8::1", "2001:db8::2")]).unwrap();
        assert!(Set::new("s".into(), v4, v6).is_err());
    }

    #[test]
    fn address_protocol_port_elements_are_ordered_within_and_across_ranges() {
        let v4 = Family::V4;
        let good = vec![
            app("198.18.0.1", "198.18.0.9", 6, (80, 80)),
            app("198.18.0.1", "198.18.0.9", 6, (443, 444)),
            app("198.18.0.1", "198.18.0.9", 17, (53, 53)),
            app("198.18.0.10", "198.18.0.10", 6, (1, 65535)),
        ];
        assert!(AddrProtoPorts::new(v4, good).is_ok());
        let ports_overlap = vec![
            app("198.18.0.1", "198.18.0.9", 6, (80, 90)),
            app("198.18.0.1", "198.18.0.9", 6, (85, 95)),
        ];
        assert!(AddrProtoPorts::new(v4, ports_overlap).is_err());
        let ranges_overlap = vec![
            app("198.18.0.1", "198.18.0.9", 6, (80, 80)),
            app("198.18.0.5", "198.18.0.20", 6, (80, 80)),
        ];
        assert!(AddrProtoPorts::new(v4, ranges_overlap).is_err());
        let empty_ports = vec![app("198.18.0.1", "198.18.0.9", 6, (90, 80))];
        assert!(AddrProtoPorts::new(v4, empty_ports).is_err());
    }

    #[test]
    fn names_are_plain_identifiers_within_the_kernels_limit() {
        let empty = SetElements::Addr(AddrRanges::default());
        assert!(Set::new("in_ns_web_v4_all".into(), Family::V4, empty.clone()).is_ok());
        for bad in ["", "1st", "a b", "a\"b", "a\0b", &"a".repeat(MAX_NAME + 1)] {
            assert!(
                Set::new(bad.into(), Family::V4, empty.clone()).is_err(),
                "{bad:?}"
            );
            assert!(Chain::new(bad.into(), None, vec![]).is_err(), "{bad:?}");
        }
        assert!(Chain::new("a".repeat(MAX_NAME), None, vec![]).is_ok());
        let long = Stmt::Deny {
            action: DenyAction::Drop,
            comment: "x".repeat(MAX_COMMENT + 1),
        };
        assert!(Chain::new("c".into(), None, vec![long]).is_err());
    }

    #[test]
    fn map_keys_are_unique_sorted_and_of_the_family() {
        let e = |ip: &str| (ip.parse().unwrap(), "c".to_string());
        assert!(VerdictMap::new(
            "m".into(),
            Family::V4,
            vec![e("198.18.0.1"), e("198.18.0.2")]
        )
        .is_ok());
        assert!(VerdictMap::new(
            "m".into(),
            Family::V4,
            vec![e("198.18.0.1"), e("198.18.0.1")]
        )
        .is_err());
        assert!(VerdictMap::new(
            "m".into(),
            Family::V4,
            vec![e("198.18.0.2"), e("198.18.0.1")]
        )
        .is_err());
        assert!(VerdictMap::new("m".into(), Family::V4, vec![e("2001:db8::1")]).is_err());
    }

    #[test]
    fn a_plan_holds_everything_its_rules_maps_and_locals_name() {
        let set = |name: &str| {
            Set::new(
                name.into(),
                Family::V4,
                SetElements::Addr(AddrRanges::default()),
            )
            .unwrap()
        };
        let accept = |set: &str| Stmt::AcceptAddr {
            family: Family::V4,
            field: AddrField::Saddr,
            set: set.into(),
        };
        let map = |target: &str| {
            VerdictMap::new(
                "ingress_v4".into(),
                Family::V4,
                vec![("198.18.0.1".parse().unwrap(), target.into())],
            )
            .unwrap()
        };
        let dispatch = Stmt::Dispatch {
            family: Family::V4,
            field: AddrField::Daddr,
            map: "ingress_v4".into(),
        };
        let input = Chain::new("input".into(), Some(Hook::Input), vec![dispatch]).unwrap();
        let c = Chain::new("c".into(), None, vec![accept("s")]).unwrap();
        let plan =
            |sets, maps, chains| Plan::new("netpol".into(), sets, maps, chains, vec![], Vec::new());
        assert!(plan(
            vec![set("s")],
            vec![map("c")],
            vec![input.clone(), c.clone()]
        )
        .is_ok());
        // A rule naming a set the plan lacks, a map jumping to a missing chain.
        assert!(plan(vec![], vec![map("c")], vec![input.clone(), c.clone()]).is_err());
        assert!(plan(
            vec![set("s")],
            vec![map("d")],
            vec![input.clone(), c.clone()]
        )
        .is_err());
        assert!(plan(vec![set("s")], vec![], vec![input.clone(), c.clone()]).is_err());
        // Sets out of order; a base chain after an endpoint chain.
        assert!(plan(
            vec![set("t"), set("s")],
            vec![map("c")],
            vec![input.clone(), c.clone()]
        )
        .is_err());
        assert!(plan(vec![set("s")], vec![map("c")], vec![c, input]).is_err());
    }

    #[test]
    fn log_rules_name_a_limit_of_the_plan_and_audits_check_comments() {
        use crate::model::Direction;
        use crate::plan::EventVerdict;
        let log = Stmt::Log {
            verdict: EventVerdict::Deny,
            direction: Direction::Ingress,
            group: 5,
            limit: "events".into(),
        };
        let c = Chain::new("c".into(), None, vec![log]).unwrap();
        let limit = RateLimit::new("events".into(), 20, 40).unwrap();
        let with = |limits| {
            Plan::new(
                "netpol".into(),
                vec![],
                vec![],
                vec![c.clone()],
                vec![],
                limits,
            )
        };
        assert!(with(vec![limit.clone()]).is_ok());
        let e = with(vec![]).unwrap_err();
        assert!(e.to_string().contains("names limit events"), "{e}");
        assert!(with(vec![limit.clone(), limit]).is_err(), "a limit twice");
        assert!(
            RateLimit::new("events".into(), 0, 1).is_err(),
            "a rate of 0"
        );
        assert!(
            RateLimit::new("9".into(), 1, 1).is_err(),
            "not a plain name"
        );
        let long = Stmt::Audit {
            comment: "x".repeat(MAX_COMMENT + 1),
        };
        assert!(Chain::new("c".into(), None, vec![long]).is_err());
    }
}
