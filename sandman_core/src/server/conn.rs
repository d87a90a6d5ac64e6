//! One client connection: hyper's HTTP/1 connection plus graceful shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use futures::task::AtomicWaker;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

use crate::asgi::scope::ConnInfo;
use crate::bridge::Level;
use crate::http::service::{self, INVALID_REQUEST};
use crate::server::idle::{Activity, IdleTimeout};
use crate::server::shared::ServerShared;

/// Per-connection state shared with the requests on it.
///
/// One allocation on purpose: every request reads the close flag and updates the activity
/// count, and at 1,000 connections each separate allocation was one more cache miss per
/// request (bench/NOTES.md, "hyper's read buffer, reused").
pub struct ConnState {
    /// The server this connection belongs to.
    pub server: Arc<ServerShared>,
    /// Peer and local addresses for the scope.
    pub info: Arc<ConnInfo>,
    /// The `--limit-connections` permit; a WebSocket takes it over when it upgrades.
    pub permit: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
    /// Asks the connection to close after the response in flight.
    pub control: CloseControl,
    /// Requests in progress, for the idle timeout (`server/idle.rs`).
    pub activity: Activity,
}

impl ConnState {
    /// A request head was parsed: the connection counts as busy until the guard is dropped.
    pub fn begin_request(self: &Arc<Self>) -> InProgress {
        self.activity.begin();
        InProgress(self.clone())
    }
}

/// One request in progress, from its parsed head until hyper drops its response body.
pub struct InProgress(Arc<ConnState>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.activity.end();
    }
}

/// "Close this connection once the current response is out": set by server shutdown (for
/// every connection) or by the app cycle (an app that returned a value). Checked on each
/// poll of the connection with one atomic load; the waker is registered once per task.
#[derive(Default)]
pub struct CloseControl {
    close: AtomicBool,
    waker: AtomicWaker,
}

impl CloseControl {
    /// Request the close and wake the connection's task.
    pub fn close(&self) {
        self.close.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// How long a connection that has not sent a request yet may take to send its first one
/// once the server is shutting down.
///
/// A connection accepted just as shutdown began (with `--workers`, the moment a rolling
/// restart retires a worker) usually has its request in the socket already, unread. hyper's
/// graceful shutdown closes a connection it has read nothing from as idle, which drops that
/// request: the client sees the connection close without a response, on a connection it
/// had every reason to trust. So such a connection is given this long for a request to
/// begin; the request is served with `connection: close`, and a client that sends nothing
/// is closed when the grace ends. Keep-alive connections between requests still close at
/// once, as uvicorn's do: a client expects that of a reused connection.
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

/// Counts the connection as open for as long as its task lives.
struct OpenGuard(Arc<ServerShared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serve HTTP/1.x on an accepted stream until the client leaves, the keep-alive timer
/// fires on an idle connection, or the server shuts down.
pub async fn serve<IO>(
    io: IO,
    server: Arc<ServerShared>,
    mut info: ConnInfo,
    permit: Option<OwnedSemaphorePermit>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    server.connections.fetch_add(1, Ordering::AcqRel);
    let _open = OpenGuard(server.clone());
    info.release_to = Some(server.bridge.clone());
    let state = Arc::new(ConnState {
        server: server.clone(),
        info: Arc::new(info),
        permit: std::sync::Mutex::new(permit),
        control: CloseControl::default(),
        activity: Activity::new(),
    });
    let registration = server.connection_registry.register(state.clone());
    if *server.shutdown.borrow() {
        state.control.close();
    }
    let settings = &server.settings;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .half_close(false)
        .auto_date_header(false)
        // Waiting for a request head (after accept and after each response) is timed by
        // `idle` below, one timer per connection: it is both the keep-alive idle timeout and
        // the slow-header (slowloris) timeout. hyper's would arm a timer per request.
        .header_read_timeout(None)
        // hyper's buffer cannot go below 8 KiB; the exact limit is checked in the service.
        .max_buf_size(
            settings
                .max_head_bytes
                .max(crate::common::limits::MIN_HEAD_BYTES),
        );
    if settings.max_headers != crate::common::limits::DEFAULT_MAX_HEADERS {
        // Only when changed: a non-default count moves hyper's header array to the heap.
        builder.max_headers(settings.max_headers);
    }
    let svc_state = state.clone();
    let svc = service_fn(move |req| service::serve(req, &svc_state));
    let conn = builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);

    let mut idle = IdleTimeout::new(
        settings
            .timeout_keep_alive
            .min(settings.header_read_timeout),
    );
    let mut closing = false;
    let accepted_ms = state.activity.idle_since_ms();
    // Set when a close is asked for before any request: `FIRST_REQUEST_GRACE`.
    let mut first_request_grace: Option<Pin<Box<Sleep>>> = None;
    // The waker last given to the close control: registering costs two atomic operations on
    // a shared cache line, and a task's waker does not change from one poll to the next.
    let mut registered: Option<Waker> = None;
    let result = std::future::poll_fn(|cx| {
        let control = &state.control;
        if !closing && control.close.load(Ordering::Acquire) {
            let wait_for_first_request = state.activity.unused_since(accepted_ms) && {
                let grace = first_request_grace
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(FIRST_REQUEST_GRACE)));
                grace.as_mut().poll(cx).is_pending()
            };
            if !wait_for_first_request {
                closing = true;
                // Idle: closes now. Busy: finishes the response with `connection: close`,
                // then closes (D-PROC-3).
                conn.as_mut().graceful_shutdown();
            }
        }
        if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            control.waker.register(cx.waker());
            registered = Some(cx.waker().clone());
        }
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        if idle.poll_expired(&state.activity, cx) {
            // Dropping the connection closes it, as hyper's header timeout did: no
            // response, nothing logged.
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    })
    .await;
    server.connection_registry.unregister(registration);
    if let Err(err) = result {
        if err.is_parse() || err.is_parse_too_large() {
            server.bridge.log(Level::Warning, INVALID_REQUEST);
        }
    }
}

/// The open connections, so shutdown can ask every one of them to close.
#[derive(Default)]
pub struct ConnectionRegistry {
    next: std::sync::atomic::AtomicU64,
    conns: std::sync::Mutex<std::collections::HashMap<u64, Arc<ConnState>>>,
}

impl ConnectionRegistry {
    fn register(&self, conn: Arc<ConnState>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, conn);
        id
    }

    fn unregister(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Ask every open connection to close after its response in flight.
    pub fn close_all(&self) {
        let conns: Vec<_> = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for conn in conns {
            conn.control.close();
        }
    }
}
