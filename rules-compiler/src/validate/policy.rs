//! `NetworkPolicy` (`networking.k8s.io/v1`), decoded strictly, as the API server does
//! with strict field validation: unknown fields at any level are errors.
//!
//! Defaulting follows Kubernetes' own code: without `policyTypes` a policy has
//! `Ingress`, plus `Egress` when `egress` holds at least one rule. (So `egress: []`
//! without `policyTypes` does *not* isolate egress; that case gets a warning.)

use std::sync::Arc;

use super::cidr;
use super::decode::{self, index, Ctx, Map};
use super::labels;
use super::names;
use super::object::{self, MetaFields, Object, Scope};
use crate::diag::quote;
use crate::load::{Node, Value};
use crate::model::{
    NamespaceScope, ObjectName, Peer, Peers, Policy, PolicyMode, PortMatch, PortRule, Ports,
    Protocol, Rule,
};
use crate::spans::{DirectionSpans, PeerSpans, PolicySpans, RuleSpans, Span};

/// The only apiVersion of NetworkPolicy accepted.
pub(super) const API_VERSION: &str = "networking.k8s.io/v1";

/// Decodes one NetworkPolicy, with where its fields were written; `None` when it cannot
/// be identified or has no usable spec (the errors are reported).
pub(super) fn decode(ctx: &mut Ctx<'_>, obj: &Object<'_>) -> Option<(Policy, PolicySpans)> {
    let m = &obj.map;
    ctx.object = Some(object::label("NetworkPolicy", m, Scope::Namespaced));
    if obj.api_version != API_VERSION {
        ctx.error(
            m.get("apiVersion").unwrap_or(m.node),
            "apiVersion",
            format!(
                "unsupported apiVersion {} for NetworkPolicy; expected {API_VERSION}",
                quote(obj.api_version)
            ),
        );
    }
    m.strict(ctx, &["apiVersion", "kind", "metadata", "spec", "status"]);
    let meta = object::metadata(ctx, m, MetaFields::Kubernetes, Scope::Namespaced);
    let namespace = meta
        .as_ref()
        .map_or(object::DEFAULT_NAMESPACE, |m| m.namespace.as_str())
        .to_string();
    let spec = m
        .required(ctx, "spec", "")
        .and_then(|n| decode::map(ctx, n, "spec"));
    let spec = spec.and_then(|s| decode_spec(ctx, &s, &namespace));
    let mode = meta.as_ref().and_then(|meta| mode(ctx, &meta.map));
    let (meta, spec, mode) = (meta?, spec?, mode?);
    let policy = Policy {
        id: ObjectName::new(meta.namespace, meta.name),
        mode,
        pod_selector: spec.pod_selector,
        ingress: spec.ingress.map(Arc::from),
        egress: spec.egress.map(Arc::from),
        source: ctx.source(m.node),
    };
    Some((policy, spec.spans))
}

/// The annotation that puts a policy in audit mode.
pub(super) const MODE_ANNOTATION: &str = "netpol/mode";

/// `metadata.annotations["netpol/mode"]`: `audit`, `enforce`, or absent (enforce).
/// `None` when the value is anything else (reported): guessing would enforce a policy
/// meant to be watched first, or the other way round.
fn mode(ctx: &mut Ctx<'_>, meta: &Map<'_>) -> Option<PolicyMode> {
    let Some(node) = meta.get("annotations") else {
        return Some(PolicyMode::Enforce);
    };
    let annotations = decode::map(ctx, node, &meta.field("annotations"))?;
    let field = annotations.field(MODE_ANNOTATION);
    let Some(node) = annotations.get(MODE_ANNOTATION) else {
        return Some(PolicyMode::Enforce);
    };
    let value = decode::string(ctx, node, &field)?;
    match value {
        "enforce" => Some(PolicyMode::Enforce),
        "audit" => Some(PolicyMode::Audit),
        other => {
            ctx.error(
                node,
                &field,
                format!(
                    "invalid mode {}; allowed: audit (compiled and reported, not enforced) \
                     or enforce (the default, as without the annotation)",
                    quote(other)
                ),
            );
            None
        }
    }
}

struct Spec {
    pod_selector: crate::model::LabelSelector,
    ingress: Option<Vec<Rule>>,
    egress: Option<Vec<Rule>>,
    spans: PolicySpans,
}

fn decode_spec(ctx: &mut Ctx<'_>, spec: &Map<'_>, namespace: &str) -> Option<Spec> {
    spec.strict(ctx, &["podSelector", "policyTypes", "ingress", "egress"]);
    let pod_selector = spec
        .required(
            ctx,
            "podSelector",
            "use podSelector: {} to select every pod of the namespace",
        )
        .and_then(|n| labels::selector(ctx, n, "spec.podSelector"));

    let (ingress, ingress_spans) = rules(ctx, spec, "ingress", "from", namespace);
    let (egress, egress_spans) = rules(ctx, spec, "egress", "to", namespace);

    let types = policy_types(ctx, spec);
    let (has_ingress, has_egress) = match types {
        Some(t) => t,
        None => {
            if spec.has("egress") && egress.is_empty() {
                ctx.warning(
                    spec.key_node("egress").unwrap_or(spec.node),
                    "spec.egress",
                    "egress is empty and policyTypes is not set: Kubernetes then adds only \
                     Ingress, so egress is NOT isolated; write policyTypes: [Ingress, Egress] \
                     to deny all egress",
                );
            }
            (true, !egress.is_empty())
        }
    };
    for (present, rules, key, ty) in [
        (has_ingress, &ingress, "ingress", "Ingress"),
        (has_egress, &egress, "egress", "Egress"),
    ] {
        if !present && !rules.is_empty() {
            ctx.warning(
                spec.key_node(key).unwrap_or(spec.node),
                &spec.field(key),
                format!(
                    "policyTypes does not include {ty}: these {key} rules are ignored, as \
                     Kubernetes does"
                ),
            );
        }
    }
    let spans = PolicySpans {
        pod_selector: spec
            .key_node("podSelector")
            .map(Span::of)
            .unwrap_or_default(),
        policy_types: types.and(spec.key_node("policyTypes")).map(Span::of),
        ingress: ingress_spans,
        egress: egress_spans,
    };
    Some(Spec {
        pod_selector: pod_selector?,
        ingress: has_ingress.then_some(ingress),
        egress: has_egress.then_some(egress),
        spans,
    })
}

/// `spec.policyTypes` as (ingress, egress); `None` when missing or empty (defaulted).
fn policy_types(ctx: &mut Ctx<'_>, spec: &Map<'_>) -> Option<(bool, bool)> {
    let path = spec.field("policyTypes");
    let items = decode::opt_seq(ctx, spec.get("policyTypes"), &path);
    if items.is_empty() {
        return None;
    }
    let (mut ingress, mut egress) = (false, false);
    for (i, item) in items.iter().enumerate() {
        let field = index(&path, i);
        let Some(s) = decode::string(ctx, item, &field) else {
            continue;
        };
        let seen = match s {
            "Ingress" => std::mem::replace(&mut ingress, true),
            "Egress" => std::mem::replace(&mut egress, true),
            other => {
                ctx.error(
                    item,
                    &field,
                    format!(
                        "unknown policy type {}; expected Ingress or Egress",
                        quote(other)
                    ),
                );
                continue;
            }
        };
        if seen {
            ctx.error(item, &field, format!("{s} is listed twice in policyTypes"));
        }
    }
    Some((ingress, egress))
}

/// `spec.ingress` or `spec.egress`: missing, null and `[]` are all no rules.
fn rules(
    ctx: &mut Ctx<'_>,
    spec: &Map<'_>,
    key: &str,
    peers_key: &str,
    namespace: &str,
) -> (Vec<Rule>, DirectionSpans) {
    let path = spec.field(key);
    let mut out = Vec::new();
    let mut spans = DirectionSpans {
        key: spec.key_node(key).map(Span::of),
        rules: Vec::new(),
    };
    for (i, item) in decode::opt_seq(ctx, spec.get(key), &path)
        .iter()
        .enumerate()
    {
        if let Some((r, s)) = rule(ctx, item, &index(&path, i), peers_key, namespace) {
            out.push(r);
            spans.rules.push(s);
        }
    }
    (out, spans)
}

fn rule(
    ctx: &mut Ctx<'_>,
    node: &Node,
    path: &str,
    peers_key: &str,
    namespace: &str,
) -> Option<(Rule, RuleSpans)> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &[peers_key, "ports"]);

    let peers_path = m.field(peers_key);
    let peer_nodes = decode::opt_seq(ctx, m.get(peers_key), &peers_path);
    let mut peer_spans = Vec::new();
    let peers = if peer_nodes.is_empty() {
        Peers::All
    } else {
        Peers::List(
            peer_nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| peer(ctx, n, &index(&peers_path, i), namespace))
                .map(|(p, s)| {
                    peer_spans.push(s);
                    p
                })
                .collect(),
        )
    };

    let ports_path = m.field("ports");
    let port_nodes = decode::opt_seq(ctx, m.get("ports"), &ports_path);
    let mut port_spans = Vec::new();
    let ports = if port_nodes.is_empty() {
        Ports::All
    } else {
        Ports::List(
            port_nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let p = port(ctx, n, &index(&ports_path, i))?;
                    port_spans.push(Span::of(n));
                    Some(p)
                })
                .collect(),
        )
    };
    let spans = RuleSpans {
        rule: Span::of(node),
        peers: peer_spans,
        ports: port_spans,
    };
    Some((Rule { peers, ports }, spans))
}

fn peer(ctx: &mut Ctx<'_>, node: &Node, path: &str, namespace: &str) -> Option<(Peer, PeerSpans)> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &["podSelector", "namespaceSelector", "ipBlock"]);
    // Only keys with a value count, as for the model (null is the same as missing).
    let written = |key: &str| m.get(key).and(m.key_node(key)).map(Span::of);
    let spans = PeerSpans {
        item: Span::of(node),
        pod_selector: written("podSelector"),
        namespace_selector: written("namespaceSelector"),
        ip_block: written("ipBlock"),
    };
    let pods = m
        .get("podSelector")
        .map(|n| labels::selector(ctx, n, &m.field("podSelector")));
    let namespaces = m
        .get("namespaceSelector")
        .map(|n| labels::selector(ctx, n, &m.field("namespaceSelector")));
    let ip_block = m
        .get("ipBlock")
        .map(|n| cidr::ip_block(ctx, n, &m.field("ipBlock")));

    match (pods, namespaces, ip_block) {
        (None, None, None) => {
            ctx.error(
                node,
                path,
                "empty peer: give podSelector and/or namespaceSelector, or ipBlock (to match \
                 every peer, leave the whole list out instead)",
            );
            None
        }
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            ctx.error(
                m.key_node("ipBlock").unwrap_or(node),
                &m.field("ipBlock"),
                "ipBlock cannot be combined with podSelector or namespaceSelector in one peer; \
                 write them as separate entries of the list",
            );
            None
        }
        (None, None, Some(block)) => Some((Peer::IpBlock(block?), spans)),
        (pods, namespaces, None) => {
            let pods = match pods {
                Some(p) => p?,
                None => crate::model::LabelSelector::everything(),
            };
            let namespaces = match namespaces {
                Some(s) => NamespaceScope::Selector(s?),
                None => NamespaceScope::Own(namespace.to_string()),
            };
            Some((Peer::Endpoints { namespaces, pods }, spans))
        }
    }
}

fn port(ctx: &mut Ctx<'_>, node: &Node, path: &str) -> Option<PortRule> {
    let m = decode::map(ctx, node, path)?;
    m.strict(ctx, &["protocol", "port", "endPort"]);
    let mut ok = true;

    let protocol = match m.string(ctx, "protocol") {
        None => {
            ok &= m.get("protocol").is_none();
            Protocol::Tcp
        }
        Some((s, n)) => Protocol::from_k8s(s).unwrap_or_else(|| {
            ctx.error(
                n,
                &m.field("protocol"),
                format!(
                    "unknown protocol {}; expected TCP, UDP or SCTP (upper case)",
                    quote(s)
                ),
            );
            ok = false;
            Protocol::Tcp
        }),
    };

    let port_field = m.field("port");
    let port = match m.get("port") {
        None => Some(PortMatch::Any),
        Some(n) => match &n.value {
            Value::Int(p) => match port_number(*p) {
                Some(p) => Some(PortMatch::Range { start: p, end: p }),
                None => {
                    ctx.error(
                        n,
                        &port_field,
                        format!("port {p} is out of range: expected 1-65535 or a port name"),
                    );
                    None
                }
            },
            Value::Str(s) if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) => {
                ctx.error(
                    n,
                    &port_field,
                    format!(
                        "port {s:?} is a string of digits: write {s} without quotes for a port \
                         number (a port name needs at least one letter)"
                    ),
                );
                None
            }
            Value::Str(s) => match names::port_name(s) {
                Ok(()) => Some(PortMatch::Named(s.to_string())),
                Err(why) => {
                    ctx.error(n, &port_field, why);
                    None
                }
            },
            _ => {
                decode::type_error(
                    ctx,
                    n,
                    &port_field,
                    "a port number (1-65535) or a port name",
                );
                None
            }
        },
    };

    let end_field = m.field("endPort");
    let port = match (m.get("endPort"), port) {
        (None, port) => port,
        (Some(n), port) => {
            let end = decode::integer(ctx, n, &end_field);
            match (end, port) {
                (None, _) | (_, None) => None,
                (Some(_), Some(PortMatch::Any)) => {
                    ctx.error(
                        n,
                        &end_field,
                        "endPort needs a numeric port: it is the end of the range that starts \
                         at port",
                    );
                    None
                }
                (Some(_), Some(PortMatch::Named(name))) => {
                    ctx.error(
                        n,
                        &end_field,
                        format!(
                            "endPort cannot be used with the named port {}; a range needs a \
                             numeric port",
                            quote(name.as_str())
                        ),
                    );
                    None
                }
                (Some(end), Some(PortMatch::Range { start, .. })) => match port_number(end) {
                    None => {
                        ctx.error(
                            n,
                            &end_field,
                            format!("endPort {end} is out of range: expected 1-65535"),
                        );
                        None
                    }
                    Some(end) if end < start => {
                        ctx.error(
                            n,
                            &end_field,
                            format!("endPort {end} is below port {start}: it must be >= port"),
                        );
                        None
                    }
                    Some(end) => Some(PortMatch::Range { start, end }),
                },
            }
        }
    };
    if !ok {
        return None;
    }
    Some(PortRule {
        protocol,
        port: port?,
    })
}

pub(super) fn port_number(p: i64) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p >= 1)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::testutil::{check, errors, ok, one_error, show};
    use crate::diag::Diagnostic;
    use crate::model::*;

    const OBJ: &str = "NetworkPolicy web/p";

    /// A policy `web/p` whose spec (indented by two) starts on line 7.
    fn pol(spec: &str) -> String {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  \
             namespace: web\nspec:\n{spec}"
        )
    }

    fn policy(spec: &str) -> Policy {
        let loaded = ok(&[("p.yaml", &pol(spec))], &[]);
        assert_eq!(loaded.model.policies.len(), 1);
        loaded.model.policies[0].clone()
    }

    fn err(spec: &str) -> Diagnostic {
        one_error(&[("p.yaml", &pol(spec))], &[])
    }

    fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_expressions: vec![],
        }
    }

    #[test]
    fn full_policy_decodes_into_the_model() {
        let p = policy(
            "  podSelector:
    matchLabels: {app: api}
  ingress:
    - from:
        - namespaceSelector:
            matchLabels: {name: web}
          podSelector:
            matchLabels: {app: checkout}
        - podSelector: {}
        - namespaceSelector: {}
        - ipBlock:
            cidr: 198.18.0.0/16
            except: [198.18.1.0/24, 198.18.2.0/24]
      ports:
        - port: 8080
        - {protocol: UDP, port: 5000, endPort: 5010}
        - {port: http}
        - {protocol: SCTP}
",
        );
        assert_eq!(p.id, ObjectName::new("web", "p"));
        assert_eq!(p.pod_selector, sel(&[("app", "api")]));
        assert_eq!(p.egress, None);
        let rules = p.ingress.expect("ingress");
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].peers,
            Peers::List(vec![
                Peer::Endpoints {
                    namespaces: NamespaceScope::Selector(sel(&[("name", "web")])),
                    pods: sel(&[("app", "checkout")]),
                },
                Peer::Endpoints {
                    namespaces: NamespaceScope::Own("web".into()),
                    pods: LabelSelector::everything(),
                },
                Peer::Endpoints {
                    namespaces: NamespaceScope::Selector(LabelSelector::everything()),
                    pods: LabelSelector::everything(),
                },
                Peer::IpBlock(IpBlock {
                    cidr: "198.18.0.0/16".parse().unwrap(),
                    except: vec![
                        "198.18.1.0/24".parse().unwrap(),
                        "198.18.2.0/24".parse().unwrap()
                    ],
                }),
            ])
        );
        assert_eq!(
            rules[0].ports,
            Ports::List(vec![
                PortRule {
                    protocol: Protocol::Tcp,
                    port: PortMatch::Range {
                        start: 8080,
                        end: 8080
                    }
                },
                PortRule {
                    protocol: Protocol::Udp,
                    port: PortMatch::Range {
                        start: 5000,
                        end: 5010
                    }
                },
                PortRule {
                    protocol: Protocol::Tcp,
                    port: PortMatch::Named("http".into())
                },
                PortRule {
                    protocol: Protocol::Sctp,
                    port: PortMatch::Any
                },
            ])
        );
        assert_eq!(p.source.line, 1);
        assert_eq!(
            p.source.file.as_deref(),
            Some(std::path::Path::new("p.yaml"))
        );
    }

    #[test]
    fn match_expressions_all_operators() {
        let p = policy(
            "  podSelector:
    matchExpressions:
      - {key: tier, operator: In, values: [web, api, web]}
      - {key: env, operator: NotIn, values: [prod]}
      - {key: app.kubernetes.io/name, operator: Exists}
      - {key: legacy, operator: DoesNotExist, values: []}
",
        );
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            p.pod_selector.match_expressions,
            vec![
                Requirement {
                    key: "tier".into(),
                    operator: Operator::In(set(&["api", "web"]))
                },
                Requirement {
                    key: "env".into(),
                    operator: Operator::NotIn(set(&["prod"]))
                },
                Requirement {
                    key: "app.kubernetes.io/name".into(),
                    operator: Operator::Exists
                },
                Requirement {
                    key: "legacy".into(),
                    operator: Operator::DoesNotExist
                },
            ]
        );
    }

    #[test]
    fn policy_types_default_to_ingress_plus_egress_when_egress_has_rules() {
        let p = policy("  podSelector: {}\n");
        assert_eq!(p.ingress.as_deref().map(<[_]>::to_vec), Some(vec![]));
        assert_eq!(p.egress, None);

        let p = policy("  podSelector: {}\n  egress:\n    - to: []\n");
        assert_eq!(p.ingress.as_deref().map(<[_]>::to_vec), Some(vec![]));
        assert_eq!(
            p.egress.as_deref().map(<[_]>::to_vec),
            Some(vec![Rule {
                peers: Peers::All,
                ports: Ports::All
            }])
        );

        let p = policy("  podSelector: {}\n  policyTypes: [Egress]\n");
        assert_eq!(p.ingress, None);
        assert_eq!(p.egress.as_deref().map(<[_]>::to_vec), Some(vec![]));

        let p = policy("  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress: []\n");
        assert_eq!(p.ingress.as_deref().map(<[_]>::to_vec), Some(vec![]));
        assert_eq!(p.egress.as_deref().map(<[_]>::to_vec), Some(vec![]));
    }

    #[test]
    fn empty_egress_without_policy_types_does_not_isolate_egress_and_warns() {
        let loaded = ok(
            &[("p.yaml", &pol("  podSelector: {}\n  egress: []\n"))],
            &[],
        );
        let p = &loaded.model.policies[0];
        assert_eq!(p.ingress.as_deref().map(<[_]>::to_vec), Some(vec![]));
        assert_eq!(p.egress, None);
        let w: Vec<_> = loaded
            .warnings
            .iter()
            .filter(|w| w.field.as_deref() == Some("spec.egress"))
            .collect();
        assert_eq!(w.len(), 1, "{}", show(&loaded.warnings));
        check(w[0], "p.yaml", (8, 3), OBJ, "spec.egress", "NOT isolated");
    }

    #[test]
    fn rules_of_a_direction_not_in_policy_types_are_dropped_with_a_warning() {
        let loaded = ok(
            &[(
                "p.yaml",
                &pol("  podSelector: {}\n  policyTypes: [Egress]\n  ingress:\n    - {}\n"),
            )],
            &[],
        );
        let p = &loaded.model.policies[0];
        assert_eq!(p.ingress, None);
        assert_eq!(p.egress.as_deref().map(<[_]>::to_vec), Some(vec![]));
        let w = loaded
            .warnings
            .iter()
            .find(|w| w.field.as_deref() == Some("spec.ingress"))
            .expect("warning");
        check(
            w,
            "p.yaml",
            (9, 3),
            OBJ,
            "spec.ingress",
            "rules are ignored",
        );
        assert!(!w.is_error());
    }

    #[test]
    fn spans_place_each_field_and_keep_the_rules_policy_types_leave_out() {
        use crate::spans::Span;
        let text = pol("  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {}
      podSelector: {}
    - ipBlock: {cidr: 198.18.0.0/16}
    ports: [{port: 80}]
  egress:
  - {}
");
        let loaded = ok(&[("p.yaml", &text)], &[]);
        assert_eq!(loaded.model.policies[0].egress, None);
        let spans = &loaded.spans.policies[&ObjectName::new("web", "p")];
        let at = |line, column| Span { line, column };
        assert_eq!(spans.pod_selector, at(7, 3));
        assert_eq!(spans.policy_types, Some(at(8, 3)));
        assert_eq!(spans.ingress.key, Some(at(9, 3)));
        let rule = &spans.ingress.rules[0];
        assert_eq!(rule.rule, at(10, 5));
        assert_eq!(rule.peers.len(), 2);
        assert_eq!(rule.peers[0].item, at(11, 7));
        assert_eq!(rule.peers[0].namespace_selector, Some(at(11, 7)));
        assert_eq!(rule.peers[0].pod_selector, Some(at(12, 7)));
        assert_eq!(rule.peers[0].ip_block, None);
        assert_eq!(rule.peers[1].ip_block, Some(at(13, 7)));
        assert_eq!(rule.ports, vec![at(14, 13)]);
        // Egress is left out by policyTypes: not in the model, still placed.
        assert_eq!(spans.egress.key, Some(at(15, 3)));
        assert_eq!(spans.egress.rules.len(), 1);
    }

    #[test]
    fn missing_null_and_empty_peers_and_ports_mean_all() {
        let p = policy(
            "  podSelector: {}
  ingress:
    - {}
    - from: []
      ports: []
    - from:
      ports:
",
        );
        let all = Rule {
            peers: Peers::All,
            ports: Ports::All,
        };
        assert_eq!(
            p.ingress.as_deref().map(<[_]>::to_vec),
            Some(vec![all.clone(), all.clone(), all])
        );
    }

    #[test]
    fn unknown_field_is_an_error_at_the_key_listing_the_allowed_ones() {
        let d = err("  podSelector: {}
  ingress:
    - from:
        - podSelector: {}
          extra: 1
");
        check(
            &d,
            "p.yaml",
            (11, 11),
            OBJ,
            "spec.ingress[0].from[0].extra",
            "unknown field \"extra\"; allowed here: podSelector, namespaceSelector, ipBlock",
        );
    }

    #[test]
    fn unknown_top_level_and_metadata_fields() {
        let text = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: p
  namespace: web
  uid: 1234
  resourceVersion: \"5\"
  annotations: {a: b}
  bogus: x
spec:
  podSelector: {}
status: {}
extra: 1
";
        let errs = errors(&[("p.yaml", text)], &[]);
        assert_eq!(errs.len(), 2, "{}", show(&errs));
        check(
            &errs[1],
            "p.yaml",
            (13, 1),
            OBJ,
            "extra",
            "unknown field \"extra\"",
        );
        check(
            &errs[0],
            "p.yaml",
            (9, 3),
            OBJ,
            "metadata.bogus",
            "unknown field \"bogus\"",
        );
    }

    /// `web/p` with these annotation lines (indented by four) from line 6.
    fn annotated(lines: &str) -> String {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  \
             namespace: web\n  annotations:\n{lines}spec:\n  podSelector: {{}}\n"
        )
    }

    #[test]
    fn the_mode_annotation_sets_audit_or_enforce_and_defaults_to_enforce() {
        for (lines, mode) in [
            ("    netpol/mode: audit\n", PolicyMode::Audit),
            ("    netpol/mode: enforce\n", PolicyMode::Enforce),
            ("    other/mode: audit\n", PolicyMode::Enforce),
            ("    netpol/mode: null\n", PolicyMode::Enforce),
        ] {
            let loaded = ok(&[("p.yaml", &annotated(lines))], &[]);
            assert_eq!(loaded.model.policies[0].mode, mode, "{lines}");
        }
        assert_eq!(policy("  podSelector: {}\n").mode, PolicyMode::Enforce);
        let audited = ok(&[("p.yaml", &annotated("    netpol/mode: audit\n"))], &[]);
        let names: Vec<_> = audited.model.audit_policies().map(|p| &p.id).collect();
        assert_eq!(names, [&ObjectName::new("web", "p")]);
    }

    #[test]
    fn any_other_mode_is_an_error_at_the_value_saying_what_is_allowed() {
        for (value, column, message) in [
            ("Audit", 18, "invalid mode \"Audit\"; allowed: audit"),
            ("dry-run", 18, "or enforce (the default"),
            ("\"\"", 18, "invalid mode \"\""),
            (
                "true",
                18,
                "expected a string, found the boolean true; quote it",
            ),
            ("[audit]", 18, "expected a string, found a list"),
        ] {
            let text = annotated(&format!("    x: y\n    netpol/mode: {value}\n"));
            let d = one_error(&[("p.yaml", &text)], &[]);
            check(
                &d,
                "p.yaml",
                (8, column),
                OBJ,
                "metadata.annotations.netpol/mode",
                message,
            );
        }
        let d = one_error(&[("p.yaml", &annotated("    - netpol/mode=audit\n"))], &[]);
        check(
            &d,
            "p.yaml",
            (7, 5),
            OBJ,
            "metadata.annotations",
            "expected a mapping, found a list",
        );
    }

    #[test]
    fn wrong_api_version() {
        let text = pol("  podSelector: {}\n").replace("networking.k8s.io/v1", "extensions/v1beta1");
        let d = one_error(&[("p.yaml", &text)], &[]);
        check(
            &d,
            "p.yaml",
            (1, 13),
            OBJ,
            "apiVersion",
            "expected networking.k8s.io/v1",
        );
    }

    #[test]
    fn other_kind_in_a_policy_input() {
        let d = one_error(
            &[("p.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n")],
            &[],
        );
        check(
            &d,
            "p.yaml",
            (2, 7),
            "Pod",
            "kind",
            "expected NetworkPolicy",
        );
        assert!(d.message.contains("belongs in the inventory"));
    }

    #[test]
    fn missing_name_is_an_error_and_missing_namespace_a_warning() {
        let text = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  labels: {a: b}
spec:
  podSelector: {}
";
        let d = one_error(&[("p.yaml", text)], &[]);
        check(
            &d,
            "p.yaml",
            (4, 3),
            "NetworkPolicy default/<unnamed>",
            "metadata.name",
            "required field \"name\" is missing",
        );

        let text = text.replace("labels: {a: b}", "name: p");
        let loaded = ok(&[("p.yaml", &text)], &[]);
        assert_eq!(loaded.model.policies[0].id, ObjectName::new("default", "p"));
        let w = loaded
            .warnings
            .iter()
            .find(|w| w.message.contains("using \"default\""))
            .expect("warning");
        check(
            w,
            "p.yaml",
            (4, 3),
            "NetworkPolicy default/p",
            "metadata.namespace",
            "using \"default\"",
        );
    }

    #[test]
    fn invalid_names() {
        let text = pol("  podSelector: {}\n")
            .replace("name: p", "name: P_1")
            .replace("namespace: web", "namespace: web.x");
        let errs = errors(&[("p.yaml", &text)], &[]);
        assert_eq!(errs.len(), 2, "{}", show(&errs));
        check(
            &errs[0],
            "p.yaml",
            (4, 9),
            "NetworkPolicy web.x/P_1",
            "metadata.name",
            "invalid name \"P_1\"",
        );
        check(
            &errs[1],
            "p.yaml",
            (5, 14),
            "NetworkPolicy web.x/P_1",
            "metadata.namespace",
            "DNS-1123 label",
        );
    }

    #[test]
    fn missing_pod_selector() {
        let d = err("  ingress: []\n");
        check(
            &d,
            "p.yaml",
            (7, 3),
            OBJ,
            "spec.podSelector",
            "use podSelector: {}",
        );
        let d = err("  podSelector:\n");
        check(&d, "p.yaml", (7, 3), OBJ, "spec.podSelector", "is empty");
    }

    #[test]
    fn bad_policy_types() {
        let errs = errors(
            &[(
                "p.yaml",
                &pol("  podSelector: {}\n  policyTypes: [Ingress, ingress, Ingress]\n"),
            )],
            &[],
        );
        assert_eq!(errs.len(), 2, "{}", show(&errs));
        check(
            &errs[0],
            "p.yaml",
            (8, 26),
            OBJ,
            "spec.policyTypes[1]",
            "unknown policy type \"ingress\"; expected Ingress or Egress",
        );
        check(
            &errs[1],
            "p.yaml",
            (8, 35),
            OBJ,
            "spec.policyTypes[2]",
            "listed twice",
        );
    }

    #[test]
    fn empty_peer_is_an_error() {
        let d = err("  podSelector: {}\n  egress:\n    - to:\n        - {}\n");
        check(
            &d,
            "p.yaml",
            (10, 11),
            OBJ,
            "spec.egress[0].to[0]",
            "empty peer",
        );
        // A null selector is no selector.
        let d = err("  podSelector: {}\n  egress:\n    - to:\n        - podSelector:\n");
        check(
            &d,
            "p.yaml",
            (10, 11),
            OBJ,
            "spec.egress[0].to[0]",
            "empty peer",
        );
    }

    #[test]
    fn ip_block_with_a_selector_is_an_error() {
        let d = err("  podSelector: {}
  ingress:
    - from:
        - ipBlock: {cidr: 198.18.0.0/16}
          namespaceSelector: {}
");
        check(
            &d,
            "p.yaml",
            (10, 11),
            OBJ,
            "spec.ingress[0].from[0].ipBlock",
            "cannot be combined",
        );
    }

    #[test]
    fn unknown_selector_operator() {
        let d = err("  podSelector:\n    matchExpressions:\n      - {key: a, operator: Gt, values: [\"1\"]}\n");
        check(
            &d,
            "p.yaml",
            (9, 28),
            OBJ,
            "spec.podSelector.matchExpressions[0].operator",
            "unknown operator \"Gt\"; expected one of In, NotIn, Exists, DoesNotExist",
        );
    }

    #[test]
    fn in_and_not_in_need_values_exists_takes_none() {
        let errs = errors(
            &[(
                "p.yaml",
                &pol("  podSelector:
    matchExpressions:
      - {key: a, operator: In}
      - {key: b, operator: NotIn, values: []}
      - {key: c, operator: Exists, values: [x]}
"),
            )],
            &[],
        );
        assert_eq!(errs.len(), 3, "{}", show(&errs));
        check(
            &errs[0],
            "p.yaml",
            (9, 9),
            OBJ,
            "spec.podSelector.matchExpressions[0].values",
            "operator In needs at least one value",
        );
        check(
            &errs[1],
            "p.yaml",
            (10, 43),
            OBJ,
            "spec.podSelector.matchExpressions[1].values",
            "operator NotIn needs at least one value",
        );
        check(
            &errs[2],
            "p.yaml",
            (11, 44),
            OBJ,
            "spec.podSelector.matchExpressions[2].values",
            "operator Exists takes no values",
        );
    }

    #[test]
    fn invalid_label_keys_and_values_in_selectors() {
        let errs = errors(
            &[(
                "p.yaml",
                &pol("  podSelector:
    matchLabels:
      -bad: x
      ok: \"-bad\"
      ver: 1.0
    matchExpressions:
      - {key: \"a/b/c\", operator: Exists}
      - {key: d, operator: In, values: [\"x y\"]}
"),
            )],
            &[],
        );
        assert_eq!(errs.len(), 5, "{}", show(&errs));
        check(
            &errs[0],
            "p.yaml",
            (9, 7),
            OBJ,
            "spec.podSelector.matchLabels[\"-bad\"]",
            "invalid label key \"-bad\"",
        );
        check(
            &errs[1],
            "p.yaml",
            (10, 11),
            OBJ,
            "spec.podSelector.matchLabels.ok",
            "invalid label value \"-bad\"",
        );
        check(
            &errs[2],
            "p.yaml",
            (11, 12),
            OBJ,
            "spec.podSelector.matchLabels.ver",
            "quote it",
        );
        check(
            &errs[3],
            "p.yaml",
            (13, 15),
            OBJ,
            "spec.podSelector.matchExpressions[0].key",
            "invalid label key \"a/b/c\"",
        );
        check(
            &errs[4],
            "p.yaml",
            (14, 41),
            OBJ,
            "spec.podSelector.matchExpressions[1].values[0]",
            "invalid label value \"x y\"",
        );
    }

    /// One port entry of an ingress rule; the entry is on line 10, starting at column 11.
    fn port_err(entry: &str) -> Diagnostic {
        err(&format!(
            "  podSelector: {{}}\n  ingress:\n    - ports:\n        - {entry}\n"
        ))
    }

    #[test]
    fn unknown_protocol() {
        let d = port_err("{protocol: tcp, port: 80}");
        check(
            &d,
            "p.yaml",
            (10, 22),
            OBJ,
            "spec.ingress[0].ports[0].protocol",
            "unknown protocol \"tcp\"; expected TCP, UDP or SCTP",
        );
    }

    #[test]
    fn port_out_of_range() {
        for (port, col) in [("0", 18), ("65536", 18), ("-5", 18)] {
            let d = port_err(&format!("{{port: {port}}}"));
            check(
                &d,
                "p.yaml",
                (10, col),
                OBJ,
                "spec.ingress[0].ports[0].port",
                "out of range: expected 1-65535",
            );
        }
    }

    #[test]
    fn quoted_port_number_is_an_error_with_a_hint() {
        let d = port_err("{port: \"80\"}");
        check(
            &d,
            "p.yaml",
            (10, 18),
            OBJ,
            "spec.ingress[0].ports[0].port",
            "write 80 without quotes",
        );
    }

    #[test]
    fn invalid_named_port() {
        let d = port_err("{port: Http-}");
        check(
            &d,
            "p.yaml",
            (10, 18),
            OBJ,
            "spec.ingress[0].ports[0].port",
            "invalid port name \"Http-\"",
        );
        let d = port_err("{port: 1.5}");
        check(
            &d,
            "p.yaml",
            (10, 18),
            OBJ,
            "spec.ingress[0].ports[0].port",
            "expected a port number",
        );
    }

    #[test]
    fn end_port_errors() {
        let cases = [
            (
                "{port: 100, endPort: 99}",
                32,
                "endPort 99 is below port 100",
            ),
            (
                "{port: 100, endPort: 70000}",
                32,
                "endPort 70000 is out of range",
            ),
            (
                "{port: http, endPort: 99}",
                33,
                "cannot be used with the named port \"http\"",
            ),
            (
                "{protocol: TCP, endPort: 99}",
                36,
                "endPort needs a numeric port",
            ),
        ];
        for (entry, col, message) in cases {
            let d = port_err(entry);
            check(
                &d,
                "p.yaml",
                (10, col),
                OBJ,
                "spec.ingress[0].ports[0].endPort",
                message,
            );
        }
    }

    #[test]
    fn cidr_with_host_bits_is_masked_with_a_warning() {
        let loaded = ok(
            &[(
                "p.yaml",
                &pol("  podSelector: {}
  egress:
    - to:
        - ipBlock:
            cidr: 198.18.0.1/16
            except: [198.18.3.7/24]
        - ipBlock: {cidr: \"2001:db8::1/32\"}
"),
            )],
            &[],
        );
        let rules = loaded.model.policies[0].egress.clone().unwrap();
        assert_eq!(
            rules[0].peers,
            Peers::List(vec![
                Peer::IpBlock(IpBlock {
                    cidr: "198.18.0.0/16".parse().unwrap(),
                    except: vec!["198.18.3.0/24".parse().unwrap()],
                }),
                Peer::IpBlock(IpBlock {
                    cidr: "2001:db8::/32".parse().unwrap(),
                    except: vec![],
                }),
            ])
        );
        let w: Vec<_> = loaded
            .warnings
            .iter()
            .filter(|w| w.message.contains("host bits"))
            .collect();
        assert_eq!(w.len(), 3, "{}", show(&loaded.warnings));
        check(
            w[0],
            "p.yaml",
            (11, 19),
            OBJ,
            "spec.egress[0].to[0].ipBlock.cidr",
            "using 198.18.0.0/16",
        );
        check(
            w[1],
            "p.yaml",
            (12, 22),
            OBJ,
            "spec.egress[0].to[0].ipBlock.except[0]",
            "using 198.18.3.0/24",
        );
        check(
            w[2],
            "p.yaml",
            (13, 27),
            OBJ,
            "spec.egress[0].to[1].ipBlock.cidr",
            "using 2001:db8::/32",
        );
    }

    fn block_errs(block: &str) -> Vec<Diagnostic> {
        errors(
            &[(
                "p.yaml",
                &pol(&format!(
                    "  podSelector: {{}}\n  egress:\n    - to:\n        - ipBlock: {block}\n"
                )),
            )],
            &[],
        )
    }

    #[test]
    fn invalid_cidrs() {
        let errs = block_errs("{cidr: 198.18.0.1}");
        assert_eq!(errs.len(), 1, "{}", show(&errs));
        check(
            &errs[0],
            "p.yaml",
            (10, 27),
            OBJ,
            "spec.egress[0].to[0].ipBlock.cidr",
            "no prefix length; write 198.18.0.1/32",
        );
        let errs = block_errs("{cidr: 198.18.0.0/33}");
        check(
            &errs[0],
            "p.yaml",
            (10, 27),
            OBJ,
            "spec.egress[0].to[0].ipBlock.cidr",
            "invalid CIDR \"198.18.0.0/33\"",
        );
        let errs = block_errs("{except: [198.18.0.0/24]}");
        check(
            &errs[0],
            "p.yaml",
            (10, 20),
            OBJ,
            "spec.egress[0].to[0].ipBlock.cidr",
            "required field \"cidr\" is missing",
        );
    }

    #[test]
    fn ipv4_mapped_blocks_never_match_ipv4_traffic() {
        let errs = block_errs("{cidr: \"::ffff:198.18.0.0/112\"}");
        assert_eq!(errs.len(), 1, "{}", show(&errs));
        check(
            &errs[0],
            "p.yaml",
            (10, 27),
            OBJ,
            "spec.egress[0].to[0].ipBlock.cidr",
            "IPv4-mapped IPv6 block; IPv4 traffic never carries these addresses: use the IPv4 \
             block 198.18.0.0/16",
        );
        let errs = block_errs("{cidr: \"::/0\", except: [\"::ffff:198.18.0.0/120\"]}");
        assert_eq!(errs.len(), 1, "{}", show(&errs));
        check(
            &errs[0],
            "p.yaml",
            (10, 44),
            OBJ,
            "spec.egress[0].to[0].ipBlock.except[0]",
            "use the IPv4 block 198.18.0.0/24",
        );
        // A block that merely contains the mapped range is ordinary IPv6.
        block_ok("{cidr: \"::/0\"}");
        block_ok("{cidr: \"::/64\"}");
    }

    fn block_ok(block: &str) {
        ok(
            &[(
                "p.yaml",
                &pol(&format!(
                    "  podSelector: {{}}\n  egress:\n    - to:\n        - ipBlock: {block}\n"
                )),
            )],
            &[],
        );
    }

    #[test]
    fn except_outside_its_cidr() {
        let errs = block_errs(
            "{cidr: 198.18.0.0/24, except: [198.19.0.0/25, 198.18.0.0/24, \"2001:db8::/64\", 198.18.0.0/16, 198.18.0.128/25]}",
        );
        assert_eq!(errs.len(), 4, "{}", show(&errs));
        let f = |i: usize| format!("spec.egress[0].to[0].ipBlock.except[{i}]");
        check(
            &errs[0],
            "p.yaml",
            (10, 51),
            OBJ,
            &f(0),
            "except 198.19.0.0/25 is not inside cidr 198.18.0.0/24",
        );
        check(
            &errs[1],
            "p.yaml",
            (10, 66),
            OBJ,
            &f(1),
            "it is the whole cidr",
        );
        check(
            &errs[2],
            "p.yaml",
            (10, 81),
            OBJ,
            &f(2),
            "it is IPv6 and the cidr IPv4",
        );
        check(
            &errs[3],
            "p.yaml",
            (10, 98),
            OBJ,
            &f(3),
            "is not inside cidr",
        );
    }

    #[test]
    fn several_errors_in_one_document_and_across_documents_and_files() {
        let doc1 = pol("  podSelector: {}
  ingress:
    - ports:
        - {port: 0}
        - {protocol: icmp}
");
        let doc2 = pol("  podSelector:\n    matchExpressions: [{key: a, operator: Foo}]\n")
            .replace("name: p", "name: q");
        let file1 = format!("{doc1}---\n{doc2}");
        let file2 = "kind: NetworkPolicy\napiVersion: networking.k8s.io/v1\nmetadata: {name: r, namespace: web}\nspec: {podSelector: {}, bogus: 1}\n";
        let errs = errors(&[("a.yaml", &file1), ("b.yaml", file2)], &[]);
        assert_eq!(errs.len(), 4, "{}", show(&errs));
        check(
            &errs[0],
            "a.yaml",
            (10, 18),
            OBJ,
            "spec.ingress[0].ports[0].port",
            "out of range",
        );
        check(
            &errs[1],
            "a.yaml",
            (11, 22),
            OBJ,
            "spec.ingress[0].ports[1].protocol",
            "unknown protocol",
        );
        check(
            &errs[2],
            "a.yaml",
            (20, 43),
            "NetworkPolicy web/q",
            "spec.podSelector.matchExpressions[0].operator",
            "unknown operator",
        );
        check(
            &errs[3],
            "b.yaml",
            (4, 25),
            "NetworkPolicy web/r",
            "spec.bogus",
            "unknown field",
        );
    }

    #[test]
    fn malformed_yaml_does_not_hide_errors_elsewhere() {
        let bad = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x\n";
        let good_but_wrong = pol("  podSelector: {}\n  ingress: [{ports: [{port: 99999}]}]\n");
        let errs = errors(&[("bad.yaml", bad), ("p.yaml", &good_but_wrong)], &[]);
        assert_eq!(errs.len(), 2, "{}", show(&errs));
        assert_eq!(
            errs[0].file.as_deref(),
            Some(std::path::Path::new("bad.yaml"))
        );
        assert!(errs[0].message.starts_with("malformed YAML"), "{}", errs[0]);
        assert_eq!((errs[0].line, errs[0].column), (4, 1), "{}", errs[0]);
        assert!(
            errs[0].message.contains("did not find expected ','"),
            "{}",
            errs[0]
        );
        check(
            &errs[1],
            "p.yaml",
            (8, 29),
            OBJ,
            "spec.ingress[0].ports[0].port",
            "out of range",
        );
    }

    #[test]
    fn list_of_policies() {
        let text = "apiVersion: v1
kind: List
metadata: {resourceVersion: \"\"}
items:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: b, namespace: web, uid: x, creationTimestamp: \"2024-01-01T00:00:00Z\", generation: 1}
    spec: {podSelector: {}}
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: a, namespace: web}
    spec: {podSelector: {}, policyTypes: [Egress]}
";
        let loaded = ok(&[("l.yaml", text)], &[]);
        let ids: Vec<String> = loaded
            .model
            .policies
            .iter()
            .map(|p| p.id.to_string())
            .collect();
        assert_eq!(ids, vec!["web/a", "web/b"], "sorted by id");
        assert_eq!(loaded.model.policies[0].source.line, 9);
    }

    #[test]
    fn list_with_a_wrong_item() {
        let text = "apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: s}
  - just a string
  - apiVersion: v1
    kind: List
    items: []
";
        let errs = errors(&[("l.yaml", text)], &[]);
        assert_eq!(errs.len(), 3, "{}", show(&errs));
        check(
            &errs[0],
            "l.yaml",
            (5, 11),
            "Service",
            "kind",
            "expected NetworkPolicy",
        );
        check(
            &errs[1],
            "l.yaml",
            (7, 5),
            "List",
            "items[1]",
            "expected a Kubernetes object",
        );
        check(
            &errs[2],
            "l.yaml",
            (8, 5),
            "List",
            "items[2]",
            "cannot contain another List",
        );
    }

    #[test]
    fn a_list_cut_short_after_items_is_an_error_and_an_empty_one_is_not() {
        let cut = "apiVersion: v1\nkind: List\nitems:\n";
        let errs = errors(&[("l.yaml", cut)], &[]);
        assert_eq!(errs.len(), 1, "{}", show(&errs));
        check(
            &errs[0],
            "l.yaml",
            (3, 1),
            "List",
            "items",
            "required field \"items\" is empty",
        );
        let errs = errors(&[("l.yaml", "apiVersion: v1\nkind: List\n")], &[]);
        check(
            &errs[0],
            "l.yaml",
            (1, 1),
            "List",
            "items",
            "is missing; write `items: []`",
        );
        let loaded = ok(
            &[("l.yaml", "apiVersion: v1\nkind: List\nitems: []\n")],
            &[],
        );
        assert!(loaded.model.policies.is_empty());
    }

    #[test]
    fn duplicate_policy_names_both_places() {
        let a = pol("  podSelector: {}\n");
        let errs = errors(&[("a.yaml", &a), ("b.yaml", &format!("# x\n{a}"))], &[]);
        assert_eq!(errs.len(), 1, "{}", show(&errs));
        check(
            &errs[0],
            "b.yaml",
            (2, 1),
            OBJ,
            "metadata.name",
            "duplicate NetworkPolicy web/p: also declared at a.yaml:1:1",
        );
    }

    #[test]
    fn missing_kind_and_non_object_documents() {
        let errs = errors(
            &[("x.yaml", "apiVersion: v1\nmetadata: {}\n---\n- a\n- b\n")],
            &[],
        );
        assert_eq!(errs.len(), 2, "{}", show(&errs));
        assert_eq!((errs[0].line, errs[0].column), (1, 1));
        assert_eq!(errs[0].field.as_deref(), Some("kind"));
        assert!(errs[0]
            .message
            .contains("required field \"kind\" is missing"));
        assert_eq!((errs[1].line, errs[1].column), (4, 1));
        assert!(errs[1].message.contains("found a list"), "{}", errs[1]);
    }
}
