//! The validated model: what `validate` produces and everything after it consumes.
//!
//! Every type here is already checked: a `Policy` cannot hold a port out of range, an
//! `except` outside its CIDR or an `In` expression without values, and an `Inventory`
//! cannot hold two endpoints claiming one address. Later stages therefore never
//! re-validate. This module holds data and small accessors only; it must not parse
//! YAML (that is `load`) nor decide what is allowed (that is `resolve`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

mod cluster;
pub use cluster::{
    Action, ClusterNode, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, Subject, Tier,
};

/// The label every namespace carries, as Kubernetes >= 1.22 sets it.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

mod labels;
pub use labels::Labels;

/// Where an object came from, for messages that point back at the input.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Source {
    /// The file, when the object came from one (shared by the objects of a file).
    pub file: Option<Arc<Path>>,
    /// 1-based line of the object's start, 0 when unknown.
    pub line: usize,
    /// 1-based column of the object's start, 0 when unknown.
    pub column: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}", p.display())?,
            None => write!(f, "<input>")?,
        }
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        Ok(())
    }
}

/// Transport protocols a NetworkPolicy port may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP, the default when a port entry names none.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// All protocols a policy can name, in a fixed order.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The IP protocol number (`meta l4proto`).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The Kubernetes spelling: `TCP`, `UDP`, `SCTP`.
    pub fn as_k8s(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// Parses the Kubernetes spelling (case-sensitive, as the API server is).
    pub fn from_k8s(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_k8s())
    }
}

/// Ingress or egress: isolation and rules are independent per direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic arriving at the endpoint.
    Ingress,
    /// Traffic the endpoint sends.
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// A `namespace/name` pair naming a policy or an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct ObjectName {
    /// The namespace.
    pub namespace: Name,
    /// The name within the namespace.
    pub name: Name,
}

/// A namespace or object name: up to 24 bytes kept inline (a Kubernetes name may have
/// up to 253), so most names cost no allocation of their own.
pub type Name = compact_str::CompactString;

impl ObjectName {
    /// Builds a name from its two parts.
    pub fn new(namespace: impl Into<Name>, name: impl Into<Name>) -> Self {
        ObjectName {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parses `namespace/name`; `None` when either part is missing or empty.
    pub fn parse(s: &str) -> Option<Self> {
        let (ns, name) = s.split_once('/')?;
        if ns.is_empty() || name.is_empty() || name.contains('/') {
            return None;
        }
        Some(ObjectName::new(ns, name))
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl From<ObjectName> for String {
    fn from(n: ObjectName) -> String {
        n.to_string()
    }
}

/// A label selector: `matchLabels` and `matchExpressions`, all of which must hold.
/// The empty selector selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct LabelSelector {
    /// `matchLabels`: each key must be present with exactly this value.
    pub match_labels: Labels,
    /// `matchExpressions`, in input order.
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator with its values; `In`/`NotIn` always carry at least one value.
    pub operator: Operator,
}

/// A `matchExpressions` operator. `In` and `NotIn` hold a non-empty set (checked by
/// `validate`); `Exists` and `DoesNotExist` hold none.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Operator {
    /// The key exists and its value is one of these.
    In(BTreeSet<String>),
    /// The key is absent, or its value is none of these.
    NotIn(BTreeSet<String>),
    /// The key exists.
    Exists,
    /// The key is absent.
    DoesNotExist,
}

/// A namespace of the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Namespace {
    /// The namespace name.
    pub name: String,
    /// Its labels, always including `kubernetes.io/metadata.name: <name>`.
    pub labels: Labels,
    /// True when no Namespace object declared it and it exists only because an
    /// endpoint or policy named it.
    pub implicit: bool,
    /// Where it was declared.
    pub source: Source,
}

/// A port an endpoint declares by name (`spec.containers[].ports[]` of a Pod).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NamedPort {
    /// The port's name, unique within its endpoint.
    pub name: Name,
    /// The number it stands for on this endpoint.
    pub port: u16,
    /// Its protocol; a policy's named port matches only with the same protocol.
    pub protocol: Protocol,
}

/// Whether an endpoint came from a Kubernetes Pod or the native short form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// A Kubernetes `Pod`.
    Pod,
    /// A native `Endpoint` (a VM, a bare-metal service).
    Native,
}

/// Something policies select and match as a peer: a live pod or a native endpoint.
/// Pods that cannot be enforced by address (pending, finished, host-network) are
/// never `Endpoint`s; they are listed in [`Inventory::skipped`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `namespace/name`.
    pub id: ObjectName,
    /// Its labels.
    pub labels: Labels,
    /// Its addresses, v4 and v6, sorted and de-duplicated; at least one. Shared by
    /// clones, as are the ports and labels: netpold's decode cache lends endpoints to
    /// each model without copying them.
    pub ips: Arc<[IpAddr]>,
    /// Its named ports, sorted by name; names are unique.
    pub ports: Arc<[NamedPort]>,
    /// Pod or native.
    pub kind: EndpointKind,
    /// Where it was declared.
    pub source: Source,
}

impl Endpoint {
    /// The number a named port stands for on this endpoint with this protocol.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.protocol == protocol)
            .map(|p| p.port)
    }
}

/// Why a pod is not an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipCause {
    /// `spec.hostNetwork: true`: its address is the node's, so no rule can tell it apart.
    HostNetwork,
    /// Phase Succeeded or Failed: its IP may be reused.
    Finished,
    /// No IP yet.
    NoAddress,
}

/// An object of the inventory that is not enforced, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// `namespace/name`.
    pub id: ObjectName,
    /// Its labels, so that `lint` can say which policies select it.
    pub labels: Labels,
    /// Why it is skipped, as data.
    pub cause: SkipCause,
    /// `Kind namespace/name`, as written in messages.
    pub object: String,
    /// Why it is not an endpoint (e.g. "hostNetwork pod: its address is the node's").
    pub reason: String,
    /// Where it was declared.
    pub source: Source,
}

/// The validated inventory: who is who.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, Namespace>,
    /// Endpoints sorted by `namespace/name`; no address is claimed twice.
    pub endpoints: Vec<Endpoint>,
    /// Pods that are not enforced, with the reason.
    pub skipped: Vec<Skipped>,
    /// Objects of other kinds (Service, Deployment, …) that were ignored, counted by kind.
    pub ignored_kinds: BTreeMap<String, usize>,
    /// Kubernetes Nodes, sorted by name, for ClusterNetworkPolicy `nodes` peers.
    pub nodes: Vec<ClusterNode>,
}

impl Inventory {
    /// The index of an endpoint by name.
    pub fn endpoint_index(&self, id: &ObjectName) -> Option<usize> {
        self.endpoints.binary_search_by(|e| e.id.cmp(id)).ok()
    }
}

/// Whether a policy is enforced or only audited (`metadata.annotations["netpol/mode"]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Enforced: part of what is allowed (`enforce`, or no annotation).
    #[default]
    Enforce,
    /// Compiled and reported, never enforced (`audit`): what it would deny is
    /// accepted and reported, what it would allow is named in deny events.
    Audit,
}

/// A validated NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// `namespace/name`.
    pub id: ObjectName,
    /// Enforced or audited.
    pub mode: PolicyMode,
    /// `spec.podSelector`: which endpoints of its own namespace it selects.
    pub pod_selector: LabelSelector,
    /// `Some` when the policy isolates ingress (policyTypes has `Ingress`): the rules,
    /// possibly empty (then nothing is allowed in). `None`: no effect on ingress. Shared
    /// by clones (the decode cache lends policies to each model).
    pub ingress: Option<Arc<[Rule]>>,
    /// `Some` when the policy isolates egress (policyTypes has `Egress`).
    pub egress: Option<Arc<[Rule]>>,
    /// Where it was declared.
    pub source: Source,
}

impl Policy {
    /// The rules for one direction, `None` when the policy does not isolate it.
    pub fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// One ingress or egress rule: peers AND ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// `from` (ingress) or `to` (egress).
    pub peers: Peers,
    /// `ports`.
    pub ports: Ports,
}

/// The peers of a rule. A missing or empty `from`/`to` is [`Peers::All`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Peers {
    /// Every address.
    All,
    /// Any of these (OR).
    List(Vec<Peer>),
}

/// One entry of `from`/`to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Peer {
    /// Endpoints chosen by namespace AND pod selector.
    Endpoints {
        /// Which namespaces: the policy's own (podSelector alone) or a selector.
        namespaces: NamespaceScope,
        /// Which endpoints within them (empty selector: all).
        pods: LabelSelector,
    },
    /// Addresses: `cidr` minus each `except`.
    IpBlock(IpBlock),
}

/// The namespace part of a selector peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum NamespaceScope {
    /// Only this namespace: the policy's own, when the peer has no namespaceSelector.
    Own(String),
    /// Namespaces whose labels match (`{}` is all namespaces).
    Selector(LabelSelector),
}

/// An `ipBlock`. `cidr` is canonical (host bits cleared); each `except` is canonical,
/// of the same family and strictly inside `cidr`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IpBlock {
    /// The block.
    pub cidr: IpNet,
    /// Parts of the block that are not matched.
    pub except: Vec<IpNet>,
}

impl IpBlock {
    /// Whether the block matches this address.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.cidr.contains(ip) && !self.except.iter().any(|e| e.contains(ip))
    }
}

/// The ports of a rule. Missing or empty `ports` is [`Ports::All`]: every port of
/// every protocol (ICMP included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Ports {
    /// Every protocol and port.
    All,
    /// Any of these (OR).
    List(Vec<PortRule>),
}

/// One entry of `ports`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortRule {
    /// The protocol (TCP when the input named none).
    pub protocol: Protocol,
    /// Which destination ports.
    pub port: PortMatch,
}

/// The destination-port part of a port entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum PortMatch {
    /// No `port`: every port of the protocol.
    Any,
    /// `port` (and `endPort`): an inclusive range, `start <= end`, both in 1..=65535.
    Range {
        /// First port.
        start: u16,
        /// Last port, inclusive (equal to `start` without `endPort`).
        end: u16,
    },
    /// A named port, resolved on the destination endpoint.
    Named(String),
}

/// Everything the compiler needs: the validated inventory and policies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Model {
    /// Who is who.
    pub inventory: Inventory,
    /// Policies sorted by `namespace/name`.
    pub policies: Vec<Policy>,
    /// ClusterNetworkPolicies, sorted by [`ClusterPolicy::order_key`]: tier, priority,
    /// name.
    pub cluster_policies: Vec<ClusterPolicy>,
}

impl Model {
    /// The policies in audit mode, sorted by `namespace/name`.
    pub fn audit_policies(&self) -> impl Iterator<Item = &Policy> + '_ {
        self.policies.iter().filter(|p| p.mode == PolicyMode::Audit)
    }
}
