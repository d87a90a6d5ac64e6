//! One client connection, as its exchanges see it: who is at each end, whether the app
//! asked to close it, and the requests in progress on it.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;

use futures::task::AtomicWaker;
use tokio::sync::OwnedSemaphorePermit;

use crate::common::certificates;
use crate::common::direct_output::DirectOutput;
use crate::common::metrics::recorder::Stamp;
use crate::exchange::activity::Activity;
use crate::exchange::hub::Hub;
use crate::exchange::wire::Wire;

/// Where the listening socket is, as the scope's `server` key reports it.
#[derive(Debug, Clone)]
pub enum ServerAddr {
    /// `(host, port)`
    Tcp(String, u16),
    /// `(path, None)`.
    Unix(String),
}

/// The two ends of a connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The client, `None` on a Unix socket.
    pub client: Option<(String, u16)>,
    /// The local end.
    pub server: Option<ServerAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// What the TLS handshake settled, on TLS connections.
    pub tls_info: Option<Arc<TlsInfo>>,
}

/// What a TLS handshake settled: the ASGI `tls` extension reports it.
#[derive(Debug)]
pub struct TlsInfo {
    /// The protocol version's code point (0x0303 for TLS 1.2, 0x0304 for 1.3).
    pub version: u16,
    /// The negotiated cipher suite's IANA code point.
    pub cipher_suite: u16,
    /// The server's certificate, DER.
    pub server_cert: Arc<[u8]>,
    /// The client's certificates, leaf first, DER (empty without client authentication).
    pub client_chain: Vec<Vec<u8>>,
    /// The certificates as text, made the first time a scope asks.
    pub text: OnceLock<TlsText>,
}

/// The certificates of a TLS connection as the ASGI `tls` extension reports them.
#[derive(Debug)]
pub struct TlsText {
    /// The server's certificate, PEM.
    pub server_cert: String,
    /// The client's certificates, leaf first, PEM.
    pub client_chain: Vec<String>,
    /// The client certificate's subject, RFC 4514.
    pub client_name: Option<String>,
}

impl TlsInfo {
    /// The certificates as text.
    pub fn text(&self) -> &TlsText {
        self.text.get_or_init(|| TlsText {
            server_cert: certificates::pem(&self.server_cert),
            client_chain: self
                .client_chain
                .iter()
                .map(|der| certificates::pem(der))
                .collect(),
            client_name: self
                .client_chain
                .first()
                .and_then(|leaf| certificates::subject_name(leaf)),
        })
    }
}

/// Per-connection state shared with the exchanges on it.
///
/// One allocation on purpose: every request reads the close flag and updates the activity
/// count, and at 1,000 connections each separate allocation was one more cache miss per
/// request.
pub struct Connection {
    /// The server this connection belongs to.
    pub hub: Arc<Hub>,
    /// Peer and local addresses.
    pub peer: Peer,
    /// Whether the peer is a trusted proxy (`--forwarded-allow-ips`), decided on the
    /// first request: the peer and the list cannot change during a connection.
    pub proxy_trusted: OnceLock<bool>,
    /// What the app side keeps for the whole connection (its form of the addresses, built
    /// once). Dropped with the connection; the app side's type decides how it is released.
    pub app_data: OnceLock<Box<dyn Any + Send + Sync>>,
    /// The `--limit-connections` permit; a WebSocket takes it over when it upgrades.
    pub permit: Mutex<Option<OwnedSemaphorePermit>>,
    /// Asks the connection to close after the response in flight.
    pub control: CloseControl,
    /// Requests in progress, for the idle timeout.
    pub activity: Activity,
    /// What the socket wrapper reports: a half-close, completed flushes.
    pub wire: Wire,
    /// The side door for file bodies (`sendfile` below hyper: static mounts, pathsend), on
    /// plain TCP connections.
    pub direct_output: Option<Arc<DirectOutput>>,
}

impl Connection {
    /// A new connection of the server behind `hub`.
    pub fn new(hub: Arc<Hub>, peer: Peer, permit: Option<OwnedSemaphorePermit>) -> Connection {
        Connection {
            hub,
            peer,
            proxy_trusted: OnceLock::new(),
            app_data: OnceLock::new(),
            permit: Mutex::new(permit),
            control: CloseControl::default(),
            activity: Activity::new(),
            wire: Wire::default(),
            direct_output: None,
        }
    }

    /// Give the connection its side door for file bodies.
    pub fn with_direct_output(mut self, direct_output: Arc<DirectOutput>) -> Connection {
        self.direct_output = Some(direct_output);
        self
    }

    /// A request head was parsed: the connection counts as busy until the guard is
    /// dropped (and with metrics on, the request is timed until then).
    pub fn begin_request(self: &Arc<Self>, method: &hyper::Method) -> InProgress {
        self.activity.begin();
        let stamp = self.hub.metrics.as_ref().map(|m| m.request_started(method));
        InProgress(self.clone(), stamp)
    }
}

/// One request in progress, from its parsed head until the transport drops its response
/// body: the connection counts as busy while this lives. The stamp (metrics on) carries
/// the start, the method and, once set, the status class.
pub struct InProgress(Arc<Connection>, Option<Stamp>);

impl InProgress {
    /// The response's status is known.
    pub fn responded(&mut self, status: u16) {
        if let Some(stamp) = &mut self.1 {
            *stamp = stamp.with_status(status);
        }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.activity.end();
        if let (Some(metrics), Some(stamp)) = (&self.0.hub.metrics, self.1) {
            metrics.request_finished(stamp);
        }
    }
}

/// "Close this connection once the current response is out": set by server shutdown (for
/// every connection) or by the app side (an app that returned a value). Checked on each
/// poll of the connection with one atomic load; the waker is registered once per task.
#[derive(Default)]
pub struct CloseControl {
    close: AtomicBool,
    waker: AtomicWaker,
}

impl CloseControl {
    /// Request the close and wake the connection's task.
    pub fn close(&self) {
        self.close.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether a close was requested.
    pub fn requested(&self) -> bool {
        self.close.load(Ordering::Acquire)
    }

    /// The task to wake when a close is requested.
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Drop the registered waker: the task has ended, and a waker keeps its whole task
    /// allocated (4 KB) for as long as this lives, which for an upgraded WebSocket is its
    /// whole life.
    pub fn forget_task(&self) {
        drop(self.waker.take());
    }
}
