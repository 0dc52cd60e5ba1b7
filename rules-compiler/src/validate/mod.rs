//! Validate: turn loaded documents into the checked [`crate::model::Model`], collecting
//! every diagnostic (file, line, column, object, field path) before failing.
//!
//! Must not decide what traffic is allowed; it only decides what input is acceptable.
//!
//! The YAML trees from [`crate::load::parse`] are decoded by hand, not through serde, so
//! that every problem names its place and one bad field does not hide the next: all
//! errors of all documents of all files come out of one run.
//!
//! - Policy inputs hold `NetworkPolicy` objects (`networking.k8s.io/v1`) or `kind: List`s
//!   of them, decoded strictly ([`policy`]).
//! - Inventory inputs hold `Namespace` and `Pod` objects (v1) as kubectl prints them,
//!   the native `Endpoint` form, and `List`s of these; other kinds are counted in
//!   [`crate::model::Inventory::ignored_kinds`] ([`inventory`]).
//! - Then the checks across objects: no Namespace, endpoint (Pod or Endpoint) or policy
//!   declared twice, no address claimed by two live endpoints. A namespace that an
//!   endpoint or a policy lives in but that no Namespace object declares is assumed, with
//!   only its `kubernetes.io/metadata.name` label, and a warning.
//!
//! Decisions where Kubernetes leaves room: a CIDR with host bits set is masked with a
//! warning (see [`cidr`]); an object without `metadata.namespace` is in `default` with a
//! warning, as `kubectl apply` without `-n` would put it; a label value or name given as
//! a number or boolean (`version: 1.0`) is an error asking to quote it, as the API
//! server refuses it too.

mod cidr;
mod decode;
mod inventory;
mod labels;
mod names;
mod object;
mod policy;

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::diag::{Diagnostic, Rejected};
use crate::load::{self, Input};
use crate::model::{
    Endpoint, Inventory, Model, Namespace, ObjectName, Policy, Source, NAMESPACE_NAME_LABEL,
};
use crate::Loaded;
use decode::Ctx;
use inventory::{Decoded, LocatedIp};

/// Validates policy and inventory inputs into a model. On any error, every diagnostic
/// (errors and warnings, in the order found) is in the `Err`; otherwise the warnings come
/// with the model.
pub fn validate(policies: &[Input], inventory: &[Input]) -> Result<Loaded, Rejected> {
    let mut diags = Vec::new();
    let mut found = Found::default();

    for input in policies {
        let (docs, parse_diags) = load::parse(input);
        diags.extend(parse_diags);
        for doc in &docs {
            let mut ctx = Ctx::new(doc.file, &mut diags);
            for obj in object::objects(&mut ctx, &doc.root) {
                if obj.kind == "NetworkPolicy" {
                    if let Some(p) = policy::decode(&mut ctx, &obj) {
                        found.policies.push(p);
                    }
                } else {
                    ctx.object = Some(obj.kind.to_string());
                    let at = obj.map.get("kind").unwrap_or(obj.map.node);
                    ctx.error(
                        at,
                        "kind",
                        format!(
                            "expected NetworkPolicy (or a List of them) in a policy input, found \
                             {}{}",
                            obj.kind,
                            if matches!(obj.kind, "Namespace" | "Pod" | "Endpoint") {
                                "; it belongs in the inventory"
                            } else {
                                ""
                            }
                        ),
                    );
                }
            }
        }
    }

    for input in inventory {
        let (docs, parse_diags) = load::parse(input);
        diags.extend(parse_diags);
        for doc in &docs {
            let mut ctx = Ctx::new(doc.file, &mut diags);
            for obj in object::objects(&mut ctx, &doc.root) {
                if let Some(d) = inventory::decode(&mut ctx, &obj) {
                    found.inventory.push(d);
                }
            }
        }
    }

    let model = assemble(found, &mut diags);
    sort_by_place(&mut diags, policies.iter().chain(inventory));
    if diags.iter().any(Diagnostic::is_error) {
        Err(Rejected(diags))
    } else {
        Ok(Loaded {
            model,
            warnings: diags,
        })
    }
}

/// Orders diagnostics as an operator reads them: by file (in the order the inputs were
/// given), then line and column. Stable, so diagnostics at one place keep their order.
fn sort_by_place<'a>(diags: &mut [Diagnostic], inputs: impl Iterator<Item = &'a Input>) {
    let mut rank: BTreeMap<&std::path::Path, usize> = BTreeMap::new();
    for (i, input) in inputs.enumerate() {
        rank.entry(input.path.as_path()).or_insert(i);
    }
    diags.sort_by_cached_key(|d| {
        let file = d
            .file
            .as_deref()
            .and_then(|f| rank.get(f).copied())
            .unwrap_or(usize::MAX);
        (file, d.line, d.column)
    });
}

/// Everything decoded, in input order, before the checks across objects.
#[derive(Default)]
struct Found {
    policies: Vec<Policy>,
    inventory: Vec<Decoded>,
}

fn assemble(found: Found, diags: &mut Vec<Diagnostic>) -> Model {
    let mut inv = Inventory::default();
    // Names of endpoints, live or skipped: both own their name.
    let mut names: BTreeMap<ObjectName, (String, Source)> = BTreeMap::new();
    let mut owners: BTreeMap<IpAddr, (String, Source)> = BTreeMap::new();
    let mut endpoints: Vec<Endpoint> = Vec::new();

    for d in found.inventory {
        match d {
            Decoded::Ignored(kind) => *inv.ignored_kinds.entry(kind).or_default() += 1,
            Decoded::Namespace(ns) => {
                if let Some(first) = inv.namespaces.get(&ns.name) {
                    diags.push(
                        error_at(
                            &ns.source,
                            format!("Namespace {}", ns.name),
                            "metadata.name",
                        )
                        .message_text(format!(
                            "duplicate Namespace {:?}: also declared at {}",
                            ns.name, first.source
                        )),
                    );
                } else {
                    inv.namespaces.insert(ns.name.clone(), ns);
                }
            }
            Decoded::Skipped { skipped, id } => {
                if claim_name(&mut names, &id, &skipped.object, &skipped.source, diags) {
                    inv.skipped.push(skipped);
                }
            }
            Decoded::Endpoint {
                endpoint,
                object,
                ips,
            } => {
                if !claim_name(&mut names, &endpoint.id, &object, &endpoint.source, diags) {
                    continue;
                }
                claim_ips(&mut owners, &object, &ips, diags);
                endpoints.push(endpoint);
            }
        }
    }

    let mut policies: Vec<Policy> = Vec::new();
    let mut policy_names: BTreeMap<ObjectName, Source> = BTreeMap::new();
    for p in found.policies {
        if let Some(first) = policy_names.get(&p.id) {
            diags.push(
                error_at(
                    &p.source,
                    format!("NetworkPolicy {}", p.id),
                    "metadata.name",
                )
                .message_text(format!(
                    "duplicate NetworkPolicy {}: also declared at {first}",
                    p.id
                )),
            );
            continue;
        }
        policy_names.insert(p.id.clone(), p.source.clone());
        policies.push(p);
    }

    // Namespaces in use but not declared: assumed, once each, with a warning at the
    // first object in them.
    let users = endpoints
        .iter()
        .map(|e| (&e.id, endpoint_label(e), &e.source))
        .chain(
            policies
                .iter()
                .map(|p| (&p.id, format!("NetworkPolicy {}", p.id), &p.source)),
        );
    let mut implicit: BTreeMap<String, Namespace> = BTreeMap::new();
    for (id, object, source) in users {
        if inv.namespaces.contains_key(&id.namespace) || implicit.contains_key(&id.namespace) {
            continue;
        }
        diags.push(
            Diagnostic::warning(format!(
                "namespace {:?} is not declared by a Namespace object: assuming it exists, with \
                 only the label {NAMESPACE_NAME_LABEL}={}",
                id.namespace, id.namespace
            ))
            .with_source(source)
            .object(object)
            .field("metadata.namespace"),
        );
        implicit.insert(
            id.namespace.clone(),
            Namespace {
                name: id.namespace.clone(),
                labels: [(NAMESPACE_NAME_LABEL.to_string(), id.namespace.clone())].into(),
                implicit: true,
                source: source.clone(),
            },
        );
    }
    inv.namespaces.extend(implicit);

    endpoints.sort_by(|a, b| a.id.cmp(&b.id));
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    inv.endpoints = endpoints;
    Model {
        inventory: inv,
        policies,
    }
}

fn endpoint_label(e: &Endpoint) -> String {
    let kind = match e.kind {
        crate::model::EndpointKind::Pod => "Pod",
        crate::model::EndpointKind::Native => "Endpoint",
    };
    format!("{kind} {}", e.id)
}

/// Records an endpoint's name; false (and an error) when another object has it.
fn claim_name(
    names: &mut BTreeMap<ObjectName, (String, Source)>,
    id: &ObjectName,
    object: &str,
    source: &Source,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    if let Some((first_object, first)) = names.get(id) {
        diags.push(
            error_at(source, object.to_string(), "metadata.name").message_text(format!(
                "duplicate endpoint {id}: {first_object} is also declared at {first}"
            )),
        );
        return false;
    }
    names.insert(id.clone(), (object.to_string(), source.clone()));
    true
}

/// Records a live endpoint's addresses; an error for each already owned by another.
fn claim_ips(
    owners: &mut BTreeMap<IpAddr, (String, Source)>,
    object: &str,
    ips: &[LocatedIp],
    diags: &mut Vec<Diagnostic>,
) {
    for located in ips {
        match owners.get(&located.ip) {
            Some((owner, _)) if owner == object => {}
            Some((owner, first)) => diags.push(
                error_at(&located.source, object.to_string(), &located.field)
                    .message_text(format!(
                    "IP {} is claimed by two live endpoints: {owner} (at {first}) and {object}; \
                         an address belongs to one endpoint",
                    located.ip
                )),
            ),
            None => {
                owners.insert(located.ip, (object.to_string(), located.source.clone()));
            }
        }
    }
}

fn error_at(source: &Source, object: String, field: &str) -> Diagnostic {
    Diagnostic::error(String::new())
        .with_source(source)
        .object(object)
        .field(field)
}

/// Small builders kept local: setting a diagnostic's place from a model [`Source`].
trait DiagnosticExt {
    fn with_source(self, source: &Source) -> Self;
    fn message_text(self, message: String) -> Self;
}

impl DiagnosticExt for Diagnostic {
    fn with_source(mut self, source: &Source) -> Self {
        self.file = source.file.clone();
        self.line = source.line;
        self.column = source.column;
        self
    }

    fn message_text(mut self, message: String) -> Self {
        self.message = message;
        self
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers for the validation tests: inline YAML inputs and diagnostic checks.

    use super::*;

    /// Inputs from (path, text) pairs.
    pub fn inputs(files: &[(&str, &str)]) -> Vec<Input> {
        files
            .iter()
            .map(|(p, t)| Input {
                path: p.into(),
                text: t.to_string(),
            })
            .collect()
    }

    /// Validates inline policy and inventory files.
    pub fn run(policies: &[(&str, &str)], inventory: &[(&str, &str)]) -> Result<Loaded, Rejected> {
        validate(&inputs(policies), &inputs(inventory))
    }

    /// Expects success and returns it.
    pub fn ok(policies: &[(&str, &str)], inventory: &[(&str, &str)]) -> Loaded {
        match run(policies, inventory) {
            Ok(l) => l,
            Err(e) => panic!("expected success, got:\n{e}"),
        }
    }

    /// Expects rejection and returns the errors only.
    pub fn errors(policies: &[(&str, &str)], inventory: &[(&str, &str)]) -> Vec<Diagnostic> {
        match run(policies, inventory) {
            Ok(l) => panic!("expected errors, got a model; warnings: {:?}", l.warnings),
            Err(e) => e.errors().cloned().collect(),
        }
    }

    /// Expects exactly one error and returns it.
    pub fn one_error(policies: &[(&str, &str)], inventory: &[(&str, &str)]) -> Diagnostic {
        let errs = errors(policies, inventory);
        assert_eq!(errs.len(), 1, "expected one error, got:\n{}", show(&errs));
        errs.into_iter().next().unwrap()
    }

    /// One diagnostic per line, for assertion messages.
    pub fn show(diags: &[Diagnostic]) -> String {
        diags
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Checks every part of a diagnostic; `message` is a fragment it must contain.
    #[track_caller]
    pub fn check(
        d: &Diagnostic,
        file: &str,
        (line, column): (usize, usize),
        object: &str,
        field: &str,
        message: &str,
    ) {
        assert_eq!(
            d.file.as_deref(),
            Some(std::path::Path::new(file)),
            "file of {d}"
        );
        assert_eq!((d.line, d.column), (line, column), "position of {d}");
        assert_eq!(d.object.as_deref(), Some(object), "object of {d}");
        assert_eq!(
            d.field.as_deref(),
            (!field.is_empty()).then_some(field),
            "field of {d}"
        );
        assert!(
            d.message.contains(message),
            "message of {d} lacks {message:?}"
        );
    }
}
