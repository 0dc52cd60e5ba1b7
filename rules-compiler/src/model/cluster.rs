//! ClusterNetworkPolicy (`policy.networking.k8s.io/v1alpha2`, network-policy-api v0.2.0),
//! as validated: cluster-scoped policies in two tiers (`Admin`, `Baseline`), ordered by
//! priority, whose rules `Accept`, `Deny` or `Pass`.
//!
//! These types are what `validate` produces from the YAML; they are distinct from
//! anything parsed and already checked (limits, selectors, CIDRs, port ranges). This
//! module holds data only: it must not parse, and it must not decide what traffic is
//! allowed.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::{Direction, LabelSelector, Labels, Protocol, Source};

/// Which tier a cluster policy is in. Ordered as evaluated: `Admin` before every
/// NetworkPolicy, `Baseline` after them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Tier {
    /// Evaluated before NetworkPolicies.
    Admin,
    /// Evaluated after NetworkPolicies.
    Baseline,
}

impl Tier {
    /// The API spelling: `Admin`, `Baseline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Admin => "Admin",
            Tier::Baseline => "Baseline",
        }
    }
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    /// Allow the traffic; no later rule or tier is consulted.
    Accept,
    /// Drop the traffic; no later rule or tier is consulted.
    Deny,
    /// Skip the rest of this tier: the next tier decides.
    Pass,
}

/// Which pods a cluster policy applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Subject {
    /// Every pod of the namespaces this selector matches (`subject.namespaces`).
    Namespaces(LabelSelector),
    /// `subject.pods`: pods matching `pods` in namespaces matching `namespaces`.
    Pods {
        /// `namespaceSelector`.
        namespaces: LabelSelector,
        /// `podSelector`.
        pods: LabelSelector,
    },
}

/// One peer of a rule (an item of `from` or `to`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ClusterPeer {
    /// Every pod of the namespaces this selector matches.
    Namespaces(LabelSelector),
    /// Pods matching `pods` in namespaces matching `namespaces`.
    Pods {
        /// `namespaceSelector`.
        namespaces: LabelSelector,
        /// `podSelector`.
        pods: LabelSelector,
    },
    /// Egress only: these blocks (`networks`), canonical (host bits cleared), v4 or v6.
    Networks(Vec<IpNet>),
    /// Egress only (experimental upstream): the addresses of the inventory's Nodes whose
    /// labels this selector matches.
    Nodes(LabelSelector),
    /// A peer whose fields this netpol does not know (written for a newer API). It fails
    /// closed: in an `Accept` rule it matches nothing; in a `Deny` or `Pass` rule it
    /// matches every peer.
    Unknown {
        /// The field names written, sorted.
        fields: Vec<String>,
    },
}

/// One entry of `protocols`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ClusterPort {
    /// `tcp`, `udp` or `sctp`, with a destination port range or every port.
    Protocol {
        /// The protocol.
        protocol: Protocol,
        /// `destinationPort`: `None` when not given (every port of the protocol);
        /// otherwise an inclusive range `start..=end` (`number` gives `start == end`).
        ports: Option<(u16, u16)>,
    },
    /// `destinationNamedPort`: a port name, resolved (with its protocol) on the
    /// destination pod.
    Named(String),
}

/// One ingress or egress rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterRule {
    /// `name`, at most 100 characters, when given.
    pub name: Option<String>,
    /// `action`.
    pub action: Action,
    /// `from` (ingress) or `to` (egress): 1 to 25 peers.
    pub peers: Vec<ClusterPeer>,
    /// `protocols`: `None` when not given (every protocol and port); else 1 to 25 entries.
    pub protocols: Option<Vec<ClusterPort>>,
}

/// A validated ClusterNetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterPolicy {
    /// `metadata.name` (cluster-scoped: no namespace).
    pub name: String,
    /// `spec.tier`.
    pub tier: Tier,
    /// `spec.priority`, 0 to 1000; lower is evaluated first within a tier.
    pub priority: u16,
    /// `spec.subject`.
    pub subject: Subject,
    /// `spec.ingress`, in order (at most 25).
    pub ingress: Vec<ClusterRule>,
    /// `spec.egress`, in order (at most 25).
    pub egress: Vec<ClusterRule>,
    /// Where the object starts.
    #[serde(skip)]
    pub source: Source,
}

impl ClusterPolicy {
    /// The order of [`crate::model::Model::cluster_policies`]: tier (`Admin` first),
    /// then priority (lower first), then name. Names are unique, so the order is total;
    /// the name only breaks ties of equal priority, which the API leaves undefined.
    pub fn order_key(&self) -> (Tier, u16, &str) {
        (self.tier, self.priority, &self.name)
    }

    /// The rules of one direction, in written order (empty when none are written).
    pub fn rules(&self, dir: Direction) -> &[ClusterRule] {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// A Kubernetes `Node` of the inventory, for `nodes` peers. Read leniently, as kubectl
/// prints it: name, labels and the `status.addresses` of type `InternalIP` or
/// `ExternalIP` (`Hostname` and the DNS types are names, not addresses, and are left
/// out). A Node is not an endpoint: its addresses may also be endpoints' (a
/// `hostNetwork` pod has its node's), and no policy isolates it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterNode {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: Labels,
    /// `InternalIP` and `ExternalIP` addresses, sorted, without duplicates; may be empty.
    pub addresses: Vec<IpAddr>,
    /// Where the object starts.
    #[serde(skip)]
    pub source: Source,
}
