//! One client connection: hyper's HTTP/1 or HTTP/2 connection, its idle timeout and
//! graceful shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;

use crate::common::limits::{DEFAULT_MAX_HEADERS, MIN_HEAD_BYTES};
use crate::common::log::Level;
use crate::common::metrics::recorder::ConnectionKind;
use crate::exchange::connection::Connection;
use crate::exchange::hub::Hub;
use crate::http::service::{self, INVALID_REQUEST};
use crate::server::client_io::{ClientIo, Speaks};
use crate::server::idle::{Idle, IdleTimeout};
use crate::server::park::{ParkIo, ParkState};
use crate::server::ServerShared;

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

/// Counts the connection as open for as long as its task lives (and, with metrics on, as
/// an open connection of its kind).
struct OpenGuard(Arc<Hub>, ConnectionKind);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        if let Some(metrics) = &self.0.metrics {
            metrics.connection_closed(self.1);
        }
    }
}

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x only (`--http h11`, or TLS whose ALPN chose `http/1.1` or nothing).
    Http1,
    /// HTTP/2 only (TLS whose ALPN chose `h2`).
    Http2,
    /// Either, told apart by the HTTP/2 connection preface (plain TCP: h2c with prior
    /// knowledge; an HTTP/1.1 client sees no difference).
    Detect,
}

/// Why a connection ended in error.
type ConnectionError = Box<dyn std::error::Error + Send + Sync>;

/// Serve an accepted stream with `protocol` until the client leaves, the keep-alive timer
/// fires on an idle connection, or the server shuts down.
pub async fn serve<IO>(
    io: IO,
    state: Arc<Connection>,
    server: Arc<ServerShared>,
    protocol: Protocol,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let hub = &state.hub;
    hub.connections.fetch_add(1, Ordering::AcqRel);
    let kind = match protocol {
        Protocol::Http2 => ConnectionKind::Http2,
        // A detected connection is most likely HTTP/1.1 (a Unix socket, a partial preface).
        Protocol::Http1 | Protocol::Detect => ConnectionKind::Http1,
    };
    if let Some(metrics) = &hub.metrics {
        metrics.connection_opened(kind);
    }
    let _open = OpenGuard(hub.clone(), kind);
    let registration = server.registry.register(state.clone());
    if hub.shutting_down() {
        state.control.close();
    }
    let settings = &server.ctx.settings.http;
    let (svc_state, svc_ctx) = (state.clone(), server.ctx.clone());
    let mut svc = service_fn(move |req| service::serve(req, &svc_state, &svc_ctx));
    // The wait for a request head (after accept and after each response) is timed here, one
    // timer per connection: it is both the keep-alive idle timeout and the slow-header
    // (slowloris) timeout.
    let wait = settings
        .timeout_keep_alive
        .min(settings.header_read_timeout);
    let speaks = match (protocol, &settings.http2) {
        (Protocol::Http1, _) | (_, None) => Speaks::Http1,
        (Protocol::Http2, _) => Speaks::Http2,
        (Protocol::Detect, _) => Speaks::Unknown,
    };
    let io = ClientIo::new(io, state.clone(), speaks);
    let result = match (protocol, &settings.http2) {
        (Protocol::Http1, _) | (_, None) => {
            let mut idle = IdleTimeout::with_park(wait, Some(settings.park_after));
            let mut builder = http1::Builder::new();
            configure_http1!(&mut builder, settings);
            let park = Arc::new(ParkState::default());
            let mut io = ParkIo::new(io, park.clone());
            loop {
                // Boxed: the task's future stays small while the connection is parked.
                let mut conn = Box::pin(
                    builder
                        .serve_connection(TokioIo::new(io), svc)
                        .with_upgrades(),
                );
                let ended = drive(
                    conn.as_mut(),
                    |c| c.graceful_shutdown(),
                    &state,
                    &mut idle,
                    Some(&park),
                )
                .await;
                match ended {
                    Ended::Parked => {}
                    Ended::Done(result) => break result,
                }
                // Only an upgraded connection has no parts, and that one is not parked.
                let Some(parts) = Pin::into_inner(conn).into_parts() else {
                    break Ok(());
                };
                hub.parks.fetch_add(1, Ordering::Relaxed);
                (io, svc) = (parts.io.into_inner(), parts.service);
                if !io.parked(parts.read_buf) && !io.wait(&mut idle, &state).await {
                    break Ok(());
                }
            }
        }
        (protocol, Some(h2)) => {
            // Boxed, as the connection below: HTTP/2's builder and state would make every
            // connection's task future larger, parked HTTP/1.1 ones included.
            let mut builder = Box::new(auto::Builder::new(hyper_util::rt::TokioExecutor::new()));
            configure_http1!(&mut builder.http1(), settings);
            let mut http2 = builder.http2();
            http2
                .timer(TokioTimer::new())
                .auto_date_header(false)
                .max_concurrent_streams(h2.max_concurrent_streams)
                .max_header_list_size(h2.max_header_list_size);
            if server.ctx.settings.ws.enabled {
                // RFC 8441: WebSockets over HTTP/2 by extended CONNECT.
                http2.enable_connect_protocol();
            }
            let builder = if protocol == Protocol::Http2 {
                Box::new((*builder).http2_only())
            } else {
                builder
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
            let mut idle = IdleTimeout::new(wait);
            let mut conn = Box::pin(conn);
            let ended = drive(
                conn.as_mut(),
                |c| c.graceful_shutdown(),
                &state,
                &mut idle,
                None,
            );
            match ended.await {
                Ended::Done(result) => result,
                Ended::Parked => unreachable!("parking is for HTTP/1.1 only"),
            }
        }
    };
    server.registry.unregister(registration);
    // A WebSocket keeps the connection's state: it must not keep this ended task too.
    state.control.forget_task();
    if let Err(err) = result {
        let parse_error = err
            .downcast_ref::<hyper::Error>()
            .is_some_and(|e| e.is_parse() || e.is_parse_too_large());
        if parse_error {
            server.ctx.log(Level::Warning, INVALID_REQUEST);
        }
    }
}

/// hyper's HTTP/1 settings, the same whether the connection is HTTP/1-only or detected.
macro_rules! configure_http1 {
    ($builder:expr, $settings:expr) => {{
        let builder = $builder;
        builder
            .timer(TokioTimer::new())
            .keep_alive(true)
            // hyper reads during a request to notice a client that leaves (a reset fails
            // the connection); a plain FIN is held back from it by `ClientIo`, so a client
            // that half-closes after its request still gets the response.
            .half_close(false)
            .auto_date_header(false)
            // Waiting for a request head is timed by `serve`'s `IdleTimeout`, one timer per
            // connection; hyper's would arm a timer per request.
            .header_read_timeout(None)
            // Room for twice the head limit (hyper's buffer cannot go below 8 KiB): the
            // exact limit is checked in the service, so a head just over it gets our 431
            // (and a long target our 414) whatever size the reads happened to come in.
            .max_buf_size(($settings.max_head_bytes * 2).max(MIN_HEAD_BYTES));
        if $settings.max_headers != DEFAULT_MAX_HEADERS {
            // Only when changed: a non-default count moves hyper's header array to the heap.
            builder.max_headers($settings.max_headers);
        }
    }};
}
use configure_http1;

/// How [`drive`] ended.
enum Ended {
    /// The connection is over.
    Done(Result<(), ConnectionError>),
    /// hyper's connection ended to park the socket (`server/park.rs`).
    Parked,
}

/// Poll the connection to its end, with the idle timeout and graceful shutdown
/// (`graceful_shutdown`: stop taking requests, HTTP/2's GOAWAY, and end once those in
/// flight are done); with `park`, an HTTP/1.1 connection idle for the timer's `park_after`
/// is ended for parking instead.
async fn drive<C, T, E>(
    mut conn: Pin<&mut C>,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    state: &Connection,
    idle: &mut IdleTimeout,
    park: Option<&ParkState>,
) -> Ended
where
    C: Future<Output = Result<T, E>>,
    E: Into<ConnectionError>,
{
    let mut closing = false;
    let accepted_ms = state.activity.idle_since_ms();
    // Set when a close is asked for before any request: `FIRST_REQUEST_GRACE`.
    let mut first_request_grace: Option<Pin<Box<Sleep>>> = None;
    // The waker last given to the close control: registering costs two atomic operations on
    // a shared cache line, and a task's waker does not change from one poll to the next.
    let mut registered: Option<Waker> = None;
    std::future::poll_fn(|cx| {
        let control = &state.control;
        if !closing && control.requested() {
            let wait_for_first_request = state.activity.unused_since(accepted_ms) && {
                let grace = first_request_grace
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(FIRST_REQUEST_GRACE)));
                grace.as_mut().poll(cx).is_pending()
            };
            if !wait_for_first_request {
                closing = true;
                // Idle: closes now. Busy: finishes the response with `connection: close`
                // (HTTP/2: GOAWAY, streams in flight finish), then closes, as uvicorn does.
                graceful_shutdown(conn.as_mut());
            }
        }
        if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            control.register(cx.waker());
            registered = Some(cx.waker().clone());
        }
        loop {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(match (result, park) {
                    (Ok(_), Some(park)) if park.parking() => Ended::Parked,
                    (result, _) => Ended::Done(result.map(drop).map_err(Into::into)),
                });
            }
            if state.wire.read_closed() && !state.activity.busy() {
                // The client half-closed during the request that just ended: let hyper
                // read the end of the stream now (`server/client_io.rs`).
                state.wire.release_read();
            }
            match idle.poll(&state.activity, cx) {
                // Dropping the connection closes it, as hyper's header timeout did: no
                // response, nothing logged.
                Some(Idle::Expired) => return Poll::Ready(Ended::Done(Ok(()))),
                // Idle after a request: hyper ends an idle connection at once, and polling
                // it again lets it.
                Some(Idle::Park) if !closing && state.activity.served() => match park {
                    Some(park) if park.begin() => graceful_shutdown(conn.as_mut()),
                    Some(_) => idle.park_later(),
                    None => return Poll::Pending,
                },
                _ => return Poll::Pending,
            }
        }
    })
    .await
}
