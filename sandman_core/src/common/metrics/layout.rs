//! What a metrics slot holds, and the labels and buckets its arrays stand for. Every field
//! is an atomic in shared memory where all-zero bytes are the starting state, so a fresh
//! segment needs no initialising and any process may read any slot at any time.

use std::sync::atomic::AtomicU64;

/// Methods with a label of their own; the rest count as `OTHER`.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];

/// Status classes: index 0 is a request that got no response (the client left, the app
/// aborted), then `1xx` to `5xx`.
pub const STATUS_CLASSES: [&str; 6] = ["none", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// Request duration buckets' upper bounds, in microseconds (the last bucket is `+Inf`).
pub const DURATION_BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Event-loop lag buckets' upper bounds, in microseconds (the last bucket is `+Inf`).
pub const LAG_BOUNDS_US: [u64; 13] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// Connection kinds counted as open.
pub const PROTOCOLS: [&str; 3] = ["http1", "http2", "websocket"];

/// A slot's lifecycle state.
pub mod state {
    /// Not claimed, or claimed and still starting (lifespan startup, binding).
    pub const STARTING: u64 = 0;
    /// Serving: lifespan startup done and listening.
    pub const READY: u64 = 1;
    /// Shutting down: no longer ready, still draining connections.
    pub const DRAINING: u64 = 2;
}

/// One server process's counters, gauges and health marks.
#[repr(C, align(128))]
#[derive(Default)]
pub struct Slot {
    /// The owner's pid; 0 when free.
    pub owner: AtomicU64,
    /// [`state`].
    pub state: AtomicU64,
    /// When the owner's event loop last turned (monotonic ms); 0 before its first turn.
    pub heartbeat_ms: AtomicU64,
    /// Finished requests by method and status class.
    pub requests: [[AtomicU64; STATUS_CLASSES.len()]; METHODS.len()],
    /// Requests begun (in flight: begun minus finished).
    pub started: AtomicU64,
    /// Request durations, non-cumulative buckets (`DURATION_BOUNDS_US` and `+Inf`).
    pub duration_buckets: [AtomicU64; DURATION_BOUNDS_US.len() + 1],
    /// Sum of request durations, µs.
    pub duration_sum_us: AtomicU64,
    /// Connections opened, by [`PROTOCOLS`].
    pub opened: [AtomicU64; PROTOCOLS.len()],
    /// Connections closed, by [`PROTOCOLS`].
    pub closed: [AtomicU64; PROTOCOLS.len()],
    /// Bytes read from clients.
    pub bytes_in: AtomicU64,
    /// Bytes written to clients (files sent with `sendfile` included).
    pub bytes_out: AtomicU64,
    /// WebSocket messages received.
    pub ws_messages_in: AtomicU64,
    /// WebSocket messages sent.
    pub ws_messages_out: AtomicU64,
    /// Responses from static mounts.
    pub static_responses: AtomicU64,
    /// Requests answered from the response cache.
    pub cache_hits: AtomicU64,
    /// Cacheable requests the cache could not answer.
    pub cache_misses: AtomicU64,
    /// Responses stored.
    pub cache_stores: AtomicU64,
    /// Entries evicted to stay within `--cache-size`.
    pub cache_evictions: AtomicU64,
    /// Bytes the cache holds now (a gauge, set by the owner).
    pub cache_bytes: AtomicU64,
    /// Event-loop lag, non-cumulative buckets (`LAG_BOUNDS_US` and `+Inf`).
    pub lag_buckets: [AtomicU64; LAG_BOUNDS_US.len() + 1],
    /// Sum of event-loop lags, µs.
    pub lag_sum_us: AtomicU64,
    /// Workers replaced by the supervisor (slot 0 only).
    pub worker_restarts: AtomicU64,
}

/// The segment's first bytes: what it is and the group's own marks.
#[repr(C, align(128))]
#[derive(Default)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// Slots that follow the header.
    pub slots: AtomicU64,
    /// The supervisor began a graceful shutdown: the group is not ready.
    pub draining: AtomicU64,
}

/// Marks a segment as Sandman's, this layout.
pub const MAGIC: u64 = 0x5341_4e44_4d45_5402; // "SANDMET" + layout version 2

/// The bucket of `value` among `bounds` (the last index for `+Inf`).
pub fn bucket(bounds: &[u64], value: u64) -> usize {
    bounds.partition_point(|&bound| bound < value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_bounds() {
        assert_eq!(bucket(&DURATION_BOUNDS_US, 0), 0);
        assert_eq!(bucket(&DURATION_BOUNDS_US, 500), 0);
        assert_eq!(bucket(&DURATION_BOUNDS_US, 501), 1);
        assert_eq!(bucket(&DURATION_BOUNDS_US, 10_000_000), 13);
        assert_eq!(bucket(&DURATION_BOUNDS_US, 10_000_001), 14);
    }

    #[test]
    fn slots_do_not_share_cache_lines() {
        assert_eq!(std::mem::size_of::<Slot>() % 128, 0);
        assert!(std::mem::size_of::<Slot>() <= 1024);
    }
}
