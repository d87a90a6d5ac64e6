//! The hand-off from IO threads to the Python event loop thread.
//!
//! Theory of operation
//! -------------------
//! IO threads (tokio) never take the GIL. Whatever the Python side must react to — a new
//! request, a body chunk for a `receive()` that is waiting, a disconnect, room in a full
//! response queue, a log line — becomes an [`Event`] pushed onto one queue. The event loop
//! watches an `eventfd` with `loop.add_reader`; the fd is written only when the queue goes
//! from "nobody told the loop" to "the loop has been told", so a burst of a thousand events
//! costs one wake-up and one drain, under one GIL hold.
//!
//! The `notified` flag is cleared by the consumer *before* it swaps the queue out, so an
//! event pushed at any moment is either in the batch being taken or causes a fresh write.
//! The worst a race can do is one spurious wake-up that finds an empty queue.

pub mod wakeups;

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::{Py, PyAny};

use crate::asgi::http::RequestShared;
use crate::asgi::scope::RequestHead;
use crate::asgi::websocket::WsShared;

/// Severity of a log line raised on an IO thread, forwarded to the `uvicorn.error` logger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `logging.DEBUG`
    Debug,
    /// `logging.INFO`
    Info,
    /// `logging.WARNING`
    Warning,
    /// `logging.ERROR`
    Error,
}

impl Level {
    /// The numeric level of Python's `logging` module.
    pub fn as_python(self) -> i32 {
        match self {
            Level::Debug => 10,
            Level::Info => 20,
            Level::Warning => 30,
            Level::Error => 40,
        }
    }
}

/// Something the event loop thread has to act on.
pub enum Event {
    /// A request head arrived: build the scope and start the app.
    Request(Arc<RequestShared>, Box<RequestHead>),
    /// The state of a running request changed (body data, disconnect, send capacity):
    /// resolve whichever Python futures it was waiting on.
    Wake(Arc<RequestShared>),
    /// A WebSocket upgrade request: build the scope and start the app.
    WsConnect(Arc<WsShared>, Box<RequestHead>),
    /// A WebSocket's state changed: resolve its waiting Python futures.
    WsWake(Arc<WsShared>),
    /// A log record from an IO thread.
    Log(Level, String),
    /// An access line for a response the IO thread wrote itself (503 over the limit).
    Access(Box<crate::common::access::AccessRecord>),
    /// A body the IO thread has finished writing from: drop it under the GIL.
    Release(crate::asgi::lent::Lent),
    /// A closed connection's scope `client` and `server` values: drop them under the GIL.
    ReleaseAddrs(Py<PyAny>, Py<PyAny>),
}

/// The ready queue plus its wake-up descriptor.
pub struct Bridge {
    queue: Mutex<Vec<Event>>,
    notified: AtomicBool,
    eventfd: OwnedFd,
    first_queued_at: AtomicU64,
}

thread_local! {
    /// True on an IO thread between its wake-up and its next park, the only window in
    /// which a held-back wake-up is certain to be sent (by `flush_on_park`). Any other
    /// thread (the loop thread dropping a future, a runtime shutting down) signals at once.
    static HOLDING_WAKEUPS: Cell<bool> = const { Cell::new(false) };
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

impl Bridge {
    /// Create the queue and a non-blocking `eventfd` for the loop to watch.
    pub fn new() -> io::Result<Bridge> {
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Bridge {
            queue: Mutex::new(Vec::with_capacity(256)),
            notified: AtomicBool::new(false),
            first_queued_at: AtomicU64::new(0),
            // SAFETY: fd was just created and is owned by nobody else.
            eventfd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The descriptor the event loop registers with `add_reader`.
    pub fn fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// Queue an event; wakes the loop if it has not been told since its last drain.
    pub fn push(&self, event: Event) {
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

    /// An IO thread woke up: wake-ups it causes may wait for its next park.
    pub fn io_thread_unparked() {
        HOLDING_WAKEUPS.set(true);
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

    /// Queue a log line.
    pub fn log(&self, level: Level, message: impl Into<String>) {
        self.push(Event::Log(level, message.into()));
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to our own eventfd. EAGAIN (counter full)
        // cannot matter: the loop is already due to wake.
        unsafe {
            libc::write(self.fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Wake the loop again although nothing new was queued: the last drain left events.
    pub fn rearm(&self) {
        self.signal();
    }

    /// Move everything queued so far to the end of `into` (called on the loop thread when
    /// the fd is readable). The queue keeps its capacity for the IO threads.
    pub fn take(&self, into: &mut impl Extend<Event>) {
        let mut counter: u64 = 0;
        // SAFETY: reading 8 bytes into a valid u64 from our own non-blocking eventfd.
        unsafe {
            libc::read(self.fd(), (&mut counter as *mut u64).cast(), 8);
        }
        self.notified.store(false, Ordering::Release);
        let mut queue = self.queue.lock().unwrap();
        into.extend(queue.drain(..));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let bridge = Bridge::new().unwrap();
        assert!(!readable(bridge.fd()));
        bridge.log(Level::Info, "a");
        assert!(readable(bridge.fd()));
        bridge.log(Level::Info, "b");
        let mut batch = Vec::new();
        bridge.take(&mut batch);
        assert_eq!(batch.len(), 2);
        assert!(!readable(bridge.fd()), "drained fd stays quiet");
        bridge.log(Level::Warning, "c");
        assert!(
            readable(bridge.fd()),
            "next event after a drain wakes again"
        );
        let mut batch = Vec::new();
        bridge.take(&mut batch);
        assert!(matches!(batch[0], Event::Log(Level::Warning, _)));
    }

    #[test]
    fn concurrent_pushes_are_never_lost() {
        let bridge = Arc::new(Bridge::new().unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = bridge.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        b.log(Level::Debug, "x");
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
        let bridge = Arc::new(Bridge::new().unwrap());
        let b = bridge.clone();
        std::thread::spawn(move || {
            Bridge::io_thread_unparked();
            b.log(Level::Info, "held");
            assert!(!readable(b.fd()), "signalled before park");
            b.flush_on_park();
            assert!(readable(b.fd()));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn other_threads_and_big_batches_wake_at_once() {
        let bridge = Bridge::new().unwrap();
        // Not an IO thread between unpark and park: no one would flush later.
        bridge.log(Level::Info, "now");
        assert!(readable(bridge.fd()));
        let mut batch = Vec::new();
        bridge.take(&mut batch);
        batch.clear();
        Bridge::io_thread_unparked();
        for _ in 0..WAKE_BATCH {
            bridge.log(Level::Info, "x");
        }
        assert!(readable(bridge.fd()), "a full batch must not wait for park");
        bridge.flush_on_park();
    }
}
