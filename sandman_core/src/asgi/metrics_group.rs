//! `sandman_asgi._core.MetricsGroup`: the metrics segment as Python holds it. The process
//! that owns `--metrics-port` creates it; a `--workers` supervisor hands its descriptor to
//! each worker, which attaches to it. Python claims and releases slots, marks a slot ready
//! or draining, and stamps the event loop's heartbeat; the IO threads record into the slot
//! (`common/metrics/recorder.rs`).

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::common::clock::monotonic_ms;
use crate::common::metrics::exposition::{render, Snapshot};
use crate::common::metrics::health;
use crate::common::metrics::layout::state;
use crate::common::metrics::recorder::Metrics;
use crate::common::metrics::segment::Segment;

/// A group's metrics segment.
#[pyclass(frozen, module = "sandman_asgi._core")]
pub struct MetricsGroup {
    segment: Arc<Segment>,
}

impl MetricsGroup {
    /// The segment, for the metrics listener.
    pub fn segment(&self) -> Arc<Segment> {
        self.segment.clone()
    }

    /// A recorder for slot `index`.
    pub fn recorder(&self, index: usize) -> PyResult<Metrics> {
        if index == 0 || index >= self.segment.slots() {
            return Err(PyValueError::new_err(format!("no metrics slot {index}")));
        }
        Ok(Metrics::new(self.segment.clone(), index))
    }

    fn slot_state(&self, index: usize, value: u64) -> PyResult<()> {
        self.recorder(index)?;
        self.segment
            .slot(index)
            .state
            .store(value, Ordering::Release);
        Ok(())
    }
}

#[pymethods]
impl MetricsGroup {
    /// A new segment with `slots` slots (slot 0 included).
    #[staticmethod]
    fn create(slots: usize) -> PyResult<MetricsGroup> {
        let segment = Segment::create(slots).map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(MetricsGroup {
            segment: Arc::new(segment),
        })
    }

    /// Map the segment behind descriptor `fd` (duplicated: the caller keeps its own).
    #[staticmethod]
    fn attach(fd: i32) -> PyResult<MetricsGroup> {
        // SAFETY: dup of a descriptor the caller guarantees is open.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(PyOSError::new_err(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        // SAFETY: a fresh descriptor, owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(dup) };
        let segment = Segment::attach(owned).map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(MetricsGroup {
            segment: Arc::new(segment),
        })
    }

    /// The segment's descriptor, for a child process to inherit.
    #[getter]
    fn fd(&self) -> i32 {
        self.segment.fd()
    }

    /// Claim a free slot for process `pid`: its index, or `None` when all are taken.
    fn claim(&self, pid: u64) -> Option<usize> {
        self.segment.claim(pid)
    }

    /// Process `pid` exited: keep its counts in the totals and free its slot.
    fn release(&self, pid: u64) {
        self.segment.release(pid);
    }

    /// Slot `index`'s server finished its lifespan startup and listens.
    fn set_ready(&self, index: usize) -> PyResult<()> {
        self.slot_state(index, state::READY)
    }

    /// Slot `index`'s server began a graceful shutdown.
    fn set_draining(&self, index: usize) -> PyResult<()> {
        self.slot_state(index, state::DRAINING)
    }

    /// The whole group began a graceful shutdown (the supervisor got SIGTERM or SIGINT).
    fn set_group_draining(&self) {
        self.segment.header().draining.store(1, Ordering::Release);
    }

    /// Slot `index`'s event loop turned (called every 100 ms from the loop).
    fn beat(&self, index: usize) -> PyResult<()> {
        self.recorder(index)?;
        self.segment
            .slot(index)
            .heartbeat_ms
            .store(monotonic_ms(), Ordering::Release);
        Ok(())
    }

    /// The supervisor replaced a worker.
    fn worker_restarted(&self) {
        self.segment
            .slot(0)
            .worker_restarts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text a scrape would get now.
    fn render(&self) -> String {
        render(Snapshot::take(&self.segment))
    }

    /// `(ok, detail)` as `/livez` would answer with a `timeout` in seconds.
    fn live(&self, timeout: f64) -> (bool, String) {
        let verdict = health::live(&self.segment, Duration::from_secs_f64(timeout.max(0.0)));
        (verdict.ok, verdict.detail)
    }

    /// `(ok, detail)` as `/readyz` would answer.
    fn ready(&self) -> (bool, String) {
        let verdict = health::ready(&self.segment);
        (verdict.ok, verdict.detail)
    }
}
