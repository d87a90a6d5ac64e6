//! Proxy headers (`X-Forwarded-For`, `X-Forwarded-Proto`) from trusted peers, with uvicorn's
//! rules (uvicorn-surface §4.7, D-HTTP-13).
//!
//! From a trusted direct peer: the last `X-Forwarded-Proto` value, if it is one of
//! http/https/ws/wss, becomes the scheme; all `X-Forwarded-For` lines are joined and walked
//! right to left to the first untrusted hop, which becomes the client (port from
//! `host:port` or `[v6]:port`, else 0); if every hop is trusted the left-most wins; `*`
//! trusts everyone and takes the left-most hop. An empty value leaves the client alone.
//! The trust list holds addresses, networks (`10.0.0.0/8`) and literals (anything else).

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderName};

/// The `--forwarded-allow-ips` list, parsed.
#[derive(Debug, Default, Clone)]
pub struct TrustedHosts {
    always: bool,
    hosts: Vec<IpAddr>,
    networks: Vec<(IpAddr, u8)>,
    literals: Vec<String>,
}

fn network(spec: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = spec.split_once('/')?;
    let addr: IpAddr = addr.trim().parse().ok()?;
    let bits: u8 = bits.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return None;
    }
    // Like Python's ipaddress.ip_network (strict): host bits set means "not a network".
    if mask(addr, bits) != addr {
        return None;
    }
    Some((addr, bits))
}

fn mask(addr: IpAddr, bits: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let m = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

impl TrustedHosts {
    /// Parse the list (items already split on commas).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> TrustedHosts {
        let mut trusted = TrustedHosts::default();
        for item in items {
            let item = item.as_ref().trim();
            if item == "*" {
                trusted.always = true;
            } else if item.contains('/') {
                match network(item) {
                    Some(net) => trusted.networks.push(net),
                    None => trusted.literals.push(item.to_owned()),
                }
            } else {
                match item.parse::<IpAddr>() {
                    Ok(ip) => trusted.hosts.push(ip),
                    Err(_) => trusted.literals.push(item.to_owned()),
                }
            }
        }
        trusted
    }

    /// Whether `host` (an address or a literal) is trusted.
    pub fn contains(&self, host: Option<&str>) -> bool {
        if self.always {
            return true;
        }
        let Some(host) = host.filter(|h| !h.is_empty()) else {
            return false;
        };
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                self.hosts.contains(&ip)
                    || self
                        .networks
                        .iter()
                        .any(|&(net, bits)| net.is_ipv4() == ip.is_ipv4() && mask(ip, bits) == net)
            }
            Err(_) => self.literals.iter().any(|l| l == host),
        }
    }

    /// The client address an `X-Forwarded-For` chain names.
    pub fn client_from(&self, forwarded_for: &str) -> (String, u16) {
        let hops: Vec<&str> = forwarded_for.split(',').map(str::trim).collect();
        if !self.always {
            for hop in hops.iter().rev() {
                let (host, port) = host_port(hop);
                if !self.contains(Some(&host)) {
                    return (host, port);
                }
            }
        }
        host_port(hops[0])
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]:80` -> (host, port or 0). Anything odd is kept whole.
fn host_port(value: &str) -> (String, u16) {
    if let Some(rest) = value.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return (value.to_owned(), 0);
        };
        let host = &rest[..end];
        let after = &rest[end + 1..];
        if after.is_empty() {
            return (host.to_owned(), 0);
        }
        return match after.strip_prefix(':') {
            Some(port) => (host.to_owned(), port.parse().unwrap_or(0)),
            None => (value.to_owned(), 0),
        };
    }
    if value.matches(':').count() == 1 {
        let (host, port) = value.rsplit_once(':').expect("one colon");
        return match port.parse() {
            Ok(port) => (host.to_owned(), port),
            Err(_) => (value.to_owned(), 0),
        };
    }
    (value.to_owned(), 0)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::common::header_map as headers;

    #[test]
    fn trust_list_kinds() {
        let t = TrustedHosts::parse(&[
            "127.0.0.1",
            "::1",
            "10.0.0.0/8",
            "10.0.0.1/8",
            "/tmp/s.sock",
        ]);
        assert!(t.contains(Some("127.0.0.1")));
        assert!(t.contains(Some("::1")));
        assert!(t.contains(Some("10.20.30.40")));
        assert!(!t.contains(Some("11.0.0.1")));
        assert!(
            t.contains(Some("10.0.0.1/8")),
            "host bits set: kept as a literal"
        );
        assert!(t.contains(Some("/tmp/s.sock")));
        assert!(!t.contains(None));
        assert!(TrustedHosts::parse(&["*"]).contains(None));
    }

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
    fn ports_and_odd_values() {
        assert_eq!(host_port("1.2.3.4:123"), ("1.2.3.4".into(), 123));
        assert_eq!(host_port("[::1]:123"), ("::1".into(), 123));
        assert_eq!(host_port("[::1]"), ("::1".into(), 0));
        assert_eq!(host_port("::1"), ("::1".into(), 0));
        assert_eq!(host_port("1.2.3.4:abc"), ("1.2.3.4:abc".into(), 0));
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
