//! Response bodies handed to hyper, and the pump that feeds streamed request bodies to the app.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::asgi::cycle::Phase;
use crate::asgi::http::RequestShared;
use crate::common::limits::REQUEST_BODY_HIGH_WATER;
use crate::http::frame_data::FrameData;
use crate::server::conn::InProgress;

enum Kind {
    Full(Option<Bytes>),
    Stream(Arc<RequestShared>),
}

/// A response body: either complete (one write, `content-length` known) or streamed from
/// the app's `send()` calls.
pub struct ResponseBody {
    kind: Kind,
    /// A frame has been handed to hyper: from then on `is_end_stream` may say the stream
    /// is over, so the last chunk and the chunked terminator go out in one write. Never
    /// before the head, where it would turn a streamed response into an empty one.
    polled: bool,
    /// Keeps the connection counted as busy until hyper drops the body (`server/idle.rs`).
    in_progress: Option<InProgress>,
}

impl ResponseBody {
    /// No body.
    pub fn empty() -> ResponseBody {
        ResponseBody {
            kind: Kind::Full(None),
            polled: false,
            in_progress: None,
        }
    }

    /// The whole body at once.
    pub fn full(data: Bytes) -> ResponseBody {
        let data = if data.is_empty() { None } else { Some(data) };
        ResponseBody {
            kind: Kind::Full(data),
            polled: false,
            in_progress: None,
        }
    }

    /// Count the connection as busy for as long as this body lives.
    pub fn hold(&mut self, in_progress: InProgress) {
        self.in_progress = Some(in_progress);
    }

    /// A body streamed from the request's response queue. It counts as a stream in
    /// progress (`common/queue_budget.rs`) until it is dropped.
    pub fn stream(shared: Arc<RequestShared>) -> ResponseBody {
        shared.server().queue_budget.stream_started();
        ResponseBody {
            kind: Kind::Stream(shared),
            polled: false,
            in_progress: None,
        }
    }
}

impl Body for ResponseBody {
    type Data = FrameData;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<FrameData>, io::Error>>> {
        let this = &mut *self;
        match &mut this.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d.into())))),
            Kind::Stream(shared) => {
                let mut inner = shared.lock();
                if !inner.out.is_empty() {
                    // Everything queued goes as one frame, so one write (frame_data.rs).
                    // The queue is bounded by `send()` suspending past its high-water mark.
                    let data = FrameData::take_from(&mut inner.out);
                    inner.out_len = 0;
                    shared.wake_python(&mut inner);
                    this.polled = true;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if inner.out_end {
                    return Poll::Ready(None);
                }
                if inner.cycle.phase() == Phase::Aborted {
                    // An error here makes hyper close the connection: the response is cut
                    // short and the client must not mistake it for a complete one.
                    return Poll::Ready(Some(Err(io::Error::other("response aborted by the app"))));
                }
                inner.out_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Stream(shared) => {
                self.polled && {
                    let inner = shared.lock();
                    inner.out_end && inner.out.is_empty()
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Kind::Stream(shared) = &self.kind {
            shared.server().queue_budget.stream_ended();
            let ended = shared.lock().out_end;
            if !ended {
                // hyper dropped a body it had not finished: the client is gone.
                shared.mark_disconnected();
            }
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Bad framing (malformed chunked encoding): answer 400 and close.
    Malformed,
    /// The connection ended mid-body: the client is gone.
    Gone,
    /// More than `--limit-request-body` bytes: 413.
    TooLarge,
    /// No body bytes for `--timeout-request-body`: 408.
    Timeout,
}

/// Limits applied while reading a body.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyLimits {
    /// Largest body accepted.
    pub max: Option<u64>,
    /// Longest wait for the next bytes.
    pub idle: Option<std::time::Duration>,
}

/// The next frame, bounded by the idle timeout.
async fn next_frame(
    body: &mut Incoming,
    idle: Option<std::time::Duration>,
) -> Result<Option<Result<Frame<Bytes>, hyper::Error>>, BodyError> {
    match idle {
        None => Ok(body.frame().await),
        Some(limit) => tokio::time::timeout(limit, body.frame())
            .await
            .map_err(|_| BodyError::Timeout),
    }
}

fn classify(err: hyper::Error) -> BodyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => BodyError::Gone,
                _ => BodyError::Malformed,
            };
        }
        source = e.source();
    }
    if err.is_incomplete_message() || err.is_canceled() || err.is_closed() {
        BodyError::Gone
    } else {
        BodyError::Malformed
    }
}

/// Read a small body completely (the eager path, see `EAGER_BODY_LIMIT`).
pub async fn read_whole(mut body: Incoming, limits: BodyLimits) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total: u64 = 0;
    while let Some(frame) = next_frame(&mut body, limits.idle).await? {
        let frame = frame.map_err(classify)?;
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
            if limits.max.is_some_and(|max| total > max) {
                return Err(BodyError::TooLarge);
            }
        }
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut buf = BytesMut::with_capacity(f.len() + data.len());
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    Ok(match rest {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// What `prefetch` read before the app is called.
pub struct Prefetched {
    /// Body chunks already read.
    pub chunks: Vec<Bytes>,
    /// Bytes in `chunks`.
    pub len: usize,
    /// The body ended (no pump needed).
    pub done: bool,
}

/// Read what arrives of a streamed body within `budget` (and at most `max_bytes`) before the
/// app is called: a chunked body sent in one go is then delivered whole, and bad framing in
/// its first part is answered 400 without the app ever running. A client that streams its
/// upload slowly costs the app at most `budget` of latency.
pub async fn prefetch(
    body: &mut Incoming,
    limits: BodyLimits,
    max_bytes: usize,
    budget: std::time::Duration,
) -> Result<Prefetched, BodyError> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut out = Prefetched {
        chunks: Vec::new(),
        len: 0,
        done: false,
    };
    while out.len < max_bytes {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => break, // nothing more right now: stream the rest
            Ok(None) => {
                out.done = true;
                break;
            }
            Ok(Some(frame)) => frame.map_err(classify)?,
        };
        if let Ok(data) = frame.into_data() {
            out.len += data.len();
            if limits.max.is_some_and(|max| out.len as u64 > max) {
                return Err(BodyError::TooLarge);
            }
            if !data.is_empty() {
                out.chunks.push(data);
            }
        }
    }
    Ok(out)
}

/// Feed a streamed request body into the request's buffer, never holding more than
/// `REQUEST_BODY_HIGH_WATER` bytes the app has not taken (back-pressure: hyper stops
/// reading the socket while the pump waits).
pub async fn pump(
    shared: Arc<RequestShared>,
    mut body: Incoming,
    limits: BodyLimits,
    already_read: u64,
) -> Option<BodyError> {
    let mut total: u64 = already_read;
    loop {
        // Wait until reading is allowed and there is room.
        loop {
            {
                let inner = shared.lock();
                if inner.finished || inner.disconnected {
                    return None;
                }
                if inner.body_go && inner.body_len < REQUEST_BODY_HIGH_WATER {
                    break;
                }
            }
            shared.pump_signal.notified().await;
        }
        let frame = tokio::select! {
            frame = next_frame(&mut body, limits.idle) => match frame {
                Ok(frame) => frame,
                Err(err) => return Some(err),
            },
            // Re-check the state (the app may have finished while we waited for data).
            _ = shared.pump_signal.notified() => continue,
        };
        let mut inner = shared.lock();
        match frame {
            None => {
                inner.body_done = true;
                shared.wake_python(&mut inner);
                return None;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                    if limits.max.is_some_and(|max| total > max) {
                        return Some(BodyError::TooLarge);
                    }
                    if !data.is_empty() {
                        inner.body_len += data.len();
                        inner.body.push_back(data);
                        shared.wake_python(&mut inner);
                    }
                }
            }
            Some(Err(err)) => return Some(classify(err)),
        }
    }
}
