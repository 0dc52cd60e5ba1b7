//! Sharded sets (`plan::Options::shard_above`) as the compiler builds them, in the
//! kernel: a plan whose egress port set is cut into address blocks loads through
//! netlink as through `nft -f` and reads back equal; real packets leave or are dropped
//! as `Plan::verdict` says on both sides of every block boundary, a range element cut
//! at one included; a one-peer edit is an element update of one shard; a new block is
//! a staged replace.

use std::path::PathBuf;

use rules_compiler::load::Input;
use rules_compiler::plan::{self, Options, Packet};
use rules_compiler::resolve::Index;

use super::update::{fresh_without_handles, listings_by_plan_names};
use super::*;

/// Shards of at most this many elements: the test's sets hold about 200.
const LIMIT: usize = 16;

/// `x/a` (198.18.0.1) may send UDP 9 and TCP 80 to the `app: c` pods `x/c{i}` at
/// `198.19.{i / 128}.{2 (i % 128) + 2}`, and UDP 5000 to 198.19.0.0/24, whose gaps
/// between the pods are range elements. `relabel`: that pod is not `app: c`.
fn compile(clients: &[u32], relabel: Option<u32>) -> Plan {
    let pod = |name: &str, app: &str, ip: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  namespace: x\n  name: {name}\n  \
             labels:\n    app: {app}\nstatus:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n"
        )
    };
    let mut inventory = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n".to_string();
    inventory.push_str(&pod("a", "a", "198.18.0.1"));
    for &i in clients {
        let app = if relabel == Some(i) { "other" } else { "c" };
        let ip = format!("198.19.{}.{}", i / 128, 2 * (i % 128) + 2);
        inventory.push_str(&pod(&format!("c{i}"), app, &ip));
    }
    let policy = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  namespace: x
  name: allow
spec:
  podSelector:
    matchLabels:
      app: a
  policyTypes: [Egress]
  egress:
  - to:
    - podSelector:
        matchLabels:
          app: c
    ports:
    - protocol: UDP
      port: 9
    - protocol: TCP
      port: 80
  - to:
    - ipBlock:
        cidr: 198.19.0.0/24
    ports:
    - protocol: UDP
      port: 5000
";
    let input = |path: &str, text: String| Input {
        path: PathBuf::from(path),
        text: text.into(),
    };
    let loaded = rules_compiler::load_model(
        &[input("policy.yaml", policy.into())],
        &[input("inventory.yaml", inventory)],
    )
    .expect("the test's input loads");
    let index = Index::new(&loaded.model);
    let local = loaded
        .model
        .inventory
        .endpoint_index(&ObjectName::new("x", "a"))
        .expect("x/a");
    let options = Options {
        shard_above: LIMIT,
        ..Options::default()
    };
    plan::build(&index, &[local], &options)
}

/// The blocks of `x/a`'s shard map, in order.
fn blocks(plan: &Plan) -> Vec<AddrRange> {
    match plan.set("out_x_a_v4_shards").map(|s| s.elements()) {
        Some(SetElements::AddrVerdict(v)) => v.keys().to_vec(),
        other => panic!("no shard map: {other:?}"),
    }
}

fn v4(x: u32) -> IpAddr {
    IpAddr::V4(x.into())
}

fn u32_of(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(a) => a.into(),
        IpAddr::V6(_) => unreachable!("IPv4 only"),
    }
}

/// Destinations on both sides of every block boundary of `plan` and at the ends of
/// its blocks, within 198.18.0.0/15, with an address outside every block.
fn probes(plan: &Plan) -> Vec<IpAddr> {
    let (lo, hi) = (u32_of(ip("198.18.0.0")), u32_of(ip("198.19.255.255")));
    let mut out: Vec<u32> = vec![u32_of(ip("198.19.1.200"))];
    for b in blocks(plan) {
        let (s, e) = (u32_of(b.start), u32_of(b.end));
        out.extend([s.saturating_sub(1), s, e, e.saturating_add(1)]);
    }
    out.retain(|&x| lo <= x && x <= hi && x != u32_of(ip("198.18.0.1")));
    out.sort_unstable();
    out.dedup();
    out.into_iter().map(v4).collect()
}

/// Whether a UDP datagram from 198.18.0.1 to `to:port` leaves (a drop in the output
/// hook fails the send with EPERM). A new socket each time: a new connection.
fn leaves(to: IpAddr, port: u16) -> bool {
    let sock = UdpSocket::bind("198.18.0.1:0").expect("bind");
    match sock.send_to(b"x", (to, port)) {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => false,
        Err(e) => panic!("send to {to}:{port}: {e}"),
    }
}

/// Sends to every probe on UDP 9, 5000 and 10 and checks each against `plan`'s
/// verdict; returns how many left and how many were dropped.
fn check_packets(plan: &Plan, step: &str) -> (usize, usize) {
    let (mut accepted, mut dropped) = (0, 0);
    for to in probes(plan) {
        for port in [9u16, 5000, 10] {
            let packet = Packet {
                saddr: ip("198.18.0.1"),
                daddr: to,
                proto: 17,
                dport: port,
                icmpv6_type: None,
            };
            let want = plan.verdict(Hook::Output, &packet).is_accept();
            assert_eq!(leaves(to, port), want, "{step}: UDP to {to}:{port}");
            if want {
                accepted += 1;
            } else {
                dropped += 1;
            }
        }
    }
    (accepted, dropped)
}

fn veth() {
    ip_cmd(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ip_cmd(&["link", "set", "v0", "multicast", "off"]);
    ip_cmd(&["addr", "add", "198.18.0.1/15", "dev", "v0"]);
    ip_cmd(&["link", "set", "v0", "up"]);
    ip_cmd(&["link", "set", "v1", "up"]);
}

netns_test! {
    fn a_sharded_plan_loads_reads_back_and_judges_packets_across_block_boundaries() {
        let clients: Vec<u32> = (0..48).collect();
        let plan = compile(&clients, None);
        let bl = blocks(&plan);
        assert!(bl.len() >= 4, "{bl:?}");
        // A range element cut at a block boundary: the UDP 5000 gap after the last
        // pod ends one block and starts the next.
        let cut = bl.windows(2).any(|w| {
            let last = |b: &AddrRange| plan.locals()[0].shard_chains.iter().find_map(|c| {
                let s = plan.set(&format!("{}_ports", c.chain))?;
                match s.elements() {
                    SetElements::AddrProtoPort(v) if v.first()?.addr.start >= b.start && v.last()?.addr.end <= b.end => Some(v.to_vec()),
                    _ => None,
                }
            }).unwrap();
            let (a, b) = (last(&w[0]), last(&w[1]));
            let (x, y) = (a.last().unwrap(), b.first().unwrap());
            x.addr.end == w[0].end && y.addr.start == w[1].start && (x.proto, x.ports) == (y.proto, y.ports)
        });
        assert!(cut, "no element cut at a boundary:\n{}", rules_compiler::render::nft(&plan));
        assert_same_as_nft(&plan);
        let mut kernel = Netlink::new();
        kernel.apply(&plan).expect("apply");
        assert_eq!(kernel.read().expect("read"), Some(LoadedTable::expected(&plan).unwrap()));
        veth();
        let (accepted, dropped) = check_packets(&plan, "loaded");
        assert!(accepted > 10 && dropped > 10, "{accepted} accepted, {dropped} dropped");
    }
}

netns_test! {
    fn a_one_peer_edit_updates_one_shard_and_a_new_block_swaps_the_table() {
        let clients: Vec<u32> = (0..48).collect();
        let old = compile(&clients, None);
        let mut kernel = Netlink::new();
        kernel.apply(&old).expect("apply");
        veth();
        // x/c5 (198.19.0.12) is no longer a peer: its block's set alone changes.
        let new = compile(&clients, Some(5));
        let update = Update::between(&old, &new).expect("element changes only");
        let touched: Vec<&str> = update.delta().sets().iter().map(|d| d.name()).collect();
        assert_eq!(touched.len(), 1, "{touched:?}");
        assert!(touched[0].starts_with("out_x_a_v4_shard_"), "{touched:?}");
        let stats = kernel.update(&update).expect("update");
        assert_eq!(stats.elements, update.delta().changed());
        assert_eq!(listings_by_plan_names(), fresh_without_handles(&new));
        assert!(!leaves(ip("198.19.0.12"), 9), "the removed peer is denied");
        assert!(leaves(ip("198.19.0.12"), 5000), "its block's range still allowed");
        assert!(leaves(ip("198.19.0.14"), 9), "its neighbour still allowed");
        check_packets(&new, "after the update");
        // Pods in 198.19.1.0/24, where no block was: new shards, a staged replace.
        let more: Vec<u32> = (0..48).chain(128..140).collect();
        let grown = compile(&more, None);
        assert!(Update::between(&new, &grown).is_err(), "a layout change is structural");
        assert!(blocks(&grown).len() > blocks(&new).len());
        let mut generation = GenerationReader::open().expect("generation reader");
        let before = generation.read().unwrap();
        kernel.apply(&grown).expect("staged replace");
        assert_eq!(generation.read().unwrap(), before + 2, "a swap: two transactions");
        // Under the other slot's names: the swap itself deleted the old objects (a
        // failed swap would have been followed by a full replace, under the plan's).
        let prefixed = format!("chain {}out_x_a_v4_shard_", Slot::NEXT_PREFIX);
        assert!(nft(LIST).contains(&prefixed), "{}", nft(LIST));
        assert_eq!(listings_by_plan_names(), fresh_without_handles(&grown));
        assert_eq!(kernel.read().expect("read"), Some(LoadedTable::expected(&grown).unwrap()));
        check_packets(&grown, "after the swap to more blocks");
        assert!(leaves(ip("198.19.1.2"), 9), "a pod of a new block");
        // And back: the other slot's names, the old blocks.
        let before = generation.read().unwrap();
        kernel.apply(&old).expect("staged replace back");
        assert_eq!(generation.read().unwrap(), before + 2, "a swap back: two transactions");
        assert!(!nft(LIST).contains(Slot::NEXT_PREFIX), "back under the plan's names");
        assert_eq!(listings_by_plan_names(), fresh_without_handles(&old));
        check_packets(&old, "back");
    }
}
