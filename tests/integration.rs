//! Integration tests, one binary grouped by topic (see `suite/`).
mod suite;
