//! Small pieces shared by every layer: limits, the response queue budget, the cached `date`
//! header, access lines, the coarse clock.

pub mod access;
pub mod clock;
pub mod date;
pub mod limits;
pub mod queue_budget;

/// A header map from static pairs, for unit tests.
#[cfg(test)]
pub fn header_map(pairs: &[(&'static str, &'static str)]) -> hyper::HeaderMap {
    let mut map = hyper::HeaderMap::new();
    for (k, v) in pairs {
        map.append(*k, hyper::header::HeaderValue::from_static(v));
    }
    map
}
