//! Reload logic over the fake kernel and copies of the bundled example.

use std::path::Path;

use super::*;
use crate::netlink::fake::FakeBackend;
use crate::testdir::TempDir;

/// The bundled example, copied so tests can edit it.
/// A scratch copy of the bundled example (also for the state thread's tests).
pub(super) fn example() -> TempDir {
    let dir = TempDir::new("state");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for sub in ["policies", "inventory"] {
        for entry in std::fs::read_dir(repo.join("config").join(sub)).unwrap() {
            let entry = entry.unwrap();
            let text = std::fs::read_to_string(entry.path()).unwrap();
            dir.write(
                &format!("{sub}/{}", entry.file_name().to_string_lossy()),
                &text,
            );
        }
    }
    dir
}

pub(super) fn state(dir: &TempDir, locals: &[ObjectName]) -> State<FakeBackend> {
    let mut s = State::new(
        Options {
            policies: vec![dir.path().join("policies")],
            inventory: vec![dir.path().join("inventory")],
            locals: locals.to_vec(),
            deny: DenyAction::Drop,
            mode: Default::default(),
            events: None,
            failsafe: Vec::new(),
            confirm_within: None,
            pending_file: None,
            incremental: true,
            load: Default::default(),
            revoke: true,
        },
        FakeBackend::new(),
    );
    // Not this machine's addresses: the fake kernel's flows are the tests' own.
    s.set_address_source(|| Ok(BTreeSet::new()));
    s
}

fn checkout() -> Vec<ObjectName> {
    vec![ObjectName::new("web", "checkout")]
}

/// Isolates the ingress of every pod in `web`: a new chain for `web/checkout`, so
/// applying it replaces the table.
const EXTRA_POLICY: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {namespace: web, name: deny-ingress}
spec:
  podSelector: {}
  policyTypes: [Ingress]
";

#[test]
fn start_applies_and_the_same_inputs_change_nothing() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    let r = s.reload(Trigger::Start);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.generation, 1);
    assert_eq!(r.before, None);
    assert_eq!(r.locals_added, ["web/checkout"]);
    let after = r.after.unwrap();
    assert_eq!(
        (after.policies, after.endpoints, after.local_endpoints),
        (4, 5, 1)
    );
    let plan = s.backend().loaded.clone().unwrap();
    assert_eq!(after.rules, plan.rule_count());
    assert_eq!(after.elements, plan.element_count());

    for trigger in [Trigger::Files, Trigger::Signal, Trigger::Control] {
        let r = s.reload(trigger);
        assert_eq!(r.outcome, Outcome::Unchanged, "{trigger:?}");
        assert_eq!(r.generation, 1);
    }
    assert_eq!(s.backend().applies, 1);
    let st = s.status();
    assert_eq!(st.generation, 1);
    assert_eq!(st.disk, DiskState::Match);
    assert_eq!(
        st.reloads,
        ReloadCounts {
            applied: 1,
            unchanged: 3,
            failed: 0,
            held: 0
        }
    );
    assert_eq!(st.local_endpoints, ["web/checkout"]);
    assert!(st.hashes.unwrap().policies.len() == 64);
}

#[test]
fn an_edit_applies_a_new_generation_and_reports_what_changed() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    let seen = Seen::default();
    s.follow_file_events(seen.clone());
    let first = s.reload(Trigger::Start);
    let hashes = s.status().hashes.unwrap();
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    // The watch sees the write.
    seen.note();
    assert_eq!(s.status().disk, DiskState::Differ);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.generation, 2);
    assert_eq!(r.before, first.after);
    assert_eq!(r.after.unwrap().policies, 5);
    assert!(r.locals_added.is_empty() && r.locals_removed.is_empty());
    let now = s.status().hashes.unwrap();
    assert_ne!(now.policies, hashes.policies);
    assert_eq!(now.inventory, hashes.inventory);
    assert_eq!(s.backend().applies, 2);
}

#[test]
fn a_broken_file_keeps_the_last_good_ruleset_until_fixed() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    let good = s.backend().loaded.clone();
    let broken = dir.write("policies/extra.yaml", "kind: NetworkPolicy\nspec: [\n");

    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.stage, Some(Stage::Load));
    assert_eq!(r.generation, 1);
    let error = r.error.unwrap();
    assert!(error.contains(&broken.display().to_string()), "{error}");
    assert_eq!(s.backend().loaded, good);
    assert_eq!(s.backend().applies, 1);
    let st = s.status();
    assert_eq!(st.reloads.failed, 1);
    assert_eq!(st.last_error.as_ref().unwrap().message, error);
    assert_eq!(st.last_error.unwrap().stage, Stage::Load);
    assert_eq!(st.disk, DiskState::Differ);
    assert_eq!(s.counters.failed_load, 1);

    // More events on the same broken bytes do not fail again; an explicit reload does.
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Unchanged);
    assert_eq!(s.reload(Trigger::Control).outcome, Outcome::Failed);
    assert_eq!(s.counters.reloads.failed, 2);

    dir.write("policies/extra.yaml", EXTRA_POLICY);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(r.generation, 2);
    assert_eq!(s.status().last_error, None);
    assert_eq!(s.status().disk, DiskState::Match);
}

/// `status` says whether the files are what is loaded from the watch's events and the
/// last read alone: it never reads them.
#[test]
fn the_disk_state_comes_from_the_watch_and_the_last_read() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    assert_eq!(s.disk(), DiskState::Differ, "nothing read, nothing loaded");
    let seen = Seen::default();
    s.follow_file_events(seen.clone());
    s.reload(Trigger::Start);
    assert_eq!(s.status().disk, DiskState::Match);

    // An event is a change not read yet, even when the bytes are the same (a touch),
    // until a reload reads them.
    seen.note();
    assert_eq!(s.status().disk, DiskState::Differ);
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Unchanged);
    assert_eq!(s.status().disk, DiskState::Match);

    // An edit: differ while pending, match once applied.
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    seen.note();
    assert_eq!(s.status().disk, DiskState::Differ);
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Applied);
    assert_eq!(s.status().disk, DiskState::Match);

    // Status reads nothing: with the inputs gone and no event (the watch missed it),
    // it says what the last read found.
    let policies = dir.path().join("policies");
    let away = dir.path().join("policies.away");
    std::fs::rename(&policies, &away).unwrap();
    assert_eq!(s.status().disk, DiskState::Match);
    std::fs::rename(&away, &policies).unwrap();

    // A file that cannot be read: differ until the reload, then unreadable; the fix is
    // differ again until it is read.
    let empty = dir.write("policies/empty.yaml", "");
    seen.note();
    assert_eq!(s.status().disk, DiskState::Differ);
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Failed);
    assert_eq!(s.status().disk, DiskState::Unreadable);
    std::fs::remove_file(empty).unwrap();
    seen.note();
    assert_eq!(s.status().disk, DiskState::Differ);
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Unchanged);
    assert_eq!(s.status().disk, DiskState::Match);

    // Bytes that were read but not applied (a YAML error) differ from what is loaded.
    dir.write("policies/broken.yaml", "kind: [\n");
    seen.note();
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Failed);
    assert_eq!(s.status().disk, DiskState::Differ);
    // An address change re-plans the inputs in force; the disk is as it was.
    assert_eq!(s.set_host_addresses(ips(&["198.18.2.10"])), None);
    assert_eq!(s.status().disk, DiskState::Differ);
}

#[test]
fn going_back_to_the_loaded_files_clears_the_error_without_applying() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    let broken = dir.write("policies/extra.yaml", "kind: [\n");
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Failed);
    std::fs::remove_file(broken).unwrap();
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Unchanged);
    assert_eq!(s.status().last_error, None);
    assert_eq!(s.backend().applies, 1);
}

#[test]
fn a_kernel_rejection_keeps_the_loaded_table_and_an_explicit_reload_retries() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    let good = s.backend().loaded.clone();
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    s.backend().fail_next("chain output", libc::ENOMEM);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.stage, Some(Stage::Kernel));
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("the kernel rejected the batch at chain output"),
        "{r:?}"
    );
    assert_eq!(s.backend().loaded, good);
    assert_eq!(s.counters.failed_kernel, 1);
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Unchanged);
    let r = s.reload(Trigger::Signal);
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(r.generation, 2);
    assert_eq!(s.status().last_error, None);
}

#[test]
fn the_first_load_failing_touches_nothing() {
    let dir = example();
    dir.write(
        "inventory/bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: 3\n",
    );
    let mut s = state(&dir, &checkout());
    let r = s.reload(Trigger::Start);
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.generation, 0);
    assert!(s.backend().loaded.is_none());
    assert_eq!(s.backend().applies, 0);
    assert_eq!(s.summary().split(';').next(), Some("nothing loaded"));
}

#[test]
fn an_unknown_named_local_endpoint_fails_at_the_locals_stage() {
    let dir = example();
    let mut s = state(&dir, &[ObjectName::new("web", "nobody")]);
    let r = s.reload(Trigger::Start);
    assert_eq!(r.stage, Some(Stage::Locals));
    assert!(r.error.unwrap().contains("no endpoint web/nobody"));
    assert_eq!(s.counters.failed_locals, 1);
    assert!(s.backend().loaded.is_none());
}

fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn local_endpoints_follow_the_hosts_addresses() {
    let dir = example();
    let mut s = state(&dir, &[]);
    assert!(
        s.set_host_addresses(ips(&["127.0.0.1"])).is_none(),
        "nothing loaded yet"
    );
    let r = s.reload(Trigger::Start);
    assert_eq!(r.after.unwrap().local_endpoints, 0);

    // checkout's address appears: checkout becomes local.
    let r = s
        .set_host_addresses(ips(&["127.0.0.1", "198.18.2.10"]))
        .expect("the local set changed");
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(r.trigger, Trigger::Addresses);
    assert_eq!(r.locals_added, ["web/checkout"]);
    assert_eq!(r.generation, 2);
    let plan = s.backend().loaded.clone().unwrap();
    assert_eq!(plan.locals().len(), 1);

    // Its second address and an address of nobody: the same set, nothing applied.
    assert!(s
        .set_host_addresses(ips(&[
            "127.0.0.1",
            "198.18.2.10",
            "2001:db8:2::10",
            "198.18.9.9"
        ]))
        .is_none());
    assert_eq!(s.backend().applies, 2);

    // A file reload keeps choosing by address.
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.after.unwrap().local_endpoints, 1);

    // All of checkout's addresses gone: no local endpoint.
    let r = s.set_host_addresses(ips(&["127.0.0.1"])).unwrap();
    assert_eq!(r.locals_removed, ["web/checkout"]);
    assert!(s.backend().loaded.as_ref().unwrap().locals().is_empty());
    assert_eq!(s.status().local_endpoints, Vec::<String>::new());
}

#[test]
fn named_local_endpoints_ignore_the_hosts_addresses() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    assert!(s.set_host_addresses(ips(&["198.18.1.10"])).is_none());
    assert_eq!(s.backend().applies, 1);
}

fn denied(packets: u64) -> Vec<crate::netlink::DenyCounter> {
    vec![crate::netlink::DenyCounter {
        endpoint: ObjectName::new("web", "checkout"),
        direction: rules_compiler::model::Direction::Ingress,
        chain: "in_web_checkout".into(),
        packets,
        bytes: packets * 40,
        verdict: rules_compiler::plan::EventVerdict::Deny,
        logged: None,
        tier: None,
    }]
}

fn denied_total(s: &State<FakeBackend>) -> u64 {
    s.deny_totals()
        .totals()
        .get(&("web/checkout".to_string(), "ingress", "NetworkPolicy"))
        .map(|c| c.packets)
        .unwrap_or(0)
}

#[test]
fn deny_counts_survive_replaces_even_between_reads() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.count_denies();
    assert_eq!(s.reload(Trigger::Start).outcome, Outcome::Applied);
    s.backend().denied = denied(3);
    s.read_denies();
    assert_eq!(denied_total(&s), 3);

    // Two more packets, then a reload before the next periodic read: the counts of
    // the table being replaced are read first, not lost with it.
    s.backend().denied = denied(5);
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Applied);
    assert!(
        s.backend().denied.is_empty(),
        "the new table counts from zero"
    );
    assert_eq!(denied_total(&s), 5);
    s.read_denies();
    assert_eq!(denied_total(&s), 5);
    s.backend().denied = denied(1);
    s.read_denies();
    assert_eq!(denied_total(&s), 6);

    // A failed apply replaces nothing: the counters go on.
    std::fs::remove_file(dir.path().join("policies/extra.yaml")).unwrap();
    s.backend().fail_next("table inet netpol", libc::EINVAL);
    assert_eq!(s.reload(Trigger::Control).outcome, Outcome::Failed);
    s.backend().denied = denied(4);
    s.read_denies();
    assert_eq!(denied_total(&s), 9);
}

#[test]
fn every_deny_counter_is_known_from_the_apply_that_made_it() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.count_denies();
    assert_eq!(s.reload(Trigger::Start).outcome, Outcome::Applied);
    // No periodic read yet: the apply itself read the new table's counters.
    let totals = s.deny_totals().totals();
    // checkout's egress is isolated in the example, its ingress is not.
    let key = ("web/checkout".to_string(), "egress", "NetworkPolicy");
    assert_eq!(totals.get(&key).map(|c| c.packets), Some(0), "{totals:?}");
    assert_eq!(totals.len(), 1, "{totals:?}");
}

#[test]
fn deny_counters_are_not_read_unless_asked() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    assert_eq!(s.reload(Trigger::Start).outcome, Outcome::Applied);
    s.backend().denied = denied(3);
    s.read_denies();
    assert_eq!(denied_total(&s), 0);
}

#[test]
fn an_address_change_replans_the_inputs_in_force_even_when_the_disk_broke() {
    let dir = example();
    let mut s = state(&dir, &[]);
    assert_eq!(s.reload(Trigger::Start).outcome, Outcome::Applied);
    let hashes = s.status().hashes;

    // The disk breaks: the reload fails and generation 1 stays.
    dir.write("policies/broken.yaml", "kind: NetworkPolicy\nspec: [\n");
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Failed);

    // checkout's address appears: the inputs of generation 1, not the broken disk, are
    // planned for the new local set.
    let r = s
        .set_host_addresses(ips(&["198.18.2.10"]))
        .expect("the local set changed");
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.locals_added, ["web/checkout"]);
    assert_eq!(s.status().hashes, hashes);
    assert_eq!(s.status().disk, DiskState::Differ);
    let plan = s.backend().loaded.clone().unwrap();
    assert_eq!(plan.locals().len(), 1);
    assert_eq!(r.after.unwrap().policies, 4);
}

/// A second payments-api pod, which `web/checkout` may call: new elements in its
/// egress sets, nothing else.
const PAYMENTS_API_2: &str = "\
apiVersion: v1
kind: Pod
metadata:
  namespace: payments
  name: payments-api-2
  labels: {app: payments-api}
status:
  podIPs: [{ip: 198.18.1.31}, {ip: \"2001:db8:1::31\"}]
";

/// The plan a fresh state applies for the files as they are now.
fn fresh_plan(dir: &TempDir, locals: &[ObjectName]) -> Plan {
    let mut s = state(dir, locals);
    assert_eq!(s.reload(Trigger::Start).outcome, Outcome::Applied);
    s.backend().loaded.clone().unwrap()
}

#[test]
fn a_membership_change_is_an_update_that_ends_where_a_fresh_load_does() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    assert_eq!(
        s.reload(Trigger::Start).kernel,
        Some(KernelChange::Replaced)
    );
    assert_eq!(s.status().loaded_how, Some(KernelChange::Replaced));

    dir.write("inventory/more.yaml", PAYMENTS_API_2);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    let Some(KernelChange::Updated { elements }) = r.kernel else {
        panic!("not an update: {r:?}");
    };
    assert!(
        elements > 0,
        "the new payments-api is a peer of web/checkout"
    );
    assert_eq!((s.backend().applies, s.backend().updates), (1, 1));
    assert_eq!(
        s.backend().loaded.clone().unwrap(),
        fresh_plan(&dir, &checkout())
    );
    assert_eq!(s.status().loaded_how, r.kernel);

    // Gone again: back to the first plan, again by an update.
    std::fs::remove_file(dir.path().join("inventory/more.yaml")).unwrap();
    let r = s.reload(Trigger::Files);
    assert!(
        matches!(r.kernel, Some(KernelChange::Updated { .. })),
        "{r:?}"
    );
    assert_eq!(
        s.backend().loaded.clone().unwrap(),
        fresh_plan(&dir, &checkout())
    );

    // A policy that isolates more endpoints adds chains: a replace.
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.kernel, Some(KernelChange::Replaced), "{r:?}");
    assert_eq!((s.backend().applies, s.backend().updates), (2, 2));
    assert_eq!(
        s.backend().loaded.clone().unwrap(),
        fresh_plan(&dir, &checkout())
    );
}

#[test]
fn an_edit_decodes_only_its_document_and_ends_where_a_fresh_load_does() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    let documents = s.decode_cache.last().decoded;
    assert!(documents > 5, "{:?}", s.decode_cache.last());

    // payments-api, a peer of web/checkout, moves to another address, with a line more
    // in its document: the documents below it move down.
    let pods = dir.path().join("inventory/pods.yaml");
    let text = std::fs::read_to_string(&pods).unwrap();
    let edited = text.replacen(
        "  podIP: 198.18.1.10\n  podIPs:\n  - ip: 198.18.1.10\n",
        "  podIP: 198.18.1.11\n  podIPs:\n  - ip: 198.18.1.11\n  - ip: 198.18.1.12\n",
        1,
    );
    assert_ne!(edited, text);
    dir.write("inventory/pods.yaml", &edited);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert!(
        matches!(r.kernel, Some(KernelChange::Updated { .. })),
        "{r:?}"
    );
    let cache = s.decode_cache.last();
    assert_eq!((cache.decoded, cache.reused), (1, documents - 1));
    assert_eq!(
        s.backend().loaded.clone().unwrap(),
        fresh_plan(&dir, &checkout())
    );

    // An error below the edit is placed as a cold load places it (the scanner notices
    // the unclosed list on the line after it).
    let broken = edited.replacen("  name: frontend\n", "  name: frontend\n  bogus: [\n", 1);
    dir.write("inventory/pods.yaml", &broken);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    let line = broken
        .lines()
        .position(|l| l.starts_with("  bogus: ["))
        .unwrap();
    let error = r.error.unwrap();
    let rejected = rules_compiler::load_model(
        &load::read_paths(&[dir.path().join("policies")], &Default::default()).unwrap(),
        &load::read_paths(&[dir.path().join("inventory")], &Default::default()).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(error, rejected);
    assert!(
        error.contains(&format!("pods.yaml:{}:", line + 2)),
        "{error}"
    );
}

#[test]
fn without_incremental_every_reload_replaces() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.options.incremental = false;
    s.reload(Trigger::Start);
    dir.write("inventory/more.yaml", PAYMENTS_API_2);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.kernel, Some(KernelChange::Replaced), "{r:?}");
    assert_eq!((s.backend().applies, s.backend().updates), (2, 0));
}

#[test]
fn a_failed_update_falls_back_to_a_replace_and_is_counted() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    dir.write("inventory/more.yaml", PAYMENTS_API_2);
    s.backend()
        .fail_next("set out_web_checkout_v4_ports", libc::ENOMEM);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.kernel, Some(KernelChange::Replaced));
    assert_eq!(s.counters.incremental_fallbacks, 1);
    assert_eq!((s.backend().applies, s.backend().updates), (2, 0));
    assert_eq!(
        s.backend().loaded.clone().unwrap(),
        fresh_plan(&dir, &checkout())
    );
}

#[test]
fn a_failed_replace_forgets_the_applied_plan_so_the_next_reload_replaces() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    s.backend().fail_next("table inet netpol", libc::EINVAL);
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Failed);
    dir.write("inventory/more.yaml", PAYMENTS_API_2);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.kernel, Some(KernelChange::Replaced), "{r:?}");
}

#[test]
fn deny_counts_are_not_carried_over_an_update() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.count_denies();
    s.reload(Trigger::Start);
    s.backend().denied = denied(3);
    s.read_denies();
    // An update keeps the kernel's counters: they go on from 3, not from zero.
    dir.write("inventory/more.yaml", PAYMENTS_API_2);
    let r = s.reload(Trigger::Files);
    assert!(
        matches!(r.kernel, Some(KernelChange::Updated { .. })),
        "{r:?}"
    );
    assert_eq!(
        s.backend().denied,
        denied(3),
        "the fake keeps counters on update"
    );
    s.backend().denied = denied(5);
    s.read_denies();
    assert_eq!(denied_total(&s), 5, "3 counted once, plus 2");
}

/// `pods.yaml` as a copy cut off before its document that holds `web/checkout`: what a
/// non-atomic `kubectl get pods -o yaml > pods.yaml` shows a reader half-way.
fn truncate_before_checkout(dir: &TempDir) {
    let text = dir.read("inventory/pods.yaml");
    let cut = text.find("name: checkout").unwrap();
    let doc_start = text[..cut].rfind("\n---").unwrap();
    dir.write("inventory/pods.yaml", &text[..doc_start + 1]);
}

#[test]
fn inputs_that_take_away_every_local_endpoint_are_held_until_forced() {
    let dir = example();
    let mut s = state(&dir, &[]);
    s.set_host_addresses(ips(&["198.18.2.10"]));
    assert_eq!(s.reload(Trigger::Start).after.unwrap().local_endpoints, 1);
    let good = s.backend().loaded.clone();

    truncate_before_checkout(&dir);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Held, "{r:?}");
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("every local endpoint (1 -> 0)"),
        "{r:?}"
    );
    assert_eq!(r.generation, 1);
    assert_eq!(s.backend().loaded, good, "nothing reached the kernel");
    assert_eq!(s.backend().applies, 1);
    let st = s.status();
    let held = st.held.clone().expect("status shows the hold");
    assert_eq!(held.trigger, Trigger::Files);
    assert_eq!(st.reloads.held, 1);
    assert_eq!(
        st.disk,
        DiskState::Differ,
        "the files held are not what is loaded"
    );
    assert_eq!(st.local_endpoints, ["web/checkout"]);
    assert!(crate::ctl::report_text::status_text(&st).contains("reload --force"));
    assert!(s.summary().contains("inputs held"), "{}", s.summary());
    assert!(!s.wants_retry());

    // More events for the same files: still held, not applied, not logged again.
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Unchanged);
    assert!(s.status().held.is_some());
    // An explicit reload looks again and holds again.
    assert_eq!(s.reload(Trigger::Signal).outcome, Outcome::Held);
    assert_eq!(s.backend().applies, 1);

    // The operator means it.
    let r = s.force_reload();
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.locals_removed, ["web/checkout"]);
    assert_eq!(r.after.unwrap().local_endpoints, 0);
    assert_eq!(s.status().held, None);
    assert_eq!(s.backend().applies, 2);
}

#[test]
fn files_changing_back_end_a_hold() {
    let dir = example();
    let mut s = state(&dir, &[]);
    s.set_host_addresses(ips(&["198.18.2.10"]));
    s.reload(Trigger::Start);
    let whole = dir.read("inventory/pods.yaml");
    truncate_before_checkout(&dir);
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Held);
    // The writer finishes the file.
    dir.write("inventory/pods.yaml", &whole);
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Unchanged);
    assert_eq!(s.status().held, None);
    assert!(!s.summary().contains("held"));
}

#[test]
fn removing_most_policies_is_held_and_removing_some_is_not() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    let web = dir.read("policies/web.yaml");
    std::fs::remove_file(dir.path().join("policies/payments.yaml")).unwrap();
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "half of them (4 -> 2): {r:?}");
    std::fs::remove_file(dir.path().join("policies/web.yaml")).unwrap();
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Held, "{r:?}");
    assert!(r.error.unwrap().contains("most of the policies (2 -> 0)"));
    assert_eq!(s.generation(), 2);
    dir.write("policies/web.yaml", &web);
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Unchanged);
    assert_eq!(s.status().held, None);
}

#[test]
fn what_counts_as_suspicious() {
    let c = |policies, local_endpoints| Counts {
        policies,
        local_endpoints,
        ..Counts::default()
    };
    assert_eq!(suspicious(&c(4, 1), &c(4, 1)), None);
    assert_eq!(suspicious(&c(4, 2), &c(4, 1)), None, "one local left");
    assert!(suspicious(&c(4, 2), &c(4, 0)).is_some());
    assert_eq!(suspicious(&c(4, 0), &c(4, 0)), None, "none to lose");
    assert_eq!(suspicious(&c(4, 1), &c(2, 1)), None, "half");
    assert!(suspicious(&c(4, 1), &c(1, 1)).is_some());
    assert!(suspicious(&c(1, 1), &c(0, 1)).is_some(), "the last policy");
    assert_eq!(suspicious(&c(0, 1), &c(0, 1)), None);
    assert_eq!(suspicious(&c(3, 1), &c(30, 1)), None, "growth");
}

#[test]
fn read_and_kernel_failures_ask_for_a_retry_and_validation_failures_do_not() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    assert!(!s.wants_retry());

    dir.write("policies/extra.yaml", "kind: NetworkPolicy\nspec: [\n");
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Failed);
    assert!(!s.wants_retry(), "the same bytes fail the same way");

    dir.write("policies/extra.yaml", EXTRA_POLICY);
    s.backend().fail_next("chain output", libc::ENOMEM);
    assert_eq!(s.reload(Trigger::Files).stage, Some(Stage::Kernel));
    assert!(s.wants_retry());
    let r = s.reload(Trigger::Retry);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert!(!s.wants_retry());

    // A path that cannot be read now may be readable later.
    let mut s = State::new(
        Options {
            policies: vec![dir.path().join("policies/gone.yaml")],
            ..s.options.clone()
        },
        FakeBackend::new(),
    );
    assert_eq!(s.reload(Trigger::Start).stage, Some(Stage::Load));
    assert!(s.wants_retry());
}

#[test]
fn a_start_up_on_cut_short_inputs_keeps_the_table_an_earlier_daemon_left() {
    let dir = example();
    let mut s = state(&dir, &[]);
    s.set_host_addresses(ips(&["198.18.1.10"]));
    assert_eq!(s.reload(Trigger::Start).outcome, Outcome::Applied);
    let left = s.backend().loaded.clone();
    assert!(left.is_some());

    // netpold stops, leaving its table; the inventory is cut short meanwhile; a new
    // netpold starts on the same kernel.
    let kernel = std::mem::replace(s.backend(), FakeBackend::new());
    truncate_before_payments_api(&dir);
    let mut s = State::new(s.options.clone(), kernel);
    s.set_host_addresses(ips(&["198.18.1.10"]));
    let r = s.reload(Trigger::Start);
    assert_eq!(r.outcome, Outcome::Held, "{r:?}");
    assert_eq!(s.backend().loaded, left, "the earlier table stays");
    assert_eq!(s.backend().applies, 1, "only the first daemon's apply");
    assert!(s.status().held.is_some());
    let r = s.force_reload();
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(r.after.unwrap().local_endpoints, 0);

    // On an empty kernel the same inputs are simply applied: nothing to take away.
    let mut s = State::new(s.options.clone(), FakeBackend::new());
    s.set_host_addresses(ips(&["198.18.1.10"]));
    assert_eq!(s.reload(Trigger::Start).outcome, Outcome::Applied);
}

/// `pods.yaml` cut off inside its first document, payments-api's, before its status.
fn truncate_before_payments_api(dir: &TempDir) {
    let text = dir.read("inventory/pods.yaml");
    let cut = text.find("status:").unwrap();
    dir.write("inventory/pods.yaml", &text[..cut]);
}

// ------------------------------------------------------------------ revocation ----

fn tcp_flow(src: &str, sport: u16, dst: &str, dport: u16) -> crate::netlink::Flow {
    let ip = |s: &str| s.parse().unwrap();
    crate::netlink::Flow::ports(6, ip(src), sport, ip(dst), dport, u32::from(sport))
}

/// web/checkout (198.18.2.10) is this host. Its egress allows payments-api 8080/TCP and
/// DNS; its ingress is open.
fn checkout_host_with_flows() -> (TempDir, State<FakeBackend>, [crate::netlink::Flow; 3]) {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.set_address_source(|| Ok(ips(&["198.18.2.10"])));
    let to_api = tcp_flow("198.18.2.10", 40001, "198.18.1.10", 8080);
    let to_worker = tcp_flow("198.18.2.10", 40002, "198.18.3.10", 9100);
    let from_worker = tcp_flow("198.18.3.10", 40003, "198.18.2.10", 8080);
    s.backend().conntrack = vec![to_api, to_worker, from_worker];
    (dir, s, [to_api, to_worker, from_worker])
}

#[test]
fn each_apply_cuts_exactly_the_established_flows_the_new_plan_denies() {
    let (dir, mut s, [to_api, to_worker, from_worker]) = checkout_host_with_flows();
    // Start-up: the flow to the worker was never allowed by these policies.
    let r = s.reload(Trigger::Start);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    let cut: Vec<_> = s.backend().cuts.iter().map(|c| c.flow).collect();
    assert_eq!(cut, vec![to_worker]);
    assert_eq!(
        s.backend().cuts[0].local,
        crate::netlink::LocalSide::Initiator
    );
    assert_eq!(
        r.revoked,
        Some(Box::new(RevokedFlows {
            seen: 3,
            cut: 1,
            sockets_reset: 1,
            error: None
        }))
    );
    assert_eq!(s.backend().conntrack, vec![to_api, from_worker]);

    // Checkout may no longer call payments-api: that flow goes, the inbound one stays.
    let web = dir.path().join("policies/web.yaml");
    let text = std::fs::read_to_string(&web).unwrap();
    let cut_at = text.find("---\n# ...except checkout").unwrap();
    dir.write("policies/web.yaml", &text[..cut_at]);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.revoked.as_ref().map(|r| r.cut), Some(1), "{r:?}");
    assert_eq!(s.backend().conntrack, vec![from_worker]);
    assert_eq!(s.backend().cuts.last().unwrap().flow, to_api);
    assert_eq!(s.counters.revoked_flows, 2);

    // A change that leaves checkout's rules as they are cannot deny a flow: the
    // conntrack table is not even read.
    dir.write(
        "policies/extra.yaml",
        EXTRA_POLICY.replace("web", "analytics").as_str(),
    );
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.revoked, None, "{r:?}");
    assert_eq!(s.backend().cuts.len(), 2);

    // An update that only widens what is allowed (checkout may call payments-api
    // again) cannot deny a flow: the conntrack table is not even read.
    s.backend().conntrack.push(to_worker);
    dir.write("policies/web.yaml", &text);
    let r = s.reload(Trigger::Files);
    assert!(
        matches!(r.kernel, Some(KernelChange::Updated { .. })),
        "{r:?}"
    );
    assert_eq!(r.revoked, None, "{r:?}");
    assert_eq!(s.backend().cuts.len(), 2);
    // The next narrowing update judges every flow again.
    dir.write("policies/web.yaml", &text[..cut_at]);
    let r = s.reload(Trigger::Files);
    assert!(
        matches!(r.kernel, Some(KernelChange::Updated { .. })),
        "{r:?}"
    );
    assert_eq!(r.revoked.as_ref().map(|r| r.cut), Some(1), "{r:?}");
}

#[test]
fn with_revocation_off_established_flows_are_left_alone() {
    let (_dir, mut s, flows) = checkout_host_with_flows();
    s.options.revoke = false;
    let r = s.reload(Trigger::Start);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.revoked, None);
    assert!(s.backend().cuts.is_empty());
    assert_eq!(s.backend().conntrack, flows.to_vec());
}

#[test]
fn a_failed_revocation_is_reported_and_counted_but_the_reload_succeeds() {
    let (_dir, mut s, _) = checkout_host_with_flows();
    s.backend().fail_flows = true;
    let r = s.reload(Trigger::Start);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.generation, 1);
    let revoked = r.revoked.unwrap();
    assert!(
        revoked
            .error
            .as_deref()
            .unwrap()
            .contains("reading the conntrack table"),
        "{revoked:?}"
    );
    assert_eq!(s.counters.revoke_failures, 1);
    assert!(s.status().last_error.is_none());
    assert!(s.backend().loaded.is_some());
}

// ------------------------------------------------------------------ drift ----

fn someone_elses(generation: u32, changes: &[&str]) -> News {
    News::Commit(Commit {
        generation,
        // No thread of this process has pid 1.
        pid: 1,
        process: "nft".into(),
        changes: changes.iter().map(|c| c.to_string()).collect(),
    })
}

#[test]
fn a_foreign_change_to_the_table_is_repaired_with_the_plan_in_force() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    let plan = s.backend().loaded.clone().unwrap();
    // Someone deletes the table.
    let g = s.backend().someone_else_commits();
    s.backend().loaded = None;
    let event = s
        .kernel_news(vec![someone_elses(g, &["deleted table"])])
        .expect("a foreign change");
    assert_eq!(event.by, "nft (pid 1)");
    assert_eq!(event.changes, ["deleted table"]);
    assert_eq!(event.outcome, "repaired");
    assert_eq!(
        s.backend().loaded.as_ref(),
        Some(&plan),
        "put back as it was"
    );
    assert_eq!(s.backend().applies, 2);
    assert_eq!(s.drift().repairs, 1);
    assert_eq!(s.status().drift.last, Some(event));
    // A repair is no reload: the generation in force is the same.
    assert_eq!(s.generation(), 1);
    // The repair's own notification is known as its own.
    let own = s.backend().generation;
    assert!(s
        .kernel_news(vec![someone_elses(own, &["deleted table"])])
        .is_none());
    assert_eq!(s.backend().applies, 2);
}

#[test]
fn others_transactions_that_leave_the_table_alone_are_no_drift_and_updates_build_on_them() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    let g = s.backend().someone_else_commits();
    assert!(s.kernel_news(vec![someone_elses(g, &[])]).is_none());
    assert_eq!(s.backend().applies, 1);
    // An element change goes as an update on top of the other transaction.
    dir.write(
        "inventory/pods.yaml",
        &dir.read("inventory/pods.yaml")
            .replace("198.18.2.10", "198.18.2.12"),
    );
    let r = s.reload(Trigger::Files);
    assert!(
        matches!(r.kernel, Some(KernelChange::Updated { .. })),
        "{r:?}"
    );
    assert_eq!(s.counters.incremental_fallbacks, 0);
}

#[test]
fn lost_news_is_checked_against_the_generation() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    assert!(s.kernel_news(vec![News::Lost]).is_none(), "nothing moved");
    assert_eq!(s.backend().applies, 1);
    s.backend().someone_else_commits();
    let event = s.kernel_news(vec![News::Lost]).expect("the ruleset moved");
    assert!(event.by.contains("went unseen"), "{event:?}");
    assert_eq!(event.outcome, "repaired");
    assert_eq!(s.backend().applies, 2, "replaced to be sure");
}

#[test]
fn a_foreign_change_with_nothing_applied_is_reported_not_repaired() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    let g = s.backend().someone_else_commits();
    let event = s
        .kernel_news(vec![someone_elses(g, &["rules added to chain input"])])
        .unwrap();
    assert!(event.outcome.starts_with("not repaired"), "{event:?}");
    assert_eq!((s.drift().repairs, s.drift().failures), (0, 1));
    assert_eq!(s.backend().applies, 0);
}

#[test]
fn a_failed_repair_is_counted_and_asks_for_a_retry() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    let g = s.backend().someone_else_commits();
    s.backend().fail_next("table inet netpol", libc::ENOMEM);
    let event = s
        .kernel_news(vec![someone_elses(g, &["deleted table"])])
        .unwrap();
    assert!(event.outcome.starts_with("repair failed"), "{event:?}");
    assert_eq!(s.drift().failures, 1);
    assert!(s.wants_retry());
    // The retry finds the kernel out of step and replaces the table.
    let plan = s.backend().loaded.clone();
    s.backend().loaded = None;
    let r = s.reload(Trigger::Retry);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(s.backend().loaded, plan);
    assert!(!s.wants_retry());
}

#[test]
fn a_commit_missed_while_the_watch_was_silenced_is_checked_and_repaired() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    // Someone else commits between netpold's next transaction and the watch's return.
    s.backend()
        .someone_else_commits_unseen_after_the_next_commit();
    dir.write(
        "inventory/pods.yaml",
        &dir.read("inventory/pods.yaml")
            .replace("198.18.2.10", "198.18.2.12"),
    );
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    // The generation moved past netpold's own: replaced to be sure.
    assert_eq!(s.drift().repairs, 1, "{:?}", s.drift());
    assert!(s.drift().last.as_ref().unwrap().by.contains("went unseen"));
    assert_eq!(s.backend().applies, 2);
    // Nothing missed: nothing checked.
    dir.write(
        "inventory/pods.yaml",
        &dir.read("inventory/pods.yaml")
            .replace("198.18.2.12", "198.18.2.13"),
    );
    s.reload(Trigger::Files);
    assert_eq!(s.drift().repairs, 1);
}

#[test]
fn an_operators_reload_or_an_edit_puts_back_a_table_changed_unseen() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.reload(Trigger::Start);
    let plan = s.backend().loaded.clone();
    // A change the drift watch did not report (it had stopped, say).
    s.backend().someone_else_commits();
    s.backend().loaded = None;
    // File events with the same inputs do not look; an operator's reload does.
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Unchanged);
    for trigger in [Trigger::Signal, Trigger::Control] {
        let r = s.reload(trigger);
        assert_eq!(r.outcome, Outcome::Applied, "{trigger:?}: {r:?}");
        assert_eq!(r.kernel, Some(KernelChange::Replaced));
        assert_eq!(s.backend().loaded, plan, "{trigger:?}");
        // In step again: the next one applies nothing.
        assert_eq!(s.reload(trigger).outcome, Outcome::Unchanged);
        s.backend().someone_else_commits();
        s.backend().loaded = None;
    }
    // An edit that changes no element still checks: the update is refused, and a
    // replace puts the table back instead of "updated in place".
    let policies = dir.read("policies/payments.yaml");
    dir.write("policies/payments.yaml", &format!("# edited\n{policies}"));
    let r = s.reload(Trigger::Files);
    assert_eq!(r.kernel, Some(KernelChange::Replaced), "{r:?}");
    assert_eq!(s.backend().loaded, plan);
    assert_eq!(s.counters.incremental_fallbacks, 1);
}

#[test]
fn an_applied_reload_carries_this_hosts_connectivity_change() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    let first = s.reload(Trigger::Start);
    // Nothing to compare the first generation with.
    assert_eq!(first.connectivity, None);
    // checkout's ingress becomes isolated: every other endpoint loses every flow to it
    // (4 flows each: TCP, UDP, SCTP on every port, and the other protocols).
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(
        r.connectivity,
        Some(connectivity::Summary {
            allowed: 0,
            denied: 16
        })
    );
    // A comment changes nothing allowed.
    dir.write("policies/extra.yaml", &format!("{EXTRA_POLICY}# note\n"));
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    assert_eq!(r.connectivity, Some(connectivity::Summary::default()));
}

#[test]
fn the_loaded_inputs_are_those_in_force_not_the_files_on_disk() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    assert_eq!(
        s.loaded_inputs().unwrap_err(),
        "nothing is loaded yet",
        "before the first apply"
    );
    s.reload(Trigger::Start);
    let before = s.loaded_inputs().unwrap();
    assert_eq!(before.generation, 1);
    assert_eq!(before.locals, ["web/checkout"]);
    assert_eq!(before.policies.len(), 2);
    let web = std::fs::read_to_string(dir.path().join("policies/web.yaml")).unwrap();
    assert_eq!(before.policies[1].text, web);
    // A broken file on disk fails to load; what is in force is still what is sent.
    dir.write("policies/web.yaml", "this: [is not a policy\n");
    assert_eq!(s.reload(Trigger::Files).outcome, Outcome::Failed);
    assert_eq!(s.loaded_inputs().unwrap(), before);
}

#[test]
fn a_provisional_reload_not_confirmed_in_time_is_rolled_back_and_the_files_held() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    // Nothing in force yet: nothing to roll back to.
    assert!(s
        .reload_provisional(false, Duration::from_secs(60))
        .is_err());
    let first = s.reload(Trigger::Start);
    let confirmed = s.status().hashes.unwrap();
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    let r = s
        .reload_provisional(false, Duration::from_secs(60))
        .unwrap();
    assert_eq!((r.outcome, r.generation), (Outcome::Applied, 2));
    let deadline = s.confirm_by().unwrap();
    let pending = s.status().pending.unwrap();
    assert_eq!((pending.generation, pending.rollback_to), (2, 1));
    // Not before the deadline.
    assert!(s
        .roll_back_if_due(deadline - Duration::from_millis(1))
        .is_none());
    assert_eq!(s.generation(), 2);
    let back = s.roll_back_if_due(deadline).unwrap();
    assert_eq!(back.outcome, Outcome::Applied, "{back:?}");
    assert_eq!(back.trigger, Trigger::Rollback);
    assert_eq!(back.generation, 3);
    assert_eq!(back.after, first.after, "generation 1's ruleset again");
    assert_eq!(s.status().hashes.unwrap(), confirmed);
    assert!(s.confirm_by().is_none());
    assert_eq!(s.status().rollbacks, 1);
    assert!(s.confirm().is_err(), "nothing waits any more");
    // The files that were rolled back are not applied again by file events...
    let held = s.status().held.unwrap();
    assert_eq!(held.trigger, Trigger::Rollback);
    assert!(held.reason.contains("not confirmed in time"), "{held:?}");
    let r = s.reload(Trigger::Files);
    assert_eq!((r.outcome, s.generation()), (Outcome::Unchanged, 3));
    // ...but by an operator's reload.
    let r = s.reload(Trigger::Control);
    assert_eq!((r.outcome, s.generation()), (Outcome::Applied, 4));
}

#[test]
fn a_confirmed_reload_stays_and_a_second_provisional_one_keeps_the_first_baseline() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    let first = s.reload(Trigger::Start);
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    s.reload_provisional(false, Duration::from_secs(60))
        .unwrap();
    assert_eq!(s.confirm(), Ok(2));
    assert!(s.confirm_by().is_none());
    let far = std::time::Instant::now() + Duration::from_secs(3600);
    assert!(s.roll_back_if_due(far).is_none());
    assert_eq!(s.generation(), 2);

    // Two provisional reloads: a rollback goes back to the last confirmed (2).
    let confirmed = s.status().counts.unwrap();
    std::fs::remove_file(dir.path().join("policies/extra.yaml")).unwrap();
    s.reload_provisional(false, Duration::from_secs(60))
        .unwrap();
    dir.write(
        "policies/extra.yaml",
        EXTRA_POLICY
            .replace("deny-ingress", "deny-ingress-2")
            .as_str(),
    );
    s.reload_provisional(false, Duration::from_secs(60))
        .unwrap();
    assert_eq!(s.generation(), 4);
    assert_eq!(s.status().pending.unwrap().rollback_to, 2);
    let back = s.roll_back_if_due(far).unwrap();
    assert_eq!(back.after, Some(confirmed));
    assert_ne!(back.after, first.after);
    // The files back as confirmed: an unchanged provisional reload leaves nothing
    // pending.
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    let r = s
        .reload_provisional(false, Duration::from_secs(60))
        .unwrap();
    assert_ne!(r.outcome, Outcome::Applied);
    assert!(s.confirm_by().is_none());
}

#[test]
fn with_confirm_within_a_reload_that_changes_connectivity_is_provisional_and_others_not() {
    let dir = example();
    let mut s = state(&dir, &checkout());
    s.options.confirm_within = Some(Duration::from_secs(30));
    s.reload(Trigger::Start);
    assert!(
        s.confirm_by().is_none(),
        "start-up has nothing to go back to"
    );
    // A comment changes the bytes, not what is allowed: applied, not provisional.
    let web = dir.path().join("policies/web.yaml");
    let text = std::fs::read_to_string(&web).unwrap();
    dir.write("policies/web.yaml", &format!("# a comment\n{text}"));
    let r = s.reload(Trigger::Files);
    assert_eq!(r.outcome, Outcome::Applied, "{r:?}");
    let c = r.connectivity.unwrap();
    assert_eq!((c.allowed, c.denied), (0, 0));
    assert!(s.confirm_by().is_none());
    // checkout's ingress closed: connectivity changes, so it is provisional.
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    let r = s.reload(Trigger::Files);
    assert!(r.connectivity.unwrap().denied > 0, "{r:?}");
    let deadline = s.confirm_by().expect("provisional");
    assert_eq!(s.status().pending.unwrap().rollback_to, 2);
    let back = s.roll_back_if_due(deadline).unwrap();
    assert_eq!(back.outcome, Outcome::Applied);
    // The rollback itself is not provisional.
    assert!(s.confirm_by().is_none());
}

#[test]
fn a_pending_rollback_outlives_the_process_and_is_taken_up_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = example();
    let kept = dir.path().join("run/netpold.pending");
    let mut s = state(&dir, &checkout());
    s.options.pending_file = Some(kept.clone());
    let first = s.reload(Trigger::Start);
    assert!(!kept.exists(), "nothing pending, nothing kept");
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    s.reload_provisional(false, Duration::from_secs(60))
        .unwrap();
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // "Crash": a new process, the files on disk still the provisional ones.
    let options = s.options.clone();
    drop(s);
    let mut s = State::new(options, FakeBackend::new());
    s.set_address_source(|| Ok(BTreeSet::new()));
    let r = s.reload(Trigger::Start);
    assert_eq!(r.after.unwrap().policies, 5, "the provisional files load");
    let deadline = s.confirm_by().expect("the rollback is pending again");
    assert!(deadline > std::time::Instant::now() + Duration::from_secs(50));
    assert_eq!(s.status().pending.unwrap().rollback_to, 1);
    let back = s.roll_back_if_due(deadline).unwrap();
    assert_eq!(
        back.after, first.after,
        "the confirmed inputs, from the kept text"
    );
    assert!(!kept.exists(), "done: nothing kept");

    // Confirming removes it too.
    std::fs::remove_file(dir.path().join("policies/extra.yaml")).unwrap();
    s.reload(Trigger::Control);
    dir.write("policies/extra.yaml", EXTRA_POLICY);
    s.reload_provisional(false, Duration::from_secs(60))
        .unwrap();
    assert!(kept.exists());
    s.confirm().unwrap();
    assert!(!kept.exists());
}
