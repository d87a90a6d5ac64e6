//! The server's settings, fixed at start-up: plain data, read from Python once
//! (`asgi/convert/settings.rs`) and handed to the layers that use each part.

use std::path::PathBuf;
use std::time::Duration;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::common::date::date_header;
use crate::common::limits::{
    DEFAULT_BODY_MIN_RATE, DEFAULT_BODY_RATE_GRACE_SECS, DEFAULT_BODY_READ_TIMEOUT_SECS,
    DEFAULT_H2_MAX_CONCURRENT_STREAMS, DEFAULT_HEADER_READ_TIMEOUT_SECS, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_TARGET_BYTES, DEFAULT_WS_DEFLATE_WINDOW_BITS,
    IDLE_PARK_AFTER,
};
use crate::common::trusted_hosts::TrustedHosts;

/// Everything the transport needs to know, by layer.
#[derive(Default)]
pub struct Settings {
    /// HTTP limits, timeouts and proxy trust.
    pub http: HttpSettings,
    /// WebSocket options.
    pub ws: WsSettings,
    /// TLS termination, when `--ssl-certfile` is given.
    pub tls: Option<TlsSettings>,
    /// IO threads (one by default).
    pub io_threads: usize,
    /// `--limit-connections`: open connections at most (accepting waits beyond).
    pub max_connections: Option<usize>,
    /// `--static` mounts, served by the core without the app.
    pub static_mounts: Vec<StaticMount>,
    /// `--cache-size`: the response cache's bound in bytes (`None`: no cache).
    pub cache_bytes: Option<u64>,
}

/// One `--static PREFIX=DIRECTORY` mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMount {
    /// The URL path prefix, `/` first and no trailing `/` (empty for the whole site).
    pub prefix: String,
    /// The directory served.
    pub directory: PathBuf,
    /// `--static-max-age`: `Cache-Control: public, max-age=N` on its files.
    pub max_age: Option<u64>,
    /// `--static-index`: a directory is served as its `index.html`.
    pub index: bool,
}

/// HTTP behaviour.
pub struct HttpSettings {
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
    /// The slowest a request body may arrive, after a grace period (408); `None` = off.
    pub body_min_rate: Option<MinRate>,
    /// `--forwarded-allow-ips` when `--proxy-headers` is on.
    pub proxy: Option<TrustedHosts>,
    /// Whether access lines are written: responses the transport writes itself (static
    /// files, cache hits) skip the record when not.
    pub access_log: bool,
    /// HTTP/2, or `None` for HTTP/1.x only (`--http h11`).
    pub http2: Option<Http2Settings>,
    /// An HTTP/1.1 keep-alive connection idle this long is parked (`server/park.rs`).
    pub park_after: Duration,
}

/// HTTP/2 behaviour (on by default: by ALPN under TLS, by its preface on plain TCP).
#[derive(Debug, Clone)]
pub struct Http2Settings {
    /// `--h2-max-concurrent-streams`: streams a client may have open at once.
    pub max_concurrent_streams: u32,
    /// Largest decoded header list a client may send (431 on HTTP/1.1; a stream reset
    /// on HTTP/2): the same limit as the HTTP/1.1 head.
    pub max_header_list_size: u32,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            max_concurrent_streams: DEFAULT_H2_MAX_CONCURRENT_STREAMS,
            max_header_list_size: DEFAULT_MAX_HEAD_BYTES as u32,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            root_path: String::new(),
            limit_concurrency: None,
            timeout_keep_alive: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs_f64(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_target: DEFAULT_MAX_TARGET_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body: None,
            body_read_timeout: Some(Duration::from_secs_f64(DEFAULT_BODY_READ_TIMEOUT_SECS)),
            body_min_rate: Some(MinRate::default()),
            proxy: None,
            access_log: false,
            http2: Some(Http2Settings::default()),
            park_after: IDLE_PARK_AFTER,
        }
    }
}

/// `--limit-request-body-rate` and its grace period: a request body must arrive at
/// `bytes_per_sec` on average, counting only the time the server waits for the client,
/// once `grace` has passed (Apache's `mod_reqtimeout` `MinRate` model: the allowance is
/// `grace + received / bytes_per_sec`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinRate {
    /// Bytes per second, more than 0.
    pub bytes_per_sec: f64,
    /// Waiting time allowed before the rate counts.
    pub grace: Duration,
}

impl Default for MinRate {
    fn default() -> Self {
        MinRate {
            bytes_per_sec: DEFAULT_BODY_MIN_RATE,
            grace: Duration::from_secs_f64(DEFAULT_BODY_RATE_GRACE_SECS),
        }
    }
}

/// WebSocket behaviour (uvicorn's `--ws-*` options).
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
    /// `--ws-deflate-window-bits`: the LZ77 window (2^bits bytes) offered for both
    /// directions, 9 to 15.
    pub deflate_window_bits: u8,
    /// `--ws-deflate-context-takeover`: keep each direction's compression context between
    /// messages (better ratio on similar messages, ~300 KB per socket, never parked).
    pub deflate_context_takeover: bool,
    /// A WebSocket idle this long is parked (`ws/park.rs`).
    pub park_after: Duration,
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
            deflate_window_bits: DEFAULT_WS_DEFLATE_WINDOW_BITS,
            deflate_context_takeover: false,
            park_after: IDLE_PARK_AFTER,
        }
    }
}

/// `--ssl-*` settings.
#[derive(Debug, Default, Clone)]
pub struct TlsSettings {
    /// `--ssl-certfile`
    pub certfile: String,
    /// `--ssl-keyfile` (the certfile is searched for a key when absent)
    pub keyfile: Option<String>,
    /// `--ssl-keyfile-password`
    pub password: Option<String>,
    /// `--ssl-ca-certs`
    pub ca_certs: Option<String>,
    /// `--ssl-cert-reqs`: 0, 1 or 2
    pub cert_reqs: i32,
    /// `--ssl-version`: a stdlib `ssl.PROTOCOL_*` value
    pub version: i32,
    /// `--ssl-ciphers`
    pub ciphers: Option<String>,
}

/// The headers the server puts on every response, its own and the app's alike.
#[derive(Clone)]
pub struct ResponseDefaults {
    /// Add `date` unless the app sets one.
    pub date_header: bool,
    /// `server: sandman`, or `None` when disabled or replaced by a `--header server:...`.
    pub server_header: Option<HeaderValue>,
    /// `--header` values, added to every response after `date`/`server`.
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
}

impl Default for ResponseDefaults {
    fn default() -> Self {
        ResponseDefaults {
            date_header: true,
            server_header: Some(HeaderValue::from_static("sandman")),
            extra_headers: Vec::new(),
        }
    }
}

impl ResponseDefaults {
    /// Response headers: `date`, `server`, the `--header` defaults, then the app's own
    /// headers in its order. Unlike uvicorn, a `date` or `server` set by the app replaces
    /// ours instead of appearing twice (docs, "Differences from uvicorn").
    /// `transfer-encoding` from the app is dropped: framing is the server's job.
    pub fn headers(&self, app: Vec<(HeaderName, HeaderValue)>) -> HeaderMap {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(server: bool) -> ResponseDefaults {
        ResponseDefaults {
            date_header: true,
            server_header: server.then(|| HeaderValue::from_static("sandman")),
            extra_headers: vec![(
                HeaderName::from_static("x-extra"),
                HeaderValue::from_static("1"),
            )],
        }
    }

    #[test]
    fn defaults_first_then_app_headers() {
        let map = defaults(true).headers(vec![
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
        let map = defaults(true).headers(vec![
            (header::SERVER, HeaderValue::from_static("mine")),
            (header::DATE, HeaderValue::from_static("then")),
        ]);
        assert_eq!(map.get_all(header::SERVER).iter().count(), 1);
        assert_eq!(map[header::SERVER], "mine");
        assert_eq!(map[header::DATE], "then");
    }

    #[test]
    fn transfer_encoding_from_app_is_dropped() {
        let map = defaults(false).headers(vec![(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        )]);
        assert!(map.get(header::TRANSFER_ENCODING).is_none());
        assert!(map.get(header::SERVER).is_none());
    }
}
