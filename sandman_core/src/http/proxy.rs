//! Proxy headers (`X-Forwarded-For`, `X-Forwarded-Proto`) from trusted peers, with uvicorn's
//! rules.
//!
//! From a trusted direct peer: the last `X-Forwarded-Proto` value, if it is one of
//! http/https/ws/wss, becomes the scheme; all `X-Forwarded-For` lines are joined and walked
//! right to left to the first untrusted hop, which becomes the client (port from
//! `host:port` or `[v6]:port`, else 0); if every hop is trusted the left-most wins; `*`
//! trusts everyone and takes the left-most hop. An empty value leaves the client alone.

use hyper::header::{HeaderMap, HeaderName};

use crate::common::trusted_hosts::TrustedHosts;
use crate::exchange::connection::Connection;
use crate::exchange::head::RequestHead;

/// What the proxy headers of one request change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// New `client`.
    pub client: Option<(String, u16)>,
    /// New scheme (`http`/`https`; the WebSocket scope maps them to ws/wss).
    pub https: Option<bool>,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Read the proxy headers of a request from a trusted peer.
pub fn forwarded(trusted: &TrustedHosts, headers: &HeaderMap) -> Forwarded {
    let mut out = Forwarded::default();
    if let Some(proto) = headers.get_all(&X_FORWARDED_PROTO).iter().next_back() {
        let proto = String::from_utf8_lossy(proto.as_bytes());
        match proto.trim() {
            "http" | "ws" => out.https = Some(false),
            "https" | "wss" => out.https = Some(true),
            _ => {}
        }
    }
    let values: Vec<String> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if !values.is_empty() {
        let (host, port) = trusted.client_from(&values.join(", "));
        if !host.is_empty() {
            out.client = Some((host, port));
        }
    }
    out
}

fn peer_trusted(conn: &Connection, trusted: &TrustedHosts) -> bool {
    *conn
        .proxy_trusted
        .get_or_init(|| trusted.contains(conn.peer.client.as_ref().map(|(host, _)| host.as_str())))
}

/// The client a trusted peer's `X-Forwarded-For` names, for a response the transport
/// writes itself (a static file, a cache hit): what the access line shows.
pub fn forwarded_client(
    conn: &Connection,
    trusted: &TrustedHosts,
    headers: &HeaderMap,
) -> Option<(String, u16)> {
    if !peer_trusted(conn, trusted) || !headers.contains_key(&X_FORWARDED_FOR) {
        return None;
    }
    forwarded(trusted, headers).client
}

/// Whether any `X-Forwarded-*` field is present: one pass over the names, cheaper than
/// hashing both names for lookups on the many requests that carry neither.
fn any_forwarded(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name.as_str().starts_with("x-forwarded-"))
}

/// Apply a trusted peer's proxy headers to `head`: the client it names and the scheme.
pub fn apply(head: &mut RequestHead, conn: &Connection, trusted: &TrustedHosts) {
    if !any_forwarded(&head.headers) || !peer_trusted(conn, trusted) {
        return;
    }
    let forwarded = forwarded(trusted, &head.headers);
    if let Some(client) = forwarded.client {
        head.forwarded_client = Some(Box::new(client));
    }
    if let Some(https) = forwarded.https {
        head.tls = https;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::trusted_hosts::TrustedHosts;

    use crate::common::header_map as headers;

    #[test]
    fn rightmost_untrusted_hop_wins() {
        let t = TrustedHosts::parse(&["127.0.0.1", "10.0.0.0/8"]);
        let f = forwarded(
            &t,
            &headers(&[("x-forwarded-for", "1.2.3.4, 5.6.7.8, 10.0.0.1")]),
        );
        assert_eq!(f.client, Some(("5.6.7.8".into(), 0)));
        // all trusted: the left-most
        let f = forwarded(&t, &headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]));
        assert_eq!(f.client, Some(("10.1.1.1".into(), 0)));
        // several lines are joined
        let f = forwarded(
            &t,
            &headers(&[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "2.2.2.2"),
            ]),
        );
        assert_eq!(f.client, Some(("2.2.2.2".into(), 0)));
        // always: left-most
        let f = forwarded(
            &TrustedHosts::parse(&["*"]),
            &headers(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2")]),
        );
        assert_eq!(f.client, Some(("1.1.1.1".into(), 0)));
    }

    #[test]
    fn an_empty_forwarded_for_changes_nothing() {
        let t = TrustedHosts::parse(&["127.0.0.1"]);
        assert_eq!(
            forwarded(&t, &headers(&[("x-forwarded-for", "")])).client,
            None
        );
    }

    #[test]
    fn proto() {
        let t = TrustedHosts::parse(&["127.0.0.1"]);
        let f = forwarded(
            &t,
            &headers(&[
                ("x-forwarded-proto", "http"),
                ("x-forwarded-proto", "https"),
            ]),
        );
        assert_eq!(f.https, Some(true), "the last value wins");
        let f = forwarded(&t, &headers(&[("x-forwarded-proto", "gopher")]));
        assert_eq!(f.https, None);
    }
}
