//! Updates and two-transaction replaces against the kernel: they leave what a fresh
//! load of the new plan leaves, are refused when someone else changed the ruleset, and
//! drop no packet both plans allow.

use super::*;

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
    let mut out = plan.clone().into_parts();
    // What a tier map's element may do: accept, or go to one of the tiers' chains.
    let gotos: Vec<String> = plan
        .locals()
        .iter()
        .flat_map(|l| l.tier_chains.iter().map(|t| t.chain.clone()))
        .collect();
    let verdict = |rng: &mut Rng| match rng.below(gotos.len() as u64 + 1) as usize {
        0 => TierVerdict::Accept,
        i => TierVerdict::Goto(gotos[i - 1].clone()),
    };
    for set in &mut out.sets {
        // Leave some sets alone, as a real edit does.
        if rng.below(3) == 0 {
            continue;
        }
        let family = set.family();
        let bounds = |rng: &mut Rng| {
            let a = 1 + rng.below(14);
            let b = a + rng.below(15 - a);
            (a, b)
        };
        let elements = match set.elements() {
            SetElements::AddrVerdict(_) => {
                let mut v = Vec::new();
                for k in 0..=CELLS_LAST {
                    if rng.below(3) == 0 {
                        let (a, b) = bounds(rng);
                        v.push((cell(family, k, a, b), verdict(rng)));
                    }
                }
                SetElements::addr_verdict(family, v).expect("cells in order")
            }
            SetElements::AddrProtoPortVerdict(_) => {
                let mut v = Vec::new();
                for k in 1..CELLS_LAST {
                    let (a, b) = bounds(rng);
                    for proto in [6u8, 17, 132] {
                        for p in 0..3u16 {
                            if rng.below(8) == 0 {
                                let lo = 1000 * (p + 1);
                                let key = app(
                                    cell(family, k, a, b),
                                    proto,
                                    (lo + a as u16, lo + 10 * b as u16),
                                );
                                v.push((key, verdict(rng)));
                            }
                        }
                    }
                }
                SetElements::addr_proto_port_verdict(family, v).expect("cells in order")
            }
            SetElements::Addr(_) => {
                let mut v = Vec::new();
                for k in 0..=CELLS_LAST {
                    if rng.below(3) == 0 {
                        let (a, b) = bounds(rng);
                        v.push(cell(family, k, a, b));
                    }
                }
                SetElements::addr(family, v).expect("cells in order")
            }
            SetElements::AddrProtoPort(_) => {
                let mut v = Vec::new();
                for k in 1..CELLS_LAST {
                    // One range per cell: the plan's ranges are equal or disjoint.
                    let (a, b) = bounds(rng);
                    for proto in [6u8, 17] {
                        for p in 0..3u16 {
                            if rng.below(8) == 0 {
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
                SetElements::addr_proto_port(family, v).expect("cells in order")
            }
        };
        *set = Set::new(set.name().into(), family, elements).expect("a valid set");
    }
    let targets: Vec<&str> = plan
        .chains()
        .iter()
        .filter(|c| c.hook().is_none())
        .map(|c| c.name())
        .collect();
    for map in &mut out.maps {
        let family = map.family();
        let mut elements = Vec::new();
        for k in 1..30u64 {
            if rng.below(2) == 0 {
                let key = cell(family, k, 1, 1).start;
                let target = targets[rng.below(targets.len() as u64) as usize];
                elements.push((key, target.to_string()));
            }
        }
        *map = VerdictMap::new(map.name().into(), family, elements).expect("a valid map");
    }
    out.build().expect("a valid plan")
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
pub(super) fn listings_by_plan_names() -> [String; 2] {
    listings().map(|l| without_handles(&Slot::plain_listing(&l)))
}

/// [`listings_of_fresh_load`] without rule handles.
pub(super) fn fresh_without_handles(plan: &Plan) -> [String; 2] {
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
    let mut out = plan.clone().into_parts();
    let rename = |c: &str| {
        if c == "out_x_a" {
            "out_x_c".to_string()
        } else {
            c.to_string()
        }
    };
    for chain in &mut out.chains {
        let (name, hook, mut rules) = chain.clone().into_parts();
        for stmt in &mut rules {
            if let Stmt::Deny { action, .. } = stmt {
                *action = match action {
                    DenyAction::Drop => DenyAction::Reject,
                    DenyAction::Reject => DenyAction::Drop,
                };
            }
        }
        *chain = Chain::new(rename(&name), hook, rules).expect("a valid chain");
    }
    // Endpoint chains stay sorted by name.
    let base = out.chains.partition_point(|c| c.hook().is_some());
    out.chains[base..].sort_by(|a, b| a.name().cmp(b.name()));
    for map in &mut out.maps {
        let (name, family, mut elements) = map.clone().into_parts();
        for (_, target) in &mut elements {
            *target = rename(target);
        }
        *map = VerdictMap::new(name, family, elements).expect("a valid map");
    }
    for local in &mut out.locals {
        local.egress_chain = local.egress_chain.as_deref().map(rename);
    }
    out.build().expect("a valid plan")
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
        let plan = edit_ranges(sample_plan(DenyAction::Drop), "out_x_a_v4_all", |v| {
            v.extend((0..30_000u32).map(|i| {
                let a = IpAddr::V4((u32::from(std::net::Ipv4Addr::new(198, 19, 0, 1)) + 2 * i).into());
                AddrRange { start: a, end: a }
            }))
        });
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
        // The elements are valid on their own; a delta between two checked plans never
        // adds one that overlaps the set's others, so this one is built unchecked.
        let add = vec![
            app(one("198.18.0.3"), 6, (22, 22)),
            app(one("198.18.0.9"), 6, (8080, 8080)),
        ];
        let delta = unchecked::with_set_change(
            rules_compiler::plan::delta(&plan, &plan).unwrap(),
            "in_x_a_v4_ports",
            Family::V4,
            SetElements::addr_proto_port(Family::V4, vec![]).unwrap(),
            SetElements::addr_proto_port(Family::V4, add).unwrap(),
        );
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

netns_test! {
    fn a_replace_makes_the_new_limit_beside_the_old_and_deletes_the_old() {
        let mut kernel = Netlink::new();
        let mut generation = GenerationReader::open().expect("generation reader");
        kernel.apply(&events_plan(DenyAction::Drop, 20, 40, 7)).expect("apply");
        for (step, rate) in [30, 20, 5].into_iter().enumerate() {
            let next = events_plan(DenyAction::Drop, rate, 40, 7);
            let before = generation.read().unwrap();
            kernel.apply(&next).expect("replace");
            assert_eq!(generation.read().unwrap(), before + 2, "step {step}: two transactions");
            let listed = nft(LIST);
            // One limit, the new one, under the names in use; the rules use it.
            assert_eq!(listed.matches("\n\tlimit ").count(), 1, "step {step}:\n{listed}");
            assert!(listed.contains(&format!("rate {rate}/second")), "step {step}:\n{listed}");
            let in_use = if step % 2 == 0 { Slot::NEXT_PREFIX } else { "" };
            assert!(
                listed.contains(&format!("limit name \"{in_use}{EVENTS_LIMIT}\" counter")),
                "step {step}:\n{listed}"
            );
            assert_eq!(kernel.read().unwrap(), Some(LoadedTable::expected(&next).unwrap()), "step {step}");
            let ours = listings_by_plan_names();
            let fresh = fresh_without_handles(&next);
            assert!(ours == fresh, "step {step}: differs from a fresh load:\n{}", first_difference(&ours[0], &fresh[0]));
            // Element updates leave the limit alone.
            let updated = edit_ranges(next.clone(), "out_x_a_v4_all", |v| v.truncate(1));
            let delta = Update::between(&next, &updated).expect("element changes only");
            kernel.update(&delta).expect("update");
            assert_eq!(listings_by_plan_names(), fresh_without_handles(&updated), "step {step}: after the update");
        }
    }
}
