//! # netpol-daemon
//!
//! The operator's commands (`netpolctl`) and the daemon (`netpold`). Glue
//! around [`rules_compiler`]: this crate decides *when* and *how* a plan is applied and
//! shown, never *what* is allowed.
//!
//! - [`inputs`]: read policy and inventory paths into a validated model, turning
//!   diagnostics into messages for the terminal.
//! - [`ctl`]: the `netpolctl` subcommands: offline (`compile`, `matrix`, `explain`)
//!   and against the kernel (`apply`, `flush`, `show`), and the text of netpold's
//!   reports for `reload` and `status` ([`ctl::report_text`]).
//! - [`netlink`]: the kernel backend (`netpol_nft`): a plan replaced in one nftables
//!   transaction, or two when it can be staged, or updated element by element.
//! - [`revoke`]: which established connections a newly applied plan no longer allows.
//! - [`addrs`]: this host's addresses, to find which endpoints it is, and following
//!   them as they change.
//! - `netpold`: [`config`] (file and flags → settings, the socket's group), [`state`]
//!   (what is loaded, the reload that changes it, the reports it makes
//!   ([`state::report`]) and the thread that owns it ([`state::thread`])), [`watch`]
//!   (file events), [`control`] (the control socket's framing: requests, responses,
//!   limits and the client, shared with `netpolctl`), [`systemd`] (sd_notify),
//!   [`telemetry`] (Prometheus metrics), [`scrape`] (their HTTP endpoint),
//!   [`listen`] (connection caps, accept backoff, rate-limited logs), [`memory`]
//!   (freed heap back to the system after a reload), [`instance`] (one netpold per
//!   network namespace) and [`daemon`] (start-up, the control socket's server and the
//!   one loop that feeds the state's thread).
//!
//! This crate has no unsafe code (it is forbidden): every call into C — libnftnl, the
//! netlink socket, the C library's allocator ([`memory`]) — is in [`netpol_nft`].
#![forbid(unsafe_code)]

/// What `--version` prints after the program's name: the crate's version and the commit
/// it was built from (`build.rs`: git, else the environment's `NETPOL_COMMIT`, else
/// `unknown`), e.g. `0.1.0 (commit ea0b4f9)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NETPOL_COMMIT"),
    ")"
);

pub mod addrs;
pub mod config;
pub mod control;
pub mod ctl;
pub mod daemon;
pub mod docs;
pub mod events;
pub mod inputs;
pub mod instance;
pub mod listen;
/// The kernel backend, the crate `netpol_nft` under its old path: `crate::netlink::…`
/// names what it always named.
pub use netpol_nft as netlink;
/// Freed heap back to the system: `netpol_nft::heap`, where the one call to the C
/// library it takes is.
pub use netpol_nft::heap as memory;
pub mod revoke;
pub mod runfiles;
pub mod scrape;
pub mod state;
pub mod systemd;
pub mod telemetry;
pub mod watch;

#[cfg(test)]
mod testdir;
