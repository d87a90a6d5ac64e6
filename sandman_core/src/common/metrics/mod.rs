//! Metrics and health, kept where every process of a group can read them: one shared
//! memory segment with a slot per server process (`segment.rs`, laid out in `layout.rs`).
//!
//! Theory of operation
//! -------------------
//! A server process claims a slot and updates its counters with relaxed atomic adds on the
//! IO threads (`recorder.rs`), as cheap as counters in private memory. Its event loop
//! stamps a heartbeat in the slot every 100 ms and marks the slot ready or draining. The
//! process that owns `--metrics-port` (the server itself, or the `--workers` supervisor)
//! maps the same segment and, on each scrape, sums the slots (`exposition.rs`) and judges
//! liveness and readiness from the heartbeats and states (`health.rs`). A scrape never
//! touches a worker: a blocked worker still shows, as a stale heartbeat. When a worker
//! exits the supervisor folds its counters into slot 0 so totals never go backwards.

pub mod exposition;
pub mod health;
pub mod layout;
pub mod recorder;
pub mod segment;
