//! Integration tests, one binary grouped by topic.
