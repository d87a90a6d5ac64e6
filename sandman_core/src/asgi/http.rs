//! One HTTP request as the app sees it: `receive()` and `send()` for the ASGI HTTP protocol.
//!
//! Theory of operation
//! -------------------
//! A [`RequestShared`] is the meeting point of three parties:
//!
//! * the hyper service future on an IO thread, waiting for the response head on a oneshot;
//! * the body pump on an IO thread (only for streamed request bodies), filling `body`;
//! * the app's task on the event loop thread, calling [`HttpCycle::receive`]/[`HttpCycle::send`].
//!
//! All state sits behind one mutex that is held for a few instructions at a time and never
//! across a call into Python or an `.await`. The loop thread never waits for an IO thread:
//! `send()` validates the message, runs it through the [`Cycle`] rules, hands the response to
//! the service future (or queues a chunk) and returns an already-finished awaitable. It only
//! returns a pending future when the response queue is over its high-water mark. `receive()`
//! returns finished awaitables while body data is buffered and an asyncio future otherwise.
//! IO threads resolve nothing themselves: they post a `Wake` through the bridge and the loop
//! thread resolves the futures when it drains.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tokio::sync::Notify;

use crate::asgi::awaitable::{ready_none, ready_value, resolve, resolve_send, ClientDisconnected};
use crate::asgi::cycle::{BodyStep, Cycle, Ending, Phase};
use crate::asgi::message;
use crate::asgi::scope::RequestHead;
use crate::bridge::Event;
use crate::common::limits::{REQUEST_BODY_HIGH_WATER, RESPONSE_BODY_LOW_WATER};
use crate::http::body::ResponseBody;
use crate::http::canned;
use crate::server::shared::ServerShared;

/// Mutable state of one request, shared between IO threads and the loop thread.
pub struct Inner {
    /// Response ordering rules.
    pub cycle: Cycle,
    /// The response for the waiting service future, which polls it.
    pub reply: Reply,
    /// `http.response.start` is held here until the first body.
    held: Option<(StatusCode, HeaderMap)>,

    /// Request body chunks not yet given to the app.
    pub body: VecDeque<Bytes>,
    /// Bytes in `body`.
    pub body_len: usize,
    /// The request body has been read to its end.
    pub body_done: bool,
    /// The app has been given `more_body=False`.
    body_final_delivered: bool,
    /// The pump may read (false until the first `receive()` on `Expect: 100-continue`).
    pub body_go: bool,

    /// Response chunks queued for the socket (streamed responses).
    pub out: VecDeque<Bytes>,
    /// Bytes in `out`.
    pub out_len: usize,
    /// The last chunk has been queued.
    pub out_end: bool,
    /// hyper's waker for the response body, when it is waiting for a chunk.
    pub out_waker: Option<Waker>,

    /// The client has gone (or the request can no longer be answered).
    pub disconnected: bool,
    /// The app's coroutine has ended; the pump may stop.
    pub finished: bool,

    /// The app's task, held here (out of the garbage collector's sight) until the app
    /// ends: the strong reference a server must keep to a running task, without a
    /// per-request done-callback.
    pub task: Option<Py<PyAny>>,
    /// A `receive()` future waiting for data or disconnect (loop thread only).
    recv_waiter: Option<Py<PyAny>>,
    /// A `send()` future waiting for room in `out` (loop thread only).
    send_waiter: Option<Py<PyAny>>,
    /// A `Wake` for this request is already in the bridge queue.
    wake_queued: bool,
}

/// The request state shared by the service future, the body pump and the app's task.
pub struct RequestShared {
    inner: Mutex<Inner>,
    /// Signals the body pump: permission to read, room in the buffer, or stop.
    pub pump_signal: Notify,
    /// The connection (an app that returns a value closes it), and through it the server.
    pub conn: Arc<crate::server::conn::ConnState>,
}

impl RequestShared {
    /// New state for a request on `conn`; `head_request` is true for `HEAD`.
    pub fn new(
        conn: Arc<crate::server::conn::ConnState>,
        head_request: bool,
    ) -> Arc<RequestShared> {
        conn.server.active_requests.fetch_add(1, Ordering::Relaxed);
        Arc::new(RequestShared {
            inner: Mutex::new(Inner {
                cycle: Cycle::new(head_request),
                reply: Reply::Taken,
                held: None,
                body: VecDeque::new(),
                body_len: 0,
                body_done: false,
                body_final_delivered: false,
                body_go: true,
                out: VecDeque::new(),
                out_len: 0,
                out_end: false,
                out_waker: None,
                disconnected: false,
                finished: false,
                task: None,
                recv_waiter: None,
                send_waiter: None,
                wake_queued: false,
            }),
            pump_signal: Notify::new(),
            conn,
        })
    }

    /// Server-wide settings, counters and the bridge.
    pub fn server(&self) -> &Arc<ServerShared> {
        &self.conn.server
    }

    /// Lock the state.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Post a `Wake` to the loop thread if a Python future is waiting on this request.
    /// Called by IO threads with the lock held.
    pub fn wake_python(self: &Arc<Self>, inner: &mut Inner) {
        if (inner.recv_waiter.is_some() || inner.send_waiter.is_some()) && !inner.wake_queued {
            inner.wake_queued = true;
            self.server().bridge.push(Event::Wake(self.clone()));
        }
    }

    /// The client went away or the request was abandoned: fail pending and future sends,
    /// turn `receive()` into `http.disconnect`, stop the pump, release the service future.
    pub fn mark_disconnected(self: &Arc<Self>) {
        let mut inner = self.lock();
        if inner.disconnected {
            return;
        }
        inner.disconnected = true;
        inner.cycle.abort();
        let waker = inner.reply.abandon();
        self.wake_python(&mut inner);
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
        self.pump_signal.notify_one();
    }

    /// The service future's side of the reply slot.
    pub fn poll_reply(&self, cx: &mut Context<'_>) -> Poll<Option<Response<ResponseBody>>> {
        let mut inner = self.lock();
        match std::mem::replace(&mut inner.reply, Reply::Taken) {
            Reply::Ready(response) => Poll::Ready(Some(response)),
            Reply::Waiting(_) => {
                inner.reply = Reply::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
            Reply::Abandoned | Reply::Taken => Poll::Ready(None),
        }
    }
}

/// Where the response head travels from `send()` to the service future.
pub enum Reply {
    /// The service future waits (with its waker once it has polled).
    Waiting(Option<Waker>),
    /// The response is ready to be taken.
    Ready(Response<ResponseBody>),
    /// Nothing will come: close the connection without a response.
    Abandoned,
    /// Taken (or never expected).
    Taken,
}

impl Reply {
    /// Deliver a response if one is awaited; returns the waker to wake.
    pub fn deliver(&mut self, response: Response<ResponseBody>) -> Option<Waker> {
        match self {
            Reply::Waiting(waker) => {
                let waker = waker.take();
                *self = Reply::Ready(response);
                waker
            }
            _ => None,
        }
    }

    /// Give up on the response; returns the waker to wake.
    pub fn abandon(&mut self) -> Option<Waker> {
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

impl Drop for RequestShared {
    fn drop(&mut self) {
        self.server()
            .active_requests
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Wake an IO task from the loop thread: batched into one cross-thread wake per loop
/// iteration (`bridge::wakeups`).
pub fn wake_io(py: Python<'_>, hooks: &LoopHooks, server: &ServerShared, waker: Option<Waker>) {
    if let Some(waker) = waker {
        if server.wakeups.defer(waker) {
            let scheduled = hooks.call_soon.call1(py, (hooks.flush.clone_ref(py),));
            if scheduled.is_err() {
                // The loop is closing: wake now rather than never.
                server.wakeups.flush();
            }
        }
    }
}

/// Objects of the event loop the cycles need (touched only on the loop thread).
pub struct LoopHooks {
    /// `loop.create_future`
    pub create_future: Py<PyAny>,
    /// `access(client, method, path_with_query, http_version, status)` or `None` when the
    /// access log is off, so a disabled log costs nothing per request.
    pub access_log: Option<Py<PyAny>>,
    /// `ws_access(client, path_with_query, status)` for WebSocket handshake lines
    /// (`status` is `None` for "[accepted]"), or `None` when nobody listens.
    pub ws_log: Option<Py<PyAny>>,
    /// `loop.call_soon`, to schedule one wake-up flush per loop iteration.
    pub call_soon: Py<PyAny>,
    /// The flush callable (`bridge::wakeups::Flusher`).
    pub flush: Py<PyAny>,
}

fn disconnect_message(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let msg = PyDict::new(py);
    msg.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?;
    Ok(msg)
}

fn request_message<'py>(py: Python<'py>, body: &[u8], more: bool) -> PyResult<Bound<'py, PyDict>> {
    let msg = PyDict::new(py);
    msg.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
    msg.set_item(intern!(py, "body"), PyBytes::new(py, body))?;
    msg.set_item(intern!(py, "more_body"), more)?;
    Ok(msg)
}

/// What `receive()` can answer right now, computed under the lock.
enum Receivable {
    Disconnect,
    Body(Bytes, bool),
    Nothing,
}

fn take_receivable(inner: &mut Inner) -> (Receivable, bool) {
    if inner.disconnected || inner.cycle.phase() == Phase::Complete {
        return (Receivable::Disconnect, false);
    }
    if inner.body_len > 0 || !inner.body.is_empty() {
        let was_full = inner.body_len >= REQUEST_BODY_HIGH_WATER;
        let data = if inner.body.len() == 1 {
            inner.body.pop_front().unwrap()
        } else {
            let mut buf = BytesMut::with_capacity(inner.body_len);
            for chunk in inner.body.drain(..) {
                buf.extend_from_slice(&chunk);
            }
            buf.freeze()
        };
        inner.body_len = 0;
        let more = !inner.body_done;
        if !more {
            inner.body_final_delivered = true;
        }
        return (Receivable::Body(data, more), was_full);
    }
    if inner.body_done && !inner.body_final_delivered {
        inner.body_final_delivered = true;
        return (Receivable::Body(Bytes::new(), false), false);
    }
    (Receivable::Nothing, false)
}

fn receivable_to_py(py: Python<'_>, r: Receivable) -> PyResult<Bound<'_, PyDict>> {
    match r {
        Receivable::Disconnect => disconnect_message(py),
        Receivable::Body(data, more) => request_message(py, &data, more),
        Receivable::Nothing => unreachable!("checked by caller"),
    }
}

/// The Python object behind one request's `receive` and `send`.
#[pyclass(frozen, module = "sandman_asgi._core")]
pub struct HttpCycle {
    shared: Arc<RequestShared>,
    hooks: Arc<LoopHooks>,
    head: Box<RequestHead>,
}

impl HttpCycle {
    /// Wrap a dispatched request for Python.
    pub fn new(shared: Arc<RequestShared>, hooks: Arc<LoopHooks>, head: Box<RequestHead>) -> Self {
        HttpCycle {
            shared,
            hooks,
            head,
        }
    }

    /// Resolve whatever Python futures of this request can be resolved now (loop thread,
    /// on a `Wake` from the bridge).
    pub fn on_wake(py: Python<'_>, shared: &Arc<RequestShared>) {
        let mut inner = shared.lock();
        inner.wake_queued = false;
        let mut recv = None;
        if inner.recv_waiter.is_some() {
            let (r, was_full) = take_receivable(&mut inner);
            if !matches!(r, Receivable::Nothing) {
                recv = Some((inner.recv_waiter.take().unwrap(), r, was_full));
            }
        }
        let mut send = None;
        if inner.send_waiter.is_some()
            && (inner.disconnected || inner.out_len <= RESPONSE_BODY_LOW_WATER)
        {
            send = Some((inner.send_waiter.take().unwrap(), inner.disconnected));
        }
        drop(inner);
        if let Some((fut, r, was_full)) = recv {
            if was_full {
                shared.pump_signal.notify_one();
            }
            let msg = receivable_to_py(py, r).map(|m| m.into_any());
            resolve(py, fut, msg);
        }
        if let Some((fut, gone)) = send {
            resolve_send(py, fut, gone);
        }
    }

    fn new_future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.hooks.create_future.call0(py)
    }

    fn log_access(&self, py: Python<'_>, status: u16) -> PyResult<()> {
        let Some(access) = &self.hooks.access_log else {
            return Ok(());
        };
        let r = self.head.access_record(status);
        access.call1(py, (r.client, r.method, r.path, r.version, r.status))?;
        Ok(())
    }

    fn wake_io(&self, py: Python<'_>, waker: Option<Waker>) {
        wake_io(py, &self.hooks, self.shared.server(), waker);
    }

    /// Hand the held head plus a body to the service future.
    fn respond(&self, py: Python<'_>, inner: &mut Inner, body: ResponseBody) {
        let (status, headers) = inner.held.take().expect("head held before first body");
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        if status.canonical_reason().is_none() {
            // An unregistered code gets an empty phrase ("HTTP/1.1 599 "), as uvicorn sends,
            // not hyper's "<none>".
            response
                .extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(b""));
        }
        // The service future may be gone (client left a moment ago); the disconnect path
        // reports that, so an undelivered response needs no handling here.
        let waker = inner.reply.deliver(response);
        self.wake_io(py, waker);
    }

    fn start(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<()> {
        // Validate before touching the cycle: a rejected start changes nothing, so an app
        // that lets the error escape gets a clean 500 (uvicorn closes the connection
        // instead; README, "Differences from uvicorn").
        let start = message::response_start(msg)?;
        let mut inner = self.shared.lock();
        if inner.disconnected {
            return Err(ClientDisconnected::new_err("client disconnected"));
        }
        let declared = start.declared_length;
        inner
            .cycle
            .start(start.status, declared)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let headers = self
            .shared
            .server()
            .settings
            .response_headers(start.headers);
        let status = StatusCode::from_u16(start.status).expect("validated range");
        inner.held = Some((status, headers));
        drop(inner);
        self.log_access(py, start.status)
    }

    fn body(&self, py: Python<'_>, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let body = message::body(msg, Some(&self.shared.server().bridge))?;
        let more = message::flag(msg, intern!(py, "more_body"))?;
        let mut inner = self.shared.lock();
        if inner.disconnected {
            return Err(ClientDisconnected::new_err("client disconnected"));
        }
        let step = match inner.cycle.body(body.len(), more) {
            Ok(step) => step,
            Err(e) => {
                if inner.cycle.phase() == Phase::Aborted {
                    self.abort_locked(&mut inner);
                }
                return Err(PyRuntimeError::new_err(e.to_string()));
            }
        };
        let allowed = inner.cycle.body_allowed();
        match step {
            BodyStep::Whole => {
                if !allowed {
                    // HEAD: announce the length a GET would have had, send no bytes.
                    if inner.cycle.declared_length().is_none()
                        && !crate::asgi::cycle::status_forbids_body(inner.cycle.status())
                    {
                        let len = HeaderValue::from(body.len() as u64);
                        if let Some((_, h)) = inner.held.as_mut() {
                            h.insert(header::CONTENT_LENGTH, len);
                        }
                    }
                    self.respond(py, &mut inner, ResponseBody::empty());
                } else {
                    self.respond(py, &mut inner, ResponseBody::full(body));
                }
                self.complete_locked(py, inner);
                Ok(ready_none(py)?)
            }
            BodyStep::Begin | BodyStep::Chunk | BodyStep::End => {
                if allowed && !body.is_empty() {
                    inner.out_len += body.len();
                    inner.out.push_back(body);
                }
                if step == BodyStep::End {
                    inner.out_end = true;
                }
                if step == BodyStep::Begin {
                    self.respond(py, &mut inner, ResponseBody::stream(self.shared.clone()));
                } else {
                    let waker = inner.out_waker.take();
                    self.wake_io(py, waker);
                }
                if step == BodyStep::End {
                    self.complete_locked(py, inner);
                    return ready_none(py);
                }
                let server = self.shared.server();
                let connections = server.connections.load(Ordering::Relaxed);
                if inner.out_len > server.queue_budget.high_water(connections) {
                    let fut = self.new_future(py)?;
                    inner.send_waiter = Some(fut.clone_ref(py));
                    return Ok(fut);
                }
                ready_none(py)
            }
        }
    }

    /// The response is complete: count it and release a `receive()` waiting for disconnect.
    fn complete_locked(&self, py: Python<'_>, mut inner: MutexGuard<'_, Inner>) {
        self.shared
            .server()
            .total_requests
            .fetch_add(1, Ordering::Relaxed);
        let waiter = inner.recv_waiter.take();
        drop(inner);
        if let Some(fut) = waiter {
            resolve(py, fut, disconnect_message(py).map(|m| m.into_any()));
        }
    }

    /// Cut the response short: the service future answers nothing more and a streamed body
    /// ends with an error, so hyper closes the connection.
    fn abort_locked(&self, inner: &mut Inner) {
        // Error paths wake directly: rare, and some run without the loop (Drop).
        inner.cycle.abort();
        inner.held = None;
        if let Some(w) = inner.reply.abandon() {
            w.wake();
        }
        if let Some(w) = inner.out_waker.take() {
            w.wake();
        }
    }

    fn finish_locked(&self, inner: &mut Inner) {
        inner.finished = true;
        self.shared.pump_signal.notify_one();
    }
}

#[pymethods]
impl HttpCycle {
    /// ASGI `receive()`.
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut inner = self.shared.lock();
        let (r, was_full) = take_receivable(&mut inner);
        if let Receivable::Nothing = r {
            if !inner.body_go {
                // Expect: 100-continue — the first receive() lets the pump read, and hyper
                // sends "100 Continue" when the body is first polled (D-HTTP-8).
                inner.body_go = true;
                self.shared.pump_signal.notify_one();
            }
            let fut = self.new_future(py)?;
            inner.recv_waiter = Some(fut.clone_ref(py));
            return Ok(fut);
        }
        drop(inner);
        if was_full {
            self.shared.pump_signal.notify_one();
        }
        ready_value(py, receivable_to_py(py, r)?.into_any())
    }

    /// ASGI `send(message)`.
    fn send(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let msg = message::as_dict(&message)?;
        let kind = message::message_type(msg)?;
        let kind = kind.to_str()?;
        match kind {
            "http.response.start" => {
                self.start(py, msg)?;
                ready_none(py)
            }
            "http.response.body" => self.body(py, msg),
            other => {
                if self.shared.lock().disconnected {
                    return Err(ClientDisconnected::new_err("client disconnected"));
                }
                let expected = if self.shared.lock().cycle.phase() == Phase::AwaitingStart {
                    "http.response.start"
                } else {
                    "http.response.body"
                };
                Err(PyRuntimeError::new_err(format!(
                    "Expected ASGI message '{expected}', but got '{other}'."
                )))
            }
        }
    }

    /// The app returned `None`. Returns 0 complete, 1 not started (a 500 was sent),
    /// 2 incomplete (connection closed), 3 already aborted.
    fn app_returned(&self, py: Python<'_>) -> u8 {
        let mut inner = self.shared.lock();
        self.finish_locked(&mut inner);
        let code = match inner.cycle.finish() {
            Ending::Complete => 0,
            Ending::NotStarted => {
                self.send_500(&mut inner);
                let _ = self.log_access(py, 500);
                1
            }
            Ending::Incomplete => {
                self.abort_locked(&mut inner);
                2
            }
            Ending::Aborted => 3,
        };
        // Released after the lock: a decref may run arbitrary Python.
        let task = inner.task.take();
        drop(inner);
        drop(task);
        code
    }

    /// The app raised (or returned a value). Sends a 500 if nothing was sent yet and
    /// `error_response` is true, else closes the connection. Returns True if a 500 went out.
    #[pyo3(signature = (error_response=true))]
    fn app_failed(&self, py: Python<'_>, error_response: bool) -> bool {
        let mut inner = self.shared.lock();
        self.finish_locked(&mut inner);
        let sent_500 =
            error_response && inner.cycle.phase() == Phase::AwaitingStart && !inner.disconnected;
        if sent_500 {
            inner.cycle.abort();
            self.send_500(&mut inner);
        } else if inner.cycle.phase() == Phase::Complete {
            // Complete, but the app misbehaved (returned a value): do not keep the
            // connection alive after it (uvicorn closes it too).
            self.shared.conn.control.close();
        } else {
            self.abort_locked(&mut inner);
        }
        let task = inner.task.take();
        drop(inner);
        drop(task);
        if sent_500 {
            let _ = self.log_access(py, 500);
        }
        sent_500
    }

    /// Request method, path and client for log lines.
    #[getter]
    fn client(&self) -> Option<String> {
        self.head
            .conn
            .client
            .as_ref()
            .map(|(h, p)| format!("{h}:{p}"))
    }
}

impl HttpCycle {
    fn send_500(&self, inner: &mut Inner) {
        let response = canned::internal_server_error(&self.shared.server().settings);
        if let Some(w) = inner.reply.deliver(response) {
            w.wake();
        }
    }
}

impl Drop for HttpCycle {
    fn drop(&mut self) {
        // A cycle dropped without its app finishing (never started, or cancelled before
        // its first step) must not leave the service future waiting forever.
        let mut inner = self.shared.lock();
        let task = inner.task.take();
        if !inner.finished {
            inner.finished = true;
            if inner.cycle.phase() == Phase::AwaitingStart {
                inner.cycle.abort();
                self.send_500(&mut inner);
            } else {
                self.abort_locked(&mut inner);
            }
            drop(inner);
            self.shared.pump_signal.notify_one();
        } else {
            drop(inner);
        }
        drop(task);
    }
}

impl HttpCycle {
    /// Keep the app's task alive until the app ends (see `Inner::task`).
    pub fn hold_task(&self, task: Py<PyAny>) {
        let mut inner = self.shared.lock();
        if !inner.finished {
            inner.task = Some(task);
        }
    }
}
