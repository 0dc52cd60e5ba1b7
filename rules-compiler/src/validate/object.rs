//! What every object has: a document that is a mapping, `apiVersion` and `kind`,
//! `kind: List` unwrapped into its items, and `metadata`.

use super::decode::{self, index, Ctx, Map};
use super::labels;
use super::names;
use crate::diag::{clip, quote};
use crate::load::{Node, Value};
use crate::model::Labels;

/// One object of a document (the document itself, or an item of a `List`).
pub(super) struct Object<'n> {
    /// Its top-level mapping.
    pub map: Map<'n>,
    /// `kind`.
    pub kind: &'n str,
    /// `apiVersion`.
    pub api_version: &'n str,
}

/// The objects of a document: the root object, or each item of a `kind: List`.
/// Documents and items that are not objects are reported and left out.
pub(super) fn objects<'n>(ctx: &mut Ctx<'_>, root: &'n Node) -> Vec<Object<'n>> {
    let mut out = Vec::new();
    let Some(obj) = object(ctx, root, "") else {
        return out;
    };
    if obj.kind != "List" {
        out.push(obj);
        return out;
    }
    ctx.object = Some("List".to_string());
    let m = &obj.map;
    m.strict(ctx, &["apiVersion", "kind", "items", "metadata"]);
    if obj.api_version != "v1" {
        let node = m.get("apiVersion").unwrap_or(m.node);
        ctx.error(
            node,
            "apiVersion",
            format!(
                "unsupported apiVersion {} for kind List; expected v1",
                quote(obj.api_version)
            ),
        );
    }
    // `kubectl … -o yaml` writes `items: []` for none; a List without its items is what
    // a file cut short after `items:` looks like, and taking it as empty would drop them.
    let items = m
        .required(ctx, "items", "write `items: []` for a List with none")
        .and_then(|node| decode::seq(ctx, node, "items"))
        .unwrap_or(&[]);
    out.extend(
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| list_item(ctx, item, i)),
    );
    out
}

/// Item `i` of a List's `items`, when it is an object and not a List (else reported).
pub(super) fn list_item<'n>(ctx: &mut Ctx<'_>, item: &'n Node, i: usize) -> Option<Object<'n>> {
    ctx.object = Some("List".to_string());
    let path = index("items", i);
    let item = object(ctx, item, &path)?;
    if item.kind == "List" {
        ctx.error(item.map.node, &path, "a List cannot contain another List");
        return None;
    }
    Some(item)
}

/// A mapping with string `kind` and `apiVersion`; `path` locates it for messages.
fn object<'n>(ctx: &mut Ctx<'_>, node: &'n Node, path: &str) -> Option<Object<'n>> {
    if !matches!(node.value, Value::Map(_)) {
        ctx.error(
            node,
            path,
            format!(
                "expected a Kubernetes object (a mapping with apiVersion and kind), found {}",
                node.value.describe()
            ),
        );
        return None;
    }
    let mut map = decode::map(ctx, node, path)?;
    let kind = map
        .required(ctx, "kind", "e.g. kind: NetworkPolicy")
        .and_then(|n| decode::string(ctx, n, &map.field("kind")));
    // The hint names the group of the kind at hand: core kinds are plain `v1`.
    let hint = match kind {
        Some("Namespace" | "Pod") => "e.g. apiVersion: v1",
        _ => "e.g. apiVersion: networking.k8s.io/v1",
    };
    let api_version = map
        .required(ctx, "apiVersion", hint)
        .and_then(|n| decode::string(ctx, n, &map.field("apiVersion")));
    let (kind, api_version) = (kind?, api_version?);
    // Decoders of the object itself name fields from its root.
    map.path = String::new();
    Some(Object {
        map,
        kind,
        api_version,
    })
}

/// Which `metadata` fields are accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum MetaFields {
    /// What kubectl prints for any object; all but name, namespace and labels ignored.
    Kubernetes,
    /// Only name, namespace and labels (the native form).
    Native,
    /// Anything (lenient decoding of kubectl dumps).
    Lenient,
}

/// Whether the kind lives in a namespace.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Pods, NetworkPolicies, native endpoints.
    Namespaced,
    /// Namespaces.
    Cluster,
    /// Cluster-scoped kinds whose names are DNS subdomains (ClusterNetworkPolicy).
    ClusterSubdomain,
}

const KUBERNETES_META: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "generateName",
    "selfLink",
];

/// The namespace used when an object names none, as `kubectl apply` without `-n`.
pub(super) const DEFAULT_NAMESPACE: &str = "default";

/// An object's identity and labels.
pub(super) struct Meta<'n> {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`default` when missing); empty for cluster-scoped kinds.
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: Labels,
    /// The node of `metadata.name`, for messages about the name.
    pub name_node: &'n Node,
    /// `metadata` itself, for fields only one kind reads (a policy's annotations).
    pub map: Map<'n>,
}

/// `Kind namespace/name` (or `Kind name` for cluster-scoped kinds), from whatever the
/// metadata holds, for messages written before the metadata is checked.
pub(super) fn label(kind: &str, obj: &Map<'_>, scope: Scope) -> String {
    let meta = obj.get("metadata").and_then(|n| match &n.value {
        Value::Map(pairs) => Some(pairs),
        _ => None,
    });
    let field = |key: &str| {
        meta.and_then(|pairs| {
            pairs.iter().find_map(|(k, v)| match (&k.value, &v.value) {
                (Value::Str(k), Value::Str(v)) if k == key => Some(v.as_str()),
                _ => None,
            })
        })
    };
    // Not validated yet: cut and escaped, as every diagnostic of the object repeats it.
    let (kind, name) = (clip(kind), clip(field("name").unwrap_or("<unnamed>")));
    match scope {
        Scope::Cluster | Scope::ClusterSubdomain => format!("{kind} {name}"),
        Scope::Namespaced => {
            let ns = clip(field("namespace").unwrap_or(DEFAULT_NAMESPACE));
            format!("{kind} {ns}/{name}")
        }
    }
}

/// Decodes `metadata`. `None` when the object cannot be identified (no valid name or
/// namespace); the errors are reported.
pub(super) fn metadata<'n>(
    ctx: &mut Ctx<'_>,
    obj: &Map<'n>,
    fields: MetaFields,
    scope: Scope,
) -> Option<Meta<'n>> {
    let node = obj.required(ctx, "metadata", "it holds the object's name")?;
    let m = decode::map(ctx, node, "metadata")?;
    match fields {
        MetaFields::Kubernetes => m.strict(ctx, KUBERNETES_META),
        MetaFields::Native => m.strict(ctx, &["name", "namespace", "labels"]),
        MetaFields::Lenient => {}
    }
    let labels = labels::labels(ctx, m.get("labels"), "metadata.labels");

    let name = m.required(ctx, "name", "").and_then(|n| {
        let s = decode::string(ctx, n, "metadata.name")?;
        let check = match scope {
            Scope::Namespaced | Scope::ClusterSubdomain => names::dns_subdomain(s),
            Scope::Cluster => names::dns_label(s),
        };
        match check {
            Ok(()) => Some((s, n)),
            Err(why) => {
                ctx.error(
                    n,
                    "metadata.name",
                    format!("invalid name {}: {why}", quote(s)),
                );
                None
            }
        }
    });

    let namespace = match scope {
        Scope::Cluster | Scope::ClusterSubdomain => Some(String::new()),
        Scope::Namespaced => match m.get("namespace") {
            None => {
                ctx.warning(
                    node,
                    "metadata.namespace",
                    format!(
                        "no namespace given: using {DEFAULT_NAMESPACE:?}, as kubectl apply \
                         does without -n"
                    ),
                );
                Some(DEFAULT_NAMESPACE.to_string())
            }
            Some(n) => decode::string(ctx, n, "metadata.namespace").and_then(|s| {
                match names::dns_label(s) {
                    Ok(()) => Some(s.to_string()),
                    Err(why) => {
                        ctx.error(
                            n,
                            "metadata.namespace",
                            format!("invalid namespace {}: {why}", quote(s)),
                        );
                        None
                    }
                }
            }),
        },
    };
    let (name, name_node) = name?;
    let namespace = namespace?;
    Some(Meta {
        name: name.to_string(),
        namespace,
        labels,
        name_node,
        map: m,
    })
}
