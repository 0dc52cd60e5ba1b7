//! Sharding of large address · protocol · port sets by address block.
//!
//! An `ip saddr . meta l4proto . th dport @set` set is a concatenation with ranges,
//! which nftables keeps in a `pipapo` set: a kernel transaction that changes one
//! element works on a clone of the set's whole lookup table, and loading n elements
//! costs about n² (benches/README.md, `scaling`). So a set of more than
//! [`Options::shard_above`](super::Options::shard_above) elements is cut into shards by
//! address: the smallest aligned address blocks, found by halving the family's space
//! until each holds at most that many elements, each with its own set behind its own
//! chain, reached through one interval verdict map from block to chain (an `rbtree`,
//! a logarithmic look-up). An element whose address range crosses a block boundary is
//! split at it. The blocks depend only on where elements lie, so a change of one
//! peer's elements changes one shard's set and leaves the layout alone, unless it
//! moves a block's count across the limit or fills or empties a block (then the plan's
//! sets and chains change: a full replace).

use super::intervals::{family_max, from_u128, to_u128};
use super::{AddrProtoPort, AddrRange, Family};

/// One shard: an aligned address block and the elements inside it, clipped to it and
/// in the order of the set they come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Shard {
    /// The block.
    pub block: AddrRange,
    /// Its elements, never empty.
    pub elements: Vec<AddrProtoPort>,
}

/// `elements` (sorted as [`AddrProtoPorts`](super::AddrProtoPorts) checks, all of
/// `family`) cut into the non-empty blocks of at most `limit` elements each, in address
/// order. A block whose elements all have one address range (one address, or one
/// range with many port elements) is not cut further, whatever it holds: its halves
/// would hold as many, so it is one shard.
pub(super) fn shard(family: Family, elements: &[AddrProtoPort], limit: usize) -> Vec<Shard> {
    // Address ranges of a checked set are equal or disjoint and sorted, so both their
    // starts and their ends ascend: the elements meeting a block are one run.
    let spans: Vec<(u128, u128)> = elements
        .iter()
        .map(|e| (to_u128(e.addr.start).1, to_u128(e.addr.end).1))
        .collect();
    let mut blocks = Vec::new();
    split(&spans, (0, family_max(family)), limit.max(1), &mut blocks);
    blocks
        .into_iter()
        .map(|((lo, hi), run)| Shard {
            block: AddrRange {
                start: from_u128(family, lo),
                end: from_u128(family, hi),
            },
            elements: elements[run]
                .iter()
                .map(|e| {
                    let (start, end) = (to_u128(e.addr.start).1, to_u128(e.addr.end).1);
                    AddrProtoPort {
                        addr: AddrRange {
                            start: from_u128(family, start.max(lo)),
                            end: from_u128(family, end.min(hi)),
                        },
                        ..*e
                    }
                })
                .collect(),
        })
        .collect()
}

/// The run of `spans` meeting `block`.
fn run(spans: &[(u128, u128)], (lo, hi): (u128, u128)) -> std::ops::Range<usize> {
    let first = spans.partition_point(|s| s.1 < lo);
    let last = spans.partition_point(|s| s.0 <= hi);
    first..last.max(first)
}

/// Adds the non-empty leaves of `block` (an aligned block: its size a power of two
/// and its start a multiple of it) to `out`, halving while it holds more than `limit`
/// elements of at least two address ranges. A block is halved only when it holds the
/// boundary between two ranges, and each boundary is in one block per depth, so there
/// are at most (ranges × address bits) blocks.
#[allow(clippy::type_complexity)]
fn split(
    spans: &[(u128, u128)],
    block: (u128, u128),
    limit: usize,
    out: &mut Vec<((u128, u128), std::ops::Range<usize>)>,
) {
    let r = run(spans, block);
    if r.is_empty() {
        return;
    }
    let (lo, hi) = block;
    let one_range = spans[r.start] == spans[r.end - 1];
    if r.len() <= limit || lo == hi || one_range {
        out.push((block, r));
        return;
    }
    let mid = lo + (hi - lo) / 2;
    split(spans, (lo, mid), limit, out);
    split(spans, (mid + 1, hi), limit, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn e(a: &str, b: &str, proto: u8, port: u16) -> AddrProtoPort {
        AddrProtoPort {
            addr: AddrRange {
                start: a.parse().unwrap(),
                end: b.parse().unwrap(),
            },
            proto,
            ports: (port, port),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_set_within_the_limit_is_one_shard_of_the_whole_space() {
        let set = vec![e("198.18.0.1", "198.18.0.1", 6, 80)];
        let shards = shard(Family::V4, &set, 4);
        assert_eq!(shards.len(), 1);
        assert_eq!(shards[0].block.start, ip("0.0.0.0"));
        assert_eq!(shards[0].block.end, ip("255.255.255.255"));
        assert_eq!(shards[0].elements, set);
    }

    #[test]
    fn blocks_are_halved_until_each_holds_the_limit_and_ranges_are_cut_at_them() {
        // 0.0.0.0–255.255.255.255 holds 3 > 2: halves at 128.0.0.0; the range across
        // it is cut.
        let set = vec![
            e("10.0.0.1", "10.0.0.1", 6, 80),
            e("10.0.0.1", "10.0.0.1", 17, 53),
            e("127.255.255.0", "128.0.0.255", 6, 443),
        ];
        let shards = shard(Family::V4, &set, 2);
        // Left half: 3 elements > 2, halved again down to the block of 10.0.0.1 and
        // the block of 127.255.255.0 (they part at 64.0.0.0).
        let blocks: Vec<(IpAddr, IpAddr, usize)> = shards
            .iter()
            .map(|s| (s.block.start, s.block.end, s.elements.len()))
            .collect();
        assert_eq!(
            blocks,
            [
                (ip("0.0.0.0"), ip("63.255.255.255"), 2),
                (ip("64.0.0.0"), ip("127.255.255.255"), 1),
                (ip("128.0.0.0"), ip("255.255.255.255"), 1),
            ]
        );
        assert_eq!(
            shards[1].elements,
            [e("127.255.255.0", "127.255.255.255", 6, 443)]
        );
        assert_eq!(shards[2].elements, [e("128.0.0.0", "128.0.0.255", 6, 443)]);
    }

    #[test]
    fn one_range_of_many_ports_is_one_shard_however_wide() {
        // Halving would never separate these: every half holds all three.
        let set: Vec<AddrProtoPort> = [(6, 80), (6, 443), (17, 53)]
            .map(|(proto, port)| e("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", proto, port))
            .to_vec();
        let shards = shard(Family::V6, &set, 1);
        assert_eq!(shards.len(), 1);
        assert_eq!(shards[0].elements, set);
        // With another range beside it, the halving stops where they part.
        let mut two = vec![e("198.18.0.0", "198.18.0.255", 6, 80)];
        two.extend([(6, 81), (17, 53)].map(|(p, port)| e("198.19.0.0", "198.19.0.255", p, port)));
        let shards = shard(Family::V4, &two, 1);
        assert_eq!(shards.len(), 2, "{shards:?}");
        assert_eq!(shards[0].block.start, ip("198.18.0.0"));
        assert_eq!(shards[0].block.end, ip("198.18.255.255"));
        assert_eq!(shards[1].elements.len(), 2);
    }

    #[test]
    fn one_address_over_the_limit_is_one_shard() {
        let set: Vec<AddrProtoPort> = (1..=5)
            .map(|p| e("2001:db8::1", "2001:db8::1", 6, p))
            .collect();
        let shards = shard(Family::V6, &set, 2);
        assert_eq!(shards.len(), 1);
        assert_eq!(shards[0].block.start, ip("::"));
        assert_eq!(shards[0].elements, set);
    }
}
