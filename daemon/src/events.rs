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
use crate::state::report::{rfc3339, EventProtocol, Verdict, VerdictEvent};
use crate::telemetry;

/// Events pending in the dedup window at most: far above what the default rate limit
/// lets through in a window (50/s × 10 s + 100), small enough to cost a few MB.
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
            Added::Evicted(p) => self.emit(p, index),
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

/// Binds NFLOG `events.log.group` (an error here stops start-up: a group someone else
/// reads) and starts the events thread.
pub fn spawn(mode: Mode, events: &Events, hub: Arc<Hub>, wiring: Wiring) -> Result<(), String> {
    let group = events.log.group;
    let nflog = Nflog::open(group).map_err(|e| format!("binding NFLOG group {group}: {e}"))?;
    let pipeline = Pipeline::new(mode, events, Arc::clone(&hub));
    std::thread::Builder::new()
        .name("netpold-events".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("verdict events stopped: starting their runtime: {e}");
                    return;
                }
            };
            runtime.block_on(run(nflog, pipeline, hub, wiring));
        })
        .map_err(|e| format!("starting the events thread: {e}"))?;
    Ok(())
}

/// The events thread's loop: one turn per model; the index borrows the model, which
/// lives as long as the turn.
async fn run(nflog: Nflog, mut pipeline: Pipeline, hub: Arc<Hub>, mut wiring: Wiring) {
    let mut fd = match nflog.into_async() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!("verdict events stopped: {e}");
            return;
        }
    };
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
                        Err(e) => return tracing::error!("verdict events stopped: {e}"),
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
                        Err(e) => return tracing::error!("verdict events stopped: {e}"),
                    }
                    ready.clear_ready();
                }
                _ = tokio::time::sleep_until(due) => {
                    pipeline.flush(Instant::now(), index());
                }
                _ = wiring.reopen.notified() => pipeline.reopen(),
                r = wiring.models.changed() => {
                    if r.is_err() {
                        return;
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
