//! Validate: turn loaded documents into the checked [`crate::model::Model`], collecting
//! every diagnostic (file, line, column, object, field path) before failing.
//!
//! Must not decide what traffic is allowed; it only decides what input is acceptable.
//!
//! Beside the model it fills [`crate::spans::Spans`], where each policy's fields were
//! written and which Namespace objects lacked `kubernetes.io/metadata.name`, for `lint`.
//!
//! The YAML trees from [`crate::load::parse`] are decoded by hand, not through serde, so
//! that every problem names its place and one bad field does not hide the next: all
//! errors of all documents of all files come out of one run, sorted by file (in the
//! order given) and position. A diagnostic displays as
//! `file:line:column: error: Kind namespace/name: field.path: message`.
//!
//! Files of 1 MiB or more are cut at document boundaries into pieces that are parsed
//! and decoded on several threads (`decode_inputs`); the results are put back in input
//! order, so objects, diagnostics and limits come out as one thread would give them.
//! The checks across objects of a big input run on two threads (`assemble`): the
//! inventory's claims on one, the policies and the copies of what the decode cache
//! lends on the other.
//!
//! # Policy inputs
//!
//! `NetworkPolicy` objects (`networking.k8s.io/v1`) or `kind: List` (v1) of them, decoded
//! strictly, as the API server does with strict field validation: an unknown field at
//! any level is an error naming the allowed ones. The metadata fields kubectl prints are
//! accepted, and all but `name`, `namespace` and `labels` ignored; a top-level `status`
//! is ignored. Without `policyTypes`, a policy has `Ingress`, plus `Egress` when
//! `egress` holds at least one rule: that is Kubernetes' defaulting code, so
//! `egress: []` alone does not isolate egress (a warning says so). Rules of a direction
//! that `policyTypes` leaves out are dropped with a warning, as Kubernetes ignores them.
//!
//! `ClusterNetworkPolicy` objects (`policy.networking.k8s.io/v1alpha2`) in the same
//! inputs are decoded strictly by `cluster.rs` into
//! [`crate::model::Model::cluster_policies`]. Not enforced yet: [`crate::load_model`]
//! refuses a model holding one; [`validate`] itself accepts it.
//!
//! # Inventory inputs
//!
//! `Namespace`, `Pod` and `Node` (v1) as kubectl prints them, decoded leniently (fields
//! that are not read are ignored; those read must have the right shape), `kind: List`
//! of them, and a native form for endpoints that are not pods (a VM, a bare-metal
//! service), decoded strictly:
//!
//! ```yaml
//! apiVersion: netpol/v1
//! kind: Endpoint
//! metadata: {namespace: payments, name: ledger-vm, labels: {app: ledger}}
//! ips: [198.18.3.10, "2001:db8:3::10"]   # at least one; v4 and/or v6
//! ports:                                  # named ports, optional
//!   - {name: http, port: 8080}            # protocol defaults to TCP
//!   - {name: dns, port: 53, protocol: UDP}
//! ```
//!
//! Other kinds (Service, Deployment, …) are counted in
//! [`crate::model::Inventory::ignored_kinds`]. Pods that cannot be enforced by address
//! are listed in [`crate::model::Inventory::skipped`] with a warning: `hostNetwork` pods,
//! finished pods (phase Succeeded or Failed) and pods without an IP yet. Every namespace
//! gets the label `kubernetes.io/metadata.name: <name>`.
//! A Node is kept (name, labels, `InternalIP` and `ExternalIP` addresses) for
//! ClusterNetworkPolicy `nodes` peers; it is not an endpoint.
//!
//! # Checks across objects
//!
//! No Namespace, endpoint (Pod or Endpoint) or policy declared twice, no address claimed
//! by two live endpoints. Two ClusterNetworkPolicies of one tier with one priority are
//! allowed, with a warning naming both (netpol then orders them by name). A namespace that an endpoint or a policy lives in but that no
//! Namespace object declares is assumed, with only its `kubernetes.io/metadata.name`
//! label, and a warning.
//!
//! # Decisions where Kubernetes leaves room
//!
//! - A CIDR (or `except`) with host bits set, such as `198.18.0.1/24`, is accepted and
//!   masked to its network, `198.18.0.0/24`, with a warning: the API server accepts it
//!   and implementations match the whole block, so rejecting it would fail policies a
//!   cluster runs. An address without a prefix length is an error: guessing `/32` could
//!   hide a typo.
//! - An IPv4-mapped `ipBlock` (`::ffff:198.18.0.0/112`) is an error naming the IPv4
//!   block: IPv4 traffic never carries such addresses, so it would never match. An
//!   endpoint address that no single endpoint's connection carries (unspecified,
//!   broadcast, multicast, loopback, IPv4-mapped) is an error with the reason.
//! - An object without `metadata.namespace` is in `default`, with a warning, as
//!   `kubectl apply` without `-n` would put it.
//! - A label value or name written as a number or boolean (`version: 1.0`) is an error
//!   asking to quote it, as the API server refuses it too; a port number written as a
//!   string (`port: "80"`) is an error asking to drop the quotes.
//! - Duplicate mapping keys are an error (the YAML spec forbids them; Kubernetes' strict
//!   decoding too).

mod cache;
mod cidr;
mod cluster;
mod decode;
mod inventory;
mod labels;
mod names;
mod object;
mod policy;

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::diag::{Diagnostic, Rejected};
use crate::load::json_list::{self, ListCut, ListItem};
use crate::load::{self, json, Input, Limits, Node, Value};
use crate::model::{
    ClusterPolicy, Endpoint, Inventory, Model, Namespace, ObjectName, Policy, Source, Tier,
    NAMESPACE_NAME_LABEL,
};
use crate::spans::{PolicySpans, Spans};
use crate::Loaded;
pub use cache::{CacheStats, DecodeCache};
use decode::Ctx;
use inventory::{Decoded, LocatedIp};

/// Validates policy and inventory inputs into a model. On any error, every diagnostic
/// (errors and warnings, in the order found) is in the `Err`; otherwise the warnings come
/// with the model. Each file is parsed within `limits`.
pub fn validate(
    policies: &[Input],
    inventory: &[Input],
    limits: &Limits,
) -> Result<Loaded, Rejected> {
    let (found, diags) = decode_inputs(policies, inventory, limits);
    finish(found, diags, policies, inventory)
}

/// [`validate`] reusing what `cache` kept of the last call: only the documents whose
/// bytes changed are decoded again (see [`DecodeCache`]). The same result as
/// [`validate`].
pub fn validate_cached(
    policies: &[Input],
    inventory: &[Input],
    limits: &Limits,
    cache: &mut DecodeCache,
) -> Result<Loaded, Rejected> {
    let (found, diags) = cache::decode_inputs_cached(policies, inventory, limits, threads(), cache);
    finish(found, diags, policies, inventory)
}

/// For the `json_list` fuzz target: the first difference between reading `inputs`
/// whole (one thread) and reading them with every kubectl JSON `List` cut into its
/// items (`load::json_list`), cold on three threads and through a decode cache that
/// loaded `before` first; `None` when all three give the same model, spans and
/// diagnostics. `as_policies` picks the inputs' role.
#[doc(hidden)]
pub fn cut_differs(
    before: &[Input],
    inputs: &[Input],
    as_policies: bool,
    limits: &Limits,
) -> Option<String> {
    fn roles(i: &[Input], as_policies: bool) -> [&[Input]; 2] {
        if as_policies {
            [i, &[]]
        } else {
            [&[], i]
        }
    }
    let [p, i] = roles(inputs, as_policies);
    let outcome = |(found, diags): (Found, Vec<Diagnostic>)| {
        format!(
            "{:?}",
            finish(found, diags, p, i).map(|l| (l.model, l.spans, l.warnings))
        )
    };
    let whole = outcome(decode_inputs_on(p, i, limits, 1, usize::MAX));
    let cut = outcome(decode_inputs_on(p, i, limits, 3, 0));
    let mut cache = DecodeCache::default();
    let [bp, bi] = roles(before, as_policies);
    drop(cache::decode_inputs_cached(bp, bi, limits, 1, &mut cache));
    let cached = outcome(cache::decode_inputs_cached(p, i, limits, 2, &mut cache));
    let differ = |name: &str, other: &str| {
        let at = whole
            .bytes()
            .zip(other.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let around = |t: &str| {
            let bytes = &t.as_bytes()[at.saturating_sub(100)..(at + 100).min(t.len())];
            String::from_utf8_lossy(bytes).into_owned()
        };
        format!(
            "{name} differs from whole near {at}: …{}… / …{}…",
            around(other),
            around(&whole)
        )
    };
    (cut != whole)
        .then(|| differ("cut", &cut))
        .or_else(|| (cached != whole).then(|| differ("cached", &cached)))
}

/// Threads to decode on: as many as the machine has, at most 8.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// The checks across objects, then the model or every diagnostic.
fn finish(
    found: Found,
    diags: Vec<Diagnostic>,
    policies: &[Input],
    inventory: &[Input],
) -> Result<Loaded, Rejected> {
    finish_on(found, diags, policies, inventory, threads())
}

/// [`finish`] on one thread, or on two where `threads` allows.
fn finish_on(
    found: Found,
    mut diags: Vec<Diagnostic>,
    policies: &[Input],
    inventory: &[Input],
    threads: usize,
) -> Result<Loaded, Rejected> {
    let (model, spans) = assemble(found, &mut diags, threads);
    sort_by_place(&mut diags, policies.iter().chain(inventory));
    if diags.iter().any(Diagnostic::is_error) {
        Err(Rejected(diags))
    } else {
        Ok(Loaded {
            model,
            spans,
            warnings: diags,
        })
    }
}

/// Files at least this big are cut into pieces parsed on several threads; below it a
/// thread costs more than it saves.
const PIECE_BYTES: usize = 1 << 20;

/// Whether an input holds policies or inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    Policies,
    Inventory,
}

/// What one piece of one input decoded to, in input order.
#[derive(Clone, Default)]
struct Decoded1 {
    policies: Vec<(Policy, Arc<PolicySpans>)>,
    cluster_policies: Vec<ClusterPolicy>,
    inventory: Vec<Decoded>,
    diags: Vec<Diagnostic>,
    /// A limit stopped it: the input's later pieces are not read.
    stopped: bool,
    /// Documents it began, for the input's `documents` limit.
    seen: usize,
    /// A part of a cut JSON List (`load::json_list`): the nodes it holds, for the
    /// List's `nodes` limit.
    nodes: usize,
    /// A part of a cut JSON List that does not stand alone (it is not exactly one value
    /// within the limits, or the List without its items is not a clean List): the file
    /// is read whole instead, which says what is wrong.
    cut_failed: bool,
}

/// Parses and decodes every document of every input, big files in pieces on as many
/// threads as the machine has (at most 8), and puts the results together in input
/// order: the same objects and diagnostics, in the same order, as one thread reading
/// the inputs one document at a time. Limits that span a file are kept exactly: a
/// piece stopped by a limit drops the pieces after it, and a file with more documents
/// than its limit is read again in one piece, which stops where the limit is passed.
fn decode_inputs(
    policies: &[Input],
    inventory: &[Input],
    limits: &Limits,
) -> (Found<'static>, Vec<Diagnostic>) {
    decode_inputs_on(policies, inventory, limits, threads(), PIECE_BYTES)
}

/// [`decode_inputs`] on at most `threads` threads, cutting files of `piece_bytes` or more.
fn decode_inputs_on(
    policies: &[Input],
    inventory: &[Input],
    limits: &Limits,
    threads: usize,
    piece_bytes: usize,
) -> (Found<'static>, Vec<Diagnostic>) {
    let inputs = roles(policies, inventory);
    let files: Vec<Arc<Path>> = inputs.iter().map(|(_, i)| Arc::from(&*i.path)).collect();
    let big = |input: &Input| threads > 1 && input.text.len() >= piece_bytes;
    // A big kubectl JSON List is cut into its items.
    let cuts: Vec<Option<ListCut<'_>>> = inputs
        .iter()
        .map(|(_, input)| big(input).then(|| json_list::cut_input(input)).flatten())
        .collect();
    // Work items, in input order: (input, piece).
    let mut items = Vec::new();
    for (n, &(role, input)) in inputs.iter().enumerate() {
        if let Some(cut) = &cuts[n] {
            items.push((n, role, Work::List(ListPart::Wrapper(cut))));
            // More parts than threads: items differ in size.
            let per_part = cut.items.len().div_ceil(threads * 4);
            for some in cut.items.chunks(per_part) {
                items.push((n, role, Work::List(ListPart::Items(some))));
            }
            continue;
        }
        let parts = if big(input) { threads } else { 1 };
        for piece in load::pieces(input, limits, parts) {
            items.push((n, role, Work::Documents(Box::new(piece))));
        }
    }
    let of: Vec<usize> = items.iter().map(|(n, _, _)| *n).collect();
    let results = on_threads(items, threads, |(n, role, work)| match work {
        Work::Documents(docs) => decode_piece(role, &files[n], *docs),
        Work::List(part) => decode_list_part(role, &files[n], part, limits),
    });
    let mut results = results.into_iter().zip(of).peekable();
    let mut found = Found::default();
    let mut diags = Vec::new();
    for (n, &(role, input)) in inputs.iter().enumerate() {
        let mut mine = Vec::new();
        while let Some((decoded, _)) = results.next_if(|(_, of)| *of == n) {
            mine.push(decoded);
        }
        if mine.iter().map(|d| d.seen).sum::<usize>() > limits.documents
            || (cuts[n].is_some() && cut_fails(&mine, limits))
        {
            mine = vec![decode_piece(
                role,
                &files[n],
                load::documents(input, limits),
            )];
        }
        merge(&mut found, &mut diags, mine.into_iter().map(Cow::Owned));
    }
    (found, diags)
}

/// What one thread decodes at a time.
enum Work<'a> {
    /// Some YAML documents, or all of a JSON file.
    Documents(Box<load::Documents<'a>>),
    /// A part of a cut JSON List.
    List(ListPart<'a>),
}

/// The inputs with their roles, policies first, in the order given.
fn roles<'a>(policies: &'a [Input], inventory: &'a [Input]) -> Vec<(Role, &'a Input)> {
    policies
        .iter()
        .map(|i| (Role::Policies, i))
        .chain(inventory.iter().map(|i| (Role::Inventory, i)))
        .collect()
}

/// Adds the pieces of one input, in order, to what was found, up to the first piece a
/// limit stopped: the file is not read past it.
/// A piece of the decode cache is lent, not copied: only what goes into the model is.
fn merge<'a>(
    found: &mut Found<'a>,
    diags: &mut Vec<Diagnostic>,
    pieces: impl IntoIterator<Item = Cow<'a, Decoded1>>,
) {
    for piece in pieces {
        let stopped = piece.stopped;
        match piece {
            Cow::Owned(d) => {
                found
                    .policies
                    .extend(d.policies.into_iter().map(Cow::Owned));
                found
                    .cluster_policies
                    .extend(d.cluster_policies.into_iter().map(Cow::Owned));
                for d in d.inventory {
                    found.inventory.push_owned(d);
                }
                diags.extend(d.diags);
            }
            Cow::Borrowed(d) => {
                found.policies.extend(d.policies.iter().map(Cow::Borrowed));
                found
                    .cluster_policies
                    .extend(d.cluster_policies.iter().map(Cow::Borrowed));
                found
                    .inventory
                    .slots
                    .extend(d.inventory.iter().map(Slot::Lent));
                diags.extend(d.diags.iter().cloned());
            }
        }
        if stopped {
            break;
        }
    }
}

/// `f` of each item, in order, computed on at most `threads` threads that take the next
/// item as they finish one (pieces differ in cost).
fn on_threads<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let workers = threads.min(items.len());
    if workers <= 1 {
        return items.into_iter().map(f).collect();
    }
    let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else {
            break;
        };
        let item = item.lock().expect("one taker").take().expect("taken once");
        let result = f(item);
        *results[i].lock().expect("one writer") = Some(result);
    };
    // The calling thread works too; a thread that cannot be started (a task limit,
    // say) leaves its share to the others, not a panic.
    std::thread::scope(|scope| {
        for _ in 1..workers {
            if std::thread::Builder::new()
                .spawn_scoped(scope, work)
                .is_err()
            {
                break;
            }
        }
        work();
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .expect("workers done")
                .expect("every item done")
        })
        .collect()
}

impl Decoded1 {
    /// Gives back what pushing left unused: a piece of one document is kept by the
    /// decode cache, and a vector of one object has room for four.
    fn shrink_to_fit(&mut self) {
        self.policies.shrink_to_fit();
        self.cluster_policies.shrink_to_fit();
        self.inventory.shrink_to_fit();
        self.diags.shrink_to_fit();
        for d in &mut self.inventory {
            if let Decoded::Endpoint { ips, .. } = d {
                ips.shrink_to_fit();
            }
        }
    }
}

/// Decodes the documents of one piece of an input, one document at a time: the trees of
/// a big inventory take several times its size, and a tree decoded just after it is
/// built is still in the cache.
///
/// `file` is the input's path, allocated once and shared by every object and address.
fn decode_piece(role: Role, file: &Arc<Path>, mut docs: load::Documents<'_>) -> Decoded1 {
    let mut diags = Vec::new();
    let mut found = Decoded1::default();
    for doc in docs.by_ref() {
        let doc = match doc {
            Ok(doc) => doc,
            Err(diag) => {
                diags.push(diag);
                continue;
            }
        };
        let mut ctx = Ctx::new(file, &mut diags);
        for obj in object::objects(&mut ctx, &doc.root) {
            decode_object(role, &mut ctx, &obj, &mut found);
        }
    }
    Decoded1 {
        diags,
        stopped: docs.stopped(),
        seen: docs.seen(),
        ..found
    }
}

/// Decodes one object of a document into `found`.
fn decode_object(role: Role, ctx: &mut Ctx<'_>, obj: &object::Object<'_>, found: &mut Decoded1) {
    match role {
        Role::Inventory => {
            if let Some(d) = inventory::decode(ctx, obj) {
                found.inventory.push(d);
            }
        }
        Role::Policies if obj.kind == "NetworkPolicy" => {
            if let Some((p, places)) = policy::decode(ctx, obj) {
                found.policies.push((p, Arc::new(places)));
            }
        }
        Role::Policies if obj.kind == cluster::KIND => {
            if let Some(p) = cluster::decode(ctx, obj) {
                found.cluster_policies.push(p);
            }
        }
        Role::Policies => {
            ctx.object = Some(obj.kind.to_string());
            let at = obj.map.get("kind").unwrap_or(obj.map.node);
            ctx.error(
                at,
                "kind",
                format!(
                    "expected NetworkPolicy or ClusterNetworkPolicy (or a List of them) in a \
                     policy input, found {}{}",
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

/// A part of a kubectl JSON List cut into its items (`load::json_list`).
#[derive(Clone, Copy)]
enum ListPart<'a> {
    /// The List without its items.
    Wrapper(&'a ListCut<'a>),
    /// Some of its items, in order.
    Items(&'a [ListItem<'a>]),
}

/// Decodes a part of a cut List as the whole List's reading decodes it; marked
/// [`cut_failed`](Decoded1::cut_failed) when it does not stand alone.
fn decode_list_part(role: Role, file: &Arc<Path>, part: ListPart<'_>, limits: &Limits) -> Decoded1 {
    let failed = Decoded1 {
        cut_failed: true,
        ..Decoded1::default()
    };
    let mut found = Decoded1::default();
    let mut diags = Vec::new();
    match part {
        ListPart::Wrapper(cut) => {
            let Some((root, nodes)) = json::part_value(&cut.wrapper, 0, *limits) else {
                return failed;
            };
            // Its top-level `items` must be the array cut, and the rest a clean List.
            let is_cut = |m: &[(Node, Node)]| {
                let is = |v: &Value, s: &str| matches!(v, Value::Str(t) if t == s);
                let field = |k: &str| m.iter().find(|(key, _)| is(&key.value, k));
                field("kind").is_some_and(|(_, v)| is(&v.value, "List"))
                    && field("items").is_some_and(|(_, v)| {
                        matches!(&v.value, Value::Seq(s) if s.is_empty())
                            && (v.line(), v.column()) == cut.open_at
                    })
            };
            if !matches!(&root.value, Value::Map(m) if is_cut(m)) {
                return failed;
            }
            let mut ctx = Ctx::new(file, &mut diags);
            if !object::objects(&mut ctx, &root).is_empty() || !diags.is_empty() {
                return failed;
            }
            // The List is the file's one top-level value.
            (found.nodes, found.seen) = (nodes, 1);
        }
        ListPart::Items(items) => {
            // Items are two collections deep in the List.
            let limits = Limits {
                depth: limits.depth.saturating_sub(2),
                ..*limits
            };
            for item in items {
                let Some((root, nodes)) = json::part_value(item.text, item.line_offset, limits)
                else {
                    return failed;
                };
                found.nodes += nodes;
                let mut ctx = Ctx::new(file, &mut diags);
                if let Some(obj) = object::list_item(&mut ctx, &root, item.index) {
                    decode_object(role, &mut ctx, &obj, &mut found);
                }
            }
        }
    }
    Decoded1 { diags, ..found }
}

/// Whether the parts of a cut List must give way to reading the file whole: one does
/// not stand alone, or together they pass the `nodes` limit (whose error the whole
/// reading places).
fn cut_fails<'a>(parts: impl IntoIterator<Item = &'a Decoded1>, limits: &Limits) -> bool {
    let mut nodes = 0usize;
    for p in parts {
        if p.cut_failed {
            return true;
        }
        nodes += p.nodes;
    }
    nodes > limits.nodes
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

/// Everything decoded, in input order, before the checks across objects: decoded now,
/// or lent by the decode cache (then what goes into the model is cloned).
#[derive(Default)]
struct Found<'a> {
    policies: Vec<Cow<'a, (Policy, Arc<PolicySpans>)>>,
    cluster_policies: Vec<Cow<'a, ClusterPolicy>>,
    inventory: Inventory1<'a>,
}

/// The inventory objects of [`Found`], in input order. Two words each, where a `Cow` of
/// a [`Decoded`] takes 184 bytes: a reload builds this list anew for 50,000 objects,
/// almost all of them lent.
#[derive(Default)]
struct Inventory1<'a> {
    slots: Vec<Slot<'a>>,
    /// The objects decoded now, in input order.
    owned: Vec<Decoded>,
}

/// Where an inventory object of [`Found`] is.
#[derive(Clone, Copy)]
enum Slot<'a> {
    /// Lent by the decode cache.
    Lent(&'a Decoded),
    /// In [`Inventory1::owned`], at this index.
    Owned(usize),
}

impl<'a> Inventory1<'a> {
    fn push_owned(&mut self, d: Decoded) {
        self.slots.push(Slot::Owned(self.owned.len()));
        self.owned.push(d);
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    /// The objects, in input order.
    fn iter(&self) -> impl Iterator<Item = &Decoded> {
        self.slots.iter().map(|s| match *s {
            Slot::Lent(d) => d,
            Slot::Owned(i) => &self.owned[i],
        })
    }
}

fn assemble(found: Found<'_>, diags: &mut Vec<Diagnostic>, threads: usize) -> (Model, Spans) {
    let Found {
        policies,
        cluster_policies: cluster,
        inventory,
    } = found;
    // Two threads: one checks the inventory's claims; the other puts the policies
    // together (neither reads the other) and copies what the model takes of the
    // objects the decode cache lends. The diagnostics come in the order one thread
    // would give them: the claims', the inventory's, the policies'.
    let (keep, lent, (mut policies, policy_spans, policy_diags)) =
        if inventory.len() + policies.len() >= 1000 && threads > 1 {
            let found = &inventory;
            let policies = Mutex::new(Some(policies));
            let other = || {
                let policies = policies.lock().expect("one taker").take();
                (
                    assemble_policies(policies.expect("taken once")),
                    lent(found),
                )
            };
            std::thread::scope(|s| {
                // Without a second thread (a task limit, say), one does it all.
                let other_thread = std::thread::Builder::new().spawn_scoped(s, other);
                let keep = claims(found, diags);
                let (policies, lent) = match other_thread {
                    Ok(t) => t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                    Err(_) => other(),
                };
                (keep, lent, policies)
            })
        } else {
            (
                claims(&inventory, diags),
                lent(&inventory),
                assemble_policies(policies),
            )
        };
    let (mut inv, mut spans, mut endpoints) = assemble_inventory(inventory, keep, lent, diags);
    diags.extend(policy_diags);
    spans.policies = policy_spans;

    // Namespaces in use but not declared: assumed, once each, with a warning at the
    // first object in them.
    // Labels are made only for the warning: there is one user per endpoint and policy.
    let users = endpoints
        .iter()
        .map(|e| (&e.id, Some(e), &e.source))
        .chain(policies.iter().map(|p| (&p.id, None, &p.source)));
    let mut implicit: BTreeMap<String, Namespace> = BTreeMap::new();
    // Objects come in runs of one namespace: a run is looked up once.
    let mut known: Option<&str> = None;
    for (id, endpoint, source) in users {
        if known == Some(id.namespace.as_str()) {
            continue;
        }
        if inv.namespaces.contains_key(id.namespace.as_str())
            || implicit.contains_key(id.namespace.as_str())
        {
            known = Some(id.namespace.as_str());
            continue;
        }
        let object = match endpoint {
            Some(e) => endpoint_label(e),
            None => format!("NetworkPolicy {id}"),
        };
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
            id.namespace.to_string(),
            Namespace {
                name: id.namespace.to_string(),
                labels: [(NAMESPACE_NAME_LABEL.to_string(), id.namespace.clone())].into(),
                implicit: true,
                source: source.clone(),
            },
        );
        known = Some(id.namespace.as_str());
    }
    inv.namespaces.extend(implicit);

    endpoints.sort_by(|a, b| a.id.cmp(&b.id));
    policies.sort_by(|a, b| a.id.cmp(&b.id));
    inv.endpoints = endpoints;
    inv.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let model = Model {
        inventory: inv,
        policies,
        cluster_policies: cluster_policies(cluster.into_iter().map(Cow::into_owned), diags),
    };
    (model, spans)
}

/// The inventory's objects, each endpoint's name and addresses claimed once (see
/// [`claims`]): the inventory without its endpoints, the spans of its Namespace objects,
/// and the endpoints in input order.
fn assemble_inventory(
    found: Inventory1<'_>,
    keep: Vec<bool>,
    lent: Vec<Decoded>,
    diags: &mut Vec<Diagnostic>,
) -> (Inventory, Spans, Vec<Endpoint>) {
    let mut inv = Inventory::default();
    let mut spans = Spans::default();
    let mut endpoints: Vec<Endpoint> = Vec::with_capacity(found.len());
    let (mut owned, mut lent) = (found.owned.into_iter(), lent.into_iter());
    for (slot, keep) in found.slots.into_iter().zip(keep) {
        // Each slot takes its object from its list, kept or not, so the lists stay in
        // step with the slots.
        let d = match slot {
            Slot::Lent(_) => lent.next().expect("a lent object is copied"),
            Slot::Owned(_) => owned.next().expect("an owned object is in order"),
        };
        if !keep && matches!(d, Decoded::Endpoint { .. } | Decoded::Skipped(_)) {
            continue;
        }
        match d {
            Decoded::Ignored(kind) => match inv.ignored_kinds.get_mut(kind.as_str()) {
                Some(n) => *n += 1,
                None => {
                    inv.ignored_kinds.insert(kind.into_string(), 1);
                }
            },
            Decoded::Node(node) => {
                if let Some(first) = inv.nodes.iter().find(|n| n.name == node.name) {
                    diags.push(
                        error_at(&node.source, format!("Node {}", node.name), "metadata.name")
                            .message_text(format!(
                                "duplicate Node {:?}: also declared at {}",
                                node.name, first.source
                            )),
                    );
                } else {
                    inv.nodes.push(node);
                }
            }
            Decoded::Namespace {
                namespace: ns,
                name_label_written,
            } => {
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
                    if !name_label_written {
                        spans.name_label_added.insert(ns.name.clone());
                    }
                    inv.namespaces.insert(ns.name.clone(), ns);
                }
            }
            Decoded::Skipped(skipped) => inv.skipped.push(skipped),
            Decoded::Endpoint { endpoint, .. } => endpoints.push(endpoint),
        }
    }
    (inv, spans, endpoints)
}

/// What the model takes of each object the decode cache lends ([`inventory::taken`]),
/// in order; those decoded now are moved instead.
fn lent(found: &Inventory1<'_>) -> Vec<Decoded> {
    // Sized first: grown by doubling, 50,000 objects of 184 bytes were copied and
    // faulted in twice over.
    let mut out = Vec::with_capacity(found.slots.len() - found.owned.len());
    out.extend(found.slots.iter().filter_map(|s| match *s {
        Slot::Lent(d) => Some(inventory::taken(d)),
        Slot::Owned(_) => None,
    }));
    out
}

/// The policies, each name once (a later one is an error), in input order, with their
/// spans and the errors.
fn assemble_policies(
    found: Vec<Cow<'_, (Policy, Arc<PolicySpans>)>>,
) -> (
    Vec<Policy>,
    BTreeMap<ObjectName, Arc<PolicySpans>>,
    Vec<Diagnostic>,
) {
    let mut diags = Vec::new();
    // Borrowed, and hashed (foldhash, seeded per process): a clone of each name into a
    // BTreeMap was most of this on a cached reload.
    let mut names: foldhash::HashMap<&ObjectName, &Source> =
        HashMap::with_capacity_and_hasher(found.len(), Default::default());
    let mut keep = Vec::with_capacity(found.len());
    for p in &found {
        let (p, _) = &**p;
        match names.entry(&p.id) {
            Entry::Occupied(first) => {
                diags.push(
                    error_at(
                        &p.source,
                        format!("NetworkPolicy {}", p.id),
                        "metadata.name",
                    )
                    .message_text(format!(
                        "duplicate NetworkPolicy {}: also declared at {}",
                        p.id,
                        first.get()
                    )),
                );
                keep.push(false);
            }
            Entry::Vacant(v) => {
                v.insert(&p.source);
                keep.push(true);
            }
        }
    }
    drop(names);
    let mut policies = Vec::with_capacity(found.len());
    let mut spans = Vec::with_capacity(found.len());
    for (p, keep) in found.into_iter().zip(keep) {
        if keep {
            let (p, places) = p.into_owned();
            spans.push((p.id.clone(), places));
            policies.push(p);
        }
    }
    (policies, spans.into_iter().collect(), diags)
}

/// ClusterNetworkPolicies without duplicate names (an error), warned about when two
/// share a priority in one tier (the API leaves their order undefined), sorted by
/// [`ClusterPolicy::order_key`].
fn cluster_policies(
    found: impl Iterator<Item = ClusterPolicy>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<ClusterPolicy> {
    let mut names: BTreeMap<String, Source> = BTreeMap::new();
    let mut priorities: BTreeMap<(Tier, u16), (String, Source)> = BTreeMap::new();
    let mut out = Vec::new();
    for p in found {
        let object = format!("{} {}", cluster::KIND, p.name);
        if let Some(first) = names.get(&p.name) {
            diags.push(
                error_at(&p.source, object, "metadata.name").message_text(format!(
                    "duplicate {} {}: also declared at {first}",
                    cluster::KIND,
                    p.name
                )),
            );
            continue;
        }
        names.insert(p.name.clone(), p.source.clone());
        match priorities.get(&(p.tier, p.priority)) {
            Some((other, at)) => diags.push(
                Diagnostic::warning(format!(
                    "{object} has priority {} in tier {}, as {} {other} (at {at}): the API \
                     leaves their order undefined; netpol orders them by name",
                    p.priority,
                    p.tier.as_str(),
                    cluster::KIND
                ))
                .with_source(&p.source)
                .object(object)
                .field("spec.priority"),
            ),
            None => {
                priorities.insert((p.tier, p.priority), (p.name.clone(), p.source.clone()));
            }
        }
        out.push(p);
    }
    out.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    out
}

fn endpoint_label(e: &Endpoint) -> String {
    let kind = match e.kind {
        crate::model::EndpointKind::Pod => "Pod",
        crate::model::EndpointKind::Native => "Endpoint",
    };
    format!("{kind} {}", e.id)
}

/// Which inventory objects keep their place: an endpoint (live or skipped) whose name
/// another object took first does not (an error each), and a live endpoint's address
/// another live endpoint took first is an error. Borrows rather than clones: this runs
/// for every endpoint on every reload, serially.
fn claims(found: &Inventory1<'_>, diags: &mut Vec<Diagnostic>) -> Vec<bool> {
    // foldhash, seeded per process: SipHash made this a third of a cached reload's checks.
    let mut names: foldhash::HashMap<&ObjectName, (&str, &Source)> =
        HashMap::with_capacity_and_hasher(found.len(), Default::default());
    let mut owners: foldhash::HashMap<IpAddr, (&str, &Source)> =
        HashMap::with_capacity_and_hasher(found.len(), Default::default());
    let mut keep = Vec::with_capacity(found.len());
    for d in found.iter() {
        let (id, object, source, ips): (_, &str, _, &[LocatedIp]) = match d {
            Decoded::Skipped(s) => (&s.id, &s.object, &s.source, &[]),
            Decoded::Endpoint {
                endpoint,
                object,
                ips,
            } => (&endpoint.id, object, &endpoint.source, ips),
            _ => {
                keep.push(true);
                continue;
            }
        };
        match names.entry(id) {
            Entry::Occupied(first) => {
                let (first_object, first) = first.get();
                diags.push(
                    error_at(source, object.to_string(), "metadata.name").message_text(format!(
                        "duplicate endpoint {id}: {first_object} is also declared at {first}"
                    )),
                );
                keep.push(false);
                continue;
            }
            Entry::Vacant(v) => {
                v.insert((object, source));
            }
        }
        for located in ips {
            match owners.entry(located.ip) {
                Entry::Occupied(o) if o.get().0 == object => {}
                Entry::Occupied(o) => {
                    let (owner, first) = o.get();
                    diags.push(
                        error_at(&located.source, object.to_string(), &located.field).message_text(
                            format!(
                                "IP {} is claimed by two live endpoints: {owner} (at {first}) \
                                 and {object}; an address belongs to one endpoint",
                                located.ip
                            ),
                        ),
                    )
                }
                Entry::Vacant(v) => {
                    v.insert((object, &located.source));
                }
            }
        }
        keep.push(true);
    }
    keep
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
        self.file = source.file.as_deref().map(Path::to_path_buf);
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
                text: t.to_string().into(),
            })
            .collect()
    }

    /// Validates inline policy and inventory files.
    pub fn run(policies: &[(&str, &str)], inventory: &[(&str, &str)]) -> Result<Loaded, Rejected> {
        validate(&inputs(policies), &inputs(inventory), &Limits::default())
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

#[cfg(test)]
mod tests {
    use super::testutil::{check, errors, ok, run, show};
    use crate::model::*;

    /// The fuzz target's seeds (`fuzz/corpus/json_list`) hold for `cut_differs`: a mode
    /// byte, then the text, after an earlier version and a NUL byte when there is one.
    #[test]
    fn the_json_list_seeds_read_as_whole() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/json_list");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("the seeds") {
            let data = std::fs::read(entry.expect("a seed").path()).expect("a seed");
            let (mode, text) = (data[0], std::str::from_utf8(&data[1..]).expect("UTF-8"));
            let (before, after) = text.split_once('\0').unwrap_or(if mode & 2 != 0 {
                (text, text)
            } else {
                ("", text)
            });
            let input = |t: &str| {
                vec![crate::load::Input {
                    path: "fuzzed.json".into(),
                    text: t.to_string().into(),
                }]
            };
            let limits = crate::load::Limits::default();
            let differs = super::cut_differs(&input(before), &input(after), mode & 1 != 0, &limits);
            assert_eq!(differs, None);
            seen += 1;
        }
        assert!(seen >= 8);
    }

    fn ns(name: &str) -> String {
        format!("---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
    }

    fn vm(ns: &str, name: &str, ip: &str) -> String {
        format!(
            "---\napiVersion: netpol/v1\nkind: Endpoint\nmetadata: {{namespace: {ns}, name: {name}}}\nips: [{ip}]\n"
        )
    }

    fn pod(ns: &str, name: &str, ip: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{namespace: {ns}, name: {name}}}\nstatus: {{podIP: {ip}}}\n"
        )
    }

    #[test]
    fn duplicate_namespace_names_both_places() {
        let errs = errors(&[], &[("a.yaml", &ns("web")), ("b.yaml", &ns("web"))]);
        assert_eq!(errs.len(), 1, "{}", show(&errs));
        check(
            &errs[0],
            "b.yaml",
            (2, 1),
            "Namespace web",
            "metadata.name",
            "duplicate Namespace \"web\": also declared at a.yaml:2:1",
        );
    }

    #[test]
    fn duplicate_endpoint_across_pod_and_native_form() {
        let text = [pod("web", "a", "198.18.0.1"), vm("web", "a", "198.18.0.2")].concat();
        let errs = errors(&[], &[("inv.yaml", &text), ("ns.yaml", &ns("web"))]);
        assert_eq!(errs.len(), 1, "{}", show(&errs));
        check(
            &errs[0],
            "inv.yaml",
            (7, 1),
            "Endpoint web/a",
            "metadata.name",
            "duplicate endpoint web/a: Pod web/a is also declared at inv.yaml:2:1",
        );
    }

    #[test]
    fn the_objects_after_a_duplicate_endpoint_are_still_checked_cold_lent_and_mixed() {
        // The duplicate is left out of the model; each later object must still be the
        // one checked: the duplicate Namespace after it is found, whether the objects
        // were decoded now, lent by the decode cache, or some of each (after an edit).
        let text = [
            pod("web", "a", "198.18.0.1"),
            vm("web", "a", "198.18.0.2"),
            ns("x"),
            ns("x"),
            pod("web", "b", "198.18.0.3"),
        ]
        .concat();
        let edited = text.replace("198.18.0.3", "198.18.0.4");
        let mut cache = super::DecodeCache::default();
        let limits = crate::load::Limits::default();
        for (inv, threads) in [(&text, 1), (&text, 2), (&edited, 2), (&edited, 1)] {
            let inv = super::testutil::inputs(&[("inv.yaml", inv), ("ns.yaml", &ns("web"))]);
            let (found, diags) =
                super::cache::decode_inputs_cached(&[], &inv, &limits, threads, &mut cache);
            let errs = super::finish_on(found, diags, &[], &inv, threads)
                .unwrap_err()
                .0;
            let messages: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
            assert_eq!(
                messages,
                [
                    "duplicate endpoint web/a: Pod web/a is also declared at inv.yaml:2:1",
                    "duplicate Namespace \"x\": also declared at inv.yaml:12:1",
                ],
                "{}",
                show(&errs)
            );
        }
    }

    #[test]
    fn one_ip_claimed_by_two_live_endpoints() {
        let text = [
            pod("web", "a", "198.18.0.1"),
            vm("web", "b", "\"2001:db8::1\", 198.18.0.1"),
        ]
        .concat();
        let errs = errors(&[], &[("inv.yaml", &text)]);
        assert_eq!(errs.len(), 1, "{}", show(&errs));
        check(
            &errs[0],
            "inv.yaml",
            (10, 22),
            "Endpoint web/b",
            "ips[1]",
            "IP 198.18.0.1 is claimed by two live endpoints: Pod web/a (at inv.yaml:5:17) and \
             Endpoint web/b",
        );
    }

    #[test]
    fn implicit_namespaces_for_endpoints_and_policies() {
        let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: payments}\nspec: {podSelector: {}}\n";
        let inv = [
            ns("web"),
            vm("web", "x", "198.18.0.1"),
            vm("analytics", "w", "198.18.0.2"),
        ]
        .concat();
        let loaded = ok(&[("p.yaml", policy)], &[("inv.yaml", &inv)]);
        let nss = &loaded.model.inventory.namespaces;
        assert_eq!(
            nss.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["analytics", "payments", "web"]
        );
        assert!(!nss["web"].implicit);
        for name in ["analytics", "payments"] {
            assert!(nss[name].implicit, "{name}");
            assert_eq!(
                nss[name].labels,
                [(NAMESPACE_NAME_LABEL.to_string(), name.to_string())].into()
            );
        }
        assert_eq!(nss["analytics"].source.line, 11);
        assert_eq!(loaded.warnings.len(), 2, "{}", show(&loaded.warnings));
        check(
            &loaded.warnings[0],
            "p.yaml",
            (1, 1),
            "NetworkPolicy payments/p",
            "metadata.namespace",
            "namespace \"payments\" is not declared by a Namespace object",
        );
        check(
            &loaded.warnings[1],
            "inv.yaml",
            (11, 1),
            "Endpoint analytics/w",
            "metadata.namespace",
            "only the label kubernetes.io/metadata.name=analytics",
        );
    }

    #[test]
    fn endpoints_and_policies_are_sorted_by_id() {
        let inv = [
            vm("web", "b", "198.18.0.3"),
            pod("analytics", "z", "198.18.0.1"),
            vm("web", "a", "198.18.0.2"),
        ]
        .concat();
        let p = |ns: &str, name: &str| {
            format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{podSelector: {{}}}}\n")
        };
        let pols = [p("web", "b"), p("analytics", "c"), p("web", "a")].concat();
        let loaded = ok(&[("p.yaml", &pols)], &[("inv.yaml", &inv)]);
        let eps: Vec<String> = loaded
            .model
            .inventory
            .endpoints
            .iter()
            .map(|e| e.id.to_string())
            .collect();
        assert_eq!(eps, vec!["analytics/z", "web/a", "web/b"]);
        let ix = loaded
            .model
            .inventory
            .endpoint_index(&ObjectName::new("web", "b"));
        assert_eq!(ix, Some(2));
        let ps: Vec<String> = loaded
            .model
            .policies
            .iter()
            .map(|p| p.id.to_string())
            .collect();
        assert_eq!(ps, vec!["analytics/c", "web/a", "web/b"]);
    }

    #[test]
    fn rejection_carries_errors_and_warnings_in_file_order_and_displays_them() {
        let inv = [
            pod("web", "a", "198.18.0.1"),
            "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nstatus: {podIP: nope}\n"
                .to_string(),
        ]
        .concat();
        let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-dns, namespace: web}\nspec:\n  podSelector: {}\n  egress: [{ports: [{port: 53, protocol: udp}]}]\n";
        let err = run(&[("pol/a.yaml", policy)], &[("inv.yaml", &inv)]).unwrap_err();
        let lines: Vec<String> = err.0.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            lines,
            vec![
                "pol/a.yaml:6:42: error: NetworkPolicy web/allow-dns: \
                 spec.egress[0].ports[0].protocol: unknown protocol \"udp\"; expected TCP, UDP \
                 or SCTP (upper case)",
                "inv.yaml:2:1: warning: Pod web/a: metadata.namespace: namespace \"web\" is not \
                 declared by a Namespace object: assuming it exists, with only the label \
                 kubernetes.io/metadata.name=web",
                "inv.yaml:9:11: warning: Pod default/b: metadata.namespace: no namespace given: \
                 using \"default\", as kubectl apply does without -n",
                "inv.yaml:10:17: error: Pod default/b: status.podIP: invalid IP address \"nope\": \
                 expected an IPv4 or IPv6 address, without prefix length",
            ]
        );
        assert!(err
            .to_string()
            .ends_with("2 errors in the input; nothing was compiled"));
    }

    #[test]
    fn no_input_is_an_empty_model() {
        let loaded = ok(&[], &[("empty.yaml", "# nothing here\n---\n")]);
        assert_eq!(loaded.model, Model::default());
        assert!(loaded.warnings.is_empty());
    }
}

#[cfg(test)]
mod piece_tests {
    //! Parsing big files in pieces on several threads gives what one thread gives.
    use super::testutil::inputs;
    use super::*;

    /// An inventory of `n` endpoints in `namespaces` namespaces, with faults spread over
    /// it: a broken document, an unknown field, an address claimed twice far apart, a
    /// duplicate name, so that diagnostics come from every piece and across pieces.
    pub(super) fn inventory(n: usize) -> String {
        let mut text = String::new();
        for i in 0..n {
            let ip = format!("198.18.{}.{}", i / 250, i % 250 + 1);
            let ip = match i {
                777 => "198.18.0.5".to_string(), // also endpoint 4's
                _ => ip,
            };
            let name = if i == 1501 {
                "ep-3".to_string()
            } else {
                format!("ep-{i}")
            };
            text.push_str(&format!(
                "---\napiVersion: netpol/v1\nkind: Endpoint\nmetadata:\n  namespace: ns-{}\n  \
                 name: {name}\n  labels: {{app: a{}}}\nips: [{ip}]\n",
                i % 7,
                i % 13
            ));
            match i {
                300 => text.push_str("---\nkind: [unclosed\n"),
                900 => text.push_str("---\napiVersion: netpol/v1\nkind: Endpoint\nmetadata: {namespace: x, name: y}\nips: [198.19.0.1]\nbogus: 1\n"),
                _ => {}
            }
        }
        text
    }

    pub(super) const POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: ns-1, name: p}\nspec:\n  podSelector: {matchLabels: {app: a1}}\n  ingress: [{from: [{podSelector: {}}]}]\n";

    fn run(text: &str, limits: &Limits, threads: usize) -> String {
        run_with(&[("p.yaml", POLICY)], text, limits, threads)
    }

    fn run_with(policies: &[(&str, &str)], text: &str, limits: &Limits, threads: usize) -> String {
        let policies = inputs(policies);
        let inventory = inputs(&[
            ("a.yaml", text),
            (
                "b.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-1}\n",
            ),
        ]);
        let (found, diags) = decode_inputs_on(&policies, &inventory, limits, threads, 1024);
        format!(
            "{:?}",
            finish_on(found, diags, &policies, &inventory, threads)
                .map(|l| (l.model, l.spans, l.warnings))
        )
    }

    #[test]
    fn pieces_give_what_one_thread_gives() {
        let text = inventory(2000);
        let limits = Limits::default();
        // The policy twice: a duplicate, whose error the second thread of the checks
        // across objects finds while the first checks the inventory's claims.
        let twice = [("p.yaml", POLICY), ("q.yaml", POLICY)];
        let one = run_with(&twice, &text, &limits, 1);
        assert!(
            one.contains("bogus")
                && one.contains("claimed by two")
                && one.contains("duplicate endpoint")
                && one.contains("duplicate NetworkPolicy"),
            "{one}"
        );
        for threads in [2, 3, 8] {
            assert_eq!(
                run_with(&twice, &text, &limits, threads),
                one,
                "{threads} threads"
            );
        }
        // Without faults the model is the same too.
        let clean: String = text
            .split("---\n")
            .filter(|d| {
                !d.contains("bogus")
                    && !d.contains("unclosed")
                    && !d.contains("198.18.0.5]")
                    && !d.contains("name: ep-3\n")
            })
            .map(|d| format!("---\n{d}"))
            .collect();
        let one = run(&clean, &limits, 1);
        assert!(one.starts_with("Ok("), "{}", &one[..one.len().min(2000)]);
        assert_eq!(run(&clean, &limits, 4), one);
    }

    #[test]
    fn limits_that_span_a_file_stop_where_one_thread_stops() {
        let text = inventory(2000);
        // More documents than allowed: the error and what comes before it are the same.
        let limits = Limits {
            documents: 1234,
            ..Limits::default()
        };
        let one = run(&text, &limits, 1);
        assert!(
            one.contains("limit documents"),
            "{}",
            &one[one.len().saturating_sub(3000)..]
        );
        assert_eq!(run(&text, &limits, 4), one);
        // A per-document limit in the middle of a piece drops the pieces after it.
        let limits = Limits {
            scalar_bytes: 100,
            ..Limits::default()
        };
        let big = text.replacen(
            "name: ep-1200\n",
            &format!("name: ep-1200\n  annotations: {{a: {}}}\n", "x".repeat(200)),
            1,
        );
        let one = run(&big, &limits, 1);
        assert!(
            one.contains("limit scalar-bytes"),
            "{}",
            &one[one.len().saturating_sub(3000)..]
        );
        assert_eq!(run(&big, &limits, 4), one);
    }
}

#[cfg(test)]
mod stream_tests {
    use super::testutil::{ok, show};

    #[test]
    fn multi_document_files_with_comment_only_and_empty_documents() {
        let text = "# leading comment
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: web}
spec: {podSelector: {}}
---
# disabled for now:
# apiVersion: networking.k8s.io/v1
---
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b, namespace: web}
spec: {podSelector: {}}
...
";
        let inv = "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\n";
        let loaded = ok(&[("p.yaml", text)], &[("ns.yaml", inv)]);
        assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
        let found: Vec<(String, usize)> = loaded
            .model
            .policies
            .iter()
            .map(|p| (p.id.to_string(), p.source.line))
            .collect();
        assert_eq!(found, vec![("web/a".into(), 3), ("web/b".into(), 12)]);
    }
}
