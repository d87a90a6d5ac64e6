//! The server's settings, read once from `sandman_asgi.core_settings.CoreSettings`.
//!
//! Each field is read by name with its type checked by PyO3 (a wrong one is a `TypeError`
//! naming the field); values that cannot work (a header that is not a header, a negative
//! timeout) are a `ValueError`. The result is split by who uses it: the transport's plain
//! [`Settings`], the response defaults every exchange shares, and what the app side keeps.

use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::asgi::eager_task::TaskHooks;
use crate::asgi::metrics_group::MetricsGroup;
use crate::common::limits::IDLE_PARK_AFTER;
use crate::common::metrics::recorder::Metrics;
use crate::common::settings::{
    Http2Settings, HttpSettings, MinRate, ResponseDefaults, Settings, StaticMount, TlsSettings,
    WsSettings,
};
use crate::common::trusted_hosts::TrustedHosts;

/// `sandman_asgi.core_settings.TlsSettings`.
#[derive(FromPyObject)]
pub struct PyTls {
    certfile: String,
    keyfile: Option<String>,
    password: Option<String>,
    ca_certs: Option<String>,
    cert_reqs: i32,
    version: i32,
    ciphers: Option<String>,
}

impl PyTls {
    /// The transport's form.
    pub fn into_settings(self) -> TlsSettings {
        TlsSettings {
            certfile: self.certfile,
            keyfile: self.keyfile,
            password: self.password,
            ca_certs: self.ca_certs,
            cert_reqs: self.cert_reqs,
            version: self.version,
            ciphers: self.ciphers,
        }
    }
}

/// `sandman_asgi.core_settings.RequestTaskHooks`.
#[derive(FromPyObject)]
struct PyTaskHooks {
    enter: Py<PyAny>,
    leave: Py<PyAny>,
    hand_over: Py<PyAny>,
    cancelled_error: Py<PyAny>,
    invalid_state: Py<PyAny>,
    name_counter: Py<PyAny>,
    weakref_count: Py<PyAny>,
}

/// `sandman_asgi.core_settings.CoreSettings`, field for field.
#[derive(FromPyObject)]
struct PyCoreSettings {
    event_loop: Py<PyAny>,
    on_request: Py<PyAny>,
    on_websocket: Option<Py<PyAny>>,
    on_log: Py<PyAny>,
    access_log: Option<Py<PyAny>>,
    ws_log: Option<Py<PyAny>>,
    create_future: Py<PyAny>,
    call_soon: Py<PyAny>,
    create_task: Py<PyAny>,
    task_kwargs: Option<Py<PyDict>>,
    fresh_context: bool,
    request_task: Option<PyTaskHooks>,
    state: Py<PyDict>,
    root_path: String,
    asgi_version: String,
    server_header: bool,
    date_header: bool,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    limit_concurrency: Option<usize>,
    timeout_keep_alive: f64,
    header_read_timeout: f64,
    max_head_bytes: usize,
    max_target: usize,
    max_headers: usize,
    max_body: Option<u64>,
    body_read_timeout: Option<f64>,
    body_min_rate: Option<f64>,
    body_rate_grace: f64,
    max_connections: Option<usize>,
    io_threads: usize,
    ws_max_size: usize,
    ws_max_queue: usize,
    ws_ping_interval: Option<f64>,
    ws_ping_timeout: Option<f64>,
    ws_per_message_deflate: bool,
    ws_deflate_window_bits: u8,
    ws_deflate_context_takeover: bool,
    forwarded_allow_ips: Option<Vec<String>>,
    http2: bool,
    h2_max_concurrent_streams: u32,
    tls: Option<PyTls>,
    tune_malloc: bool,
    static_mounts: Vec<PyStaticMount>,
    cache_bytes: Option<u64>,
    metrics: Option<(Py<MetricsGroup>, usize)>,
}

/// `sandman_asgi.core_settings.StaticMount`.
#[derive(FromPyObject)]
struct PyStaticMount {
    prefix: String,
    directory: std::path::PathBuf,
    max_age: Option<u64>,
    index: bool,
}

/// What the app side keeps: the loop's and the app's callables, and scope-wide values.
pub struct AppConfig {
    /// `runner(app, scope, cycle)` partial: the coroutine that runs the app for a request.
    pub on_request: Py<PyAny>,
    /// The same for WebSockets (`None`: `--ws none`).
    pub on_websocket: Option<Py<PyAny>>,
    /// `on_log(level, message)` for lines from the IO threads.
    pub on_log: Py<PyAny>,
    /// The access-line writer, `None` when the access log is off.
    pub access_log: Option<Py<PyAny>>,
    /// The WebSocket handshake-line writer.
    pub ws_log: Option<Py<PyAny>>,
    /// `loop.create_future`.
    pub create_future: Py<PyAny>,
    /// `loop.call_soon`.
    pub call_soon: Py<PyAny>,
    /// What starts each app task (`asyncio.Task` or `loop.create_task`).
    pub create_task: Py<PyAny>,
    /// Keywords passed to `create_task` on every call (`loop=`, `eager_start=`).
    pub task_kwargs: Option<Py<PyDict>>,
    /// Run each task in a fresh `contextvars.Context` (`--reset-contextvars`).
    pub fresh_context: bool,
    /// Set where HTTP apps start as `RequestTask`s (Python 3.11, no task factory).
    pub task_hooks: Option<TaskHooks>,
    /// The lifespan `state` namespace; each scope gets a shallow copy.
    pub state: Py<PyDict>,
    /// `--root-path`.
    pub root_path: String,
    /// `"3.0"`, or `"2.0"` for a wrapped ASGI2 app.
    pub asgi_version: String,
}

/// The settings, split by who uses them.
pub struct CoreConfig {
    /// The transport's settings.
    pub settings: Settings,
    /// Headers on every response.
    pub response: ResponseDefaults,
    /// The app side's.
    pub app: AppConfig,
    /// Tune glibc's malloc for the process (only when the `sandman` command owns it).
    pub tune_malloc: bool,
    /// Where this process records its metrics (`--metrics-port`).
    pub metrics: Option<Metrics>,
}

fn duration(secs: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| PyValueError::new_err(format!("invalid {what}: {secs}")))
}

/// A timeout where 0 or less (or none) means "off".
fn optional_duration(secs: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    match secs {
        Some(s) if s > 0.0 => Ok(Some(duration(s, what)?)),
        _ => Ok(None),
    }
}

/// `--limit-request-body-rate` (0 or none: off) with its grace period.
fn min_rate(bytes_per_sec: Option<f64>, grace: f64) -> PyResult<Option<MinRate>> {
    let Some(rate) = bytes_per_sec.filter(|&r| r != 0.0) else {
        return Ok(None);
    };
    if !rate.is_finite() || rate < 0.0 {
        return Err(PyValueError::new_err(format!(
            "invalid body_min_rate: {rate}"
        )));
    }
    let grace = if grace > 0.0 {
        duration(grace, "body_rate_grace")?
    } else {
        Duration::ZERO
    };
    Ok(Some(MinRate {
        bytes_per_sec: rate,
        grace,
    }))
}

fn extra_headers(headers: Vec<(Vec<u8>, Vec<u8>)>) -> PyResult<Vec<(HeaderName, HeaderValue)>> {
    headers
        .into_iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(&name).map_err(|_| {
                PyValueError::new_err(format!(
                    "invalid header name {:?}",
                    String::from_utf8_lossy(&name)
                ))
            })?;
            let value = HeaderValue::from_bytes(&value)
                .map_err(|_| PyValueError::new_err(format!("invalid value for header {name}")))?;
            Ok((name, value))
        })
        .collect()
}

/// Read a `CoreSettings` object.
pub fn read(settings: &Bound<'_, PyAny>) -> PyResult<CoreConfig> {
    let py = settings.py();
    let s: PyCoreSettings = settings.extract()?;
    let extra_headers = extra_headers(s.headers)?;
    // A `--header server:...` replaces the default one.
    let overridden = extra_headers
        .iter()
        .any(|(n, _)| n == hyper::header::SERVER);
    let response = ResponseDefaults {
        date_header: s.date_header,
        server_header: (s.server_header && !overridden)
            .then(|| HeaderValue::from_static("sandman")),
        extra_headers,
    };
    let http = HttpSettings {
        root_path: s.root_path.clone(),
        limit_concurrency: s.limit_concurrency,
        timeout_keep_alive: duration(s.timeout_keep_alive, "timeout_keep_alive")?,
        header_read_timeout: duration(s.header_read_timeout, "header_read_timeout")?,
        max_head_bytes: s.max_head_bytes.max(1),
        max_target: s.max_target,
        max_headers: s.max_headers.max(1),
        max_body: s.max_body,
        body_read_timeout: optional_duration(s.body_read_timeout, "body_read_timeout")?,
        body_min_rate: min_rate(s.body_min_rate, s.body_rate_grace)?,
        proxy: s.forwarded_allow_ips.map(|list| TrustedHosts::parse(&list)),
        access_log: s.access_log.is_some(),
        http2: s.http2.then(|| Http2Settings {
            max_concurrent_streams: s.h2_max_concurrent_streams.max(1),
            max_header_list_size: u32::try_from(s.max_head_bytes.max(1)).unwrap_or(u32::MAX),
        }),
        park_after: IDLE_PARK_AFTER,
    };
    let ws = WsSettings {
        enabled: s.on_websocket.is_some(),
        max_size: s.ws_max_size,
        max_queue: s.ws_max_queue.max(1),
        ping_interval: optional_duration(s.ws_ping_interval, "ws_ping_interval")?,
        ping_timeout: optional_duration(s.ws_ping_timeout, "ws_ping_timeout")?,
        per_message_deflate: s.ws_per_message_deflate,
        deflate_window_bits: s.ws_deflate_window_bits.clamp(9, 15),
        deflate_context_takeover: s.ws_deflate_context_takeover,
        park_after: IDLE_PARK_AFTER,
    };
    let tls = s.tls.map(PyTls::into_settings);
    let metrics = match &s.metrics {
        Some((group, index)) => Some(group.get().recorder(*index)?),
        None => None,
    };
    let task_hooks = s.request_task.map(|h| TaskHooks {
        event_loop: s.event_loop.clone_ref(py),
        enter: h.enter,
        leave: h.leave,
        hand_over: h.hand_over,
        cancelled_error: h.cancelled_error,
        invalid_state: h.invalid_state,
        name_counter: h.name_counter,
        weakref_count: h.weakref_count,
    });
    Ok(CoreConfig {
        settings: Settings {
            http,
            ws,
            tls,
            io_threads: s.io_threads.max(1),
            max_connections: s.max_connections,
            static_mounts: s
                .static_mounts
                .into_iter()
                .map(|m| StaticMount {
                    prefix: m.prefix,
                    directory: m.directory,
                    max_age: m.max_age,
                    index: m.index,
                })
                .collect(),
            cache_bytes: s.cache_bytes.filter(|&n| n > 0),
        },
        response,
        app: AppConfig {
            on_request: s.on_request,
            on_websocket: s.on_websocket,
            on_log: s.on_log,
            access_log: s.access_log,
            ws_log: s.ws_log,
            create_future: s.create_future,
            call_soon: s.call_soon,
            create_task: s.create_task,
            task_kwargs: s.task_kwargs,
            fresh_context: s.fresh_context,
            task_hooks,
            state: s.state,
            root_path: s.root_path,
            asgi_version: s.asgi_version,
        },
        tune_malloc: s.tune_malloc,
        metrics,
    })
}
