//! Verdict events: the packets the kernel logs over NFLOG at the end of a deny or audit
//! chain become one event per connection attempt, judged against the model in force,
//! and go to the daemon log (target `netpol::verdict`), the optional event file and the
//! ring `netpolctl logs` reads ([`hub`]).
//!
//! Runs on a thread of its own ([`spawn`]) with its own small runtime: a flood of
//! logged packets costs this thread, never the reload state or the daemon's loop. The
//! kernel's rate limit bounds what arrives; [`dedup`] bounds what waits; the ring
//! bounds what is kept. Decides nothing about what is allowed: endpoint, peer and
//! policies come from `rules_compiler::events::judge`.

pub mod dedup;
pub mod hub;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rules_compiler::events::{judge, Observed};
use rules_compiler::model::Model;
use rules_compiler::plan::{parse_log_prefix, Mode};
use rules_compiler::resolve::Index;
use tokio::sync::{watch, Notify};

use self::dedup::{Added, Dedup, Pending};
use self::hub::Hub;
use crate::config::Events;
use crate::netlink::{Logged, LoggedPacket, Nflog};
use crate::state::report::{
    rfc3339, EventProtocol, EventRule, EventsStopped, Verdict, VerdictEvent,
};
use crate::telemetry;

/// Tuples in their dedup window at most: far above what the default rate limit lets
/// through in a window (50/s × 10 s + 100), small enough to cost a few MB.
const MAX_PENDING: usize = 65_536;

/// The pipeline's synchronous core: packets in, events out. Separate from the thread
/// and the socket so that it is tested with packets made in the test.
pub struct Pipeline {
    mode: Mode,
    dedup: Dedup,
    hub: Arc<Hub>,
    file: Option<EventFile>,
}

impl Pipeline {
    /// A pipeline under host-wide `mode`, with `events`' window, publishing to `hub`.
    pub fn new(mode: Mode, events: &Events, hub: Arc<Hub>) -> Pipeline {
        Pipeline {
            mode,
            dedup: Dedup::new(events.dedup_window, MAX_PENDING),
            hub,
            file: events.file.clone().map(EventFile::open),
        }
    }

    /// Takes one logged packet read now; a packet whose prefix is not netpol's is
    /// counted as unreadable. An event pushed out of the window early is judged and
    /// emitted with `index`.
    pub fn packet(&mut self, p: &LoggedPacket, index: Option<&Index<'_>>) {
        let Some((verdict, direction)) = parse_log_prefix(&p.prefix) else {
            self.hub.count(|c| c.unreadable += 1);
            telemetry::events_lost("unreadable", 1);
            return;
        };
        let observed = Observed {
            verdict,
            direction,
            protocol: p.protocol,
            src: p.src,
            src_port: p.src_port,
            dst: p.dst,
            dst_port: p.dst_port,
        };
        match self.dedup.add(observed, Instant::now(), SystemTime::now()) {
            Added::Folded => self.hub.count(|c| c.deduplicated += 1),
            Added::New => {}
            Added::Evicted(p) | Added::Due(p) => self.emit(p, index),
        }
    }

    /// Emits the events whose window ended by `now`.
    pub fn flush(&mut self, now: Instant, index: Option<&Index<'_>>) {
        for p in self.dedup.due(now) {
            self.emit(p, index);
        }
    }

    /// When the next event is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.dedup.next_due()
    }

    /// Reopens the event file (SIGHUP, after logrotate moved it).
    pub fn reopen(&mut self) {
        if let Some(f) = self.file.take() {
            self.file = Some(EventFile::open(f.path));
        }
    }

    fn emit(&mut self, p: Pending, index: Option<&Index<'_>>) {
        let judged = index
            .map(|i| judge(i, self.mode, &p.observed))
            .unwrap_or_default();
        let names = |v: &[rules_compiler::model::ObjectName]| -> Vec<String> {
            v.iter().map(ToString::to_string).collect()
        };
        let o = p.observed;
        let event = VerdictEvent {
            time: rfc3339(p.first),
            verdict: o.verdict.into(),
            direction: o.direction.into(),
            endpoint: judged.endpoint.as_ref().map(ToString::to_string),
            peer: judged.peer.as_ref().map(ToString::to_string),
            src: o.src,
            src_port: o.src_port,
            dst: o.dst,
            dst_port: o.dst_port,
            protocol: EventProtocol::of(o.protocol),
            policies: names(&judged.policies),
            would_allow: names(&judged.would_allow),
            cluster_rule: judged.cluster_rule.as_ref().map(|r| EventRule {
                tier: r.tier.as_str().to_string(),
                policy: r.policy.clone(),
                field: format!("{}[{}]", o.direction, r.rule),
                name: r.name.clone(),
            }),
            packets: p.packets,
        };
        tracing::info!(
            target: "netpol::verdict",
            verdict = %event.verdict,
            direction = %event.direction,
            endpoint = event.endpoint.as_deref().unwrap_or("-"),
            peer = event.peer.as_deref().unwrap_or("-"),
            src = %event.src,
            src_port = event.src_port,
            dst = %event.dst,
            dst_port = event.dst_port,
            protocol = %event.protocol,
            policies = %event.policies.join(","),
            would_allow = %event.would_allow.join(","),
            cluster_rule = %event.cluster_rule.as_ref().map(ToString::to_string).unwrap_or_default(),
            packets = event.packets,
            "{} {} {}",
            event.verdict,
            event.direction,
            event.endpoint.as_deref().unwrap_or("-"),
        );
        telemetry::verdict(
            event.endpoint.as_deref().unwrap_or(""),
            &event.direction.to_string(),
            &event.verdict.to_string(),
        );
        if event.verdict == Verdict::Audit {
            // Bounded: only policies annotated audit are labels (not the enforced ones
            // a host-wide audit names).
            if let Some(index) = index {
                for policy in &judged.policies {
                    if index.model.audit_policies().any(|a| &a.id == policy) {
                        telemetry::audit_policy_event(&policy.to_string());
                    }
                }
            }
        }
        if let Some(f) = &mut self.file {
            f.write(&event);
        }
        self.hub.publish(event);
    }
}

/// The event file: JSON lines, appended; a failure is logged once until it works again.
struct EventFile {
    path: PathBuf,
    file: Option<File>,
}

impl EventFile {
    fn open(path: PathBuf) -> EventFile {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&path);
        let file = match file {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!("opening the event file {}: {e}", path.display());
                None
            }
        };
        EventFile { path, file }
    }

    fn write(&mut self, event: &VerdictEvent) {
        let Some(file) = &mut self.file else { return };
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        // One write of a whole line: readers never see half of one.
        if let Err(e) = file.write_all(&line) {
            tracing::error!(
                "writing to the event file {}: {e}; reopened on SIGHUP",
                self.path.display()
            );
            self.file = None;
        }
    }
}

/// What the events thread is given.
pub struct Wiring {
    /// The model of each applied ruleset, as the state publishes it.
    pub models: watch::Receiver<Option<Arc<Model>>>,
    /// Told on SIGHUP: reopen the event file.
    pub reopen: Arc<Notify>,
}

/// How long the events thread waits after a failure before it binds NFLOG again.
pub const RETRY: Duration = Duration::from_secs(5);

/// Binds NFLOG `events.log.group` (an error here stops start-up: a group someone else
/// reads) and starts the events thread, which restarts itself after a failure.
pub fn spawn(mode: Mode, events: &Events, hub: Arc<Hub>, wiring: Wiring) -> Result<(), String> {
    let group = events.log.group;
    let nflog = Nflog::open(group).map_err(|e| format!("binding NFLOG group {group}: {e}"))?;
    let events = events.clone();
    std::thread::Builder::new()
        .name("netpold-events".into())
        .spawn(move || {
            let mut first = Some(nflog);
            let open = || match first.take() {
                Some(n) => Ok(n),
                None => Nflog::open(group).map_err(|e| format!("binding NFLOG group {group}: {e}")),
            };
            let run = |nflog: Nflog, pipeline: &mut Pipeline, wiring: &mut Wiring| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("starting the events runtime: {e}"))?;
                runtime.block_on(run(nflog, pipeline, &hub, wiring))
            };
            supervise(
                open,
                run,
                || Pipeline::new(mode, &events, Arc::clone(&hub)),
                &hub,
                wiring,
                RETRY,
            );
        })
        .map_err(|e| format!("starting the events thread: {e}"))?;
    Ok(())
}

/// Why [`run`] returned: `Ok(())` when the daemon is shutting down, else the error
/// that stopped the reading.
type Ended = Result<(), String>;

/// Runs the events loop until shutdown. When it fails (an error, or a panic: a bug
/// must not end event reporting for the daemon's life), the hub says so (`status`),
/// the gauge `netpol_verdict_events_up` drops to 0, and after `retry` the source is
/// opened again. A panic also loses the events pending in the dedup window: the
/// pipeline is made anew, as its state is not trusted.
fn supervise<S>(
    mut open: impl FnMut() -> Result<S, String>,
    mut run: impl FnMut(S, &mut Pipeline, &mut Wiring) -> Ended,
    new_pipeline: impl Fn() -> Pipeline,
    hub: &Hub,
    mut wiring: Wiring,
    retry: Duration,
) {
    let mut pipeline = new_pipeline();
    loop {
        let ended = match open() {
            Ok(source) => {
                if hub.counts().stopped.is_some() {
                    tracing::info!("verdict events: reading NFLOG again");
                }
                hub.count(|c| c.stopped = None);
                telemetry::events_up(true);
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(source, &mut pipeline, &mut wiring)
                }));
                match ran {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e,
                    Err(panic) => {
                        pipeline = new_pipeline();
                        format!("panicked: {}", panic_message(&*panic))
                    }
                }
            }
            Err(e) => e,
        };
        tracing::error!(
            "verdict events stopped: {ended}; trying again in {}",
            humantime::format_duration(retry)
        );
        telemetry::events_up(false);
        hub.count(|c| {
            c.stopped = Some(EventsStopped {
                at: rfc3339(SystemTime::now()),
                reason: ended,
            })
        });
        std::thread::sleep(retry);
    }
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The events thread's loop: one turn per model; the index borrows the model, which
/// lives as long as the turn.
async fn run(nflog: Nflog, pipeline: &mut Pipeline, hub: &Hub, wiring: &mut Wiring) -> Ended {
    let mut fd = nflog.into_async().map_err(|e| e.to_string())?;
    // The socket's own count of packets it could not read, last seen.
    let mut unreadable = 0;
    loop {
        let model = wiring.models.borrow_and_update().clone();
        // Built at the first event under this model, not at every reload: a host
        // that denies nothing never pays for it.
        let built = std::cell::OnceCell::new();
        let index = || {
            model
                .as_deref()
                .map(|m| built.get_or_init(|| Index::new(m)))
        };
        loop {
            let due = pipeline
                .next_due()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = fd.readable_mut() => {
                    let mut ready = match r {
                        Ok(r) => r,
                        Err(e) => return Err(format!("waiting on the NFLOG socket: {e}")),
                    };
                    match ready.get_inner_mut().read() {
                        Ok(logged) => {
                            for l in logged {
                                match l {
                                    Logged::Packet(p) => pipeline.packet(&p, index()),
                                    Logged::Lost => {
                                        hub.count(|c| c.lost_socket += 1);
                                        telemetry::events_lost("socket", 1);
                                    }
                                }
                            }
                        }
                        Err(e) => return Err(format!("reading the NFLOG socket: {e}")),
                    }
                    let now = ready.get_inner().unreadable();
                    if now > unreadable {
                        hub.count(|c| c.unreadable += now - unreadable);
                        telemetry::events_lost("unreadable", now - unreadable);
                        unreadable = now;
                    }
                    ready.clear_ready();
                }
                _ = tokio::time::sleep_until(due) => {
                    pipeline.flush(Instant::now(), index());
                }
                _ = wiring.reopen.notified() => pipeline.reopen(),
                r = wiring.models.changed() => {
                    if r.is_err() {
                        return Ok(());
                    }
                    // Events due now are judged by the model they were logged under.
                    let now = Instant::now();
                    if pipeline.next_due().is_some_and(|due| due <= now) {
                        pipeline.flush(now, index());
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
