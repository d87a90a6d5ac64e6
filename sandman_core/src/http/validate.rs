//! Request checks hyper leaves to us, each citing the rule it enforces. All run before the
//! app is called; a failure is answered and the connection closed.

use hyper::header::{self, HeaderMap};
use hyper::{Method, Uri, Version};

/// Why a request is refused, and with which status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400 Bad Request.
    BadRequest,
    /// 501 Not Implemented.
    NotImplemented,
}

/// RFC 9112 §3.2 "A server MUST respond with a 400 (Bad Request) status code to any
/// HTTP/1.1 request message that lacks a Host header field and to any request message that
/// contains more than one Host header field line or a Host header field with an invalid
/// field value."
fn check_host(version: Version, headers: &HeaderMap) -> Result<(), Refusal> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 => Err(Refusal::BadRequest),
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(Refusal::BadRequest),
        (Some(value), None) if host_value_is_valid(value.as_bytes()) => Ok(()),
        (Some(_), None) => Err(Refusal::BadRequest),
    }
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2); empty is allowed.
pub fn host_value_is_valid(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        // IP-literal: "[" ... "]" then an optional port.
        let Some(end) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &value[1..end];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        (&value[..=end], &value[end + 1..])
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &value[value.len()..]),
        }
    };
    let host_ok = host.first() == Some(&b'[')
        || host.iter().all(|&b| {
            // reg-name: unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2).
            b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
        });
    let port_ok = port.is_empty()
        || (port[0] == b':' && port[1..].iter().all(u8::is_ascii_digit) && port.len() <= 6);
    host_ok && port_ok
}

/// RFC 9112 §6.1: `chunked` must be the last coding and applied once (§7: "A sender MUST
/// NOT apply the chunked transfer coding more than once"); hyper checks "last". Any other
/// coding is one we do not implement: 501 (§6.1 SHOULD).
fn check_transfer_coding(headers: &HeaderMap) -> Result<(), Refusal> {
    let mut chunked = 0;
    let mut other = false;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Err(Refusal::BadRequest);
        };
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if coding.eq_ignore_ascii_case("chunked") {
                chunked += 1;
            } else {
                other = true;
            }
        }
    }
    if chunked > 1 {
        Err(Refusal::BadRequest)
    } else if other {
        Err(Refusal::NotImplemented)
    } else {
        Ok(())
    }
}

/// RFC 9112 §3.2: authority-form is only for CONNECT, asterisk-form only for OPTIONS. A
/// CONNECT tunnel has no meaning for an ASGI app: 501. An HTTP/2 extended CONNECT for a
/// WebSocket (RFC 8441, `websocket`) is a request like any other.
fn check_target(method: &Method, uri: &Uri, websocket: bool) -> Result<(), Refusal> {
    if method == Method::CONNECT && !websocket {
        return Err(Refusal::NotImplemented);
    }
    let path = uri.path();
    if path == "*" {
        return if method == Method::OPTIONS {
            Ok(())
        } else {
            Err(Refusal::BadRequest)
        };
    }
    if !path.starts_with('/') || (uri.authority().is_some() && uri.scheme().is_none()) {
        return Err(Refusal::BadRequest);
    }
    Ok(())
}

/// Every check, in order. `websocket`: the request is an HTTP/2 extended CONNECT that opens
/// a WebSocket.
pub fn check(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
    websocket: bool,
) -> Result<(), Refusal> {
    check_target(method, uri, websocket)?;
    check_host(version, headers)?;
    check_transfer_coding(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::common::header_map as headers;

    #[test]
    fn host_rules() {
        let v11 = Version::HTTP_11;
        assert_eq!(check_host(v11, &headers(&[])), Err(Refusal::BadRequest));
        assert_eq!(check_host(Version::HTTP_10, &headers(&[])), Ok(()));
        assert_eq!(
            check_host(v11, &headers(&[("host", "a"), ("host", "a")])),
            Err(Refusal::BadRequest)
        );
        assert_eq!(
            check_host(Version::HTTP_10, &headers(&[("host", "a"), ("host", "b")])),
            Err(Refusal::BadRequest)
        );
        for good in [
            "",
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "xn--bcher-kva.de",
        ] {
            assert!(host_value_is_valid(good.as_bytes()), "{good}");
        }
        for bad in [
            "a b",
            "a/b",
            "user@a",
            "a:xx",
            "[::1",
            "[]:80",
            "a:1234567",
            "a\tb",
        ] {
            assert!(!host_value_is_valid(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn transfer_codings() {
        assert_eq!(check_transfer_coding(&headers(&[])), Ok(()));
        assert_eq!(
            check_transfer_coding(&headers(&[("transfer-encoding", "Chunked")])),
            Ok(())
        );
        assert_eq!(
            check_transfer_coding(&headers(&[("transfer-encoding", "gzip, chunked")])),
            Err(Refusal::NotImplemented)
        );
        assert_eq!(
            check_transfer_coding(&headers(&[("transfer-encoding", "chunked, chunked")])),
            Err(Refusal::BadRequest)
        );
        assert_eq!(
            check_transfer_coding(&headers(&[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked")
            ])),
            Err(Refusal::BadRequest)
        );
    }

    #[test]
    fn targets() {
        let get = Method::GET;
        assert_eq!(check_target(&get, &"/a?b".parse().unwrap(), false), Ok(()));
        assert_eq!(
            check_target(&get, &"http://h/a".parse().unwrap(), false),
            Ok(()),
            "absolute-form"
        );
        assert_eq!(
            check_target(&get, &"*".parse().unwrap(), false),
            Err(Refusal::BadRequest)
        );
        assert_eq!(
            check_target(&Method::OPTIONS, &"*".parse().unwrap(), false),
            Ok(())
        );
        assert_eq!(
            check_target(&get, &"example.com:80".parse().unwrap(), false),
            Err(Refusal::BadRequest)
        );
        assert_eq!(
            check_target(&Method::CONNECT, &"example.com:443".parse().unwrap(), false),
            Err(Refusal::NotImplemented)
        );
        assert_eq!(
            check_target(&Method::CONNECT, &"https://h/chat".parse().unwrap(), true),
            Ok(()),
            "RFC 8441 extended CONNECT"
        );
    }
}
