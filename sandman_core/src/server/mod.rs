//! The server object Python drives: owns the tokio runtime, the listeners and the bridge.

pub mod conn;
pub mod delayed_ack;
pub mod idle;
pub mod listener;
pub mod malloc;
pub mod runtime;
pub mod shared;
pub mod tls;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::watch;

use crate::asgi::http::{HttpCycle, LoopHooks};
use crate::asgi::scope::{connection_scope, ScopeKind, ScopeSettings};
use crate::asgi::task::{RequestTask, Started, TaskHooks};
use crate::asgi::websocket::WsCycleHandle;
use crate::bridge::wakeups::{Flusher, Wakeups};
use crate::bridge::{Bridge, Event};
use crate::common::limits::{
    DEFAULT_BODY_READ_TIMEOUT_SECS, DEFAULT_HEADER_READ_TIMEOUT_SECS, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_TARGET_BYTES,
};
use shared::{HttpSettings, ServerShared, WsSettings};

/// Longest one drain runs before the loop gets a turn. A drain used to run every queued
/// event: under load that is every connection's request, so responses finished first
/// waited for the last app's first step before the flush that hands them to the IO thread,
/// and a request that just missed a drain waited for a whole one. On the FastAPI route at
/// 128 connections, p99 went from 37-39 ms to 24-30 ms with 1 ms slices, req/s unchanged
/// within noise (bench/NOTES.md, "Drains in 1 ms slices").
const DRAIN_SLICE: Duration = Duration::from_millis(1);

/// The Rust half of a running server. Created and driven by `sandman_asgi.server.Server`.
#[pyclass(frozen, module = "sandman_asgi._core")]
pub struct CoreServer {
    runtime: Mutex<Option<runtime::IoRuntime>>,
    shared: Arc<ServerShared>,
    hooks: Arc<LoopHooks>,
    scope: ScopeSettings,
    /// `runner(scope, cycle)` -> the coroutine that runs the app for one request.
    on_request: Py<PyAny>,
    /// The same for WebSockets (`None`: `--ws none`).
    on_websocket: Option<Py<PyAny>>,
    on_log: Py<PyAny>,
    create_task: Py<PyAny>,
    /// Keyword arguments passed to `create_task` on every call (`loop=`, `eager_start=`):
    /// one dict built at startup, which a type call hands to `Task.__init__` as it is.
    task_kwargs: Option<Py<PyDict>>,
    /// `contextvars.Context` when each task gets a fresh context.
    fresh_context: Option<Py<PyAny>>,
    /// Set where HTTP apps start as [`RequestTask`]s (Python < 3.12, no task factory).
    request_tasks: Option<Arc<TaskHooks>>,
    /// Events taken from the bridge and not processed yet (a drain stops after
    /// `DRAIN_SLICE`), oldest first.
    backlog: Mutex<VecDeque<Event>>,
}

/// `(certfile, keyfile, password, ca_certs, cert_reqs, ssl_version, ciphers)`.
type SslArgs = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i32,
    i32,
    Option<String>,
);

fn duration(secs: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| PyValueError::new_err(format!("invalid {what}: {secs}")))
}

impl CoreServer {
    /// Start `runner(scope, cycle)` as a task on the loop (a fresh contextvars context per
    /// task with `--reset-contextvars`).
    fn spawn<'py>(
        &self,
        py: Python<'py>,
        runner: &Py<PyAny>,
        scope: Bound<'py, PyDict>,
        cycle: &Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let coro = runner.bind(py).call1((scope, cycle))?;
        let context = match &self.fresh_context {
            None => None,
            Some(context) => Some(context.bind(py).call0()?),
        };
        self.create_task(py, coro, context)
    }

    /// An `asyncio.Task` for `coro`, in `context` if given, else a copy of the current one.
    fn create_task<'py>(
        &self,
        py: Python<'py>,
        coro: Bound<'py, PyAny>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let task_kwargs = self.task_kwargs.as_ref().map(|k| k.bind(py));
        match context {
            None => self.create_task.call(py, (coro,), task_kwargs),
            Some(context) => {
                let kwargs = match task_kwargs {
                    Some(k) => k.copy()?,
                    None => PyDict::new(py),
                };
                kwargs.set_item(pyo3::intern!(py, "context"), context)?;
                self.create_task.call(py, (coro,), Some(&kwargs))
            }
        }
    }

    /// Start the app for one HTTP request: as a [`RequestTask`] whose first step runs now
    /// where that applies, else as an `asyncio.Task`. Returns the task to hold while the
    /// app runs (none if it already finished).
    fn start_request<'py>(
        &self,
        py: Python<'py>,
        scope: Bound<'py, PyDict>,
        cycle: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let Some(hooks) = &self.request_tasks else {
            return self.spawn(py, &self.on_request, scope, cycle).map(Some);
        };
        let coro = self.on_request.bind(py).call1((scope, cycle))?;
        // Each task runs in its own copy of the current context, as asyncio.Task does.
        let context = match &self.fresh_context {
            Some(context) => context.bind(py).call0()?,
            None => unsafe {
                Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyContext_CopyCurrent())?
            },
        };
        match RequestTask::start(py, hooks, coro, context)? {
            Started::Finished => Ok(None),
            Started::Running(task) => Ok(Some(task.into_any())),
            Started::NotEntered(coro, context) => self
                .create_task(py, coro.into_bound(py), Some(context.into_bound(py)))
                .map(Some),
        }
    }

    /// One event from an IO thread, on the loop thread. An error is reported as
    /// unraisable (there is no Python caller to raise it to) and the event skipped.
    fn handle(&self, py: Python<'_>, event: Event) {
        match event {
            Event::Request(shared, head) => {
                let Some(scope) = reported(
                    py,
                    connection_scope(py, ScopeKind::Http, &head, &self.scope),
                ) else {
                    return;
                };
                let cycle = HttpCycle::new(shared, self.hooks.clone(), head);
                let Some(cycle) = reported(py, Bound::new(py, cycle)) else {
                    return;
                };
                if let Some(Some(task)) =
                    reported(py, self.start_request(py, scope, cycle.as_any()))
                {
                    cycle.get().hold_task(task);
                }
            }
            Event::Wake(shared) => HttpCycle::on_wake(py, &shared),
            Event::WsConnect(shared, head) => {
                let Some(scope) = reported(
                    py,
                    connection_scope(py, ScopeKind::WebSocket, &head, &self.scope),
                ) else {
                    return;
                };
                let Some(runner) = &self.on_websocket else {
                    return;
                };
                let cycle = WsCycleHandle::new(shared, self.hooks.clone(), head);
                let Some(cycle) = reported(py, Bound::new(py, cycle)) else {
                    return;
                };
                if let Some(task) = reported(py, self.spawn(py, runner, scope, cycle.as_any())) {
                    cycle.get().hold_task(task);
                }
            }
            Event::WsWake(shared) => WsCycleHandle::on_wake(py, &shared),
            Event::Access(r) => {
                if let Some(access) = &self.hooks.access_log {
                    let r = *r;
                    let args = (r.client, r.method, r.path, r.version, r.status);
                    reported(py, access.call1(py, args));
                }
            }
            Event::Log(level, message) => {
                reported(py, self.on_log.call1(py, (level.as_python(), message)));
            }
            Event::Release(object) => drop(object),
            Event::ReleaseAddrs(client, server) => drop((client, server)),
        }
    }
}

/// The value, or `None` after reporting the error as unraisable.
fn reported<T>(py: Python<'_>, result: PyResult<T>) -> Option<T> {
    result.map_err(|err| err.write_unraisable(py, None)).ok()
}

#[pymethods]
impl CoreServer {
    #[new]
    #[pyo3(signature = (
        *, on_request, on_log, create_future, access_log, state,
        root_path = "", asgi_version = "3.0", server_header = true, date_header = true,
        headers = Vec::new(), limit_concurrency = None, timeout_keep_alive = 5.0,
        header_read_timeout = DEFAULT_HEADER_READ_TIMEOUT_SECS, max_head_bytes = DEFAULT_MAX_HEAD_BYTES,
        io_threads = 1, on_websocket = None, ws_log = None, ws_max_size = 16 * 1024 * 1024,
        ws_max_queue = 32, ws_ping_interval = Some(20.0), ws_ping_timeout = Some(20.0),
        ws_per_message_deflate = true, forwarded_allow_ips = None, ssl = None,
        max_target = DEFAULT_MAX_TARGET_BYTES, max_headers = DEFAULT_MAX_HEADERS,
        max_body = None, body_read_timeout = Some(DEFAULT_BODY_READ_TIMEOUT_SECS),
        max_connections = None, call_soon = None, create_task = None, task_kwargs = None, fresh_context = false,
        request_task_hooks = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        on_request: Py<PyAny>,
        on_log: Py<PyAny>,
        create_future: Py<PyAny>,
        access_log: Option<Py<PyAny>>,
        state: Py<PyDict>,
        root_path: &str,
        asgi_version: &str,
        server_header: bool,
        date_header: bool,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        limit_concurrency: Option<usize>,
        timeout_keep_alive: f64,
        header_read_timeout: f64,
        max_head_bytes: usize,
        io_threads: usize,
        on_websocket: Option<Py<PyAny>>,
        ws_log: Option<Py<PyAny>>,
        ws_max_size: usize,
        ws_max_queue: usize,
        ws_ping_interval: Option<f64>,
        ws_ping_timeout: Option<f64>,
        ws_per_message_deflate: bool,
        forwarded_allow_ips: Option<Vec<String>>,
        ssl: Option<SslArgs>,
        max_target: usize,
        max_headers: usize,
        max_body: Option<u64>,
        body_read_timeout: Option<f64>,
        max_connections: Option<usize>,
        call_soon: Option<Py<PyAny>>,
        create_task: Option<Py<PyAny>>,
        task_kwargs: Option<Py<PyDict>>,
        fresh_context: bool,
        request_task_hooks: Option<Bound<'_, PyDict>>,
    ) -> PyResult<CoreServer> {
        // Lent bodies are freed late; keep glibc from shrinking and regrowing the heap.
        malloc::tune();
        let event_loop = create_future.bind(py).getattr("__self__")?;
        let create_task = match create_task {
            Some(c) => c,
            None => event_loop.getattr("create_task")?.unbind(),
        };
        let fresh_context = if fresh_context {
            Some(py.import("contextvars")?.getattr("Context")?.unbind())
        } else {
            None
        };
        let request_tasks = match request_task_hooks {
            Some(h) => {
                let get = |key: &str| -> PyResult<Py<PyAny>> {
                    h.get_item(key)?.map(Bound::unbind).ok_or_else(|| {
                        PyValueError::new_err(format!("request_task_hooks: no {key}"))
                    })
                };
                Some(Arc::new(TaskHooks {
                    event_loop: event_loop.clone().unbind(),
                    enter: get("enter")?,
                    leave: get("leave")?,
                    hand_over: get("hand_over")?,
                    cancelled_error: get("cancelled_error")?,
                    invalid_state: get("invalid_state")?,
                    name_counter: get("name_counter")?,
                    weakref_count: get("weakref_count")?,
                }))
            }
            None => None,
        };
        let tls = match ssl {
            Some((certfile, keyfile, password, ca_certs, cert_reqs, version, ciphers)) => {
                let options = tls::TlsOptions {
                    certfile,
                    keyfile,
                    password,
                    ca_certs,
                    cert_reqs,
                    version,
                    ciphers,
                };
                let config = tls::server_config(&options).map_err(PyValueError::new_err)?;
                Some(tokio_rustls::TlsAcceptor::from(config))
            }
            None => None,
        };
        let positive = |v: Option<f64>, what: &str| -> PyResult<Option<Duration>> {
            match v {
                Some(s) if s > 0.0 => Ok(Some(duration(s, what)?)),
                _ => Ok(None),
            }
        };
        let ws = WsSettings {
            enabled: on_websocket.is_some(),
            max_size: ws_max_size,
            max_queue: ws_max_queue.max(1),
            ping_interval: positive(ws_ping_interval, "ws_ping_interval")?,
            ping_timeout: positive(ws_ping_timeout, "ws_ping_timeout")?,
            per_message_deflate: ws_per_message_deflate,
        };
        let mut extra_headers = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let name = HeaderName::from_bytes(&name).map_err(|_| {
                PyValueError::new_err(format!(
                    "invalid header name {:?}",
                    String::from_utf8_lossy(&name)
                ))
            })?;
            let value = HeaderValue::from_bytes(&value)
                .map_err(|_| PyValueError::new_err(format!("invalid value for header {name}")))?;
            extra_headers.push((name, value));
        }
        // A `--header server:...` replaces the default one (uvicorn §4.12).
        let overridden = extra_headers
            .iter()
            .any(|(n, _)| n == hyper::header::SERVER);
        let settings = HttpSettings {
            date_header,
            server_header: (server_header && !overridden)
                .then(|| HeaderValue::from_static("sandman")),
            extra_headers,
            root_path: root_path.to_owned(),
            limit_concurrency,
            timeout_keep_alive: duration(timeout_keep_alive, "timeout_keep_alive")?,
            header_read_timeout: duration(header_read_timeout, "header_read_timeout")?,
            max_head_bytes: max_head_bytes.max(1),
            max_target,
            max_headers: max_headers.max(1),
            max_body,
            body_read_timeout: positive(body_read_timeout, "body_read_timeout")?,
            ws,
            proxy: forwarded_allow_ips.map(|list| crate::http::proxy::TrustedHosts::parse(&list)),
        };
        let bridge = Arc::new(Bridge::new().map_err(|e| PyOSError::new_err(e.to_string()))?);
        let (shutdown, _) = watch::channel(false);
        let wakeups = Arc::new(Wakeups::default());
        let flush = Py::new(py, Flusher::new(wakeups.clone()))?.into_any();
        let call_soon = match call_soon {
            Some(c) => c,
            None => event_loop.getattr("call_soon")?.unbind(),
        };
        let shared = Arc::new(ServerShared {
            settings,
            bridge,
            wakeups: wakeups.clone(),
            connections: AtomicUsize::new(0),
            active_requests: AtomicUsize::new(0),
            queue_budget: Default::default(),
            total_requests: AtomicU64::new(0),
            shutdown,
            connection_registry: Default::default(),
            tls,
            connection_permits: max_connections
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1)))),
        });
        let runtime = runtime::IoRuntime::start(io_threads, Bridge::io_thread_unparked, {
            let bridge = shared.bridge.clone();
            move || bridge.flush_on_park()
        })
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
        runtime.spawn(wakeups.run());
        Ok(CoreServer {
            runtime: Mutex::new(Some(runtime)),
            shared,
            hooks: Arc::new(LoopHooks {
                create_future,
                access_log,
                ws_log,
                call_soon,
                flush,
            }),
            scope: ScopeSettings::new(py, root_path, asgi_version, state)?,
            on_request,
            on_websocket,
            on_log,
            create_task,
            task_kwargs,
            fresh_context,
            request_tasks,
            backlog: Mutex::new(VecDeque::with_capacity(256)),
        })
    }

    /// Serve a listening socket (its descriptor is duplicated; the caller keeps its own).
    fn listen(&self, fd: i32) -> PyResult<()> {
        let listener = listener::adopt(fd).map_err(|e| PyOSError::new_err(e.to_string()))?;
        let runtime = self.runtime.lock().unwrap();
        let runtime = runtime
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("server is closed"))?;
        runtime.spawn(listener::accept_loop(listener, self.shared.clone()));
        Ok(())
    }

    /// The descriptor to watch with `loop.add_reader(fd, server.drain)`.
    #[getter]
    fn wake_fd(&self) -> i32 {
        self.shared.bridge.fd()
    }

    /// Process what the IO threads queued, oldest first: start apps, resolve futures, emit
    /// logs. Stops after `DRAIN_SLICE` and returns true when events are left; the loop is
    /// then woken again for them, so what the loop has scheduled meanwhile (the flush that
    /// hands finished responses to the IO thread, tasks resumed by earlier events) runs in
    /// between instead of after the whole queue.
    fn drain(&self, py: Python<'_>) -> PyResult<bool> {
        let mut backlog = std::mem::take(&mut *self.backlog.lock().unwrap());
        self.shared.bridge.take(&mut backlog);
        let started = Instant::now();
        while let Some(event) = backlog.pop_front() {
            self.handle(py, event);
            if started.elapsed() >= DRAIN_SLICE {
                break;
            }
        }
        let left = {
            // A drain run from inside this one (shutdown) may have left newer events.
            let mut slot = self.backlog.lock().unwrap();
            backlog.extend(slot.drain(..));
            *slot = backlog;
            !slot.is_empty()
        };
        if left {
            self.shared.bridge.rearm();
        }
        Ok(left)
    }

    /// Stop accepting, close idle connections now and busy ones after their response.
    fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        self.shared.connection_registry.close_all();
    }

    /// Open client connections.
    #[getter]
    fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Acquire)
    }

    /// Requests dispatched to the app and not finished.
    #[getter]
    fn active_requests(&self) -> usize {
        self.shared.active_requests.load(Ordering::Acquire)
    }

    /// Responses completed since start.
    #[getter]
    fn total_requests(&self) -> u64 {
        self.shared.total_requests.load(Ordering::Acquire)
    }

    /// Stop the IO threads, dropping whatever connections are left.
    fn close(&self, py: Python<'_>) {
        let runtime = self.runtime.lock().unwrap().take();
        if let Some(runtime) = runtime {
            py.detach(|| runtime.shutdown());
        }
    }
}
