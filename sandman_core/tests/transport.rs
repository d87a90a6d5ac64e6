//! The transport and exchange layers without Python and without a socket: a connection
//! served over tokio's in-memory duplex stream, with the test playing the app through the
//! exchange's app-side calls. Whatever these tests show holds for any app side.

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use _core::common::access::AccessRecord;
use _core::common::limits::REQUEST_BODY_HIGH_WATER;
use _core::common::log::Level;
use _core::common::settings::{ResponseDefaults, Settings, StaticMount};
use _core::exchange::app::AppSide;
use _core::exchange::connection::{Connection, Peer};
use _core::exchange::hub::Hub;
use _core::exchange::request::{Received, RequestExchange, Room};
use _core::exchange::response::{Answer, AnswerBody};
use _core::exchange::websocket::{Decision, Inbound, Outbound, WsExchange, WsReceived};
use _core::http::context::ServerContext;
use _core::server::conn::{self, Protocol};
use _core::server::registry::ConnectionRegistry;
use _core::server::ServerShared;
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::timeout;

/// The app side: hands every request and WebSocket to the test.
struct TestApp {
    http: UnboundedSender<Arc<RequestExchange>>,
    websockets: UnboundedSender<Arc<WsExchange>>,
}

impl AppSide for TestApp {
    fn start_http(&self, exchange: Arc<RequestExchange>) {
        let _ = self.http.send(exchange);
    }
    fn start_websocket(&self, exchange: Arc<WsExchange>) {
        let _ = self.websockets.send(exchange);
    }
    fn log(&self, _: Level, _: String) {}
    fn access(&self, _: AccessRecord) {}
}

struct Harness {
    server: Arc<ServerShared>,
    requests: UnboundedReceiver<Arc<RequestExchange>>,
    websockets: UnboundedReceiver<Arc<WsExchange>>,
}

/// Bounded waits: a test that hangs fails instead.
const WAIT: Duration = Duration::from_secs(5);

impl Harness {
    fn new(settings: Settings) -> Harness {
        let (http, requests) = unbounded_channel();
        let (websockets_tx, websockets) = unbounded_channel();
        let app = TestApp {
            http,
            websockets: websockets_tx,
        };
        let hub = Hub::new(ResponseDefaults::default()).with_cache(settings.cache_bytes);
        let server = Arc::new(ServerShared {
            hub: Arc::new(hub),
            ctx: Arc::new(ServerContext::new(settings, Box::new(app)).expect("settings")),
            registry: ConnectionRegistry::default(),
            tls: None,
            connection_permits: None,
        });
        Harness {
            server,
            requests,
            websockets,
        }
    }

    /// A client end whose other end is served as one connection (HTTP/1.1, or HTTP/2 by
    /// its preface).
    fn connect(&self, buffer: usize) -> DuplexStream {
        let (client, server_end) = tokio::io::duplex(buffer);
        let peer = Peer {
            client: Some(("127.0.0.1".into(), 40000)),
            ..Peer::default()
        };
        let connection = Arc::new(Connection::new(self.server.hub.clone(), peer, None));
        let serving = conn::serve(
            server_end,
            connection,
            self.server.clone(),
            Protocol::Detect,
        );
        tokio::spawn(serving);
        client
    }

    async fn next_request(&mut self) -> Arc<RequestExchange> {
        timeout(WAIT, self.requests.recv())
            .await
            .expect("a request reaches the app")
            .expect("the server is up")
    }
}

/// The app waits for what `receive()` would give it.
async fn receive(exchange: &RequestExchange) -> Received {
    let wait = poll_fn(|cx| match exchange.receive(|| cx.waker().clone()) {
        Some(received) => Poll::Ready(received),
        None => Poll::Pending,
    });
    timeout(WAIT, wait).await.expect("receive() ends")
}

/// The whole request body, as the app would collect it.
async fn receive_body(exchange: &RequestExchange) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        match receive(exchange).await {
            Received::Body(data, more) => {
                body.extend_from_slice(&data);
                if !more {
                    return body;
                }
            }
            Received::Disconnect => panic!("disconnected mid-body"),
        }
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

fn text_headers() -> HeaderMap {
    let mut headers = ResponseDefaults::default().headers(Vec::new());
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers
}

/// The app answers with a whole body.
fn respond(exchange: &RequestExchange, body: &str) {
    let answer = Answer::new(
        StatusCode::OK,
        text_headers(),
        AnswerBody::Full(Bytes::from(body.to_owned())),
    );
    wake(exchange.respond(answer));
}

/// Read from the client end until `needle` has been seen `times` times.
async fn read_until(
    client: &mut (impl AsyncReadExt + Unpin),
    needle: &str,
    times: usize,
) -> String {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = async {
        while String::from_utf8_lossy(&seen).matches(needle).count() < times {
            let n = client.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    };
    timeout(WAIT, read).await.expect("the responses arrive");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn keep_alive_serves_requests_one_after_another_on_one_connection() {
    let mut harness = Harness::new(Settings::default());
    let mut client = harness.connect(64 * 1024);
    for i in 0..3 {
        let request = format!("GET /n/{i} HTTP/1.1\r\nhost: x\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let exchange = harness.next_request().await;
        assert_eq!(exchange.head.path, format!("/n/{i}"));
        assert_eq!(
            receive(&exchange).await,
            Received::Body(Bytes::new(), false)
        );
        respond(&exchange, &format!("answer {i}"));
        let response = read_until(&mut client, &format!("answer {i}"), 1).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("content-length: 8\r\n"), "{response}");
        assert!(!response.contains("connection: close"), "{response}");
    }
    assert_eq!(harness.server.hub.total_requests.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let mut harness = Harness::new(Settings::default());
    let mut client = harness.connect(64 * 1024);
    let pipeline: String = (1..=3)
        .map(|i| format!("GET /{i} HTTP/1.1\r\nhost: x\r\n\r\n"))
        .collect();
    client.write_all(pipeline.as_bytes()).await.unwrap();
    for i in 1..=3 {
        let exchange = harness.next_request().await;
        assert_eq!(exchange.head.path, format!("/{i}"));
        // The next request reaches the app only once this one is answered.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            harness.requests.try_recv().is_err(),
            "request {i} overtaken"
        );
        respond(&exchange, &format!("body-{i}"));
    }
    let responses = read_until(&mut client, "body-", 3).await;
    let order: Vec<usize> = (1..=3)
        .map(|i| responses.find(&format!("body-{i}")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{responses}");
}

#[tokio::test]
async fn a_request_body_the_app_does_not_read_stops_the_client() {
    let mut harness = Harness::new(Settings::default());
    let client = harness.connect(16 * 1024);
    let (mut reader, mut writer) = tokio::io::split(client);
    const TOTAL: usize = 4 * 1024 * 1024;
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let upload = tokio::spawn(async move {
        let head = format!("POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: {TOTAL}\r\n\r\n");
        writer.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 16 * 1024];
        for _ in 0..TOTAL / chunk.len() {
            writer.write_all(&chunk).await.unwrap();
            counter.fetch_add(chunk.len(), Ordering::Relaxed);
        }
        writer
    });
    let exchange = harness.next_request().await;
    // The app does not read: the server buffers a bounded amount, then stops reading.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stalled_at = written.load(Ordering::Relaxed);
    assert!(
        stalled_at < REQUEST_BODY_HIGH_WATER * 8,
        "{stalled_at} bytes taken while the app read nothing"
    );
    // Once the app reads, the whole body comes through.
    let body = receive_body(&exchange).await;
    assert_eq!(body.len(), TOTAL);
    let _writer = timeout(WAIT, upload).await.unwrap().unwrap();
    respond(&exchange, "ok");
    let response = read_until(&mut reader, "ok", 1).await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
}

#[tokio::test]
async fn a_client_that_leaves_while_the_app_runs_is_seen_as_a_disconnect() {
    let mut harness = Harness::new(Settings::default());
    let mut client = harness.connect(64 * 1024);
    client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let exchange = harness.next_request().await;
    assert_eq!(
        receive(&exchange).await,
        Received::Body(Bytes::new(), false)
    );
    drop(client);
    // The app's next wait ends with a disconnect, and a late response goes nowhere.
    assert_eq!(receive(&exchange).await, Received::Disconnect);
    assert!(exchange.is_disconnected());
    respond(&exchange, "too late");
    all_connections_end(&harness).await;
}

/// Wait until the server has no connection open.
async fn all_connections_end(harness: &Harness) {
    timeout(WAIT, async {
        while harness.server.hub.connections.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the connections end");
}

#[tokio::test]
async fn a_full_response_queue_makes_the_app_wait_until_the_client_reads() {
    let mut harness = Harness::new(Settings::default());
    let mut client = harness.connect(16 * 1024);
    client
        .write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let exchange = harness.next_request().await;
    let chunk = Bytes::from(vec![b'y'; 64 * 1024]);
    let mut head = Some(Answer::new(
        StatusCode::OK,
        text_headers(),
        AnswerBody::Streamed,
    ));
    let mut sent = 0;
    // The client reads nothing: the queue fills within a bounded number of chunks.
    let full = loop {
        let streamed = exchange.stream(head.take(), chunk.clone(), false);
        wake(streamed.waker);
        sent += chunk.len();
        tokio::task::yield_now().await;
        if streamed.full || sent > 64 * 1024 * 1024 {
            break streamed.full;
        }
    };
    assert!(full, "the queue never filled after {sent} bytes");
    let room = poll_fn(|cx| match exchange.wait_for_room(|| cx.waker().clone()) {
        Room::Wait => Poll::Pending,
        room => Poll::Ready(room),
    });
    tokio::pin!(room);
    assert!(
        timeout(Duration::from_millis(200), &mut room)
            .await
            .is_err(),
        "room before the client read anything"
    );
    // The client reads what was sent: the app may send again.
    let reading = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        while total < sent {
            total += client.read(&mut buf).await.unwrap();
        }
        client
    });
    assert_eq!(timeout(WAIT, room).await.unwrap(), Room::Ready);
    let _client = timeout(WAIT, reading).await.unwrap().unwrap();
}

/// A masked client frame (RFC 6455 §5.2): FIN, `opcode`, a short payload.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn a_websocket_message_goes_up_and_comes_back() {
    let mut harness = Harness::new(Settings::default());
    let mut client = harness.connect(64 * 1024);
    client
        .write_all(
            b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
              sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let ws = timeout(WAIT, harness.websockets.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ws.head.path, "/ws");
    ws.decide(Decision::Accept {
        subprotocol: None,
        headers: Vec::new(),
    });
    let handshake = read_until(&mut client, "\r\n\r\n", 1).await;
    assert!(handshake.starts_with("HTTP/1.1 101"), "{handshake}");
    assert!(
        handshake.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{handshake}"
    );

    client
        .write_all(&client_frame(0x1, b"hello"))
        .await
        .unwrap();
    let received = poll_fn(|cx| match ws.receive(|| cx.waker().clone()) {
        (Some(received), _) => Poll::Ready(received),
        (None, _) => Poll::Pending,
    });
    let received = timeout(WAIT, received).await.unwrap();
    assert_eq!(received, WsReceived::Message(Inbound::Text("hello".into())));

    let (waker, full) = ws.send(Outbound::Text(Bytes::from_static(b"hello back")), 10);
    assert!(!full);
    wake(waker);
    let mut frame = [0u8; 12];
    timeout(WAIT, client.read_exact(&mut frame))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame[0], 0x81, "FIN + text");
    assert_eq!(frame[1], 10, "unmasked, 10 bytes");
    assert_eq!(&frame[2..], b"hello back");

    // The client closes: the app is told the code, and the server echoes the close.
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    client.write_all(&client_frame(0x8, &close)).await.unwrap();
    let ended = poll_fn(|cx| match ws.receive(|| cx.waker().clone()) {
        (Some(WsReceived::Disconnect(code, reason)), _) => Poll::Ready((code, reason)),
        (Some(other), _) => panic!("{other:?}"),
        (None, _) => Poll::Pending,
    });
    assert_eq!(timeout(WAIT, ended).await.unwrap(), (1000, "bye".into()));
    let mut echo = [0u8; 2];
    timeout(WAIT, client.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echo[0], 0x88, "FIN + close");
}

impl Harness {
    /// A client end served as an HTTP/1.1 connection (what a plain connection whose first
    /// bytes are not the HTTP/2 preface gets), with its task future's size.
    fn connect_http1(&self, buffer: usize) -> (DuplexStream, usize) {
        let (client, server_end) = tokio::io::duplex(buffer);
        let connection = Arc::new(Connection::new(
            self.server.hub.clone(),
            Peer::default(),
            None,
        ));
        let serving = conn::serve(server_end, connection, self.server.clone(), Protocol::Http1);
        let size = std::mem::size_of_val(&serving);
        tokio::spawn(serving);
        (client, size)
    }

    fn parks(&self) -> u64 {
        self.server.hub.parks.load(Ordering::Relaxed)
    }
}

/// Settings whose keep-alive connections park after 50 ms idle.
fn parking_soon() -> Settings {
    let mut settings = Settings::default();
    settings.http.park_after = Duration::from_millis(50);
    settings
}

/// One request on `client`, answered with `body`.
async fn exchange(harness: &mut Harness, client: &mut DuplexStream, path: &str, body: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    let exchange = harness.next_request().await;
    assert_eq!(exchange.head.path, path);
    respond(&exchange, body);
    let response = read_until(client, body, 1).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(!response.contains("connection: close"), "{response}");
}

#[tokio::test]
async fn the_connection_task_future_is_small() {
    // It is allocated inline in tokio's task for as long as the connection lives: what a
    // parked connection costs beyond its socket (docs/memory.md). hyper's connection and
    // HTTP/2's are boxed while they run.
    let harness = Harness::new(Settings::default());
    let (_client, size) = harness.connect_http1(1024);
    assert!(size <= 768, "conn::serve's future is {size} bytes");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_parks_and_serves_the_next_request() {
    let mut harness = Harness::new(parking_soon());
    let (mut client, _) = harness.connect_http1(64 * 1024);
    exchange(&mut harness, &mut client, "/first", "answer one").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.parks(), 1, "parked once while idle");
    exchange(&mut harness, &mut client, "/second", "answer two").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.parks(), 2, "parked again after the next request");
    exchange(&mut harness, &mut client, "/third", "answer three").await;
}

#[tokio::test]
async fn a_request_head_cut_by_parking_is_kept() {
    let mut harness = Harness::new(parking_soon());
    let (mut client, _) = harness.connect_http1(64 * 1024);
    exchange(&mut harness, &mut client, "/first", "answer one").await;
    // Half a head, then a pause longer than the park delay: hyper has the half when the
    // connection parks, and gives it back.
    client.write_all(b"GET /second HT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.parks(), 1);
    client
        .write_all(b"TP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let exchange = harness.next_request().await;
    assert_eq!(exchange.head.path, "/second");
    respond(&exchange, "answer two");
    let response = read_until(&mut client, "answer two", 1).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
}

#[tokio::test]
async fn a_parked_connection_closes_when_the_client_does_or_the_server_stops() {
    let mut harness = Harness::new(parking_soon());
    let (mut client, _) = harness.connect_http1(64 * 1024);
    exchange(&mut harness, &mut client, "/", "answer").await;
    let (mut other, _) = harness.connect_http1(64 * 1024);
    exchange(&mut harness, &mut other, "/", "answer").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.parks(), 2);
    assert_eq!(harness.server.hub.connections.load(Ordering::Relaxed), 2);
    drop(client);
    let closed = async {
        while harness.server.hub.connections.load(Ordering::Relaxed) != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(WAIT, closed)
        .await
        .expect("the parked connection ends");
    // Shutdown closes a parked connection at once, as any idle keep-alive connection.
    harness.server.registry.close_all();
    let mut rest = Vec::new();
    let read = timeout(WAIT, other.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?}");
}

#[tokio::test]
async fn a_slow_reader_is_not_parked_with_response_bytes_waiting() {
    let mut harness = Harness::new(parking_soon());
    // A 1 KiB pipe: a 256 KiB response cannot be written until the client reads.
    let (mut client, _) = harness.connect_http1(1024);
    client
        .write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let exchange = harness.next_request().await;
    let body = "x".repeat(256 * 1024);
    respond(&exchange, &body);
    drop(exchange);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = read_until(&mut client, "\r\n\r\n", 1).await;
    let mut rest = response.len() - response.find("\r\n\r\n").unwrap() - 4;
    let mut buf = vec![0u8; 64 * 1024];
    while rest < body.len() {
        let n = timeout(WAIT, client.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed after {rest} of {} body bytes", body.len());
        rest += n;
    }
    assert_eq!(rest, body.len());
}

/// Settings whose WebSockets park after 50 ms idle, with permessage-deflate as given.
fn ws_parking_soon(deflate: bool) -> Settings {
    let mut settings = Settings::default();
    settings.ws.park_after = Duration::from_millis(50);
    settings.ws.ping_interval = None;
    settings.ws.per_message_deflate = deflate;
    settings
}

/// Open a WebSocket (offering `extensions`), accept it as the app; the exchange and the
/// handshake response.
async fn open_websocket(
    harness: &mut Harness,
    client: &mut DuplexStream,
    extensions: &str,
) -> (Arc<WsExchange>, String) {
    let offer = if extensions.is_empty() {
        String::new()
    } else {
        format!("sec-websocket-extensions: {extensions}\r\n")
    };
    let request = format!(
        "GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{offer}\r\n"
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let ws = timeout(WAIT, harness.websockets.recv())
        .await
        .unwrap()
        .unwrap();
    ws.decide(Decision::Accept {
        subprotocol: None,
        headers: Vec::new(),
    });
    let handshake = read_until(client, "\r\n\r\n", 1).await;
    assert!(handshake.starts_with("HTTP/1.1 101"), "{handshake}");
    (ws, handshake)
}

/// The app's next message.
async fn app_receives(ws: &WsExchange) -> WsReceived {
    let received = poll_fn(|cx| match ws.receive(|| cx.waker().clone()) {
        (Some(received), _) => Poll::Ready(received),
        (None, _) => Poll::Pending,
    });
    timeout(WAIT, received)
        .await
        .expect("a message reaches the app")
}

/// The app sends `text`; the client reads the frame (uncompressed: under 126 bytes).
async fn app_sends(ws: &WsExchange, client: &mut DuplexStream, text: &'static str) {
    let (waker, _) = ws.send(Outbound::Text(Bytes::from_static(text.as_bytes())), 10);
    wake(waker);
    let mut head = [0u8; 2];
    timeout(WAIT, client.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head[0] & 0x0F, 0x1, "a text frame");
    let mut payload = vec![0u8; usize::from(head[1] & 0x7F)];
    client.read_exact(&mut payload).await.unwrap();
    if head[0] & 0x40 == 0 {
        assert_eq!(payload, text.as_bytes());
    }
}

/// Wait until the hub has counted `n` parks.
async fn parks_reach(harness: &Harness, n: u64) {
    let counted = async {
        while harness.parks() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    timeout(WAIT, counted)
        .await
        .unwrap_or_else(|_| panic!("{} parks, not {n}", harness.parks()));
}

#[tokio::test]
async fn an_idle_websocket_parks_and_goes_on_both_ways() {
    let mut harness = Harness::new(ws_parking_soon(false));
    let mut client = harness.connect(64 * 1024);
    let (ws, _) = open_websocket(&mut harness, &mut client, "").await;
    client.write_all(&client_frame(0x1, b"one")).await.unwrap();
    let one = WsReceived::Message(Inbound::Text("one".into()));
    assert_eq!(app_receives(&ws).await, one);
    parks_reach(&harness, 1).await;
    // The client's next message wakes it.
    client.write_all(&client_frame(0x1, b"two")).await.unwrap();
    let two = WsReceived::Message(Inbound::Text("two".into()));
    assert_eq!(app_receives(&ws).await, two);
    parks_reach(&harness, 2).await;
    // So does a message from the app, and a ping (answered).
    app_sends(&ws, &mut client, "from the app").await;
    parks_reach(&harness, 3).await;
    client.write_all(&client_frame(0x9, b"hi")).await.unwrap();
    let mut pong = [0u8; 4];
    timeout(WAIT, client.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\x8a\x02hi", "FIN + pong, the ping's payload");
}

#[tokio::test]
async fn a_websocket_parks_again_after_the_servers_ping_is_answered() {
    // The keep-alive ping wakes a parked socket; the client's pong must leave it parkable.
    let mut settings = ws_parking_soon(false);
    settings.ws.ping_interval = Some(Duration::from_millis(300));
    let mut harness = Harness::new(settings);
    let mut client = harness.connect(64 * 1024);
    let (_ws, _) = open_websocket(&mut harness, &mut client, "").await;
    parks_reach(&harness, 1).await;
    for round in 1..=2 {
        let mut ping = [0u8; 2 + 7];
        timeout(WAIT, client.read_exact(&mut ping))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&ping, b"\x89\x07sandman", "FIN + ping");
        client
            .write_all(&client_frame(0xA, b"sandman"))
            .await
            .unwrap();
        parks_reach(&harness, 1 + round).await;
    }
}

#[tokio::test]
async fn a_websocket_is_not_parked_inside_a_frame_or_a_fragmented_message() {
    let mut harness = Harness::new(ws_parking_soon(false));
    let mut client = harness.connect(64 * 1024);
    let (ws, _) = open_websocket(&mut harness, &mut client, "").await;
    // Half a frame, a pause well past the park delay, the rest.
    let frame = client_frame(0x1, b"split across the pause");
    client.write_all(&frame[..9]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.parks(), 0);
    client.write_all(&frame[9..]).await.unwrap();
    let split = WsReceived::Message(Inbound::Text("split across the pause".into()));
    assert_eq!(app_receives(&ws).await, split);
    parks_reach(&harness, 1).await;
    // A first fragment, a pause, the last one.
    let mut first = client_frame(0x1, b"frag");
    first[0] &= 0x7F; // not FIN
    client.write_all(&first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.parks(), 1, "parked with half a message read");
    client
        .write_all(&client_frame(0x0, b"mented"))
        .await
        .unwrap();
    let whole = WsReceived::Message(Inbound::Text("fragmented".into()));
    assert_eq!(app_receives(&ws).await, whole);
}

#[tokio::test]
async fn a_deflate_websocket_without_context_takeover_parks() {
    let mut harness = Harness::new(ws_parking_soon(true));
    let mut client = harness.connect(64 * 1024);
    let (ws, handshake) = open_websocket(
        &mut harness,
        &mut client,
        "permessage-deflate; client_max_window_bits",
    )
    .await;
    let agreed = handshake.to_ascii_lowercase();
    for term in [
        "permessage-deflate",
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits=12",
        "client_max_window_bits=12",
    ] {
        assert!(agreed.contains(term), "{term} in {handshake}");
    }
    // An uncompressed message is allowed on a deflate socket (RSV1 clear).
    client
        .write_all(&client_frame(0x1, b"plain"))
        .await
        .unwrap();
    let plain = WsReceived::Message(Inbound::Text("plain".into()));
    assert_eq!(app_receives(&ws).await, plain);
    parks_reach(&harness, 1).await;
    app_sends(&ws, &mut client, "back to you").await;
    parks_reach(&harness, 2).await;
}

#[tokio::test]
async fn deflate_with_context_takeover_is_never_parked() {
    let mut settings = ws_parking_soon(true);
    settings.ws.deflate_context_takeover = true;
    settings.ws.deflate_window_bits = 15;
    let mut harness = Harness::new(settings);
    let mut client = harness.connect(64 * 1024);
    let (ws, handshake) = open_websocket(&mut harness, &mut client, "permessage-deflate").await;
    assert!(!handshake.contains("no_context_takeover"), "{handshake}");
    assert!(
        handshake.contains("server_max_window_bits=15"),
        "{handshake}"
    );
    assert!(
        !handshake.contains("client_max_window_bits"),
        "not offered: {handshake}"
    );
    client.write_all(&client_frame(0x1, b"kept")).await.unwrap();
    let kept = WsReceived::Message(Inbound::Text("kept".into()));
    assert_eq!(app_receives(&ws).await, kept);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.parks(), 0);
}

/// Everything the client end receives until the server closes it.
async fn read_to_close(client: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut seen = Vec::new();
    timeout(WAIT, client.read_to_end(&mut seen))
        .await
        .expect("the server closes")
        .expect("read");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_the_response() {
    let mut harness = Harness::new(Settings::default());
    let mut client = harness.connect(64 * 1024);
    client
        .write_all(b"POST /hc HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    client.shutdown().await.unwrap(); // FIN: nothing more to send, still reading
    let exchange = harness.next_request().await;
    assert_eq!(receive_body(&exchange).await, b"hello");
    // The FIN reaches the server while the app works: it is not a disconnect yet.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!exchange.is_disconnected());
    respond(&exchange, "answered");
    let response = read_to_close(&mut client).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nanswered"), "{response}");
    drop(exchange);
    all_connections_end(&harness).await;
}

#[tokio::test]
async fn an_app_that_asks_after_a_half_close_is_told_the_client_left() {
    let mut harness = Harness::new(Settings::default());
    let mut client = harness.connect(64 * 1024);
    client
        .write_all(b"GET /wait HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let exchange = harness.next_request().await;
    assert_eq!(receive_body(&exchange).await, b"");
    client.shutdown().await.unwrap();
    assert_eq!(receive(&exchange).await, Received::Disconnect);
    assert!(exchange.is_disconnected(), "told, so treated as gone");
    assert_eq!(read_to_close(&mut client).await, "");
}

#[tokio::test]
async fn a_body_cut_short_by_a_half_close_is_a_disconnect() {
    let mut harness = Harness::new(Settings::default());
    let mut client = harness.connect(1024 * 1024);
    client
        .write_all(b"POST /cut HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n")
        .await
        .unwrap();
    client.write_all(&[b'z'; 300_000]).await.unwrap();
    client.shutdown().await.unwrap();
    let exchange = harness.next_request().await;
    let mut read = 0;
    while let Received::Body(data, more) = receive(&exchange).await {
        read += data.len();
        assert!(more, "the body cannot end: it was cut short");
    }
    assert!(read <= 300_000);
    assert!(exchange.is_disconnected());
}

#[tokio::test]
async fn a_response_cut_short_still_delivers_what_was_sent() {
    let mut harness = Harness::new(Settings::default());
    let mut client = harness.connect(64 * 1024);
    client
        .write_all(b"GET /partial HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let exchange = harness.next_request().await;
    let head = Answer::new(StatusCode::OK, text_headers(), AnswerBody::Streamed);
    // Head and first part queued and the failure right behind them, before the transport
    // has taken anything: hyper must still write both before it closes.
    let streamed = exchange.stream(Some(head), Bytes::from_static(b"partial"), false);
    exchange.abort();
    wake(streamed.waker);
    let response = read_to_close(&mut client).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("transfer-encoding: chunked"),
        "{response}"
    );
    assert!(response.ends_with("\r\n\r\n7\r\npartial\r\n"), "{response}");
}

#[tokio::test]
async fn a_body_slower_than_the_minimum_rate_gets_408_and_a_disconnect() {
    let mut settings = Settings::default();
    settings.http.body_min_rate = Some(_core::common::settings::MinRate {
        bytes_per_sec: 1000.0,
        grace: Duration::from_millis(300),
    });
    let mut harness = Harness::new(settings);
    let client = harness.connect(64 * 1024);
    let (mut reader, mut writer) = tokio::io::split(client);
    writer
        .write_all(b"POST /slow HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    // 10 bytes every 50 ms: 200 bytes/s, a fifth of the minimum.
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if writer
                .write_all(b"a\r\n0123456789\r\n"[..].as_ref())
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let exchange = harness.next_request().await;
    let started = tokio::time::Instant::now();
    loop {
        if receive(&exchange).await == Received::Disconnect {
            break;
        }
    }
    let after = started.elapsed();
    assert!(after < Duration::from_secs(2), "cut off after {after:?}");
    let response = read_to_close(&mut reader).await;
    assert!(
        response.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{response}"
    );
    assert!(response.contains("connection: close"), "{response}");
    trickle.abort();
}

#[tokio::test]
async fn a_static_mount_is_answered_without_the_app() {
    let dir = std::env::temp_dir().join(format!("transport-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Larger than a read chunk: the body comes in several frames (no sendfile here).
    let data: Vec<u8> = (0..700 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    let settings = Settings {
        static_mounts: vec![StaticMount {
            prefix: "/files".into(),
            directory: dir.clone(),
            max_age: None,
            index: false,
        }],
        ..Settings::default()
    };
    let mut harness = Harness::new(settings);
    let mut client = harness.connect(64 * 1024);
    client
        .write_all(b"GET /files/big.bin HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            received.extend_from_slice(&buf[..n]);
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                if received.len() - end - 4 == data.len() {
                    return end;
                }
            }
        }
    };
    let end = timeout(WAIT, read).await.expect("the file arrives");
    std::fs::remove_dir_all(&dir).unwrap();
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", data.len())),
        "{head}"
    );
    assert_eq!(&received[end + 4..], &data[..]);
    // The file never reached the app: the first request it sees is the next one.
    client
        .write_all(b"GET /app HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let exchange = harness.next_request().await;
    assert_eq!(exchange.head.path, "/app");
    respond(&exchange, "from the app");
    read_until(&mut client, "from the app", 1).await;
}

#[tokio::test]
async fn a_cached_response_is_replayed_without_the_app() {
    let settings = Settings {
        cache_bytes: Some(1 << 20),
        ..Settings::default()
    };
    let mut harness = Harness::new(settings);
    let mut client = harness.connect(64 * 1024);
    client
        .write_all(b"GET /page HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let exchange = harness.next_request().await;
    let mut headers = text_headers();
    headers.insert(
        "cache-control",
        HeaderValue::from_static("public, max-age=60"),
    );
    wake(exchange.respond(Answer::new(
        StatusCode::OK,
        headers,
        AnswerBody::Full(Bytes::from_static(b"stored body")),
    )));
    read_until(&mut client, "stored body", 1).await;
    client
        .write_all(b"GET /page HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let second = read_until(&mut client, "stored body", 1).await;
    assert!(second.contains("age: 0\r\n"), "{second}");
    assert!(
        timeout(Duration::from_millis(200), harness.requests.recv())
            .await
            .is_err(),
        "the app saw the second request"
    );
}
