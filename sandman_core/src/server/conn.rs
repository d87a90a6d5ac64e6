//! One client connection: hyper's HTTP/1 connection plus graceful shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;

use crate::asgi::scope::ConnInfo;
use crate::bridge::Level;
use crate::http::service::{self, INVALID_REQUEST};
use crate::server::shared::ServerShared;

/// Per-connection state shared with the requests on it.
pub struct ConnState {
    /// The server this connection belongs to.
    pub server: Arc<ServerShared>,
    /// Peer and local addresses for the scope.
    pub info: Arc<ConnInfo>,
    /// The `--limit-connections` permit; a WebSocket takes it over when it upgrades.
    pub permit: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
}

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
    info: ConnInfo,
    permit: Option<OwnedSemaphorePermit>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    server.connections.fetch_add(1, Ordering::AcqRel);
    let _open = OpenGuard(server.clone());
    let state = Arc::new(ConnState {
        server: server.clone(),
        info: Arc::new(info),
        permit: std::sync::Mutex::new(permit),
    });
    let settings = &server.settings;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .half_close(false)
        .auto_date_header(false)
        // hyper arms this timer whenever it starts waiting for a request head: after
        // accept and after each response. So it is both the keep-alive idle timeout and the
        // slow-header (slowloris) timeout, and costs no timer of our own per connection.
        .header_read_timeout(
            settings
                .timeout_keep_alive
                .min(settings.header_read_timeout),
        )
        .max_buf_size(settings.max_head_bytes);
    if settings.max_headers != crate::common::limits::DEFAULT_MAX_HEADERS {
        // Only when changed: a non-default count moves hyper's header array to the heap.
        builder.max_headers(settings.max_headers);
    }
    let svc_state = state.clone();
    let svc = service_fn(move |req| service::serve(req, svc_state.clone()));
    let conn = builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);

    let mut shutdown = server.shutdown.subscribe();
    let mut closing = *shutdown.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    if err.is_parse() || err.is_parse_too_large() {
                        server.bridge.log(Level::Warning, INVALID_REQUEST);
                    }
                }
                break;
            }
            changed = shutdown.changed(), if !closing => {
                if changed.is_err() || *shutdown.borrow() {
                    closing = true;
                    // Idle: closes now. Busy: finishes the response with
                    // `connection: close`, then closes (D-PROC-3).
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
