//! What the daemon's state reports: the outcome of a reload ([`ReloadReport`]) and the
//! state itself ([`StatusReport`]), with their parts; and the verdict events
//! ([`VerdictEvent`]) and their counts ([`EventCounts`]), which the events pipeline
//! ([`crate::events`]) makes and the same socket carries. [`State`](super::State) makes
//! them; the control socket carries them as JSON ([`crate::control::Response`]), so
//! their serde form is the wire format and must not change (tests pin it byte for
//! byte); `netpolctl` renders them for people
//! ([`crate::ctl::report_text`]).

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What set a reload off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// The first load at start-up.
    Start,
    /// A change of the watched files.
    Files,
    /// SIGHUP.
    Signal,
    /// `netpolctl reload`.
    Control,
    /// This host's addresses changed the set of local endpoints.
    Addresses,
    /// A retry after a failure that may pass without any change of the files (a read
    /// error, the kernel refusing for lack of memory or file descriptors).
    Retry,
    /// A provisional generation was not confirmed in time: the confirmed inputs again.
    Rollback,
}

/// How a reload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A new ruleset is in the kernel.
    Applied,
    /// Nothing to do: the inputs (and local endpoints) are what is loaded.
    Unchanged,
    /// Something failed; the kernel keeps the last good ruleset.
    Failed,
    /// The inputs load, but applying them would take away most of the protection in
    /// force (every local endpoint, or most of the policies): the kind of change a
    /// truncated or half-written file makes. Nothing was applied; the files changing
    /// again or `netpolctl reload --force` ends it.
    Held,
}

/// The stage at which a reload failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Reading and parsing files, and validating the model.
    Load,
    /// Choosing the local endpoints (an unknown `--local`).
    Locals,
    /// The kernel refused the ruleset.
    Kernel,
}

/// Sizes of what is loaded (the compiler counts them).
pub use rules_compiler::Counts;

/// The content hashes of the inputs (SHA-256 over each file's path and bytes, in
/// reading order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InputHashes {
    /// Of the policy files.
    pub policies: String,
    /// Of the inventory files.
    pub inventory: String,
}

/// How the kernel took the ruleset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "kebab-case")]
pub enum KernelChange {
    /// The table was replaced in one transaction (its deny counters start at zero).
    Replaced,
    /// Only set and map elements changed, in one transaction; everything else, the
    /// deny counters included, stayed.
    Updated {
        /// Elements deleted plus elements added (an interval counts once).
        elements: usize,
    },
}

impl fmt::Display for KernelChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelChange::Replaced => f.write_str("table replaced"),
            KernelChange::Updated { elements } => {
                write!(f, "updated in place ({elements} set elements changed)")
            }
        }
    }
}

/// The answer to a reload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// How it ended.
    pub outcome: Outcome,
    /// What set it off.
    pub trigger: Trigger,
    /// The generation in force afterwards (0: nothing ever loaded).
    pub generation: u64,
    /// Sizes before (what was loaded, if anything).
    pub before: Option<Counts>,
    /// Sizes after (equal to `before` unless applied).
    pub after: Option<Counts>,
    /// Local endpoints that became local.
    pub locals_added: Vec<String>,
    /// Local endpoints that are no longer local.
    pub locals_removed: Vec<String>,
    /// Where it failed.
    pub stage: Option<Stage>,
    /// The whole error, when it failed.
    pub error: Option<String>,
    /// Time to read, validate and plan.
    pub compile_ms: f64,
    /// Time for the kernel transaction.
    pub apply_ms: f64,
    /// How the kernel took it, when applied.
    #[serde(default)]
    pub kernel: Option<KernelChange>,
    /// Established flows the applied ruleset no longer allows, cut after the apply;
    /// `None` when not applied or `revoke-established` is off.
    #[serde(default)]
    pub revoked: Option<Box<RevokedFlows>>,
    /// How this host's connectivity changed: flows of its local endpoints newly
    /// allowed and newly denied by the applied ruleset against the one before
    /// (`rules_compiler::connectivity::summary`); `None` unless applied over an
    /// earlier generation.
    #[serde(default)]
    pub connectivity: Option<rules_compiler::connectivity::Summary>,
}

/// The inputs in force, as netpold read them (`netpolctl diff --against-daemon`):
/// the very bytes the ruleset in force was compiled from, whatever the files on disk
/// hold now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedInputs {
    /// The generation they are in force as.
    pub generation: u64,
    /// Their hashes, as `status` shows them.
    pub hashes: InputHashes,
    /// The policy files, in the order read.
    pub policies: Vec<InputText>,
    /// The inventory files.
    pub inventory: Vec<InputText>,
    /// The local endpoints netpold enforces them for.
    pub locals: Vec<String>,
}

/// One input file as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputText {
    /// Its path when read.
    pub path: std::path::PathBuf,
    /// Its whole text.
    pub text: String,
}

/// What revoking established flows did after an apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedFlows {
    /// Conntrack entries looked at.
    pub seen: usize,
    /// Flows the new ruleset denies, cut (their entries deleted, or gone already).
    pub cut: usize,
    /// Local TCP sockets of those flows destroyed (their peers got a reset).
    pub sockets_reset: usize,
    /// Why it failed, when it did: the ruleset is in force regardless.
    pub error: Option<String>,
}

/// A failed reload, remembered until one succeeds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What set the reload off.
    pub trigger: Trigger,
    /// Where it failed.
    pub stage: Stage,
    /// The whole error.
    pub message: String,
}

/// Reloads counted since the daemon started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadCounts {
    /// Reloads that applied a new ruleset (the first load included).
    pub applied: u64,
    /// Reloads that found nothing to change.
    pub unchanged: u64,
    /// Reloads that failed.
    pub failed: u64,
    /// Reloads held as suspicious.
    #[serde(default)]
    pub held: u64,
}

/// Inputs held back as suspicious (see [`Outcome::Held`]), until the files change or
/// an operator forces them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What set the reload off.
    pub trigger: Trigger,
    /// What the inputs would take away.
    pub reason: String,
    /// The hashes of the inputs held.
    pub hashes: InputHashes,
}

/// A provisional generation waiting for `netpolctl confirm`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The provisional generation (the one in force).
    pub generation: u64,
    /// When it is rolled back unless confirmed (RFC 3339, UTC).
    pub deadline: String,
    /// The confirmed generation whose inputs a rollback applies again.
    pub rollback_to: u64,
}

/// Changes someone else made to netpol's table, and what netpold did about them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Foreign changes put right by replacing the table.
    pub repairs: u64,
    /// Repairs that failed (the kernel refused, or there was no plan to put back).
    pub failures: u64,
    /// The last foreign change.
    pub last: Option<DriftEvent>,
}

/// One foreign change to netpol's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEvent {
    /// When it was seen (RFC 3339, UTC).
    pub at: String,
    /// Who made it: `nft (pid 4242)`; or why that is not known.
    pub by: String,
    /// What it did to the table (`deleted table`, `rules added to chain input`).
    pub changes: Vec<String>,
    /// What netpold did: `repaired` or why not.
    pub outcome: String,
}

/// Whether the files on disk are what is loaded, as netpold knows it without reading
/// them: from its file watch and its last read (see
/// [`State::disk`](super::State::disk)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskState {
    /// The last read found the inputs in force, and no file event came since.
    Match,
    /// A file event came since the last read (a reload is pending), or the last read
    /// found other bytes than those in force (the reload failed or was held).
    Differ,
    /// The last read could not read them, and no file event came since.
    Unreadable,
}

/// The answer to a status request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The daemon's process id.
    pub pid: u32,
    /// Successful applies so far; 0 before the first.
    pub generation: u64,
    /// When the ruleset in force was applied (RFC 3339, UTC).
    pub loaded_at: Option<String>,
    /// What set off the load in force.
    pub loaded_by: Option<Trigger>,
    /// Hashes of the inputs in force.
    pub hashes: Option<InputHashes>,
    /// Sizes of what is in force.
    pub counts: Option<Counts>,
    /// The local endpoints in force.
    pub local_endpoints: Vec<String>,
    /// True when local endpoints follow this host's addresses.
    pub follows_host: bool,
    /// Reloads since start, by outcome.
    pub reloads: ReloadCounts,
    /// The last failure, if no reload succeeded since.
    pub last_error: Option<LastError>,
    /// Whether the files on disk are what is loaded (see [`DiskState`]).
    pub disk: DiskState,
    /// How the kernel took the ruleset in force.
    #[serde(default)]
    pub loaded_how: Option<KernelChange>,
    /// Inputs on disk held back as suspicious, if any.
    #[serde(default)]
    pub held: Option<Held>,
    /// How the kernel holds the table (owned by this netpold, or not and why).
    #[serde(default)]
    pub ownership: Option<crate::netlink::Ownership>,
    /// Foreign changes to the table and their repairs.
    #[serde(default)]
    pub drift: Drift,
    /// Host-wide mode: `enforce` or `audit`.
    #[serde(default)]
    pub mode: Mode,
    /// The policies in force annotated `netpol/mode: audit` (`ns/name`), sorted.
    #[serde(default)]
    pub audit_policies: Vec<String>,
    /// What every local endpoint accepts before any policy (`ingress TCP 22`); empty:
    /// nothing.
    #[serde(default)]
    pub failsafe: Vec<String>,
    /// The generation in force is provisional (`netpolctl reload --confirm-within`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// Provisional generations rolled back since start.
    #[serde(default)]
    pub rollbacks: u64,
    /// Verdict events since start; `None` when events are off.
    #[serde(default)]
    pub events: Option<EventCounts>,
    /// Packets the deny rules counted since start (their audit accepts, where only
    /// audit policies isolate or under host-wide audit), by tier, from the table's
    /// counters as of this status; `None` when they could not be read.
    #[serde(default)]
    pub denied: Option<DeniedByTier>,
}

/// Packets denied since netpold started, by the tier whose deny counted them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedByTier {
    /// By the NetworkPolicy deny of an isolated endpoint.
    pub network_policy: u64,
    /// By an Admin ClusterNetworkPolicy rule.
    pub admin: u64,
    /// By a Baseline ClusterNetworkPolicy rule.
    pub baseline: u64,
}

/// Host-wide mode, as the wire has it (the compiler's [`rules_compiler::plan::Mode`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denials are enforced.
    #[default]
    Enforce,
    /// Nothing is denied; what would be is reported.
    Audit,
}

impl From<rules_compiler::plan::Mode> for Mode {
    fn from(m: rules_compiler::plan::Mode) -> Self {
        match m {
            rules_compiler::plan::Mode::Enforce => Mode::Enforce,
            rules_compiler::plan::Mode::Audit => Mode::Audit,
        }
    }
}

/// What a verdict event reports: a denial, or an audit (accepted, but would be denied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Dropped or rejected.
    Deny,
    /// Accepted and reported: an audit policy, or the host-wide audit mode, would deny it.
    Audit,
}

impl From<rules_compiler::plan::EventVerdict> for Verdict {
    fn from(v: rules_compiler::plan::EventVerdict) -> Self {
        match v {
            rules_compiler::plan::EventVerdict::Deny => Verdict::Deny,
            rules_compiler::plan::EventVerdict::Audit => Verdict::Audit,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Deny => "deny",
            Verdict::Audit => "audit",
        })
    }
}

/// The direction of a verdict event, seen from its local endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventDirection {
    /// Towards the local endpoint.
    Ingress,
    /// From the local endpoint.
    Egress,
}

impl From<rules_compiler::model::Direction> for EventDirection {
    fn from(d: rules_compiler::model::Direction) -> Self {
        match d {
            rules_compiler::model::Direction::Ingress => EventDirection::Ingress,
            rules_compiler::model::Direction::Egress => EventDirection::Egress,
        }
    }
}

impl fmt::Display for EventDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventDirection::Ingress => "ingress",
            EventDirection::Egress => "egress",
        })
    }
}

/// An IP protocol, always a string on the wire (one type for log pipelines): `TCP`,
/// `UDP` or `SCTP` by name (as policies spell them), `ICMP` and `ICMPv6` by name too
/// (a denied ping is the commonest event without ports), any other by its number
/// (`"47"` for GRE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventProtocol(pub u8);

/// The protocols named rather than numbered.
const PROTOCOL_NAMES: [(u8, &str); 5] = [
    (1, "ICMP"),
    (6, "TCP"),
    (17, "UDP"),
    (58, "ICMPv6"),
    (132, "SCTP"),
];

impl EventProtocol {
    /// The protocol with IP protocol number `n`.
    pub fn of(n: u8) -> EventProtocol {
        EventProtocol(n)
    }

    /// Whether an event's ports are the packet's: TCP, UDP and SCTP (the protocols
    /// whose ports policies name and NFLOG's reader parses); for any other they are 0.
    pub fn has_ports(self) -> bool {
        matches!(self.0, 6 | 17 | 132)
    }
}

impl fmt::Display for EventProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match PROTOCOL_NAMES.iter().find(|(n, _)| *n == self.0) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::str::FromStr for EventProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PROTOCOL_NAMES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(n, _)| EventProtocol(*n))
            .or_else(|| s.parse().ok().map(EventProtocol))
            .ok_or_else(|| format!("{s:?} is no protocol name or number"))
    }
}

impl Serialize for EventProtocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventProtocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One denied or audited connection attempt: the first packet the kernel logged and
/// the retransmissions of it within the dedup window, judged against the model in force.
/// The object `netpolctl logs -o json`, the event file and the control socket carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictEvent {
    /// When its first packet was read (RFC 3339, UTC).
    pub time: String,
    /// Deny or audit.
    pub verdict: Verdict,
    /// Seen from the local endpoint.
    pub direction: EventDirection,
    /// The local endpoint, `ns/name`; `null` when no endpoint holds the address any
    /// more (a reload came between the packet and the event).
    pub endpoint: Option<String>,
    /// The endpoint at the remote address, `ns/name`; `null` for an address of no
    /// inventory endpoint.
    pub peer: Option<String>,
    /// Source address.
    pub src: std::net::IpAddr,
    /// Source port (0 for protocols without ports).
    pub src_port: u16,
    /// Destination address.
    pub dst: std::net::IpAddr,
    /// Destination port (0 for protocols without ports).
    pub dst_port: u16,
    /// The IP protocol.
    pub protocol: EventProtocol,
    /// For a deny, the enforced policies isolating the endpoint in this direction; for
    /// an audit, the policies that would deny it.
    pub policies: Vec<String>,
    /// Audit policies that would allow what is denied (may be empty).
    pub would_allow: Vec<String>,
    /// The ClusterNetworkPolicy rule whose `Deny` this is (then `policies` is empty);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_rule: Option<EventRule>,
    /// Packets of this verdict and 5-tuple within the dedup window (SYN retransmits).
    pub packets: u64,
}

/// A ClusterNetworkPolicy rule, as an event names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRule {
    /// `Admin` or `Baseline`.
    pub tier: String,
    /// The object's `metadata.name`.
    pub policy: String,
    /// `ingress` or `egress`, and the rule's index in that list.
    pub field: String,
    /// The rule's `name`, when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl std::fmt::Display for EventRule {
    /// `Admin/guard/no-metadata`, or `Admin/guard/egress[2]` for a rule without a name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rule = self.name.as_deref().unwrap_or(&self.field);
        write!(f, "{}/{}/{rule}", self.tier, self.policy)
    }
}

/// Verdict events since netpold started, for `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    /// NFLOG group read.
    pub group: u16,
    /// Events reported, by verdict.
    pub deny: u64,
    /// Audit events reported.
    pub audit: u64,
    /// Logged packets folded into an event already reported or pending (retransmits).
    pub deduplicated: u64,
    /// Events in the ring now.
    pub in_ring: u64,
    /// Logged packets lost in the NFLOG socket (it overflowed: netpold was too slow).
    pub lost_socket: u64,
    /// Events dropped from the ring to make room (still logged and written).
    pub lost_ring: u64,
    /// Events a `logs --follow` client was too slow to take.
    pub lost_followers: u64,
    /// Packets the kernel's rate limit kept from being logged, from the table's
    /// counters; `None` when not known.
    pub lost_rate_limit: Option<u64>,
    /// Logged packets netpold could not read (an unknown prefix, a short packet).
    pub unreadable: u64,
    /// Why netpold does not read verdict events now (it retries), and since when;
    /// `None` while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<EventsStopped>,
}

/// The events thread stopped on an error: nothing is logged until it binds NFLOG again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsStopped {
    /// When it stopped, RFC 3339.
    pub at: String,
    /// What stopped it.
    pub reason: String,
}

/// `t` as RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::control::Response;

    /// Every field set, so that the wire format of each is pinned.
    pub(crate) fn full_reports() -> (ReloadReport, StatusReport) {
        let counts = Counts {
            policies: 4,
            admin_policies: 0,
            baseline_policies: 0,
            endpoints: 5,
            local_endpoints: 1,
            rules: 13,
            elements: 8,
        };
        let hashes = InputHashes {
            policies: "p".repeat(4),
            inventory: "i".repeat(4),
        };
        let reload = ReloadReport {
            outcome: Outcome::Applied,
            trigger: Trigger::Files,
            generation: 3,
            before: Some(counts),
            after: Some(Counts {
                rules: 15,
                ..counts
            }),
            locals_added: vec!["web/checkout".into()],
            locals_removed: vec!["web/frontend".into()],
            stage: Some(Stage::Locals),
            error: Some("e".into()),
            compile_ms: 2.5,
            apply_ms: 8.125,
            kernel: Some(KernelChange::Updated { elements: 4 }),
            revoked: Some(Box::new(RevokedFlows {
                seen: 41,
                cut: 2,
                sockets_reset: 2,
                error: Some("x".into()),
            })),
            connectivity: Some(rules_compiler::connectivity::Summary {
                allowed: 3,
                denied: 1,
            }),
        };
        let status = StatusReport {
            pid: 42,
            generation: 3,
            loaded_at: Some("2026-01-01T00:00:00.000Z".into()),
            loaded_by: Some(Trigger::Addresses),
            hashes: Some(hashes.clone()),
            counts: Some(counts),
            local_endpoints: vec!["web/checkout".into()],
            follows_host: true,
            reloads: ReloadCounts {
                applied: 3,
                unchanged: 2,
                failed: 1,
                held: 1,
            },
            last_error: Some(LastError {
                at: "2026-01-01T00:00:01.000Z".into(),
                trigger: Trigger::Retry,
                stage: Stage::Kernel,
                message: "no".into(),
            }),
            disk: DiskState::Unreadable,
            loaded_how: Some(KernelChange::Replaced),
            held: Some(Held {
                at: "2026-01-01T00:00:02.000Z".into(),
                trigger: Trigger::Signal,
                reason: "r".into(),
                hashes,
            }),
            ownership: Some(crate::netlink::Ownership::Owned),
            drift: Drift {
                repairs: 1,
                failures: 2,
                last: Some(DriftEvent {
                    at: "2026-01-01T00:00:03.000Z".into(),
                    by: "nft (pid 7)".into(),
                    changes: vec!["deleted table".into()],
                    outcome: "repaired".into(),
                }),
            },
            mode: Mode::Audit,
            audit_policies: vec!["web/lockdown".into()],
            failsafe: vec!["ingress TCP 22".into()],
            pending: Some(Pending {
                generation: 3,
                deadline: "2026-01-01T00:01:00.000Z".into(),
                rollback_to: 2,
            }),
            rollbacks: 1,
            events: Some(EventCounts {
                group: 4713,
                deny: 5,
                audit: 6,
                deduplicated: 7,
                in_ring: 11,
                lost_socket: 1,
                lost_ring: 2,
                lost_followers: 3,
                lost_rate_limit: Some(4),
                unreadable: 8,
                stopped: Some(EventsStopped {
                    at: "2026-01-01T00:00:04.000Z".into(),
                    reason: "reading the NFLOG socket: boom".into(),
                }),
            }),
            denied: Some(DeniedByTier {
                network_policy: 12,
                admin: 3,
                baseline: 0,
            }),
        };
        (reload, status)
    }

    #[test]
    fn the_wire_format_of_the_reports_is_pinned() {
        let (reload, status) = full_reports();
        assert_eq!(
            serde_json::to_string(&Response::Reload(Box::new(reload.clone()))).unwrap(),
            r#"{"response":"reload","outcome":"applied","trigger":"files","generation":3,"before":{"policies":4,"admin_policies":0,"baseline_policies":0,"endpoints":5,"local_endpoints":1,"rules":13,"elements":8},"after":{"policies":4,"admin_policies":0,"baseline_policies":0,"endpoints":5,"local_endpoints":1,"rules":15,"elements":8},"locals_added":["web/checkout"],"locals_removed":["web/frontend"],"stage":"locals","error":"e","compile_ms":2.5,"apply_ms":8.125,"kernel":{"how":"updated","elements":4},"revoked":{"seen":41,"cut":2,"sockets_reset":2,"error":"x"},"connectivity":{"allowed":3,"denied":1}}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::Status(Box::new(status.clone()))).unwrap(),
            r#"{"response":"status","pid":42,"generation":3,"loaded_at":"2026-01-01T00:00:00.000Z","loaded_by":"addresses","hashes":{"policies":"pppp","inventory":"iiii"},"counts":{"policies":4,"admin_policies":0,"baseline_policies":0,"endpoints":5,"local_endpoints":1,"rules":13,"elements":8},"local_endpoints":["web/checkout"],"follows_host":true,"reloads":{"applied":3,"unchanged":2,"failed":1,"held":1},"last_error":{"at":"2026-01-01T00:00:01.000Z","trigger":"retry","stage":"kernel","message":"no"},"disk":"unreadable","loaded_how":{"how":"replaced"},"held":{"at":"2026-01-01T00:00:02.000Z","trigger":"signal","reason":"r","hashes":{"policies":"pppp","inventory":"iiii"}},"ownership":"owned","drift":{"repairs":1,"failures":2,"last":{"at":"2026-01-01T00:00:03.000Z","by":"nft (pid 7)","changes":["deleted table"],"outcome":"repaired"}},"mode":"audit","audit_policies":["web/lockdown"],"failsafe":["ingress TCP 22"],"pending":{"generation":3,"deadline":"2026-01-01T00:01:00.000Z","rollback_to":2},"rollbacks":1,"events":{"group":4713,"deny":5,"audit":6,"deduplicated":7,"in_ring":11,"lost_socket":1,"lost_ring":2,"lost_followers":3,"lost_rate_limit":4,"unreadable":8,"stopped":{"at":"2026-01-01T00:00:04.000Z","reason":"reading the NFLOG socket: boom"}},"denied":{"network_policy":12,"admin":3,"baseline":0}}"#
        );
        // And back: clients read what the daemon writes.
        let text = serde_json::to_string(&Response::Status(Box::new(status.clone()))).unwrap();
        assert_eq!(
            serde_json::from_str::<Response>(&text).unwrap(),
            Response::Status(Box::new(status))
        );
        let text = serde_json::to_string(&Response::Reload(Box::new(reload.clone()))).unwrap();
        assert_eq!(
            serde_json::from_str::<Response>(&text).unwrap(),
            Response::Reload(Box::new(reload))
        );
    }

    /// A deny event with every field set.
    pub(crate) fn full_event() -> VerdictEvent {
        VerdictEvent {
            time: "2026-01-01T00:00:04.000Z".into(),
            verdict: Verdict::Deny,
            direction: EventDirection::Ingress,
            endpoint: Some("db/pg".into()),
            peer: None,
            src: "198.18.0.9".parse().unwrap(),
            src_port: 40000,
            dst: "198.18.0.2".parse().unwrap(),
            dst_port: 5432,
            protocol: EventProtocol::of(6),
            policies: vec!["db/default-deny".into()],
            would_allow: vec!["db/allow-web".into()],
            cluster_rule: None,
            packets: 3,
        }
    }

    #[test]
    fn the_wire_format_of_events_is_pinned() {
        let event = full_event();
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(
            text,
            r#"{"time":"2026-01-01T00:00:04.000Z","verdict":"deny","direction":"ingress","endpoint":"db/pg","peer":null,"src":"198.18.0.9","src_port":40000,"dst":"198.18.0.2","dst_port":5432,"protocol":"TCP","policies":["db/default-deny"],"would_allow":["db/allow-web"],"packets":3}"#
        );
        assert_eq!(serde_json::from_str::<VerdictEvent>(&text).unwrap(), event);
        let icmp = VerdictEvent {
            protocol: EventProtocol::of(1),
            ..event
        };
        let text = serde_json::to_string(&icmp).unwrap();
        assert!(text.contains(r#""protocol":"ICMP","#), "{text}");
        assert_eq!(serde_json::from_str::<VerdictEvent>(&text).unwrap(), icmp);
        let gre = VerdictEvent {
            protocol: EventProtocol::of(47),
            ..icmp
        };
        let text = serde_json::to_string(&gre).unwrap();
        assert!(text.contains(r#""protocol":"47","#), "{text}");
        assert_eq!(serde_json::from_str::<VerdictEvent>(&text).unwrap(), gre);
        for (n, name, ports) in [
            (6, "TCP", true),
            (17, "UDP", true),
            (132, "SCTP", true),
            (1, "ICMP", false),
            (58, "ICMPv6", false),
            (47, "47", false),
            (253, "253", false),
        ] {
            assert_eq!(EventProtocol::of(n).to_string(), name);
            assert_eq!(EventProtocol::of(n).has_ports(), ports, "{name}");
            assert_eq!(name.parse(), Ok(EventProtocol::of(n)));
        }
        assert!("tcp".parse::<EventProtocol>().is_err());
        assert!("256".parse::<EventProtocol>().is_err());
    }

    #[test]
    fn rfc3339_in_utc() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123); // leap year
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }
}
