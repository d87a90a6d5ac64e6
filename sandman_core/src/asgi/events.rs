//! What the IO threads ask the event loop thread to do, and the app side as the IO side
//! sees it ([`LoopSide`]): every call queues one event on the bridge.

use std::sync::Arc;

use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::{Py, PyAny, Python};

use crate::bridge::Bridge;
use crate::common::access::AccessRecord;
use crate::common::log::Level;
use crate::exchange::app::AppSide;
use crate::exchange::request::RequestExchange;
use crate::exchange::websocket::WsExchange;

/// Something the event loop thread has to act on.
pub enum LoopEvent {
    /// A request is ready: build its scope and start the app.
    Http(Arc<RequestExchange>),
    /// A WebSocket handshake waits: build its scope and start the app.
    WebSocket(Arc<WsExchange>),
    /// A running request's or WebSocket's exchange changed (data, disconnect, room to
    /// send): resolve the futures its app waits on.
    Resume(Arc<dyn Resume>),
    /// A log record from an IO thread.
    Log(Level, String),
    /// An access line for a response the IO side wrote itself.
    Access(Box<AccessRecord>),
    /// Python objects an IO thread is done with, dropped under the GIL.
    Release(Released),
}

/// A cycle whose app waits on its exchange. Its waker (`std::task::Wake`) queues
/// [`LoopEvent::Resume`]; the loop thread then calls [`Resume::resume`].
pub trait Resume: Send + Sync {
    /// Resolve whatever the app waits for that can be resolved now (loop thread).
    fn resume(self: Arc<Self>, py: Python<'_>);
}

/// Python objects handed back to the loop thread to be dropped there.
pub enum Released {
    /// A `bytes` body the IO thread has finished writing from.
    Bytes(PyBackedBytes),
    /// A `str` message the IO thread has finished writing from.
    Str(PyBackedStr),
    /// A closed connection's scope `client` and `server` values.
    Addrs(Py<PyAny>, Py<PyAny>),
}

/// The bridge that carries [`LoopEvent`]s.
pub type LoopBridge = Bridge<LoopEvent>;

/// The app side for the IO threads: queues events for the loop.
pub struct LoopSide {
    bridge: Arc<LoopBridge>,
}

impl LoopSide {
    /// An app side that queues on `bridge`.
    pub fn new(bridge: Arc<LoopBridge>) -> LoopSide {
        LoopSide { bridge }
    }
}

impl AppSide for LoopSide {
    fn start_http(&self, exchange: Arc<RequestExchange>) {
        self.bridge.push(LoopEvent::Http(exchange));
    }

    fn start_websocket(&self, exchange: Arc<WsExchange>) {
        self.bridge.push(LoopEvent::WebSocket(exchange));
    }

    fn log(&self, level: Level, message: String) {
        self.bridge.push(LoopEvent::Log(level, message));
    }

    fn access(&self, record: AccessRecord) {
        self.bridge.push(LoopEvent::Access(Box::new(record)));
    }
}
