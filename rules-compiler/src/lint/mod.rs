//! Lint: the classic NetworkPolicy mistakes, found in a model that is valid. Each
//! [`Finding`] has a stable [`Check`] id, a severity, the policy, the place of the
//! offending field (from [`crate::spans`]), what is wrong and how to fix it.
//!
//! Pure analysis over the validated model, the [`Index`] and the side table of places:
//! what a selector or port means comes from `resolve` (the compiler's own semantics),
//! never from a second reading of the YAML. Must not reject input (that is `validate`),
//! change what is allowed, or print: `netpolctl lint` formats and chooses the exit code.
//!
//! Policies in audit mode are linted as if enforced: they are meant to be enforced
//! once they look right, and a mistake in one is as real then.
//!
//! One small function per check, in `checks.rs`; the set arithmetic behind
//! `duplicate-rule` is `coverage.rs`.

mod checks;
mod coverage;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::diag::Severity;
use crate::model::{Direction, IpBlock, ObjectName, Policy, PolicyMode, Source};
use crate::resolve::{EndpointId, Index, PolicyId};
use crate::spans::{PolicySpans, Span, Spans};

/// The checks, with their stable ids (`Check::id`, also the JSON and text spelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// An endpoint isolated for egress whose allowed egress has no peer on 53/UDP, or
    /// none on 53/TCP.
    EgressWithoutDns,
    /// A `from`/`to` list with a namespaceSelector-only entry and a podSelector-only
    /// entry: ORed, where one entry with both (ANDed) was likely meant.
    OrInsteadOfAnd,
    /// A policy's podSelector, or a peer's selector, that matches nothing in the
    /// inventory.
    SelectorMatchesNothing,
    /// A namespaceSelector on `kubernetes.io/metadata.name` while a Namespace object it
    /// names does not carry that label.
    MissingMetadataNameLabel,
    /// A podSelector (or peer) that selects hostNetwork pods, which no rule can enforce.
    HostNetworkSelected,
    /// A named port that none of the endpoints it resolves on declares.
    NamedPortUnresolved,
    /// An ipBlock that contains inventory endpoint addresses.
    IpblockCoversEndpoints,
    /// Rules of a direction that `policyTypes` leaves out, or `egress: []` without
    /// `policyTypes`.
    IgnoredRules,
    /// A rule or peer that another rule (or peer) of the same endpoints already allows
    /// entirely.
    DuplicateRule,
    /// An allow-all rule that makes another policy's isolation moot for the endpoints
    /// both select.
    AllowAllShadowsDeny,
}

impl Check {
    /// Every check, in the order of the README's table.
    pub const ALL: [Check; 10] = [
        Check::EgressWithoutDns,
        Check::OrInsteadOfAnd,
        Check::SelectorMatchesNothing,
        Check::MissingMetadataNameLabel,
        Check::HostNetworkSelected,
        Check::NamedPortUnresolved,
        Check::IpblockCoversEndpoints,
        Check::IgnoredRules,
        Check::DuplicateRule,
        Check::AllowAllShadowsDeny,
    ];

    /// The stable id.
    pub fn id(self) -> &'static str {
        match self {
            Check::EgressWithoutDns => "egress-without-dns",
            Check::OrInsteadOfAnd => "or-instead-of-and",
            Check::SelectorMatchesNothing => "selector-matches-nothing",
            Check::MissingMetadataNameLabel => "missing-metadata-name-label",
            Check::HostNetworkSelected => "host-network-selected",
            Check::NamedPortUnresolved => "named-port-unresolved",
            Check::IpblockCoversEndpoints => "ipblock-covers-endpoints",
            Check::IgnoredRules => "ignored-rules",
            Check::DuplicateRule => "duplicate-rule",
            Check::AllowAllShadowsDeny => "allow-all-shadows-deny",
        }
    }

    /// How bad a finding of this check is. `Error` where the input is almost always a
    /// mistake that silently changes what is allowed; `Warning` where it may be meant.
    ///
    /// - `egress-without-dns`: error. Nearly every workload resolves names, and the
    ///   failure (lookups time out rather than being refused) is slow to diagnose; an
    ///   endpoint that must resolve nothing is the rare exception.
    /// - `named-port-unresolved`: error. A port entry that resolves nowhere allows
    ///   nothing: a misspelt name or a wrong protocol (TCP is the default).
    /// - `ignored-rules`: error. Kubernetes drops those rules without a word; nobody
    ///   writes rules to have them ignored, and `egress: []` meant to deny all egress
    ///   denies nothing.
    /// - `or-instead-of-and`: warning. Usually a stray `-`, but "this whole namespace,
    ///   or these pods of ours" is a legitimate rule.
    /// - `selector-matches-nothing`: warning. Often a typo, but policies are commonly
    ///   applied before the workloads they protect, and peers scale to zero.
    /// - `missing-metadata-name-label`: warning. netpol adds the label itself, so its
    ///   verdicts are as intended; the inventory disagrees with what such a cluster has.
    /// - `host-network-selected`: warning. The policy still works for the other pods
    ///   it selects; the hostNetwork ones are open, which the operator should know.
    /// - `ipblock-covers-endpoints`: warning. netpol's choice is documented, and a wide
    ///   block (the whole internet) containing endpoints is often meant.
    /// - `duplicate-rule`: warning. Harmless to what is allowed; noise to readers.
    /// - `allow-all-shadows-deny`: warning. Opening endpoints on purpose is common,
    ///   for a while.
    pub fn severity(self) -> Severity {
        match self {
            Check::EgressWithoutDns | Check::NamedPortUnresolved | Check::IgnoredRules => {
                Severity::Error
            }
            Check::OrInsteadOfAnd
            | Check::SelectorMatchesNothing
            | Check::MissingMetadataNameLabel
            | Check::HostNetworkSelected
            | Check::IpblockCoversEndpoints
            | Check::DuplicateRule
            | Check::AllowAllShadowsDeny => Severity::Warning,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One finding, in the order and with the names of the JSON contract
/// (`{"findings":[{"check","severity","policy","file","line","column","message","hint"}]}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// Its severity ([`Check::severity`]).
    pub severity: Severity,
    /// The policy, `namespace/name`.
    pub policy: ObjectName,
    /// The policy's file, when it came from one (in JSON a string, any bytes that are
    /// not UTF-8 replaced).
    #[serde(serialize_with = "lossy_path")]
    pub file: Option<PathBuf>,
    /// 1-based line of the offending field.
    pub line: usize,
    /// 1-based column of the offending field.
    pub column: usize,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it, in one sentence.
    pub hint: String,
}

fn lossy_path<S: serde::Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(p) => s.serialize_some(&p.to_string_lossy()),
        None => s.serialize_none(),
    }
}

/// Every finding of every check, ordered by file, line, column and check id.
pub fn lint(index: &Index<'_>, spans: &Spans) -> Vec<Finding> {
    let mut lint = Lint::new(index, spans);
    for id in 0..index.model.policies.len() {
        checks::ignored_rules(&mut lint, id);
        checks::or_instead_of_and(&mut lint, id);
        checks::selector_matches_nothing(&mut lint, id);
        checks::missing_metadata_name_label(&mut lint, id);
        checks::host_network_selected(&mut lint, id);
        checks::named_port_unresolved(&mut lint, id);
        checks::ipblock_covers_endpoints(&mut lint, id);
        checks::allow_all_shadows_deny(&mut lint, id);
    }
    checks::egress_without_dns(&mut lint);
    checks::duplicate_rule(&mut lint);
    let mut findings = lint.findings;
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.check, &a.policy)
            .cmp(&(&b.file, b.line, b.column, b.check, &b.policy))
    });
    findings
}

/// What every check needs, and where findings go.
struct Lint<'a, 'm> {
    index: &'a Index<'m>,
    spans: &'a Spans,
    /// Every endpoint address with its endpoint, sorted, for the endpoints in an
    /// ipBlock (a range search instead of a scan of every endpoint per block).
    addresses: Vec<(IpAddr, EndpointId)>,
    findings: Vec<Finding>,
}

/// Places of a policy that the side table does not know (a model built in code).
static NO_PLACES: PolicySpans = PolicySpans {
    pod_selector: Span { line: 0, column: 0 },
    policy_types: None,
    ingress: crate::spans::DirectionSpans {
        key: None,
        rules: Vec::new(),
    },
    egress: crate::spans::DirectionSpans {
        key: None,
        rules: Vec::new(),
    },
};

impl<'a, 'm> Lint<'a, 'm> {
    fn new(index: &'a Index<'m>, spans: &'a Spans) -> Self {
        let mut addresses: Vec<(IpAddr, EndpointId)> = index
            .model
            .inventory
            .endpoints
            .iter()
            .enumerate()
            .flat_map(|(e, ep)| ep.ips.iter().map(move |ip| (*ip, e)))
            .collect();
        addresses.sort_unstable();
        Lint {
            index,
            spans,
            addresses,
            findings: Vec::new(),
        }
    }

    /// The endpoints with an address inside an ipBlock, ascending: netpol matches them
    /// as its peers (an ipBlock matches endpoint addresses too).
    fn in_block(&self, block: &IpBlock) -> Vec<EndpointId> {
        let (first, last) = (block.cidr.network(), block.cidr.broadcast());
        let start = self.addresses.partition_point(|(ip, _)| *ip < first);
        let mut inside: Vec<EndpointId> = self.addresses[start..]
            .iter()
            .take_while(|(ip, _)| *ip <= last)
            .filter(|(ip, _)| block.contains(ip))
            .map(|(_, e)| *e)
            .collect();
        inside.sort_unstable();
        inside.dedup();
        inside
    }

    fn policy(&self, id: PolicyId) -> &'m Policy {
        self.index.policy(id)
    }

    /// The places of a policy.
    fn places(&self, id: PolicyId) -> &PolicySpans {
        self.spans
            .policies
            .get(&self.policy(id).id)
            .map_or(&NO_PLACES, |p| p)
    }

    /// Records a finding at `span` of policy `id`; an unknown span (0:0) falls back to
    /// the policy's own start, so a finding always points somewhere real.
    fn report(
        &mut self,
        check: Check,
        id: PolicyId,
        span: Option<Span>,
        message: String,
        hint: String,
    ) {
        let policy = self.policy(id);
        let at = match span {
            Some(s) if s.line > 0 => s.in_source(&policy.source),
            _ => policy.source.clone(),
        };
        let Source { file, line, column } = at;
        self.findings.push(Finding {
            check,
            severity: check.severity(),
            policy: policy.id.clone(),
            file: file.map(|f| f.to_path_buf()),
            line,
            column,
            message,
            hint,
        });
    }

    /// The policies of either mode isolating `ep` in `dir`, in model order: lint reads
    /// audit policies as if enforced.
    fn isolating(&self, ep: EndpointId, dir: Direction) -> Vec<PolicyId> {
        let mut all = self.index.isolating_in(ep, dir, PolicyMode::Enforce);
        all.extend(self.index.isolating_in(ep, dir, PolicyMode::Audit));
        all.sort_unstable();
        all
    }

    /// The endpoints a policy selects (its podSelector, in its namespace), ascending.
    fn selected(&self, id: PolicyId) -> Vec<EndpointId> {
        let policy = self.policy(id);
        self.index.peer_endpoints(&crate::model::Peer::Endpoints {
            namespaces: crate::model::NamespaceScope::Own(policy.id.namespace.to_string()),
            pods: policy.pod_selector.clone(),
        })
    }
}

/// Most names a message lists before "and N more".
const LISTED: usize = 5;

/// `a, b, c` or `a, b, c, d, e and 7 more`.
fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut items = items.into_iter();
    // Only the shown ones are formatted: a block may hold thousands of endpoints.
    let shown: Vec<String> = items.by_ref().take(LISTED).map(|i| i.to_string()).collect();
    match items.count() {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Whether a rule has a named port, which resolves on each destination endpoint.
fn has_named_port(rule: &crate::model::Rule) -> bool {
    matches!(&rule.ports, crate::model::Ports::List(list)
        if list.iter().any(|p| matches!(p.port, crate::model::PortMatch::Named(_))))
}

/// `1 endpoint`, `3 endpoints`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The list key of a direction: `from` (ingress) or `to` (egress).
fn peers_key(dir: Direction) -> &'static str {
    match dir {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    }
}

/// The directions, in the order findings are made.
const DIRECTIONS: [Direction; 2] = [Direction::Ingress, Direction::Egress];
