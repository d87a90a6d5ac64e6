//! One client connection driven by arbitrary bytes, the harness shared by the fuzz targets
//! (`sandman_core/fuzz/`, libFuzzer through cargo-fuzz) and `tests/fuzz_regressions.rs`
//! (which replays the committed seed corpus and every input a fuzzer ever crashed on, as
//! an ordinary `cargo test`).
//!
//! The bytes go to the server over tokio's in-memory duplex stream, written in pieces and
//! followed by the client's half-close; the test plays an app that answers every request
//! (the way it answers depends on the request, so each response path runs) and echoes
//! every WebSocket message. A run must end on its own, in bounded time: the connection
//! closes once everything sent has been answered, and nothing is left counted as open. A
//! panic anywhere, a hang, or a leaked connection or request is a finding.

#![allow(dead_code)]

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use _core::common::access::AccessRecord;
use _core::common::log::Level;
use _core::common::settings::{ResponseDefaults, Settings};
use _core::exchange::app::AppSide;
use _core::exchange::connection::{Connection, Peer};
use _core::exchange::hub::Hub;
use _core::exchange::request::{Received, RequestExchange};
use _core::exchange::response::{Answer, AnswerBody};
use _core::exchange::websocket::{Decision, Inbound, Outbound, WsExchange, WsReceived};
use _core::http::context::ServerContext;
use _core::server::conn::{self, Protocol};
use _core::server::registry::ConnectionRegistry;
use _core::server::ServerShared;
use bytes::Bytes;
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// Longer than any run should take; reaching it is a hang.
const HANG: Duration = Duration::from_secs(5);

/// The app: every request and WebSocket gets its own task.
struct FuzzApp;

impl AppSide for FuzzApp {
    fn start_http(&self, exchange: Arc<RequestExchange>) {
        tokio::spawn(answer(exchange));
    }
    fn start_websocket(&self, exchange: Arc<WsExchange>) {
        tokio::spawn(echo(exchange));
    }
    fn log(&self, _: Level, _: String) {}
    fn access(&self, _: AccessRecord) {}
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Answer one request, a different way by the length of its path: read the body and
/// answer whole, stream two parts, stream a part and fail, fail before the head, or answer
/// without reading the body.
async fn answer(exchange: Arc<RequestExchange>) {
    let mode = exchange.head.path.len() % 5;
    if mode != 4 {
        loop {
            let received = poll_fn(|cx| match exchange.receive(|| cx.waker().clone()) {
                Some(received) => Poll::Ready(received),
                None => Poll::Pending,
            })
            .await;
            match received {
                Received::Body(_, true) => continue,
                Received::Body(_, false) | Received::Disconnect => break,
            }
        }
    }
    let headers = ResponseDefaults::default().headers(Vec::new());
    match mode {
        0 | 4 => {
            let body = AnswerBody::Full(Bytes::from_static(b"answer"));
            wake(exchange.respond(Answer::new(StatusCode::OK, headers, body)));
        }
        1 | 2 => {
            let head = Answer::new(StatusCode::OK, headers, AnswerBody::Streamed);
            wake(
                exchange
                    .stream(Some(head), Bytes::from_static(b"part"), false)
                    .waker,
            );
            tokio::task::yield_now().await;
            if mode == 1 {
                wake(
                    exchange
                        .stream(None, Bytes::from_static(b"end"), true)
                        .waker,
                );
            } else {
                exchange.abort();
            }
        }
        _ => exchange.abort(),
    }
    exchange.app_done();
}

/// Accept a WebSocket and echo what it receives until it ends.
async fn echo(ws: Arc<WsExchange>) {
    ws.decide(Decision::Accept {
        subprotocol: None,
        headers: Vec::new(),
    });
    loop {
        let received = poll_fn(|cx| {
            let (received, resume) = ws.receive(|| cx.waker().clone());
            wake(resume);
            match received {
                Some(received) => Poll::Ready(received),
                None => Poll::Pending,
            }
        })
        .await;
        let (item, size) = match received {
            WsReceived::Message(Inbound::Text(text)) => {
                let size = text.len();
                (Outbound::Text(Bytes::from(text)), size)
            }
            WsReceived::Message(Inbound::Binary(data)) => {
                let size = data.len();
                (Outbound::Binary(data), size)
            }
            WsReceived::Disconnect(..) => return,
        };
        wake(ws.send(item, size).0);
    }
}

fn server(settings: Settings) -> Arc<ServerShared> {
    Arc::new(ServerShared {
        hub: Arc::new(Hub::new(ResponseDefaults::default())),
        ctx: Arc::new(ServerContext {
            settings,
            app: Box::new(FuzzApp),
            statics: None,
        }),
        registry: ConnectionRegistry::default(),
        tls: None,
        connection_permits: None,
    })
}

/// Serve one HTTP/1 connection that receives `input` (in pieces of `piece` bytes, then a
/// half-close); returns what the server wrote. Panics on a hang or a leak.
pub fn run(settings: Settings, input: &[u8], piece: usize) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let server = server(settings);
        let hub = server.hub.clone();
        let (client, server_end) = tokio::io::duplex(64 * 1024);
        let connection = Arc::new(Connection::new(hub.clone(), Peer::default(), None));
        let serving = tokio::spawn(conn::serve(server_end, connection, server, Protocol::Http1));
        let (mut reader, mut writer) = tokio::io::split(client);
        let write = async move {
            for part in input.chunks(piece.max(1)) {
                if writer.write_all(part).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            let _ = writer.shutdown().await;
        };
        let read = async move {
            let mut out = Vec::new();
            let _ = reader.read_to_end(&mut out).await;
            out
        };
        let (_, out) = timeout(HANG, futures::future::join(write, read))
            .await
            .expect("hang: the connection did not end");
        timeout(HANG, serving)
            .await
            .expect("hang: the connection task did not end")
            .expect("the connection task panicked");
        // App tasks still finishing (a failure path) drop their exchanges shortly after.
        timeout(HANG, async {
            while hub.active_requests.load(Ordering::Relaxed) != 0
                || hub.connections.load(Ordering::Relaxed) != 0
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("leak: a request or connection still counted");
        out
    })
}

/// The HTTP/1 request path: `data`'s first byte sets the write size, the rest is what the
/// client sends. WebSockets are off, so an upgrade request is plain HTTP.
pub fn http1(data: &[u8]) -> Vec<u8> {
    let Some((&first, input)) = data.split_first() else {
        return Vec::new();
    };
    let mut settings = Settings::default();
    settings.ws.enabled = false;
    run(settings, input, usize::from(first) * 8 + 1)
}

/// The WebSocket frame path: a handshake (with permessage-deflate offered when `data`'s
/// first byte is odd), then the rest of `data` as the client's frames.
pub fn websocket(data: &[u8]) -> Vec<u8> {
    let Some((&first, frames)) = data.split_first() else {
        return Vec::new();
    };
    let mut input = b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
                      sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        .to_vec();
    if first & 1 == 1 {
        input.extend_from_slice(b"sec-websocket-extensions: permessage-deflate\r\n");
    }
    input.extend_from_slice(b"\r\n");
    input.extend_from_slice(frames);
    let mut settings = Settings::default();
    settings.ws.max_size = 64 * 1024;
    settings.ws.ping_interval = None;
    run(settings, &input, usize::from(first >> 1) * 4 + 1)
}
