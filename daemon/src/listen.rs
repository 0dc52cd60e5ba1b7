//! What keeps netpold's listeners (the metrics port and the control socket) from being
//! used to exhaust it: a cap on open connections ([`Gate`]), a backoff when `accept`
//! fails (out of file descriptors: EMFILE, ENFILE), rate-limited logging of both
//! ([`Throttle`]), and the file-descriptor limit raised at start-up
//! ([`raise_fd_limit`]).
//!
//! It decides nothing about what a connection may ask; it must never block the main
//! loop, and never log once per connection or per failure.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How often a repeated event is logged at most (with a count of the others).
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// The first wait after a failed `accept`; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait after failed `accept`s in a row.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Lets the first of a kind of event through, then at most one every `every`,
/// carrying how many were held back since.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// At most one event every `every`.
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            held: 0,
        }
    }

    /// An event at `now`: `Some(held back since the last one let through)` when it is
    /// to be logged, `None` when it is only counted.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

/// `" (and N more since the last report)"`, or nothing.
fn more(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(" (and {held} more since the last report)")
    }
}

/// The admission of one listener: at most `limit` connections open at once, a backoff
/// after failed accepts, and logs of both that stay short whatever a client does.
#[derive(Debug)]
pub struct Gate {
    what: &'static str,
    limit: usize,
    permits: Arc<Semaphore>,
    backoff: Duration,
    failures: Throttle,
    refusals: Throttle,
}

impl Gate {
    /// A gate for the listener called `what` in logs ("metrics listener", "control
    /// socket") with at most `limit` connections open.
    pub fn new(what: &'static str, limit: usize) -> Gate {
        Gate {
            what,
            limit,
            permits: Arc::new(Semaphore::new(limit)),
            backoff: FIRST_BACKOFF,
            failures: Throttle::new(LOG_EVERY),
            refusals: Throttle::new(LOG_EVERY),
        }
    }

    /// A connection was accepted: a permit to serve it (held for as long as it is
    /// open), or `None` when `limit` are open already (the caller closes it at once).
    pub fn admit(&mut self) -> Option<OwnedSemaphorePermit> {
        self.backoff = FIRST_BACKOFF;
        match self.permits.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                if let Some(held) = self.refusals.hit(Instant::now()) {
                    tracing::warn!(
                        "{}: refused a connection: {} are open, the limit{}",
                        self.what,
                        self.limit,
                        more(held)
                    );
                }
                None
            }
        }
    }

    /// `accept` failed: logs it (rate-limited) and waits before the next try, longer
    /// each time in a row, so that running out of file descriptors is not a busy loop.
    pub async fn failed(&mut self, e: &io::Error) {
        let wait = self.backoff;
        if let Some(held) = self.failures.hit(Instant::now()) {
            tracing::error!(
                "{}: accepting a connection failed: {e}; retrying in {} ms{}",
                self.what,
                wait.as_millis(),
                more(held)
            );
        }
        tokio::time::sleep(wait).await;
        self.backoff = (wait * 2).min(MAX_BACKOFF);
    }
}

/// Raises the soft limit on open files to the hard limit (systemd starts services with
/// 1,024 soft and 524,288 hard), so that the connection caps, not the limit, bound
/// what clients can take. Logged; a failure is logged and otherwise ignored.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!("open file limit raised from {soft} to {hard}"),
            Err(e) => tracing::warn!("raising the open file limit from {soft} to {hard}: {e}"),
        },
        Ok((soft, _)) => tracing::info!("open file limit: {soft}"),
        Err(e) => tracing::warn!("reading the open file limit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_the_first_through_then_one_per_period_with_a_count() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.hit(t0), Some(0));
        for ms in [1, 500, 9_999] {
            assert_eq!(t.hit(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(t.hit(t0 + Duration::from_secs(10)), Some(3));
        assert_eq!(t.hit(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.hit(t0 + Duration::from_secs(60)), Some(1));
        // A clock read out of order counts as inside the period.
        assert_eq!(t.hit(t0), None);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_up_to_a_second_and_reset_on_success() {
        let mut g = Gate::new("test", 1);
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        let mut waits = Vec::new();
        for _ in 0..6 {
            let t = tokio::time::Instant::now();
            g.failed(&e).await;
            waits.push(t.elapsed().as_millis());
        }
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        let permit = g.admit().expect("one may be open");
        assert!(g.admit().is_none(), "a second is over the limit");
        drop(permit);
        assert!(g.admit().is_some(), "the permit came back");
        let t = tokio::time::Instant::now();
        g.failed(&e).await;
        assert_eq!(t.elapsed().as_millis(), 100, "an accept resets the backoff");
    }
}
