//! The keep-alive and header-read timeout of an HTTP/1 connection, with one timer per
//! connection instead of one per request.
//!
//! hyper's own header-read timeout arms a fresh timer whenever it starts waiting for a
//! request head and drops it once the head is in: for every request, a boxed sleep, clock
//! reads, and an insertion into and a removal from tokio's timer wheel (about 900
//! instructions a request under callgrind). Here a request in progress is
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
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::common::clock::coarse_now_ms;
use crate::exchange::activity::Activity;

/// How far the coarse clock may lag the timer's clock: one kernel tick (10 ms at HZ=100),
/// doubled. Before `deadline - COARSE_LAG` on the coarse clock the timer cannot have fired.
const COARSE_LAG_MS: u64 = 20;

/// What the idle timer has to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Idle for `park_after`: the connection may give back its buffers (`server/park.rs`).
    /// Said once per idle spell.
    Park,
    /// Idle for the whole timeout: close.
    Expired,
}

/// The connection's idle deadline, and optionally an earlier one for parking.
pub struct IdleTimeout {
    timeout: Duration,
    /// When parking applies: after this much idle time (less than `timeout`).
    park_after: Option<Duration>,
    /// The idle spell (when it began, coarse ms) whose `Park` was said.
    parked_spell: Option<u64>,
    sleep: Pin<Box<Sleep>>,
    /// The sleep has been polled since it was last set, so its firing wakes this task.
    registered: bool,
    /// Coarse-clock milliseconds before which the sleep cannot have fired. Checked instead of
    /// the sleep on every poll of the connection: the sleep is a separate allocation, a cold
    /// cache line per request at 1,000 connections, and the clock is one vDSO read.
    check_from_ms: u64,
}

impl IdleTimeout {
    /// A deadline `timeout` after the connection last became idle.
    pub fn new(timeout: Duration) -> IdleTimeout {
        IdleTimeout::with_park(timeout, None)
    }

    /// As [`new`](IdleTimeout::new), also saying [`Idle::Park`] once the connection has
    /// been idle for `park_after` (when that is shorter than the timeout).
    pub fn with_park(timeout: Duration, park_after: Option<Duration>) -> IdleTimeout {
        let park_after = park_after.filter(|park| *park < timeout);
        let first = park_after.unwrap_or(timeout);
        IdleTimeout {
            timeout,
            park_after,
            parked_spell: None,
            sleep: Box::pin(tokio::time::sleep(first)),
            registered: false,
            check_from_ms: check_from(first),
        }
    }

    /// Whether the connection, whose requests `activity` counts, has now been idle for the
    /// whole timeout (a `Park` is passed over).
    pub fn poll_expired(&mut self, activity: &Activity, cx: &mut Context<'_>) -> bool {
        self.poll(activity, cx) == Some(Idle::Expired)
    }

    /// Whether the connection, whose requests `activity` counts, has now been idle long
    /// enough to park or to close. Called on every poll of the connection's task; while the
    /// timer is pending it only reads the coarse clock (the sleep was polled once with this
    /// task's waker, which does not change, so its firing wakes the task).
    pub fn poll(&mut self, activity: &Activity, cx: &mut Context<'_>) -> Option<Idle> {
        loop {
            if !self.registered {
                self.registered = true;
                if self.sleep.as_mut().poll(cx).is_pending() {
                    return None;
                }
            } else if coarse_now_ms() < self.check_from_ms || !self.sleep.is_elapsed() {
                return None;
            }
            // The timer fired: idle long enough, or set it for when it could be.
            let (left, said) = self.next(activity);
            if said == Some(Idle::Expired) {
                return said;
            }
            self.set(left);
            if said.is_some() {
                self.registered = self.sleep.as_mut().poll(cx).is_pending();
                return said;
            }
        }
    }

    /// The connection could not park just now: say `Park` again after another `park_after`.
    pub fn park_later(&mut self) {
        if let Some(park) = self.park_after {
            self.parked_spell = None;
            self.set(park);
        }
    }

    /// What the idle time now calls for, and how long until the timer should next look.
    fn next(&mut self, activity: &Activity) -> (Duration, Option<Idle>) {
        let Some(idle) = activity.idle_for() else {
            return (self.park_after.unwrap_or(self.timeout), None);
        };
        if idle >= self.timeout {
            return (Duration::ZERO, Some(Idle::Expired));
        }
        let spell = activity.idle_since_ms();
        match self.park_after {
            Some(park) if self.parked_spell != Some(spell) => {
                if idle >= park {
                    self.parked_spell = Some(spell);
                    (self.timeout - idle, Some(Idle::Park))
                } else {
                    (park - idle, None)
                }
            }
            _ => (self.timeout - idle, None),
        }
    }

    fn set(&mut self, left: Duration) {
        self.sleep.as_mut().reset(Instant::now() + left);
        self.check_from_ms = check_from(left);
        self.registered = false;
    }
}

/// The coarse-clock time before which a sleep of `left` set now cannot have fired.
fn check_from(left: Duration) -> u64 {
    (coarse_now_ms() + left.as_millis() as u64).saturating_sub(COARSE_LAG_MS)
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
    async fn time_to_expiry(timer: &mut IdleTimeout, activity: &Activity) -> Duration {
        let start = Instant::now();
        std::future::poll_fn(|cx| {
            if timer.poll_expired(activity, cx) {
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
    async fn expires_one_timeout_from_now(timer: &mut IdleTimeout, activity: &Activity) {
        let took = time_to_expiry(timer, activity).await;
        assert!(took >= TIMEOUT - SLACK, "{took:?}");
        assert!(took < TIMEOUT * 3, "{took:?}");
    }

    #[test]
    fn an_idle_connection_expires_after_the_timeout() {
        runtime().block_on(async {
            let mut timer = IdleTimeout::new(TIMEOUT);
            expires_one_timeout_from_now(&mut timer, &Activity::new()).await;
        });
    }

    #[test]
    fn a_request_in_progress_is_never_cut_off() {
        runtime().block_on(async {
            let activity = Activity::new();
            let mut timer = IdleTimeout::new(TIMEOUT);
            activity.begin();
            let waited = tokio::time::timeout(TIMEOUT * 3, time_to_expiry(&mut timer, &activity));
            assert!(waited.await.is_err(), "expired with a request in progress");
            activity.end();
            // Idle again from the end of the request: a full timeout from here.
            expires_one_timeout_from_now(&mut timer, &activity).await;
        });
    }

    /// Poll `timer` until it says something, returning what and when.
    async fn next_said(timer: &mut IdleTimeout, activity: &Activity) -> (Idle, Duration) {
        let start = Instant::now();
        let said = std::future::poll_fn(|cx| match timer.poll(activity, cx) {
            Some(said) => std::task::Poll::Ready(said),
            None => std::task::Poll::Pending,
        })
        .await;
        (said, start.elapsed())
    }

    #[test]
    fn park_is_said_once_per_idle_spell_before_the_timeout() {
        runtime().block_on(async {
            let activity = Activity::new();
            let mut timer = IdleTimeout::with_park(TIMEOUT * 2, Some(TIMEOUT / 2));
            let (said, took) = next_said(&mut timer, &activity).await;
            assert_eq!(said, Idle::Park);
            assert!(took >= TIMEOUT / 2 - SLACK && took < TIMEOUT, "{took:?}");
            // Not again for the same spell: the next thing is the timeout.
            let (said, took) = next_said(&mut timer, &activity).await;
            assert_eq!(said, Idle::Expired);
            assert!(took >= TIMEOUT * 3 / 2 - SLACK, "{took:?}");
        });
    }

    #[test]
    fn after_unparking_the_next_idle_spell_parks_again() {
        runtime().block_on(async {
            let activity = Activity::new();
            let mut timer = IdleTimeout::with_park(TIMEOUT * 10, Some(TIMEOUT / 2));
            assert_eq!(next_said(&mut timer, &activity).await.0, Idle::Park);
            // The client's next bytes came: unparked, one more request.
            timer.park_later();
            activity.begin();
            tokio::time::sleep(TIMEOUT).await;
            activity.end();
            let (said, took) = next_said(&mut timer, &activity).await;
            assert_eq!(said, Idle::Park);
            assert!(
                took >= TIMEOUT / 2 - SLACK && took < TIMEOUT * 2,
                "{took:?}"
            );
        });
    }

    #[test]
    fn a_refused_park_is_said_again_later() {
        runtime().block_on(async {
            let activity = Activity::new();
            let mut timer = IdleTimeout::with_park(TIMEOUT * 10, Some(TIMEOUT / 2));
            assert_eq!(next_said(&mut timer, &activity).await.0, Idle::Park);
            timer.park_later();
            let (said, took) = next_said(&mut timer, &activity).await;
            assert_eq!(said, Idle::Park);
            assert!(
                took >= TIMEOUT / 2 - SLACK && took < TIMEOUT * 2,
                "{took:?}"
            );
        });
    }

    #[test]
    fn no_park_when_the_timeout_comes_first() {
        runtime().block_on(async {
            let timer = IdleTimeout::with_park(TIMEOUT, Some(TIMEOUT * 2));
            assert_eq!(timer.park_after, None);
        });
    }

    #[test]
    fn the_idle_time_counts_from_the_last_request_not_from_accept() {
        runtime().block_on(async {
            let activity = Activity::new();
            let mut timer = IdleTimeout::new(TIMEOUT);
            tokio::time::sleep(TIMEOUT / 2).await;
            // A quick request half-way through the first timeout.
            activity.begin();
            activity.end();
            expires_one_timeout_from_now(&mut timer, &activity).await;
        });
    }
}
