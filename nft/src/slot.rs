//! The names a loaded plan has in the kernel: [`Slot`], the two sets of names a
//! two-transaction replace alternates between, and [`Loaded`], what the backend
//! remembers of the table it loaded.
//!
//! Naming only: what a replace sends is `encode`'s, when it may be sent the backend's.

use std::collections::HashSet;

use rules_compiler::plan::{Hook, Plan, SetElements, Stmt, TierVerdict};

/// Which of two names the objects of a loaded plan have in the kernel. A plan's sets,
/// maps and endpoint chains are loaded under the names of the slot not in use, so the
/// old ones stay whole until the base chains point at the new ones. Base chains keep
/// their names. [`Slot::Plain`] names are the plan's (a full replace loads those, and
/// `netpolctl compile` prints them); [`Slot::Next`] names carry [`Slot::NEXT_PREFIX`],
/// which no plan name starts with (they start with `in_`, `out_`, `ingress_`,
/// `egress_`, `input` or `output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The plan's own names.
    Plain,
    /// The plan's names after [`Slot::NEXT_PREFIX`].
    Next,
}

impl Slot {
    /// What starts every name of the [`Slot::Next`] slot.
    pub const NEXT_PREFIX: &'static str = "b.";

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::Plain => Slot::Next,
            Slot::Next => Slot::Plain,
        }
    }

    /// The kernel's name for the plan object `name` (not a base chain).
    pub fn name(self, name: &str) -> String {
        match self {
            Slot::Plain => name.to_string(),
            Slot::Next => format!("{}{name}", Slot::NEXT_PREFIX),
        }
    }

    /// The plan's name for a kernel object of either slot.
    pub fn plan_name(kernel: &str) -> &str {
        kernel.strip_prefix(Slot::NEXT_PREFIX).unwrap_or(kernel)
    }

    /// An `nft list` of netpol's table with every name as the plan has it: what a full
    /// load of the same plan lists. A name follows a space (`set b.x`, `jump b.x`), an
    /// `@`, or a quote (`limit name "b.x"`); nothing else in a listing of netpol's table
    /// holds `b.` after those (comments and log prefixes start with a word).
    pub fn plain_listing(listing: &str) -> String {
        let prefix = Slot::NEXT_PREFIX;
        let mut out = String::with_capacity(listing.len());
        let mut rest = listing;
        while let Some(at) = rest.find(prefix) {
            out.push_str(&rest[..at]);
            if !matches!(rest[..at].chars().last(), Some(' ' | '@' | '"')) {
                out.push_str(prefix);
            }
            rest = &rest[at + prefix.len()..];
        }
        out.push_str(rest);
        out
    }
}

/// The objects of a loaded plan that a two-transaction replace deletes, and the base
/// chains it keeps: what the backend remembers of the table it loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub slot: Slot,
    /// Base chains: name and hook.
    pub base: Vec<(String, Hook)>,
    /// Kernel names of the endpoint chains (less the tiers' deny and layout chains and the
    /// shard chains), sets and dispatch maps.
    pub chains: Vec<String>,
    pub sets: Vec<String>,
    pub maps: Vec<String>,
    /// Kernel names of a cluster tier's objects, in the order a swap deletes them
    /// (after the endpoint chains, whose rules look the address maps up): the address
    /// maps (they `jump` to the layout chains), the layout chains (their rules look
    /// the layout maps up), the layout maps (they `goto` the deny chains), the deny
    /// chains.
    pub tier_maps: Vec<String>,
    pub tier_layouts: Vec<String>,
    pub tier_layout_maps: Vec<String>,
    pub tier_chains: Vec<String>,
    /// Kernel names of the named limits.
    pub limits: Vec<String>,
}

impl Loaded {
    /// `plan` as loaded under `slot`.
    pub(crate) fn of(plan: &Plan, slot: Slot) -> Loaded {
        let tier: HashSet<&str> = plan
            .locals()
            .iter()
            .flat_map(|l| l.tier_chains.iter().map(|t| t.chain.as_str()))
            .collect();
        // The address maps are what `TierClass` rules look up (a cluster tier's, or a
        // sharded set's shard map); layout chains are what their elements jump to (a
        // tier's port layouts, or a sharded set's shard chains, deleted as layouts are:
        // after the maps that jump to them, before the sets their rules use).
        let class_maps: HashSet<&str> = plan
            .chains()
            .iter()
            .flat_map(|c| c.rules())
            .filter_map(|r| match r {
                Stmt::TierClass { map, .. } => Some(map.as_str()),
                _ => None,
            })
            .collect();
        let layouts: HashSet<&str> = plan
            .sets()
            .iter()
            .filter(|s| class_maps.contains(s.name()))
            .flat_map(|s| match s.elements() {
                SetElements::AddrVerdict(v) => v.verdicts(),
                _ => &[],
            })
            .filter_map(|v| match v {
                TierVerdict::Jump(c) => Some(c.as_str()),
                _ => None,
            })
            .collect();
        let names = |it: &mut dyn Iterator<Item = &str>| -> Vec<String> {
            it.map(|n| slot.name(n)).collect()
        };
        let endpoint = || plan.chains().iter().filter(|c| c.hook().is_none());
        let tier_maps = || plan.sets().iter().filter(|s| s.elements().is_map());
        Loaded {
            slot,
            base: base_chains(plan),
            chains: names(
                &mut endpoint()
                    .map(|c| c.name())
                    .filter(|n| !tier.contains(n) && !layouts.contains(n)),
            ),
            sets: names(
                &mut plan
                    .sets()
                    .iter()
                    .filter(|s| !s.elements().is_map())
                    .map(|s| s.name()),
            ),
            maps: plan.maps().iter().map(|m| slot.name(m.name())).collect(),
            tier_maps: names(
                &mut tier_maps()
                    .map(|s| s.name())
                    .filter(|n| class_maps.contains(n)),
            ),
            tier_layouts: names(&mut endpoint().map(|c| c.name()).filter(|n| layouts.contains(n))),
            tier_layout_maps: names(
                &mut tier_maps()
                    .map(|s| s.name())
                    .filter(|n| !class_maps.contains(n)),
            ),
            tier_chains: names(
                &mut endpoint()
                    .map(|c| c.name())
                    .filter(|n| tier.contains(n) && !layouts.contains(n)),
            ),
            limits: plan.limits().iter().map(|l| slot.name(l.name())).collect(),
        }
    }

    /// Whether `plan` can replace this in two transactions: the same table and base
    /// chains (only their rules are swapped).
    pub(crate) fn swappable(&self, plan: &Plan) -> bool {
        self.base == base_chains(plan)
    }
}

fn base_chains(plan: &Plan) -> Vec<(String, Hook)> {
    plan.chains()
        .iter()
        .filter_map(|c| c.hook().map(|h| (c.name().to_owned(), h)))
        .collect()
}
