//! Starting each app call as a task on the event loop.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::asgi::convert::calls;
use crate::asgi::convert::settings::AppConfig;
use crate::asgi::eager_task::{RequestTask, Started, TaskHooks};

/// How app calls become tasks.
pub struct TaskStarter {
    /// `runner(scope, cycle)` -> the coroutine that runs the app for one request.
    on_request: Py<PyAny>,
    /// The same for WebSockets (`None`: `--ws none`).
    on_websocket: Option<Py<PyAny>>,
    create_task: Py<PyAny>,
    /// Keyword arguments passed to `create_task` on every call (`loop=`, `eager_start=`):
    /// one dict built at startup, which a type call hands to `Task.__init__` as it is.
    task_kwargs: Option<Py<PyDict>>,
    /// `contextvars.Context` when each task gets a fresh context.
    fresh_context: Option<Py<PyAny>>,
    /// Set where HTTP apps start as [`RequestTask`]s (Python 3.11, no task factory).
    request_tasks: Option<Arc<TaskHooks>>,
}

impl TaskStarter {
    /// The starter for the app and loop of `config` (whose callables it takes).
    pub fn new(py: Python<'_>, config: &mut AppConfig) -> PyResult<TaskStarter> {
        let fresh_context = if config.fresh_context {
            Some(py.import("contextvars")?.getattr("Context")?.unbind())
        } else {
            None
        };
        Ok(TaskStarter {
            on_request: config.on_request.clone_ref(py),
            on_websocket: config.on_websocket.as_ref().map(|r| r.clone_ref(py)),
            create_task: config.create_task.clone_ref(py),
            task_kwargs: config.task_kwargs.take(),
            fresh_context,
            request_tasks: config.task_hooks.take().map(Arc::new),
        })
    }

    /// Start `runner(scope, cycle)` as a task (a fresh contextvars context per task with
    /// `--reset-contextvars`).
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
            // 3.10's asyncio.Task takes no `context`: create the task inside the context
            // instead (a task runs in a copy of the context current when it is created).
            Some(context) if py.version_info() < (3, 11) => context
                .call_method(
                    pyo3::intern!(py, "run"),
                    (self.create_task.bind(py), coro),
                    task_kwargs,
                )
                .map(Bound::unbind),
            Some(context) => {
                let kwargs = calls::with_context(py, task_kwargs, context)?;
                self.create_task.call(py, (coro,), Some(&kwargs))
            }
        }
    }

    /// Start the app for one HTTP request: as a [`RequestTask`] whose first step runs now
    /// where that applies, else as an `asyncio.Task`. Returns the task to hold while the
    /// app runs (none if it already finished).
    pub fn start_request<'py>(
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

    /// Start the app for one WebSocket; `None` when WebSockets are off.
    pub fn start_websocket<'py>(
        &self,
        py: Python<'py>,
        scope: Bound<'py, PyDict>,
        cycle: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        match &self.on_websocket {
            Some(runner) => self.spawn(py, runner, scope, cycle).map(Some),
            None => Ok(None),
        }
    }
}
