//! The access-log record, with the `args` uvicorn's `AccessFormatter` expects:
//! `(client_addr, method, path_with_query, http_version, status_code)`.

use hyper::Version;

/// One access line's arguments, built without the GIL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// `host:port`, empty without a client (Unix sockets).
    pub client: String,
    /// Request method.
    pub method: String,
    /// `urllib.parse.quote(path)` plus `?query` when there is one.
    pub path: String,
    /// "1.0", "1.1" or "2".
    pub version: &'static str,
    /// Response status.
    pub status: u16,
}

/// Characters Python's `urllib.parse.quote` leaves alone (with its default `safe="/"`).
const QUOTE_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

/// `urllib.parse.quote(path)`, as uvicorn renders the path in access lines.
pub fn quote_path(path: &str) -> String {
    percent_encoding::utf8_percent_encode(path, QUOTE_SET).to_string()
}

impl AccessRecord {
    /// Build the record from the request's parts.
    pub fn new(
        client: Option<&(String, u16)>,
        method: &str,
        path: &str,
        query: &[u8],
        version: Version,
        status: u16,
    ) -> AccessRecord {
        let client = match client {
            Some((host, port)) => format!("{host}:{port}"),
            None => String::new(),
        };
        let mut path = quote_path(path);
        if !query.is_empty() {
            path.push('?');
            path.push_str(&String::from_utf8_lossy(query));
        }
        let version = match version {
            Version::HTTP_10 => "1.0",
            Version::HTTP_2 => "2",
            _ => "1.1",
        };
        AccessRecord {
            client,
            method: method.to_owned(),
            path,
            version,
            status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_like_urllib() {
        assert_eq!(quote_path("/a b/é~x"), "/a%20b/%C3%A9~x");
        let r = AccessRecord::new(
            Some(&("127.0.0.1".into(), 5)),
            "GET",
            "/a b",
            b"x=1",
            Version::HTTP_11,
            200,
        );
        assert_eq!(r.client, "127.0.0.1:5");
        assert_eq!(r.path, "/a%20b?x=1");
        assert_eq!(r.version, "1.1");
    }
}
