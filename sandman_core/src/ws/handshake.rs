//! The upgrade request: recognising it, letting the app decide, answering it.

use std::io;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use yawc::{DeflateOptions, DeflatePool, Options, WebSocket, WebSocketError};

use crate::common::settings::WsSettings;
use crate::exchange::connection::Connection;
use crate::exchange::head::RequestHead;
use crate::exchange::response::Answer;
use crate::exchange::websocket::{Decision, WsExchange};
use crate::http::context::ServerContext;
use crate::http::response_body::{response, ResponseBody};
use crate::ws::connection;
use crate::ws::park::ParkableWs;

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// A request that asks to switch protocols at all (`Connection: upgrade` + `Upgrade`, or an
/// HTTP/2 extended CONNECT). The caller has already told both apart from the rest: whether
/// it is an `extended_connect` ([`is_extended_connect`]), and whether the request has an
/// `Upgrade` field (`http/validate.rs`'s walk over the fields).
pub fn wants_upgrade(req: &Request<Incoming>, extended_connect: bool, has_upgrade: bool) -> bool {
    extended_connect || (has_upgrade && has_token(req.headers(), header::CONNECTION, "upgrade"))
}

/// An HTTP/2 extended CONNECT opening a WebSocket (RFC 8441 §4: `:protocol websocket`).
pub fn is_extended_connect(req: &Request<Incoming>) -> bool {
    req.method() == Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// An HTTP/1.1 GET asking for `Upgrade: websocket` (RFC 6455 §4.2.1), or its HTTP/2 form.
pub fn is_websocket(req: &Request<Incoming>) -> bool {
    if req.version() == Version::HTTP_2 {
        return is_extended_connect(req);
    }
    req.method() == Method::GET
        && req.version() == Version::HTTP_11
        && has_token(req.headers(), header::UPGRADE, "websocket")
        && has_token(req.headers(), header::CONNECTION, "upgrade")
}

/// Read and write buffer size per WebSocket (see `options`).
const WS_BUFFER_BYTES: usize = 64 * 1024 + 1024;

/// Idle compressors and decompressors kept for reuse, per window size. A message is
/// compressed or inflated within one poll of its socket's task, so no more are in use at
/// once than there are IO threads; the rest are dropped when handed back.
const DEFLATE_POOL_SIZE: usize = 8;

/// The deflate state shared by every socket without context takeover: it is borrowed for
/// one message and handed back, so an idle socket holds none (zlib-rs's deflate state is
/// ~265 KB at a 4 KiB window, its inflate state ~47 KB; docs/memory.md).
fn deflate_pool() -> &'static DeflatePool {
    static POOL: std::sync::OnceLock<DeflatePool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| DeflatePool::new(DEFLATE_POOL_SIZE))
}

/// Whether the client's permessage-deflate offer names `client_max_window_bits` (yawc
/// reads the first `Sec-WebSocket-Extensions` value).
fn offers_client_window(headers: &HeaderMap) -> bool {
    headers
        .get(header::SEC_WEBSOCKET_EXTENSIONS)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|offer| offer.contains("client_max_window_bits"))
}

/// yawc options from the server's `--ws-*` settings; `client_window`: the client offered
/// `client_max_window_bits`.
pub fn options(ws: &WsSettings, client_window: bool) -> Options {
    // yawc's limits are exclusive; uvicorn's --ws-max-size is the largest allowed message.
    let limit = ws.max_size.saturating_add(1);
    let mut options = Options::default()
        .with_utf8()
        .with_no_delay()
        .with_limits(limit, limit)
        // yawc grows its buffers for a bigger frame and shrinks them right after; a stream
        // of 64 KiB messages through 8 KiB buffers then reallocates (into cold memory) on
        // every message. Buffers that hold a 64 KiB frame cost ~130 KiB per socket while
        // it is in use; an idle socket gives them back (ws/park.rs).
        .with_read_buffer_capacity(WS_BUFFER_BYTES)
        .with_write_buffer_capacity(WS_BUFFER_BYTES);
    if !ws.per_message_deflate {
        return options.without_compression();
    }
    // zlib's default level and a 2^bits window (`--ws-deflate-window-bits`, 12 by default
    // as uvicorn's websockets). RFC 7692 §7.1.2.2: client_max_window_bits is answered only
    // when the client offered it.
    let mut deflate = DeflateOptions::balanced();
    deflate.server_max_window_bits = Some(ws.deflate_window_bits);
    deflate.client_max_window_bits = client_window.then_some(ws.deflate_window_bits);
    // Empty messages go out uncompressed (RFC 7692 §6 allows any message to): yawc's
    // flush waits for the sync marker, which zlib does not write again for a flush
    // with no new input, so compressing an empty message after any other spun the IO
    // thread for ever (found by the websocket_frames fuzz target).
    deflate.compression_threshold = 1;
    if !ws.deflate_context_takeover {
        // RFC 7692 §7.1.1: a server may require no context takeover in both directions
        // even when the client did not offer it. Each message is then compressed on its
        // own, and the state for it comes from the pool and goes back.
        deflate.server_no_context_takeover = true;
        deflate.client_no_context_takeover = true;
        deflate.pool = Some(deflate_pool().clone());
    }
    options.compression = Some(deflate);
    options
}

/// A refused handshake: 400, or 426 naming the version we speak.
fn refusal(conn: &Connection, status: StatusCode) -> Response<ResponseBody> {
    let text = match status {
        StatusCode::UPGRADE_REQUIRED => "Unsupported WebSocket version",
        _ => "Invalid WebSocket handshake",
    };
    let mut answer = Answer::plain(&conn.hub.response, status, text);
    if status == StatusCode::UPGRADE_REQUIRED {
        answer.headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    response(answer, None)
}

/// Run the handshake: ask the app (via `websocket.connect`), then answer 101 and hand the
/// socket to the connection task, or answer whatever HTTP response the app chose.
pub async fn serve(
    mut req: Request<Incoming>,
    conn: &Arc<Connection>,
    head: RequestHead,
    ctx: &Arc<ServerContext>,
) -> Result<Response<ResponseBody>, io::Error> {
    let settings = &ctx.settings;
    // The upgraded connection is taken here rather than through yawc's future: the socket
    // must be built over our `WsIo` (ws/park.rs) to be parked when idle.
    let upgrade = hyper::upgrade::on(&mut req);
    let offered = options(&settings.ws, offers_client_window(req.headers()));
    let (response_101, _) = match WebSocket::upgrade_with_options(&mut req, offered.clone()) {
        Ok(pair) => pair,
        Err(yawc::WebSocketError::InvalidSecWebsocketVersion) => {
            return Ok(refusal(conn, StatusCode::UPGRADE_REQUIRED))
        }
        Err(_) => return Ok(refusal(conn, StatusCode::BAD_REQUEST)),
    };
    let (tx, rx) = oneshot::channel();
    let exchange = WsExchange::new(conn.clone(), head, settings.ws.max_queue, tx);
    ctx.app.start_websocket(exchange.clone());
    let mut guard = HandshakeGuard(Some(exchange.clone()));
    let decision = rx.await;
    guard.0 = None;
    match decision {
        Ok(Decision::Accept {
            subprotocol,
            headers,
        }) => {
            let mut map = conn.hub.response.headers(headers);
            for (name, value) in response_101.headers() {
                map.insert(name.clone(), value.clone());
            }
            if let Some(protocol) = subprotocol {
                let value = HeaderValue::from_str(&protocol).map_err(|_| {
                    exchange.end(1006, "");
                    io::Error::other("invalid subprotocol")
                })?;
                map.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
            }
            let mut answer = Response::new(ResponseBody::empty());
            *answer.status_mut() = response_101.status();
            *answer.headers_mut() = map;
            // The socket keeps its --limit-connections permit for as long as it lives.
            let permit = conn.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
            let ctx = ctx.clone();
            let extensions = response_101
                .headers()
                .get(header::SEC_WEBSOCKET_EXTENSIONS)
                .and_then(|v| v.to_str().ok())
                .map(Box::from);
            // A socket is parked only if no compression context outlives a message.
            let parkable = extensions.is_none() || !settings.ws.deflate_context_takeover;
            tokio::spawn(async move {
                let _permit = permit;
                let upgraded = upgrade.await.map_err(WebSocketError::from);
                let ws = upgraded.and_then(|io| {
                    ParkableWs::new(TokioIo::new(io), extensions, offered, parkable)
                });
                match ws {
                    Ok(ws) => connection::run(ws, exchange, &ctx.settings.ws).await,
                    Err(_) => exchange.end(1006, ""),
                }
            });
            Ok(answer)
        }
        Ok(Decision::Respond(answer)) => Ok(response(answer, None)),
        Err(_) => Err(io::Error::other("WebSocket handshake abandoned")),
    }
}

/// Dropped with the service future: if hyper drops it before the decision was received, the
/// client is gone. That includes a decision the app already sent (it accepted, and now waits
/// for a message) which the IO thread had not taken yet: without `end` here, nothing would
/// ever end that wait.
struct HandshakeGuard(Option<Arc<WsExchange>>);

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        if let Some(exchange) = self.0.take() {
            exchange.end(1006, "");
        }
    }
}
