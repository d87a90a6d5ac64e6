//! A request head, decoded on the IO thread: what the app side turns into a scope.

use bytes::{Bytes, BytesMut};
use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, Method, Version};
use percent_encoding::percent_decode;

use crate::common::access::AccessRecord;
use crate::exchange::connection::Peer;

/// A request head; the string work (percent-decoding, root-path joining) is done here so
/// the loop thread only copies.
pub struct RequestHead {
    /// Request method.
    pub method: Method,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    pub version: Version,
    /// Percent-decoded path, `root_path` prepended.
    pub path: String,
    /// Path bytes as received (no query), `root_path` prepended.
    pub raw_path: Bytes,
    /// Query string as received, without the `?`.
    pub query: Bytes,
    /// Request headers; names arrive lowercased from hyper, values untouched.
    pub headers: HeaderMap,
    /// The client a trusted proxy named (`X-Forwarded-For`), when it named one; otherwise
    /// the scope reports the peer (see [`RequestHead::client`]), which saves copying the
    /// peer's address for every request.
    pub forwarded_client: Option<Box<(String, u16)>>,
    /// Whether the scheme is https/wss (TLS, or a trusted proxy's `X-Forwarded-Proto`).
    pub tls: bool,
    /// What the transport can do for this request's response beyond the basics.
    pub features: ResponseFeatures,
}

/// Response features the transport offers for one request (the app side advertises them
/// as ASGI extensions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseFeatures {
    /// Trailers reach the client: the request said `TE: trailers` (noted by
    /// [`RequestHead::new`]). The same on HTTP/2: the ASGI trailers extension sends them
    /// only to a client that asked, whatever the protocol.
    pub trailers: bool,
    /// Interim responses (103 Early Hints) reach the client: HTTP/1.1 only (RFC 9110
    /// §15.2: never to an HTTP/1.0 client; hyper sends no 1xx of an app's over HTTP/2).
    pub early_hints: bool,
}

/// The scope's `path`: the target's path percent-decoded, `root_path` before it (as uvicorn
/// does since 0.30). Access lines use it too, so they show what the app saw.
pub fn scope_path(root_path: &str, raw: &str) -> String {
    let decoded = percent_decode(raw.as_bytes()).decode_utf8_lossy();
    if root_path.is_empty() {
        return decoded.into_owned();
    }
    let mut path = String::with_capacity(root_path.len() + decoded.len());
    path.push_str(root_path);
    path.push_str(&decoded);
    path
}

/// Copy the raw path (`root_path` before it), the query and every header value into one new
/// buffer, and point the head at it: returns `(raw_path, query)` and rewrites `headers`'
/// values in place. The walk over the headers also notes a `TE: trailers`, in the third
/// value.
///
/// hyper parses a request head in its per-connection read buffer, and the target and header
/// values it hands over are slices of that buffer. While any of them lives (until the event
/// loop is done with the request), the buffer is shared, and hyper, which reserves room
/// before every read, including the one that watches for the client going away while the
/// app runs, can only get room by allocating a fresh 8 KiB buffer: one per request, in cold
/// memory, freed later by the other thread. With nothing pointing into it, the buffer is
/// reused from its start.
fn detach(
    root_path: &str,
    raw: &str,
    query: &str,
    headers: &mut HeaderMap,
) -> (Bytes, Bytes, bool) {
    let mut values_len = 0;
    let mut te_trailers = false;
    for (name, value) in headers.iter() {
        values_len += value.len();
        te_trailers |= name == header::TE && accepts_trailers(value);
    }
    let raw_path_len = root_path.len() + raw.len();
    let mut buf = BytesMut::with_capacity(raw_path_len + query.len() + values_len);
    buf.extend_from_slice(root_path.as_bytes());
    buf.extend_from_slice(raw.as_bytes());
    buf.extend_from_slice(query.as_bytes());
    for value in headers.values() {
        buf.extend_from_slice(value.as_bytes());
    }
    let mut buf = buf.freeze();
    let raw_path = buf.split_to(raw_path_len);
    let query = buf.split_to(query.len());
    // `values_mut` visits the values in the order `values` did: the map is not changed between.
    for value in headers.values_mut() {
        let part = buf.split_to(value.len());
        // The bytes are those of a valid value, so this cannot fail; if it did, the value
        // would keep pointing into hyper's buffer, which costs speed, not correctness.
        if let Ok(mut detached) = HeaderValue::from_maybe_shared(part) {
            detached.set_sensitive(value.is_sensitive());
            *value = detached;
        }
    }
    (raw_path, query, te_trailers)
}

/// A `TE` value that lists `trailers`: the client takes trailers on a chunked response
/// (RFC 9110 §10.1.4).
fn accepts_trailers(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|s| {
        s.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
    })
}

impl RequestHead {
    /// Split and decode the request target. `root_path` is prefixed onto both `path` and
    /// `raw_path`, as uvicorn does since 0.30. `tls` is the connection's.
    pub fn new(
        method: Method,
        version: Version,
        uri: &hyper::Uri,
        mut headers: HeaderMap,
        root_path: &str,
        tls: bool,
    ) -> RequestHead {
        let raw = uri.path();
        let path = scope_path(root_path, raw);
        let (raw_path, query, te_trailers) =
            detach(root_path, raw, uri.query().unwrap_or(""), &mut headers);
        RequestHead {
            method,
            version,
            path,
            raw_path,
            query,
            headers,
            forwarded_client: None,
            tls,
            features: ResponseFeatures {
                trailers: te_trailers,
                early_hints: version == Version::HTTP_11,
            },
        }
    }

    /// The client as the scope reports it: a trusted proxy's `X-Forwarded-For` hop, or the
    /// peer.
    pub fn client<'a>(&'a self, peer: &'a Peer) -> Option<&'a (String, u16)> {
        self.forwarded_client.as_deref().or(peer.client.as_ref())
    }

    /// This request's access-log record, for a response with `status`.
    pub fn access_record(&self, peer: &Peer, status: u16) -> AccessRecord {
        AccessRecord::new(
            self.client(peer),
            self.method.as_str(),
            &self.path,
            &self.query,
            self.version,
            status,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_decoded_raw_path_is_not() {
        let uri: hyper::Uri = "/one%2Ftwo/a%20b?x=%20y".parse().unwrap();
        let head = RequestHead::new(
            Method::GET,
            Version::HTTP_11,
            &uri,
            HeaderMap::new(),
            "",
            false,
        );
        assert_eq!(head.path, "/one/two/a b");
        assert_eq!(&head.raw_path[..], b"/one%2Ftwo/a%20b");
        assert_eq!(&head.query[..], b"x=%20y");
    }

    #[test]
    fn root_path_prefixes_both() {
        let uri: hyper::Uri = "/one%2Ftwo".parse().unwrap();
        let head = RequestHead::new(
            Method::GET,
            Version::HTTP_11,
            &uri,
            HeaderMap::new(),
            "/app",
            false,
        );
        assert_eq!(head.path, "/app/one/two");
        assert_eq!(&head.raw_path[..], b"/app/one%2Ftwo");
        assert!(head.query.is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let uri: hyper::Uri = "/%ff".parse().unwrap();
        let head = RequestHead::new(
            Method::GET,
            Version::HTTP_11,
            &uri,
            HeaderMap::new(),
            "",
            false,
        );
        assert_eq!(head.path, "/\u{fffd}");
    }

    #[test]
    fn the_head_keeps_nothing_of_the_read_buffer() {
        // As hyper does: the head is split off the connection's read buffer, and the target
        // and header values are slices of it.
        let mut read_buf = BytesMut::with_capacity(8192);
        read_buf.extend_from_slice(b"/a/b?q=1host: h\r\nx-two: 1x-two: 2");
        let start = read_buf.as_ptr();
        let head_bytes = read_buf.split_to(read_buf.len()).freeze();
        let uri = hyper::Uri::from_maybe_shared(head_bytes.slice(0..8)).unwrap();
        let mut headers = HeaderMap::new();
        let value = |range| HeaderValue::from_maybe_shared(head_bytes.slice(range)).unwrap();
        headers.insert("host", value(14..15));
        headers.append("x-two", value(24..25));
        headers.append("x-two", value(32..33));
        let head = RequestHead::new(Method::GET, Version::HTTP_11, &uri, headers, "/r", false);
        drop((uri, head_bytes));

        // Unique again: hyper's next reserve reuses the buffer from its start.
        read_buf.reserve(8192);
        assert_eq!(read_buf.as_ptr(), start);

        assert_eq!(&head.raw_path[..], b"/r/a/b");
        assert_eq!(&head.query[..], b"q=1");
        assert_eq!(head.headers["host"], "h");
        let two: Vec<_> = head.headers.get_all("x-two").iter().collect();
        assert_eq!(two, ["1", "2"]);
    }
}
