//! A file's validators (`ETag`, `Last-Modified`) and the request's preconditions on them,
//! evaluated in RFC 9110 §13.2.2's order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::Method;

/// What identifies one version of one representation.
pub struct Validators {
    /// A strong entity tag, quotes included: `"<mtime>-<size>"` in hex, as nginx makes
    /// them, with the content coding appended for a precompressed sibling.
    pub etag: HeaderValue,
    /// Modification time, whole seconds since the epoch.
    pub modified: u64,
    /// `Last-Modified`.
    pub last_modified: HeaderValue,
}

impl Validators {
    /// The validators of a file of `size` bytes last changed at `mtime`; `coding` is the
    /// precompressed sibling's content coding, if that is what is served.
    pub fn new(mtime: SystemTime, size: u64, coding: Option<&str>) -> Validators {
        let modified = mtime
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let tag = match coding {
            Some(coding) => format!("\"{modified:x}-{size:x}-{coding}\""),
            None => format!("\"{modified:x}-{size:x}\""),
        };
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(modified));
        Validators {
            etag: HeaderValue::from_str(&tag).expect("hex digits and a token"),
            modified,
            last_modified: HeaderValue::from_str(&date).expect("an http date is ascii"),
        }
    }
}

/// What the preconditions decide.
#[derive(Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the representation (a `Range` may still apply).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// The opaque tags of an `If-Match`/`If-None-Match` list, each with whether it is weak;
/// `None` for `*`.
fn tags(value: &HeaderValue) -> Option<Vec<(bool, &[u8])>> {
    let text = value.as_bytes();
    if text.iter().all(|b| b.is_ascii_whitespace() || *b == b'*') && text.contains(&b'*') {
        return None;
    }
    let mut out = Vec::new();
    for item in text.split(|&b| b == b',') {
        let item = item.trim_ascii();
        let (weak, tag) = match item.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        if tag.len() >= 2 && tag.starts_with(b"\"") && tag.ends_with(b"\"") {
            out.push((weak, tag));
        }
    }
    Some(out)
}

/// `If-None-Match` uses the weak comparison: tags match whatever their `W/`.
fn none_match_hits(headers: &HeaderMap, etag: &HeaderValue) -> Option<bool> {
    let mut any = false;
    let mut hit = false;
    for value in headers.get_all(header::IF_NONE_MATCH) {
        any = true;
        match tags(value) {
            None => hit = true,
            Some(list) => hit |= list.iter().any(|(_, tag)| *tag == etag.as_bytes()),
        }
    }
    any.then_some(hit)
}

/// `If-Match` uses the strong comparison: a weak tag never matches.
fn match_hits(headers: &HeaderMap, etag: &HeaderValue) -> Option<bool> {
    let mut any = false;
    let mut hit = false;
    for value in headers.get_all(header::IF_MATCH) {
        any = true;
        match tags(value) {
            None => hit = true,
            Some(list) => {
                hit |= list
                    .iter()
                    .any(|(weak, tag)| !weak && *tag == etag.as_bytes())
            }
        }
    }
    any.then_some(hit)
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<u64> {
    let value = headers.get(name)?.to_str().ok()?;
    let time = httpdate::parse_http_date(value).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// Evaluate `If-Match`, `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since`
/// (RFC 9110 §13.2.2, steps 1 to 4).
pub fn evaluate(method: &Method, headers: &HeaderMap, v: &Validators) -> Precondition {
    match match_hits(headers, &v.etag) {
        Some(false) => return Precondition::Failed,
        Some(true) => {}
        None => {
            if date(headers, header::IF_UNMODIFIED_SINCE).is_some_and(|since| v.modified > since) {
                return Precondition::Failed;
            }
        }
    }
    let safe = method == Method::GET || method == Method::HEAD;
    match none_match_hits(headers, &v.etag) {
        Some(true) if safe => return Precondition::NotModified,
        Some(true) => return Precondition::Failed,
        Some(false) => {}
        None => {
            if safe
                && date(headers, header::IF_MODIFIED_SINCE).is_some_and(|since| v.modified <= since)
            {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// Whether a `Range` may be honoured: no `If-Range`, or one that matches the current
/// representation exactly (a strong tag, or the exact `Last-Modified` date).
pub fn range_allowed(headers: &HeaderMap, v: &Validators) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let bytes = value.as_bytes().trim_ascii();
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        return bytes == v.etag.as_bytes();
    }
    date(headers, header::IF_RANGE) == Some(v.modified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::header_map;

    fn validators() -> Validators {
        Validators::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000), 2400, None)
    }

    #[test]
    fn etag_and_date_shapes() {
        let v = validators();
        assert_eq!(v.etag, "\"6553f100-960\"");
        assert_eq!(v.last_modified, "Tue, 14 Nov 2023 22:13:20 GMT");
        let br = Validators::new(
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            900,
            Some("br"),
        );
        assert_eq!(br.etag, "\"6553f100-384-br\"");
    }

    #[test]
    fn if_none_match_weak_comparison_and_star() {
        let v = validators();
        for value in [
            "\"6553f100-960\"",
            "W/\"6553f100-960\"",
            "\"x\", \"6553f100-960\"",
            "*",
        ] {
            let h = header_map(&[("if-none-match", value)]);
            assert_eq!(
                evaluate(&Method::GET, &h, &v),
                Precondition::NotModified,
                "{value}"
            );
        }
        let h = header_map(&[("if-none-match", "\"other\"")]);
        assert_eq!(evaluate(&Method::GET, &h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_modified_since_is_ignored_when_if_none_match_is_present() {
        let v = validators();
        let h = header_map(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ]);
        assert_eq!(evaluate(&Method::GET, &h, &v), Precondition::Proceed);
        let h = header_map(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:20 GMT")]);
        assert_eq!(evaluate(&Method::GET, &h, &v), Precondition::NotModified);
        let h = header_map(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT")]);
        assert_eq!(evaluate(&Method::GET, &h, &v), Precondition::Proceed);
        let h = header_map(&[("if-modified-since", "not a date")]);
        assert_eq!(evaluate(&Method::GET, &h, &v), Precondition::Proceed);
    }

    #[test]
    fn if_match_is_strong_and_fails_with_412() {
        let v = validators();
        let h = header_map(&[("if-match", "W/\"6553f100-960\"")]);
        assert_eq!(evaluate(&Method::GET, &h, &v), Precondition::Failed);
        let h = header_map(&[("if-match", "\"6553f100-960\"")]);
        assert_eq!(evaluate(&Method::GET, &h, &v), Precondition::Proceed);
        let h = header_map(&[("if-unmodified-since", "Tue, 14 Nov 2023 22:13:19 GMT")]);
        assert_eq!(evaluate(&Method::GET, &h, &v), Precondition::Failed);
    }

    #[test]
    fn if_range_needs_an_exact_match() {
        let v = validators();
        assert!(range_allowed(&HeaderMap::new(), &v));
        assert!(range_allowed(
            &header_map(&[("if-range", "\"6553f100-960\"")]),
            &v
        ));
        assert!(!range_allowed(
            &header_map(&[("if-range", "W/\"6553f100-960\"")]),
            &v
        ));
        assert!(!range_allowed(&header_map(&[("if-range", "\"old\"")]), &v));
        assert!(range_allowed(
            &header_map(&[("if-range", "Tue, 14 Nov 2023 22:13:20 GMT")]),
            &v
        ));
        assert!(!range_allowed(
            &header_map(&[("if-range", "Tue, 14 Nov 2023 22:13:21 GMT")]),
            &v
        ));
    }
}
