//! One WebSocket as the app sees it: `receive()` and `send()` for the ASGI WebSocket protocol.
//!
//! Theory of operation
//! -------------------
//! Same shape as `asgi::http`: a [`WsShared`] behind one mutex is shared by the service
//! future (waiting for the app's handshake decision on a oneshot), the connection task
//! (which owns the socket once upgraded, see `ws::connection`) and the app's task on the
//! loop thread. The app's messages are checked by [`WsCycle`]; data to send goes into
//! `outbox` and the connection task is signalled; data received goes into `inbox` (at most
//! `--ws-max-queue` messages: a fast client cannot flood a slow app) and the loop thread
//! is woken through the bridge only if a `receive()` is waiting.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use tokio::sync::oneshot;

use crate::asgi::awaitable::{ready_none, ready_value, resolve, resolve_send, ClientDisconnected};
use crate::asgi::http::{wake_io, LoopHooks};
use crate::asgi::message::{self, WsMessage};
use crate::asgi::scope::RequestHead;
use crate::asgi::ws_cycle::{WsAction, WsCycle, WsEnding, WsError, WsSend};
use crate::bridge::Event;
use crate::common::limits::{RESPONSE_BODY_LOW_WATER, WS_SEND_HIGH_WATER};
use crate::http::body::ResponseBody;
use crate::http::canned;
use crate::server::shared::ServerShared;

/// A complete message from the client.
pub enum Inbound {
    /// A text message (already checked to be UTF-8).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// Something for the connection task to write.
pub enum Outbound {
    /// A text message.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A close frame with code and reason; the connection then waits for the peer's close.
    Close(u16, String),
}

/// The app's answer to the handshake, for the waiting service future.
pub enum Decision {
    /// Complete the handshake (101) with these extra headers.
    Accept {
        /// `Sec-WebSocket-Protocol` to echo.
        subprotocol: Option<String>,
        /// The app's extra headers.
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Any HTTP response instead (403 for a close before accept, the denial extension's
    /// response, or 500 when the app failed).
    Respond(Response<ResponseBody>),
}

/// Mutable state of one WebSocket.
pub struct WsInner {
    /// Message ordering rules.
    pub cycle: WsCycle,
    /// Where the handshake decision goes.
    pub decision: Option<oneshot::Sender<Decision>>,
    denial: Option<(StatusCode, HeaderMap, BytesMut)>,
    /// Messages received and not yet taken by the app.
    pub inbox: VecDeque<Inbound>,
    /// Messages the app sent and the socket has not taken yet.
    pub outbox: VecDeque<Outbound>,
    /// Bytes in `outbox`.
    pub out_bytes: usize,
    /// How the connection ended, as `websocket.disconnect` will report it.
    pub disconnect: Option<(u16, String)>,
    connect_delivered: bool,
    /// The app's coroutine has ended.
    pub finished: bool,
    /// The app's task, held until the app ends (see `asgi::http::Inner::task`).
    pub task: Option<Py<PyAny>>,
    recv_waiter: Option<Py<PyAny>>,
    send_waiter: Option<Py<PyAny>>,
    wake_queued: bool,
    /// The connection task's waker while it waits for a signal.
    io_waker: Option<Waker>,
}

/// State shared by the service future, the connection task and the app's task.
pub struct WsShared {
    inner: Mutex<WsInner>,
    /// Set when the connection task has something to do (outbox data, app finished, room in
    /// the inbox); it polls this through [`WsShared::poll_signal`].
    signalled: std::sync::atomic::AtomicBool,
    /// Server settings, counters and the bridge.
    pub server: Arc<ServerShared>,
}

impl WsShared {
    /// State for a WebSocket whose handshake is pending.
    pub fn new(server: Arc<ServerShared>, decision: oneshot::Sender<Decision>) -> Arc<WsShared> {
        Arc::new(WsShared {
            inner: Mutex::new(WsInner {
                cycle: WsCycle::new(),
                decision: Some(decision),
                denial: None,
                inbox: VecDeque::new(),
                outbox: VecDeque::new(),
                out_bytes: 0,
                disconnect: None,
                connect_delivered: false,
                finished: false,
                task: None,
                recv_waiter: None,
                send_waiter: None,
                wake_queued: false,
                io_waker: None,
            }),
            signalled: std::sync::atomic::AtomicBool::new(false),
            server,
        })
    }

    /// Lock the state.
    pub fn lock(&self) -> MutexGuard<'_, WsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection task waits here for something to do.
    pub fn poll_signal(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.signalled.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        let mut inner = self.lock();
        if self.signalled.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        inner.io_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Signal the connection task; returns its waker for the caller to wake (batched when
    /// on the loop thread, directly otherwise). Call with the lock held.
    fn signal(&self, inner: &mut WsInner) -> Option<Waker> {
        self.signalled.store(true, Ordering::Release);
        inner.io_waker.take()
    }

    /// Signal and wake now (rare paths).
    fn signal_now(&self, inner: &mut WsInner) {
        if let Some(w) = self.signal(inner) {
            w.wake();
        }
    }

    /// Post a `WsWake` if a Python future waits on this socket (IO threads, lock held).
    pub fn wake_python(self: &Arc<Self>, inner: &mut WsInner) {
        if (inner.recv_waiter.is_some() || inner.send_waiter.is_some()) && !inner.wake_queued {
            inner.wake_queued = true;
            self.server.bridge.push(Event::WsWake(self.clone()));
        }
    }

    /// The connection ended with this code: the app's next `receive()` reports it and every
    /// later `send()` raises `ClientDisconnected`.
    pub fn end(self: &Arc<Self>, code: u16, reason: &str) {
        let mut inner = self.lock();
        if inner.disconnect.is_none() {
            inner.disconnect = Some((code, reason.to_owned()));
        }
        inner.cycle.gone();
        inner.decision = None;
        self.wake_python(&mut inner);
    }

    /// A message arrived from the client.
    pub fn push_inbound(self: &Arc<Self>, message: Inbound) {
        let mut inner = self.lock();
        inner.inbox.push_back(message);
        self.wake_python(&mut inner);
    }

    /// Take what the app queued for the socket; also wakes a `send()` waiting for room.
    pub fn take_outbound(self: &Arc<Self>, into: &mut Vec<Outbound>) {
        let mut inner = self.lock();
        into.extend(inner.outbox.drain(..));
        inner.out_bytes = 0;
        if inner.send_waiter.is_some() {
            self.wake_python(&mut inner);
        }
    }
}

fn disconnect_message<'py>(
    py: Python<'py>,
    code: u16,
    reason: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let msg = PyDict::new(py);
    msg.set_item(intern!(py, "type"), intern!(py, "websocket.disconnect"))?;
    msg.set_item(intern!(py, "code"), code)?;
    msg.set_item(intern!(py, "reason"), reason)?;
    Ok(msg)
}

fn inbound_message(py: Python<'_>, message: Inbound) -> PyResult<Bound<'_, PyDict>> {
    let msg = PyDict::new(py);
    msg.set_item(intern!(py, "type"), intern!(py, "websocket.receive"))?;
    match message {
        Inbound::Text(text) => msg.set_item(intern!(py, "text"), PyString::new(py, &text))?,
        Inbound::Binary(data) => msg.set_item(intern!(py, "bytes"), PyBytes::new(py, &data))?,
    }
    Ok(msg)
}

enum Receivable {
    Connect,
    Message(Inbound, bool),
    Disconnect(u16, String),
    Nothing,
}

fn take_receivable(inner: &mut WsInner, max_queue: usize) -> Receivable {
    if !inner.connect_delivered {
        inner.connect_delivered = true;
        return Receivable::Connect;
    }
    if let Some(message) = inner.inbox.pop_front() {
        let was_full = inner.inbox.len() + 1 >= max_queue;
        return Receivable::Message(message, was_full);
    }
    if let Some((code, reason)) = &inner.disconnect {
        return Receivable::Disconnect(*code, reason.clone());
    }
    Receivable::Nothing
}

/// The Python object behind one WebSocket's `receive` and `send`.
#[pyclass(frozen, module = "sandman_asgi._core")]
pub struct WsCycleHandle {
    shared: Arc<WsShared>,
    hooks: Arc<LoopHooks>,
    head: Box<RequestHead>,
}

impl WsCycleHandle {
    /// Wrap a dispatched WebSocket for Python.
    pub fn new(shared: Arc<WsShared>, hooks: Arc<LoopHooks>, head: Box<RequestHead>) -> Self {
        WsCycleHandle {
            shared,
            hooks,
            head,
        }
    }

    fn max_queue(&self) -> usize {
        self.shared.server.settings.ws.max_queue
    }

    fn to_py<'py>(&self, py: Python<'py>, r: Receivable) -> PyResult<Bound<'py, PyDict>> {
        match r {
            Receivable::Connect => {
                let msg = PyDict::new(py);
                msg.set_item(intern!(py, "type"), intern!(py, "websocket.connect"))?;
                Ok(msg)
            }
            Receivable::Message(m, was_full) => {
                if was_full {
                    let waker = self.shared.signal(&mut self.shared.lock());
                    wake_io(py, &self.hooks, &self.shared.server, waker);
                }
                inbound_message(py, m)
            }
            Receivable::Disconnect(code, reason) => disconnect_message(py, code, &reason),
            Receivable::Nothing => unreachable!("checked by caller"),
        }
    }

    /// Resolve the Python futures of this socket that can be resolved now (loop thread).
    pub fn on_wake(py: Python<'_>, shared: &Arc<WsShared>) {
        let max_queue = shared.server.settings.ws.max_queue;
        let mut inner = shared.lock();
        inner.wake_queued = false;
        let mut recv = None;
        if inner.recv_waiter.is_some() {
            let r = take_receivable(&mut inner, max_queue);
            if !matches!(r, Receivable::Nothing) {
                recv = Some((inner.recv_waiter.take().unwrap(), r));
            }
        }
        let mut send = None;
        if inner.send_waiter.is_some()
            && (inner.disconnect.is_some() || inner.out_bytes <= RESPONSE_BODY_LOW_WATER)
        {
            send = Some((
                inner.send_waiter.take().unwrap(),
                inner.disconnect.is_some(),
            ));
        }
        drop(inner);
        if let Some((fut, r)) = recv {
            let msg = match r {
                Receivable::Message(m, was_full) => {
                    if was_full {
                        shared.signal_now(&mut shared.lock());
                    }
                    inbound_message(py, m)
                }
                Receivable::Disconnect(code, reason) => disconnect_message(py, code, &reason),
                Receivable::Connect => {
                    let msg = PyDict::new(py);
                    msg.set_item(intern!(py, "type"), intern!(py, "websocket.connect"))
                        .map(|_| msg)
                }
                Receivable::Nothing => unreachable!(),
            };
            resolve(py, fut, msg.map(|m| m.into_any()));
        }
        if let Some((fut, gone)) = send {
            resolve_send(py, fut, gone);
        }
    }

    fn log_handshake(&self, py: Python<'_>, status: Option<u16>) -> PyResult<()> {
        let Some(hook) = &self.hooks.ws_log else {
            return Ok(());
        };
        let r = self.head.access_record(status.unwrap_or(101));
        hook.call1(py, (r.client, r.path, status))?;
        Ok(())
    }

    fn decide(inner: &mut WsInner, decision: Decision) {
        if let Some(tx) = inner.decision.take() {
            let _ = tx.send(decision);
        }
    }

    fn queue(
        &self,
        py: Python<'_>,
        inner: &mut WsInner,
        item: Outbound,
        size: usize,
    ) -> PyResult<Py<PyAny>> {
        inner.outbox.push_back(item);
        inner.out_bytes += size;
        let waker = self.shared.signal(inner);
        wake_io(py, &self.hooks, &self.shared.server, waker);
        if inner.out_bytes > WS_SEND_HIGH_WATER {
            let fut = self.hooks.create_future.call0(py)?;
            inner.send_waiter = Some(fut.clone_ref(py));
            return Ok(fut);
        }
        ready_none(py)
    }

    fn end_with(&self, inner: &mut WsInner, ending: WsEnding, failed: bool) {
        inner.finished = true;
        match ending {
            WsEnding::NoHandshake => {
                let response = canned::internal_server_error(&self.shared.server.settings);
                Self::decide(inner, Decision::Respond(response));
            }
            WsEnding::StillOpen => {
                let code = if failed { 1011 } else { 1000 };
                inner.outbox.push_back(Outbound::Close(code, String::new()));
            }
            WsEnding::DenialIncomplete => inner.decision = None,
            WsEnding::Done => {}
        }
        self.shared.signal_now(inner);
    }
}

#[pymethods]
impl WsCycleHandle {
    /// ASGI `receive()`.
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut inner = self.shared.lock();
        let r = take_receivable(&mut inner, self.max_queue());
        if let Receivable::Nothing = r {
            let fut = self.hooks.create_future.call0(py)?;
            inner.recv_waiter = Some(fut.clone_ref(py));
            return Ok(fut);
        }
        drop(inner);
        ready_value(py, self.to_py(py, r)?.into_any())
    }

    /// ASGI `send(message)`.
    fn send(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        // Parse and validate everything before the socket's state changes.
        let parsed = message::websocket_message(
            message::as_dict(&message)?,
            Some(&self.shared.server.bridge),
        )?;
        let (kind, close_code, more_body) = match &parsed {
            WsMessage::Accept { .. } => (WsSend::Accept, 0, false),
            WsMessage::Text(_) | WsMessage::Binary(_) => (WsSend::Send, 0, false),
            WsMessage::Close { code, .. } => (WsSend::Close, *code, false),
            WsMessage::ResponseStart(_) => (WsSend::ResponseStart, 0, false),
            WsMessage::ResponseBody { more_body, .. } => (WsSend::ResponseBody, 0, *more_body),
        };
        let mut inner = self.shared.lock();
        let action = inner
            .cycle
            .on_send(kind, close_code, more_body)
            .map_err(|e| match e {
                WsError::Disconnected => ClientDisconnected::new_err("client disconnected"),
                WsError::Unexpected(text) => PyRuntimeError::new_err(text),
            })?;
        match (action, parsed) {
            (
                WsAction::Accept,
                WsMessage::Accept {
                    subprotocol,
                    headers,
                },
            ) => {
                Self::decide(
                    &mut inner,
                    Decision::Accept {
                        subprotocol,
                        headers,
                    },
                );
                drop(inner);
                self.log_handshake(py, None)?;
                ready_none(py)
            }
            (WsAction::Reject, _) => {
                let response = canned::forbidden(&self.shared.server.settings);
                Self::decide(&mut inner, Decision::Respond(response));
                // The client never gets a WebSocket: the app sees 1006 (as uvicorn reports).
                inner.disconnect.get_or_insert((1006, String::new()));
                drop(inner);
                self.log_handshake(py, Some(403))?;
                ready_none(py)
            }
            (WsAction::Send, WsMessage::Text(data)) => {
                let size = data.len();
                self.queue(py, &mut inner, Outbound::Text(data), size)
            }
            (WsAction::Send, WsMessage::Binary(data)) => {
                let size = data.len();
                self.queue(py, &mut inner, Outbound::Binary(data), size)
            }
            (WsAction::Close(code), WsMessage::Close { reason, .. }) => {
                self.queue(py, &mut inner, Outbound::Close(code, reason), 0)
            }
            (WsAction::DenyStart, WsMessage::ResponseStart(start)) => {
                let headers = self.shared.server.settings.response_headers(start.headers);
                let status = StatusCode::from_u16(start.status).expect("validated range");
                inner.denial = Some((status, headers, BytesMut::new()));
                drop(inner);
                self.log_handshake(py, Some(start.status))?;
                ready_none(py)
            }
            (WsAction::DenyBody(last), WsMessage::ResponseBody { body, .. }) => {
                if let Some((_, _, buf)) = inner.denial.as_mut() {
                    buf.extend_from_slice(&body);
                }
                if last {
                    if let Some((status, headers, buf)) = inner.denial.take() {
                        let mut response = Response::new(ResponseBody::full(buf.freeze()));
                        *response.status_mut() = status;
                        *response.headers_mut() = headers;
                        Self::decide(&mut inner, Decision::Respond(response));
                    }
                    inner.disconnect.get_or_insert((1006, String::new()));
                }
                ready_none(py)
            }
            _ => unreachable!("the cycle's action always matches the message kind"),
        }
    }

    /// The app returned. 0 nothing to report, 1 it never answered the handshake (500 sent).
    fn app_returned(&self) -> u8 {
        let mut inner = self.shared.lock();
        let ending = inner.cycle.finish();
        self.end_with(&mut inner, ending, false);
        let task = inner.task.take();
        drop(inner);
        drop(task);
        u8::from(ending == WsEnding::NoHandshake)
    }

    /// The app raised: 500 before the handshake, close 1011 after it.
    fn app_failed(&self) {
        let mut inner = self.shared.lock();
        let ending = inner.cycle.finish();
        self.end_with(&mut inner, ending, true);
        let task = inner.task.take();
        drop(inner);
        drop(task);
    }
}

impl Drop for WsCycleHandle {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        let task = inner.task.take();
        if !inner.finished {
            let ending = inner.cycle.finish();
            self.end_with(&mut inner, ending, true);
        }
        drop(inner);
        drop(task);
    }
}

impl WsCycleHandle {
    /// Keep the app's task alive until the app ends.
    pub fn hold_task(&self, task: Py<PyAny>) {
        let mut inner = self.shared.lock();
        if !inner.finished {
            inner.task = Some(task);
        }
    }
}
