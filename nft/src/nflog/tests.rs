//! NFLOG messages and packet headers parsed from bytes, including hostile ones.

use super::*;

fn v4(protocol: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0];
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, protocol, 0, 0]);
    p.extend_from_slice(&[198, 18, 0, 1, 198, 19, 2, 3]);
    p.extend_from_slice(l4);
    p
}

fn v6(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
    p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&"2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(rest);
    p
}

/// TCP/UDP/SCTP header start: ports 40000 → 8080.
const PORTS: [u8; 8] = [0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 0];

fn headers(protocol: u8, src: &str, sp: u16, dst: &str, dp: u16) -> Headers {
    Headers {
        protocol,
        src: src.parse().unwrap(),
        src_port: sp,
        dst: dst.parse().unwrap(),
        dst_port: dp,
    }
}

#[test]
fn ipv4_transport_ports() {
    for proto in [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP] {
        assert_eq!(
            parse_headers(&v4(proto, 0, &PORTS)),
            Some(headers(proto, "198.18.0.1", 40000, "198.19.2.3", 8080))
        );
    }
    // ICMP: no ports.
    assert_eq!(
        parse_headers(&v4(1, 0, &[8, 0, 0, 0, 0, 1, 0, 1])),
        Some(headers(1, "198.18.0.1", 0, "198.19.2.3", 0))
    );
    // A later fragment: no transport header; the first fragment has one.
    assert_eq!(
        parse_headers(&v4(IPPROTO_UDP, 185, &PORTS)),
        Some(headers(IPPROTO_UDP, "198.18.0.1", 0, "198.19.2.3", 0))
    );
    assert_eq!(
        parse_headers(&v4(IPPROTO_UDP, 0x2000, &PORTS)),
        Some(headers(
            IPPROTO_UDP,
            "198.18.0.1",
            40000,
            "198.19.2.3",
            8080
        ))
    );
    // Options (IHL 6) are skipped.
    let mut p = v4(IPPROTO_TCP, 0, &[1, 1, 1, 1]);
    p[0] = 0x46;
    p.extend_from_slice(&PORTS);
    assert_eq!(
        parse_headers(&p),
        Some(headers(
            IPPROTO_TCP,
            "198.18.0.1",
            40000,
            "198.19.2.3",
            8080
        ))
    );
}

#[test]
fn ipv6_transport_ports_after_extension_headers() {
    let want = |proto, sp, dp| Some(headers(proto, "2001:db8::1", sp, "2001:db8:1::2", dp));
    assert_eq!(
        parse_headers(&v6(IPPROTO_TCP, &PORTS)),
        want(6, 40000, 8080)
    );
    // Hop-by-hop (8 bytes), destination options (16 bytes), then UDP.
    let mut rest = vec![IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0];
    rest.extend_from_slice(&[IPPROTO_UDP, 1, 0, 0, 0, 0, 0, 0]);
    rest.extend_from_slice(&[0; 8]);
    rest.extend_from_slice(&PORTS);
    assert_eq!(
        parse_headers(&v6(IPPROTO_HOPOPTS, &rest)),
        want(17, 40000, 8080)
    );
    // Routing, AH (length 1: 12 bytes), SCTP.
    let mut rest = vec![IPPROTO_AH, 0, 0, 0, 0, 0, 0, 0];
    rest.extend_from_slice(&[IPPROTO_SCTP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    rest.extend_from_slice(&PORTS);
    assert_eq!(
        parse_headers(&v6(IPPROTO_ROUTING, &rest)),
        want(132, 40000, 8080)
    );
    // The first fragment has the ports, a later one has none.
    let first = [[IPPROTO_UDP, 0, 0, 1, 0, 0, 0, 9].as_slice(), &PORTS].concat();
    assert_eq!(
        parse_headers(&v6(IPPROTO_FRAGMENT, &first)),
        want(17, 40000, 8080)
    );
    let later = [[IPPROTO_UDP, 0, 0x05, 0xa8, 0, 0, 0, 9].as_slice(), &PORTS].concat();
    assert_eq!(parse_headers(&v6(IPPROTO_FRAGMENT, &later)), want(17, 0, 0));
    // ICMPv6, and "no next header": no ports.
    assert_eq!(parse_headers(&v6(58, &[128, 0, 0, 0])), want(58, 0, 0));
    assert_eq!(parse_headers(&v6(59, &[])), want(59, 0, 0));
}

#[test]
fn cut_short_headers_give_no_ports_and_broken_ones_no_packet() {
    // Transport header shorter than the ports: ports 0.
    assert_eq!(
        parse_headers(&v4(IPPROTO_UDP, 0, &PORTS[..3])),
        Some(headers(IPPROTO_UDP, "198.18.0.1", 0, "198.19.2.3", 0))
    );
    assert_eq!(
        parse_headers(&v6(IPPROTO_TCP, &PORTS[..2])).map(|h| (h.src_port, h.dst_port)),
        Some((0, 0))
    );
    // An extension header cut off (copy range reached): what is known, ports 0.
    let h = parse_headers(&v6(IPPROTO_DSTOPTS, &[IPPROTO_TCP])).unwrap();
    assert_eq!(
        (h.protocol, h.src_port, h.dst_port),
        (IPPROTO_DSTOPTS, 0, 0)
    );
    let h = parse_headers(&v6(IPPROTO_DSTOPTS, &[IPPROTO_TCP, 200, 0, 0])).unwrap();
    assert_eq!((h.protocol, h.src_port, h.dst_port), (IPPROTO_TCP, 0, 0));
    // An endless chain of extension headers is walked a bounded number of times.
    let chain: Vec<u8> = (0..40)
        .flat_map(|_| [IPPROTO_DSTOPTS, 0, 0, 0, 0, 0, 0, 0])
        .collect();
    let h = parse_headers(&v6(IPPROTO_DSTOPTS, &chain)).unwrap();
    assert_eq!((h.src_port, h.dst_port), (0, 0));
    // IP headers incomplete or not IP: nothing.
    for p in [
        vec![],
        vec![0x45],
        v4(6, 0, &[])[..19].to_vec(),
        v6(6, &[])[..39].to_vec(),
        vec![0x44; 40], // IHL 4: below the minimum
        vec![0x4f; 40], // IHL 15: 60 bytes, more than there are
        vec![0x20; 60], // version 2
    ] {
        assert_eq!(parse_headers(&p), None, "{p:?}");
    }
}

#[test]
fn every_cut_and_every_flipped_byte_of_a_packet_is_survived() {
    let mut rest = vec![IPPROTO_UDP, 1, 0, 0, 0, 0, 0, 0];
    rest.extend_from_slice(&[0; 8]);
    rest.extend_from_slice(&PORTS);
    let samples = [
        v4(IPPROTO_TCP, 0, &PORTS),
        v6(IPPROTO_DSTOPTS, &rest),
        message(Some(b"netpol deny in\0"), Some(&v6(IPPROTO_TCP, &PORTS))),
    ];
    for sample in samples {
        for cut in 0..=sample.len() {
            let _ = parse_headers(&sample[..cut]);
            let _ = parse_packet(&sample[..cut]);
        }
        for at in 0..sample.len() {
            for v in [0u8, 0x0f, 0x45, 0x60, 0x80, 0xff] {
                let mut p = sample.clone();
                p[at] = v;
                let _ = parse_headers(&p);
                let _ = parse_packet(&p);
            }
        }
    }
}

/// An `NFULNL_MSG_PACKET` message as the kernel sends it: header, nfgenmsg, the packet
/// header attribute, the prefix and the payload.
#[test]
fn packet_messages_give_prefix_and_headers() {
    let msg = message(Some(b"netpol deny in\0"), Some(&v6(IPPROTO_TCP, &PORTS)));
    assert_eq!(
        parse_packet(&msg),
        Some(LoggedPacket {
            prefix: "netpol deny in".into(),
            protocol: IPPROTO_TCP,
            src: "2001:db8::1".parse().unwrap(),
            src_port: 40000,
            dst: "2001:db8:1::2".parse().unwrap(),
            dst_port: 8080,
        })
    );
    // Without a prefix: empty; without a payload: no packet.
    let msg = message(None, Some(&v4(IPPROTO_UDP, 0, &PORTS)));
    assert_eq!(parse_packet(&msg).map(|p| p.prefix), Some(String::new()));
    assert_eq!(parse_packet(&message(Some(b"x\0"), None)), None);
    // A header length beyond the bytes: what is there is read, never past it.
    let mut msg = message(Some(b"netpol audit out\0"), Some(&v4(6, 0, &PORTS)));
    let len = msg.len() as u32 + 100;
    msg[0..4].copy_from_slice(&len.to_ne_bytes());
    assert_eq!(
        parse_packet(&msg).map(|p| p.prefix),
        Some("netpol audit out".into())
    );
    // An attribute longer than the message ends the walk: no payload, no packet.
    let mut msg = message(Some(b"p\0"), Some(&v4(6, 0, &PORTS)));
    let payload_at = msg.len() - (v4(6, 0, &PORTS).len().next_multiple_of(4) + 4);
    msg[payload_at..payload_at + 2].copy_from_slice(&1000u16.to_ne_bytes());
    assert_eq!(parse_packet(&msg), None);
    // Other messages of the group are not packets; unreadable packets are counted.
    let mut unreadable = 0;
    let msg = message(Some(b"p\0"), Some(&[0x45, 0]));
    assert_eq!(packet_of(0x0402, &msg, &mut unreadable), None);
    assert_eq!(unreadable, 0);
    assert_eq!(packet_of(0x0400, &msg, &mut unreadable), None);
    assert_eq!(unreadable, 1);
}

#[test]
fn the_binding_is_an_exact_config_message() {
    let msg = config_request(0x0102, 9);
    #[rustfmt::skip]
    let want: Vec<u8> = [
        &(msg.len() as u32).to_ne_bytes()[..], &0x0401u16.to_ne_bytes(), &5u16.to_ne_bytes(),
        &9u32.to_ne_bytes(), &[0; 4],
        &[0, 0, 0x01, 0x02],
        // NFULA_CFG_CMD: bind (1 byte, padded).
        &5u16.to_ne_bytes(), &1u16.to_ne_bytes(), &[1, 0, 0, 0],
        // NFULA_CFG_MODE: 128 bytes, copy packet (6 bytes, padded).
        &10u16.to_ne_bytes(), &2u16.to_ne_bytes(), &[0, 0, 0, 128, 2, 0, 0, 0],
        // NFULA_CFG_QTHRESH: 1.
        &8u16.to_ne_bytes(), &5u16.to_ne_bytes(), &[0, 0, 0, 1],
    ]
    .concat();
    assert_eq!(msg, want);
}
