//! The model as YAML: NetworkPolicy documents, and Namespace and Pod documents as
//! `kubectl get -o yaml` prints them (keys sorted, block style, sequences not indented
//! under their key, plus the fields a real dump carries that the loader must skip:
//! `uid`, `nodeName`, `image`, `status.phase`, finalizers).
//!
//! A small emitter of its own rather than a YAML library: the output must look like
//! kubectl's, byte for byte reproducible, and the generator must not depend on the
//! parser it is used to test.
//!
//! The same objects as JSON ([`policies_json`], [`inventory_json`],
//! [`cluster_policies_json`]): one `kind: List` per file, as `kubectl get … -o json`
//! prints it (four-space indent, `metadata.resourceVersion: ""`).

use std::fmt::Write as _;
use std::net::IpAddr;

use rules_compiler::model::{
    Action, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, Endpoint, IpBlock, LabelSelector,
    Labels, Model, Namespace, NamespaceScope, Operator, Peer, Peers, Policy, PortMatch, PortRule,
    Ports, Rule, Subject,
};

use crate::{SIDECAR_PORTS, V4_BASE};

/// A YAML value, enough for Kubernetes objects.
#[derive(Clone, Debug)]
enum Node {
    Str(String),
    Int(i64),
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
}

fn s(v: impl Into<String>) -> Node {
    Node::Str(v.into())
}

fn map<K: Into<String>>(entries: Vec<(K, Node)>) -> Node {
    Node::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn labels_node(labels: &Labels) -> Node {
    Node::Map(labels.iter().map(|(k, v)| (k.to_string(), s(v))).collect())
}

/// Whether a string can be written without quotes and still read back as the same
/// string (not a number, boolean, null or something with YAML syntax in it).
fn plain_ok(v: &str) -> bool {
    let Some(first) = v.chars().next() else {
        return false;
    };
    let specials = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    ];
    first.is_ascii_alphanumeric()
        && !v.ends_with(':')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-' | ':'))
        && !specials.iter().any(|w| w.eq_ignore_ascii_case(v))
        && v.parse::<f64>().is_err()
        && !v.starts_with("0x")
        && !v.starts_with("0o")
}

fn scalar(v: &str, out: &mut String) {
    if plain_ok(v) {
        out.push_str(v);
    } else {
        out.push('"');
        for c in v.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

fn indent(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Map entries at `col`; the first one continues a line already started (after `- `)
/// when `inline_first`.
fn write_map(entries: &[(String, Node)], col: usize, inline_first: bool, out: &mut String) {
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 || !inline_first {
            indent(col, out);
        }
        scalar(k, out);
        out.push(':');
        write_value(v, col, out);
    }
}

/// A value after `key:` of a map whose keys are at `col`.
fn write_value(v: &Node, col: usize, out: &mut String) {
    match v {
        Node::Str(x) => {
            out.push(' ');
            scalar(x, out);
            out.push('\n');
        }
        Node::Int(n) => {
            let _ = writeln!(out, " {n}");
        }
        Node::Map(e) if e.is_empty() => out.push_str(" {}\n"),
        Node::Seq(e) if e.is_empty() => out.push_str(" []\n"),
        Node::Map(e) => {
            out.push('\n');
            write_map(e, col + 2, false, out);
        }
        // kubectl style: the dashes line up with the key.
        Node::Seq(items) => {
            out.push('\n');
            write_seq(items, col, out);
        }
    }
}

fn write_seq(items: &[Node], col: usize, out: &mut String) {
    for item in items {
        indent(col, out);
        out.push_str("- ");
        match item {
            Node::Str(x) => {
                scalar(x, out);
                out.push('\n');
            }
            Node::Int(n) => {
                let _ = writeln!(out, "{n}");
            }
            Node::Map(e) if e.is_empty() => out.push_str("{}\n"),
            Node::Seq(e) if e.is_empty() => out.push_str("[]\n"),
            Node::Map(e) => write_map(e, col + 2, true, out),
            Node::Seq(e) => {
                out.push('\n');
                write_seq(e, col + 2, out);
            }
        }
    }
}

/// Appends one document (`---` first) to a stream.
fn write_doc(doc: &Node, out: &mut String) {
    out.push_str("---\n");
    match doc {
        Node::Map(e) => write_map(e, 0, false, out),
        other => write_value(other, 0, out),
    }
}

// --- NetworkPolicy --------------------------------------------------------------------

fn selector_node(sel: &LabelSelector) -> Node {
    let mut entries = Vec::new();
    if !sel.match_expressions.is_empty() {
        let exprs = sel
            .match_expressions
            .iter()
            .map(|r| {
                let (op, vals) = match &r.operator {
                    Operator::In(v) => ("In", Some(v)),
                    Operator::NotIn(v) => ("NotIn", Some(v)),
                    Operator::Exists => ("Exists", None),
                    Operator::DoesNotExist => ("DoesNotExist", None),
                };
                let mut e = vec![("key", s(&r.key)), ("operator", s(op))];
                if let Some(vals) = vals {
                    e.push(("values", Node::Seq(vals.iter().map(s).collect())));
                }
                map(e)
            })
            .collect();
        entries.push(("matchExpressions", Node::Seq(exprs)));
    }
    if !sel.match_labels.is_empty() {
        entries.push(("matchLabels", labels_node(&sel.match_labels)));
    }
    map(entries)
}

fn ip_block_node(block: &IpBlock) -> Node {
    let mut e = vec![("cidr", s(block.cidr.to_string()))];
    if !block.except.is_empty() {
        e.push((
            "except",
            Node::Seq(block.except.iter().map(|n| s(n.to_string())).collect()),
        ));
    }
    map(e)
}

fn peer_node(peer: &Peer) -> Node {
    match peer {
        Peer::IpBlock(block) => map(vec![("ipBlock", ip_block_node(block))]),
        Peer::Endpoints {
            namespaces: NamespaceScope::Own(_),
            pods,
        } => map(vec![("podSelector", selector_node(pods))]),
        Peer::Endpoints {
            namespaces: NamespaceScope::Selector(ns),
            pods,
        } => {
            let mut e = vec![("namespaceSelector", selector_node(ns))];
            if !pods.is_everything() {
                e.push(("podSelector", selector_node(pods)));
            }
            map(e)
        }
    }
}

fn port_node(p: &PortRule) -> Node {
    let protocol = ("protocol", s(p.protocol.as_k8s()));
    match &p.port {
        PortMatch::Any => map(vec![protocol]),
        PortMatch::Named(name) => map(vec![("port", s(name)), protocol]),
        PortMatch::Range { start, end } if start == end => {
            map(vec![("port", Node::Int((*start).into())), protocol])
        }
        PortMatch::Range { start, end } => map(vec![
            ("endPort", Node::Int((*end).into())),
            ("port", Node::Int((*start).into())),
            protocol,
        ]),
    }
}

fn rule_node(rule: &Rule, peers_key: &str) -> Node {
    let mut e = Vec::new();
    if let Peers::List(peers) = &rule.peers {
        e.push((peers_key, Node::Seq(peers.iter().map(peer_node).collect())));
    }
    if let Ports::List(ports) = &rule.ports {
        e.push(("ports", Node::Seq(ports.iter().map(port_node).collect())));
    }
    map(e)
}

fn policy_node(p: &Policy) -> Node {
    let mut spec = Vec::new();
    // An isolating direction without rules is written only in policyTypes, as people
    // write default-deny policies.
    if let Some(rules) = p.egress.as_ref().filter(|r| !r.is_empty()) {
        spec.push((
            "egress",
            Node::Seq(rules.iter().map(|r| rule_node(r, "to")).collect()),
        ));
    }
    if let Some(rules) = p.ingress.as_ref().filter(|r| !r.is_empty()) {
        spec.push((
            "ingress",
            Node::Seq(rules.iter().map(|r| rule_node(r, "from")).collect()),
        ));
    }
    spec.push(("podSelector", selector_node(&p.pod_selector)));
    let mut types = Vec::new();
    if p.ingress.is_some() {
        types.push(s("Ingress"));
    }
    if p.egress.is_some() {
        types.push(s("Egress"));
    }
    spec.push(("policyTypes", Node::Seq(types)));
    map(vec![
        ("apiVersion", s("networking.k8s.io/v1")),
        ("kind", s("NetworkPolicy")),
        (
            "metadata",
            map(vec![
                ("name", s(p.id.name.as_str())),
                ("namespace", s(p.id.namespace.as_str())),
            ]),
        ),
        ("spec", map(spec)),
    ])
}

/// Every policy of the model as one `---`-separated stream of NetworkPolicy documents,
/// in model order.
pub fn policies_yaml(model: &Model) -> String {
    let mut out = String::with_capacity(model.policies.len() * 600);
    for p in &model.policies {
        write_doc(&policy_node(p), &mut out);
    }
    out
}

// --- ClusterNetworkPolicy ------------------------------------------------------------

/// `{namespaceSelector, podSelector}` (both written, `{}` for every namespace).
fn pods_node(namespaces: &LabelSelector, pods: &LabelSelector) -> Node {
    map(vec![
        ("namespaceSelector", selector_node(namespaces)),
        ("podSelector", selector_node(pods)),
    ])
}

fn cluster_peer_node(peer: &ClusterPeer) -> Node {
    match peer {
        ClusterPeer::Namespaces(sel) => map(vec![("namespaces", selector_node(sel))]),
        ClusterPeer::Pods { namespaces, pods } => map(vec![("pods", pods_node(namespaces, pods))]),
        ClusterPeer::Networks(nets) => map(vec![(
            "networks",
            Node::Seq(nets.iter().map(|n| s(n.to_string())).collect()),
        )]),
        ClusterPeer::Nodes(sel) => map(vec![("nodes", selector_node(sel))]),
        ClusterPeer::Unknown { fields } => Node::Map(
            fields
                .iter()
                .map(|f| (f.clone(), Node::Map(Vec::new())))
                .collect(),
        ),
    }
}

fn cluster_port_node(port: &ClusterPort) -> Node {
    match port {
        ClusterPort::Named(name) => map(vec![("destinationNamedPort", s(name))]),
        ClusterPort::Protocol { protocol, ports } => {
            let dest = match ports {
                None => Vec::new(),
                Some((a, b)) if a == b => vec![(
                    "destinationPort",
                    map(vec![("number", Node::Int((*a).into()))]),
                )],
                Some((a, b)) => vec![(
                    "destinationPort",
                    map(vec![(
                        "range",
                        map(vec![
                            ("end", Node::Int((*b).into())),
                            ("start", Node::Int((*a).into())),
                        ]),
                    )]),
                )],
            };
            map(vec![(protocol.as_k8s().to_ascii_lowercase(), map(dest))])
        }
    }
}

fn cluster_rule_node(rule: &ClusterRule, peers_key: &str) -> Node {
    let action = match rule.action {
        Action::Accept => "Accept",
        Action::Deny => "Deny",
        Action::Pass => "Pass",
    };
    // Keys sorted as kubectl prints them: action, from, name, protocols, to.
    let mut e = vec![("action", s(action))];
    let peers = Node::Seq(rule.peers.iter().map(cluster_peer_node).collect());
    if peers_key == "from" {
        e.push(("from", peers.clone()));
    }
    if let Some(name) = &rule.name {
        e.push(("name", s(name)));
    }
    if let Some(ports) = &rule.protocols {
        e.push((
            "protocols",
            Node::Seq(ports.iter().map(cluster_port_node).collect()),
        ));
    }
    if peers_key == "to" {
        e.push(("to", peers));
    }
    map(e)
}

fn cluster_policy_node(p: &ClusterPolicy) -> Node {
    let mut spec = Vec::new();
    if !p.egress.is_empty() {
        spec.push((
            "egress",
            Node::Seq(
                p.egress
                    .iter()
                    .map(|r| cluster_rule_node(r, "to"))
                    .collect(),
            ),
        ));
    }
    if !p.ingress.is_empty() {
        spec.push((
            "ingress",
            Node::Seq(
                p.ingress
                    .iter()
                    .map(|r| cluster_rule_node(r, "from"))
                    .collect(),
            ),
        ));
    }
    spec.push(("priority", Node::Int(p.priority.into())));
    let subject = match &p.subject {
        Subject::Namespaces(sel) => map(vec![("namespaces", selector_node(sel))]),
        Subject::Pods { namespaces, pods } => map(vec![("pods", pods_node(namespaces, pods))]),
    };
    spec.push(("subject", subject));
    spec.push(("tier", s(p.tier.as_str())));
    map(vec![
        ("apiVersion", s("policy.networking.k8s.io/v1alpha2")),
        ("kind", s("ClusterNetworkPolicy")),
        ("metadata", map(vec![("name", s(&p.name))])),
        ("spec", map(spec)),
    ])
}

/// Every cluster policy of the model as one `---`-separated stream of
/// ClusterNetworkPolicy documents, in model order. Empty without cluster policies.
pub fn cluster_policies_yaml(model: &Model) -> String {
    let mut out = String::with_capacity(model.cluster_policies.len() * 4000);
    for p in &model.cluster_policies {
        write_doc(&cluster_policy_node(p), &mut out);
    }
    out
}

// --- inventory ------------------------------------------------------------------------

fn namespace_node(ns: &Namespace) -> Node {
    map(vec![
        ("apiVersion", s("v1")),
        ("kind", s("Namespace")),
        (
            "metadata",
            map(vec![
                ("labels", labels_node(&ns.labels)),
                ("name", s(&ns.name)),
            ]),
        ),
        (
            "spec",
            map(vec![("finalizers", Node::Seq(vec![s("kubernetes")]))]),
        ),
        ("status", map(vec![("phase", s("Active"))])),
    ])
}

/// A stable fake UID, so that dumps are reproducible.
fn uid(name: &str) -> String {
    // FNV-1a, twice with different offsets, for 128 bits.
    let fnv = |basis: u64| {
        name.bytes().fold(basis, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
        })
    };
    let x = (u128::from(fnv(0xCBF2_9CE4_8422_2325)) << 64) | u128::from(fnv(0x6C62_272E_07BB_0142));
    let h = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn container_port(p: &rules_compiler::model::NamedPort) -> Node {
    map(vec![
        ("containerPort", Node::Int(p.port.into())),
        ("name", s(p.name.as_str())),
        ("protocol", s(p.protocol.as_k8s())),
    ])
}

fn pod_node(ep: &Endpoint) -> Node {
    let app = ep.labels.get("app").unwrap_or("app");
    let version = ep.labels.get("version").unwrap_or("latest");
    let is_sidecar = |name: &str| SIDECAR_PORTS.iter().any(|(n, _, _)| *n == name);
    let (sidecar, main): (Vec<_>, Vec<_>) = ep.ports.iter().partition(|p| is_sidecar(&p.name));
    let mut app_container = vec![
        ("image", s(format!("registry.example/{app}:{version}"))),
        ("name", s(app)),
    ];
    if !main.is_empty() {
        app_container.push((
            "ports",
            Node::Seq(main.into_iter().map(container_port).collect()),
        ));
    }
    let mut containers = vec![map(app_container)];
    if !sidecar.is_empty() {
        containers.push(map(vec![
            ("image", s("docker.io/istio/proxyv2:1.22.0")),
            ("name", s("istio-proxy")),
            (
                "ports",
                Node::Seq(sidecar.into_iter().map(container_port).collect()),
            ),
        ]));
    }
    // One node per /24 of the pod network, as a per-node pod CIDR would give.
    let node = ep
        .ips
        .iter()
        .find_map(|ip| match ip {
            IpAddr::V4(a) => Some((u32::from(*a) - V4_BASE) >> 8),
            IpAddr::V6(_) => None,
        })
        .unwrap_or(0);
    let primary = ep.ips.first().map(|ip| ip.to_string()).unwrap_or_default();
    map(vec![
        ("apiVersion", s("v1")),
        ("kind", s("Pod")),
        (
            "metadata",
            map(vec![
                ("labels", labels_node(&ep.labels)),
                ("name", s(ep.id.name.as_str())),
                ("namespace", s(ep.id.namespace.as_str())),
                ("uid", s(uid(&ep.id.to_string()))),
            ]),
        ),
        (
            "spec",
            map(vec![
                ("containers", Node::Seq(containers)),
                ("nodeName", s(format!("node-{node:03}"))),
            ]),
        ),
        (
            "status",
            map(vec![
                ("phase", s("Running")),
                ("podIP", s(primary)),
                (
                    "podIPs",
                    Node::Seq(
                        ep.ips
                            .iter()
                            .map(|ip| map(vec![("ip", s(ip.to_string()))]))
                            .collect(),
                    ),
                ),
            ]),
        ),
    ])
}

/// The inventory as one stream: every Namespace, then every Pod, as kubectl prints
/// them.
pub fn inventory_yaml(model: &Model) -> String {
    let inv = &model.inventory;
    let mut out = String::with_capacity(inv.endpoints.len() * 800);
    for ns in inv.namespaces.values() {
        write_doc(&namespace_node(ns), &mut out);
    }
    for ep in &inv.endpoints {
        write_doc(&pod_node(ep), &mut out);
    }
    out
}

// --- JSON -----------------------------------------------------------------------------

fn json_string(v: &str, out: &mut String) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A value as kubectl's JSON, its first line continuing one already started at
/// `level` (four spaces each).
fn write_json(v: &Node, level: usize, out: &mut String) {
    match v {
        Node::Str(x) => json_string(x, out),
        Node::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Node::Map(e) if e.is_empty() => out.push_str("{}"),
        Node::Seq(e) if e.is_empty() => out.push_str("[]"),
        Node::Map(entries) => {
            out.push_str("{\n");
            for (i, (k, v)) in entries.iter().enumerate() {
                indent(4 * (level + 1), out);
                json_string(k, out);
                out.push_str(": ");
                write_json(v, level + 1, out);
                out.push_str(if i + 1 < entries.len() { ",\n" } else { "\n" });
            }
            indent(4 * level, out);
            out.push('}');
        }
        Node::Seq(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(4 * (level + 1), out);
                write_json(item, level + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            indent(4 * level, out);
            out.push(']');
        }
    }
}

/// `objects` as one kubectl `List`, written as JSON.
fn json_list(objects: impl Iterator<Item = Node>, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    out.push_str("{\n    \"apiVersion\": \"v1\",\n    \"items\": [");
    let mut first = true;
    for obj in objects {
        out.push_str(if first { "\n" } else { ",\n" });
        first = false;
        indent(8, &mut out);
        write_json(&obj, 2, &mut out);
    }
    out.push_str(if first { "],\n" } else { "\n    ],\n" });
    out.push_str("    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n");
    out
}

/// [`policies_yaml`] as the JSON List `kubectl get networkpolicies -A -o json` prints.
pub fn policies_json(model: &Model) -> String {
    json_list(
        model.policies.iter().map(policy_node),
        model.policies.len() * 1200,
    )
}

/// [`cluster_policies_yaml`] as one JSON List.
pub fn cluster_policies_json(model: &Model) -> String {
    json_list(
        model.cluster_policies.iter().map(cluster_policy_node),
        model.cluster_policies.len() * 8000,
    )
}

/// [`inventory_yaml`] as the JSON List `kubectl get namespaces,pods -A -o json` prints.
pub fn inventory_json(model: &Model) -> String {
    let inv = &model.inventory;
    json_list(
        inv.namespaces
            .values()
            .map(namespace_node)
            .chain(inv.endpoints.iter().map(pod_node)),
        inv.endpoints.len() * 1600,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_kubectl_json_lists() {
        let mut out = String::new();
        write_json(
            &map(vec![
                ("a", s("x\"\\")),
                ("b", map(Vec::<(String, Node)>::new())),
                ("c", Node::Seq(vec![Node::Int(1), map(vec![("d", s("e"))])])),
            ]),
            0,
            &mut out,
        );
        assert_eq!(
            out,
            "{\n    \"a\": \"x\\\"\\\\\",\n    \"b\": {},\n    \"c\": [\n        1,\n        {\n            \"d\": \"e\"\n        }\n    ]\n}"
        );
        let empty = json_list(std::iter::empty(), 0);
        let v: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(v["items"], serde_json::json!([]));
        assert_eq!(v["kind"], "List");
    }

    #[test]
    fn ambiguous_scalars_are_quoted() {
        for v in [
            "true", "No", "null", "8080", "1e3", "0x1f", "", "a: b", "-x",
        ] {
            let mut out = String::new();
            scalar(v, &mut out);
            assert!(out.starts_with('"'), "{v:?} must be quoted, got {out}");
        }
        for v in [
            "v1",
            "198.18.0.1",
            "2001:db8::1",
            "kubernetes.io/metadata.name",
        ] {
            let mut out = String::new();
            scalar(v, &mut out);
            assert_eq!(out, v);
        }
    }

    #[test]
    fn emits_kubectl_block_style() {
        let doc = map(vec![
            ("a", s("x")),
            ("b", map(Vec::<(String, Node)>::new())),
            (
                "c",
                Node::Seq(vec![
                    map(vec![("d", Node::Int(1)), ("e", Node::Seq(vec![s("f")]))]),
                    map(Vec::<(String, Node)>::new()),
                ]),
            ),
        ]);
        let mut out = String::new();
        write_doc(&doc, &mut out);
        assert_eq!(out, "---\na: x\nb: {}\nc:\n- d: 1\n  e:\n  - f\n- {}\n");
    }
}
