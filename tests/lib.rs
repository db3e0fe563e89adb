//! End-to-end tests across crates live in this folder (`cargo test -p edgebind-e2e`).
