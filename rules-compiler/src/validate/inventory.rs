//! Inventory objects: Kubernetes `Namespace`, `Pod` and `Node` (v1), decoded leniently,
//! and the native `Endpoint` form (`netpol/v1`, described in the parent module), decoded
//! strictly. Other kinds are reported as ignored.
//!
//! Pods that cannot be enforced by address are not endpoints; they are listed as skipped
//! with the reason, as Kubernetes implementations do: `hostNetwork` pods (their address
//! is the node's), finished pods (phase Succeeded or Failed: their IP may be reused) and
//! pods without an IP yet.

use crate::diag::{clip, quote};
use std::collections::BTreeMap;
use std::net::IpAddr;

use super::decode::{self, index, Ctx, Map};
use super::names;
use super::object::{self, MetaFields, Object, Scope};
use crate::load::{Node, Value};
use crate::model::{
    ClusterNode, Endpoint, EndpointKind, NamedPort, Namespace, ObjectName, Protocol, SkipCause,
    Skipped, Source, NAMESPACE_NAME_LABEL,
};

/// The apiVersion of the native form.
pub(super) const NATIVE_API_VERSION: &str = "netpol/v1";

/// An address of an endpoint, with where it was written (for conflict messages).
#[derive(Clone)]
pub(super) struct LocatedIp {
    pub ip: IpAddr,
    pub source: Source,
    /// The field path, such as `status.podIPs[0].ip`: inline up to 24 bytes, as
    /// netpold's decode cache keeps one for every address.
    pub field: compact_str::CompactString,
}

/// What one inventory object turned into.
#[derive(Clone)]
pub(super) enum Decoded {
    /// A declared namespace, and whether its object wrote the label
    /// `kubernetes.io/metadata.name` itself (`lint` asks).
    Namespace {
        namespace: Namespace,
        name_label_written: bool,
    },
    /// A live endpoint, with its object label and where each address was written.
    Endpoint {
        endpoint: Endpoint,
        object: String,
        ips: Vec<LocatedIp>,
    },
    /// A pod that is not enforced (it still owns its name).
    Skipped(Skipped),
    /// A Kubernetes Node (for ClusterNetworkPolicy `nodes` peers).
    Node(ClusterNode),
    /// An object of a kind the inventory does not use.
    Ignored(crate::model::Name),
}

/// What [`super::assemble`] takes of a lent object, cloned: an endpoint's addresses as
/// written and its object label serve only the checks before, and are left out.
pub(super) fn taken(d: &Decoded) -> Decoded {
    match d {
        Decoded::Endpoint { endpoint, .. } => Decoded::Endpoint {
            endpoint: endpoint.clone(),
            object: String::new(),
            ips: Vec::new(),
        },
        d => d.clone(),
    }
}

/// Decodes one inventory object; `None` when it is unusable (the errors are reported).
pub(super) fn decode(ctx: &mut Ctx<'_>, obj: &Object<'_>) -> Option<Decoded> {
    let m = &obj.map;
    let wrong_version = |ctx: &mut Ctx<'_>, expected: &str| {
        ctx.error(
            m.get("apiVersion").unwrap_or(m.node),
            "apiVersion",
            format!(
                "unsupported apiVersion {} for kind {}; expected {expected}",
                quote(obj.api_version),
                clip(obj.kind)
            ),
        );
    };
    match (obj.kind, obj.api_version) {
        ("Namespace", "v1") => namespace(ctx, m),
        ("Pod", "v1") => pod(ctx, m),
        ("Node", "v1") => node(ctx, m),
        ("Endpoint", NATIVE_API_VERSION) => native(ctx, m),
        (kind, NATIVE_API_VERSION) => {
            ctx.object = Some(object::label(kind, m, scope_of(kind)));
            ctx.error(
                m.get("kind").unwrap_or(m.node),
                "kind",
                format!(
                    "unknown kind {} for {NATIVE_API_VERSION}; its only kind is Endpoint \
                     (namespaces use the Kubernetes form: apiVersion v1, kind Namespace)",
                    quote(kind)
                ),
            );
            None
        }
        ("Namespace" | "Pod" | "Node", _) => {
            ctx.object = Some(object::label(obj.kind, m, scope_of(obj.kind)));
            wrong_version(ctx, "v1");
            None
        }
        ("Endpoint", _) => {
            ctx.object = Some(object::label(obj.kind, m, Scope::Namespaced));
            wrong_version(ctx, NATIVE_API_VERSION);
            None
        }
        (kind, _) => Some(Decoded::Ignored(kind.into())),
    }
}

fn scope_of(kind: &str) -> Scope {
    match kind {
        "Namespace" => Scope::Cluster,
        "Node" => Scope::ClusterSubdomain,
        _ => Scope::Namespaced,
    }
}

/// A Node: name, labels and its `InternalIP`/`ExternalIP` addresses; other address
/// types (`Hostname`, `InternalDNS`, `ExternalDNS`) are names and are skipped.
fn node(ctx: &mut Ctx<'_>, m: &Map<'_>) -> Option<Decoded> {
    ctx.object = Some(object::label("Node", m, Scope::ClusterSubdomain));
    let meta = object::metadata(ctx, m, MetaFields::Lenient, Scope::ClusterSubdomain);
    let status = m.get("status").and_then(|n| decode::map(ctx, n, "status"));
    let mut ips = Vec::new();
    if let Some(status) = &status {
        let path = status.field("addresses");
        for (i, item) in decode::opt_seq(ctx, status.get("addresses"), &path)
            .iter()
            .enumerate()
        {
            let Some(item) = decode::map(ctx, item, &index(&path, i)) else {
                continue;
            };
            if let Some(("InternalIP" | "ExternalIP", _)) = item.string(ctx, "type") {
                if let Some(n) = item.required(ctx, "address", "") {
                    push_ip(ctx, n, &item.field("address"), &mut ips);
                }
            }
        }
    }
    let meta = meta?;
    let mut addresses: Vec<IpAddr> = ips.into_iter().map(|l| l.ip).collect();
    addresses.sort();
    addresses.dedup();
    Some(Decoded::Node(ClusterNode {
        name: meta.name,
        labels: meta.labels,
        addresses,
        source: ctx.source(m.node),
    }))
}

fn namespace(ctx: &mut Ctx<'_>, m: &Map<'_>) -> Option<Decoded> {
    ctx.object = Some(object::label("Namespace", m, Scope::Cluster));
    let meta = object::metadata(ctx, m, MetaFields::Lenient, Scope::Cluster)?;
    let mut labels = meta.labels;
    let name_label_written = labels.contains_key(NAMESPACE_NAME_LABEL);
    if let Some(old) = labels.insert(NAMESPACE_NAME_LABEL.to_string(), meta.name.clone()) {
        if old != meta.name {
            ctx.warning(
                meta.name_node,
                "metadata.labels",
                format!(
                    "label {NAMESPACE_NAME_LABEL}={old} replaced by {}: Kubernetes always sets \
                     it to the namespace's name",
                    meta.name
                ),
            );
        }
    }
    Some(Decoded::Namespace {
        namespace: Namespace {
            name: meta.name,
            labels,
            implicit: false,
            source: ctx.source(m.node),
        },
        name_label_written,
    })
}

fn pod(ctx: &mut Ctx<'_>, m: &Map<'_>) -> Option<Decoded> {
    let label = object::label("Pod", m, Scope::Namespaced);
    ctx.object = Some(label.clone());
    let meta = object::metadata(ctx, m, MetaFields::Lenient, Scope::Namespaced);
    let spec = m.get("spec").and_then(|n| decode::map(ctx, n, "spec"));
    let status = m.get("status").and_then(|n| decode::map(ctx, n, "status"));

    let mut host_network = None;
    let mut ports = Vec::new();
    if let Some(spec) = &spec {
        host_network = spec.get("hostNetwork").and_then(|n| {
            decode::boolean(ctx, n, "spec.hostNetwork")
                .filter(|b| *b)
                .map(|_| n)
        });
        let containers_path = spec.field("containers");
        for (i, c) in decode::opt_seq(ctx, spec.get("containers"), &containers_path)
            .iter()
            .enumerate()
        {
            let path = index(&containers_path, i);
            let Some(c) = decode::map(ctx, c, &path) else {
                continue;
            };
            let ports_path = c.field("ports");
            for (j, p) in decode::opt_seq(ctx, c.get("ports"), &ports_path)
                .iter()
                .enumerate()
            {
                let path = index(&ports_path, j);
                if let Some(port) = decode::map(ctx, p, &path)
                    .and_then(|p| named_port(ctx, &p, "containerPort", false))
                {
                    ports.push(port);
                }
            }
        }
    }

    let mut ips = Vec::new();
    let mut phase = None;
    // Addresses written but all invalid are errors, not "no IP yet".
    let mut ips_written = false;
    if let Some(status) = &status {
        let path = status.field("podIPs");
        for (i, item) in decode::opt_seq(ctx, status.get("podIPs"), &path)
            .iter()
            .enumerate()
        {
            let item_path = index(&path, i);
            let Some(item) = decode::map(ctx, item, &item_path) else {
                continue;
            };
            if let Some(n) = item.required(ctx, "ip", "") {
                ips_written = true;
                push_ip(ctx, n, &item.field("ip"), &mut ips);
            }
        }
        if ips.is_empty() {
            if let Some(n) = status.get("podIP") {
                ips_written = true;
                push_ip(ctx, n, "status.podIP", &mut ips);
            }
        }
        phase = status.string(ctx, "phase");
    }

    let meta = meta?;
    let id = ObjectName::new(meta.namespace, meta.name);
    let ports = unique_ports(ctx, ports);
    let source = ctx.source(m.node);

    let skip = if let Some(n) = host_network {
        Some((
            SkipCause::HostNetwork,
            n,
            "spec.hostNetwork",
            "hostNetwork pod: its address is the node's: policies neither isolate it nor match \
             it as a peer"
                .to_string(),
        ))
    } else if let Some((p @ ("Succeeded" | "Failed"), n)) = phase {
        Some((
            SkipCause::Finished,
            n,
            "status.phase",
            format!("finished (phase {p}): its IP may be reused"),
        ))
    } else if ips.is_empty() && ips_written {
        return None;
    } else if ips.is_empty() {
        let phase = phase.map_or(String::new(), |(p, _)| format!(" (phase {})", quote(p)));
        Some((
            SkipCause::NoAddress,
            status.as_ref().map_or(m.node, |s| s.node),
            "status.podIPs",
            format!("no IP yet{phase}"),
        ))
    } else {
        None
    };
    if let Some((cause, node, field, reason)) = skip {
        ctx.warning(node, field, format!("not enforced: {reason}"));
        return Some(Decoded::Skipped(Skipped {
            id,
            labels: meta.labels,
            cause,
            object: label,
            reason,
            source,
        }));
    }
    Some(live(
        id,
        meta.labels,
        ips,
        ports,
        EndpointKind::Pod,
        source,
        label,
    ))
}

fn native(ctx: &mut Ctx<'_>, m: &Map<'_>) -> Option<Decoded> {
    let label = object::label("Endpoint", m, Scope::Namespaced);
    ctx.object = Some(label.clone());
    m.strict(ctx, &["apiVersion", "kind", "metadata", "ips", "ports"]);
    let meta = object::metadata(ctx, m, MetaFields::Native, Scope::Namespaced);

    let mut ips = Vec::new();
    if let Some(n) = m.required(
        ctx,
        "ips",
        "list the endpoint's addresses, e.g. ips: [198.18.3.10]",
    ) {
        if let Some(items) = decode::seq(ctx, n, "ips") {
            if items.is_empty() {
                ctx.error(n, "ips", "at least one IP address is required");
            }
            for (i, item) in items.iter().enumerate() {
                push_ip(ctx, item, &index("ips", i), &mut ips);
            }
        }
    }
    let mut ports = Vec::new();
    for (i, p) in decode::opt_seq(ctx, m.get("ports"), "ports")
        .iter()
        .enumerate()
    {
        let path = index("ports", i);
        let Some(p) = decode::map(ctx, p, &path) else {
            continue;
        };
        p.strict(ctx, &["name", "port", "protocol"]);
        if let Some(port) = named_port(ctx, &p, "port", true) {
            ports.push(port);
        }
    }
    let meta = meta?;
    if ips.is_empty() {
        return None;
    }
    let ports = unique_ports(ctx, ports);
    let id = ObjectName::new(meta.namespace, meta.name);
    let source = ctx.source(m.node);
    Some(live(
        id,
        meta.labels,
        ips,
        ports,
        EndpointKind::Native,
        source,
        label,
    ))
}

fn live(
    id: ObjectName,
    labels: crate::model::Labels,
    ips: Vec<LocatedIp>,
    ports: Vec<NamedPort>,
    kind: EndpointKind,
    source: Source,
    object: String,
) -> Decoded {
    let mut addrs: Vec<IpAddr> = ips.iter().map(|l| l.ip).collect();
    addrs.sort();
    addrs.dedup();
    Decoded::Endpoint {
        endpoint: Endpoint {
            id,
            labels,
            ips: addrs.into(),
            ports: ports.into(),
            kind,
            source,
        },
        object,
        ips,
    }
}

/// A port entry with a `name`. For pods, unnamed entries are irrelevant (policies can
/// only refer to ports by name or number) and give `None` silently.
fn named_port(
    ctx: &mut Ctx<'_>,
    p: &Map<'_>,
    number_key: &str,
    name_required: bool,
) -> Option<(NamedPort, Source, String)> {
    let name = if name_required {
        p.required(ctx, "name", "")
            .and_then(|n| decode::string(ctx, n, &p.field("name")).map(|s| (s, n)))
    } else {
        p.string(ctx, "name")
    };
    let (name, name_node) = name?;
    let mut ok = true;
    if let Err(why) = names::port_name(name) {
        ctx.error(name_node, &p.field("name"), why);
        ok = false;
    }
    // The field path only for an error: every port of every pod passes here.
    let port = p.required(ctx, number_key, "").and_then(|n| {
        let Value::Int(i) = n.value else {
            decode::type_error(ctx, n, &p.field(number_key), "an integer");
            return None;
        };
        let port = u16::try_from(i).ok().filter(|p| *p >= 1);
        if port.is_none() {
            ctx.error(
                n,
                &p.field(number_key),
                format!("port {i} is out of range: expected 1-65535"),
            );
        }
        port
    });
    let protocol = match p.string(ctx, "protocol") {
        None => Some(Protocol::Tcp).filter(|_| p.get("protocol").is_none()),
        Some((s, n)) => {
            let proto = Protocol::from_k8s(s);
            if proto.is_none() {
                ctx.error(
                    n,
                    &p.field("protocol"),
                    format!(
                        "unknown protocol {}; expected TCP, UDP or SCTP (upper case)",
                        quote(s)
                    ),
                );
            }
            proto
        }
    };
    let named = NamedPort {
        name: name.into(),
        port: port?,
        protocol: protocol?,
    };
    ok.then(|| (named, ctx.source(name_node), p.field("name")))
}

/// Sorted by name; a name used twice is an error at its second use.
fn unique_ports(ctx: &mut Ctx<'_>, ports: Vec<(NamedPort, Source, String)>) -> Vec<NamedPort> {
    let mut seen: BTreeMap<crate::model::Name, (NamedPort, Source)> = BTreeMap::new();
    for (port, source, field) in ports {
        if let Some((_, first)) = seen.get(port.name.as_str()) {
            ctx.error_at(
                &source,
                &field,
                format!(
                    "port name {:?} is used twice in this endpoint (first at line {}); each \
                     named port must have its own name",
                    port.name, first.line
                ),
            );
            continue;
        }
        seen.insert(port.name.clone(), (port, source));
    }
    seen.into_values().map(|(p, _)| p).collect()
}

/// Why an endpoint cannot have this address, or `None` when it can: the address must
/// be one that a connection to or from a single endpoint carries, or the policy that
/// names the endpoint would silently match nothing (or something else).
fn unusable(ip: &IpAddr) -> Option<String> {
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return Some(format!(
                "an IPv4-mapped IPv6 address; IPv4 traffic never carries it: use the IPv4 \
                 form {v4}"
            ));
        }
    }
    let why = if ip.is_unspecified() {
        "the unspecified address; no connection comes from or goes to it"
    } else if ip.is_loopback() {
        "a loopback address; it never leaves a host, and netpol always accepts loopback \
         traffic, so no policy could apply to it"
    } else if ip.is_multicast() {
        "a multicast address (a group, not an endpoint); no connection goes to it"
    } else if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
        "the broadcast address; no connection goes to it"
    } else {
        return None;
    };
    Some(why.to_string())
}

fn push_ip(ctx: &mut Ctx<'_>, node: &Node, field: &str, out: &mut Vec<LocatedIp>) {
    let Some(s) = decode::string(ctx, node, field) else {
        return;
    };
    match s.parse::<IpAddr>() {
        Ok(ip) => match unusable(&ip) {
            None => out.push(LocatedIp {
                ip,
                source: ctx.source(node),
                field: field.into(),
            }),
            Some(why) => ctx.error(node, field, format!("{s} is {why}")),
        },
        Err(_) => ctx.error(
            node,
            field,
            format!(
                "invalid IP address {}: expected an IPv4 or IPv6 address, without prefix length",
                quote(s)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, errors, ok, one_error, show};
    use crate::model::*;

    const DUMP: &str = r#"apiVersion: v1
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    creationTimestamp: "2024-05-01T10:00:00Z"
    labels:
      kubernetes.io/metadata.name: payments
      team: money
    name: payments
    resourceVersion: "42"
    uid: 6f1c
  spec:
    finalizers:
    - kubernetes
  status:
    phase: Active
- apiVersion: v1
  kind: Pod
  metadata:
    annotations:
      kubectl.kubernetes.io/restartedAt: "2024-05-01T10:00:00Z"
    generateName: payments-api-7d9f-
    labels:
      app: payments-api
      pod-template-hash: 7d9f
    name: payments-api-7d9f-abcde
    namespace: payments
    ownerReferences:
    - apiVersion: apps/v1
      kind: ReplicaSet
      name: payments-api-7d9f
  spec:
    containers:
    - image: registry.example/payments:1.2
      name: api
      ports:
      - containerPort: 8080
        name: http
        protocol: TCP
      - containerPort: 9090
        protocol: TCP
      resources: {}
    - name: sidecar
      ports:
      - {containerPort: 5353, name: dns, protocol: UDP}
    dnsPolicy: ClusterFirst
    nodeName: node-1
  status:
    conditions:
    - type: Ready
      status: "True"
    hostIP: 198.18.100.1
    phase: Running
    podIP: 198.18.1.10
    podIPs:
    - ip: 198.18.1.10
    - ip: 2001:db8:1::10
- apiVersion: v1
  kind: Service
  metadata: {name: payments, namespace: payments}
  spec: {ports: [{port: 80}]}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: payments-api, namespace: payments}
- apiVersion: v1
  kind: Service
  metadata: {name: other, namespace: payments}
kind: List
metadata:
  resourceVersion: ""
"#;

    #[test]
    fn kubectl_dump_with_extra_fields_and_other_kinds() {
        let loaded = ok(&[], &[("dump.yaml", DUMP)]);
        let inv = &loaded.model.inventory;
        assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));

        let ns = &inv.namespaces["payments"];
        assert!(!ns.implicit);
        assert_eq!(ns.source.line, 3);
        assert_eq!(
            ns.labels,
            [
                (
                    "kubernetes.io/metadata.name".to_string(),
                    "payments".to_string()
                ),
                ("team".to_string(), "money".to_string())
            ]
            .into()
        );

        assert_eq!(inv.endpoints.len(), 1);
        let e = &inv.endpoints[0];
        assert_eq!(e.id, ObjectName::new("payments", "payments-api-7d9f-abcde"));
        assert_eq!(e.kind, EndpointKind::Pod);
        assert_eq!(&e.labels["app"], "payments-api");
        assert_eq!(
            *e.ips,
            vec![
                "198.18.1.10".parse::<std::net::IpAddr>().unwrap(),
                "2001:db8:1::10".parse().unwrap()
            ]
        );
        assert_eq!(
            *e.ports,
            vec![
                NamedPort {
                    name: "dns".into(),
                    port: 5353,
                    protocol: Protocol::Udp
                },
                NamedPort {
                    name: "http".into(),
                    port: 8080,
                    protocol: Protocol::Tcp
                },
            ]
        );
        assert_eq!(e.named_port("http", Protocol::Tcp), Some(8080));
        assert_eq!(
            inv.ignored_kinds,
            [("Deployment".to_string(), 1), ("Service".to_string(), 2)].into()
        );
    }

    #[test]
    fn a_missing_api_version_hints_the_group_of_the_kind() {
        for (kind, hint) in [
            ("Namespace", "e.g. apiVersion: v1"),
            ("Pod", "e.g. apiVersion: v1"),
        ] {
            let text = format!("kind: {kind}\nmetadata: {{name: a, namespace: web}}\n");
            let errs = errors(&[], &[("i.yaml", &text)]);
            assert!(
                errs.iter().any(|e| e.message.ends_with(hint)),
                "{kind}: {}",
                show(&errs)
            );
            assert!(
                !show(&errs).contains("networking.k8s.io"),
                "{}",
                show(&errs)
            );
        }
        let policy =
            "kind: NetworkPolicy\nmetadata: {name: p, namespace: web}\nspec: {podSelector: {}}\n";
        let errs = errors(&[("p.yaml", policy)], &[]);
        assert!(
            errs.iter()
                .any(|e| e.message.ends_with("e.g. apiVersion: networking.k8s.io/v1")),
            "{}",
            show(&errs)
        );
    }

    #[test]
    fn namespace_always_carries_its_name_label() {
        let loaded = ok(
            &[],
            &[(
                "ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n  labels:\n    \
                 kubernetes.io/metadata.name: other\n",
            )],
        );
        let ns = &loaded.model.inventory.namespaces["web"];
        assert_eq!(&ns.labels[NAMESPACE_NAME_LABEL], "web");
        assert_eq!(ns.labels.len(), 1);
        assert_eq!(loaded.warnings.len(), 1);
        check(
            &loaded.warnings[0],
            "ns.yaml",
            (4, 9),
            "Namespace web",
            "metadata.labels",
            "replaced by web",
        );

        let loaded = ok(
            &[],
            &[(
                "ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: bare}\n",
            )],
        );
        let ns = &loaded.model.inventory.namespaces["bare"];
        assert_eq!(
            ns.labels,
            [(NAMESPACE_NAME_LABEL.to_string(), "bare".to_string())].into()
        );
    }

    fn pod(name: &str, spec: &str, status: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: web}}\nspec: {spec}\nstatus: {status}\n"
        )
    }

    #[test]
    fn pods_that_cannot_be_enforced_are_skipped_with_the_reason() {
        let text = [
            pod(
                "host",
                "{hostNetwork: true}",
                "{phase: Running, podIP: 198.18.0.1}",
            ),
            pod("done", "{}", "{phase: Succeeded, podIP: 198.18.0.2}"),
            pod(
                "failed",
                "{}",
                "{phase: Failed, podIPs: [{ip: 198.18.0.3}]}",
            ),
            pod("pending", "{}", "{phase: Pending, podIPs: []}"),
            pod(
                "live",
                "{hostNetwork: false}",
                "{phase: Running, podIP: 198.18.0.1}",
            ),
        ]
        .concat();
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n";
        let loaded = ok(&[], &[("ns.yaml", ns), ("pods.yaml", &text)]);
        let inv = &loaded.model.inventory;
        let ids: Vec<String> = inv.endpoints.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(
            ids,
            vec!["web/live"],
            "a skipped pod's IP does not conflict"
        );
        let skipped: Vec<(&str, &str)> = inv
            .skipped
            .iter()
            .map(|s| (s.object.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            vec![
                (
                    "Pod web/host",
                    "hostNetwork pod: its address is the node's: policies neither isolate it \
                     nor match it as a peer"
                ),
                (
                    "Pod web/done",
                    "finished (phase Succeeded): its IP may be reused"
                ),
                (
                    "Pod web/failed",
                    "finished (phase Failed): its IP may be reused"
                ),
                ("Pod web/pending", r#"no IP yet (phase "Pending")"#),
            ]
        );
        assert_eq!(inv.skipped[0].source.line, 2);
        // The cause as data, and the name, for lint.
        let causes: Vec<(String, SkipCause)> = inv
            .skipped
            .iter()
            .map(|s| (s.id.to_string(), s.cause))
            .collect();
        assert_eq!(
            causes,
            vec![
                ("web/host".to_string(), SkipCause::HostNetwork),
                ("web/done".to_string(), SkipCause::Finished),
                ("web/failed".to_string(), SkipCause::Finished),
                ("web/pending".to_string(), SkipCause::NoAddress),
            ]
        );
        assert_eq!(loaded.warnings.len(), 4, "{}", show(&loaded.warnings));
        check(
            &loaded.warnings[0],
            "pods.yaml",
            (5, 21),
            "Pod web/host",
            "spec.hostNetwork",
            "not enforced: hostNetwork pod",
        );
        check(
            &loaded.warnings[1],
            "pods.yaml",
            (12, 17),
            "Pod web/done",
            "status.phase",
            "not enforced: finished",
        );
        check(
            &loaded.warnings[3],
            "pods.yaml",
            (24, 9),
            "Pod web/pending",
            "status.podIPs",
            "not enforced: no IP yet",
        );
    }

    #[test]
    fn pod_ip_fallback_and_default_namespace() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {podIP: 198.18.0.9}\n";
        let loaded = ok(&[], &[("p.yaml", text)]);
        let e = &loaded.model.inventory.endpoints[0];
        assert_eq!(e.id, ObjectName::new("default", "a"));
        assert_eq!(
            *e.ips,
            vec!["198.18.0.9".parse::<std::net::IpAddr>().unwrap()]
        );
        let w = loaded
            .warnings
            .iter()
            .find(|w| w.message.contains("using \"default\""))
            .expect("default namespace warning");
        check(
            w,
            "p.yaml",
            (3, 11),
            "Pod default/a",
            "metadata.namespace",
            "as kubectl apply does",
        );
    }

    #[test]
    fn fields_read_from_kubernetes_objects_must_have_the_right_shape() {
        let text = "apiVersion: v1
kind: Pod
metadata:
  name: a
  namespace: web
  labels: [app]
spec:
  hostNetwork: \"yes\"
  containers:
    - ports:
        - {name: http, containerPort: \"8080\"}
        - {name: HTTP, containerPort: 80, protocol: tcp}
status:
  podIPs:
    - ip: 198.18.0.300
";
        let errs = errors(&[], &[("p.yaml", text)]);
        assert_eq!(errs.len(), 6, "{}", show(&errs));
        const POD: &str = "Pod web/a";
        check(
            &errs[0],
            "p.yaml",
            (6, 11),
            POD,
            "metadata.labels",
            "expected a mapping, found a list",
        );
        check(
            &errs[1],
            "p.yaml",
            (8, 16),
            POD,
            "spec.hostNetwork",
            "expected a boolean",
        );
        check(
            &errs[2],
            "p.yaml",
            (11, 39),
            POD,
            "spec.containers[0].ports[0].containerPort",
            "expected an integer",
        );
        check(
            &errs[3],
            "p.yaml",
            (12, 18),
            POD,
            "spec.containers[0].ports[1].name",
            "invalid port name \"HTTP\"",
        );
        check(
            &errs[4],
            "p.yaml",
            (12, 53),
            POD,
            "spec.containers[0].ports[1].protocol",
            "unknown protocol \"tcp\"",
        );
        check(
            &errs[5],
            "p.yaml",
            (15, 11),
            POD,
            "status.podIPs[0].ip",
            "invalid IP address \"198.18.0.300\"",
        );
    }

    #[test]
    fn duplicate_named_ports_within_one_endpoint() {
        let text = "apiVersion: v1
kind: Pod
metadata: {name: a, namespace: web}
spec:
  containers:
    - ports: [{name: http, containerPort: 80}]
    - ports: [{name: http, containerPort: 8080, protocol: UDP}]
status: {podIP: 198.18.0.1}
";
        let d = one_error(&[], &[("p.yaml", text)]);
        check(
            &d,
            "p.yaml",
            (7, 22),
            "Pod web/a",
            "spec.containers[1].ports[0].name",
            "port name \"http\" is used twice",
        );
        assert!(d.message.contains("first at line 6"), "{d}");
    }

    const NATIVE: &str = "apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: payments, name: ledger-vm, labels: {app: ledger}}
ips: [198.18.3.10, \"2001:db8:3::10\", 198.18.3.10]
ports:
  - {name: http, port: 8080}
  - {name: dns, port: 53, protocol: UDP}
";

    #[test]
    fn native_endpoint() {
        let loaded = ok(&[], &[("vm.yaml", NATIVE)]);
        let e = &loaded.model.inventory.endpoints[0];
        assert_eq!(e.id, ObjectName::new("payments", "ledger-vm"));
        assert_eq!(e.kind, EndpointKind::Native);
        assert_eq!(&e.labels["app"], "ledger");
        assert_eq!(
            *e.ips,
            vec![
                "198.18.3.10".parse::<std::net::IpAddr>().unwrap(),
                "2001:db8:3::10".parse().unwrap()
            ]
        );
        assert_eq!(e.named_port("dns", Protocol::Udp), Some(53));
        assert_eq!(e.named_port("dns", Protocol::Tcp), None);
        assert_eq!(e.named_port("http", Protocol::Tcp), Some(8080));
    }

    #[test]
    fn an_object_with_many_labels_in_reverse_order_is_decoded_sorted() {
        // 100,000 labels written in descending order: quadratic before (each inserted
        // at the front of the sorted labels), hours for a million.
        let n = 100_000;
        let mut text = String::from(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  namespace: web\n  labels:\n",
        );
        for i in (0..n).rev() {
            text.push_str(&format!("    k{i:06}: v{i}\n"));
        }
        text.push_str("status:\n  podIP: 198.18.0.1\n");
        let loaded = ok(&[], &[("inv.yaml", &text)]);
        let labels = &loaded.model.inventory.endpoints[0].labels;
        assert_eq!(labels.len(), n);
        assert!(labels.keys().zip(labels.keys().skip(1)).all(|(a, b)| a < b));
        assert_eq!(&labels["k000042"], "v42");
    }

    #[test]
    fn native_endpoint_is_strict() {
        let text = "apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: payments, name: vm, uid: x}
ips: []
ports:
  - {name: http, port: 0, proto: TCP}
  - {port: 80}
zone: a
";
        let errs = errors(&[], &[("vm.yaml", text)]);
        assert_eq!(errs.len(), 6, "{}", show(&errs));
        const VM: &str = "Endpoint payments/vm";
        check(
            &errs[0],
            "vm.yaml",
            (3, 43),
            VM,
            "metadata.uid",
            "unknown field \"uid\"; allowed here: name, namespace, labels",
        );
        check(
            &errs[1],
            "vm.yaml",
            (4, 6),
            VM,
            "ips",
            "at least one IP address is required",
        );
        check(
            &errs[2],
            "vm.yaml",
            (6, 24),
            VM,
            "ports[0].port",
            "out of range",
        );
        check(
            &errs[3],
            "vm.yaml",
            (6, 27),
            VM,
            "ports[0].proto",
            "unknown field \"proto\"",
        );
        check(
            &errs[4],
            "vm.yaml",
            (7, 5),
            VM,
            "ports[1].name",
            "required field \"name\" is missing",
        );
        check(
            &errs[5],
            "vm.yaml",
            (8, 1),
            VM,
            "zone",
            "unknown field \"zone\"",
        );
    }

    #[test]
    fn invalid_ips_of_a_native_endpoint() {
        let text = NATIVE.replace("198.18.3.10, ", "198.18.3.0/24, ");
        let d = one_error(&[], &[("vm.yaml", &text)]);
        check(
            &d,
            "vm.yaml",
            (4, 7),
            "Endpoint payments/ledger-vm",
            "ips[0]",
            "invalid IP address \"198.18.3.0/24\"",
        );
    }

    #[test]
    fn endpoint_addresses_no_connection_can_use_are_rejected_with_the_reason() {
        let text = "apiVersion: netpol/v1
kind: Endpoint
metadata: {namespace: payments, name: odd}
ips:
  - \"::ffff:198.18.0.20\"
  - 0.0.0.0
  - \"::\"
  - 255.255.255.255
  - 224.0.0.1
  - \"ff02::1\"
  - 127.0.0.1
  - \"::1\"
  - 198.18.0.21
";
        let errs = errors(&[], &[("vm.yaml", text)]);
        assert_eq!(errs.len(), 8, "{}", show(&errs));
        let reasons = [
            "IPv4-mapped IPv6 address; IPv4 traffic never carries it: use the IPv4 form 198.18.0.20",
            "unspecified address",
            "unspecified address",
            "broadcast address",
            "multicast address",
            "multicast address",
            "loopback address",
            "loopback address",
        ];
        for (i, (d, reason)) in errs.iter().zip(reasons).enumerate() {
            check(
                d,
                "vm.yaml",
                (5 + i, 5),
                "Endpoint payments/odd",
                &format!("ips[{i}]"),
                reason,
            );
        }
        // Pods too, in podIPs and in the older podIP.
        let text = [
            pod(
                "a",
                "{}",
                "{phase: Running, podIPs: [{ip: \"::ffff:198.18.0.22\"}]}",
            ),
            pod("b", "{}", "{phase: Running, podIP: 127.0.0.2}"),
        ]
        .concat();
        let errs = errors(&[], &[("p.yaml", &text)]);
        assert_eq!(errs.len(), 2, "{}", show(&errs));
        check(
            &errs[0],
            "p.yaml",
            (6, 40),
            "Pod web/a",
            "status.podIPs[0].ip",
            "use the IPv4 form 198.18.0.22",
        );
        check(
            &errs[1],
            "p.yaml",
            (12, 33),
            "Pod web/b",
            "status.podIP",
            "loopback address",
        );
    }

    #[test]
    fn wrong_api_versions_and_kinds() {
        let text = "apiVersion: v2
kind: Pod
metadata: {name: a, namespace: web}
---
apiVersion: netpol/v1
kind: Namespace
metadata: {name: web}
---
apiVersion: v1
kind: Endpoint
metadata: {name: b, namespace: web}
";
        let errs = errors(&[], &[("x.yaml", text)]);
        assert_eq!(errs.len(), 3, "{}", show(&errs));
        check(
            &errs[0],
            "x.yaml",
            (1, 13),
            "Pod web/a",
            "apiVersion",
            "expected v1",
        );
        check(
            &errs[1],
            "x.yaml",
            (6, 7),
            "Namespace web",
            "kind",
            "its only kind is Endpoint",
        );
        check(
            &errs[2],
            "x.yaml",
            (9, 13),
            "Endpoint web/b",
            "apiVersion",
            "expected netpol/v1",
        );
    }

    #[test]
    fn a_hostile_phase_is_quoted_escaped_and_cut_in_the_warning() {
        let phase = format!("\\e[2J\\nnetpold: applied\\u202E{}", "p".repeat(100_000));
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: a, namespace: web}}\n\
             status: {{phase: \"{phase}\"}}\n"
        );
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n";
        let loaded = ok(&[], &[("ns.yaml", ns), ("pods.yaml", &text)]);
        let shown = show(&loaded.warnings);
        assert!(shown.len() < 1000, "{} bytes: {shown}", shown.len());
        assert!(
            shown.contains(r#"no IP yet (phase "\u{1b}[2J\nnetpold: applied\u{202e}ppp"#),
            "{shown}"
        );
        assert!(shown.contains("… (100024 bytes))"), "{shown}");
    }

    #[test]
    fn a_long_label_key_is_cut_in_the_field_path() {
        let key = "k".repeat(100_000);
        let path = super::super::labels::key_path("metadata.labels", &key);
        assert_eq!(
            path,
            format!("metadata.labels[\"{}\"… (100000 bytes)]", "k".repeat(64))
        );
        assert_eq!(
            super::super::labels::key_path("metadata.labels", "app"),
            "metadata.labels.app"
        );
    }

    #[test]
    fn an_unknown_key_is_quoted_escaped_and_cut_in_the_field_path() {
        let key = format!("\\e[2J{}", "u".repeat(100_000));
        let text = format!(
            "apiVersion: netpol/v1\nkind: Endpoint\n\
             metadata: {{namespace: web, name: a, \"{key}\": 1}}\nips: [198.18.0.1]\n"
        );
        let e = one_error(&[], &[("e.yaml", &text)]);
        let field = e.field.clone().unwrap();
        assert_eq!(
            field,
            format!(
                "metadata[\"\\u{{1b}}[2J{}\"… (100004 bytes)]",
                "u".repeat(60)
            )
        );
    }
}
