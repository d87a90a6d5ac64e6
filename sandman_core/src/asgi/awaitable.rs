//! Awaitables handed to the app: already-finished ones for the fast path, asyncio futures
//! resolved on the loop thread otherwise, and the spec-2.4 disconnect exception.

use pyo3::exceptions::PyStopIteration;
use pyo3::intern;
use pyo3::prelude::*;

pyo3::create_exception!(
    _core,
    ClientDisconnected,
    pyo3::exceptions::PyOSError,
    "Raised by send() once the client has gone away (ASGI HTTP spec 2.4). Never logged as an error."
);

/// An awaitable that is already finished: `await` returns its value without suspending.
#[pyclass(frozen, module = "sandman_asgi._core")]
pub struct Ready {
    value: Option<Py<PyAny>>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match &self.value {
            // StopIteration(value) is how an iterator-based awaitable returns a value.
            Some(v) => Err(PyStopIteration::new_err((v.clone_ref(py),))),
            None => Ok(None),
        }
    }

    fn send(&self, py: Python<'_>, _value: Py<PyAny>) -> PyResult<Option<Py<PyAny>>> {
        self.__next__(py)
    }
}

/// The shared finished awaitable whose `await` returns `None` (every fast-path `send()`).
pub fn ready_none(py: Python<'_>) -> PyResult<Py<PyAny>> {
    static DONE: pyo3::sync::PyOnceLock<Py<Ready>> = pyo3::sync::PyOnceLock::new();
    Ok(DONE
        .get_or_try_init(py, || Py::new(py, Ready { value: None }))?
        .clone_ref(py)
        .into_any())
}

/// A finished awaitable whose `await` returns `value`.
pub fn ready_value(py: Python<'_>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    Ok(Py::new(
        py,
        Ready {
            value: Some(value.unbind()),
        },
    )?
    .into_any())
}

/// Resolve an asyncio future with a value or an exception, unless it is already done
/// (a cancelled task leaves a cancelled future behind).
pub fn resolve(py: Python<'_>, future: Py<PyAny>, result: Result<Bound<'_, PyAny>, PyErr>) {
    let fut = future.bind(py);
    // A cancelled task leaves a cancelled future behind; resolving it would raise.
    if fut
        .call_method0(intern!(py, "done"))
        .and_then(|d| d.is_truthy())
        .unwrap_or(true)
    {
        return;
    }
    let outcome = match result {
        Ok(value) => fut.call_method1(intern!(py, "set_result"), (value,)),
        Err(err) => fut.call_method1(intern!(py, "set_exception"), (err.into_value(py),)),
    };
    if let Err(e) = outcome {
        e.write_unraisable(py, Some(fut));
    }
}

/// Resolve a `send()` that waited for room: `None`, or `ClientDisconnected` if the peer left.
pub fn resolve_send(py: Python<'_>, future: Py<PyAny>, gone: bool) {
    let result = if gone {
        Err(ClientDisconnected::new_err("client disconnected"))
    } else {
        Ok(py.None().into_bound(py))
    };
    resolve(py, future, result);
}
