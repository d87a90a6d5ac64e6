//! `sandman_asgi._core`: Sandman's Rust core. `ARCHITECTURE.md` (next to `Cargo.toml`)
//! draws the layers and follows one request through them.
//!
//! Outermost first: `server` (listeners, accept, connection lifetime, TLS) drives `http`
//! (HTTP/1.x through hyper) and `ws` (WebSocket framing), which meet the app side only
//! through `exchange` (the Python-free state of one request or WebSocket). `asgi` is the
//! app side, the only code that knows Python shapes; `bridge` carries its events to the
//! event loop thread; `common` is under all of them. This file connects them:
//! [`start_server`] builds the app side, the transport, and the hub they share.

#![deny(missing_docs)]

pub mod asgi;
pub mod bridge;
pub mod common;
pub mod exchange;
pub mod http;
pub mod server;
pub mod ws;

use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::asgi::events::{LoopBridge, LoopSide};
use crate::asgi::server::CoreServer;
use crate::bridge::io_wakeups::IoWakeups;
use crate::exchange::hub::Hub;
use crate::server::{Server, StartError};

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: common::allocator::Mimalloc = common::allocator::Mimalloc;

/// Start a server's IO threads for `settings` (a `sandman_asgi.core_settings.CoreSettings`)
/// and return the object the event loop drives. A TLS setting that cannot work is a
/// `ValueError`, raised before anything runs.
#[pyfunction]
fn start_server(py: Python<'_>, settings: &Bound<'_, PyAny>) -> PyResult<CoreServer> {
    let config = asgi::convert::settings::read(settings)?;
    if config.tune_malloc {
        common::malloc_tuning::tune();
    }
    let bridge = Arc::new(LoopBridge::new().map_err(|e| PyOSError::new_err(e.to_string()))?);
    let hub = Arc::new(
        Hub::new(config.response)
            .with_metrics(config.metrics)
            .with_cache(config.settings.cache_bytes),
    );
    let on_park = {
        let bridge = bridge.clone();
        move || bridge.flush_on_park()
    };
    let server = Server::start(
        config.settings,
        hub.clone(),
        Box::new(LoopSide::new(bridge.clone())),
        bridge::io_thread_unparked,
        on_park,
    )
    .map_err(|e| match e {
        StartError::Tls(message) | StartError::Settings(message) => PyValueError::new_err(message),
        StartError::Io(err) => PyOSError::new_err(err.to_string()),
    })?;
    let io_wakeups = Arc::new(IoWakeups::default());
    server.spawn(io_wakeups.clone().run());
    CoreServer::new(py, config.app, hub, bridge, io_wakeups, Box::new(server))
}

/// Load the certificate and key `tls` (a `sandman_asgi.core_settings.TlsSettings`) names,
/// as the server would: a setting that cannot work is a `ValueError`. Lets the server
/// report a bad certificate before the app's lifespan startup runs.
#[pyfunction]
fn check_tls(tls: asgi::convert::settings::PyTls) -> PyResult<()> {
    server::tls::server_config(&tls.into_settings(), true)
        .map(drop)
        .map_err(PyValueError::new_err)
}

/// The `--metrics-port` listener (`server/metrics_listener.rs`), as Python holds it.
#[pyclass(module = "sandman_asgi._core")]
struct MetricsListener(server::metrics_listener::MetricsListener);

#[pymethods]
impl MetricsListener {
    /// Stop listening (waits for the listener's thread).
    fn close(&mut self, py: Python<'_>) {
        py.detach(|| self.0.close());
    }
}

/// Serve `/metrics`, `/livez` and `/readyz` for `group` on the listening socket `fd` (the
/// caller keeps its own descriptor), on a thread of its own. `/livez` fails when an event
/// loop of the group has not turned for `loop_timeout` seconds.
#[pyfunction]
fn start_metrics_listener(
    fd: i32,
    group: &Bound<'_, asgi::metrics_group::MetricsGroup>,
    loop_timeout: f64,
) -> PyResult<MetricsListener> {
    let timeout = std::time::Duration::try_from_secs_f64(loop_timeout).map_err(|_| {
        PyValueError::new_err(format!("invalid health loop timeout: {loop_timeout}"))
    })?;
    server::metrics_listener::MetricsListener::start(fd, group.get().segment(), timeout)
        .map(MetricsListener)
        .map_err(|e| PyOSError::new_err(e.to_string()))
}

/// Whether the core changed glibc's malloc settings in this process (only under the
/// `sandman` command, or with `SANDMAN_MALLOC_TUNING=1`).
#[pyfunction]
fn malloc_tuned() -> bool {
    common::malloc_tuning::tuned()
}

/// The extension module. Declared GIL-using: nothing has tested it on a free-threaded
/// interpreter, so there it runs with the GIL enabled rather than trusting PyO3's default.
#[pymodule(gil_used = true)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(pyo3::wrap_pyfunction!(start_server, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(check_tls, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(malloc_tuned, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(start_metrics_listener, m)?)?;
    m.add_class::<MetricsListener>()?;
    m.add_class::<asgi::metrics_group::MetricsGroup>()?;
    m.add_class::<CoreServer>()?;
    m.add_class::<asgi::http::HttpCycle>()?;
    m.add_class::<asgi::websocket::WsCycle>()?;
    m.add_class::<asgi::awaitable::Ready>()?;
    m.add_class::<asgi::eager_task::RequestTask>()?;
    m.add_class::<bridge::io_wakeups::Flusher>()?;
    m.add(
        "ClientDisconnected",
        py.get_type::<asgi::awaitable::ClientDisconnected>(),
    )?;
    m.add_function(pyo3::wrap_pyfunction!(
        asgi::convert::send::validate_send,
        m
    )?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "build_profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    Ok(())
}
