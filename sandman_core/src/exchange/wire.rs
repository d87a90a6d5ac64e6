//! What the connection's socket wrapper (`server/client_io.rs`) tells the exchanges on it:
//! that the client closed its sending side, and how many flushes have completed.
//!
//! A client's FIN after a complete request is ambiguous: `shutdown(SHUT_WR)` (as `nc -q`,
//! some health checkers and proxies send) still reads the answer, a full `close()` does
//! not, and nothing on the wire tells the two apart until the server writes. So the
//! request is answered, and the FIN is recorded here: the app learns of it only if it asks
//! (`receive()` after the body returns `http.disconnect`, and from then on the request is
//! treated as disconnected). A reset is a client that left, and fails the connection at
//! once, as before.
//!
//! The flush count lets a response cut short (`http/response_body.rs`) hand its last bytes
//! to the socket before the error that makes hyper drop the connection.
//!
//! The interim queue carries an HTTP/1.1 `103 Early Hints` response, which hyper cannot
//! send for a server: the wrapper writes it at hyper's next flush (hyper's own buffer is
//! empty then, so it lands between responses), or drops it when hyper's next bytes come
//! first (early hints are advisory; RFC 8297 §2 lets them be dropped).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::Waker;

use bytes::{Bytes, BytesMut};
use hyper::header::HeaderValue;

use futures::task::AtomicWaker;

/// The socket-level facts of one connection that its exchanges read.
#[derive(Default)]
pub struct Wire {
    /// The client sent its FIN while a request was in progress.
    read_closed: AtomicBool,
    /// Flushes of the connection's socket that completed (hyper flushes its own buffer
    /// first, so each one means every byte handed to hyper before it is in the kernel).
    flushes: AtomicU64,
    /// Flushes are counted (the stream is wrapped to count them).
    counting: AtomicBool,
    /// A body reader waiting for bytes that will now never come.
    reader: AtomicWaker,
    /// The app side waiting in `receive()` once the body is all read.
    app: AtomicWaker,
    /// The connection's task, whose read was held back while a request was in progress
    /// (woken when the request ends, so hyper sees the end of the stream and closes).
    held_read: AtomicWaker,
    /// An interim response waiting for the next flush (`interim` holds bytes).
    has_interim: AtomicBool,
    interim: Mutex<BytesMut>,
}

impl Wire {
    /// The client closed its sending side during a request: wake whoever waits for it.
    pub fn close_read(&self) {
        self.read_closed.store(true, Ordering::Release);
        self.reader.wake();
        self.app.wake();
    }

    /// Whether the client closed its sending side during a request.
    pub fn read_closed(&self) -> bool {
        self.read_closed.load(Ordering::Acquire)
    }

    /// Have `waker` woken when the client closes its sending side (body readers).
    pub fn register_reader(&self, waker: &Waker) {
        self.reader.register(waker);
    }

    /// Have `waker` woken when the client closes its sending side (the app's receive).
    pub fn register_app(&self, waker: &Waker) {
        self.app.register(waker);
    }

    /// The socket wrapper held back the end of the stream; `waker` is to be woken when
    /// the request in progress ends.
    pub fn hold_read(&self, waker: &Waker) {
        self.held_read.register(waker);
    }

    /// Wake the connection's task if its read was held back (once per hold).
    pub fn release_read(&self) {
        if let Some(waker) = self.held_read.take() {
            waker.wake();
        }
    }

    /// The connection's stream counts its flushes from now on.
    pub fn count_flushes(&self) {
        self.counting.store(true, Ordering::Relaxed);
    }

    /// Flushes completed so far; `None` when they are not counted (then no flush can be
    /// waited for).
    pub fn flush_count(&self) -> Option<u64> {
        self.counting
            .load(Ordering::Relaxed)
            .then(|| self.flushes.load(Ordering::Relaxed))
    }

    /// A flush of the socket completed.
    pub fn flushed(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Queue `103 Early Hints` with a `link` field per value (ASGI early hints extension)
    /// for the socket wrapper to write at hyper's next flush.
    pub fn queue_early_hints(&self, links: &[HeaderValue]) {
        let mut interim = self.interim.lock().unwrap_or_else(|e| e.into_inner());
        interim.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\n");
        for link in links {
            interim.extend_from_slice(b"link: ");
            interim.extend_from_slice(link.as_bytes());
            interim.extend_from_slice(b"\r\n");
        }
        interim.extend_from_slice(b"\r\n");
        self.has_interim.store(true, Ordering::Release);
    }

    /// Whether an interim response is queued (the socket wrapper's check on every write).
    #[inline]
    pub fn has_interim(&self) -> bool {
        self.has_interim.load(Ordering::Acquire)
    }

    /// The interim responses queued since the last call, if any (one atomic load when none).
    pub fn take_interim(&self) -> Option<Bytes> {
        if !self.has_interim.load(Ordering::Acquire) {
            return None;
        }
        let mut interim = self.interim.lock().unwrap_or_else(|e| e.into_inner());
        self.has_interim.store(false, Ordering::Release);
        (!interim.is_empty()).then(|| interim.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn closing_the_read_side_wakes_the_reader_and_the_app_once() {
        let wire = Wire::default();
        let (reader, app) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        wire.register_reader(&Waker::from(reader.clone()));
        wire.register_app(&Waker::from(app.clone()));
        assert!(!wire.read_closed());
        wire.close_read();
        assert!(wire.read_closed());
        assert_eq!(reader.0.load(Ordering::SeqCst), 1);
        assert_eq!(app.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn early_hints_are_taken_once() {
        let wire = Wire::default();
        assert_eq!(wire.take_interim(), None);
        wire.queue_early_hints(&[HeaderValue::from_static("</a.css>; rel=preload")]);
        wire.queue_early_hints(&[]);
        assert_eq!(
            wire.take_interim().as_deref(),
            Some(
                &b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n\
                   HTTP/1.1 103 Early Hints\r\n\r\n"[..]
            )
        );
        assert_eq!(wire.take_interim(), None);
    }

    #[test]
    fn a_held_read_is_released_once() {
        let wire = Wire::default();
        let task = Arc::new(Count(AtomicUsize::new(0)));
        wire.release_read();
        wire.hold_read(&Waker::from(task.clone()));
        wire.release_read();
        wire.release_read();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
    }
}
