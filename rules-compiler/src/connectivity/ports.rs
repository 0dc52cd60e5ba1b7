//! Allowed sets as values: per protocol, sorted disjoint inclusive port ranges, plus
//! whether every other IP protocol (ICMP, ICMPv6, GRE, … — none of which has ports) is
//! allowed. Union, intersection and difference by interval arithmetic; nothing here
//! knows policies or plans.

use serde::Serialize;

use crate::model::Protocol;
use crate::plan::Accepts;

/// Sorted, disjoint, non-touching inclusive port ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRanges(Vec<(u16, u16)>);

impl PortRanges {
    /// Every port, 0 included (a rule's "all ports" is the whole field).
    pub fn full() -> PortRanges {
        PortRanges(vec![(0, u16::MAX)])
    }

    /// Normalises any list of inclusive ranges (`lo <= hi`).
    pub fn from_ranges(mut ranges: Vec<(u16, u16)>) -> PortRanges {
        ranges.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match out.last_mut() {
                // Touching ranges merge too: 80-80 and 81-90 are 80-90.
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        PortRanges(out)
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }

    /// No port.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        let i = self.0.partition_point(|r| r.0 <= port);
        i > 0 && port <= self.0[i - 1].1
    }

    /// Ports in both.
    pub fn intersect(&self, other: &PortRanges) -> PortRanges {
        let (mut i, mut j, mut out) = (0, 0, Vec::new());
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (lo, hi) = (a.0.max(b.0), a.1.min(b.1));
            if lo <= hi {
                out.push((lo, hi));
            }
            // Drop whichever range ends first; the other may meet the next one.
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        PortRanges(out)
    }

    /// Ports in `self` and not in `other`.
    pub fn minus(&self, other: &PortRanges) -> PortRanges {
        let mut out = Vec::new();
        let mut j = 0;
        for &(lo, hi) in &self.0 {
            // u32 so that one past 65535 is representable.
            let mut start = u32::from(lo);
            let end = u32::from(hi);
            while j < other.0.len() && u32::from(other.0[j].1) < start {
                j += 1;
            }
            let mut k = j;
            while start <= end && k < other.0.len() && u32::from(other.0[k].0) <= end {
                let (hlo, hhi) = (u32::from(other.0[k].0), u32::from(other.0[k].1));
                if hlo > start {
                    out.push((port(start), port(hlo - 1)));
                }
                start = start.max(hhi + 1);
                k += 1;
            }
            if start <= end {
                out.push((port(start), port(end)));
            }
        }
        PortRanges(out)
    }

    /// How many ranges.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

fn port(x: u32) -> u16 {
    u16::try_from(x).expect("a port within 0..=65535")
}

/// What may pass between two addresses, for every protocol at once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Allowed {
    /// Indexed like [`Protocol::ALL`]: TCP, UDP, SCTP.
    ports: [PortRanges; 3],
    /// Every other IP protocol (no ports): ICMP, ICMPv6, GRE, ….
    other: bool,
}

/// One protocol of an allowed set, as people and JSON name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Proto {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
    /// Every IP protocol other than TCP, UDP and SCTP; they have no ports.
    #[serde(rename = "other")]
    Other,
}

impl Proto {
    /// `TCP`, `UDP`, `SCTP`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Sctp => "SCTP",
            Proto::Other => "other",
        }
    }
}

impl From<Protocol> for Proto {
    fn from(p: Protocol) -> Proto {
        match p {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
            Protocol::Sctp => Proto::Sctp,
        }
    }
}

fn slot(proto: u8) -> Option<usize> {
    Protocol::ALL.iter().position(|p| p.number() == proto)
}

impl Allowed {
    /// Nothing at all.
    pub fn none() -> Allowed {
        Allowed::default()
    }

    /// Every protocol and port.
    pub fn everything() -> Allowed {
        Allowed {
            ports: [PortRanges::full(), PortRanges::full(), PortRanges::full()],
            other: true,
        }
    }

    /// From an endpoint chain's answer ([`crate::plan::ChainAccepts::get`]).
    pub fn from_accepts(accepts: &Accepts<'_>) -> Allowed {
        let Some(list) = accepts.ports() else {
            return Allowed::everything();
        };
        let mut per: [Vec<(u16, u16)>; 3] = Default::default();
        for (proto, lo, hi) in list {
            // The plan's port sets hold only the protocols a policy can name.
            if let Some(i) = slot(proto) {
                per[i].push((lo, hi));
            }
        }
        Allowed {
            ports: per.map(PortRanges::from_ranges),
            other: accepts.other(),
        }
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        !self.other && self.ports.iter().all(PortRanges::is_empty)
    }

    /// Whether everything is allowed.
    pub fn is_everything(&self) -> bool {
        *self == Allowed::everything()
    }

    /// Whether one packet passes: `proto` is the IP protocol number, `port` is ignored
    /// for protocols without ports.
    pub fn allows(&self, proto: u8, port: u16) -> bool {
        match slot(proto) {
            Some(i) => self.ports[i].contains(port),
            None => self.other,
        }
    }

    /// Both allow it.
    pub fn intersect(&self, other: &Allowed) -> Allowed {
        Allowed {
            ports: std::array::from_fn(|i| self.ports[i].intersect(&other.ports[i])),
            other: self.other && other.other,
        }
    }

    /// `self` allows it and `other` does not.
    pub fn minus(&self, other: &Allowed) -> Allowed {
        Allowed {
            ports: std::array::from_fn(|i| self.ports[i].minus(&other.ports[i])),
            other: self.other && !other.other,
        }
    }

    /// The non-empty parts, TCP, UDP, SCTP, then other (whose ranges are empty).
    pub fn parts(&self) -> Vec<(Proto, &PortRanges)> {
        static NO_PORTS: PortRanges = PortRanges(Vec::new());
        let mut out: Vec<(Proto, &PortRanges)> = Protocol::ALL
            .iter()
            .zip(&self.ports)
            .filter(|(_, r)| !r.is_empty())
            .map(|(p, r)| (Proto::from(*p), r))
            .collect();
        if self.other {
            out.push((Proto::Other, &NO_PORTS));
        }
        out
    }

    /// Flows in it: one per protocol and port range, one for the other protocols.
    pub fn flows(&self) -> usize {
        self.ports.iter().map(PortRanges::len).sum::<usize>() + usize::from(self.other)
    }

    /// For people: `all`, or e.g. `8080/TCP, 53/TCP+UDP, 1000-2000/SCTP, other`, each
    /// port list once with every protocol that has exactly it; `*` is every port.
    pub fn label(&self) -> String {
        if self.is_everything() {
            return "all".to_string();
        }
        // Protocols with equal port lists share one item, in the first one's place.
        let mut items: Vec<(&PortRanges, Vec<&str>)> = Vec::new();
        for (p, r) in Protocol::ALL.iter().zip(&self.ports) {
            if r.is_empty() {
                continue;
            }
            match items.iter_mut().find(|(q, _)| *q == r) {
                Some((_, names)) => names.push(p.as_k8s()),
                None => items.push((r, vec![p.as_k8s()])),
            }
        }
        let mut out: Vec<String> = items
            .into_iter()
            .map(|(r, names)| format!("{}/{}", ports_text(r), names.join("+")))
            .collect();
        if self.other {
            out.push("other".to_string());
        }
        out.join(", ")
    }
}

/// `80`, `80,443`, `1000-2000`, `*` (every port).
pub fn ports_text(r: &PortRanges) -> String {
    if *r == PortRanges::full() {
        return "*".to_string();
    }
    r.ranges()
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(list: &[(u16, u16)]) -> PortRanges {
        PortRanges::from_ranges(list.to_vec())
    }

    #[test]
    fn ranges_merge_when_overlapping_or_adjacent_only() {
        assert_eq!(
            r(&[(90, 95), (80, 80), (81, 85), (84, 88), (97, 97)]).ranges(),
            [(80, 88), (90, 95), (97, 97)]
        );
        assert_eq!(r(&[(0, 65535), (5, 6)]), PortRanges::full());
    }

    #[test]
    fn intersection_and_difference_at_the_edges() {
        let a = r(&[(0, 10), (20, 30), (65000, 65535)]);
        let b = r(&[(5, 25), (30, 30), (65535, 65535)]);
        assert_eq!(
            a.intersect(&b).ranges(),
            [(5, 10), (20, 25), (30, 30), (65535, 65535)]
        );
        assert_eq!(a.minus(&b).ranges(), [(0, 4), (26, 29), (65000, 65534)]);
        assert_eq!(b.minus(&a).ranges(), [(11, 19)]);
        // Port 0 is a port: "all ports" minus 1-65535 leaves it.
        assert_eq!(
            PortRanges::full().minus(&r(&[(1, 65535)])).ranges(),
            [(0, 0)]
        );
        assert!(PortRanges::full().minus(&PortRanges::full()).is_empty());
        assert_eq!(r(&[(80, 80)]).minus(&r(&[(81, 81)])).ranges(), [(80, 80)]);
        // One hole splitting a range, and holes touching both ends.
        assert_eq!(r(&[(1, 9)]).minus(&r(&[(5, 5)])).ranges(), [(1, 4), (6, 9)]);
        assert!(r(&[(1, 9)]).minus(&r(&[(0, 4), (5, 12)])).is_empty());
    }

    /// Against sets of ports, on every pair of small random range lists.
    #[test]
    fn arithmetic_agrees_with_sets_of_ports() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as u16
        };
        for _ in 0..500 {
            let mut make = || {
                let ranges: Vec<(u16, u16)> = (0..next(4))
                    .map(|_| {
                        let lo = next(40);
                        (lo, lo + next(6))
                    })
                    .collect();
                let set: std::collections::BTreeSet<u16> =
                    ranges.iter().flat_map(|&(lo, hi)| lo..=hi).collect();
                (PortRanges::from_ranges(ranges), set)
            };
            let ((a, sa), (b, sb)) = (make(), make());
            let expand = |p: &PortRanges| -> std::collections::BTreeSet<u16> {
                p.ranges().iter().flat_map(|&(lo, hi)| lo..=hi).collect()
            };
            assert_eq!(expand(&a.intersect(&b)), &sa & &sb);
            assert_eq!(expand(&a.minus(&b)), &sa - &sb);
            assert_eq!(PortRanges::from_ranges(a.minus(&b).0.clone()), a.minus(&b));
        }
    }

    #[test]
    fn allowed_sets_and_their_labels() {
        let element = |proto, port| crate::plan::AddrProtoPort {
            addr: crate::plan::AddrRange {
                start: "198.18.0.1".parse().unwrap(),
                end: "198.18.0.1".parse().unwrap(),
            },
            proto,
            ports: (port, port),
        };
        let (a, b, c) = (element(6, 8080), element(17, 53), element(6, 53));
        let web = Allowed::from_accepts(&Accepts::Ports(vec![&[c, a][..], &[b][..]]));
        assert_eq!(web.label(), "53,8080/TCP, 53/UDP");
        let dns = Allowed::from_accepts(&Accepts::Ports(vec![&[c, b][..]]));
        assert_eq!(dns.label(), "53/TCP+UDP");
        assert_eq!(Allowed::everything().label(), "all");
        let no_icmp = Allowed::everything().minus(&Allowed {
            other: true,
            ..Allowed::none()
        });
        assert_eq!(no_icmp.label(), "*/TCP+UDP+SCTP");
        assert_eq!(Allowed::everything().minus(&no_icmp).label(), "other");
        assert!(Allowed::everything().allows(1, 0));
        assert!(!web.allows(1, 0));
        assert!(web.allows(6, 8080) && !web.allows(6, 8081) && !web.allows(132, 53));
        assert_eq!(web.flows(), 3);
        assert_eq!(Allowed::everything().flows(), 4);
        assert!(web.minus(&web).is_empty());
        assert_eq!(web.intersect(&dns), dns);
    }
}
