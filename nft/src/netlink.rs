//! [`Netlink`], the real backend: nftables of the current network namespace, over one
//! kept netlink socket.
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
//!
//! `transact` sends batches and reads the kernel's answers. This module decides how a
//! plan is sent (one transaction or two, an update or a replace, with which
//! generation); it encodes nothing itself (`encode`) and holds no unsafe code (`ffi`).

mod transact;

use std::collections::VecDeque;
use std::time::Instant;

use rules_compiler::plan::{Plan, TABLE_NAME};

use crate::encode::{self, k, Loaded};
use crate::{
    ffi, flows, readback, ApplyStats, Backend, Claim, CutStats, DenyCounter, Flow, FlowCut,
    GenerationReader, KernelError, LoadedTable, Ownership, Quiet, Slot, TableInfo, Update,
};
use transact::next_generation;

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
        let mut result = self.commit_fresh(&batch, plan.table(), &describe);
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
                    result = self.commit_fresh(&batch, plan.table(), &describe);
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
        let result = self.commit_on(&batch, delta.table(), genid, &describe);
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
