//! ClusterNetworkPolicy semantics (issue 15) for one packet: which Admin or Baseline
//! rule decides it, and the verdict composed across the three tiers.
//!
//! For a local endpoint (the subject side), one direction and one packet, the tiers are
//! evaluated in order: **Admin** (policies by priority, ties by name — the model's order;
//! within a policy, rules in written order) → **NetworkPolicy** ([`Index::verdict`]) →
//! **Baseline** (same order) → allowed by default. In a cluster tier the first matching
//! rule decides: `Accept` and `Deny` are final for this direction, `Pass` skips the rest
//! of the tier. A tier without a matching rule goes on to the next. The NetworkPolicy
//! tier is final when NetworkPolicies isolate the endpoint in this direction (allowed or
//! denied); otherwise Baseline decides. The other direction (the receiver's ingress after
//! a sender's egress Accept) is a separate question, asked with the other endpoint.
//!
//! Matching, where the API is terse (see [`Index::cluster_tier`]):
//! - Subjects: `namespaces` selects every endpoint of a matching namespace; `pods` the
//!   endpoints matching both selectors. Host-network pods are not endpoints (the
//!   inventory skips them), so they are never subjects, nor peers by selector.
//! - Peers: `namespaces` and `pods` match the remote address when it belongs to an
//!   endpoint they select; `networks` when a block contains it (endpoint addresses
//!   included); `nodes` when it is an address of a Node whose labels match; a peer of an
//!   unknown kind matches nothing in an `Accept` rule and everything in a `Deny` or
//!   `Pass` rule (fails closed).
//! - Protocols: none written matches every protocol (ICMP included) and port; a protocol
//!   without a port every port of it (0 included, as [`super::port_range_on`]); a range
//!   inclusively; a named port is the destination endpoint's declared port of that name
//!   for the packet's protocol (the local endpoint for ingress, the remote one for
//!   egress; an address of no endpoint never matches a name), as NetworkPolicy's named
//!   ports resolve.
//!
//! Pure and total over a validated model; no I/O, no nftables vocabulary. It must not
//! change NetworkPolicy's answers (the NetworkPolicy tier is [`Index::verdict`] as is).
//! `plan` flattens the same reading into verdict maps (`plan/tiers.rs`); the property
//! test `plan_matches_semantics` holds the two equal.

use std::net::IpAddr;

use serde::Serialize;

use super::{EndpointId, Index, Verdict};
use crate::model::{
    Action, ClusterPeer, ClusterPort, ClusterRule, Direction, Endpoint, LabelSelector, Model,
    Protocol, Subject, Tier,
};

/// Index of a cluster policy in [`Model::cluster_policies`].
pub type ClusterPolicyId = usize;

/// One rule of a cluster policy, as people and JSON see it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ClusterRuleRef {
    /// Index in [`Model::cluster_policies`].
    #[serde(skip)]
    pub id: ClusterPolicyId,
    /// The policy's tier.
    pub tier: Tier,
    /// The policy's `metadata.name`.
    pub policy: String,
    /// Index of the rule in the policy's `ingress` or `egress` list.
    pub rule: usize,
    /// The rule's `name`, when written.
    pub name: Option<String>,
}

/// What one cluster tier says about a packet: the action of its first matching rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TierOutcome {
    /// No rule of the tier's policies that select the endpoint matches: next tier.
    NoMatch,
    /// This rule matched first; its action decides (`Pass`: next tier).
    Matched {
        /// The rule's action.
        action: Action,
        /// The rule.
        by: ClusterRuleRef,
    },
}

impl TierOutcome {
    /// The action of the matching rule; `None` for [`TierOutcome::NoMatch`].
    pub fn action(&self) -> Option<Action> {
        match self {
            TierOutcome::NoMatch => None,
            TierOutcome::Matched { action, .. } => Some(*action),
        }
    }
}

/// Which tier decided a packet, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// An Admin or Baseline rule accepted it (`by.tier` says which tier).
    Accept {
        /// The rule.
        by: ClusterRuleRef,
    },
    /// An Admin or Baseline rule denied it.
    Deny {
        /// The rule.
        by: ClusterRuleRef,
    },
    /// NetworkPolicies isolate the endpoint in this direction: their verdict is final.
    /// Never [`Verdict::NotIsolated`].
    NetworkPolicy {
        /// [`Index::verdict`].
        verdict: Verdict,
    },
    /// No tier decided: allowed.
    Default,
}

/// The verdict of every tier on one packet in one direction of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterVerdict {
    /// The `Pass` rules followed on the way, Admin's before Baseline's (at most one per
    /// tier).
    pub passed: Vec<ClusterRuleRef>,
    /// What decided.
    pub decision: Decision,
}

impl ClusterVerdict {
    /// Whether the packet passes in this direction.
    pub fn is_allowed(&self) -> bool {
        match &self.decision {
            Decision::Accept { .. } | Decision::Default => true,
            Decision::Deny { .. } => false,
            Decision::NetworkPolicy { verdict } => verdict.is_allowed(),
        }
    }
}

/// A tier's outcome as a final decision (`Accept`, `Deny`), or `None` to go on to the
/// next tier (no match, or `Pass`, whose rule is recorded in `passed`).
fn final_or_pass(outcome: TierOutcome, passed: &mut Vec<ClusterRuleRef>) -> Option<Decision> {
    match outcome {
        TierOutcome::NoMatch => None,
        TierOutcome::Matched { action, by } => match action {
            Action::Accept => Some(Decision::Accept { by }),
            Action::Deny => Some(Decision::Deny { by }),
            Action::Pass => {
                passed.push(by);
                None
            }
        },
    }
}

/// The slot of a tier in [`Index`]'s per-endpoint subject lists.
fn slot(tier: Tier) -> usize {
    match tier {
        Tier::Admin => 0,
        Tier::Baseline => 1,
    }
}

/// Per endpoint, the cluster policies whose subject selects it, per tier, in model
/// order. Built once by [`Index::new`].
pub(super) fn subjects(model: &Model) -> Vec<[Vec<ClusterPolicyId>; 2]> {
    model
        .inventory
        .endpoints
        .iter()
        .map(|ep| {
            let mut lists: [Vec<ClusterPolicyId>; 2] = Default::default();
            for (id, cp) in model.cluster_policies.iter().enumerate() {
                if subject_selects(model, &cp.subject, ep) {
                    lists[slot(cp.tier)].push(id);
                }
            }
            lists
        })
        .collect()
}

/// Whether `namespaces` and `pods` select this endpoint (a namespace the inventory does
/// not know matches no selector, as for NetworkPolicy peers).
fn selects(
    model: &Model,
    namespaces: &LabelSelector,
    pods: Option<&LabelSelector>,
    ep: &Endpoint,
) -> bool {
    model
        .inventory
        .namespaces
        .get(ep.id.namespace.as_str())
        .is_some_and(|ns| namespaces.matches(&ns.labels))
        && pods.is_none_or(|p| p.matches(&ep.labels))
}

fn subject_selects(model: &Model, subject: &Subject, ep: &Endpoint) -> bool {
    match subject {
        Subject::Namespaces(ns) => selects(model, ns, None, ep),
        Subject::Pods { namespaces, pods } => selects(model, namespaces, Some(pods), ep),
    }
}

/// The destination ports a `protocols` entry stands for, for packets of `protocol` to
/// `dest`, as an inclusive range; `None` when it matches no packet of that protocol
/// there. Every port is `0..=65535`. A named port resolves on `dest` (the receiver)
/// with [`Endpoint::named_port`], as NetworkPolicy's named ports do; `None` when `dest`
/// is not an endpoint or declares no such port for this protocol.
pub fn cluster_port_range_on(
    entry: &ClusterPort,
    protocol: Protocol,
    dest: Option<&Endpoint>,
) -> Option<(u16, u16)> {
    match entry {
        ClusterPort::Protocol { protocol: p, ports } => {
            (*p == protocol).then(|| ports.unwrap_or((0, u16::MAX)))
        }
        ClusterPort::Named(name) => dest
            .and_then(|ep| ep.named_port(name, protocol))
            .map(|p| (p, p)),
    }
}

/// Whether a rule's `protocols` match a packet's protocol number and destination port.
/// No `protocols`: every packet, ICMP included; otherwise only TCP, UDP and SCTP can.
pub fn cluster_protocols_match(
    protocols: Option<&[ClusterPort]>,
    proto: u8,
    dport: u16,
    dest: Option<&Endpoint>,
) -> bool {
    let Some(entries) = protocols else {
        return true;
    };
    let Some(protocol) = Protocol::ALL.into_iter().find(|p| p.number() == proto) else {
        return false;
    };
    entries.iter().any(|e| {
        cluster_port_range_on(e, protocol, dest).is_some_and(|(lo, hi)| lo <= dport && dport <= hi)
    })
}

impl<'m> Index<'m> {
    /// The cluster policies of this tier whose subject selects the endpoint, in model
    /// order (priority, then name).
    pub fn cluster_subjects(&self, ep: EndpointId, tier: Tier) -> &[ClusterPolicyId] {
        &self.cluster_subjects[ep][slot(tier)]
    }

    /// The endpoints a `namespaces` or `pods` peer selects, ascending (the addresses it
    /// matches are theirs); empty for the other kinds of peer.
    pub fn cluster_peer_endpoints(&self, peer: &ClusterPeer) -> Vec<EndpointId> {
        let (namespaces, pods) = match peer {
            ClusterPeer::Namespaces(ns) => (ns, None),
            ClusterPeer::Pods { namespaces, pods } => (namespaces, Some(pods)),
            _ => return Vec::new(),
        };
        // Namespaces first: the pod selector runs only on the endpoints of matching ones.
        let mut out: Vec<EndpointId> = self
            .endpoints_by_ns
            .iter()
            .filter(|(ns, _)| {
                self.model
                    .inventory
                    .namespaces
                    .get(**ns)
                    .is_some_and(|n| namespaces.matches(&n.labels))
            })
            .flat_map(|(_, eps)| eps.iter().copied())
            .filter(|&ep| pods.is_none_or(|p| p.matches(&self.endpoint(ep).labels)))
            .collect();
        out.sort_unstable();
        out
    }

    /// Whether a cluster peer matches a packet's remote address, in a rule with this
    /// action. A `namespaces` or `pods` peer matches an address of an endpoint it
    /// selects; `networks` any address inside a block; `nodes` an address of a selected
    /// Node; an unknown peer nothing for `Accept` and everything for `Deny` and `Pass`.
    pub fn cluster_peer_matches_addr(
        &self,
        peer: &ClusterPeer,
        action: Action,
        ip: &IpAddr,
    ) -> bool {
        let endpoint = || self.endpoint_at(ip).map(|e| self.endpoint(e));
        match peer {
            ClusterPeer::Namespaces(ns) => {
                endpoint().is_some_and(|ep| selects(self.model, ns, None, ep))
            }
            ClusterPeer::Pods { namespaces, pods } => {
                endpoint().is_some_and(|ep| selects(self.model, namespaces, Some(pods), ep))
            }
            ClusterPeer::Networks(nets) => nets.iter().any(|n| n.contains(ip)),
            ClusterPeer::Nodes(sel) => self
                .model
                .inventory
                .nodes
                .iter()
                .any(|n| sel.matches(&n.labels) && n.addresses.binary_search(ip).is_ok()),
            ClusterPeer::Unknown { .. } => action != Action::Accept,
        }
    }

    /// Whether a cluster rule matches one packet (peers ORed, AND protocols).
    /// `dest` is the endpoint receiving the packet, for named ports.
    pub fn cluster_rule_matches(
        &self,
        rule: &ClusterRule,
        remote: &IpAddr,
        proto: u8,
        dport: u16,
        dest: Option<&Endpoint>,
    ) -> bool {
        rule.peers
            .iter()
            .any(|p| self.cluster_peer_matches_addr(p, rule.action, remote))
            && cluster_protocols_match(rule.protocols.as_deref(), proto, dport, dest)
    }

    /// What one cluster tier says about a packet at endpoint `local`: the first rule
    /// that matches, among the tier's policies selecting `local` in model order and
    /// their rules of `dir` in written order. Arguments as for [`Index::verdict`]:
    /// for ingress the packet goes `remote` → `local`, for egress `local` → `remote`.
    pub fn cluster_tier(
        &self,
        tier: Tier,
        local: EndpointId,
        dir: Direction,
        remote: IpAddr,
        proto: u8,
        dport: u16,
    ) -> TierOutcome {
        let dest = match dir {
            Direction::Ingress => Some(self.endpoint(local)),
            Direction::Egress => self.endpoint_at(&remote).map(|ep| self.endpoint(ep)),
        };
        for &id in self.cluster_subjects(local, tier) {
            let cp = &self.model.cluster_policies[id];
            for (r, rule) in cp.rules(dir).iter().enumerate() {
                if self.cluster_rule_matches(rule, &remote, proto, dport, dest) {
                    return TierOutcome::Matched {
                        action: rule.action,
                        by: ClusterRuleRef {
                            id,
                            tier: cp.tier,
                            policy: cp.name.clone(),
                            rule: r,
                            name: rule.name.clone(),
                        },
                    };
                }
            }
        }
        TierOutcome::NoMatch
    }

    /// The verdict of all tiers on one packet: Admin, then NetworkPolicy (final when it
    /// isolates `local` in `dir`), then Baseline, then allowed by default. Arguments as
    /// for [`Index::verdict`]. Without cluster policies this is [`Index::verdict`]'s
    /// answer (`Default` where it says `NotIsolated`).
    pub fn cluster_verdict(
        &self,
        local: EndpointId,
        dir: Direction,
        remote: IpAddr,
        proto: u8,
        dport: u16,
    ) -> ClusterVerdict {
        let mut passed = Vec::new();
        let admin = self.cluster_tier(Tier::Admin, local, dir, remote, proto, dport);
        if let Some(decision) = final_or_pass(admin, &mut passed) {
            return ClusterVerdict { passed, decision };
        }
        let verdict = self.verdict(local, dir, remote, proto, dport);
        if verdict != Verdict::NotIsolated {
            return ClusterVerdict {
                passed,
                decision: Decision::NetworkPolicy { verdict },
            };
        }
        let baseline = self.cluster_tier(Tier::Baseline, local, dir, remote, proto, dport);
        if let Some(decision) = final_or_pass(baseline, &mut passed) {
            return ClusterVerdict { passed, decision };
        }
        ClusterVerdict {
            passed,
            decision: Decision::Default,
        }
    }
}

#[cfg(test)]
mod tests;
