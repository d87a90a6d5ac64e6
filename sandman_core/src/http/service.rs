//! hyper's service: one call per request. Checks what hyper leaves to us, reads small
//! bodies, hands the request to the app side through its exchange and waits for the
//! response head.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::Body;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, Response, Uri, Version};

use crate::common::access::AccessRecord;
use crate::common::limits::EAGER_BODY_LIMIT;
use crate::common::log::Level;
use crate::common::settings::Settings;
use crate::exchange::connection::Connection;
use crate::exchange::connection::InProgress;
use crate::exchange::head::{scope_path, RequestHead};
use crate::exchange::request::RequestExchange;
use crate::exchange::response::Answer;
use crate::http::cached::{self, Consult};
use crate::http::context::ServerContext;
use crate::http::request_body::{self, BodyError, BodyLimits};
use crate::http::response_body::{response, ResponseBody};
use crate::http::static_files;
use crate::http::validate::{self, Refusal};
use crate::http::{h2, proxy};
use crate::ws::handshake;

/// The log line uvicorn writes for a request it refuses.
pub const INVALID_REQUEST: &str = "Invalid HTTP request received.";

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Serve one request on `conn`. The response (`Err`: close without one, as when the app sent
/// an unusable `http.response.start`) comes from the returned future.
///
/// Everything up to handing the request to the app side runs here, synchronously, so a
/// request without a body costs hyper a future of a few words rather than an async state
/// machine: hyper keeps the in-flight future in a per-connection box and moves each new one
/// into it, and the full state machine (every path's locals) was 1.75 KB, copied per request
/// and held per connection. The paths that must wait on something else (a body, a WebSocket
/// handshake) are boxed, and take their own references to the connection.
pub fn serve(req: Request<Incoming>, conn: &Arc<Connection>, ctx: &Arc<ServerContext>) -> Serving {
    Serving {
        in_progress: Some(conn.begin_request(req.method())),
        answer: answer(req, conn, ctx),
    }
}

/// What to answer `req` with, or how to wait for it.
fn answer(req: Request<Incoming>, conn: &Arc<Connection>, ctx: &Arc<ServerContext>) -> Answering {
    let hub = &conn.hub;
    let defaults = &hub.response;
    let settings = &ctx.settings;
    let http = &settings.http;
    let websocket_connect = handshake::is_extended_connect(&req);
    let fields = validate::fields(req.headers());
    let checked = validate::check(
        req.method(),
        req.uri(),
        req.version(),
        req.headers(),
        &fields,
        websocket_connect,
    );
    if let Err(refusal) = checked {
        ctx.log(Level::Warning, INVALID_REQUEST);
        return Answering::ready(match refusal {
            Refusal::BadRequest => Answer::bad_request(defaults),
            Refusal::NotImplemented => Answer::not_implemented(defaults),
        });
    }
    if let Some(limit) = http.limit_concurrency {
        // uvicorn's rule: open connections (this one included) or running requests at the
        // limit -> 503, not queued.
        if hub.connections.load(Ordering::Relaxed) >= limit
            || hub.active_requests.load(Ordering::Relaxed) >= limit
        {
            ctx.log(Level::Warning, "Exceeded concurrency limit.");
            ctx.app.access(AccessRecord::new(
                conn.peer.client.as_ref(),
                req.method().as_str(),
                &scope_path(&http.root_path, req.uri().path()),
                req.uri().query().unwrap_or("").as_bytes(),
                req.version(),
                503,
            ));
            return Answering::ready(Answer::service_unavailable(defaults));
        }
    }

    if handshake::wants_upgrade(&req, websocket_connect, fields.upgrade) {
        if settings.ws.enabled && handshake::is_websocket(&req) {
            // The handshake still needs the request (hyper's upgrade hangs off it): a copy of
            // the head, once per WebSocket.
            let parts = (req.method().clone(), req.version(), req.uri().clone());
            let head = request_head(parts, req.headers().clone(), conn, settings);
            let (conn, ctx) = (conn.clone(), ctx.clone());
            return Answering::boxed(async move { handshake::serve(req, &conn, head, &ctx).await });
        }
        // h2c, unknown protocols, or WebSockets turned off: plain HTTP.
        ctx.log(Level::Warning, "Unsupported upgrade request.");
    }

    // hyper bounds its read buffer, not the head exactly: enforce the documented limit.
    let head_len = req.method().as_str().len()
        + req.uri().path_and_query().map_or(0, |pq| pq.as_str().len())
        + fields.head_len;
    if head_len > http.max_head_bytes {
        ctx.log(Level::Warning, INVALID_REQUEST);
        return Answering::ready(Answer::header_fields_too_large(defaults));
    }
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > http.max_target {
        ctx.log(Level::Warning, INVALID_REQUEST);
        return Answering::ready(Answer::uri_too_long(defaults));
    }
    if let Some(files) = &ctx.statics {
        if let Some(response) = static_files::serve::serve(&req, conn, ctx, files) {
            return Answering::boxed(std::future::ready(Ok(response)));
        }
    }
    let mut tap = None;
    if let Some(cache) = &hub.cache {
        match cached::consult(&req, conn, ctx, cache) {
            Consult::Answered(response) => {
                return Answering::boxed(std::future::ready(Ok(response)));
            }
            Consult::Wait(done) => {
                let (conn, ctx, cache) = (conn.clone(), ctx.clone(), cache.clone());
                return Answering::boxed(async move {
                    let tap = match cached::after_wait(done, &req, &conn, &ctx, &cache).await {
                        Ok(response) => return Ok(response),
                        Err(tap) => tap,
                    };
                    let (parts, _) = req.into_parts();
                    let parts3 = (parts.method, parts.version, parts.uri);
                    let head = request_head(parts3, parts.headers, &conn, &ctx.settings);
                    let exchange = RequestExchange::tapped(conn, head, tap);
                    exchange.preload_body([], 0, true);
                    dispatch(exchange, &ctx).await
                });
            }
            Consult::Dispatch(found) => tap = found,
        }
    }
    let limits = BodyLimits {
        max: http.max_body,
        idle: http.body_read_timeout,
        min_rate: http.body_min_rate,
    };
    if let (Some(max), Some(len)) = (limits.max, req.body().size_hint().exact()) {
        if len > max {
            // Refused before the app runs and before a byte of the body is read.
            return Answering::ready(Answer::payload_too_large(defaults));
        }
    }

    let (parts, incoming) = req.into_parts();
    let head = request_head(
        (parts.method, parts.version, parts.uri),
        parts.headers,
        conn,
        settings,
    );
    let exchange = RequestExchange::tapped(conn.clone(), head, tap);
    if incoming.is_end_stream() {
        exchange.preload_body([], 0, true);
        return dispatch(exchange, ctx);
    }
    let expect = expects_continue(&exchange.head.headers);
    Answering::boxed(read_then_dispatch(
        exchange,
        ctx.clone(),
        incoming,
        limits,
        expect,
    ))
}

/// The request's head, with a trusted proxy's headers applied.
fn request_head(
    (method, version, uri): (Method, Version, Uri),
    headers: HeaderMap,
    conn: &Connection,
    settings: &Settings,
) -> RequestHead {
    let http2 = version == Version::HTTP_2;
    let headers = if http2 {
        h2::headers(&uri, &headers)
    } else {
        headers
    };
    let mut head = RequestHead::new(
        method,
        version,
        &uri,
        headers,
        &settings.http.root_path,
        conn.peer.tls,
    );
    if let Some(trusted) = &settings.http.proxy {
        proxy::apply(&mut head, conn, trusted);
    }
    head
}

/// A request with a body: read it (whole if small, else what arrives within
/// `PREFETCH_BUDGET`, the rest pumped while the app runs), then hand the request over.
async fn read_then_dispatch(
    exchange: Arc<RequestExchange>,
    ctx: Arc<ServerContext>,
    mut incoming: Incoming,
    limits: BodyLimits,
    expect: bool,
) -> Result<Response<ResponseBody>, io::Error> {
    if !expect
        && incoming
            .size_hint()
            .exact()
            .is_some_and(|n| n <= EAGER_BODY_LIMIT)
    {
        match request_body::read_whole(incoming, limits, &exchange.conn.wire).await {
            Ok(data) => {
                let len = data.len();
                exchange.preload_body([data], len, true);
            }
            Err(error) => return refuse_before_app(&exchange, &ctx, error),
        }
        return dispatch(exchange, &ctx).await;
    }
    let mut already_read = 0;
    if expect {
        exchange.read_body_when_asked();
    } else {
        let prefetched = request_body::prefetch(
            &mut incoming,
            limits,
            EAGER_BODY_LIMIT as usize,
            PREFETCH_BUDGET,
        )
        .await;
        match prefetched {
            Ok(read) => {
                already_read = read.len as u64;
                exchange.preload_body(read.chunks, read.len, read.done);
                if read.done {
                    return dispatch(exchange, &ctx).await;
                }
            }
            Err(error) => return refuse_before_app(&exchange, &ctx, error),
        }
    }
    let (pumped, pump_ctx) = (exchange.clone(), ctx.clone());
    tokio::spawn(async move {
        match request_body::pump(pumped.clone(), incoming, limits, already_read).await {
            None => {}
            Some(BodyError::Gone) => pumped.mark_disconnected(),
            Some(error) => reject_body(&pumped, &pump_ctx, error),
        }
    });
    dispatch(exchange, &ctx).await
}

/// How long a streamed body may be read before the app is called (see `prefetch`).
const PREFETCH_BUDGET: std::time::Duration = std::time::Duration::from_millis(2);

/// Hand the request to the app side; the returned future waits for its response head.
fn dispatch(exchange: Arc<RequestExchange>, ctx: &ServerContext) -> Answering {
    ctx.app.start_http(exchange.clone());
    Answering::Waiting(AbandonGuard(Some(exchange)))
}

/// The future hyper holds for one request. The connection counts as busy from the head until
/// the response's body is dropped (`server/idle.rs`), so the guard moves into the body.
pub struct Serving {
    answer: Answering,
    in_progress: Option<InProgress>,
}

impl Future for Serving {
    type Output = Result<Response<ResponseBody>, io::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut result = std::task::ready!(Pin::new(&mut this.answer).poll(cx));
        if let (Ok(response), Some(mut in_progress)) = (&mut result, this.in_progress.take()) {
            in_progress.responded(response.status().as_u16());
            response.body_mut().hold(in_progress);
        }
        Poll::Ready(result)
    }
}

/// A response already decided here, the app's response head awaited, or (boxed) a path
/// that waits on something first.
enum Answering {
    /// Answered without the app (a refusal, a limit); boxed, as it is rare and the
    /// response is most of the size of this future.
    Ready(Option<Box<Answer>>),
    /// Handed to the app side; the guard's exchange delivers the response head.
    Waiting(AbandonGuard),
    /// A body to read or a WebSocket handshake first.
    Boxed(Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, io::Error>> + Send>>),
}

impl Answering {
    fn ready(answer: Answer) -> Answering {
        Answering::Ready(Some(Box::new(answer)))
    }

    fn boxed(
        future: impl Future<Output = Result<Response<ResponseBody>, io::Error>> + Send + 'static,
    ) -> Answering {
        Answering::Boxed(Box::pin(future))
    }
}

impl Future for Answering {
    type Output = Result<Response<ResponseBody>, io::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this {
            Answering::Ready(answer) => Poll::Ready(
                answer
                    .take()
                    .map(|answer| response(*answer, None))
                    .ok_or_else(|| io::Error::other("response already taken")),
            ),
            Answering::Waiting(guard) => {
                let exchange = guard
                    .0
                    .as_ref()
                    .expect("the guard holds its exchange until done");
                let answer = std::task::ready!(exchange.poll_reply(cx));
                // The reply is taken (or abandoned): the guard has nothing left to report.
                let exchange = guard.0.take().expect("checked above");
                *this = Answering::Ready(None);
                Poll::Ready(
                    answer
                        .map(|answer| response(answer, Some(&exchange)))
                        .ok_or_else(|| io::Error::other("response aborted before it started")),
                )
            }
            Answering::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

/// The answer to a request body that could not be read, or `None` when the client is gone
/// and there is no one to answer. Bad framing is logged as uvicorn logs an invalid request.
fn body_refusal(conn: &Connection, ctx: &ServerContext, error: BodyError) -> Option<Answer> {
    let defaults = &conn.hub.response;
    Some(match error {
        BodyError::Malformed => {
            ctx.log(Level::Warning, INVALID_REQUEST);
            Answer::bad_request(defaults)
        }
        BodyError::TooLarge => Answer::payload_too_large(defaults),
        BodyError::Timeout | BodyError::TooSlow => Answer::request_timeout(defaults),
        BodyError::Gone => return None,
    })
}

/// A body failed before the app was called: answer it here, and the app never runs.
fn refuse_before_app(
    exchange: &RequestExchange,
    ctx: &ServerContext,
    error: BodyError,
) -> Result<Response<ResponseBody>, io::Error> {
    exchange.refused_before_app();
    body_refusal(&exchange.conn, ctx, error)
        .map(|answer| response(answer, None))
        .ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionAborted))
}

/// A streamed body went wrong (bad chunk framing 400, over the size limit 413, stalled
/// 408): answer that if the app has not started its response, then treat the request as
/// disconnected so the app stops.
fn reject_body(exchange: &RequestExchange, ctx: &ServerContext, error: BodyError) {
    match body_refusal(&exchange.conn, ctx, error) {
        Some(answer) => exchange.reject(answer),
        None => exchange.mark_disconnected(),
    }
}

/// Dropped with the service future. If hyper drops it before it took the response, the
/// connection is gone: tell the app (see `RequestExchange::abandon_reply`).
struct AbandonGuard(Option<Arc<RequestExchange>>);

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if let Some(exchange) = self.0.take() {
            exchange.abandon_reply();
        }
    }
}

#[cfg(test)]
mod tests {
    /// hyper moves each request's future into a per-connection box: it must stay a few
    /// words (it was 1,752 bytes as an `async fn`; the metrics stamp made it five).
    #[test]
    fn the_per_request_future_stays_small() {
        assert!(std::mem::size_of::<super::Serving>() <= 40);
    }
}
