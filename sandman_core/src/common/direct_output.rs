//! A plain TCP connection's side door for file bodies: the file goes out with `sendfile(2)`
//! below hyper, and hyper writes a placeholder in its place that never reaches the socket.
//!
//! hyper writes every response byte through the connection's stream, from buffers in
//! memory; a file would have to be read into one first, one more copy of every byte. On
//! plain TCP (never under TLS, where the bytes must be encrypted in memory) a file
//! body (`http/static_files/file_body.rs`: static mounts, pathsend) instead:
//!
//! 1. hands its file region here ([`DirectOutput::send`]) and waits;
//! 2. hyper flushes the response head; a flush reaching the stream means hyper's buffer
//!    is empty, so the stream (`server/file_send.rs`) sends the region with `sendfile`
//!    right after the head, then reports it done here;
//! 3. the body wakes and yields a placeholder frame of the same length (hyper counts it
//!    against `content-length`); the stream swallows exactly that many bytes the next
//!    time hyper writes, without a system call.
//!
//! Both sides run on the connection's one task, so the lock is never contended; the atomics
//! let the stream skip it on every write that has nothing to do with a file.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Bytes of a file to send.
pub struct FileRegion {
    /// The open file.
    pub file: Arc<File>,
    /// Where the bytes start.
    pub offset: u64,
    /// How many.
    pub len: u64,
}

/// The shared state of one connection's side door.
#[derive(Default)]
pub struct DirectOutput {
    /// A region is waiting for the next flush.
    armed: AtomicBool,
    /// Placeholder bytes hyper will write that are already on the wire.
    placeholder: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    region: Option<FileRegion>,
    outcome: Option<io::Result<u64>>,
    waker: Option<Waker>,
}

impl DirectOutput {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    // -- the body's side ------------------------------------------------------------------

    /// Send `region` at hyper's next flush.
    pub fn send(&self, region: FileRegion) {
        let mut state = self.lock();
        state.region = Some(region);
        state.outcome = None;
        self.armed.store(true, Ordering::Release);
    }

    /// Whether the region went out: its length (now owed as placeholder bytes), or the
    /// error that cut it short.
    pub fn poll_sent(&self, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let mut state = self.lock();
        match state.outcome.take() {
            Some(Ok(len)) => {
                self.placeholder.fetch_add(len, Ordering::AcqRel);
                Poll::Ready(Ok(len))
            }
            Some(Err(e)) => Poll::Ready(Err(e)),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    // -- the stream's side ----------------------------------------------------------------

    /// Whether a region waits for the next flush.
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// The region to send now that hyper's buffer is empty, if one is waiting.
    pub fn take_region(&self) -> Option<FileRegion> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        self.armed.store(false, Ordering::Release);
        self.lock().region.take()
    }

    /// The region is out (`Ok(len)`) or failed: wake the body.
    pub fn finished(&self, outcome: io::Result<u64>) {
        let waker = {
            let mut state = self.lock();
            state.outcome = Some(outcome);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Of `len` bytes hyper is writing, how many are placeholder to swallow (from the
    /// front).
    pub fn swallow(&self, len: usize) -> usize {
        let owed = self.placeholder.load(Ordering::Acquire);
        if owed == 0 || len == 0 {
            return 0;
        }
        let n = owed.min(len as u64);
        self.placeholder.fetch_sub(n, Ordering::AcqRel);
        n as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn a_region_is_sent_then_owed_as_placeholder() {
        let out = DirectOutput::default();
        let file = Arc::new(tempfile_with(b"hello"));
        assert!(out.take_region().is_none());
        out.send(FileRegion {
            file,
            offset: 1,
            len: 3,
        });
        let mut cx = Context::from_waker(Waker::noop());
        assert!(out.poll_sent(&mut cx).is_pending());
        let region = out.take_region().unwrap();
        assert_eq!((region.offset, region.len), (1, 3));
        assert!(out.take_region().is_none(), "taken once");
        out.finished(Ok(3));
        assert!(matches!(out.poll_sent(&mut cx), Poll::Ready(Ok(3))));
        assert_eq!(out.swallow(10), 3);
        assert_eq!(out.swallow(10), 0);
    }

    fn tempfile_with(data: &[u8]) -> File {
        let path = std::env::temp_dir().join(format!("direct-output-{}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }
}
