//! The two interfaces between the layers, each implemented on the other side: what the IO
//! side hands up ([`AppSide`], implemented by `asgi/`) and what the app side asks of the
//! IO side as a whole ([`Transport`], implemented by `server/`). `lib.rs` connects them.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::common::access::AccessRecord;
use crate::common::log::Level;
use crate::exchange::request::RequestExchange;
use crate::exchange::websocket::WsExchange;

/// Where the IO side sends what the app must act on. Called on IO threads; an
/// implementation must not block (it queues and returns).
pub trait AppSide: Send + Sync {
    /// A request is ready for the app: its head is parsed and its body can be received.
    fn start_http(&self, exchange: Arc<RequestExchange>);
    /// A WebSocket handshake waits for the app's decision.
    fn start_websocket(&self, exchange: Arc<WsExchange>);
    /// A line for the `uvicorn.error` logger.
    fn log(&self, level: Level, message: String);
    /// An access line for a response the IO side wrote itself (503 over the limit).
    fn access(&self, record: AccessRecord);
}

/// What the app side may ask of the running transport.
pub trait Transport: Send + Sync {
    /// Serve a listening socket (its descriptor is duplicated; the caller keeps its own).
    fn listen(&self, fd: RawFd) -> io::Result<()>;
    /// Stop accepting; close idle connections now and busy ones after their response.
    fn shutdown(&self);
    /// Stop the IO threads, dropping whatever connections are left (blocks, bounded).
    fn close(&self);
}
