//! Shared helpers for the integration tests: an evaluator of compiled plans, model
//! generators for property tests, golden-file comparison, and running nft inside a
//! throwaway network namespace.

pub mod golden;
pub mod nft;
pub mod plan_eval;
