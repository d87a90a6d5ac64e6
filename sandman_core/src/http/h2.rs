//! What HTTP/2 requests need before they look like any other: their pseudo-headers mapped
//! the way HTTP/1.1 carries them.

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::Uri;

/// The request's headers as an HTTP/1.1-style list: `host` first, from `:authority` (which
/// replaces any `host` line: ASGI HTTP spec, "headers"), and `cookie` crumbs joined with
/// "; " into one line (RFC 9113 §8.2.3).
pub fn headers(uri: &Uri, headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.keys_len() + 1);
    let authority = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    if let Some(host) = authority.or_else(|| headers.get(header::HOST).cloned()) {
        out.insert(header::HOST, host);
    }
    for name in headers.keys() {
        if name == header::HOST {
            continue;
        }
        let mut values = headers.get_all(name).iter();
        if name == header::COOKIE && headers.get_all(name).iter().count() > 1 {
            let mut joined = Vec::new();
            for (i, value) in values.enumerate() {
                if i > 0 {
                    joined.extend_from_slice(b"; ");
                }
                joined.extend_from_slice(value.as_bytes());
            }
            if let Ok(value) = HeaderValue::from_bytes(&joined) {
                out.insert(header::COOKIE, value);
            }
            continue;
        }
        for value in values.by_ref() {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::header_map;

    #[test]
    fn authority_becomes_the_first_header_and_cookies_one_line() {
        let uri: Uri = "https://example.com:8443/a?b".parse().unwrap();
        let map = headers(
            &uri,
            &header_map(&[
                ("accept", "*/*"),
                ("cookie", "a=1"),
                ("host", "ignored"),
                ("cookie", "b=2"),
            ]),
        );
        let names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host", "accept", "cookie"]);
        assert_eq!(map["host"], "example.com:8443");
        assert_eq!(map["cookie"], "a=1; b=2");
    }

    #[test]
    fn without_authority_the_host_line_stays() {
        let uri: Uri = "/a".parse().unwrap();
        let map = headers(&uri, &header_map(&[("host", "h"), ("cookie", "only")]));
        assert_eq!(map["host"], "h");
        assert_eq!(map["cookie"], "only");
    }
}
