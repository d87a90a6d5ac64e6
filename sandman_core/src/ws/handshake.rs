//! The upgrade request: recognising it, letting the app decide, answering it.

use std::io;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio::sync::oneshot;
use yawc::{DeflateOptions, Options, WebSocket};

use crate::asgi::scope::RequestHead;
use crate::asgi::websocket::{Decision, WsShared};
use crate::bridge::Event;
use crate::http::body::ResponseBody;
use crate::http::canned;
use crate::server::conn::ConnState;
use crate::server::shared::WsSettings;
use crate::ws::connection;

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// A request that asks to switch protocols at all (`Connection: upgrade` + `Upgrade`).
pub fn wants_upgrade(req: &Request<Incoming>) -> bool {
    req.headers().contains_key(header::UPGRADE)
        && has_token(req.headers(), header::CONNECTION, "upgrade")
}

/// An HTTP/1.1 GET asking for `Upgrade: websocket` (RFC 6455 §4.2.1).
pub fn is_websocket(req: &Request<Incoming>) -> bool {
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
        options.compression = Some(deflate);
    } else {
        options = options.without_compression();
    }
    options
}

fn plain(
    settings_status: StatusCode,
    conn: &ConnState,
    extra: Option<(header::HeaderName, &'static str)>,
) -> Response<ResponseBody> {
    let reason = match settings_status {
        StatusCode::UPGRADE_REQUIRED => "Unsupported WebSocket version",
        _ => "Invalid WebSocket handshake",
    };
    let mut response = canned::text(&conn.server.settings, settings_status, reason);
    if let Some((name, value)) = extra {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Run the handshake: ask the app (via `websocket.connect`), then answer 101 and hand the
/// socket to the connection task, or answer whatever HTTP response the app chose.
pub async fn serve(
    mut req: Request<Incoming>,
    conn: &Arc<ConnState>,
    head: RequestHead,
) -> Result<Response<ResponseBody>, io::Error> {
    let server = &conn.server;
    let (response, upgrade) =
        match WebSocket::upgrade_with_options(&mut req, options(&server.settings.ws)) {
            Ok(pair) => pair,
            Err(yawc::WebSocketError::InvalidSecWebsocketVersion) => {
                return Ok(plain(
                    StatusCode::UPGRADE_REQUIRED,
                    conn,
                    Some((header::SEC_WEBSOCKET_VERSION, "13")),
                ))
            }
            Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, conn, None)),
        };
    let (tx, rx) = oneshot::channel();
    let shared = WsShared::new(server.clone(), tx);
    server
        .bridge
        .push(Event::WsConnect(shared.clone(), Box::new(head)));
    let mut guard = HandshakeGuard(Some(shared.clone()));
    let decision = rx.await;
    guard.0 = None;
    match decision {
        Ok(Decision::Accept {
            subprotocol,
            headers,
        }) => {
            let mut map = server.settings.response_headers(headers);
            for (name, value) in response.headers() {
                map.insert(name.clone(), value.clone());
            }
            if let Some(protocol) = subprotocol {
                let value = HeaderValue::from_str(&protocol).map_err(|_| {
                    shared.end(1006, "");
                    io::Error::other("invalid subprotocol")
                })?;
                map.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
            }
            let mut answer = Response::new(ResponseBody::empty());
            *answer.status_mut() = response.status();
            *answer.headers_mut() = map;
            let task_shared = shared.clone();
            // The socket keeps its --limit-connections permit for as long as it lives.
            let permit = conn.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
            tokio::spawn(async move {
                let _permit = permit;
                match upgrade.await {
                    Ok(ws) => connection::run(ws, task_shared).await,
                    Err(_) => task_shared.end(1006, ""),
                }
            });
            Ok(answer)
        }
        Ok(Decision::Respond(response)) => Ok(response),
        Err(_) => Err(io::Error::other("WebSocket handshake abandoned")),
    }
}

/// Dropped with the service future: if hyper drops it before the decision was received, the
/// client is gone. That includes a decision the app already sent (it accepted, and now waits
/// in `receive()`) which the IO thread had not taken yet: without `end` here, nothing would
/// ever answer that `receive()`.
struct HandshakeGuard(Option<Arc<WsShared>>);

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.end(1006, "");
        }
    }
}
