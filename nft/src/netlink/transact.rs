//! Sending a batch and reading the kernel's answer: sequence numbers, the generation a
//! batch is sent on top of, silencing the drift watch meanwhile, and the error that
//! names the object (down to the set element) the kernel refused.
//!
//! What to send is decided by the caller (`netlink`); the bytes are `ffi`'s.

use std::io;
use std::time::{Duration, Instant};

use rules_compiler::plan::Plan;

use super::Netlink;
use crate::encode::{self, Batch, Loaded, Msg};
use crate::{ffi, monitor, readback, reply, ApplyStats, KernelError, Quiet};

/// Waiting for the kernel's answer to a batch: it processes the batch inside `sendto`,
/// so every answer is queued before the call returns; this only bounds the wait for
/// the acknowledgement of the batch end, which kernels before 6.10 never send.
const END_ACK_WAIT: Duration = Duration::from_millis(200);
/// Batches sent again when someone else commits between reading the generation and
/// sending (each attempt is microseconds apart).
const GENERATION_RACES: usize = 5;

impl Netlink {
    /// Sends `batch` on top of the generation in force now, read just before; sends it
    /// again when someone else commits in between. The generation it made is then
    /// known exactly (one more), without a window for someone else's change to pass
    /// for ours. Returns the kernel's time and that generation.
    pub(super) fn commit_fresh(
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
    pub(super) fn commit_on(
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
    pub(super) fn replace_in_two(&mut self, plan: &Plan) -> Option<ApplyStats> {
        let genid = self.generation?;
        let old = self
            .loaded
            .take()
            .filter(|l| plan.table() == self.table && l.swappable(plan))?;
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
            match self.commit_on(batch, plan.table(), generation, &describe) {
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
    pub(super) fn explain(&mut self, e: KernelError) -> KernelError {
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
pub(super) fn next_generation(g: u32) -> u32 {
    g.wrapping_add(1).max(1)
}
