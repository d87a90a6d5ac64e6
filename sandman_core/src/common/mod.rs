//! Small pieces shared by every layer: the server's settings, limits, the response queue
//! budget, the cached `date` header, access records, log levels, the coarse clock, the
//! proxy trust list, and the memory allocator set-up.

pub mod access;
pub mod allocator;
pub mod certificates;
pub mod clock;
pub mod date;
pub mod direct_output;
pub mod limits;
pub mod log;
pub mod malloc_tuning;
pub mod metrics;
pub mod queue_budget;
pub mod settings;
pub mod trusted_hosts;

/// A header map from static pairs, for unit tests.
#[cfg(test)]
pub fn header_map(pairs: &[(&'static str, &'static str)]) -> hyper::HeaderMap {
    let mut map = hyper::HeaderMap::new();
    for (k, v) in pairs {
        map.append(*k, hyper::header::HeaderValue::from_static(v));
    }
    map
}
