//! ctnetlink and sock_diag messages in plain Rust: the requests that dump, look up and
//! delete conntrack entries and destroy a local socket, and the conntrack entries read
//! back from the kernel's answers.
//!
//! Bytes only: which flows to cut is decided above (the daemon's `revoke`), and the
//! sockets are `flows`' ([`super::Channel`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Flow, LocalSocket, Tuple, L4};
use crate::reply;

pub(super) const NFNL_SUBSYS_CTNETLINK: u16 = 1;
pub(super) const IPCTNL_MSG_CT_NEW: u16 = 0;
pub(super) const IPCTNL_MSG_CT_GET: u16 = 1;
pub(super) const IPCTNL_MSG_CT_DELETE: u16 = 2;
/// `SOCK_DESTROY` of `NETLINK_SOCK_DIAG`.
pub(super) const SOCK_DESTROY: u16 = 21;

pub(super) const CTA_TUPLE_ORIG: u16 = 1;
pub(super) const CTA_TUPLE_REPLY: u16 = 2;
pub(super) const CTA_ID: u16 = 12;
pub(super) const CTA_ZONE: u16 = 18;
pub(super) const CTA_TUPLE_IP: u16 = 1;
pub(super) const CTA_TUPLE_PROTO: u16 = 2;
pub(super) const CTA_IP_V4_SRC: u16 = 1;
pub(super) const CTA_IP_V4_DST: u16 = 2;
pub(super) const CTA_IP_V6_SRC: u16 = 3;
pub(super) const CTA_IP_V6_DST: u16 = 4;
pub(super) const CTA_PROTO_NUM: u16 = 1;
pub(super) const CTA_PROTO_SRC_PORT: u16 = 2;
pub(super) const CTA_PROTO_DST_PORT: u16 = 3;
pub(super) const CTA_PROTO_ICMP_ID: u16 = 4;
pub(super) const CTA_PROTO_ICMP_TYPE: u16 = 5;
pub(super) const CTA_PROTO_ICMP_CODE: u16 = 6;
pub(super) const CTA_PROTO_ICMPV6_ID: u16 = 7;
pub(super) const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
pub(super) const CTA_PROTO_ICMPV6_CODE: u16 = 9;

pub(super) const NLA_F_NESTED: u16 = 0x8000;
pub(super) const NLA_TYPE_MASK: u16 = 0x3fff;
pub(super) const HDRLEN: usize = 16;
pub(super) const NFGENMSG_LEN: usize = 4;
pub(super) const IPPROTO_TCP: u8 = 6;
pub(super) const IPPROTO_ICMP: u8 = 1;
pub(super) const IPPROTO_ICMPV6: u8 = 58;
/// `INET_DIAG_NOCOOKIE`: find the socket by its addresses alone.
pub(super) const INET_DIAG_NOCOOKIE: u32 = !0;

// ------------------------------------------------------------------- encoding ----

/// A netlink message under construction.
pub(super) struct Msg(pub(super) Vec<u8>);

impl Msg {
    pub(super) fn new(kind: u16, flags: u16, seq: u32) -> Msg {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        Msg(b)
    }

    pub(super) fn put(&mut self, kind: u16, payload: &[u8]) {
        let len = u16::try_from(4 + payload.len()).expect("a small attribute");
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
    }

    pub(super) fn nest(&mut self, kind: u16, body: impl FnOnce(&mut Msg)) {
        let at = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self.0
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        body(self);
        let len = u16::try_from(self.0.len() - at).expect("a small nest");
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.0.len()).expect("a small message");
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

pub(super) fn family_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

/// A ctnetlink message: header and `nfgenmsg` (family, version 0, resource id 0).
pub(super) fn ct_msg(kind: u16, flags: u16, seq: u32, family: u8) -> Msg {
    let mut m = Msg::new((NFNL_SUBSYS_CTNETLINK << 8) | kind, flags, seq);
    m.0.extend_from_slice(&[family, 0, 0, 0]);
    m
}

/// The request for a dump of every conntrack entry of one family.
pub(crate) fn dump_request(seq: u32, family: u8) -> Vec<u8> {
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    ct_msg(IPCTNL_MSG_CT_GET, flags, seq, family).finish()
}

/// The request for this entry (by its original tuple and zone): the answer carries
/// its id.
pub(crate) fn get_request(seq: u32, flow: &Flow) -> Vec<u8> {
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    let mut m = ct_msg(IPCTNL_MSG_CT_GET, flags, seq, family_of(&flow.orig.src));
    put_orig(&mut m, flow);
    m.put(CTA_ZONE, &flow.zone.to_be_bytes());
    m.finish()
}

/// The request that deletes exactly this entry: its original tuple, zone and id. (A
/// delete without a tuple would flush every entry of the family: there is always one.)
pub(crate) fn delete_request(seq: u32, flow: &Flow) -> Vec<u8> {
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    let mut m = ct_msg(IPCTNL_MSG_CT_DELETE, flags, seq, family_of(&flow.orig.src));
    put_orig(&mut m, flow);
    m.put(CTA_ZONE, &flow.zone.to_be_bytes());
    m.put(CTA_ID, &flow.id.to_be_bytes());
    m.finish()
}

/// The original tuple, as ctnetlink reads one.
pub(super) fn put_orig(m: &mut Msg, flow: &Flow) {
    let t = flow.orig;
    m.nest(CTA_TUPLE_ORIG, |m| {
        m.nest(CTA_TUPLE_IP, |m| match (t.src, t.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                m.put(CTA_IP_V4_SRC, &s.octets());
                m.put(CTA_IP_V4_DST, &d.octets());
            }
            (s, d) => {
                m.put(CTA_IP_V6_SRC, &v6(s).octets());
                m.put(CTA_IP_V6_DST, &v6(d).octets());
            }
        });
        m.nest(CTA_TUPLE_PROTO, |m| {
            m.put(CTA_PROTO_NUM, &[flow.proto]);
            match t.l4 {
                L4::Ports { src, dst } => {
                    m.put(CTA_PROTO_SRC_PORT, &src.to_be_bytes());
                    m.put(CTA_PROTO_DST_PORT, &dst.to_be_bytes());
                }
                L4::Icmp { id, kind, code } => {
                    let (a_id, a_type, a_code) = if flow.proto == IPPROTO_ICMPV6 {
                        (
                            CTA_PROTO_ICMPV6_ID,
                            CTA_PROTO_ICMPV6_TYPE,
                            CTA_PROTO_ICMPV6_CODE,
                        )
                    } else {
                        (CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE)
                    };
                    m.put(a_id, &id.to_be_bytes());
                    m.put(a_type, &[kind]);
                    m.put(a_code, &[code]);
                }
                L4::None => {}
            }
        });
    });
}

pub(super) fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

/// The `SOCK_DESTROY` request for a local TCP socket (`inet_diag_req_v2` with its exact
/// addresses and ports, any interface, no cookie).
pub(crate) fn destroy_request(seq: u32, s: &LocalSocket) -> Vec<u8> {
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    let mut m = Msg::new(SOCK_DESTROY, flags, seq);
    m.0.push(family_of(&s.local));
    m.0.push(IPPROTO_TCP);
    m.0.push(0); // idiag_ext
    m.0.push(0); // pad
    m.0.extend_from_slice(&u32::MAX.to_ne_bytes()); // idiag_states: any
    m.0.extend_from_slice(&s.local_port.to_be_bytes());
    m.0.extend_from_slice(&s.remote_port.to_be_bytes());
    for ip in [s.local, s.remote] {
        match ip {
            IpAddr::V4(a) => {
                m.0.extend_from_slice(&a.octets());
                m.0.extend_from_slice(&[0; 12]);
            }
            IpAddr::V6(a) => m.0.extend_from_slice(&a.octets()),
        }
    }
    m.0.extend_from_slice(&0u32.to_ne_bytes()); // idiag_if: any
    m.0.extend_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    m.0.extend_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    m.finish()
}

// -------------------------------------------------------------------- parsing ----

pub(super) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The attributes of `b`: (type without flags, payload).
pub(super) fn attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, at)?);
        let kind = u16_at(b, at + 2)?;
        if len < 4 || at + len > b.len() {
            return None;
        }
        let value = &b[at + 4..at + len];
        at += len.next_multiple_of(4);
        Some((kind & NLA_TYPE_MASK, value))
    })
}

pub(super) fn be16(v: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(v.get(..2)?.try_into().ok()?))
}

pub(super) fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

pub(super) fn parse_tuple(b: &[u8]) -> Option<(u8, Tuple)> {
    let (mut src, mut dst, mut proto) = (None, None, None);
    let (mut sport, mut dport) = (None, None);
    let (mut icmp_id, mut icmp_type, mut icmp_code) = (None, None, None);
    for (kind, v) in attrs(b) {
        match kind {
            CTA_TUPLE_IP => {
                for (k, a) in attrs(v) {
                    let addr = match a.len() {
                        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(a).ok()?)),
                        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(a).ok()?)),
                        _ => continue,
                    };
                    match k {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = Some(addr),
                        CTA_IP_V4_DST | CTA_IP_V6_DST => dst = Some(addr),
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (k, a) in attrs(v) {
                    match k {
                        CTA_PROTO_NUM => proto = a.first().copied(),
                        CTA_PROTO_SRC_PORT => sport = be16(a),
                        CTA_PROTO_DST_PORT => dport = be16(a),
                        CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID => icmp_id = be16(a),
                        CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE => {
                            icmp_type = a.first().copied()
                        }
                        CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE => {
                            icmp_code = a.first().copied()
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let proto = proto?;
    let l4 = match (sport, dport, icmp_id, icmp_type, icmp_code) {
        (Some(src), Some(dst), ..) => L4::Ports { src, dst },
        (_, _, Some(id), Some(kind), Some(code))
            if proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6 =>
        {
            L4::Icmp { id, kind, code }
        }
        _ => L4::None,
    };
    let (src, dst) = (src?, dst?);
    (src.is_ipv4() == dst.is_ipv4()).then_some((proto, Tuple { src, dst, l4 }))
}

/// Reads one conntrack entry of a dump (`IPCTNL_MSG_CT_NEW`, header included); `None`
/// for other messages and entries without both tuples or an id.
pub(crate) fn parse_flow(msg: &[u8]) -> Option<Flow> {
    let h = reply::header(msg)?;
    if h.kind != (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW {
        return None;
    }
    let body = msg.get(HDRLEN + NFGENMSG_LEN..(h.len as usize).min(msg.len()))?;
    let (mut orig, mut rep, mut id, mut zone) = (None, None, None, 0);
    for (kind, v) in attrs(body) {
        match kind {
            CTA_TUPLE_ORIG => orig = parse_tuple(v),
            CTA_TUPLE_REPLY => rep = parse_tuple(v),
            CTA_ID => id = be32(v),
            CTA_ZONE => zone = be16(v).unwrap_or(0),
            _ => {}
        }
    }
    let ((proto, orig), (_, reply)) = (orig?, rep?);
    Some(Flow {
        proto,
        orig,
        reply,
        zone,
        id: id?,
    })
}
