//! The addresses assigned to this host's interfaces, in the current network namespace,
//! read with rtnetlink: how `netpolctl apply` finds which inventory endpoints it *is*,
//! and how `netpold` follows them as they come and go ([`follow`]).

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;

use futures_util::{StreamExt, TryStreamExt};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::{Handle, MulticastGroup};

/// Every address of every interface (loopback included), sorted and without repeats.
pub fn local_addresses() -> io::Result<BTreeSet<IpAddr>> {
    // rtnetlink is asynchronous; one dump does not need more than a thread of its own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        let task = tokio::spawn(connection);
        let out = dump(&handle).await;
        task.abort();
        out
    })
}

/// Follows this host's addresses: calls `changed` with the whole set once it is known,
/// then each time it changes. Subscribes to the address events *before* the first
/// dump, so no change falls between the two; dumps again when the kernel says events
/// were lost (overrun) and after a removal (the same address may remain on another
/// interface). Additions are idempotent: the kernel re-announces existing addresses.
/// Runs until the event stream fails.
pub async fn follow(mut changed: impl FnMut(BTreeSet<IpAddr>)) -> io::Result<()> {
    let (connection, handle, mut events) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])?;
    let task = tokio::spawn(connection);
    let mut set = dump(&handle).await?;
    changed(set.clone());
    while let Some((msg, _)) = events.next().await {
        let next = match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)) => {
                let mut next = set.clone();
                next.extend(address_of(a));
                next
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(_)) => {
                dump(&handle).await?
            }
            NetlinkPayload::Overrun(_) => {
                tracing::warn!("address events were lost (overrun): reading all addresses again");
                dump(&handle).await?
            }
            _ => continue,
        };
        if next != set {
            set = next;
            changed(set.clone());
        }
    }
    task.abort();
    Err(io::Error::other("the address event stream ended"))
}

async fn dump(handle: &Handle) -> io::Result<BTreeSet<IpAddr>> {
    let mut dump = handle.address().get().execute();
    let mut out = BTreeSet::new();
    while let Some(msg) = dump.try_next().await.map_err(io::Error::other)? {
        out.extend(address_of(msg));
    }
    Ok(out)
}

fn address_of(msg: AddressMessage) -> Option<IpAddr> {
    // IFA_LOCAL is the address of this end (IPv4; on point-to-point links IFA_ADDRESS
    // is the peer's); IPv6 has only IFA_ADDRESS.
    let mut address = None;
    let mut local = None;
    for attr in msg.attributes {
        match attr {
            AddressAttribute::Address(ip) => address = Some(ip),
            AddressAttribute::Local(ip) => local = Some(ip),
            _ => {}
        }
    }
    local.or(address)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use netpol_nft::testns::netns_test;

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

    netns_test! {
        fn follows_addresses_as_they_come_and_go() {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let task = tokio::spawn(follow(move |set| {
                    let _ = tx.send(set);
                }));
                async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<BTreeSet<IpAddr>>) -> BTreeSet<IpAddr> {
                    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                        .await
                        .expect("an address change")
                        .unwrap()
                }
                assert_eq!(next(&mut rx).await, BTreeSet::new(), "the first dump");
                ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
                ip(&["addr", "add", "198.18.0.1/24", "dev", "v0"]);
                let want: BTreeSet<IpAddr> = ["198.18.0.1".parse().unwrap()].into();
                assert_eq!(next(&mut rx).await, want);
                ip(&["addr", "add", "2001:db8::7/64", "dev", "v1", "nodad"]);
                assert_eq!(next(&mut rx).await.len(), 2);
                ip(&["addr", "del", "198.18.0.1/24", "dev", "v0"]);
                let want: BTreeSet<IpAddr> = ["2001:db8::7".parse().unwrap()].into();
                assert_eq!(next(&mut rx).await, want);
                task.abort();
            });
        }
    }
}
