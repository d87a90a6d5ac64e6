//! The IO side as a whole: the tokio runtime, the listeners, accepted connections and TLS.
//! [`Server`] is what the app side drives through `exchange::app::Transport`.

pub mod client_io;
pub mod conn;
pub mod counted;
pub mod delayed_ack;
pub mod file_send;
pub mod idle;
pub mod listener;
pub mod metrics_listener;
pub mod park;
pub mod registry;
pub mod runtime;
pub mod sniff;
pub mod tls;

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::common::settings::Settings;
use crate::exchange::app::{AppSide, Transport};
use crate::exchange::hub::Hub;
use crate::http::context::ServerContext;
use crate::server::registry::ConnectionRegistry;
use crate::server::runtime::IoRuntime;

/// What every connection of one server shares on the IO side.
pub struct ServerShared {
    /// The exchanges' side of the server: counters, response defaults, shutdown flag.
    pub hub: Arc<Hub>,
    /// Settings and the app side, as the HTTP layer sees them.
    pub ctx: Arc<ServerContext>,
    /// Open HTTP connections, for shutdown to close them.
    pub registry: ConnectionRegistry,
    /// TLS termination (`--ssl-certfile` given).
    pub tls: Option<TlsTermination>,
    /// `--limit-connections`: permits for open connections (accepting waits when none).
    pub connection_permits: Option<Arc<Semaphore>>,
}

/// The acceptor for TLS connections, and the certificate it presents.
#[derive(Clone)]
pub struct TlsTermination {
    /// Performs each connection's handshake.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// The server's certificate, DER (for the scope's `tls` extension).
    pub server_cert: Arc<[u8]>,
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// A TLS setting that cannot work (a missing or unreadable file, a bad key...).
    Tls(String),
    /// The runtime's threads could not start.
    Io(io::Error),
    /// A setting that cannot work (a static directory that cannot be opened...).
    Settings(String),
}

/// A running IO side: its threads and what its connections share.
pub struct Server {
    runtime: Mutex<Option<IoRuntime>>,
    shared: Arc<ServerShared>,
}

impl Server {
    /// Start the IO threads for `settings`; connections share `hub` and hand their
    /// requests to `app`. `on_unpark` runs each time an IO thread wakes, `on_park` each
    /// time one is about to go idle (see `runtime.rs`).
    pub fn start(
        settings: Settings,
        hub: Arc<Hub>,
        app: Box<dyn AppSide>,
        on_unpark: fn(),
        on_park: impl Fn() + Send + Sync + 'static,
    ) -> Result<Server, StartError> {
        let tls = match &settings.tls {
            Some(options) => {
                let http2 = settings.http.http2.is_some();
                let termination = tls::server_config(options, http2).map_err(StartError::Tls)?;
                Some(TlsTermination {
                    acceptor: tokio_rustls::TlsAcceptor::from(termination.config),
                    server_cert: termination.server_cert,
                })
            }
            None => None,
        };
        let io_threads = settings.io_threads;
        let ctx = ServerContext::new(settings, app).map_err(StartError::Settings)?;
        let runtime = IoRuntime::start(io_threads, on_unpark, on_park).map_err(StartError::Io)?;
        let connection_permits = ctx
            .settings
            .max_connections
            .map(|n| Arc::new(Semaphore::new(n.max(1))));
        Ok(Server {
            runtime: Mutex::new(Some(runtime)),
            shared: Arc::new(ServerShared {
                hub,
                ctx: Arc::new(ctx),
                registry: ConnectionRegistry::default(),
                tls,
                connection_permits,
            }),
        })
    }

    /// Run a task on the IO threads.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = self.runtime.lock().unwrap().as_ref() {
            runtime.spawn(future);
        }
    }
}

impl Transport for Server {
    fn listen(&self, fd: RawFd) -> io::Result<()> {
        let listener = listener::adopt(fd)?;
        let runtime = self.runtime.lock().unwrap();
        let runtime = runtime
            .as_ref()
            .ok_or_else(|| io::Error::other("server is closed"))?;
        runtime.spawn(listener::accept_loop(listener, self.shared.clone()));
        Ok(())
    }

    fn shutdown(&self) {
        self.shared.hub.shutdown.send_replace(true);
        self.shared.registry.close_all();
    }

    fn close(&self) {
        let runtime = self.runtime.lock().unwrap().take();
        if let Some(runtime) = runtime {
            runtime.shutdown();
        }
    }
}
