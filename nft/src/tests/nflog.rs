//! Real packets logged by `log group` and read back from the NFLOG group.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::*;
use crate::nflog::{Logged, LoggedPacket, Nflog};

const GROUP: u16 = 7;

/// A veth interface with 198.18.0.1/24 and 2001:db8::1/64, and a table that logs,
/// in the output hook, UDP to 198.18.0.2 and 2001:db8::2 and TCP connection attempts
/// (SYN without ACK) to 198.18.0.1 and 2001:db8::1, then lets them pass.
fn setup() {
    ip_cmd(&["link", "set", "lo", "up"]);
    ip_cmd(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ip_cmd(&["link", "set", "v0", "multicast", "off"]);
    ip_cmd(&["addr", "add", "198.18.0.1/24", "dev", "v0"]);
    ip_cmd(&["addr", "add", "2001:db8::1/64", "dev", "v0", "nodad"]);
    ip_cmd(&["link", "set", "v0", "up"]);
    ip_cmd(&["link", "set", "v1", "up"]);
    let script = format!(
        r#"table inet t {{
    chain out {{
        type filter hook output priority 0;
        ip daddr 198.18.0.2 udp dport 9999 log group {GROUP} prefix "netpol deny out"
        ip6 daddr 2001:db8::2 udp dport 9999 log group {GROUP} prefix "netpol deny out"
        tcp flags & (syn | ack) == syn ip daddr 198.18.0.1 log group {GROUP} prefix "netpol audit in"
        tcp flags & (syn | ack) == syn ip6 daddr 2001:db8::1 log group {GROUP} prefix "netpol audit in"
    }}
}}
"#
    );
    let file = crate::testns::TempFile::new("nflog", &script);
    nft(&["-f", &file.path().to_string_lossy()]);
}

/// What the group gives within two seconds, once something came.
fn read_some(nflog: &mut Nflog) -> Vec<Logged> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let got = nflog.read().expect("reading NFLOG");
        if !got.is_empty() || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn udp_from(local: &str, to: &str) -> LoggedPacket {
    let sock = UdpSocket::bind(local).expect("bind");
    let to: SocketAddr = to.parse().unwrap();
    sock.send_to(b"hello", to).expect("send");
    let from = sock.local_addr().unwrap();
    LoggedPacket {
        prefix: "netpol deny out".into(),
        protocol: 17,
        src: from.ip(),
        src_port: from.port(),
        dst: to.ip(),
        dst_port: to.port(),
    }
}

fn tcp_to(listen: &str) -> LoggedPacket {
    let listener = TcpListener::bind(listen).expect("listen");
    let to = listener.local_addr().unwrap();
    // Right after the link comes up a connection may fail once (the local route of an
    // address is made asynchronously): retried for a second.
    let deadline = Instant::now() + Duration::from_secs(1);
    let client = loop {
        match TcpStream::connect(to) {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("connect to {to}: {e}; again");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("connect to {to}: {e}"),
        }
    };
    let from = client.local_addr().unwrap();
    LoggedPacket {
        prefix: "netpol audit in".into(),
        protocol: 6,
        src: from.ip(),
        src_port: from.port(),
        dst: to.ip(),
        dst_port: to.port(),
    }
}

netns_test! {
    fn logged_packets_are_read_with_prefix_addresses_and_ports() {
        setup();
        let mut nflog = Nflog::open(GROUP).expect("binding the group");
        assert_eq!(nflog.read().expect("read"), vec![], "nothing logged yet");
        let sends: [fn() -> LoggedPacket; 4] = [
            || udp_from("198.18.0.1:0", "198.18.0.2:9999"),
            || udp_from("[2001:db8::1]:0", "[2001:db8::2]:9999"),
            || tcp_to("198.18.0.1:0"),
            || tcp_to("[2001:db8::1]:0"),
        ];
        for send in sends {
            let want = send();
            assert_eq!(read_some(&mut nflog), vec![Logged::Packet(want)]);
        }
        assert_eq!(nflog.unreadable(), 0);
        // One listener per group: a second binding is refused, and says why.
        let err = Nflog::open(GROUP).expect_err("the group is taken");
        assert_eq!(err.errno(), Some(libc::EPERM), "{err}");
        assert!(err.to_string().contains("another socket"), "{err}");
        // Another group is free.
        Nflog::open(GROUP + 1).expect("another group");
    }
}

netns_test! {
    fn an_overflowing_socket_reports_lost_packets() {
        setup();
        // The smallest buffer the kernel allows holds a few packets.
        let mut nflog = Nflog::with_buffer(GROUP, 1).expect("binding the group");
        let sock = UdpSocket::bind("198.18.0.1:0").expect("bind");
        for _ in 0..200 {
            sock.send_to(b"x", "198.18.0.2:9999").expect("send");
        }
        let got = read_some(&mut nflog);
        assert!(got.contains(&Logged::Lost), "{got:?}");
        let packets = got.iter().filter(|l| matches!(l, Logged::Packet(_))).count();
        assert!((1..200).contains(&packets), "{packets} packets read");
        // After the loss the socket works on.
        let want = udp_from("198.18.0.1:0", "198.18.0.2:9999");
        assert_eq!(read_some(&mut nflog), vec![Logged::Packet(want)]);
    }
}

netns_test! {
    fn the_group_is_waited_on_with_tokio() {
        setup();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let mut fd = Nflog::open(GROUP).expect("binding").into_async().expect("async");
            let want = udp_from("198.18.0.1:0", "198.18.0.2:9999");
            let mut guard = tokio::time::timeout(Duration::from_secs(2), fd.readable_mut())
                .await
                .expect("readable in time")
                .expect("readable");
            let got = guard.get_inner_mut().read().expect("read");
            guard.clear_ready();
            assert_eq!(got, vec![Logged::Packet(want)]);
        });
    }
}

netns_test! {
    fn a_denied_flood_is_logged_within_the_limit_and_counted_whole() {
        use rules_compiler::plan::EventVerdict;
        use crate::ChainOwners;
        const SENT: u64 = 50;
        const RATE: u32 = 5;
        const BURST: u32 = 5;
        ip_cmd(&["link", "set", "lo", "up"]);
        ip_cmd(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        ip_cmd(&["link", "set", "v0", "multicast", "off"]);
        ip_cmd(&["addr", "add", "198.18.0.1/15", "dev", "v0"]);
        ip_cmd(&["link", "set", "v0", "up"]);
        ip_cmd(&["link", "set", "v1", "up"]);
        // x/a (198.18.0.1) may send to 0.0.0.0-9.255.255.255 and 198.18.0.0/16 only:
        // 198.19.0.5 is denied, logged (within the limit) and counted.
        let plan = events_plan_with(DenyAction::Drop, RATE, BURST, GROUP, EventVerdict::Deny);
        let mut kernel = Netlink::new();
        kernel.apply(&plan).expect("apply");
        let mut nflog = Nflog::open(GROUP).expect("binding the group");
        let sock = UdpSocket::bind("198.18.0.1:0").expect("bind");
        let port = sock.local_addr().unwrap().port();
        let start = Instant::now();
        for _ in 0..SENT {
            let e = sock.send_to(b"x", "198.19.0.5:4000").expect_err("denied");
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
        }
        let elapsed = start.elapsed();
        // Everything logged is queued by now; read until nothing more comes.
        let mut logged = Vec::new();
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_millis(200) {
            let got = nflog.read().expect("read");
            if !got.is_empty() {
                quiet_since = Instant::now();
            }
            logged.extend(got);
            std::thread::sleep(Duration::from_millis(10));
        }
        let want = Logged::Packet(LoggedPacket {
            prefix: "netpol deny out".into(),
            protocol: 17,
            src: ip("198.18.0.1"),
            src_port: port,
            dst: ip("198.19.0.5"),
            dst_port: 4000,
        });
        assert!(logged.iter().all(|l| *l == want), "{logged:?}");
        let n = logged.len() as u64;
        let most = u64::from(BURST) + (f64::from(RATE) * elapsed.as_secs_f64()).ceil() as u64 + 1;
        assert!((u64::from(BURST)..=most).contains(&n), "{n} logged of {SENT} in {elapsed:?}");
        // The kernel's counters: all denied, exactly the logged ones logged.
        let table = kernel.read().expect("read").expect("a table");
        let denies = ChainOwners::of(&plan).label(table.denies());
        let out = denies.iter().find(|d| d.chain == "out_x_a").expect("the egress counter");
        assert_eq!((out.verdict, out.packets, out.logged), (EventVerdict::Deny, SENT, Some(n)), "{out:?}");
        assert_eq!((out.endpoint.to_string(), out.direction), ("x/a".to_string(), Direction::Egress));
        let inbound = denies.iter().find(|d| d.chain == "in_x_a").expect("the ingress counter");
        assert_eq!((inbound.packets, inbound.logged), (0, Some(0)));
        println!("{n} of {SENT} denied datagrams logged in {elapsed:?} (rate {RATE}/s, burst {BURST})");
    }
}
