//! # netpol-nft
//!
//! The nftables backend of netpol: how a compiled [`Plan`] becomes nf_tables objects
//! and reaches the kernel. It lowers the plan into tables, chains, named limits, sets,
//! elements and rules as plain data (the same shapes `nft` makes of `render::nft`'s text), turns
//! element deltas into element messages ([`Update`]: interval ends, the gap below the
//! first interval, what a change costs the kernel), writes the batch onto the wire
//! with libnftnl and sends it over a `NETLINK_NETFILTER` socket ([`Netlink`]), reads
//! the loaded table and its counters back, follows the kernel's change notifications
//! ([`Monitor`]) and reads and cuts conntrack flows. It decides *how*, never *what*:
//! which endpoints, peers and ports a plan allows is the compiler's, and when to
//! apply it the daemon's. Everything above talks to the kernel through [`Backend`].
//!
//! Modules: `objects` (the nf_tables object model), `encode` (plan → objects, pure),
//! `slot` (the names of a two-transaction replace), `update` (element deltas), `ffi`
//! (libnftnl builders and parsers, the socket: with [`heap`], the only unsafe code of
//! netpol's libraries and binaries; the benchmarks have their own), `reply` (netlink framing), `netlink` (the real backend), `readback`,
//! [`monitor`], [`nflog`] (the packets `log group` statements hand to netpold),
//! `flows` (conntrack and `SOCK_DESTROY`), `loaded` (the table read back: deny and
//! audit counters with their chain's log counter, named limits). With the feature `test-support`: `fake` (an in-memory backend for
//! the tests of the code above) and `testns` (kernel tests in throwaway network
//! namespaces).

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod encode;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
mod ffi;
mod flows;
pub mod heap;
mod loaded;
pub mod monitor;
mod netlink;
pub mod nflog;
mod objects;
mod readback;
mod reply;
mod slot;
#[cfg(any(test, feature = "test-support"))]
pub mod testns;
mod update;

use std::io;
use std::time::Duration;

use rules_compiler::plan::Plan;
use serde::Serialize;

pub use flows::{CutStats, Flow, FlowCut, LocalSide, LocalSocket, Tuple, L4};
pub use loaded::{
    ChainOwners, DenyCounter, LoadedChain, LoadedLimit, LoadedSet, LoadedTable, RuleCounter,
};
pub use monitor::{Commit, Monitor, News, Quiet, TableInfo};
pub use netlink::Netlink;
pub use nflog::{Logged, LoggedPacket, Nflog};
pub use objects::EncodeError;
pub use readback::GenerationReader;
pub use slot::Slot;
pub use update::Update;

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

#[cfg(test)]
mod tests;
