//! Prometheus metrics: the recorder and its endpoint, the names, and the deny counters
//! kept monotonic across reloads.
//!
//! Metrics go through the `metrics` facade. Without an installed recorder (metrics
//! `off`, unit tests) every emission is a no-op, so [`crate::state`] emits
//! unconditionally, from the one place that also logs reload outcomes.
//!
//! The kernel's deny counters live in the rules of the table, and a reload that
//! replaces the table restarts them at zero (an incremental update keeps them).
//! [`DenyTotals`] carries the counts seen before each replace and adds them, so
//! `netpol_denied_*_total` never go backwards.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use metrics::Unit;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use rules_compiler::model::Direction;
use tokio::time::MissedTickBehavior;

use crate::netlink::DenyCounter;
use crate::state::report::{Counts, KernelChange, Outcome, ReloadReport, Stage};

/// Reloads by result (`success`, `failure`, `skipped`, `held`).
pub const RELOADS: &str = "netpol_reloads_total";
/// 1 while inputs on disk are held back as suspicious, else 0.
pub const HELD: &str = "netpol_reload_held";
/// Failed reloads by stage (`load`, `locals`, `kernel`).
pub const RELOAD_FAILURES: &str = "netpol_reload_failures_total";
/// Unix time of the last successful apply.
pub const LAST_SUCCESS: &str = "netpol_last_successful_reload_timestamp_seconds";
/// Time to read, validate and plan.
pub const COMPILE_SECONDS: &str = "netpol_compile_duration_seconds";
/// Time of the kernel transaction, by kind (`replace`, `update`).
pub const APPLY_SECONDS: &str = "netpol_apply_duration_seconds";
/// Incremental updates that failed and were followed by a full replace.
pub const INCREMENTAL_FALLBACKS: &str = "netpol_incremental_fallbacks_total";
/// The generation in force.
pub const GENERATION: &str = "netpol_generation";
/// NetworkPolicies loaded.
pub const POLICIES: &str = "netpol_policies";
/// Inventory endpoints loaded.
pub const ENDPOINTS: &str = "netpol_endpoints";
/// Local endpoints enforced.
pub const LOCAL_ENDPOINTS: &str = "netpol_local_endpoints";
/// Rules in the table.
pub const RULES: &str = "netpol_rules";
/// Set and map elements in the table.
pub const SET_ELEMENTS: &str = "netpol_set_elements";
/// Packets denied, by endpoint, direction and tier (`NetworkPolicy`, `Admin`, `Baseline`).
pub const DENIED_PACKETS: &str = "netpol_denied_packets_total";
/// Bytes denied, by endpoint, direction and tier.
pub const DENIED_BYTES: &str = "netpol_denied_bytes_total";
/// Failed reads of the kernel's counters.
pub const COUNTER_READ_FAILURES: &str = "netpol_counter_read_failures_total";
/// Established flows cut because a newly applied ruleset no longer allows them.
pub const REVOKED_FLOWS: &str = "netpol_revoked_flows_total";
/// Revocations that failed (reading conntrack, or cutting).
pub const REVOKE_FAILURES: &str = "netpol_revoke_failures_total";
/// Foreign changes to the table put right (`result`: `success`, `failure`).
pub const DRIFT_REPAIRS: &str = "netpol_drift_repairs_total";

/// Verdict events reported, by local endpoint, direction and verdict (`deny`, `audit`).
pub const VERDICTS: &str = "netpol_verdicts_total";
/// Verdict events (or logged packets) lost, by reason: `socket` (the NFLOG socket
/// overflowed), `ring` (dropped from the ring for room), `follower` (a `logs -f` client
/// too slow), `rate_limit` (packets the kernel's limit kept from being logged),
/// `unreadable` (logged packets netpold could not read).
pub const VERDICT_EVENTS_LOST: &str = "netpol_verdict_events_lost_total";
/// Audit events per audit policy that would deny them (bounded: audit policies only).
pub const AUDIT_POLICY_EVENTS: &str = "netpol_audit_policy_events_total";
/// Provisional generations rolled back for want of `netpolctl confirm`.
pub const ROLLBACKS: &str = "netpol_rollbacks_total";
/// 1 while the events thread reads NFLOG, 0 while it is stopped (and retrying).
pub const VERDICT_EVENTS_UP: &str = "netpol_verdict_events_up";

/// Histogram buckets, in seconds: from a small table (milliseconds) to a 100,000
/// element one (about a second through netlink, several to compile).
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often the recorder's histograms are folded (what `PrometheusBuilder::install`
/// would do in the background).
const UPKEEP: Duration = Duration::from_secs(5);

/// Binds `address`, installs the global recorder and serves it there
/// ([`crate::scrape`]: with connection, size and time limits). Must run inside the tokio
/// runtime; a port in use is an error here, before anything else.
pub fn install(address: SocketAddr) -> Result<(), String> {
    let listener =
        crate::scrape::bind(address).map_err(|e| format!("serving metrics on {address}: {e}"))?;
    if !address.ip().is_loopback() {
        tracing::warn!(
            "metrics-address {address} is not a loopback address: anyone who can reach \
             {address} can read the metrics (local endpoint names, deny counts, reload \
             outcomes)"
        );
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), &BUCKETS)
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("serving metrics on {address}: {e}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(crate::scrape::serve(listener, move || handle.render()));
    describe();
    Ok(())
}

/// HELP lines, and every reload counter at zero so that rates work from the start.
fn describe() {
    describe_counter!(
        RELOADS,
        "Reloads by result: success (applied), failure, skipped (inputs unchanged), held (suspicious: they would take away every local endpoint or most policies)."
    );
    describe_gauge!(
        HELD,
        "1 while inputs on disk are held back as suspicious (netpolctl status says why; netpolctl reload --force applies them), else 0."
    );
    gauge!(HELD).set(0.0);
    describe_counter!(
        RELOAD_FAILURES,
        "Failed reloads by stage: load (files, YAML, validation), locals, kernel."
    );
    describe_gauge!(
        LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of the last successful apply."
    );
    describe_histogram!(
        COMPILE_SECONDS,
        Unit::Seconds,
        "Time to read, validate and plan the inputs, of reloads that got that far."
    );
    describe_histogram!(
        APPLY_SECONDS,
        Unit::Seconds,
        "Time of the kernel transaction, successful or not, by kind: replace (the whole table) or update (set elements only)."
    );
    describe_counter!(
        INCREMENTAL_FALLBACKS,
        "Incremental updates that failed (the kernel refused them or the ruleset had changed) and were followed by a full replace."
    );
    describe_gauge!(GENERATION, "The generation in force (applies since start).");
    describe_gauge!(POLICIES, "NetworkPolicies loaded.");
    describe_gauge!(ENDPOINTS, "Inventory endpoints loaded.");
    describe_gauge!(LOCAL_ENDPOINTS, "Local endpoints this host enforces.");
    describe_gauge!(RULES, "Rules in the nftables table.");
    describe_gauge!(SET_ELEMENTS, "Elements of the table's sets and maps.");
    describe_counter!(
        DENIED_PACKETS,
        "Packets denied, by local endpoint, direction and tier (NetworkPolicy, Admin, Baseline), from the kernel's counters."
    );
    describe_counter!(
        DENIED_BYTES,
        Unit::Bytes,
        "Bytes denied, by local endpoint, direction and tier, from the kernel's counters."
    );
    describe_counter!(
        COUNTER_READ_FAILURES,
        "Failed reads of the kernel's deny counters."
    );
    describe_counter!(
        DRIFT_REPAIRS,
        "Changes someone else made to netpol's table, put right by replacing it (result=success) or not (result=failure)."
    );
    for result in ["success", "failure"] {
        counter!(DRIFT_REPAIRS, "result" => result).increment(0);
    }
    for result in ["success", "failure", "skipped", "held"] {
        counter!(RELOADS, "result" => result).increment(0);
    }
    for stage in [Stage::Load, Stage::Locals, Stage::Kernel] {
        counter!(RELOAD_FAILURES, "stage" => stage_label(stage)).increment(0);
    }
    counter!(COUNTER_READ_FAILURES).increment(0);
    counter!(INCREMENTAL_FALLBACKS).increment(0);
    describe_counter!(
        REVOKED_FLOWS,
        "Established flows (conntrack entries) cut after an apply because the new ruleset no longer allows them."
    );
    describe_counter!(
        REVOKE_FAILURES,
        "Revocations that failed (reading conntrack or cutting flows); the ruleset was in force regardless."
    );
    counter!(REVOKED_FLOWS).increment(0);
    describe_counter!(
        ROLLBACKS,
        "Provisional generations (netpolctl reload --confirm-within) rolled back because netpolctl confirm did not come in time."
    );
    counter!(ROLLBACKS).increment(0);
    counter!(REVOKE_FAILURES).increment(0);
    describe_counter!(
        VERDICTS,
        "Verdict events (connection attempts, retransmits folded in) by local endpoint, direction and verdict (deny, audit)."
    );
    describe_counter!(
        VERDICT_EVENTS_LOST,
        "Verdict events lost, by reason: socket (the NFLOG socket overflowed), ring (the oldest dropped from netpolctl logs' ring; still logged), follower (a netpolctl logs -f client too slow), rate_limit (packets the kernel's rate limit did not log), unreadable (logged packets netpold could not read)."
    );
    describe_gauge!(
        VERDICT_EVENTS_UP,
        "1 while netpold reads verdict events from NFLOG; 0 while that stopped on an error (it retries every few seconds; netpolctl status says why)."
    );
    describe_counter!(
        AUDIT_POLICY_EVENTS,
        "Audit events naming an audit policy (netpol/mode: audit) as one that would deny the connection."
    );
}

/// Counts verdict events lost for `reason` (see [`VERDICT_EVENTS_LOST`]).
pub fn events_lost(reason: &'static str, n: u64) {
    counter!(VERDICT_EVENTS_LOST, "reason" => reason).increment(n);
}

/// Sets the count of verdict events lost for `reason` to a total kept elsewhere.
pub fn events_lost_absolute(reason: &'static str, n: u64) {
    counter!(VERDICT_EVENTS_LOST, "reason" => reason).absolute(n);
}

/// Counts a rollback of a provisional generation.
pub fn rolled_back() {
    counter!(ROLLBACKS).increment(1);
}

/// Whether the events thread reads NFLOG now.
pub fn events_up(up: bool) {
    gauge!(VERDICT_EVENTS_UP).set(if up { 1.0 } else { 0.0 });
}

/// Counts one verdict event.
pub fn verdict(endpoint: &str, direction: &str, verdict: &str) {
    counter!(VERDICTS, "endpoint" => endpoint.to_string(), "direction" => direction.to_string(), "verdict" => verdict.to_string()).increment(1);
}

/// Counts one audit event for an audit policy that would deny it.
pub fn audit_policy_event(policy: &str) {
    counter!(AUDIT_POLICY_EVENTS, "policy" => policy.to_string()).increment(1);
}

/// Counts established flows cut after an apply.
pub fn revoked(flows: usize) {
    counter!(REVOKED_FLOWS).increment(flows as u64);
}

/// Counts a failed revocation.
pub fn revoke_failed() {
    counter!(REVOKE_FAILURES).increment(1);
}

fn stage_label(stage: Stage) -> &'static str {
    match stage {
        Stage::Load => "load",
        Stage::Locals => "locals",
        Stage::Kernel => "kernel",
    }
}

/// Emits what a reload outcome means; called with its log line. `held`: whether inputs
/// are held back after it.
pub(crate) fn reload(report: &ReloadReport, last_success: Option<SystemTime>, held: bool) {
    let result = match report.outcome {
        Outcome::Applied => "success",
        Outcome::Failed => "failure",
        Outcome::Unchanged => "skipped",
        Outcome::Held => "held",
    };
    counter!(RELOADS, "result" => result).increment(1);
    gauge!(HELD).set(if held { 1.0 } else { 0.0 });
    if let Some(stage) = report.stage {
        counter!(RELOAD_FAILURES, "stage" => stage_label(stage)).increment(1);
    }
    let compiled = report.outcome == Outcome::Applied || report.stage == Some(Stage::Kernel);
    if compiled {
        histogram!(COMPILE_SECONDS).record(report.compile_ms / 1e3);
        let kind = match report.kernel {
            Some(KernelChange::Updated { .. }) => "update",
            _ => "replace",
        };
        histogram!(APPLY_SECONDS, "kind" => kind).record(report.apply_ms / 1e3);
    }
    if report.outcome == Outcome::Applied {
        gauge!(GENERATION).set(report.generation as f64);
        counts(&report.after.unwrap_or_default());
        if let Some(t) = last_success {
            let secs = t
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            gauge!(LAST_SUCCESS).set(secs.as_secs_f64());
        }
    }
}

fn counts(c: &Counts) {
    gauge!(POLICIES).set(c.policies as f64);
    gauge!(ENDPOINTS).set(c.endpoints as f64);
    gauge!(LOCAL_ENDPOINTS).set(c.local_endpoints as f64);
    gauge!(RULES).set(c.rules as f64);
    gauge!(SET_ELEMENTS).set(c.elements as f64);
}

/// An incremental update failed; a full replace follows.
pub(crate) fn incremental_fallback() {
    counter!(INCREMENTAL_FALLBACKS).increment(1);
}

/// A foreign change to the table was put right, or could not be.
pub(crate) fn drift_repair(ok: bool) {
    counter!(DRIFT_REPAIRS, "result" => if ok { "success" } else { "failure" }).increment(1);
}

/// A failed read of the deny counters.
pub(crate) fn counter_read_failed() {
    counter!(COUNTER_READ_FAILURES).increment(1);
}

/// Endpoint (`ns/name`), direction and tier (`NetworkPolicy`, `Admin`, `Baseline`).
type Key = (String, &'static str, &'static str);

/// The `tier` label of a deny counter.
pub(crate) fn tier_label(tier: Option<rules_compiler::model::Tier>) -> &'static str {
    tier.map_or("NetworkPolicy", |t| t.as_str())
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Count {
    fn add(self, o: Count) -> Count {
        Count {
            packets: self.packets.saturating_add(o.packets),
            bytes: self.bytes.saturating_add(o.bytes),
        }
    }
}

/// Deny counts since the daemon started, per endpoint and direction, from readings of
/// tables that get replaced.
#[derive(Clone, Debug, Default)]
pub struct DenyTotals {
    /// Sums of the last readings of tables replaced since.
    carried: BTreeMap<Key, Count>,
    /// The last reading of the table in force.
    seen: BTreeMap<Key, Count>,
}

impl DenyTotals {
    /// Takes a reading of the table in force. A counter lower than its last reading,
    /// or gone, means the table was replaced behind our back (`netpolctl apply`,
    /// another process): what was seen of the old one is carried, so totals never go
    /// back.
    pub fn observe(&mut self, counters: &[DenyCounter]) {
        let mut now = BTreeMap::new();
        for c in counters {
            let key = (
                c.endpoint.to_string(),
                direction_label(c.direction),
                tier_label(c.tier),
            );
            let count = Count {
                packets: c.packets,
                bytes: c.bytes,
            };
            let entry: &mut Count = now.entry(key).or_default();
            *entry = entry.add(count);
        }
        for (key, old) in std::mem::take(&mut self.seen) {
            // A counter gone from the table went with the table.
            let reset = match now.get(&key) {
                Some(new) => new.packets < old.packets || new.bytes < old.bytes,
                None => true,
            };
            if reset {
                let c = self.carried.entry(key).or_default();
                *c = c.add(old);
            }
        }
        self.seen = now;
    }

    /// The table was replaced: its counters start again at zero.
    pub fn replaced(&mut self) {
        for (key, old) in std::mem::take(&mut self.seen) {
            let c = self.carried.entry(key).or_default();
            *c = c.add(old);
        }
    }

    /// Totals since start, per (endpoint, direction).
    pub fn totals(&self) -> BTreeMap<Key, Count> {
        let mut out = self.carried.clone();
        for (key, c) in &self.seen {
            let t = out.entry(key.clone()).or_default();
            *t = t.add(*c);
        }
        out
    }

    /// Emits the totals.
    pub(crate) fn emit(&self) {
        for ((endpoint, direction, tier), c) in self.totals() {
            let labels = [
                ("endpoint", endpoint),
                ("direction", direction.to_string()),
                ("tier", tier.to_string()),
            ];
            counter!(DENIED_PACKETS, &labels).absolute(c.packets);
            counter!(DENIED_BYTES, &labels).absolute(c.bytes);
        }
    }
}

fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

#[cfg(test)]
mod tests {
    use rules_compiler::model::ObjectName;

    use super::*;

    fn reading(packets: u64, egress: u64) -> Vec<DenyCounter> {
        vec![
            DenyCounter {
                endpoint: ObjectName::new("web", "checkout"),
                direction: Direction::Ingress,
                chain: "in_web_checkout".into(),
                packets,
                bytes: packets * 60,
                verdict: rules_compiler::plan::EventVerdict::Deny,
                logged: None,
                tier: None,
            },
            DenyCounter {
                endpoint: ObjectName::new("web", "checkout"),
                direction: Direction::Egress,
                chain: "out_web_checkout".into(),
                packets: egress,
                bytes: egress * 100,
                verdict: rules_compiler::plan::EventVerdict::Deny,
                logged: None,
                tier: None,
            },
        ]
    }

    fn ingress(t: &DenyTotals) -> Count {
        t.totals()[&("web/checkout".to_string(), "ingress", "NetworkPolicy")]
    }

    #[test]
    fn totals_carry_over_replaced_tables() {
        let mut t = DenyTotals::default();
        t.observe(&reading(3, 1));
        assert_eq!(
            ingress(&t),
            Count {
                packets: 3,
                bytes: 180
            }
        );
        t.observe(&reading(5, 1));
        assert_eq!(
            ingress(&t).packets,
            5,
            "a reading is a total, not an increment"
        );
        t.replaced();
        assert_eq!(ingress(&t).packets, 5, "a replace alone changes nothing");
        t.observe(&reading(0, 0));
        assert_eq!(ingress(&t).packets, 5);
        t.observe(&reading(2, 4));
        assert_eq!(
            ingress(&t),
            Count {
                packets: 7,
                bytes: 420
            }
        );
        assert_eq!(
            t.totals()[&("web/checkout".to_string(), "egress", "NetworkPolicy")],
            Count {
                packets: 5,
                bytes: 500
            }
        );
    }

    #[test]
    fn a_reset_nobody_announced_is_carried_too() {
        let mut t = DenyTotals::default();
        t.observe(&reading(10, 0));
        t.observe(&reading(4, 0));
        assert_eq!(ingress(&t).packets, 14);
        t.observe(&[]);
        t.observe(&[]);
        assert_eq!(ingress(&t).packets, 14, "a table without it: carried once");
        t.observe(&reading(1, 0));
        assert_eq!(ingress(&t).packets, 15);
    }

    #[test]
    fn an_endpoint_that_stops_being_local_keeps_its_total() {
        let mut t = DenyTotals::default();
        t.observe(&reading(6, 2));
        t.replaced();
        t.observe(&[]);
        assert_eq!(ingress(&t).packets, 6);
        t.observe(&reading(1, 0));
        assert_eq!(ingress(&t).packets, 7, "local again: counts add on");
    }
}
