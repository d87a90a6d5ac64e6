//! How much response body one streamed response may queue before `send()` waits.
//!
//! Every `send()` that finds its queue full suspends the app until the IO thread has taken
//! the queue, and that round trip (a future, a loop turn, a task step) is most of what a
//! stream costs the event loop thread. A deeper queue means fewer round trips: on the 1 MiB
//! stream at 128 connections, 256 KiB gave 1.14x the req/s of 64 KiB (docs/performance.md).
//! But the queue holds the app's objects (copies, for `bytearray` and `memoryview`), so
//! depth times streams is memory; and with 1,000 clients a 256 KiB queue once let some
//! responses run ahead until wrk timed out on others. At 1,000 streams 128 KiB each gave
//! 1.17x the req/s of 64 KiB at 0.82x the CPU per response, with a lower p99 and no wrk
//! timeouts where 64 KiB had some, for 64 MB more at the peak when every
//! chunk is a new object. So one per-server budget is shared out: each stream may queue
//! the budget divided by the streams in progress or by the open connections, whichever is
//! more (HTTP/2 has many streams per connection; an HTTP/1 client between two responses
//! still competes for the IO thread), never less than 64 KiB (asyncio's transport
//! high-water mark, as uvicorn has) and never more than 256 KiB.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::limits::{
    RESPONSE_BODY_HIGH_WATER_MAX, RESPONSE_BODY_HIGH_WATER_MIN, RESPONSE_QUEUE_BUDGET,
};

/// The count of streamed responses in progress, and the share of the budget each gets.
#[derive(Default)]
pub struct QueueBudget {
    streaming: AtomicUsize,
}

impl QueueBudget {
    /// A streamed response starts (its body was handed to hyper).
    pub fn stream_started(&self) {
        self.streaming.fetch_add(1, Ordering::Relaxed);
    }

    /// A streamed response is over (its body was dropped, finished or not).
    pub fn stream_ended(&self) {
        self.streaming.fetch_sub(1, Ordering::Relaxed);
    }

    /// Queued bytes past which `send()` waits, for each stream now, with `connections`
    /// open.
    pub fn high_water(&self, connections: usize) -> usize {
        share(self.streaming.load(Ordering::Relaxed).max(connections))
    }
}

fn share(sharers: usize) -> usize {
    (RESPONSE_QUEUE_BUDGET / sharers.max(1))
        .clamp(RESPONSE_BODY_HIGH_WATER_MIN, RESPONSE_BODY_HIGH_WATER_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_streams_get_the_most_many_get_the_least() {
        assert_eq!(share(0), RESPONSE_BODY_HIGH_WATER_MAX);
        assert_eq!(share(1), RESPONSE_BODY_HIGH_WATER_MAX);
        assert_eq!(share(128), 256 * 1024);
        assert_eq!(share(512), 256 * 1024);
        assert_eq!(share(1024), 128 * 1024);
        assert_eq!(share(2048), RESPONSE_BODY_HIGH_WATER_MIN);
        assert_eq!(share(10_000), RESPONSE_BODY_HIGH_WATER_MIN);
    }

    #[test]
    fn the_share_follows_streams_or_connections_whichever_is_more() {
        let budget = QueueBudget::default();
        for _ in 0..4096 {
            budget.stream_started();
        }
        assert_eq!(budget.high_water(1), RESPONSE_BODY_HIGH_WATER_MIN);
        for _ in 0..4095 {
            budget.stream_ended();
        }
        assert_eq!(budget.high_water(1), RESPONSE_BODY_HIGH_WATER_MAX);
        assert_eq!(budget.high_water(1024), 128 * 1024);
        assert_eq!(budget.high_water(4096), RESPONSE_BODY_HIGH_WATER_MIN);
    }
}
