//! A scrape: the group's slots summed into one snapshot, written in the Prometheus /
//! OpenMetrics text format by `prometheus-client`.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::common::clock::monotonic_ms;
use crate::common::metrics::layout::{
    state, DURATION_BOUNDS_US, LAG_BOUNDS_US, METHODS, PROTOCOLS, STATUS_CLASSES,
};
use crate::common::metrics::segment::Segment;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The group's counters, summed over its slots at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Finished requests by method and status class.
    pub requests: [[u64; STATUS_CLASSES.len()]; METHODS.len()],
    /// Requests begun and not finished.
    pub in_flight: u64,
    /// Duration histogram (non-cumulative) and its sum in µs.
    pub duration: ([u64; DURATION_BOUNDS_US.len() + 1], u64),
    /// Connections opened, and open now, by protocol.
    pub connections: [(u64, u64); PROTOCOLS.len()],
    /// Bytes in and out.
    pub bytes: (u64, u64),
    /// WebSocket messages in and out.
    pub ws_messages: (u64, u64),
    /// Static responses.
    pub static_responses: u64,
    /// Cache hits, misses, stores, evictions, and bytes held.
    pub cache: [u64; 5],
    /// Event-loop lag histogram (non-cumulative) and its sum in µs.
    pub lag: ([u64; LAG_BOUNDS_US.len() + 1], u64),
    /// Workers replaced by the supervisor.
    pub worker_restarts: u64,
    /// Server processes by state: starting, ready, draining.
    pub workers: [u64; 3],
    /// The oldest event-loop heartbeat among the processes, in ms (0: none yet).
    pub oldest_heartbeat_age_ms: u64,
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Snapshot {
    /// Sum every slot of `segment`.
    pub fn take(segment: &Segment) -> Snapshot {
        let mut s = Snapshot::default();
        let now = monotonic_ms();
        let mut started = 0u64;
        let mut finished = 0u64;
        for (index, slot) in segment.iter().enumerate() {
            if index > 0 && get(&slot.owner) == 0 {
                continue;
            }
            for (m, row) in slot.requests.iter().enumerate() {
                for (c, n) in row.iter().enumerate() {
                    let n = get(n);
                    s.requests[m][c] += n;
                    finished += n;
                }
            }
            started += get(&slot.started);
            for (b, n) in slot.duration_buckets.iter().enumerate() {
                s.duration.0[b] += get(n);
            }
            s.duration.1 += get(&slot.duration_sum_us);
            for p in 0..PROTOCOLS.len() {
                let (opened, closed) = (get(&slot.opened[p]), get(&slot.closed[p]));
                s.connections[p].0 += opened;
                s.connections[p].1 += opened.saturating_sub(closed);
            }
            s.bytes.0 += get(&slot.bytes_in);
            s.bytes.1 += get(&slot.bytes_out);
            s.ws_messages.0 += get(&slot.ws_messages_in);
            s.ws_messages.1 += get(&slot.ws_messages_out);
            s.static_responses += get(&slot.static_responses);
            for (i, counter) in [
                &slot.cache_hits,
                &slot.cache_misses,
                &slot.cache_stores,
                &slot.cache_evictions,
                &slot.cache_bytes,
            ]
            .into_iter()
            .enumerate()
            {
                s.cache[i] += get(counter);
            }
            for (b, n) in slot.lag_buckets.iter().enumerate() {
                s.lag.0[b] += get(n);
            }
            s.lag.1 += get(&slot.lag_sum_us);
            s.worker_restarts += get(&slot.worker_restarts);
            if index > 0 {
                let st = get(&slot.state).min(state::DRAINING) as usize;
                s.workers[st] += 1;
                let beat = get(&slot.heartbeat_ms);
                if beat > 0 {
                    s.oldest_heartbeat_age_ms =
                        s.oldest_heartbeat_age_ms.max(now.saturating_sub(beat));
                }
            }
        }
        s.in_flight = started.saturating_sub(finished);
        s
    }
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

fn histogram_buckets(bounds: &[u64], counts: &[u64]) -> Vec<(f64, u64)> {
    bounds
        .iter()
        .map(|&b| seconds(b))
        .chain([f64::MAX])
        .zip(counts.iter().copied())
        .collect()
}

#[derive(Debug)]
struct SnapshotCollector(Snapshot);

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn gauge<
    N: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync + 'static,
>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: N,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let e = &mut encoder;

        let mut family = e.encode_descriptor(
            "http_requests",
            "HTTP requests finished, by method and status class (none: no response).",
            None,
            MetricType::Counter,
        )?;
        for (m, method) in METHODS.iter().enumerate() {
            for (c, class) in STATUS_CLASSES.iter().enumerate() {
                let labels = [("method", *method), ("status", *class)];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, f64>(&s.requests[m][c], None)?;
            }
        }
        let total: u64 = s.duration.0.iter().sum();
        e.encode_descriptor(
            "http_request_duration",
            "From the request head to the end of the response body.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            seconds(s.duration.1),
            total,
            &histogram_buckets(&DURATION_BOUNDS_US, &s.duration.0),
            None,
        )?;
        gauge(
            e,
            "http_requests_in_flight",
            "HTTP requests begun and not finished.",
            None,
            s.in_flight as i64,
        )?;

        let mut family = e.encode_descriptor(
            "connections_open",
            "Open client connections, by protocol.",
            None,
            MetricType::Gauge,
        )?;
        for (p, protocol) in PROTOCOLS.iter().enumerate() {
            family
                .encode_family(&[("protocol", *protocol)])?
                .encode_gauge(&(s.connections[p].1 as i64))?;
        }
        let mut family = e.encode_descriptor(
            "connections",
            "Client connections opened, by protocol.",
            None,
            MetricType::Counter,
        )?;
        for (p, protocol) in PROTOCOLS.iter().enumerate() {
            family
                .encode_family(&[("protocol", *protocol)])?
                .encode_counter::<NoLabelSet, u64, f64>(&s.connections[p].0, None)?;
        }
        counter(
            e,
            "received",
            "Bytes read from clients.",
            Some(&Unit::Bytes),
            s.bytes.0,
        )?;
        counter(
            e,
            "sent",
            "Bytes written to clients.",
            Some(&Unit::Bytes),
            s.bytes.1,
        )?;
        let mut family = e.encode_descriptor(
            "websocket_messages",
            "WebSocket messages, by direction.",
            None,
            MetricType::Counter,
        )?;
        for (direction, value) in [("in", s.ws_messages.0), ("out", s.ws_messages.1)] {
            family
                .encode_family(&[("direction", direction)])?
                .encode_counter::<NoLabelSet, u64, f64>(&value, None)?;
        }
        counter(
            e,
            "static_responses",
            "Responses from static mounts (answered without the app).",
            None,
            s.static_responses,
        )?;
        counter(
            e,
            "cache_hits",
            "Responses from the response cache.",
            None,
            s.cache[0],
        )?;
        counter(
            e,
            "cache_misses",
            "Cacheable requests the cache could not answer.",
            None,
            s.cache[1],
        )?;
        counter(
            e,
            "cache_stores",
            "Responses stored in the cache.",
            None,
            s.cache[2],
        )?;
        counter(
            e,
            "cache_evictions",
            "Cache entries evicted to stay within --cache-size.",
            None,
            s.cache[3],
        )?;
        gauge(
            e,
            "cache_size",
            "Bytes the response cache holds.",
            Some(&Unit::Bytes),
            s.cache[4] as i64,
        )?;
        let lagged: u64 = s.lag.0.iter().sum();
        e.encode_descriptor(
            "event_loop_lag",
            "From an IO event to the event loop taking it.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            seconds(s.lag.1),
            lagged,
            &histogram_buckets(&LAG_BOUNDS_US, &s.lag.0),
            None,
        )?;
        gauge(
            e,
            "event_loop_heartbeat_age",
            "Since the least recently turned event loop of the group last turned.",
            Some(&Unit::Seconds),
            s.oldest_heartbeat_age_ms as f64 / 1e3,
        )?;
        counter(
            e,
            "worker_restarts",
            "Worker processes the supervisor replaced.",
            None,
            s.worker_restarts,
        )?;
        let mut family = e.encode_descriptor(
            "workers",
            "Server processes, by state.",
            None,
            MetricType::Gauge,
        )?;
        for (i, name) in ["starting", "ready", "draining"].iter().enumerate() {
            family
                .encode_family(&[("state", *name)])?
                .encode_gauge(&(s.workers[i] as i64))?;
        }
        Ok(())
    }
}

/// The exposition of `snapshot`.
pub fn render(snapshot: Snapshot) -> String {
    let mut registry = Registry::with_prefix("sandman");
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::metrics::recorder::Metrics;
    use hyper::Method;
    use std::sync::Arc;

    #[test]
    fn two_workers_and_a_retired_one_add_up() {
        let segment = Arc::new(Segment::create(4).unwrap());
        let a = Metrics::new(segment.clone(), segment.claim(10).unwrap());
        let b = Metrics::new(segment.clone(), segment.claim(11).unwrap());
        let c = Metrics::new(segment.clone(), segment.claim(12).unwrap());
        for m in [&a, &b, &c] {
            let stamp = m.request_started(&Method::GET);
            m.request_finished(stamp.with_status(200));
            m.bytes_out(10);
        }
        let _in_flight = b.request_started(&Method::POST);
        segment.release(12);
        let s = Snapshot::take(&segment);
        assert_eq!(s.requests[0][2], 3);
        assert_eq!(s.in_flight, 1);
        assert_eq!(s.bytes.1, 30);
        assert_eq!(s.workers, [2, 0, 0]);
        let text = render(s);
        assert!(
            text.contains("sandman_http_requests_total{method=\"GET\",status=\"2xx\"} 3"),
            "{text}"
        );
        assert!(text.contains("sandman_http_requests_in_flight 1"), "{text}");
        assert!(text.contains("sandman_sent_bytes_total 30"), "{text}");
        assert!(text.contains("sandman_http_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.ends_with("# EOF\n"));
    }
}
