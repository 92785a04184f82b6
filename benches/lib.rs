//! Criterion benches of apr-rs live beside this file (`countdown.rs`, `rollout.rs`); run
//! them with `cargo bench -p apr-benches`. Results and machines are in
//! `docs/performance.md`.
