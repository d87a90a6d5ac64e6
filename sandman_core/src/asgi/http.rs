//! One HTTP request as the app sees it: `receive()` and `send()` for the ASGI HTTP protocol.
//!
//! Theory of operation
//! -------------------
//! An [`HttpCycle`] is the Python object behind one request's `receive` and `send`. Its
//! state ([`CycleShared`]) holds what only the app side knows: where the response is in
//! the ASGI rules (`http_rules.rs`), the response head held until the first body (so a
//! one-shot body goes out with `content-length` in one write), and the asyncio futures the
//! app waits on. Everything the transport must see goes through the request's exchange.
//!
//! The loop thread never waits for an IO thread: `send()` validates the message, applies
//! the rules, hands the response to the exchange and returns an already-finished awaitable.
//! It only returns a pending future when the response queue is over its high-water mark.
//! `receive()` returns finished awaitables while body data is buffered and an asyncio
//! future otherwise. A pending future is resolved when the exchange wakes this cycle's
//! [`Waker`] (its `wake` queues a resume on the bridge; the loop thread then calls
//! [`Resume::resume`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::StatusCode;
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;

use crate::asgi::awaitable::{ready_none, ready_value, resolve, resolve_send, ClientDisconnected};
use crate::asgi::convert::{calls, receive, send};
use crate::asgi::events::{LoopEvent, Resume};
use crate::asgi::http_rules::{
    status_forbids_body, BodyStep, Ending, HttpRules, Phase, RuleError, TrailersStep,
};
use crate::asgi::loop_hooks::LoopHooks;
use crate::exchange::request::{RequestExchange, Room};
use crate::exchange::response::{Answer, AnswerBody};

/// What only the app side knows of a request, shared by the cycle and its waker.
pub struct CycleShared {
    exchange: Arc<RequestExchange>,
    hooks: Arc<LoopHooks>,
    state: Mutex<CycleState>,
}

struct CycleState {
    /// The ASGI rules for the response.
    rules: HttpRules,
    /// `http.response.start`, held until the first body.
    held: Option<(StatusCode, HeaderMap)>,
    /// A `receive()` waiting for body data or a disconnect.
    receive_future: Option<Py<PyAny>>,
    /// A `send()` waiting for room in the response queue.
    send_future: Option<Py<PyAny>>,
    /// The app's task, held here (out of the garbage collector's sight) until the app
    /// ends: the strong reference a server must keep to a running task, without a
    /// per-request done-callback.
    task: Option<Py<PyAny>>,
    /// The app's coroutine has ended.
    finished: bool,
}

impl Wake for CycleShared {
    fn wake(self: Arc<Self>) {
        let bridge = self.hooks.bridge.clone();
        bridge.push(LoopEvent::Resume(self));
    }
}

impl Resume for CycleShared {
    fn resume(self: Arc<Self>, py: Python<'_>) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        let receive = state.receive_future.take().map(|future| {
            let received = self.exchange.receive(|| self.waker());
            (future, received)
        });
        let send = state
            .send_future
            .take()
            .map(|future| (future, self.exchange.wait_for_room(|| self.waker())));
        // Still waiting (woken for the other future): keep the future.
        if let Some((future, None)) = &receive {
            state.receive_future = Some(future.clone_ref(py));
        }
        if let Some((future, Room::Wait)) = &send {
            state.send_future = Some(future.clone_ref(py));
        }
        drop(state);
        if let Some((future, Some(received))) = receive {
            let message = receive::http_message(py, received).map(Bound::into_any);
            resolve(py, future, message);
        }
        match send {
            Some((future, Room::Ready)) => resolve_send(py, future, false),
            Some((future, Room::Gone)) => resolve_send(py, future, true),
            _ => {}
        }
    }
}

impl CycleShared {
    fn lock(&self) -> MutexGuard<'_, CycleState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn waker(self: &Arc<Self>) -> Waker {
        Waker::from(self.clone())
    }
}

/// The Python object behind one request's `receive` and `send`.
#[pyclass(frozen, module = "sandman_asgi._core")]
pub struct HttpCycle {
    shared: Arc<CycleShared>,
}

impl HttpCycle {
    /// The cycle for a request the transport handed over.
    pub fn new(exchange: Arc<RequestExchange>, hooks: Arc<LoopHooks>) -> HttpCycle {
        let head_request = exchange.is_head();
        HttpCycle {
            shared: Arc::new(CycleShared {
                exchange,
                hooks,
                state: Mutex::new(CycleState {
                    rules: HttpRules::new(head_request),
                    held: None,
                    receive_future: None,
                    send_future: None,
                    task: None,
                    finished: false,
                }),
            }),
        }
    }

    /// Keep the app's task alive until the app ends (see `CycleState::task`).
    pub fn hold_task(&self, task: Py<PyAny>) {
        let mut state = self.shared.lock();
        if !state.finished {
            state.task = Some(task);
        }
    }

    fn exchange(&self) -> &RequestExchange {
        &self.shared.exchange
    }

    fn log_access(&self, py: Python<'_>, status: u16) -> PyResult<()> {
        match &self.shared.hooks.access_log {
            Some(hook) => calls::access_line(py, hook, self.exchange().access_record(status)),
            None => Ok(()),
        }
    }

    fn disconnected() -> PyErr {
        ClientDisconnected::new_err("client disconnected")
    }

    fn start(&self, py: Python<'_>, message: &Bound<'_, pyo3::types::PyDict>) -> PyResult<()> {
        // Validate before touching the rules: a rejected start changes nothing, so an app
        // that lets the error escape gets a clean 500 (uvicorn closes the connection
        // instead; see the documented differences).
        let start = send::response_start(message, self.exchange().head.features.trailers)?;
        if self.exchange().is_disconnected() {
            return Err(Self::disconnected());
        }
        let mut state = self.shared.lock();
        state
            .rules
            .start(start.status, start.declared_length, start.trailers)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let headers = self.exchange().hub().response.headers(start.headers);
        let status = StatusCode::from_u16(start.status).expect("validated range");
        state.held = Some((status, headers));
        drop(state);
        self.exchange().begin_response();
        self.log_access(py, start.status)
    }

    fn body(
        &self,
        py: Python<'_>,
        message: &Bound<'_, pyo3::types::PyDict>,
    ) -> PyResult<Py<PyAny>> {
        let body = send::body(message, Some(&self.shared.hooks.bridge))?;
        let more = send::flag(message, intern!(py, "more_body"))?;
        if self.exchange().is_disconnected() {
            return Err(Self::disconnected());
        }
        let mut state = self.shared.lock();
        let step = match state.rules.body(body.len(), more) {
            Ok(step) => step,
            Err(e) => {
                if state.rules.phase() == Phase::Aborted {
                    // Too short: these bytes were due, so they go out before the close (as
                    // uvicorn writes them); too long: refused, nothing of them is sent.
                    let last = if e == RuleError::ShorterThanContentLength {
                        body
                    } else {
                        Bytes::new()
                    };
                    self.abort_after(&mut state, last);
                }
                return Err(PyRuntimeError::new_err(e.to_string()));
            }
        };
        let allowed = state.rules.body_allowed();
        if step == BodyStep::Whole {
            let (status, mut headers) = state.held.take().expect("head held before first body");
            // HEAD: announce the length a GET would have had, send no bytes.
            let announce_length = !allowed
                && state.rules.declared_length().is_none()
                && !status_forbids_body(state.rules.status());
            drop(state);
            if announce_length {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
            }
            let body = if allowed {
                AnswerBody::Full(body)
            } else {
                AnswerBody::Empty
            };
            let waker = self.exchange().respond(Answer::new(status, headers, body));
            self.shared.hooks.wake_io(py, waker);
            self.completed(py);
            return ready_none(py);
        }
        let head = match step {
            BodyStep::Begin => state
                .held
                .take()
                .map(|(status, headers)| Answer::new(status, headers, AnswerBody::Streamed)),
            _ => None,
        };
        drop(state);
        let data = if allowed { body } else { Bytes::new() };
        let end = step == BodyStep::End;
        let streamed = self.exchange().stream(head, data, end);
        self.shared.hooks.wake_io(py, streamed.waker);
        if end {
            self.completed(py);
            return ready_none(py);
        }
        if !streamed.full {
            return ready_none(py);
        }
        let future = self.shared.hooks.new_future(py)?;
        match self.exchange().wait_for_room(|| self.shared.waker()) {
            Room::Ready => ready_none(py),
            Room::Gone => Err(Self::disconnected()),
            Room::Wait => {
                self.shared.lock().send_future = Some(future.clone_ref(py));
                Ok(future)
            }
        }
    }

    /// `http.response.pathsend` (the pathsend extension): the file at `path` is the whole
    /// body. It is opened here, so a missing or unreadable file raises `OSError` in the app
    /// and changes nothing; from then on the transport streams it and no Python reads it.
    fn pathsend(&self, py: Python<'_>, message: &Bound<'_, pyo3::types::PyDict>) -> PyResult<()> {
        let path = send::pathsend_path(message)?;
        if self.exchange().is_disconnected() {
            return Err(Self::disconnected());
        }
        let file = std::fs::File::open(&path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(pyo3::exceptions::PyIsADirectoryError::new_err(format!(
                "'http.response.pathsend' needs a regular file: {}",
                path.display()
            )));
        }
        let len = meta.len();
        let mut state = self.shared.lock();
        if let Err(e) = state.rules.pathsend(len) {
            if state.rules.phase() == Phase::Aborted {
                self.abort(&mut state);
            }
            return Err(PyRuntimeError::new_err(e.to_string()));
        }
        let (status, mut headers) = state.held.take().expect("head held before the file");
        let allowed = state.rules.body_allowed();
        // The length the file has, unless the app declared it (then it matched) or the
        // status has no content; HEAD announces what a GET would send.
        if state.rules.declared_length().is_none() && !status_forbids_body(state.rules.status()) {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        drop(state);
        let body = if allowed && len > 0 {
            AnswerBody::File(file, len)
        } else {
            AnswerBody::Empty
        };
        let waker = self.exchange().respond(Answer::new(status, headers, body));
        self.shared.hooks.wake_io(py, waker);
        self.completed(py);
        Ok(())
    }

    /// `http.response.early_hint` (the early hints extension): a 103 with `link` fields
    /// goes out ahead of the response.
    fn early_hint(&self, py: Python<'_>, message: &Bound<'_, pyo3::types::PyDict>) -> PyResult<()> {
        let links = send::early_hint_links(message)?;
        if self.exchange().is_disconnected() {
            return Err(Self::disconnected());
        }
        let rules = self.shared.lock().rules.early_hint();
        rules.map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let waker = self.exchange().early_hints(&links);
        self.shared.hooks.wake_io(py, waker);
        Ok(())
    }

    /// `http.response.trailers` (the trailers extension): fields for the end of the body.
    fn trailers(&self, py: Python<'_>, message: &Bound<'_, pyo3::types::PyDict>) -> PyResult<()> {
        let trailers = send::response_trailers(message)?;
        if self.exchange().is_disconnected() {
            return Err(Self::disconnected());
        }
        let step = self.shared.lock().rules.trailers(trailers.more);
        let step = step.map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let mut fields = HeaderMap::with_capacity(trailers.headers.len());
        for (name, value) in trailers.headers {
            fields.append(name, value);
        }
        let last = step == TrailersStep::Last;
        let waker = self.exchange().trailers(fields, last);
        self.shared.hooks.wake_io(py, waker);
        if last {
            self.completed(py);
        }
        Ok(())
    }

    /// The response is complete: a `receive()` waiting for the disconnect gets it now.
    fn completed(&self, py: Python<'_>) {
        let waiting = self.shared.lock().receive_future.take();
        if let Some(future) = waiting {
            resolve(
                py,
                future,
                receive::http_disconnect(py).map(Bound::into_any),
            );
        }
    }

    /// Cut the response short: the transport closes the connection.
    fn abort(&self, state: &mut CycleState) {
        self.abort_after(state, Bytes::new());
    }

    /// Cut the response short after `last` (body bytes the app sent that are still due).
    /// What the app sent is never dropped: a head still held (the app failed between its
    /// start and its first body) goes out first, then `last`, then the connection closes
    /// (`http/response_body.rs` flushes before the close), so the client sees a response
    /// that is visibly cut short rather than a bare close.
    fn abort_after(&self, state: &mut CycleState, last: Bytes) {
        state.rules.abort();
        let head = state
            .held
            .take()
            .map(|(status, headers)| Answer::new(status, headers, AnswerBody::Streamed));
        let exchange = self.exchange();
        if (head.is_some() || !last.is_empty()) && !exchange.is_disconnected() {
            // Woken at once rather than batched: a rare path, also taken without Python.
            if let Some(waker) = exchange.stream(head, last, false).waker {
                waker.wake();
            }
        }
        exchange.abort();
    }

    /// Answer 500 in place of a response the app never started.
    fn send_500(&self) {
        let exchange = self.exchange();
        exchange.fail(Answer::internal_server_error(&exchange.hub().response));
    }

    /// The app's code ended: mark it, let the exchange stop the body pump and forget the
    /// wakers, and take the task to release outside the lock.
    fn finish(&self, state: &mut CycleState) -> Option<Py<PyAny>> {
        state.finished = true;
        self.exchange().app_done();
        state.task.take()
    }
}

#[pymethods]
impl HttpCycle {
    /// ASGI `receive()`.
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let shared = &self.shared;
        if let Some(received) = shared.exchange.receive(|| shared.waker()) {
            return ready_value(py, receive::http_message(py, received)?.into_any());
        }
        let future = shared.hooks.new_future(py)?;
        shared.lock().receive_future = Some(future.clone_ref(py));
        Ok(future)
    }

    /// ASGI `send(message)`.
    fn send(&self, py: Python<'_>, message: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let message = send::as_dict(&message)?;
        let kind = send::message_type(message)?;
        match kind.to_str()? {
            "http.response.start" => {
                self.start(py, message)?;
                ready_none(py)
            }
            "http.response.body" => self.body(py, message),
            "http.response.trailers" => {
                self.trailers(py, message)?;
                ready_none(py)
            }
            "http.response.pathsend" => {
                self.pathsend(py, message)?;
                ready_none(py)
            }
            "http.response.early_hint" if self.exchange().head.features.early_hints => {
                self.early_hint(py, message)?;
                ready_none(py)
            }
            other => {
                if self.exchange().is_disconnected() {
                    return Err(Self::disconnected());
                }
                let expected = if self.shared.lock().rules.phase() == Phase::AwaitingStart {
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

    /// The app returned `None`. Returns the error to log when that left the response
    /// unfinished: not started (a 500 was sent) or started and not completed (the
    /// connection is closed).
    fn app_returned(&self, py: Python<'_>) -> Option<&'static str> {
        let mut state = self.shared.lock();
        let task = self.finish(&mut state);
        let ending = match state.rules.finish() {
            // Cut short by the client: nothing left to do or to report.
            Ending::NotStarted | Ending::Incomplete if self.exchange().is_disconnected() => {
                Ending::Aborted
            }
            ending => ending,
        };
        let problem = match ending {
            Ending::Complete | Ending::Aborted => None,
            Ending::NotStarted => {
                state.rules.abort();
                self.send_500();
                Some("ASGI callable returned without starting response.")
            }
            Ending::Incomplete => {
                self.abort(&mut state);
                Some("ASGI callable returned without completing response.")
            }
        };
        // Released after the lock: a decref may run arbitrary Python.
        drop(state);
        drop(task);
        if ending == Ending::NotStarted {
            let _ = self.log_access(py, 500);
        }
        problem
    }

    /// The app raised (or returned a value). Sends a 500 if nothing was sent yet and
    /// `error_response` is true, else closes the connection.
    #[pyo3(signature = (error_response=true))]
    fn app_failed(&self, py: Python<'_>, error_response: bool) {
        let mut state = self.shared.lock();
        let task = self.finish(&mut state);
        let sent_500 = error_response
            && state.rules.phase() == Phase::AwaitingStart
            && !self.exchange().is_disconnected();
        if sent_500 {
            state.rules.abort();
            self.send_500();
        } else if state.rules.phase() == Phase::Complete {
            // Complete, but the app misbehaved (returned a value): do not keep the
            // connection alive after it (uvicorn closes it too).
            self.exchange().close_connection();
        } else {
            self.abort(&mut state);
        }
        drop(state);
        drop(task);
        if sent_500 {
            let _ = self.log_access(py, 500);
        }
    }
}

impl Drop for HttpCycle {
    fn drop(&mut self) {
        // A cycle dropped without its app finishing (never started, or cancelled before
        // its first step) must not leave the transport waiting forever.
        let mut state = self.shared.lock();
        let task = if state.finished {
            state.task.take()
        } else {
            let task = self.finish(&mut state);
            if state.rules.phase() == Phase::AwaitingStart {
                state.rules.abort();
                self.send_500();
            } else {
                self.abort(&mut state);
            }
            task
        };
        drop(state);
        drop(task);
    }
}
