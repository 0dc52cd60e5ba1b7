//! `netpold`'s run: start-up in a fixed order, then one `select!` loop that serves every
//! event in turn — file changes, signals, address changes, kernel news, control
//! requests, the retry and metrics timers — so no two reloads ever overlap.
//!
//! The loop does not touch the [`State`]: the state lives on a thread of its own
//! ([`StateThread`]), and the loop sends it one command at a time and awaits the
//! answer, which carries the line for systemd's `STATUS=` and whether a retry is
//! wanted. The reload's synchronous work never runs on a tokio worker, so the control
//! connections, the file watch's forwarding and the kernel and address watches keep
//! being served meanwhile. What piles up during a reload waits in bounded or coalescing
//! queues: file events are one [`Notify`] permit (any number of them, one reload after
//! the one running), this host's addresses a `watch` channel (the latest whole set),
//! kernel news and control requests a bounded channel (`EVENTS`) whose senders wait
//! when it is full (kernel news queued behind one another is merged into one judgement).
//! The state thread never waits for the loop, so no queue can deadlock them.
//!
//! Order (as in linkerd2-proxy's main): the settings were checked before this is
//! called; then take this network namespace's instance lock (a second daemon stops
//! here, before touching the kernel), bind the control socket and the metrics listener
//! (a port in use stops it too), subscribe to nftables notifications, give the state its
//! thread, start following addresses, take over a table left by an earlier netpold,
//! start watching files (before the first read, so no change is missed), load and
//! apply, and only then tell systemd `READY=1`. On SIGTERM or SIGINT: `STOPPING=1`,
//! then the state thread removes the table (`--flush-on-exit`) or leaves it, and ends,
//! its netlink sockets closed before the instance lock is let go.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit};

use crate::config::Settings;
use crate::control::{self, Request, Response, IDLE_TIMEOUT, MAX_REQUEST_BYTES};
use crate::events::hub::Hub;
use crate::listen::Gate;
use crate::netlink::{Backend, Monitor, News};
use crate::state::report::{Outcome, ReloadReport, Trigger};
use crate::state::thread::{After, Done, Gone, StateThread, Stopped};
use crate::state::{Options, State};
use crate::{addrs, events, listen, systemd, watch};

/// Why the daemon stopped with an error, and the exit code it means.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The first load failed; the kernel was not touched.
    #[error("the first load failed; nothing was applied:\n{0}")]
    FirstLoad(String),
    /// Something needed to run could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The thread that owns the state stopped (it panicked; the panic is logged).
    #[error(transparent)]
    StateLost(#[from] Gone),
}

/// What the loop is told on its event channel (bounded: see [`EVENTS`]). File changes
/// and this host's addresses come by their own ways, which coalesce (see the module
/// doc).
enum Event {
    /// A control request and where to answer.
    Control(Request, oneshot::Sender<Response>),
    /// The address follower stopped.
    AddressesFailed(String),
    /// Committed nftables transactions (anyone's), or news that some were missed.
    Kernel(Vec<News>),
}

/// Events queued for the loop at most. Their senders wait when it is full: control
/// connections (at most [`control::MAX_CONNECTIONS`], each one request at a time) and
/// the kernel watch, whose notifications then wait in the kernel's socket buffer, and
/// beyond it are reported lost, which the state answers with the generation check.
const EVENTS: usize = 64;

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run<B: Backend + Send + 'static>(
    settings: Settings,
    backend: B,
) -> Result<(), RunError> {
    listen::raise_fd_limit();
    let _instance =
        crate::instance::claim(Path::new(crate::instance::LOCK_DIR)).map_err(RunError::Setup)?;
    let listener = bind(
        &settings.socket,
        settings.socket_group.as_ref().map(|g| g.1),
    )
    .map_err(|e| RunError::Setup(format!("control socket {}: {e}", settings.socket.display())))?;
    let socket = SocketFile(settings.socket.clone());
    if let Some(address) = settings.metrics_address {
        crate::telemetry::install(address).map_err(RunError::Setup)?;
    }
    // Signals are handled from here on (an early SIGHUP must not kill the daemon).
    let signals = Signals {
        hup: signal(SignalKind::hangup()).map_err(setup("SIGHUP"))?,
        term: signal(SignalKind::terminate()).map_err(setup("SIGTERM"))?,
        int: signal(SignalKind::interrupt()).map_err(setup("SIGINT"))?,
    };

    let mut state = State::new(
        Options {
            policies: settings.policies.clone(),
            inventory: settings.inventory.clone(),
            locals: settings.locals.clone(),
            deny: settings.deny,
            mode: settings.mode,
            events: settings.events.as_ref().map(|e| e.log),
            failsafe: settings.failsafe.clone(),
            confirm_within: settings.confirm_within,
            pending_file: Some(pending_file(&settings.socket)),
            incremental: settings.incremental,
            load: settings.load,
            revoke: settings.revoke_established,
        },
        backend,
    );
    // For the metrics, `status`'s denials per tier and the events the rate limit kept
    // back: a read of the rules' counters, at reloads, metric ticks and `status`.
    state.count_denies();
    // Verdict events: the NFLOG group is bound before the first apply adds the log
    // rules, so that nothing they log is missed; a group someone else reads stops here.
    let reopen = Arc::new(Notify::new());
    let hub = match &settings.events {
        Some(e) => {
            let hub = Arc::new(Hub::new(e.ring_size, e.log.group));
            let (models_tx, models) = tokio::sync::watch::channel(None);
            state.publish_models(move |m| {
                models_tx.send_replace(Some(m));
            });
            let wiring = events::Wiring {
                models,
                reopen: Arc::clone(&reopen),
            };
            events::spawn(settings.mode, e, Arc::clone(&hub), wiring).map_err(RunError::Setup)?;
            Some(hub)
        }
        None => None,
    };
    // Before the table is touched, so that no one else's change goes unseen.
    let monitor = Monitor::open()
        .and_then(|m| Ok((m.quiet()?, m)))
        .map_err(|e| RunError::Setup(format!("subscribing to nftables notifications: {e}")))?;
    // netpold's own transactions go unannounced (see `Quiet`): for a big replace the
    // notifications cost as much as the replace.
    state.backend().quiet_during_commits(monitor.0);
    let follows_host = state.follows_host();
    // The watch counts file events as they come, so that `status` knows, without reading
    // the files, whether they changed since the last reload read them.
    let seen = watch::Seen::default();
    state.follow_file_events(seen.clone());
    // From here on the state is the thread's, and the loop only asks it.
    let state = StateThread::spawn(state)
        .map_err(|e| RunError::Setup(format!("starting the reload thread: {e}")))?;
    let served = serve_until_stopped(
        &settings,
        &state,
        listener,
        monitor.1,
        signals,
        follows_host,
        Shared { seen, hub, reopen },
    )
    .await;
    let flush = settings.flush_on_exit && served.is_ok();
    // The state (and its netlink socket, the table's owner) is gone before the instance
    // lock is let go, so that a netpold started next finds the table free to take over.
    let stopped = state.shutdown(flush).await;
    if served.is_ok() {
        match stopped {
            Some(Stopped {
                flushed: Some(r), ..
            }) => match r {
                Ok(true) => tracing::info!("removed table inet netpol (--flush-on-exit)"),
                Ok(false) => tracing::info!("no table inet netpol to remove"),
                Err(e) => tracing::error!("removing table inet netpol: {e}"),
            },
            Some(Stopped { generation, .. }) => {
                tracing::info!(generation, "leaving the ruleset in force")
            }
            None => tracing::error!("{Gone}; the ruleset stays as it was"),
        }
    }
    drop(socket);
    served
}

/// The signals the loop handles.
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

/// What the loop shares with the file watch and the events pipeline.
struct Shared {
    /// The file watch's count of events (for `status`).
    seen: watch::Seen,
    /// The ring and counts; `None`: events are off.
    hub: Option<Arc<Hub>>,
    /// Told on SIGHUP: the events thread reopens the event file.
    reopen: Arc<Notify>,
}

/// The start-up after the state has its thread (addresses, claim, watch, first load,
/// `READY=1`) and the loop, until a signal stops it (`Ok`) or something fails.
async fn serve_until_stopped(
    settings: &Settings,
    state: &StateThread,
    listener: UnixListener,
    monitor: Monitor,
    mut signals: Signals,
    follows_host: bool,
    events: Shared,
) -> Result<(), RunError> {
    let (tx, mut rx) = mpsc::channel::<Event>(EVENTS);
    // This host's addresses, the whole set each time: only the latest matters, so a
    // burst of changes during a reload is one change after it.
    let (host_tx, mut host) = tokio::sync::watch::channel(std::collections::BTreeSet::new());
    let mut following = follows_host;
    if follows_host {
        let events = tx.clone();
        tokio::spawn(async move {
            let r = addrs::follow(|set| {
                host_tx.send_replace(set);
            })
            .await;
            let e = r.err().map(|e| e.to_string()).unwrap_or_default();
            // Said before the address channel closes, so the loop knows why it did.
            let _ = events.send(Event::AddressesFailed(e)).await;
            drop(host_tx);
        });
        // The first load needs this host's addresses.
        let set = tokio::select! {
            biased;
            Some(Event::AddressesFailed(e)) = rx.recv() => {
                return Err(RunError::Setup(format!("reading this host's addresses: {e}")))
            }
            r = host.changed() => match r {
                Ok(()) => host.borrow_and_update().clone(),
                Err(_) => return Err(RunError::Setup("reading this host's addresses".into())),
            },
        };
        state.set_host_addresses(set).await?;
    }

    tokio::spawn(watch_kernel(monitor, tx.clone()));
    state.claim().await?;

    // File events, any number of them, are one permit: one reload after the one running.
    let files = Arc::new(Notify::new());
    let inputs: Vec<PathBuf> = settings
        .policies
        .iter()
        .chain(&settings.inventory)
        .cloned()
        .collect();
    let timing = watch::Timing {
        recheck: settings.recheck,
        ..watch::Timing::new(settings.debounce)
    };
    let changed = Arc::clone(&files);
    let _watch = watch::watch(&inputs, timing, events.seen.clone(), move |paths| {
        tracing::debug!(?paths, "inputs may have changed");
        changed.notify_one();
    })
    .map_err(|e| RunError::Setup(format!("watching the inputs: {e}")))?;

    let first = state.reload(Trigger::Start).await?;
    match first.value.outcome {
        Outcome::Applied => {}
        // The table an earlier netpold left stays in force; netpold runs on, so that
        // the files being completed, or `reload --force`, can end the hold.
        Outcome::Held => tracing::warn!("the first load is held; the table in the kernel stays"),
        Outcome::Failed | Outcome::Unchanged => {
            return Err(RunError::FirstLoad(first.value.error.unwrap_or_default()));
        }
    }
    // Requests wait in the listen backlog until the first load is done.
    tokio::spawn(serve(listener, tx.clone(), events.hub.clone()));
    tracing::info!(
        socket = %settings.socket.display(),
        metrics = %settings.metrics_address.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        watching = ?_watch.dirs,
        follows_host,
        "netpold ready"
    );
    notify(&format!(
        "READY=1\n{}",
        systemd::status_line(&first.after.summary)
    ));

    // The deny counters are read only for metrics.
    let mut counters = tokio::time::interval(settings.metrics_interval);
    counters.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // An event taken from the channel while merging queued kernel news: handled next.
    let mut next: Option<Event> = None;
    let mut retry = Retry::default();
    // The state after the last command: whether a retry is wanted, and when a
    // provisional generation is rolled back.
    let mut last = first.after;
    let stop = loop {
        retry.follow(last.wants_retry);
        let event = match next.take() {
            Some(event) => event,
            None => tokio::select! {
                e = rx.recv() => match e {
                    Some(Event::Kernel(news)) => {
                        let (event, behind) = coalesce(Event::Kernel(news), &mut rx);
                        next = behind;
                        event
                    }
                    Some(e) => e,
                    None => break "the event channel closed",
                },
                _ = files.notified() => {
                    last = reload(state, Trigger::Files).await?.after;
                    continue;
                }
                r = host.changed(), if following => {
                    match r {
                        Ok(()) => {
                            let set = host.borrow_and_update().clone();
                            let done = state.set_host_addresses(set).await?;
                            if done.value.is_some() {
                                notify(&systemd::status_line(&done.after.summary));
                            }
                            last = done.after;
                        }
                        // Said on the event channel.
                        Err(_) => following = false,
                    }
                    continue;
                }
                _ = signals.hup.recv() => {
                    // logrotate's postrotate: the event file is opened again.
                    events.reopen.notify_one();
                    last = reload(state, Trigger::Signal).await?.after;
                    continue;
                }
                _ = retry.due() => {
                    last = reload(state, Trigger::Retry).await?.after;
                    continue;
                }
                _ = counters.tick(), if settings.metrics_address.is_some() => {
                    last = state.read_denies().await?.after;
                    continue;
                }
                _ = sleep_until_some(last.confirm_by) => {
                    let done = state.roll_back_if_due().await?;
                    if done.value.is_some() {
                        notify(&systemd::status_line(&done.after.summary));
                    }
                    last = done.after;
                    continue;
                }
                _ = signals.term.recv() => break "SIGTERM",
                _ = signals.int.recv() => break "SIGINT",
            },
        };
        if let Some(after) = handle(state, event, events.hub.as_deref()).await? {
            last = after;
        }
    };
    tracing::info!("stopping on {stop}");
    notify("STOPPING=1");
    Ok(())
}

/// Where this netpold keeps a pending rollback: one file per control socket, so two
/// netpolds (in two network namespaces) never share one.
fn pending_file(socket: &std::path::Path) -> std::path::PathBuf {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(socket.as_os_str().as_encoded_bytes());
    let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    crate::runfiles::run_dir().join(format!("netpold-{tag}.pending"))
}

/// Sleeps until `at`, or for ever when `None`.
async fn sleep_until_some(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Folds the kernel news queued behind `event` into it: it is judged at once (one
/// repair, not one per transaction of someone's script). The first event of another
/// kind (a `netpolctl reload` waiting for its answer) is given back for the next turn,
/// not dropped.
fn coalesce(mut event: Event, rx: &mut mpsc::Receiver<Event>) -> (Event, Option<Event>) {
    loop {
        match (&mut event, rx.try_recv()) {
            (Event::Kernel(news), Ok(Event::Kernel(more))) => news.extend(more),
            (_, Ok(other)) => return (event, Some(other)),
            (_, Err(_)) => return (event, None),
        }
    }
}

/// Handles one event of the channel (file changes, addresses, signals and timers are
/// handled in the loop); the state after it, when the state was asked anything.
async fn handle(
    state: &StateThread,
    event: Event,
    hub: Option<&Hub>,
) -> Result<Option<After>, Gone> {
    Ok(Some(match event {
        Event::AddressesFailed(e) => {
            tracing::error!(
                "following this host's addresses stopped: {e}; local endpoints stay as they are"
            );
            return Ok(None);
        }
        Event::Kernel(news) => {
            let done = state.kernel_news(news).await?;
            if done.value.is_some() {
                notify(&systemd::status_line(&done.after.summary));
            }
            done.after
        }
        Event::Control(
            Request::Reload {
                force,
                confirm_within_ms: Some(ms),
            },
            reply,
        ) => {
            let done = state
                .reload_provisional(force, Duration::from_millis(ms))
                .await?;
            notify(&systemd::status_line(&done.after.summary));
            let _ = reply.send(match done.value {
                Ok(report) => Response::Reload(Box::new(report)),
                Err(message) => Response::Error { message },
            });
            done.after
        }
        Event::Control(Request::Confirm, reply) => {
            let done = state.confirm().await?;
            notify(&systemd::status_line(&done.after.summary));
            let _ = reply.send(match done.value {
                Ok(generation) => Response::Confirmed { generation },
                Err(message) => Response::Error { message },
            });
            done.after
        }
        Event::Control(Request::Reload { force, .. }, reply) => {
            let done = if force {
                let done = state.force_reload().await?;
                notify(&systemd::status_line(&done.after.summary));
                done
            } else {
                reload(state, Trigger::Control).await?
            };
            let _ = reply.send(Response::Reload(Box::new(done.value)));
            done.after
        }
        // Served by the connection itself (see `connection`): never queued here.
        Event::Control(Request::Logs(_), reply) => {
            let _ = reply.send(Response::Error {
                message: "logs is not served here".into(),
            });
            return Ok(None);
        }
        Event::Control(Request::Loaded, reply) => {
            let done = state.loaded_inputs().await?;
            let _ = reply.send(match done.value {
                Ok(inputs) => Response::Loaded(Box::new(inputs)),
                Err(message) => Response::Error { message },
            });
            done.after
        }
        Event::Control(Request::Status, reply) => {
            // Denials and the rate limit's losses as of now, not of the last tick.
            state.read_denies().await?;
            let mut done = state.status().await?;
            // The rate limit's losses come from the table's counters, which the state reads.
            let unlogged = done.value.events.and_then(|e| e.lost_rate_limit);
            done.value.events = hub.map(|h| crate::state::report::EventCounts {
                lost_rate_limit: unlogged,
                ..h.counts()
            });
            let _ = reply.send(Response::Status(Box::new(done.value)));
            done.after
        }
    }))
}

async fn reload(state: &StateThread, trigger: Trigger) -> Result<Done<ReloadReport>, Gone> {
    let done = state.reload(trigger).await?;
    notify(&systemd::status_line(&done.after.summary));
    Ok(done)
}

/// Reads nftables' notifications as they come and hands them to the loop. If the
/// socket fails, says so and stops: the table is then only checked on reloads.
async fn watch_kernel(monitor: Monitor, tx: mpsc::Sender<Event>) {
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(
            "reading nftables notifications: {e}; foreign changes to the table are no \
             longer repaired (`netpolctl reload` still checks it)"
        );
    };
    let mut fd = match monitor.into_async() {
        Ok(fd) => fd,
        Err(e) => return failed(&e),
    };
    loop {
        let mut ready = match fd.readable_mut().await {
            Ok(r) => r,
            Err(e) => return failed(&e),
        };
        match ready.get_inner_mut().read() {
            Ok(news) => {
                if !news.is_empty() && tx.send(Event::Kernel(news)).await.is_err() {
                    return;
                }
            }
            Err(e) => return failed(&e),
        }
        // `read` took everything queued.
        ready.clear_ready();
    }
}

/// Retries of reloads that failed in a way that may pass without any change of the
/// files (see [`State::wants_retry`]): after 1 s, then twice as long each time up to a
/// minute, until one succeeds or fails for a reason a retry cannot fix. Without this, an
/// edit made while netpold was out of file descriptors would wait for the next edit.
#[derive(Default)]
struct Retry {
    at: Option<tokio::time::Instant>,
    failures: u32,
}

impl Retry {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    /// Schedules, keeps or cancels the retry after what the state last did: `wanted`
    /// is [`State::wants_retry`].
    fn follow(&mut self, wanted: bool) {
        if !wanted {
            *self = Retry::default();
        } else if self.at.is_none() {
            let delay = Self::FIRST
                .saturating_mul(1 << self.failures.min(6))
                .min(Self::MAX);
            tracing::info!("retrying the failed reload in {delay:?}");
            self.at = Some(tokio::time::Instant::now() + delay);
            self.failures += 1;
        }
    }

    /// Resolves when a retry is due (never when none is scheduled), and unschedules it.
    async fn due(&mut self) {
        match self.at {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                self.at = None;
            }
            None => std::future::pending().await,
        }
    }
}

fn notify(state: &str) {
    if let Err(e) = systemd::notify(state) {
        tracing::warn!("telling systemd {state:?}: {e}");
    }
}

fn setup(what: &'static str) -> impl FnOnce(io::Error) -> RunError {
    move |e| RunError::Setup(format!("handling {what}: {e}"))
}

/// The socket file, removed when the daemon stops (if it is still a socket).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        if socket_or_absent(&self.0).is_ok() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Ok when nothing is at `path`, or a socket is (never following a symbolic link);
/// the error names what else is there.
fn socket_or_absent(path: &Path) -> io::Result<()> {
    let kind = match std::fs::symlink_metadata(path) {
        Ok(m) => m.file_type(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if kind.is_socket() {
        return Ok(());
    }
    let what = rules_compiler::load::file_kind(kind);
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{} is {what}, not a socket: refusing to replace it",
            path.display()
        ),
    ))
}

/// Binds the control socket with its final mode already set: it is created under a
/// temporary name, given its mode (and group), then renamed into place, so there is
/// no moment when anyone else may connect. A socket file left by a daemon that died is
/// replaced; one that a live daemon answers on is an error, and so is anything at the
/// path (or the temporary name) that is not a socket: it is left as it is.
fn bind(path: &Path, group: Option<u32>) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    socket_or_absent(path)?;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another netpold is answering on it",
        ));
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    socket_or_absent(&tmp)?;
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    let result = (|| {
        let mode = match group {
            Some(gid) => {
                std::os::unix::fs::chown(&tmp, None, Some(gid))?;
                0o660
            }
            None => 0o600,
        };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// Accepts control connections; each runs in a task of its own, at most
/// [`control::MAX_CONNECTIONS`] at once.
async fn serve(listener: UnixListener, tx: mpsc::Sender<Event>, hub: Option<Arc<Hub>>) {
    let mut gate = Gate::new("control socket", control::MAX_CONNECTIONS);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match gate.admit() {
                Some(permit) => {
                    tokio::spawn(connection(stream, tx.clone(), hub.clone(), permit));
                }
                None => {
                    // Only if the socket takes it without waiting.
                    let _ = stream.try_write(&line(&Response::Error {
                        message: format!(
                            "too many connections ({} open); try again",
                            control::MAX_CONNECTIONS
                        ),
                    }));
                }
            },
            Err(e) => gate.failed(&e).await,
        }
    }
}

/// One connection: requests one per line, answers one per line, in order. A line
/// over [`MAX_REQUEST_BYTES`], or none within [`IDLE_TIMEOUT`], ends it with an error
/// answer; a line that does not decode gets one and the connection goes on.
async fn connection(
    stream: UnixStream,
    tx: mpsc::Sender<Event>,
    hub: Option<Arc<Hub>>,
    _permit: OwnedSemaphorePermit,
) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // One byte over the limit tells a line that is too long from one that fits.
        let limit = MAX_REQUEST_BYTES as u64 + 1;
        let got = tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut read).take(limit).read_until(b'\n', &mut buf),
        )
        .await;
        let request = match got {
            Err(_) => {
                let message = format!("no request within {} s; closing", IDLE_TIMEOUT.as_secs());
                send(&mut write, &Response::Error { message }).await;
                return;
            }
            Ok(Err(_)) | Ok(Ok(0)) => return,
            Ok(Ok(_)) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                } else if buf.len() > MAX_REQUEST_BYTES {
                    let message = format!("request longer than {MAX_REQUEST_BYTES} bytes; closing");
                    send(&mut write, &Response::Error { message }).await;
                    return;
                }
                control::decode_request(&buf)
            }
        };
        let response = match request {
            // Verdict events come from the hub, not the state: `logs` never waits
            // behind a reload, and a follower streams until it closes.
            Ok(Request::Logs(filter)) => match &hub {
                Some(hub) => {
                    logs(hub, &filter, &mut read, &mut write).await;
                    return;
                }
                None => Response::Error {
                    message: "verdict events are off (events: {enabled: false})".into(),
                },
            },
            Ok(request) => {
                let (reply, answer) = oneshot::channel();
                if tx.send(Event::Control(request, reply)).await.is_err() {
                    return;
                }
                match answer.await {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
            Err(message) => Response::Error { message },
        };
        if !send(&mut write, &response).await {
            return;
        }
    }
}

/// Answers a `logs` request: the ring's events that pass `filter`, then the end; or,
/// following, new events until the client closes or falls too far behind to write to.
async fn logs(
    hub: &Hub,
    filter: &crate::events::hub::LogsFilter,
    read: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
) {
    use tokio::sync::broadcast::error::RecvError;
    let (events, follower) = hub.read(filter);
    for e in events {
        if !send(write, &Response::Event(Box::new((*e).clone()))).await {
            return;
        }
    }
    let mut follower = match follower {
        None => {
            send(write, &Response::End).await;
            return;
        }
        Some(None) => {
            let message = format!(
                "{} clients follow the events already; try again later",
                crate::events::hub::MAX_FOLLOWERS
            );
            send(write, &Response::Error { message }).await;
            return;
        }
        Some(Some(f)) => f,
    };
    let mut byte = [0u8; 1];
    loop {
        let response = tokio::select! {
            r = follower.events.recv() => match r {
                Ok(e) if filter.matches(&e) => Response::Event(Box::new((*e).clone())),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    hub.count(|c| c.lost_followers += n);
                    crate::telemetry::events_lost("follower", n);
                    Response::Dropped { events: n }
                }
                Err(RecvError::Closed) => return,
            },
            // The client closed (or sent something: a follower only listens).
            _ = read.read(&mut byte) => return,
        };
        if !send(write, &response).await {
            return;
        }
    }
}

/// A response as one line.
fn line(response: &Response) -> Vec<u8> {
    let mut text = serde_json::to_string(response).unwrap_or_else(|e| {
        format!(r#"{{"response":"error","message":"serialising the answer: {e}"}}"#)
    });
    text.push('\n');
    text.into_bytes()
}

/// Writes one answer, waiting at most [`IDLE_TIMEOUT`] for the client to take it;
/// false when the connection is done for.
async fn send(write: &mut OwnedWriteHalf, response: &Response) -> bool {
    let bytes = line(response);
    matches!(
        tokio::time::timeout(IDLE_TIMEOUT, write.write_all(&bytes)).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long after scheduling the retry fires.
    async fn fires_after(retry: &mut Retry) -> Duration {
        let start = tokio::time::Instant::now();
        retry.due().await;
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_to_a_minute_and_stop_when_not_wanted() {
        let mut retry = Retry::default();
        retry.follow(false);
        assert!(retry.at.is_none(), "nothing failed");
        let mut waits = Vec::new();
        for _ in 0..9 {
            retry.follow(true);
            // Other events in between keep the schedule.
            retry.follow(true);
            waits.push(fires_after(&mut retry).await.as_secs());
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        retry.follow(false);
        retry.follow(true);
        assert_eq!(fires_after(&mut retry).await.as_secs(), 1, "starts over");
    }
}
