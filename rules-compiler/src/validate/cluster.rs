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
//!   not have. `nodes` is an error until the inventory reads `kind: Node` objects.
//! - `networks` entries follow `ipBlock`'s rules: host bits are masked with a warning.
//! - `range` needs `start < end`, as the upstream CEL rule says; one port is `number`.
//! - `metadata.namespace` on this cluster-scoped kind is ignored with a warning, as the
//!   API server ignores it.

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
/// errors for none and for a second one. Fields outside `fields` are left to the caller.
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

/// `{namespaceSelector, podSelector}`, both required (`{}` selects everything).
fn pods(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<(LabelSelector, LabelSelector)> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &["namespaceSelector", "podSelector"]);
    let namespaces = m
        .required(
            ctx,
            "namespaceSelector",
            "use namespaceSelector: {} for every namespace",
        )
        .and_then(|n| labels::selector(ctx, n, &m.field("namespaceSelector")));
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
    let egress_only = |k: &str| !egress && EGRESS_PEER.contains(&k);
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
        "nodes" => {
            ctx.error(
                key_node,
                &field,
                "nodes peers are not supported yet by this netpol (the inventory does not read \
                 Node objects); remove the peer or use networks with the nodes' addresses",
            );
            None
        }
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
