//! Conntrack entries dumped and cut, with their local socket.

use super::*;

/// A TCP connection over loopback in this namespace: (client, server side, the flow's
/// conntrack entry as dumped).
fn tracked_connection(
    kernel: &mut Netlink,
    listener: &std::net::TcpListener,
) -> (std::net::TcpStream, std::net::TcpStream, crate::Flow) {
    use std::io::{Read, Write};
    let port = listener.local_addr().unwrap().port();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (mut server, _) = listener.accept().expect("accept");
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    let cport = client.local_addr().unwrap().port();
    let flows = kernel.flows().expect("conntrack dump");
    let flow = *flows
        .iter()
        .find(|f| {
            f.proto == 6
                && f.orig.l4
                    == crate::L4::Ports {
                        src: cport,
                        dst: port,
                    }
                && f.orig.src == ip("127.0.0.1")
        })
        .unwrap_or_else(|| panic!("no entry for 127.0.0.1:{cport} -> :{port} in {flows:?}"));
    (client, server, flow)
}

netns_test! {
    fn conntrack_entries_are_dumped_and_cut_exactly_with_their_local_socket() {
        use std::io::{ErrorKind, Read};
        use std::time::Duration;
        use crate::{FlowCut, LocalSide};
        ip_cmd(&["link", "set", "lo", "up"]);
        // Conntrack runs in a namespace once a rule needs it.
        nft(&["add", "table", "inet", "t"]);
        nft(&["add", "chain", "inet", "t", "c", "{ type filter hook input priority 0; }"]);
        nft(&["add", "rule", "inet", "t", "c", "ct", "state", "established", "counter"]);
        let mut kernel = Netlink::new();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let (mut client, mut server, flow) = tracked_connection(&mut kernel, &listener);
        let (keep_client, _keep_server, kept) = tracked_connection(&mut kernel, &listener);
        assert_ne!(flow.id, kept.id);
        assert_eq!(flow.reply.src, ip("127.0.0.1"));
        assert_eq!(flow.reply.l4.src_port(), flow.orig.l4.dst_port());
        // UDP and ICMP entries are read too.
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.send_to(b"x", "127.0.0.1:9").unwrap();
        Command::new("ping").args(["-c", "1", "-W", "1", "127.0.0.1"]).output().ok();
        let all = kernel.flows().expect("dump");
        assert!(all.iter().any(|f| f.proto == 17 && f.orig.l4.dst_port() == Some(9)), "{all:?}");

        // An id that is not the entry's: the entry is left alone.
        let mut other = flow;
        other.id = other.id.wrapping_add(1);
        let stats = kernel
            .cut(&[FlowCut { flow: other, local: LocalSide::Initiator }])
            .expect("cut");
        assert_eq!((stats.deleted, stats.gone, stats.sockets_destroyed), (0, 1, 0), "{stats:?}");
        assert!(kernel.flows().unwrap().contains(&flow));
        // … and so is its socket, found by ports alone: the stream still works.
        {
            use std::io::Write;
            client.write_all(b"pong").unwrap();
            let mut buf = [0u8; 4];
            server.read_exact(&mut buf).expect("the connection still works");
        }

        // The server's side is local: its socket is destroyed (the client gets a
        // reset), and the entry deleted; the other connection is untouched.
        let stats = kernel
            .cut(&[FlowCut { flow, local: LocalSide::Responder }])
            .expect("cut");
        assert_eq!(
            (stats.deleted, stats.gone, stats.sockets_destroyed, stats.failed),
            (1, 0, 1, 0),
            "{stats:?}"
        );
        let after = kernel.flows().unwrap();
        assert!(!after.iter().any(|f| f.id == flow.id), "{after:?}");
        assert!(after.contains(&kept));
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 8];
        let e = client.read(&mut buf).expect_err("the client is reset");
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
        let e = server.read(&mut buf).expect_err("the server's socket is gone");
        assert_eq!(e.raw_os_error(), Some(libc::ECONNABORTED), "{e}");
        drop(keep_client);

        // Cut again: gone, not an error, and no socket is looked for.
        let stats = kernel
            .cut(&[FlowCut { flow, local: LocalSide::Responder }])
            .expect("cut");
        assert_eq!(
            (stats.deleted, stats.gone, stats.sockets_destroyed, stats.sockets_not_found),
            (0, 1, 0, 0),
            "{stats:?}"
        );
    }
}
