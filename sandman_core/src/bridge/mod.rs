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

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
}

/// The ready queue plus its wake-up descriptor.
pub struct Bridge {
    queue: Mutex<Vec<Event>>,
    notified: AtomicBool,
    eventfd: OwnedFd,
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
        self.queue.lock().unwrap().push(event);
        if !self.notified.swap(true, Ordering::AcqRel) {
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

    /// Take everything queued so far (called on the loop thread when the fd is readable).
    pub fn take(&self, into: &mut Vec<Event>) {
        let mut counter: u64 = 0;
        // SAFETY: reading 8 bytes into a valid u64 from our own non-blocking eventfd.
        unsafe {
            libc::read(self.fd(), (&mut counter as *mut u64).cast(), 8);
        }
        self.notified.store(false, Ordering::Release);
        let mut queue = self.queue.lock().unwrap();
        std::mem::swap(&mut *queue, into);
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
}
