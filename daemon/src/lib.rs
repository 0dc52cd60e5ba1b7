//! netpol-daemon: the operator's commands and (later) the daemon. Glue around
//! `rules-compiler`: decides *when* and *how* to apply a plan, never *what* is allowed.
#![forbid(unsafe_code)]
