//! Keeps a TCP connection in Linux's delayed-ACK mode when requests wait in its socket.
//!
//! Linux treats a connection as request/response ("pingpong" mode) when its replies
//! follow requests within the delayed-ACK timeout (at least 40 ms): the ACK for a request
//! then rides on the response. Only the delayed-ACK timer firing takes a connection out of
//! that mode, and a reply later than the timeout does not put it back. Out of it, every
//! `recv` of a request sends a pure ACK on its own.
//!
//! A saturated server hits exactly that. With 1,000 keep-alive clients, a request waits
//! 1,000 / throughput in its socket before it is read: 40 ms at 25k req/s. Past that
//! line, the kernel sends one more segment per request, which makes the server slower
//! still. `ss -ti` on the 2.4 KB page at 1,000 connections counted 0.55-0.83 pure ACKs per
//! response in slow runs, against 0.13-0.22 in fast ones (docs/performance.md).
//!
//! `TCP_QUICKACK` set to 0 puts the socket back in delayed-ACK mode until the timer next
//! fires. The timer can only have fired if the request waited at least 40 ms, which is
//! after this connection's last write. So the option is set before a read that comes
//! [`LATE`] or more after the last write: at most one `setsockopt` per reply, and none on
//! connections that are answered and come back quickly. The ACK still goes out: with the
//! response, or from the timer if the response takes longer than that.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::common::clock::coarse_now_ms;

/// A read this long after the last write may find the connection out of delayed-ACK mode:
/// the timer that takes it out is never shorter than 40 ms, counted from the request's
/// arrival, which is after our last write. 10 ms below that allows for timer granularity
/// on kernels with a coarse tick.
pub const LATE: Duration = Duration::from_millis(LATE_MS);
const LATE_MS: u64 = 30;

/// A TCP stream that re-enters delayed-ACK mode before reads that follow a late reply.
pub struct DelayedAckStream {
    stream: TcpStream,
    /// When this connection last wrote (coarse ms), until a late read has acted on it.
    wrote_at: Option<u64>,
}

impl DelayedAckStream {
    /// Wrap an accepted stream.
    pub fn new(stream: TcpStream) -> DelayedAckStream {
        DelayedAckStream {
            stream,
            wrote_at: None,
        }
    }

    /// The TCP stream underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.stream
    }

    fn wrote(&mut self, result: &Poll<io::Result<usize>>) {
        if matches!(result, Poll::Ready(Ok(n)) if *n > 0) {
            self.wrote_at = Some(coarse_now_ms());
        }
    }

    fn before_read(&mut self) {
        // A poll right after the write (hyper looks for the next request at once) finds
        // `LATE` not yet passed and keeps the mark for the read that does come later.
        if self
            .wrote_at
            .is_some_and(|at| coarse_now_ms().saturating_sub(at) >= LATE_MS)
        {
            self.wrote_at = None;
            set_quickack(&self.stream, false);
        }
    }
}

/// Set `TCP_QUICKACK`: `false` puts the socket in delayed-ACK mode. Failure changes
/// nothing but the number of ACK segments, so it is ignored.
#[cfg(target_os = "linux")]
fn set_quickack(stream: &TcpStream, on: bool) {
    let value = libc::c_int::from(on);
    // SAFETY: a valid open socket and a c_int option value of the size given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Other systems have no `TCP_QUICKACK` (and no "pingpong" mode to leave): nothing to do.
#[cfg(not(target_os = "linux"))]
fn set_quickack(_stream: &TcpStream, _on: bool) {}

impl AsyncRead for DelayedAckStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.before_read();
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for DelayedAckStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote(&result);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        // hyper queues the body beside the head (one `writev`, no copy) only when this is
        // true.
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Whether the kernel has the socket in quick-ACK (not delayed-ACK) mode.
    fn quickack(stream: &TcpStream) -> bool {
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid socket and an out-parameter of the size given.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        value != 0
    }

    async fn pair() -> (DelayedAckStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (DelayedAckStream::new(server), client)
    }

    #[tokio::test]
    async fn a_read_long_after_a_write_re_enters_delayed_ack_mode() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"response").await.unwrap();
        let mut buf = [0u8; 8];
        client.read_exact(&mut buf).await.unwrap();
        // What a reply later than the delayed-ACK timeout leaves behind.
        set_quickack(&server.stream, true);
        assert!(quickack(&server.stream));
        // Past `LATE` by more than the coarse clock's tick.
        tokio::time::sleep(LATE + Duration::from_millis(20)).await;
        client.write_all(b"next").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"next");
        assert!(!quickack(&server.stream), "still in quick-ACK mode");
        assert!(server.wrote_at.is_none(), "one setsockopt per cycle");
    }

    #[tokio::test]
    async fn a_quick_read_leaves_the_socket_alone() {
        let (mut server, mut client) = pair().await;
        let start = std::time::Instant::now();
        server.write_all(b"response").await.unwrap();
        let mut buf = [0u8; 8];
        client.read_exact(&mut buf).await.unwrap();
        client.write_all(b"next").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        // Only meaningful when this machine did it all within `LATE`.
        if start.elapsed() < LATE {
            assert!(
                server.wrote_at.is_some(),
                "called although the read was quick"
            );
        }
    }
}
