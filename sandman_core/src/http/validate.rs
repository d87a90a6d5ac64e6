//! Request checks hyper leaves to us, each citing the rule it enforces. All run before the
//! app is called; a failure is answered and the connection closed.

use hyper::header::{self, HeaderMap, HeaderValue};
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
fn check_host(version: Version, fields: &Fields) -> Result<(), Refusal> {
    match (fields.host, fields.hosts) {
        (None, _) if version == Version::HTTP_11 => Err(Refusal::BadRequest),
        (None, _) => Ok(()),
        (Some(_), 2..) => Err(Refusal::BadRequest),
        (Some(value), _) if host_value_is_valid(value.as_bytes()) => Ok(()),
        (Some(_), _) => Err(Refusal::BadRequest),
    }
}

/// What one walk over a request's fields finds: what the checks and the service need to
/// know, without hashing a field name per question.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    /// The head's size as the limit counts it: each field's name and value, plus 4.
    pub head_len: usize,
    /// The first `Host` field, and how many there are.
    host: Option<&'a HeaderValue>,
    hosts: usize,
    /// A `Transfer-Encoding` field is present.
    transfer_encoding: bool,
    /// An `Upgrade` field is present.
    pub upgrade: bool,
}

/// Walk `headers` once (see [`Fields`]).
pub fn fields(headers: &HeaderMap) -> Fields<'_> {
    let mut found = Fields::default();
    for (name, value) in headers {
        found.head_len += name.as_str().len() + value.len() + 4;
        if name == header::HOST {
            found.host.get_or_insert(value);
            found.hosts += 1;
        } else if name == header::TRANSFER_ENCODING {
            found.transfer_encoding = true;
        } else if name == header::UPGRADE {
            found.upgrade = true;
        }
    }
    found
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

/// Every check, in order. `fields` is the walk over `headers`; `websocket`: the request is
/// an HTTP/2 extended CONNECT that opens a WebSocket.
pub fn check(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
    fields: &Fields,
    websocket: bool,
) -> Result<(), Refusal> {
    check_target(method, uri, websocket)?;
    check_host(version, fields)?;
    if fields.transfer_encoding {
        check_transfer_coding(headers)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::common::header_map as headers;

    #[test]
    fn host_rules() {
        let v11 = Version::HTTP_11;
        fn host(version: Version, list: &[(&'static str, &'static str)]) -> Result<(), Refusal> {
            check_host(version, &fields(&headers(list)))
        }
        assert_eq!(host(v11, &[]), Err(Refusal::BadRequest));
        assert_eq!(host(Version::HTTP_10, &[]), Ok(()));
        assert_eq!(host(v11, &[("host", "a")]), Ok(()));
        assert_eq!(host(v11, &[("host", "a b")]), Err(Refusal::BadRequest));
        assert_eq!(
            host(v11, &[("host", "a"), ("host", "a")]),
            Err(Refusal::BadRequest)
        );
        assert_eq!(
            host(Version::HTTP_10, &[("host", "a"), ("host", "b")]),
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
