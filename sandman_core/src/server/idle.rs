//! The keep-alive and header-read timeout of an HTTP/1 connection, with one timer per
//! connection instead of one per request.
//!
//! hyper's own header-read timeout arms a fresh timer whenever it starts waiting for a
//! request head and drops it once the head is in: for every request, a boxed sleep, clock
//! reads, and an insertion into and a removal from tokio's timer wheel (about 900
//! instructions a request under callgrind, bench/NOTES.md). Here a request in progress is
//! counted, and the time the last one ended is noted with a coarse clock read. The
//! connection's one timer fires at most once per timeout, and only then checks whether the
//! connection has been idle for the whole of it.
//!
//! A connection is idle from accept until a request head is parsed, and from the moment
//! hyper drops a response's body (the last byte is buffered) until the next head is parsed:
//! the same span hyper's timer covered, so an idle keep-alive connection and a client that
//! sends its head too slowly (slowloris) are both cut off after the timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::common::clock::coarse_now_ms;

/// Requests in progress on one connection, and when the connection last became idle.
pub struct Activity {
    in_progress: AtomicU32,
    idle_since_ms: AtomicU64,
}

impl Activity {
    /// A new connection: idle from now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_progress: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(coarse_now_ms()),
        })
    }

    /// A request head was parsed: the connection is busy until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InProgress {
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        InProgress(self.clone())
    }

    /// How long the connection has had no request in progress; `None` while it has one.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(coarse_now_ms().saturating_sub(since)))
    }
}

/// One request in progress, from its parsed head until hyper drops its response body.
pub struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0
            .idle_since_ms
            .store(coarse_now_ms(), Ordering::Relaxed);
        self.0.in_progress.fetch_sub(1, Ordering::Release);
    }
}

/// The connection's idle deadline.
pub struct IdleTimeout {
    activity: Arc<Activity>,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// The sleep has been polled since it was last set, so its firing wakes this task.
    registered: bool,
}

impl IdleTimeout {
    /// A deadline `timeout` after the connection last became idle.
    pub fn new(activity: Arc<Activity>, timeout: Duration) -> IdleTimeout {
        IdleTimeout {
            activity,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            registered: false,
        }
    }

    /// Whether the connection has now been idle for the whole timeout. Polled on every poll
    /// of the connection's task; while the timer is pending it only reads the timer's state
    /// (the sleep was polled once with this task's waker, which does not change).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if !self.registered {
                self.registered = true;
                if self.sleep.as_mut().poll(cx).is_pending() {
                    return false;
                }
            } else if !self.sleep.is_elapsed() {
                return false;
            }
            // The timer fired: idle long enough, or set it for when it could be.
            let left = match self.activity.idle_for() {
                Some(idle) if idle >= self.timeout => return true,
                Some(idle) => self.timeout - idle,
                None => self.timeout,
            };
            self.sleep.as_mut().reset(Instant::now() + left);
            self.registered = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// Poll `timer` until it reports expiry, returning how long that took.
    async fn time_to_expiry(timer: &mut IdleTimeout) -> Duration {
        let start = Instant::now();
        std::future::poll_fn(|cx| {
            if timer.poll_expired(cx) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        start.elapsed()
    }

    // Real time, short timeouts: the idle time is read from the coarse clock, which tokio's
    // paused test clock does not move. The coarse clock's tick (up to 10 ms) is the slack.
    const TIMEOUT: Duration = Duration::from_millis(200);
    const SLACK: Duration = Duration::from_millis(15);

    /// The timer reports expiry one `TIMEOUT` from now (the connection is idle from now).
    async fn expires_one_timeout_from_now(timer: &mut IdleTimeout) {
        let took = time_to_expiry(timer).await;
        assert!(took >= TIMEOUT - SLACK, "{took:?}");
        assert!(took < TIMEOUT * 3, "{took:?}");
    }

    #[test]
    fn an_idle_connection_expires_after_the_timeout() {
        runtime().block_on(async {
            let mut timer = IdleTimeout::new(Activity::new(), TIMEOUT);
            expires_one_timeout_from_now(&mut timer).await;
        });
    }

    #[test]
    fn a_request_in_progress_is_never_cut_off() {
        runtime().block_on(async {
            let activity = Activity::new();
            let mut timer = IdleTimeout::new(activity.clone(), TIMEOUT);
            let busy = activity.begin();
            let waited = tokio::time::timeout(TIMEOUT * 3, time_to_expiry(&mut timer));
            assert!(waited.await.is_err(), "expired with a request in progress");
            drop(busy);
            // Idle again from the end of the request: a full timeout from here.
            expires_one_timeout_from_now(&mut timer).await;
        });
    }

    #[test]
    fn the_idle_time_counts_from_the_last_request_not_from_accept() {
        runtime().block_on(async {
            let activity = Activity::new();
            let mut timer = IdleTimeout::new(activity.clone(), TIMEOUT);
            tokio::time::sleep(TIMEOUT / 2).await;
            drop(activity.begin()); // a quick request half-way through the first timeout
            expires_one_timeout_from_now(&mut timer).await;
        });
    }
}
