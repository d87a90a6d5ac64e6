//! One HTTP request between the transport and the app: the request body going up, the
//! response coming down.
//!
//! Theory of operation
//! -------------------
//! A [`RequestExchange`] is the meeting point of three parties:
//!
//! * the transport's per-request future, waiting for the response head ([`poll_reply`]) and
//!   then reading the response body ([`poll_outgoing`]);
//! * the body pump, for request bodies too large to read up front, feeding `body`;
//! * the app side, taking the body ([`receive`]) and putting the response in ([`respond`],
//!   [`stream`]).
//!
//! All state sits behind one mutex held for a few instructions at a time, never across an
//! `.await` or a call out. The app side never waits for the transport: every call returns
//! at once, handing back the transport's waker for the caller to wake (the app side batches
//! those). When the app side must wait (no body yet, response queue full) it leaves a
//! [`Waker`] here; the transport wakes it when that changes.
//!
//! [`poll_reply`]: RequestExchange::poll_reply
//! [`poll_outgoing`]: RequestExchange::poll_outgoing
//! [`receive`]: RequestExchange::receive
//! [`respond`]: RequestExchange::respond
//! [`stream`]: RequestExchange::stream

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use hyper::header::HeaderValue;
use hyper::HeaderMap;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::common::access::AccessRecord;
use crate::common::limits::{REQUEST_BODY_HIGH_WATER, RESPONSE_BODY_LOW_WATER};
use crate::exchange::cache::tap::ResponseTap;
use crate::exchange::chunks::ChunkBatch;
use crate::exchange::connection::Connection;
use crate::exchange::head::RequestHead;
use crate::exchange::hub::Hub;
use crate::exchange::response::Answer;

/// The request state both sides share.
pub struct RequestExchange {
    /// The connection the request came on (and through it, the server).
    pub conn: Arc<Connection>,
    /// The request head.
    pub head: RequestHead,
    state: Mutex<State>,
    /// The client is gone (or the request can no longer be answered). Also readable without
    /// the lock: every `send()` checks it first.
    disconnected: AtomicBool,
    /// Wakes the body pump: permission to read, room in the buffer, or stop.
    body_signal: Notify,
    /// Sees the response pass (the response cache, `exchange/cache/tap.rs`).
    tap: Option<Box<dyn ResponseTap>>,
}

struct State {
    /// Request body chunks the app has not taken.
    body: VecDeque<Bytes>,
    /// Bytes in `body`.
    body_len: usize,
    /// The body has been read to its end.
    body_done: bool,
    /// The app has been given the end of the body.
    body_end_taken: bool,
    /// The pump may read (false until the first wait on `Expect: 100-continue`).
    body_go: bool,

    /// The response head, on its way to the transport.
    reply: Reply,
    /// The app has started its response: the server no longer answers for it.
    response_begun: bool,
    /// The app sent its last body.
    response_complete: bool,
    /// Response chunks queued for the transport (streamed responses).
    out: VecDeque<Bytes>,
    /// Bytes in `out`.
    out_len: usize,
    /// The last chunk has been queued (and any trailers given).
    out_end: bool,
    /// Trailer fields to send after the body (boxed: rare, and every request carries the
    /// field).
    trailers: Option<Box<HeaderMap>>,
    /// The transport's waker while it waits for a chunk.
    out_waker: Option<Waker>,
    /// The response was cut short: the transport must not finish it.
    aborted: bool,

    /// The app side's code has ended; the pump may stop.
    app_done: bool,
    /// The app side waits for body data or a disconnect.
    receive_waker: Option<Waker>,
    /// The app side waits for room in the response queue.
    room_waker: Option<Waker>,
}

/// Where the response head travels from the app side to the transport.
enum Reply {
    /// The transport waits (with its waker once it has polled).
    Waiting(Option<Waker>),
    /// The response is ready to be taken.
    Ready(Answer),
    /// Nothing will come: close the connection without a response.
    Abandoned,
    /// Taken.
    Taken,
}

impl Reply {
    /// Deliver a response if one is awaited; returns the waker to wake.
    fn deliver(&mut self, answer: Answer) -> Option<Waker> {
        match self {
            Reply::Waiting(waker) => {
                let waker = waker.take();
                *self = Reply::Ready(answer);
                waker
            }
            _ => None,
        }
    }

    /// Give up on the response; returns the waker to wake.
    fn abandon(&mut self) -> Option<Waker> {
        match self {
            Reply::Waiting(waker) => {
                let waker = waker.take();
                *self = Reply::Abandoned;
                waker
            }
            _ => None,
        }
    }
}

/// What the app side's wait for the body ends with.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Body bytes (possibly none) and whether more follow.
    Body(Bytes, bool),
    /// The client is gone, or the response is complete.
    Disconnect,
}

/// The client is gone: the app's message cannot be delivered.
#[derive(Debug, PartialEq, Eq)]
pub struct Gone;

/// The transport must cut the response short.
#[derive(Debug, PartialEq, Eq)]
pub struct Aborted;

/// What the transport takes from a streamed response.
pub enum Outgoing {
    /// Body bytes: everything queued since the last take.
    Data(ChunkBatch),
    /// The trailer fields, after the last body bytes.
    Trailers(HeaderMap),
}

/// What [`RequestExchange::stream`] did.
pub struct Streamed {
    /// The transport's waker, for the caller to wake.
    pub waker: Option<Waker>,
    /// The queue is over its high-water mark: the app should wait for room.
    pub full: bool,
}

/// Whether the app side may queue more response.
#[derive(Debug, PartialEq, Eq)]
pub enum Room {
    /// The queue drained below its low-water mark.
    Ready,
    /// The client is gone.
    Gone,
    /// Still full: the waker given is kept and woken when that changes.
    Wait,
}

impl RequestExchange {
    /// A new request on `conn`, counted as active until the exchange is dropped.
    pub fn new(conn: Arc<Connection>, head: RequestHead) -> Arc<RequestExchange> {
        RequestExchange::tapped(conn, head, None)
    }

    /// A new request whose response passes through `tap`.
    pub fn tapped(
        conn: Arc<Connection>,
        head: RequestHead,
        tap: Option<Box<dyn ResponseTap>>,
    ) -> Arc<RequestExchange> {
        conn.hub.active_requests.fetch_add(1, Ordering::Relaxed);
        Arc::new(RequestExchange {
            conn,
            head,
            state: Mutex::new(State {
                body: VecDeque::new(),
                body_len: 0,
                body_done: false,
                body_end_taken: false,
                body_go: true,
                reply: Reply::Waiting(None),
                response_begun: false,
                response_complete: false,
                out: VecDeque::new(),
                out_len: 0,
                out_end: false,
                trailers: None,
                out_waker: None,
                aborted: false,
                app_done: false,
                receive_waker: None,
                room_waker: None,
            }),
            disconnected: AtomicBool::new(false),
            body_signal: Notify::new(),
            tap,
        })
    }

    /// The server's shared state.
    pub fn hub(&self) -> &Hub {
        &self.conn.hub
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the request is a `HEAD`.
    pub fn is_head(&self) -> bool {
        self.head.method == hyper::Method::HEAD
    }

    /// This request's access-log record, for a response with `status`.
    pub fn access_record(&self, status: u16) -> AccessRecord {
        self.head.access_record(&self.conn.peer, status)
    }

    // -- the transport's side ------------------------------------------------------------

    /// Body read before the app is called: `chunks` (`len` bytes), and whether that is all.
    pub fn preload_body(&self, chunks: impl IntoIterator<Item = Bytes>, len: usize, done: bool) {
        let mut state = self.lock();
        state
            .body
            .extend(chunks.into_iter().filter(|c| !c.is_empty()));
        state.body_len = len;
        state.body_done = done;
    }

    /// `Expect: 100-continue`: read no body until the app first waits for it.
    pub fn read_body_when_asked(&self) {
        self.lock().body_go = false;
    }

    /// Wait until the pump may read more body: `true` to read, `false` to stop (the app
    /// finished, or the client left).
    pub async fn wait_to_read_body(&self) -> bool {
        loop {
            {
                let state = self.lock();
                if state.app_done || self.is_disconnected() {
                    return false;
                }
                if state.body_go && state.body_len < REQUEST_BODY_HIGH_WATER {
                    return true;
                }
            }
            self.body_signal.notified().await;
        }
    }

    /// Resolves when the pump should look at the state again.
    pub fn body_signal(&self) -> Notified<'_> {
        self.body_signal.notified()
    }

    /// Body bytes arrived.
    pub fn body_arrived(&self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.body_len += data.len();
        state.body.push_back(data);
        let waker = state.receive_waker.take();
        drop(state);
        wake(waker);
    }

    /// The body ended.
    pub fn body_ended(&self) {
        let mut state = self.lock();
        state.body_done = true;
        let waker = state.receive_waker.take();
        drop(state);
        wake(waker);
    }

    /// The client went away or the request was abandoned: every later send fails, the
    /// app's wait for the body ends with a disconnect, the pump stops, and a transport
    /// waiting for the response head gets none.
    pub fn mark_disconnected(&self) {
        let mut state = self.lock();
        if self.disconnected.swap(true, Ordering::AcqRel) {
            return;
        }
        let wakers = [
            state.reply.abandon(),
            state.receive_waker.take(),
            state.room_waker.take(),
        ];
        drop(state);
        wakers.into_iter().for_each(wake);
        self.body_signal.notify_one();
    }

    /// The transport's wait for the response head: `None` when there will be none.
    pub fn poll_reply(&self, cx: &mut Context<'_>) -> Poll<Option<Answer>> {
        let mut state = self.lock();
        match std::mem::replace(&mut state.reply, Reply::Taken) {
            Reply::Ready(answer) => Poll::Ready(Some(answer)),
            Reply::Waiting(_) => {
                state.reply = Reply::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
            Reply::Abandoned | Reply::Taken => Poll::Ready(None),
        }
    }

    /// The transport stopped waiting for the response head without taking it: the client
    /// is gone. That includes a response that was ready but not taken yet (the client left
    /// between the app's `http.response.start` and the transport's next poll).
    pub fn abandon_reply(&self) {
        let (gone, untaken) = {
            let mut state = self.lock();
            match state.reply {
                Reply::Waiting(_) => (true, None),
                Reply::Ready(_) => (
                    true,
                    Some(std::mem::replace(&mut state.reply, Reply::Abandoned)),
                ),
                Reply::Abandoned | Reply::Taken => (false, None),
            }
        };
        drop(untaken);
        if gone {
            self.mark_disconnected();
        }
    }

    /// The body failed before the app was called; the app will never run.
    pub fn refused_before_app(&self) {
        self.lock().app_done = true;
    }

    /// The body went wrong while the app runs (bad framing, too large, stalled): answer
    /// `answer` if the app has not started its response, then end the request as
    /// disconnected so the app stops.
    pub fn reject(&self, answer: Answer) {
        let waker = {
            let mut state = self.lock();
            if state.response_begun {
                None
            } else {
                state.reply.deliver(answer)
            }
        };
        wake(waker);
        self.mark_disconnected();
    }

    /// The transport's wait for response body: everything queued as one batch, then the
    /// trailers if any, the end (`None`), or an error when the response was cut short.
    pub fn poll_outgoing(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Outgoing, Aborted>>> {
        let mut state = self.lock();
        if !state.out.is_empty() {
            let data = ChunkBatch::take_from(&mut state.out);
            state.out_len = 0;
            let room = state.room_waker.take();
            drop(state);
            wake(room);
            return Poll::Ready(Some(Ok(Outgoing::Data(data))));
        }
        if state.out_end {
            return Poll::Ready(state.trailers.take().map(|t| Ok(Outgoing::Trailers(*t))));
        }
        if state.aborted {
            return Poll::Ready(Some(Err(Aborted)));
        }
        state.out_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Whether the whole streamed response has been taken.
    pub fn response_taken(&self) -> bool {
        let state = self.lock();
        state.out_end && state.out.is_empty() && state.trailers.is_none()
    }

    /// The transport dropped the streamed response body: if the response had not ended,
    /// the client is gone.
    pub fn response_body_dropped(&self) {
        self.hub().queue_budget.stream_ended();
        let ended = self.lock().out_end;
        if !ended {
            self.mark_disconnected();
        }
    }

    // -- the app's side -------------------------------------------------------------------

    /// Whether the client is gone.
    pub fn is_disconnected(&self) -> bool {
        self.disconnected.load(Ordering::Acquire)
    }

    /// Take what the app can be given now: body, its end, or a disconnect. With nothing to
    /// give, keeps the waker `register` makes and wakes it when that changes (unless the
    /// app's code has ended: a call from a task it left behind waits forever).
    pub fn receive(&self, register: impl FnOnce() -> Waker) -> Option<Received> {
        let mut state = self.lock();
        let (mut received, was_full) = self.take_received(&mut state);
        if received.is_none() && !state.app_done {
            let waker = register();
            if state.body_end_taken {
                // All that is left to wait for is the client leaving: a half-close counts
                // (`exchange/wire.rs`); checked again once registered, as it may have come
                // in between.
                let wire = &self.conn.wire;
                wire.register_app(&waker);
                if wire.read_closed() {
                    received = Some(Received::Disconnect);
                }
            }
            if received.is_none() {
                state.receive_waker = Some(waker);
            }
        }
        if received == Some(Received::Disconnect)
            && !self.is_disconnected()
            && !state.response_complete
        {
            // The client half-closed and the app has now been told it left: from here on
            // the request is disconnected (sends fail, the transport gives up on it).
            drop(state);
            self.mark_disconnected();
            return received;
        }
        // Expect: 100-continue: the first wait lets the pump read, and the transport sends
        // "100 Continue" when the body is first polled.
        let go = received.is_none() && !std::mem::replace(&mut state.body_go, true);
        drop(state);
        if was_full || go {
            self.body_signal.notify_one();
        }
        received
    }

    fn take_received(&self, state: &mut State) -> (Option<Received>, bool) {
        if self.is_disconnected() || state.response_complete {
            return (Some(Received::Disconnect), false);
        }
        if state.body_len > 0 || !state.body.is_empty() {
            let was_full = state.body_len >= REQUEST_BODY_HIGH_WATER;
            let data = if state.body.len() == 1 {
                state.body.pop_front().expect("one chunk")
            } else {
                let mut buf = BytesMut::with_capacity(state.body_len);
                for chunk in state.body.drain(..) {
                    buf.extend_from_slice(&chunk);
                }
                buf.freeze()
            };
            state.body_len = 0;
            let more = !state.body_done;
            state.body_end_taken = !more;
            return (Some(Received::Body(data, more)), was_full);
        }
        if state.body_done && !state.body_end_taken {
            state.body_end_taken = true;
            return (Some(Received::Body(Bytes::new(), false)), false);
        }
        if state.body_end_taken && self.conn.wire.read_closed() {
            return (Some(Received::Disconnect), false);
        }
        (None, false)
    }

    /// The app started its response (its head may still be held back): from now on a body
    /// error closes the connection rather than being answered.
    pub fn begin_response(&self) {
        self.lock().response_begun = true;
    }

    /// A `103 Early Hints` with these `link` values, ahead of the response (offered only
    /// where `head.features.early_hints`). Returns the transport's waker: the connection
    /// writes it at its next flush, which its next poll makes.
    pub fn early_hints(&self, links: &[HeaderValue]) -> Option<Waker> {
        self.conn.wire.queue_early_hints(links);
        match &self.lock().reply {
            Reply::Waiting(Some(waker)) => Some(waker.clone()),
            _ => None,
        }
    }

    /// A whole response: head and body in one. Returns the transport's waker.
    pub fn respond(&self, answer: Answer) -> Option<Waker> {
        if let Some(tap) = &self.tap {
            tap.whole(&self.head, &answer);
        }
        let mut state = self.lock();
        let waker = state.reply.deliver(answer);
        Self::complete(&self.conn.hub, &mut state);
        waker
    }

    /// Part of a streamed response: `head` (the first time) and `data`, `end` with the
    /// last part. Returns the transport's waker and whether the queue is now full.
    pub fn stream(&self, head: Option<Answer>, data: Bytes, end: bool) -> Streamed {
        if let Some(tap) = &self.tap {
            if let Some(answer) = &head {
                tap.head(&self.head, answer.status, &answer.headers);
            }
            tap.body(&self.head, &data, end);
        }
        let hub = &self.conn.hub;
        let mut state = self.lock();
        if !data.is_empty() {
            state.out_len += data.len();
            state.out.push_back(data);
        }
        state.out_end = end;
        let waker = match head {
            Some(answer) => state.reply.deliver(answer),
            None => state.out_waker.take(),
        };
        if end {
            Self::complete(hub, &mut state);
        }
        let connections = hub.connections.load(Ordering::Relaxed);
        let full = !end && state.out_len > hub.queue_budget.high_water(connections);
        Streamed { waker, full }
    }

    /// Trailer fields for the end of a streamed response (`last`: the response ends with
    /// them). Returns the transport's waker.
    pub fn trailers(&self, fields: HeaderMap, last: bool) -> Option<Waker> {
        let mut state = self.lock();
        match &mut state.trailers {
            Some(trailers) => trailers.extend(fields),
            None => state.trailers = Some(Box::new(fields)),
        }
        if last {
            state.out_end = true;
            Self::complete(&self.conn.hub, &mut state);
        }
        state.out_waker.take()
    }

    fn complete(hub: &Hub, state: &mut State) {
        state.response_complete = true;
        hub.total_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the app may queue more response now; when not, keeps `waker` and wakes it
    /// once the queue drains or the client leaves.
    pub fn wait_for_room(&self, waker: impl FnOnce() -> Waker) -> Room {
        let mut state = self.lock();
        if self.is_disconnected() {
            Room::Gone
        } else if state.out_len <= RESPONSE_BODY_LOW_WATER {
            Room::Ready
        } else {
            if !state.app_done {
                state.room_waker = Some(waker());
            }
            Room::Wait
        }
    }

    /// The app failed before its response began: answer `answer` instead (woken at once:
    /// a rare path).
    pub fn fail(&self, answer: Answer) {
        let waker = self.lock().reply.deliver(answer);
        wake(waker);
    }

    /// Cut the response short: the transport gets no head if it has none yet, and a
    /// streamed body ends with an error, so the connection is closed.
    pub fn abort(&self) {
        let mut state = self.lock();
        state.aborted = true;
        let wakers = [state.reply.abandon(), state.out_waker.take()];
        drop(state);
        wakers.into_iter().for_each(wake);
    }

    /// The app's code has ended: the body pump may stop, and the app side's wakers are
    /// dropped (they refer back to state that refers to this exchange).
    pub fn app_done(&self) {
        let mut state = self.lock();
        state.app_done = true;
        let wakers = (state.receive_waker.take(), state.room_waker.take());
        drop(state);
        drop(wakers);
        self.body_signal.notify_one();
    }

    /// Close the connection once this response is out.
    pub fn close_connection(&self) {
        self.conn.control.close();
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl Drop for RequestExchange {
    fn drop(&mut self) {
        self.hub().active_requests.fetch_sub(1, Ordering::Relaxed);
    }
}
