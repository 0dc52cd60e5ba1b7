//! Reading the loaded table back: dumps of chains, sets, set elements and rules,
//! framed by the ruleset generation so that a concurrent change is noticed (and the
//! read retried) rather than reported as a mix of two rulesets. A dump message that
//! cannot be read (`ffi::parse::Malformed`) is passed over, as one of another table.
//!
//! Only reads: it never sends a change, and what the counters mean (whose deny they
//! count) is `loaded`'s and the daemon's.

use std::io;
use std::time::Duration;

use super::encode::k;
use super::ffi::{self, Aligned, Socket};
use super::loaded::hook_name;
use super::monitor::{self, TableInfo};
use super::{
    reply, KernelError, LoadedChain, LoadedLimit, LoadedSet, LoadedTable, RuleCounter, Slot,
};

/// How long one answer of a dump may take; the kernel answers at once.
const DUMP_WAIT: Duration = Duration::from_secs(5);
/// Reads retried when the ruleset changes meanwhile.
const ATTEMPTS: usize = 5;

/// How a request ended.
enum End {
    /// Complete and consistent.
    Done,
    /// The kernel flagged the dump as interrupted by a change.
    Interrupted,
}

struct Reader {
    sock: Socket,
    buf: Aligned,
    seq: u32,
}

impl Reader {
    /// Sends a request and hands every answer message (not acks, not the end of the
    /// dump) to `f`. Errors carry the kernel's errno.
    fn request(
        &mut self,
        msg_type: i32,
        dump: bool,
        table: &str,
        set: Option<&str>,
        mut f: impl FnMut(&[u8]),
    ) -> Result<End, KernelError> {
        self.seq += 1;
        let seq = self.seq;
        let req = ffi::get_request(msg_type, dump, seq, table, set)?;
        let what = || format!("dump of table inet {table}");
        self.sock.send(&req).map_err(KernelError::io(what()))?;
        let portid = self.sock.portid();
        let mut end = End::Done;
        loop {
            let n = self
                .sock
                .recv(&mut self.buf, Some(DUMP_WAIT))
                .map_err(KernelError::io(what()))?
                .ok_or_else(|| KernelError::Io {
                    op: what(),
                    err: io::Error::from(io::ErrorKind::TimedOut),
                })?;
            for (h, msg) in reply::messages(self.buf.bytes(n)) {
                if h.seq != seq || (h.pid != portid && h.pid != 0) {
                    continue;
                }
                if h.flags & reply::NLM_F_DUMP_INTR != 0 {
                    end = End::Interrupted;
                }
                match h.kind {
                    reply::NLMSG_DONE => return Ok(end),
                    reply::NLMSG_ERROR => {
                        let ack = reply::parse_ack(msg).ok_or_else(|| {
                            KernelError::Protocol("a truncated acknowledgement".into())
                        })?;
                        if ack.errno != 0 {
                            return Err(KernelError::Io {
                                op: what(),
                                err: io::Error::from_raw_os_error(ack.errno),
                            });
                        }
                        return Ok(end);
                    }
                    _ => f(msg),
                }
            }
        }
    }

    fn generation(&mut self, table: &str) -> Result<u32, KernelError> {
        let mut gen = None;
        self.request(libc::NFT_MSG_GETGEN, false, table, None, |m| {
            gen = ffi::parse_gen(m).ok();
        })?;
        gen.ok_or_else(|| KernelError::Protocol("no ruleset generation in the answer".into()))
    }
}

/// The ruleset generation of this network namespace, read over one netlink socket kept
/// open (`NFT_MSG_GETGEN`, a few microseconds per read). The kernel increments it on
/// every committed nftables transaction, so a change means a new ruleset is in force;
/// benchmarks poll it to time a reload to the moment the kernel has it.
pub struct GenerationReader(Reader);

impl GenerationReader {
    /// Opens the netlink socket.
    pub fn open() -> Result<GenerationReader, KernelError> {
        let sock = Socket::open().map_err(KernelError::io("socket"))?;
        Ok(GenerationReader(Reader {
            sock,
            buf: Aligned::new(16 * 1024),
            seq: 0,
        }))
    }

    /// The current generation.
    pub fn read(&mut self) -> Result<u32, KernelError> {
        self.0.generation(rules_compiler::plan::TABLE_NAME)
    }
}

/// The flags, owner and comment of `table` (family inet); `None` when it does not exist.
pub(crate) fn table_info(table: &str) -> Result<Option<TableInfo>, KernelError> {
    let sock = Socket::open().map_err(KernelError::io("socket"))?;
    let mut r = Reader {
        sock,
        buf: Aligned::new(16 * 1024),
        seq: 0,
    };
    let mut info = None;
    match r.request(libc::NFT_MSG_GETTABLE, false, table, None, |m| {
        info = monitor::parse_table(m);
    }) {
        Ok(_) => Ok(info),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads `table` (family inet) back; `None` when it does not exist.
pub(crate) fn read(table: &str) -> Result<Option<LoadedTable>, KernelError> {
    read_with(table, true)
}

/// Reads `table`'s chains and rules but not its sets: enough for the counters, and
/// cheap however many elements the sets hold. `sets` of the result is empty.
pub(crate) fn read_rules(table: &str) -> Result<Option<LoadedTable>, KernelError> {
    read_with(table, false)
}

fn read_with(table: &str, with_sets: bool) -> Result<Option<LoadedTable>, KernelError> {
    let sock = Socket::open().map_err(KernelError::io("socket"))?;
    let mut r = Reader {
        sock,
        buf: Aligned::new(256 * 1024),
        seq: 0,
    };
    for _ in 0..ATTEMPTS {
        let before = r.generation(table)?;
        if let Some(loaded) = read_once(&mut r, table, with_sets)? {
            if r.generation(table)? == before {
                return Ok(loaded);
            }
        }
    }
    Err(KernelError::Protocol(format!(
        "the ruleset kept changing while table inet {table} was read ({ATTEMPTS} attempts)"
    )))
}

/// One read; `Ok(None)` when a dump was interrupted (read again).
fn read_once(
    r: &mut Reader,
    table: &str,
    with_sets: bool,
) -> Result<Option<Option<LoadedTable>>, KernelError> {
    match r.request(libc::NFT_MSG_GETTABLE, false, table, None, |_| {}) {
        Ok(_) => {}
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(Some(None)),
        Err(e) => return Err(e),
    }
    let (mut chains, mut consistent) = dump_chains(r, table)?;
    let mut sets = Vec::new();
    if with_sets {
        let (s, whole) = dump_sets(r, table)?;
        sets = s;
        consistent &= whole;
    }
    let (mut limits, whole_limits) = dump_limits(r, table)?;
    consistent &= whole_limits;
    let (orphans, whole) = dump_rules(r, table, &mut chains)?;
    if orphans > 0 || !consistent || !whole {
        // Rules of a chain the chain dump did not see: the table changed in between.
        return Ok(None);
    }
    // Which of its two names netpold gave an object is how it swapped the table last.
    for c in &mut chains {
        c.name = Slot::plan_name(&c.name).to_string();
    }
    for s in &mut sets {
        s.name = Slot::plan_name(&s.name).to_string();
    }
    for l in &mut limits {
        l.name = Slot::plan_name(&l.name).to_string();
    }
    Ok(Some(Some(LoadedTable {
        name: table.to_string(),
        chains,
        sets,
        limits,
    })))
}

/// Whether a dump ended complete and consistent.
fn whole(end: End) -> bool {
    !matches!(end, End::Interrupted)
}

/// The table's chains, without rules yet; and whether the dump was whole.
fn dump_chains(r: &mut Reader, table: &str) -> Result<(Vec<LoadedChain>, bool), KernelError> {
    let mut chains = Vec::new();
    let end = r.request(libc::NFT_MSG_GETCHAIN, true, table, None, |m| {
        if let Some(c) = ffi::parse_chain(m).ok().filter(|c| c.table == table) {
            chains.push(LoadedChain {
                name: c.name,
                hook: c.hooknum.map(hook_name),
                rules: 0,
                counters: Vec::new(),
            });
        }
    })?;
    Ok((chains, whole(end)))
}

/// The table's named sets and maps with their element counts; and whether every dump
/// was whole.
fn dump_sets(r: &mut Reader, table: &str) -> Result<(Vec<LoadedSet>, bool), KernelError> {
    let mut sets = Vec::new();
    let end = r.request(libc::NFT_MSG_GETSET, true, table, None, |m| {
        if let Ok(s) = ffi::parse_set(m) {
            if s.table == table && s.flags & k::NFT_SET_ANONYMOUS == 0 {
                sets.push(LoadedSet {
                    name: s.name,
                    map: s.flags & k::NFT_SET_MAP != 0,
                    elements: 0,
                });
            }
        }
    })?;
    let mut consistent = whole(end);
    for set in &mut sets {
        let mut count = 0;
        let end = r.request(
            libc::NFT_MSG_GETSETELEM,
            true,
            table,
            Some(&set.name),
            |m| {
                if let Ok((_, n)) = ffi::parse_elems(m) {
                    count += n;
                }
            },
        )?;
        consistent &= whole(end);
        set.elements = count;
    }
    Ok((sets, consistent))
}

/// The table's named limits; and whether the dump was whole.
fn dump_limits(r: &mut Reader, table: &str) -> Result<(Vec<LoadedLimit>, bool), KernelError> {
    let mut limits = Vec::new();
    let end = r.request(libc::NFT_MSG_GETOBJ, true, table, None, |m| {
        if let Ok(Some(l)) = ffi::parse_limit(m) {
            if l.table == table {
                limits.push(LoadedLimit {
                    name: l.name,
                    rate: l.rate,
                    burst: l.burst,
                });
            }
        }
    })?;
    Ok((limits, whole(end)))
}

/// Counts the table's rules into `chains`, with their counters; returns the rules of
/// chains not in `chains` (orphans) and whether the dump was whole.
fn dump_rules(
    r: &mut Reader,
    table: &str,
    chains: &mut [LoadedChain],
) -> Result<(usize, bool), KernelError> {
    let mut orphans = 0;
    let end = r.request(libc::NFT_MSG_GETRULE, true, table, None, |m| {
        let Some(rule) = ffi::parse_rule(m).ok().filter(|x| x.table == table) else {
            return;
        };
        let Some(chain) = chains.iter_mut().find(|c| c.name == rule.chain) else {
            orphans += 1;
            return;
        };
        chain.rules += 1;
        if let Some((packets, bytes)) = rule.counter {
            chain.counters.push(RuleCounter {
                comment: rule.comment,
                log: rule.log,
                packets,
                bytes,
            });
        }
    })?;
    Ok((orphans, whole(end)))
}
