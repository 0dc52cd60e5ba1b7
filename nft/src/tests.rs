//! The backend against the real kernel, each test in a throwaway network namespace
//! (see `crate::testns`), and the fake backend.

use std::net::{IpAddr, UdpSocket};
use std::process::Command;

use rules_compiler::model::{Direction, ObjectName, Tier};
use rules_compiler::plan::{
    unchecked, AddrField, AddrProtoPort, AddrRange, Chain, DenyAction, Family, Hook, LocalEndpoint,
    Parts, Plan, Set, SetElements, Stmt, TierChain, TierVerdict, VerdictMap, Verdicts, TABLE_NAME,
};

use super::encode::{self, elem_wire_len, Msg};
use super::fake::FakeBackend;
use super::{ffi, reply};
use super::{Backend, GenerationReader, KernelError, LoadedTable, Netlink, Slot, Update};
use crate::testns::{netns_test, nft, nft_elsewhere};

mod cluster;
mod conntrack;
mod nflog;
mod notifications;
mod ownership;
mod scale;
mod shards;
mod update;
mod wire;

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

fn addr_set(name: &str, family: Family, v: Vec<AddrRange>) -> Set {
    let elements = SetElements::addr(family, v).expect("sorted, disjoint ranges");
    Set::new(name.into(), family, elements).expect("a valid set")
}

fn ports_set(name: &str, family: Family, v: Vec<AddrProtoPort>) -> Set {
    let elements = SetElements::addr_proto_port(family, v).expect("sorted elements");
    Set::new(name.into(), family, elements).expect("a valid set")
}

/// A cluster tier's `…_other` map.
fn other_map(name: &str, family: Family, v: Vec<(AddrRange, TierVerdict)>) -> Set {
    let elements = SetElements::addr_verdict(family, v).expect("sorted, disjoint ranges");
    Set::new(name.into(), family, elements).expect("a valid map")
}

/// A cluster tier's `…_ports` map.
fn ports_map(name: &str, family: Family, v: Vec<(AddrProtoPort, TierVerdict)>) -> Set {
    let elements = SetElements::addr_proto_port_verdict(family, v).expect("sorted elements");
    Set::new(name.into(), family, elements).expect("a valid map")
}

fn goto(chain: &str) -> TierVerdict {
    TierVerdict::Goto(chain.into())
}

/// `plan` with the ranges of its address set `name` changed by `edit`, checked again.
fn edit_ranges(plan: Plan, name: &str, edit: impl FnOnce(&mut Vec<AddrRange>)) -> Plan {
    let mut parts = plan.into_parts();
    let set = parts
        .sets
        .iter_mut()
        .find(|s| s.name() == name)
        .expect("the set");
    let (name, family, elements) = set.clone().into_parts();
    let SetElements::Addr(v) = elements else {
        panic!("{name} is not an address set")
    };
    let mut v = v.into_vec();
    edit(&mut v);
    *set = addr_set(&name, family, v);
    parts.build().expect("a valid plan")
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
/// isolated both ways, with an Admin tier on ingress (verdict maps of both kinds, both
/// families, adjacent intervals of other verdicts) and a Baseline tier on egress.
fn sample_plan(deny: DenyAction) -> Plan {
    use AddrField::{Daddr, Saddr};
    use Family::{V4, V6};
    use TierVerdict::Accept;
    let sets = vec![
        other_map(
            "in_x_a_admin_v4_other",
            V4,
            vec![
                (range("0.0.0.0", "9.255.255.255"), goto("in_x_a_admin")),
                (range("198.18.0.0", "198.18.0.255"), Accept),
                (range("198.18.1.0", "198.18.1.255"), goto("in_x_a_admin")),
                (range("198.18.3.0", "255.255.255.255"), Accept),
            ],
        ),
        ports_map(
            "in_x_a_admin_v4_ports",
            V4,
            vec![
                (
                    app(range("0.0.0.0", "9.255.255.255"), 6, (0, 65535)),
                    goto("in_x_a_admin"),
                ),
                (
                    app(range("198.18.0.0", "198.18.0.255"), 6, (22, 22)),
                    Accept,
                ),
                (
                    app(range("198.18.0.0", "198.18.0.255"), 6, (23, 80)),
                    goto("in_x_a_admin"),
                ),
                (
                    app(range("198.18.0.0", "198.18.0.255"), 17, (53, 53)),
                    Accept,
                ),
                (
                    app(one("198.18.2.7"), 132, (9100, 9200)),
                    goto("in_x_a_admin"),
                ),
            ],
        ),
        other_map(
            "in_x_a_admin_v6_other",
            V6,
            vec![(
                range("2001:db8:5::", "2001:db8:5::ffff"),
                goto("in_x_a_admin"),
            )],
        ),
        ports_map(
            "in_x_a_admin_v6_ports",
            V6,
            vec![(app(one("2001:db8::9"), 17, (5000, 5010)), Accept)],
        ),
        addr_set(
            "in_x_a_v4_all",
            V4,
            vec![
                one("198.18.0.2"),
                range("198.18.0.10", "198.18.0.20"),
                range("198.18.1.0", "198.18.1.255"),
            ],
        ),
        ports_set(
            "in_x_a_v4_ports",
            V4,
            vec![
                // sctp 9100 from anywhere, split where other elements' ranges lie:
                // the plan's ranges are equal or disjoint.
                app(range("0.0.0.0", "198.18.0.3"), 132, (9100, 9100)),
                app(range("198.18.0.4", "198.18.0.255"), 6, (8000, 8100)),
                app(range("198.18.0.4", "198.18.0.255"), 17, (53, 53)),
                app(range("198.18.0.4", "198.18.0.255"), 132, (9100, 9100)),
                app(range("198.18.1.0", "198.18.2.6"), 132, (9100, 9100)),
                app(one("198.18.2.7"), 6, (0, 65535)),
                app(one("198.18.2.7"), 132, (9100, 9100)),
                app(range("198.18.2.8", "255.255.255.255"), 132, (9100, 9100)),
            ],
        ),
        addr_set(
            "in_x_a_v6_all",
            V6,
            vec![
                one("2001:db8::2"),
                range("2001:db8:1::", "2001:db8:1::ffff:ffff:ffff:ffff"),
                range("ffff::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ],
        ),
        ports_set(
            "in_x_a_v6_ports",
            V6,
            vec![app(
                range("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
                6,
                (443, 443),
            )],
        ),
        other_map(
            "out_x_a_baseline_v4_other",
            V4,
            vec![(
                range("10.0.0.0", "10.255.255.255"),
                goto("out_x_a_baseline"),
            )],
        ),
        ports_map(
            "out_x_a_baseline_v4_ports",
            V4,
            vec![(
                app(range("10.0.0.0", "10.255.255.255"), 6, (0, 65535)),
                goto("out_x_a_baseline"),
            )],
        ),
        addr_set(
            "out_x_a_v4_all",
            V4,
            vec![
                range("0.0.0.0", "9.255.255.255"),
                range("198.18.0.0", "198.18.255.255"),
            ],
        ),
    ];
    let maps = vec![
        VerdictMap::new(
            "egress_v4".into(),
            V4,
            vec![(ip("198.18.0.1"), "out_x_a".into())],
        )
        .expect("a valid map"),
        VerdictMap::new(
            "ingress_v4".into(),
            V4,
            vec![(ip("198.18.0.1"), "in_x_a".into())],
        )
        .expect("a valid map"),
        VerdictMap::new(
            "ingress_v6".into(),
            V6,
            vec![(ip("2001:db8::1"), "in_x_a".into())],
        )
        .expect("a valid map"),
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
        Chain::new("input".into(), Some(Hook::Input), input).expect("a valid chain"),
        Chain::new("output".into(), Some(Hook::Output), output).expect("a valid chain"),
        Chain::new(
            "in_x_a".into(),
            None,
            vec![
                Stmt::TierPorts {
                    family: V4,
                    field: Saddr,
                    map: "in_x_a_admin_v4_ports".into(),
                },
                Stmt::TierOther {
                    family: V4,
                    field: Saddr,
                    map: "in_x_a_admin_v4_other".into(),
                },
                Stmt::TierPorts {
                    family: V6,
                    field: Saddr,
                    map: "in_x_a_admin_v6_ports".into(),
                },
                Stmt::TierOther {
                    family: V6,
                    field: Saddr,
                    map: "in_x_a_admin_v6_other".into(),
                },
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
        )
        .expect("a valid chain"),
        Chain::new(
            "in_x_a_admin".into(),
            None,
            vec![Stmt::Deny {
                action: deny,
                comment: "Admin deny ingress x/a".into(),
            }],
        )
        .expect("a valid chain"),
        Chain::new(
            "out_x_a".into(),
            None,
            vec![
                Stmt::TierPorts {
                    family: V4,
                    field: Daddr,
                    map: "out_x_a_baseline_v4_ports".into(),
                },
                Stmt::TierOther {
                    family: V4,
                    field: Daddr,
                    map: "out_x_a_baseline_v4_other".into(),
                },
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
        )
        .expect("a valid chain"),
        Chain::new(
            "out_x_a_baseline".into(),
            None,
            vec![Stmt::Deny {
                action: deny,
                comment: "Baseline deny egress x/a".into(),
            }],
        )
        .expect("a valid chain"),
    ];
    Plan::new(
        TABLE_NAME.into(),
        sets,
        maps,
        chains,
        vec![LocalEndpoint {
            id: ObjectName::new("x", "a"),
            ingress_chain: Some("in_x_a".into()),
            egress_chain: Some("out_x_a".into()),
            tier_chains: vec![
                TierChain {
                    direction: Direction::Ingress,
                    tier: Tier::Admin,
                    chain: "in_x_a_admin".into(),
                },
                TierChain {
                    direction: Direction::Egress,
                    tier: Tier::Baseline,
                    chain: "out_x_a_baseline".into(),
                },
            ],
            shard_chains: Vec::new(),
        }],
        Vec::new(),
    )
    .expect("a valid plan")
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

/// Name of the events limit of [`events_plan`].
const EVENTS_LIMIT: &str = "netpol_events";

/// The sample plan with verdict events: ingress denied and logged (`Log` before the
/// deny), egress audited and logged (`Log` and `Audit` instead of the deny), one limit
/// of `rate` a second with bursts of `burst`, logging to NFLOG `group`.
fn events_plan(deny: DenyAction, rate: u32, burst: u32, group: u16) -> Plan {
    use rules_compiler::plan::EventVerdict;
    events_plan_with(deny, rate, burst, group, EventVerdict::Audit)
}

/// [`events_plan`] whose egress chain ends in `egress` (a logged deny, or a logged
/// audit).
fn events_plan_with(
    deny: DenyAction,
    rate: u32,
    burst: u32,
    group: u16,
    egress: rules_compiler::plan::EventVerdict,
) -> Plan {
    use rules_compiler::plan::{EventVerdict, RateLimit};
    let mut parts = sample_plan(deny).into_parts();
    for chain in &mut parts.chains {
        let (name, hook, mut rules) = chain.clone().into_parts();
        let direction = match name.as_str() {
            "in_x_a" => Direction::Ingress,
            "out_x_a" => Direction::Egress,
            _ => continue,
        };
        let verdict = match direction {
            Direction::Ingress => EventVerdict::Deny,
            Direction::Egress => egress,
        };
        let log = Stmt::Log {
            verdict,
            direction,
            group,
            limit: EVENTS_LIMIT.into(),
        };
        let at = rules
            .iter()
            .position(|r| matches!(r, Stmt::Deny { .. }))
            .expect("a deny");
        if verdict == EventVerdict::Audit {
            rules.truncate(at);
            rules.push(log);
            rules.push(Stmt::Audit {
                comment: "audit egress x/a".into(),
            });
        } else {
            rules.insert(at, log);
        }
        *chain = Chain::new(name, hook, rules).expect("a valid chain");
    }
    parts.limits = vec![RateLimit::new(EVENTS_LIMIT.into(), rate, burst).expect("a valid limit")];
    parts.build().expect("a valid plan")
}

netns_test! {
    fn netlink_and_nft_f_load_the_same_table() {
        for deny in [DenyAction::Drop, DenyAction::Reject] {
            assert_same_as_nft(&sample_plan(deny));
            assert_same_as_nft(&events_plan(deny, 20, 40, 7));
        }
    }
}

/// The sample plan with one change that the kernel refuses; (what is wrong, plan,
/// words the error must contain). The checked constructors refuse each of these, so
/// they are built with `plan::unchecked`: what a backend does with a batch the kernel
/// rejects.
fn refused_plans() -> Vec<(&'static str, Plan, &'static str)> {
    let mut out = Vec::new();
    let rebuild = |parts: Parts| {
        unchecked::plan(
            &parts.table,
            parts.sets,
            parts.maps,
            parts.chains,
            parts.locals,
        )
    };

    let mut dup = sample_plan(DenyAction::Drop).into_parts();
    let ports = |sets: &[Set]| {
        sets.iter()
            .position(|s| s.name() == "in_x_a_v4_ports")
            .expect("the sample plan's in_x_a_v4_ports")
    };
    let i = ports(&dup.sets);
    let copy = dup.sets[i].clone();
    dup.sets.insert(i + 1, copy);
    out.push((
        "a set defined twice",
        rebuild(dup),
        "set in_x_a_v4_ports: File exists",
    ));

    let mut overlap = sample_plan(DenyAction::Drop).into_parts();
    let i = ports(&overlap.sets);
    let (name, family, elements) = overlap.sets[i].clone().into_parts();
    let SetElements::AddrProtoPort(v) = elements else {
        unreachable!()
    };
    let mut v = v.into_vec();
    // Inside 198.18.0.4-198.18.0.255 . tcp . 8000-8100, element 1.
    v.push(app(one("198.18.0.9"), 6, (8080, 8080)));
    let elements = SetElements::AddrProtoPort(unchecked::addr_proto_ports(v));
    overlap.sets[i] = unchecked::set(&name, family, elements);
    out.push((
        "overlapping concatenated intervals",
        rebuild(overlap),
        "set in_x_a_v4_ports (element 8: 198.18.0.9 . tcp . 8080)",
    ));

    let mut dangling = sample_plan(DenyAction::Drop).into_parts();
    let (name, family, mut v) = dangling.maps[1].clone().into_parts();
    v.push((ip("198.18.0.77"), "no_such_chain".into()));
    dangling.maps[1] = unchecked::map(&name, family, v);
    out.push((
        "a verdict map jumping to a chain that does not exist",
        rebuild(dangling),
        "map ingress_v4 (element 1: 198.18.0.77 : jump no_such_chain): No such file or directory",
    ));

    // A tier map whose elements the plan's types would refuse: the encoder sends
    // them as they are and the kernel names the element.
    let tier_map = |parts: &Parts, name: &str| {
        parts
            .sets
            .iter()
            .position(|s| s.name() == name)
            .expect("a tier map of the sample plan")
    };
    let mut overlap = sample_plan(DenyAction::Drop).into_parts();
    let i = tier_map(&overlap, "in_x_a_admin_v4_other");
    let (name, family, elements) = overlap.sets[i].clone().into_parts();
    let SetElements::AddrVerdict(v) = elements else {
        unreachable!()
    };
    let (keys, mut verdicts) = v.into_parts();
    let mut keys = keys.into_vec();
    // Inside 198.18.0.0-198.18.0.255 (element 1).
    keys.push(one("198.18.0.9"));
    verdicts.push(goto("in_x_a_admin"));
    let v = Verdicts::new(unchecked::addr_ranges(keys), verdicts).expect("as many verdicts");
    overlap.sets[i] = unchecked::set(&name, family, SetElements::AddrVerdict(v));
    out.push((
        "overlapping intervals in a tier map",
        rebuild(overlap),
        "map in_x_a_admin_v4_other (element 4: 198.18.0.9 : goto in_x_a_admin): File exists",
    ));

    let mut dangling = sample_plan(DenyAction::Drop).into_parts();
    let i = tier_map(&dangling, "in_x_a_admin_v6_ports");
    let (name, family, elements) = dangling.sets[i].clone().into_parts();
    let SetElements::AddrProtoPortVerdict(v) = elements else {
        unreachable!()
    };
    let (keys, mut verdicts) = v.into_parts();
    let mut keys = keys.into_vec();
    keys.push(app(one("2001:db8::a"), 6, (80, 80)));
    verdicts.push(goto("no_such_chain"));
    let v = Verdicts::new(unchecked::addr_proto_ports(keys), verdicts).expect("as many verdicts");
    dangling.sets[i] = unchecked::set(&name, family, SetElements::AddrProtoPortVerdict(v));
    out.push((
        "a tier map going to a chain that does not exist",
        rebuild(dangling),
        "map in_x_a_admin_v6_ports (element 1: 2001:db8::a . tcp . 80 : goto no_such_chain): No such file or directory",
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
        for set in plan.sets() {
            let got = loaded.sets.iter().find(|s| s.name == set.name()).unwrap();
            assert_eq!(got.elements, set.elements().len(), "set {}", set.name());
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
        // The endpoint's own deny chains and the tiers' (Admin ingress, Baseline
        // egress): the datagrams to 198.19.0.9 meet no tier map element.
        assert_eq!(denies.len(), 4, "{denies:?}");
        let tiers: Vec<_> = denies.iter().map(|d| (d.chain.as_str(), d.tier)).collect();
        assert!(tiers.contains(&("in_x_a_admin", Some(Tier::Admin))), "{denies:?}");
        assert!(tiers.contains(&("out_x_a_baseline", Some(Tier::Baseline))), "{denies:?}");
        for d in denies.iter().filter(|d| d.tier.is_some()) {
            assert_eq!((d.packets, d.bytes), (0, 0), "{d:?}");
        }
        let own = |dir| denies.iter().find(|d| d.direction == dir && d.tier.is_none());
        let out = own(Direction::Egress).unwrap();
        assert_eq!(out.endpoint, ObjectName::new("x", "a"));
        assert_eq!(out.chain, "out_x_a");
        // Each datagram is 20 bytes of IPv4 header, 8 of UDP and 100 of data.
        assert_eq!((out.packets, out.bytes), (5, 5 * 128));
        let inbound = own(Direction::Ingress).unwrap();
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
