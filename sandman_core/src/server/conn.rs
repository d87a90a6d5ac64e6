//! One client connection: hyper's HTTP/1 connection plus the keep-alive timer and graceful
//! shutdown.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

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
    /// Requests whose response hyper has not finished taking.
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when the connection last became idle.
    idle_since_ms: AtomicU64,
    epoch: Instant,
}

impl ConnState {
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.epoch.elapsed().saturating_sub(since))
    }
}

/// Marks a connection busy from the start of a request until its response body is dropped.
pub struct BusyGuard(Arc<ConnState>);

impl BusyGuard {
    /// Mark `conn` busy.
    pub fn new(conn: Arc<ConnState>) -> BusyGuard {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        BusyGuard(conn)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let ms = self.0.epoch.elapsed().as_millis() as u64;
        self.0.idle_since_ms.store(ms, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
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
pub async fn serve<IO>(io: IO, server: Arc<ServerShared>, info: ConnInfo)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    server.connections.fetch_add(1, Ordering::AcqRel);
    let _open = OpenGuard(server.clone());
    let state = Arc::new(ConnState {
        server: server.clone(),
        info: Arc::new(info),
        in_flight: AtomicUsize::new(0),
        idle_since_ms: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let settings = &server.settings;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .half_close(false)
        .auto_date_header(false)
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_head_bytes);
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
    let keep_alive = settings.timeout_keep_alive;
    let idle_timer = tokio::time::sleep(keep_alive);
    tokio::pin!(idle_timer);

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
            () = &mut idle_timer, if !closing => {
                match state.idle_for() {
                    Some(idle) if idle >= keep_alive => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Some(idle) => {
                        idle_timer.as_mut().reset(tokio::time::Instant::now() + (keep_alive - idle));
                    }
                    None => {
                        idle_timer.as_mut().reset(tokio::time::Instant::now() + keep_alive);
                    }
                }
            }
        }
    }
}
