//! Which endpoints a host enforces, and [`compile`]: the one entry point from a
//! validated model to what the kernel gets.
//!
//! `netpolctl apply` and netpold both call [`compile`]; neither chooses local endpoints
//! itself. The target is named endpoints (`--local`, the config's `local`) or this
//! host's addresses (every endpoint holding one is local). Pure: the caller reads the
//! addresses; nothing here touches the system.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::diag::SHOWN_DIAGNOSTICS;
use crate::model::{Model, ObjectName};
use crate::plan::{self, Plan};
use crate::resolve::{EndpointId, Index};

/// Which endpoints the plan polices.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// These endpoints, by `namespace/name`; every one must be in the inventory.
    Named(&'a [ObjectName]),
    /// The endpoints that hold one of these addresses (this host's); none is no error.
    HostAddresses(&'a BTreeSet<IpAddr>),
}

/// A local endpoint, as chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Local {
    /// Its index in the model's inventory.
    pub index: EndpointId,
    /// `namespace/name`.
    pub id: ObjectName,
    /// The host addresses that made it local, in the endpoint's order; empty when named.
    pub addresses: Vec<IpAddr>,
}

/// Sizes of a compiled model, as `status` and the metrics print them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// NetworkPolicies.
    pub policies: usize,
    /// ClusterNetworkPolicies of the Admin tier.
    #[serde(default)]
    pub admin_policies: usize,
    /// ClusterNetworkPolicies of the Baseline tier.
    #[serde(default)]
    pub baseline_policies: usize,
    /// Inventory endpoints.
    pub endpoints: usize,
    /// Local endpoints (those this host enforces).
    pub local_endpoints: usize,
    /// Rules in the table.
    pub rules: usize,
    /// Set and map elements.
    pub elements: usize,
}

/// Every inventory address and the endpoint that holds it (validation makes each
/// address one endpoint's). Kept by the daemon instead of the model, which is far
/// larger, to tell whether a change of the host's addresses changes the local endpoints.
#[derive(Clone, Debug, Default)]
pub struct AddressBook(foldhash::HashMap<IpAddr, EndpointId>);

impl AddressBook {
    /// The endpoints that `Target::HostAddresses(host)` makes local, sorted.
    pub fn locals(&self, host: &BTreeSet<IpAddr>) -> BTreeSet<EndpointId> {
        host.iter()
            .filter_map(|ip| self.0.get(ip).copied())
            .collect()
    }
}

/// What [`compile`] gives: the plan and what was decided on the way.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The ruleset.
    pub plan: Plan,
    /// The local endpoints, sorted by index in the inventory.
    pub locals: Vec<Local>,
    /// Sizes of the model and the plan.
    pub counts: Counts,
    /// Which endpoint holds each inventory address.
    pub addresses: AddressBook,
}

/// Chooses the local endpoints of `target` and builds their plan.
pub fn compile(
    model: &Model,
    target: Target<'_>,
    options: &plan::Options,
) -> Result<Compiled, UnknownEndpoints> {
    let index = Index::new(model);
    let locals = choose(&index, target)?;
    let ids: Vec<EndpointId> = locals.iter().map(|l| l.index).collect();
    let plan = plan::build(&index, &ids, options);
    let tier = |t| {
        model
            .cluster_policies
            .iter()
            .filter(|p| p.tier == t)
            .count()
    };
    let counts = Counts {
        policies: model.policies.len(),
        admin_policies: tier(crate::model::Tier::Admin),
        baseline_policies: tier(crate::model::Tier::Baseline),
        endpoints: model.inventory.endpoints.len(),
        local_endpoints: plan.locals().len(),
        rules: plan.rule_count(),
        elements: plan.element_count(),
    };
    Ok(Compiled {
        plan,
        locals,
        counts,
        addresses: AddressBook(index.into_addresses()),
    })
}

/// The local endpoints of `target`, sorted by index and without duplicates.
pub fn choose(index: &Index<'_>, target: Target<'_>) -> Result<Vec<Local>, UnknownEndpoints> {
    let endpoints = &index.model.inventory.endpoints;
    match target {
        Target::Named(names) => Ok(find_endpoints(index, names)?
            .into_iter()
            .map(|i| Local {
                index: i,
                id: endpoints[i].id.clone(),
                addresses: Vec::new(),
            })
            .collect()),
        Target::HostAddresses(host) => {
            let found: BTreeSet<EndpointId> =
                host.iter().filter_map(|ip| index.endpoint_at(ip)).collect();
            Ok(found
                .into_iter()
                .map(|i| Local {
                    index: i,
                    id: endpoints[i].id.clone(),
                    addresses: endpoints[i]
                        .ips
                        .iter()
                        .filter(|ip| host.contains(ip))
                        .copied()
                        .collect(),
                })
                .collect())
        }
    }
}

/// Finds endpoints by `namespace/name`, sorted and de-duplicated; every unknown name
/// is reported at once.
pub fn find_endpoints(
    index: &Index<'_>,
    names: &[ObjectName],
) -> Result<Vec<EndpointId>, UnknownEndpoints> {
    let mut found = Vec::with_capacity(names.len());
    let mut unknown = Vec::new();
    for name in names {
        match find_endpoint(index, name) {
            Ok(i) => found.push(i),
            Err(e) => unknown.push(e),
        }
    }
    if !unknown.is_empty() {
        return Err(UnknownEndpoints(unknown));
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// Finds one endpoint by `namespace/name`. An unknown one says whether the object was
/// skipped (and why) or what its namespace has, so a typo is easy to fix.
pub fn find_endpoint(index: &Index<'_>, name: &ObjectName) -> Result<EndpointId, UnknownEndpoint> {
    let inventory = &index.model.inventory;
    if let Some(i) = inventory.endpoint_index(name) {
        return Ok(i);
    }
    let suffix = format!(" {name}");
    if let Some(s) = inventory
        .skipped
        .iter()
        .find(|s| s.object.ends_with(&suffix))
    {
        return Err(UnknownEndpoint::Skipped {
            name: name.clone(),
            reason: s.reason.clone(),
        });
    }
    let in_namespace = inventory
        .endpoints
        .iter()
        .filter(|e| e.id.namespace == name.namespace);
    // A namespace may hold thousands of endpoints; the message also becomes the
    // daemon's last error, so it names a few and counts the rest.
    let total = in_namespace.clone().count();
    let shown = in_namespace
        .take(SHOWN_DIAGNOSTICS)
        .map(|e| e.id.name.to_string())
        .collect();
    Err(UnknownEndpoint::Missing {
        name: name.clone(),
        shown,
        more: total.saturating_sub(SHOWN_DIAGNOSTICS),
    })
}

/// A `namespace/name` that is not an enforced endpoint of the inventory.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnknownEndpoint {
    /// The inventory has the object but skipped it.
    #[error("{name} is not enforced: {reason}")]
    Skipped {
        /// The name asked for.
        name: ObjectName,
        /// Why the inventory skipped it.
        reason: String,
    },
    /// No such endpoint.
    #[error("{}", missing(name, shown, *more))]
    Missing {
        /// The name asked for.
        name: ObjectName,
        /// The first endpoints of its namespace, by name.
        shown: Vec<String>,
        /// How many more its namespace has.
        more: usize,
    },
}

fn missing(name: &ObjectName, shown: &[String], more: usize) -> String {
    if shown.is_empty() {
        return format!(
            "no endpoint {name} in the inventory (no endpoints in namespace {})",
            name.namespace
        );
    }
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "no endpoint {name} in the inventory (namespace {} has: {}{more})",
        name.namespace,
        shown.join(", ")
    )
}

/// Every unknown name of a [`Target::Named`], one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownEndpoints(pub Vec<UnknownEndpoint>);

impl fmt::Display for UnknownEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownEndpoints {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{oname, ModelBuilder};

    fn host(ips: &[&str]) -> BTreeSet<IpAddr> {
        ips.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn model() -> Model {
        ModelBuilder::new()
            .endpoint("a/one", &[("app", "one")], &["198.18.0.1", "2001:db8::1"])
            .endpoint("a/two", &[("app", "two")], &["198.18.0.2"])
            .endpoint("b/three", &[("app", "three")], &["198.18.0.3"])
            .build()
    }

    #[test]
    fn host_addresses_choose_the_endpoints_holding_them_with_those_addresses() {
        let m = model();
        let h = host(&["2001:db8::1", "198.18.0.3", "198.18.9.9"]);
        let c = compile(&m, Target::HostAddresses(&h), &Default::default()).unwrap();
        let got: Vec<(String, Vec<IpAddr>)> = c
            .locals
            .iter()
            .map(|l| (l.id.to_string(), l.addresses.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a/one".into(), vec!["2001:db8::1".parse().unwrap()]),
                ("b/three".into(), vec!["198.18.0.3".parse().unwrap()]),
            ]
        );
        assert_eq!(c.counts.endpoints, 3);
        assert_eq!(c.counts.local_endpoints, 2);
        assert_eq!(c.counts.rules, c.plan.rule_count());
        // The address book chooses exactly as compile did, for this and other hosts.
        let ids: BTreeSet<EndpointId> = c.locals.iter().map(|l| l.index).collect();
        assert_eq!(c.addresses.locals(&h), ids);
        assert!(c.addresses.locals(&host(&["198.18.9.9"])).is_empty());
    }

    #[test]
    fn named_endpoints_are_sorted_and_deduplicated_and_every_unknown_one_is_reported() {
        let m = model();
        let names: Vec<ObjectName> = ["b/three", "a/one", "b/three"].map(oname).to_vec();
        let c = compile(&m, Target::Named(&names), &Default::default()).unwrap();
        let got: Vec<String> = c.locals.iter().map(|l| l.id.to_string()).collect();
        assert_eq!(got, ["a/one", "b/three"]);
        assert!(c.locals.iter().all(|l| l.addresses.is_empty()));

        let names: Vec<ObjectName> = ["a/nine", "c/x", "a/one"].map(oname).to_vec();
        let e = compile(&m, Target::Named(&names), &Default::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no endpoint a/nine in the inventory (namespace a has: one, two)\n\
             no endpoint c/x in the inventory (no endpoints in namespace c)"
        );
    }

    #[test]
    fn an_unknown_endpoint_names_a_few_of_its_namespace_and_counts_the_rest() {
        let mut b = ModelBuilder::new();
        for i in 0..500 {
            let ip = format!("198.18.{}.{}", i / 200, i % 200 + 1);
            b = b.endpoint(&format!("big/e{i}"), &[], &[&ip]);
        }
        let m = b.build();
        let err = find_endpoint(&Index::new(&m), &oname("big/nope"))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with(" and 450 more)"), "{err}");
        assert!(err.len() < 1000, "{} bytes: {err}", err.len());
    }
}
