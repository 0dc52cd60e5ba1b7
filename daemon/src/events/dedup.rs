//! Folding retransmissions: packets of the same verdict and 5-tuple (an [`Observed`])
//! within a window are one event, with the count of its packets.
//!
//! An event is due [`QUIET`] after its last packet (a `logs -f` reader sees it within
//! seconds, SYN retransmits at 1 s still folded in) or when its window ends, whichever
//! comes first; packets of the tuple later in the window are still folded (counted as
//! deduplicated, not reported again), so one connection attempt stays one event.
//!
//! Decides only which packets are one event and when it is due; never judges, logs or
//! stores events. Bounded: at most `max` tuples in their window; a new one beyond that
//! ends the oldest window at once (reported early if it was not yet, with the packets
//! seen so far), so a flood of distinct tuples costs a bounded map, never an unbounded
//! one.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use rules_compiler::events::Observed;

/// How long a tuple must be quiet before its event is due: more than the first SYN
/// retransmit's 1 s, so a refused connect attempt is one event of its packets.
pub const QUIET: Duration = Duration::from_millis(1500);

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

/// A tuple in its window: the event, until it is due; then only the fold.
#[derive(Debug)]
struct Window {
    /// `None` once reported.
    event: Option<Pending>,
    /// When the event is due if no packet comes before.
    quiet_until: Instant,
}

/// Tuples in their window, with the order their windows end in and the times they
/// go quiet.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    quiet: Duration,
    max: usize,
    windows: HashMap<Observed, Window>,
    /// (when the window ends, tuple), in the order the first packets came: windows are
    /// all as long, so they end in this order too.
    ends: VecDeque<(Instant, Observed)>,
    /// (when the tuple goes quiet, tuple), one per packet, in the order packets came:
    /// quiet times are all as long, so they come in this order too. Entries a later
    /// packet overtook are skipped when they come up.
    quiets: VecDeque<(Instant, Observed)>,
}

impl Dedup {
    /// Folds packets within `window` (zero: every packet is an event), with at most
    /// `max` tuples in their window (at least 1); an event is due [`QUIET`] after its
    /// last packet at the latest.
    pub fn new(window: Duration, max: usize) -> Dedup {
        Dedup {
            window,
            quiet: QUIET.min(window),
            max: max.max(1),
            windows: HashMap::new(),
            ends: VecDeque::new(),
            quiets: VecDeque::new(),
        }
    }

    /// Takes one packet read at `now` (`wall` on the clock) and says what became of it:
    /// folded into an event (pending or reported), or the start of one (ending the
    /// oldest window when `max` are open).
    pub fn add(&mut self, observed: Observed, now: Instant, wall: SystemTime) -> Added {
        let fresh = Pending {
            observed,
            first: wall,
            packets: 1,
        };
        if self.window.is_zero() {
            return Added::Due(fresh);
        }
        let quiet_until = now + self.quiet;
        if let Some(w) = self.windows.get_mut(&observed) {
            if let Some(e) = &mut w.event {
                e.packets += 1;
                w.quiet_until = quiet_until;
                self.quiets.push_back((quiet_until, observed));
            }
            return Added::Folded;
        }
        let evicted = if self.windows.len() >= self.max {
            self.ends
                .pop_front()
                .and_then(|(_, o)| self.windows.remove(&o))
                .and_then(|w| w.event)
        } else {
            None
        };
        self.windows.insert(
            observed,
            Window {
                event: Some(fresh),
                quiet_until,
            },
        );
        self.ends.push_back((now + self.window, observed));
        self.quiets.push_back((quiet_until, observed));
        match evicted {
            Some(p) => Added::Evicted(p),
            None => Added::New,
        }
    }

    /// The events due by `now` (quiet, or their window ended), in the order they
    /// became due; windows that ended are closed.
    pub fn due(&mut self, now: Instant) -> Vec<Pending> {
        let mut due = Vec::new();
        while let Some(&(at, o)) = self.quiets.front() {
            if at > now {
                break;
            }
            self.quiets.pop_front();
            if let Some(w) = self.windows.get_mut(&o) {
                if w.quiet_until == at {
                    due.extend(w.event.take());
                }
            }
        }
        while let Some(&(end, o)) = self.ends.front() {
            if end > now {
                break;
            }
            self.ends.pop_front();
            due.extend(self.windows.remove(&o).and_then(|w| w.event));
        }
        due
    }

    /// When the next event may be due or window end, if any tuple is in its window.
    pub fn next_due(&self) -> Option<Instant> {
        let quiet = self.quiets.front().map(|&(at, _)| at);
        let end = self.ends.front().map(|&(at, _)| at);
        quiet.into_iter().chain(end).min()
    }

    /// Tuples in their window.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no tuple is in its window.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

/// What [`Dedup::add`] did with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// It counts towards an event pending, or is folded into one reported.
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

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_refused_connect_is_one_event_due_when_it_goes_quiet() {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        let mut d = Dedup::new(Duration::from_secs(10), 100);
        assert_eq!(d.add(syn(1), t0, wall), Added::New);
        // Linux retransmits a SYN after 1 s, then after 3 and 7 s.
        assert_eq!(d.add(syn(1), at(t0, 1000), wall), Added::Folded);
        // A deny and an audit of the same tuple are two events.
        let audit = Observed {
            verdict: EventVerdict::Audit,
            ..syn(1)
        };
        assert_eq!(d.add(audit, at(t0, 1200), wall), Added::New);
        assert!(d.due(at(t0, 2499)).is_empty());
        assert_eq!(d.next_due(), Some(at(t0, 2500)));
        let due = d.due(at(t0, 2500));
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].observed, due[0].packets), (syn(1), 2));
        let due = d.due(at(t0, 2700));
        assert_eq!((due[0].observed, due[0].packets), (audit, 1));
        // Later retransmits in the window are folded, not reported again.
        for ms in [3000, 7000] {
            assert_eq!(d.add(syn(1), at(t0, ms), wall), Added::Folded);
        }
        assert!(d.due(at(t0, 9999)).is_empty());
        assert_eq!(d.len(), 2, "both still in their window");
        assert!(
            d.due(at(t0, 11_200)).is_empty(),
            "windows closed, nothing due"
        );
        assert!(d.is_empty());
        // After its window, the same tuple is a new event.
        assert_eq!(d.add(syn(1), at(t0, 13_000), wall), Added::New);
    }

    #[test]
    fn a_tuple_that_never_goes_quiet_is_due_when_its_window_ends() {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        let mut d = Dedup::new(Duration::from_secs(10), 100);
        let mut reported = Vec::new();
        // A datagram a second for 12 s, reading due events as the daemon would.
        for s in 0..12 {
            let now = at(t0, s * 1000);
            reported.extend(d.due(now).into_iter().map(|p| p.packets));
            d.add(syn(1), now, wall);
        }
        assert_eq!(reported, [10], "the window of 0-9 s, reported at 10 s");
        assert!(d.due(at(t0, 12_499)).is_empty());
        let last = d.due(at(t0, 12_500));
        assert_eq!(last[0].packets, 2, "10 s and 11 s: a new window");
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
