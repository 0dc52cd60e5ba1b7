//! Interval normalisation: turns the overlapping (address range, ports) contributions of
//! many rules into the disjoint, sorted elements the kernel accepts.
//!
//! Addresses are handled as `u128` within one family's space (`0..=u32::MAX` for v4,
//! `0..=u128::MAX` for v6). Contributions are grouped by identical port set first (most
//! rules give every peer the same ports), each group's ranges are merged, and one sort +
//! sweep over the group boundaries yields elementary intervals with the union of their
//! port sets. Cost: O(C log C) in the number of contributions, plus the size of the
//! port sets active at each boundary; nothing is quadratic in peers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::Family;
use crate::model::IpBlock;

/// One protocol's inclusive destination-port range: `(protocol number, first, last)`.
pub(crate) type ProtoPorts = (u8, u16, u16);

/// A normalised port set: sorted, and per protocol no two ranges overlap or touch.
pub(crate) type PortSet = Vec<ProtoPorts>;

/// An inclusive address range inside one family's space.
pub(crate) type Span = (u128, u128);

/// The last address of a family's space.
pub(crate) fn family_max(family: Family) -> u128 {
    match family {
        Family::V4 => u128::from(u32::MAX),
        Family::V6 => u128::MAX,
    }
}

/// An address as a number within its family's space.
pub(crate) fn to_u128(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(a) => (Family::V4, u128::from(u32::from(a))),
        IpAddr::V6(a) => (Family::V6, u128::from(a)),
    }
}

/// The address with this number in a family's space. `x` must fit the family.
pub(crate) fn from_u128(family: Family, x: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(
            u32::try_from(x).expect("v4 value out of range"),
        )),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(x)),
    }
}

/// The first and last address of a network.
pub(crate) fn net_span(net: &IpNet) -> (Family, Span) {
    let (family, lo) = to_u128(net.network());
    let (_, hi) = to_u128(net.broadcast());
    (family, (lo, hi))
}

/// Sorts ranges and merges those that overlap or touch.
pub(crate) fn merge_spans(spans: &mut Vec<Span>) {
    spans.sort_unstable();
    // In place: a plan merges tens of thousands of spans, and a second vector of them
    // is fresh memory the allocator must fault in on every reload.
    let mut kept = 0;
    for i in 0..spans.len() {
        let (lo, hi) = spans[i];
        if kept > 0 {
            let last = &mut spans[kept - 1];
            // `last.1 == MAX` covers everything after it; otherwise `last.1 + 1` is safe.
            if last.1 == u128::MAX || lo <= last.1 + 1 {
                last.1 = last.1.max(hi);
                continue;
            }
        }
        spans[kept] = (lo, hi);
        kept += 1;
    }
    spans.truncate(kept);
}

/// The addresses of an `ipBlock`: its CIDR minus every `except`, as sorted disjoint
/// ranges. Excepts may overlap each other; they are merged first.
pub(crate) fn block_spans(block: &IpBlock) -> (Family, Vec<Span>) {
    let (family, (lo, hi)) = net_span(&block.cidr);
    let mut holes: Vec<Span> = block
        .except
        .iter()
        .map(net_span)
        .filter(|(f, _)| *f == family)
        .map(|(_, s)| s)
        .collect();
    merge_spans(&mut holes);
    (family, subtract((lo, hi), &holes))
}

/// `base` minus sorted, disjoint `holes`.
pub(crate) fn subtract(base: Span, holes: &[Span]) -> Vec<Span> {
    let (lo, hi) = base;
    let mut out = Vec::new();
    // `next` is the first address not yet decided; `None` once past `hi`.
    let mut next = Some(lo);
    for &(hlo, hhi) in holes {
        let Some(start) = next else { break };
        if hhi < start || hlo > hi {
            continue;
        }
        if hlo > start {
            out.push((start, hlo - 1));
        }
        next = if hhi >= hi { None } else { Some(hhi + 1) };
    }
    if let Some(start) = next {
        out.push((start, hi));
    }
    out
}

/// Sorts a port set and merges ranges of one protocol that overlap or touch.
pub(crate) fn normalise_ports(set: &mut PortSet) {
    set.sort_unstable();
    let mut out: PortSet = Vec::with_capacity(set.len());
    for &(proto, lo, hi) in set.iter() {
        if let Some(last) = out.last_mut() {
            if last.0 == proto && u32::from(lo) <= u32::from(last.2) + 1 {
                last.2 = last.2.max(hi);
                continue;
            }
        }
        out.push((proto, lo, hi));
    }
    *set = out;
}

/// Interns normalised port sets, so contributions with equal ports share one id and
/// elementary intervals with equal unions compare by id.
#[derive(Debug, Default)]
pub(crate) struct PortSets {
    sets: Vec<PortSet>,
    ids: HashMap<PortSet, u32>,
}

impl PortSets {
    /// The id of this set after normalisation; `None` for the empty set, which allows
    /// nothing and so contributes nothing.
    pub(crate) fn intern(&mut self, mut set: PortSet) -> Option<u32> {
        if set.is_empty() {
            return None;
        }
        normalise_ports(&mut set);
        if let Some(&id) = self.ids.get(&set) {
            return Some(id);
        }
        let id = u32::try_from(self.sets.len()).expect("fewer than 2^32 port sets");
        self.sets.push(set.clone());
        self.ids.insert(set, id);
        Some(id)
    }

    /// The set with this id.
    pub(crate) fn get(&self, id: u32) -> &PortSet {
        &self.sets[id as usize]
    }
}

/// The group id of "every protocol and port"; larger than any port-set id.
const ALL: u32 = u32::MAX;

/// Contributions to one direction of one local endpoint, in one family's space.
#[derive(Debug)]
pub(crate) struct Space {
    max: u128,
    all: Vec<Span>,
    /// Indexed by port-set id.
    by_ports: Vec<Vec<Span>>,
}

/// The normalised content of a [`Space`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Normalised {
    /// Addresses allowed on every protocol and port: sorted, disjoint, not touching.
    pub(crate) all: Vec<Span>,
    /// Addresses allowed on some ports, none of them in `all`: sorted, disjoint, and
    /// touching neighbours have different port sets (ids into the [`PortSets`]).
    pub(crate) ported: Vec<(u128, u128, u32)>,
}

impl Space {
    /// An empty space whose last address is `max`.
    pub(crate) fn new(max: u128) -> Self {
        Space {
            max,
            all: Vec::new(),
            by_ports: Vec::new(),
        }
    }

    /// Allows every protocol and port from these addresses.
    pub(crate) fn add_all(&mut self, span: Span) {
        debug_assert!(span.0 <= span.1 && span.1 <= self.max);
        self.all.push(span);
    }

    /// Allows the port set `id` from these addresses.
    pub(crate) fn add_ports(&mut self, span: Span, id: u32) {
        debug_assert!(span.0 <= span.1 && span.1 <= self.max);
        let i = id as usize;
        if self.by_ports.len() <= i {
            self.by_ports.resize_with(i + 1, Vec::new);
        }
        self.by_ports[i].push(span);
    }

    /// Partitions the space at every boundary, unions the port sets per elementary
    /// interval, merges neighbours with equal content, and drops from the ported part
    /// what the "all" part already allows. New unions are interned into `sets`.
    pub(crate) fn normalise(self, sets: &mut PortSets) -> Normalised {
        let max = self.max;
        let spans = self.all.len() + self.by_ports.iter().map(Vec::len).sum::<usize>();
        let mut events: Vec<(u128, u32, bool)> = Vec::with_capacity(2 * spans);
        let mut push_group = |gid: u32, mut spans: Vec<Span>| {
            merge_spans(&mut spans);
            for (lo, hi) in spans {
                events.push((lo, gid, true));
                if hi < max {
                    events.push((hi + 1, gid, false));
                }
            }
        };
        push_group(ALL, self.all);
        for (gid, spans) in self.by_ports.into_iter().enumerate() {
            if !spans.is_empty() {
                push_group(u32::try_from(gid).expect("port-set id fits u32"), spans);
            }
        }
        // Within a group the merged spans neither overlap nor touch, so at one position a
        // group either starts or ends, never both: the order among equal positions is
        // irrelevant.
        events.sort_unstable_by_key(|e| e.0);

        let mut out = Normalised::default();
        // The groups open here, sorted: few at a time, and looked up by slice, so that
        // each of tens of thousands of elementary intervals costs no allocation.
        let mut active: Vec<u32> = Vec::new();
        let mut unions: foldhash::HashMap<Vec<u32>, u32> = foldhash::HashMap::default();
        let mut i = 0;
        while i < events.len() {
            let pos = events[i].0;
            while i < events.len() && events[i].0 == pos {
                let (_, gid, start) = events[i];
                match (active.binary_search(&gid), start) {
                    (Err(at), true) => active.insert(at, gid),
                    (Ok(at), false) => {
                        active.remove(at);
                    }
                    _ => {}
                }
                i += 1;
            }
            let end = if i < events.len() {
                events[i].0 - 1
            } else {
                max
            };
            if active.is_empty() {
                continue;
            }
            // `ALL` is `u32::MAX`: open, it is the last of the sorted groups.
            if active.last() == Some(&ALL) {
                match out.all.last_mut() {
                    Some(last) if last.1 + 1 == pos => last.1 = end,
                    _ => out.all.push((pos, end)),
                }
                continue;
            }
            let uid = match unions.get(active.as_slice()) {
                Some(&uid) => uid,
                None => {
                    let union: PortSet = active
                        .iter()
                        .flat_map(|&g| sets.get(g).iter().copied())
                        .collect();
                    let uid = sets.intern(union).expect("a union of non-empty sets");
                    unions.insert(active.clone(), uid);
                    uid
                }
            };
            match out.ported.last_mut() {
                Some(last) if last.1 + 1 == pos && last.2 == uid => last.1 = end,
                _ => out.ported.push((pos, end, uid)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const TCP: u8 = 6;
    const UDP: u8 = 17;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn v4(s: &str) -> u128 {
        to_u128(s.parse().unwrap()).1
    }

    #[test]
    fn merge_joins_overlapping_and_touching_ranges_only() {
        let mut s = vec![(10, 20), (0, 3), (4, 5), (15, 30), (32, 40)];
        merge_spans(&mut s);
        assert_eq!(s, vec![(0, 5), (10, 30), (32, 40)]);
    }

    #[test]
    fn merge_handles_the_top_of_the_v6_space() {
        let mut s = vec![(u128::MAX - 1, u128::MAX), (5, u128::MAX), (0, 4)];
        merge_spans(&mut s);
        assert_eq!(s, vec![(0, u128::MAX)]);
    }

    #[test]
    fn block_minus_excepts_leaves_the_gaps() {
        let block = IpBlock {
            cidr: net("198.18.0.0/24"),
            except: vec![net("198.18.0.128/25"), net("198.18.0.16/28")],
        };
        let (family, spans) = block_spans(&block);
        assert_eq!(family, Family::V4);
        assert_eq!(
            spans,
            vec![
                (v4("198.18.0.0"), v4("198.18.0.15")),
                (v4("198.18.0.32"), v4("198.18.0.127")),
            ]
        );
    }

    #[test]
    fn overlapping_and_touching_excepts_are_carved_once() {
        let block = IpBlock {
            cidr: net("198.18.0.0/24"),
            except: vec![
                net("198.18.0.0/26"),
                net("198.18.0.0/28"),
                net("198.18.0.64/26"),
            ],
        };
        let (_, spans) = block_spans(&block);
        assert_eq!(spans, vec![(v4("198.18.0.128"), v4("198.18.0.255"))]);
    }

    #[test]
    fn excepts_at_both_ends_of_the_whole_v6_space() {
        let block = IpBlock {
            cidr: net("::/0"),
            except: vec![net("::/1"), net("ffff::/16")],
        };
        let (family, spans) = block_spans(&block);
        assert_eq!(family, Family::V6);
        let lo = 1u128 << 127;
        let hi = (0xffffu128 << 112) - 1;
        assert_eq!(spans, vec![(lo, hi)]);
    }

    #[test]
    fn whole_v4_space_without_excepts_is_one_range() {
        let block = IpBlock {
            cidr: net("0.0.0.0/0"),
            except: vec![],
        };
        assert_eq!(block_spans(&block).1, vec![(0, u128::from(u32::MAX))]);
    }

    #[test]
    fn ports_merge_per_protocol_when_overlapping_or_adjacent() {
        let mut p = vec![
            (TCP, 80, 80),
            (UDP, 53, 53),
            (TCP, 81, 90),
            (TCP, 85, 86),
            (TCP, 92, 92),
            (UDP, 54, 54),
            (TCP, 0, 65535),
        ];
        normalise_ports(&mut p);
        assert_eq!(p, vec![(TCP, 0, 65535), (UDP, 53, 54)]);
        let mut q = vec![(TCP, 80, 80), (UDP, 81, 81), (TCP, 82, 82)];
        normalise_ports(&mut q);
        assert_eq!(q, vec![(TCP, 80, 80), (TCP, 82, 82), (UDP, 81, 81)]);
    }

    #[test]
    fn equal_sets_intern_to_one_id_and_empty_to_none() {
        let mut sets = PortSets::default();
        let a = sets.intern(vec![(TCP, 81, 90), (TCP, 80, 80)]).unwrap();
        let b = sets.intern(vec![(TCP, 80, 90)]).unwrap();
        let c = sets.intern(vec![(UDP, 80, 90)]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(sets.intern(vec![]), None);
        assert_eq!(sets.get(a), &vec![(TCP, 80, 90)]);
    }

    #[test]
    fn overlapping_contributions_split_into_elementary_intervals() {
        let mut sets = PortSets::default();
        let web = sets.intern(vec![(TCP, 80, 80)]).unwrap();
        let dns = sets.intern(vec![(UDP, 53, 53)]).unwrap();
        let mut space = Space::new(1000);
        space.add_ports((10, 30), web);
        space.add_ports((20, 40), dns);
        let n = space.normalise(&mut sets);
        assert!(n.all.is_empty());
        let shown: Vec<(u128, u128, PortSet)> = n
            .ported
            .iter()
            .map(|&(lo, hi, id)| (lo, hi, sets.get(id).clone()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (10, 19, vec![(TCP, 80, 80)]),
                (20, 30, vec![(TCP, 80, 80), (UDP, 53, 53)]),
                (31, 40, vec![(UDP, 53, 53)]),
            ]
        );
    }

    #[test]
    fn touching_intervals_with_equal_ports_merge_even_from_different_groups() {
        let mut sets = PortSets::default();
        let a = sets.intern(vec![(TCP, 80, 80)]).unwrap();
        let b = sets.intern(vec![(TCP, 79, 81)]).unwrap();
        let c = sets.intern(vec![(TCP, 81, 81)]).unwrap();
        let mut space = Space::new(1000);
        // [0,9]: {80} ∪ {79-81}; [10,19]: {79-81}; [20,29]: {80} ∪ {81} ∪ {79-81}.
        space.add_ports((0, 9), a);
        space.add_ports((0, 29), b);
        space.add_ports((20, 29), a);
        space.add_ports((20, 29), c);
        let n = space.normalise(&mut sets);
        assert_eq!(n.ported.len(), 1);
        assert_eq!((n.ported[0].0, n.ported[0].1), (0, 29));
        assert_eq!(sets.get(n.ported[0].2), &vec![(TCP, 79, 81)]);
    }

    #[test]
    fn all_ports_addresses_leave_the_ported_part() {
        let mut sets = PortSets::default();
        let web = sets.intern(vec![(TCP, 80, 80)]).unwrap();
        let mut space = Space::new(100);
        space.add_ports((0, 100), web);
        space.add_all((10, 19));
        space.add_all((20, 29));
        space.add_all((50, 50));
        let n = space.normalise(&mut sets);
        assert_eq!(n.all, vec![(10, 29), (50, 50)]);
        let spans: Vec<Span> = n.ported.iter().map(|&(lo, hi, _)| (lo, hi)).collect();
        assert_eq!(spans, vec![(0, 9), (30, 49), (51, 100)]);
    }

    #[test]
    fn whole_v6_space_sweeps_without_overflow() {
        let mut sets = PortSets::default();
        let web = sets.intern(vec![(TCP, 80, 80)]).unwrap();
        let dns = sets.intern(vec![(UDP, 53, 53)]).unwrap();
        let mut space = Space::new(u128::MAX);
        space.add_ports((0, u128::MAX), web);
        space.add_ports((u128::MAX, u128::MAX), dns);
        space.add_all((0, 0));
        let n = space.normalise(&mut sets);
        assert_eq!(n.all, vec![(0, 0)]);
        let shown: Vec<(u128, u128, PortSet)> = n
            .ported
            .iter()
            .map(|&(lo, hi, id)| (lo, hi, sets.get(id).clone()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (1, u128::MAX - 1, vec![(TCP, 80, 80)]),
                (u128::MAX, u128::MAX, vec![(TCP, 80, 80), (UDP, 53, 53)]),
            ]
        );
    }

    /// A tiny deterministic generator, so the brute-force comparison is reproducible.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn sweep_agrees_with_brute_force_on_random_contributions() {
        const MAX: u128 = 63;
        let protos = [TCP, UDP];
        for seed in 1..300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut sets = PortSets::default();
            let mut space = Space::new(MAX);
            // Reference: per address, "all" flag and the allowed (proto, port) pairs.
            let mut all = [false; MAX as usize + 1];
            let mut allowed = vec![BTreeSet::<(u8, u16)>::new(); MAX as usize + 1];
            for _ in 0..rng.below(8) {
                let lo = rng.below(64) as u128;
                let hi = (lo + rng.below(20) as u128).min(MAX);
                if rng.below(5) == 0 {
                    space.add_all((lo, hi));
                    (lo..=hi).for_each(|a| all[a as usize] = true);
                    continue;
                }
                let mut set = Vec::new();
                for _ in 0..=rng.below(3) {
                    let proto = protos[rng.below(2) as usize];
                    let plo = rng.below(12) as u16;
                    let phi = plo + rng.below(4) as u16;
                    set.push((proto, plo, phi));
                }
                for a in lo..=hi {
                    for &(p, plo, phi) in &set {
                        (plo..=phi).for_each(|port| {
                            allowed[a as usize].insert((p, port));
                        });
                    }
                }
                let id = sets.intern(set).unwrap();
                space.add_ports((lo, hi), id);
            }
            let n = space.normalise(&mut sets);

            let mut got_all = [false; MAX as usize + 1];
            for w in n.all.windows(2) {
                assert!(w[0].1 + 1 < w[1].0, "seed {seed}: all-set not minimal");
            }
            for &(lo, hi) in &n.all {
                (lo..=hi).for_each(|a| got_all[a as usize] = true);
            }
            assert_eq!(got_all, all, "seed {seed}: all-set differs");

            let mut got = vec![BTreeSet::<(u8, u16)>::new(); MAX as usize + 1];
            for w in n.ported.windows(2) {
                assert!(w[0].1 < w[1].0, "seed {seed}: ported spans overlap");
                assert!(
                    w[0].1 + 1 < w[1].0 || w[0].2 != w[1].2,
                    "seed {seed}: touching spans with equal ports not merged"
                );
            }
            for &(lo, hi, id) in &n.ported {
                let set = sets.get(id);
                for w in set.windows(2) {
                    assert!(
                        w[0].0 != w[1].0 || w[0].2 as u32 + 1 < w[1].1 as u32,
                        "seed {seed}: port set not normalised"
                    );
                }
                for a in lo..=hi {
                    assert!(!all[a as usize], "seed {seed}: {a} in both sets");
                    for &(p, plo, phi) in set {
                        (plo..=phi).for_each(|port| {
                            got[a as usize].insert((p, port));
                        });
                    }
                }
            }
            for a in 0..=MAX as usize {
                if !all[a] {
                    assert_eq!(got[a], allowed[a], "seed {seed}: address {a}");
                }
            }
        }
    }
}
