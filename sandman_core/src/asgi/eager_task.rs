//! An HTTP request's app task that starts eagerly, as `asyncio.Task(..., eager_start=True)`
//! does on Python 3.12+, for Python 3.11, which lacks it.
//!
//! Why: on 3.11 an `asyncio.Task` costs about 9k instructions per request before the app
//! runs a line: a "Task-N" name formatted, an entry added to and removed from asyncio's
//! all-tasks WeakSet, a first step scheduled through the loop. That is a fifth of a small
//! request, and most requests never suspend.
//!
//! How: [`RequestTask::start`] makes the task object the loop's current task with
//! `asyncio.tasks._enter_task` (the hook asyncio documents for task implementations of
//! other loops), runs the coroutine's first step in the task's own contextvars context, as
//! `Task.__step` does, and leaves. A coroutine that finished in that step is done: no loop
//! iteration, no registry entry. One that suspended is handed to a real `asyncio.Task`
//! (`sandman_asgi/eager_task.py`) that drives the rest. If the first step kept a
//! reference to this object (anyio's cancel scopes, `asyncio.timeout`, asgiref, a local),
//! `current_task()` keeps returning it, so whatever kept it sees one task from the first
//! step to the last; if nothing did, nothing can tell, and the inner task is current from
//! then on. Either way every method here defers to the inner task once it exists.

use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::asgi::awaitable::ready_value;
use crate::asgi::convert::calls;

/// What every request task needs from asyncio, looked up once at startup.
pub struct TaskHooks {
    /// The loop the server runs on.
    pub event_loop: Py<PyAny>,
    /// `asyncio.tasks._enter_task`.
    pub enter: Py<PyAny>,
    /// `asyncio.tasks._leave_task`.
    pub leave: Py<PyAny>,
    /// `sandman_asgi.eager_task.hand_over(task, coro, pending, loop, context, name,
    /// cancel, kept)`.
    pub hand_over: Py<PyAny>,
    /// `asyncio.CancelledError`.
    pub cancelled_error: Py<PyAny>,
    /// `asyncio.InvalidStateError`.
    pub invalid_state: Py<PyAny>,
    /// The counter asyncio's pure-Python tasks number their "Task-N" names with.
    pub name_counter: Py<PyAny>,
    /// `weakref.getweakrefcount`.
    pub weakref_count: Py<PyAny>,
}

/// What [`RequestTask::start`] did with the coroutine.
pub enum Started {
    /// It finished in its first step.
    Finished,
    /// It suspended: hold the task while the app runs.
    Running(Py<RequestTask>),
    /// Another task is current (a drain called from inside a task, as at shutdown), so
    /// nothing ran: the caller starts a plain `asyncio.Task` with the coroutine and context.
    NotEntered(Py<PyAny>, Py<PyAny>),
}

enum Outcome {
    Pending,
    Returned(Py<PyAny>),
    Cancelled(Option<Py<PyAny>>),
    Raised(PyErr),
}

/// `asyncio.current_task()` during an HTTP app's run on Python 3.11. See the module doc.
#[pyclass(module = "sandman_asgi._core", weakref)]
pub struct RequestTask {
    hooks: Arc<TaskHooks>,
    /// The app's coroutine (none once the garbage collector cleared the task).
    coro: Option<Py<PyAny>>,
    context: Py<PyAny>,
    name: Option<Py<PyAny>>,
    /// The `asyncio.Task` driving the coroutine after its first step suspended.
    inner: Option<Py<PyAny>>,
    outcome: Outcome,
    // Cancellation requested during the first step, before any inner task exists. The
    // count stays here afterwards: `cancelling()` is this plus the inner task's.
    must_cancel: bool,
    cancel_message: Option<Py<PyAny>>,
    cancels_requested: i64,
    /// Done-callbacks with their contexts; each is called with this object.
    callbacks: Vec<(Py<PyAny>, Option<Py<PyAny>>)>,
    /// Whether the inner task calls [`RequestTask::_inner_done`] when it ends.
    watching_inner: bool,
}

impl RequestTask {
    /// Create the task and run `coro`'s first step in `context`.
    pub fn start(
        py: Python<'_>,
        hooks: &Arc<TaskHooks>,
        coro: Bound<'_, PyAny>,
        context: Bound<'_, PyAny>,
    ) -> PyResult<Started> {
        let task = Py::new(
            py,
            RequestTask {
                hooks: hooks.clone(),
                coro: Some(coro.clone().unbind()),
                context: context.clone().unbind(),
                name: None,
                inner: None,
                outcome: Outcome::Pending,
                must_cancel: false,
                cancel_message: None,
                cancels_requested: 0,
                callbacks: Vec::new(),
                watching_inner: false,
            },
        )?;
        let event_loop = hooks.event_loop.bind(py);
        if hooks.enter.call1(py, (event_loop, &task)).is_err() {
            return Ok(Started::NotEntered(coro.unbind(), context.unbind()));
        }
        let (status, value) = unsafe { first_step(py, &coro, &context) };
        // Taken before anything else calls into Python.
        let step = match status {
            ffi::PySendResult::PYGEN_ERROR => Err(PyErr::fetch(py)),
            other => Ok((other, value.expect("a value on return or yield"))),
        };
        if let Err(err) = hooks.leave.call1(py, (event_loop, &task)) {
            // asyncio's bookkeeping gone wrong; the coroutine is suspended or finished
            // all the same, so carry on with it.
            err.write_unraisable(py, Some(task.bind(py).as_any()));
        }
        match step {
            Ok((ffi::PySendResult::PYGEN_NEXT, pending)) => {
                if let Err(err) = Self::hand_over(py, &task, &coro, pending, &context) {
                    // Nothing can drive the coroutine: close it (the app sees
                    // GeneratorExit) rather than leave the request hanging.
                    err.write_unraisable(py, Some(task.bind(py).as_any()));
                    if let Err(err) = coro.call_method0(intern!(py, "close")) {
                        err.write_unraisable(py, Some(task.bind(py).as_any()));
                    }
                    Self::finish(py, &task, Outcome::Cancelled(None))?;
                    return Ok(Started::Finished);
                }
                Ok(Started::Running(task))
            }
            Ok((_, returned)) => {
                let outcome = {
                    let mut t = task.borrow_mut(py);
                    if t.must_cancel {
                        Outcome::Cancelled(t.cancel_message.take())
                    } else {
                        Outcome::Returned(returned.unbind())
                    }
                };
                Self::finish(py, &task, outcome)?;
                Ok(Started::Finished)
            }
            Err(err) => {
                let outcome = if err.is_instance(py, hooks.cancelled_error.bind(py)) {
                    Outcome::Cancelled(None)
                } else {
                    // Nothing awaits a request task: report it as asyncio reports an
                    // exception nobody retrieved.
                    err.clone_ref(py)
                        .write_unraisable(py, Some(task.bind(py).as_any()));
                    Outcome::Raised(err)
                };
                Self::finish(py, &task, outcome)?;
                Ok(Started::Finished)
            }
        }
    }

    /// Give the suspended coroutine to a real `asyncio.Task`, with any cancellation
    /// requested during the first step carried over (see `hand_over` in Python).
    fn hand_over(
        py: Python<'_>,
        task: &Py<RequestTask>,
        coro: &Bound<'_, PyAny>,
        pending: Bound<'_, PyAny>,
        context: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let hooks = task.borrow(py).hooks.clone();
        // Only the caller's handle holds the task unless the first step left a reference
        // behind: then the task must stay current to the end (see sandman_asgi/eager_task.py).
        let kept = unsafe { ffi::Py_REFCNT(task.as_ptr()) } > 1
            || hooks
                .weakref_count
                .call1(py, (task,))?
                .extract::<usize>(py)?
                > 0;
        let (name, cancel) = {
            let mut t = task.borrow_mut(py);
            let cancel = if t.must_cancel {
                t.must_cancel = false;
                Some((t.cancel_message.take(),))
            } else {
                None
            };
            (t.name.as_ref().map(|n| n.clone_ref(py)), cancel)
        };
        let inner = hooks.hand_over.call1(
            py,
            (
                task,
                coro,
                pending,
                hooks.event_loop.bind(py),
                context,
                name,
                cancel,
                kept,
            ),
        )?;
        let watch = {
            let mut t = task.borrow_mut(py);
            t.inner = Some(inner.clone_ref(py));
            !t.callbacks.is_empty()
        };
        if watch {
            Self::watch_inner(py, task, inner.bind(py))?;
        }
        Ok(())
    }

    /// Record the outcome of a first step that ended the coroutine and schedule the
    /// done-callbacks, as `Future` does.
    fn finish(py: Python<'_>, task: &Py<RequestTask>, outcome: Outcome) -> PyResult<()> {
        let callbacks = {
            let mut t = task.borrow_mut(py);
            t.outcome = outcome;
            t.must_cancel = false;
            std::mem::take(&mut t.callbacks)
        };
        Self::schedule_callbacks(py, task, callbacks)
    }

    fn schedule_callbacks(
        py: Python<'_>,
        task: &Py<RequestTask>,
        callbacks: Vec<(Py<PyAny>, Option<Py<PyAny>>)>,
    ) -> PyResult<()> {
        if callbacks.is_empty() {
            return Ok(());
        }
        let (event_loop, own_context) = {
            let t = task.borrow(py);
            (t.hooks.event_loop.clone_ref(py), t.context.clone_ref(py))
        };
        for (callback, context) in callbacks {
            let context = context.unwrap_or_else(|| own_context.clone_ref(py));
            let kwargs = calls::with_context(py, None, context.into_bound(py))?;
            event_loop.call_method(
                py,
                intern!(py, "call_soon"),
                (callback, task.clone_ref(py)),
                Some(&kwargs),
            )?;
        }
        Ok(())
    }

    fn watch_inner(
        py: Python<'_>,
        task: &Py<RequestTask>,
        inner: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let hook = task.bind(py).getattr(intern!(py, "_inner_done"))?;
        inner.call_method1(intern!(py, "add_done_callback"), (hook,))?;
        task.borrow_mut(py).watching_inner = true;
        Ok(())
    }

    fn inner(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.inner.as_ref().map(|i| i.clone_ref(py))
    }

    fn is_done(&self) -> bool {
        !matches!(self.outcome, Outcome::Pending)
    }
}

/// `coro.send(None)` inside `context`, as `Context.run` would, without building a bound
/// method and an argument tuple. Returns the send status and its value (none on error, the
/// exception then being set).
unsafe fn first_step<'py>(
    py: Python<'py>,
    coro: &Bound<'py, PyAny>,
    context: &Bound<'py, PyAny>,
) -> (ffi::PySendResult, Option<Bound<'py, PyAny>>) {
    if ffi::PyContext_Enter(context.as_ptr()) != 0 {
        return (ffi::PySendResult::PYGEN_ERROR, None);
    }
    let mut out: *mut ffi::PyObject = std::ptr::null_mut();
    let status = ffi::PyIter_Send(coro.as_ptr(), ffi::Py_None(), &mut out);
    let value = Bound::from_owned_ptr_or_opt(py, out);
    if ffi::PyContext_Exit(context.as_ptr()) != 0 {
        return (ffi::PySendResult::PYGEN_ERROR, None);
    }
    (status, value)
}

#[pymethods]
impl RequestTask {
    /// The garbage collector's view: a task and its coroutine's frame can refer to each
    /// other (an app keeping `current_task()` in a local), as can a task and its inner
    /// task's coroutine.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.coro)?;
        visit.call(&self.context)?;
        visit.call(&self.name)?;
        visit.call(&self.inner)?;
        visit.call(&self.cancel_message)?;
        if let Outcome::Returned(value) = &self.outcome {
            visit.call(value)?;
        }
        for (callback, context) in &self.callbacks {
            visit.call(callback)?;
            visit.call(context)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.coro = None;
        self.name = None;
        self.inner = None;
        self.cancel_message = None;
        self.outcome = Outcome::Cancelled(None);
        self.callbacks.clear();
    }

    /// `Future` protocol marker: `asyncio.isfuture()` accepts the task.
    #[classattr]
    fn _asyncio_future_blocking() -> bool {
        false
    }

    #[pyo3(signature = (msg = None))]
    fn cancel(&mut self, py: Python<'_>, msg: Option<Py<PyAny>>) -> PyResult<bool> {
        if let Some(inner) = self.inner(py) {
            let msg = msg.map_or_else(|| py.None().into_bound(py), |m| m.into_bound(py));
            let kwargs = calls::kwargs(py, &[(intern!(py, "msg"), msg)])?;
            return inner
                .call_method(py, intern!(py, "cancel"), (), Some(&kwargs))?
                .extract(py);
        }
        if self.is_done() {
            return Ok(false);
        }
        self.cancels_requested += 1;
        self.must_cancel = true;
        self.cancel_message = msg;
        Ok(true)
    }

    fn cancelling(&self, py: Python<'_>) -> PyResult<i64> {
        Ok(self.cancels_requested + self.inner_cancelling(py)?)
    }

    fn uncancel(&mut self, py: Python<'_>) -> PyResult<i64> {
        if self.cancels_requested > 0 {
            self.cancels_requested -= 1;
            return self.cancelling(py);
        }
        match self.inner(py) {
            Some(inner) => inner.call_method0(py, intern!(py, "uncancel"))?.extract(py),
            None => Ok(0),
        }
    }

    fn done(&self, py: Python<'_>) -> PyResult<bool> {
        match self.inner(py) {
            Some(inner) => inner.call_method0(py, intern!(py, "done"))?.extract(py),
            None => Ok(self.is_done()),
        }
    }

    fn cancelled(&self, py: Python<'_>) -> PyResult<bool> {
        match self.inner(py) {
            Some(inner) => inner
                .call_method0(py, intern!(py, "cancelled"))?
                .extract(py),
            None => Ok(matches!(self.outcome, Outcome::Cancelled(_))),
        }
    }

    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(inner) = self.inner(py) {
            return inner.call_method0(py, intern!(py, "result"));
        }
        match &self.outcome {
            Outcome::Returned(value) => Ok(value.clone_ref(py)),
            Outcome::Cancelled(msg) => Err(self.cancelled_error(py, msg)?),
            Outcome::Raised(err) => Err(err.clone_ref(py)),
            Outcome::Pending => Err(self.invalid_state(py, "Result is not set.")?),
        }
    }

    fn exception(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(inner) = self.inner(py) {
            return inner.call_method0(py, intern!(py, "exception"));
        }
        match &self.outcome {
            Outcome::Returned(_) => Ok(py.None()),
            Outcome::Cancelled(msg) => Err(self.cancelled_error(py, msg)?),
            Outcome::Raised(err) => Ok(err.value(py).clone().into_any().unbind()),
            Outcome::Pending => Err(self.invalid_state(py, "Exception is not set.")?),
        }
    }

    #[pyo3(signature = (callback, *, context = None))]
    fn add_done_callback(
        slf: &Bound<'_, Self>,
        callback: Py<PyAny>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let task = slf.clone().unbind();
        let (done, inner, watching) = {
            let t = slf.borrow();
            (t.is_done(), t.inner(py), t.watching_inner)
        };
        let done = match &inner {
            Some(inner) => inner
                .call_method0(py, intern!(py, "done"))?
                .extract::<bool>(py)?,
            None => done,
        };
        if done {
            return Self::schedule_callbacks(py, &task, vec![(callback, context)]);
        }
        if let (Some(inner), false) = (&inner, watching) {
            Self::watch_inner(py, &task, inner.bind(py))?;
        }
        slf.borrow_mut().callbacks.push((callback, context));
        Ok(())
    }

    fn remove_done_callback(
        &mut self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let before = self.callbacks.len();
        let mut kept = Vec::with_capacity(before);
        for (cb, ctx) in self.callbacks.drain(..) {
            if !cb.bind(py).eq(&callback)? {
                kept.push((cb, ctx));
            }
        }
        self.callbacks = kept;
        Ok(before - self.callbacks.len())
    }

    /// Called by the inner task when it ends: this task's callbacks follow.
    fn _inner_done(slf: &Bound<'_, Self>, _inner: Bound<'_, PyAny>) -> PyResult<()> {
        let callbacks = std::mem::take(&mut slf.borrow_mut().callbacks);
        Self::schedule_callbacks(slf.py(), &slf.clone().unbind(), callbacks)
    }

    fn get_coro(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.coro.as_ref().map(|c| c.clone_ref(py))
    }

    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    fn get_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.hooks.event_loop.clone_ref(py)
    }

    fn get_name(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(inner) = self.inner(py) {
            return inner.call_method0(py, intern!(py, "get_name"));
        }
        if self.name.is_none() {
            // Named when first asked, so a request nobody names costs no string.
            let n = self.hooks.name_counter.call0(py)?;
            self.name = Some(format!("Task-{n}").into_pyobject(py)?.into_any().unbind());
        }
        Ok(self.name.as_ref().expect("set above").clone_ref(py))
    }

    fn set_name(&mut self, py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(inner) = self.inner(py) {
            inner.call_method1(py, intern!(py, "set_name"), (value,))?;
            return Ok(());
        }
        self.name = Some(value.str()?.into_any().unbind());
        Ok(())
    }

    #[pyo3(signature = (*, limit = None))]
    fn get_stack(&self, py: Python<'_>, limit: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.inner(py) {
            Some(inner) => {
                let limit = limit.map_or_else(|| py.None().into_bound(py), |l| l.into_bound(py));
                let kwargs = calls::kwargs(py, &[(intern!(py, "limit"), limit)])?;
                inner.call_method(py, intern!(py, "get_stack"), (), Some(&kwargs))
            }
            None => Ok(PyList::empty(py).into_any().unbind()),
        }
    }

    /// anyio reads these two private `asyncio.Task` attributes to deliver cancellation.
    #[getter]
    fn _must_cancel(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.inner(py) {
            Some(inner) => inner.getattr(py, intern!(py, "_must_cancel")),
            None => Ok(self
                .must_cancel
                .into_pyobject(py)?
                .to_owned()
                .into_any()
                .unbind()),
        }
    }

    #[getter]
    fn _fut_waiter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.inner(py) {
            Some(inner) => inner.getattr(py, intern!(py, "_fut_waiter")),
            None => Ok(py.None()),
        }
    }

    fn __await__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(inner) = self.inner(py) {
            return inner.call_method0(py, intern!(py, "__await__"));
        }
        match &self.outcome {
            Outcome::Pending => Err(PyRuntimeError::new_err(
                "a task cannot await itself during its first step",
            )),
            _ => ready_value(py, self.result(py)?.into_bound(py)),
        }
    }

    fn __repr__(&mut self, py: Python<'_>) -> PyResult<String> {
        let state = if self.done(py)? {
            if self.cancelled(py)? {
                "cancelled"
            } else {
                "finished"
            }
        } else {
            "pending"
        };
        let name = self.get_name(py)?;
        let coro = match &self.coro {
            Some(c) => c.bind(py).repr()?.to_string(),
            None => "None".to_string(),
        };
        Ok(format!(
            "<RequestTask {state} name={} coro={coro}>",
            name.bind(py).repr()?
        ))
    }
}

impl RequestTask {
    fn inner_cancelling(&self, py: Python<'_>) -> PyResult<i64> {
        match self.inner(py) {
            Some(inner) => inner
                .call_method0(py, intern!(py, "cancelling"))?
                .extract(py),
            None => Ok(0),
        }
    }

    fn cancelled_error(&self, py: Python<'_>, msg: &Option<Py<PyAny>>) -> PyResult<PyErr> {
        let class = self.hooks.cancelled_error.bind(py);
        let exc = match msg {
            Some(m) => class.call1((m.clone_ref(py),))?,
            None => class.call0()?,
        };
        Ok(PyErr::from_value(exc))
    }

    fn invalid_state(&self, py: Python<'_>, text: &str) -> PyResult<PyErr> {
        Ok(PyErr::from_value(
            self.hooks.invalid_state.bind(py).call1((text,))?,
        ))
    }
}
