//! # rules-compiler
//!
//! The pure heart of netpol: Kubernetes NetworkPolicy YAML plus a static inventory in,
//! an nftables [`plan::Plan`] and answers about connectivity out. No kernel, no
//! sockets, no clock: the daemon decides *when* and *how* to apply; this crate alone
//! decides *what is allowed*.
//!
//! Stages, each a typed function:
//! [`load`] (YAML → faithful documents with positions) →
//! [`validate`] (→ the checked [`model::Model`], every diagnostic at once) →
//! [`resolve`] (who selects whom; packet verdicts) →
//! [`plan`] (sets, maps, chains) → [`render`] (nft text).
//! [`compile`] ([`target`]) is the one entry point from a model to a plan: it chooses
//! the local endpoints (named, or by this host's addresses) and counts what it built.
//! [`analysis`] answers `matrix` and `explain` from the same resolution; [`events`]
//! says which endpoint, peer and policies a logged packet is about; [`lint`] finds the
//! classic mistakes, placed by the side table [`spans`] that `validate` fills.
//!
//! ```no_run
//! use rules_compiler::{load, model::ObjectName, render, Target};
//! let policies = load::read_paths(&["config/policies".into()], &Default::default()).unwrap();
//! let inventory = load::read_paths(&["config/inventory".into()], &Default::default()).unwrap();
//! let loaded = rules_compiler::load_model(&policies, &inventory).unwrap();
//! let local = [ObjectName::new("payments", "payments-api")];
//! let compiled =
//!     rules_compiler::compile(&loaded.model, Target::Named(&local), &Default::default()).unwrap();
//! print!("{}", render::nft(&compiled.plan));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analysis;
pub mod connectivity;
pub mod diag;
pub mod events;
pub mod lint;
pub mod load;
pub mod model;
pub mod plan;
pub mod render;
pub mod resolve;
pub mod selector;
pub mod spans;
pub mod target;
#[cfg(test)]
pub(crate) mod testkit;
pub mod validate;

use diag::{Diagnostic, Rejected};
use load::Input;
use model::Model;
pub use target::{compile, Compiled, Counts, Target};

/// A model that passed validation, with the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The validated model.
    pub model: Model,
    /// Where each policy's fields were written (for `lint`).
    pub spans: spans::Spans,
    /// Warnings (skipped pods, implicit namespaces, non-canonical CIDRs, …).
    pub warnings: Vec<Diagnostic>,
}

/// Parses and validates policy and inventory inputs into a model. Every error of every
/// input is reported in the `Err`, not only the first. Every program (`netpolctl`,
/// netpold) loads through here.
pub fn load_model(policies: &[Input], inventory: &[Input]) -> Result<Loaded, Rejected> {
    load_model_within(policies, inventory, &load::Limits::default())
}

/// [`load_model`] with other [`load::Limits`] than the defaults.
pub fn load_model_within(
    policies: &[Input],
    inventory: &[Input],
    limits: &load::Limits,
) -> Result<Loaded, Rejected> {
    validate::validate(policies, inventory, limits)
}

/// [`load_model_within`] reusing what `cache` kept of the last load through it: only
/// the documents whose bytes changed are decoded again. The same result as without the
/// cache; netpold reloads through one.
pub fn load_model_cached(
    policies: &[Input],
    inventory: &[Input],
    limits: &load::Limits,
    cache: &mut validate::DecodeCache,
) -> Result<Loaded, Rejected> {
    validate::validate_cached(policies, inventory, limits, cache)
}
