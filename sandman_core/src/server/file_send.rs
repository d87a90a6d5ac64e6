//! The plain TCP stream hyper writes through, with the side door for file bodies
//! (`common/direct_output.rs`): at a flush (hyper's buffer empty) it sends a waiting file
//! region with `sendfile(2)`, and it swallows the placeholder bytes hyper writes for it.
//! Without a side door (TLS above it, or no `sendfile` on the platform) it passes calls through.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use crate::common::direct_output::{DirectOutput, FileRegion};
use crate::server::conn::Protocol;
use crate::server::delayed_ack::DelayedAckStream;
use crate::server::sniff::Sniff;

/// Most bytes one `sendfile` call is asked for (Linux stops at 0x7ffff000 anyway).
const SENDFILE_MAX: u64 = 1 << 30;

/// A plain TCP stream that can send file regions below hyper.
pub struct FileSendStream {
    inner: DelayedAckStream,
    out: Option<Arc<DirectOutput>>,
    /// The region being sent, and how much of it has gone.
    sending: Option<(FileRegion, u64)>,
    /// `TCP_CORK` is on: the head waits to leave in one segment with the file's first bytes.
    corked: bool,
}

impl FileSendStream {
    /// Wrap `inner`; `out` is the connection's side door, if it has one.
    pub fn new(inner: DelayedAckStream, out: Option<Arc<DirectOutput>>) -> FileSendStream {
        FileSendStream {
            inner,
            out,
            sending: None,
            corked: false,
        }
    }

    /// A file region waits for the flush: hold the head back (`TCP_CORK`) so it leaves
    /// with the first bytes of the file rather than in a segment of its own, as nginx's
    /// `tcp_nopush` does.
    fn cork_for_file(&mut self) {
        if !self.corked && self.out.as_ref().is_some_and(|out| out.armed()) {
            set_cork(self.inner.tcp(), true);
            self.corked = true;
        }
    }

    /// Send the waiting region, if any; ready when nothing is left to send.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(out) = &self.out else {
            return Poll::Ready(Ok(()));
        };
        if self.sending.is_none() {
            self.sending = out.take_region().map(|region| (region, 0));
        }
        let Some((region, sent)) = &mut self.sending else {
            return Poll::Ready(Ok(()));
        };
        let tcp = self.inner.tcp();
        let result = loop {
            if region.len == 0 {
                break Ok(*sent);
            }
            let file = region.file.as_raw_fd();
            let count = region.len.min(SENDFILE_MAX) as usize;
            let mut offset = region.offset as libc::off_t;
            let attempt = tcp.try_io(Interest::WRITABLE, || {
                send_file(tcp.as_raw_fd(), file, &mut offset, count)
            });
            match attempt {
                Ok(0) => break Err(io::Error::other("file shrank while being sent")),
                Ok(n) => {
                    region.offset += n;
                    region.len -= n;
                    *sent += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match tcp.poll_write_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => break Err(e),
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.sending = None;
        if self.corked {
            set_cork(tcp, false);
            self.corked = false;
        }
        match result {
            Ok(sent) => {
                out.finished(Ok(sent));
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                out.finished(Err(io::Error::new(e.kind(), e.to_string())));
                Poll::Ready(Err(e))
            }
        }
    }

    fn swallow(&self, len: usize) -> usize {
        self.out.as_ref().map_or(0, |out| out.swallow(len))
    }
}

/// `sendfile(2)`: up to `count` bytes of `file` from `offset` (advanced) to `socket`.
#[cfg(all(target_os = "linux", not(feature = "portable")))]
fn send_file(
    socket: libc::c_int,
    file: libc::c_int,
    offset: &mut libc::off_t,
    count: usize,
) -> io::Result<u64> {
    // SAFETY: two open descriptors and a valid offset out-parameter.
    let n = unsafe { libc::sendfile(socket, file, offset, count) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as u64)
    }
}

/// Elsewhere there is no side door (`server/listener.rs` never opens one), so this is
/// never called.
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
fn send_file(_: libc::c_int, _: libc::c_int, _: &mut libc::off_t, _: usize) -> io::Result<u64> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Whether this platform's connections get the side door for file bodies (static mounts, pathsend).
pub const SIDE_DOOR: bool = cfg!(all(target_os = "linux", not(feature = "portable")));

/// Set `TCP_CORK`. A failure only costs one more segment, so it is ignored.
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
fn set_cork(_: &tokio::net::TcpStream, _: bool) {}

/// Set `TCP_CORK`. A failure only costs one more segment, so it is ignored.
#[cfg(all(target_os = "linux", not(feature = "portable")))]
fn set_cork(stream: &tokio::net::TcpStream, on: bool) {
    let value = libc::c_int::from(on);
    // SAFETY: a valid open socket and a c_int option value of the size given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

impl Sniff for FileSendStream {
    async fn protocol(
        &self,
        wait: std::time::Duration,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Option<Protocol> {
        self.inner.protocol(wait, shutdown).await
    }
}

impl AsyncRead for FileSendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FileSendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let swallowed = this.swallow(buf.len());
        if swallowed > 0 {
            return Poll::Ready(Ok(swallowed));
        }
        this.cork_for_file();
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.is_some() {
            let total = bufs.iter().map(|b| b.len()).sum();
            let swallowed = this.swallow(total);
            if swallowed > 0 {
                return Poll::Ready(Ok(swallowed));
            }
            this.cork_for_file();
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
