//! The `--metrics-port` listener: `/metrics`, `/livez` and `/readyz` on a thread of their
//! own, so a scrape or a probe is answered while the server's IO threads are saturated or
//! its event loop is blocked (which is exactly when `/livez` must say so). It reads the
//! group's metrics segment and nothing else: with `--workers` the supervisor runs it, and a
//! probe never touches a worker.

use std::convert::Infallible;
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

use crate::common::metrics::exposition::{render, Snapshot, CONTENT_TYPE};
use crate::common::metrics::health::{self, Verdict};
use crate::common::metrics::segment::Segment;

/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A running metrics listener; [`MetricsListener::close`] stops it.
pub struct MetricsListener {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What a probe needs to judge.
struct Probe {
    segment: Arc<Segment>,
    loop_timeout: Duration,
}

impl MetricsListener {
    /// Serve the listening socket `fd` (duplicated; the caller keeps its own) for the
    /// group behind `segment`; `/livez` fails past `loop_timeout` without a loop turn.
    pub fn start(
        fd: RawFd,
        segment: Arc<Segment>,
        loop_timeout: Duration,
    ) -> io::Result<MetricsListener> {
        // SAFETY: dup of a descriptor the caller guarantees is open.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor, owned by nobody else.
        let listener = unsafe { std::net::TcpListener::from_raw_fd(dup) };
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let probe = Arc::new(Probe {
            segment,
            loop_timeout,
        });
        let thread = std::thread::Builder::new()
            .name("sandman-metrics".into())
            .spawn(move || runtime.block_on(accept_loop(listener, probe, stopped)))?;
        Ok(MetricsListener {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stop listening and wait for the thread (connections in progress are dropped).
    pub fn close(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsListener {
    fn drop(&mut self) {
        self.close();
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    probe: Arc<Probe>,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of descriptors, say: try again shortly rather than spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let probe = probe.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let probe = probe.clone();
                        async move { Ok::<_, Infallible>(answer(&req, &probe)) }
                    });
                    let _ = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = &mut stopped => return,
        }
    }
}

fn answer(req: &Request<Incoming>, probe: &Probe) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match req.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(render(Snapshot::take(
                &probe.segment,
            )))));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        "/livez" => verdict(health::live(&probe.segment, probe.loop_timeout)),
        "/readyz" => verdict(health::ready(&probe.segment)),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn verdict(verdict: Verdict) -> Response<Full<Bytes>> {
    let status = if verdict.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(status, verdict.detail)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
