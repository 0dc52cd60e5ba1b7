//! Models written in code for the plan and render tests (no YAML involved).

use std::collections::BTreeMap;

use crate::model::{
    Endpoint, EndpointKind, IpBlock, LabelSelector, Labels, Model, NamedPort, Namespace,
    NamespaceScope, ObjectName, Peer, Peers, Policy, PortMatch, PortRule, Ports, Protocol, Rule,
    Source, NAMESPACE_NAME_LABEL,
};
use crate::resolve::EndpointId;

/// Labels from pairs.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A `matchLabels`-only selector; `&[]` is `{}`.
pub(crate) fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels(pairs),
        match_expressions: Vec::new(),
    }
}

/// A rule.
pub(crate) fn rule(peers: Peers, ports: Ports) -> Rule {
    Rule { peers, ports }
}

/// `from`/`to` with these entries.
pub(crate) fn peers(list: Vec<Peer>) -> Peers {
    Peers::List(list)
}

/// `ports` with these entries.
pub(crate) fn ports(list: Vec<PortRule>) -> Ports {
    Ports::List(list)
}

/// A podSelector-only peer: endpoints of namespace `ns` (the policy's own).
pub(crate) fn own(ns: &str, pods: &[(&str, &str)]) -> Peer {
    Peer::Endpoints {
        namespaces: NamespaceScope::Own(ns.to_string()),
        pods: sel(pods),
    }
}

/// A namespaceSelector AND podSelector peer.
pub(crate) fn across(namespaces: &[(&str, &str)], pods: &[(&str, &str)]) -> Peer {
    Peer::Endpoints {
        namespaces: NamespaceScope::Selector(sel(namespaces)),
        pods: sel(pods),
    }
}

/// An ipBlock peer.
pub(crate) fn block(cidr: &str, except: &[&str]) -> Peer {
    Peer::IpBlock(IpBlock {
        cidr: cidr.parse().unwrap(),
        except: except.iter().map(|e| e.parse().unwrap()).collect(),
    })
}

/// One port number.
pub(crate) fn port(protocol: Protocol, n: u16) -> PortRule {
    port_range(protocol, n, n)
}

/// `port` with `endPort`.
pub(crate) fn port_range(protocol: Protocol, start: u16, end: u16) -> PortRule {
    PortRule {
        protocol,
        port: PortMatch::Range { start, end },
    }
}

/// A named port.
pub(crate) fn named(protocol: Protocol, name: &str) -> PortRule {
    PortRule {
        protocol,
        port: PortMatch::Named(name.to_string()),
    }
}

/// A protocol without `port`.
pub(crate) fn any_port(protocol: Protocol) -> PortRule {
    PortRule {
        protocol,
        port: PortMatch::Any,
    }
}

/// Builds a [`Model`] as `validate` would: namespaces labelled with their name,
/// endpoints and policies sorted.
#[derive(Default)]
pub(crate) struct ModelBuilder {
    namespaces: BTreeMap<String, Namespace>,
    endpoints: Vec<Endpoint>,
    policies: Vec<Policy>,
}

impl ModelBuilder {
    pub(crate) fn new() -> Self {
        ModelBuilder::default()
    }

    /// A namespace with labels (its name label is added).
    pub(crate) fn namespace(mut self, name: &str, extra: &[(&str, &str)]) -> Self {
        let mut l = labels(extra);
        l.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
        self.namespaces.insert(
            name.to_string(),
            Namespace {
                name: name.to_string(),
                labels: l,
                implicit: false,
                source: Source::default(),
            },
        );
        self
    }

    /// An endpoint; `ports` are `(name, protocol, number)`.
    pub(crate) fn endpoint(
        mut self,
        ns: &str,
        name: &str,
        l: &[(&str, &str)],
        ips: &[&str],
        named_ports: &[(&str, Protocol, u16)],
    ) -> Self {
        let mut ips: Vec<std::net::IpAddr> = ips.iter().map(|s| s.parse().unwrap()).collect();
        ips.sort();
        let mut ports: Vec<NamedPort> = named_ports
            .iter()
            .map(|(n, protocol, port)| NamedPort {
                name: n.to_string(),
                port: *port,
                protocol: *protocol,
            })
            .collect();
        ports.sort();
        self.endpoints.push(Endpoint {
            id: ObjectName::new(ns, name),
            labels: labels(l),
            ips,
            ports,
            kind: EndpointKind::Native,
            source: Source::default(),
        });
        self
    }

    /// A policy; `None` leaves a direction unisolated.
    pub(crate) fn policy(
        mut self,
        ns: &str,
        name: &str,
        pod_selector: LabelSelector,
        ingress: Option<Vec<Rule>>,
        egress: Option<Vec<Rule>>,
    ) -> Self {
        self.policies.push(Policy {
            id: ObjectName::new(ns, name),
            pod_selector,
            ingress,
            egress,
            source: Source::default(),
        });
        self
    }

    pub(crate) fn build(mut self) -> Model {
        let named: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| e.id.namespace.clone())
            .chain(self.policies.iter().map(|p| p.id.namespace.clone()))
            .collect();
        for ns in named {
            if !self.namespaces.contains_key(&ns) {
                self = self.namespace(&ns, &[]);
            }
        }
        self.endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        self.policies.sort_by(|a, b| a.id.cmp(&b.id));
        let mut model = Model::default();
        model.inventory.namespaces = self.namespaces;
        model.inventory.endpoints = self.endpoints;
        model.policies = self.policies;
        model
    }
}

/// The id of endpoint `ns/name`.
pub(crate) fn ep(model: &Model, ns: &str, name: &str) -> EndpointId {
    model
        .inventory
        .endpoint_index(&ObjectName::new(ns, name))
        .expect("endpoint in the model")
}

/// The payments example of the tutorial, small: `payments/payments-api` (v4 + v6)
/// admits only `web/checkout` on TCP 8080; `web` denies egress but DNS.
pub(crate) fn payments() -> Model {
    use Protocol::{Tcp, Udp};
    ModelBuilder::new()
        .namespace("payments", &[])
        .namespace("web", &[("name", "web")])
        .namespace("kube-system", &[])
        .endpoint(
            "payments",
            "payments-api",
            &[("app", "payments-api")],
            &["198.18.0.2", "2001:db8::2"],
            &[("http", Tcp, 8080)],
        )
        .endpoint(
            "web",
            "checkout",
            &[("app", "checkout")],
            &["198.18.1.2", "2001:db8:1::2"],
            &[],
        )
        .endpoint(
            "web",
            "frontend",
            &[("app", "frontend")],
            &["198.18.1.3"],
            &[],
        )
        .endpoint(
            "kube-system",
            "kube-dns",
            &[("k8s-app", "kube-dns")],
            &["198.18.2.10"],
            &[("dns", Udp, 53), ("dns-tcp", Tcp, 53)],
        )
        .policy("payments", "default-deny", sel(&[]), Some(vec![]), None)
        .policy(
            "payments",
            "allow-checkout",
            sel(&[("app", "payments-api")]),
            Some(vec![rule(
                peers(vec![across(&[("name", "web")], &[("app", "checkout")])]),
                ports(vec![port(Tcp, 8080)]),
            )]),
            None,
        )
        .policy(
            "web",
            "default-deny-egress",
            sel(&[]),
            None,
            Some(vec![rule(
                peers(vec![across(&[], &[("k8s-app", "kube-dns")])]),
                ports(vec![port(Udp, 53), port(Tcp, 53)]),
            )]),
        )
        .build()
}
