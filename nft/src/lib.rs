//! The kernel backend: a [`Plan`] into nftables over netlink, and the loaded table
//! read back.
//!
//! Everything above this module talks to the kernel through [`Backend`]: [`Netlink`]
//! is the real one (a `NETLINK_NETFILTER` socket in the current network namespace),
//! [`fake::FakeBackend`] an in-memory one for tests of the code above. Inside,
//! `encode` turns the plan into nf_tables objects as plain data (pure, the same
//! shapes `nft` produces for `render::nft`'s text), `ffi` is the one place with unsafe
//! code (libnftnl builders and parsers, the socket), and `reply` reads netlink
//! framing.
//!
//! Conntrack entries are read and cut here too (`flows`: ctnetlink and `SOCK_DESTROY`),
//! for revoking established connections a new ruleset no longer allows.
//!
//! An apply is one batch — add table, delete table, add table and everything in it —
//! sent in one datagram: the kernel commits all of it or none of it, so the host never
//! runs without its rules or with half of them, and conntrack entries are untouched.
//! But while the kernel commits a set its own transaction filled, packets meet the
//! set incomplete (a new connection allowed by both plans is dropped: the test
//! `a_replace_drops_no_packet_that_both_plans_allow` saw one datagram in nine
//! dropped that way). So when the backend knows exactly what it loaded last (nothing
//! changed the ruleset since) and the base chains stay, a replace is two transactions:
//! the new plan's sets, maps and endpoint chains under the other [`Slot`]'s names,
//! filled, that nothing uses yet; then the base chains' rules swapped to them and the
//! old objects deleted. Either is all or nothing, and between them the old table is
//! whole and in force; if either fails, the one-batch replace follows (and deletes what
//! the first left).
//! An update is one batch too: element deletions, then additions, of sets and maps
//! that exist, guarded by the ruleset generation this backend saw after its last
//! change (`NFNL_BATCH_GENID`), so that it is refused if anyone else changed the
//! ruleset meanwhile; its elements are encoded exactly as a full load encodes them.
//! When the kernel refuses the batch, the error names the object of the failing
//! message (down to the set element, from the extended ack's attribute offset).
//!
//! netpold's backend ([`Netlink::owner`]) makes the table owned by its one kept socket
//! and persistent, takes over a table an earlier netpold left ([`Backend::claim`]), and
//! sends every transaction guarded by the generation it read just before, so that it
//! knows exactly which generations it made; `monitor` reads the kernel's change
//! notifications, so that the daemon can tell anyone else's change to the table.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod encode;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
mod ffi;
mod flows;
pub mod heap;
pub mod monitor;
mod objects;
mod readback;
mod reply;
mod slot;
#[cfg(any(test, feature = "test-support"))]
pub mod testns;
mod update;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use rules_compiler::model::{Direction, ObjectName};
use rules_compiler::plan::{Plan, COMMENT_CUT_MARK, TABLE_NAME};
use serde::Serialize;

use encode::{k, Batch, Loaded, Msg};
pub use flows::{CutStats, Flow, FlowCut, LocalSide, LocalSocket, Tuple, L4};
pub use monitor::{Commit, Monitor, News, Quiet, TableInfo};
pub use objects::EncodeError;
pub use readback::GenerationReader;
pub use slot::Slot;
pub use update::Update;

/// Waiting for the kernel's answer to a batch: it processes the batch inside `sendto`,
/// so every answer is queued before the call returns; this only bounds the wait for
/// the acknowledgement of the batch end, which kernels before 6.10 never send.
const END_ACK_WAIT: Duration = Duration::from_millis(200);

/// The kernel, as the rest of netpol sees it.
pub trait Backend {
    /// Replaces the plan's table with the plan: all of it or, on error, nothing (one
    /// transaction, or two whose first changes nothing in force; see the module doc).
    fn apply(&mut self, plan: &Plan) -> Result<ApplyStats, KernelError>;
    /// Changes the elements of the loaded table's sets and maps, in one transaction:
    /// deletions, then additions. Only valid on top of what this backend loaded itself;
    /// when the ruleset changed since (or it loaded nothing), the kernel is left alone
    /// and the answer is [`KernelError::Stale`]. An empty delta is that check alone.
    fn update(&mut self, delta: &Update) -> Result<ApplyStats, KernelError>;
    /// Deletes the netpol table and nothing else; `Ok(false)` when there was none.
    fn flush(&mut self) -> Result<bool, KernelError>;
    /// Reads the loaded netpol table back; `Ok(None)` when there is none.
    fn read(&mut self) -> Result<Option<LoadedTable>, KernelError>;
    /// Reads the deny counters of the loaded table; `Ok(None)` when there is none.
    /// A backend may do this more cheaply than a whole [`read`](Backend::read).
    fn read_denies(&mut self) -> Result<Option<Vec<DenyCounter>>, KernelError> {
        Ok(self.read()?.map(|t| t.denies()))
    }
    /// Every conntrack entry of this network namespace (IPv4 and IPv6, every zone).
    fn flows(&mut self) -> Result<Vec<Flow>, KernelError>;
    /// Ends these flows: destroys each TCP flow's local socket (its peer gets a reset),
    /// then deletes each conntrack entry by its exact tuple, zone and id. An entry or
    /// socket that is gone already is counted, not an error.
    fn cut(&mut self, cuts: &[FlowCut]) -> Result<CutStats, KernelError>;
    /// The table's flags, owner and comment; `Ok(None)` when there is none.
    fn table_info(&mut self) -> Result<Option<TableInfo>, KernelError> {
        Ok(None)
    }
    /// Makes a table left in the kernel this backend's own, where it keeps its table
    /// owned (see [`Claim`]). Called at start-up, before the first apply.
    fn claim(&mut self) -> Result<Claim, KernelError> {
        Ok(Claim::Off)
    }
    /// How the kernel holds the table this backend makes.
    fn ownership(&self) -> Ownership {
        Ownership::Off
    }
    /// Whether this backend committed the transaction that made ruleset `generation`
    /// (of its recent ones).
    fn committed(&self, generation: u32) -> bool {
        let _ = generation;
        false
    }
    /// Takes `generation` as the base of the next update: a transaction of someone
    /// else's that did not touch the table, seen whole, right after this backend's last.
    fn follow(&mut self, generation: u32) {
        let _ = generation;
    }
    /// Silences `quiet`'s monitor while this backend commits (see [`Quiet`]).
    fn quiet_during_commits(&mut self, quiet: Quiet) {
        let _ = quiet;
    }
    /// Whether someone else may have committed while the monitor was silenced, unseen
    /// (cleared by asking): the caller then checks the generation as after lost news.
    fn missed(&mut self) -> bool {
        false
    }
}

/// Whether the kernel keeps netpol's table for one process alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ownership {
    /// Made with `NFT_TABLE_F_OWNER` and `NFT_TABLE_F_PERSIST`: only this process's
    /// netlink socket may change or delete it, `nft flush ruleset` passes it by, and it
    /// stays in force after the process ends, for the next netpold to take over.
    Owned,
    /// Not asked for (`netpolctl`, or `own-table: false`).
    Off,
    /// Asked for, but this kernel refused the flags (before Linux 6.9): the table is
    /// anyone's to change, and drift repair is all there is.
    Unsupported,
}

impl std::fmt::Display for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ownership::Owned => "owned by this netpold (NFT_TABLE_F_OWNER|NFT_TABLE_F_PERSIST)",
            Ownership::Off => "not owned (own-table: false)",
            Ownership::Unsupported => "not owned (this kernel has no NFT_TABLE_F_PERSIST)",
        })
    }
}

/// What [`Backend::claim`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This backend does not own its table.
    Off,
    /// There is no table; the first apply makes one, owned.
    NoTable,
    /// A table left by a netpold that ended (persistent, without an owner): this
    /// process owns it now, and it stayed in force throughout.
    TakenOver,
    /// A table made without ownership (by `nft`, `netpolctl apply`, an older netpold):
    /// the first apply replaces it by an owned one. `netpols`: it carries netpol's
    /// comment.
    Unowned {
        /// Whether it carries netpol's comment.
        netpols: bool,
    },
    /// Owned by another live process's socket (its netlink port id).
    OwnedBy(u32),
}

/// What an apply sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApplyStats {
    /// Netlink messages in the batch, begin and end markers excluded.
    pub messages: usize,
    /// Bytes of the batch.
    pub bytes: usize,
    /// Rules loaded (a `reject` deny is three rules).
    pub rules: usize,
    /// Set and map elements of the plan.
    pub elements: usize,
    /// Time to encode and serialize the batch.
    pub encode: Duration,
    /// Time from sending the batch to the kernel's answer.
    pub kernel: Duration,
}

/// Why talking to the kernel failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The plan has something no kernel would take (an over-long name, a rule that
    /// uses an undefined set, overlapping intervals); nothing was sent.
    #[error("the plan cannot be loaded: {0}; nothing was changed")]
    Encode(#[from] EncodeError),
    /// The kernel refused the batch and applied none of it.
    #[error("the kernel rejected the batch at {object}: {err}{}; nothing was changed", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        /// The object of the failing message, e.g. `set in_x_v4 (element 3: 198.18.0.1)`.
        object: String,
        /// The kernel's errno.
        err: io::Error,
        /// The kernel's extended-ack text, when it gave one.
        detail: Option<String>,
    },
    /// The socket failed: opening, sending, receiving.
    #[error("netlink {op} failed: {err}")]
    Io {
        /// What was being done.
        op: String,
        /// The error.
        err: io::Error,
    },
    /// The kernel answered something this code does not understand.
    #[error("unexpected answer from the kernel: {0}")]
    Protocol(String),
    /// An update was refused because the ruleset is not the one this backend last
    /// loaded (someone else changed it, or nothing was loaded); nothing was changed.
    #[error("the ruleset is not the one last loaded ({0}); nothing was changed")]
    Stale(String),
    /// The table is owned by another netlink socket; only that one may change or delete
    /// it.
    #[error(
        "table inet netpol is owned by {}: only it may change or delete the table (a \
         netpold owns its table; `netpolctl reload` asks it to apply the files); nothing \
         was changed",
        owner.as_deref().map(str::to_string).unwrap_or_else(|| format!("the netlink socket with port id {port}"))
    )]
    NotOurs {
        /// The owner's netlink port id.
        port: u32,
        /// The process holding it (`netpold (pid 123)`), when it could be found.
        owner: Option<String>,
    },
}

impl KernelError {
    /// The errno of a rejected batch or a failed socket call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            KernelError::Rejected { err, .. } | KernelError::Io { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }

    fn io(op: impl Into<String>) -> impl FnOnce(io::Error) -> KernelError {
        let op = op.into();
        move |err| KernelError::Io { op, err }
    }
}

/// The netpol table as the kernel holds it, objects named as the plan names them (the
/// [`Slot`] prefix of a two-transaction replace dropped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadedTable {
    /// Table name (family `inet`).
    pub name: String,
    /// Chains in the kernel's order.
    pub chains: Vec<LoadedChain>,
    /// Named sets and maps in the kernel's order (anonymous sets belong to their rule).
    pub sets: Vec<LoadedSet>,
}

/// A chain read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadedChain {
    /// Chain name.
    pub name: String,
    /// `input`, `output`, or `hook N`, for base chains.
    pub hook: Option<String>,
    /// Number of rules.
    pub rules: usize,
    /// Every rule with a counter, in order: the deny rules.
    pub counters: Vec<RuleCounter>,
}

/// A rule's counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleCounter {
    /// The rule's comment (`deny ingress ns/name`).
    pub comment: Option<String>,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

/// A named set or map read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadedSet {
    /// Set name.
    pub name: String,
    /// A (verdict) map rather than a set.
    pub map: bool,
    /// Elements, an interval counted once (as the plan counts them).
    pub elements: usize,
}

/// The deny counter of one local endpoint and direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DenyCounter {
    /// The endpoint.
    pub endpoint: ObjectName,
    /// The direction.
    pub direction: Direction,
    /// Its chain.
    pub chain: String,
    /// Packets denied.
    pub packets: u64,
    /// Bytes denied.
    pub bytes: u64,
}

impl DenyCounter {
    /// Whether the endpoint was read from a deny comment that nft's 128-byte limit cut:
    /// its name is then a prefix ending in `...` (never in a Kubernetes name), possibly
    /// shared with another endpoint (`chain` tells them apart). Never so after
    /// [`ChainOwners::label`] for the chains it knows.
    pub fn is_cut(&self) -> bool {
        self.endpoint.name.ends_with(COMMENT_CUT_MARK)
    }
}

/// Which endpoint and direction each endpoint chain of a plan polices: the identity of
/// a deny counter, which its comment (cut for long names) cannot be.
#[derive(Clone, Debug, Default)]
pub struct ChainOwners(HashMap<String, (ObjectName, Direction)>);

impl ChainOwners {
    /// The owners of `plan`'s chains.
    pub fn of(plan: &Plan) -> ChainOwners {
        let mut owners = HashMap::new();
        for local in &plan.locals {
            for dir in [Direction::Ingress, Direction::Egress] {
                if let Some(chain) = local.chain(dir) {
                    owners.insert(chain.to_string(), (local.id.clone(), dir));
                }
            }
        }
        ChainOwners(owners)
    }

    /// Labels each counter by its chain's owner. A counter of a chain this plan does not
    /// have (a table someone else loaded) keeps what its comment says, unless the
    /// comment was cut: that one is left out, since its label could be another
    /// endpoint's or shared by two.
    pub fn label(&self, counters: Vec<DenyCounter>) -> Vec<DenyCounter> {
        counters
            .into_iter()
            .filter_map(|mut c| match self.0.get(&c.chain) {
                Some((endpoint, direction)) => {
                    c.endpoint = endpoint.clone();
                    c.direction = *direction;
                    Some(c)
                }
                None => (!c.is_cut()).then_some(c),
            })
            .collect()
    }
}

fn hook_name(hooknum: u32) -> String {
    match hooknum {
        encode::k::NF_INET_LOCAL_IN => "input".into(),
        encode::k::NF_INET_LOCAL_OUT => "output".into(),
        n => format!("hook {n}"),
    }
}

impl LoadedTable {
    /// What reading the table back right after applying `plan` gives (counters at 0):
    /// the plan as the kernel holds it.
    pub fn expected(plan: &Plan) -> Result<LoadedTable, EncodeError> {
        let batch = encode::encode(plan)?;
        let mut chains: Vec<LoadedChain> = Vec::new();
        for m in &batch.msgs {
            match &m.msg {
                Msg::NewChain(c) => chains.push(LoadedChain {
                    name: c.name.clone(),
                    hook: c.hook.map(|h| hook_name(h.hooknum)),
                    rules: 0,
                    counters: Vec::new(),
                }),
                Msg::NewRule(r) => {
                    if let Some(c) = chains.iter_mut().find(|c| c.name == r.chain) {
                        c.rules += 1;
                        if r.exprs.contains(&encode::Expr::Counter) {
                            c.counters.push(RuleCounter {
                                comment: r.comment.clone(),
                                packets: 0,
                                bytes: 0,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        let sets = plan
            .sets
            .iter()
            .map(|s| LoadedSet {
                name: s.name.clone(),
                map: false,
                elements: s.elements.len(),
            })
            .chain(plan.maps.iter().map(|m| LoadedSet {
                name: m.name.clone(),
                map: true,
                elements: m.elements.len(),
            }))
            .collect();
        Ok(LoadedTable {
            name: plan.table.clone(),
            chains,
            sets,
        })
    }

    /// Total rules.
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules).sum()
    }

    /// Total elements of named sets and maps.
    pub fn element_count(&self) -> usize {
        self.sets.iter().map(|s| s.elements).sum()
    }

    /// The deny counters, from the comments netpol gives them
    /// (`deny <direction> <namespace>/<name>`, cut ones ending in `...`: see
    /// [`DenyCounter::is_cut`]); counters with other comments are left out. Without the plan
    /// this is all the table says; with it, [`ChainOwners::label`] gives exact names.
    pub fn denies(&self) -> Vec<DenyCounter> {
        let mut out = Vec::new();
        for chain in &self.chains {
            for c in &chain.counters {
                let Some(comment) = &c.comment else { continue };
                let mut words = comment.split(' ');
                let (Some("deny"), Some(dir), Some(who), None) =
                    (words.next(), words.next(), words.next(), words.next())
                else {
                    continue;
                };
                let direction = match dir {
                    "ingress" => Direction::Ingress,
                    "egress" => Direction::Egress,
                    _ => continue,
                };
                let Some(endpoint) = ObjectName::parse(who) else {
                    continue;
                };
                out.push(DenyCounter {
                    endpoint,
                    direction,
                    chain: chain.name.clone(),
                    packets: c.packets,
                    bytes: c.bytes,
                });
            }
        }
        out
    }
}

/// The real kernel: nftables of the current network namespace, over netlink.
pub struct Netlink {
    table: String,
    /// The ruleset generation right after this backend's last successful change; an
    /// update is sent only on top of it.
    generation: Option<u32>,
    /// A socket kept for reading the generation after each change.
    reader: Option<GenerationReader>,
    /// The socket batches go over, kept between them: closing a netfilter socket waits
    /// until the kernel has freed what the last transaction deleted (an RCU grace
    /// period, milliseconds), which would add to every update that deletes elements.
    /// Dropped after any error, so nothing stale of a failed batch is read later.
    sock: Option<ffi::Socket>,
    /// The first sequence number of the next batch: unique on the kept socket, so an
    /// answer is never taken for another batch's.
    next_seq: u32,
    /// Whether the table is to be owned by `sock` (netpold), and how the kernel took it.
    own: bool,
    ownership: Ownership,
    /// The generations of this backend's recent commits, newest last.
    commits: VecDeque<u32>,
    /// The drift watch's monitor, silenced during this backend's commits.
    quiet: Option<Quiet>,
    /// Someone else may have committed unseen while it was silenced.
    missed: bool,
    /// What this backend's last apply loaded, and under which names: what a
    /// two-transaction replace deletes, while `generation` says nothing changed since.
    loaded: Option<Loaded>,
}

/// How many recent commits [`Backend::committed`] remembers.
const COMMITS_KEPT: usize = 64;
/// Batches sent again when someone else commits between reading the generation and
/// sending (each attempt is microseconds apart).
const GENERATION_RACES: usize = 5;

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("table", &self.table)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Default for Netlink {
    fn default() -> Self {
        Netlink::new()
    }
}

impl Netlink {
    /// The backend for the `inet netpol` table, which it makes without ownership
    /// (`netpolctl`).
    pub fn new() -> Netlink {
        Netlink {
            table: TABLE_NAME.to_string(),
            generation: None,
            reader: None,
            sock: None,
            next_seq: 1,
            own: false,
            ownership: Ownership::Off,
            commits: VecDeque::new(),
            quiet: None,
            missed: false,
            loaded: None,
        }
    }

    /// The backend for netpold: it makes the table owned by its one netlink socket and
    /// persistent where the kernel can ([`Ownership::Owned`]), and keeps that socket for
    /// as long as it lives.
    pub fn owner() -> Netlink {
        Netlink {
            own: true,
            ownership: Ownership::Owned,
            ..Netlink::new()
        }
    }

    /// The ruleset generation now, if it can be read.
    fn current_generation(&mut self) -> Option<u32> {
        if self.reader.is_none() {
            self.reader = GenerationReader::open().ok();
        }
        match self.reader.as_mut().map(GenerationReader::read) {
            Some(Ok(g)) => Some(g),
            Some(Err(e)) => {
                tracing::debug!("reading the ruleset generation: {e}");
                self.reader = None;
                None
            }
            None => None,
        }
    }

    fn remember_commit(&mut self, generation: u32) {
        if self.commits.len() == COMMITS_KEPT {
            self.commits.pop_front();
        }
        self.commits.push_back(generation);
    }

    /// Sends `batch` on top of the generation in force now, read just before; sends it
    /// again when someone else commits in between. The generation it made is then
    /// known exactly (one more), without a window for someone else's change to pass
    /// for ours. Returns the kernel's time and that generation.
    fn commit_fresh(
        &mut self,
        batch: &Batch,
        table: &str,
        describe: &dyn Fn(encode::ElemSource, u32) -> Option<String>,
    ) -> Result<(Duration, usize, Option<u32>), KernelError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let genid = self.current_generation();
            let first = self.seqs(batch.msgs.len());
            let wire = ffi::serialize(&batch.msgs, table, first, genid)?;
            let (result, quiet) = self.transact_quietly(&wire, batch, describe);
            let made = result.is_ok().then(|| genid.map(next_generation)).flatten();
            if quiet {
                // Someone else's commit between this one and the monitor's return went
                // unseen; one before it made this batch fail, or was replaced by it.
                let expected = if result.is_ok() { made } else { genid };
                if expected.is_none() || self.current_generation() != expected {
                    self.missed = true;
                }
            }
            match result {
                Ok(kernel) => {
                    if let Some(g) = made {
                        self.remember_commit(g);
                    }
                    return Ok((kernel, wire.bytes.len(), made));
                }
                Err(e) if e.errno() == Some(libc::ERESTART) && attempt < GENERATION_RACES => {}
                Err(e) => return Err(self.explain(e)),
            }
        }
    }

    /// Sends `batch` on top of generation `genid` (the kernel refuses it with `ERESTART`
    /// if the ruleset is no longer at it). Returns the kernel's time, the batch's size and
    /// the generation after it (`genid` itself for an empty batch: the kernel commits
    /// and counts nothing).
    fn commit_on(
        &mut self,
        batch: &Batch,
        table: &str,
        genid: u32,
        describe: &dyn Fn(encode::ElemSource, u32) -> Option<String>,
    ) -> Result<(Duration, usize, u32), KernelError> {
        let first = self.seqs(batch.msgs.len());
        let wire = ffi::serialize(&batch.msgs, table, first, Some(genid))?;
        let (result, quiet) = self.transact_quietly(&wire, batch, describe);
        let made = if batch.msgs.is_empty() {
            genid
        } else {
            next_generation(genid)
        };
        if result.is_ok() && !batch.msgs.is_empty() {
            self.remember_commit(made);
        }
        if quiet {
            // As in `commit_fresh`; a refused batch is followed by a replace.
            if result.is_err() || self.current_generation() != Some(made) {
                self.missed = true;
            }
        }
        result.map(|kernel| (kernel, wire.bytes.len(), made))
    }

    /// Replaces the plan this backend loaded by `plan` in two transactions (see
    /// [`encode::encode_stage`]), when nothing changed the ruleset since that load and
    /// `plan` keeps its base chains. `None` when it does not apply or either transaction
    /// fails: the caller then replaces the whole table in one, which also deletes what a
    /// first transaction left behind.
    fn replace_in_two(&mut self, plan: &Plan) -> Option<ApplyStats> {
        let genid = self.generation?;
        let old = self
            .loaded
            .take()
            .filter(|l| plan.table == self.table && l.swappable(plan))?;
        let started = Instant::now();
        let slot = old.slot.other();
        let batches = encode::encode_stage(plan, slot)
            .and_then(|stage| Ok((stage, encode::encode_swap(plan, slot, &old)?)));
        let (stage, swap) = match batches {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!("encoding a two-transaction replace: {e}");
                return None;
            }
        };
        let encode = started.elapsed();
        let describe = |source, origin| encode::describe_element(plan, source, origin);
        let mut kernel = Duration::ZERO;
        let mut bytes = 0;
        let mut generation = genid;
        for (batch, what) in [
            (&stage, "loading the new sets, maps and chains"),
            (&swap, "swapping the base chains to them"),
        ] {
            match self.commit_on(batch, &plan.table, generation, &describe) {
                Ok((k, b, g)) => {
                    kernel += k;
                    bytes += b;
                    generation = g;
                }
                // A refused first transaction is the plan's or the generation's (the
                // one-transaction replace then says which); a refused second one should
                // not happen, and the replace that follows has the commit-time drops.
                Err(e) if std::ptr::eq(batch, &stage) => {
                    tracing::debug!("{what}: {e}; replacing the table in one transaction instead");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(
                        "{what}: {e}; replacing the table in one transaction instead (new \
                         connections may meet a deny while the kernel commits it)"
                    );
                    return None;
                }
            }
        }
        self.generation = Some(generation);
        self.loaded = Some(Loaded::of(plan, slot));
        Some(ApplyStats {
            messages: stage.msgs.len() + swap.msgs.len(),
            bytes,
            rules: stage.rules + swap.rules,
            elements: stage.elements,
            encode,
            kernel,
        })
    }

    /// [`transact`](Self::transact) with the drift watch silenced, when there is one and
    /// the batch commits anything; says whether it was.
    fn transact_quietly(
        &mut self,
        wire: &ffi::Wire,
        batch: &Batch,
        describe: &dyn Fn(encode::ElemSource, u32) -> Option<String>,
    ) -> (Result<Duration, KernelError>, bool) {
        let paused = match &self.quiet {
            Some(q) if !batch.msgs.is_empty() => match q.pause() {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!("silencing the drift watch: {e}");
                    false
                }
            },
            _ => false,
        };
        let result = self.transact(wire, batch, describe);
        if paused {
            if let Some(Err(e)) = self.quiet.as_ref().map(Quiet::resume) {
                tracing::error!(
                    "the drift watch stays deaf: joining nftables notifications again: {e}"
                );
                self.quiet = None;
                self.missed = true;
            }
        }
        (result, paused)
    }

    /// A refusal for want of permission on an owned table, said so.
    fn explain(&mut self, e: KernelError) -> KernelError {
        if let KernelError::Rejected { object, err, .. } = &e {
            if err.raw_os_error() == Some(libc::EPERM) && object.contains("table inet") {
                if let Ok(Some(t)) = readback::table_info(&self.table) {
                    let ours = self.sock.as_ref().map(ffi::Socket::portid);
                    if let Some(port) = t.owner.filter(|o| t.owned() && Some(*o) != ours) {
                        let owner = monitor::process_of_port(port);
                        return KernelError::NotOurs { port, owner };
                    }
                }
            }
        }
        e
    }

    /// Sequence numbers for a batch of `msgs` messages (plus begin and end).
    fn seqs(&mut self, msgs: usize) -> u32 {
        let n = u32::try_from(msgs + 2).unwrap_or(u32::MAX);
        if self.next_seq.checked_add(n).is_none() {
            self.next_seq = 1;
        }
        let first = self.next_seq;
        self.next_seq += n;
        first
    }

    /// Sends a batch and waits for its outcome. `describe` names failing elements.
    fn transact(
        &mut self,
        wire: &ffi::Wire,
        batch: &Batch,
        describe: &dyn Fn(encode::ElemSource, u32) -> Option<String>,
    ) -> Result<Duration, KernelError> {
        let sock = match self.sock.take() {
            Some(s) => s,
            None => ffi::Socket::open().map_err(KernelError::io("socket"))?,
        };
        let result = Self::exchange(&sock, wire, batch, describe);
        match &result {
            // The kernel answered: the socket is sound. Kept, since with ownership it is
            // the only one that may change the table; what the failed batch still had
            // queued is read away first, so nothing stale is read later.
            Ok(_) | Err(KernelError::Rejected { .. }) => {
                if result.is_err() {
                    sock.drain(&mut ffi::Aligned::new(64 * 1024));
                }
                self.sock = Some(sock);
            }
            // A socket that failed is closed; an owned table stays in force, without an
            // owner, until the next replace makes a new one (the generation is
            // forgotten, so the next change is a replace).
            Err(_) => self.generation = None,
        }
        result
    }

    fn exchange(
        sock: &ffi::Socket,
        wire: &ffi::Wire,
        batch: &Batch,
        describe: &dyn Fn(encode::ElemSource, u32) -> Option<String>,
    ) -> Result<Duration, KernelError> {
        sock.size_buffers(wire.bytes.len(), batch.msgs.len() + 2)
            .map_err(KernelError::io("setting socket buffers"))?;
        let started = Instant::now();
        sock.send(&wire.bytes)
            .map_err(KernelError::io("sending the batch"))?;
        let mut buf = ffi::Aligned::new(64 * 1024);
        let mut waited = false;
        loop {
            let wait = waited.then_some(END_ACK_WAIT);
            let n = match sock
                .recv(&mut buf, wait)
                .map_err(KernelError::io("reading the kernel's answer"))?
            {
                Some(n) => n,
                None if waited => break,
                None => {
                    waited = true;
                    continue;
                }
            };
            for (h, msg) in reply::messages(buf.bytes(n)) {
                if h.kind != reply::NLMSG_ERROR {
                    continue;
                }
                let ack = reply::parse_ack(msg)
                    .ok_or_else(|| KernelError::Protocol("a truncated acknowledgement".into()))?;
                if ack.seq < wire.begin_seq || ack.seq > wire.end_seq {
                    // Not this batch's (the socket is kept between batches).
                    continue;
                }
                if ack.errno != 0 {
                    return Err(rejected(&ack, wire, batch, describe));
                }
                if ack.seq == wire.end_seq {
                    return Ok(started.elapsed());
                }
            }
        }
        // Nothing went wrong: the batch was committed (a kernel that acknowledges the
        // end of a batch has done so above).
        Ok(started.elapsed())
    }
}

/// The error for a refused message, naming its object and, for set elements, the
/// element the kernel pointed at.
fn rejected(
    ack: &reply::Ack,
    wire: &ffi::Wire,
    batch: &Batch,
    describe: &dyn Fn(encode::ElemSource, u32) -> Option<String>,
) -> KernelError {
    let object = if ack.seq == wire.begin_seq || ack.seq == wire.end_seq {
        if ack.errno == libc::EPERM {
            "the batch itself (changing nftables needs root: CAP_NET_ADMIN)".to_string()
        } else {
            "the batch itself".to_string()
        }
    } else if let Some(i) = wire.index_of(ack.seq) {
        let m = &batch.msgs[i];
        let mut object = m.what.clone();
        if let (Msg::NewElems(e) | Msg::DelElems(e), Some(offset)) = (&m.msg, ack.offset) {
            let (start, len) = wire.spans[i];
            if let Some(j) = reply::elem_index_at(&wire.bytes[start..start + len], offset as usize)
            {
                let origin = e.elems[j].origin;
                let value = describe(e.source, origin)
                    .map(|v| format!(": {v}"))
                    .unwrap_or_default();
                object = format!("{} (element {origin}{value})", e.owner);
            }
        }
        object
    } else {
        format!("an unknown message (sequence number {})", ack.seq)
    };
    KernelError::Rejected {
        object,
        err: io::Error::from_raw_os_error(ack.errno),
        detail: ack.text.clone().filter(|t| !t.is_empty()),
    }
}

/// The generation after `g`: the kernel counts up and never to 0.
fn next_generation(g: u32) -> u32 {
    g.wrapping_add(1).max(1)
}

impl Backend for Netlink {
    fn apply(&mut self, plan: &Plan) -> Result<ApplyStats, KernelError> {
        if let Some(stats) = self.replace_in_two(plan) {
            return Ok(stats);
        }
        let started = Instant::now();
        let mut batch = encode::encode(plan)?;
        let describe = |source, origin| encode::describe_element(plan, source, origin);
        let owned = self.own && self.ownership == Ownership::Owned;
        if owned {
            batch.table_flags(k::TABLE_OWNED);
        }
        let encode = started.elapsed();
        let mut result = self.commit_fresh(&batch, &plan.table, &describe);
        if owned {
            if let Err(e) = &result {
                // Unknown table flags: a kernel before NFT_TABLE_F_PERSIST. An owned
                // table without it would go with this process; none is safer.
                if matches!(e.errno(), Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)) {
                    tracing::warn!(
                        "this kernel refuses an owned, persistent table ({e}); netpol's table \
                         is made without ownership, and netpold repairs foreign changes instead"
                    );
                    self.ownership = Ownership::Unsupported;
                    batch.table_flags(0);
                    result = self.commit_fresh(&batch, &plan.table, &describe);
                }
            }
        }
        let (kernel, bytes, made) = match result {
            Ok(r) => r,
            Err(e) => {
                self.generation = None;
                return Err(e);
            }
        };
        self.loaded = Some(Loaded::of(plan, Slot::Plain));
        // Without the generation read before the batch, read after it: a change by
        // someone else in between (microseconds) would then go unnoticed by the next
        // update.
        self.generation = made.or_else(|| self.current_generation());
        Ok(ApplyStats {
            messages: batch.msgs.len(),
            bytes,
            rules: batch.rules,
            elements: batch.elements,
            encode,
            kernel,
        })
    }

    fn update(&mut self, delta: &Update) -> Result<ApplyStats, KernelError> {
        let started = Instant::now();
        let (Some(genid), Some(loaded)) = (self.generation, &self.loaded) else {
            return Err(KernelError::Stale(
                "nothing loaded by this process yet".into(),
            ));
        };
        let batch = encode::encode_update(delta, loaded.slot)?;
        let encode = started.elapsed();
        let describe = |source, origin| encode::describe_delta_element(delta, source, origin);
        // On top of generation `genid`: the new generation is then known without asking,
        // and without the window in which someone else's change could slip in unnoticed.
        let result = self.commit_on(&batch, &delta.table, genid, &describe);
        self.generation = result.as_ref().ok().map(|&(_, _, made)| made);
        let (kernel, bytes, _) = match result {
            Ok(r) => r,
            Err(e) if e.errno() == Some(libc::ERESTART) => {
                return Err(KernelError::Stale(format!(
                    "the ruleset generation is no longer {genid}"
                )))
            }
            Err(e) => return Err(self.explain(e)),
        };
        Ok(ApplyStats {
            messages: batch.msgs.len(),
            bytes,
            rules: 0,
            elements: batch.elements,
            encode,
            kernel,
        })
    }

    fn flush(&mut self) -> Result<bool, KernelError> {
        self.generation = None;
        self.loaded = None;
        let batch = encode::encode_delete(&self.table)?;
        let table = self.table.clone();
        match self.commit_fresh(&batch, &table, &|_, _| None) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn read(&mut self) -> Result<Option<LoadedTable>, KernelError> {
        readback::read(&self.table)
    }

    fn read_denies(&mut self) -> Result<Option<Vec<DenyCounter>>, KernelError> {
        Ok(readback::read_rules(&self.table)?.map(|t| t.denies()))
    }

    fn flows(&mut self) -> Result<Vec<Flow>, KernelError> {
        flows::dump()
    }

    fn cut(&mut self, cuts: &[FlowCut]) -> Result<CutStats, KernelError> {
        flows::cut(cuts)
    }

    fn table_info(&mut self) -> Result<Option<TableInfo>, KernelError> {
        readback::table_info(&self.table)
    }

    fn claim(&mut self) -> Result<Claim, KernelError> {
        if !self.own || self.ownership != Ownership::Owned {
            return Ok(Claim::Off);
        }
        let Some(info) = readback::table_info(&self.table)? else {
            return Ok(Claim::NoTable);
        };
        if info.owned() {
            return Ok(Claim::OwnedBy(info.owner.unwrap_or(0)));
        }
        if !info.orphaned() {
            return Ok(Claim::Unowned {
                netpols: info.is_netpols(),
            });
        }
        let batch = encode::encode_claim(&self.table, k::TABLE_OWNED)?;
        let table = self.table.clone();
        self.commit_fresh(&batch, &table, &|_, _| None)?;
        Ok(Claim::TakenOver)
    }

    fn ownership(&self) -> Ownership {
        self.ownership
    }

    fn committed(&self, generation: u32) -> bool {
        self.commits.contains(&generation)
    }

    fn follow(&mut self, generation: u32) {
        if self.generation.map(next_generation) == Some(generation) {
            self.generation = Some(generation);
        }
    }

    fn quiet_during_commits(&mut self, quiet: Quiet) {
        self.quiet = Some(quiet);
    }

    fn missed(&mut self) -> bool {
        std::mem::take(&mut self.missed)
    }
}

#[cfg(test)]
mod tests;
