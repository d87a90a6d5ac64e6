//! The response hyper writes: an exchange's [`Answer`] turned into hyper's types, its body
//! complete, streamed from the exchange's response queue, or a file's (a static mount's or
//! one the app named with pathsend).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::Response;

use crate::exchange::connection::{Connection, InProgress};
use crate::exchange::request::{Outgoing, RequestExchange};
use crate::exchange::response::{Answer, AnswerBody};
use crate::http::body_data::BodyData;
use crate::http::static_files::file_body::{read_exact_at, FileBody, SMALL_FILE};

enum Kind {
    Full(Option<Bytes>),
    Stream(Arc<RequestExchange>),
    File(FileBody),
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
    /// The app cut the response short: the connection's flush count then. The error that
    /// ends the response waits until a flush completes after it (see `poll_frame`).
    aborted_at: Option<u64>,
}

impl ResponseBody {
    /// No body.
    pub fn empty() -> ResponseBody {
        ResponseBody::full(Bytes::new())
    }

    /// The whole body at once.
    pub fn full(data: Bytes) -> ResponseBody {
        let data = if data.is_empty() { None } else { Some(data) };
        ResponseBody {
            kind: Kind::Full(data),
            polled: false,
            in_progress: None,
            aborted_at: None,
        }
    }

    /// A body streamed from `exchange`'s response queue. It counts as a stream in progress
    /// (`common/queue_budget.rs`) until it is dropped.
    pub fn stream(exchange: Arc<RequestExchange>) -> ResponseBody {
        exchange.hub().queue_budget.stream_started();
        ResponseBody {
            kind: Kind::Stream(exchange),
            polled: false,
            in_progress: None,
            aborted_at: None,
        }
    }

    /// A file's region (`http/static_files/file_body.rs`): a static mount's or pathsend's.
    pub fn file(body: FileBody) -> ResponseBody {
        ResponseBody {
            kind: Kind::File(body),
            polled: false,
            in_progress: None,
            aborted_at: None,
        }
    }

    /// Count the connection as busy for as long as this body lives.
    pub fn hold(&mut self, in_progress: InProgress) {
        self.in_progress = Some(in_progress);
    }
}

/// The body of `len` bytes of `file` from `offset`, a static mount's or pathsend's, sent
/// on `conn` speaking `version`. A small region is read whole now, so it goes out with the
/// head in one write; a larger one with `sendfile` on HTTP/1.x over plain TCP (under
/// HTTP/2 the bytes travel inside frames), else read in chunks as hyper asks.
///
/// A small region that cannot be read gives the file back: a static mount answers 404,
/// while pathsend, whose head is decided, streams it and lets the error close the
/// connection.
pub fn file_body(
    file: std::fs::File,
    offset: u64,
    len: u64,
    version: hyper::Version,
    conn: &Connection,
) -> Result<ResponseBody, std::fs::File> {
    if len <= SMALL_FILE {
        let mut buf = vec![0; len as usize];
        return match read_exact_at(&file, &mut buf, offset) {
            Ok(()) => Ok(ResponseBody::full(Bytes::from(buf))),
            Err(_) => Err(file),
        };
    }
    let direct = (version <= hyper::Version::HTTP_11)
        .then(|| conn.direct_output.clone())
        .flatten();
    Ok(ResponseBody::file(FileBody::new(file, offset, len, direct)))
}

/// pathsend's body: as [`file_body`], or the file streamed when it cannot be read whole.
fn pathsend_body(file: std::fs::File, len: u64, exchange: &RequestExchange) -> ResponseBody {
    file_body(file, 0, len, exchange.head.version, &exchange.conn)
        .unwrap_or_else(|file| ResponseBody::file(FileBody::new(file, 0, len, None)))
}

/// hyper's response for `answer`; a streamed body reads from `exchange`.
pub fn response(answer: Answer, exchange: Option<&Arc<RequestExchange>>) -> Response<ResponseBody> {
    let body = match (answer.body, exchange) {
        (AnswerBody::Empty, _) => ResponseBody::empty(),
        (AnswerBody::Full(data), _) => ResponseBody::full(data),
        (AnswerBody::Streamed, Some(exchange)) => ResponseBody::stream(exchange.clone()),
        (AnswerBody::Streamed, None) => ResponseBody::empty(),
        (AnswerBody::File(file, len), Some(exchange)) => pathsend_body(file, len, exchange),
        (AnswerBody::File(file, len), None) => {
            ResponseBody::file(FileBody::new(file, 0, len, None))
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    if answer.status.canonical_reason().is_none() {
        // An unregistered code gets an empty phrase ("HTTP/1.1 599 "), as uvicorn sends,
        // not hyper's "<none>".
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b""));
    }
    response
}

impl Body for ResponseBody {
    type Data = BodyData;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<BodyData>, io::Error>>> {
        let this = &mut *self;
        match &mut this.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d.into())))),
            Kind::Stream(exchange) => match std::task::ready!(exchange.poll_outgoing(cx)) {
                Some(Ok(Outgoing::Data(data))) => {
                    this.polled = true;
                    Poll::Ready(Some(Ok(Frame::data(data.into()))))
                }
                Some(Ok(Outgoing::Trailers(fields))) => {
                    this.polled = true;
                    Poll::Ready(Some(Ok(Frame::trailers(fields))))
                }
                // An error here makes hyper close the connection: the response is cut short
                // and the client must not mistake it for a complete one. hyper drops what
                // it has buffered but not written when a body fails, so the head and the
                // chunks already sent would be lost: first wait (pending, which makes hyper
                // flush) for a flush of the socket to complete, then fail.
                Some(Err(_)) => {
                    let flushes = exchange.conn.wire.flush_count();
                    match (flushes, this.aborted_at) {
                        (None, _) => {
                            Poll::Ready(Some(Err(io::Error::other("response aborted by the app"))))
                        }
                        (Some(flushes), None) => {
                            this.aborted_at = Some(flushes);
                            // hyper may yield after its flush without polling the body again.
                            cx.waker().wake_by_ref();
                            Poll::Pending
                        }
                        // Not flushed yet: hyper's pending write wakes the task.
                        (Some(flushes), Some(at)) if at == flushes => Poll::Pending,
                        (Some(_), Some(_)) => {
                            Poll::Ready(Some(Err(io::Error::other("response aborted by the app"))))
                        }
                    }
                }
                None => Poll::Ready(None),
            },
            Kind::File(file) => file.poll_frame(cx).map(|f| f.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Stream(exchange) => self.polled && exchange.response_taken(),
            Kind::File(file) => file.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Stream(_) => SizeHint::default(),
            Kind::File(file) => SizeHint::with_exact(file.remaining()),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Kind::Stream(exchange) = &self.kind {
            exchange.response_body_dropped();
        }
    }
}
