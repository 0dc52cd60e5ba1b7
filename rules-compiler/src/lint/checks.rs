//! One function per check. Each reads the model through `resolve` and the places
//! through [`crate::spans`], and only records findings.

use std::collections::{BTreeMap, BTreeSet};

use super::coverage::{self, Unit};
use super::{count, has_named_port, list, peers_key, Check, Lint, DIRECTIONS};
use crate::diag::quote;
use crate::model::{
    Direction, Endpoint, LabelSelector, NamespaceScope, Operator, Peer, Peers, PortMatch, Ports,
    Protocol, Rule, SkipCause, NAMESPACE_NAME_LABEL,
};
use crate::resolve::{port_rule_matches, EndpointId, PolicyId};

/// The DNS port, on both UDP and TCP (answers too big for UDP are retried over TCP).
const DNS_PORT: u16 = 53;

/// `ignored-rules`: rules of a direction that `policyTypes` leaves out, and `egress: []`
/// without `policyTypes` (which does not isolate egress). The model no longer has such
/// rules; the side table still knows where they were written.
pub(super) fn ignored_rules(lint: &mut Lint<'_, '_>, id: PolicyId) {
    let policy = lint.policy(id);
    let places = lint.places(id);
    let mut found = Vec::new();
    for dir in DIRECTIONS {
        let written = places.direction(dir);
        if policy.rules(dir).is_none() && !written.rules.is_empty() {
            let (key, ty) = match dir {
                Direction::Ingress => ("ingress", "Ingress"),
                Direction::Egress => ("egress", "Egress"),
            };
            found.push((
                written.key,
                format!(
                    "{key} holds {} but policyTypes leaves {ty} out, so Kubernetes ignores \
                     {}: they neither isolate nor allow anything",
                    count(written.rules.len(), "rule"),
                    if written.rules.len() == 1 {
                        "it"
                    } else {
                        "them"
                    }
                ),
                format!("add {ty} to policyTypes to enforce them, or delete the {key} rules"),
            ));
        }
    }
    let egress = &places.egress;
    if places.policy_types.is_none() && egress.key.is_some() && egress.rules.is_empty() {
        found.push((
            egress.key,
            "egress is empty and policyTypes is not set, so Kubernetes defaults policyTypes \
             to [Ingress] and egress is not isolated at all"
                .to_string(),
            "to deny all egress write policyTypes: [Ingress, Egress] (or [Egress]); \
             otherwise delete the empty egress key"
                .to_string(),
        ));
    }
    for (span, message, hint) in found {
        lint.report(Check::IgnoredRules, id, span, message, hint);
    }
}

/// `or-instead-of-and`: a `from`/`to` list with an entry that has only a
/// namespaceSelector and another that has only a podSelector. Judged on how the
/// entries were written, which the side table keeps.
pub(super) fn or_instead_of_and(lint: &mut Lint<'_, '_>, id: PolicyId) {
    let policy = lint.policy(id);
    let mut found = Vec::new();
    for dir in DIRECTIONS {
        if policy.rules(dir).is_none() {
            continue;
        }
        for rule in &lint.places(id).direction(dir).rules {
            let only_ns = rule.peers.iter().position(|p| {
                p.namespace_selector.is_some() && p.pod_selector.is_none() && p.ip_block.is_none()
            });
            let only_pods = rule.peers.iter().position(|p| {
                p.pod_selector.is_some() && p.namespace_selector.is_none() && p.ip_block.is_none()
            });
            let (Some(ns), Some(pods)) = (only_ns, only_pods) else {
                continue;
            };
            let key = peers_key(dir);
            // The later entry is the one whose `-` is likely the slip.
            let at = rule.peers[ns.max(pods)].item;
            found.push((
                at,
                format!(
                    "{key}[{ns}] has only a namespaceSelector and {key}[{pods}] only a \
                     podSelector: as two entries they are ORed, so every endpoint of those \
                     namespaces is a peer, and so are those pods of namespace {}",
                    policy.id.namespace
                ),
                "if those pods in those namespaces are meant, write one entry with both \
                 selectors (delete the `-` before the second), which ANDs them"
                    .to_string(),
            ));
        }
    }
    for (at, message, hint) in found {
        lint.report(Check::OrInsteadOfAnd, id, Some(at), message, hint);
    }
}

/// Each rule of a direction the policy has, with its written places (when known).
fn rules_with_places<'p>(
    lint: &'p Lint<'_, '_>,
    id: PolicyId,
    dir: Direction,
) -> Vec<(usize, &'p Rule, Option<&'p crate::spans::RuleSpans>)> {
    let places = &lint.places(id).direction(dir).rules;
    lint.policy(id)
        .rules(dir)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r, places.get(i)))
        .collect()
}

/// Each selector or ipBlock peer of every rule the policy has, with its places.
fn peers_with_places<'p>(
    lint: &'p Lint<'_, '_>,
    id: PolicyId,
) -> Vec<(Direction, &'p Peer, Option<&'p crate::spans::PeerSpans>)> {
    let mut out = Vec::new();
    for dir in DIRECTIONS {
        for (_, rule, places) in rules_with_places(lint, id, dir) {
            let Peers::List(peers) = &rule.peers else {
                continue;
            };
            for (k, peer) in peers.iter().enumerate() {
                out.push((dir, peer, places.and_then(|p| p.peers.get(k))));
            }
        }
    }
    out
}

/// The namespaces of the inventory a namespace scope matches.
fn namespaces_of(lint: &Lint<'_, '_>, scope: &NamespaceScope) -> Vec<String> {
    let namespaces = &lint.index.model.inventory.namespaces;
    match scope {
        NamespaceScope::Own(ns) => namespaces
            .contains_key(ns)
            .then(|| ns.clone())
            .into_iter()
            .collect(),
        NamespaceScope::Selector(sel) => namespaces
            .values()
            .filter(|n| sel.matches(&n.labels))
            .map(|n| n.name.clone())
            .collect(),
    }
}

/// `selector-matches-nothing`: a policy's podSelector that selects no endpoint of its
/// namespace, a peer's namespaceSelector that matches no namespace, or a selector peer
/// that matches no endpoint.
pub(super) fn selector_matches_nothing(lint: &mut Lint<'_, '_>, id: PolicyId) {
    let policy = lint.policy(id);
    let mut found = Vec::new();
    if lint.selected(id).is_empty() {
        found.push((
            Some(lint.places(id).pod_selector),
            format!(
                "podSelector matches no endpoint of namespace {} in the inventory, so the \
                 policy isolates nothing and allows nothing",
                policy.id.namespace
            ),
            "compare its labels with those of the pods meant (a typo, or labels that \
             changed); delete the policy if they are gone"
                .to_string(),
        ));
    }
    for (dir, peer, places) in peers_with_places(lint, id) {
        let Peer::Endpoints { namespaces, .. } = peer else {
            continue;
        };
        let key = peers_key(dir);
        let ns_span = places.and_then(|p| p.namespace_selector);
        if ns_span.is_some() && namespaces_of(lint, namespaces).is_empty() {
            found.push((
                ns_span,
                format!(
                    "this {key} entry's namespaceSelector matches no namespace of the \
                     inventory, so the entry matches no peer"
                ),
                "compare its labels with the Namespace objects' labels (kubernetes.io/\
                 metadata.name selects a namespace by name)"
                    .to_string(),
            ));
        } else if lint.index.peer_endpoints(peer).is_empty() {
            let at = places.and_then(|p| p.pod_selector.or(Some(p.item)));
            let scope = match namespaces {
                NamespaceScope::Own(ns) => format!("namespace {ns}"),
                NamespaceScope::Selector(_) => "the namespaces it selects".to_string(),
            };
            found.push((
                at,
                format!(
                    "this {key} entry matches no endpoint of the inventory in {scope}, so it \
                     allows nothing"
                ),
                "compare its podSelector with the labels of the pods meant; a podSelector \
                 alone means the policy's own namespace"
                    .to_string(),
            ));
        }
    }
    for (at, message, hint) in found {
        lint.report(Check::SelectorMatchesNothing, id, at, message, hint);
    }
}

/// The namespace names a selector on `kubernetes.io/metadata.name` names (`matchLabels`
/// and `In`); `None` when it can match namespaces it does not name (`NotIn`, `Exists`,
/// `DoesNotExist`), and an empty set when it does not use the label.
fn named_namespaces(sel: &LabelSelector) -> Option<BTreeSet<String>> {
    let mut names: BTreeSet<String> = sel
        .match_labels
        .get(NAMESPACE_NAME_LABEL)
        .map(str::to_string)
        .into_iter()
        .collect();
    for req in sel
        .match_expressions
        .iter()
        .filter(|r| r.key == NAMESPACE_NAME_LABEL)
    {
        match &req.operator {
            Operator::In(values) => names.extend(values.iter().cloned()),
            Operator::NotIn(_) | Operator::Exists | Operator::DoesNotExist => return None,
        }
    }
    Some(names)
}

/// Whether a selector uses `kubernetes.io/metadata.name` at all.
fn uses_name_label(sel: &LabelSelector) -> bool {
    sel.match_labels.contains_key(NAMESPACE_NAME_LABEL)
        || sel
            .match_expressions
            .iter()
            .any(|r| r.key == NAMESPACE_NAME_LABEL)
}

/// `missing-metadata-name-label`: a namespaceSelector on `kubernetes.io/metadata.name`
/// while a Namespace object it may select was written without that label.
pub(super) fn missing_metadata_name_label(lint: &mut Lint<'_, '_>, id: PolicyId) {
    let added = &lint.spans.name_label_added;
    let mut found = Vec::new();
    for (_, peer, places) in peers_with_places(lint, id) {
        let Peer::Endpoints {
            namespaces: NamespaceScope::Selector(sel),
            ..
        } = peer
        else {
            continue;
        };
        if !uses_name_label(sel) {
            continue;
        }
        let lacking: Vec<&String> = match named_namespaces(sel) {
            Some(names) => names.iter().filter_map(|n| added.get(n)).collect(),
            None => added.iter().collect(),
        };
        if lacking.is_empty() {
            continue;
        }
        let names = list(lacking.iter());
        found.push((
            places.and_then(|p| p.namespace_selector),
            format!(
                "namespaceSelector selects on {NAMESPACE_NAME_LABEL}, but the inventory's \
                 Namespace {names} does not carry that label: netpol adds it, as Kubernetes \
                 >= 1.22 does, but a cluster or tool without it matches nothing here"
            ),
            format!(
                "add the label {NAMESPACE_NAME_LABEL}: <name> to the Namespace object{} \
                 (kubectl get ns -o yaml prints it), or select on a label it declares",
                if lacking.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    for (at, message, hint) in found {
        lint.report(Check::MissingMetadataNameLabel, id, at, message, hint);
    }
}

/// `host-network-selected`: a podSelector that selects hostNetwork pods (which the
/// inventory skips: their address is the node's), or a selector peer that names them.
pub(super) fn host_network_selected(lint: &mut Lint<'_, '_>, id: PolicyId) {
    let policy = lint.policy(id);
    let inventory = &lint.index.model.inventory;
    let host: Vec<_> = inventory
        .skipped
        .iter()
        .filter(|s| s.cause == SkipCause::HostNetwork)
        .collect();
    if host.is_empty() {
        return;
    }
    let mut found = Vec::new();
    let own: Vec<_> = host
        .iter()
        .filter(|s| s.id.namespace == policy.id.namespace && policy.pod_selector.matches(&s.labels))
        .map(|s| &s.id)
        .collect();
    if !own.is_empty() {
        found.push((
            Some(lint.places(id).pod_selector),
            format!(
                "podSelector selects hostNetwork pods ({}): their address is the node's, so \
                 no rule can isolate them and netpol leaves them open",
                list(&own)
            ),
            "protect them with the node's firewall, or run them without hostNetwork; \
             narrow the selector if they are not meant"
                .to_string(),
        ));
    }
    for (dir, peer, places) in peers_with_places(lint, id) {
        let Peer::Endpoints { namespaces, pods } = peer else {
            continue;
        };
        let in_scope = namespaces_of(lint, namespaces);
        let named: Vec<_> = host
            .iter()
            .filter(|s| in_scope.iter().any(|n| *n == s.id.namespace) && pods.matches(&s.labels))
            .map(|s| &s.id)
            .collect();
        if named.is_empty() {
            continue;
        }
        found.push((
            places.map(|p| p.item),
            format!(
                "this {} entry selects hostNetwork pods ({}): their packets carry the node's \
                 address, which this entry does not match",
                peers_key(dir),
                list(&named)
            ),
            "allow their node's address with an ipBlock entry instead".to_string(),
        ));
    }
    for (at, message, hint) in found {
        lint.report(Check::HostNetworkSelected, id, at, message, hint);
    }
}

/// The endpoints a rule's named ports resolve on: for ingress the endpoints the policy
/// selects, for egress the peers' endpoints (an ipBlock's are those whose address it
/// contains). The `bool` is whether the rule's peers can only be ipBlocks, whose
/// addresses of no endpoint never match a name.
fn destinations(
    lint: &Lint<'_, '_>,
    id: PolicyId,
    dir: Direction,
    rule: &Rule,
) -> (Vec<EndpointId>, bool) {
    if dir == Direction::Ingress {
        return (lint.selected(id), false);
    }
    let endpoints = &lint.index.model.inventory.endpoints;
    match &rule.peers {
        Peers::All => ((0..endpoints.len()).collect(), false),
        Peers::List(peers) => {
            let mut out = BTreeSet::new();
            for peer in peers {
                match peer {
                    Peer::IpBlock(block) => out.extend(lint.in_block(block)),
                    Peer::Endpoints { .. } => out.extend(lint.index.peer_endpoints(peer)),
                }
            }
            let blocks_only = peers.iter().all(|p| matches!(p, Peer::IpBlock(_)));
            (out.into_iter().collect(), blocks_only)
        }
    }
}

/// `named-port-unresolved`: a named port that none of the endpoints it resolves on
/// declares with its protocol, so the port entry allows nothing.
pub(super) fn named_port_unresolved(lint: &mut Lint<'_, '_>, id: PolicyId) {
    let mut found = Vec::new();
    for dir in DIRECTIONS {
        for (_, rule, places) in rules_with_places(lint, id, dir) {
            let Ports::List(ports) = &rule.ports else {
                continue;
            };
            let mut dests = None;
            for (k, port) in ports.iter().enumerate() {
                let PortMatch::Named(name) = &port.port else {
                    continue;
                };
                let (dests, blocks_only) =
                    dests.get_or_insert_with(|| destinations(lint, id, dir, rule));
                // No destination at all: selector-matches-nothing says so, unless only
                // ipBlocks of no endpoint are left, which never match a name.
                if dests.is_empty() && !*blocks_only {
                    continue;
                }
                let endpoint = |e: &EndpointId| lint.index.endpoint(*e);
                if dests
                    .iter()
                    .any(|e| endpoint(e).named_port(name, port.protocol).is_some())
                {
                    continue;
                }
                let other_protocol: Vec<String> = dests
                    .iter()
                    .map(endpoint)
                    .flat_map(|e: &Endpoint| {
                        e.ports
                            .iter()
                            .filter(|p| p.name == *name)
                            .map(move |p| format!("{} declares it as {}", e.id, p.protocol))
                    })
                    .collect();
                let whose = match dir {
                    Direction::Ingress => "the endpoints the policy selects",
                    Direction::Egress => "the endpoints of this rule's peers",
                };
                let also = if other_protocol.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", list(&other_protocol))
                };
                found.push((
                    places.and_then(|p| p.ports.get(k).copied()),
                    format!(
                        "named port {} with protocol {} is declared by none of {whose} \
                         ({}){also}, so this port entry allows nothing",
                        quote(name),
                        port.protocol,
                        count(dests.len(), "endpoint"),
                    ),
                    "use the name a container declares for this protocol (TCP is the \
                     default; say protocol: UDP for UDP), or the port number"
                        .to_string(),
                ));
            }
        }
    }
    for (at, message, hint) in found {
        lint.report(Check::NamedPortUnresolved, id, at, message, hint);
    }
}

/// `ipblock-covers-endpoints`: an ipBlock that contains addresses of inventory
/// endpoints. netpol matches them (the kernel sees addresses); some implementations
/// apply ipBlock only to traffic from outside the cluster.
pub(super) fn ipblock_covers_endpoints(lint: &mut Lint<'_, '_>, id: PolicyId) {
    let mut found = Vec::new();
    for (dir, peer, places) in peers_with_places(lint, id) {
        let Peer::IpBlock(block) = peer else {
            continue;
        };
        let inside: Vec<_> = lint
            .in_block(block)
            .into_iter()
            .map(|e| &lint.index.endpoint(e).id)
            .collect();
        if inside.is_empty() {
            continue;
        }
        found.push((
            places.and_then(|p| p.ip_block),
            format!(
                "this {} entry's ipBlock {} contains addresses of {} ({}): netpol matches \
                 them as this peer, but implementations disagree (some apply ipBlock only to \
                 traffic from outside the cluster)",
                peers_key(dir),
                block.cidr,
                count(inside.len(), "endpoint"),
                list(&inside)
            ),
            "select those endpoints with podSelector/namespaceSelector entries, or list \
             their addresses under except if they are not meant"
                .to_string(),
        ));
    }
    for (at, message, hint) in found {
        lint.report(Check::IpblockCoversEndpoints, id, at, message, hint);
    }
}

/// `allow-all-shadows-deny`: a rule with neither peers nor ports (it allows everything)
/// in a policy that selects endpoints which another policy isolates in the same
/// direction: that policy's deny no longer denies anything for them.
pub(super) fn allow_all_shadows_deny(lint: &mut Lint<'_, '_>, id: PolicyId) {
    let mut found = Vec::new();
    for dir in DIRECTIONS {
        for (r, rule, places) in rules_with_places(lint, id, dir) {
            if rule.peers != Peers::All || rule.ports != Ports::All {
                continue;
            }
            // Other policies isolating the endpoints this one selects, with whom.
            let mut shadowed: BTreeMap<PolicyId, Vec<EndpointId>> = BTreeMap::new();
            for ep in lint.selected(id) {
                for other in lint.isolating(ep, dir) {
                    if other != id {
                        shadowed.entry(other).or_default().push(ep);
                    }
                }
            }
            if shadowed.is_empty() {
                continue;
            }
            let names = list(shadowed.keys().map(|&p| &lint.policy(p).id));
            let endpoints: BTreeSet<EndpointId> = shadowed.values().flatten().copied().collect();
            found.push((
                places.map(|p| p.rule),
                format!(
                    "{dir} rule {r} allows every peer on every port, so for {} ({}) the \
                     isolation by {names} denies nothing",
                    count(endpoints.len(), "endpoint"),
                    list(endpoints.iter().map(|&e| &lint.index.endpoint(e).id)),
                ),
                "narrow this rule's peers or ports, or its policy's podSelector; if opening \
                 these endpoints is meant, say so by removing them from the deny"
                    .to_string(),
            ));
        }
    }
    for (at, message, hint) in found {
        lint.report(Check::AllowAllShadowsDeny, id, at, message, hint);
    }
}

/// Whether a rule allows `proto`/`port` to at least one destination, resolved as the
/// compiler does: a rule without peers or with an ipBlock reaches addresses of no
/// endpoint (numbered ports only), selector peers their endpoints, and a named port
/// resolves on the endpoint at the destination.
fn rule_reaches(lint: &Lint<'_, '_>, rule: &Rule, proto: Protocol, port: u16) -> bool {
    let index = lint.index;
    let endpoints = &index.model.inventory.endpoints;
    let ports_ok = |dest: Option<&Endpoint>| match &rule.ports {
        Ports::All => true,
        Ports::List(list) => list
            .iter()
            .any(|pr| port_rule_matches(pr, proto.number(), port, dest)),
    };
    match &rule.peers {
        Peers::All => ports_ok(None) || endpoints.iter().any(|e| ports_ok(Some(e))),
        Peers::List(peers) => peers.iter().any(|peer| match peer {
            Peer::IpBlock(block) => {
                ports_ok(None)
                    || lint
                        .in_block(block)
                        .into_iter()
                        .any(|e| ports_ok(Some(index.endpoint(e))))
            }
            Peer::Endpoints { .. } => index
                .peer_endpoints(peer)
                .into_iter()
                .any(|e| ports_ok(Some(index.endpoint(e)))),
        }),
    }
}

/// `egress-without-dns`: endpoints isolated for egress whose policies allow no peer on
/// 53/UDP, or none on 53/TCP. Endpoints are judged per set of isolating policies, then
/// reported together under the policy of their set that selects the most endpoints
/// (the default deny, typically, where a DNS rule belongs), at its `egress` key (or
/// `policyTypes`).
pub(super) fn egress_without_dns(lint: &mut Lint<'_, '_>) {
    let index = lint.index;
    let mut groups: BTreeMap<Vec<PolicyId>, Vec<EndpointId>> = BTreeMap::new();
    for ep in 0..index.model.inventory.endpoints.len() {
        let isolating = lint.isolating(ep, Direction::Egress);
        if !isolating.is_empty() {
            groups.entry(isolating).or_default().push(ep);
        }
    }
    let mut widths: BTreeMap<PolicyId, usize> = BTreeMap::new();
    let mut width = |p: PolicyId| *widths.entry(p).or_insert_with(|| lint.selected(p).len());
    // (policy reported at, protocols missing) → (endpoints, isolating policies).
    type Key = (PolicyId, Vec<&'static str>);
    let mut found: BTreeMap<Key, (BTreeSet<EndpointId>, BTreeSet<PolicyId>)> = BTreeMap::new();
    for (isolating, endpoints) in groups {
        let reaches = |proto| {
            isolating.iter().any(|&p| {
                lint.policy(p)
                    .rules(Direction::Egress)
                    .unwrap_or_default()
                    .iter()
                    .any(|rule| rule_reaches(lint, rule, proto, DNS_PORT))
            })
        };
        let missing: Vec<&str> = [Protocol::Udp, Protocol::Tcp]
            .into_iter()
            .filter(|&proto| !reaches(proto))
            .map(Protocol::as_k8s)
            .collect();
        if missing.is_empty() {
            continue;
        }
        // The widest policy; the first of equals (`max_by_key` keeps the last).
        let at = isolating
            .iter()
            .copied()
            .rev()
            .max_by_key(|&p| width(p))
            .expect("isolating is not empty");
        let entry = found.entry((at, missing)).or_default();
        entry.0.extend(endpoints);
        entry.1.extend(isolating);
    }
    for ((policy, missing), (endpoints, isolating)) in found {
        let places = lint.places(policy);
        let at = places.egress.key.or(places.policy_types);
        let missing = missing
            .iter()
            .map(|p| format!("{DNS_PORT}/{p}"))
            .collect::<Vec<_>>()
            .join(" nor ");
        let message = format!(
            "{} ({}) {} isolated for egress by {}, whose rules allow no peer on {missing}, \
             so name lookups fail (they time out)",
            count(endpoints.len(), "endpoint"),
            list(endpoints.iter().map(|&e| &index.endpoint(e).id)),
            if endpoints.len() == 1 { "is" } else { "are" },
            list(isolating.iter().map(|&p| &lint.policy(p).id)),
        );
        let hint = "add an egress rule to the DNS servers on port 53 with protocol UDP and \
                    TCP, e.g. to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.\
                    name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]"
            .to_string();
        lint.report(Check::EgressWithoutDns, policy, at, message, hint);
    }
}

/// `duplicate-rule`: a rule, or one peer of a rule, that another rule (or another peer
/// of the same rule) allows entirely, for every endpoint its policy selects. Computed
/// on what each allows as resolved addresses and ports (`coverage.rs`), per group of
/// endpoints with the same isolating policies (and, for ingress, the same named ports).
pub(super) fn duplicate_rule(lint: &mut Lint<'_, '_>) {
    for dir in DIRECTIONS {
        for (unit, cover) in duplicate_units(lint, dir) {
            report_duplicate(lint, dir, unit, cover);
        }
    }
}

/// The units of one direction that every group of endpoints can do without, each with
/// its cover when one unit covers it in every group (`None` when they differ).
pub(super) fn duplicate_units(lint: &Lint<'_, '_>, dir: Direction) -> BTreeMap<Unit, Option<Unit>> {
    let index = lint.index;
    // Endpoints that see the same rules the same way.
    let mut groups: BTreeMap<(Vec<PolicyId>, Option<&[crate::model::NamedPort]>), EndpointId> =
        BTreeMap::new();
    for ep in 0..index.model.inventory.endpoints.len() {
        let isolating = lint.isolating(ep, dir);
        if isolating.is_empty() {
            continue;
        }
        // Named ports of ingress rules resolve on the local endpoint; without any, its
        // ports change nothing (and would only split the groups).
        let named = dir == Direction::Ingress
            && isolating.iter().any(|&p| {
                lint.policy(p)
                    .rules(dir)
                    .unwrap_or_default()
                    .iter()
                    .any(has_named_port)
            });
        let ports = named.then(|| &index.endpoint(ep).ports[..]);
        groups.entry((isolating, ports)).or_insert(ep);
    }
    // Per unit: `None` once a group needs it; else its cover, while every group so far
    // has the same one (`None` inside when they differ).
    let mut verdicts: BTreeMap<Unit, Option<Option<Unit>>> = BTreeMap::new();
    let mut selected = coverage::Selected::default();
    for ((isolating, _), ep) in &groups {
        let redundant = coverage::redundant_units(lint, dir, *ep, isolating, &mut selected);
        for unit in coverage::units(lint, dir, isolating) {
            let cover = redundant.get(&unit).copied();
            verdicts
                .entry(unit)
                .and_modify(|v| match (*v, cover) {
                    (_, None) => *v = None,
                    (Some(Some(first)), Some(c)) if first != c => *v = Some(None),
                    _ => {}
                })
                .or_insert(cover.map(Some));
        }
    }
    verdicts
        .into_iter()
        .filter_map(|(unit, cover)| Some((unit, cover?)))
        .collect()
}

/// Reports a redundant unit, naming its cover when one unit covers it for every
/// endpoint (`None`: endpoints differ in which rule covers it).
fn report_duplicate(lint: &mut Lint<'_, '_>, dir: Direction, unit: Unit, cover: Option<Unit>) {
    let key = peers_key(dir);
    let what = |u: &Unit| match u.peer {
        None => format!("{dir} rule {}", u.rule),
        Some(k) => format!("{dir} rule {} {key}[{k}]", u.rule),
    };
    let by = match cover {
        None => "the other rules of its endpoints".to_string(),
        Some(cover) if cover.policy == unit.policy => what(&cover),
        Some(cover) => format!("{} of {}", what(&cover), lint.policy(cover.policy).id),
    };
    let places = lint.places(unit.policy).direction(dir).rules.get(unit.rule);
    let at = match unit.peer {
        None => places.map(|p| p.rule),
        Some(k) => places.and_then(|p| p.peers.get(k)).map(|p| p.item),
    };
    let message = format!(
        "{} allows nothing not already allowed by {by}, for every endpoint this policy \
         selects",
        what(&unit)
    );
    let hint = match unit.peer {
        None => "delete this rule, or merge what differs into the other one".to_string(),
        Some(_) => format!("delete this {key} entry"),
    };
    lint.report(Check::DuplicateRule, unit.policy, at, message, hint);
}
