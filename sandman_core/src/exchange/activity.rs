//! Requests in progress on one connection, and when it last became idle: what the
//! connection's idle timeout (`server/idle.rs`) reads, and what each request updates.
//!
//! A connection is idle from accept until a request head is parsed, and from the moment
//! the transport drops a response's body (the last byte is buffered) until the next head
//! is parsed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::clock::coarse_now_ms;

/// The connection's request count and idle mark. It lives inside the connection's state,
/// next to the fields every request touches, rather than in an allocation of its own: at
/// 1,000 connections each separate allocation is one more cold cache line per request.
pub struct Activity {
    in_progress: AtomicU32,
    idle_since_ms: AtomicU64,
    /// A request has ended on this connection (an idle one may then be parked).
    served: AtomicBool,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

impl Activity {
    /// A new connection: idle from now.
    pub fn new() -> Activity {
        Activity {
            in_progress: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(coarse_now_ms()),
            served: AtomicBool::new(false),
        }
    }

    /// A request head was parsed: the connection is busy until the matching [`end`].
    ///
    /// [`end`]: Activity::end
    pub fn begin(&self) {
        self.in_progress.fetch_add(1, Ordering::Relaxed);
    }

    /// A request's response body was dropped: idle from now unless another is in progress.
    pub fn end(&self) {
        self.idle_since_ms.store(coarse_now_ms(), Ordering::Relaxed);
        self.served.store(true, Ordering::Relaxed);
        self.in_progress.fetch_sub(1, Ordering::Release);
    }

    /// The coarse-clock time the connection last became idle (at accept, until a request
    /// has come and gone).
    pub fn idle_since_ms(&self) -> u64 {
        self.idle_since_ms.load(Ordering::Relaxed)
    }

    /// Whether no request has begun on the connection since it was accepted, given
    /// [`idle_since_ms`] as it was then. (A request that began and ended within the same
    /// millisecond as the accept also counts as none: that only ever errs on the side of
    /// waiting for a request at shutdown.)
    ///
    /// [`idle_since_ms`]: Activity::idle_since_ms
    pub fn unused_since(&self, accepted_ms: u64) -> bool {
        self.in_progress.load(Ordering::Acquire) == 0 && self.idle_since_ms() == accepted_ms
    }

    /// Whether a request has ended on this connection.
    pub fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    /// Whether a request is in progress.
    pub fn busy(&self) -> bool {
        self.in_progress.load(Ordering::Acquire) > 0
    }

    /// How long the connection has had no request in progress; `None` while it has one.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(coarse_now_ms().saturating_sub(since)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_unused_until_its_first_request_begins() {
        let activity = Activity::new();
        let accepted = activity.idle_since_ms();
        assert!(activity.unused_since(accepted));
        assert!(!activity.served());
        activity.begin();
        assert!(!activity.unused_since(accepted), "a request is in progress");
        assert!(activity.idle_for().is_none());
        // Past the coarse clock's tick, so the end is a later time than the accept.
        std::thread::sleep(Duration::from_millis(30));
        activity.end();
        assert!(
            !activity.unused_since(accepted),
            "a request has come and gone"
        );
        assert!(activity.idle_for().is_some());
        assert!(activity.served());
    }
}
