//! Scope dicts (ASGI HTTP and WebSocket specs, "Connection Scope") from an exchange's head.
//!
//! The IO thread did the string work (percent-decoding, root-path joining) into the
//! exchange's `RequestHead`; here the loop thread turns it into a dict with interned keys
//! under the GIL.

use std::any::Any;
use std::sync::Arc;

use hyper::{HeaderMap, Method, Version};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};

use crate::asgi::events::{LoopBridge, LoopEvent, Released};
use crate::exchange::connection::{Connection, ServerAddr, TlsInfo};
use crate::exchange::head::RequestHead;

/// The HTTP sub-spec version we implement. 2.4 promises that `send()` after the client is
/// gone raises an `OSError` subclass (ASGI spec, "Spec Versions").
pub const HTTP_SPEC_VERSION: &str = "2.4";

/// A connection's scope `client` and `server` values, built once per connection and kept
/// in its `app_data` (tuples are immutable, so every scope on the connection can share
/// them). The connection is usually dropped on an IO thread, without the GIL: the objects
/// go back to the loop through the bridge. Dropped without it, PyO3 would queue them in its
/// deferred-release pool, and once that pool exists every call from Python into Rust locks
/// its mutex (~10 calls and 380 instructions per request).
struct ScopeAddrs {
    objects: Option<(Py<PyAny>, Py<PyAny>)>,
    bridge: Arc<LoopBridge>,
}

impl Drop for ScopeAddrs {
    fn drop(&mut self) {
        if let Some((client, server)) = self.objects.take() {
            self.bridge
                .push(LoopEvent::Release(Released::Addrs(client, server)));
        }
    }
}

/// `(client, server)` as scope values, cached on the connection.
fn addrs<'py>(
    py: Python<'py>,
    conn: &Connection,
    bridge: &Arc<LoopBridge>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let cached = conn
        .app_data
        .get()
        .and_then(|data| (data.as_ref() as &dyn Any).downcast_ref::<ScopeAddrs>())
        .and_then(|addrs| addrs.objects.as_ref());
    if let Some((client, server)) = cached {
        return Ok((client.bind(py).clone(), server.bind(py).clone()));
    }
    let server = match &conn.peer.server {
        Some(ServerAddr::Tcp(host, port)) => addr_tuple(py, host, Some(*port))?,
        Some(ServerAddr::Unix(path)) => addr_tuple(py, path, None)?,
        None => py.None().into_bound(py),
    };
    let client = match &conn.peer.client {
        Some((host, port)) => addr_tuple(py, host, Some(*port))?,
        None => py.None().into_bound(py),
    };
    let _ = conn.app_data.set(Box::new(ScopeAddrs {
        objects: Some((client.clone().unbind(), server.clone().unbind())),
        bridge: bridge.clone(),
    }));
    Ok((client, server))
}

/// Scope-wide settings fixed at server start.
pub struct ScopeSettings {
    /// Where the per-connection address tuples go back to when the connection closes.
    pub bridge: Arc<LoopBridge>,
    /// The lifespan `state` namespace; each scope gets a shallow copy.
    pub state: Py<PyDict>,
    /// Every key of an `http` scope in uvicorn's order, with the values that do not
    /// change per request (see [`connection_scope`]).
    http_template: Py<PyDict>,
    /// The same for `websocket` scopes.
    ws_template: Py<PyDict>,
    /// `asgi` for HTTP scopes; each scope gets a copy.
    http_asgi: Py<PyDict>,
    /// `asgi` for WebSocket scopes; each scope gets a copy.
    ws_asgi: Py<PyDict>,
}

impl ScopeSettings {
    /// `root_path` from `--root-path`; `asgi_version` "3.0", or "2.0" for a wrapped ASGI2
    /// app (as uvicorn reports).
    pub fn new(
        py: Python<'_>,
        root_path: &str,
        asgi_version: &str,
        state: Py<PyDict>,
        bridge: Arc<LoopBridge>,
    ) -> PyResult<ScopeSettings> {
        let asgi = |spec: &str| -> PyResult<Py<PyDict>> {
            let d = PyDict::new(py);
            d.set_item(intern!(py, "version"), asgi_version)?;
            d.set_item(intern!(py, "spec_version"), spec)?;
            Ok(d.unbind())
        };
        let template = |ws: bool| -> PyResult<Py<PyDict>> {
            let d = PyDict::new(py);
            let none = py.None();
            let kind = if ws { "websocket" } else { "http" };
            d.set_item(intern!(py, "type"), PyString::intern(py, kind))?;
            d.set_item(intern!(py, "asgi"), &none)?;
            d.set_item(
                intern!(py, "http_version"),
                version_str(py, Version::HTTP_11),
            )?;
            d.set_item(intern!(py, "server"), &none)?;
            d.set_item(intern!(py, "client"), &none)?;
            let scheme = if ws { "ws" } else { "http" };
            d.set_item(intern!(py, "scheme"), PyString::intern(py, scheme))?;
            if !ws {
                d.set_item(intern!(py, "method"), &none)?;
            }
            d.set_item(intern!(py, "root_path"), root_path)?;
            for key in [
                intern!(py, "path"),
                intern!(py, "raw_path"),
                intern!(py, "query_string"),
                intern!(py, "headers"),
            ] {
                d.set_item(key, &none)?;
            }
            if ws {
                d.set_item(intern!(py, "subprotocols"), &none)?;
            }
            d.set_item(intern!(py, "state"), &none)?;
            d.set_item(intern!(py, "extensions"), &none)?;
            Ok(d.unbind())
        };
        Ok(ScopeSettings {
            bridge,
            state,
            http_template: template(false)?,
            ws_template: template(true)?,
            http_asgi: asgi(HTTP_SPEC_VERSION)?,
            ws_asgi: asgi(WEBSOCKET_SPEC_VERSION)?,
        })
    }
}

fn method_str<'py>(py: Python<'py>, method: &Method) -> Bound<'py, PyString> {
    match *method {
        Method::GET => intern!(py, "GET").clone(),
        Method::POST => intern!(py, "POST").clone(),
        Method::HEAD => intern!(py, "HEAD").clone(),
        Method::PUT => intern!(py, "PUT").clone(),
        Method::DELETE => intern!(py, "DELETE").clone(),
        Method::PATCH => intern!(py, "PATCH").clone(),
        Method::OPTIONS => intern!(py, "OPTIONS").clone(),
        _ => PyString::new(py, method.as_str()),
    }
}

fn version_str<'py>(py: Python<'py>, version: Version) -> Bound<'py, PyString> {
    match version {
        Version::HTTP_10 => intern!(py, "1.0").clone(),
        Version::HTTP_2 => intern!(py, "2").clone(),
        _ => intern!(py, "1.1").clone(),
    }
}

/// The scope's `headers`: a list of `(name, value)` byte tuples in received order (values of
/// one name keep their order; hyper groups names, which the spec allows).
pub fn headers_list<'py>(py: Python<'py>, headers: &HeaderMap) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for (name, value) in headers.iter() {
        let pair = PyTuple::new(
            py,
            [header_name(py, name), PyBytes::new(py, value.as_bytes())],
        )?;
        list.append(pair)?;
    }
    Ok(list)
}

/// The names most requests carry, as shared `bytes` objects (bytes are immutable, so one
/// object serves every scope); anything else is built per request.
fn header_name<'py>(py: Python<'py>, name: &hyper::header::HeaderName) -> Bound<'py, PyBytes> {
    macro_rules! cached {
        ($($lit:literal),* $(,)?) => {
            match name.as_str() {
                $($lit => {
                    static CELL: pyo3::sync::PyOnceLock<Py<PyBytes>> = pyo3::sync::PyOnceLock::new();
                    return CELL.get_or_init(py, || PyBytes::new(py, $lit.as_bytes()).unbind()).bind(py).clone();
                })*
                other => PyBytes::new(py, other.as_bytes()),
            }
        };
    }
    cached!(
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "connection",
        "content-type",
        "content-length",
        "cookie",
        "referer",
        "origin",
        "authorization",
        "cache-control",
        "upgrade-insecure-requests",
        "sec-fetch-site",
        "sec-fetch-mode",
        "sec-fetch-dest",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-request-id",
        "if-none-match",
        "if-modified-since",
        "pragma",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    )
}

/// `client`/`server` style `(host, port)` tuple.
fn addr_tuple<'py>(py: Python<'py>, host: &str, port: Option<u16>) -> PyResult<Bound<'py, PyAny>> {
    let port = match port {
        Some(p) => p.into_bound_py_any(py)?,
        None => py.None().into_bound(py),
    };
    Ok(PyTuple::new(py, [PyString::new(py, host).into_any(), port])?.into_any())
}

/// The WebSocket sub-spec version: 2.5 adds `reason` on `websocket.disconnect`.
pub const WEBSOCKET_SPEC_VERSION: &str = "2.5";

/// Which kind of connection scope to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// `type: "http"`
    Http,
    /// `type: "websocket"`
    WebSocket,
}

/// Build an `http` or `websocket` scope dict, keys in uvicorn's order.
///
/// The scope starts as a copy of a template that already holds every key: CPython copies
/// such a dict with one `memcpy` of its table, and each per-request value then replaces a
/// value in place. Building it key by key grew the table twice per request; this halved
/// the scope's cost.
pub fn connection_scope<'py>(
    py: Python<'py>,
    kind: ScopeKind,
    head: &RequestHead,
    conn: &Connection,
    settings: &ScopeSettings,
) -> PyResult<Bound<'py, PyDict>> {
    let ws = kind == ScopeKind::WebSocket;
    let (template, asgi) = if ws {
        (&settings.ws_template, &settings.ws_asgi)
    } else {
        (&settings.http_template, &settings.http_asgi)
    };
    let scope = template.bind(py).copy()?;
    // Fresh per scope, as every dict in it: an app that mutates one must not see its
    // change in the next request.
    scope.set_item(intern!(py, "asgi"), asgi.bind(py).copy()?)?;
    if head.version != Version::HTTP_11 {
        scope.set_item(intern!(py, "http_version"), version_str(py, head.version))?;
    }
    let (conn_client, server) = addrs(py, conn, &settings.bridge)?;
    scope.set_item(intern!(py, "server"), server)?;
    let client = match head.forwarded_client.as_deref() {
        None => conn_client,
        // A trusted proxy named another client for this request.
        Some((host, port)) => addr_tuple(py, host, Some(*port))?,
    };
    scope.set_item(intern!(py, "client"), client)?;
    match (ws, head.tls) {
        (false, true) => scope.set_item(intern!(py, "scheme"), intern!(py, "https"))?,
        (true, true) => scope.set_item(intern!(py, "scheme"), intern!(py, "wss"))?,
        _ => {} // the template's "http" / "ws"
    }
    if !ws {
        scope.set_item(intern!(py, "method"), method_str(py, &head.method))?;
    }
    scope.set_item(intern!(py, "path"), PyString::new(py, &head.path))?;
    scope.set_item(intern!(py, "raw_path"), PyBytes::new(py, &head.raw_path))?;
    scope.set_item(intern!(py, "query_string"), PyBytes::new(py, &head.query))?;
    scope.set_item(intern!(py, "headers"), headers_list(py, &head.headers)?)?;
    if ws {
        scope.set_item(
            intern!(py, "subprotocols"),
            subprotocols(py, &head.headers)?,
        )?;
    }
    scope.set_item(intern!(py, "state"), settings.state.bind(py).copy()?)?;
    // A fresh dict per scope: middleware that mutates it must not leak into other requests
    // (granian shares one).
    let extensions = if ws {
        let extensions = PyDict::new(py);
        extensions.set_item(intern!(py, "websocket.http.response"), PyDict::new(py))?;
        extensions
    } else {
        http_extensions(py, head.features.trailers, head.features.early_hints)?
    };
    if let Some(info) = &conn.peer.tls_info {
        extensions.set_item(intern!(py, "tls"), tls_extension(py, info)?)?;
    }
    scope.set_item(intern!(py, "extensions"), extensions)?;
    Ok(scope)
}

/// The extensions of an HTTP scope, copied from one of four templates: pathsend on every
/// request, trailers and early hints where the request allows them. One dict copy instead
/// of a dict and a value dict per extension on every request (about 1.5% of a hello-world
/// request's instructions); the values are the empty dicts the spec asks for, shared by
/// every scope: they carry no settings, so there is nothing in them to change.
fn http_extensions(
    py: Python<'_>,
    trailers: bool,
    early_hints: bool,
) -> PyResult<Bound<'_, PyDict>> {
    static TEMPLATES: [pyo3::sync::PyOnceLock<Py<PyDict>>; 4] = [
        pyo3::sync::PyOnceLock::new(),
        pyo3::sync::PyOnceLock::new(),
        pyo3::sync::PyOnceLock::new(),
        pyo3::sync::PyOnceLock::new(),
    ];
    let index = usize::from(trailers) * 2 + usize::from(early_hints);
    let template = TEMPLATES[index].get_or_try_init(py, || -> PyResult<Py<PyDict>> {
        let template = PyDict::new(py);
        let empty = PyDict::new(py);
        // The core streams the file itself (sendfile on plain HTTP/1.1), on every transport.
        template.set_item("http.response.pathsend", &empty)?;
        if trailers {
            template.set_item("http.response.trailers", &empty)?;
        }
        if early_hints {
            template.set_item("http.response.early_hint", &empty)?;
        }
        Ok(template.unbind())
    })?;
    template.bind(py).copy()
}

/// The `tls` extension (ASGI TLS spec): what the connection's handshake settled, with the
/// certificates as PEM. The text is built once per connection.
fn tls_extension<'py>(py: Python<'py>, info: &TlsInfo) -> PyResult<Bound<'py, PyDict>> {
    let text = info.text();
    let tls = PyDict::new(py);
    tls.set_item(intern!(py, "server_cert"), &text.server_cert)?;
    tls.set_item(intern!(py, "client_cert_chain"), &text.client_chain)?;
    tls.set_item(intern!(py, "client_cert_name"), &text.client_name)?;
    // A client certificate that does not verify fails the handshake, so none gets here.
    tls.set_item(intern!(py, "client_cert_error"), py.None())?;
    tls.set_item(intern!(py, "tls_version"), info.version)?;
    tls.set_item(intern!(py, "cipher_suite"), info.cipher_suite)?;
    Ok(tls)
}

/// The subprotocols the client offered, from every `Sec-WebSocket-Protocol` line, in order.
fn subprotocols<'py>(py: Python<'py>, headers: &HeaderMap) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for value in headers.get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL) {
        for token in String::from_utf8_lossy(value.as_bytes()).split(',') {
            let token = token.trim();
            if !token.is_empty() {
                list.append(token)?;
            }
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::settings::ResponseDefaults;
    use crate::exchange::connection::Peer;
    use crate::exchange::hub::Hub;

    #[test]
    fn a_dropped_connection_returns_its_addresses_to_the_loop() {
        Python::initialize();
        let bridge: Arc<LoopBridge> = Arc::new(LoopBridge::new().unwrap());
        let hub = Arc::new(Hub::new(ResponseDefaults::default()));
        let peer = Peer {
            client: Some(("127.0.0.1".into(), 5)),
            server: Some(ServerAddr::Tcp("127.0.0.1".into(), 8000)),
            ..Peer::default()
        };
        let conn = Connection::new(hub, peer, None);
        let client = Python::attach(|py| {
            let (client, _) = addrs(py, &conn, &bridge).unwrap();
            let (again, _) = addrs(py, &conn, &bridge).unwrap();
            assert!(client.is(&again), "built once per connection");
            client.unbind()
        });
        let before = Python::attach(|py| client.get_refcnt(py));
        // Dropped off the loop thread, without the GIL, as an IO thread drops it.
        std::thread::spawn(move || drop(conn)).join().unwrap();
        let mut events = Vec::new();
        bridge.take(&mut events);
        assert_eq!(events.len(), 1);
        assert!(matches!(events[0], LoopEvent::Release(Released::Addrs(..))));
        Python::attach(|py| {
            assert_eq!(client.get_refcnt(py), before, "still held by the event");
            drop(events);
            assert_eq!(client.get_refcnt(py), before - 1, "released under the GIL");
        });
    }
}
