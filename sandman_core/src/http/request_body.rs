//! Reading request bodies: small ones whole before the app is called, the first part of
//! larger ones, and the pump that feeds the rest to the exchange while the app runs.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::common::settings::MinRate;
use crate::exchange::request::RequestExchange;
use crate::exchange::wire::Wire;
use crate::http::body_pace::{BodyPace, Overdue};

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
    /// Slower than `--limit-request-body-rate` after its grace period: 408.
    TooSlow,
}

/// Limits applied while reading a body.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyLimits {
    /// Largest body accepted.
    pub max: Option<u64>,
    /// Longest wait for the next bytes.
    pub idle: Option<std::time::Duration>,
    /// The slowest the body may arrive, after its grace period.
    pub min_rate: Option<MinRate>,
}

impl BodyLimits {
    /// The waiting budget of a body read under these limits.
    pub fn pace(&self) -> BodyPace {
        BodyPace::new(self.idle, self.min_rate)
    }
}

type NextFrame = Option<Result<Frame<Bytes>, hyper::Error>>;

/// The next frame, bounded by `pace` (the idle timeout and the minimum rate). Once the
/// client has closed its sending side (`wire`), what hyper has not delivered by now will
/// never come: the body is cut short.
async fn next_frame(
    body: &mut Incoming,
    pace: &mut BodyPace,
    wire: &Wire,
) -> Result<NextFrame, BodyError> {
    // Counted even when the wait is abandoned (the pump also waits on the exchange).
    let mut waiting = Waiting {
        pace,
        started: tokio::time::Instant::now(),
        bytes: 0,
    };
    let frame = std::future::poll_fn(|cx| {
        if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
            return Poll::Ready(Ok(frame));
        }
        wire.register_reader(cx.waker());
        if !wire.read_closed() {
            return Poll::Pending;
        }
        // hyper hands every frame it decoded to the body before it reads the socket again,
        // and it read the end of the stream: nothing more is on its way.
        Poll::Ready(match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(frame) => Ok(frame),
            Poll::Pending => Err(BodyError::Gone),
        })
    });
    let result = match waiting.pace.next_wait() {
        None => frame.await,
        Some((limit, overdue)) => {
            tokio::time::timeout(limit, frame)
                .await
                .unwrap_or(Err(match overdue {
                    Overdue::Idle => BodyError::Timeout,
                    Overdue::TooSlow => BodyError::TooSlow,
                }))
        }
    };
    if let Ok(Some(Ok(frame))) = &result {
        waiting.bytes = frame.data_ref().map_or(0, Bytes::len);
    }
    result
}

/// One wait for body bytes, added to its pace when it ends, however it ends.
struct Waiting<'a> {
    pace: &'a mut BodyPace,
    started: tokio::time::Instant,
    bytes: usize,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pace.record(self.started.elapsed(), self.bytes);
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
pub async fn read_whole(
    mut body: Incoming,
    limits: BodyLimits,
    wire: &Wire,
) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total: u64 = 0;
    let mut pace = limits.pace();
    while let Some(frame) = next_frame(&mut body, &mut pace, wire).await? {
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

/// Feed a streamed request body into the exchange, never holding more than
/// `REQUEST_BODY_HIGH_WATER` bytes the app has not taken (back-pressure: hyper stops
/// reading the socket while the pump waits).
pub async fn pump(
    exchange: Arc<RequestExchange>,
    mut body: Incoming,
    limits: BodyLimits,
    already_read: u64,
) -> Option<BodyError> {
    let mut total: u64 = already_read;
    let mut pace = limits.pace();
    pace.received_before(already_read);
    let wire = &exchange.conn.wire;
    while exchange.wait_to_read_body().await {
        let frame = tokio::select! {
            frame = next_frame(&mut body, &mut pace, wire) => match frame {
                Ok(frame) => frame,
                Err(err) => return Some(err),
            },
            // Look at the state again (the app may have finished while we waited for data).
            _ = exchange.body_signal() => continue,
        };
        match frame {
            None => {
                exchange.body_ended();
                return None;
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                    if limits.max.is_some_and(|max| total > max) {
                        return Some(BodyError::TooLarge);
                    }
                    exchange.body_arrived(data);
                }
            }
            Some(Err(err)) => return Some(classify(err)),
        }
    }
    None
}
