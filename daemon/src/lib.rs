//! netpol-daemon: the operator's commands and (later) the daemon. Glue around
//! `rules-compiler`: decides *when* and *how* to apply a plan, never *what* is allowed.
//!
//! Unsafe code is denied everywhere but in `netlink::ffi`, the one module that talks
//! to libnftnl and the netlink socket.
#![deny(unsafe_code)]

pub mod addrs;
pub mod netlink;

#[cfg(test)]
mod testns;
