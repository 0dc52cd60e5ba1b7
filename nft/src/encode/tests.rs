//! The encoder without a kernel: expression shapes and registers as nft emits them
//! (from `nft --debug=netlink` of the same text), interval elements, message sizes
//! and refusals.

use std::net::{IpAddr, Ipv6Addr};

use rules_compiler::plan::{
    unchecked, AddrField, AddrProtoPort, AddrProtoPorts, AddrRange, AddrRanges, Chain, DenyAction,
    Hook, LocalEndpoint, Set, Stmt, VerdictMap, TABLE_NAME,
};

use crate::Update;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn range(a: &str, b: &str) -> AddrRange {
    AddrRange {
        start: ip(a),
        end: ip(b),
    }
}

fn plan(sets: Vec<Set>, maps: Vec<VerdictMap>, rules: Vec<Stmt>) -> Plan {
    Plan::new(
        TABLE_NAME.into(),
        sets,
        maps,
        vec![Chain::new("c".into(), None, rules).expect("a valid chain")],
        Vec::<LocalEndpoint>::new(),
        Vec::new(),
    )
    .expect("a valid plan")
}

fn addr_set(name: &str, family: Family, v: Vec<AddrRange>) -> Set {
    let elements = SetElements::addr(family, v).expect("sorted, disjoint ranges");
    Set::new(name.into(), family, elements).expect("a valid set")
}

fn ports_set(name: &str, family: Family, v: Vec<AddrProtoPort>) -> Set {
    let elements = SetElements::addr_proto_port(family, v).expect("sorted elements");
    Set::new(name.into(), family, elements).expect("a valid set")
}

fn rules_of(batch: &Batch) -> Vec<&RuleDef> {
    batch
        .msgs
        .iter()
        .filter_map(|m| match &m.msg {
            Msg::NewRule(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn elems_of<'a>(batch: &'a Batch, set: &str) -> Vec<&'a Elem> {
    batch
        .msgs
        .iter()
        .filter_map(|m| match &m.msg {
            Msg::NewElems(e) if e.set == set => Some(e.elems.iter()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn hex(k: &Key) -> String {
    format!("{k:?}")
}

#[test]
fn concatenation_lookup_uses_nfts_registers() {
    let p = plan(
        vec![
            ports_set("p4", Family::V4, vec![]),
            ports_set("p6", Family::V6, vec![]),
        ],
        vec![],
        vec![
            Stmt::AcceptAddrProtoPort {
                family: Family::V4,
                field: AddrField::Saddr,
                set: "p4".into(),
            },
            Stmt::AcceptAddrProtoPort {
                family: Family::V6,
                field: AddrField::Daddr,
                set: "p6".into(),
            },
        ],
    );
    let batch = encode(&p).unwrap();
    let rules = rules_of(&batch);
    // nft: [ payload load 4b @ network header + 12 => reg 1 ]
    //      [ meta load l4proto => reg 9 ] [ byteorder reg 9 = hton(reg 9, 2, 1) ]
    //      [ payload load 2b @ transport header + 2 => reg 10 ] [ lookup reg 1 set p4 ]
    let want = |nfproto: u8, offset, len, proto_reg, port_reg, set: &str, set_id| {
        vec![
            Expr::Meta {
                key: k::NFT_META_NFPROTO,
                dreg: 1,
            },
            Expr::Cmp {
                sreg: 1,
                op: k::NFT_CMP_EQ,
                data: vec![nfproto],
            },
            Expr::Payload {
                base: k::NFT_PAYLOAD_NETWORK_HEADER,
                offset,
                len,
                dreg: 1,
            },
            Expr::Meta {
                key: k::NFT_META_L4PROTO,
                dreg: proto_reg,
            },
            Expr::Byteorder {
                sreg: proto_reg,
                dreg: proto_reg,
                op: k::NFT_BYTEORDER_HTON,
                len: 1,
                size: 2,
            },
            Expr::Payload {
                base: k::NFT_PAYLOAD_TRANSPORT_HEADER,
                offset: 2,
                len: 2,
                dreg: port_reg,
            },
            Expr::Lookup {
                sreg: 1,
                dreg: None,
                set: set.into(),
                set_id,
            },
            Expr::Immediate(Verdict::Accept),
        ]
    };
    assert_eq!(rules[0].exprs, want(2, 12, 4, 9, 10, "p4", 1));
    // nft: … 16b @ network header + 24 => reg 1, l4proto => reg 2, port => reg 13.
    assert_eq!(rules[1].exprs, want(10, 24, 16, 2, 13, "p6", 2));
}

#[test]
fn set_definitions_match_nft() {
    let p = plan(
        vec![
            addr_set("a6", Family::V6, vec![]),
            ports_set("p4", Family::V4, vec![]),
        ],
        vec![VerdictMap::new("m".into(), Family::V4, vec![]).expect("a valid map")],
        vec![],
    );
    let batch = encode(&p).unwrap();
    let sets: Vec<&SetDef> = batch
        .msgs
        .iter()
        .filter_map(|m| match &m.msg {
            Msg::NewSet(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(
        (sets[0].flags, sets[0].key_type, sets[0].key_len),
        (k::NFT_SET_INTERVAL, 8, 16)
    );
    // ipv4_addr . inet_proto . inet_service: 0x730d, 12 bytes, fields 4, 1, 2.
    assert_eq!(
        (sets[1].flags, sets[1].key_type, sets[1].key_len),
        (0x84, 0x730d, 12)
    );
    assert_eq!(sets[1].concat, vec![4, 1, 2]);
    assert_eq!(
        (sets[2].flags, sets[2].key_type, sets[2].verdict_map),
        (k::NFT_SET_MAP, 7, true)
    );
    assert_eq!(sets.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1, 2, 3]);
}

#[test]
fn interval_elements_follow_nft() {
    // nft sends for { 0.0.0.0-198.18.0.2, 198.18.0.3-198.18.0.9, 198.18.0.11,
    // 255.255.255.0/24 }: 00000000 start, 030012c6 end, 030012c6 start, 0a0012c6 end,
    // 0b0012c6 start, 0c0012c6 end, 00ffffff start with the open-interval user data.
    let v = vec![
        range("0.0.0.0", "198.18.0.2"),
        range("198.18.0.3", "198.18.0.9"),
        range("198.18.0.11", "198.18.0.11"),
        range("255.255.255.0", "255.255.255.255"),
    ];
    let v = AddrRanges::new(Family::V4, v).unwrap();
    let got: Vec<(String, bool, bool, u32)> = interval_elems(Family::V4, &v)
        .iter()
        .map(|e| (hex(&e.key), e.interval_end, e.open, e.origin))
        .collect();
    let want = vec![
        ("00000000", false, false, 0),
        ("c6120003", true, false, 0),
        ("c6120003", false, false, 1),
        ("c612000a", true, false, 1),
        ("c612000b", false, false, 2),
        ("c612000c", true, false, 2),
        ("ffffff00", false, true, 3),
    ];
    let want: Vec<(String, bool, bool, u32)> = want
        .into_iter()
        .map(|(k, e, o, i)| (k.to_string(), e, o, i))
        .collect();
    assert_eq!(got, want);

    // Not starting at zero: an end element at :: first.
    let one = AddrRanges::new(Family::V6, vec![range("2001:db8::1", "2001:db8::1")]).unwrap();
    let v6 = interval_elems(Family::V6, &one);
    let keys: Vec<(String, bool)> = v6.iter().map(|e| (hex(&e.key), e.interval_end)).collect();
    assert_eq!(
        keys,
        vec![
            ("0".repeat(32), true),
            ("20010db8000000000000000000000001".into(), false),
            ("20010db8000000000000000000000002".into(), true),
        ]
    );
}

#[test]
fn concatenated_elements_pad_fields_and_keep_ports_big_endian() {
    let items = vec![AddrProtoPort {
        addr: range("198.18.0.4", "198.18.0.255"),
        proto: 6,
        ports: (8000, 8100),
    }];
    let e = concat_elems(Family::V4, &AddrProtoPorts::new(Family::V4, items).unwrap());
    // nft: 040012c6 00000006 0000401f - ff0012c6 00000006 0000a41f (host-order words).
    assert_eq!(hex(&e[0].key), "c6120004060000001f400000");
    assert_eq!(
        hex(e[0].key_end.as_ref().unwrap()),
        "c61200ff060000001fa40000"
    );
    assert!(!e[0].interval_end);
}

#[test]
fn rule_shapes_and_deny_actions() {
    let rules = |action| {
        let p = plan(
            vec![],
            vec![],
            vec![
                Stmt::CtEstablishedAccept,
                Stmt::LoopbackAccept(Hook::Output),
                Stmt::Deny {
                    action,
                    comment: "deny egress x/a".into(),
                },
            ],
        );
        let batch = encode(&p).unwrap();
        assert_eq!(batch.rules, rules_of(&batch).len());
        rules_of(&batch).into_iter().cloned().collect::<Vec<_>>()
    };
    let drop = rules(DenyAction::Drop);
    assert_eq!(drop.len(), 3);
    assert_eq!(
        drop[0].exprs[1],
        Expr::Bitwise {
            sreg: 1,
            dreg: 1,
            mask: 6u32.to_ne_bytes().to_vec(),
            xor: vec![0; 4]
        }
    );
    let mut lo = vec![0u8; 16];
    lo[..2].copy_from_slice(b"lo");
    assert_eq!(
        drop[1].exprs[..2],
        [
            Expr::Meta {
                key: k::NFT_META_OIFNAME,
                dreg: 1
            },
            Expr::Cmp {
                sreg: 1,
                op: k::NFT_CMP_EQ,
                data: lo
            }
        ]
    );
    assert_eq!(
        drop[2].exprs,
        vec![Expr::Counter, Expr::Immediate(Verdict::Drop)]
    );
    assert_eq!(drop[2].comment.as_deref(), Some("deny egress x/a"));

    let reject = rules(DenyAction::Reject);
    assert_eq!(reject.len(), 5);
    assert_eq!(reject[2].exprs, vec![Expr::Counter]);
    assert_eq!(reject[2].comment.as_deref(), Some("deny egress x/a"));
    assert_eq!(
        reject[3].exprs.last(),
        Some(&Expr::Reject {
            kind: k::NFT_REJECT_TCP_RST,
            code: 0
        })
    );
    assert_eq!(
        reject[4].exprs,
        vec![Expr::Reject {
            kind: k::NFT_REJECT_ICMPX_UNREACH,
            code: 3
        }]
    );
    assert!(reject[3].comment.is_none() && reject[4].comment.is_none());
}

/// Each message of `batch` in a word and the object it names.
fn kinds(batch: &Batch) -> Vec<String> {
    batch
        .msgs
        .iter()
        .map(|m| match &m.msg {
            Msg::NewTable {
                exclusive: false,
                create: None,
                ..
            } => "table".to_string(),
            Msg::NewTable {
                exclusive: true,
                create: Some(_),
                ..
            } => "table!".to_string(),
            Msg::NewTable { .. } => "odd table".to_string(),
            Msg::DelTable { .. } => "delete".to_string(),
            Msg::NewChain(c) => format!("chain {}", c.name),
            Msg::NewSet(s) => format!("set {}", s.name),
            Msg::NewElems(e) => format!("elems {}", e.set),
            Msg::DelElems(e) => format!("delete elems {}", e.set),
            Msg::NewRule(r) => format!("rule {}", r.chain),
            Msg::FlushChain { chain } => format!("flush {chain}"),
            Msg::DelChain { name } => format!("delete chain {name}"),
            Msg::DelSet { name } => format!("delete set {name}"),
            Msg::NewLimit(l) => format!("limit {}", l.name),
            Msg::DelLimit { name } => format!("delete limit {name}"),
        })
        .collect()
}

#[test]
fn batch_order_is_nfts() {
    let p = plan(
        vec![addr_set(
            "s",
            Family::V4,
            vec![range("198.18.0.1", "198.18.0.1")],
        )],
        vec![],
        vec![
            Stmt::AcceptAddr {
                family: Family::V4,
                field: AddrField::Saddr,
                set: "s".into(),
            },
            Stmt::NeighbourDiscoveryAccept,
        ],
    );
    let batch = encode(&p).unwrap();
    assert_eq!(
        kinds(&batch),
        [
            "table",
            "delete",
            "table!",
            "chain c",
            "set s",
            "elems s",
            "rule c",
            "set __set%d",
            "elems __set%d",
            "rule c"
        ]
    );
    // The anonymous set of the ICMPv6 rule gets the next id and is looked up by it.
    let Msg::NewSet(anon) = &batch.msgs[7].msg else {
        unreachable!()
    };
    assert_eq!((anon.name.as_str(), anon.id, anon.flags), ("__set%d", 2, 3));
    let Msg::NewRule(r) = &batch.msgs[9].msg else {
        unreachable!()
    };
    assert!(r.exprs.contains(&Expr::Lookup {
        sreg: 1,
        dreg: None,
        set: "__set%d".into(),
        set_id: 2
    }));
    assert_eq!(batch.msgs[9].what, "rule 2 of chain c");
}

/// A plan with a base chain that dispatches through a map to an endpoint chain that
/// looks up a set, as the compiler makes them.
fn dispatching_plan() -> Plan {
    let input = Chain::new(
        "input".into(),
        Some(Hook::Input),
        vec![
            Stmt::NeighbourDiscoveryAccept,
            Stmt::Dispatch {
                family: Family::V4,
                field: AddrField::Daddr,
                map: "ingress_v4".into(),
            },
        ],
    )
    .expect("a valid chain");
    let in_c = Chain::new(
        "in_c".into(),
        None,
        vec![Stmt::AcceptAddr {
            family: Family::V4,
            field: AddrField::Saddr,
            set: "in_c_v4".into(),
        }],
    )
    .expect("a valid chain");
    Plan::new(
        TABLE_NAME.into(),
        vec![addr_set(
            "in_c_v4",
            Family::V4,
            vec![range("198.18.0.1", "198.18.0.1")],
        )],
        vec![VerdictMap::new(
            "ingress_v4".into(),
            Family::V4,
            vec![(ip("198.18.0.2"), "in_c".into())],
        )
        .expect("a valid map")],
        vec![input, in_c],
        vec![],
        Vec::new(),
    )
    .expect("a valid plan")
}

#[test]
fn a_replace_in_two_stages_new_names_then_swaps_the_base_chains_to_them() {
    let p = dispatching_plan();
    let old = Loaded::of(&p, Slot::Plain);
    assert_eq!(
        (
            old.chains.as_slice(),
            old.sets.as_slice(),
            old.maps.as_slice()
        ),
        (
            &["in_c".to_string()][..],
            &["in_c_v4".to_string()][..],
            &["ingress_v4".to_string()][..]
        )
    );
    let stage = encode_stage(&p, Slot::Next).unwrap();
    assert_eq!(
        kinds(&stage),
        [
            "chain b.in_c",
            "set b.in_c_v4",
            "elems b.in_c_v4",
            "set b.ingress_v4",
            "elems b.ingress_v4",
            "rule b.in_c"
        ]
    );
    let jumps: Vec<_> = stage
        .msgs
        .iter()
        .filter_map(|m| match &m.msg {
            Msg::NewElems(e) => match &e.elems[0].verdict {
                Some(crate::objects::ElemVerdict::Jump(c)) => Some(c.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(jumps, ["b.in_c"]);
    assert_eq!((stage.rules, stage.elements), (1, 2));

    let swap = encode_swap(&p, Slot::Next, &old).unwrap();
    assert_eq!(
        kinds(&swap),
        [
            "flush input",
            "set __set%d",
            "elems __set%d",
            "rule input",
            "rule input",
            "delete set ingress_v4",
            "delete chain in_c",
            "delete set in_c_v4"
        ]
    );
    // The map made by the first transaction is looked up by its name.
    let Msg::NewRule(dispatch) = &swap.msgs[4].msg else {
        unreachable!()
    };
    assert!(dispatch.exprs.contains(&Expr::Lookup {
        sreg: 1,
        dreg: Some(k::NFT_REG_VERDICT),
        set: "b.ingress_v4".into(),
        set_id: 0
    }));
    assert_eq!(swap.rules, 2);
    // Back again: the plan's names, the other slot's deleted.
    let back = encode_swap(&p, Slot::Plain, &Loaded::of(&p, Slot::Next)).unwrap();
    assert_eq!(
        kinds(&back)[5..],
        [
            "delete set b.ingress_v4",
            "delete chain b.in_c",
            "delete set b.in_c_v4"
        ]
    );
    // Never a swap onto the objects in use, and only with the same base chains.
    assert!(encode_swap(&p, Slot::Plain, &old).is_err());
    let mut other = p.clone().into_parts();
    let (name, _, rules) = other.chains[0].clone().into_parts();
    other.chains[0] = Chain::new(name, Some(Hook::Output), rules).unwrap();
    let other = other.build().unwrap();
    assert!(!old.swappable(&other) && old.swappable(&p));
    // An update names the slot in use, map targets too.
    let mut more = p.clone().into_parts();
    let (name, family, mut elements) = more.maps[0].clone().into_parts();
    elements.push((ip("198.18.0.3"), "in_c".into()));
    more.maps[0] = VerdictMap::new(name, family, elements).unwrap();
    let more = more.build().unwrap();
    let delta = rules_compiler::plan::delta(&p, &more).unwrap();
    assert_eq!(delta.table_elements(), 3);
    let update = encode_update(&Update::new(delta, &p, &more), Slot::Next).unwrap();
    assert_eq!(kinds(&update), ["elems b.ingress_v4"]);
    let Msg::NewElems(e) = &update.msgs[0].msg else {
        unreachable!()
    };
    assert_eq!(
        e.elems[0].verdict,
        Some(crate::objects::ElemVerdict::Jump("b.in_c".into()))
    );
    assert_eq!(Slot::plan_name("b.in_c"), "in_c");
    assert_eq!(Slot::plan_name("in_c"), "in_c");
    assert_eq!(
        Slot::plain_listing("map b.ingress_v4 { 198.18.0.2 : jump b.in_c }\nip daddr vmap @b.ingress_v4 comment \"deny ingress web/b.b.x\""),
        "map ingress_v4 { 198.18.0.2 : jump in_c }\nip daddr vmap @ingress_v4 comment \"deny ingress web/b.b.x\""
    );
}

#[test]
fn big_sets_are_split_into_messages_that_fit() {
    let n = 100_000u32;
    let v: Vec<AddrRange> = (0..n)
        .map(|i| {
            let a = IpAddr::V6(Ipv6Addr::from(
                u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)) + 2 * u128::from(i),
            ));
            AddrRange { start: a, end: a }
        })
        .collect();
    let p = plan(vec![addr_set("big", Family::V6, v)], vec![], vec![]);
    let batch = encode(&p).unwrap();
    assert_eq!(batch.elements, n as usize);
    let chunks: Vec<&ElemsDef> = batch
        .msgs
        .iter()
        .filter_map(|m| match &m.msg {
            Msg::NewElems(e) => Some(e),
            _ => None,
        })
        .collect();
    assert!(chunks.len() > 100, "{} messages", chunks.len());
    for c in &chunks {
        let size: usize = c.elems.iter().map(elem_wire_len).sum();
        assert!(size <= ELEMS_PER_MSG_BYTES, "{size}");
    }
    // Every plan element has exactly one start element, in order, plus the end
    // element of each and the one at :: before the first.
    let all = elems_of(&batch, "big");
    assert_eq!(all.len(), 2 * n as usize + 1);
    let starts: Vec<u32> = all
        .iter()
        .filter(|e| !e.interval_end)
        .map(|e| e.origin)
        .collect();
    assert_eq!(starts, (0..n).collect::<Vec<_>>());
    assert_eq!(
        chunks[1].owner, "set big",
        "each message says whose elements it carries"
    );
}

/// What the encoder still refuses: names it makes itself (a slot's prefix on a table
/// name from the config), and references it must resolve, in a plan built unchecked.
/// Overlaps, families, port ranges, comments and plan names are the plan types' to
/// refuse (rules_compiler::plan::checked).
#[test]
fn refuses_what_it_cannot_encode() {
    let err = |p: &Plan| encode(p).unwrap_err().to_string();
    let ok = plan(
        vec![],
        vec![],
        vec![Stmt::Deny {
            action: DenyAction::Drop,
            comment: "x".repeat(rules_compiler::plan::MAX_COMMENT),
        }],
    );
    assert!(encode(&ok).is_ok());
    assert!(encode_delete(&"t".repeat(256))
        .unwrap_err()
        .to_string()
        .contains("is not a valid nftables name"));
    let dispatch = Stmt::Dispatch {
        family: Family::V4,
        field: AddrField::Daddr,
        map: "nope".into(),
    };
    let chain = Chain::new("c".into(), None, vec![dispatch]).unwrap();
    assert!(Plan::new(
        TABLE_NAME.into(),
        vec![],
        vec![],
        vec![chain.clone()],
        vec![],
        Vec::new()
    )
    .is_err());
    let missing = unchecked::plan(TABLE_NAME, vec![], vec![], vec![chain], vec![]);
    assert_eq!(
        err(&missing),
        "rule 1 of chain c uses @nope, which the plan does not define"
    );
}

#[test]
fn elements_are_described_for_errors() {
    let p = plan(
        vec![ports_set(
            "p",
            Family::V4,
            vec![AddrProtoPort {
                addr: range("198.18.0.0", "198.18.0.255"),
                proto: 17,
                ports: (53, 53),
            }],
        )],
        vec![VerdictMap::new(
            "m".into(),
            Family::V6,
            vec![(ip("2001:db8::1"), "c".into())],
        )
        .expect("a valid map")],
        vec![],
    );
    assert_eq!(
        describe_element(&p, ElemSource::Set(0), 0).as_deref(),
        Some("198.18.0.0-198.18.0.255 . udp . 53")
    );
    assert_eq!(
        describe_element(&p, ElemSource::Map(0), 0).as_deref(),
        Some("2001:db8::1 : jump c")
    );
    assert_eq!(
        describe_element(&p, ElemSource::Icmpv6Types, 7).as_deref(),
        Some("icmpv6 type 143")
    );
    assert_eq!(describe_element(&p, ElemSource::Set(0), 1), None);
}

/// A chain `c` with a Log rule before its deny, and the limit it names.
fn logging_plan() -> Plan {
    use rules_compiler::model::Direction;
    use rules_compiler::plan::{EventVerdict, RateLimit};
    let rules = vec![
        Stmt::Log {
            verdict: EventVerdict::Deny,
            direction: Direction::Egress,
            group: 9,
            limit: "ev".into(),
        },
        Stmt::Deny {
            action: DenyAction::Drop,
            comment: "deny egress x/a".into(),
        },
    ];
    Plan::new(
        TABLE_NAME.into(),
        vec![],
        vec![],
        vec![Chain::new("c".into(), None, rules).expect("a valid chain")],
        Vec::<LocalEndpoint>::new(),
        vec![RateLimit::new("ev".into(), 5, 7).expect("a valid limit")],
    )
    .expect("a valid plan")
}

#[test]
fn a_log_rule_is_objref_counter_log_and_its_limit_an_object_of_its_slot() {
    let p = logging_plan();
    let batch = encode(&p).unwrap();
    assert_eq!(
        kinds(&batch),
        ["table", "delete", "table!", "chain c", "limit ev", "rule c", "rule c"]
    );
    assert!(batch.msgs.iter().any(|m| m.msg
        == Msg::NewLimit(LimitDef {
            name: "ev".into(),
            rate: 5,
            unit: 1,
            burst: 7,
        })));
    let Msg::NewRule(log) = &batch.msgs[5].msg else {
        panic!("a rule")
    };
    assert_eq!(
        log.exprs,
        vec![
            Expr::Objref {
                kind: k::NFT_OBJECT_LIMIT,
                name: "ev".into()
            },
            Expr::Counter,
            Expr::Log {
                prefix: "netpol deny out".into(),
                group: 9
            },
        ]
    );
    assert_eq!(log.comment, None);
    // A staged replace makes the limit under the new slot's name, which its rules use;
    // the swap deletes the old one last (after the chains whose rules use it).
    let stage = encode_stage(&p, Slot::Next).unwrap();
    assert_eq!(
        kinds(&stage),
        ["chain b.c", "limit b.ev", "rule b.c", "rule b.c"]
    );
    let Msg::NewRule(log) = &stage.msgs[2].msg else {
        panic!("a rule")
    };
    assert!(matches!(&log.exprs[0], Expr::Objref { name, .. } if name == "b.ev"));
    let swap = encode_swap(&p, Slot::Next, &Loaded::of(&p, Slot::Plain)).unwrap();
    assert_eq!(kinds(&swap), ["delete chain c", "delete limit ev"]);
}
