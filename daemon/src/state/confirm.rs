//! Confirm or roll back. A reload applied provisionally (`netpolctl reload
//! --confirm-within`) stays in force only if `netpolctl confirm` comes before its
//! deadline; otherwise the inputs of the last confirmed generation are applied again.
//!
//! The deadline lives in netpold, so it outlives the operator's session (an SSH
//! connection the new ruleset cut); the loop only wakes the state at it
//! ([`After::confirm_by`](super::thread::After)). A rollback is an ordinary apply of
//! inputs that applied before, in one transaction: it never leaves the host without a
//! table. If the kernel refuses it, the provisional ruleset stays and the rollback is
//! tried again a second later, loudly.
//!
//! A pending rollback outlives netpold too: its deadline and the confirmed inputs'
//! text are kept in a root-only file (`Options::pending_file`), written before the
//! provisional generation is reported, and [`State::restore_pending`] takes it up after
//! a restart (a crash, `systemctl restart`): due or not, the rollback happens. Must not
//! decide what is allowed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::report::{
    rfc3339, Held, InputHashes, InputText, Outcome, Pending, ReloadReport, Trigger,
};
use super::{Guard, Read, State};
use crate::netlink::Backend;
use crate::telemetry;

/// How soon a rollback the kernel refused is tried again.
const ROLLBACK_RETRY: Duration = Duration::from_secs(1);

/// A provisional generation and what a rollback brings back.
pub(super) struct Provisional {
    /// The inputs of the last confirmed generation.
    confirmed: Arc<Read>,
    /// Its generation.
    confirmed_generation: u64,
    /// When it is rolled back unless confirmed.
    deadline: Instant,
    /// The same, on the clock (for `status`).
    deadline_at: SystemTime,
}

/// A pending rollback as kept on disk.
#[derive(Serialize, Deserialize)]
struct Kept {
    /// The deadline, milliseconds since the Unix epoch.
    deadline_ms: u64,
    confirmed_generation: u64,
    policies: Vec<InputText>,
    inventory: Vec<InputText>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<B: Backend> State<B> {
    /// Writes the pending rollback to its file (or removes the file when none is
    /// pending). A failure is logged: the rollback still happens in this process.
    fn keep_pending(&self) {
        let Some(path) = &self.options.pending_file else {
            return;
        };
        let Some(p) = &self.pending else {
            let _ = std::fs::remove_file(path);
            return;
        };
        let texts = |list: &[rules_compiler::load::Input]| -> Vec<InputText> {
            list.iter()
                .map(|i| InputText {
                    path: i.path.clone(),
                    text: i.text.to_string(),
                })
                .collect()
        };
        let kept = Kept {
            deadline_ms: unix_ms(p.deadline_at),
            confirmed_generation: p.confirmed_generation,
            policies: texts(&p.confirmed.policies),
            inventory: texts(&p.confirmed.inventory),
        };
        let written = serde_json::to_vec(&kept)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::runfiles::write_private(path, &bytes));
        if let Err(e) = written {
            tracing::error!(
                "keeping the pending rollback in {}: {e}; a restart of netpold would lose it",
                path.display()
            );
        }
    }

    /// After the first load of a (re)started netpold: takes up a rollback an earlier
    /// netpold left pending, with what is left of its window (none: due now).
    pub fn restore_pending(&mut self) {
        let Some(path) = self.options.pending_file.clone() else {
            return;
        };
        let kept: Kept = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!("{}: unreadable pending rollback: {e}", path.display());
                    return;
                }
            },
            Err(_) => return,
        };
        let inputs = |list: Vec<InputText>| -> Vec<rules_compiler::load::Input> {
            list.into_iter()
                .map(|i| rules_compiler::load::Input {
                    path: i.path,
                    text: i.text.into(),
                })
                .collect()
        };
        let (policies, inventory) = (inputs(kept.policies), inputs(kept.inventory));
        let hashes = InputHashes::of(&policies, &inventory);
        let left =
            Duration::from_millis(kept.deadline_ms.saturating_sub(unix_ms(SystemTime::now())));
        tracing::warn!(
            "a rollback to the inputs of generation {} (of an earlier netpold) is pending: \
             due in {}",
            kept.confirmed_generation,
            humantime::format_duration(left)
        );
        self.pending = Some(Provisional {
            confirmed: Arc::new(Read {
                policies,
                inventory,
                hashes,
            }),
            confirmed_generation: kept.confirmed_generation,
            deadline: Instant::now() + left,
            deadline_at: SystemTime::now() + left,
        });
    }

    /// `netpolctl reload --confirm-within`: reloads (`force` as `--force`); when that
    /// applies a new generation, it is provisional until [`confirm`](Self::confirm)
    /// within `within`. Refused when nothing is in force: a rollback would have
    /// nothing to go back to but no table.
    pub fn reload_provisional(
        &mut self,
        force: bool,
        within: Duration,
    ) -> Result<ReloadReport, String> {
        let Some(current) = &self.current else {
            return Err("nothing is in force to roll back to: reload without \
                        --confirm-within first"
                .into());
        };
        // A provisional generation over another keeps the confirmed one to go back to.
        let baseline = (Arc::clone(&current.inputs), self.generation);
        let report = if force {
            self.reload_checked(Trigger::Control, Guard::Force)
        } else {
            self.reload_checked(Trigger::Control, Guard::HoldSuspicious)
        };
        if report.outcome == Outcome::Applied {
            self.make_provisional(baseline, within);
        }
        Ok(report)
    }

    /// With `confirm-within` set, after a reload of `trigger` from `baseline` (the
    /// inputs in force before it and their generation): a reload an operator or the
    /// files set off that applied and changed connectivity (or whose change was too big
    /// to count) becomes provisional. Start-up has nothing to go back to; an address
    /// change re-plans the inputs in force; a rollback is the way back itself.
    pub(super) fn provisional_if_configured(
        &mut self,
        trigger: Trigger,
        baseline: Option<(Arc<Read>, u64)>,
        report: &ReloadReport,
    ) {
        let (Some(within), Some(baseline)) = (self.options.confirm_within, baseline) else {
            return;
        };
        let operators = matches!(
            trigger,
            Trigger::Files | Trigger::Signal | Trigger::Control | Trigger::Retry
        );
        let changed = report
            .connectivity
            .as_ref()
            .is_none_or(|c| c.allowed + c.denied > 0);
        if operators && report.outcome == Outcome::Applied && changed {
            self.make_provisional(baseline, within);
        }
    }

    /// The generation in force is provisional for `within`; a rollback goes back to
    /// `baseline`, unless an earlier provisional generation's baseline is still waiting
    /// (then to that one: the last confirmed).
    fn make_provisional(&mut self, baseline: (Arc<Read>, u64), within: Duration) {
        let (confirmed, confirmed_generation) = match self.pending.take() {
            Some(p) => (p.confirmed, p.confirmed_generation),
            None => baseline,
        };
        tracing::warn!(
            "generation {} is provisional: unless `netpolctl confirm` comes within {}, \
             the inputs of generation {confirmed_generation} are applied again",
            self.generation,
            humantime::format_duration(within)
        );
        self.pending = Some(Provisional {
            confirmed,
            confirmed_generation,
            deadline: Instant::now() + within,
            deadline_at: SystemTime::now() + within,
        });
        self.keep_pending();
    }

    /// `netpolctl confirm`: the provisional generation stays. The generation confirmed,
    /// or why there is none.
    pub fn confirm(&mut self) -> Result<u64, String> {
        match self.pending.take() {
            Some(_) => {
                self.keep_pending();
                tracing::info!("generation {} confirmed", self.generation);
                Ok(self.generation)
            }
            None => Err("nothing waits for confirmation".into()),
        }
    }

    /// When the provisional generation is rolled back unless confirmed.
    pub fn confirm_by(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// What `status` shows of a provisional generation.
    pub(super) fn pending_report(&self) -> Option<Pending> {
        self.pending.as_ref().map(|p| Pending {
            generation: self.generation,
            deadline: rfc3339(p.deadline_at),
            rollback_to: p.confirmed_generation,
        })
    }

    /// Rolls the provisional generation back when its deadline is past at `now`: the
    /// confirmed inputs are applied again, and the files on disk (what was rolled back)
    /// are held: not applied again until they change or an operator reloads.
    pub fn roll_back_if_due(&mut self, now: Instant) -> Option<ReloadReport> {
        if self.pending.as_ref()?.deadline > now {
            return None;
        }
        let p = self.pending.take()?;
        let rolled_back = self.generation;
        let files = self.last_attempt.clone();
        tracing::warn!(
            "generation {rolled_back} was not confirmed in time: applying the inputs of \
             generation {} again",
            p.confirmed_generation
        );
        let report = self.load_and_apply(
            Trigger::Rollback,
            Arc::clone(&p.confirmed),
            Instant::now(),
            false,
            Guard::Force,
        );
        if report.outcome == Outcome::Applied {
            self.keep_pending();
            self.counters.rollbacks += 1;
            telemetry::rolled_back();
            if let Some(hashes) = files {
                self.held = Some(Held {
                    at: rfc3339(SystemTime::now()),
                    trigger: Trigger::Rollback,
                    reason: format!(
                        "generation {rolled_back} was not confirmed in time and was rolled back \
                         to the inputs of generation {}; the files on disk are not in force \
                         until they change or `netpolctl reload` applies them",
                        p.confirmed_generation
                    ),
                    hashes,
                });
            }
        } else {
            tracing::error!(
                "rolling generation {rolled_back} back failed; it stays in force and the \
                 rollback is tried again in {}",
                humantime::format_duration(ROLLBACK_RETRY)
            );
            self.pending = Some(Provisional {
                deadline: Instant::now() + ROLLBACK_RETRY,
                deadline_at: SystemTime::now() + ROLLBACK_RETRY,
                ..p
            });
        }
        Some(report)
    }
}
