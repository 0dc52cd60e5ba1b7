//! The packets that netpol's `log group G` statements hand to userspace: an NFLOG
//! group of this network namespace, bound on a netlink socket ([`Nflog`]), and each
//! logged packet read into its prefix and the addresses, protocol and ports of its
//! headers ([`LoggedPacket`]).
//!
//! Modelled on [`monitor`](crate::monitor): a socket opened once, read without waiting
//! (everything queued), [`Logged::Lost`] when the kernel had to drop what the socket
//! could not hold. The kernel copies the first [`COPY_RANGE`] bytes of each packet,
//! enough for an IPv6 header, simple extension headers and the ports of TCP, UDP and
//! SCTP. Everything read is parsed in safe code, every length checked against the
//! bytes that hold it: a garbled message is skipped (and counted), never a panic.
//!
//! Only reads and describes: what a logged packet means (which endpoint, which
//! policies) is decided above.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use super::ffi::{Aligned, Socket};
use super::reply::{self, attrs, HDRLEN, NLMSG_ERROR};
use super::KernelError;

/// `NFNL_SUBSYS_ULOG`: the high byte of an NFLOG message type.
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;

/// Bytes of each packet the kernel copies: an IPv6 header (40), a few extension
/// headers, and the ports of the transport header.
pub const COPY_RANGE: u32 = 128;

/// Logged packets queued for the reader. The table's rate limit keeps the flow far
/// below this; a burst beyond it is [`Logged::Lost`].
const RECEIVE_BUFFER: i32 = 4 << 20;

/// How long the kernel may take to acknowledge the binding.
const ACK_WAIT: Duration = Duration::from_secs(2);

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_SCTP: u8 = 132;

/// What a read of the NFLOG group gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Logged {
    /// A packet a log statement of the group logged.
    Packet(LoggedPacket),
    /// The kernel dropped logged packets (the socket's buffer was full): how many is
    /// unknown.
    Lost,
}

/// A logged packet: the log statement's prefix and the packet's headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedPacket {
    /// The log statement's prefix (`netpol deny in`); empty when it had none.
    pub prefix: String,
    /// IP protocol number of the transport header (after IPv6 extension headers,
    /// where they could be walked; else the last next-header value read).
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Source port (TCP, UDP, SCTP); 0 for other protocols, a non-first fragment, or
    /// a transport header beyond the bytes copied.
    pub src_port: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port, as `src_port`.
    pub dst_port: u16,
}

/// The socket bound to one NFLOG group.
pub struct Nflog {
    sock: Socket,
    buf: Aligned,
    group: u16,
    /// Read while waiting for the binding's acknowledgement.
    early: Vec<Logged>,
    /// Messages of the group that could not be read as a packet.
    unreadable: u64,
}

impl std::fmt::Debug for Nflog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nflog")
            .field("group", &self.group)
            .field("unreadable", &self.unreadable)
            .finish()
    }
}

impl Nflog {
    /// Opens a netlink socket and binds NFLOG group `group` of this network namespace
    /// to it, copying the first [`COPY_RANGE`] bytes of each packet, each packet sent
    /// at once (queue threshold 1). A group has one listener: binding one that another
    /// socket holds fails (`EPERM`, as without `CAP_NET_ADMIN`).
    pub fn open(group: u16) -> Result<Nflog, KernelError> {
        Nflog::with_buffer(group, RECEIVE_BUFFER)
    }

    /// [`open`](Self::open) with a receive buffer of `bytes` (tests make it overflow).
    pub(crate) fn with_buffer(group: u16, bytes: i32) -> Result<Nflog, KernelError> {
        let sock = Socket::open().map_err(KernelError::io("socket"))?;
        sock.receive_buffer(bytes)
            .map_err(KernelError::io("sizing the NFLOG socket's buffer"))?;
        let mut nflog = Nflog {
            sock,
            buf: Aligned::new(64 * 1024),
            group,
            early: Vec::new(),
            unreadable: 0,
        };
        nflog.bind()?;
        Ok(nflog)
    }

    /// Sends the binding and waits for its acknowledgement; packets that come first
    /// are kept for the first [`read`](Self::read).
    fn bind(&mut self) -> Result<(), KernelError> {
        const SEQ: u32 = 1;
        let op = format!("binding NFLOG group {}", self.group);
        self.sock
            .send(&config_request(self.group, SEQ))
            .map_err(KernelError::io(op.clone()))?;
        let deadline = Instant::now() + ACK_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(KernelError::Protocol(format!(
                    "no answer to {op} within {ACK_WAIT:?}"
                )));
            }
            let n = match self.sock.recv(&mut self.buf, Some(left)) {
                Ok(Some(n)) => n,
                Ok(None) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.early.push(Logged::Lost);
                    continue;
                }
                Err(e) => return Err(KernelError::io(op)(e)),
            };
            let mut acked = None;
            for (h, msg) in reply::messages(self.buf.bytes(n)) {
                if h.kind == NLMSG_ERROR {
                    if let Some(ack) = reply::parse_ack(msg).filter(|a| a.seq == SEQ) {
                        acked = Some(ack);
                    }
                } else if let Some(logged) = packet_of(h.kind, msg, &mut self.unreadable) {
                    self.early.push(logged);
                }
            }
            match acked {
                None => continue,
                Some(ack) if ack.errno == 0 => return Ok(()),
                Some(ack) => {
                    let err = std::io::Error::from_raw_os_error(ack.errno);
                    // The kernel's answer when another socket holds the group.
                    let hint = if ack.errno == libc::EPERM {
                        " (another socket of this network namespace listens on it, or \
                         CAP_NET_ADMIN is missing)"
                    } else {
                        ""
                    };
                    return Err(KernelError::Io {
                        op: format!("{op}{hint}"),
                        err,
                    });
                }
            }
        }
    }

    /// The NFLOG group it listens on.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// Messages of the group read so far that were not a readable IPv4 or IPv6 packet
    /// (skipped).
    pub fn unreadable(&self) -> u64 {
        self.unreadable
    }

    /// This socket, to wait on with tokio (`readable_mut`, then [`read`](Self::read)).
    pub fn into_async(self) -> std::io::Result<tokio::io::unix::AsyncFd<Nflog>> {
        super::ffi::readable_nflog(self)
    }

    /// Everything queued, without waiting.
    pub fn read(&mut self) -> Result<Vec<Logged>, KernelError> {
        let mut logged = std::mem::take(&mut self.early);
        loop {
            let n = match self.sock.recv(&mut self.buf, None) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(logged),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    logged.push(Logged::Lost);
                    continue;
                }
                Err(e) => return Err(KernelError::io("reading NFLOG")(e)),
            };
            for (h, msg) in reply::messages(self.buf.bytes(n)) {
                if let Some(l) = packet_of(h.kind, msg, &mut self.unreadable) {
                    logged.push(l);
                }
            }
        }
    }
}

impl AsRawFd for Nflog {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw_fd()
    }
}

/// `NFULNL_MSG_CONFIG` for `group`: bind it, copy packets (first [`COPY_RANGE`]
/// bytes), queue threshold 1; acknowledged.
fn config_request(group: u16, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&(NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG).to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, the group (big endian).
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&group.to_be_bytes());
    let mut put = |kind: u16, value: &[u8]| {
        let len = u16::try_from(4 + value.len()).expect("a small attribute");
        b.extend_from_slice(&len.to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(value);
        b.resize(b.len().next_multiple_of(4), 0);
    };
    put(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]);
    // struct nfulnl_msg_config_mode (packed): copy_range (be32), copy_mode, padding.
    let mut mode = COPY_RANGE.to_be_bytes().to_vec();
    mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
    put(NFULA_CFG_MODE, &mode);
    put(NFULA_CFG_QTHRESH, &1u32.to_be_bytes());
    let len = u32::try_from(b.len()).expect("a small message");
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b
}

/// An `NFULNL_MSG_PACKET` message as the kernel sends it (header, a hardware-header
/// attribute, then the prefix and the payload when given), for tests and the fuzz
/// target.
#[cfg(any(test, feature = "test-support"))]
pub fn message(prefix: Option<&[u8]>, payload: Option<&[u8]>) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&(NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET).to_ne_bytes());
    b.extend_from_slice(&0u16.to_ne_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[10, 0, 0, 7]);
    let mut put = |kind: u16, value: &[u8]| {
        b.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(value);
        b.resize(b.len().next_multiple_of(4), 0);
    };
    put(1, &[0x86, 0xdd, 3, 0]);
    if let Some(p) = prefix {
        put(NFULA_PREFIX, p);
    }
    if let Some(p) = payload {
        put(NFULA_PAYLOAD, p);
    }
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b
}

/// A message of type `kind` read: `None` when it is no NFLOG packet; an unreadable
/// packet is counted in `unreadable` and skipped.
fn packet_of(kind: u16, msg: &[u8], unreadable: &mut u64) -> Option<Logged> {
    if kind != (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET) {
        return None;
    }
    match parse_packet(msg) {
        Some(p) => Some(Logged::Packet(p)),
        None => {
            *unreadable += 1;
            None
        }
    }
}

/// An `NFULNL_MSG_PACKET` message (netlink header included): what it says of the
/// packet, or `None` when it cannot be read. Public for the fuzz target.
pub fn parse_packet(msg: &[u8]) -> Option<LoggedPacket> {
    let end = (reply::header(msg)?.len as usize).min(msg.len());
    let mut prefix = String::new();
    let mut payload = None;
    for (t, at, len) in attrs(msg, HDRLEN + 4, end) {
        let value = msg.get(at + 4..at + len)?;
        match t {
            NFULA_PREFIX => {
                let text = value.split(|b| *b == 0).next().unwrap_or_default();
                prefix = String::from_utf8_lossy(text).into_owned();
            }
            NFULA_PAYLOAD => payload = Some(value),
            _ => {}
        }
    }
    let headers = parse_headers(payload?)?;
    Some(LoggedPacket {
        prefix,
        protocol: headers.protocol,
        src: headers.src,
        src_port: headers.src_port,
        dst: headers.dst,
        dst_port: headers.dst_port,
    })
}

/// What the headers of a packet say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Headers {
    pub protocol: u8,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
}

/// The headers of `p`, an IPv4 or IPv6 packet from its network header on (maybe cut
/// short); `None` when it is neither or its IP header is incomplete.
pub(crate) fn parse_headers(p: &[u8]) -> Option<Headers> {
    match p.first()? >> 4 {
        4 => parse_v4(p),
        6 => parse_v6(p),
        _ => None,
    }
}

fn parse_v4(p: &[u8]) -> Option<Headers> {
    let ihl = usize::from(p.first()? & 0x0f) * 4;
    if ihl < 20 || p.len() < ihl {
        return None;
    }
    let protocol = p[9];
    let octets = |at: usize| -> Option<[u8; 4]> { p.get(at..at + 4)?.try_into().ok() };
    let src = IpAddr::V4(Ipv4Addr::from(octets(12)?));
    let dst = IpAddr::V4(Ipv4Addr::from(octets(16)?));
    let frag_offset = u16::from_be_bytes([p[6], p[7]]) & 0x1fff;
    let (src_port, dst_port) = if frag_offset == 0 {
        ports(protocol, &p[ihl..])
    } else {
        (0, 0)
    };
    Some(Headers {
        protocol,
        src,
        src_port,
        dst,
        dst_port,
    })
}

/// Extension headers walked at most: more is no packet netpol's policies describe.
const MAX_EXTENSIONS: usize = 8;

fn parse_v6(p: &[u8]) -> Option<Headers> {
    if p.len() < 40 {
        return None;
    }
    let octets = |at: usize| -> Option<[u8; 16]> { p.get(at..at + 16)?.try_into().ok() };
    let src = IpAddr::V6(Ipv6Addr::from(octets(8)?));
    let dst = IpAddr::V6(Ipv6Addr::from(octets(24)?));
    let mut next = p[6];
    let mut at = 40;
    let mut l4 = None;
    for _ in 0..=MAX_EXTENSIONS {
        let skip = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                p.get(at + 1).map(|l| (usize::from(*l) + 1) * 8)
            }
            IPPROTO_AH => p.get(at + 1).map(|l| (usize::from(*l) + 2) * 4),
            IPPROTO_FRAGMENT => match p.get(at + 2..at + 4) {
                // A later fragment holds no transport header.
                Some(off) if u16::from_be_bytes([off[0], off[1]]) & 0xfff8 != 0 => {
                    next = p[at];
                    break;
                }
                Some(_) => Some(8),
                None => None,
            },
            _ => {
                l4 = Some(at);
                break;
            }
        };
        // The extension header's first byte is the next header's type.
        match (skip, p.get(at)) {
            (Some(skip), Some(n)) => {
                next = *n;
                at += skip;
            }
            _ => break,
        }
    }
    let (src_port, dst_port) = match l4 {
        Some(at) => ports(next, p.get(at..).unwrap_or_default()),
        None => (0, 0),
    };
    Some(Headers {
        protocol: next,
        src,
        src_port,
        dst,
        dst_port,
    })
}

/// Source and destination port of a TCP, UDP or SCTP header (the first four bytes of
/// each); (0, 0) for other protocols or a header cut short.
fn ports(protocol: u8, l4: &[u8]) -> (u16, u16) {
    match (protocol, l4.get(..4)) {
        (IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP, Some(h)) => (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        ),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests;
