//! Topics of the integration suite.
mod cluster_conformance;
mod cluster_matches_spec;
mod diff_matches_explain;
mod golden_cases;
mod plan_matches_semantics;
