//! Every buffer bound and default in one place, each with what it bounds and why.

/// Bodies announced with a `content-length` up to this size (and no `Expect: 100-continue`)
/// are read completely before the app is called, so the app gets the whole body in its first
/// `http.request` with no extra round trip between threads. Larger or chunked bodies are
/// streamed with back-pressure. uvicorn buffers up to 64 KiB per connection before pausing
/// reads; 128 KiB keeps a 64 KiB form post on the fast path while bounding memory per
/// connection to the same order.
pub const EAGER_BODY_LIMIT: u64 = 128 * 1024;

/// Request body bytes buffered for the app before the socket is no longer read (uvicorn's
/// `HIGH_WATER_LIMIT` is 64 KiB too). A 1 GiB upload never holds more than this in memory.
pub const REQUEST_BODY_HIGH_WATER: usize = 64 * 1024;

/// Response body bytes one streamed response may queue between `send()` and the socket
/// before `send()` returns a pending future, at most and at least; between the two, the
/// share of `RESPONSE_QUEUE_BUDGET` each stream gets (`common/queue_budget.rs`).
/// The least is asyncio's default transport write high-water mark, as uvicorn has.
pub const RESPONSE_BODY_HIGH_WATER_MIN: usize = 64 * 1024;
/// See `RESPONSE_BODY_HIGH_WATER_MIN`.
pub const RESPONSE_BODY_HIGH_WATER_MAX: usize = 256 * 1024;
/// Response body bytes all streams of one server may queue together, unless each is at
/// its least: with up to 512 streams or connections each stream gets 256 KiB, with 1,000
/// about 128 KiB, with 2,048 and more 64 KiB.
pub const RESPONSE_QUEUE_BUDGET: usize = 128 * 1024 * 1024;

/// WebSocket message bytes queued for the socket before `send()` waits (a fixed 64 KiB).
pub const WS_SEND_HIGH_WATER: usize = RESPONSE_BODY_HIGH_WATER_MIN;

/// A `send()` waiting on a full response or WebSocket queue is resumed once the queue
/// drains below this.
pub const RESPONSE_BODY_LOW_WATER: usize = RESPONSE_BODY_HIGH_WATER_MIN / 4;

/// Default cap on the request line plus headers. uvicorn[standard] (httptools) has none,
/// h11 uses 16 KiB, nginx 8 KiB per line; we accept 64 KiB (a 64 KiB cookie still passes,
/// as uvicorn's test `test_huge_headers_*` expects), answer 431 beyond it, and let
/// `--h11-max-incomplete-event-size` change it.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;

/// hyper's read buffer never goes below 8 KiB (`max_buf_size` asserts it).
pub const MIN_HEAD_BYTES: usize = 8 * 1024;

/// Longest request target (path + query) accepted, 414 beyond. nginx allows 8 KiB per
/// header line by default, gunicorn 4 KiB for the request line; httptools (uvicorn) has no
/// limit. 16 KiB fits every sane URL and generous query strings.
pub const DEFAULT_MAX_TARGET_BYTES: usize = 16 * 1024;

/// Most request header lines accepted, 431 beyond (hyper's default; Apache's and gunicorn's
/// is 100 too).
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// How long a request body may go without new bytes while the app waits for it (408 if the
/// response has not started, else the request ends as disconnected). Counts idle time, not
/// the whole upload, so a large upload on a slow link is fine.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: f64 = 60.0;

/// The slowest a request body may arrive, in bytes per second, once
/// `DEFAULT_BODY_RATE_GRACE_SECS` of waiting has passed (408 below it): Apache's
/// `mod_reqtimeout` default (`body=20,MinRate=500`). Only time spent waiting for the
/// client counts, not time the app leaves the body unread. A body trickled at a byte every
/// two seconds, which the idle timeout alone lets through, is cut off after about 20 s.
pub const DEFAULT_BODY_MIN_RATE: f64 = 500.0;

/// See `DEFAULT_BODY_MIN_RATE`.
pub const DEFAULT_BODY_RATE_GRACE_SECS: f64 = 20.0;

/// How long a client may take to send a complete request head, counted from the moment the
/// server starts waiting for it (accept, or the end of the previous response). Stops
/// slowloris. nginx's `client_header_timeout` is 60 s, hyper's default 30 s.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: f64 = 30.0;

/// HTTP/2 streams one client may have open at once (`--h2-max-concurrent-streams`). RFC
/// 9113 §6.5.2 recommends no less than 100; hypercorn and nginx use 100, hyper 200. Each
/// open stream can hold an app task and up to a response queue's worth of memory.
pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// A keep-alive connection or a WebSocket idle this long gives back its buffers (hyper's two
/// 8 KiB buffers; yawc's 65 KiB ones) until the client's next bytes: see `server/park.rs`
/// and `ws/park.rs`. Long enough that a busy connection never pays for setting them up
/// again more than once a second, short enough that idle ones hold almost nothing.
pub const IDLE_PARK_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// permessage-deflate's LZ77 window, 2^12 = 4 KiB, both ways (`--ws-deflate-window-bits`):
/// what the Python `websockets` library (uvicorn's) negotiates. A client's compressor and
/// our decompressor need no more than the window; the ratio on larger repeats is what a
/// bigger window buys back.
pub const DEFAULT_WS_DEFLATE_WINDOW_BITS: u8 = 12;
