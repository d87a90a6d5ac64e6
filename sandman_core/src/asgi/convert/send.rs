//! Reading the app's `send()` dicts into typed values (ASGI HTTP and WebSocket specs).
//!
//! Validation happens here so no malformed value ever reaches hyper: a wrong Python type is
//! a `TypeError`, a wrong value (status out of range, a header that could split the
//! response) a `ValueError`. Unknown keys are ignored, as the spec requires for forward
//! compatibility.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use crate::asgi::body_bytes;
use crate::asgi::events::LoopBridge;

/// A parsed `http.response.start`.
pub struct ResponseStart {
    /// 200..=999 (1xx are not final responses; early hints have their own extension).
    pub status: u16,
    /// Validated headers, in the app's order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The app's `content-length`, if it gave one.
    pub declared_length: Option<u64>,
    /// `trailers`: `http.response.trailers` messages follow the last body (the trailers
    /// extension).
    pub trailers: bool,
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

/// Bytes from a `bytes`, `bytearray` or `memoryview` value. A large `bytes` is borrowed
/// for the IO thread when `lend_to` is given (see [`body_bytes`]); anything mutable is
/// copied.
pub fn extract_bytes(
    value: &Bound<'_, PyAny>,
    what: &str,
    lend_to: Option<&Arc<LoopBridge>>,
) -> PyResult<Bytes> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(body_bytes::bytes_of(b, lend_to));
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
pub fn body(message: &Bound<'_, PyDict>, lend_to: Option<&Arc<LoopBridge>>) -> PyResult<Bytes> {
    match message.get_item(intern!(message.py(), "body"))? {
        Some(v) if !v.is_none() => extract_bytes(&v, "'body'", lend_to),
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

/// Bytes for an error message: escaped, and cut after 100 bytes (a 1 MiB bad header name
/// must not become a 4 MiB exception message).
fn shown(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(100)];
    let mut text = format!("{:?}", cut.escape_ascii().to_string());
    if bytes.len() > 100 {
        text.push_str(&format!(" (first 100 of {} bytes)", bytes.len()));
    }
    text
}

/// One header pair from the app: lowercase-able token name, value without CR/LF/NUL.
pub fn header_pair(item: &Bound<'_, PyAny>) -> PyResult<(HeaderName, HeaderValue)> {
    // Any two-item iterable: the spec writes pairs as lists, apps send tuples.
    let not_a_pair =
        || PyTypeError::new_err("ASGI headers must be an iterable of [name, value] pairs");
    let (name, value) = if let Ok(t) = item.cast::<pyo3::types::PyTuple>() {
        if t.len() != 2 {
            return Err(not_a_pair());
        }
        (t.get_item(0)?, t.get_item(1)?)
    } else if item.is_instance_of::<PyBytes>() || item.is_instance_of::<PyString>() {
        return Err(not_a_pair());
    } else {
        let mut iter = item.try_iter().map_err(|_| not_a_pair())?;
        let name = iter.next().ok_or_else(not_a_pair)??;
        let value = iter.next().ok_or_else(not_a_pair)??;
        if iter.next().is_some() {
            return Err(not_a_pair());
        }
        (name, value)
    };
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
            "invalid HTTP header name {}",
            shown(name.as_bytes())
        ))
    })?;
    let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
        PyValueError::new_err(format!(
            "invalid HTTP header value for {name:?}: {}",
            shown(value.as_bytes())
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
        // A list (what apps and frameworks send) is walked by index: no iterator object.
        if let Ok(list) = h.cast::<pyo3::types::PyList>() {
            out.reserve_exact(list.len());
            for item in list.iter() {
                out.push(header_pair(&item)?);
            }
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

/// Parse `http.response.start`. `trailers_offered`: the request's scope offered the trailers
/// extension, so the start's `trailers` key means something (unread otherwise, as the spec
/// has servers ignore keys of extensions they did not offer).
pub fn response_start(
    message: &Bound<'_, PyDict>,
    trailers_offered: bool,
) -> PyResult<ResponseStart> {
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
    if !status.is_instance_of::<pyo3::types::PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "'status' must be an int, got {}",
            type_name(&status)
        )));
    }
    let status: i64 = status.extract().unwrap_or(i64::MAX); // a huge int is just out of range
    if !(200..=999).contains(&status) {
        return Err(PyValueError::new_err(format!(
            "invalid final HTTP status {status}: must be 200..999"
        )));
    }
    let headers = headers(message)?;
    // RFC 9110 §8.6: Content-Length = 1*DIGIT; several lines must agree.
    let mut declared_length: Option<u64> = None;
    for (_, v) in headers
        .iter()
        .filter(|(n, _)| n == hyper::header::CONTENT_LENGTH)
    {
        let bytes = v.as_bytes();
        let digits = !bytes.is_empty() && bytes.len() <= 19 && bytes.iter().all(u8::is_ascii_digit);
        let parsed = digits
            .then(|| v.to_str().ok()?.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| {
                PyValueError::new_err(format!("invalid content-length header value {v:?}"))
            })?;
        if declared_length.is_some_and(|d| d != parsed) {
            return Err(PyValueError::new_err(
                "conflicting content-length header values",
            ));
        }
        declared_length = Some(parsed);
    }
    Ok(ResponseStart {
        status: status as u16,
        headers,
        declared_length,
        trailers: trailers_offered && flag(message, intern!(py, "trailers"))?,
    })
}

/// A parsed `http.response.trailers`.
pub struct ResponseTrailers {
    /// Validated trailer fields, in the app's order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `more_trailers`: another trailers message follows.
    pub more: bool,
}

/// Parse `http.response.trailers`.
pub fn response_trailers(message: &Bound<'_, PyDict>) -> PyResult<ResponseTrailers> {
    Ok(ResponseTrailers {
        headers: headers(message)?,
        more: flag(message, intern!(message.py(), "more_trailers"))?,
    })
}

/// `path` of `http.response.pathsend` (the pathsend extension): a `str`, as the spec
/// says, or any `os.PathLike` (Starlette passes a `str`; a `Path` costs nothing to accept).
pub fn pathsend_path(message: &Bound<'_, PyDict>) -> PyResult<std::path::PathBuf> {
    let path = message
        .get_item(intern!(message.py(), "path"))?
        .ok_or_else(|| PyValueError::new_err("'http.response.pathsend' needs a 'path'"))?;
    path.extract::<std::path::PathBuf>().map_err(|_| {
        PyTypeError::new_err(format!("'path' must be a str, got {}", type_name(&path)))
    })
}

/// `links` of `http.response.early_hint` (the early hints extension): each a `link` field
/// value, as bytes.
pub fn early_hint_links(message: &Bound<'_, PyDict>) -> PyResult<Vec<HeaderValue>> {
    let Some(links) = message.get_item(intern!(message.py(), "links"))? else {
        return Ok(Vec::new());
    };
    let iter = links
        .try_iter()
        .map_err(|_| PyTypeError::new_err("'links' must be an iterable of bytes"))?;
    let mut out = Vec::new();
    for link in iter {
        let link = link?;
        let bytes = link.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "'links' items must be bytes, got {}",
                type_name(&link)
            ))
        })?;
        out.push(HeaderValue::from_bytes(bytes.as_bytes()).map_err(|_| {
            PyValueError::new_err(format!("invalid link value {}", shown(bytes.as_bytes())))
        })?);
    }
    Ok(out)
}

/// A WebSocket message from the app, fully validated.
pub enum WsMessage {
    /// `websocket.accept`
    Accept {
        /// Chosen subprotocol (a valid header token).
        subprotocol: Option<String>,
        /// Extra handshake headers.
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// `websocket.send` with `text`.
    Text(Bytes),
    /// `websocket.send` with `bytes`.
    Binary(Bytes),
    /// `websocket.close`
    Close {
        /// A code allowed on the wire (RFC 6455 §7.4).
        code: u16,
        /// At most 123 bytes (a close frame's limit), cut on a char boundary.
        reason: String,
    },
    /// `websocket.http.response.start`
    ResponseStart(ResponseStart),
    /// `websocket.http.response.body`
    ResponseBody {
        /// Body bytes.
        body: Bytes,
        /// More parts follow.
        more_body: bool,
    },
}

/// An HTTP token (RFC 9110 §5.6.2): what a subprotocol name must be (RFC 6455 §4.1).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Close codes an endpoint may put on the wire (RFC 6455 §7.4).
fn sendable_close_code(code: i64) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Cut a close reason to the 123 bytes a close frame can carry, on a char boundary.
fn clip_reason(reason: String) -> String {
    if reason.len() <= 123 {
        return reason;
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Parse any app message on a WebSocket; nothing about the socket changes until this has
/// succeeded.
pub fn websocket_message(
    message: &Bound<'_, PyDict>,
    lend_to: Option<&Arc<LoopBridge>>,
) -> PyResult<WsMessage> {
    let py = message.py();
    let kind = message_type(message)?;
    Ok(match kind.to_str()? {
        "websocket.accept" => {
            let subprotocol = match message.get_item(intern!(py, "subprotocol"))? {
                Some(s) if !s.is_none() => {
                    let s: String = s
                        .extract()
                        .map_err(|_| PyTypeError::new_err("'subprotocol' must be a str or None"))?;
                    if !is_token(&s) {
                        return Err(PyValueError::new_err(format!(
                            "invalid WebSocket subprotocol {s:?}: must be an ASCII token"
                        )));
                    }
                    Some(s)
                }
                _ => None,
            };
            let headers = headers(message)?;
            if headers
                .iter()
                .any(|(n, _)| n == hyper::header::SEC_WEBSOCKET_PROTOCOL)
            {
                return Err(PyValueError::new_err(
                    "use 'subprotocol', not a sec-websocket-protocol header, in websocket.accept",
                ));
            }
            WsMessage::Accept {
                subprotocol,
                headers,
            }
        }
        "websocket.send" => {
            let bytes = message
                .get_item(intern!(py, "bytes"))?
                .filter(|v| !v.is_none());
            let text = message
                .get_item(intern!(py, "text"))?
                .filter(|v| !v.is_none());
            match (bytes, text) {
                (Some(b), None) => WsMessage::Binary(extract_bytes(&b, "'bytes'", lend_to)?),
                (None, Some(t)) => {
                    let t = t.cast::<PyString>().map_err(|_| {
                        PyTypeError::new_err("'text' of websocket.send must be a str")
                    })?;
                    WsMessage::Text(body_bytes::utf8_of(t, lend_to)?)
                }
                _ => {
                    return Err(PyValueError::new_err(
                        "websocket.send needs exactly one of 'bytes' or 'text'",
                    ))
                }
            }
        }
        "websocket.close" => {
            let mut code = 1000;
            if let Some(c) = message.get_item(intern!(py, "code"))? {
                if !c.is_none() {
                    if c.is_instance_of::<pyo3::types::PyBool>() {
                        return Err(PyTypeError::new_err(
                            "'code' of websocket.close must be an int",
                        ));
                    }
                    let c: i64 = c.extract().map_err(|_| {
                        PyTypeError::new_err("'code' of websocket.close must be an int")
                    })?;
                    if !sendable_close_code(c) {
                        return Err(PyValueError::new_err(format!(
                            "invalid WebSocket close code {c}"
                        )));
                    }
                    code = c as u16;
                }
            }
            let mut reason = String::new();
            if let Some(r) = message.get_item(intern!(py, "reason"))? {
                if !r.is_none() {
                    reason = clip_reason(r.extract().map_err(|_| {
                        PyTypeError::new_err("'reason' of websocket.close must be a str")
                    })?);
                }
            }
            WsMessage::Close { code, reason }
        }
        "websocket.http.response.start" => {
            WsMessage::ResponseStart(response_start(message, false)?)
        }
        "websocket.http.response.body" => WsMessage::ResponseBody {
            body: body(message, None)?,
            more_body: flag(message, intern!(py, "more_body"))?,
        },
        other => {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "Unexpected ASGI message '{other}' on a WebSocket."
            )))
        }
    })
}

/// Validate a message the way `send()` would, without a connection: returns its type or
/// raises `TypeError`/`ValueError`/`RuntimeError`. For fuzzing and property tests of the
/// conversion code (`protocol` is "http" or "websocket").
#[pyfunction]
pub fn validate_send(protocol: &str, message: Bound<'_, PyAny>) -> PyResult<String> {
    let dict = as_dict(&message)?;
    let kind = message_type(dict)?.to_str()?.to_owned();
    match (protocol, kind.as_str()) {
        ("http", "http.response.start") => {
            response_start(dict, true)?;
        }
        ("http", "http.response.body") => {
            body(dict, None)?;
            flag(dict, intern!(message.py(), "more_body"))?;
        }
        ("http", "http.response.trailers") => {
            response_trailers(dict)?;
        }
        ("http", other) => {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "Unexpected ASGI message '{other}' on HTTP."
            )))
        }
        ("websocket", _) => {
            websocket_message(dict, None)?;
        }
        _ => {
            return Err(PyValueError::new_err(
                "protocol must be 'http' or 'websocket'",
            ))
        }
    }
    Ok(kind)
}
