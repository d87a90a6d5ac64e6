//! The arguments of the core's own calls into Python: log and access lines, and the
//! keywords it passes to asyncio.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::common::access::AccessRecord;
use crate::common::log::Level;

/// `access(client, method, path_with_query, http_version, status)`: one access line.
pub fn access_line(py: Python<'_>, hook: &Py<PyAny>, record: AccessRecord) -> PyResult<()> {
    let AccessRecord {
        client,
        method,
        path,
        version,
        status,
    } = record;
    hook.call1(py, (client, method, path, version, status))?;
    Ok(())
}

/// `ws_access(client, path_with_query, status)`: one WebSocket handshake line (`status`
/// `None` for "[accepted]").
pub fn handshake_line(
    py: Python<'_>,
    hook: &Py<PyAny>,
    record: AccessRecord,
    status: Option<u16>,
) -> PyResult<()> {
    hook.call1(py, (record.client, record.path, status))?;
    Ok(())
}

/// `on_log(level, message)`: one line for the `uvicorn.error` logger.
pub fn log_line(py: Python<'_>, hook: &Py<PyAny>, level: Level, message: String) -> PyResult<()> {
    hook.call1(py, (level.as_python(), message))?;
    Ok(())
}

/// Keyword arguments from pairs, for calls into asyncio.
pub fn kwargs<'py>(
    py: Python<'py>,
    pairs: &[(&Bound<'py, PyString>, Bound<'py, PyAny>)],
) -> PyResult<Bound<'py, PyDict>> {
    let kwargs = PyDict::new(py);
    for (key, value) in pairs {
        kwargs.set_item(*key, value)?;
    }
    Ok(kwargs)
}

/// `base` (a copy) plus `context=context`: the keywords of a task that runs in `context`.
pub fn with_context<'py>(
    py: Python<'py>,
    base: Option<&Bound<'py, PyDict>>,
    context: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let kwargs = match base {
        Some(base) => base.copy()?,
        None => PyDict::new(py),
    };
    kwargs.set_item(pyo3::intern!(py, "context"), context)?;
    Ok(kwargs)
}
