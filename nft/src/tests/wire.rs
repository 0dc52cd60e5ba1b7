//! Tests without a kernel: the fake backend, and the batch's bytes as framed and as
//! libnftnl would write them; deny counters labelled by their chain.

use super::*;

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

    // With reject, each deny (four: two chains', two tiers') is three kernel rules.
    let stats = fake.apply(&reject).unwrap();
    assert_eq!(stats.rules, reject.rule_count() + 8);
    let loaded = fake.read().unwrap().unwrap();
    assert_eq!(loaded.rule_count(), reject.rule_count() + 8);
    // The endpoint's two deny chains and its two tier deny chains.
    assert_eq!(loaded.denies().len(), 4);

    assert!(fake.flush().unwrap());
    assert!(fake.read().unwrap().is_none());
    assert_eq!((fake.applies, fake.flushes), (2, 1));
}

#[test]
fn fake_backend_refuses_what_the_encoder_refuses() {
    let mut fake = FakeBackend::new();
    // Plan::new refuses a rule naming a set the plan lacks; the fake, like the encoder,
    // refuses it too when it comes from elsewhere.
    let mut parts = sample_plan(DenyAction::Drop).into_parts();
    let (name, hook, mut rules) = parts.chains[2].clone().into_parts();
    rules.insert(
        0,
        Stmt::AcceptAddr {
            family: Family::V4,
            field: AddrField::Saddr,
            set: "missing".into(),
        },
    );
    parts.chains[2] = Chain::new(name, hook, rules).unwrap();
    assert!(
        parts.clone().build().is_err(),
        "a checked plan cannot name a missing set"
    );
    let plan = unchecked::plan(
        &parts.table,
        parts.sets,
        parts.maps,
        parts.chains,
        parts.locals,
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
    let plan = edit_ranges(sample_plan(DenyAction::Reject), "in_x_a_v6_all", |v| {
        // Enough elements for several messages.
        *v = (0..20_000u128)
            .map(|i| {
                let a = IpAddr::V6(((0x2001_0db8_0002_u128 << 80) | (2 * i)).into());
                AddrRange { start: a, end: a }
            })
            .collect();
    });
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
            Msg::NewLimit(_) => libc::NFT_MSG_NEWOBJ,
            Msg::DelLimit { .. } => libc::NFT_MSG_DELOBJ,
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

/// The elements messages are written without libnftnl's per-element objects: they
/// must come out byte for byte as libnftnl builds them, for every element shape (interval
/// starts and ends, open intervals with user data, concatenations with a key end,
/// verdict map jumps, the anonymous ICMPv6 set) and for messages of many elements.
#[test]
fn elements_are_serialized_as_libnftnl_serializes_them() {
    let big = edit_ranges(sample_plan(DenyAction::Drop), "in_x_a_v6_all", |v| {
        *v = (0..5_000u128)
            .map(|i| {
                let a = IpAddr::V6(((0x2001_0db8_0002_u128 << 80) | (2 * i)).into());
                AddrRange { start: a, end: a }
            })
            .collect();
    });
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
                shapes[3] |= el.verdict.is_some();
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

/// Two endpoints whose names share more than a comment holds: their comments are cut to
/// the same text, and only the plan tells their counters apart.
#[test]
fn deny_counters_are_labelled_by_chain_not_by_a_cut_comment() {
    use crate::{ChainOwners, DenyCounter, LoadedChain, RuleCounter};
    let long = |tail: &str| ObjectName::new("ns", format!("{}{tail}", "x".repeat(200)));
    let (a, b) = (long("-a"), long("-b"));
    let cut = format!("deny ingress ns/{}...", "x".repeat(110));
    let chain = |name: &str| LoadedChain {
        name: name.into(),
        hook: None,
        rules: 2,
        counters: vec![RuleCounter {
            comment: Some(cut.clone()),
            log: None,
            packets: 1,
            bytes: 60,
        }],
    };
    let table = LoadedTable {
        name: TABLE_NAME.into(),
        chains: vec![chain("in_a"), chain("in_b"), chain("in_foreign")],
        sets: vec![],
        limits: vec![],
    };
    // Without the plan, `show` sees three counters under one cut, marked name.
    let read = table.denies();
    assert_eq!(read.len(), 3);
    assert!(read.iter().all(DenyCounter::is_cut));
    assert_eq!(read[0].endpoint, read[1].endpoint);

    let endpoint_chain = |name: &str| Chain::new(name.into(), None, vec![]).unwrap();
    let plan = Plan::new(
        TABLE_NAME.into(),
        vec![],
        vec![],
        vec![endpoint_chain("in_a"), endpoint_chain("in_b")],
        vec![
            LocalEndpoint {
                id: a.clone(),
                ingress_chain: Some("in_a".into()),
                egress_chain: None,
                tier_chains: Vec::new(),
                shard_chains: Vec::new(),
            },
            LocalEndpoint {
                id: b.clone(),
                ingress_chain: Some("in_b".into()),
                egress_chain: None,
                tier_chains: Vec::new(),
                shard_chains: Vec::new(),
            },
        ],
        Vec::new(),
    )
    .expect("a valid plan");
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
                log: None,
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
