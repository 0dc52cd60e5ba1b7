//! Synthetic inputs for benchmarks.
