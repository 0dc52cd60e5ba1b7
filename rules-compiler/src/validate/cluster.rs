//! `ClusterNetworkPolicy` (`policy.networking.k8s.io/v1alpha2`, network-policy-api
//! v0.2.0), decoded strictly into [`crate::model::ClusterPolicy`], with the same located
//! errors as NetworkPolicy decoding. Decides what input is acceptable; must not decide
//! what traffic is allowed, and must not make such a policy take effect: nothing
//! enforces it yet, and `load_model` refuses a model that holds one.
//!
//! Checked: `spec.tier` (`Admin` | `Baseline`), `spec.priority` (0-1000), `spec.subject`
//! (exactly one of `namespaces` or `pods`), at most 25 rules per direction, rule `name`
//! at most 100 characters, `action` (`Accept` | `Deny` | `Pass`), 1 to 25 peers, 1 to 25
//! `protocols` entries, 1 to 25 `networks`. A peer or a protocols entry holds exactly
//! one field.
//!
//! Decisions where the API is silent or this netpol cannot follow it:
//! - A peer whose fields are all unknown (written for a newer API) is not an error: it
//!   becomes [`ClusterPeer::Unknown`] with a warning, and fails closed.
//! - `domainNames` is an error: it needs DNS answers at run time, which static inputs do
//!   not have. `nodes` selects the inventory's `kind: Node` objects by their labels.
//! - `networks` entries follow `ipBlock`'s rules: host bits are masked with a warning.
//! - `range` needs `start < end`, as the upstream CEL rule says; one port is `number`.
//! - `metadata.namespace` on this cluster-scoped kind is ignored with a warning, as the
//!   API server ignores it; a top-level `status` is ignored, as for NetworkPolicy.
//! - A shared priority within a tier is a warning (in `validate/mod.rs`) at the later
//!   object, naming the earlier one; the model orders such policies by name.

use super::cidr;
use super::decode::{self, index, Ctx, Map};
use super::labels;
use super::names;
use super::object::{self, MetaFields, Object, Scope};
use super::policy::port_number;
use crate::diag::quote;
use crate::load::Node;
use crate::model::{
    Action, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, LabelSelector, Protocol, Subject,
    Tier,
};

/// The only apiVersion of ClusterNetworkPolicy accepted.
pub(super) const API_VERSION: &str = "policy.networking.k8s.io/v1alpha2";
/// The kind.
pub(super) const KIND: &str = "ClusterNetworkPolicy";

/// Rules per direction, peers per rule, protocols entries per rule, networks per peer.
const MAX_ITEMS: usize = 25;
/// Characters of a rule's `name`.
const MAX_RULE_NAME: usize = 100;
/// The highest `spec.priority`.
const MAX_PRIORITY: i64 = 1000;

/// Peer fields of ingress rules (`from`).
const INGRESS_PEER: &[&str] = &["namespaces", "pods"];
/// Peer fields of egress rules (`to`).
const EGRESS_PEER: &[&str] = &["namespaces", "pods", "networks", "nodes", "domainNames"];

/// Decodes one ClusterNetworkPolicy; `None` when it cannot be identified or its spec is
/// unusable (the errors are reported).
pub(super) fn decode(ctx: &mut Ctx<'_>, obj: &Object<'_>) -> Option<ClusterPolicy> {
    let m = &obj.map;
    ctx.object = Some(object::label(KIND, m, Scope::ClusterSubdomain));
    if obj.api_version != API_VERSION {
        ctx.error(
            m.get("apiVersion").unwrap_or(m.node),
            "apiVersion",
            format!(
                "unsupported apiVersion {} for {KIND}; expected {API_VERSION}",
                quote(obj.api_version)
            ),
        );
    }
    m.strict(ctx, &["apiVersion", "kind", "metadata", "spec", "status"]);
    let meta = object::metadata(ctx, m, MetaFields::Kubernetes, Scope::ClusterSubdomain);
    if let Some(n) = meta.as_ref().and_then(|meta| meta.map.get("namespace")) {
        ctx.warning(
            n,
            "metadata.namespace",
            format!("ignored: {KIND} is cluster-scoped"),
        );
    }
    let spec = m
        .required(ctx, "spec", "")
        .and_then(|n| decode::map(ctx, n, "spec"))
        .and_then(|s| decode_spec(ctx, &s));
    let (meta, spec) = (meta?, spec?);
    Some(ClusterPolicy {
        name: meta.name,
        tier: spec.tier,
        priority: spec.priority,
        subject: spec.subject,
        ingress: spec.ingress,
        egress: spec.egress,
        source: ctx.source(m.node),
    })
}

struct Spec {
    tier: Tier,
    priority: u16,
    subject: Subject,
    ingress: Vec<ClusterRule>,
    egress: Vec<ClusterRule>,
}

fn decode_spec(ctx: &mut Ctx<'_>, spec: &Map<'_>) -> Option<Spec> {
    spec.strict(ctx, &["tier", "priority", "subject", "ingress", "egress"]);
    let tier = spec
        .required(ctx, "tier", "Admin or Baseline")
        .and_then(|n| {
            let s = decode::string(ctx, n, "spec.tier")?;
            match s {
                "Admin" => Some(Tier::Admin),
                "Baseline" => Some(Tier::Baseline),
                other => {
                    ctx.error(
                        n,
                        "spec.tier",
                        format!("unknown tier {}; expected Admin or Baseline", quote(other)),
                    );
                    None
                }
            }
        });
    let priority = spec
        .required(ctx, "priority", "0 (evaluated first) to 1000")
        .and_then(|n| {
            let p = decode::integer(ctx, n, "spec.priority")?;
            if (0..=MAX_PRIORITY).contains(&p) {
                u16::try_from(p).ok()
            } else {
                ctx.error(
                    n,
                    "spec.priority",
                    format!("priority {p} is out of range: expected 0-{MAX_PRIORITY}"),
                );
                None
            }
        });
    let subject = spec
        .required(
            ctx,
            "subject",
            "give namespaces (a selector) or pods (namespaceSelector and podSelector)",
        )
        .and_then(|n| subject(ctx, n, "spec.subject"));
    let ingress = rules(ctx, spec, "ingress", "from");
    let egress = rules(ctx, spec, "egress", "to");
    Some(Spec {
        tier: tier?,
        priority: priority?,
        subject: subject?,
        ingress,
        egress,
    })
}

/// The one field of a mapping that must hold exactly one of `fields` (all with a value);
/// errors for none and for a second one. Fields outside `fields` must have been reported
/// by the caller (`Map::strict`): with one of them, "none" is not reported twice.
fn one_of<'n>(
    ctx: &mut Ctx<'_>,
    m: &Map<'n>,
    fields: &[&str],
    what: &str,
) -> Option<(&'n str, &'n Node)> {
    let mut written = m
        .entries()
        .iter()
        .filter(|(k, _, v)| fields.contains(k) && v.value != crate::load::Value::Null);
    let Some((first, _, value)) = written.next() else {
        // A field outside `fields` was reported by the caller's strict check already.
        if m.entries().iter().any(|(k, _, _)| !fields.contains(k)) {
            return None;
        }
        ctx.error(
            m.node,
            &m.path,
            format!("empty {what}: give exactly one of {}", fields.join(", ")),
        );
        return None;
    };
    if let Some((second, key, _)) = written.next() {
        ctx.error(
            key,
            &m.field(second),
            format!(
                "{} and {} cannot both be given: a {what} holds exactly one field; write \
                 separate entries",
                quote(first),
                quote(second)
            ),
        );
        return None;
    }
    Some((first, value))
}

fn subject(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<Subject> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &["namespaces", "pods"]);
    match one_of(ctx, &m, &["namespaces", "pods"], "subject")? {
        ("namespaces", n) => {
            labels::selector(ctx, n, &m.field("namespaces")).map(Subject::Namespaces)
        }
        (_, n) => {
            let (namespaces, pods) = pods(ctx, n, &m.field("pods"))?;
            Some(Subject::Pods { namespaces, pods })
        }
    }
}

/// `{namespaceSelector, podSelector}`: `podSelector` required; `namespaceSelector`
/// optional, every namespace when left out (as `{}`: the API marks it optional, "if
/// empty, it selects all Namespaces", and the upstream conformance suite omits it).
fn pods(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<(LabelSelector, LabelSelector)> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &["namespaceSelector", "podSelector"]);
    let namespaces = match m.get("namespaceSelector") {
        None => Some(LabelSelector::default()),
        Some(n) => labels::selector(ctx, n, &m.field("namespaceSelector")),
    };
    let pods = m
        .required(ctx, "podSelector", "use podSelector: {} for every pod")
        .and_then(|n| labels::selector(ctx, n, &m.field("podSelector")));
    Some((namespaces?, pods?))
}

/// An error at the first item past `MAX_ITEMS`, if any.
fn at_most(ctx: &mut Ctx<'_>, items: &[Node], path: &str, what: &str) {
    if let Some(extra) = items.get(MAX_ITEMS) {
        ctx.error(
            extra,
            &index(path, MAX_ITEMS),
            format!("{} {what}: at most {MAX_ITEMS} are allowed", items.len()),
        );
    }
}

/// A required list of 1 to 25 items.
fn required_list<'n>(
    ctx: &mut Ctx<'_>,
    m: &Map<'n>,
    key: &str,
    what: &str,
    hint: &str,
) -> &'n [Node] {
    let path = m.field(key);
    let Some(node) = m.required(ctx, key, hint) else {
        return &[];
    };
    let items = decode::seq(ctx, node, &path).unwrap_or(&[]);
    if items.is_empty() && matches!(node.value, crate::load::Value::Seq(_)) {
        ctx.error(node, &path, format!("{} is empty: {hint}", quote(key)));
    }
    at_most(ctx, items, &path, what);
    items
}

/// `spec.ingress` or `spec.egress`: missing, null and `[]` are all no rules.
fn rules(ctx: &mut Ctx<'_>, spec: &Map<'_>, key: &str, peers_key: &str) -> Vec<ClusterRule> {
    let path = spec.field(key);
    let items = decode::opt_seq(ctx, spec.get(key), &path);
    at_most(ctx, items, &path, &format!("{key} rules"));
    items
        .iter()
        .enumerate()
        .filter_map(|(i, n)| rule(ctx, n, &index(&path, i), peers_key))
        .collect()
}

fn rule(ctx: &mut Ctx<'_>, node: &Node, path: &str, peers_key: &str) -> Option<ClusterRule> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &["name", "action", peers_key, "protocols"]);
    let mut ok = true;
    let name = m.string(ctx, "name").and_then(|(s, n)| {
        let len = s.chars().count();
        if len > MAX_RULE_NAME {
            ctx.error(
                n,
                &m.field("name"),
                format!("rule name is {len} characters long: at most {MAX_RULE_NAME} are allowed"),
            );
            None
        } else {
            Some(s.to_string())
        }
    });
    ok &= m.get("name").is_none() || name.is_some();
    let action = m
        .required(ctx, "action", "Accept, Deny or Pass")
        .and_then(|n| {
            let field = m.field("action");
            match decode::string(ctx, n, &field)? {
                "Accept" => Some(Action::Accept),
                "Deny" => Some(Action::Deny),
                "Pass" => Some(Action::Pass),
                other => {
                    ctx.error(
                        n,
                        &field,
                        format!(
                            "unknown action {}; expected Accept, Deny or Pass",
                            quote(other)
                        ),
                    );
                    None
                }
            }
        });

    let egress = peers_key == "to";
    let peers_path = m.field(peers_key);
    let peer_nodes = required_list(
        ctx,
        &m,
        peers_key,
        "peers",
        "a rule needs at least one peer",
    );
    let peers: Vec<ClusterPeer> = peer_nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let p = peer(ctx, n, &index(&peers_path, i), egress);
            ok &= p.is_some();
            p
        })
        .collect();

    let protocols = match m.get("protocols") {
        None => None,
        Some(_) => {
            let ports_path = m.field("protocols");
            let nodes = required_list(
                ctx,
                &m,
                "protocols",
                "protocols entries",
                "leave protocols out to match every protocol and port",
            );
            Some(
                nodes
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| {
                        let p = protocol(ctx, n, &index(&ports_path, i));
                        ok &= p.is_some();
                        p
                    })
                    .collect(),
            )
        }
    };
    if !ok || peer_nodes.is_empty() {
        return None;
    }
    Some(ClusterRule {
        name,
        action: action?,
        peers,
        protocols,
    })
}

fn peer(ctx: &mut Ctx<'_>, node: &Node, path: &str, egress: bool) -> Option<ClusterPeer> {
    let m = decode::map(ctx, node, path)?;
    let allowed = if egress { EGRESS_PEER } else { INGRESS_PEER };
    let written: Vec<&str> = m.entries().iter().map(|(k, _, _)| *k).collect();
    let egress_only = |k: &str| !egress && EGRESS_PEER.contains(&k) && !INGRESS_PEER.contains(&k);
    if written.iter().any(|k| egress_only(k)) {
        for (key, key_node, _) in m.entries() {
            if egress_only(key) {
                ctx.error(
                    key_node,
                    &m.field(key),
                    format!(
                        "{} is only allowed in egress peers (to); an ingress peer takes \
                         namespaces or pods",
                        quote(key)
                    ),
                );
            }
        }
        return None;
    }
    if !written.is_empty() && !written.iter().any(|k| allowed.contains(k)) {
        // Written for a newer API: fail closed rather than guess, and say so.
        let mut fields: Vec<String> = written.iter().map(|k| k.to_string()).collect();
        fields.sort();
        ctx.warning(
            node,
            path,
            format!(
                "peer with no field this netpol knows ({}): it matches nothing in an Accept \
                 rule and every peer in a Deny or Pass rule (fail closed)",
                fields.join(", ")
            ),
        );
        return Some(ClusterPeer::Unknown { fields });
    }
    m.strict(ctx, allowed);
    let (key, value) = one_of(ctx, &m, allowed, "peer")?;
    let field = m.field(key);
    let key_node = m.key_node(key).unwrap_or(node);
    match key {
        "namespaces" => labels::selector(ctx, value, &field).map(ClusterPeer::Namespaces),
        "pods" => {
            let (namespaces, pods) = pods(ctx, value, &field)?;
            Some(ClusterPeer::Pods { namespaces, pods })
        }
        "networks" => networks(ctx, value, &field),
        "nodes" => labels::selector(ctx, value, &field).map(ClusterPeer::Nodes),
        _ => {
            ctx.error(
                key_node,
                &field,
                "domainNames cannot be enforced from static inputs (it needs DNS answers at \
                 run time); remove it, or use networks with the addresses",
            );
            None
        }
    }
}

fn networks(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<ClusterPeer> {
    let items = decode::seq(ctx, node, path)?;
    if items.is_empty() {
        ctx.error(node, path, "networks is empty: give at least one CIDR");
        return None;
    }
    at_most(ctx, items, path, "networks");
    let mut nets = Vec::with_capacity(items.len());
    let mut ok = items.len() <= MAX_ITEMS;
    for (i, item) in items.iter().enumerate() {
        let field = index(path, i);
        match decode::string(ctx, item, &field).and_then(|s| cidr::parse_cidr(ctx, item, &field, s))
        {
            Some(net) => nets.push(net),
            None => ok = false,
        }
    }
    ok.then_some(ClusterPeer::Networks(nets))
}

fn protocol(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<ClusterPort> {
    let m = decode::map(ctx, node, path)?;
    let fields = ["tcp", "udp", "sctp", "destinationNamedPort"];
    m.strict(ctx, &fields);
    let (key, value) = one_of(ctx, &m, &fields, "protocols entry")?;
    let field = m.field(key);
    let protocol = match key {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => {
            let name = decode::string(ctx, value, &field)?;
            return match names::port_name(name) {
                Ok(()) => Some(ClusterPort::Named(name.to_string())),
                Err(why) => {
                    ctx.error(value, &field, why);
                    None
                }
            };
        }
    };
    let pm = decode::map(ctx, value, &field)?;
    pm.strict(ctx, &["destinationPort"]);
    let ports = match pm.get("destinationPort") {
        None => None,
        Some(n) => Some(destination_port(ctx, n, &pm.field("destinationPort"))?),
    };
    Some(ClusterPort::Protocol { protocol, ports })
}

/// `{number: N}` or `{range: {start, end}}`, as an inclusive range.
fn destination_port(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<(u16, u16)> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &["number", "range"]);
    match one_of(ctx, &m, &["number", "range"], "destinationPort")? {
        ("number", n) => port(ctx, n, &m.field("number")).map(|p| (p, p)),
        (_, n) => {
            let r = decode::map(ctx, n, &m.field("range"))?;
            r.strict(ctx, &["start", "end"]);
            let start = r
                .required(ctx, "start", "the first port")
                .and_then(|n| port(ctx, n, &r.field("start")));
            let end = r
                .required(ctx, "end", "the last port")
                .and_then(|n| port(ctx, n, &r.field("end")));
            let (start, end) = (start?, end?);
            if end <= start {
                ctx.error(
                    r.get("end").unwrap_or(n),
                    &r.field("end"),
                    format!(
                        "end {end} must be greater than start {start}; for one port, write \
                         number: {start}"
                    ),
                );
                return None;
            }
            Some((start, end))
        }
    }
}

/// A port number, 1-65535.
fn port(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<u16> {
    let p = decode::integer(ctx, node, path)?;
    let found = port_number(p);
    if found.is_none() {
        ctx.error(
            node,
            path,
            format!("port {p} is out of range: expected 1-65535"),
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, ok, one_error, show};
    use crate::model::*;

    /// A ClusterNetworkPolicy `c` whose spec (indented by two) starts on line 6.
    fn doc(spec: &str) -> String {
        format!(
            "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n\
             metadata:\n  name: c\nspec:\n{spec}"
        )
    }

    /// Tier, priority and subject on lines 6-9: what follows starts on line 10.
    const HEAD: &str = "  tier: Admin\n  priority: 10\n  subject:\n    namespaces: {}\n";

    const OBJ: &str = "ClusterNetworkPolicy c";

    fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_expressions: vec![],
        }
    }

    /// Expects one error for `spec` at (line, column), with `field` and `message`.
    #[track_caller]
    fn fails(spec: &str, at: (usize, usize), field: &str, message: &str) {
        let d = one_error(&[("c.yaml", &doc(spec))], &[]);
        check(&d, "c.yaml", at, OBJ, field, message);
    }

    #[test]
    fn full_policy_decodes_into_the_model() {
        let rest = "  ingress:
    - name: from-monitoring
      action: Accept
      from:
        - namespaces: {matchLabels: {team: monitoring}}
        - pods:
            namespaceSelector: {}
            podSelector: {matchLabels: {app: probe}}
      protocols:
        - tcp: {destinationPort: {number: 8080}}
        - udp: {destinationPort: {range: {start: 5000, end: 5010}}}
        - sctp: {}
        - destinationNamedPort: metrics
  egress:
    - action: Deny
      to:
        - networks: [198.18.0.0/15, \"2001:db8::/32\"]
    - action: Pass
      to:
        - namespaces: {}
";
        let spec = format!(
            "  tier: Baseline\n  priority: 1000\n  subject:\n    pods:\n      \
             namespaceSelector: {{matchLabels: {{env: prod}}}}\n      podSelector: {{}}\n{rest}"
        );
        let loaded = ok(&[("c.yaml", &doc(&spec))], &[]);
        assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
        assert!(loaded.model.policies.is_empty());
        let p = &loaded.model.cluster_policies[0];
        assert_eq!(p.name, "c");
        assert_eq!((p.tier, p.priority), (Tier::Baseline, 1000));
        assert_eq!(
            p.subject,
            Subject::Pods {
                namespaces: sel(&[("env", "prod")]),
                pods: LabelSelector::everything(),
            }
        );
        assert_eq!(
            p.ingress,
            vec![ClusterRule {
                name: Some("from-monitoring".into()),
                action: Action::Accept,
                peers: vec![
                    ClusterPeer::Namespaces(sel(&[("team", "monitoring")])),
                    ClusterPeer::Pods {
                        namespaces: LabelSelector::everything(),
                        pods: sel(&[("app", "probe")]),
                    },
                ],
                protocols: Some(vec![
                    ClusterPort::Protocol {
                        protocol: Protocol::Tcp,
                        ports: Some((8080, 8080)),
                    },
                    ClusterPort::Protocol {
                        protocol: Protocol::Udp,
                        ports: Some((5000, 5010)),
                    },
                    ClusterPort::Protocol {
                        protocol: Protocol::Sctp,
                        ports: None,
                    },
                    ClusterPort::Named("metrics".into()),
                ]),
            }]
        );
        assert_eq!(
            p.egress,
            vec![
                ClusterRule {
                    name: None,
                    action: Action::Deny,
                    peers: vec![ClusterPeer::Networks(vec![
                        "198.18.0.0/15".parse().unwrap(),
                        "2001:db8::/32".parse().unwrap(),
                    ])],
                    protocols: None,
                },
                ClusterRule {
                    name: None,
                    action: Action::Pass,
                    peers: vec![ClusterPeer::Namespaces(LabelSelector::everything())],
                    protocols: None,
                },
            ]
        );
        assert_eq!(p.source.line, 1);
    }

    /// A List, in a file beside a NetworkPolicy: both tiers, sorted by tier, priority,
    /// name; a shared priority in a tier is a warning naming both objects.
    #[test]
    fn list_sorted_by_tier_priority_name_with_a_warning_for_shared_priorities() {
        let item = |name: &str, tier: &str, priority: u16| {
            format!(
                "  - apiVersion: policy.networking.k8s.io/v1alpha2\n    kind: ClusterNetworkPolicy\n    \
                 metadata: {{name: {name}}}\n    spec: {{tier: {tier}, priority: {priority}, subject: \
                 {{namespaces: {{}}}}}}\n"
            )
        };
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n{}{}{}{}",
            item("a", "Baseline", 0),
            item("z", "Admin", 5),
            item("b", "Admin", 5),
            item("y", "Admin", 900),
        );
        let np = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, \
                  namespace: web}\nspec: {podSelector: {}}\n";
        let loaded = ok(&[("l.yaml", &list), ("p.yaml", np)], &[]);
        let order: Vec<(&str, Tier, u16)> = loaded
            .model
            .cluster_policies
            .iter()
            .map(|p| (p.name.as_str(), p.tier, p.priority))
            .collect();
        assert_eq!(
            order,
            vec![
                ("b", Tier::Admin, 5),
                ("z", Tier::Admin, 5),
                ("y", Tier::Admin, 900),
                ("a", Tier::Baseline, 0),
            ]
        );
        assert_eq!(loaded.model.policies.len(), 1);
        let w: Vec<_> = loaded
            .warnings
            .iter()
            .filter(|w| w.message.contains("priority"))
            .collect();
        assert_eq!(w.len(), 1, "{}", show(&loaded.warnings));
        check(
            w[0],
            "l.yaml",
            (12, 5),
            "ClusterNetworkPolicy b",
            "spec.priority",
            "has priority 5 in tier Admin, as ClusterNetworkPolicy z (at l.yaml:8:5)",
        );
    }

    #[test]
    fn spec_level_errors() {
        let subject = "  subject:\n    namespaces: {}\n";
        fails(
            &format!("  tier: admin\n  priority: 1\n{subject}"),
            (6, 9),
            "spec.tier",
            "unknown tier \"admin\"; expected Admin or Baseline",
        );
        fails(
            &format!("  priority: 1\n{subject}"),
            (6, 3),
            "spec.tier",
            "required field \"tier\" is missing",
        );
        for p in ["1001", "-1"] {
            fails(
                &format!("  tier: Admin\n  priority: {p}\n{subject}"),
                (7, 13),
                "spec.priority",
                "out of range: expected 0-1000",
            );
        }
        fails(
            &format!("  tier: Admin\n  priority: \"5\"\n{subject}"),
            (7, 13),
            "spec.priority",
            "expected an integer",
        );
        fails(
            &format!("  tier: Admin\n  priority: 1\n{subject}  bogus: 1\n"),
            (10, 3),
            "spec.bogus",
            "unknown field \"bogus\"",
        );
        fails(
            "  tier: Admin\n  priority: 1\n",
            (6, 3),
            "spec.subject",
            "required field \"subject\" is missing",
        );
    }

    #[test]
    fn pods_without_a_namespace_selector_means_every_namespace() {
        let spec = "  tier: Admin\n  priority: 1\n  subject:\n    pods: {podSelector: {matchLabels: \
                    {app: a}}}\n  egress:\n  - action: Deny\n    to:\n    - pods: {podSelector: {}}\n";
        let loaded = ok(&[("c.yaml", &doc(spec))], &[]);
        let p = &loaded.model.cluster_policies[0];
        assert_eq!(
            p.subject,
            Subject::Pods {
                namespaces: LabelSelector::everything(),
                pods: sel(&[("app", "a")]),
            }
        );
        assert_eq!(
            p.egress[0].peers,
            vec![ClusterPeer::Pods {
                namespaces: LabelSelector::everything(),
                pods: LabelSelector::everything(),
            }]
        );
    }

    #[test]
    fn subject_errors() {
        let at = |subject: &str| format!("  tier: Admin\n  priority: 1\n  subject:\n{subject}");
        fails(
            &at("    namespaces: {}\n    pods: {namespaceSelector: {}, podSelector: {}}\n"),
            (10, 5),
            "spec.subject.pods",
            "\"namespaces\" and \"pods\" cannot both be given",
        );
        fails(
            &at("    {}\n"),
            (9, 5),
            "spec.subject",
            "empty subject: give exactly one of namespaces, pods",
        );
        fails(
            &at("    pods: {namespaceSelector: {}}\n"),
            (9, 11),
            "spec.subject.pods.podSelector",
            "required field \"podSelector\" is missing",
        );
        fails(
            &at("    namespaces: {matchLabels: {-x: y}}\n"),
            (9, 32),
            "spec.subject.namespaces.matchLabels[\"-x\"]",
            "invalid label key",
        );
    }

    #[test]
    fn apiversion_and_metadata() {
        let text = doc(HEAD).replace("v1alpha2", "v1alpha1");
        let d = one_error(&[("c.yaml", &text)], &[]);
        check(
            &d,
            "c.yaml",
            (1, 13),
            OBJ,
            "apiVersion",
            "unsupported apiVersion \"policy.networking.k8s.io/v1alpha1\" for \
             ClusterNetworkPolicy; expected policy.networking.k8s.io/v1alpha2",
        );
        // Cluster-scoped: a namespace is ignored with a warning; a dotted name is fine.
        let text = doc(HEAD).replace("  name: c\n", "  name: c.d\n  namespace: web\n");
        let loaded = ok(&[("c.yaml", &text)], &[]);
        assert_eq!(loaded.model.cluster_policies[0].name, "c.d");
        assert_eq!(loaded.warnings.len(), 1, "{}", show(&loaded.warnings));
        check(
            &loaded.warnings[0],
            "c.yaml",
            (5, 14),
            "ClusterNetworkPolicy c.d",
            "metadata.namespace",
            "ignored: ClusterNetworkPolicy is cluster-scoped",
        );
    }

    #[test]
    fn duplicate_names_are_an_error_naming_both_places() {
        let text = doc(HEAD);
        let d = one_error(&[("a.yaml", &text), ("b.yaml", &text)], &[]);
        check(
            &d,
            "b.yaml",
            (1, 1),
            OBJ,
            "metadata.name",
            "duplicate ClusterNetworkPolicy c: also declared at a.yaml:1:1",
        );
    }

    /// `n` copies of `item` as a flow list.
    fn many(item: &str, n: usize) -> String {
        format!("[{}]", vec![item; n].join(", "))
    }

    #[test]
    fn rule_errors() {
        let r = |rule: &str| format!("{HEAD}  ingress:\n    - {rule}\n");
        let peer = "from: [{namespaces: {}}]";
        fails(
            &r(&format!("{{action: Allow, {peer}}}")),
            (11, 16),
            "spec.ingress[0].action",
            "unknown action \"Allow\"; expected Accept, Deny or Pass",
        );
        fails(
            &r(&format!("{{{peer}}}")),
            (11, 7),
            "spec.ingress[0].action",
            "required field \"action\" is missing",
        );
        fails(
            &r(&format!(
                "{{name: {}, action: Deny, {peer}}}",
                "x".repeat(101)
            )),
            (11, 14),
            "spec.ingress[0].name",
            "rule name is 101 characters long: at most 100",
        );
        ok(
            &[(
                "c.yaml",
                &doc(&r(&format!(
                    "{{name: {}, action: Deny, {peer}}}",
                    "x".repeat(100)
                ))),
            )],
            &[],
        );
        fails(
            &r("{action: Deny}"),
            (11, 7),
            "spec.ingress[0].from",
            "required field \"from\" is missing",
        );
        fails(
            &r("{action: Deny, from: []}"),
            (11, 28),
            "spec.ingress[0].from",
            "\"from\" is empty: a rule needs at least one peer",
        );
        fails(
            &r(&format!(
                "{{action: Deny, {peer}, to: [{{namespaces: {{}}}}]}}"
            )),
            (11, 48),
            "spec.ingress[0].to",
            "unknown field \"to\"",
        );
        // 25 rules are fine, 26 are not: the error is at the 26th.
        let rule = format!("{{action: Deny, {peer}}}");
        ok(
            &[(
                "c.yaml",
                &doc(&format!("{HEAD}  ingress: {}\n", many(&rule, 25))),
            )],
            &[],
        );
        let text = format!(
            "{HEAD}  egress: {}\n",
            many(&rule.replace("from", "to"), 26)
        );
        let col = 12 + 25 * (rule.len() - 2 + 2);
        fails(
            &text,
            (10, col),
            "spec.egress[25]",
            "26 egress rules: at most 25 are allowed",
        );
    }

    #[test]
    fn peer_errors() {
        let to = |peer: &str| {
            format!("{HEAD}  egress:\n    - action: Deny\n      to:\n        - {peer}\n")
        };
        let from = |peer: &str| {
            format!("{HEAD}  ingress:\n    - action: Deny\n      from:\n        - {peer}\n")
        };
        fails(
            &to("{namespaces: {}, networks: [198.18.0.0/16]}"),
            (13, 28),
            "spec.egress[0].to[0].networks",
            "\"namespaces\" and \"networks\" cannot both be given: a peer holds exactly one field",
        );
        fails(
            &to("{}"),
            (13, 11),
            "spec.egress[0].to[0]",
            "empty peer: give exactly one of namespaces, pods, networks, nodes, domainNames",
        );
        fails(
            &from("{networks: [198.18.0.0/16]}"),
            (13, 12),
            "spec.ingress[0].from[0].networks",
            "\"networks\" is only allowed in egress peers (to)",
        );
        fails(
            &to("{domainNames: [example.com]}"),
            (13, 12),
            "spec.egress[0].to[0].domainNames",
            "domainNames cannot be enforced from static inputs",
        );
        fails(
            &to("{nodes: {matchLabels: {role: \"\"}, matchExpressions: [{key: a}]}}"),
            (13, 64),
            "spec.egress[0].to[0].nodes.matchExpressions[0].operator",
            "required field \"operator\" is missing",
        );
        fails(
            &from("{nodes: {}}"),
            (13, 12),
            "spec.ingress[0].from[0].nodes",
            "\"nodes\" is only allowed in egress peers (to)",
        );
        fails(
            &to("{networks: [198.18.0.1]}"),
            (13, 23),
            "spec.egress[0].to[0].networks[0]",
            "no prefix length; write 198.18.0.1/32",
        );
        fails(
            &to("{networks: []}"),
            (13, 22),
            "spec.egress[0].to[0].networks",
            "networks is empty",
        );
        let nets = many("198.18.0.0/16", 26);
        fails(
            &to(&format!("{{networks: {nets}}}")),
            (13, 23 + 25 * 15),
            "spec.egress[0].to[0].networks[25]",
            "26 networks: at most 25 are allowed",
        );
        let peers = many("{namespaces: {}}", 26);
        let text = format!("{HEAD}  egress:\n    - action: Deny\n      to: {peers}\n");
        fails(
            &text,
            (12, 12 + 25 * 18),
            "spec.egress[0].to[25]",
            "26 peers: at most 25 are allowed",
        );
    }

    #[test]
    fn nodes_peers_and_node_inventory_objects() {
        let text = doc(&format!(
            "{HEAD}  egress:\n    - action: Accept\n      to:\n        - nodes: {{matchLabels: \
             {{role: db}}}}\n"
        ));
        let inventory = "apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Node
    metadata: {name: n2.example, labels: {role: db}, uid: x}
    spec: {podCIDR: 10.0.0.0/24}
    status:
      addresses:
        - {type: Hostname, address: n2}
        - {type: InternalIP, address: 198.18.9.2}
        - {type: ExternalIP, address: \"2001:db8::2\"}
        - {type: InternalIP, address: 198.18.9.2}
  - apiVersion: v1
    kind: Node
    metadata: {name: n1}
";
        let loaded = ok(&[("c.yaml", &text)], &[("nodes.yaml", inventory)]);
        assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
        assert_eq!(
            loaded.model.cluster_policies[0].egress[0].peers,
            vec![ClusterPeer::Nodes(sel(&[("role", "db")]))]
        );
        let nodes = &loaded.model.inventory.nodes;
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            (nodes[0].name.as_str(), nodes[0].addresses.len()),
            ("n1", 0)
        );
        assert_eq!(nodes[1].name, "n2.example");
        assert_eq!(nodes[1].labels, sel(&[("role", "db")]).match_labels);
        assert_eq!(
            nodes[1].addresses,
            vec![
                "198.18.9.2".parse::<std::net::IpAddr>().unwrap(),
                "2001:db8::2".parse().unwrap()
            ]
        );
        assert!(loaded.model.inventory.ignored_kinds.is_empty());
        assert!(loaded.model.inventory.endpoints.is_empty());
    }

    #[test]
    fn node_inventory_errors() {
        let node = |name: &str, address: &str| {
            format!(
                "---\napiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus:\n  \
                 addresses: [{{type: InternalIP, address: {address}}}]\n"
            )
        };
        let d = one_error(&[], &[("n.yaml", &node("n1", "198.18.9.300"))]);
        check(
            &d,
            "n.yaml",
            (6, 43),
            "Node n1",
            "status.addresses[0].address",
            "invalid IP address \"198.18.9.300\"",
        );
        let two = format!("{}{}", node("n1", "198.18.9.1"), node("n1", "198.18.9.2"));
        let d = one_error(&[], &[("n.yaml", &two)]);
        check(
            &d,
            "n.yaml",
            (8, 1),
            "Node n1",
            "metadata.name",
            "duplicate Node \"n1\": also declared at n.yaml:2:1",
        );
        let d = one_error(
            &[],
            &[(
                "n.yaml",
                "apiVersion: v2\nkind: Node\nmetadata: {name: n1}\n",
            )],
        );
        check(
            &d,
            "n.yaml",
            (1, 13),
            "Node n1",
            "apiVersion",
            "unsupported apiVersion \"v2\" for kind Node; expected v1",
        );
    }

    #[test]
    fn a_peer_of_a_newer_api_fails_closed_with_a_warning() {
        let text = doc(&format!(
            "{HEAD}  egress:\n    - action: Accept\n      to:\n        - {{serviceAccounts: {{}}}}\n"
        ));
        let loaded = ok(&[("c.yaml", &text)], &[]);
        assert_eq!(
            loaded.model.cluster_policies[0].egress[0].peers,
            vec![ClusterPeer::Unknown {
                fields: vec!["serviceAccounts".into()]
            }]
        );
        assert_eq!(loaded.warnings.len(), 1, "{}", show(&loaded.warnings));
        check(
            &loaded.warnings[0],
            "c.yaml",
            (13, 11),
            OBJ,
            "spec.egress[0].to[0]",
            "peer with no field this netpol knows (serviceAccounts): it matches nothing in an \
             Accept rule and every peer in a Deny or Pass rule",
        );
    }

    #[test]
    fn protocol_errors() {
        let p = |entry: &str| {
            format!(
                "{HEAD}  ingress:\n    - action: Deny\n      from: [{{namespaces: {{}}}}]\n      \
                 protocols:\n        - {entry}\n"
            )
        };
        fails(
            &p("{tcp: {}, udp: {}}"),
            (14, 21),
            "spec.ingress[0].protocols[0].udp",
            "\"tcp\" and \"udp\" cannot both be given: a protocols entry holds exactly one field",
        );
        fails(
            &p("{icmp: {}}"),
            (14, 12),
            "spec.ingress[0].protocols[0].icmp",
            "unknown field \"icmp\"; allowed here: tcp, udp, sctp, destinationNamedPort",
        );
        fails(
            &p("{tcp: {destinationPort: {number: 0}}}"),
            (14, 44),
            "spec.ingress[0].protocols[0].tcp.destinationPort.number",
            "port 0 is out of range: expected 1-65535",
        );
        fails(
            &p("{tcp: {destinationPort: {number: 80, range: {start: 1, end: 2}}}}"),
            (14, 48),
            "spec.ingress[0].protocols[0].tcp.destinationPort.range",
            "\"number\" and \"range\" cannot both be given",
        );
        fails(
            &p("{udp: {destinationPort: {range: {start: 90, end: 90}}}}"),
            (14, 60),
            "spec.ingress[0].protocols[0].udp.destinationPort.range.end",
            "end 90 must be greater than start 90; for one port, write number: 90",
        );
        fails(
            &p("{udp: {destinationPort: {range: {start: 90}}}}"),
            (14, 43),
            "spec.ingress[0].protocols[0].udp.destinationPort.range.end",
            "required field \"end\" is missing",
        );
        fails(
            &p("{sctp: {destinationPort: {port: 80}}}"),
            (14, 37),
            "spec.ingress[0].protocols[0].sctp.destinationPort.port",
            "unknown field \"port\"",
        );
        fails(
            &p("{tcp: {port: 80}}"),
            (14, 18),
            "spec.ingress[0].protocols[0].tcp.port",
            "unknown field \"port\"",
        );
        fails(
            &p("{destinationNamedPort: Http-}"),
            (14, 34),
            "spec.ingress[0].protocols[0].destinationNamedPort",
            "invalid port name \"Http-\"",
        );
        let text = format!(
            "{HEAD}  ingress:\n    - action: Deny\n      from: [{{namespaces: {{}}}}]\n      \
             protocols: []\n"
        );
        fails(
            &text,
            (13, 18),
            "spec.ingress[0].protocols",
            "\"protocols\" is empty: leave protocols out to match every protocol and port",
        );
        let entries = many("{sctp: {}}", 26);
        let text = format!(
            "{HEAD}  ingress:\n    - action: Deny\n      from: [{{namespaces: {{}}}}]\n      \
             protocols: {entries}\n"
        );
        fails(
            &text,
            (13, 19 + 25 * 12),
            "spec.ingress[0].protocols[25]",
            "26 protocols entries: at most 25 are allowed",
        );
    }

    #[test]
    fn a_model_with_a_cluster_policy_loads_for_every_program() {
        let inputs = super::super::testutil::inputs(&[("c.yaml", &doc(HEAD))]);
        let loaded = crate::load_model(&inputs, &[]).expect("loads");
        assert_eq!(loaded.model.cluster_policies.len(), 1);
        assert_eq!(loaded.model.cluster_policies[0].name, "c");
    }
}
