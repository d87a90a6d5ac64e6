//! The `date` response header (RFC 9110 §6.6.1), formatted at most once per second per thread.
//!
//! Formatting an IMF-fixdate costs far more than the rest of the header work, and the value
//! only changes once a second, so each thread keeps the last one it built.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::header::HeaderValue;

thread_local! {
    static CACHE: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

/// The current time as an IMF-fixdate header value, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn date_header() -> HeaderValue {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != secs {
            let text = httpdate::fmt_http_date(now);
            // httpdate output is ASCII by construction.
            cache.1 = HeaderValue::from_str(&text).expect("http date is ascii");
            cache.0 = secs;
        }
        cache.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imf_fixdate_shape() {
        let value = date_header();
        let text = value.to_str().unwrap();
        assert_eq!(text.len(), 29, "{text}");
        assert!(text.ends_with(" GMT"));
        assert!(httpdate::parse_http_date(text).is_ok());
    }

    #[test]
    fn cached_within_a_second() {
        let a = date_header();
        let b = date_header();
        // Either identical, or we crossed a second boundary between the two calls.
        let pa = httpdate::parse_http_date(a.to_str().unwrap()).unwrap();
        let pb = httpdate::parse_http_date(b.to_str().unwrap()).unwrap();
        assert!(pb >= pa);
    }
}
