//! The hand-off from IO threads to the Python event loop thread.
//!
//! Theory of operation
//! -------------------
//! IO threads (tokio) never take the GIL. Whatever the loop thread must act on becomes an
//! event pushed onto one queue; the bridge carries events of any type and never looks into
//! them (the app side defines them, `asgi/events.rs`). The event loop watches a descriptor
//! (`wake_fd.rs`: an `eventfd` on Linux) with `loop.add_reader`; the fd is written only when the queue goes from "nobody told the
//! loop" to "the loop has been told", so a burst of a thousand events costs one wake-up and
//! one drain, under one GIL hold.
//!
//! The `notified` flag is cleared by the consumer *before* it swaps the queue out, so an
//! event pushed at any moment is either in the batch being taken or causes a fresh write.
//! The worst a race can do is one spurious wake-up that finds an empty queue.
//!
//! The way back, from the loop thread to the IO threads, is `io_wakeups`.

pub mod io_wakeups;
pub mod wake_fd;

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use wake_fd::WakeFd;

/// The ready queue plus its wake-up descriptor.
pub struct Bridge<E> {
    queue: Mutex<Vec<E>>,
    notified: AtomicBool,
    wake: WakeFd,
    first_queued_at: AtomicU64,
}

thread_local! {
    /// True on an IO thread between its wake-up and its next park, the only window in
    /// which a held-back wake-up is certain to be sent (by `flush_on_park`). Any other
    /// thread (the loop thread dropping a future, a runtime shutting down) signals at once.
    static HOLDING_WAKEUPS: Cell<bool> = const { Cell::new(false) };
}

/// An IO thread woke up: wake-ups it causes may wait for its next park (`flush_on_park`).
pub fn io_thread_unparked() {
    HOLDING_WAKEUPS.set(true);
}

/// Events that wake the loop at once even while the IO thread is still busy.
const WAKE_BATCH: usize = 64;

/// Longest an event waits for the IO thread to go idle before the loop is woken anyway.
const WAKE_DELAY_MICROS: u64 = 500;

fn now_micros() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

impl<E> Bridge<E> {
    /// Create the queue and the descriptor for the loop to watch.
    pub fn new() -> io::Result<Bridge<E>> {
        Ok(Bridge {
            queue: Mutex::new(Vec::with_capacity(256)),
            notified: AtomicBool::new(false),
            first_queued_at: AtomicU64::new(0),
            wake: WakeFd::new()?,
        })
    }

    /// The descriptor the event loop registers with `add_reader`.
    pub fn fd(&self) -> RawFd {
        self.wake.fd()
    }

    /// Queue an event; wakes the loop if it has not been told since its last drain.
    pub fn push(&self, event: E) {
        let queued = {
            let mut queue = self.queue.lock().unwrap();
            queue.push(event);
            if queue.len() == 1 {
                self.first_queued_at.store(now_micros(), Ordering::Relaxed);
            }
            queue.len()
        };
        if self.notified.load(Ordering::Acquire) {
            return;
        }
        // While the IO thread is busy, hold the wake-up: it is sent when the thread goes
        // idle (`flush_on_park`), which on a shared core is when the loop thread can run
        // anyway, so one switch carries the whole batch instead of the loop thread
        // preempting the IO thread at the first event. Big or old batches go at once, so
        // a loop on another core is never kept waiting.
        let old = now_micros().saturating_sub(self.first_queued_at.load(Ordering::Relaxed))
            >= WAKE_DELAY_MICROS;
        if (!HOLDING_WAKEUPS.get() || queued >= WAKE_BATCH || old)
            && !self.notified.swap(true, Ordering::AcqRel)
        {
            self.signal();
        }
    }

    /// An IO thread is about to go idle (or stop): wake the loop for whatever is queued.
    pub fn flush_on_park(&self) {
        HOLDING_WAKEUPS.set(false);
        if self.notified.load(Ordering::Acquire) {
            return;
        }
        let pending = !self.queue.lock().unwrap().is_empty();
        if pending && !self.notified.swap(true, Ordering::AcqRel) {
            self.signal();
        }
    }

    fn signal(&self) {
        self.wake.signal();
    }

    /// Wake the loop again although nothing new was queued: the last drain left events.
    pub fn rearm(&self) {
        self.signal();
    }

    /// Move everything queued so far to the end of `into` (called on the loop thread when
    /// the fd is readable). The queue keeps its capacity for the IO threads. Returns how
    /// long the oldest event taken waited, in µs (`None` when there was none): the event
    /// loop's lag.
    pub fn take(&self, into: &mut impl Extend<E>) -> Option<u64> {
        self.wake.clear();
        self.notified.store(false, Ordering::Release);
        let mut queue = self.queue.lock().unwrap();
        if queue.is_empty() {
            return None;
        }
        let waited = now_micros().saturating_sub(self.first_queued_at.load(Ordering::Relaxed));
        into.extend(queue.drain(..));
        Some(waited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn readable(fd: RawFd) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
    }

    #[test]
    fn one_wakeup_per_batch() {
        let bridge: Bridge<&str> = Bridge::new().unwrap();
        assert!(!readable(bridge.fd()));
        bridge.push("a");
        assert!(readable(bridge.fd()));
        bridge.push("b");
        let mut batch = Vec::new();
        bridge.take(&mut batch);
        assert_eq!(batch.len(), 2);
        assert!(!readable(bridge.fd()), "drained fd stays quiet");
        bridge.push("c");
        assert!(
            readable(bridge.fd()),
            "next event after a drain wakes again"
        );
        let mut batch = Vec::new();
        bridge.take(&mut batch);
        assert_eq!(batch, ["c"]);
    }

    #[test]
    fn concurrent_pushes_are_never_lost() {
        let bridge: Arc<Bridge<&str>> = Arc::new(Bridge::new().unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = bridge.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        b.push("x");
                    }
                })
            })
            .collect();
        let mut seen = 0;
        let mut batch = Vec::new();
        while seen < 40_000 {
            let mut pfd = libc::pollfd {
                fd: bridge.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 1000) };
            bridge.take(&mut batch);
            seen += batch.len();
            batch.clear();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(seen, 40_000);
    }

    #[test]
    fn io_thread_holds_the_wakeup_until_it_parks() {
        let bridge: Arc<Bridge<&str>> = Arc::new(Bridge::new().unwrap());
        let b = bridge.clone();
        std::thread::spawn(move || {
            io_thread_unparked();
            b.push("held");
            assert!(!readable(b.fd()), "signalled before park");
            b.flush_on_park();
            assert!(readable(b.fd()));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn other_threads_and_big_batches_wake_at_once() {
        let bridge: Bridge<&str> = Bridge::new().unwrap();
        // Not an IO thread between unpark and park: no one would flush later.
        bridge.push("now");
        assert!(readable(bridge.fd()));
        let mut batch = Vec::new();
        bridge.take(&mut batch);
        batch.clear();
        io_thread_unparked();
        for _ in 0..WAKE_BATCH {
            bridge.push("x");
        }
        assert!(readable(bridge.fd()), "a full batch must not wait for park");
        bridge.flush_on_park();
    }
}
