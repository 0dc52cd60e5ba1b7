//! Element deltas as the kernel takes them: the compiler's [`Delta`] (which elements
//! leave and join each set and map) with the two things only nftables knows about it.
//!
//! - The interval gap below the first element: nftables closes the space below an
//!   address interval set's lowest interval, when it starts above the family's first
//!   address, with an interval end element at address 0. A delta must remove or add
//!   that element for the kernel to hold what a full load of the new plan holds, so
//!   [`Update`] records, per set, whether the old and the new plan have such a gap.
//! - The cost: the kernel rebuilds an interval set's look-up structure in every
//!   transaction that touches it, so a change costs each changed element times the
//!   size of its set ([`Update::cost`]); the daemon weighs that against a replace.
//!
//! Pure: no kernel, no I/O. The encoding of an update is `encode::encode_update`.

use std::fmt;
use std::net::IpAddr;
use std::ops::Deref;

use rules_compiler::plan::{self, AddrRange, Delta, Plan, SetElements, Structural};

/// A [`Delta`] with what the kernel needs to apply it: [`Backend::update`]'s argument.
/// It reads as the compiler's delta it extends (`Deref`).
///
/// [`Backend::update`]: crate::Backend::update
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    delta: Delta,
    /// For each of `delta.sets`: whether the set's lowest element starts above the
    /// family's first address, in the old plan and in the new one (address interval
    /// sets; always `(false, false)` for address · protocol · port sets).
    gaps: Vec<(bool, bool)>,
    /// See [`Update::cost`].
    cost: u64,
}

impl Update {
    /// The update that `delta` makes of `old` into `new`: `delta` must be
    /// `plan::delta(old, new)` (or an edit of it whose sets and maps `new` has).
    pub fn new(delta: Delta, old: &Plan, new: &Plan) -> Update {
        let gaps = delta
            .sets()
            .iter()
            .map(|d| {
                let gap = |p: &Plan| p.set(d.name()).is_some_and(|s| gap_below(s.elements()));
                match d.delete() {
                    SetElements::Addr(_) | SetElements::AddrVerdict(_) => (gap(old), gap(new)),
                    SetElements::AddrProtoPort(_) | SetElements::AddrProtoPortVerdict(_) => {
                        (false, false)
                    }
                }
            })
            .collect();
        let cost = cost(&delta, new);
        Update { delta, gaps, cost }
    }

    /// The element changes that turn `old` into `new` ([`plan::delta`]), or why there is
    /// more to it.
    pub fn between(old: &Plan, new: &Plan) -> Result<Update, Structural> {
        plan::delta(old, new).map(|d| Update::new(d, old, new))
    }

    /// The compiler's delta.
    pub fn delta(&self) -> &Delta {
        &self.delta
    }

    /// What the change costs the kernel, in element operations: each changed element
    /// weighted by the size of its set or map in the new plan, since the kernel
    /// rebuilds an interval set's look-up structure per transaction that touches it.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// For `delta.sets[i]`: whether the old and the new plan have a gap below the set's
    /// first interval (see the module doc).
    pub(crate) fn gap_below(&self, i: usize) -> (bool, bool) {
        self.gaps.get(i).copied().unwrap_or_default()
    }
}

impl Deref for Update {
    type Target = Delta;

    fn deref(&self) -> &Delta {
        &self.delta
    }
}

impl fmt::Display for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.delta.fmt(f)
    }
}

/// Each changed element weighted by the size of its set or map in `new` (at least 1).
fn cost(delta: &Delta, new: &Plan) -> u64 {
    let weight =
        |changed: usize, size: Option<usize>| (changed as u64) * (size.unwrap_or(0).max(1) as u64);
    let sets = delta.sets().iter().map(|s| {
        let size = new.set(s.name()).map(|x| x.elements().len());
        weight(s.delete().len() + s.add().len(), size)
    });
    let maps = delta.maps().iter().map(|m| {
        let size = new.map(m.name()).map(|x| x.elements().len());
        weight(m.delete().len() + m.add().len(), size)
    });
    sets.chain(maps).sum()
}

/// Whether an address interval set's lowest element starts above the family's first
/// address (it is sorted: the first element is the lowest).
fn gap_below(elements: &SetElements) -> bool {
    let zero = |ip: &IpAddr| match ip {
        IpAddr::V4(a) => a.is_unspecified(),
        IpAddr::V6(a) => a.is_unspecified(),
    };
    match elements {
        SetElements::Addr(ranges) => ranges.first().is_some_and(|r: &AddrRange| !zero(&r.start)),
        SetElements::AddrVerdict(v) => v.keys().first().is_some_and(|r| !zero(&r.start)),
        SetElements::AddrProtoPort(_) | SetElements::AddrProtoPortVerdict(_) => false,
    }
}

#[cfg(test)]
mod tests;
