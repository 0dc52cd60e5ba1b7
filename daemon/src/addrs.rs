//! The addresses assigned to this host's interfaces, in the current network namespace,
//! read with rtnetlink: how `netpolctl apply` finds which inventory endpoints it *is*.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;

/// Every address of every interface (loopback included), sorted and without repeats.
pub fn local_addresses() -> io::Result<BTreeSet<IpAddr>> {
    // rtnetlink is asynchronous; one dump does not need more than a thread of its own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        let task = tokio::spawn(connection);
        let mut dump = handle.address().get().execute();
        let mut out = BTreeSet::new();
        while let Some(msg) = dump.try_next().await.map_err(io::Error::other)? {
            // IFA_LOCAL is the address of this end (IPv4; on point-to-point links
            // IFA_ADDRESS is the peer's); IPv6 has only IFA_ADDRESS.
            let mut address = None;
            let mut local = None;
            for attr in msg.attributes {
                match attr {
                    AddressAttribute::Address(ip) => address = Some(ip),
                    AddressAttribute::Local(ip) => local = Some(ip),
                    _ => {}
                }
            }
            if let Some(ip) = local.or(address) {
                out.insert(ip);
            }
        }
        task.abort();
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::testns::netns_test;

    fn ip(args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("running ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    netns_test! {
        fn finds_the_addresses_of_this_namespace() {
            // A fresh namespace: loopback is down and has no address.
            assert_eq!(local_addresses().unwrap(), BTreeSet::new());
            ip(&["link", "set", "lo", "up"]);
            ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
            ip(&["addr", "add", "198.18.0.1/24", "dev", "v0"]);
            ip(&["addr", "add", "198.18.5.5", "peer", "198.18.5.6", "dev", "v1"]);
            ip(&["addr", "add", "2001:db8::7/64", "dev", "v0", "nodad"]);
            let got: Vec<String> = local_addresses().unwrap().iter().map(|a| a.to_string()).collect();
            assert_eq!(got, ["127.0.0.1", "198.18.0.1", "198.18.5.5", "::1", "2001:db8::7"]);
        }
    }
}
