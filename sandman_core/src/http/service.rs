//! hyper's service: one call per request. Checks what hyper leaves to us, reads small bodies,
//! hands the request to the event loop and waits for the app's response head.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::Body;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, Response};

use crate::asgi::cycle::Phase;
use crate::asgi::http::{Reply, RequestShared};
use crate::asgi::scope::{scope_path, RequestHead};
use crate::bridge::{Event, Level};
use crate::common::access::AccessRecord;
use crate::common::limits::EAGER_BODY_LIMIT;
use crate::http::body::{self, BodyError, BodyLimits, ResponseBody};
use crate::http::canned;
use crate::http::validate::{self, Refusal};
use crate::server::conn::ConnState;
use crate::server::conn::InProgress;
use crate::server::shared::ServerShared;
use crate::ws::handshake;

/// The log line uvicorn writes for a request it refuses (D-HTTP-2).
pub const INVALID_REQUEST: &str = "Invalid HTTP request received.";

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Serve one request on `conn`. The response (`Err`: close without one, as when the app sent
/// an unusable `http.response.start`) comes from the returned future.
///
/// Everything up to handing the request to the event loop runs here, synchronously, so a
/// request without a body costs hyper a future of a few words rather than an async state
/// machine: hyper keeps the in-flight future in a per-connection box and moves each new one
/// into it, and the full state machine (every path's locals) was 1.75 KB, copied per request
/// and held per connection. The paths that must wait on something else (a body, a WebSocket
/// handshake) are boxed, and take their own references to the connection.
pub fn serve(req: Request<Incoming>, conn: &Arc<ConnState>) -> Serving {
    Serving {
        in_progress: Some(conn.begin_request()),
        answer: answer(req, conn),
    }
}

/// What to answer `req` with, or how to wait for it.
fn answer(req: Request<Incoming>, conn: &Arc<ConnState>) -> Answer {
    let server = &conn.server;
    let settings = &server.settings;
    if let Err(refusal) = validate::check(req.method(), req.uri(), req.version(), req.headers()) {
        server.bridge.log(Level::Warning, INVALID_REQUEST);
        return Answer::ready(match refusal {
            Refusal::BadRequest => canned::bad_request(settings),
            Refusal::NotImplemented => canned::not_implemented(settings),
        });
    }
    if let Some(limit) = settings.limit_concurrency {
        // uvicorn's rule (D-HTTP-4): open connections (this one included) or running
        // requests at the limit -> 503, not queued.
        if server.connections.load(Ordering::Relaxed) >= limit
            || server.active_requests.load(Ordering::Relaxed) >= limit
        {
            server
                .bridge
                .log(Level::Warning, "Exceeded concurrency limit.");
            let record = AccessRecord::new(
                conn.info.client.as_ref(),
                req.method().as_str(),
                &scope_path(&settings.root_path, req.uri().path()),
                req.uri().query().unwrap_or("").as_bytes(),
                req.version(),
                503,
            );
            server.bridge.push(Event::Access(Box::new(record)));
            return Answer::ready(canned::service_unavailable(settings));
        }
    }

    if handshake::wants_upgrade(&req) {
        if settings.ws.enabled && handshake::is_websocket(&req) {
            let mut head = RequestHead::new(
                req.method().clone(),
                req.version(),
                req.uri(),
                req.headers().clone(),
                &settings.root_path,
                conn.info.clone(),
            );
            if let Some(trusted) = &settings.proxy {
                head.apply_proxy_headers(trusted);
            }
            let conn = conn.clone();
            return Answer::boxed(async move { handshake::serve(req, &conn, head).await });
        }
        // h2c, unknown protocols, or WebSockets turned off: plain HTTP (D-HTTP-11).
        server
            .bridge
            .log(Level::Warning, "Unsupported upgrade request.");
    }

    // hyper bounds its read buffer, not the head exactly: enforce the documented limit.
    let head_len = req.method().as_str().len()
        + req.uri().path_and_query().map_or(0, |pq| pq.as_str().len())
        + req
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if head_len > settings.max_head_bytes {
        server.bridge.log(Level::Warning, INVALID_REQUEST);
        return Answer::ready(canned::header_fields_too_large(settings));
    }
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > settings.max_target {
        server.bridge.log(Level::Warning, INVALID_REQUEST);
        return Answer::ready(canned::uri_too_long(settings));
    }
    let limits = BodyLimits {
        max: settings.max_body,
        idle: settings.body_read_timeout,
    };
    if let (Some(max), Some(len)) = (limits.max, req.body().size_hint().exact()) {
        if len > max {
            // Refused before the app runs and before a byte of the body is read.
            return Answer::ready(canned::payload_too_large(settings));
        }
    }

    let (parts, incoming) = req.into_parts();
    let shared = RequestShared::new(conn.clone(), parts.method == Method::HEAD);
    let expect = expects_continue(&parts.headers);
    let mut head = RequestHead::new(
        parts.method,
        parts.version,
        &parts.uri,
        parts.headers,
        &settings.root_path,
        conn.info.clone(),
    );
    if let Some(trusted) = &settings.proxy {
        head.apply_proxy_headers(trusted);
    }

    if incoming.is_end_stream() {
        shared.lock().body_done = true;
        return dispatch(server, shared, head);
    }
    Answer::boxed(read_then_dispatch(
        server.clone(),
        shared,
        head,
        incoming,
        limits,
        expect,
    ))
}

/// A request with a body: read it (whole if small, else what arrives within
/// `PREFETCH_BUDGET`, the rest pumped while the app runs), then hand the request over.
async fn read_then_dispatch(
    server: Arc<ServerShared>,
    shared: Arc<RequestShared>,
    head: RequestHead,
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
        match body::read_whole(incoming, limits).await {
            Ok(data) => {
                let mut inner = shared.lock();
                inner.body_len = data.len();
                if !data.is_empty() {
                    inner.body.push_back(data);
                }
                inner.body_done = true;
            }
            Err(error) => return refuse_before_app(&shared, error),
        }
        return dispatch(&server, shared, head).await;
    }
    let mut already_read = 0;
    if !expect {
        let prefetched = body::prefetch(
            &mut incoming,
            limits,
            EAGER_BODY_LIMIT as usize,
            PREFETCH_BUDGET,
        )
        .await;
        match prefetched {
            Ok(read) => {
                already_read = read.len as u64;
                let done = read.done;
                {
                    let mut inner = shared.lock();
                    inner.body_len = read.len;
                    inner.body.extend(read.chunks);
                    inner.body_done = done;
                }
                if done {
                    return dispatch(&server, shared, head).await;
                }
            }
            Err(error) => return refuse_before_app(&shared, error),
        }
    }
    shared.lock().body_go = !expect;
    let pumped = shared.clone();
    tokio::spawn(async move {
        match body::pump(pumped.clone(), incoming, limits, already_read).await {
            None => {}
            Some(BodyError::Gone) => pumped.mark_disconnected(),
            Some(error) => reject_body(&pumped, error),
        }
    });
    dispatch(&server, shared, head).await
}

/// How long a streamed body may be read before the app is called (see `body::prefetch`).
const PREFETCH_BUDGET: std::time::Duration = std::time::Duration::from_millis(2);

/// Hand the request to the event loop; the returned future waits for the app's response head.
fn dispatch(server: &ServerShared, shared: Arc<RequestShared>, head: RequestHead) -> Answer {
    shared.lock().reply = Reply::Waiting(None);
    server
        .bridge
        .push(Event::Request(shared.clone(), Box::new(head)));
    Answer::Waiting(AbandonGuard(Some(shared)))
}

/// The future hyper holds for one request. The connection counts as busy from the head until
/// the response's body is dropped (`server/idle.rs`), so the guard moves into the body.
pub struct Serving {
    answer: Answer,
    in_progress: Option<InProgress>,
}

impl Future for Serving {
    type Output = Result<Response<ResponseBody>, io::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut result = std::task::ready!(Pin::new(&mut this.answer).poll(cx));
        if let (Ok(response), Some(in_progress)) = (&mut result, this.in_progress.take()) {
            response.body_mut().hold(in_progress);
        }
        Poll::Ready(result)
    }
}

/// A response already decided here, the app's response head awaited, or (boxed) a path
/// that waits on something first.
enum Answer {
    /// Answered without the app (a refusal, a limit); boxed, as it is rare and the
    /// response is most of the size of this future.
    Ready(Option<Box<Response<ResponseBody>>>),
    /// Handed to the event loop; the guard's request delivers the response head.
    Waiting(AbandonGuard),
    /// A body to read or a WebSocket handshake first.
    Boxed(Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, io::Error>> + Send>>),
}

impl Answer {
    fn ready(response: Response<ResponseBody>) -> Answer {
        Answer::Ready(Some(Box::new(response)))
    }

    fn boxed(
        future: impl Future<Output = Result<Response<ResponseBody>, io::Error>> + Send + 'static,
    ) -> Answer {
        Answer::Boxed(Box::pin(future))
    }
}

impl Future for Answer {
    type Output = Result<Response<ResponseBody>, io::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this {
            Answer::Ready(response) => Poll::Ready(
                response
                    .take()
                    .map(|response| *response)
                    .ok_or_else(|| io::Error::other("response already taken")),
            ),
            Answer::Waiting(guard) => {
                let shared = guard
                    .0
                    .as_ref()
                    .expect("the guard holds its request until done");
                let response = std::task::ready!(shared.poll_reply(cx));
                // The reply is taken (or abandoned): the guard's drop has nothing to report.
                *this = Answer::Ready(None);
                Poll::Ready(
                    response.ok_or_else(|| io::Error::other("response aborted before it started")),
                )
            }
            Answer::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

/// The answer to a request body that could not be read, or `None` when the client is gone
/// and there is no one to answer. Bad framing is logged as uvicorn logs an invalid request.
fn body_refusal(server: &ServerShared, error: BodyError) -> Option<Response<ResponseBody>> {
    let settings = &server.settings;
    Some(match error {
        BodyError::Malformed => {
            server.bridge.log(Level::Warning, INVALID_REQUEST);
            canned::bad_request(settings)
        }
        BodyError::TooLarge => canned::payload_too_large(settings),
        BodyError::Timeout => canned::request_timeout(settings),
        BodyError::Gone => return None,
    })
}

/// A body failed before the app was called: answer it here, and the app never runs.
fn refuse_before_app(
    shared: &RequestShared,
    error: BodyError,
) -> Result<Response<ResponseBody>, io::Error> {
    shared.lock().finished = true;
    body_refusal(shared.server(), error)
        .ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionAborted))
}

/// A streamed body went wrong (bad chunk framing 400, over the size limit 413, stalled
/// 408): answer that if the app has not started its response, then treat the request as
/// disconnected so the app stops.
fn reject_body(shared: &Arc<RequestShared>, error: BodyError) {
    let Some(response) = body_refusal(shared.server(), error) else {
        return shared.mark_disconnected();
    };
    {
        let mut inner = shared.lock();
        if inner.cycle.phase() == Phase::AwaitingStart {
            if let Some(w) = inner.reply.deliver(response) {
                w.wake();
            }
        }
    }
    shared.mark_disconnected();
}

/// Dropped with the service future. If hyper drops it before it took the response, the
/// connection is gone: tell the app. That includes a response that was ready but not yet
/// taken (the client left between the app's `http.response.start` and the IO thread's next
/// poll): its streamed body holds the request, so left in place it would keep it alive and
/// leave an app blocked on a full response queue waiting forever.
struct AbandonGuard(Option<Arc<RequestShared>>);

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            let (gone, untaken) = {
                let mut inner = shared.lock();
                match inner.reply {
                    Reply::Waiting(_) => (true, None),
                    Reply::Ready(_) => (
                        true,
                        Some(std::mem::replace(&mut inner.reply, Reply::Abandoned)),
                    ),
                    Reply::Abandoned | Reply::Taken => (false, None),
                }
            };
            // Dropped outside the lock: a streamed body's drop takes it again.
            drop(untaken);
            if gone {
                shared.mark_disconnected();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// hyper moves each request's future into a per-connection box: it must stay a few
    /// words (it was 1,752 bytes as an `async fn`; bench/NOTES.md).
    #[test]
    fn the_per_request_future_stays_small() {
        assert!(std::mem::size_of::<super::Serving>() <= 32);
    }
}
