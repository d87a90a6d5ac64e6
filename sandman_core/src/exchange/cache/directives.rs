//! `Cache-Control` (RFC 9111 §5.2), request and response directives alike. Unknown
//! directives are ignored; a directive with an argument it should not have (or a bad one)
//! is read conservatively.

use hyper::header::{self, HeaderMap};

/// The directives the cache acts on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    /// `public`.
    pub public: bool,
    /// `private` (with or without field names: either way, not for a shared cache).
    pub private: bool,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (with or without field names: either way, revalidate every time).
    pub no_cache: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `max-age=N`.
    pub max_age: Option<u64>,
    /// `s-maxage=N`.
    pub s_maxage: Option<u64>,
}

fn seconds(value: Option<&str>) -> Option<u64> {
    let value = value?.trim().trim_matches('"');
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A delta-seconds too large to represent is the largest (RFC 9111 §1.2.2).
    Some(value.parse().unwrap_or(u64::from(u32::MAX)))
}

/// Read every `Cache-Control` line of `headers`.
pub fn parse(headers: &HeaderMap) -> CacheControl {
    let mut cc = CacheControl::default();
    for line in headers.get_all(header::CACHE_CONTROL) {
        let Ok(line) = line.to_str() else { continue };
        for directive in line.split(',') {
            let (name, value) = match directive.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value)),
                None => (directive.trim(), None),
            };
            match name.to_ascii_lowercase().as_str() {
                "public" => cc.public = true,
                "private" => cc.private = true,
                "no-store" => cc.no_store = true,
                "no-cache" => cc.no_cache = true,
                "must-revalidate" => cc.must_revalidate = true,
                "proxy-revalidate" => cc.proxy_revalidate = true,
                // A repeated or invalid max-age makes the response stale (§4.2.1): zero.
                "max-age" => {
                    cc.max_age = Some(match cc.max_age {
                        Some(_) => 0,
                        None => seconds(value).unwrap_or(0),
                    })
                }
                "s-maxage" => {
                    cc.s_maxage = Some(match cc.s_maxage {
                        Some(_) => 0,
                        None => seconds(value).unwrap_or(0),
                    })
                }
                _ => {}
            }
        }
    }
    cc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::header_map;

    #[test]
    fn reads_the_directives_across_lines() {
        let cc = parse(&header_map(&[
            ("cache-control", "public, max-age=60"),
            ("cache-control", "S-MAXAGE=\"120\", no-transform"),
        ]));
        assert!(cc.public && !cc.private);
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(120));
    }

    #[test]
    fn field_names_and_bad_values_are_read_conservatively() {
        let cc = parse(&header_map(&[(
            "cache-control",
            "private=\"set-cookie\", no-cache=\"x\", max-age=abc",
        )]));
        assert!(cc.private && cc.no_cache);
        assert_eq!(cc.max_age, Some(0));
        let cc = parse(&header_map(&[("cache-control", "max-age=60, max-age=70")]));
        assert_eq!(cc.max_age, Some(0), "a repeated max-age is stale");
        assert_eq!(
            parse(&header_map(&[(
                "cache-control",
                "max-age=99999999999999999999"
            )]))
            .max_age,
            Some(u64::from(u32::MAX))
        );
    }
}
