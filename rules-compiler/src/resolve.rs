//! Resolve: who selects whom. The one place that turns selectors, namespaces and
//! named ports into concrete endpoints and numbers, shared by the plan (what goes into
//! the kernel) and by the semantic engine (matrix, explain), so that the two can only
//! disagree through a bug the property test catches.
//!
//! Pure functions over a validated [`Model`]; no I/O, no nftables vocabulary.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::model::{
    Direction, Endpoint, Labels, Model, NamespaceScope, Peer, Policy, PortMatch, PortRule, Protocol,
};

/// Index of a policy in [`Model::policies`].
pub type PolicyId = usize;
/// Index of an endpoint in [`crate::model::Inventory::endpoints`].
pub type EndpointId = usize;

/// Look-up structures over a model, built once per compile.
#[derive(Debug)]
pub struct Index<'m> {
    /// The model this index is over.
    pub model: &'m Model,
    endpoints_by_ns: BTreeMap<&'m str, Vec<EndpointId>>,
    policies_by_ns: BTreeMap<&'m str, Vec<PolicyId>>,
    by_addr: HashMap<IpAddr, EndpointId>,
}

impl<'m> Index<'m> {
    /// Builds the index. Linear in the model's size.
    pub fn new(model: &'m Model) -> Self {
        let mut endpoints_by_ns: BTreeMap<&str, Vec<EndpointId>> = BTreeMap::new();
        let mut by_addr = HashMap::new();
        for (i, ep) in model.inventory.endpoints.iter().enumerate() {
            endpoints_by_ns
                .entry(ep.id.namespace.as_str())
                .or_default()
                .push(i);
            for ip in &ep.ips {
                by_addr.insert(*ip, i);
            }
        }
        let mut policies_by_ns: BTreeMap<&str, Vec<PolicyId>> = BTreeMap::new();
        for (i, p) in model.policies.iter().enumerate() {
            policies_by_ns
                .entry(p.id.namespace.as_str())
                .or_default()
                .push(i);
        }
        Index {
            model,
            endpoints_by_ns,
            policies_by_ns,
            by_addr,
        }
    }

    /// The endpoint with this id.
    pub fn endpoint(&self, id: EndpointId) -> &'m Endpoint {
        &self.model.inventory.endpoints[id]
    }

    /// The policy with this id.
    pub fn policy(&self, id: PolicyId) -> &'m Policy {
        &self.model.policies[id]
    }

    /// The endpoint that owns this address, if any (addresses are unique: `validate`).
    pub fn endpoint_at(&self, ip: &IpAddr) -> Option<EndpointId> {
        self.by_addr.get(ip).copied()
    }

    /// Labels of a namespace (empty for one the inventory does not know).
    pub fn namespace_labels(&self, ns: &str) -> Option<&'m Labels> {
        self.model.inventory.namespaces.get(ns).map(|n| &n.labels)
    }

    /// The policies that select this endpoint and isolate it in this direction, in
    /// model order. Empty: the endpoint is open in that direction.
    pub fn isolating(&self, ep: EndpointId, dir: Direction) -> Vec<PolicyId> {
        let endpoint = self.endpoint(ep);
        self.policies_by_ns
            .get(endpoint.id.namespace.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|&p| {
                let policy = self.policy(p);
                policy.rules(dir).is_some() && policy.pod_selector.matches(&endpoint.labels)
            })
            .collect()
    }

    /// Whether a selector peer matches the endpoint (namespace AND pods).
    /// Always false for `ipBlock` peers: those match addresses, see
    /// [`Index::peer_matches_addr`].
    pub fn peer_matches_endpoint(&self, peer: &Peer, ep: EndpointId) -> bool {
        let Peer::Endpoints { namespaces, pods } = peer else {
            return false;
        };
        let endpoint = self.endpoint(ep);
        let ns_ok = match namespaces {
            NamespaceScope::Own(ns) => *ns == endpoint.id.namespace,
            NamespaceScope::Selector(sel) => self
                .namespace_labels(&endpoint.id.namespace)
                .is_some_and(|l| sel.matches(l)),
        };
        ns_ok && pods.matches(&endpoint.labels)
    }

    /// Whether a peer matches a packet's remote address: an `ipBlock` by containment,
    /// a selector peer when the address belongs to an endpoint it selects. Addresses
    /// of no endpoint (host-network pods, the outside world) match only `ipBlock`s.
    pub fn peer_matches_addr(&self, peer: &Peer, ip: &IpAddr) -> bool {
        match peer {
            Peer::IpBlock(block) => block.contains(ip),
            Peer::Endpoints { .. } => self
                .endpoint_at(ip)
                .is_some_and(|ep| self.peer_matches_endpoint(peer, ep)),
        }
    }

    /// All endpoints a selector peer matches, ascending. Empty for `ipBlock` peers.
    pub fn peer_endpoints(&self, peer: &Peer) -> Vec<EndpointId> {
        let Peer::Endpoints { namespaces, .. } = peer else {
            return Vec::new();
        };
        // Narrow to candidate namespaces first so a peer in a 1,000-namespace inventory
        // does not test every endpoint's labels.
        let candidates: Vec<EndpointId> = match namespaces {
            NamespaceScope::Own(ns) => self
                .endpoints_by_ns
                .get(ns.as_str())
                .cloned()
                .unwrap_or_default(),
            NamespaceScope::Selector(sel) => self
                .endpoints_by_ns
                .iter()
                .filter(|(ns, _)| self.namespace_labels(ns).is_some_and(|l| sel.matches(l)))
                .flat_map(|(_, eps)| eps.iter().copied())
                .collect(),
        };
        candidates
            .into_iter()
            .filter(|&ep| self.peer_matches_endpoint(peer, ep))
            .collect()
    }
}

/// The destination ports a port entry stands for on a destination endpoint, as an
/// inclusive range. A named port resolves on `dest` (for ingress the local endpoint,
/// for egress the peer); `None` when it does not resolve there (or `dest` is not an
/// endpoint), in which case the entry matches nothing for that destination.
pub fn port_range_on(rule: &PortRule, dest: Option<&Endpoint>) -> Option<(u16, u16)> {
    match &rule.port {
        // Port 0 is included so "all ports" is the whole field, as nftables sees it.
        PortMatch::Any => Some((0, u16::MAX)),
        PortMatch::Range { start, end } => Some((*start, *end)),
        PortMatch::Named(name) => dest
            .and_then(|ep| ep.named_port(name, rule.protocol))
            .map(|p| (p, p)),
    }
}

/// Whether a port entry matches a packet's protocol number and destination port.
pub fn port_rule_matches(rule: &PortRule, proto: u8, dport: u16, dest: Option<&Endpoint>) -> bool {
    rule.protocol.number() == proto
        && port_range_on(rule, dest).is_some_and(|(lo, hi)| lo <= dport && dport <= hi)
}

/// Protocol numbers that carry ports a policy can name.
pub fn is_port_protocol(proto: u8) -> bool {
    Protocol::ALL.iter().any(|p| p.number() == proto)
}
