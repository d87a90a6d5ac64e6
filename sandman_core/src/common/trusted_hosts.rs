//! The `--forwarded-allow-ips` trust list: which peers may set the client and scheme
//! through proxy headers (uvicorn's rules; `http/proxy.rs` reads the headers).
//!
//! The list holds addresses, networks (`10.0.0.0/8`) and literals (anything else, such as a
//! Unix socket path); `*` trusts everyone.

use std::net::IpAddr;

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ports_and_odd_values() {
        assert_eq!(host_port("1.2.3.4:123"), ("1.2.3.4".into(), 123));
        assert_eq!(host_port("[::1]:123"), ("::1".into(), 123));
        assert_eq!(host_port("[::1]"), ("::1".into(), 0));
        assert_eq!(host_port("::1"), ("::1".into(), 0));
        assert_eq!(host_port("1.2.3.4:abc"), ("1.2.3.4:abc".into(), 0));
    }
}
