//! One WebSocket as the app sees it: `receive()` and `send()` for the ASGI WebSocket
//! protocol.
//!
//! Same shape as `asgi/http.rs`: a [`WsCycle`] is the Python object, its [`WsShared`]
//! state holds the ASGI rules (`ws_rules.rs`), the denial response being built and the
//! futures the app waits on; the socket's side is the WebSocket's exchange.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};

use bytes::BytesMut;
use hyper::header::HeaderMap;
use hyper::StatusCode;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::asgi::awaitable::{ready_none, ready_value, resolve, resolve_send, ClientDisconnected};
use crate::asgi::convert::send::{self, WsMessage};
use crate::asgi::convert::{calls, receive};
use crate::asgi::events::{LoopEvent, Resume};
use crate::asgi::loop_hooks::LoopHooks;
use crate::asgi::ws_rules::{WsAction, WsEnding, WsError, WsRules, WsSend};
use crate::exchange::request::Room;
use crate::exchange::response::{Answer, AnswerBody};
use crate::exchange::websocket::{Decision, Outbound, WsExchange};

/// What only the app side knows of a WebSocket, shared by the cycle and its waker.
pub struct WsShared {
    exchange: Arc<WsExchange>,
    hooks: Arc<LoopHooks>,
    state: Mutex<WsState>,
}

struct WsState {
    rules: WsRules,
    /// The denial response (`websocket.http.response.*`) being built.
    denial: Option<(StatusCode, HeaderMap, BytesMut)>,
    /// `websocket.connect` has been given to the app.
    connect_delivered: bool,
    receive_future: Option<Py<PyAny>>,
    send_future: Option<Py<PyAny>>,
    /// The app's task, held until the app ends (see `asgi/http.rs`).
    task: Option<Py<PyAny>>,
    finished: bool,
}

impl Wake for WsShared {
    fn wake(self: Arc<Self>) {
        let bridge = self.hooks.bridge.clone();
        bridge.push(LoopEvent::Resume(self));
    }
}

impl Resume for WsShared {
    fn resume(self: Arc<Self>, py: Python<'_>) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        let mut io_waker = None;
        let receive = state.receive_future.take().map(|future| {
            let (received, waker) = self.exchange.receive(|| self.waker());
            io_waker = waker;
            (future, received)
        });
        let send = state
            .send_future
            .take()
            .map(|future| (future, self.exchange.wait_for_room(|| self.waker())));
        if let Some((future, None)) = &receive {
            state.receive_future = Some(future.clone_ref(py));
        }
        if let Some((future, Room::Wait)) = &send {
            state.send_future = Some(future.clone_ref(py));
        }
        drop(state);
        self.hooks.wake_io(py, io_waker);
        if let Some((future, Some(received))) = receive {
            let message = receive::websocket_message(py, received).map(Bound::into_any);
            resolve(py, future, message);
        }
        match send {
            Some((future, Room::Ready)) => resolve_send(py, future, false),
            Some((future, Room::Gone)) => resolve_send(py, future, true),
            _ => {}
        }
    }
}

impl WsShared {
    fn lock(&self) -> MutexGuard<'_, WsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn waker(self: &Arc<Self>) -> Waker {
        Waker::from(self.clone())
    }
}

/// The Python object behind one WebSocket's `receive` and `send`.
#[pyclass(frozen, module = "sandman_asgi._core")]
pub struct WsCycle {
    shared: Arc<WsShared>,
}

impl WsCycle {
    /// The cycle for a handshake the transport handed over.
    pub fn new(exchange: Arc<WsExchange>, hooks: Arc<LoopHooks>) -> WsCycle {
        WsCycle {
            shared: Arc::new(WsShared {
                exchange,
                hooks,
                state: Mutex::new(WsState {
                    rules: WsRules::new(),
                    denial: None,
                    connect_delivered: false,
                    receive_future: None,
                    send_future: None,
                    task: None,
                    finished: false,
                }),
            }),
        }
    }

    /// Keep the app's task alive until the app ends.
    pub fn hold_task(&self, task: Py<PyAny>) {
        let mut state = self.shared.lock();
        if !state.finished {
            state.task = Some(task);
        }
    }

    fn exchange(&self) -> &WsExchange {
        &self.shared.exchange
    }

    fn log_handshake(&self, py: Python<'_>, status: Option<u16>) -> PyResult<()> {
        let Some(hook) = &self.shared.hooks.ws_log else {
            return Ok(());
        };
        let record = self.exchange().access_record(status.unwrap_or(101));
        calls::handshake_line(py, hook, record, status)
    }

    /// Queue a message for the socket; wait for room when the outbox is full.
    fn queue(&self, py: Python<'_>, item: Outbound, size: usize) -> PyResult<Py<PyAny>> {
        let (waker, full) = self.exchange().send(item, size);
        self.shared.hooks.wake_io(py, waker);
        if !full {
            return ready_none(py);
        }
        let future = self.shared.hooks.new_future(py)?;
        match self.exchange().wait_for_room(|| self.shared.waker()) {
            Room::Ready => ready_none(py),
            Room::Gone => Err(ClientDisconnected::new_err("client disconnected")),
            Room::Wait => {
                self.shared.lock().send_future = Some(future.clone_ref(py));
                Ok(future)
            }
        }
    }

    /// The app's code ended as `ending` (`failed`: it raised): answer the handshake or
    /// close the socket as that requires, and take the task to release outside the lock.
    fn end(&self, state: &mut WsState, ending: WsEnding, failed: bool) -> Option<Py<PyAny>> {
        state.finished = true;
        let exchange = self.exchange();
        let mut close = None;
        match ending {
            WsEnding::NoHandshake => {
                let answer = Answer::internal_server_error(&exchange.hub().response);
                exchange.decide(Decision::Respond(answer));
            }
            WsEnding::StillOpen => close = Some(if failed { 1011 } else { 1000 }),
            WsEnding::DenialIncomplete => exchange.abandon_decision(),
            WsEnding::Done => {}
        }
        exchange.app_ended(close);
        state.receive_future = None;
        state.send_future = None;
        state.task.take()
    }
}

#[pymethods]
impl WsCycle {
    /// ASGI `receive()`.
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if !state.connect_delivered {
            state.connect_delivered = true;
            drop(state);
            return ready_value(py, receive::websocket_connect(py)?.into_any());
        }
        let (received, io_waker) = shared.exchange.receive(|| shared.waker());
        let future = match received {
            Some(_) => None,
            None => Some(shared.hooks.new_future(py)?),
        };
        if let Some(future) = &future {
            state.receive_future = Some(future.clone_ref(py));
        }
        drop(state);
        shared.hooks.wake_io(py, io_waker);
        match (received, future) {
            (Some(received), _) => {
                ready_value(py, receive::websocket_message(py, received)?.into_any())
            }
            (None, Some(future)) => Ok(future),
            (None, None) => unreachable!("a future is made when nothing was received"),
        }
    }

    /// ASGI `send(message)`.
    fn send(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        // Parse and validate everything before the socket's state changes.
        let parsed =
            send::websocket_message(send::as_dict(&message)?, Some(&self.shared.hooks.bridge))?;
        let (kind, close_code, more_body) = match &parsed {
            WsMessage::Accept { .. } => (WsSend::Accept, 0, false),
            WsMessage::Text(_) | WsMessage::Binary(_) => (WsSend::Send, 0, false),
            WsMessage::Close { code, .. } => (WsSend::Close, *code, false),
            WsMessage::ResponseStart(_) => (WsSend::ResponseStart, 0, false),
            WsMessage::ResponseBody { more_body, .. } => (WsSend::ResponseBody, 0, *more_body),
        };
        let exchange = self.exchange();
        let mut state = self.shared.lock();
        if exchange.is_gone() {
            state.rules.gone();
        }
        let action = state
            .rules
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
                drop(state);
                exchange.decide(Decision::Accept {
                    subprotocol,
                    headers,
                });
                self.log_handshake(py, None)?;
                ready_none(py)
            }
            (WsAction::Reject, _) => {
                drop(state);
                let answer = Answer::forbidden(&exchange.hub().response);
                exchange.decide(Decision::Respond(answer));
                // The client never gets a WebSocket: the app sees 1006 (as uvicorn reports).
                exchange.report_disconnect(1006);
                self.log_handshake(py, Some(403))?;
                ready_none(py)
            }
            (WsAction::Send, WsMessage::Text(data)) => {
                drop(state);
                let size = data.len();
                self.queue(py, Outbound::Text(data), size)
            }
            (WsAction::Send, WsMessage::Binary(data)) => {
                drop(state);
                let size = data.len();
                self.queue(py, Outbound::Binary(data), size)
            }
            (WsAction::Close(code), WsMessage::Close { reason, .. }) => {
                drop(state);
                self.queue(py, Outbound::Close(code, reason), 0)
            }
            (WsAction::DenyStart, WsMessage::ResponseStart(start)) => {
                let headers = exchange.hub().response.headers(start.headers);
                let status = StatusCode::from_u16(start.status).expect("validated range");
                state.denial = Some((status, headers, BytesMut::new()));
                drop(state);
                self.log_handshake(py, Some(start.status))?;
                ready_none(py)
            }
            (WsAction::DenyBody(last), WsMessage::ResponseBody { body, .. }) => {
                if let Some((_, _, buf)) = state.denial.as_mut() {
                    buf.extend_from_slice(&body);
                }
                let denial = if last { state.denial.take() } else { None };
                drop(state);
                if let Some((status, headers, buf)) = denial {
                    let body = AnswerBody::Full(buf.freeze());
                    exchange.decide(Decision::Respond(Answer::new(status, headers, body)));
                }
                if last {
                    exchange.report_disconnect(1006);
                }
                ready_none(py)
            }
            _ => unreachable!("the rules' action always matches the message kind"),
        }
    }

    /// The app returned. Returns the error to log when it never answered the handshake
    /// (a 500 was sent).
    fn app_returned(&self) -> Option<&'static str> {
        let mut state = self.shared.lock();
        let ending = state.rules.finish();
        let task = self.end(&mut state, ending, false);
        drop(state);
        drop(task);
        (ending == WsEnding::NoHandshake)
            .then_some("ASGI callable returned without sending handshake.")
    }

    /// The app raised: 500 before the handshake, close 1011 after it.
    fn app_failed(&self) {
        let mut state = self.shared.lock();
        let ending = state.rules.finish();
        let task = self.end(&mut state, ending, true);
        drop(state);
        drop(task);
    }
}

impl Drop for WsCycle {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let task = if state.finished {
            state.task.take()
        } else {
            let ending = state.rules.finish();
            self.end(&mut state, ending, true)
        };
        drop(state);
        drop(task);
    }
}
