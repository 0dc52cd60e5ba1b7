//! Established connections, as the kernel's connection tracker holds them, and cutting
//! chosen ones: the kernel side of revocation (the daemon's `revoke` decides which; this
//! module must not).
//!
//! Conntrack entries are dumped and deleted over ctnetlink (`NFNL_SUBSYS_CTNETLINK` on a
//! `NETLINK_NETFILTER` socket); a delete names the entry by its exact original tuple,
//! zone and id (`CTA_ID`), so a newer entry that happens to have the same tuple is left
//! alone. Before a TCP entry is deleted, the local socket of the flow, if this host has
//! one, is destroyed (`SOCK_DESTROY` on a `NETLINK_SOCK_DIAG` socket): the kernel then
//! sends the peer a reset, while the entry still exists, so the reset passes as part of
//! the connection. Without that, the kernel's loose TCP pick-up
//! (`net.netfilter.nf_conntrack_tcp_loose`, on by default) would make a new entry of the
//! next mid-stream segment; when that segment is the local side's and its egress is
//! open, the new entry runs from the local side, the peer's segments pass as its
//! replies, and the stream goes on.
//!
//! A socket is found by its addresses and ports alone, so it is destroyed only when a
//! look-up of the entry right before still gives the id judged.
//!
//! Messages are built and read here in plain Rust; the sockets are [`Socket`]s.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

mod wire;

use super::ffi::{Aligned, Socket};
use super::{reply, KernelError};
use wire::*;

/// Messages sent in one datagram; each gets an acknowledgement.
const CHUNK: usize = 256;
/// How long one answer may take; the kernel answers within the `sendto`.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// One direction of a connection: addresses and what identifies it at layer 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address, same family.
    pub dst: IpAddr,
    /// Ports, ICMP identity, or nothing.
    pub l4: L4,
}

/// The layer-4 part of a tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum L4 {
    /// TCP, UDP, SCTP, …: source and destination port.
    Ports {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// ICMP or ICMPv6.
    Icmp {
        /// Identifier.
        id: u16,
        /// Type.
        kind: u8,
        /// Code.
        code: u8,
    },
    /// A protocol conntrack tracks by addresses alone.
    None,
}

impl L4 {
    /// The destination port, if the protocol has ports.
    pub fn dst_port(&self) -> Option<u16> {
        match self {
            L4::Ports { dst, .. } => Some(*dst),
            _ => None,
        }
    }

    /// The source port, if the protocol has ports.
    pub fn src_port(&self) -> Option<u16> {
        match self {
            L4::Ports { src, .. } => Some(*src),
            _ => None,
        }
    }
}

/// A conntrack entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Flow {
    /// IP protocol number.
    pub proto: u8,
    /// As the first packet went.
    pub orig: Tuple,
    /// As its replies go (differs from the reverse of `orig` where NAT is done).
    pub reply: Tuple,
    /// Conntrack zone (0 unless something sets one).
    pub zone: u16,
    /// The kernel's id of the entry: another entry of the same tuple has another id.
    pub id: u32,
}

impl Flow {
    /// A flow of `proto` from `src`:`sport` to `dst`:`dport` without NAT (its reply
    /// tuple is the original reversed), in zone 0, with conntrack id `id`.
    pub fn ports(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16, id: u32) -> Flow {
        let l4 = |src, dst| L4::Ports { src, dst };
        Flow {
            proto,
            orig: Tuple {
                src,
                dst,
                l4: l4(sport, dport),
            },
            reply: Tuple {
                src: dst,
                dst: src,
                l4: l4(dport, sport),
            },
            zone: 0,
            id,
        }
    }

    /// Whether its addresses are IPv6.
    pub fn is_v6(&self) -> bool {
        self.orig.src.is_ipv6()
    }
}

/// Which end of a flow is this host's own socket, if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum LocalSide {
    /// This host opened the connection (its output hook saw the first packet).
    Initiator,
    /// The peer opened it, to this host (its input hook saw the first packet).
    Responder,
}

/// A flow to cut, and which end of it is local.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FlowCut {
    /// The conntrack entry.
    pub flow: Flow,
    /// Its local end.
    pub local: LocalSide,
}

impl FlowCut {
    /// The local TCP socket of the flow as that socket sees it (addresses after any
    /// NAT on the way in, before any on the way out); `None` for other protocols.
    pub fn socket(&self) -> Option<LocalSocket> {
        if self.flow.proto != IPPROTO_TCP {
            return None;
        }
        let t = match self.local {
            // The socket sent the original direction before any NAT: the original
            // tuple, local end first.
            LocalSide::Initiator => self.flow.orig,
            // The socket got the original direction after any NAT, which is the reply
            // tuple reversed: the local end is the reply's source.
            LocalSide::Responder => self.flow.reply,
        };
        let L4::Ports { src, dst } = t.l4 else {
            return None;
        };
        Some(LocalSocket {
            local: t.src,
            local_port: src,
            remote: t.dst,
            remote_port: dst,
        })
    }
}

/// What a cut did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CutStats {
    /// Conntrack entries deleted.
    pub deleted: usize,
    /// Entries that were gone already (ended, or replaced by a newer one of the same
    /// tuple, which is left alone).
    pub gone: usize,
    /// Entries whose deletion failed otherwise.
    pub failed: usize,
    /// Local TCP sockets destroyed (their peers were sent a reset).
    pub sockets_destroyed: usize,
    /// TCP flows whose entry was still there but with no local socket to destroy
    /// (forwarded to a local address by NAT, say, or closed meanwhile). No socket is
    /// looked for when the entry is gone or is a newer one of the same tuple.
    pub sockets_not_found: usize,
    /// Whether this kernel cannot destroy sockets (`CONFIG_INET_DIAG_DESTROY` off).
    pub destroy_unsupported: bool,
    /// The first error other than "gone", for the log.
    pub first_error: Option<String>,
}

/// A local TCP socket to destroy: its own address and port, and its peer's, as the
/// socket sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalSocket {
    /// The socket's own address.
    pub local: IpAddr,
    /// Its port.
    pub local_port: u16,
    /// The peer's address.
    pub remote: IpAddr,
    /// The peer's port.
    pub remote_port: u16,
}

// ------------------------------------------------------------------ the kernel ----

/// A socket and the next sequence number.
struct Channel {
    sock: Socket,
    buf: Aligned,
    seq: u32,
    what: &'static str,
}

impl Channel {
    fn open(bus: mnl::Bus, what: &'static str) -> Result<Channel, KernelError> {
        let sock = Socket::open_bus(bus).map_err(KernelError::io(format!("{what} socket")))?;
        Ok(Channel {
            sock,
            buf: Aligned::new(64 * 1024),
            seq: 0,
            what,
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn io(&self) -> impl FnOnce(io::Error) -> KernelError {
        KernelError::io(self.what)
    }

    /// Receives one datagram; a timeout is an error.
    fn recv(&mut self) -> Result<usize, KernelError> {
        let what = self.what;
        self.sock
            .recv(&mut self.buf, Some(ANSWER_WAIT))
            .map_err(KernelError::io(what))?
            .ok_or_else(|| KernelError::Io {
                op: what.into(),
                err: io::Error::from(io::ErrorKind::TimedOut),
            })
    }

    /// Dumps: sends `request` (with sequence number `seq`) and hands each answer to
    /// `f` until the dump ends.
    fn dump(
        &mut self,
        seq: u32,
        request: &[u8],
        mut f: impl FnMut(&[u8]),
    ) -> Result<(), KernelError> {
        self.sock.send(request).map_err(self.io())?;
        let portid = self.sock.portid();
        loop {
            let n = self.recv()?;
            for (h, msg) in reply::messages(self.buf.bytes(n)) {
                if h.seq != seq || (h.pid != portid && h.pid != 0) {
                    continue;
                }
                match h.kind {
                    reply::NLMSG_DONE => return Ok(()),
                    reply::NLMSG_ERROR => {
                        let ack = reply::parse_ack(msg).ok_or_else(|| {
                            KernelError::Protocol("a truncated acknowledgement".into())
                        })?;
                        if ack.errno != 0 {
                            return Err(KernelError::Io {
                                op: self.what.into(),
                                err: io::Error::from_raw_os_error(ack.errno),
                            });
                        }
                        return Ok(());
                    }
                    _ => f(msg),
                }
            }
        }
    }

    /// Sends requests (each asking for an acknowledgement), up to [`CHUNK`] per
    /// datagram, and returns each one's errno (0: done), in order.
    fn each(&mut self, requests: impl Iterator<Item = Vec<u8>>) -> Result<Vec<i32>, KernelError> {
        self.each_with(requests, |_, _| {})
    }

    /// Like [`each`](Channel::each), handing every answer that is not an
    /// acknowledgement to `f` with the index of its request.
    fn each_with(
        &mut self,
        requests: impl Iterator<Item = Vec<u8>>,
        mut f: impl FnMut(usize, &[u8]),
    ) -> Result<Vec<i32>, KernelError> {
        let mut requests = requests.peekable();
        let mut out = Vec::new();
        while requests.peek().is_some() {
            let mut datagram = Vec::new();
            let mut seqs = Vec::new();
            for mut r in requests.by_ref().take(CHUNK) {
                let seq = self.next_seq();
                r[8..12].copy_from_slice(&seq.to_ne_bytes());
                datagram.extend_from_slice(&r);
                seqs.push(seq);
            }
            self.sock
                .size_buffers(datagram.len(), seqs.len())
                .map_err(self.io())?;
            self.sock.send(&datagram).map_err(self.io())?;
            let mut answers: Vec<Option<i32>> = vec![None; seqs.len()];
            let mut left = seqs.len();
            while left > 0 {
                let n = self.recv()?;
                for (h, msg) in reply::messages(self.buf.bytes(n)) {
                    if h.kind != reply::NLMSG_ERROR {
                        if let Some(i) = seqs.iter().position(|s| *s == h.seq) {
                            f(out.len() + i, msg);
                        }
                        continue;
                    }
                    let Some(ack) = reply::parse_ack(msg) else {
                        continue;
                    };
                    if let Some(i) = seqs.iter().position(|s| *s == ack.seq) {
                        if answers[i].is_none() {
                            answers[i] = Some(ack.errno);
                            left -= 1;
                        }
                    }
                }
            }
            out.extend(answers.into_iter().map(|a| a.unwrap_or(0)));
        }
        Ok(out)
    }
}

/// Every conntrack entry of this network namespace, IPv4 and IPv6.
pub(crate) fn dump() -> Result<Vec<Flow>, KernelError> {
    let mut ch = Channel::open(mnl::Bus::Netfilter, "conntrack dump")?;
    let mut flows = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let seq = ch.next_seq();
        let req = dump_request(seq, family);
        ch.dump(seq, &req, |msg| flows.extend(parse_flow(msg)))?;
    }
    Ok(flows)
}

/// Destroys the local TCP sockets of the flows, then deletes the flows' entries (see
/// the module doc).
pub(crate) fn cut(cuts: &[FlowCut]) -> Result<CutStats, KernelError> {
    let mut stats = CutStats::default();
    let mut ct = Channel::open(mnl::Bus::Netfilter, "conntrack delete")?;
    // A socket is found by its addresses and ports alone: destroy it only while the
    // entry it belongs to is still the one judged (same id), not a newer connection
    // that has the same ports by now.
    let tcp: Vec<&FlowCut> = cuts.iter().filter(|c| c.socket().is_some()).collect();
    let mut current = vec![false; tcp.len()];
    ct.each_with(tcp.iter().map(|c| get_request(0, &c.flow)), |i, msg| {
        if let Some(found) = parse_flow(msg) {
            current[i] = found.id == tcp[i].flow.id;
        }
    })?;
    let sockets: Vec<LocalSocket> = tcp
        .iter()
        .zip(&current)
        .filter(|(_, still)| **still)
        .filter_map(|(c, _)| c.socket())
        .collect();
    if !sockets.is_empty() {
        let mut diag = Channel::open(mnl::Bus::SockDiag, "socket destroy")?;
        let answers = diag.each(sockets.iter().map(|s| destroy_request(0, s)))?;
        for errno in answers {
            match errno {
                0 => stats.sockets_destroyed += 1,
                libc::ENOENT => stats.sockets_not_found += 1,
                libc::EOPNOTSUPP => stats.destroy_unsupported = true,
                e => {
                    stats.sockets_not_found += 1;
                    stats.first_error.get_or_insert_with(|| {
                        format!("destroying a socket: {}", io::Error::from_raw_os_error(e))
                    });
                }
            }
        }
    }
    let answers = ct.each(cuts.iter().map(|c| delete_request(0, &c.flow)))?;
    for (flow, errno) in cuts.iter().map(|c| &c.flow).zip(answers) {
        match errno {
            0 => stats.deleted += 1,
            libc::ENOENT => stats.gone += 1,
            e => {
                stats.failed += 1;
                stats.first_error.get_or_insert_with(|| {
                    format!(
                        "deleting the conntrack entry {} -> {} (id {}): {}",
                        flow.orig.src,
                        flow.orig.dst,
                        flow.id,
                        io::Error::from_raw_os_error(e)
                    )
                });
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(proto: u8, l4: L4, reply_l4: L4) -> Flow {
        Flow {
            proto,
            orig: Tuple {
                src: "198.18.0.2".parse().unwrap(),
                dst: "198.18.0.1".parse().unwrap(),
                l4,
            },
            reply: Tuple {
                src: "198.18.0.1".parse().unwrap(),
                dst: "198.18.0.2".parse().unwrap(),
                l4: reply_l4,
            },
            zone: 3,
            id: 0xdead_beef,
        }
    }

    /// A dump answer for `f`, as the kernel writes one: the delete request's tuple is
    /// the same attribute layout, so the request is turned into an answer.
    fn as_dump_answer(f: &Flow) -> Vec<u8> {
        let mut m = ct_msg(IPCTNL_MSG_CT_NEW, 0, 7, family_of(&f.orig.src));
        let req = delete_request(1, f);
        // The request's attributes: the original tuple, zone, id.
        let body = &req[HDRLEN + NFGENMSG_LEN..];
        let (_, orig) = attrs(body).next().unwrap();
        m.put(CTA_TUPLE_ORIG | NLA_F_NESTED, orig);
        let mut rev = *f;
        rev.orig = f.reply;
        let req = delete_request(1, &rev);
        let (_, reply_tuple) = attrs(&req[HDRLEN + NFGENMSG_LEN..]).next().unwrap();
        m.put(CTA_TUPLE_REPLY | NLA_F_NESTED, reply_tuple);
        m.put(3, &0x0000_0008u32.to_be_bytes()); // CTA_STATUS, ignored
        m.put(CTA_ZONE, &f.zone.to_be_bytes());
        m.put(CTA_ID, &f.id.to_be_bytes());
        m.finish()
    }

    #[test]
    fn entries_read_back_as_written_for_every_layer_4_shape() {
        let tcp = flow(
            6,
            L4::Ports {
                src: 40000,
                dst: 80,
            },
            L4::Ports {
                src: 8080,
                dst: 40000,
            },
        );
        let icmp = flow(
            1,
            L4::Icmp {
                id: 9,
                kind: 8,
                code: 0,
            },
            L4::Icmp {
                id: 9,
                kind: 0,
                code: 0,
            },
        );
        let gre = flow(47, L4::None, L4::None);
        let mut v6 = flow(
            58,
            L4::Icmp {
                id: 1,
                kind: 128,
                code: 0,
            },
            L4::Icmp {
                id: 1,
                kind: 129,
                code: 0,
            },
        );
        v6.orig.src = "2001:db8::2".parse().unwrap();
        v6.orig.dst = "2001:db8::1".parse().unwrap();
        v6.reply.src = v6.orig.dst;
        v6.reply.dst = v6.orig.src;
        for f in [tcp, icmp, gre, v6] {
            assert_eq!(parse_flow(&as_dump_answer(&f)), Some(f), "{f:?}");
        }
    }

    #[test]
    fn a_delete_names_the_tuple_zone_and_id_and_never_goes_without_a_tuple() {
        let f = flow(
            17,
            L4::Ports { src: 5353, dst: 53 },
            L4::Ports { src: 53, dst: 5353 },
        );
        let req = delete_request(42, &f);
        let h = reply::header(&req).unwrap();
        assert_eq!(h.len as usize, req.len());
        assert_eq!(h.kind, 0x0102);
        assert_eq!(h.seq, 42);
        assert_eq!(h.flags, (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16);
        assert_eq!(req[HDRLEN], libc::AF_INET as u8);
        let kinds: Vec<u16> = attrs(&req[HDRLEN + NFGENMSG_LEN..])
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kinds, vec![CTA_TUPLE_ORIG, CTA_ZONE, CTA_ID]);
        let (_, orig) = attrs(&req[HDRLEN + NFGENMSG_LEN..]).next().unwrap();
        assert_eq!(parse_tuple(orig), Some((17, f.orig)));
        let id = attrs(&req[HDRLEN + NFGENMSG_LEN..]).nth(2).unwrap().1;
        assert_eq!(id, 0xdead_beef_u32.to_be_bytes());
    }

    #[test]
    fn a_socket_destroy_request_is_an_exact_inet_diag_req_v2() {
        let s = LocalSocket {
            local: "198.18.0.1".parse().unwrap(),
            local_port: 8080,
            remote: "198.18.0.2".parse().unwrap(),
            remote_port: 40000,
        };
        let req = destroy_request(5, &s);
        // Header, then inet_diag_req_v2: 8 bytes, the 48-byte socket id.
        assert_eq!(req.len(), HDRLEN + 56);
        let h = reply::header(&req).unwrap();
        assert_eq!((h.kind, h.seq), (SOCK_DESTROY, 5));
        let body = &req[HDRLEN..];
        assert_eq!(&body[..4], &[libc::AF_INET as u8, 6, 0, 0]);
        assert_eq!(&body[8..12], &[0x1f, 0x90, 0x9c, 0x40]);
        assert_eq!(&body[12..16], &[198, 18, 0, 1]);
        assert_eq!(&body[28..32], &[198, 18, 0, 2]);
        assert_eq!(&body[48..56], &[0xff; 8]);
    }
}
