//! The dicts the app's `receive()` returns.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::exchange::request::Received;
use crate::exchange::websocket::{Inbound, WsReceived};

/// `http.request` or `http.disconnect`.
pub fn http_message(py: Python<'_>, received: Received) -> PyResult<Bound<'_, PyDict>> {
    match received {
        Received::Body(data, more) => {
            let msg = PyDict::new(py);
            msg.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
            msg.set_item(intern!(py, "body"), PyBytes::new(py, &data))?;
            msg.set_item(intern!(py, "more_body"), more)?;
            Ok(msg)
        }
        Received::Disconnect => http_disconnect(py),
    }
}

/// `http.disconnect`.
pub fn http_disconnect(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let msg = PyDict::new(py);
    msg.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?;
    Ok(msg)
}

/// `websocket.connect`.
pub fn websocket_connect(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let msg = PyDict::new(py);
    msg.set_item(intern!(py, "type"), intern!(py, "websocket.connect"))?;
    Ok(msg)
}

/// `websocket.receive` or `websocket.disconnect` (with the spec 2.5 `reason`).
pub fn websocket_message(py: Python<'_>, received: WsReceived) -> PyResult<Bound<'_, PyDict>> {
    let msg = PyDict::new(py);
    match received {
        WsReceived::Message(message) => {
            msg.set_item(intern!(py, "type"), intern!(py, "websocket.receive"))?;
            match message {
                Inbound::Text(text) => {
                    msg.set_item(intern!(py, "text"), PyString::new(py, &text))?
                }
                Inbound::Binary(data) => {
                    msg.set_item(intern!(py, "bytes"), PyBytes::new(py, &data))?
                }
            }
        }
        WsReceived::Disconnect(code, reason) => {
            msg.set_item(intern!(py, "type"), intern!(py, "websocket.disconnect"))?;
            msg.set_item(intern!(py, "code"), code)?;
            msg.set_item(intern!(py, "reason"), reason)?;
        }
    }
    Ok(msg)
}
