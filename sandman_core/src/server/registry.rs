//! The open connections, so shutdown can ask every one of them to close.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::exchange::connection::Connection;

/// Every open HTTP connection by id.
#[derive(Default)]
pub struct ConnectionRegistry {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Connection>>>,
}

impl ConnectionRegistry {
    /// Add an open connection; returns its id for [`unregister`].
    ///
    /// [`unregister`]: ConnectionRegistry::unregister
    pub fn register(&self, conn: Arc<Connection>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, conn);
        id
    }

    /// The connection closed.
    pub fn unregister(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Ask every open connection to close after its response in flight.
    pub fn close_all(&self) {
        let conns: Vec<_> = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for conn in conns {
            conn.control.close();
        }
    }
}
