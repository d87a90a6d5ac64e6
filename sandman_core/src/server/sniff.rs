//! Choosing HTTP/1.1 or HTTP/2 on a plain connection by its first bytes (h2c with prior
//! knowledge: RFC 9113 §3.3).
//!
//! hyper-util's auto builder can tell the two apart, but it keeps reading through a rewind
//! wrapper for the whole connection: about 500 instructions more per HTTP/1.1 request.
//! Peeking at the first bytes instead leaves an HTTP/1.1 connection on exactly the path
//! it had before HTTP/2 came. Only a client whose first bytes are a partial preface is
//! handed to the auto builder, which waits for the rest.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::server::conn::Protocol;
use crate::server::delayed_ack::DelayedAckStream;

/// The HTTP/2 connection preface a client with prior knowledge starts with.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A stream whose first bytes can be looked at without consuming them.
pub trait Sniff {
    /// The protocol the client speaks; `None` when it closed or sent nothing within
    /// `wait`. A server shutting down meanwhile gets [`Protocol::Detect`]: the connection
    /// then has the same grace as any other that has not sent its first request.
    fn protocol(
        &self,
        wait: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = Option<Protocol>> + Send;
}

impl Sniff for DelayedAckStream {
    async fn protocol(&self, wait: Duration, shutdown: watch::Receiver<bool>) -> Option<Protocol> {
        peek(self.tcp(), wait, shutdown).await
    }
}

/// Unix sockets cannot be peeked here: the auto builder tells the protocols apart.
impl Sniff for tokio::net::UnixStream {
    async fn protocol(&self, _: Duration, _: watch::Receiver<bool>) -> Option<Protocol> {
        Some(Protocol::Detect)
    }
}

async fn peek(
    stream: &TcpStream,
    wait: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Option<Protocol> {
    let mut first = [0u8; PREFACE.len()];
    let n = tokio::select! {
        peeked = tokio::time::timeout(wait, stream.peek(&mut first)) => match peeked {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        },
        _ = shutdown.wait_for(|stopping| *stopping) => return Some(Protocol::Detect),
    };
    Some(choose(&first[..n]))
}

/// The protocol the first bytes a client sent belong to.
fn choose(first: &[u8]) -> Protocol {
    if !PREFACE.starts_with(first) {
        Protocol::Http1
    } else if first.len() == PREFACE.len() {
        Protocol::Http2
    } else {
        // A partial preface: the auto builder reads on until it can tell.
        Protocol::Detect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_decide() {
        assert_eq!(choose(b"GET / HTTP/1.1\r\n"), Protocol::Http1);
        assert_eq!(choose(b"POST"), Protocol::Http1);
        assert_eq!(choose(b"PRX"), Protocol::Http1);
        assert_eq!(choose(PREFACE), Protocol::Http2);
        assert_eq!(choose(b"PRI * HTTP/2"), Protocol::Detect);
        assert_eq!(choose(b"P"), Protocol::Detect);
    }
}
