//! Render: the plan as `nft -f` text. Deterministic, so two compiles diff cleanly, and
//! accepted by `nft -c -f` as it is. Knows nftables syntax, not policy semantics.

use crate::plan::Plan;

/// The plan as an nft script that replaces the netpol table in one transaction.
pub fn nft(plan: &Plan) -> String {
    let _ = plan;
    todo!("render::nft")
}
