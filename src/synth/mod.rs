//! Synthetic captures from a compact, readable scenario description (fixtures, benchmarks).
