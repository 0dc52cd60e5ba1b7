//! Plans with ClusterNetworkPolicy tiers as the compiler builds them (the bundled
//! example with its cluster guardrails, `config/`), not by hand: loaded through netlink
//! they list as `nft -f` of their text lists, a staged replace between two of them
//! leaves what a fresh load leaves, and a moved peer is an element update of the tier
//! maps.

use std::path::PathBuf;

use rules_compiler::load::{self, Input};
use rules_compiler::plan::{self, EventLog, Options};
use rules_compiler::resolve::Index;

use super::update::{fresh_without_handles, listings_by_plan_names};
use super::*;
use crate::readback::GenerationReader;

/// The bundled example's files under `config/`: (policies, inventory).
fn example_inputs(policies: &[&str]) -> (Vec<Input>, Vec<Input>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    let read = |dirs: &[&str]| {
        let paths: Vec<PathBuf> = dirs.iter().map(|d| root.join(d)).collect();
        load::read_paths(&paths, &Default::default()).expect("the bundled example reads")
    };
    (read(policies), read(&["inventory"]))
}

/// The plan for the example's three local pods.
fn compile(policies: &[Input], inventory: &[Input], options: &Options) -> Plan {
    let loaded = rules_compiler::load_model(policies, inventory).expect("the example loads");
    let index = Index::new(&loaded.model);
    let locals: Vec<usize> = ["payments/payments-api", "web/checkout", "web/frontend"]
        .iter()
        .map(|n| {
            loaded
                .model
                .inventory
                .endpoint_index(&ObjectName::parse(n).expect("a name"))
                .expect("a pod of the example")
        })
        .collect();
    plan::build(&index, &locals, options)
}

/// The example with its NetworkPolicies and cluster guardrails (both tiers).
fn guardrails(options: &Options) -> Plan {
    let (policies, inventory) = example_inputs(&["policies", "cluster"]);
    compile(&policies, &inventory, options)
}

/// What the tier maps and rules of `plan` are: (maps, TierClass rules, TierPorts and
/// TierOther rules of the layout chains).
fn tier_shape(plan: &Plan) -> (usize, usize, usize) {
    let maps = plan.sets().iter().filter(|s| s.elements().is_map()).count();
    let rules = plan.chains().iter().flat_map(|c| c.rules());
    let (mut classes, mut layouts) = (0, 0);
    for r in rules {
        match r {
            Stmt::TierClass { .. } => classes += 1,
            Stmt::TierPorts { .. } | Stmt::TierOther { .. } => layouts += 1,
            _ => {}
        }
    }
    (maps, classes, layouts)
}

netns_test! {
    fn compiled_tier_plans_load_through_netlink_as_through_nft_f() {
        let events = Options {
            events: Some(EventLog { group: 5, rate: 10, burst: 20 }),
            ..Options::default()
        };
        let reject = Options { deny: DenyAction::Reject, ..Options::default() };
        for options in [Options::default(), reject, events] {
            let plan = guardrails(&options);
            let (maps, classes, layouts) = tier_shape(&plan);
            assert!(maps >= 4 && classes >= 2 && layouts >= 1, "{}", rules_compiler::render::nft(&plan));
            assert_same_as_nft(&plan);
            // Read back whole, the tier maps among the sets as maps.
            let loaded = Netlink::new().read().expect("read").expect("a table");
            assert_eq!(loaded, LoadedTable::expected(&plan).unwrap());
            assert_eq!(loaded.sets.iter().filter(|s| s.map).count(), maps + plan.maps().len());
        }
    }
}

netns_test! {
    fn a_staged_replace_between_compiled_tier_plans_leaves_a_fresh_load() {
        let mut kernel = Netlink::new();
        let mut generation = GenerationReader::open().expect("generation reader");
        // The guardrails alone (endpoints only the tiers police), then with the
        // NetworkPolicies, then alone again: each swap changes chains, sets and maps.
        let (cluster, inventory) = example_inputs(&["cluster"]);
        let alone = compile(&cluster, &inventory, &Options::default());
        let both = guardrails(&Options::default());
        assert_ne!(tier_shape(&alone).0, 0);
        kernel.apply(&alone).expect("apply");
        for (step, next) in [&both, &alone, &both].into_iter().enumerate() {
            let before = generation.read().unwrap();
            kernel.apply(next).expect("replace");
            assert_eq!(generation.read().unwrap(), before + 2, "step {step}: two transactions");
            assert_eq!(
                nft(LIST).contains(&format!("map {}in_", Slot::NEXT_PREFIX)),
                step % 2 == 0,
                "step {step}: odd loads under the other slot's names"
            );
            let ours = listings_by_plan_names();
            let fresh = fresh_without_handles(next);
            for (kind, (a, b)) in ["listing", "bytecode listing"].iter().zip(ours.iter().zip(fresh.iter())) {
                assert!(a == b, "step {step}: the {kind} after the swap differs from a fresh load:\n--- swapped\n{a}\n--- fresh\n{b}");
            }
            assert_eq!(kernel.read().unwrap(), Some(LoadedTable::expected(next).unwrap()), "step {step}");
        }
    }
}

netns_test! {
    fn a_moved_cluster_peer_is_an_element_update_of_the_tier_maps() {
        // kube-dns, the Admin tier's DNS peer, moves to other addresses.
        let (policies, inventory) = example_inputs(&["policies", "cluster"]);
        let moved: Vec<Input> = inventory
            .iter()
            .map(|i| Input {
                path: i.path.clone(),
                text: i.text.replace("198.18.0.10", "198.18.0.20").replace("2001:db8::10", "2001:db8::20").into(),
            })
            .collect();
        let old = compile(&policies, &inventory, &Options::default());
        let new = compile(&policies, &moved, &Options::default());
        let delta = Update::between(&old, &new).expect("element changes only");
        let touched: Vec<&str> = delta.delta().sets().iter().map(|d| d.name()).collect();
        assert!(
            touched.iter().any(|n| old.set(n).is_some_and(|s| s.elements().is_map())),
            "no tier map changes: {touched:?}"
        );
        let mut kernel = Netlink::new();
        kernel.apply(&old).expect("apply");
        let stats = kernel.update(&delta).expect("update");
        assert_eq!(stats.elements, delta.changed());
        assert_eq!(listings_by_plan_names(), fresh_without_handles(&new));
        // And back, under the other slot's names after a staged replace.
        kernel.apply(&old).expect("replace");
        kernel.apply(&new).expect("replace");
        let back = Update::between(&new, &old).expect("element changes only");
        kernel.update(&back).expect("update back");
        assert_eq!(listings_by_plan_names(), fresh_without_handles(&old));
    }
}

/// `plan` with the tier map `name` holding `other` (an `…_other` map) or `ports` (a
/// `…_ports` map) instead.
fn with_map(plan: &Plan, name: &str, elements: SetElements) -> Plan {
    let mut parts = plan.clone().into_parts();
    let set = parts
        .sets
        .iter_mut()
        .find(|s| s.name() == name)
        .expect("the map");
    *set = Set::new(name.into(), set.family(), elements).expect("a valid map");
    parts.build().expect("a valid plan")
}

netns_test! {
    fn updates_of_adjacent_tier_intervals_leave_a_fresh_load() {
        use Family::V4;
        use TierVerdict::Accept;
        let deny = || goto("in_x_a_admin");
        let max = "255.255.255.255";
        // Intervals that touch with other verdicts (an end element and a start
        // element at one address), the gap below the first interval coming and
        // going, the open last interval closing, verdicts changing in place.
        let others = [
            vec![
                (range("0.0.0.0", "9.255.255.255"), Accept),
                (range("198.18.0.0", "198.18.0.255"), Accept),
                (range("198.18.1.0", "198.18.1.255"), deny()),
                (range("198.18.2.0", "198.18.2.255"), Accept),
                (range("198.18.3.0", max), Accept),
            ],
            vec![
                (range("0.0.0.0", "9.255.255.255"), Accept),
                (range("198.18.1.0", "198.18.1.255"), deny()),
                (range("198.18.2.0", "198.18.2.255"), deny()),
                (range("198.18.3.0", "198.18.3.255"), deny()),
            ],
            vec![
                (range("198.18.1.0", "198.18.1.255"), Accept),
                (range("198.18.2.0", "198.18.2.255"), deny()),
            ],
            vec![
                (range("0.0.0.0", "198.18.0.255"), deny()),
                (range("198.18.1.0", "198.18.1.255"), deny()),
                (range("198.18.2.0", max), Accept),
            ],
            vec![],
            vec![(range("0.0.0.0", max), deny())],
            vec![(range("198.18.2.0", "198.18.2.255"), Accept)],
        ];
        let tcp = |a: &str, lo, hi| app(range(a, "198.18.0.255"), 6, (lo, hi));
        let ports = [
            vec![(tcp("198.18.0.0", 22, 22), deny()), (tcp("198.18.0.0", 23, 80), Accept)],
            vec![
                (tcp("198.18.0.0", 22, 22), deny()),
                (tcp("198.18.0.0", 23, 50), Accept),
                (tcp("198.18.0.0", 51, 80), deny()),
            ],
            vec![(tcp("198.18.0.0", 0, 65535), Accept)],
            vec![],
            vec![(app(range("0.0.0.0", max), 17, (0, 65535)), deny())],
        ];
        let mut kernel = Netlink::new();
        let mut old = sample_plan(DenyAction::Drop);
        kernel.apply(&old).expect("apply");
        let steps = others.len().max(ports.len()) * 2;
        for step in 0..steps {
            let other = SetElements::addr_verdict(V4, others[step % others.len()].clone()).unwrap();
            let port = SetElements::addr_proto_port_verdict(V4, ports[step % ports.len()].clone()).unwrap();
            let new = with_map(&with_map(&old, "in_x_a_admin_v4_other", other), "in_x_a_admin_v4_ports", port);
            let delta = Update::between(&old, &new).expect("element changes only");
            kernel.update(&delta).unwrap_or_else(|e| panic!("step {step}: {e}\n{delta:#?}"));
            let ours = listings_by_plan_names();
            let fresh = fresh_without_handles(&new);
            for (kind, (a, b)) in ["listing", "bytecode listing"].iter().zip(ours.iter().zip(fresh.iter())) {
                assert!(a == b, "step {step}: the {kind} after the update differs from a fresh load:\n--- updated\n{a}\n--- fresh\n{b}\n--- delta\n{delta:#?}");
            }
            old = new;
        }
    }
}
