//! Idle WebSockets without yawc's buffers.
//!
//! A yawc `WebSocket` keeps a 65 KiB read buffer and a 65 KiB write buffer for as long as
//! it lives (large, so a 64 KiB message moves without reallocating; docs/memory.md). A
//! socket with no traffic for `park_after` is *parked*: the `WebSocket` is dropped, which
//! hands the socket back (see [`WsIo`]), and the next bytes from the client, a message from
//! the app or a ping build a new one over the same socket with the agreed extensions.
//!
//! Parking loses nothing only when yawc holds nothing: every byte read belongs to a message
//! or control frame already handed over (`ws/frames.rs` follows the framing), everything
//! owed to the client is written, and no compression context has to survive the message.
//! So a socket whose permessage-deflate keeps context between messages (the
//! `--ws-deflate-context-takeover` option) is never parked.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures::{Sink, SinkExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use yawc::frame::Frame;
use yawc::{Options, Role, WebSocket, WebSocketError};

use crate::ws::frames::FrameTracker;

/// The upgraded connection under a WebSocket.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// Bytes read at once while parked. On the stack only while the read runs.
const WAKE_READ: usize = 2048;

/// Stands for "the bytes read end inside a frame or a fragmented message".
const MID_FRAME: u64 = u64::MAX;

/// What a [`ParkableWs`] shares with the [`WsIo`] inside its `WebSocket`.
struct Shared {
    /// The socket, handed back when the `WebSocket` is dropped.
    home: Mutex<Option<Upgraded>>,
    /// Units read whole (`FrameTracker::whole_units`), or `MID_FRAME`.
    whole_units: AtomicU64,
}

/// The socket as yawc sees it: bytes read while parked come first, the framing of what is
/// read is followed, and the socket goes back to its [`ParkableWs`] when yawc drops it.
pub struct WsIo {
    io: Option<Upgraded>,
    prefix: Bytes,
    tracker: FrameTracker,
    shared: Arc<Shared>,
}

impl WsIo {
    fn io(&mut self) -> Pin<&mut Upgraded> {
        Pin::new(self.io.as_mut().expect("the socket is here until drop"))
    }
}

impl Drop for WsIo {
    fn drop(&mut self) {
        let io = self.io.take();
        *self.shared.home.lock().unwrap_or_else(|e| e.into_inner()) = io;
    }
}

impl AsyncRead for WsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        if this.prefix.is_empty() {
            std::task::ready!(this.io().poll_read(cx, buf))?;
        } else {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
        }
        this.tracker.feed(&buf.filled()[before..]);
        let whole = this.tracker.whole_units().unwrap_or(MID_FRAME);
        this.shared.whole_units.store(whole, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx)
    }
}

/// A server-side WebSocket that can give back its buffers while idle.
pub struct ParkableWs {
    /// The WebSocket while in use, `None` while parked.
    ws: Option<Box<WebSocket<WsIo>>>,
    /// The socket while parked.
    parked: Option<Upgraded>,
    shared: Arc<Shared>,
    /// The agreed `Sec-WebSocket-Extensions`, to build the WebSocket again.
    extensions: Option<Box<str>>,
    /// The options it was built with (limits, buffers, compression level and pool).
    options: Box<Options>,
    /// No compression context has to outlive a message.
    parkable: bool,
    /// Messages and control frames handed over by the current `WebSocket`.
    handed_over: u64,
}

impl ParkableWs {
    /// A WebSocket over an upgraded connection, with the extensions the handshake agreed.
    /// `parkable`: whether a compression context, if any, is dropped after each message
    /// (no context takeover in either direction).
    pub fn new(
        io: Upgraded,
        extensions: Option<Box<str>>,
        options: Options,
        parkable: bool,
    ) -> Result<ParkableWs, WebSocketError> {
        let mut ws = ParkableWs {
            ws: None,
            parked: Some(io),
            shared: Arc::new(Shared {
                home: Mutex::new(None),
                whole_units: AtomicU64::new(0),
            }),
            extensions,
            options: Box::new(options),
            parkable,
            handed_over: 0,
        };
        ws.unpark(Bytes::new())?;
        Ok(ws)
    }

    /// Whether the socket is parked now.
    pub fn is_parked(&self) -> bool {
        self.ws.is_none()
    }

    /// Whether the socket may be parked when idle.
    pub fn parkable(&self) -> bool {
        self.parkable
    }

    /// Build the WebSocket again over the parked socket; `prefix` was read while parked.
    fn unpark(&mut self, prefix: Bytes) -> Result<(), WebSocketError> {
        let Some(io) = self.parked.take() else {
            return Ok(());
        };
        let io = WsIo {
            io: Some(io),
            prefix,
            tracker: FrameTracker::default(),
            shared: self.shared.clone(),
        };
        self.shared.whole_units.store(0, Ordering::Relaxed);
        self.handed_over = 0;
        let ws = WebSocket::from_stream_with_extensions(
            io,
            Role::Server,
            self.extensions.as_deref(),
            (*self.options).clone(),
        )?;
        self.ws = Some(Box::new(ws));
        Ok(())
    }

    /// The WebSocket, built again first if parked.
    fn ws(&mut self) -> Result<&mut WebSocket<WsIo>, WebSocketError> {
        self.unpark(Bytes::new())?;
        Ok(self.ws.as_mut().expect("unparked"))
    }

    /// The next message or control frame from the client; while parked, the wait for it
    /// holds no buffer.
    pub async fn next_frame(&mut self) -> Result<Frame, WebSocketError> {
        if let Some(io) = self.parked.as_mut() {
            let woken = poll_fn(|cx| {
                let mut stack = [0u8; WAKE_READ];
                let mut buf = ReadBuf::new(&mut stack);
                std::task::ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
                Poll::Ready(Ok::<_, io::Error>(Bytes::copy_from_slice(buf.filled())))
            })
            .await?;
            if woken.is_empty() {
                return Err(WebSocketError::ConnectionClosed);
            }
            self.unpark(woken)?;
        }
        let frame = self.ws()?.next_frame().await?;
        self.handed_over += 1;
        Ok(frame)
    }

    /// Queue a frame for the client.
    pub async fn feed(&mut self, frame: Frame) -> Result<(), WebSocketError> {
        self.ws()?.feed(frame).await
    }

    /// Write out everything queued.
    pub async fn flush(&mut self) -> Result<(), WebSocketError> {
        self.ws()?.flush().await
    }

    /// Queue a frame and write it out.
    pub async fn send(&mut self, frame: Frame) -> Result<(), WebSocketError> {
        self.ws()?.send(frame).await
    }

    /// Send whatever yawc owes the client (pong, close echo, error close) and flush.
    pub async fn flush_owed(&mut self) -> Result<(), WebSocketError> {
        if self.is_parked() {
            return Ok(()); // a parked socket owes nothing
        }
        let ws = self.ws()?;
        poll_fn(|cx| Pin::new(&mut *ws).poll_ready(cx)).await?;
        ws.flush().await
    }

    /// Park the socket if yawc holds nothing: every byte read was handed over as a whole
    /// message or control frame, and everything queued for the client is written without
    /// waiting. `false` (nothing done) otherwise, or if parking does not apply.
    pub async fn try_park(&mut self) -> bool {
        if !self.parkable || self.is_parked() {
            return false;
        }
        if self.shared.whole_units.load(Ordering::Relaxed) != self.handed_over {
            return false;
        }
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        let written = poll_fn(|cx| {
            let mut ws = Pin::new(&mut **ws);
            let ready = matches!(ws.as_mut().poll_ready(cx), Poll::Ready(Ok(())))
                && matches!(ws.as_mut().poll_flush(cx), Poll::Ready(Ok(())));
            Poll::Ready(ready)
        })
        .await;
        if !written {
            return false;
        }
        // Dropping the WebSocket hands the socket back through `WsIo`'s drop.
        self.ws = None;
        self.parked = self
            .shared
            .home
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.parked.is_some()
    }
}
