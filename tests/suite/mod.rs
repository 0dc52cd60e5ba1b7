//! Topics of the integration suite.
mod golden_cases;
mod plan_matches_semantics;
