//! One stored response: what is replayed, what it varies on, and how old it is.

use std::time::Instant;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::StatusCode;

/// Headers that describe one connection, not the response (RFC 9110 §7.6.1), and `Age`,
/// which the cache computes.
const NOT_STORED: [HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::TRAILER,
    header::AGE,
];

/// A stored response.
pub struct Entry {
    /// Status.
    pub status: StatusCode,
    /// Headers as the app sent them (defaults included), less the connection's own.
    pub headers: HeaderMap,
    /// The whole body (empty for a HEAD response).
    pub body: Bytes,
    /// The request headers its `Vary` names, with the values the storing request had.
    vary: Vec<(HeaderName, Option<Vec<u8>>)>,
    stored_at: Instant,
    initial_age: u64,
    lifetime: u64,
}

/// The values of `name` in `headers`, combined as one field value; `None` when absent.
fn combined(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut out = Vec::new();
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend(
            value
                .as_bytes()
                .split(|&b| b == b',')
                .map(|part| part.trim_ascii())
                .collect::<Vec<_>>()
                .join(&b","[..]),
        );
    }
    Some(out)
}

/// The header names a response's `Vary` lists, lower case, each once.
fn vary_names(response: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in response.get_all(header::VARY) {
        let Ok(text) = value.to_str() else { continue };
        for name in text.split(',') {
            if let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

impl Entry {
    /// Store a response with `status`, `headers` and `body` to a request with
    /// `request_headers`, fresh for `lifetime` seconds.
    pub fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        request_headers: &HeaderMap,
        lifetime: u64,
    ) -> Entry {
        let mut stored = headers.clone();
        for name in &NOT_STORED {
            stored.remove(name);
        }
        let vary = vary_names(headers)
            .into_iter()
            .map(|name| {
                let value = combined(request_headers, &name);
                (name, value)
            })
            .collect();
        Entry {
            status,
            headers: stored,
            body,
            vary,
            stored_at: Instant::now(),
            initial_age: super::policy::initial_age(headers),
            lifetime,
        }
    }

    /// Its age in whole seconds at `now` (§4.2.3, with the response delay taken as zero:
    /// the app is in the same process).
    pub fn age(&self, now: Instant) -> u64 {
        self.initial_age + now.saturating_duration_since(self.stored_at).as_secs()
    }

    /// Whether it may answer a request at `now` that accepts an age up to `max_age`.
    pub fn fresh(&self, now: Instant, max_age: Option<u64>) -> bool {
        let age = self.age(now);
        age < self.lifetime && max_age.is_none_or(|max| age <= max)
    }

    /// Whether a request with `headers` selects it (§4.1): every header its `Vary` names
    /// has the value the storing request had (absent in both counts as the same).
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| combined(headers, name) == *value)
    }

    /// Whether it varies on the same headers with the same values as `other`.
    pub fn same_variant(&self, other: &Entry) -> bool {
        self.vary == other.vary
    }

    /// The bytes it holds, roughly: what `--cache-size` counts.
    pub fn weight(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        (self.body.len() + headers + 256) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::header_map;
    use std::time::Duration;

    #[test]
    fn vary_selects_by_the_storing_requests_values() {
        let response = header_map(&[("vary", "Accept-Encoding, accept-language")]);
        let request = header_map(&[("accept-encoding", "gzip,  br")]);
        let entry = Entry::new(StatusCode::OK, &response, Bytes::new(), &request, 60);
        assert!(entry.matches(&header_map(&[("accept-encoding", "gzip, br")])));
        assert!(!entry.matches(&header_map(&[("accept-encoding", "gzip")])));
        assert!(!entry.matches(&header_map(&[
            ("accept-encoding", "gzip, br"),
            ("accept-language", "fr")
        ])));
        assert!(!entry.matches(&HeaderMap::new()));
    }

    #[test]
    fn connection_headers_and_age_are_not_stored() {
        let response = header_map(&[
            ("connection", "close"),
            ("age", "5"),
            ("content-type", "text/plain"),
        ]);
        let entry = Entry::new(
            StatusCode::OK,
            &response,
            Bytes::new(),
            &HeaderMap::new(),
            60,
        );
        assert!(entry.headers.get("connection").is_none());
        assert!(entry.headers.get("age").is_none());
        assert_eq!(entry.headers["content-type"], "text/plain");
        assert_eq!(entry.age(Instant::now()), 5, "the app's Age counts");
    }

    #[test]
    fn freshness_and_the_requests_max_age() {
        let entry = Entry::new(
            StatusCode::OK,
            &HeaderMap::new(),
            Bytes::new(),
            &HeaderMap::new(),
            10,
        );
        let now = Instant::now();
        assert!(entry.fresh(now, None));
        assert!(!entry.fresh(now + Duration::from_secs(10), None));
        assert!(entry.fresh(now + Duration::from_secs(3), Some(3)));
        assert!(!entry.fresh(now + Duration::from_secs(4), Some(3)));
    }
}
