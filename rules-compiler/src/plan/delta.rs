//! The difference between two plans, when it is only set and map membership.
//!
//! A reload that adds, removes or relabels an endpoint, or changes an address, usually
//! changes the plan only inside sets and verdict maps: the same table, chains, rules and
//! set definitions, other elements. [`delta`] finds those element changes, so the daemon
//! can send them as one small transaction instead of replacing the table; anything else
//! is [`Structural`] and takes the full replace. [`Delta::apply`] is the reference
//! meaning of a delta (`delta(a, b)?.apply(a) == b`), for tests. A delta says only which
//! elements leave and join each set and map: how the kernel encodes that (interval
//! ends, the gap below the first interval) and what it costs the kernel are the
//! nftables backend's (`netpol_nft`). Pure: no kernel, no I/O.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::{
    AddrProtoPort, AddrProtoPorts, AddrRanges, Family, LocalEndpoint, Plan, SetElements,
    TierVerdict, Verdicts,
};

/// Comparisons [`Delta::widens_only`] spends on one address · protocol · port set at
/// most (a few milliseconds).
const WIDENS_ONLY_SCAN: usize = 4_000_000;

/// Why two plans differ by more than elements; the full replace is needed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("structural change: {0}")]
pub struct Structural(pub String);

/// Element changes of one set: what to delete from it and what to add to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetDelta {
    /// The set's name.
    pub(super) name: String,
    /// Its address family.
    pub(super) family: Family,
    /// Elements of the old plan that the new one does not have, sorted.
    pub(super) delete: SetElements,
    /// Elements of the new plan that the old one did not have, sorted.
    pub(super) add: SetElements,
}

/// Element changes of one verdict map. A key whose target changed is deleted and added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MapDelta {
    /// The map's name.
    pub(super) name: String,
    /// Family of its keys.
    pub(super) family: Family,
    /// Elements to delete, sorted.
    pub(super) delete: Vec<(IpAddr, String)>,
    /// Elements to add, sorted.
    pub(super) add: Vec<(IpAddr, String)>,
}

/// What turns one plan into another by element changes alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delta {
    /// The table (unchanged).
    pub(super) table: String,
    /// Sets with changed elements, sorted by name.
    pub(super) sets: Vec<SetDelta>,
    /// Maps with changed elements, sorted by name.
    pub(super) maps: Vec<MapDelta>,
    /// The new plan's local endpoints. Not a kernel object: a local endpoint that no
    /// policy isolates has no chain, so it can come or go without any kernel change.
    pub(super) locals: Vec<LocalEndpoint>,
    /// Set and map elements of the whole new plan.
    pub(super) table_elements: usize,
}

impl SetDelta {
    /// The set's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Elements of the old plan that the new one does not have, sorted and disjoint.
    pub fn delete(&self) -> &SetElements {
        &self.delete
    }

    /// Elements of the new plan that the old one did not have, sorted and disjoint.
    pub fn add(&self) -> &SetElements {
        &self.add
    }
}

impl MapDelta {
    /// The map's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Family of its keys (every key is of it).
    pub fn family(&self) -> Family {
        self.family
    }

    /// Elements to delete, sorted; each jumps to a chain of the old plan.
    pub fn delete(&self) -> &[(IpAddr, String)] {
        &self.delete
    }

    /// Elements to add, sorted; each jumps to a chain of the new plan.
    pub fn add(&self) -> &[(IpAddr, String)] {
        &self.add
    }
}

impl Delta {
    /// The table (unchanged).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Sets with changed elements, sorted by name.
    pub fn sets(&self) -> &[SetDelta] {
        &self.sets
    }

    /// Maps with changed elements, sorted by name.
    pub fn maps(&self) -> &[MapDelta] {
        &self.maps
    }

    /// The new plan's local endpoints.
    pub fn locals(&self) -> &[LocalEndpoint] {
        &self.locals
    }

    /// Set and map elements of the whole new plan.
    pub fn table_elements(&self) -> usize {
        self.table_elements
    }

    /// Elements deleted plus elements added (an interval counts once).
    pub fn changed(&self) -> usize {
        self.sets
            .iter()
            .map(|s| s.delete.len() + s.add.len())
            .chain(self.maps.iter().map(|m| m.delete.len() + m.add.len()))
            .sum()
    }

    /// Whether the kernel has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changed() == 0
    }

    /// Whether the new plan allows everything the old one allowed: no verdict map gains
    /// or changes a key (a newly isolated address), and every element a set loses lies
    /// within one element of that set in `new` (an interval merged into a wider one).
    /// Then no established flow can have become denied. `new` is the plan the delta
    /// leads to. Conservative: `false` may still widen only.
    pub fn widens_only(&self, new: &Plan) -> bool {
        if self.maps.iter().any(|m| !m.add.is_empty()) {
            return false;
        }
        self.sets.iter().all(|d| {
            let Some(set) = new.set(&d.name) else {
                return false;
            };
            match (&d.delete, &set.elements) {
                // Sorted and disjoint: the one element that could hold `r` is the last
                // that starts at or before it.
                (SetElements::Addr(del), SetElements::Addr(now)) => del.iter().all(|r| {
                    let i = now.partition_point(|n| n.start <= r.start);
                    i > 0 && r.end <= now[i - 1].end
                }),
                // Elements of another address range may hold one: a scan, so a big change
                // of a big set is not looked into (`false` is always safe).
                (SetElements::AddrProtoPort(del), SetElements::AddrProtoPort(now)) => {
                    del.len().saturating_mul(now.len()) <= WIDENS_ONLY_SCAN
                        && del.iter().all(|e| {
                            now.iter().any(|n| {
                                n.proto == e.proto
                                    && n.addr.start <= e.addr.start
                                    && e.addr.end <= n.addr.end
                                    && n.ports.0 <= e.ports.0
                                    && e.ports.1 <= n.ports.1
                            })
                        })
                }
                _ => false,
            }
        })
    }

    /// The plan this delta makes of `old`: the reference semantics of a delta. `old`
    /// must be the plan the delta was computed from.
    pub fn apply(&self, old: &Plan) -> Plan {
        let mut plan = old.clone();
        for d in &self.sets {
            let Some(set) = plan.sets.iter_mut().find(|s| s.name == d.name) else {
                continue;
            };
            const SAME: &str = "a delta applies to the plan it was computed from";
            let family = set.family;
            match (&mut set.elements, &d.delete, &d.add) {
                (SetElements::Addr(v), SetElements::Addr(del), SetElements::Addr(add)) => {
                    let mut all = std::mem::take(v).into_vec();
                    edit(&mut all, del, add);
                    *v = AddrRanges::new(family, all).expect(SAME);
                }
                (
                    SetElements::AddrProtoPort(v),
                    SetElements::AddrProtoPort(del),
                    SetElements::AddrProtoPort(add),
                ) => {
                    let mut all = std::mem::take(v).into_vec();
                    edit(&mut all, del, add);
                    *v = AddrProtoPorts::new(family, all).expect(SAME);
                }
                (
                    SetElements::AddrVerdict(v),
                    SetElements::AddrVerdict(del),
                    SetElements::AddrVerdict(add),
                ) => {
                    let mut all = pairs(v);
                    edit(&mut all, &pairs(del), &pairs(add));
                    set.elements = SetElements::addr_verdict(family, all).expect(SAME);
                }
                (
                    SetElements::AddrProtoPortVerdict(v),
                    SetElements::AddrProtoPortVerdict(del),
                    SetElements::AddrProtoPortVerdict(add),
                ) => {
                    let mut all = pairs(v);
                    edit(&mut all, &pairs(del), &pairs(add));
                    set.elements = SetElements::addr_proto_port_verdict(family, all).expect(SAME);
                }
                _ => {}
            }
        }
        for d in &self.maps {
            if let Some(map) = plan.maps.iter_mut().find(|m| m.name == d.name) {
                edit(&mut map.elements, &d.delete, &d.add);
            }
        }
        plan.locals = self.locals.clone();
        plan
    }
}

impl fmt::Display for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let del: usize = self.sets.iter().map(|s| s.delete.len()).sum::<usize>()
            + self.maps.iter().map(|m| m.delete.len()).sum::<usize>();
        let add: usize = self.sets.iter().map(|s| s.add.len()).sum::<usize>()
            + self.maps.iter().map(|m| m.add.len()).sum::<usize>();
        write!(
            f,
            "{del} element(s) deleted and {add} added in {} set(s) and {} map(s)",
            self.sets.len(),
            self.maps.len()
        )
    }
}

/// A part of a checked set's elements is sorted and disjoint too.
const SUBSET: &str = "the elements of a checked set, in order";

/// Removes `del` from and adds `add` to a sorted vector, keeping it sorted.
fn edit<T: Ord + Clone>(v: &mut Vec<T>, del: &[T], add: &[T]) {
    v.retain(|x| del.binary_search(x).is_err());
    v.extend_from_slice(add);
    v.sort();
    v.dedup();
}

/// The element changes that turn `old` into `new`, or why there is more to it.
///
/// Structural: another table name; a set or map added, removed, renamed, or of another
/// family or kind; any change of chains or rules. Everything else — elements of sets and
/// maps, and the list of local endpoints — is in the [`Delta`].
pub fn delta(old: &Plan, new: &Plan) -> Result<Delta, Structural> {
    if old.table != new.table {
        return Err(Structural(format!(
            "table {} becomes {}",
            old.table, new.table
        )));
    }
    if old.chains.len() != new.chains.len() {
        return Err(Structural(format!(
            "{} chains become {}",
            old.chains.len(),
            new.chains.len()
        )));
    }
    for (a, b) in old.chains.iter().zip(&new.chains) {
        if a != b {
            let which = if a.name == b.name {
                format!("chain {} changes", a.name)
            } else {
                format!("chain {} becomes {}", a.name, b.name)
            };
            return Err(Structural(which));
        }
    }
    if old.sets.len() != new.sets.len() {
        return Err(Structural(format!(
            "{} sets become {}",
            old.sets.len(),
            new.sets.len()
        )));
    }
    let mut sets = Vec::new();
    for (a, b) in old.sets.iter().zip(&new.sets) {
        if a.name != b.name || a.family != b.family {
            return Err(Structural(format!("set {} becomes {}", a.name, b.name)));
        }
        let d = match (&a.elements, &b.elements) {
            (SetElements::Addr(x), SetElements::Addr(y)) => {
                let (del, add) = diff(x, y);
                (!del.is_empty() || !add.is_empty()).then(|| SetDelta {
                    name: b.name.clone(),
                    family: b.family,
                    delete: SetElements::Addr(AddrRanges::new(b.family, del).expect(SUBSET)),
                    add: SetElements::Addr(AddrRanges::new(b.family, add).expect(SUBSET)),
                })
            }
            (SetElements::AddrProtoPort(x), SetElements::AddrProtoPort(y)) => {
                let (del, add) = diff::<AddrProtoPort>(x, y);
                (!del.is_empty() || !add.is_empty()).then(|| SetDelta {
                    name: b.name.clone(),
                    family: b.family,
                    delete: SetElements::AddrProtoPort(
                        AddrProtoPorts::new(b.family, del).expect(SUBSET),
                    ),
                    add: SetElements::AddrProtoPort(
                        AddrProtoPorts::new(b.family, add).expect(SUBSET),
                    ),
                })
            }
            (SetElements::AddrVerdict(x), SetElements::AddrVerdict(y)) => {
                let (del, add) = diff(&pairs(x), &pairs(y));
                (!del.is_empty() || !add.is_empty()).then(|| SetDelta {
                    name: b.name.clone(),
                    family: b.family,
                    delete: SetElements::addr_verdict(b.family, del).expect(SUBSET),
                    add: SetElements::addr_verdict(b.family, add).expect(SUBSET),
                })
            }
            (SetElements::AddrProtoPortVerdict(x), SetElements::AddrProtoPortVerdict(y)) => {
                let (del, add) = diff(&pairs(x), &pairs(y));
                (!del.is_empty() || !add.is_empty()).then(|| SetDelta {
                    name: b.name.clone(),
                    family: b.family,
                    delete: SetElements::addr_proto_port_verdict(b.family, del).expect(SUBSET),
                    add: SetElements::addr_proto_port_verdict(b.family, add).expect(SUBSET),
                })
            }
            _ => return Err(Structural(format!("set {} changes its type", b.name))),
        };
        sets.extend(d);
    }
    if old.maps.len() != new.maps.len() {
        return Err(Structural(format!(
            "{} maps become {}",
            old.maps.len(),
            new.maps.len()
        )));
    }
    let mut maps = Vec::new();
    for (a, b) in old.maps.iter().zip(&new.maps) {
        if a.name != b.name || a.family != b.family {
            return Err(Structural(format!("map {} becomes {}", a.name, b.name)));
        }
        let (delete, add) = diff(&a.elements, &b.elements);
        if !delete.is_empty() || !add.is_empty() {
            maps.push(MapDelta {
                name: b.name.clone(),
                family: b.family,
                delete,
                add,
            });
        }
    }
    Ok(Delta {
        table: new.table.clone(),
        sets,
        maps,
        locals: new.locals.clone(),
        table_elements: new.element_count(),
    })
}

/// A verdict map's elements as (key, verdict) pairs, sorted (keys are).
fn pairs<K: std::ops::Deref<Target = [T]>, T: Clone>(v: &Verdicts<K>) -> Vec<(T, TierVerdict)> {
    v.iter().map(|(k, t)| (k.clone(), t.clone())).collect()
}

/// Elements only in `old` and elements only in `new`, both sorted. Plans keep elements
/// sorted, so this is one merge walk; unsorted input is sorted first.
fn diff<T: Ord + Clone>(old: &[T], new: &[T]) -> (Vec<T>, Vec<T>) {
    let sorted = |v: &[T]| -> Vec<T> {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let (o, n);
    let (old, new) = match (old.is_sorted(), new.is_sorted()) {
        (true, true) => (old, new),
        _ => {
            o = sorted(old);
            n = sorted(new);
            (&o[..], &n[..])
        }
    };
    let (mut del, mut add) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        match old[i].cmp(&new[j]) {
            std::cmp::Ordering::Less => {
                del.push(old[i].clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                add.push(new[j].clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    del.extend_from_slice(&old[i..]);
    add.extend_from_slice(&new[j..]);
    (del, add)
}

#[cfg(test)]
mod tests;
