//! # netpol-daemon
//!
//! The operator's commands (`netpolctl`) and, later, the daemon (`netpold`). Glue
//! around [`rules_compiler`]: this crate decides *when* and *how* a plan is applied and
//! shown, never *what* is allowed.
//!
//! - [`inputs`]: read policy and inventory paths into a validated model, turning
//!   diagnostics into messages for the terminal.
//! - [`ctl`]: the offline `netpolctl` subcommands (`compile`, `matrix`, `explain`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ctl;
pub mod inputs;
