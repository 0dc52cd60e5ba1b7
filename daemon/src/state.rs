//! The daemon's state and the one thing that changes it: a reload.
//!
//! [`State`] owns the kernel [`Backend`], the last good inputs (their text, hashes, local
//! endpoints, sizes), the plan applied last, and the counters. [`State::reload`] reads
//! every input, skips the work when the bytes hash the same as before, and otherwise
//! validates, plans and applies; any failure leaves the kernel and the last good state
//! as they were and is remembered for `status`. Applying is an incremental update of
//! set and map elements when that is all that changed since the plan applied last (and
//! it is cheap enough), else a replace of the table; a failed update falls back to a
//! replace.
//!
//! A reload whose inputs load but would take away most of the protection in force —
//! every local endpoint, or more than half of the policies — is held, not applied
//! ([`suspicious`]): that is what a truncated or half-written file looks like. It stays
//! held until the files change again or an operator forces it
//! ([`State::force_reload`]). A failure that may pass without any change of the files
//! (a read error, the kernel refusing) asks for a retry ([`State::wants_retry`]).
//!
//! Synchronous and free of tokio, so the logic is tested with the in-memory backend
//! (`netpol_nft::fake::FakeBackend`, feature `test-support`). In the daemon it is owned by one
//! thread, [`thread::StateThread`], which the async loop ([`crate::daemon`]) feeds with
//! commands over a bounded channel. What it reports — to `netpolctl`, as JSON — is in
//! [`report`].
//!
//! `status` ([`State::status`]) reads nothing: whether the files on disk are what is
//! loaded ([`State::disk`]) comes from what the last read found and the file watch's
//! count of events since ([`crate::watch::Seen`]).
//!
//! The kernel's news of committed nftables transactions ([`State::kernel_news`]) tells
//! netpold's own from anyone else's; a foreign change to the table is repaired at once
//! by replacing it with the plan in force, and logged, counted and kept for `status`.
//!
//! After every apply — start-up, replace or update — established connections that the
//! new plan no longer allows are cut, with that very plan (`State::revoke`, one call in
//! `apply_model`; the decision is [`crate::revoke`]'s), unless `revoke-established` is
//! off. Its failure is logged and counted, never a failed reload.
//!
//! Each outcome is logged, counted and emitted as metrics in one place
//! (`State::record`), so the log, the counters and the metrics never disagree. The
//! kernel's deny counters are read on demand ([`State::read_denies`]) and just before
//! each replace of the table, which resets them (see [`DenyTotals`]); an update keeps
//! them.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rules_compiler::connectivity::{self, Side};
use rules_compiler::diag::{Rejected, SHOWN_DIAGNOSTICS};
use rules_compiler::load::{self, Input};
use rules_compiler::model::ObjectName;
use rules_compiler::plan::{self, DenyAction, Plan};
use rules_compiler::resolve::EndpointId;
use rules_compiler::target::AddressBook;
use rules_compiler::validate::DecodeCache;
use rules_compiler::{Loaded, Target};
use sha2::{Digest, Sha256};

use self::report::{
    rfc3339, Counts, DiskState, Drift, DriftEvent, Held, InputHashes, InputText, KernelChange,
    LastError, LoadedInputs, Outcome, ReloadCounts, ReloadReport, RevokedFlows, Stage,
    StatusReport, Trigger,
};
use crate::memory;
use crate::netlink::{Backend, ChainOwners, Claim, Commit, KernelError, News, Update};
use crate::revoke;
use crate::telemetry::{self, DenyTotals};
use crate::watch::Seen;

mod confirm;
pub mod report;
pub mod thread;

/// What the state needs to know of the configuration.
#[derive(Clone, Debug)]
pub struct Options {
    /// Policy files or directories.
    pub policies: Vec<PathBuf>,
    /// Inventory files or directories.
    pub inventory: Vec<PathBuf>,
    /// Named local endpoints; empty: those with an address of this host.
    pub locals: Vec<ObjectName>,
    /// What denied packets get.
    pub deny: DenyAction,
    /// Host-wide mode (`mode`, `--mode`).
    pub mode: plan::Mode,
    /// Where the kernel sends denied and audited packets; `None`: nowhere.
    pub events: Option<plan::EventLog>,
    /// Accepted before any policy for every local endpoint.
    pub failsafe: Vec<plan::Failsafe>,
    /// Every reload that changes connectivity is provisional for this long
    /// (`confirm-within`); `None`: only `netpolctl reload --confirm-within` is.
    pub confirm_within: Option<Duration>,
    /// Where a pending rollback is kept across restarts; `None`: not kept.
    pub pending_file: Option<PathBuf>,
    /// Send only element changes when nothing else changes (see [`UPDATE_COST_RATIO`]).
    pub incremental: bool,
    /// How the inputs are read.
    pub load: load::Options,
    /// After each apply, cut the established flows the new ruleset no longer allows
    /// (`revoke-established`; see [`crate::revoke`]).
    pub revoke: bool,
}

/// An element-only change goes to the kernel as an update when its cost — each changed
/// element weighted by the size of its set, since the kernel rebuilds the look-up
/// structure of an interval set that a transaction touches — is at most this many times
/// the table's elements; a bigger change is cheaper as a full replace.
pub const UPDATE_COST_RATIO: u64 = 100;

/// The connectivity summary of a reload looks at each local endpoint with every other
/// endpoint and ipBlock peer, both ways; beyond this many pairs it is not computed
/// (logged), so that a host with very many local endpoints of a very big inventory does
/// not pay for it on every reload.
pub const SUMMARY_MAX_PAIRS: usize = 2_000_000;

/// The most bytes of input text `netpolctl diff --against-daemon` is sent over the
/// control socket (the inputs of 50,000 endpoints are about 38 MB).
pub const MAX_LOADED_BYTES: usize = 128 * 1024 * 1024;

/// What is in force.
///
/// Not the validated model: at 50,000 endpoints it takes about 70 MB, about twice
/// the YAML it came from. The inputs are kept as text instead, so that a change of this
/// host's addresses re-plans exactly the inputs in force (even when the files on disk
/// have changed or broken since), and a small address index tells whether an address
/// change changes the local endpoints at all without loading anything.
struct Current {
    inputs: Arc<Read>,
    /// Every endpoint's name and addresses and the policies' ipBlock CIDRs: with the
    /// plan applied, what the next reload's connectivity summary compares against
    /// (about 100 bytes an endpoint).
    ends: connectivity::Ends,
    /// Every inventory address and the endpoint (index in the model) that has it.
    addresses: AddressBook,
    /// The local endpoints, sorted by index in the model, and their names.
    local_ids: Vec<EndpointId>,
    locals: Vec<ObjectName>,
    counts: Counts,
    /// The policies annotated `netpol/mode: audit`, for `status`.
    audit_policies: Vec<String>,
    at: SystemTime,
    by: Trigger,
    /// How the kernel took it.
    how: KernelChange,
}

/// Inputs read from disk, with their hashes.
#[derive(Clone)]
struct Read {
    policies: Vec<Input>,
    inventory: Vec<Input>,
    hashes: InputHashes,
}

/// What the last read of the inputs found, for `status` (which does not read them).
struct LastRead {
    /// Their hashes; `None` when they could not be read.
    hashes: Option<InputHashes>,
    /// The watch's count of file events just before the read.
    events: u64,
}

/// Timings and counts of the last reloads.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Reloads by outcome.
    pub reloads: ReloadCounts,
    /// Failures by stage.
    pub failed_load: u64,
    /// Failures choosing local endpoints.
    pub failed_locals: u64,
    /// Failures in the kernel.
    pub failed_kernel: u64,
    /// When the last apply succeeded.
    pub last_success: Option<SystemTime>,
    /// Time to read, validate and plan, of the last reload that got that far.
    pub last_compile: Duration,
    /// Time of the last kernel transaction.
    pub last_apply: Duration,
    /// Incremental updates that failed and were followed by a full replace.
    pub incremental_fallbacks: u64,
    /// Established flows cut because the ruleset applied no longer allows them.
    pub revoked_flows: u64,
    /// Revocations that failed (the ruleset was in force regardless).
    pub revoke_failures: u64,
    /// Provisional generations rolled back for want of a confirmation.
    pub rollbacks: u64,
}

/// Where the model of each applied ruleset goes (the events pipeline judges packets
/// against it): see [`State::publish_models`].
type ModelSink = Box<dyn Fn(Arc<rules_compiler::model::Model>) + Send>;

/// Where this host's addresses come from when local endpoints do not follow them.
type AddressSource = Box<dyn Fn() -> std::io::Result<BTreeSet<IpAddr>> + Send>;

/// This host's addresses, read on a thread of its own (the rtnetlink dump runs its own
/// small runtime, which cannot start inside the daemon's).
fn read_host_addresses() -> std::io::Result<BTreeSet<IpAddr>> {
    std::thread::scope(|s| {
        s.spawn(crate::addrs::local_addresses)
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("reading addresses panicked")))
    })
}

/// The daemon's state: see the module doc.
pub struct State<B> {
    options: Options,
    backend: B,
    /// This host's addresses, when local endpoints follow them.
    host: BTreeSet<IpAddr>,
    current: Option<Current>,
    /// The plan the kernel holds, as this process last applied it: what an incremental
    /// update is computed against, and what a foreign change is repaired with. `None`
    /// when the kernel may hold something else (a batch with no answer). A few MB at
    /// 50,000 endpoints; the model it came from is not kept.
    applied: Option<Plan>,
    /// Whom the chains of the table this process last loaded police: deny counters are
    /// labelled by chain, since their comments are cut for long names.
    owners: ChainOwners,
    generation: u64,
    /// Hashes of the inputs of the last attempt, successful or not, so that file events
    /// that change nothing since a failure do not fail again and again.
    last_attempt: Option<InputHashes>,
    last_error: Option<LastError>,
    /// Inputs held back as suspicious.
    held: Option<Held>,
    /// Before the first apply: the local endpoints policed by a table an earlier netpold
    /// left in the kernel, so that a start-up on cut-short inputs is held too.
    inherited: Option<Counts>,
    /// Whether the last reload failed in a way a retry may fix.
    retry: bool,
    /// Counters, public for metrics.
    pub counters: Counters,
    /// Whether the kernel's deny counters are read (for metrics).
    count_denies: bool,
    /// Deny counts since start.
    denies: DenyTotals,
    /// Packets of deny and audit chains that their log rule did not log (the table's
    /// rate limit held them back), since start, kept monotonic as the deny counts are.
    unlogged: DenyTotals,
    /// Whether any chain read had a log rule.
    logs_seen: bool,
    /// Whether the last read of the deny counters failed (to log a failure once).
    deny_read_failing: bool,
    /// This host's addresses for revocation, when local endpoints are named (else
    /// `host`, followed by the daemon, is used).
    address_source: AddressSource,
    /// Whether the kernel's lack of `SOCK_DESTROY` was logged already.
    destroy_unsupported_logged: bool,
    /// Foreign changes to the table and their repairs.
    drift: Drift,
    /// The watch's count of file events, when the inputs are watched.
    file_events: Option<Seen>,
    /// What the last read of the inputs found.
    last_read: Option<LastRead>,
    /// Where each applied model goes; `None`: it is dropped after planning.
    models: Option<ModelSink>,
    /// A provisional generation waiting for `netpolctl confirm` ([`confirm`]).
    pending: Option<confirm::Provisional>,
    /// What each document of the last load decoded to: an edit decodes only what it
    /// changed.
    decode_cache: DecodeCache,
}

/// At most this many lines of what a foreign change did are logged and kept.
const DRIFT_LINES: usize = 20;

impl<B: Backend> State<B> {
    /// A state with nothing loaded yet.
    pub fn new(options: Options, backend: B) -> State<B> {
        State {
            options,
            backend,
            host: BTreeSet::new(),
            current: None,
            applied: None,
            owners: ChainOwners::default(),
            generation: 0,
            last_attempt: None,
            last_error: None,
            held: None,
            inherited: None,
            retry: false,
            counters: Counters::default(),
            count_denies: false,
            denies: DenyTotals::default(),
            unlogged: DenyTotals::default(),
            logs_seen: false,
            deny_read_failing: false,
            address_source: Box::new(read_host_addresses),
            destroy_unsupported_logged: false,
            drift: Drift::default(),
            file_events: None,
            last_read: None,
            models: None,
            pending: None,
            decode_cache: DecodeCache::default(),
        }
    }

    /// Takes the file watch's count of events (see [`Seen`]): `status` then says the
    /// files differ from what is loaded as soon as an event arrives, until a reload
    /// reads them. Without it, `status` knows only what the last read found.
    pub fn follow_file_events(&mut self, seen: Seen) {
        self.file_events = Some(seen);
    }

    /// Hands the model of every ruleset applied from now on to `sink` (the events
    /// pipeline, which names endpoints and policies from it). Without a sink the model is
    /// dropped once planned; with one it stays alive until the sink lets it go: one more
    /// model in memory (about 70 MB at 50,000 endpoints), the price of naming policies.
    pub fn publish_models(
        &mut self,
        sink: impl Fn(Arc<rules_compiler::model::Model>) + Send + 'static,
    ) {
        self.models = Some(Box::new(sink));
    }

    /// File events seen so far (0 when not watched).
    fn file_events(&self) -> u64 {
        self.file_events.as_ref().map_or(0, Seen::count)
    }

    /// Takes over a table an earlier netpold left, where the backend owns its table,
    /// before anything else is done with it; logs what it found.
    pub fn claim(&mut self) {
        match self.backend.claim() {
            Ok(Claim::Off) => {}
            Ok(Claim::NoTable) => tracing::info!("no netpol table in the kernel yet"),
            Ok(Claim::TakenOver) => tracing::info!(
                "took over table inet netpol, left in force by an earlier netpold: only this \
                 process may change it now"
            ),
            Ok(Claim::Unowned { netpols: true }) => tracing::info!(
                "table inet netpol is in the kernel without an owner (made by netpolctl apply \
                 or an older netpold); the first apply replaces it with an owned one"
            ),
            Ok(Claim::Unowned { netpols: false }) => tracing::warn!(
                "table inet netpol is in the kernel, but netpol did not make it (it lacks the \
                 comment \"{}\"); the first apply replaces it",
                rules_compiler::plan::TABLE_COMMENT
            ),
            Ok(Claim::OwnedBy(port)) => tracing::warn!(
                "table inet netpol is owned by {}; applying will fail until it lets go",
                crate::netlink::monitor::process_of_port(port)
                    .unwrap_or_else(|| format!("netlink port id {port}"))
            ),
            Err(e) => tracing::warn!("taking over table inet netpol: {e}"),
        }
    }

    /// Foreign changes and their repairs so far.
    pub fn drift(&self) -> &Drift {
        &self.drift
    }

    /// Takes the kernel's news of committed nftables transactions: a transaction of
    /// someone else's that changed netpol's table is put right at once by replacing the
    /// table with the plan in force, and logged with what it did and who did it. Lost
    /// news (the notification buffer overflowed) is followed by the generation check:
    /// when the ruleset moved meanwhile, the table is replaced to be sure. Returns the
    /// foreign change, when there was one.
    pub fn kernel_news(&mut self, news: Vec<News>) -> Option<DriftEvent> {
        let event = self.judge(news);
        self.check_missed();
        event
    }

    /// After netpold's own transactions with the drift watch silenced (see
    /// [`Quiet`](crate::netlink::Quiet)): when someone else may have committed unseen
    /// meanwhile, the check that lost news gets. A repair is a transaction too, so this
    /// goes on while they follow one another, a few times at most.
    fn check_missed(&mut self) {
        for _ in 0..3 {
            if !self.backend.missed() {
                return;
            }
            self.judge(vec![News::Lost]);
        }
    }

    /// Sorts the news into netpold's own transactions, others' that left the table
    /// alone, and others' that changed it (repaired); see [`kernel_news`](Self::kernel_news).
    fn judge(&mut self, news: Vec<News>) -> Option<DriftEvent> {
        let mut lost = false;
        let mut foreign: Vec<Commit> = Vec::new();
        for n in news {
            match n {
                News::Lost => lost = true,
                News::Commit(c) if self.backend.committed(c.generation) || c.by_this_process() => {}
                News::Commit(c) => foreign.push(c),
            }
        }
        let touched: Vec<&Commit> = foreign.iter().filter(|c| !c.changes.is_empty()).collect();
        let (by, changes) = if touched.is_empty() {
            if !lost {
                // Others' transactions that left the table alone, seen whole: the next
                // update may build on them.
                for c in &foreign {
                    self.backend.follow(c.generation);
                }
                return None;
            }
            if self.kernel_in_step() {
                return None;
            }
            (
                "unknown: a transaction went unseen (notifications lost or silenced), and the ruleset moved".to_string(),
                vec!["unknown".to_string()],
            )
        } else {
            let mut by: Vec<String> = Vec::new();
            let mut changes: Vec<String> = Vec::new();
            for c in &touched {
                let who = format!("{} (pid {})", c.process, c.pid);
                if !by.contains(&who) {
                    by.push(who);
                }
                changes.extend(c.changes.iter().cloned());
            }
            if changes.len() > DRIFT_LINES {
                let more = changes.len() - DRIFT_LINES;
                changes.truncate(DRIFT_LINES);
                changes.push(format!("… and {more} more"));
            }
            (by.join(", "), changes)
        };
        let outcome = self.repair(&by, &changes);
        let event = DriftEvent {
            at: rfc3339(SystemTime::now()),
            by,
            changes,
            outcome,
        };
        self.drift.last = Some(event.clone());
        Some(event)
    }

    /// Replaces the table with the plan in force after a foreign change; says how it went.
    fn repair(&mut self, by: &str, changes: &[String]) -> String {
        let what = changes.join(", ");
        let Some(plan) = self.applied.clone() else {
            self.drift.failures += 1;
            telemetry::drift_repair(false);
            let why = if self.held.is_some() {
                "netpold applied nothing yet (the inputs are held)"
            } else {
                "netpold has no ruleset in force to put back"
            };
            tracing::error!("table inet netpol was changed by {by}: {what}; not repaired: {why}");
            return format!("not repaired: {why}");
        };
        if self.count_denies {
            self.observe_denies();
        }
        match self.backend.apply(&plan) {
            Ok(_) => {
                self.drift.repairs += 1;
                telemetry::drift_repair(true);
                if self.count_denies {
                    self.denies.replaced();
                    self.unlogged.replaced();
                    self.observe_denies();
                    self.denies.emit();
                }
                tracing::warn!(
                    generation = self.generation,
                    "table inet netpol was changed by {by}: {what}; repaired: replaced it with \
                     generation {}",
                    self.generation
                );
                // Connections the policies deny may have started while the table was
                // not as it should be.
                self.revoke(&plan, self.generation);
                "repaired".to_string()
            }
            Err(e) => {
                self.drift.failures += 1;
                telemetry::drift_repair(false);
                self.retry = true;
                tracing::error!(
                    "table inet netpol was changed by {by}: {what}; repairing it failed: {e}"
                );
                format!("repair failed: {e}")
            }
        }
    }

    /// Where this host's addresses come from for revocation when local endpoints are
    /// named (tests; by default the interfaces' addresses, read at each revocation).
    pub fn set_address_source(
        &mut self,
        source: impl Fn() -> std::io::Result<BTreeSet<IpAddr>> + Send + 'static,
    ) {
        self.address_source = Box::new(source);
    }

    /// Reads the kernel's deny counters from now on: on [`read_denies`](Self::read_denies)
    /// and before each replace of the table, so that no count is lost with it.
    pub fn count_denies(&mut self) {
        self.count_denies = true;
    }

    /// Deny counts since start, per local endpoint and direction.
    pub fn deny_totals(&self) -> &DenyTotals {
        &self.denies
    }

    /// Reads the kernel's deny counters into the totals and emits them.
    pub fn read_denies(&mut self) {
        if !self.count_denies || self.current.is_none() {
            return;
        }
        self.observe_denies();
        self.denies.emit();
    }

    fn observe_denies(&mut self) {
        match self.backend.read_denies() {
            Ok(found) => {
                if self.deny_read_failing {
                    tracing::info!("reading the kernel's deny counters works again");
                    self.deny_read_failing = false;
                }
                let labelled = self.owners.label(found.unwrap_or_default());
                // Terminal counter minus log counter, per chain: the packets the rate
                // limit kept from netpold (exact, from the kernel).
                let unlogged: Vec<_> = labelled
                    .iter()
                    .filter_map(|c| {
                        c.logged.map(|logged| crate::netlink::DenyCounter {
                            packets: c.packets.saturating_sub(logged),
                            bytes: 0,
                            ..c.clone()
                        })
                    })
                    .collect();
                self.logs_seen |= !unlogged.is_empty();
                self.unlogged.observe(&unlogged);
                if let Some(n) = self.events_unlogged() {
                    telemetry::events_lost_absolute("rate_limit", n);
                }
                self.denies.observe(&labelled);
            }
            Err(e) => {
                telemetry::counter_read_failed();
                if !self.deny_read_failing {
                    tracing::warn!("reading the kernel's deny counters: {e}");
                    self.deny_read_failing = true;
                }
            }
        }
    }

    /// Packets of deny and audit chains not logged since start (held back by the
    /// table's rate limit), as of the last read of the counters; `None` before any
    /// chain with a log rule was read (counters are read for metrics only).
    pub fn events_unlogged(&self) -> Option<u64> {
        self.logs_seen
            .then(|| self.unlogged.totals().values().map(|c| c.packets).sum())
    }

    /// Whether local endpoints follow this host's addresses.
    pub fn follows_host(&self) -> bool {
        self.options.locals.is_empty()
    }

    /// The generation in force (0: nothing loaded).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The kernel backend (for shutdown, and for tests to look into).
    pub fn backend(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Reads the inputs and applies them unless they are what is loaded, or unless they
    /// are suspicious (then they are held: see the module doc).
    ///
    /// File events (`Trigger::Files`) are also skipped when the inputs are those of the
    /// last failed or held attempt: nothing changed that could make it pass. Explicit
    /// reloads (SIGHUP, `netpolctl reload`) try again, since a kernel failure may be
    /// transient.
    ///
    /// With `confirm-within` configured, one that changes connectivity is provisional
    /// ([`State::confirm`]).
    pub fn reload(&mut self, trigger: Trigger) -> ReloadReport {
        let baseline = self.baseline();
        let report = self.reload_checked(trigger, Guard::HoldSuspicious);
        self.provisional_if_configured(trigger, baseline, &report);
        if trigger == Trigger::Start {
            // An earlier netpold's rollback is still due.
            self.restore_pending();
        }
        report
    }

    /// `netpolctl reload --force`: like [`reload`](Self::reload), but applies inputs
    /// even when they would be held as suspicious.
    pub fn force_reload(&mut self) -> ReloadReport {
        let baseline = self.baseline();
        let report = self.reload_checked(Trigger::Control, Guard::Force);
        self.provisional_if_configured(Trigger::Control, baseline, &report);
        report
    }

    /// The inputs in force and their generation: what a rollback would go back to.
    fn baseline(&self) -> Option<(Arc<Read>, u64)> {
        self.current
            .as_ref()
            .map(|c| (Arc::clone(&c.inputs), self.generation))
    }

    /// Whether the last reload failed in a way that may pass on a retry without any
    /// change of the files: the files could not be read (out of file descriptors, say),
    /// or the kernel refused. Validation errors are not retried; they need an edit.
    pub fn wants_retry(&self) -> bool {
        self.retry
    }

    fn reload_checked(&mut self, trigger: Trigger, guard: Guard) -> ReloadReport {
        let started = Instant::now();
        if trigger == Trigger::Start {
            self.inherited = self.kernel_counts();
        }
        // Before the read: an event that comes during it may or may not be in what is
        // read, so it counts as a change not read yet.
        let events = self.file_events();
        let (policies, inventory) = match read_files(&self.options) {
            Ok(r) => r,
            Err(rejected) => {
                self.last_read = Some(LastRead {
                    hashes: None,
                    events,
                });
                self.last_attempt = None;
                self.held = None;
                let message = rejected.to_string();
                let report = self.fail(trigger, Stage::Load, message, started, None);
                self.retry = true;
                return report;
            }
        };
        // The bytes in force, compared as they are: no hash needed to see nothing changed.
        let loaded_hashes = self
            .current
            .as_ref()
            .filter(|c| c.inputs.policies == policies && c.inputs.inventory == inventory)
            .map(|c| c.inputs.hashes.clone());
        let same_as_loaded = loaded_hashes.is_some();
        // A file event after a failed or held attempt is skipped when the bytes are those
        // of the attempt, known by their hashes only.
        let after_failure =
            (self.last_error.is_some() || self.held.is_some()) && trigger == Trigger::Files;
        let hashes = match loaded_hashes {
            Some(h) => Some(h),
            None if after_failure => Some(InputHashes::of(&policies, &inventory)),
            None => None,
        };
        let same_as_failed = after_failure && hashes.is_some() && self.last_attempt == hashes;
        if let Some(h) = &hashes {
            self.last_read = Some(LastRead {
                hashes: Some(h.clone()),
                events,
            });
        }
        // An operator's reload re-checks the kernel, never only the inputs: a table
        // deleted or changed by someone else is put back from the inputs in force. So
        // does the retry of a failed repair.
        if same_as_loaded
            && matches!(trigger, Trigger::Signal | Trigger::Control | Trigger::Retry)
            && !self.kernel_in_step()
        {
            tracing::warn!(
                "the netpol table in the kernel is not as netpold left it at generation {} \
                 (deleted or changed by someone else): replacing it",
                self.generation
            );
            let inputs = self.current.as_ref().map(|c| c.inputs.clone());
            if let Some(inputs) = inputs {
                // A replace, not an update on top of a table that is not ours any more.
                self.applied = None;
                self.last_attempt = hashes;
                let report = self.load_and_apply(trigger, inputs, started, false, Guard::Force);
                self.check_missed();
                return report;
            }
        }
        if same_as_loaded || same_as_failed {
            if same_as_loaded {
                // The files went back to what is in force: nothing is wrong any more.
                self.last_error = None;
                self.held = None;
                self.retry = false;
            }
            self.last_attempt = hashes;
            return self.record(self.unchanged(trigger));
        }
        let (hashes, loaded) = match hashes {
            Some(h) => (h, self.load(&policies, &inventory)),
            None => self.hash_beside_load(&policies, &inventory),
        };
        self.last_read = Some(LastRead {
            hashes: Some(hashes.clone()),
            events,
        });
        self.last_attempt = Some(hashes.clone());
        self.held = None;
        let read = Arc::new(Read {
            policies,
            inventory,
            hashes,
        });
        let report = self.apply_loaded(trigger, loaded, read, started, true, guard);
        self.check_missed();
        // The load's transient trees and the replaced inputs are free now; give them back
        // to the system, or a daemon that reloaded once holds its peak for good.
        memory::release_free_heap();
        report
    }

    fn load_and_apply(
        &mut self,
        trigger: Trigger,
        inputs: Arc<Read>,
        started: Instant,
        warn: bool,
        guard: Guard,
    ) -> ReloadReport {
        let loaded = self.load(&inputs.policies, &inputs.inventory);
        self.apply_loaded(trigger, loaded, inputs, started, warn, guard)
    }

    /// The inputs' hashes and their load: the SHA-256 of a 38 MB inventory takes about
    /// 30 ms, so it is computed on a thread of its own while the load runs (inline when
    /// no thread can be started).
    fn hash_beside_load(
        &mut self,
        policies: &[Input],
        inventory: &[Input],
    ) -> (InputHashes, Result<Loaded, Rejected>) {
        std::thread::scope(|scope| {
            let hashing = std::thread::Builder::new()
                .name("netpold-hash".into())
                .spawn_scoped(scope, || InputHashes::of(policies, inventory));
            let loaded = self.load(policies, inventory);
            let hashes = match hashing {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => InputHashes::of(policies, inventory),
            };
            (hashes, loaded)
        })
    }

    /// Loads the inputs through the decode cache.
    fn load(&mut self, policies: &[Input], inventory: &[Input]) -> Result<Loaded, Rejected> {
        let loaded = rules_compiler::load_model_cached(
            policies,
            inventory,
            &self.options.load.limits,
            &mut self.decode_cache,
        );
        let cache = self.decode_cache.last();
        tracing::debug!(
            reused = cache.reused,
            decoded = cache.decoded,
            recut = cache.recut,
            "documents decoded: {} of {}",
            cache.decoded,
            cache.reused + cache.decoded
        );
        loaded
    }

    /// Applies what loading `inputs` gave, or records its failure.
    fn apply_loaded(
        &mut self,
        trigger: Trigger,
        loaded: Result<Loaded, Rejected>,
        inputs: Arc<Read>,
        started: Instant,
        warn: bool,
        guard: Guard,
    ) -> ReloadReport {
        let loaded = match loaded {
            Ok(l) => l,
            Err(rejected) => {
                return self.fail(trigger, Stage::Load, rejected.to_string(), started, None)
            }
        };
        if warn {
            // As many as netpolctl prints: 5,000 skipped pods are one count, not 5,000
            // journal lines on every reload.
            for w in loaded.warnings.iter().take(SHOWN_DIAGNOSTICS) {
                tracing::warn!(target: "netpold::inputs", "{w}");
            }
            if let Some(more) = crate::inputs::more_warnings(loaded.warnings.len()) {
                tracing::warn!(target: "netpold::inputs", "{more}");
            }
        }
        self.apply_model(trigger, loaded, inputs, started, guard)
    }

    /// Takes this host's addresses; when local endpoints follow them and the set of
    /// local endpoints changes, re-applies the loaded inputs for the new set.
    pub fn set_host_addresses(&mut self, addresses: BTreeSet<IpAddr>) -> Option<ReloadReport> {
        if addresses == self.host {
            return None;
        }
        self.host = addresses;
        if !self.follows_host() {
            return None;
        }
        let current = self.current.as_ref()?;
        let now = current.addresses.locals(&self.host);
        if now.iter().copied().eq(current.local_ids.iter().copied()) {
            return None;
        }
        // The inputs in force were loaded before, so they load again; their warnings were
        // logged then. An endpoint whose address left this host is not reached through
        // it any more: losing every local endpoint that way is not held.
        let inputs = Arc::clone(&current.inputs);
        let report = self.load_and_apply(
            Trigger::Addresses,
            inputs,
            Instant::now(),
            false,
            Guard::Force,
        );
        self.check_missed();
        memory::release_free_heap();
        Some(report)
    }

    /// What `status` shows. Reads nothing: see [`disk`](Self::disk).
    pub fn status(&self) -> StatusReport {
        let disk = self.disk();
        let c = self.current.as_ref();
        StatusReport {
            pid: std::process::id(),
            generation: self.generation,
            loaded_at: c.map(|c| rfc3339(c.at)),
            loaded_by: c.map(|c| c.by),
            hashes: c.map(|c| c.inputs.hashes.clone()),
            counts: c.map(|c| c.counts),
            local_endpoints: c
                .map(|c| c.locals.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            follows_host: self.follows_host(),
            reloads: self.counters.reloads,
            last_error: self.last_error.clone(),
            disk,
            loaded_how: c.map(|c| c.how),
            held: self.held.clone(),
            ownership: Some(self.backend.ownership()),
            drift: self.drift.clone(),
            mode: self.options.mode.into(),
            audit_policies: c.map(|c| c.audit_policies.clone()).unwrap_or_default(),
            failsafe: self
                .options
                .failsafe
                .iter()
                .map(ToString::to_string)
                .collect(),
            pending: self.pending_report(),
            rollbacks: self.counters.rollbacks,
            // The rest is the events pipeline's, filled in by the daemon.
            events: self.events_unlogged().map(|n| report::EventCounts {
                lost_rate_limit: Some(n),
                ..Default::default()
            }),
            denied: (self.count_denies && c.is_some() && !self.deny_read_failing)
                .then(|| self.denied_by_tier()),
        }
    }

    /// Deny totals since start, summed per tier (audit counters are not denials).
    fn denied_by_tier(&self) -> report::DeniedByTier {
        let mut out = report::DeniedByTier::default();
        for ((_, _, tier), c) in self.denies.totals() {
            match tier {
                "Admin" => out.admin += c.packets,
                "Baseline" => out.baseline += c.packets,
                _ => out.network_policy += c.packets,
            }
        }
        out
    }

    /// Whether the files on disk are what is loaded, from what netpold knows without
    /// reading them: they differ when the watch has seen an event since the last read
    /// (a reload is pending: the debounce, or the reload running), or when the last read
    /// found other bytes than those in force (it failed, or was held); they cannot be
    /// read when the last read failed to read them and no event came since; else they
    /// match. Before the first read nothing is loaded, and they differ.
    pub fn disk(&self) -> DiskState {
        let Some(last) = &self.last_read else {
            return DiskState::Differ;
        };
        if self.file_events() != last.events {
            return DiskState::Differ;
        }
        match &last.hashes {
            None => DiskState::Unreadable,
            Some(h) if self.current.as_ref().map(|c| &c.inputs.hashes) == Some(h) => {
                DiskState::Match
            }
            Some(_) => DiskState::Differ,
        }
    }

    /// A one-line summary for systemd's `STATUS=`.
    pub fn summary(&self) -> String {
        let mut s = match &self.current {
            Some(c) => format!(
                "generation {}: {} policies, {} endpoints, {} local, {} rules, {} elements",
                self.generation,
                c.counts.policies,
                c.counts.endpoints,
                c.counts.local_endpoints,
                c.counts.rules,
                c.counts.elements
            ),
            None => "nothing loaded".to_string(),
        };
        if let Some(e) = &self.last_error {
            s.push_str(&format!("; last reload failed at {}", e.at));
        }
        if let Some(h) = &self.held {
            s.push_str(&format!("; inputs held since {}: {}", h.at, h.reason));
        }
        if let Some(p) = self.pending_report() {
            s.push_str(&format!(
                "; provisional until {}, then back to generation {}",
                p.deadline, p.rollback_to
            ));
        }
        s
    }

    fn apply_model(
        &mut self,
        trigger: Trigger,
        loaded: Loaded,
        read: Arc<Read>,
        started: Instant,
        guard: Guard,
    ) -> ReloadReport {
        let target = if self.follows_host() {
            Target::HostAddresses(&self.host)
        } else {
            Target::Named(&self.options.locals)
        };
        let options = plan::Options {
            deny: self.options.deny,
            mode: self.options.mode,
            events: self.options.events,
            failsafe: self.options.failsafe.clone(),
            ..Default::default()
        };
        let compiled = match rules_compiler::compile(&loaded.model, target, &options) {
            Ok(c) => c,
            Err(e) => return self.fail(trigger, Stage::Locals, e.to_string(), started, None),
        };
        let plan = compiled.plan;
        let counts = compiled.counts;
        let local_ids: Vec<EndpointId> = compiled.locals.iter().map(|l| l.index).collect();
        let locals: Vec<ObjectName> = compiled.locals.into_iter().map(|l| l.id).collect();
        let compile = started.elapsed();
        self.counters.last_compile = compile;
        if guard == Guard::HoldSuspicious {
            let before = self.current.as_ref().map(|c| c.counts).or(self.inherited);
            if let Some(reason) = before.and_then(|b| suspicious(&b, &counts)) {
                return self.hold(trigger, reason, read.hashes.clone(), compile);
            }
        }
        let applying = Instant::now();
        let (how, narrows) = match self.apply_plan(&plan) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("applying table inet {}: {e}", plan.table());
                let apply = applying.elapsed();
                return self.fail(trigger, Stage::Kernel, message, started, Some(apply));
            }
        };
        let apply = applying.elapsed();
        self.counters.last_apply = apply;
        // The new ruleset is in force: cut what it no longer allows. An update that only
        // widens what is allowed cannot have denied an established flow: the conntrack
        // table (hundreds of milliseconds at 175,000 entries) is not read for it.
        let revoked = if narrows {
            self.revoke(&plan, self.generation + 1)
        } else {
            tracing::debug!("the update only widens what is allowed: no flow to revoke");
            None
        };
        let before = self.current.as_ref().map(|c| c.counts);
        let old_locals: BTreeSet<String> = self
            .current
            .as_ref()
            .map(|c| c.locals.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let new_locals: BTreeSet<String> = locals.iter().map(ToString::to_string).collect();
        let audit_policies: Vec<String> = loaded
            .model
            .audit_policies()
            .map(|p| p.id.to_string())
            .collect();
        let ends = connectivity::Ends::of(&loaded.model);
        let summary = self.connectivity_summary(&ends, &plan);
        match &self.models {
            Some(sink) => sink(Arc::new(loaded.model)),
            None => drop(loaded),
        }
        self.generation += 1;
        self.last_error = None;
        self.retry = false;
        self.inherited = None;
        self.current = Some(Current {
            inputs: read,
            ends,
            addresses: compiled.addresses,
            local_ids,
            locals,
            counts,
            audit_policies,
            at: SystemTime::now(),
            by: trigger,
            how,
        });
        self.applied = Some(plan);
        self.record(ReloadReport {
            outcome: Outcome::Applied,
            trigger,
            generation: self.generation,
            before,
            after: Some(counts),
            locals_added: new_locals.difference(&old_locals).cloned().collect(),
            locals_removed: old_locals.difference(&new_locals).cloned().collect(),
            stage: None,
            error: None,
            compile_ms: ms(compile),
            apply_ms: ms(apply),
            kernel: Some(how),
            revoked: revoked.map(Box::new),
            connectivity: summary,
        })
    }

    /// How this host's connectivity changes from the plan in force to `plan`: flows
    /// of the local endpoints (of either plan) with every endpoint and ipBlock peer,
    /// judged by this host's chains alone, as its table enforces them. `None` with no
    /// plan in force to compare with, or past [`SUMMARY_MAX_PAIRS`].
    fn connectivity_summary(
        &self,
        ends: &connectivity::Ends,
        plan: &Plan,
    ) -> Option<connectivity::Summary> {
        let (Some(current), Some(applied)) = (&self.current, &self.applied) else {
            return None;
        };
        let locals = applied.locals().len().max(plan.locals().len());
        let others = current.ends.len().max(ends.len());
        let pairs = locals.saturating_mul(others).saturating_mul(2);
        if pairs > SUMMARY_MAX_PAIRS {
            tracing::info!(
                "connectivity: not computed ({locals} local endpoints with {others} ends is \
                 over {SUMMARY_MAX_PAIRS} pairs)"
            );
            return None;
        }
        let started = Instant::now();
        let summary = connectivity::summary(
            Side {
                ends: &current.ends,
                plan: applied,
            },
            Side { ends, plan },
        );
        tracing::debug!(took_ms = ms(started.elapsed()), "connectivity summary");
        Some(summary)
    }

    /// The inputs in force, for `netpolctl diff --against-daemon`: the bytes they were
    /// compiled from, not the files on disk now. An error when nothing is in force or
    /// they are over [`MAX_LOADED_BYTES`].
    pub fn loaded_inputs(&self) -> Result<LoadedInputs, String> {
        let Some(current) = &self.current else {
            return Err("nothing is loaded yet".to_string());
        };
        let read = &current.inputs;
        let bytes: usize = read
            .policies
            .iter()
            .chain(&read.inventory)
            .map(|i| i.text.len())
            .sum();
        if bytes > MAX_LOADED_BYTES {
            return Err(format!(
                "the inputs in force are {bytes} bytes, over the {MAX_LOADED_BYTES} the control \
                 socket sends; diff against copies of them (--against-policies, \
                 --against-inventory)"
            ));
        }
        let texts = |inputs: &[Input]| -> Vec<InputText> {
            inputs
                .iter()
                .map(|i| InputText {
                    path: i.path.clone(),
                    text: i.text.to_string(),
                })
                .collect()
        };
        Ok(LoadedInputs {
            generation: self.generation,
            hashes: read.hashes.clone(),
            policies: texts(&read.policies),
            inventory: texts(&read.inventory),
            locals: current.locals.iter().map(ToString::to_string).collect(),
        })
    }

    /// Puts `plan` into the kernel: as an update of the elements when only elements
    /// changed since the plan applied last and that is cheap enough, else (and when the
    /// update fails) as a replace of the table.
    /// Says too whether the change may deny what the plan before allowed (always so for
    /// a replace: the table in the kernel may have been anything).
    fn apply_plan(&mut self, plan: &Plan) -> Result<(KernelChange, bool), KernelError> {
        if let Some(old) = self.applied.as_ref().filter(|_| self.options.incremental) {
            match Update::between(old, plan) {
                // An empty delta still goes to the kernel: its generation check is what
                // tells that the table is still ours as we left it (not deleted, not
                // edited by someone else), before "updated in place" is reported.
                Ok(d) if d.cost() <= UPDATE_COST_RATIO * (d.table_elements().max(1) as u64) => {
                    match self.backend.update(&d) {
                        Ok(_) => {
                            self.owners = ChainOwners::of(plan);
                            tracing::debug!("incremental update: {d}");
                            let how = KernelChange::Updated {
                                elements: d.changed(),
                            };
                            return Ok((how, !d.widens_only(plan)));
                        }
                        Err(e) => {
                            self.counters.incremental_fallbacks += 1;
                            telemetry::incremental_fallback();
                            tracing::warn!(
                                "incremental update failed, replacing the table instead: {e}"
                            );
                        }
                    }
                }
                Ok(d) => tracing::debug!(
                    cost = d.cost(),
                    table_elements = d.table_elements(),
                    "replacing the table: {d} costs more than a replace"
                ),
                Err(why) => tracing::debug!("replacing the table: {why}"),
            }
        }
        if self.count_denies && self.current.is_some() {
            // The last counts of the table about to be replaced.
            self.observe_denies();
        }
        if let Err(e) = self.backend.apply(plan) {
            // A batch the kernel answered was applied whole or not at all: the plan in
            // force stays the one to build on and to repair from. Without an answer
            // nothing is known.
            if !matches!(
                e,
                KernelError::Rejected { .. }
                    | KernelError::Encode(_)
                    | KernelError::Stale(_)
                    | KernelError::NotOurs { .. }
            ) {
                self.applied = None;
            }
            return Err(e);
        }
        self.owners = ChainOwners::of(plan);
        if self.count_denies {
            self.denies.replaced();
            self.unlogged.replaced();
            // Read the new table at once, so that each of its endpoints has its series
            // (at zero) from the moment it is enforced, not from the next periodic read.
            self.observe_denies();
            self.denies.emit();
        }
        Ok((KernelChange::Replaced, true))
    }

    /// Cuts the established flows that `plan`, just applied as `generation`, no longer
    /// allows (when `revoke-established` is on); logs and counts what it did. A failure
    /// is logged and counted, never a failed reload: the ruleset is in force already.
    fn revoke(&mut self, plan: &Plan, generation: u64) -> Option<RevokedFlows> {
        if !self.options.revoke {
            return None;
        }
        let result = if self.follows_host() {
            let host = self.host.clone();
            revoke::revoke(&mut self.backend, plan, move || Ok(host))
        } else {
            let source = &self.address_source;
            revoke::revoke(&mut self.backend, plan, source)
        };
        let done = match result {
            Ok(done) => done,
            Err(e) => {
                self.counters.revoke_failures += 1;
                telemetry::revoke_failed();
                tracing::error!(
                    generation,
                    "revoking established flows failed; generation {generation} is in force \
                     regardless, but established flows it no longer allows may go on until \
                     they end: {e}"
                );
                return Some(RevokedFlows {
                    error: Some(e.to_string()),
                    ..RevokedFlows::default()
                });
            }
        };
        let stats = &done.stats;
        let cut = done.revoked.len();
        self.counters.revoked_flows += cut as u64;
        telemetry::revoked(cut);
        if cut > 0 {
            tracing::info!(
                generation,
                flows = cut,
                seen = done.seen,
                deleted = stats.deleted,
                gone = stats.gone,
                sockets_reset = stats.sockets_destroyed,
                took_ms = ms(done.took),
                "revoked {cut} established flows that generation {generation} no longer \
                 allows:{}",
                revoke::describe(&done.revoked)
            );
        } else {
            tracing::debug!(
                generation,
                seen = done.seen,
                took_ms = ms(done.took),
                "no established flow to revoke"
            );
        }
        if stats.destroy_unsupported && !self.destroy_unsupported_logged {
            self.destroy_unsupported_logged = true;
            tracing::warn!(
                "this kernel cannot destroy sockets (SOCK_DESTROY: CONFIG_INET_DIAG_DESTROY): \
                 revoked TCP flows whose local side keeps sending may be picked up again by \
                 conntrack as new connections, and pass where egress is open"
            );
        }
        let failed = stats.failed > 0;
        if let Some(e) = &stats.first_error {
            if failed {
                self.counters.revoke_failures += 1;
                telemetry::revoke_failed();
            }
            tracing::warn!(
                generation,
                failed = stats.failed,
                "revoking established flows: {e}; generation {generation} is in force regardless"
            );
        }
        Some(RevokedFlows {
            seen: done.seen,
            cut,
            sockets_reset: stats.sockets_destroyed,
            error: failed.then(|| stats.first_error.clone().unwrap_or_default()),
        })
    }

    /// Whether the kernel's ruleset is still as this daemon's last change left it: an
    /// empty update, which the kernel refuses when its generation has moved since.
    /// Another table's change moves it too; the answer is then a needless replace,
    /// never a missed one.
    fn kernel_in_step(&mut self) -> bool {
        let Some(plan) = &self.applied else {
            return true;
        };
        match Update::between(plan, plan) {
            Ok(empty) => self.backend.update(&empty).is_ok(),
            Err(_) => false,
        }
    }

    /// What a table already in the kernel polices: its endpoints with a deny counter,
    /// that is those isolated in some direction (the others it does not protect).
    fn kernel_counts(&mut self) -> Option<Counts> {
        let counters = match self.backend.read_denies() {
            Ok(Some(c)) => c,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("reading the table already in the kernel: {e}");
                return None;
            }
        };
        let endpoints: BTreeSet<&ObjectName> = counters.iter().map(|c| &c.endpoint).collect();
        tracing::info!(
            "a netpol table is in the kernel already, policing {} local endpoints",
            endpoints.len()
        );
        Some(Counts {
            local_endpoints: endpoints.len(),
            ..Counts::default()
        })
    }

    fn hold(
        &mut self,
        trigger: Trigger,
        reason: String,
        hashes: InputHashes,
        compile: Duration,
    ) -> ReloadReport {
        self.retry = false;
        self.held = Some(Held {
            at: rfc3339(SystemTime::now()),
            trigger,
            reason: reason.clone(),
            hashes,
        });
        let counts = self.current.as_ref().map(|c| c.counts);
        self.record(ReloadReport {
            outcome: Outcome::Held,
            trigger,
            generation: self.generation,
            before: counts,
            after: counts,
            locals_added: vec![],
            locals_removed: vec![],
            stage: None,
            error: Some(reason),
            compile_ms: ms(compile),
            apply_ms: 0.0,
            kernel: None,
            revoked: None,
            connectivity: None,
        })
    }

    fn unchanged(&self, trigger: Trigger) -> ReloadReport {
        let counts = self.current.as_ref().map(|c| c.counts);
        ReloadReport {
            outcome: Outcome::Unchanged,
            trigger,
            generation: self.generation,
            before: counts,
            after: counts,
            locals_added: vec![],
            locals_removed: vec![],
            stage: None,
            error: None,
            compile_ms: 0.0,
            apply_ms: 0.0,
            kernel: None,
            revoked: None,
            connectivity: None,
        }
    }

    fn fail(
        &mut self,
        trigger: Trigger,
        stage: Stage,
        message: String,
        started: Instant,
        apply: Option<Duration>,
    ) -> ReloadReport {
        // Only the kernel's refusals may pass unchanged (the caller marks read errors).
        self.retry = stage == Stage::Kernel;
        self.last_error = Some(LastError {
            at: rfc3339(SystemTime::now()),
            trigger,
            stage,
            message: message.clone(),
        });
        let counts = self.current.as_ref().map(|c| c.counts);
        let compile = started.elapsed() - apply.unwrap_or_default();
        self.record(ReloadReport {
            outcome: Outcome::Failed,
            trigger,
            generation: self.generation,
            before: counts,
            after: counts,
            locals_added: vec![],
            locals_removed: vec![],
            stage: Some(stage),
            error: Some(message),
            compile_ms: ms(compile),
            apply_ms: apply.map(ms).unwrap_or(0.0),
            kernel: None,
            revoked: None,
            connectivity: None,
        })
    }

    /// Logs, counts and emits an outcome: the one place all three happen.
    fn record(&mut self, report: ReloadReport) -> ReloadReport {
        let c = &mut self.counters;
        if report.outcome == Outcome::Applied {
            c.last_success = Some(SystemTime::now());
        }
        telemetry::reload(&report, c.last_success, self.held.is_some());
        match report.outcome {
            Outcome::Applied => {
                c.reloads.applied += 1;
                let a = report.after.unwrap_or_default();
                tracing::info!(
                    trigger = ?report.trigger,
                    generation = report.generation,
                    policies = a.policies,
                    endpoints = a.endpoints,
                    local_endpoints = a.local_endpoints,
                    rules = a.rules,
                    elements = a.elements,
                    compile_ms = report.compile_ms,
                    apply_ms = report.apply_ms,
                    kernel = %report.kernel.map(|k| k.to_string()).unwrap_or_default(),
                    added = ?report.locals_added,
                    removed = ?report.locals_removed,
                    "applied generation {}",
                    report.generation
                );
                if let Some(c) = &report.connectivity {
                    tracing::info!(
                        generation = report.generation,
                        flows_allowed = c.allowed,
                        flows_denied = c.denied,
                        "connectivity: {c}"
                    );
                }
            }
            Outcome::Held => {
                c.reloads.held += 1;
                tracing::warn!(
                    trigger = ?report.trigger,
                    generation = report.generation,
                    "reload held, nothing applied; generation {} stays in force: the inputs \
                     {}. If that is intended, `netpolctl reload --force` applies them.",
                    report.generation,
                    report.error.as_deref().unwrap_or("")
                );
            }
            Outcome::Unchanged => {
                c.reloads.unchanged += 1;
                tracing::debug!(trigger = ?report.trigger, generation = report.generation, "inputs unchanged; nothing applied");
            }
            Outcome::Failed => {
                c.reloads.failed += 1;
                match report.stage {
                    Some(Stage::Load) => c.failed_load += 1,
                    Some(Stage::Locals) => c.failed_locals += 1,
                    Some(Stage::Kernel) => c.failed_kernel += 1,
                    None => {}
                }
                let kept = match report.generation {
                    0 => "nothing was applied".to_string(),
                    g => format!("generation {g} stays in force"),
                };
                tracing::error!(
                    trigger = ?report.trigger,
                    stage = ?report.stage,
                    generation = report.generation,
                    "reload failed; {kept}:\n{}",
                    report.error.as_deref().unwrap_or("")
                );
            }
        }
        report
    }
}

/// Whether a reload holds back inputs that look broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    /// Hold inputs that [`suspicious`] flags.
    HoldSuspicious,
    /// Apply whatever loads.
    Force,
}

/// Why replacing what `before` counted by what `after` counts looks like a broken input
/// (a truncated inventory, a half-copied policy directory) rather than an edit: it would
/// take away every local endpoint, or more than half of the policies. Both open the host
/// where the policies in force close it. Inventory changes that only remove peers close
/// it further and are not held.
pub fn suspicious(before: &Counts, after: &Counts) -> Option<String> {
    if before.local_endpoints > 0 && after.local_endpoints == 0 {
        return Some(format!(
            "would take away every local endpoint ({} -> 0): no traffic of this host \
             would be policed",
            before.local_endpoints
        ));
    }
    if after.policies * 2 < before.policies {
        return Some(format!(
            "would remove most of the policies ({} -> {})",
            before.policies, after.policies
        ));
    }
    None
}

/// Milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The policy and inventory files, or every error reading them.
fn read_files(options: &Options) -> Result<(Vec<Input>, Vec<Input>), Rejected> {
    let policies = load::read_paths(&options.policies, &options.load);
    let inventory = load::read_paths(&options.inventory, &options.load);
    match (policies, inventory) {
        (Ok(policies), Ok(inventory)) => Ok((policies, inventory)),
        (p, i) => {
            let mut all = Vec::new();
            for r in [p.err(), i.err()].into_iter().flatten() {
                all.extend(r.0);
            }
            Err(Rejected(all))
        }
    }
}

impl InputHashes {
    /// The hashes of these policy and inventory files.
    pub(crate) fn of(policies: &[Input], inventory: &[Input]) -> InputHashes {
        InputHashes {
            policies: hash(policies),
            inventory: hash(inventory),
        }
    }
}

/// SHA-256 over each input's path and bytes, length-prefixed so that no two different
/// lists of files hash the same.
fn hash(inputs: &[Input]) -> String {
    let mut h = Sha256::new();
    for i in inputs {
        let path = i.path.as_os_str().as_encoded_bytes();
        h.update((path.len() as u64).to_le_bytes());
        h.update(path);
        h.update((i.text.len() as u64).to_le_bytes());
        h.update(i.text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
