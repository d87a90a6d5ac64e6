//! The event loop's objects every cycle uses, and the batched wake of IO tasks from the
//! loop thread.

use std::sync::Arc;
use std::task::Waker;

use pyo3::prelude::*;

use crate::asgi::events::LoopBridge;
use crate::bridge::io_wakeups::IoWakeups;

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
    /// The flush callable (`bridge::io_wakeups::Flusher`).
    pub flush: Py<PyAny>,
    /// Wakers of IO tasks parked by the loop thread until the flush.
    pub io_wakeups: Arc<IoWakeups>,
    /// The way to the loop thread, for the cycles' own wakers.
    pub bridge: Arc<LoopBridge>,
}

impl LoopHooks {
    /// A pending asyncio future.
    pub fn new_future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.create_future.call0(py)
    }

    /// Wake an IO task from the loop thread: batched into one cross-thread wake per loop
    /// iteration (`bridge::io_wakeups`).
    pub fn wake_io(&self, py: Python<'_>, waker: Option<Waker>) {
        let Some(waker) = waker else {
            return;
        };
        if self.io_wakeups.defer(waker) {
            let scheduled = self.call_soon.call1(py, (self.flush.clone_ref(py),));
            if scheduled.is_err() {
                // The loop is closing: wake now rather than never.
                self.io_wakeups.flush();
            }
        }
    }
}
