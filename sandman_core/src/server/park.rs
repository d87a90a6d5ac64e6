//! Idle HTTP/1.1 keep-alive connections without hyper's buffers.
//!
//! hyper holds two 8 KiB buffers for as long as a connection lives: the read buffer, which
//! it reserves whenever it waits for a request head, and the write buffer for response heads,
//! allocated with the connection (docs/memory.md). A keep-alive connection that has been idle
//! for `park_after` is *parked*: hyper's connection is ended the way graceful shutdown ends
//! an idle one, except that [`ParkIo`] keeps hyper from shutting the socket down. The
//! socket, whatever hyper had read of a next request, and the service come back from
//! `into_parts`; the task then waits for the client's next bytes with no buffer but a small
//! one on the stack, keeps them, and a new hyper connection reads them first.
//!
//! Only after a request has been served (hyper closes an idle connection at once, a busy
//! one only after its response), never with response bytes still waiting for the socket.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::exchange::connection::Connection;
use crate::server::idle::IdleTimeout;

/// Bytes read at once while parked: a whole request head, as a rule. On the stack only
/// while the read runs, never in the task's future.
const WAKE_READ: usize = 2048;

/// What the connection's task and its [`ParkIo`] (inside hyper) share.
#[derive(Default)]
pub struct ParkState {
    /// hyper is being ended to park: its shutdown must not reach the socket.
    parking: AtomicBool,
    /// The last write did not go through: response bytes wait in hyper's buffer.
    write_blocked: AtomicBool,
}

impl ParkState {
    /// Start parking; `false` (and nothing done) while response bytes wait to be written.
    pub fn begin(&self) -> bool {
        if self.write_blocked.load(Ordering::Relaxed) {
            return false;
        }
        self.parking.store(true, Ordering::Relaxed);
        true
    }

    /// Whether the connection is being ended to park.
    pub fn parking(&self) -> bool {
        self.parking.load(Ordering::Relaxed)
    }

    fn end(&self) {
        self.parking.store(false, Ordering::Relaxed);
    }
}

/// The socket as hyper sees it: bytes kept from a parked spell are read first, a shutdown
/// while parking is not passed on, and blocked writes are noted.
pub struct ParkIo<IO> {
    io: IO,
    prefix: Bytes,
    state: Arc<ParkState>,
}

impl<IO> ParkIo<IO> {
    /// Wrap an accepted stream.
    pub fn new(io: IO, state: Arc<ParkState>) -> ParkIo<IO> {
        ParkIo {
            io,
            prefix: Bytes::new(),
            state,
        }
    }

    /// Take back a parked socket with what hyper had read but not parsed (copied: hyper's
    /// bytes share its 8 KiB buffer). `true` when that is a partial request, which must go
    /// to hyper again now rather than wait for more bytes.
    pub fn parked(&mut self, unread: Bytes) -> bool {
        self.state.end();
        self.prefix = Bytes::copy_from_slice(&unread);
        !self.prefix.is_empty()
    }
}

impl<IO: AsyncRead + Unpin> ParkIo<IO> {
    /// Wait, parked, for the client's next bytes and keep them for hyper. `false` when the
    /// client left, the idle timeout ran out, or the connection is asked to close (nothing
    /// is in flight then: it closes at once, as an idle keep-alive connection does).
    pub async fn wait(&mut self, idle: &mut IdleTimeout, conn: &Connection) -> bool {
        poll_fn(|cx| {
            conn.control.register(cx.waker());
            if conn.control.requested() || idle.poll_expired(&conn.activity, cx) {
                return Poll::Ready(false);
            }
            let mut stack = [0u8; WAKE_READ];
            let mut buf = ReadBuf::new(&mut stack);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    self.prefix = Bytes::copy_from_slice(buf.filled());
                    // Measure the next idle spell from here.
                    idle.park_later();
                    Poll::Ready(true)
                }
                Poll::Ready(_) => Poll::Ready(false),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ParkIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> ParkIo<IO> {
    fn wrote<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        self.state
            .write_blocked
            .store(result.is_pending(), Ordering::Relaxed);
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ParkIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(result)
    }

    fn is_write_vectored(&self) -> bool {
        // hyper queues a body beside its head (one `writev`) only when this is true.
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper flushes the socket only once its own buffer is written out.
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state.parking() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn kept_bytes_are_read_first_and_a_parking_shutdown_stays_in() {
        let (client, server) = tokio::io::duplex(64);
        let state = Arc::new(ParkState::default());
        let mut io = ParkIo::new(server, state.clone());
        assert!(io.parked(Bytes::from_static(b"GET / HT")));
        let mut client = client;
        client.write_all(b"TP/1.1\r\n").await.unwrap();
        let mut got = [0u8; 16];
        let n = io.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"GET / HT");
        let n = io.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"TP/1.1\r\n");

        assert!(state.begin());
        io.shutdown().await.unwrap();
        io.write_all(b"still open").await.unwrap();
        let n = client.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"still open");
    }

    #[tokio::test]
    async fn no_parking_while_a_write_is_blocked() {
        let (_client, server) = tokio::io::duplex(4);
        let state = Arc::new(ParkState::default());
        let mut io = ParkIo::new(server, state.clone());
        // The pipe takes 4 bytes; the rest of the write blocks.
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            io.write_all(b"more than four"),
        );
        assert!(blocked.await.is_err());
        assert!(!state.begin());
        assert!(!state.parking());
    }
}
