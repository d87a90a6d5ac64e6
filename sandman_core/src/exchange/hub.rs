//! What every exchange of one server shares: the response defaults, the counters, the
//! response-queue budget, the shutdown flag and the metrics recorder.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use tokio::sync::watch;

use crate::common::metrics::recorder::Metrics;
use crate::common::queue_budget::QueueBudget;
use crate::common::settings::ResponseDefaults;
use crate::exchange::cache::store::ResponseCache;

/// One server's shared state, seen from the exchanges.
pub struct Hub {
    /// Headers on every response.
    pub response: ResponseDefaults,
    /// Open connections (HTTP and WebSocket).
    pub connections: AtomicUsize,
    /// Requests handed to the app and not yet finished.
    pub active_requests: AtomicUsize,
    /// Responses completed since start (for `--limit-max-requests`).
    pub total_requests: AtomicU64,
    /// Times an idle connection gave back its buffers (parked) since start.
    pub parks: AtomicU64,
    /// Streamed responses in progress, and how deep each one's queue may be.
    pub queue_budget: QueueBudget,
    /// Becomes true when the server starts shutting down.
    pub shutdown: watch::Sender<bool>,
    /// This process's metrics slot (`--metrics-port`), or `None`.
    pub metrics: Option<Metrics>,
    /// The response cache (`--cache-size`), or `None`.
    pub cache: Option<Arc<ResponseCache>>,
}

impl Hub {
    /// A hub for a server whose responses carry `response`.
    pub fn new(response: ResponseDefaults) -> Hub {
        Hub {
            response,
            connections: AtomicUsize::new(0),
            active_requests: AtomicUsize::new(0),
            total_requests: AtomicU64::new(0),
            parks: AtomicU64::new(0),
            queue_budget: QueueBudget::default(),
            shutdown: watch::channel(false).0,
            metrics: None,
            cache: None,
        }
    }

    /// Keep a response cache of `bytes` (`None`: no cache).
    pub fn with_cache(mut self, bytes: Option<u64>) -> Hub {
        self.cache = bytes.map(|bytes| ResponseCache::new(bytes, self.metrics.clone()));
        self
    }

    /// Record metrics into `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Metrics>) -> Hub {
        self.metrics = metrics;
        self
    }

    /// Whether the server is shutting down.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}
