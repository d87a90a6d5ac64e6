//! Building the HTTP connection scope (asgi-checklist §1.1) from a parsed request.
//!
//! The IO thread does the string work (percent-decoding, root-path joining) into a
//! [`RequestHead`]; the loop thread turns it into a dict with interned keys under the GIL.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Version};
use percent_encoding::percent_decode;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};

use crate::bridge::{Bridge, Event};
use crate::common::access::AccessRecord;

/// The HTTP/WebSocket sub-spec version we implement. 2.4 promises that `send()` after the
/// client is gone raises an `OSError` subclass ([WWW] "Spec Versions").
pub const HTTP_SPEC_VERSION: &str = "2.4";

/// Where the listening socket is, as the scope's `server` key reports it.
#[derive(Debug, Clone)]
pub enum ServerAddr {
    /// `(host, port)`
    Tcp(String, u16),
    /// `(path, None)` — allowed since spec 2.2.
    Unix(String),
}

/// Per-connection facts every scope on the connection shares.
pub struct ConnInfo {
    /// The peer, `None` on a Unix socket.
    pub client: Option<(String, u16)>,
    /// The local end.
    pub server: Option<ServerAddr>,
    /// `"https"` on TLS connections, else `"http"`.
    pub tls: bool,
    /// The scope's `client` and `server` values, built once per connection (tuples are
    /// immutable, so every scope on the connection can share them).
    pub py_addrs: std::sync::OnceLock<(Py<PyAny>, Py<PyAny>)>,
    /// Whether the peer is a trusted proxy (`--forwarded-allow-ips`), decided on the
    /// first request: the peer and the list cannot change during a connection.
    pub proxy_trusted: std::sync::OnceLock<bool>,
    /// Where `py_addrs` goes when the connection is dropped, usually on an IO thread:
    /// Python objects are released under the GIL. Dropped without it, pyo3 would queue them
    /// in its deferred-release pool, and once that pool exists every call from Python into
    /// Rust locks its mutex (~10 calls and 380 instructions per request, bench/NOTES.md).
    pub release_to: Option<Arc<Bridge>>,
}

impl Drop for ConnInfo {
    fn drop(&mut self) {
        if let (Some((client, server)), Some(bridge)) = (self.py_addrs.take(), &self.release_to) {
            bridge.push(Event::ReleaseAddrs(client, server));
        }
    }
}

impl ConnInfo {
    /// Facts about a new connection.
    pub fn new(client: Option<(String, u16)>, server: Option<ServerAddr>, tls: bool) -> ConnInfo {
        ConnInfo {
            client,
            server,
            tls,
            py_addrs: std::sync::OnceLock::new(),
            proxy_trusted: std::sync::OnceLock::new(),
            release_to: None,
        }
    }

    /// `(client, server)` as scope values, cached.
    fn addrs<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        if let Some((client, server)) = self.py_addrs.get() {
            return Ok((client.bind(py).clone(), server.bind(py).clone()));
        }
        let server = match &self.server {
            Some(ServerAddr::Tcp(host, port)) => addr_tuple(py, host, Some(*port))?,
            Some(ServerAddr::Unix(path)) => addr_tuple(py, path, None)?,
            None => py.None().into_bound(py),
        };
        let client = match &self.client {
            Some((host, port)) => addr_tuple(py, host, Some(*port))?,
            None => py.None().into_bound(py),
        };
        let _ = self
            .py_addrs
            .set((client.clone().unbind(), server.clone().unbind()));
        Ok((client, server))
    }
}

/// A request head, already decoded on the IO thread.
pub struct RequestHead {
    /// Request method.
    pub method: Method,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: Version,
    /// Percent-decoded path, `root_path` prepended.
    pub path: String,
    /// Path bytes as received (no query), `root_path` prepended.
    pub raw_path: Bytes,
    /// Query string as received, without the `?`.
    pub query: Bytes,
    /// Request headers; names arrive lowercased from hyper, values untouched.
    pub headers: HeaderMap,
    /// The client a trusted proxy named (`X-Forwarded-For`), when it named one; otherwise
    /// the scope reports the peer, `conn.client` (see [`RequestHead::client`]), which saves
    /// copying the peer's address for every request.
    pub forwarded_client: Option<(String, u16)>,
    /// Whether the scheme is https/wss (TLS, or a trusted proxy's `X-Forwarded-Proto`).
    pub tls: bool,
    /// The connection this request came on.
    pub conn: Arc<ConnInfo>,
}

/// The scope's `path`: the target's path percent-decoded, `root_path` before it (as uvicorn
/// does since 0.30). Access lines use it too, so they show what the app saw.
pub fn scope_path(root_path: &str, raw: &str) -> String {
    let decoded = percent_decode(raw.as_bytes()).decode_utf8_lossy();
    if root_path.is_empty() {
        return decoded.into_owned();
    }
    let mut path = String::with_capacity(root_path.len() + decoded.len());
    path.push_str(root_path);
    path.push_str(&decoded);
    path
}

/// Copy the raw path (`root_path` before it), the query and every header value into one new
/// buffer, and point the head at it: returns `(raw_path, query)` and rewrites `headers`'
/// values in place.
///
/// hyper parses a request head in its per-connection read buffer, and the target and header
/// values it hands over are slices of that buffer. While any of them lives (until the event
/// loop is done with the request), the buffer is shared, and hyper, which reserves room
/// before every read, including the one that watches for the client going away while the
/// app runs, can only get room by allocating a fresh 8 KiB buffer: one per request, in cold
/// memory, freed later by the other thread. With nothing pointing into it, the buffer is
/// reused from its start (bench/NOTES.md, "hyper's read buffer, reused").
fn detach(root_path: &str, raw: &str, query: &str, headers: &mut HeaderMap) -> (Bytes, Bytes) {
    let values_len: usize = headers.values().map(HeaderValue::len).sum();
    let raw_path_len = root_path.len() + raw.len();
    let mut buf = BytesMut::with_capacity(raw_path_len + query.len() + values_len);
    buf.extend_from_slice(root_path.as_bytes());
    buf.extend_from_slice(raw.as_bytes());
    buf.extend_from_slice(query.as_bytes());
    for value in headers.values() {
        buf.extend_from_slice(value.as_bytes());
    }
    let mut buf = buf.freeze();
    let raw_path = buf.split_to(raw_path_len);
    let query = buf.split_to(query.len());
    // `values_mut` visits the values in the order `values` did: the map is not changed between.
    for value in headers.values_mut() {
        let part = buf.split_to(value.len());
        // The bytes are those of a valid value, so this cannot fail; if it did, the value
        // would keep pointing into hyper's buffer, which costs speed, not correctness.
        if let Ok(mut detached) = HeaderValue::from_maybe_shared(part) {
            detached.set_sensitive(value.is_sensitive());
            *value = detached;
        }
    }
    (raw_path, query)
}

impl RequestHead {
    /// The client as the scope reports it: a trusted proxy's `X-Forwarded-For` hop, or the
    /// peer.
    pub fn client(&self) -> Option<&(String, u16)> {
        self.forwarded_client.as_ref().or(self.conn.client.as_ref())
    }

    /// This request's access-log record, for a response with `status`.
    pub fn access_record(&self, status: u16) -> AccessRecord {
        AccessRecord::new(
            self.client(),
            self.method.as_str(),
            &self.path,
            &self.query,
            self.version,
            status,
        )
    }

    /// Split and decode the request target. `root_path` is prefixed onto both `path` and
    /// `raw_path`, as uvicorn does since 0.30 (asgi-checklist §1.1, D-ASGI-2).
    pub fn new(
        method: Method,
        version: Version,
        uri: &hyper::Uri,
        mut headers: HeaderMap,
        root_path: &str,
        conn: Arc<ConnInfo>,
    ) -> RequestHead {
        let raw = uri.path();
        let path = scope_path(root_path, raw);
        let (raw_path, query) = detach(root_path, raw, uri.query().unwrap_or(""), &mut headers);
        RequestHead {
            method,
            version,
            path,
            raw_path,
            query,
            headers,
            forwarded_client: None,
            tls: conn.tls,
            conn,
        }
    }

    /// Apply `X-Forwarded-For`/`-Proto` if the direct peer is trusted (D-HTTP-13).
    pub fn apply_proxy_headers(&mut self, trusted: &crate::http::proxy::TrustedHosts) {
        let conn = &self.conn;
        let peer_trusted = *conn
            .proxy_trusted
            .get_or_init(|| trusted.contains(conn.client.as_ref().map(|(host, _)| host.as_str())));
        if !peer_trusted {
            return;
        }
        let forwarded = crate::http::proxy::forwarded(trusted, &self.headers);
        if let Some(client) = forwarded.client {
            self.forwarded_client = Some(client);
        }
        if let Some(https) = forwarded.https {
            self.tls = https;
        }
    }
}

/// Scope-wide settings fixed at server start.
pub struct ScopeSettings {
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

/// Build an `http` (asgi-checklist §1.1) or `websocket` (§1.2) scope dict, keys in
/// uvicorn's order.
///
/// The scope starts as a copy of a template that already holds every key: CPython copies
/// such a dict with one `memcpy` of its table, and each per-request value then replaces a
/// value in place. Building it key by key grew the table twice per request; this halved
/// the scope's cost (bench/NOTES.md).
pub fn connection_scope<'py>(
    py: Python<'py>,
    kind: ScopeKind,
    head: &RequestHead,
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
    let (conn_client, server) = head.conn.addrs(py)?;
    scope.set_item(intern!(py, "server"), server)?;
    let client = match &head.forwarded_client {
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
    // (granian shares one; asgi-checklist §4.3).
    let extensions = PyDict::new(py);
    if ws {
        extensions.set_item(intern!(py, "websocket.http.response"), PyDict::new(py))?;
    }
    scope.set_item(intern!(py, "extensions"), extensions)?;
    Ok(scope)
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

    fn conn() -> Arc<ConnInfo> {
        Arc::new(ConnInfo::new(None, None, false))
    }

    #[test]
    fn a_dropped_connection_returns_its_addresses_to_the_loop() {
        Python::initialize();
        let bridge = Arc::new(Bridge::new().unwrap());
        let mut info = ConnInfo::new(
            Some(("127.0.0.1".into(), 5)),
            Some(ServerAddr::Tcp("127.0.0.1".into(), 8000)),
            false,
        );
        info.release_to = Some(bridge.clone());
        let client = Python::attach(|py| {
            let (client, _) = info.addrs(py).unwrap();
            client.unbind()
        });
        let before = Python::attach(|py| client.get_refcnt(py));
        // Dropped off the loop thread, without the GIL, as an IO thread drops it.
        std::thread::spawn(move || drop(info)).join().unwrap();
        let mut events = Vec::new();
        bridge.take(&mut events);
        assert_eq!(events.len(), 1);
        assert!(matches!(events[0], Event::ReleaseAddrs(..)));
        Python::attach(|py| {
            assert_eq!(client.get_refcnt(py), before, "still held by the event");
            drop(events);
            assert_eq!(client.get_refcnt(py), before - 1, "released under the GIL");
        });
    }

    #[test]
    fn path_is_decoded_raw_path_is_not() {
        let uri: hyper::Uri = "/one%2Ftwo/a%20b?x=%20y".parse().unwrap();
        let head = RequestHead::new(
            Method::GET,
            Version::HTTP_11,
            &uri,
            HeaderMap::new(),
            "",
            conn(),
        );
        assert_eq!(head.path, "/one/two/a b");
        assert_eq!(&head.raw_path[..], b"/one%2Ftwo/a%20b");
        assert_eq!(&head.query[..], b"x=%20y");
    }

    #[test]
    fn root_path_prefixes_both() {
        let uri: hyper::Uri = "/one%2Ftwo".parse().unwrap();
        let head = RequestHead::new(
            Method::GET,
            Version::HTTP_11,
            &uri,
            HeaderMap::new(),
            "/app",
            conn(),
        );
        assert_eq!(head.path, "/app/one/two");
        assert_eq!(&head.raw_path[..], b"/app/one%2Ftwo");
        assert!(head.query.is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let uri: hyper::Uri = "/%ff".parse().unwrap();
        let head = RequestHead::new(
            Method::GET,
            Version::HTTP_11,
            &uri,
            HeaderMap::new(),
            "",
            conn(),
        );
        assert_eq!(head.path, "/\u{fffd}");
    }

    #[test]
    fn the_head_keeps_nothing_of_the_read_buffer() {
        // As hyper does: the head is split off the connection's read buffer, and the target
        // and header values are slices of it.
        let mut read_buf = BytesMut::with_capacity(8192);
        read_buf.extend_from_slice(b"/a/b?q=1host: h\r\nx-two: 1x-two: 2");
        let start = read_buf.as_ptr();
        let head_bytes = read_buf.split_to(read_buf.len()).freeze();
        let uri = hyper::Uri::from_maybe_shared(head_bytes.slice(0..8)).unwrap();
        let mut headers = HeaderMap::new();
        let value = |range| HeaderValue::from_maybe_shared(head_bytes.slice(range)).unwrap();
        headers.insert("host", value(14..15));
        headers.append("x-two", value(24..25));
        headers.append("x-two", value(32..33));
        let head = RequestHead::new(Method::GET, Version::HTTP_11, &uri, headers, "/r", conn());
        drop((uri, head_bytes));

        // Unique again: hyper's next reserve reuses the buffer from its start.
        read_buf.reserve(8192);
        assert_eq!(read_buf.as_ptr(), start);

        assert_eq!(&head.raw_path[..], b"/r/a/b");
        assert_eq!(&head.query[..], b"q=1");
        assert_eq!(head.headers["host"], "h");
        let two: Vec<_> = head.headers.get_all("x-two").iter().collect();
        assert_eq!(two, ["1", "2"]);
    }
}
