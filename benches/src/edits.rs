//! One-endpoint edits of a model that change only set and map elements of a plan: the
//! reloads an incremental update is for (an endpoint added, removed, relabelled, or
//! given another address). Used by the `incremental` and `reload` benchmarks to find,
//! deterministically, an edit of each kind that the local endpoints' plan notices.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use rules_compiler::model::{Endpoint, Model, ObjectName};
use rules_compiler::plan::{self, Plan, SetElements};
use rules_compiler::resolve::Index;

use crate::Rng;

/// The kinds of one-endpoint edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditKind {
    /// A copy of a peer with a new name and address.
    Add,
    /// A peer removed.
    Remove,
    /// An endpoint that is no peer given the labels of one that is (in the same
    /// namespace), so the same selectors pick it.
    Relabel,
    /// A peer's IPv4 address changed to an unused one.
    MoveIp,
}

impl EditKind {
    /// Every kind, in report order.
    pub const ALL: [EditKind; 4] = [
        EditKind::Add,
        EditKind::Remove,
        EditKind::Relabel,
        EditKind::MoveIp,
    ];

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            EditKind::Add => "add",
            EditKind::Remove => "remove",
            EditKind::Relabel => "relabel",
            EditKind::MoveIp => "IP change",
        }
    }
}

/// An edit found: the edited model, what was done, and its plan.
pub struct Edit {
    /// The model after the edit.
    pub model: Model,
    /// What was done, in words.
    pub what: String,
    /// The plan of the edited model for the same local endpoints.
    pub plan: Plan,
}

/// The plan of `model` for the endpoints named `locals`.
pub fn plan_for(model: &Model, locals: &[ObjectName]) -> Plan {
    plan_with(model, locals, &plan::Options::default())
}

/// [`plan_for`] with these plan options.
pub fn plan_with(model: &Model, locals: &[ObjectName], options: &plan::Options) -> Plan {
    let index = Index::new(model);
    let ids: Vec<_> = locals
        .iter()
        .filter_map(|l| model.inventory.endpoint_index(l))
        .collect();
    plan::build(&index, &ids, options)
}

/// Whether any set of `plan` holds `ip`.
fn in_some_set(plan: &Plan, ip: &IpAddr) -> bool {
    plan.sets().iter().any(|s| match s.elements() {
        SetElements::Addr(v) => v.iter().any(|r| r.contains(ip)),
        SetElements::AddrProtoPort(v) => v.iter().any(|e| e.addr.contains(ip)),
        SetElements::AddrVerdict(v) => v.keys().iter().any(|r| r.contains(ip)),
        SetElements::AddrProtoPortVerdict(v) => v.keys().iter().any(|e| e.addr.contains(ip)),
    })
}

/// An IPv4 address of 198.18.0.0/15 that no endpoint of `model` has, from the top.
fn unused_v4(model: &Model, taken: &BTreeSet<IpAddr>) -> IpAddr {
    let used: BTreeSet<IpAddr> = model
        .inventory
        .endpoints
        .iter()
        .flat_map(|e| e.ips.iter().copied())
        .chain(taken.iter().copied())
        .collect();
    let top = u32::from(Ipv4Addr::new(198, 19, 255, 254));
    (0..1 << 16)
        .map(|i| IpAddr::V4(Ipv4Addr::from(top - i)))
        .find(|ip| !used.contains(ip))
        .expect("a free address in 198.18.0.0/15")
}

/// Applies an edit of `kind` to the endpoint at `i`; `None` when it cannot apply.
fn apply(model: &Model, i: usize, kind: EditKind, rng: &mut Rng) -> Option<(Model, String)> {
    let mut m = model.clone();
    let eps = &mut m.inventory.endpoints;
    let what = match kind {
        EditKind::Add => {
            let mut e: Endpoint = eps[i].clone();
            e.id.name = format!("{}-bench-copy", e.id.name).into();
            e.ips = [unused_v4(model, &BTreeSet::new())].into();
            let what = format!("{} added (a copy of {})", e.id, eps[i].id);
            let at = eps.binary_search_by(|x| x.id.cmp(&e.id)).err()?;
            eps.insert(at, e);
            what
        }
        EditKind::Remove => format!("{} removed", eps.remove(i).id),
        EditKind::Relabel => {
            // Another endpoint of the namespace, with other labels.
            let others: Vec<usize> = (0..eps.len())
                .filter(|&j| {
                    j != i
                        && eps[j].id.namespace == eps[i].id.namespace
                        && eps[j].labels != eps[i].labels
                })
                .collect();
            if others.is_empty() {
                return None;
            }
            let j = *rng.pick(&others);
            eps[j].labels = eps[i].labels.clone();
            format!("{} relabelled as {}", eps[j].id, eps[i].id)
        }
        EditKind::MoveIp => {
            let v4 = eps[i].ips.iter().position(IpAddr::is_ipv4)?;
            let ip = unused_v4(model, &BTreeSet::new());
            let old = eps[i].ips[v4];
            let mut ips = eps[i].ips.to_vec();
            ips[v4] = ip;
            ips.sort();
            eps[i].ips = ips.into();
            format!("{} moved from {old} to {ip}", eps[i].id)
        }
    };
    Some((m, what))
}

/// Finds an edit of `kind` to a peer of the local endpoints (an endpoint whose address
/// is in one of `base`'s sets) that changes `base` by elements alone; tries at most
/// `tries` candidates, deterministically from `seed`.
pub fn find_edit(
    model: &Model,
    locals: &[ObjectName],
    base: &Plan,
    kind: EditKind,
    seed: u64,
    tries: usize,
) -> Option<Edit> {
    let options = plan::Options::default();
    find_edit_with(model, locals, base, kind, (seed, tries), &options)
}

/// [`find_edit`] for plans built with `options`; `(seed, tries)` as there.
pub fn find_edit_with(
    model: &Model,
    locals: &[ObjectName],
    base: &Plan,
    kind: EditKind,
    (seed, tries): (u64, usize),
    options: &plan::Options,
) -> Option<Edit> {
    let mut rng = Rng::new(seed);
    let mut peers: Vec<usize> = model
        .inventory
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| !locals.contains(&e.id) && e.ips.iter().any(|ip| in_some_set(base, ip)))
        .map(|(i, _)| i)
        .collect();
    rng.shuffle(&mut peers);
    for &i in peers.iter().take(tries) {
        let Some((m, what)) = apply(model, i, kind, &mut rng) else {
            continue;
        };
        let plan = plan_with(&m, locals, options);
        if plan::delta(base, &plan).is_ok_and(|d| !d.is_empty()) {
            return Some(Edit {
                model: m,
                what,
                plan,
            });
        }
    }
    None
}

/// Approximate heap size of a plan in bytes (elements, names, rules): what netpold
/// keeps to compute updates against.
pub fn plan_bytes(plan: &Plan) -> usize {
    use std::mem::size_of;
    let sets: usize = plan
        .sets()
        .iter()
        .map(|s| {
            size_of::<rules_compiler::plan::Set>()
                + s.name().len()
                + match s.elements() {
                    SetElements::Addr(v) => v.capacity() * size_of::<plan::AddrRange>(),
                    SetElements::AddrProtoPort(v) => {
                        v.capacity() * size_of::<plan::AddrProtoPort>()
                    }
                    // Not the allocation's capacity: close enough for an estimate.
                    SetElements::AddrVerdict(v) => {
                        v.len() * (size_of::<plan::AddrRange>() + size_of::<plan::TierVerdict>())
                    }
                    SetElements::AddrProtoPortVerdict(v) => {
                        v.len()
                            * (size_of::<plan::AddrProtoPort>() + size_of::<plan::TierVerdict>())
                    }
                }
        })
        .sum();
    let maps: usize = plan
        .maps()
        .iter()
        .map(|m| {
            m.name().len()
                + m.elements()
                    .iter()
                    .map(|(_, c)| size_of::<(IpAddr, String)>() + c.len())
                    .sum::<usize>()
        })
        .sum();
    let chains: usize = plan
        .chains()
        .iter()
        .map(|c| {
            size_of::<rules_compiler::plan::Chain>()
                + c.name().len()
                + c.rules().len() * (size_of::<rules_compiler::plan::Stmt>() + 32)
        })
        .sum();
    sets + maps + chains
}

/// The first endpoint (in inventory order) outside namespace `not_in` whose egress no
/// policy isolates: with it among the local endpoints, a policy that isolates its
/// egress adds a chain to the plan, a structural change (a replace, not an update).
pub fn unisolated_egress(model: &Model, not_in: &str) -> Option<ObjectName> {
    let index = Index::new(model);
    model
        .inventory
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| e.id.namespace != not_in)
        .find(|(i, _)| {
            let p = plan::build(&index, &[*i], &plan::Options::default());
            !p.chains().iter().any(|c| c.name().starts_with("out_"))
        })
        .map(|(_, e)| e.id.clone())
}

/// NetworkPolicy `name` in `namespace`: `on`, it isolates the egress of every pod there
/// and allows UDP 53; off, the same policy selects no pod. Switching between the two
/// adds or removes the egress chain of a local endpoint found by [`unisolated_egress`]
/// (a replace) and keeps the number of policies.
pub fn egress_policy(namespace: &str, name: &str, on: bool) -> String {
    let selector = if on {
        "{}"
    } else {
        "{matchLabels: {netpol-edit: none}}"
    };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{namespace: \
         {namespace}, name: {name}}}\nspec:\n  podSelector: {selector}\n  policyTypes: \
         [Egress]\n  egress:\n  - ports: [{{protocol: UDP, port: 53}}]\n"
    )
}
