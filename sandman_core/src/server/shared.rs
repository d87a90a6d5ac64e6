//! Settings and counters shared by every connection of one server.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::watch;

use crate::bridge::Bridge;
use crate::common::date::date_header;

/// WebSocket behaviour fixed at start-up (uvicorn's `--ws-*` options).
pub struct WsSettings {
    /// `--ws none` turns upgrades off: upgrade requests are served as plain HTTP.
    pub enabled: bool,
    /// `--ws-max-size`: largest incoming message; bigger ones close the socket with 1009.
    pub max_size: usize,
    /// `--ws-max-queue`: received messages buffered for the app before reading pauses.
    pub max_queue: usize,
    /// `--ws-ping-interval` (`None` disables pings).
    pub ping_interval: Option<Duration>,
    /// `--ws-ping-timeout`: no pong within it closes with 1011.
    pub ping_timeout: Option<Duration>,
    /// `--ws-per-message-deflate`.
    pub per_message_deflate: bool,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            enabled: true,
            max_size: 16 * 1024 * 1024,
            max_queue: 32,
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            per_message_deflate: true,
        }
    }
}

/// HTTP behaviour fixed at start-up.
pub struct HttpSettings {
    /// Add `date` unless the app sets one.
    pub date_header: bool,
    /// `server: sandman`, or `None` when disabled or replaced by a `--header server:...`.
    pub server_header: Option<HeaderValue>,
    /// `--header` values, added to every response after `date`/`server`.
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// `--root-path`.
    pub root_path: String,
    /// `--limit-concurrency`.
    pub limit_concurrency: Option<usize>,
    /// `--timeout-keep-alive`.
    pub timeout_keep_alive: Duration,
    /// Time allowed to receive a complete request head.
    pub header_read_timeout: Duration,
    /// Cap on the request line plus headers.
    pub max_head_bytes: usize,
    /// Longest request target (414 beyond).
    pub max_target: usize,
    /// Most header lines (431 beyond).
    pub max_headers: usize,
    /// Largest request body (413 beyond); `None` = unlimited, as uvicorn.
    pub max_body: Option<u64>,
    /// Idle time allowed between request body bytes (408).
    pub body_read_timeout: Option<Duration>,
    /// WebSocket options.
    pub ws: WsSettings,
    /// `--forwarded-allow-ips` when `--proxy-headers` is on.
    pub proxy: Option<crate::http::proxy::TrustedHosts>,
}

impl HttpSettings {
    /// Response headers: `date`, `server`, the `--header` defaults, then the app's own
    /// headers in its order. Unlike uvicorn, a `date` or `server` set by the app replaces
    /// ours instead of appearing twice (README, "Differences from uvicorn").
    /// `transfer-encoding` from the app is dropped: framing is the server's job ([WWW]
    /// "Response Start").
    pub fn response_headers(&self, app: Vec<(HeaderName, HeaderValue)>) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(app.len() + 2 + self.extra_headers.len());
        let app_has = |name: &HeaderName| app.iter().any(|(n, _)| n == name);
        if self.date_header && !app_has(&header::DATE) {
            map.insert(header::DATE, date_header());
        }
        if let Some(server) = &self.server_header {
            if !app_has(&header::SERVER) {
                map.insert(header::SERVER, server.clone());
            }
        }
        for (name, value) in &self.extra_headers {
            map.append(name.clone(), value.clone());
        }
        for (name, value) in app {
            if name == header::TRANSFER_ENCODING {
                continue;
            }
            map.append(name, value);
        }
        map
    }
}

/// One server's shared state.
pub struct ServerShared {
    /// Start-up settings.
    pub settings: HttpSettings,
    /// Hand-off to the event loop.
    pub bridge: Arc<Bridge>,
    /// Hand-off back to the IO thread (batched wakes).
    pub wakeups: Arc<crate::bridge::wakeups::Wakeups>,
    /// Open connections.
    pub connections: AtomicUsize,
    /// Requests dispatched to the app and not yet finished.
    pub active_requests: AtomicUsize,
    /// Streamed responses in progress, and how deep each one's queue may be.
    pub queue_budget: crate::common::queue_budget::QueueBudget,
    /// Responses completed (for `--limit-max-requests`).
    pub total_requests: AtomicU64,
    /// Set to true to stop accepting and close connections gracefully.
    pub shutdown: watch::Sender<bool>,
    /// Open HTTP connections, for shutdown to close them.
    pub connection_registry: crate::server::conn::ConnectionRegistry,
    /// TLS termination (`--ssl-certfile` given).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// `--limit-connections`: permits for open connections (accepting waits when none).
    pub connection_permits: Option<Arc<tokio::sync::Semaphore>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(server: bool) -> HttpSettings {
        HttpSettings {
            date_header: true,
            server_header: server.then(|| HeaderValue::from_static("sandman")),
            extra_headers: vec![(
                HeaderName::from_static("x-extra"),
                HeaderValue::from_static("1"),
            )],
            root_path: String::new(),
            limit_concurrency: None,
            timeout_keep_alive: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(30),
            max_head_bytes: 65536,
            max_target: 16384,
            max_headers: 100,
            max_body: None,
            body_read_timeout: None,
            ws: WsSettings::default(),
            proxy: None,
        }
    }

    #[test]
    fn defaults_first_then_app_headers() {
        let map = settings(true).response_headers(vec![
            (
                HeaderName::from_static("content-type"),
                HeaderValue::from_static("text/plain"),
            ),
            (
                HeaderName::from_static("set-cookie"),
                HeaderValue::from_static("a=1"),
            ),
            (
                HeaderName::from_static("set-cookie"),
                HeaderValue::from_static("b=2"),
            ),
        ]);
        let names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            ["date", "server", "x-extra", "content-type", "set-cookie"]
        );
        let cookies: Vec<_> = map.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }

    #[test]
    fn app_server_and_date_win() {
        let map = settings(true).response_headers(vec![
            (header::SERVER, HeaderValue::from_static("mine")),
            (header::DATE, HeaderValue::from_static("then")),
        ]);
        assert_eq!(map.get_all(header::SERVER).iter().count(), 1);
        assert_eq!(map[header::SERVER], "mine");
        assert_eq!(map[header::DATE], "then");
    }

    #[test]
    fn transfer_encoding_from_app_is_dropped() {
        let map = settings(false).response_headers(vec![(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        )]);
        assert!(map.get(header::TRANSFER_ENCODING).is_none());
        assert!(map.get(header::SERVER).is_none());
    }
}
