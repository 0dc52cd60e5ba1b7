//! Resolve: who selects whom. The one place that turns selectors, namespaces and
//! named ports into concrete endpoints and numbers, shared by the plan (what goes into
//! the kernel) and by the semantic engine (matrix, explain), so that the two can only
//! disagree through a bug the property test catches.
//!
//! Pure functions over a validated [`Model`]; no I/O, no nftables vocabulary.
//! `resolve/cluster.rs` ([`cluster`]) adds ClusterNetworkPolicy's tiers on top.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::ControlFlow;

use serde::Serialize;

use crate::model::{
    Direction, Endpoint, Labels, Model, NamespaceScope, ObjectName, Peer, Peers, Policy,
    PolicyMode, PortMatch, PortRule, Ports,
};

pub mod cluster;
pub use cluster::{ClusterPolicyId, ClusterRuleRef, ClusterVerdict, Decision, TierOutcome};

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
    by_addr: foldhash::HashMap<IpAddr, EndpointId>,
    /// Per endpoint, the cluster policies whose subject selects it, per tier (`Admin`,
    /// `Baseline`), in model order. Empty lists when the model holds none.
    cluster_subjects: Vec<[Vec<ClusterPolicyId>; 2]>,
}

/// The positions of `ids` by namespace, each list in order. A model's objects come
/// sorted, so in runs of one namespace: a run costs one look-up.
fn by_namespace<'m>(ids: impl Iterator<Item = &'m ObjectName>) -> BTreeMap<&'m str, Vec<usize>> {
    let mut by_ns: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut run: Option<(&str, Vec<usize>)> = None;
    for (i, id) in ids.enumerate() {
        let ns = id.namespace.as_str();
        match &mut run {
            Some((n, run)) if *n == ns => run.push(i),
            _ => {
                if let Some((n, done)) = run.replace((ns, vec![i])) {
                    by_ns.entry(n).or_default().extend(done);
                }
            }
        }
    }
    if let Some((n, done)) = run {
        by_ns.entry(n).or_default().extend(done);
    }
    by_ns
}

impl<'m> Index<'m> {
    /// Builds the index. Linear in the model's size.
    pub fn new(model: &'m Model) -> Self {
        let endpoints_by_ns = by_namespace(model.inventory.endpoints.iter().map(|e| &e.id));
        let mut by_addr = HashMap::with_capacity_and_hasher(
            model.inventory.endpoints.len() * 2,
            Default::default(),
        );
        for (i, ep) in model.inventory.endpoints.iter().enumerate() {
            for ip in ep.ips.iter() {
                by_addr.insert(*ip, i);
            }
        }
        let policies_by_ns = by_namespace(model.policies.iter().map(|p| &p.id));
        let cluster_subjects = cluster::subjects(model);
        Index {
            model,
            endpoints_by_ns,
            policies_by_ns,
            by_addr,
            cluster_subjects,
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

    /// The address index, for [`crate::target::AddressBook`].
    pub(crate) fn into_addresses(self) -> foldhash::HashMap<IpAddr, EndpointId> {
        self.by_addr
    }

    /// Labels of a namespace (empty for one the inventory does not know).
    pub fn namespace_labels(&self, ns: &str) -> Option<&'m Labels> {
        self.model.inventory.namespaces.get(ns).map(|n| &n.labels)
    }

    /// The enforced policies that select this endpoint and isolate it in this
    /// direction, in model order. Empty: the endpoint is open in that direction. Audit
    /// policies are left out: they never change what is allowed
    /// ([`Index::isolating_in`] lists them).
    pub fn isolating(&self, ep: EndpointId, dir: Direction) -> Vec<PolicyId> {
        self.isolating_in(ep, dir, PolicyMode::Enforce)
    }

    /// The policies of this mode that select this endpoint and isolate it in this
    /// direction, in model order.
    pub fn isolating_in(&self, ep: EndpointId, dir: Direction, mode: PolicyMode) -> Vec<PolicyId> {
        let endpoint = self.endpoint(ep);
        self.policies_by_ns
            .get(endpoint.id.namespace.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|&p| {
                let policy = self.policy(p);
                policy.mode == mode
                    && policy.rules(dir).is_some()
                    && policy.pod_selector.matches(&endpoint.labels)
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
        let Peer::Endpoints { namespaces, pods } = peer else {
            return Vec::new();
        };
        // Narrow to the matching namespaces first, then test only the pod selector:
        // the namespace part is already decided for every candidate. Namespaces are
        // visited in name order and endpoints are sorted by namespace/name, so the
        // result comes out ascending.
        let namespace_lists: Vec<&Vec<EndpointId>> = match namespaces {
            NamespaceScope::Own(ns) => self.endpoints_by_ns.get(ns.as_str()).into_iter().collect(),
            NamespaceScope::Selector(sel) => self
                .endpoints_by_ns
                .iter()
                .filter(|(ns, _)| self.namespace_labels(ns).is_some_and(|l| sel.matches(l)))
                .map(|(_, eps)| eps)
                .collect(),
        };
        namespace_lists
            .into_iter()
            .flatten()
            .copied()
            .filter(|&ep| pods.matches(&self.endpoint(ep).labels))
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

// ---------------------------------------------------------------------------------
// Packet verdicts: the semantic engine.
//
// This tests whether one packet is allowed; the plan enumerates peer sets instead. The
// two are written independently on purpose, so the property test comparing them can
// catch a mistake in either.
// ---------------------------------------------------------------------------------

/// A policy, by index and by name (the name is what people and JSON see).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PolicyRef {
    /// Index in [`Model::policies`].
    #[serde(skip)]
    pub id: PolicyId,
    /// `namespace/name`.
    pub name: ObjectName,
}

/// One way a packet is allowed: this peer and this port entry of this rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RuleMatch {
    /// The policy.
    pub policy: PolicyRef,
    /// Index of the rule in the policy's `ingress` or `egress` list.
    pub rule: usize,
    /// Index in `from`/`to`; `None` when the rule has no peers (all peers match).
    pub peer: Option<usize>,
    /// Index in `ports`; `None` when the rule has no ports (all ports and protocols).
    pub port: Option<usize>,
}

/// What NetworkPolicy says about one packet in one direction of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// No policy selects the endpoint for this direction: everything is allowed.
    NotIsolated,
    /// Isolated, and at least one rule of the isolating policies allows the packet.
    Allowed {
        /// The policies that select the endpoint for this direction, in model order.
        isolating: Vec<PolicyRef>,
        /// Every matching (policy, rule, peer, port), in model and input order.
        by: Vec<RuleMatch>,
    },
    /// Isolated, and no rule of the isolating policies allows the packet.
    Denied {
        /// The policies that select the endpoint for this direction (never empty).
        isolating: Vec<PolicyRef>,
    },
}

impl Verdict {
    /// Whether the packet passes in this direction.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Verdict::Denied { .. })
    }

    /// The isolating policies (empty when not isolated).
    pub fn isolating(&self) -> &[PolicyRef] {
        match self {
            Verdict::NotIsolated => &[],
            Verdict::Allowed { isolating, .. } | Verdict::Denied { isolating } => isolating,
        }
    }
}

impl<'m> Index<'m> {
    fn policy_ref(&self, id: PolicyId) -> PolicyRef {
        PolicyRef {
            id,
            name: self.policy(id).id.clone(),
        }
    }

    /// The verdict of NetworkPolicy on one packet at endpoint `local`.
    ///
    /// For [`Direction::Ingress`] the packet goes `remote` → `local` and `dport` is a
    /// port of `local`, so named ports resolve on `local`. For [`Direction::Egress`] it
    /// goes `local` → `remote`, and named ports resolve on the endpoint that owns
    /// `remote`; an address of no endpoint never matches a named port. `proto` is the IP
    /// protocol number: rules without `ports` match every protocol, ICMP included.
    pub fn verdict(
        &self,
        local: EndpointId,
        dir: Direction,
        remote: IpAddr,
        proto: u8,
        dport: u16,
    ) -> Verdict {
        self.verdict_among(
            &self.isolating(local, dir),
            local,
            dir,
            remote,
            proto,
            dport,
        )
    }

    /// [`Index::verdict`] with the isolating policies already known, for callers that
    /// ask about many packets of one endpoint (the matrix).
    pub(crate) fn verdict_among(
        &self,
        isolating: &[PolicyId],
        local: EndpointId,
        dir: Direction,
        remote: IpAddr,
        proto: u8,
        dport: u16,
    ) -> Verdict {
        if isolating.is_empty() {
            return Verdict::NotIsolated;
        }
        let mut by = Vec::new();
        // The visitor never breaks, so the result carries nothing.
        let _ = self.visit_matches(isolating, local, dir, remote, proto, dport, &mut |m| {
            by.push(m);
            ControlFlow::Continue(())
        });
        let isolating = isolating.iter().map(|&p| self.policy_ref(p)).collect();
        if by.is_empty() {
            Verdict::Denied { isolating }
        } else {
            Verdict::Allowed { isolating, by }
        }
    }

    /// Whether the packet passes, stopping at the first allowing rule. Same semantics
    /// as [`Index::verdict_among`] (both are [`Index::visit_matches`]).
    pub(crate) fn allows_among(
        &self,
        isolating: &[PolicyId],
        local: EndpointId,
        dir: Direction,
        remote: IpAddr,
        proto: u8,
        dport: u16,
    ) -> bool {
        isolating.is_empty()
            || self
                .visit_matches(isolating, local, dir, remote, proto, dport, &mut |_| {
                    ControlFlow::Break(())
                })
                .is_break()
    }

    /// Calls `f` with every (policy, rule, peer, port) of `isolating` that matches the
    /// packet, in order, until `f` breaks. The one place that decides rule matching.
    #[allow(clippy::too_many_arguments)]
    fn visit_matches(
        &self,
        isolating: &[PolicyId],
        local: EndpointId,
        dir: Direction,
        remote: IpAddr,
        proto: u8,
        dport: u16,
        f: &mut dyn FnMut(RuleMatch) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        // The destination of the packet owns the port numbers a name stands for.
        let dest = match dir {
            Direction::Ingress => Some(self.endpoint(local)),
            Direction::Egress => self.endpoint_at(&remote).map(|ep| self.endpoint(ep)),
        };
        for &p in isolating {
            let Some(rules) = self.policy(p).rules(dir) else {
                continue;
            };
            for (r, rule) in rules.iter().enumerate() {
                let peers: Vec<Option<usize>> = match &rule.peers {
                    Peers::All => vec![None],
                    Peers::List(list) => list
                        .iter()
                        .enumerate()
                        .filter(|(_, peer)| self.peer_matches_addr(peer, &remote))
                        .map(|(i, _)| Some(i))
                        .collect(),
                };
                if peers.is_empty() {
                    continue;
                }
                let ports: Vec<Option<usize>> = match &rule.ports {
                    Ports::All => vec![None],
                    Ports::List(list) => list
                        .iter()
                        .enumerate()
                        .filter(|(_, pr)| port_rule_matches(pr, proto, dport, dest))
                        .map(|(i, _)| Some(i))
                        .collect(),
                };
                for &peer in &peers {
                    for &port in &ports {
                        f(RuleMatch {
                            policy: self.policy_ref(p),
                            rule: r,
                            peer,
                            port,
                        })?;
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod verdict_tests {
    //! One test per rule of ARCHITECTURE.md, "Semantics", on packets.

    use super::*;
    use crate::model::Operator;
    use crate::model::Protocol::{Sctp, Tcp, Udp};
    use crate::model::NAMESPACE_NAME_LABEL;
    use crate::testkit::proto::{ICMP, SCTP, TCP, UDP};
    use crate::testkit::*;
    use Direction::{Egress, Ingress};

    /// An address that belongs to no endpoint (the outside world, a host-network pod).
    const OUTSIDE: &str = "198.19.200.1";

    /// Whether `local` lets this packet through in `dir` (remote given as a literal).
    fn passes(
        index: &Index<'_>,
        local: &str,
        dir: Direction,
        remote: &str,
        p: u8,
        port: u16,
    ) -> bool {
        index
            .verdict(ep(index, local), dir, ip(remote), p, port)
            .is_allowed()
    }

    /// Three namespaces with one or two endpoints each, no policies.
    fn world() -> ModelBuilder {
        ModelBuilder::new()
            .namespace("web", &[("name", "web"), ("env", "prod")])
            .namespace("payments", &[("env", "prod"), ("team", "pay")])
            .namespace("analytics", &[("env", "dev")])
            .endpoint(
                "web/checkout",
                &[("app", "checkout")],
                &["198.18.0.2", "2001:db8::2"],
            )
            .endpoint("web/frontend", &[("app", "frontend")], &["198.18.0.3"])
            .endpoint(
                "payments/api",
                &[("app", "api")],
                &["198.18.0.10", "2001:db8::10"],
            )
            .endpoint(
                "payments/checkout",
                &[("app", "checkout")],
                &["198.18.0.11"],
            )
            .endpoint("analytics/worker", &[("app", "worker")], &["198.18.1.20"])
    }

    /// `world()` with one ingress policy on payments/api holding this one peer.
    fn api_ingress_from(peer: Peer) -> Model {
        world()
            .policy(ingress_policy(
                "payments/p",
                sel(&[("app", "api")]),
                vec![rule(peers(vec![peer]), Ports::All)],
            ))
            .build()
    }

    #[test]
    fn endpoint_selected_by_no_policy_is_open() {
        // Policies exist, in its namespace (selecting someone else) and elsewhere
        // (selecting everything there), but none selects web/frontend.
        let m = world()
            .policy(policy(
                "web/p",
                sel(&[("app", "checkout")]),
                Some(vec![]),
                Some(vec![]),
            ))
            .policy(policy("payments/p", sel(&[]), Some(vec![]), Some(vec![])))
            .build();
        let index = Index::new(&m);
        let frontend = ep(&index, "web/frontend");
        for dir in [Ingress, Egress] {
            for (remote, p, port) in [
                (OUTSIDE, TCP, 80),
                ("198.18.0.10", UDP, 53),
                ("2001:db8::10", ICMP, 0),
            ] {
                assert_eq!(
                    index.verdict(frontend, dir, ip(remote), p, port),
                    Verdict::NotIsolated
                );
            }
        }
        assert!(!passes(
            &index,
            "web/checkout",
            Ingress,
            "198.18.0.3",
            TCP,
            80
        ));
    }

    #[test]
    fn isolated_endpoint_gets_the_union_of_its_policies_rules() {
        let m = world()
            .policy(ingress_policy(
                "payments/a",
                sel(&[("app", "api")]),
                vec![rule(
                    peers(vec![pods_in("payments", sel(&[]))]),
                    ports(vec![tcp(80)]),
                )],
            ))
            .policy(ingress_policy(
                "payments/b",
                sel(&[]),
                vec![rule(
                    peers(vec![ip_block("198.18.0.0/24", &[])]),
                    ports(vec![tcp(443)]),
                )],
            ))
            .build();
        let index = Index::new(&m);
        let api = ep(&index, "payments/api");
        let both: Vec<ObjectName> = index
            .verdict(api, Ingress, ip(OUTSIDE), TCP, 80)
            .isolating()
            .iter()
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(
            both,
            vec![
                ObjectName::new("payments", "a"),
                ObjectName::new("payments", "b")
            ]
        );
        // payments/a allows its namespace on 80, payments/b the /24 on 443.
        let v = index.verdict(api, Ingress, ip("198.18.0.11"), TCP, 80);
        let Verdict::Allowed { by, .. } = &v else {
            panic!("{v:?}")
        };
        assert_eq!(
            by.iter()
                .map(|m| m.policy.name.name.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        let v = index.verdict(api, Ingress, ip("198.18.0.2"), TCP, 443);
        let Verdict::Allowed { by, .. } = &v else {
            panic!("{v:?}")
        };
        assert_eq!(
            by.iter()
                .map(|m| m.policy.name.name.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
        // Neither allows web on 80, nor the outside on 443.
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        ));
        assert!(!passes(&index, "payments/api", Ingress, OUTSIDE, TCP, 443));
        // payments/checkout is selected by b only.
        assert!(!passes(
            &index,
            "payments/checkout",
            Ingress,
            "198.18.0.10",
            TCP,
            80
        ));
        assert!(passes(
            &index,
            "payments/checkout",
            Ingress,
            "198.18.0.10",
            TCP,
            443
        ));
    }

    #[test]
    fn audit_policies_do_not_isolate_and_are_listed_apart() {
        let m = world()
            .policy(audit(ingress_policy("payments/audit", sel(&[]), vec![])))
            .policy(ingress_policy(
                "payments/web",
                sel(&[("app", "api")]),
                vec![rule(
                    peers(vec![ns_and_pods(sel(&[("name", "web")]), sel(&[]))]),
                    Ports::All,
                )],
            ))
            .build();
        let index = Index::new(&m);
        let (api, checkout) = (ep(&index, "payments/api"), ep(&index, "payments/checkout"));
        let name = |ids: Vec<PolicyId>| -> Vec<String> {
            ids.into_iter()
                .map(|p| index.policy(p).id.to_string())
                .collect()
        };
        assert_eq!(name(index.isolating(api, Ingress)), ["payments/web"]);
        assert_eq!(
            name(index.isolating_in(api, Ingress, PolicyMode::Audit)),
            ["payments/audit"]
        );
        assert!(index.isolating(checkout, Ingress).is_empty());
        // The audit default-deny changes no verdict.
        assert_eq!(
            index.verdict(checkout, Ingress, ip(OUTSIDE), TCP, 80),
            Verdict::NotIsolated
        );
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.3",
            TCP,
            80
        ));
        assert_eq!(
            m.audit_policies()
                .map(|p| p.id.to_string())
                .collect::<Vec<_>>(),
            ["payments/audit"]
        );
    }

    #[test]
    fn ingress_and_egress_isolation_are_independent() {
        let m = world()
            .policy(ingress_policy(
                "payments/in",
                sel(&[("app", "api")]),
                vec![],
            ))
            .policy(egress_policy(
                "web/out",
                sel(&[("app", "checkout")]),
                vec![],
            ))
            .build();
        let index = Index::new(&m);
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.3",
            TCP,
            80
        ));
        assert_eq!(
            index.verdict(
                ep(&index, "payments/api"),
                Egress,
                ip("198.18.0.3"),
                TCP,
                80
            ),
            Verdict::NotIsolated
        );
        assert!(!passes(
            &index,
            "web/checkout",
            Egress,
            "198.18.0.10",
            TCP,
            80
        ));
        assert_eq!(
            index.verdict(
                ep(&index, "web/checkout"),
                Ingress,
                ip("198.18.0.10"),
                TCP,
                80
            ),
            Verdict::NotIsolated
        );
    }

    #[test]
    fn empty_rule_list_allows_nothing() {
        let m = world()
            .policy(policy(
                "payments/deny",
                sel(&[]),
                Some(vec![]),
                Some(vec![]),
            ))
            .build();
        let index = Index::new(&m);
        for dir in [Ingress, Egress] {
            for (remote, p, port) in [
                ("198.18.0.11", TCP, 80),
                (OUTSIDE, UDP, 53),
                ("2001:db8::2", ICMP, 0),
            ] {
                let v = index.verdict(ep(&index, "payments/api"), dir, ip(remote), p, port);
                let Verdict::Denied { isolating } = v else {
                    panic!("{dir} {remote}: {v:?}")
                };
                assert_eq!(isolating[0].name, ObjectName::new("payments", "deny"));
            }
        }
    }

    #[test]
    fn rule_without_peers_or_ports_allows_every_address_protocol_and_port() {
        let m = world()
            .policy(policy(
                "payments/all",
                sel(&[]),
                Some(vec![allow_all()]),
                Some(vec![allow_all()]),
            ))
            .build();
        let index = Index::new(&m);
        for dir in [Ingress, Egress] {
            for (remote, p, port) in [
                (OUTSIDE, TCP, 80),
                ("198.18.0.2", UDP, 65535),
                ("2001:db8::2", SCTP, 9),
                ("2001:db8:ffff::1", ICMP, 0),
                ("198.18.0.3", 47, 0), // GRE: no ports at all
            ] {
                let v = index.verdict(ep(&index, "payments/api"), dir, ip(remote), p, port);
                let Verdict::Allowed { by, .. } = v else {
                    panic!("{dir} {remote}/{p}: {v:?}")
                };
                assert_eq!((by[0].rule, by[0].peer, by[0].port), (0, None, None));
            }
        }
    }

    #[test]
    fn rule_with_peers_but_no_ports_allows_every_protocol_from_those_peers() {
        let m = api_ingress_from(pods_in("payments", sel(&[])));
        let index = Index::new(&m);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.11",
            ICMP,
            0
        ));
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.11",
            UDP,
            5353
        ));
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            ICMP,
            0
        ));
    }

    #[test]
    fn rule_with_ports_but_no_peers_allows_those_ports_from_anywhere() {
        let m = world()
            .policy(ingress_policy(
                "payments/p",
                sel(&[]),
                vec![rule(Peers::All, ports(vec![tcp(8080)]))],
            ))
            .build();
        let index = Index::new(&m);
        assert!(passes(&index, "payments/api", Ingress, OUTSIDE, TCP, 8080));
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "2001:db8::2",
            TCP,
            8080
        ));
        assert!(!passes(&index, "payments/api", Ingress, OUTSIDE, TCP, 8081));
        assert!(!passes(&index, "payments/api", Ingress, OUTSIDE, ICMP, 0));
    }

    #[test]
    fn namespace_and_pod_selector_in_one_peer_are_anded() {
        let m = api_ingress_from(ns_and_pods(
            sel(&[("name", "web")]),
            sel(&[("app", "checkout")]),
        ));
        let index = Index::new(&m);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            8080
        ));
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "2001:db8::2",
            TCP,
            8080
        ));
        // Right namespace, wrong pod; right pod label, wrong namespace.
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.3",
            TCP,
            8080
        ));
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.11",
            TCP,
            8080
        ));
    }

    #[test]
    fn separate_peers_are_ored() {
        let m = world()
            .policy(ingress_policy(
                "payments/p",
                sel(&[("app", "api")]),
                vec![rule(
                    peers(vec![
                        ns_and_pods(sel(&[("name", "web")]), sel(&[])),
                        pods_in("payments", sel(&[("app", "checkout")])),
                    ]),
                    Ports::All,
                )],
            ))
            .build();
        let index = Index::new(&m);
        let peer_of = |remote: &str| match index.verdict(
            ep(&index, "payments/api"),
            Ingress,
            ip(remote),
            TCP,
            80,
        ) {
            Verdict::Allowed { by, .. } => by.iter().map(|m| m.peer).collect::<Vec<_>>(),
            v => panic!("{remote}: {v:?}"),
        };
        assert_eq!(peer_of("198.18.0.3"), [Some(0)]); // web/frontend
        assert_eq!(peer_of("198.18.0.2"), [Some(0)]); // web/checkout
        assert_eq!(peer_of("198.18.0.11"), [Some(1)]); // payments/checkout
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.1.20",
            TCP,
            80
        ));
    }

    #[test]
    fn pod_selector_alone_means_the_policys_own_namespace() {
        let m = api_ingress_from(pods_in("payments", sel(&[("app", "checkout")])));
        let index = Index::new(&m);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.11",
            TCP,
            80
        ));
        // Same labels in another namespace.
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        ));
    }

    #[test]
    fn empty_namespace_selector_is_every_namespace() {
        let m = ModelBuilder::new()
            .endpoint("payments/api", &[("app", "api")], &["198.18.0.10"])
            // A namespace no Namespace object declared still counts.
            .endpoint("adhoc/checkout", &[("app", "checkout")], &["198.18.0.30"])
            .endpoint("adhoc/other", &[("app", "other")], &["198.18.0.31"])
            .endpoint("web/checkout", &[("app", "checkout")], &["198.18.0.2"])
            .policy(ingress_policy(
                "payments/p",
                sel(&[("app", "api")]),
                vec![rule(
                    peers(vec![ns_and_pods(sel(&[]), sel(&[("app", "checkout")]))]),
                    Ports::All,
                )],
            ))
            .build();
        let index = Index::new(&m);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.30",
            TCP,
            80
        ));
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        ));
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.31",
            TCP,
            80
        ));
        assert!(!passes(&index, "payments/api", Ingress, OUTSIDE, TCP, 80));
    }

    #[test]
    fn match_labels_needs_every_pair() {
        let m = api_ingress_from(ns_and_pods(
            sel(&[("env", "prod"), ("team", "pay")]),
            sel(&[]),
        ));
        let index = Index::new(&m);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.11",
            TCP,
            80
        ));
        // web has env=prod but no team label.
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        ));
    }

    #[test]
    fn match_expression_in() {
        let m = api_ingress_from(ns_and_pods(
            expr("env", Operator::In(values(&["dev", "test"]))),
            sel(&[]),
        ));
        let index = Index::new(&m);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.1.20",
            TCP,
            80
        )); // analytics, dev
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        )); // web, prod
    }

    #[test]
    fn match_expression_not_in_holds_for_an_absent_key() {
        let m = world()
            .endpoint("payments/batch", &[], &["198.18.0.12"])
            .endpoint("payments/canary", &[("track", "canary")], &["198.18.0.13"])
            .endpoint("payments/stable", &[("track", "stable")], &["198.18.0.14"])
            .policy(ingress_policy(
                "payments/p",
                sel(&[("app", "api")]),
                vec![rule(
                    peers(vec![pods_in(
                        "payments",
                        expr("track", Operator::NotIn(values(&["canary"]))),
                    )]),
                    Ports::All,
                )],
            ))
            .build();
        let index = Index::new(&m);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.12",
            TCP,
            80
        )); // no key
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.14",
            TCP,
            80
        )); // other value
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.13",
            TCP,
            80
        )); // listed
    }

    #[test]
    fn match_expression_exists_and_does_not_exist() {
        let exists = api_ingress_from(ns_and_pods(expr("team", Operator::Exists), sel(&[])));
        let index = Index::new(&exists);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.11",
            TCP,
            80
        ));
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        ));

        let absent = api_ingress_from(ns_and_pods(expr("team", Operator::DoesNotExist), sel(&[])));
        let index = Index::new(&absent);
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.11",
            TCP,
            80
        ));
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        ));
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.1.20",
            TCP,
            80
        ));
    }

    #[test]
    fn metadata_name_label_selects_a_namespace_by_name() {
        let m = api_ingress_from(ns_and_pods(
            sel(&[(NAMESPACE_NAME_LABEL, "analytics")]),
            sel(&[]),
        ));
        let index = Index::new(&m);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.1.20",
            TCP,
            80
        ));
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        ));
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.11",
            TCP,
            80
        ));
    }

    #[test]
    fn ip_block_v4_minus_except() {
        let m = api_ingress_from(ip_block("198.18.0.0/16", &["198.18.1.0/24"]));
        let index = Index::new(&m);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        )); // endpoint inside
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.255.255",
            TCP,
            80
        )); // no endpoint
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.1.20",
            TCP,
            80
        )); // endpoint in except
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.1.0",
            TCP,
            80
        )); // except's first
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.2.0",
            TCP,
            80
        )); // just past it
        assert!(!passes(&index, "payments/api", Ingress, OUTSIDE, TCP, 80)); // outside cidr
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "2001:db8::2",
            TCP,
            80
        )); // other family
    }

    #[test]
    fn ip_block_v6_minus_except() {
        let m = api_ingress_from(ip_block("2001:db8::/64", &["2001:db8::/120"]));
        let index = Index::new(&m);
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "2001:db8::2",
            TCP,
            80
        )); // endpoint in except
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "2001:db8::100",
            TCP,
            80
        ));
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "2001:db8::ffff:ffff:ffff:ffff",
            TCP,
            80
        ));
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "2001:db8:0:1::1",
            TCP,
            80
        ));
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        ));
    }

    /// web/checkout may send to anyone on these port entries.
    fn egress_ports(list: Vec<PortRule>) -> Model {
        world()
            .named_ports("payments/api", &[("http", 8080, Tcp), ("dns", 53, Udp)])
            .named_ports("payments/checkout", &[("http", 9090, Tcp)])
            .policy(egress_policy(
                "web/p",
                sel(&[("app", "checkout")]),
                vec![rule(Peers::All, ports(list))],
            ))
            .build()
    }

    #[test]
    fn numbered_port_matches_only_that_port() {
        let index_m = egress_ports(vec![tcp(443)]);
        let index = Index::new(&index_m);
        assert!(passes(&index, "web/checkout", Egress, OUTSIDE, TCP, 443));
        assert!(!passes(&index, "web/checkout", Egress, OUTSIDE, TCP, 442));
        assert!(!passes(&index, "web/checkout", Egress, OUTSIDE, TCP, 444));
    }

    #[test]
    fn end_port_range_bounds_are_inclusive() {
        let m = egress_ports(vec![port_range(Tcp, 8000, 8010)]);
        let index = Index::new(&m);
        assert!(!passes(&index, "web/checkout", Egress, OUTSIDE, TCP, 7999));
        assert!(passes(&index, "web/checkout", Egress, OUTSIDE, TCP, 8000));
        assert!(passes(&index, "web/checkout", Egress, OUTSIDE, TCP, 8005));
        assert!(passes(&index, "web/checkout", Egress, OUTSIDE, TCP, 8010));
        assert!(!passes(&index, "web/checkout", Egress, OUTSIDE, TCP, 8011));
        assert!(!passes(&index, "web/checkout", Egress, OUTSIDE, UDP, 8005));
    }

    #[test]
    fn protocol_without_port_matches_every_port_of_that_protocol_only() {
        let m = egress_ports(vec![any_port(Udp)]);
        let index = Index::new(&m);
        for port in [1, 53, 65535] {
            assert!(passes(&index, "web/checkout", Egress, OUTSIDE, UDP, port));
            assert!(!passes(&index, "web/checkout", Egress, OUTSIDE, TCP, port));
        }
        assert!(!passes(&index, "web/checkout", Egress, OUTSIDE, ICMP, 0));
    }

    #[test]
    fn protocol_must_match() {
        let m = egress_ports(vec![tcp(53), port_range(Sctp, 9, 9)]);
        let index = Index::new(&m);
        assert!(passes(&index, "web/checkout", Egress, OUTSIDE, TCP, 53));
        assert!(!passes(&index, "web/checkout", Egress, OUTSIDE, UDP, 53));
        assert!(passes(&index, "web/checkout", Egress, OUTSIDE, SCTP, 9));
        assert!(!passes(&index, "web/checkout", Egress, OUTSIDE, TCP, 9));
    }

    #[test]
    fn ingress_named_port_resolves_on_the_local_endpoint() {
        let m = world()
            .named_ports("payments/api", &[("http", 8080, Tcp)])
            .named_ports("web/checkout", &[("http", 80, Tcp)])
            .policy(ingress_policy(
                "payments/p",
                sel(&[]),
                vec![rule(Peers::All, ports(vec![named(Tcp, "http")]))],
            ))
            .build();
        let index = Index::new(&m);
        // The sender's own "http" (80) is irrelevant: the receiver's is 8080.
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            8080
        ));
        assert!(!passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.0.2",
            TCP,
            80
        ));
        // payments/checkout declares no "http": the entry matches nothing there.
        for port in [80, 8080] {
            assert!(!passes(
                &index,
                "payments/checkout",
                Ingress,
                "198.18.0.2",
                TCP,
                port
            ));
        }
    }

    #[test]
    fn egress_named_port_resolves_on_each_peer() {
        let m = egress_ports(vec![named(Tcp, "http")]);
        let index = Index::new(&m);
        // "http" is 8080 on payments/api and 9090 on payments/checkout.
        assert!(passes(
            &index,
            "web/checkout",
            Egress,
            "198.18.0.10",
            TCP,
            8080
        ));
        assert!(passes(
            &index,
            "web/checkout",
            Egress,
            "2001:db8::10",
            TCP,
            8080
        ));
        assert!(!passes(
            &index,
            "web/checkout",
            Egress,
            "198.18.0.10",
            TCP,
            9090
        ));
        assert!(passes(
            &index,
            "web/checkout",
            Egress,
            "198.18.0.11",
            TCP,
            9090
        ));
        assert!(!passes(
            &index,
            "web/checkout",
            Egress,
            "198.18.0.11",
            TCP,
            8080
        ));
        // A peer without that name, and an address of no endpoint, match no port.
        for port in [8080, 9090] {
            assert!(!passes(
                &index,
                "web/checkout",
                Egress,
                "198.18.1.20",
                TCP,
                port
            ));
            assert!(!passes(&index, "web/checkout", Egress, OUTSIDE, TCP, port));
        }
    }

    #[test]
    fn named_port_with_another_protocol_does_not_match() {
        // "http" is TCP 8080 on payments/api; "dns" is UDP 53.
        let m = egress_ports(vec![named(Udp, "http"), named(Tcp, "dns")]);
        let index = Index::new(&m);
        for (p, port) in [(TCP, 8080), (UDP, 8080), (TCP, 53), (UDP, 53)] {
            assert!(
                !passes(&index, "web/checkout", Egress, "198.18.0.10", p, port),
                "{p} {port}"
            );
        }
    }

    #[test]
    fn address_of_no_endpoint_matches_only_ip_blocks() {
        let m = world()
            .policy(ingress_policy(
                "payments/p",
                sel(&[("app", "api")]),
                vec![
                    rule(
                        peers(vec![ns_and_pods(sel(&[]), sel(&[]))]),
                        ports(vec![tcp(80)]),
                    ),
                    rule(
                        peers(vec![ip_block("198.19.200.0/24", &[])]),
                        ports(vec![tcp(443)]),
                    ),
                ],
            ))
            .build();
        let index = Index::new(&m);
        assert!(passes(
            &index,
            "payments/api",
            Ingress,
            "198.18.1.20",
            TCP,
            80
        ));
        assert!(!passes(&index, "payments/api", Ingress, OUTSIDE, TCP, 80));
        assert!(passes(&index, "payments/api", Ingress, OUTSIDE, TCP, 443));
    }

    #[test]
    fn verdict_lists_every_matching_rule_peer_and_port() {
        let m = world()
            .policy(ingress_policy(
                "payments/a",
                sel(&[("app", "api")]),
                vec![
                    rule(
                        peers(vec![
                            ip_block("198.18.0.0/24", &[]),
                            pods_in("payments", sel(&[])),
                            ip_block("198.18.0.0/30", &[]),
                        ]),
                        ports(vec![tcp(80), udp(80), port_range(Tcp, 1, 1024)]),
                    ),
                    rule(Peers::All, Ports::All),
                ],
            ))
            .policy(ingress_policy("payments/b", sel(&[]), vec![]))
            .build();
        let index = Index::new(&m);
        let v = index.verdict(
            ep(&index, "payments/api"),
            Ingress,
            ip("198.18.0.2"),
            TCP,
            80,
        );
        let Verdict::Allowed { isolating, by } = &v else {
            panic!("{v:?}")
        };
        assert_eq!(isolating.iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1]);
        let got: Vec<_> = by
            .iter()
            .map(|m| (m.policy.id, m.rule, m.peer, m.port))
            .collect();
        assert_eq!(
            got,
            [
                (0, 0, Some(0), Some(0)),
                (0, 0, Some(0), Some(2)),
                (0, 0, Some(2), Some(0)),
                (0, 0, Some(2), Some(2)),
                (0, 1, None, None),
            ]
        );
    }

    #[test]
    fn verdict_serializes_with_policy_names() {
        let m = world()
            .policy(ingress_policy(
                "payments/a",
                sel(&[]),
                vec![rule(Peers::All, ports(vec![udp(53), tcp(80)]))],
            ))
            .build();
        let index = Index::new(&m);
        let api = ep(&index, "payments/api");
        let json = |v: Verdict| serde_json::to_value(v).unwrap();
        assert_eq!(
            json(index.verdict(api, Ingress, ip(OUTSIDE), TCP, 80)),
            serde_json::json!({
                "verdict": "allowed",
                "isolating": ["payments/a"],
                "by": [{"policy": "payments/a", "rule": 0, "peer": null, "port": 1}],
            })
        );
        assert_eq!(
            json(index.verdict(api, Ingress, ip(OUTSIDE), TCP, 81)),
            serde_json::json!({"verdict": "denied", "isolating": ["payments/a"]})
        );
        assert_eq!(
            json(index.verdict(api, Egress, ip(OUTSIDE), TCP, 81)),
            serde_json::json!({"verdict": "not_isolated"})
        );
    }

    #[test]
    fn first_match_shortcut_agrees_with_the_full_verdict() {
        let m = egress_ports(vec![named(Tcp, "http"), tcp(443), any_port(Udp)]);
        let index = Index::new(&m);
        for local in 0..m.inventory.endpoints.len() {
            for dir in [Ingress, Egress] {
                let iso = index.isolating(local, dir);
                for remote in ["198.18.0.10", "198.18.0.11", OUTSIDE, "2001:db8::10"] {
                    for (p, port) in [(TCP, 8080), (TCP, 9090), (TCP, 443), (UDP, 1), (ICMP, 0)] {
                        assert_eq!(
                            index.allows_among(&iso, local, dir, ip(remote), p, port),
                            index.verdict(local, dir, ip(remote), p, port).is_allowed(),
                        );
                    }
                }
            }
        }
    }
}
