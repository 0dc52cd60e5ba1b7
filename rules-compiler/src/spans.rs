//! Where each field of each policy was written, and what the input left for `validate`
//! to fill in: a side table kept beside the [`crate::model::Model`], so that `lint` can
//! point at the podSelector, the peer, the port or the `egress` key it is about.
//!
//! The model stays free of positions on purpose: `resolve` and `plan` must not depend on
//! where something was written, and the model of 50,000 endpoints is kept by netpold.
//! This module holds data only; `validate` fills it and `lint` reads it. It must not
//! parse nor decide anything.
//!
//! Indices line up with the model: the *n*-th [`RuleSpans`] of a direction is the
//! *n*-th [`crate::model::Rule`], the *n*-th [`PeerSpans`] its *n*-th peer, and so on,
//! because `validate` drops a rule, peer or port only together with an error, and a
//! model exists only without errors. The one exception is a direction that
//! `policyTypes` leaves out: its rules are here (so `lint` can point at them) but not
//! in the model, whose `rules(dir)` is `None`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::load::Node;
use crate::model::{Direction, ObjectName, Source};

/// A 1-based line and column in the file of the policy it belongs to
/// ([`crate::model::Policy::source`]); one file per policy, so the path is not repeated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Span {
    /// Where a YAML node starts.
    pub(crate) fn of(node: &Node) -> Span {
        Span {
            line: node.line(),
            column: node.column(),
        }
    }

    /// This place in the policy's file, as a model [`Source`].
    pub fn in_source(self, policy: &Source) -> Source {
        Source {
            file: policy.file.clone(),
            line: self.line,
            column: self.column,
        }
    }
}

/// The written places of one policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySpans {
    /// The `spec.podSelector` key.
    pub pod_selector: Span,
    /// The `spec.policyTypes` key, when written with at least one entry (otherwise
    /// Kubernetes' defaulting decided the directions).
    pub policy_types: Option<Span>,
    /// `spec.ingress`.
    pub ingress: DirectionSpans,
    /// `spec.egress`.
    pub egress: DirectionSpans,
}

impl PolicySpans {
    /// The spans of one direction.
    pub fn direction(&self, dir: Direction) -> &DirectionSpans {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// `spec.ingress` or `spec.egress` as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectionSpans {
    /// The key, when written (also as `egress: []` or `egress:` with nothing).
    pub key: Option<Span>,
    /// Each rule, in input order, also when `policyTypes` leaves the direction out.
    pub rules: Vec<RuleSpans>,
}

/// One rule as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSpans {
    /// The rule's item in the list.
    pub rule: Span,
    /// Each entry of `from`/`to`, in order (empty for a rule without peers).
    pub peers: Vec<PeerSpans>,
    /// Each entry of `ports`, in order (empty for a rule without ports).
    pub ports: Vec<Span>,
}

/// One entry of `from`/`to`, and which of its keys were written: the model cannot tell
/// `namespaceSelector: {…}` from `namespaceSelector: {…}, podSelector: {}`, which mean
/// the same but are written differently, and `lint` judges how they were written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerSpans {
    /// The entry's item in the list.
    pub item: Span,
    /// Its `podSelector` key, when written (not null).
    pub pod_selector: Option<Span>,
    /// Its `namespaceSelector` key, when written (not null).
    pub namespace_selector: Option<Span>,
    /// Its `ipBlock` key, when written.
    pub ip_block: Option<Span>,
}

/// The side table of one load: every policy's places, and what the inventory did not
/// write itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spans {
    /// Each policy's places, by `namespace/name` (shared with netpold's decode cache).
    pub policies: BTreeMap<ObjectName, Arc<PolicySpans>>,
    /// Namespaces declared by a Namespace object without the label
    /// `kubernetes.io/metadata.name`, which `validate` then added (Kubernetes >= 1.22
    /// sets it on every namespace; an object without it was written by hand or read
    /// from an older cluster).
    pub name_label_added: BTreeSet<String>,
}
