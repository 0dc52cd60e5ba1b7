"""Sends hand-made packets from raw sockets, for the verdict-event tests.

Raw sockets let a test send what no ordinary socket of this machine can: 100,000 TCP
SYNs each from a port of its own without 100,000 sockets, an SCTP INIT on a kernel
without the sctp module (a raw socket of protocol 132 needs none), an ICMP echo without
ping, a packet of a protocol nobody implements. Every checksum is right: the
receiver's conntrack checks TCP's and SCTP's (`nf_conntrack_checksum`) and may take a
bad one as `ct state invalid`, dropped before the log rule, where each of these must be
a new connection attempt. The kernel writes the IP header; the source address is the
one the socket is bound to.

    rawsend.py syn SRC[,SRC...] DST DPORT COUNT   COUNT SYNs, source ports 10000 up,
                                                  round the sources
    rawsend.py sctp SRC DST SPORT DPORT           one SCTP INIT
    rawsend.py icmp SRC DST COUNT                 COUNT echo requests (ICMP or ICMPv6),
                                                  100 ms apart, one identifier
    rawsend.py proto N SRC DST                    one packet of IP protocol N
    rawsend.py ping SRC DST                       one echo request; `reply` when its
                                                  echo reply came within 1 s, else
                                                  `no reply`

Prints what it sent and how long it took, on one line.
"""

import socket
import struct
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def raw(src, proto):
    s = socket.socket(family(src), socket.SOCK_RAW, proto)
    s.bind((src, 0))
    return s


def words(data):
    """The sum of data's 16-bit big-endian words (padded to an even length)."""
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack("!%dH" % (len(data) // 2), data))


def fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo(src, dst, proto, length):
    """The IPv4 or IPv6 pseudo-header of the TCP checksum."""
    fam = family(src)
    s, d = socket.inet_pton(fam, src), socket.inet_pton(fam, dst)
    if fam == socket.AF_INET:
        return s + d + struct.pack("!BBH", 0, proto, length)
    return s + d + struct.pack("!IxxxB", length, proto)


def syn(srcs, dst, dport, count):
    socks = [raw(s, socket.IPPROTO_TCP) for s in srcs]
    # A SYN without options: source port, then everything that never changes. The
    # checksum is the sum of the fixed words plus the source port, folded.
    fixed = [
        words(pseudo(s, dst, socket.IPPROTO_TCP, 20)
              + struct.pack("!HHIIBBHHH", 0, dport, 1, 0, 0x50, 0x02, 64240, 0, 0))
        for s in srcs
    ]
    pack = struct.Struct("!HHIIBBHHH").pack
    start = time.monotonic()
    for i in range(count):
        k = i % len(srcs)
        sport = 10000 + i // len(srcs)
        header = pack(sport, dport, 1, 0, 0x50, 0x02, 64240, fold(fixed[k] + sport), 0)
        socks[k].sendto(header, (dst, 0))
    return "%d SYNs in %.3f s" % (count, time.monotonic() - start)


def crc32c(data):
    """CRC-32C (Castagnoli), as SCTP's checksum (RFC 9260, appendix A)."""
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def sctp(src, dst, sport, dport):
    # Common header with verification tag 0 (an INIT's), then the INIT chunk: type 1,
    # flags 0, length 20, initiate tag, a_rwnd, outbound and inbound streams, initial
    # TSN.
    init = struct.pack("!BBHIIHHI", 1, 0, 20, 0x1234ABCD, 65536, 10, 10, 1)
    packet = struct.pack("!HHII", sport, dport, 0, 0) + init
    # The CRC goes in as the kernel stores it: least significant byte first.
    packet = packet[:8] + struct.pack("<I", crc32c(packet)) + packet[12:]
    raw(src, 132).sendto(packet, (dst, 0))
    return "one SCTP INIT %s:%d -> %s:%d" % (src, sport, dst, dport)


def icmp(src, dst, count):
    v6 = family(src) == socket.AF_INET6
    s = raw(src, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    for seq in range(1, count + 1):
        if v6:
            # Type 128; the kernel fills in an ICMPv6 checksum.
            packet = struct.pack("!BBHHH", 128, 0, 0, 0x4E50, seq) + b"netpol"
        else:
            packet = struct.pack("!BBHHH", 8, 0, 0, 0x4E50, seq) + b"netpol"
            packet = packet[:2] + struct.pack("!H", fold(words(packet))) + packet[4:]
        s.sendto(packet, (dst, 0))
        time.sleep(0.1)
    return "%d echo requests %s -> %s" % (count, src, dst)


def ping(src, dst):
    v6 = family(src) == socket.AF_INET6
    s = raw(src, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    ident = 0x4E51
    if v6:
        packet = struct.pack("!BBHHH", 128, 0, 0, ident, 1) + b"netpol"
    else:
        packet = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"netpol"
        packet = packet[:2] + struct.pack("!H", fold(words(packet))) + packet[4:]
    s.sendto(packet, (dst, 0))
    deadline = time.monotonic() + 1.0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "no reply"
        s.settimeout(left)
        try:
            data, (peer, *_) = s.recvfrom(2048)
        except socket.timeout:
            return "no reply"
        # An IPv4 raw socket gets the IP header too; an IPv6 one only the ICMPv6.
        if not v6:
            data = data[(data[0] & 0x0F) * 4 :]
        reply = 129 if v6 else 0
        if peer == dst and len(data) >= 8 and data[0] == reply:
            if struct.unpack("!H", data[4:6])[0] == ident:
                return "reply"


def proto(n, src, dst):
    raw(src, n).sendto(b"netpol test packet", (dst, 0))
    return "one packet of protocol %d %s -> %s" % (n, src, dst)


def main(args):
    what = args[0]
    if what == "syn":
        return syn(args[1].split(","), args[2], int(args[3]), int(args[4]))
    if what == "sctp":
        return sctp(args[1], args[2], int(args[3]), int(args[4]))
    if what == "icmp":
        return icmp(args[1], args[2], int(args[3]))
    if what == "proto":
        return proto(int(args[1]), args[2], args[3])
    if what == "ping":
        return ping(args[1], args[2])
    raise SystemExit("unknown: %s" % what)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
