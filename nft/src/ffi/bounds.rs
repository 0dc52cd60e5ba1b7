//! Upper bounds of the netlink messages libnftnl builds, from the objects they are built
//! of: what `build` checks against the scratch buffer before a builder runs (libnftnl's
//! builders write without checking). A bound may be loose, never short: `Writer::append`
//! stops at a message longer than its bound, and the tests build every kind.
//!
//! Arithmetic only: no libnftnl, no unsafe code.

use std::ffi::CStr;

use super::NLMSG_AND_NFGEN;
use crate::encode::{elem_wire_len, ElemsDef, Expr, RuleDef, SetDef};

/// Bytes a netlink attribute of `payload` bytes takes: a 4-byte header and the payload
/// padded to 4 bytes.
pub(super) const fn attr(payload: usize) -> usize {
    4 + payload.div_ceil(4) * 4
}

/// A nest's header.
const NEST: usize = 4;
/// Room in each bound for attributes libnftnl may add that the bounds do not name.
const SLACK: usize = 64;
/// A u32 attribute.
const U32: usize = attr(4);

/// Upper bound of a table message: name, handle, flags, user data.
pub(super) fn table_bound(name: &CStr, udata: Option<&[u8]>) -> usize {
    NLMSG_AND_NFGEN
        + attr(name.to_bytes_with_nul().len())
        + attr(8)
        + U32
        + attr(udata.map_or(0, <[u8]>::len))
        + SLACK
}

/// Upper bound of a chain message: table, name, hook nest, type, policy.
pub(super) fn chain_bound(table: &CStr, name: &CStr) -> usize {
    NLMSG_AND_NFGEN
        + attr(table.to_bytes_with_nul().len())
        + attr(name.to_bytes_with_nul().len())
        + NEST
        + 2 * U32
        + attr(c"filter".to_bytes_with_nul().len())
        + U32
        + SLACK
}

/// Upper bound of a set message: table, name, six u32s, the description nest with its
/// size and concatenation fields, user data.
pub(super) fn set_bound(table: &CStr, name: &CStr, def: Option<&SetDef>) -> usize {
    let def = def.map_or(0, |s| {
        6 * U32 + NEST + U32 + NEST + s.concat.len() * (NEST + U32) + attr(s.udata.len())
    });
    NLMSG_AND_NFGEN
        + attr(table.to_bytes_with_nul().len())
        + attr(name.to_bytes_with_nul().len())
        + def
        + SLACK
}

/// Upper bound of a rule message: table, chain, the expressions nest, user data.
pub(super) fn rule_bound(table: &CStr, chain: &CStr, r: &RuleDef, udata: Option<&[u8]>) -> usize {
    NLMSG_AND_NFGEN
        + attr(table.to_bytes_with_nul().len())
        + attr(chain.to_bytes_with_nul().len())
        + NEST
        + r.exprs.iter().map(expr_bound).sum::<usize>()
        + attr(udata.map_or(0, <[u8]>::len))
        + SLACK
}

/// Upper bound of one expression: its list element and data nests, its name, up to
/// eight u32 attributes, each byte string in a nest of its own, a set name.
pub(super) fn expr_bound(e: &Expr) -> usize {
    let bytes = |v: &[u8]| NEST + attr(v.len());
    let data = match e {
        Expr::Cmp { data, .. } => bytes(data),
        Expr::Bitwise { mask, xor, .. } => bytes(mask) + bytes(xor),
        Expr::Lookup { set, .. } => attr(set.len() + 1),
        Expr::Objref { name, .. } => attr(name.len() + 1),
        Expr::Log { prefix, .. } => attr(prefix.len() + 1),
        _ => 0,
    };
    NEST + attr(16) + NEST + 8 * U32 + data
}

/// Upper bound of a limit object's message: table, name, type, the data nest with
/// rate, unit, burst, type and flags.
pub(super) fn limit_bound(table: &CStr, name: &CStr) -> usize {
    NLMSG_AND_NFGEN
        + attr(table.to_bytes_with_nul().len())
        + attr(name.to_bytes_with_nul().len())
        + U32
        + NEST
        + 2 * attr(8)
        + 3 * U32
        + SLACK
}

/// Upper bound of a `GET*` request: table and set names.
pub(super) fn request_bound(table: &CStr, set: Option<&CStr>) -> usize {
    NLMSG_AND_NFGEN
        + attr(table.to_bytes_with_nul().len())
        + attr(set.map_or(0, |s| s.to_bytes_with_nul().len()))
        + SLACK
}

/// Upper bound of an elements message: header, set and table names (at most 255 bytes
/// each), set id, the list nest and every element.
pub(super) fn elems_bound(e: &ElemsDef) -> usize {
    64 + 2 * (4 + 256) + e.elems.iter().map(elem_wire_len).sum::<usize>()
}
