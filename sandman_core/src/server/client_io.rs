//! The client's stream as hyper sees it: a half-close during a request is held back from
//! hyper, completed flushes are counted, and interim responses hyper cannot send (103
//! Early Hints) are written between its responses (`exchange/wire.rs` says why).
//!
//! hyper, told not to allow half-closed connections, reads the socket while a request is
//! answered to notice a client that leaves; at the end of the stream it fails the
//! connection, dropping the response. Told to allow them, it stops reading and notices
//! nothing, not even a reset. Holding back the end of the stream keeps the first (a reset
//! still fails the connection at once, and the read that reports it is armed), while a
//! plain FIN only marks the connection: the response goes out, and hyper gets the end of
//! the stream once the request is over, and closes as after any client that leaves.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::exchange::connection::Connection;

/// The HTTP/2 connection preface's first bytes: no HTTP/1 method is `PRI`.
const H2_PREFACE_START: &[u8; 3] = b"PRI";

/// What the connection speaks, as far as this wrapper knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    /// HTTP/1.x: half-closes are held back, flushes counted.
    Http1,
    /// HTTP/2: passed through untouched (streams have their own end and reset; the
    /// half-close handling here is for HTTP/1's one request at a time).
    Http2,
    /// Told by the first bytes (h2c with prior knowledge starts with the preface).
    Unknown,
}

/// A stream that reports a half-close and flushes to its connection's `Wire`.
pub struct ClientIo<IO> {
    io: IO,
    conn: Arc<Connection>,
    speaks: Speaks,
    /// The first bytes read, while they cannot tell the protocol yet.
    seen: Vec<u8>,
    /// The stream has ended (FIN received); every later read ends too.
    eof: bool,
    /// Nothing was written since the last completed flush: hyper's buffer was empty then,
    /// so an interim response written now cannot land inside an earlier response.
    clean: bool,
    /// An interim response partly written.
    interim: Option<Bytes>,
}

impl<IO> ClientIo<IO> {
    /// Wrap `io`, the stream of `conn`, which speaks `speaks`.
    pub fn new(io: IO, conn: Arc<Connection>, speaks: Speaks) -> ClientIo<IO> {
        if speaks == Speaks::Http1 {
            conn.wire.count_flushes();
        }
        ClientIo {
            io,
            conn,
            speaks,
            seen: Vec::new(),
            eof: false,
            clean: true,
            interim: None,
        }
    }

    /// Tell HTTP/1 from HTTP/2 by the first bytes of the stream.
    fn sniff(&mut self, read: &[u8]) {
        let wanted = H2_PREFACE_START.len() - self.seen.len();
        self.seen.extend_from_slice(&read[..read.len().min(wanted)]);
        if self.seen.len() == H2_PREFACE_START.len() {
            self.speaks = if self.seen == H2_PREFACE_START {
                Speaks::Http2
            } else {
                self.conn.wire.count_flushes();
                Speaks::Http1
            };
            self.seen = Vec::new();
        }
    }

    /// The end of the stream: reported now when no request is in progress (or the
    /// connection is not HTTP/1), else held back (the task is woken once the request
    /// ends; see `server/conn.rs`).
    fn end_of_stream(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.speaks != Speaks::Http1 || !self.conn.activity.busy() {
            return Poll::Ready(Ok(()));
        }
        let wire = &self.conn.wire;
        wire.hold_read(cx.waker());
        if !wire.read_closed() {
            wire.close_read();
        }
        // The request may have ended while the waker was being stored.
        if self.conn.activity.busy() {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

impl<IO: AsyncWrite + Unpin> ClientIo<IO> {
    /// Write a queued interim response ahead of hyper's next bytes. At a flush hyper's
    /// buffer is empty, so it always may; before a write only if nothing was written since
    /// the last flush (else it could land inside a response still going out: then it is
    /// dropped, as early hints may be).
    #[inline]
    fn poll_interim(&mut self, cx: &mut Context<'_>, at_flush: bool) -> Poll<io::Result<()>> {
        if self.interim.is_none() && !self.conn.wire.has_interim() {
            return Poll::Ready(Ok(()));
        }
        self.poll_interim_slow(cx, at_flush)
    }

    fn poll_interim_slow(&mut self, cx: &mut Context<'_>, at_flush: bool) -> Poll<io::Result<()>> {
        if self.interim.is_none() {
            match self.conn.wire.take_interim() {
                Some(bytes) if at_flush || self.clean => self.interim = Some(bytes),
                _ => return Poll::Ready(Ok(())),
            }
        }
        while let Some(bytes) = &mut self.interim {
            let n = std::task::ready!(Pin::new(&mut self.io).poll_write(cx, bytes))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            bytes.advance(n);
            if bytes.is_empty() {
                self.interim = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ClientIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.eof {
            return self.end_of_stream(cx);
        }
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        if buf.filled().len() == before && buf.remaining() > 0 {
            self.eof = true;
            return self.end_of_stream(cx);
        }
        if self.speaks == Speaks::Unknown {
            let this = &mut *self;
            this.sniff(&buf.filled()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ClientIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_interim(cx, false))?;
        self.clean = false;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_interim(cx, false))?;
        self.clean = false;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_interim(cx, true))?;
        std::task::ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.clean = true;
        self.conn.wire.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
