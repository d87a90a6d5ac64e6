//! `sandman_asgi._core`: Sandman's Rust core.
//!
//! Layers, outermost first: `server` (listeners, accept loops, connection lifetime),
//! `http` (hyper's service, bodies), `asgi` (scopes, messages, the response cycle and the
//! Python-facing `receive`/`send`), `bridge` (the one hand-off from IO threads to the event
//! loop), `common` (limits, date cache). Only `asgi::http`, `asgi::scope`, `asgi::message`
//! and `server` (the `CoreServer` class) touch PyO3; only `http` and `server` touch tokio.

#![deny(missing_docs)]

pub mod alloc;
pub mod asgi;
pub mod bridge;
pub mod common;
pub mod http;
pub mod server;
pub mod ws;

use pyo3::prelude::*;

#[global_allocator]
static GLOBAL: alloc::Mimalloc = alloc::Mimalloc;

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<server::CoreServer>()?;
    m.add_class::<asgi::http::HttpCycle>()?;
    m.add_class::<asgi::awaitable::Ready>()?;
    m.add_class::<asgi::task::RequestTask>()?;
    m.add_class::<bridge::wakeups::Flusher>()?;
    m.add_class::<asgi::websocket::WsCycleHandle>()?;
    m.add(
        "ClientDisconnected",
        py.get_type::<asgi::awaitable::ClientDisconnected>(),
    )?;
    m.add_function(pyo3::wrap_pyfunction!(asgi::message::validate_send, m)?)?;
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
