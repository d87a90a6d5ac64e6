//! The server object Python drives: drains the bridge on the loop thread (starting apps,
//! resuming cycles, writing log lines) and passes listen and shutdown to the transport.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::asgi::convert::calls;
use crate::asgi::convert::scope::{connection_scope, ScopeKind, ScopeSettings};
use crate::asgi::convert::settings::AppConfig;
use crate::asgi::events::{LoopBridge, LoopEvent};
use crate::asgi::http::HttpCycle;
use crate::asgi::loop_hooks::LoopHooks;
use crate::asgi::tasks::TaskStarter;
use crate::asgi::websocket::WsCycle;
use crate::bridge::io_wakeups::{Flusher, IoWakeups};
use crate::exchange::app::Transport;
use crate::exchange::hub::Hub;
use crate::exchange::response::Answer;

/// Longest one drain runs before the loop gets a turn. A drain used to run every queued
/// event: under load that is every connection's request, so responses finished first
/// waited for the last app's first step before the flush that hands them to the IO thread,
/// and a request that just missed a drain waited for a whole one. On the FastAPI route at
/// 128 connections, p99 went from 37-39 ms to 24-30 ms with 1 ms slices, req/s unchanged.
const DRAIN_SLICE: Duration = Duration::from_millis(1);

/// The Rust half of a running server. Made by `sandman_asgi._core.start_server` and driven
/// by `sandman_asgi.server.Server`.
#[pyclass(frozen, module = "sandman_asgi._core")]
pub struct CoreServer {
    transport: Box<dyn Transport>,
    hub: Arc<Hub>,
    bridge: Arc<LoopBridge>,
    hooks: Arc<LoopHooks>,
    scopes: ScopeSettings,
    tasks: TaskStarter,
    on_log: Py<PyAny>,
    /// Events taken from the bridge and not processed yet (a drain stops after
    /// `DRAIN_SLICE`), oldest first.
    backlog: Mutex<VecDeque<LoopEvent>>,
}

impl CoreServer {
    /// The app side of a server whose transport is running: `hub` and `bridge` are the
    /// ones the transport was started with; `io_wakeups` runs on its IO threads.
    pub fn new(
        py: Python<'_>,
        mut config: AppConfig,
        hub: Arc<Hub>,
        bridge: Arc<LoopBridge>,
        io_wakeups: Arc<IoWakeups>,
        transport: Box<dyn Transport>,
    ) -> PyResult<CoreServer> {
        let flush = Py::new(py, Flusher::new(io_wakeups.clone()))?.into_any();
        let tasks = TaskStarter::new(py, &mut config)?;
        let scopes = ScopeSettings::new(
            py,
            &config.root_path,
            &config.asgi_version,
            config.state,
            bridge.clone(),
        )?;
        Ok(CoreServer {
            transport,
            hub,
            hooks: Arc::new(LoopHooks {
                create_future: config.create_future,
                access_log: config.access_log,
                ws_log: config.ws_log,
                call_soon: config.call_soon,
                flush,
                io_wakeups,
                bridge: bridge.clone(),
            }),
            bridge,
            scopes,
            tasks,
            on_log: config.on_log,
            backlog: Mutex::new(VecDeque::with_capacity(256)),
        })
    }

    /// One event from an IO thread, on the loop thread. An error is reported as
    /// unraisable (there is no Python caller to raise it to) and the event skipped.
    fn handle(&self, py: Python<'_>, event: LoopEvent) {
        match event {
            LoopEvent::Http(exchange) => {
                let scope = connection_scope(
                    py,
                    ScopeKind::Http,
                    &exchange.head,
                    &exchange.conn,
                    &self.scopes,
                );
                let Some(scope) = reported(py, scope) else {
                    // No app will run: answer for it rather than leave the client waiting.
                    exchange.fail(Answer::internal_server_error(&exchange.hub().response));
                    return;
                };
                let cycle = HttpCycle::new(exchange, self.hooks.clone());
                let Some(cycle) = reported(py, Bound::new(py, cycle)) else {
                    return;
                };
                let started = self.tasks.start_request(py, scope, cycle.as_any());
                if let Some(Some(task)) = reported(py, started) {
                    cycle.get().hold_task(task);
                }
            }
            LoopEvent::WebSocket(exchange) => {
                let scope = connection_scope(
                    py,
                    ScopeKind::WebSocket,
                    &exchange.head,
                    &exchange.conn,
                    &self.scopes,
                );
                let Some(scope) = reported(py, scope) else {
                    exchange.end(1011, "");
                    return;
                };
                let cycle = WsCycle::new(exchange, self.hooks.clone());
                let Some(cycle) = reported(py, Bound::new(py, cycle)) else {
                    return;
                };
                let started = self.tasks.start_websocket(py, scope, cycle.as_any());
                if let Some(Some(task)) = reported(py, started) {
                    cycle.get().hold_task(task);
                }
            }
            LoopEvent::Resume(cycle) => cycle.resume(py),
            LoopEvent::Access(record) => {
                if let Some(hook) = &self.hooks.access_log {
                    reported(py, calls::access_line(py, hook, *record));
                }
            }
            LoopEvent::Log(level, message) => {
                reported(py, calls::log_line(py, &self.on_log, level, message));
            }
            LoopEvent::Release(objects) => drop(objects),
        }
    }
}

/// The value, or `None` after reporting the error as unraisable.
fn reported<T>(py: Python<'_>, result: PyResult<T>) -> Option<T> {
    result.map_err(|err| err.write_unraisable(py, None)).ok()
}

#[pymethods]
impl CoreServer {
    /// Serve a listening socket (its descriptor is duplicated; the caller keeps its own).
    fn listen(&self, fd: i32) -> PyResult<()> {
        self.transport
            .listen(fd)
            .map_err(|e| PyOSError::new_err(e.to_string()))
    }

    /// The descriptor to watch with `loop.add_reader(fd, server.drain)`.
    #[getter]
    fn wake_fd(&self) -> i32 {
        self.bridge.fd()
    }

    /// Process what the IO threads queued, oldest first: start apps, resolve futures, emit
    /// logs. Stops after `DRAIN_SLICE` and returns true when events are left; the loop is
    /// then woken again for them, so what the loop has scheduled meanwhile (the flush that
    /// hands finished responses to the IO thread, tasks resumed by earlier events) runs in
    /// between instead of after the whole queue.
    fn drain(&self, py: Python<'_>) -> bool {
        let mut backlog = std::mem::take(&mut *self.backlog.lock().unwrap());
        let lag = self.bridge.take(&mut backlog);
        if let (Some(metrics), Some(lag)) = (&self.hub.metrics, lag) {
            metrics.loop_lag(lag);
        }
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
            self.bridge.rearm();
        }
        left
    }

    /// Stop accepting, close idle connections now and busy ones after their response.
    fn shutdown(&self) {
        self.transport.shutdown();
    }

    /// Open client connections.
    #[getter]
    fn connections(&self) -> usize {
        self.hub.connections.load(Ordering::Acquire)
    }

    /// Requests dispatched to the app and not finished.
    #[getter]
    fn active_requests(&self) -> usize {
        self.hub.active_requests.load(Ordering::Acquire)
    }

    /// Responses completed since start.
    #[getter]
    fn total_requests(&self) -> u64 {
        self.hub.total_requests.load(Ordering::Acquire)
    }

    /// Stop the IO threads, dropping whatever connections are left.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.transport.close());
    }
}
