//! What the IO side records, into its process's slot: one relaxed atomic add per event, no
//! lock, no allocation. A server without `--metrics-port` has no recorder and pays one
//! branch per event.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::Method;

use crate::common::clock::monotonic_us;
use crate::common::metrics::layout::{bucket, Slot, DURATION_BOUNDS_US, LAG_BOUNDS_US};
use crate::common::metrics::segment::Segment;

/// This process's slot in the group's segment.
#[derive(Clone)]
pub struct Metrics {
    segment: Arc<Segment>,
    slot: *const Slot,
}

// SAFETY: `slot` points into the mapping `segment` keeps alive; it is only read through a
// shared reference to atomics.
unsafe impl Send for Metrics {}
// SAFETY: as above.
unsafe impl Sync for Metrics {}

/// A connection kind, by its index in `layout::PROTOCOLS`.
#[derive(Debug, Clone, Copy)]
pub enum ConnectionKind {
    /// HTTP/1.x.
    Http1 = 0,
    /// HTTP/2.
    Http2 = 1,
    /// A WebSocket (over HTTP/1.1 or an HTTP/2 stream).
    WebSocket = 2,
}

/// A request's start time, method and (once known) status class, packed in one word so
/// the per-request state hyper holds stays small: bits 0-55 the start in µs, 56-59 the
/// method, 60-62 the status class, and bit 63 always set (so `Option<Stamp>` is one word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(NonZeroU64);

const START_MASK: u64 = (1 << 56) - 1;
const SET: u64 = 1 << 63;

impl Stamp {
    fn new(bits: u64) -> Stamp {
        Stamp(NonZeroU64::new(bits | SET).expect("bit 63 is set"))
    }

    fn bits(self) -> u64 {
        self.0.get()
    }

    /// The response's status is known.
    pub fn with_status(self, status: u16) -> Stamp {
        let class = match status / 100 {
            class @ 1..=5 => u64::from(class),
            _ => 0,
        };
        Stamp::new((self.bits() & !(0b111 << 60)) | (class << 60))
    }

    fn start_us(self) -> u64 {
        self.bits() & START_MASK
    }

    fn method(self) -> usize {
        ((self.bits() >> 56) & 0b1111) as usize
    }

    fn class(self) -> usize {
        ((self.bits() >> 60) & 0b111) as usize
    }
}

fn method_index(method: &Method) -> u64 {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Record into slot `index` of `segment`.
    pub fn new(segment: Arc<Segment>, index: usize) -> Metrics {
        let slot: *const Slot = segment.slot(index);
        Metrics { segment, slot }
    }

    /// The segment recorded into.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    fn slot(&self) -> &Slot {
        // SAFETY: see the `Send` impl: the mapping outlives `self`.
        unsafe { &*self.slot }
    }

    /// A request head was parsed.
    pub fn request_started(&self, method: &Method) -> Stamp {
        add(&self.slot().started, 1);
        Stamp::new((monotonic_us() & START_MASK) | (method_index(method) << 56))
    }

    /// The request is over (its response body dropped, or no response).
    pub fn request_finished(&self, stamp: Stamp) {
        let slot = self.slot();
        let elapsed = monotonic_us().saturating_sub(stamp.start_us());
        add(&slot.requests[stamp.method()][stamp.class()], 1);
        add(
            &slot.duration_buckets[bucket(&DURATION_BOUNDS_US, elapsed)],
            1,
        );
        add(&slot.duration_sum_us, elapsed);
    }

    /// A connection opened.
    pub fn connection_opened(&self, kind: ConnectionKind) {
        add(&self.slot().opened[kind as usize], 1);
    }

    /// A connection closed.
    pub fn connection_closed(&self, kind: ConnectionKind) {
        add(&self.slot().closed[kind as usize], 1);
    }

    /// Bytes read from a client.
    pub fn bytes_in(&self, n: usize) {
        add(&self.slot().bytes_in, n as u64);
    }

    /// Bytes written to a client.
    pub fn bytes_out(&self, n: usize) {
        add(&self.slot().bytes_out, n as u64);
    }

    /// A WebSocket message received.
    pub fn ws_message_in(&self) {
        add(&self.slot().ws_messages_in, 1);
    }

    /// A WebSocket message sent.
    pub fn ws_message_out(&self) {
        add(&self.slot().ws_messages_out, 1);
    }

    /// A response from a static mount.
    pub fn static_response(&self) {
        add(&self.slot().static_responses, 1);
    }

    /// A response from the cache.
    pub fn cache_hit(&self) {
        add(&self.slot().cache_hits, 1);
    }

    /// A cacheable request the cache could not answer.
    pub fn cache_miss(&self) {
        add(&self.slot().cache_misses, 1);
    }

    /// A response stored; the cache now holds `bytes`.
    pub fn cache_stored(&self, bytes: u64) {
        add(&self.slot().cache_stores, 1);
        self.slot().cache_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Entries evicted to make room; the cache now holds `bytes`.
    pub fn cache_evicted(&self, entries: u64, bytes: u64) {
        add(&self.slot().cache_evictions, entries);
        self.slot().cache_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The event loop took events queued `lag_us` ago.
    pub fn loop_lag(&self, lag_us: u64) {
        let slot = self.slot();
        add(&slot.lag_buckets[bucket(&LAG_BOUNDS_US, lag_us)], 1);
        add(&slot.lag_sum_us, lag_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_lands_in_its_method_class_and_bucket() {
        let segment = Arc::new(Segment::create(2).unwrap());
        let index = segment.claim(1).unwrap();
        let metrics = Metrics::new(segment.clone(), index);
        let stamp = metrics.request_started(&Method::POST);
        metrics.request_finished(stamp.with_status(404));
        let stamp = metrics.request_started(&Method::from_bytes(b"PURGE").unwrap());
        metrics.request_finished(stamp);
        let slot = segment.slot(index);
        assert_eq!(slot.requests[2][4].load(Ordering::Relaxed), 1, "POST 4xx");
        assert_eq!(
            slot.requests[7][0].load(Ordering::Relaxed),
            1,
            "OTHER, no response"
        );
        assert_eq!(slot.started.load(Ordering::Relaxed), 2);
        let counted: u64 = slot
            .duration_buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum();
        assert_eq!(counted, 2);
    }

    #[test]
    fn the_status_class_can_be_set_again() {
        let stamp = Stamp::new(5).with_status(200).with_status(503);
        assert_eq!(stamp.class(), 5);
        assert_eq!(stamp.start_us(), 5);
        assert_eq!(Stamp::new(0).with_status(99).class(), 0);
        assert_eq!(std::mem::size_of::<Option<Stamp>>(), 8);
    }
}
