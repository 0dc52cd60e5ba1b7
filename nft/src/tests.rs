//! The backend against the real kernel, each test in a throwaway network namespace
//! (see `crate::testns`), and the fake backend.

use std::net::{IpAddr, UdpSocket};
use std::process::Command;

use rules_compiler::model::{Direction, ObjectName};
use rules_compiler::plan::{
    AddrField, AddrProtoPort, AddrRange, Chain, DenyAction, Family, Hook, LocalEndpoint, Plan, Set,
    SetElements, Stmt, VerdictMap, TABLE_NAME,
};

use super::encode::{self, elem_wire_len, Msg};
use super::fake::FakeBackend;
use super::{ffi, reply};
use super::{Backend, GenerationReader, KernelError, LoadedTable, Netlink, Slot, Update};
use crate::testns::{netns_test, nft, nft_elsewhere};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn range(a: &str, b: &str) -> AddrRange {
    AddrRange {
        start: ip(a),
        end: ip(b),
    }
}

fn one(a: &str) -> AddrRange {
    range(a, a)
}

fn app(addr: AddrRange, proto: u8, ports: (u16, u16)) -> AddrProtoPort {
    AddrProtoPort { addr, proto, ports }
}

fn set(name: &str, family: Family, elements: SetElements) -> Set {
    Set {
        name: name.into(),
        family,
        elements,
    }
}

fn base_rules(hook: Hook) -> Vec<Stmt> {
    vec![
        Stmt::CtEstablishedAccept,
        Stmt::CtInvalidDrop,
        Stmt::LoopbackAccept(hook),
        Stmt::NeighbourDiscoveryAccept,
    ]
}

/// A plan with every statement shape, both families, open-ended and zero-based
/// intervals, and ports in concatenations: endpoint x/a (198.18.0.1, 2001:db8::1),
/// isolated both ways.
fn sample_plan(deny: DenyAction) -> Plan {
    use AddrField::{Daddr, Saddr};
    use Family::{V4, V6};
    let sets = vec![
        set(
            "in_x_a_v4_all",
            V4,
            SetElements::Addr(vec![
                one("198.18.0.2"),
                range("198.18.0.10", "198.18.0.20"),
                range("198.18.1.0", "198.18.1.255"),
            ]),
        ),
        set(
            "in_x_a_v4_ports",
            V4,
            SetElements::AddrProtoPort(vec![
                app(range("0.0.0.0", "255.255.255.255"), 132, (9100, 9100)),
                app(range("198.18.0.4", "198.18.0.255"), 6, (8000, 8100)),
                app(range("198.18.0.4", "198.18.0.255"), 17, (53, 53)),
                app(one("198.18.2.7"), 6, (0, 65535)),
            ]),
        ),
        set(
            "in_x_a_v6_all",
            V6,
            SetElements::Addr(vec![
                one("2001:db8::2"),
                range("2001:db8:1::", "2001:db8:1::ffff:ffff:ffff:ffff"),
                range("ffff::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ]),
        ),
        set(
            "in_x_a_v6_ports",
            V6,
            SetElements::AddrProtoPort(vec![app(
                range("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
                6,
                (443, 443),
            )]),
        ),
        set(
            "out_x_a_v4_all",
            V4,
            SetElements::Addr(vec![
                range("0.0.0.0", "9.255.255.255"),
                range("198.18.0.0", "198.18.255.255"),
            ]),
        ),
    ];
    let maps = vec![
        VerdictMap {
            name: "egress_v4".into(),
            family: V4,
            elements: vec![(ip("198.18.0.1"), "out_x_a".into())],
        },
        VerdictMap {
            name: "ingress_v4".into(),
            family: V4,
            elements: vec![(ip("198.18.0.1"), "in_x_a".into())],
        },
        VerdictMap {
            name: "ingress_v6".into(),
            family: V6,
            elements: vec![(ip("2001:db8::1"), "in_x_a".into())],
        },
    ];
    let mut input = base_rules(Hook::Input);
    input.extend([
        Stmt::Dispatch {
            family: V4,
            field: Daddr,
            map: "ingress_v4".into(),
        },
        Stmt::Dispatch {
            family: V6,
            field: Daddr,
            map: "ingress_v6".into(),
        },
    ]);
    let mut output = base_rules(Hook::Output);
    output.push(Stmt::Dispatch {
        family: V4,
        field: Saddr,
        map: "egress_v4".into(),
    });
    let chains = vec![
        Chain {
            name: "input".into(),
            hook: Some(Hook::Input),
            rules: input,
        },
        Chain {
            name: "output".into(),
            hook: Some(Hook::Output),
            rules: output,
        },
        Chain {
            name: "in_x_a".into(),
            hook: None,
            rules: vec![
                Stmt::AcceptAddr {
                    family: V4,
                    field: Saddr,
                    set: "in_x_a_v4_all".into(),
                },
                Stmt::AcceptAddrProtoPort {
                    family: V4,
                    field: Saddr,
                    set: "in_x_a_v4_ports".into(),
                },
                Stmt::AcceptAddr {
                    family: V6,
                    field: Saddr,
                    set: "in_x_a_v6_all".into(),
                },
                Stmt::AcceptAddrProtoPort {
                    family: V6,
                    field: Saddr,
                    set: "in_x_a_v6_ports".into(),
                },
                Stmt::Deny {
                    action: deny,
                    comment: "deny ingress x/a".into(),
                },
            ],
        },
        Chain {
            name: "out_x_a".into(),
            hook: None,
            rules: vec![
                Stmt::AcceptAddr {
                    family: V4,
                    field: Daddr,
                    set: "out_x_a_v4_all".into(),
                },
                Stmt::Deny {
                    action: deny,
                    comment: "deny egress x/a".into(),
                },
            ],
        },
    ];
    Plan {
        table: TABLE_NAME.into(),
        sets,
        maps,
        chains,
        locals: vec![LocalEndpoint {
            id: ObjectName::new("x", "a"),
            ingress_chain: Some("in_x_a".into()),
            egress_chain: Some("out_x_a".into()),
        }],
    }
}

const LIST: &[&str] = &["list", "table", "inet", "netpol"];
/// The same listing with each rule's expressions as the kernel holds them.
const LIST_BYTECODE: &[&str] = &["--debug=netlink", "list", "table", "inet", "netpol"];

/// The bytecode listing with each set's raw elements sorted: a hash set (a verdict
/// map) lists its elements in the order of its buckets, which depends on a random
/// seed of the set, not on what was sent.
fn sort_elements(listing: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for line in listing.lines().chain(std::iter::once("")) {
        if line.starts_with("\telement ") {
            run.push(line);
            continue;
        }
        run.sort_unstable();
        out.extend(run.drain(..).map(String::from));
        out.push(line.to_string());
    }
    out.pop();
    out.join("\n") + "\n"
}

/// Applies `plan` here through netlink and `render::nft(plan)` with `nft -f` in another
/// fresh namespace, and compares both listings (text, and bytecode with the raw set
/// elements) line by line: the two renderings of one plan cannot drift.
fn assert_same_as_nft(plan: &Plan) {
    let text = rules_compiler::render::nft(plan);
    Netlink::new().apply(plan).expect("apply");
    let ours = [nft(LIST), sort_elements(&nft(LIST_BYTECODE))];
    let mut theirs = nft_elsewhere(&text, &[LIST, LIST_BYTECODE]);
    theirs[1] = sort_elements(&theirs[1]);
    for (kind, (a, b)) in ["listing", "bytecode listing"]
        .iter()
        .zip(ours.iter().zip(theirs.iter()))
    {
        if a != b {
            let diff: Vec<String> = a
                .lines()
                .zip(b.lines())
                .enumerate()
                .filter(|(_, (x, y))| x != y)
                .take(10)
                .map(|(i, (x, y))| format!("line {}:\n  netlink: {x}\n  nft -f:  {y}", i + 1))
                .collect();
            panic!(
                "the {kind}s differ ({} vs {} lines):\n{}\n--- netlink\n{a}\n--- nft -f\n{b}",
                a.lines().count(),
                b.lines().count(),
                diff.join("\n")
            );
        }
    }
}

netns_test! {
    fn netlink_and_nft_f_load_the_same_table() {
        for deny in [DenyAction::Drop, DenyAction::Reject] {
            assert_same_as_nft(&sample_plan(deny));
        }
    }
}

/// The sample plan with one change that the kernel refuses; (what is wrong, plan,
/// words the error must contain).
fn refused_plans() -> Vec<(&'static str, Plan, &'static str)> {
    let mut out = Vec::new();

    let mut dup = sample_plan(DenyAction::Drop);
    let copy = dup.sets[1].clone();
    dup.sets.insert(2, copy);
    out.push((
        "a set defined twice",
        dup,
        "set in_x_a_v4_ports: File exists",
    ));

    let mut overlap = sample_plan(DenyAction::Drop);
    if let SetElements::AddrProtoPort(v) = &mut overlap.sets[1].elements {
        // Inside 198.18.0.4-198.18.0.255 . tcp . 8000-8100, element 1.
        v.push(app(one("198.18.0.9"), 6, (8080, 8080)));
    }
    out.push((
        "overlapping concatenated intervals",
        overlap,
        "set in_x_a_v4_ports (element 4: 198.18.0.9 . tcp . 8080)",
    ));

    let mut dangling = sample_plan(DenyAction::Drop);
    dangling.maps[1]
        .elements
        .push((ip("198.18.0.77"), "no_such_chain".into()));
    out.push((
        "a verdict map jumping to a chain that does not exist",
        dangling,
        "map ingress_v4 (element 1: 198.18.0.77 : jump no_such_chain): No such file or directory",
    ));
    out
}

netns_test! {
    fn a_rejected_batch_changes_nothing() {
        let mut kernel = Netlink::new();
        kernel.apply(&sample_plan(DenyAction::Drop)).expect("apply");
        let before = [nft(LIST), nft(LIST_BYTECODE)];
        for (case, plan, words) in refused_plans() {
            let err = kernel.apply(&plan).expect_err(case);
            let text = err.to_string();
            println!("{case}: {text}");
            assert!(
                matches!(err, KernelError::Rejected { .. }),
                "{case}: not a rejection: {text}"
            );
            assert!(text.contains(words), "{case}: error does not name {words:?}: {text}");
            assert!(text.ends_with("nothing was changed"), "{case}: {text}");
            assert_eq!([nft(LIST), nft(LIST_BYTECODE)], before, "{case}: the table changed");
        }
        // An invalid plan never reaches the kernel: interval overlaps are refused
        // before anything is sent.
        let mut bad = sample_plan(DenyAction::Reject);
        if let SetElements::Addr(v) = &mut bad.sets[0].elements {
            v.push(one("198.18.1.7"));
        }
        let err = kernel.apply(&bad).expect_err("overlap");
        assert!(matches!(err, KernelError::Encode(_)), "{err}");
        assert!(err.to_string().contains("set in_x_a_v4_all: element 3 (198.18.1.7) overlaps"), "{err}");
        assert_eq!([nft(LIST), nft(LIST_BYTECODE)], before, "the table changed");
    }
}

netns_test! {
    fn the_generation_goes_up_with_each_commit_and_not_with_reads() {
        let mut generation = GenerationReader::open().expect("netlink socket");
        let mut kernel = Netlink::new();
        let g0 = generation.read().expect("generation");
        assert_eq!(generation.read().expect("generation"), g0, "nothing changed");
        kernel.apply(&sample_plan(DenyAction::Drop)).expect("apply");
        let g1 = generation.read().expect("generation");
        assert_eq!(g1, g0.wrapping_add(1), "one transaction, one generation");
        kernel.read().expect("read back");
        assert_eq!(generation.read().expect("generation"), g1, "a read changes nothing");
        // A replace of what this backend loaded is two transactions (see
        // `a_replace_swaps_in_two_transactions…`), a fresh backend's one.
        kernel.apply(&sample_plan(DenyAction::Reject)).expect("replace");
        assert_eq!(generation.read().expect("generation"), g1.wrapping_add(2));
        Netlink::new().apply(&sample_plan(DenyAction::Drop)).expect("replace");
        assert_eq!(generation.read().expect("generation"), g1.wrapping_add(3));
    }
}

netns_test! {
    fn flush_removes_the_netpol_table_only() {
        let mut kernel = Netlink::new();
        assert!(!kernel.flush().expect("flush of nothing"), "no table to flush yet");
        nft(&["add", "table", "inet", "other"]);
        nft(&["add", "chain", "inet", "other", "c", "{ type filter hook input priority 0; }"]);
        nft(&["add", "rule", "inet", "other", "c", "counter"]);
        let other = nft(&["list", "table", "inet", "other"]);
        kernel.apply(&sample_plan(DenyAction::Drop)).expect("apply");
        assert!(nft(&["list", "tables"]).contains("table inet netpol"));

        assert!(kernel.flush().expect("flush"), "the table was there");
        assert_eq!(nft(&["list", "tables"]), "table inet other\n");
        assert_eq!(nft(&["list", "table", "inet", "other"]), other);
        assert!(kernel.read().expect("read").is_none());
        assert!(!kernel.flush().expect("second flush"), "nothing left to flush");
        assert_eq!(nft(&["list", "tables"]), "table inet other\n");
    }
}

/// Runs `ip` with `args`.
fn ip_cmd(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

netns_test! {
    fn read_back_gives_chains_elements_and_deny_counters() {
        let plan = sample_plan(DenyAction::Drop);
        let mut kernel = Netlink::new();
        assert!(kernel.read().expect("read").is_none());
        kernel.apply(&plan).expect("apply");
        let loaded = kernel.read().expect("read").expect("a table");
        assert_eq!(loaded, LoadedTable::expected(&plan).unwrap());
        for set in &plan.sets {
            let got = loaded.sets.iter().find(|s| s.name == set.name).unwrap();
            assert_eq!(got.elements, set.elements.len(), "set {}", set.name);
        }
        assert_eq!(loaded.rule_count(), plan.rule_count());
        assert_eq!(loaded.element_count(), plan.element_count());

        // x/a (198.18.0.1) may send to 198.18.0.0/16 only: datagrams to 198.19.0.9
        // leave through a veth and are counted by its egress deny rule. Multicast is
        // off so no IGMP report adds to the count.
        ip_cmd(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        ip_cmd(&["link", "set", "v0", "multicast", "off"]);
        ip_cmd(&["addr", "add", "198.18.0.1/15", "dev", "v0"]);
        ip_cmd(&["link", "set", "v0", "up"]);
        ip_cmd(&["link", "set", "v1", "up"]);
        let sock = UdpSocket::bind("198.18.0.1:0").expect("bind");
        for _ in 0..5 {
            // Dropped in the output hook: the send itself fails with EPERM.
            let _ = sock.send_to(&[0u8; 100], "198.19.0.9:9");
        }
        let allowed = UdpSocket::bind("198.18.0.1:0").expect("bind");
        allowed.send_to(&[0u8; 100], "198.18.7.7:9").expect("an allowed send");

        let loaded = kernel.read().expect("read").expect("a table");
        let denies = loaded.denies();
        assert_eq!(denies.len(), 2, "{denies:?}");
        let out = denies.iter().find(|d| d.direction == Direction::Egress).unwrap();
        assert_eq!(out.endpoint, ObjectName::new("x", "a"));
        assert_eq!(out.chain, "out_x_a");
        // Each datagram is 20 bytes of IPv4 header, 8 of UDP and 100 of data.
        assert_eq!((out.packets, out.bytes), (5, 5 * 128));
        let inbound = denies.iter().find(|d| d.direction == Direction::Ingress).unwrap();
        assert_eq!((inbound.packets, inbound.bytes), (0, 0));
        // The cheap read (no set dumps) gives the same counters.
        assert_eq!(kernel.read_denies().expect("read denies"), Some(denies));

        // A new apply starts the counters again, with the same shape.
        kernel.apply(&plan).expect("apply again");
        assert_eq!(kernel.read().expect("read"), Some(LoadedTable::expected(&plan).unwrap()));
        kernel.flush().expect("flush");
        assert_eq!(kernel.read_denies().expect("read denies"), None);
    }
}

#[test]
fn fake_backend_keeps_the_last_plan_and_fails_when_told() {
    let mut fake = FakeBackend::new();
    assert!(fake.read().unwrap().is_none());
    assert!(!fake.flush().unwrap());
    let drop = sample_plan(DenyAction::Drop);
    let stats = fake.apply(&drop).unwrap();
    // Reading back counts kernel rules: the same as the plan's statements with drop.
    assert_eq!(stats.rules, drop.rule_count());
    assert_eq!(stats.elements, drop.element_count());
    assert_eq!(
        fake.read().unwrap(),
        Some(LoadedTable::expected(&drop).unwrap())
    );

    // A rejected apply leaves the previous plan in force.
    let reject = sample_plan(DenyAction::Reject);
    fake.fail_next("set in_x_a_v4_all", libc::EEXIST);
    let err = fake.apply(&reject).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST));
    assert!(
        err.to_string()
            .starts_with("the kernel rejected the batch at set in_x_a_v4_all: File exists"),
        "{err}"
    );
    assert_eq!(fake.loaded.as_ref(), Some(&drop));
    assert_eq!(fake.applies, 1);

    // With reject, each deny is three kernel rules.
    let stats = fake.apply(&reject).unwrap();
    assert_eq!(stats.rules, reject.rule_count() + 4);
    let loaded = fake.read().unwrap().unwrap();
    assert_eq!(loaded.rule_count(), reject.rule_count() + 4);
    assert_eq!(loaded.denies().len(), 2);

    assert!(fake.flush().unwrap());
    assert!(fake.read().unwrap().is_none());
    assert_eq!((fake.applies, fake.flushes), (2, 1));
}

#[test]
fn fake_backend_refuses_what_the_encoder_refuses() {
    let mut fake = FakeBackend::new();
    let mut plan = sample_plan(DenyAction::Drop);
    plan.chains[2].rules.insert(
        0,
        Stmt::AcceptAddr {
            family: Family::V4,
            field: AddrField::Saddr,
            set: "missing".into(),
        },
    );
    let err = fake.apply(&plan).unwrap_err();
    assert!(matches!(err, KernelError::Encode(_)));
    assert!(
        err.to_string()
            .contains("rule 1 of chain in_x_a uses @missing"),
        "{err}"
    );
    assert!(fake.loaded.is_none());
}

#[test]
fn serialized_batch_frames_every_message_as_encoded() {
    let mut plan = sample_plan(DenyAction::Reject);
    // Enough elements for several messages.
    plan.sets[2].elements = SetElements::Addr(
        (0..20_000u128)
            .map(|i| {
                let a = IpAddr::V6(((0x2001_0db8_0002_u128 << 80) | (2 * i)).into());
                AddrRange { start: a, end: a }
            })
            .collect(),
    );
    let batch = encode::encode(&plan).unwrap();
    let wire = ffi::serialize(&batch.msgs, TABLE_NAME, 7, None).unwrap();
    let msgs: Vec<_> = reply::messages(&wire.bytes).collect();
    assert_eq!(msgs.len(), batch.msgs.len() + 2);
    let (first, last) = (msgs[0].0, msgs[msgs.len() - 1].0);
    assert_eq!((first.kind, first.seq), (16, 7), "batch begin");
    assert_eq!((last.kind, last.seq), (17, wire.end_seq), "batch end");
    assert_ne!(
        last.flags & libc::NLM_F_ACK as u16,
        0,
        "the end asks for an ack"
    );
    let mut elements = 0;
    for (i, m) in batch.msgs.iter().enumerate() {
        let (h, bytes) = msgs[i + 1];
        assert_eq!(h.seq, 8 + i as u32);
        assert_eq!(wire.index_of(h.seq), Some(i));
        let (start, len) = wire.spans[i];
        assert_eq!(&wire.bytes[start..start + len], bytes);
        let want = match &m.msg {
            Msg::NewTable { .. } => libc::NFT_MSG_NEWTABLE,
            Msg::DelTable { .. } => libc::NFT_MSG_DELTABLE,
            Msg::NewChain(_) => libc::NFT_MSG_NEWCHAIN,
            Msg::NewSet(_) => libc::NFT_MSG_NEWSET,
            Msg::NewElems(_) => libc::NFT_MSG_NEWSETELEM,
            Msg::DelElems(_) => libc::NFT_MSG_DELSETELEM,
            Msg::NewRule(_) => libc::NFT_MSG_NEWRULE,
            Msg::FlushChain { .. } => libc::NFT_MSG_DELRULE,
            Msg::DelChain { .. } => libc::NFT_MSG_DELCHAIN,
            Msg::DelSet { .. } => libc::NFT_MSG_DELSET,
        };
        assert_eq!(h.kind, (10 << 8) | want as u16, "{}", m.what);
        if let Msg::NewElems(e) = &m.msg {
            // The size estimate that keeps libnftnl inside its buffer is an upper bound.
            let spans = reply::elem_spans(bytes);
            assert_eq!(spans.len(), e.elems.len(), "{}", m.what);
            for (j, (el, (at, n))) in e.elems.iter().zip(&spans).enumerate() {
                assert!(
                    *n <= elem_wire_len(el),
                    "{}: element {j}: {n} bytes",
                    m.what
                );
                // A sample is enough for the offset lookup, which walks the message.
                if j % 97 == 0 || j + 1 == spans.len() {
                    assert_eq!(reply::elem_index_at(bytes, at + n - 1), Some(j));
                }
            }
            elements += spans.len();
        }
    }
    assert!(elements > 40_000, "{elements}");
    assert_eq!(wire.index_of(wire.end_seq), None);
}

/// About 100,000 set elements and 1,000 rules: 200 isolated endpoints with five rules
/// each, sharing one set of 100,000 IPv6 peers (2001:db8::/32 holds enough distinct
/// non-adjacent addresses; 198.18.0.0/15 does not).
fn big_plan() -> Plan {
    use AddrField::Saddr;
    use Family::{V4, V6};
    let v6 = |x: u128| IpAddr::V6(((0x2001_0db8_u128 << 96) | x).into());
    let peers: Vec<AddrRange> = (0..100_000u128)
        .map(|i| AddrRange {
            start: v6(0x1_0000_0000 + 2 * i),
            end: v6(0x1_0000_0000 + 2 * i),
        })
        .collect();
    let mut sets = vec![
        set("big_v6_all", V6, SetElements::Addr(peers)),
        set(
            "some_v4_all",
            V4,
            SetElements::Addr(vec![range("198.19.0.0", "198.19.0.255")]),
        ),
        set(
            "some_v4_ports",
            V4,
            SetElements::AddrProtoPort(vec![app(
                range("198.19.1.0", "198.19.1.255"),
                6,
                (8000, 8080),
            )]),
        ),
        set(
            "some_v6_ports",
            V6,
            SetElements::AddrProtoPort(vec![app(
                range("2001:db8:1::", "2001:db8:1::ffff"),
                17,
                (53, 53),
            )]),
        ),
    ];
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut in_v4 = Vec::new();
    let mut in_v6 = Vec::new();
    let mut chains = vec![
        Chain {
            name: "input".into(),
            hook: Some(Hook::Input),
            rules: {
                let mut r = base_rules(Hook::Input);
                r.push(Stmt::Dispatch {
                    family: V4,
                    field: AddrField::Daddr,
                    map: "ingress_v4".into(),
                });
                r.push(Stmt::Dispatch {
                    family: V6,
                    field: AddrField::Daddr,
                    map: "ingress_v6".into(),
                });
                r
            },
        },
        Chain {
            name: "output".into(),
            hook: Some(Hook::Output),
            rules: base_rules(Hook::Output),
        },
    ];
    let mut locals = Vec::new();
    for e in 0..200u32 {
        let name = format!("in_ns_e{e:03}");
        in_v4.push((ip(&format!("198.18.1.{}", e + 1)), name.clone()));
        in_v6.push((v6(0xffff_0000 + u128::from(e)), name.clone()));
        chains.push(Chain {
            name: name.clone(),
            hook: None,
            rules: vec![
                Stmt::AcceptAddr {
                    family: V6,
                    field: Saddr,
                    set: "big_v6_all".into(),
                },
                Stmt::AcceptAddr {
                    family: V4,
                    field: Saddr,
                    set: "some_v4_all".into(),
                },
                Stmt::AcceptAddrProtoPort {
                    family: V4,
                    field: Saddr,
                    set: "some_v4_ports".into(),
                },
                Stmt::AcceptAddrProtoPort {
                    family: V6,
                    field: Saddr,
                    set: "some_v6_ports".into(),
                },
                Stmt::Deny {
                    action: DenyAction::Drop,
                    comment: format!("deny ingress ns/e{e:03}"),
                },
            ],
        });
        locals.push(LocalEndpoint {
            id: ObjectName::new("ns", format!("e{e:03}")),
            ingress_chain: Some(name),
            egress_chain: None,
        });
    }
    in_v4.sort();
    in_v6.sort();
    Plan {
        table: TABLE_NAME.into(),
        sets,
        maps: vec![
            VerdictMap {
                name: "ingress_v4".into(),
                family: V4,
                elements: in_v4,
            },
            VerdictMap {
                name: "ingress_v6".into(),
                family: V6,
                elements: in_v6,
            },
        ],
        chains,
        locals,
    }
}

fn median(mut v: Vec<std::time::Duration>) -> std::time::Duration {
    v.sort();
    v[v.len() / 2]
}

netns_test! {
    /// Not a benchmark (that lives in `benches/`): a measurement for the record, run
    /// with `cargo test -p netpol-daemon --release -- --ignored --nocapture big_plan`.
    #[ignore = "a measurement, not a test; run by hand"]
    fn measure_big_plan_netlink_against_nft_f() {
        use std::time::Instant;
        let plan = big_plan();
        println!(
            "plan: {} rules, {} elements",
            plan.rule_count(),
            plan.element_count()
        );
        let script = crate::testns::TempFile::new("big.nft", &rules_compiler::render::nft(&plan));
        let mut kernel = Netlink::new();
        let nft_f = || {
            let t = Instant::now();
            let ok = Command::new("nft")
                .arg("-f")
                .arg(script.path())
                .status()
                .expect("nft")
                .success();
            assert!(ok, "nft -f failed");
            t.elapsed()
        };
        let mut rows = Vec::new();
        for (what, replace) in [("load into an empty namespace", false), ("replace the loaded table", true)] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..3 {
                kernel.flush().expect("flush");
                if replace {
                    kernel.apply(&plan).expect("apply");
                }
                let t = Instant::now();
                let stats = kernel.apply(&plan).expect("apply");
                ours.push(t.elapsed());
                println!("  netlink: {stats:?}");
                kernel.flush().expect("flush");
                if replace {
                    kernel.apply(&plan).expect("apply");
                }
                theirs.push(nft_f());
            }
            rows.push(format!(
                "{what}: netlink {:?} (runs {ours:?}), nft -f {:?} (runs {theirs:?})",
                median(ours.clone()),
                median(theirs.clone())
            ));
        }
        let loaded = kernel.read().expect("read").expect("table");
        assert_eq!(loaded.element_count(), plan.element_count());
        let t = Instant::now();
        kernel.read().expect("read");
        rows.push(format!("read back: {:?}", t.elapsed()));
        for r in rows {
            println!("{r}");
        }
    }
}

const VARIETY_INVENTORY: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: red}}
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: x, name: a, labels: {app: a}}
ips: [198.18.0.1, "2001:db8::1"]
ports:
- {name: http, port: 8080}
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: x, name: b, labels: {app: b}}
ips: [198.18.0.2, "2001:db8::2"]
ports:
- {name: http, port: 9090}
- {name: metrics, port: 9100, protocol: SCTP}
---
apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: y, name: c, labels: {app: c}}
ips: [198.18.3.7]
ports:
- {name: http, port: 80}
"#;

const VARIETY_POLICIES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: a}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 198.18.0.0/16, except: [198.18.128.0/17, 198.18.0.0/24]}
    - ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:8000::/33"]}
    ports:
    - {protocol: TCP, port: http}
    - {protocol: UDP, port: 5000, endPort: 6000}
  - from:
    - namespaceSelector: {}
      podSelector: {matchLabels: {app: b}}
  egress:
  - to:
    - namespaceSelector: {}
    ports:
    - {protocol: TCP, port: http}
    - {protocol: SCTP, port: metrics}
  - to:
    - ipBlock: {cidr: 0.0.0.0/0, except: [198.18.0.0/15]}
    ports:
    - {protocol: TCP, port: 443}
    - {protocol: UDP}
  - ports:
    - {protocol: UDP, port: 53}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: x, name: b}
spec:
  podSelector: {matchLabels: {app: b}}
  policyTypes: [Ingress, Egress]
"#;

/// Plans compiled from policies with ipBlock excepts (v4, v6), named ports meaning
/// different numbers, endPort ranges, protocol-only ports, SCTP, deny-all, both deny
/// actions.
fn compiled_plans() -> Vec<(String, Plan)> {
    use rules_compiler::load::Input;
    use rules_compiler::plan::{build, Options};
    use rules_compiler::resolve::Index;
    let input = |path: &str, text: &str| Input {
        path: path.into(),
        text: text.into(),
    };
    let loaded = rules_compiler::load_model(
        &[input("policies.yaml", VARIETY_POLICIES)],
        &[input("inventory.yaml", VARIETY_INVENTORY)],
    )
    .expect("the variety inputs are valid");
    let index = Index::new(&loaded.model);
    let id = |ns: &str, name: &str| {
        loaded
            .model
            .inventory
            .endpoint_index(&ObjectName::new(ns, name))
            .unwrap()
    };
    let mut out = Vec::new();
    for (locals, what) in [
        (vec![id("x", "a")], "x/a"),
        (vec![id("x", "b")], "x/b"),
        (vec![id("x", "a"), id("x", "b"), id("y", "c")], "all"),
        (vec![id("y", "c")], "not isolated"),
    ] {
        for deny in [DenyAction::Drop, DenyAction::Reject] {
            let plan = build(&index, &locals, &Options { deny });
            out.push((format!("{what}, {deny:?}"), plan));
        }
    }
    out
}

netns_test! {
    fn compiled_plans_load_the_same_through_netlink_and_nft_f() {
        for (what, plan) in compiled_plans() {
            println!("{what}: {} rules, {} elements", plan.rule_count(), plan.element_count());
            assert_same_as_nft(&plan);
            let loaded = Netlink::new().read().expect("read").expect("a table");
            assert_eq!(loaded, LoadedTable::expected(&plan).unwrap(), "{what}");
        }
    }
}

/// The elements messages are written without libnftnl's per-element objects: they
/// must come out byte for byte as libnftnl builds them, for every element shape (interval
/// starts and ends, open intervals with user data, concatenations with a key end,
/// verdict map jumps, the anonymous ICMPv6 set) and for messages of many elements.
#[test]
fn elements_are_serialized_as_libnftnl_serializes_them() {
    let mut big = sample_plan(DenyAction::Drop);
    big.sets[2].elements = SetElements::Addr(
        (0..5_000u128)
            .map(|i| {
                let a = IpAddr::V6(((0x2001_0db8_0002_u128 << 80) | (2 * i)).into());
                AddrRange { start: a, end: a }
            })
            .collect(),
    );
    let mut checked = 0;
    let mut shapes = [false; 4];
    for plan in [sample_plan(DenyAction::Reject), big] {
        let batch = encode::encode(&plan).unwrap();
        for (i, m) in batch.msgs.iter().enumerate() {
            let Msg::NewElems(e) = &m.msg else { continue };
            for el in &e.elems {
                shapes[0] |= el.interval_end;
                shapes[1] |= el.open;
                shapes[2] |= el.key_end.is_some();
                shapes[3] |= el.jump.is_some();
            }
            let seq = 100 + i as u32;
            let ours = ffi::elems_msg_ours(seq, TABLE_NAME, e);
            let theirs = ffi::elems_msg_libnftnl(seq, TABLE_NAME, e);
            assert_eq!(ours, theirs, "{}", m.what);
            checked += 1;
        }
    }
    assert_eq!(shapes, [true; 4], "every element shape is covered");
    assert!(checked > 10, "{checked}");
}

// ------------------------------------------------------------ incremental updates ----

/// A small deterministic generator (xorshift), so a failing step can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One address range of a set's content: cell `k` of 16 addresses above a base, the
/// range `[16k + a, 16k + b]` inside it (1 <= a <= b <= 14, so ranges of two cells never
/// touch); cell 0 starts at the family's first address and the last cell runs to its
/// last address, so the gap element below the first interval and open intervals come
/// and go.
fn cell(family: Family, k: u64, a: u64, b: u64) -> AddrRange {
    let (base, max) = match family {
        Family::V4 => (
            u128::from(u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0))),
            u128::from(u32::MAX),
        ),
        Family::V6 => (
            u128::from(
                ip("2001:db8::")
                    .to_string()
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap(),
            ),
            u128::MAX,
        ),
    };
    let addr = |x: u128| match family {
        Family::V4 => IpAddr::V4(std::net::Ipv4Addr::from(x as u32)),
        Family::V6 => IpAddr::V6(std::net::Ipv6Addr::from(x)),
    };
    match k {
        0 => AddrRange {
            start: addr(0),
            end: addr(base - 1 - u128::from(a)),
        },
        CELLS_LAST => AddrRange {
            start: addr(max - 1000 + u128::from(a)),
            end: addr(max),
        },
        _ => {
            let lo = base + 16 * u128::from(k);
            AddrRange {
                start: addr(lo + u128::from(a)),
                end: addr(lo + u128::from(b)),
            }
        }
    }
}

const CELLS_LAST: u64 = 40;

/// Random content for each set and map of `plan`, keeping its shape: random cells with
/// random bounds, random protocols and port ranges, map keys with random targets.
fn shuffle_members(plan: &Plan, rng: &mut Rng) -> Plan {
    let mut out = plan.clone();
    for set in &mut out.sets {
        // Leave some sets alone, as a real edit does.
        if rng.below(3) == 0 {
            continue;
        }
        let family = set.family;
        let bounds = |rng: &mut Rng| {
            let a = 1 + rng.below(14);
            let b = a + rng.below(15 - a);
            (a, b)
        };
        match &mut set.elements {
            SetElements::Addr(v) => {
                v.clear();
                for k in 0..=CELLS_LAST {
                    if rng.below(3) == 0 {
                        let (a, b) = bounds(rng);
                        v.push(cell(family, k, a, b));
                    }
                }
            }
            SetElements::AddrProtoPort(v) => {
                v.clear();
                for k in 1..CELLS_LAST {
                    for proto in [6u8, 17] {
                        for p in 0..3u16 {
                            if rng.below(8) == 0 {
                                let (a, b) = bounds(rng);
                                let lo = 1000 * (p + 1);
                                v.push(app(
                                    cell(family, k, a, b),
                                    proto,
                                    (lo + a as u16, lo + 10 * b as u16),
                                ));
                            }
                        }
                    }
                }
                if rng.below(4) == 0 {
                    v.push(app(cell(family, 0, 3, 3), 132, (9100, 9100)));
                }
                v.sort();
            }
        }
    }
    for map in &mut out.maps {
        let family = map.family;
        let targets: Vec<&str> = plan
            .chains
            .iter()
            .filter(|c| c.hook.is_none())
            .map(|c| c.name.as_str())
            .collect();
        map.elements.clear();
        for k in 1..30u64 {
            if rng.below(2) == 0 {
                let key = cell(family, k, 1, 1).start;
                let target = targets[rng.below(targets.len() as u64) as usize];
                map.elements.push((key, target.to_string()));
            }
        }
    }
    out
}

/// A listing with the elements of each set in sorted order, one line per set: the
/// kernel lists a concatenated set's elements in the order they were added, which a
/// full load and an update cannot share.
fn sort_listed_elements(listing: &str) -> String {
    let mut out = String::new();
    let mut pending: Option<(String, String)> = None;
    for line in listing.lines() {
        if let Some((head, mut body)) = pending.take() {
            body.push_str(line);
            if line.contains('}') {
                out.push_str(&joined_elements(&head, &body));
            } else {
                pending = Some((head, body));
            }
            continue;
        }
        match line.split_once("elements = {") {
            Some((head, rest)) if rest.contains('}') => {
                out.push_str(&joined_elements(head, rest));
            }
            Some((head, rest)) => pending = Some((head.to_string(), rest.to_string())),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

fn joined_elements(head: &str, body: &str) -> String {
    let inner = body.split('}').next().unwrap_or("");
    let mut elements: Vec<&str> = inner.split(',').map(str::trim).collect();
    elements.sort_unstable();
    format!("{head}elements = {{ {} }}\n", elements.join(", "))
}

/// The netpol table here: its listing and its bytecode listing with raw elements.
fn listings() -> [String; 2] {
    [
        sort_listed_elements(&nft(LIST)),
        sort_listed_elements(&sort_elements(&nft(LIST_BYTECODE))),
    ]
}

/// `plan` loaded from its nft text in another fresh namespace, listed the same way.
fn listings_of_fresh_load(plan: &Plan) -> [String; 2] {
    let mut theirs = nft_elsewhere(&rules_compiler::render::nft(plan), &[LIST, LIST_BYTECODE]);
    theirs[1] = sort_elements(&theirs[1]);
    [
        sort_listed_elements(&theirs[0]),
        sort_listed_elements(&theirs[1]),
    ]
}

fn first_difference(a: &str, b: &str) -> String {
    a.lines()
        .zip(b.lines())
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .take(6)
        .map(|(i, (x, y))| format!("line {}:\n  updated: {x}\n  fresh:   {y}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

netns_test! {
    fn an_update_leaves_the_kernel_as_a_fresh_load_of_the_new_plan() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut kernel = Netlink::new();
        let mut old = sample_plan(DenyAction::Drop);
        kernel.apply(&old).expect("apply");
        let mut updates = 0;
        for step in 0..40 {
            let new = shuffle_members(&old, &mut rng);
            let delta = Update::between(&old, &new).expect("element changes only");
            let stats = kernel.update(&delta).unwrap_or_else(|e| panic!("step {step}: {e}\n{delta:#?}"));
            assert_eq!(stats.elements, delta.changed());
            updates += usize::from(!delta.is_empty());
            let ours = listings();
            let fresh = listings_of_fresh_load(&new);
            for (kind, (a, b)) in ["listing", "bytecode listing"].iter().zip(ours.iter().zip(fresh.iter())) {
                assert!(
                    a == b,
                    "step {step}: the {kind} after the update differs from a fresh load:\n{}\n--- updated\n{a}\n--- fresh\n{b}\n--- delta\n{delta:#?}",
                    first_difference(a, b)
                );
            }
            old = new;
        }
        assert!(updates > 30, "only {updates} steps changed anything");
    }
}

netns_test! {
    fn an_update_is_refused_when_someone_else_changed_the_ruleset() {
        let mut kernel = Netlink::new();
        let plan = sample_plan(DenyAction::Drop);
        let next = shuffle_members(&plan, &mut Rng(7));
        let delta = Update::between(&plan, &next).unwrap();
        assert!(!delta.is_empty());
        let err = kernel.update(&delta).expect_err("nothing loaded yet");
        assert!(matches!(err, KernelError::Stale(_)), "{err}");

        kernel.apply(&plan).expect("apply");
        let before = listings();
        nft(&["add", "table", "inet", "other"]);
        let err = kernel.update(&delta).expect_err("the generation moved");
        assert!(matches!(err, KernelError::Stale(_)), "{err}");
        assert_eq!(listings(), before, "a refused update changed the table");
        // A replace takes over again, and updates work on top of it.
        kernel.apply(&plan).expect("apply");
        kernel.update(&delta).expect("update after the replace");
        assert_eq!(listings(), listings_of_fresh_load(&next));
    }
}

netns_test! {
    fn an_empty_update_is_the_generation_check_alone() {
        let mut kernel = Netlink::new();
        let plan = sample_plan(DenyAction::Drop);
        let next = shuffle_members(&plan, &mut Rng(5));
        let empty = Update::between(&plan, &plan).unwrap();
        assert!(empty.is_empty());
        kernel.apply(&plan).expect("apply");
        let before = listings();
        // In step: accepted, nothing changed, and the next real update still fits.
        kernel.update(&empty).expect("nothing changed since our apply");
        kernel.update(&empty).expect("and again");
        assert_eq!(listings(), before);
        kernel
            .update(&Update::between(&plan, &next).unwrap())
            .expect("an update after empty ones");
        // Someone deletes the table: the empty update says so.
        nft(&["delete", "table", "inet", "netpol"]);
        let err = kernel.update(&empty).expect_err("the table is gone");
        assert!(matches!(err, KernelError::Stale(_)), "{err}");
    }
}

/// `listings()` with the plan's names and without rule handles: a swap, or a
/// transaction the kernel refused, moves the table's handle counter on.
fn listings_by_plan_names() -> [String; 2] {
    listings().map(|l| without_handles(&Slot::plain_listing(&l)))
}

/// [`listings_of_fresh_load`] without rule handles.
fn fresh_without_handles(plan: &Plan) -> [String; 2] {
    listings_of_fresh_load(plan).map(|l| without_handles(&l))
}

/// A bytecode listing's rule heads (`inet netpol input 55 54`: handle, previous
/// handle) without the handles.
fn without_handles(listing: &str) -> String {
    listing
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            let numbers = words.len() > 3 && words[3..].iter().all(|w| w.parse::<u64>().is_ok());
            if words.len() > 3 && words[0] == "inet" && numbers {
                words[..3].join(" ")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `plan` with another deny action in every endpoint chain and its egress chain
/// renamed: a replace that keeps the base chains but no endpoint chain.
fn reshaped(plan: &Plan) -> Plan {
    let mut out = plan.clone();
    let rename = |c: &str| {
        if c == "out_x_a" {
            "out_x_c".to_string()
        } else {
            c.to_string()
        }
    };
    for chain in &mut out.chains {
        chain.name = rename(&chain.name);
        for stmt in &mut chain.rules {
            if let Stmt::Deny { action, .. } = stmt {
                *action = match action {
                    DenyAction::Drop => DenyAction::Reject,
                    DenyAction::Reject => DenyAction::Drop,
                };
            }
        }
    }
    for map in &mut out.maps {
        for (_, target) in &mut map.elements {
            *target = rename(target);
        }
    }
    for local in &mut out.locals {
        local.egress_chain = local.egress_chain.as_deref().map(rename);
    }
    out
}

netns_test! {
    fn a_replace_swaps_in_two_transactions_and_leaves_what_a_fresh_load_leaves() {
        let mut rng = Rng(0x5eed);
        let mut kernel = Netlink::new();
        let mut generation = GenerationReader::open().expect("generation reader");
        let mut plan = sample_plan(DenyAction::Drop);
        kernel.apply(&plan).expect("apply");
        assert!(!nft(LIST).contains(Slot::NEXT_PREFIX), "a first load has the plan's names");
        for step in 0..6 {
            let next = shuffle_members(&reshaped(&plan), &mut rng);
            let before = generation.read().unwrap();
            let stats = kernel.apply(&next).expect("replace");
            assert_eq!(generation.read().unwrap(), before + 2, "step {step}: two transactions");
            let full = encode::encode(&next).unwrap();
            assert_eq!((stats.rules, stats.elements), (full.rules, full.elements));
            let listed = nft(LIST);
            // Odd loads under the other slot's names, even ones under the plan's.
            assert_eq!(
                listed.contains(&format!("map {}ingress_v4", Slot::NEXT_PREFIX)),
                step % 2 == 0,
                "step {step}:\n{listed}"
            );
            let ours = listings_by_plan_names();
            let fresh = fresh_without_handles(&next);
            for (kind, (a, b)) in ["listing", "bytecode listing"].iter().zip(ours.iter().zip(fresh.iter())) {
                assert!(a == b, "step {step}: the {kind} after the swap differs from a fresh load:\n{}\n--- swapped\n{a}\n--- fresh\n{b}", first_difference(a, b));
            }
            assert_eq!(kernel.read().unwrap(), Some(LoadedTable::expected(&next).unwrap()), "step {step}");
            // An update goes to the names in use.
            let updated = shuffle_members(&next, &mut rng);
            let delta = Update::between(&next, &updated).expect("element changes only");
            kernel.update(&delta).unwrap_or_else(|e| panic!("step {step}: update: {e}"));
            assert_eq!(listings_by_plan_names(), fresh_without_handles(&updated), "step {step}: after the update");
            plan = updated;
        }
    }
}

netns_test! {
    fn a_replace_drops_no_packet_that_both_plans_allow() {
        // x/a (198.18.0.1) may send to 198.18.0.0/16; its set holds 30,000 more single
        // addresses (every other one of 198.19.0.0/16 from .1), so each commit takes
        // the kernel a while. UDP from one socket: with no reply seen, every datagram is
        // a new connection to conntrack and meets the rules; one the output hook drops
        // fails the send with EPERM.
        let mut plan = sample_plan(DenyAction::Drop);
        let set = plan.sets.iter_mut().find(|s| s.name == "out_x_a_v4_all").unwrap();
        let SetElements::Addr(v) = &mut set.elements else { unreachable!() };
        v.extend((0..30_000u32).map(|i| {
            let a = IpAddr::V4((u32::from(std::net::Ipv4Addr::new(198, 19, 0, 1)) + 2 * i).into());
            AddrRange { start: a, end: a }
        }));
        let other = reshaped(&plan);
        ip_cmd(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        ip_cmd(&["link", "set", "v0", "multicast", "off"]);
        ip_cmd(&["addr", "add", "198.18.0.1/15", "dev", "v0"]);
        ip_cmd(&["link", "set", "v0", "up"]);
        ip_cmd(&["link", "set", "v1", "up"]);
        ip_cmd(&["neigh", "add", "198.18.7.7", "lladdr", "02:00:00:00:00:01", "dev", "v0", "nud", "permanent"]);
        let mut kernel = Netlink::new();
        kernel.apply(&plan).expect("apply");
        let sock = UdpSocket::bind("198.18.0.1:0").expect("bind");
        sock.send_to(b"x", "198.18.7.7:9").expect("allowed before the replaces");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sender = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut sent, mut dropped) = (0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match sock.send_to(b"x", "198.18.7.7:9") {
                        Ok(_) => sent += 1,
                        Err(e) if e.raw_os_error() == Some(libc::EPERM) => dropped += 1,
                        Err(e) => panic!("send: {e}"),
                    }
                    std::thread::sleep(std::time::Duration::from_micros(20));
                }
                (sent, dropped)
            })
        };
        let mut generation = GenerationReader::open().expect("generation reader");
        let before = generation.read().unwrap();
        for i in 0..20 {
            kernel.apply(if i % 2 == 0 { &other } else { &plan }).expect("replace");
        }
        assert_eq!(generation.read().unwrap(), before + 40, "each replace in two transactions");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (sent, dropped) = sender.join().unwrap();
        assert!(sent > 1_000, "only {sent} datagrams sent");
        assert_eq!(dropped, 0, "{dropped} of {} datagrams that both plans allow were dropped during 20 replaces", sent + dropped);
    }
}

netns_test! {
    fn a_replace_that_cannot_swap_replaces_the_table_in_one_transaction() {
        let mut kernel = Netlink::new();
        let mut generation = GenerationReader::open().expect("generation reader");
        let plan = sample_plan(DenyAction::Drop);
        kernel.apply(&plan).expect("apply");
        // What a first transaction left behind when a second failed, in a commit the
        // backend is told is not about its table: the first transaction of the next
        // swap is refused (the set exists), and the whole table is replaced instead.
        let spare = format!("{}in_x_a_v4_all", Slot::NEXT_PREFIX);
        nft(&["add", "set", "inet", "netpol", &spare, "{ type ipv4_addr; }"]);
        kernel.follow(generation.read().unwrap());
        let next = reshaped(&plan);
        kernel.apply(&next).expect("the replace in one transaction");
        let listed = listings();
        assert!(!listed[0].contains(Slot::NEXT_PREFIX), "no spare object left, the plan's names:\n{}", listed[0]);
        assert_eq!(listed.map(|l| without_handles(&l)), fresh_without_handles(&next));
        // Someone else's commit the backend did not follow: no swap on a table it does
        // not know, one transaction again.
        nft(&["add", "table", "inet", "other"]);
        let before = generation.read().unwrap();
        kernel.apply(&plan).expect("replace");
        assert_eq!(generation.read().unwrap(), before + 1, "one transaction");
        assert_eq!(listings().map(|l| without_handles(&l)), fresh_without_handles(&plan));
        // And a swap again on top of that.
        kernel.apply(&next).expect("replace");
        assert_eq!(generation.read().unwrap(), before + 3, "two transactions");
        assert_eq!(listings_by_plan_names(), fresh_without_handles(&next));
    }
}

netns_test! {
    fn a_rejected_update_changes_nothing_and_names_the_element() {
        let mut kernel = Netlink::new();
        let plan = sample_plan(DenyAction::Drop);
        kernel.apply(&plan).expect("apply");
        let before = listings();
        // Adds a good element, then one that overlaps an existing interval: the kernel
        // refuses the second, and with it the whole batch.
        let mut delta = rules_compiler::plan::delta(&plan, &plan).unwrap();
        delta.sets.push(rules_compiler::plan::SetDelta {
            name: "in_x_a_v4_ports".into(),
            family: Family::V4,
            delete: SetElements::AddrProtoPort(vec![]),
            add: SetElements::AddrProtoPort(vec![
                app(one("198.18.0.3"), 6, (22, 22)),
                app(one("198.18.0.9"), 6, (8080, 8080)),
            ]),
        });
        let delta = Update::new(delta, &plan, &plan);
        let err = kernel.update(&delta).expect_err("overlap");
        let text = err.to_string();
        assert!(matches!(err, KernelError::Rejected { .. }), "{text}");
        assert!(text.contains("set in_x_a_v4_ports (element 1: adding 198.18.0.9 . tcp . 8080)"), "{text}");
        assert_eq!(listings(), before);
        // The failure forgets the generation: the next change must be a full replace.
        let err = kernel.update(&Update::between(&plan, &plan).unwrap()).expect_err("stale");
        assert!(matches!(err, KernelError::Stale(_)), "{err}");
    }
}

#[test]
fn the_fake_applies_updates_and_fails_when_told() {
    let mut fake = FakeBackend::new();
    let plan = sample_plan(DenyAction::Drop);
    let next = shuffle_members(&plan, &mut Rng(11));
    let delta = Update::between(&plan, &next).unwrap();
    assert!(matches!(fake.update(&delta), Err(KernelError::Stale(_))));
    fake.apply(&plan).unwrap();
    fake.fail_next("set x", libc::ENOMEM);
    assert!(fake.update(&delta).is_err());
    assert_eq!(fake.loaded.as_ref(), Some(&plan));
    let stats = fake.update(&delta).unwrap();
    assert_eq!(stats.elements, delta.changed());
    assert_eq!(fake.loaded.as_ref(), Some(&next));
    assert_eq!(fake.updates, 1);
}

/// Two endpoints whose names share more than a comment holds: their comments are cut to
/// the same text, and only the plan tells their counters apart.
#[test]
fn deny_counters_are_labelled_by_chain_not_by_a_cut_comment() {
    use super::{ChainOwners, DenyCounter, LoadedChain, RuleCounter};
    let long = |tail: &str| ObjectName::new("ns", format!("{}{tail}", "x".repeat(200)));
    let (a, b) = (long("-a"), long("-b"));
    let cut = format!("deny ingress ns/{}...", "x".repeat(110));
    let chain = |name: &str| LoadedChain {
        name: name.into(),
        hook: None,
        rules: 2,
        counters: vec![RuleCounter {
            comment: Some(cut.clone()),
            packets: 1,
            bytes: 60,
        }],
    };
    let table = LoadedTable {
        name: TABLE_NAME.into(),
        chains: vec![chain("in_a"), chain("in_b"), chain("in_foreign")],
        sets: vec![],
    };
    // Without the plan, `show` sees three counters under one cut, marked name.
    let read = table.denies();
    assert_eq!(read.len(), 3);
    assert!(read.iter().all(DenyCounter::is_cut));
    assert_eq!(read[0].endpoint, read[1].endpoint);

    let plan = Plan {
        table: TABLE_NAME.into(),
        sets: vec![],
        maps: vec![],
        chains: vec![],
        locals: vec![
            LocalEndpoint {
                id: a.clone(),
                ingress_chain: Some("in_a".into()),
                egress_chain: None,
            },
            LocalEndpoint {
                id: b.clone(),
                ingress_chain: Some("in_b".into()),
                egress_chain: None,
            },
        ],
    };
    let labelled = ChainOwners::of(&plan).label(read);
    // The plan's chains get whole names; the unknown chain's cut label is left out.
    let got: Vec<(ObjectName, Direction, &str)> = labelled
        .iter()
        .map(|c| (c.endpoint.clone(), c.direction, c.chain.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (a, Direction::Ingress, "in_a"),
            (b, Direction::Ingress, "in_b")
        ]
    );
    // An unknown chain with a whole comment keeps it.
    let whole = LoadedTable {
        chains: vec![LoadedChain {
            counters: vec![RuleCounter {
                comment: Some("deny egress web/x".into()),
                packets: 0,
                bytes: 0,
            }],
            ..chain("out_web_x")
        }],
        ..table
    };
    let kept = ChainOwners::default().label(whole.denies());
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].endpoint, ObjectName::new("web", "x"));
}

// ------------------------------------------------------------------ conntrack ----

/// A TCP connection over loopback in this namespace: (client, server side, the flow's
/// conntrack entry as dumped).
fn tracked_connection(
    kernel: &mut Netlink,
    listener: &std::net::TcpListener,
) -> (std::net::TcpStream, std::net::TcpStream, super::Flow) {
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
                    == super::L4::Ports {
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
        use super::{FlowCut, LocalSide};
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

// ------------------------------------------------------------------ ownership ----

mod ownership {
    use super::*;
    use crate::{Claim, Ownership};

    /// `nft args`: (succeeded, stderr).
    fn try_nft(args: &[&str]) -> (bool, String) {
        let out = Command::new("nft")
            .args(args)
            .output()
            .expect("running nft");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn tables() -> String {
        nft(&["list", "tables"])
    }

    /// A listing without its first two lines: the table's head (nft names the owner's
    /// program there) and its flags (nft 1.0.6 prints no name for `persist`).
    fn body(listing: &str) -> String {
        listing.lines().skip(2).collect::<Vec<_>>().join("\n")
    }

    netns_test! {
        fn an_owned_table_refuses_every_other_process_and_socket() {
            let plan = sample_plan(DenyAction::Drop);
            let mut owner = Netlink::owner();
            owner.apply(&plan).expect("apply");
            assert_eq!(owner.ownership(), Ownership::Owned);
            let info = owner.table_info().expect("table info").expect("a table");
            println!("{info:?}\n{}", nft(LIST));
            assert!(info.owned() && !info.orphaned(), "{info:?}");
            assert!(info.is_netpols(), "{info:?}");
            let before = nft(LIST);

            for args in [
                &["delete", "table", "inet", "netpol"][..],
                &["add", "rule", "inet", "netpol", "input", "accept"],
                &["flush", "chain", "inet", "netpol", "input"],
                &["add", "chain", "inet", "netpol", "extra"],
            ] {
                let (ok, err) = try_nft(args);
                assert!(!ok, "nft {args:?} succeeded on an owned table");
                assert!(err.contains("Operation not permitted"), "nft {args:?}: {err}");
            }
            // `flush ruleset` passes an owned table by (and succeeds).
            nft(&["add", "table", "ip", "other"]);
            let (ok, err) = try_nft(&["flush", "ruleset"]);
            assert!(ok, "{err}");
            assert_eq!(tables(), "table inet netpol\n");
            assert_eq!(nft(LIST), before, "the owned table is untouched");

            // Another socket of this very process is someone else too, and is told who
            // owns the table.
            let mut other = Netlink::new();
            let err = other.apply(&plan).expect_err("apply by a second socket");
            assert!(
                matches!(&err, KernelError::NotOurs { port, .. } if Some(*port) == info.owner),
                "{err}"
            );
            // This test binary holds the owner's socket.
            let me = format!("(pid {})", std::process::id());
            assert!(err.to_string().contains(&me), "{err}");
            let err = other.flush().expect_err("flush by a second socket");
            assert!(matches!(err, KernelError::NotOurs { .. }), "{err}");
            assert_eq!(nft(LIST), before);

            // The owner itself may do everything.
            owner.apply(&plan).expect("the owner's replace");
            let mut fewer = plan.clone();
            if let SetElements::Addr(v) = &mut fewer.sets[0].elements {
                v.pop();
            }
            let delta = Update::between(&plan, &fewer).unwrap();
            assert_eq!(delta.changed(), 1);
            owner.update(&delta).expect("the owner's update");
            assert!(owner.table_info().unwrap().unwrap().owned());
            assert!(owner.flush().expect("the owner's flush"));
            assert_eq!(tables(), "");
        }
    }

    netns_test! {
        fn an_owned_table_outlives_its_owner_and_the_next_one_takes_it_over() {
            let plan = sample_plan(DenyAction::Drop);
            let mut first = Netlink::owner();
            first.apply(&plan).expect("apply");
            let listing = nft(LIST);
            drop(first);
            // The owner's socket is closed: the table stays, with no owner.
            let info = Netlink::new().table_info().unwrap().expect("the table stayed");
            assert!(info.orphaned(), "{info:?}");
            assert_eq!(body(&nft(LIST)), body(&listing), "in force as it was");

            let mut second = Netlink::owner();
            assert_eq!(second.claim().expect("claim"), Claim::TakenOver);
            let info = second.table_info().unwrap().unwrap();
            assert!(info.owned() && info.is_netpols(), "{info:?}");
            assert_eq!(body(&nft(LIST)), body(&listing), "taking over changes nothing else");
            let (ok, err) = try_nft(&["delete", "table", "inet", "netpol"]);
            assert!(!ok && err.contains("Operation not permitted"), "{err}");
            assert_eq!(second.claim().expect("claim again"), Claim::OwnedBy(info.owner.unwrap()));
            second.apply(&plan).expect("the new owner replaces it");
            assert!(second.table_info().unwrap().unwrap().owned());
        }
    }

    netns_test! {
        fn a_table_without_owner_is_anyones_until_netpold_replaces_it() {
            let plan = sample_plan(DenyAction::Drop);
            // As `netpolctl apply` makes it: no flags, netpol's comment.
            Netlink::new().apply(&plan).expect("apply");
            let info = Netlink::new().table_info().unwrap().unwrap();
            assert!(!info.owned() && !info.orphaned() && info.is_netpols(), "{info:?}");
            let mut daemon = Netlink::owner();
            assert_eq!(daemon.claim().unwrap(), Claim::Unowned { netpols: true });
            daemon.apply(&plan).expect("replace");
            assert!(daemon.table_info().unwrap().unwrap().owned());
            // An orphan can be deleted by anyone: the window between two netpolds.
            drop(daemon);
            let (ok, err) = try_nft(&["delete", "table", "inet", "netpol"]);
            assert!(ok, "{err}");
            assert_eq!(tables(), "");
            assert_eq!(Netlink::owner().claim().unwrap(), Claim::NoTable);
        }
    }
}

// -------------------------------------------------------------- notifications ----

mod notifications {
    use super::*;
    use crate::{Monitor, News};

    fn commits(news: &[News]) -> Vec<&crate::Commit> {
        news.iter()
            .filter_map(|n| match n {
                News::Commit(c) => Some(c),
                News::Lost => None,
            })
            .collect()
    }

    netns_test! {
        fn each_commit_is_announced_with_its_generation_its_process_and_what_it_did() {
            let mut monitor = Monitor::open().expect("subscribe");
            let mut kernel = Netlink::owner();
            kernel.apply(&sample_plan(DenyAction::Drop)).expect("apply");
            let mine = GenerationReader::open().unwrap().read().unwrap();
            assert!(kernel.committed(mine), "the backend knows its commit");
            nft(&["add", "table", "ip", "other"]);
            let news = monitor.read().expect("read");
            let c = commits(&news);
            assert_eq!(c.len(), 2, "{news:?}");
            assert_eq!(c[0].generation, mine);
            assert!(c[0].by_this_process(), "{:?}", c[0]);
            // A replace: the table deleted and made again.
            assert_eq!(c[0].changes.len(), 2, "{:?}", c[0]);
            assert_eq!(c[0].changes[0], "deleted table");
            assert!(c[0].changes[1].starts_with("made it again: 4 chains, 10 sets, 18 rules"), "{:?}", c[0]);
            // Someone else's, on another table: announced, with nothing done to ours.
            assert_eq!(c[1].generation, mine.wrapping_add(1));
            assert_eq!(c[1].process, "nft");
            assert!(c[1].changes.is_empty(), "{:?}", c[1]);
            assert!(!c[1].by_this_process(), "{:?}", c[1]);
            assert!(!kernel.committed(c[1].generation));

            // Without ownership, someone else's change to the table, described.
            drop(kernel);
            let mut plain = Netlink::new();
            plain.apply(&sample_plan(DenyAction::Drop)).expect("apply");
            monitor.read().unwrap();
            nft(&["insert", "rule", "inet", "netpol", "input", "accept"]);
            nft(&["flush", "map", "inet", "netpol", "ingress_v4"]);
            nft(&["delete", "table", "inet", "netpol"]);
            let news = monitor.read().unwrap();
            let lines: Vec<Vec<String>> =
                commits(&news).iter().map(|c| c.changes.clone()).collect();
            assert_eq!(
                lines,
                [
                    vec!["rules added to chain input".to_string()],
                    vec!["elements deleted from ingress_v4".to_string()],
                    vec!["deleted table".to_string()],
                ],
                "{news:?}"
            );
        }
    }

    netns_test! {
        fn a_full_buffer_is_reported_as_lost_news() {
            // As small as the kernel allows: a table's announcements do not fit.
            let mut monitor = Monitor::with_buffer(1).expect("subscribe");
            let mut kernel = Netlink::new();
            for _ in 0..20 {
                kernel.apply(&sample_plan(DenyAction::Drop)).expect("apply");
            }
            let news = monitor.read().expect("read");
            assert!(news.contains(&News::Lost), "{news:?}");
            // After the loss, commits are announced again (a small one fits).
            nft(&["add", "table", "ip", "other"]);
            let news = monitor.read().expect("read");
            assert_eq!(commits(&news).len(), 1, "{news:?}");
        }
    }
}
