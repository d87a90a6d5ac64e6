//! Reading the app's `send()` dicts into typed values (asgi-checklist §1.0, §2.1).
//!
//! Validation happens here so no malformed value ever reaches hyper: a wrong Python type is
//! a `TypeError`, a wrong value (status out of range, a header that could split the
//! response) a `ValueError`. Unknown keys are ignored, as the spec requires for forward
//! compatibility.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

/// A parsed `http.response.start`.
pub struct ResponseStart {
    /// 200..=999 (1xx are not final responses; early hints have their own extension).
    pub status: u16,
    /// Validated headers, in the app's order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The app's message as a dict (a `TypeError` for anything else).
pub fn as_dict<'a, 'py>(message: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyDict>> {
    message.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "ASGI message must be a dict, got {}",
            type_name(message)
        ))
    })
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The message's `type` key.
pub fn message_type<'py>(message: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyString>> {
    let py = message.py();
    match message.get_item(intern!(py, "type"))? {
        Some(value) => value.cast_into::<PyString>().map_err(|e| {
            PyTypeError::new_err(format!(
                "ASGI message 'type' must be a str, got {}",
                type_name(e.into_inner().as_any())
            ))
        }),
        None => Err(PyValueError::new_err("ASGI message has no 'type' key")),
    }
}

/// Bytes from a `bytes`, `bytearray` or `memoryview` value.
pub fn extract_bytes(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Bytes> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(b.as_bytes()));
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Ok(Bytes::from(b.to_vec()));
    }
    if let Ok(buf) = pyo3::buffer::PyBuffer::<u8>::get(value) {
        return Ok(Bytes::from(buf.to_vec(value.py())?));
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be bytes, got {}",
        type_name(value)
    )))
}

/// `body` (default `b""`).
pub fn body(message: &Bound<'_, PyDict>) -> PyResult<Bytes> {
    match message.get_item(intern!(message.py(), "body"))? {
        Some(v) if !v.is_none() => extract_bytes(&v, "'body'"),
        _ => Ok(Bytes::new()),
    }
}

/// A boolean key such as `more_body` (default `False`).
pub fn flag(message: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> PyResult<bool> {
    match message.get_item(key)? {
        Some(v) => v.is_truthy(),
        None => Ok(false),
    }
}

/// One header pair from the app: lowercase-able token name, value without CR/LF/NUL.
pub fn header_pair(item: &Bound<'_, PyAny>) -> PyResult<(HeaderName, HeaderValue)> {
    let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract().map_err(|_| {
        PyTypeError::new_err("ASGI headers must be an iterable of [name, value] pairs")
    })?;
    let name = name.cast::<PyBytes>().map_err(|_| {
        PyTypeError::new_err(format!(
            "header names must be bytes, got {}",
            type_name(&name)
        ))
    })?;
    let value = value.cast::<PyBytes>().map_err(|_| {
        PyTypeError::new_err(format!(
            "header values must be bytes, got {}",
            type_name(&value)
        ))
    })?;
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        PyValueError::new_err(format!(
            "invalid HTTP header name {:?}",
            name.as_bytes().escape_ascii().to_string()
        ))
    })?;
    let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
        PyValueError::new_err(format!(
            "invalid HTTP header value for {name:?}: {:?}",
            value.as_bytes().escape_ascii().to_string()
        ))
    })?;
    Ok((name, value))
}

/// Every header of an optional `headers` key.
pub fn headers(message: &Bound<'_, PyDict>) -> PyResult<Vec<(HeaderName, HeaderValue)>> {
    let mut out = Vec::new();
    if let Some(h) = message.get_item(intern!(message.py(), "headers"))? {
        if h.is_none() {
            return Ok(out);
        }
        let iter = h.try_iter().map_err(|_| {
            PyTypeError::new_err("ASGI headers must be an iterable of [name, value] pairs")
        })?;
        for item in iter {
            out.push(header_pair(&item?)?);
        }
    }
    Ok(out)
}

/// Parse `http.response.start`.
pub fn response_start(message: &Bound<'_, PyDict>) -> PyResult<ResponseStart> {
    let py = message.py();
    let status = match message.get_item(intern!(py, "status"))? {
        Some(s) => s,
        None => {
            return Err(PyValueError::new_err(
                "'http.response.start' needs a 'status'",
            ))
        }
    };
    if status.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err("'status' must be an int, got bool"));
    }
    let status: i64 = status.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "'status' must be an int, got {}",
            type_name(&status)
        ))
    })?;
    if !(200..=999).contains(&status) {
        return Err(PyValueError::new_err(format!(
            "invalid final HTTP status {status}: must be 200..999"
        )));
    }
    Ok(ResponseStart {
        status: status as u16,
        headers: headers(message)?,
    })
}
