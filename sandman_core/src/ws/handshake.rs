//! The upgrade request: recognising it, letting the app decide, answering it.

use std::io;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio::sync::oneshot;
use yawc::{DeflateOptions, Options, WebSocket};

use crate::common::settings::WsSettings;
use crate::exchange::connection::Connection;
use crate::exchange::head::RequestHead;
use crate::exchange::response::Answer;
use crate::exchange::websocket::{Decision, WsExchange};
use crate::http::context::ServerContext;
use crate::http::response_body::{response, ResponseBody};
use crate::ws::connection;

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// A request that asks to switch protocols at all (`Connection: upgrade` + `Upgrade`, or an
/// HTTP/2 extended CONNECT).
pub fn wants_upgrade(req: &Request<Incoming>) -> bool {
    is_extended_connect(req)
        || (req.headers().contains_key(header::UPGRADE)
            && has_token(req.headers(), header::CONNECTION, "upgrade"))
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

/// yawc options from the server's `--ws-*` settings.
fn options(ws: &WsSettings) -> Options {
    // yawc's limits are exclusive; uvicorn's --ws-max-size is the largest allowed message.
    let limit = ws.max_size.saturating_add(1);
    let mut options = Options::default()
        .with_utf8()
        .with_no_delay()
        .with_limits(limit, limit)
        // yawc grows its buffers for a bigger frame and shrinks them right after; a stream
        // of 64 KiB messages through 8 KiB buffers then reallocates (into cold memory) on
        // every message. Buffers that hold a 64 KiB frame cost ~130 KiB per socket.
        .with_read_buffer_capacity(WS_BUFFER_BYTES)
        .with_write_buffer_capacity(WS_BUFFER_BYTES);
    if ws.per_message_deflate {
        // As uvicorn (websockets): zlib's default level and a 4 KiB (2^12) window for what
        // we compress. The client's window is left to its offer: RFC 7692 §7.1.2.2 forbids
        // answering client_max_window_bits when the client did not offer it. Context
        // takeover parameters from the offer are honoured by yawc's negotiation.
        let mut deflate = DeflateOptions::balanced();
        deflate.server_max_window_bits = Some(12);
        // Empty messages go out uncompressed (RFC 7692 §6 allows any message to): yawc's
        // flush waits for the sync marker, which zlib does not write again for a flush
        // with no new input, so compressing an empty message after any other spun the IO
        // thread for ever (found by the websocket_frames fuzz target).
        deflate.compression_threshold = 1;
        options.compression = Some(deflate);
    } else {
        options = options.without_compression();
    }
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
    let (response_101, upgrade) =
        match WebSocket::upgrade_with_options(&mut req, options(&settings.ws)) {
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
            tokio::spawn(async move {
                let _permit = permit;
                match upgrade.await {
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
