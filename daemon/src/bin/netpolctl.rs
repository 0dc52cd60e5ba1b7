//! `netpolctl`: the operator's tool.
fn main() {}
