//! Accept loops over listening sockets the Python side bound (or inherited with `--fd`).
//!
//! Python owns binding (so `--fd`, `--uds`, pre-bound sockets for `--workers`/`--reload`
//! and `Server.serve(sockets=...)` all take one path); Rust gets a duplicate descriptor and
//! owns accepting.

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::common::direct_output::DirectOutput;
use crate::common::log::Level;
use crate::exchange::connection::{Connection, Peer, ServerAddr, TlsInfo};
use crate::server::conn::{self, Protocol};
use crate::server::counted::Counted;
use crate::server::delayed_ack::DelayedAckStream;
use crate::server::file_send::{FileSendStream, SIDE_DOOR};
use crate::server::sniff::Sniff;
use crate::server::ServerShared;

/// A listening socket ready to be served.
pub enum Listener {
    /// TCP (IPv4 or IPv6).
    Tcp(std::net::TcpListener),
    /// A Unix domain socket, with its path for the scope's `server`.
    Unix(std::os::unix::net::UnixListener, String),
}

/// Take a duplicate of a listening descriptor owned by Python.
pub fn adopt(fd: RawFd) -> io::Result<Listener> {
    // SAFETY: dup of a descriptor the caller guarantees is open; we own the duplicate.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor nobody else owns.
    let socket = unsafe { Socket::from_raw_fd(dup) };
    socket.set_nonblocking(true)?;
    let local = socket.local_addr()?;
    if local.is_unix() {
        let path = local
            .as_pathname()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Listener::Unix(socket.into(), path))
    } else if local.as_socket().is_some() {
        Ok(Listener::Tcp(socket.into()))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a TCP or Unix socket",
        ))
    }
}

/// Too many open files: log once, then back off until descriptors free up.
fn is_fd_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// How long a client may take to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve an accepted stream, after the TLS handshake when TLS is on.
fn spawn_connection<IO>(
    stream: IO,
    server: Arc<ServerShared>,
    mut peer: Peer,
    permit: Option<OwnedSemaphorePermit>,
    direct_output: Option<Arc<DirectOutput>>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Sniff + Unpin + Send + Sync + 'static,
{
    let stream = Counted::new(stream, server.hub.metrics.clone());
    let Some(tls) = server.tls.clone() else {
        let http = &server.ctx.settings.http;
        if http.http2.is_none() {
            let conn = Arc::new(plain_connection(&server, peer, permit, direct_output));
            tokio::spawn(conn::serve(stream, conn, server, Protocol::Http1));
            return;
        }
        // The same bound as the wait for a request head (server/idle.rs).
        let wait = http.timeout_keep_alive.min(http.header_read_timeout);
        tokio::spawn(async move {
            let shutdown = server.hub.shutdown.subscribe();
            let Some(protocol) = stream.protocol(wait, shutdown).await else {
                return;
            };
            // The side door for static files is HTTP/1.1's: HTTP/2 frames its bytes.
            let direct_output = direct_output.filter(|_| protocol == Protocol::Http1);
            let conn = Arc::new(plain_connection(&server, peer, permit, direct_output));
            conn::serve(stream, conn, server, protocol).await;
        });
        return;
    };
    tokio::spawn(async move {
        // A client that fails or stalls the handshake just goes away (no log spam:
        // scanners and health checks do this constantly).
        let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream));
        let Ok(Ok(stream)) = handshake.await else {
            return;
        };
        let session = stream.get_ref().1;
        let protocol = match session.alpn_protocol() {
            Some(b"h2") => Protocol::Http2,
            _ => Protocol::Http1,
        };
        peer.tls = true;
        peer.tls_info = Some(Arc::new(TlsInfo {
            version: session.protocol_version().map_or(0, u16::from),
            cipher_suite: session
                .negotiated_cipher_suite()
                .map_or(0, |suite| u16::from(suite.suite())),
            server_cert: tls.server_cert.clone(),
            client_chain: session
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
                .unwrap_or_default(),
            text: Default::default(),
        }));
        let conn = Arc::new(Connection::new(server.hub.clone(), peer, permit));
        conn::serve(stream, conn, server, protocol).await;
    });
}

/// A plain (not TLS) connection's state, with its side door for static files if it has one.
fn plain_connection(
    server: &ServerShared,
    peer: Peer,
    permit: Option<OwnedSemaphorePermit>,
    direct_output: Option<Arc<DirectOutput>>,
) -> Connection {
    let conn = Connection::new(server.hub.clone(), peer, permit);
    match direct_output {
        Some(direct_output) => conn.with_direct_output(direct_output),
        None => conn,
    }
}

/// Wait for a `--limit-connections` permit (`Some(None)` when there is no limit); `None`
/// when the server shuts down while waiting. Past the limit the kernel's backlog holds new
/// clients until a connection closes.
async fn next_permit(
    server: &Arc<ServerShared>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Option<OwnedSemaphorePermit>> {
    let Some(permits) = &server.connection_permits else {
        return Some(None);
    };
    tokio::select! {
        permit = permits.clone().acquire_owned() => permit.ok().map(Some),
        _ = shutdown.changed() => None,
    }
}

/// Accept until the server shuts down. Must run inside the tokio runtime.
pub async fn accept_loop(listener: Listener, server: Arc<ServerShared>) {
    let mut shutdown = server.hub.shutdown.subscribe();
    if *shutdown.borrow() {
        return;
    }
    // Logged at most once a minute: a server at its fd limit dips in and out of it many
    // times a second, and one line per dip would flood the log.
    let mut exhaustion_logged: Option<std::time::Instant> = None;
    macro_rules! on_error {
        ($err:expr) => {{
            let err = $err;
            if is_fd_exhaustion(&err) {
                if exhaustion_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    exhaustion_logged = Some(std::time::Instant::now());
                    server.ctx.log(
                        Level::Error,
                        format!("Cannot accept connections: {err}. Backing off."),
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }};
    }
    match listener {
        Listener::Tcp(std) => {
            let listener = match tokio::net::TcpListener::from_std(std) {
                Ok(l) => l,
                Err(e) => {
                    server.ctx.log(Level::Error, format!("Cannot listen: {e}"));
                    return;
                }
            };
            loop {
                let Some(permit) = next_permit(&server, &mut shutdown).await else {
                    break;
                };
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            let _ = stream.set_nodelay(true);
                            let server_addr = stream.local_addr().ok().map(|a| ServerAddr::Tcp(a.ip().to_string(), a.port()));
                            let peer = Peer {
                                client: Some((peer.ip().to_canonical().to_string(), peer.port())),
                                server: server_addr,
                                tls: false,
                                tls_info: None,
                            };
                            // The side door for file bodies (`sendfile` below hyper: static
                            // mounts and the app's pathsend), on plain TCP only: under TLS the
                            // bytes pass through rustls.
                            let direct = (SIDE_DOOR && server.tls.is_none())
                                .then(Arc::default);
                            let stream = FileSendStream::new(DelayedAckStream::new(stream), direct.clone());
                            spawn_connection(stream, server.clone(), peer, permit, direct);
                        }
                        Err(err) => on_error!(err),
                    },
                    _ = shutdown.changed() => break,
                }
            }
        }
        Listener::Unix(std, path) => {
            let listener = match tokio::net::UnixListener::from_std(std) {
                Ok(l) => l,
                Err(e) => {
                    server.ctx.log(Level::Error, format!("Cannot listen: {e}"));
                    return;
                }
            };
            loop {
                let Some(permit) = next_permit(&server, &mut shutdown).await else {
                    break;
                };
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let peer = Peer {
                                client: None,
                                server: Some(ServerAddr::Unix(path.clone())),
                                tls: false,
                                tls_info: None,
                            };
                            spawn_connection(stream, server.clone(), peer, permit, None);
                        }
                        Err(err) => on_error!(err),
                    },
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
}
