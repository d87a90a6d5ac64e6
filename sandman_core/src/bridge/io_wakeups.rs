//! The hand-off from the event loop thread back to the IO thread, batched.
//!
//! When `send()` completes a response (or queues a body chunk), an IO task must be woken.
//! Waking a tokio task from a foreign thread costs a syscall (the runtime's eventfd) per
//! wake. Instead, the loop thread parks the wakers here and, on the first one of a loop
//! iteration, schedules one `flush` with `loop.call_soon`: every `send()` of that iteration
//! is covered by a single cross-thread wake, and a task on the IO thread wakes the parked
//! wakers locally (same-thread wakes are queue pushes, no syscall).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use pyo3::prelude::*;
use tokio::sync::Notify;

/// Wakers parked by the loop thread for the IO thread.
#[derive(Default)]
pub struct IoWakeups {
    pending: Mutex<Vec<Waker>>,
    scheduled: AtomicBool,
    notify: Notify,
}

impl IoWakeups {
    /// Park a waker (loop thread). Returns true when the caller must schedule a flush for
    /// the end of this loop iteration (the first waker since the last flush).
    pub fn defer(&self, waker: Waker) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(waker);
        !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// Hand everything parked so far to the IO thread with one wake.
    pub fn flush(&self) {
        self.scheduled.store(false, Ordering::Release);
        self.notify.notify_one();
    }

    /// The IO-side task: wake parked wakers locally, batch after batch.
    pub async fn run(self: Arc<Self>) {
        let mut batch = Vec::new();
        loop {
            self.notify.notified().await;
            std::mem::swap(
                &mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()),
                &mut batch,
            );
            for waker in batch.drain(..) {
                waker.wake();
            }
        }
    }
}

/// The callable `loop.call_soon` runs to flush (`IoWakeups::flush`).
#[pyclass(frozen, module = "sandman_asgi._core")]
pub struct Flusher {
    wakeups: Arc<IoWakeups>,
}

impl Flusher {
    /// A flusher for these wakeups.
    pub fn new(wakeups: Arc<IoWakeups>) -> Flusher {
        Flusher { wakeups }
    }
}

#[pymethods]
impl Flusher {
    fn __call__(&self) {
        self.wakeups.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn one_flush_per_batch() {
        let w = IoWakeups::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        assert!(
            w.defer(Waker::from(count.clone())),
            "first defer schedules a flush"
        );
        assert!(
            !w.defer(Waker::from(count.clone())),
            "later ones ride along"
        );
        w.flush();
        assert!(
            w.defer(Waker::from(count.clone())),
            "after a flush, the next one schedules again"
        );
    }

    #[tokio::test]
    async fn the_io_task_wakes_everything_parked() {
        let w = Arc::new(IoWakeups::default());
        tokio::spawn(w.clone().run());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        for _ in 0..10 {
            w.defer(Waker::from(count.clone()));
        }
        w.flush();
        for _ in 0..100 {
            if count.0.load(Ordering::SeqCst) == 10 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("woke {} of 10", count.0.load(Ordering::SeqCst));
    }
}
