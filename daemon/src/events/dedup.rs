//! Folding retransmissions: packets of the same verdict and 5-tuple (an [`Observed`])
//! within a window are one event, reported when the window of its first packet ends,
//! with the count of its packets.
//!
//! Decides only which packets are one event and when it is due; never judges, logs or
//! stores events. Bounded: at most `max` events pending; a new one beyond that makes the
//! oldest due at once (reported early, with the packets seen so far), so a flood of
//! distinct tuples costs a bounded map, never an unbounded one.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use rules_compiler::events::Observed;

/// An event whose packets are being counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The packet, less its count.
    pub observed: Observed,
    /// When its first packet was read (the event's time).
    pub first: SystemTime,
    /// Packets of it so far.
    pub packets: u64,
}

/// Pending events by tuple, with the order their windows end in.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    max: usize,
    pending: HashMap<Observed, Pending>,
    /// (when the window ends, tuple), in the order the first packets came: windows are
    /// all as long, so they end in this order too.
    order: VecDeque<(Instant, Observed)>,
}

impl Dedup {
    /// Folds packets within `window` (zero: every packet is an event), with at most
    /// `max` events pending (at least 1).
    pub fn new(window: Duration, max: usize) -> Dedup {
        Dedup {
            window,
            max: max.max(1),
            pending: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Takes one packet read at `now` (`wall` on the clock) and says what became of it:
    /// folded into an event pending, or the start of one (pushing out the oldest when
    /// `max` are pending).
    pub fn add(&mut self, observed: Observed, now: Instant, wall: SystemTime) -> Added {
        if self.window.is_zero() {
            return Added::Due(Pending {
                observed,
                first: wall,
                packets: 1,
            });
        }
        if let Some(p) = self.pending.get_mut(&observed) {
            p.packets += 1;
            return Added::Folded;
        }
        let evicted = if self.pending.len() >= self.max {
            self.order
                .pop_front()
                .and_then(|(_, o)| self.pending.remove(&o))
        } else {
            None
        };
        self.pending.insert(
            observed,
            Pending {
                observed,
                first: wall,
                packets: 1,
            },
        );
        self.order.push_back((now + self.window, observed));
        match evicted {
            Some(p) => Added::Evicted(p),
            None => Added::New,
        }
    }

    /// The events whose window has ended by `now`, oldest first.
    pub fn due(&mut self, now: Instant) -> Vec<Pending> {
        let mut due = Vec::new();
        while let Some(&(end, o)) = self.order.front() {
            if end > now {
                break;
            }
            self.order.pop_front();
            due.extend(self.pending.remove(&o));
        }
        due
    }

    /// When the next window ends, if any is pending.
    pub fn next_due(&self) -> Option<Instant> {
        self.order.front().map(|&(end, _)| end)
    }

    /// Events pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// What [`Dedup::add`] did with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// It counts towards an event pending.
    Folded,
    /// It starts an event.
    New,
    /// It starts an event, and this one was pushed out early to make room.
    Evicted(Pending),
    /// It is an event, due now (a zero window).
    Due(Pending),
}

#[cfg(test)]
mod tests {
    use rules_compiler::model::Direction;
    use rules_compiler::plan::EventVerdict;

    use super::*;

    fn syn(src_port: u16) -> Observed {
        Observed {
            verdict: EventVerdict::Deny,
            direction: Direction::Ingress,
            protocol: 6,
            src: "198.18.0.9".parse().unwrap(),
            src_port,
            dst: "198.18.0.2".parse().unwrap(),
            dst_port: 5432,
        }
    }

    #[test]
    fn retransmits_within_the_window_are_one_event_with_their_count() {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        let mut d = Dedup::new(Duration::from_secs(10), 100);
        assert_eq!(d.add(syn(1), t0, wall), Added::New);
        // Linux retransmits a SYN after 1, 3 and 7 s.
        for s in [1, 3, 7] {
            assert_eq!(
                d.add(syn(1), t0 + Duration::from_secs(s), wall),
                Added::Folded
            );
        }
        assert_eq!(d.add(syn(2), t0 + Duration::from_secs(2), wall), Added::New);
        // A deny and an audit of the same tuple are two events.
        let audit = Observed {
            verdict: EventVerdict::Audit,
            ..syn(1)
        };
        assert_eq!(d.add(audit, t0 + Duration::from_secs(2), wall), Added::New);
        assert!(d.due(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(d.next_due(), Some(t0 + Duration::from_secs(10)));
        let due = d.due(t0 + Duration::from_secs(10));
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].observed, due[0].packets), (syn(1), 4));
        let due = d.due(t0 + Duration::from_secs(12));
        assert_eq!(due.len(), 2);
        assert!(d.is_empty());
        // After its window, the same tuple is a new event.
        assert_eq!(
            d.add(syn(1), t0 + Duration::from_secs(13), wall),
            Added::New
        );
    }

    #[test]
    fn a_zero_window_makes_every_packet_an_event_at_once() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::ZERO, 10);
        // The same tuple twice in the same instant: two events, none pending.
        for _ in 0..2 {
            match d.add(syn(1), t0, SystemTime::UNIX_EPOCH) {
                Added::Due(p) => assert_eq!((p.observed, p.packets), (syn(1), 1)),
                other => panic!("{other:?}"),
            }
        }
        assert!(d.is_empty());
        assert_eq!(d.next_due(), None);
    }

    #[test]
    fn the_map_is_bounded_and_the_oldest_goes_early() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(10), 3);
        for p in 0..3 {
            d.add(syn(p), t0, SystemTime::UNIX_EPOCH);
        }
        match d.add(syn(9), t0, SystemTime::UNIX_EPOCH) {
            Added::Evicted(p) => assert_eq!(p.observed, syn(0)),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.len(), 3);
        for p in 10..10_000 {
            d.add(syn(p), t0, SystemTime::UNIX_EPOCH);
        }
        assert_eq!(d.len(), 3);
    }
}
