//! Inventory objects: Kubernetes `Namespace` and `Pod` (v1) as kubectl prints them,
//! decoded leniently (fields we do not read are ignored, but the fields we read must
//! have the right shape), and the native `Endpoint` form, decoded strictly:
//!
//! ```yaml
//! apiVersion: netpol/v1
//! kind: Endpoint
//! metadata: {namespace: payments, name: ledger-vm, labels: {app: ledger}}
//! ips: [198.18.3.10, "2001:db8:3::10"]       # at least one, v4 and/or v6
//! ports:                                      # named ports, optional
//!   - {name: http, port: 8080}                # protocol defaults to TCP
//!   - {name: dns, port: 53, protocol: UDP}
//! ```
//!
//! It is for what is not a pod (a VM, a bare-metal service): the same fields a pod has
//! for policies, nothing else. Other kinds of a kubectl dump (Service, Deployment, …)
//! are counted and skipped.
//!
//! Pods that cannot be enforced by address are not endpoints; they are listed as skipped
//! with the reason, as Kubernetes implementations do: `hostNetwork` pods (their address
//! is the node's), finished pods (phase Succeeded or Failed: their IP may be reused) and
//! pods without an IP yet.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::decode::{self, index, Ctx, Map};
use super::names;
use super::object::{self, MetaFields, Object, Scope};
use crate::load::Node;
use crate::model::{
    Endpoint, EndpointKind, NamedPort, Namespace, ObjectName, Protocol, Skipped, Source,
    NAMESPACE_NAME_LABEL,
};

/// The apiVersion of the native form.
pub(super) const NATIVE_API_VERSION: &str = "netpol/v1";

/// An address of an endpoint, with where it was written (for conflict messages).
pub(super) struct LocatedIp {
    pub ip: IpAddr,
    pub source: Source,
    pub field: String,
}

/// What one inventory object turned into.
pub(super) enum Decoded {
    /// A declared namespace.
    Namespace(Namespace),
    /// A live endpoint, with its object label and where each address was written.
    Endpoint {
        endpoint: Endpoint,
        object: String,
        ips: Vec<LocatedIp>,
    },
    /// A pod that is not enforced (it still owns its name).
    Skipped { skipped: Skipped, id: ObjectName },
    /// An object of a kind the inventory does not use.
    Ignored(String),
}

/// Decodes one inventory object; `None` when it is unusable (the errors are reported).
pub(super) fn decode(ctx: &mut Ctx<'_>, obj: &Object<'_>) -> Option<Decoded> {
    let m = &obj.map;
    let wrong_version = |ctx: &mut Ctx<'_>, expected: &str| {
        ctx.error(
            m.get("apiVersion").unwrap_or(m.node),
            "apiVersion",
            format!(
                "unsupported apiVersion {:?} for kind {}; expected {expected}",
                obj.api_version, obj.kind
            ),
        );
    };
    match (obj.kind, obj.api_version) {
        ("Namespace", "v1") => namespace(ctx, m).map(Decoded::Namespace),
        ("Pod", "v1") => pod(ctx, m),
        ("Endpoint", NATIVE_API_VERSION) => native(ctx, m),
        ("Namespace" | "Pod", _) => {
            ctx.object = Some(object::label(obj.kind, m, scope_of(obj.kind)));
            wrong_version(ctx, "v1");
            None
        }
        ("Endpoint", _) => {
            ctx.object = Some(object::label(obj.kind, m, Scope::Namespaced));
            wrong_version(ctx, NATIVE_API_VERSION);
            None
        }
        (kind, NATIVE_API_VERSION) => {
            ctx.object = Some(object::label(kind, m, Scope::Namespaced));
            ctx.error(
                m.get("kind").unwrap_or(m.node),
                "kind",
                format!(
                    "unknown kind {kind:?} for {NATIVE_API_VERSION}; its only kind is Endpoint \
                     (namespaces use the Kubernetes form: apiVersion v1, kind Namespace)"
                ),
            );
            None
        }
        (kind, _) => Some(Decoded::Ignored(kind.to_string())),
    }
}

fn scope_of(kind: &str) -> Scope {
    if kind == "Namespace" {
        Scope::Cluster
    } else {
        Scope::Namespaced
    }
}

fn namespace(ctx: &mut Ctx<'_>, m: &Map<'_>) -> Option<Namespace> {
    ctx.object = Some(object::label("Namespace", m, Scope::Cluster));
    let meta = object::metadata(ctx, m, MetaFields::Lenient, Scope::Cluster)?;
    let mut labels = meta.labels;
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
    Some(Namespace {
        name: meta.name,
        labels,
        implicit: false,
        source: ctx.source(m.node),
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
                push_ip(ctx, n, &item.field("ip"), &mut ips);
            }
        }
        if ips.is_empty() {
            if let Some(n) = status.get("podIP") {
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
            n,
            "spec.hostNetwork",
            "hostNetwork pod: its address is the node's: policies neither isolate it nor match \
             it as a peer"
                .to_string(),
        ))
    } else if let Some((p @ ("Succeeded" | "Failed"), n)) = phase {
        Some((
            n,
            "status.phase",
            format!("finished (phase {p}): its IP may be reused"),
        ))
    } else if ips.is_empty() {
        let phase = phase.map_or(String::new(), |(p, _)| format!(" (phase {p})"));
        Some((
            status.as_ref().map_or(m.node, |s| s.node),
            "status.podIPs",
            format!("no IP yet{phase}"),
        ))
    } else {
        None
    };
    if let Some((node, field, reason)) = skip {
        ctx.warning(node, field, format!("not enforced: {reason}"));
        return Some(Decoded::Skipped {
            skipped: Skipped {
                object: label,
                reason,
                source,
            },
            id,
        });
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
            ips: addrs,
            ports,
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
    let number_field = p.field(number_key);
    let port = p
        .required(ctx, number_key, "")
        .and_then(|n| decode::integer(ctx, n, &number_field).map(|i| (i, n)))
        .and_then(|(i, n)| match u16::try_from(i).ok().filter(|p| *p >= 1) {
            Some(p) => Some(p),
            None => {
                ctx.error(
                    n,
                    &number_field,
                    format!("port {i} is out of range: expected 1-65535"),
                );
                None
            }
        });
    let protocol = match p.string(ctx, "protocol") {
        None => Some(Protocol::Tcp).filter(|_| p.get("protocol").is_none()),
        Some((s, n)) => {
            let proto = Protocol::from_k8s(s);
            if proto.is_none() {
                ctx.error(
                    n,
                    &p.field("protocol"),
                    format!("unknown protocol {s:?}; expected TCP, UDP or SCTP (upper case)"),
                );
            }
            proto
        }
    };
    let named = NamedPort {
        name: name.to_string(),
        port: port?,
        protocol: protocol?,
    };
    ok.then(|| (named, ctx.source(name_node), p.field("name")))
}

/// Sorted by name; a name used twice is an error at its second use.
fn unique_ports(ctx: &mut Ctx<'_>, ports: Vec<(NamedPort, Source, String)>) -> Vec<NamedPort> {
    let mut seen: BTreeMap<String, (NamedPort, Source)> = BTreeMap::new();
    for (port, source, field) in ports {
        if let Some((_, first)) = seen.get(&port.name) {
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

fn push_ip(ctx: &mut Ctx<'_>, node: &Node, field: &str, out: &mut Vec<LocatedIp>) {
    let Some(s) = decode::string(ctx, node, field) else {
        return;
    };
    match s.parse::<IpAddr>() {
        Ok(ip) => out.push(LocatedIp {
            ip,
            source: ctx.source(node),
            field: field.to_string(),
        }),
        Err(_) => ctx.error(
            node,
            field,
            format!(
                "invalid IP address {s:?}: expected an IPv4 or IPv6 address, without prefix length"
            ),
        ),
    }
}
