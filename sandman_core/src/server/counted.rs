//! A connection's stream with its bytes counted into the metrics (`--metrics-port`): what
//! is read from and written to the client (under TLS, the encrypted bytes; a file sent with
//! `sendfile` counts as hyper's placeholder for it, the same length).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::common::metrics::recorder::Metrics;
use crate::server::conn::Protocol;
use crate::server::sniff::Sniff;

/// `IO` with its traffic counted when there is a recorder.
pub struct Counted<IO> {
    inner: IO,
    metrics: Option<Metrics>,
}

impl<IO> Counted<IO> {
    /// Count `inner`'s bytes into `metrics`, if any.
    pub fn new(inner: IO, metrics: Option<Metrics>) -> Counted<IO> {
        Counted { inner, metrics }
    }

    fn wrote(&self, result: &Poll<io::Result<usize>>) {
        if let (Some(metrics), Poll::Ready(Ok(n))) = (&self.metrics, result) {
            metrics.bytes_out(*n);
        }
    }
}

impl<IO: Sniff + Sync> Sniff for Counted<IO> {
    async fn protocol(
        &self,
        wait: std::time::Duration,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Option<Protocol> {
        self.inner.protocol(wait, shutdown).await
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Some(metrics), Poll::Ready(Ok(()))) = (&this.metrics, &result) {
            metrics.bytes_in(buf.filled().len() - before);
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&result);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
