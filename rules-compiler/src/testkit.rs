//! Test helpers: validated models built in code, without YAML, for unit tests of every
//! stage after `validate`. Short constructors that read like the policy they build:
//!
//! ```ignore
//! let model = ModelBuilder::new()
//!     .namespace("web", &[("name", "web")])
//!     .endpoint("web/checkout", &[("app", "checkout")], &["198.18.0.2"])
//!     .endpoint("payments/api", &[("app", "api")], &["198.18.0.10", "2001:db8::10"])
//!     .named_ports("payments/api", &[("http", 8080, Protocol::Tcp)])
//!     .policy(ingress_policy("payments/allow", sel(&[("app", "api")]), vec![
//!         rule(peers(vec![ns_and_pods(sel(&[("name", "web")]), sel(&[("app", "checkout")]))]),
//!              ports(vec![tcp(8080)])),
//!     ]))
//!     .build();
//! ```
//!
//! The builder keeps the model's invariants that later stages rely on (endpoints and
//! policies sorted, every namespace labelled with its name, addresses sorted); it does
//! not re-check what `validate` checks, so a test can still build a bad model on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{
    Action, ClusterNode, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, Subject, Tier,
};
use crate::model::{
    Endpoint, EndpointKind, Inventory, IpBlock, LabelSelector, Labels, Model, NamedPort, Namespace,
    NamespaceScope, ObjectName, Operator, Peer, Peers, Policy, PolicyMode, PortMatch, PortRule,
    Ports, Protocol, Requirement, Rule, Source, NAMESPACE_NAME_LABEL,
};
use crate::resolve::{EndpointId, Index};

/// Builds a [`Model`] step by step; see the module doc.
#[derive(Debug, Default)]
pub struct ModelBuilder {
    namespaces: BTreeMap<String, Namespace>,
    endpoints: Vec<Endpoint>,
    policies: Vec<Policy>,
    cluster_policies: Vec<ClusterPolicy>,
    nodes: Vec<ClusterNode>,
}

impl ModelBuilder {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a namespace with these labels (plus its name label).
    pub fn namespace(mut self, name: &str, labels_: &[(&str, &str)]) -> Self {
        let ns = self.ensure_namespace(name);
        ns.implicit = false;
        ns.labels.extend(labels(labels_));
        self
    }

    /// Adds an endpoint `ns/name` with labels and addresses; its namespace is created
    /// (implicit) when not declared.
    pub fn endpoint(mut self, id: &str, labels_: &[(&str, &str)], ips: &[&str]) -> Self {
        let id = oname(id);
        self.ensure_namespace(&id.namespace);
        let mut ips: Vec<IpAddr> = ips.iter().map(|s| ip(s)).collect();
        ips.sort();
        ips.dedup();
        self.endpoints.push(Endpoint {
            id,
            labels: labels(labels_),
            ips: ips.into(),
            ports: Default::default(),
            kind: EndpointKind::Native,
            source: Source::default(),
        });
        self
    }

    /// Gives an already added endpoint these named ports `(name, number, protocol)`.
    pub fn named_ports(mut self, id: &str, ports_: &[(&str, u16, Protocol)]) -> Self {
        let id = oname(id);
        let ep = self
            .endpoints
            .iter_mut()
            .find(|e| e.id == id)
            .unwrap_or_else(|| panic!("named_ports: no endpoint {id}"));
        let mut ports = ep.ports.to_vec();
        ports.extend(ports_.iter().map(|&(name, port, protocol)| NamedPort {
            name: name.into(),
            port,
            protocol,
        }));
        ports.sort();
        ep.ports = ports.into();
        self
    }

    /// Adds a policy; its namespace is created (implicit) when not declared.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.ensure_namespace(&policy.id.namespace.clone());
        self.policies.push(policy);
        self
    }

    /// Adds a ClusterNetworkPolicy (see [`cnp`]).
    pub fn cluster_policy(mut self, policy: ClusterPolicy) -> Self {
        self.cluster_policies.push(policy);
        self
    }

    /// Adds an inventory Node with labels and addresses (for `nodes` peers).
    pub fn node(mut self, name: &str, labels_: &[(&str, &str)], ips: &[&str]) -> Self {
        let mut addresses: Vec<IpAddr> = ips.iter().map(|s| ip(s)).collect();
        addresses.sort();
        addresses.dedup();
        self.nodes.push(ClusterNode {
            name: name.into(),
            labels: labels(labels_),
            addresses,
            source: Source::default(),
        });
        self
    }

    /// The model, with endpoints and policies sorted by name, cluster policies by
    /// [`ClusterPolicy::order_key`] and nodes by name.
    pub fn build(mut self) -> Model {
        self.endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        self.policies.sort_by(|a, b| a.id.cmp(&b.id));
        self.cluster_policies
            .sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Model {
            inventory: Inventory {
                namespaces: self.namespaces,
                endpoints: self.endpoints,
                nodes: self.nodes,
                ..Inventory::default()
            },
            policies: self.policies,
            cluster_policies: self.cluster_policies,
        }
    }

    fn ensure_namespace(&mut self, name: &str) -> &mut Namespace {
        self.namespaces
            .entry(name.to_string())
            .or_insert_with(|| Namespace {
                name: name.to_string(),
                labels: labels(&[(NAMESPACE_NAME_LABEL, name)]),
                implicit: true,
                source: Source::default(),
            })
    }
}

/// `namespace/name`, panicking on a malformed literal.
pub fn oname(s: &str) -> ObjectName {
    ObjectName::parse(s).unwrap_or_else(|| panic!("bad object name {s:?}"))
}

/// An address literal.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("bad address {s:?}"))
}

/// The id of endpoint `ns/name` in an index.
pub fn ep(index: &Index<'_>, id: &str) -> EndpointId {
    index
        .model
        .inventory
        .endpoint_index(&oname(id))
        .unwrap_or_else(|| panic!("no endpoint {id}"))
}

/// A label map.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A selector with `matchLabels` only (`sel(&[])` is `{}`).
pub fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels(pairs),
        match_expressions: Vec::new(),
    }
}

/// A selector with one `matchExpressions` entry.
pub fn expr(key: &str, operator: Operator) -> LabelSelector {
    LabelSelector {
        match_labels: Labels::new(),
        match_expressions: vec![Requirement {
            key: key.into(),
            operator,
        }],
    }
}

/// A value set for `In`/`NotIn`.
pub fn values(vs: &[&str]) -> BTreeSet<String> {
    vs.iter().map(|s| s.to_string()).collect()
}

/// A policy; `None` leaves a direction unisolated, `Some(vec![])` denies all of it.
pub fn policy(
    id: &str,
    pod_selector: LabelSelector,
    ingress: Option<Vec<Rule>>,
    egress: Option<Vec<Rule>>,
) -> Policy {
    Policy {
        id: oname(id),
        mode: PolicyMode::Enforce,
        pod_selector,
        ingress: ingress.map(Into::into),
        egress: egress.map(Into::into),
        source: Source::default(),
    }
}

/// The same policy in audit mode (`netpol/mode: audit`).
pub fn audit(policy: Policy) -> Policy {
    Policy {
        mode: PolicyMode::Audit,
        ..policy
    }
}

/// A policy with `policyTypes: [Ingress]`.
pub fn ingress_policy(id: &str, pod_selector: LabelSelector, rules: Vec<Rule>) -> Policy {
    policy(id, pod_selector, Some(rules), None)
}

/// A policy with `policyTypes: [Egress]`.
pub fn egress_policy(id: &str, pod_selector: LabelSelector, rules: Vec<Rule>) -> Policy {
    policy(id, pod_selector, None, Some(rules))
}

/// A rule.
pub fn rule(peers: Peers, ports: Ports) -> Rule {
    Rule { peers, ports }
}

/// `- {}`: all peers, all ports.
pub fn allow_all() -> Rule {
    rule(Peers::All, Ports::All)
}

/// A `from`/`to` list.
pub fn peers(list: Vec<Peer>) -> Peers {
    Peers::List(list)
}

/// `podSelector` alone: endpoints of the policy's own namespace `ns`.
pub fn pods_in(ns: &str, pods: LabelSelector) -> Peer {
    Peer::Endpoints {
        namespaces: NamespaceScope::Own(ns.into()),
        pods,
    }
}

/// `namespaceSelector` AND `podSelector` in one entry (`sel(&[])` for `{}`).
pub fn ns_and_pods(namespaces: LabelSelector, pods: LabelSelector) -> Peer {
    Peer::Endpoints {
        namespaces: NamespaceScope::Selector(namespaces),
        pods,
    }
}

/// `ipBlock` with `except`.
pub fn ip_block(cidr: &str, except: &[&str]) -> Peer {
    let net = |s: &str| -> IpNet { s.parse().unwrap_or_else(|_| panic!("bad cidr {s:?}")) };
    Peer::IpBlock(IpBlock {
        cidr: net(cidr),
        except: except.iter().map(|s| net(s)).collect(),
    })
}

/// A `ports` list.
pub fn ports(list: Vec<PortRule>) -> Ports {
    Ports::List(list)
}

/// `{port: N, protocol: TCP}`.
pub fn tcp(port: u16) -> PortRule {
    port_range(Protocol::Tcp, port, port)
}

/// `{port: N, protocol: UDP}`.
pub fn udp(port: u16) -> PortRule {
    port_range(Protocol::Udp, port, port)
}

/// `{port: start, endPort: end, protocol: P}`.
pub fn port_range(protocol: Protocol, start: u16, end: u16) -> PortRule {
    PortRule {
        protocol,
        port: PortMatch::Range { start, end },
    }
}

/// `{protocol: P}` without a port: every port of the protocol.
pub fn any_port(protocol: Protocol) -> PortRule {
    PortRule {
        protocol,
        port: PortMatch::Any,
    }
}

/// `{port: name, protocol: P}`.
pub fn named(protocol: Protocol, name: &str) -> PortRule {
    PortRule {
        protocol,
        port: PortMatch::Named(name.into()),
    }
}

/// A ClusterNetworkPolicy with these rules, in written order.
pub fn cnp(
    name: &str,
    tier: Tier,
    priority: u16,
    subject: Subject,
    ingress: Vec<ClusterRule>,
    egress: Vec<ClusterRule>,
) -> ClusterPolicy {
    ClusterPolicy {
        name: name.into(),
        tier,
        priority,
        subject,
        ingress,
        egress,
        source: Source::default(),
    }
}

/// `subject.namespaces`.
pub fn subject_ns(namespaces: LabelSelector) -> Subject {
    Subject::Namespaces(namespaces)
}

/// `subject.pods`.
pub fn subject_pods(namespaces: LabelSelector, pods: LabelSelector) -> Subject {
    Subject::Pods { namespaces, pods }
}

/// An unnamed cluster rule; `protocols: None` leaves `protocols` out (everything).
pub fn crule(
    action: Action,
    peers: Vec<ClusterPeer>,
    protocols: Option<Vec<ClusterPort>>,
) -> ClusterRule {
    ClusterRule {
        name: None,
        action,
        peers,
        protocols,
    }
}

/// The same cluster rule with a `name`.
pub fn named_rule(name: &str, rule: ClusterRule) -> ClusterRule {
    ClusterRule {
        name: Some(name.into()),
        ..rule
    }
}

/// Peer `namespaces`.
pub fn cpeer_ns(namespaces: LabelSelector) -> ClusterPeer {
    ClusterPeer::Namespaces(namespaces)
}

/// Peer `pods`.
pub fn cpeer_pods(namespaces: LabelSelector, pods: LabelSelector) -> ClusterPeer {
    ClusterPeer::Pods { namespaces, pods }
}

/// Peer `networks`.
pub fn networks(cidrs: &[&str]) -> ClusterPeer {
    ClusterPeer::Networks(
        cidrs
            .iter()
            .map(|s| s.parse().unwrap_or_else(|_| panic!("bad cidr {s:?}")))
            .collect(),
    )
}

/// Peer `nodes`.
pub fn nodes(sel: LabelSelector) -> ClusterPeer {
    ClusterPeer::Nodes(sel)
}

/// A peer of a newer API (`domainNames`-like, unknown here).
pub fn unknown_peer() -> ClusterPeer {
    ClusterPeer::Unknown {
        fields: vec!["futurePeer".into()],
    }
}

/// `protocols` entry: every port of a protocol.
pub fn cproto(protocol: Protocol) -> ClusterPort {
    ClusterPort::Protocol {
        protocol,
        ports: None,
    }
}

/// `protocols` entry: an inclusive port range (`start == end` for `number`).
pub fn cports(protocol: Protocol, start: u16, end: u16) -> ClusterPort {
    ClusterPort::Protocol {
        protocol,
        ports: Some((start, end)),
    }
}

/// `protocols` entry: `destinationNamedPort`.
pub fn cnamed(name: &str) -> ClusterPort {
    ClusterPort::Named(name.into())
}

/// IP protocol numbers for packets in tests.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// The bundled payments example (issue 2, item 7), built in code: `payments/payments-api`
/// (named port `http` = TCP 8080) behind a default-deny ingress and a policy that admits
/// only `web`'s checkout pods on 8080; `web` (labelled `name: web`) denies all egress
/// except DNS to `kube-system/kube-dns` on UDP and TCP 53; `analytics/worker` is free.
pub fn payments_example() -> ModelBuilder {
    use Protocol::{Tcp, Udp};
    ModelBuilder::new()
        .namespace("payments", &[])
        .namespace("web", &[("name", "web")])
        .namespace("analytics", &[])
        .namespace("kube-system", &[])
        .endpoint(
            "payments/payments-api",
            &[("app", "payments-api")],
            &["198.18.0.10", "2001:db8::10"],
        )
        .named_ports("payments/payments-api", &[("http", 8080, Tcp)])
        .endpoint(
            "web/checkout",
            &[("app", "checkout")],
            &["198.18.1.2", "2001:db8:1::2"],
        )
        .endpoint("web/frontend", &[("app", "frontend")], &["198.18.1.3"])
        .endpoint("analytics/worker", &[("app", "worker")], &["198.18.2.4"])
        .endpoint(
            "kube-system/kube-dns",
            &[("k8s-app", "kube-dns")],
            &["198.18.3.53"],
        )
        .named_ports(
            "kube-system/kube-dns",
            &[("dns", 53, Udp), ("dns-tcp", 53, Tcp)],
        )
        .policy(ingress_policy(
            "payments/default-deny-ingress",
            sel(&[]),
            vec![],
        ))
        .policy(ingress_policy(
            "payments/allow-checkout",
            sel(&[("app", "payments-api")]),
            vec![rule(
                peers(vec![ns_and_pods(
                    sel(&[("name", "web")]),
                    sel(&[("app", "checkout")]),
                )]),
                ports(vec![tcp(8080)]),
            )],
        ))
        .policy(egress_policy(
            "web/default-deny-egress",
            sel(&[]),
            vec![rule(
                peers(vec![ns_and_pods(
                    sel(&[(NAMESPACE_NAME_LABEL, "kube-system")]),
                    sel(&[("k8s-app", "kube-dns")]),
                )]),
                ports(vec![udp(53), tcp(53)]),
            )],
        ))
        .policy(egress_policy(
            "web/checkout-to-payments",
            sel(&[("app", "checkout")]),
            vec![rule(
                peers(vec![ns_and_pods(
                    sel(&[(NAMESPACE_NAME_LABEL, "payments")]),
                    sel(&[("app", "payments-api")]),
                )]),
                ports(vec![named(Tcp, "http")]),
            )],
        ))
}
