//! Where events are kept and handed out: the bounded ring `netpolctl logs` reads, the
//! followers of `logs --follow`, and the counts `status` shows.
//!
//! Shared between the events thread (which publishes) and the control connections
//! (which read); every lock is held for a push or a copy, never across I/O, so a
//! client can never slow the events thread. Followers share one bounded broadcast
//! buffer ([`FOLLOW_BUFFER`]): a follower that falls behind loses the oldest events it
//! has not taken, counted, and the publisher never waits for anyone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::state::report::{EventCounts, Verdict, VerdictEvent};
use crate::telemetry;

/// Events buffered for followers: one that falls further behind loses the oldest.
pub const FOLLOW_BUFFER: usize = 1024;
/// Followers at once: half the control connections, so that `reload` and `status`
/// always find room.
pub const MAX_FOLLOWERS: usize = crate::control::MAX_CONNECTIONS / 2;

/// Which events a `logs` request wants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsFilter {
    /// Keep streaming new events after the ones in the ring.
    #[serde(default)]
    pub follow: bool,
    /// At most this many of the ring's events (the newest); `None`: all of them.
    #[serde(default)]
    pub last: Option<usize>,
    /// Only events of this local endpoint (`ns/name`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Only events of this verdict.
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

impl LogsFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &VerdictEvent) -> bool {
        self.endpoint
            .as_ref()
            .is_none_or(|e| event.endpoint.as_ref() == Some(e))
            && self.verdict.is_none_or(|v| event.verdict == v)
    }
}

struct Ring {
    events: VecDeque<Arc<VerdictEvent>>,
    capacity: usize,
    counts: EventCounts,
}

/// The ring, the followers and the counts; see the module doc.
pub struct Hub {
    ring: Mutex<Ring>,
    followers: broadcast::Sender<Arc<VerdictEvent>>,
    following: Arc<AtomicUsize>,
}

/// A `logs --follow` client's subscription; lets its place go when dropped.
pub struct Follower {
    /// New events, as they are published.
    pub events: broadcast::Receiver<Arc<VerdictEvent>>,
    following: Arc<AtomicUsize>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.following.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hub {
    /// A hub keeping the last `capacity` events (at least 1), for NFLOG `group`.
    pub fn new(capacity: usize, group: u16) -> Hub {
        Hub {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                capacity: capacity.max(1),
                counts: EventCounts {
                    group,
                    ..EventCounts::default()
                },
            }),
            followers: broadcast::channel(FOLLOW_BUFFER).0,
            following: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding it leaves whole events and counts: go on with them.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `event` (dropping the oldest when full, counted) and hands it to followers.
    pub fn publish(&self, event: VerdictEvent) {
        let event = Arc::new(event);
        let mut ring = self.lock();
        match event.verdict {
            Verdict::Deny => ring.counts.deny += 1,
            Verdict::Audit => ring.counts.audit += 1,
        }
        if ring.events.len() >= ring.capacity {
            ring.events.pop_front();
            ring.counts.lost_ring += 1;
            telemetry::events_lost("ring", 1);
        }
        ring.events.push_back(Arc::clone(&event));
        // Under the lock, so that a follower starting now sees each event once: in its
        // snapshot or on its channel. No receiver is not an error.
        let _ = self.followers.send(event);
    }

    /// The ring's events passing `filter`, the newest `filter.last`, oldest first; and
    /// with `filter.follow`, the subscription to those after them (`None` when
    /// [`MAX_FOLLOWERS`] are following already).
    pub fn read(&self, filter: &LogsFilter) -> (Vec<Arc<VerdictEvent>>, Option<Option<Follower>>) {
        let ring = self.lock();
        let mut events: Vec<Arc<VerdictEvent>> = ring
            .events
            .iter()
            .filter(|e| filter.matches(e))
            .cloned()
            .collect();
        if let Some(n) = filter.last {
            events.drain(..events.len().saturating_sub(n));
        }
        let follower = filter.follow.then(|| {
            let taken = self
                .following
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < MAX_FOLLOWERS).then_some(n + 1)
                });
            taken.ok().map(|_| Follower {
                events: self.followers.subscribe(),
                following: Arc::clone(&self.following),
            })
        });
        drop(ring);
        (events, follower)
    }

    /// Changes the counts (the events thread's, for what it alone sees).
    pub fn count(&self, f: impl FnOnce(&mut EventCounts)) {
        f(&mut self.lock().counts);
    }

    /// The counts now.
    pub fn counts(&self) -> EventCounts {
        let ring = self.lock();
        EventCounts {
            in_ring: ring.events.len() as u64,
            ..ring.counts.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::report::tests::full_event;

    fn event(n: u16, verdict: Verdict, endpoint: &str) -> VerdictEvent {
        VerdictEvent {
            src_port: n,
            verdict,
            endpoint: Some(endpoint.into()),
            ..full_event()
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_counts_what_it_drops() {
        let hub = Hub::new(3, 7);
        for n in 0..5 {
            hub.publish(event(n, Verdict::Deny, "db/pg"));
        }
        let (events, follower) = hub.read(&LogsFilter::default());
        assert!(follower.is_none());
        let ports: Vec<u16> = events.iter().map(|e| e.src_port).collect();
        assert_eq!(ports, [2, 3, 4]);
        let c = hub.counts();
        assert_eq!((c.group, c.deny, c.lost_ring, c.in_ring), (7, 5, 2, 3));
    }

    #[test]
    fn filters_by_endpoint_verdict_and_count() {
        let hub = Hub::new(100, 7);
        hub.publish(event(1, Verdict::Deny, "db/pg"));
        hub.publish(event(2, Verdict::Audit, "db/pg"));
        hub.publish(event(3, Verdict::Deny, "web/a"));
        hub.publish(event(4, Verdict::Deny, "db/pg"));
        let ports =
            |f: LogsFilter| -> Vec<u16> { hub.read(&f).0.iter().map(|e| e.src_port).collect() };
        assert_eq!(
            ports(LogsFilter {
                endpoint: Some("db/pg".into()),
                ..Default::default()
            }),
            [1, 2, 4]
        );
        assert_eq!(
            ports(LogsFilter {
                verdict: Some(Verdict::Deny),
                last: Some(2),
                ..Default::default()
            }),
            [3, 4]
        );
        assert_eq!(
            ports(LogsFilter {
                last: Some(0),
                ..Default::default()
            }),
            [0u16; 0]
        );
        assert_eq!(hub.counts().audit, 1);
    }

    #[test]
    fn followers_see_each_event_once_are_bounded_and_lag_without_blocking() {
        let hub = Hub::new(10, 7);
        hub.publish(event(1, Verdict::Deny, "db/pg"));
        let follow = LogsFilter {
            follow: true,
            ..Default::default()
        };
        let (before, follower) = hub.read(&follow);
        let mut follower = follower.unwrap().unwrap();
        assert_eq!(before.len(), 1);
        hub.publish(event(2, Verdict::Deny, "db/pg"));
        assert_eq!(follower.events.try_recv().unwrap().src_port, 2);
        // A follower that takes nothing: the publisher goes on, the follower lags.
        for n in 0..(FOLLOW_BUFFER as u16 + 10) {
            hub.publish(event(n, Verdict::Deny, "db/pg"));
        }
        match follower.events.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("{other:?}"),
        }
        // Places are limited, and given back.
        let mut others: Vec<Follower> = (1..MAX_FOLLOWERS)
            .map(|_| hub.read(&follow).1.unwrap().unwrap())
            .collect();
        assert!(hub.read(&follow).1.unwrap().is_none(), "all places taken");
        others.pop();
        assert!(hub.read(&follow).1.unwrap().is_some());
    }
}
