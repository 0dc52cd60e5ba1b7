//! An in-memory [`Backend`] for tests of the code above the kernel: it keeps the last
//! plan applied, reads back what the kernel would hold for it, and fails when told to,
//! leaving its state as it was (as the kernel does with a rejected batch).
//!
//! Test support only (feature `test-support`): never in a production build, and it must
//! not grow behaviour the real backend lacks — it encodes with the same encoder, so a
//! plan the kernel path refuses is refused here too.

use std::io;

use rules_compiler::plan::Plan;

use super::{
    encode, ApplyStats, Backend, CutStats, DenyCounter, Flow, FlowCut, KernelError, LoadedTable,
    Update,
};

/// A kernel that lives in memory.
#[derive(Debug, Default)]
pub struct FakeBackend {
    /// The plan in force, if any.
    pub loaded: Option<Plan>,
    /// Successful applies so far.
    pub applies: usize,
    /// Successful updates so far.
    pub updates: usize,
    /// Successful flushes that removed a table.
    pub flushes: usize,
    /// What `read_denies` gives, instead of zero, for these counters while a plan is in
    /// force (`read` gives counters at zero); an apply empties it, as a new table's
    /// counters start at zero.
    pub denied: Vec<DenyCounter>,
    /// The conntrack entries `flows` gives; `cut` removes the ones it cuts.
    pub conntrack: Vec<Flow>,
    /// Every cut so far, in order.
    pub cuts: Vec<FlowCut>,
    /// Makes `flows` fail (as a dump the kernel refuses) while set.
    pub fail_flows: bool,
    fail_next: Option<(String, i32)>,
    /// The ruleset generation: one up for each commit, this backend's or not.
    pub generation: u32,
    /// The generations this backend made.
    commits: Vec<u32>,
    /// Someone else committed since this backend's last change: an update is refused,
    /// as the kernel's generation check refuses it.
    moved: bool,
    /// Someone else commits, unseen, right after this backend's next commit.
    sneak_in: bool,
    missed: bool,
}

impl FakeBackend {
    /// An empty kernel.
    pub fn new() -> FakeBackend {
        FakeBackend::default()
    }

    /// Makes the next `apply`, `update` or `flush` fail as a kernel rejection of `object` with
    /// `errno`; the state stays as it was.
    pub fn fail_next(&mut self, object: impl Into<String>, errno: i32) {
        self.fail_next = Some((object.into(), errno));
    }

    /// Someone else commits a transaction; returns its generation.
    pub fn someone_else_commits(&mut self) -> u32 {
        self.generation += 1;
        self.moved = true;
        self.generation
    }

    /// Someone else commits right after this backend's next commit, while the drift
    /// watch is silenced: [`Backend::missed`] says so.
    pub fn someone_else_commits_unseen_after_the_next_commit(&mut self) {
        self.sneak_in = true;
    }

    fn commit(&mut self) {
        self.generation += 1;
        self.commits.push(self.generation);
        self.moved = false;
        if std::mem::take(&mut self.sneak_in) {
            self.someone_else_commits();
            self.missed = true;
        }
    }

    fn take_failure(&mut self) -> Result<(), KernelError> {
        match self.fail_next.take() {
            Some((object, errno)) => Err(KernelError::Rejected {
                object,
                err: io::Error::from_raw_os_error(errno),
                detail: None,
            }),
            None => Ok(()),
        }
    }
}

impl Backend for FakeBackend {
    fn apply(&mut self, plan: &Plan) -> Result<ApplyStats, KernelError> {
        // The same encoder as the real backend: a plan it refuses is refused here too.
        let batch = encode::encode(plan)?;
        self.take_failure()?;
        self.loaded = Some(plan.clone());
        self.applies += 1;
        self.commit();
        self.denied.clear();
        Ok(ApplyStats {
            messages: batch.msgs.len(),
            rules: batch.rules,
            elements: batch.elements,
            ..ApplyStats::default()
        })
    }

    fn update(&mut self, delta: &Update) -> Result<ApplyStats, KernelError> {
        let batch = encode::encode_update(delta, encode::Slot::Plain)?;
        self.take_failure()?;
        let Some(plan) = &self.loaded else {
            return Err(KernelError::Stale("nothing loaded".into()));
        };
        if self.moved {
            return Err(KernelError::Stale("someone else committed".into()));
        }
        // Counters survive an update, as in the kernel: `denied` stays.
        self.loaded = Some(delta.apply(plan));
        self.updates += 1;
        if !batch.msgs.is_empty() {
            self.commit();
        }
        Ok(ApplyStats {
            messages: batch.msgs.len(),
            elements: batch.elements,
            ..ApplyStats::default()
        })
    }

    fn flush(&mut self) -> Result<bool, KernelError> {
        self.take_failure()?;
        let had = self.loaded.take().is_some();
        if had {
            self.flushes += 1;
            self.commit();
        }
        Ok(had)
    }

    fn read(&mut self) -> Result<Option<LoadedTable>, KernelError> {
        match &self.loaded {
            Some(plan) => Ok(Some(LoadedTable::expected(plan)?)),
            None => Ok(None),
        }
    }

    fn read_denies(&mut self) -> Result<Option<Vec<DenyCounter>>, KernelError> {
        let Some(plan) = &self.loaded else {
            return Ok(None);
        };
        // Every deny counter of the table, at zero as the kernel has them, but for the
        // ones the test set.
        let mut counters = LoadedTable::expected(plan)?.denies();
        for set in &self.denied {
            match counters
                .iter_mut()
                .find(|c| c.endpoint == set.endpoint && c.direction == set.direction)
            {
                Some(c) => *c = set.clone(),
                None => counters.push(set.clone()),
            }
        }
        Ok(Some(counters))
    }

    fn flows(&mut self) -> Result<Vec<Flow>, KernelError> {
        if self.fail_flows {
            return Err(KernelError::Io {
                op: "conntrack dump".into(),
                err: io::Error::from_raw_os_error(libc::EPERM),
            });
        }
        Ok(self.conntrack.clone())
    }

    fn cut(&mut self, cuts: &[FlowCut]) -> Result<CutStats, KernelError> {
        let mut stats = CutStats::default();
        for c in cuts {
            let before = self.conntrack.len();
            self.conntrack.retain(|f| f != &c.flow);
            if self.conntrack.len() < before {
                stats.deleted += 1;
            } else {
                stats.gone += 1;
            }
            if c.socket().is_some() {
                stats.sockets_destroyed += 1;
            }
            self.cuts.push(*c);
        }
        Ok(stats)
    }

    fn committed(&self, generation: u32) -> bool {
        self.commits.contains(&generation)
    }

    fn missed(&mut self) -> bool {
        std::mem::take(&mut self.missed)
    }

    fn follow(&mut self, generation: u32) {
        if self.moved
            && generation == self.generation
            && self.commits.last() == Some(&(generation - 1))
        {
            self.moved = false;
        }
    }
}
