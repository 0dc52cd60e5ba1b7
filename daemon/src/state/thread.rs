//! The one thread that owns the [`State`]: the daemon's loop hands it commands over a
//! bounded channel and awaits each answer on a oneshot, so the synchronous reload (file
//! reads, YAML, planning, netlink, conntrack) never runs on, or blocks, a tokio worker.
//!
//! Backpressure. The thread waits on nothing but its channel: it never sends to the
//! loop, so a full channel cannot deadlock it. The loop sends one command at a time and
//! awaits its answer before it takes the next event, so no more than one command is ever
//! queued and the bound ([`CAPACITY`]) is never what stops a sender; while a command
//! runs, the loop's own sources wait in their coalescing queues (see
//! [`crate::daemon`]): any number of file events become one reload, kernel news is
//! merged, this host's addresses are taken as the latest whole set. A reload request is
//! never dropped, only merged with the ones behind it.
//!
//! Every answer carries the [`After`] of the command — the one-line summary for
//! systemd's `STATUS=` and whether a retry is wanted — so the loop never needs to look
//! into the state itself.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::report::{DriftEvent, LoadedInputs, ReloadReport, StatusReport, Trigger};
use super::State;
use crate::netlink::{Backend, News};

/// Commands queued at most (the loop keeps one in flight; see the module doc).
pub const CAPACITY: usize = 4;

/// What the state is after a command, for the loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct After {
    /// [`State::summary`]: the line for systemd's `STATUS=`.
    pub summary: String,
    /// [`State::wants_retry`].
    pub wants_retry: bool,
    /// [`State::confirm_by`]: when the loop must call
    /// [`StateThread::roll_back_if_due`].
    pub confirm_by: Option<std::time::Instant>,
}

/// A command's answer and the state after it.
#[derive(Debug)]
pub struct Done<T> {
    /// What the command returned.
    pub value: T,
    /// The state after it.
    pub after: After,
}

/// What [`StateThread::shutdown`] did.
#[derive(Debug)]
pub struct Stopped {
    /// The generation left in force (or flushed).
    pub generation: u64,
    /// The outcome of removing the table, when asked: `Ok(false)` when there was none.
    pub flushed: Option<Result<bool, String>>,
}

/// The state thread is gone: it panicked (the panic is in the log), or was shut down.
#[derive(Debug, thiserror::Error)]
#[error("the reload thread stopped (see the log above for why)")]
pub struct Gone;

type Reply<T> = oneshot::Sender<Done<T>>;

/// What the state is asked to do: every change of the state goes through one of these.
enum Command {
    Claim(Reply<()>),
    Reload(Trigger, Reply<ReloadReport>),
    ForceReload(Reply<ReloadReport>),
    ReloadProvisional(bool, Duration, Reply<Result<ReloadReport, String>>),
    Confirm(Reply<Result<u64, String>>),
    RollBackIfDue(Reply<Option<ReloadReport>>),
    SetHostAddresses(BTreeSet<IpAddr>, Reply<Option<ReloadReport>>),
    KernelNews(Vec<News>, Reply<Option<DriftEvent>>),
    ReadDenies(Reply<()>),
    Status(Reply<StatusReport>),
    Loaded(Reply<Result<LoadedInputs, String>>),
    Shutdown {
        flush: bool,
        reply: oneshot::Sender<Stopped>,
    },
}

/// The handle the daemon's loop holds; see the module doc.
pub struct StateThread {
    tx: mpsc::Sender<Command>,
}

impl StateThread {
    /// Moves `state` to a thread of its own, serving commands until
    /// [`shutdown`](Self::shutdown) or until this handle is dropped.
    pub fn spawn<B: Backend + Send + 'static>(state: State<B>) -> std::io::Result<StateThread> {
        let (tx, rx) = mpsc::channel(CAPACITY);
        std::thread::Builder::new()
            .name("netpold-state".into())
            .spawn(move || serve(state, rx))?;
        Ok(StateThread { tx })
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<Done<T>, Gone> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(command(reply)).await.map_err(|_| Gone)?;
        answer.await.map_err(|_| Gone)
    }

    /// [`State::claim`].
    pub async fn claim(&self) -> Result<Done<()>, Gone> {
        self.ask(Command::Claim).await
    }

    /// [`State::reload`].
    pub async fn reload(&self, trigger: Trigger) -> Result<Done<ReloadReport>, Gone> {
        self.ask(|r| Command::Reload(trigger, r)).await
    }

    /// [`State::force_reload`].
    pub async fn force_reload(&self) -> Result<Done<ReloadReport>, Gone> {
        self.ask(Command::ForceReload).await
    }

    /// [`State::reload_provisional`].
    pub async fn reload_provisional(
        &self,
        force: bool,
        within: Duration,
    ) -> Result<Done<Result<ReloadReport, String>>, Gone> {
        self.ask(|r| Command::ReloadProvisional(force, within, r))
            .await
    }

    /// [`State::confirm`].
    pub async fn confirm(&self) -> Result<Done<Result<u64, String>>, Gone> {
        self.ask(Command::Confirm).await
    }

    /// [`State::roll_back_if_due`], now.
    pub async fn roll_back_if_due(&self) -> Result<Done<Option<ReloadReport>>, Gone> {
        self.ask(Command::RollBackIfDue).await
    }

    /// [`State::set_host_addresses`].
    pub async fn set_host_addresses(
        &self,
        addresses: BTreeSet<IpAddr>,
    ) -> Result<Done<Option<ReloadReport>>, Gone> {
        self.ask(|r| Command::SetHostAddresses(addresses, r)).await
    }

    /// [`State::kernel_news`].
    pub async fn kernel_news(&self, news: Vec<News>) -> Result<Done<Option<DriftEvent>>, Gone> {
        self.ask(|r| Command::KernelNews(news, r)).await
    }

    /// [`State::read_denies`].
    pub async fn read_denies(&self) -> Result<Done<()>, Gone> {
        self.ask(Command::ReadDenies).await
    }

    /// [`State::status`].
    pub async fn status(&self) -> Result<Done<StatusReport>, Gone> {
        self.ask(Command::Status).await
    }

    /// [`State::loaded_inputs`].
    pub async fn loaded_inputs(&self) -> Result<Done<Result<LoadedInputs, String>>, Gone> {
        self.ask(Command::Loaded).await
    }

    /// Ends the thread: removes the table first when `flush`, then drops the state (its
    /// netlink sockets closed) before answering, so that once this returns nothing of
    /// it is left. `None` when the thread was gone already.
    pub async fn shutdown(self, flush: bool) -> Option<Stopped> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Shutdown { flush, reply })
            .await
            .ok()?;
        answer.await.ok()
    }
}

/// The thread's body: one command at a time, in the order sent.
fn serve<B: Backend>(mut state: State<B>, mut rx: mpsc::Receiver<Command>) {
    fn done<T, B: Backend>(state: &State<B>, reply: Reply<T>, value: T) {
        let after = After {
            summary: state.summary(),
            wants_retry: state.wants_retry(),
            confirm_by: state.confirm_by(),
        };
        // The loop may have stopped waiting (it is shutting down): nothing to do.
        let _ = reply.send(Done { value, after });
    }
    while let Some(command) = rx.blocking_recv() {
        match command {
            Command::Claim(r) => {
                state.claim();
                done(&state, r, ());
            }
            Command::Reload(trigger, r) => {
                let report = state.reload(trigger);
                done(&state, r, report);
            }
            Command::ForceReload(r) => {
                let report = state.force_reload();
                done(&state, r, report);
            }
            Command::ReloadProvisional(force, within, r) => {
                let report = state.reload_provisional(force, within);
                done(&state, r, report);
            }
            Command::Confirm(r) => {
                let generation = state.confirm();
                done(&state, r, generation);
            }
            Command::RollBackIfDue(r) => {
                let report = state.roll_back_if_due(std::time::Instant::now());
                done(&state, r, report);
            }
            Command::SetHostAddresses(addresses, r) => {
                let report = state.set_host_addresses(addresses);
                done(&state, r, report);
            }
            Command::KernelNews(news, r) => {
                let event = state.kernel_news(news);
                done(&state, r, event);
            }
            Command::ReadDenies(r) => {
                state.read_denies();
                done(&state, r, ());
            }
            Command::Status(r) => {
                let status = state.status();
                done(&state, r, status);
            }
            Command::Loaded(r) => {
                let inputs = state.loaded_inputs();
                done(&state, r, inputs);
            }
            Command::Shutdown { flush, reply } => {
                let flushed = flush.then(|| state.backend().flush().map_err(|e| e.to_string()));
                let generation = state.generation();
                drop(state);
                let _ = reply.send(Stopped {
                    generation,
                    flushed,
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::FakeBackend;
    use crate::state::report::Outcome;
    use crate::testdir::TempDir;

    use crate::state::tests::{self, example};

    fn state(dir: &TempDir) -> State<FakeBackend> {
        tests::state(
            dir,
            &[rules_compiler::model::ObjectName::new("web", "checkout")],
        )
    }

    /// The thread answers in the order asked, on a runtime with one worker: nothing
    /// blocks that worker while the state works.
    #[tokio::test(flavor = "current_thread")]
    async fn commands_are_answered_in_order_with_the_state_after_them() {
        let dir = example();
        let thread = StateThread::spawn(state(&dir)).unwrap();
        thread.claim().await.unwrap();
        let first = thread.reload(Trigger::Start).await.unwrap();
        assert_eq!(first.value.outcome, Outcome::Applied);
        assert!(
            first.after.summary.starts_with("generation 1: 4 policies"),
            "{}",
            first.after.summary
        );
        assert!(!first.after.wants_retry);
        let again = thread.reload(Trigger::Signal).await.unwrap();
        assert_eq!(again.value.outcome, Outcome::Unchanged);
        let status = thread.status().await.unwrap();
        assert_eq!(status.value.generation, 1);
        assert_eq!(status.value.reloads.unchanged, 1);
        thread.read_denies().await.unwrap();

        // A file that cannot be read asks for a retry.
        std::fs::write(dir.path().join("policies/empty.yaml"), "").unwrap();
        let failed = thread.reload(Trigger::Files).await.unwrap();
        assert_eq!(failed.value.outcome, Outcome::Failed, "{:?}", failed.value);
        assert!(failed.after.wants_retry);
        assert!(
            failed.after.summary.contains("; last reload failed at "),
            "{}",
            failed.after.summary
        );

        let stopped = thread.shutdown(true).await.expect("the thread answers");
        assert_eq!(stopped.generation, 1);
        assert_eq!(stopped.flushed.map(|r| r.is_ok()), Some(true));
    }

    /// Many callers at once are all answered (the bound only makes them wait).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_callers_than_the_bound_all_get_answers() {
        let dir = example();
        let thread = std::sync::Arc::new(StateThread::spawn(state(&dir)).unwrap());
        thread.reload(Trigger::Start).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..(CAPACITY * 4) {
            let t = std::sync::Arc::clone(&thread);
            tasks.push(tokio::spawn(async move { t.status().await.unwrap() }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().value.generation, 1);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_handle_ends_the_thread_and_a_shut_down_one_is_gone() {
        let dir = example();
        let thread = StateThread::spawn(state(&dir)).unwrap();
        let stopped = thread.shutdown(false).await.unwrap();
        assert_eq!((stopped.generation, stopped.flushed.is_none()), (0, true));
        // Dropping the handle closes the channel; the thread ends on its own.
        drop(StateThread::spawn(state(&dir)).unwrap());
    }
}
