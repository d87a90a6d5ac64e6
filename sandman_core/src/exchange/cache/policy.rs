//! RFC 9111's rules as this cache applies them: what a request may take from the cache,
//! whether a response may be stored and for how long, and which methods invalidate.

use hyper::header::{self, HeaderMap};
use hyper::{Method, StatusCode};

use crate::exchange::cache::directives::{self, CacheControl};

/// What a GET or HEAD request may do with the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestUse {
    /// Take a stored response if one is fresh enough (`max-age=N` in the request caps its
    /// age).
    Lookup {
        /// The request's `max-age`.
        max_age: Option<u64>,
    },
    /// Go to the app (`no-cache`, `max-age=0`, `Pragma: no-cache`), and store the answer.
    Refresh,
    /// Neither take nor store (`no-store`).
    Bypass,
}

/// What the request's `Cache-Control` (or `Pragma`) allows (§5.2.1, §5.4).
pub fn request_use(headers: &HeaderMap) -> RequestUse {
    let cc = directives::parse(headers);
    if cc.no_store {
        return RequestUse::Bypass;
    }
    let pragma_no_cache = !headers.contains_key(header::CACHE_CONTROL)
        && headers
            .get_all(header::PRAGMA)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"));
    if cc.no_cache || cc.max_age == Some(0) || pragma_no_cache {
        return RequestUse::Refresh;
    }
    RequestUse::Lookup {
        max_age: cc.max_age,
    }
}

/// Whether a shared cache may store this response to a GET or HEAD request, and if so for
/// how many seconds it stays fresh (§3, §3.5, §4.2.1). Only responses the app marks for
/// shared caches with an explicit lifetime qualify: `public` or `s-maxage`, with `s-maxage`
/// or `max-age` above zero; never `private`, `no-store`, `no-cache`, `Set-Cookie` or
/// `Vary: *`; a request carrying `Authorization` only when the response allows it.
pub fn storable(request: &HeaderMap, status: StatusCode, response: &HeaderMap) -> Option<u64> {
    let code = status.as_u16();
    if !(200..600).contains(&code)
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return None;
    }
    let cc: CacheControl = directives::parse(response);
    if cc.no_store || cc.private || cc.no_cache {
        return None;
    }
    if !cc.public && cc.s_maxage.is_none() {
        return None;
    }
    if request.contains_key(header::AUTHORIZATION)
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return None;
    }
    if response.contains_key(header::SET_COOKIE) || vary_star(response) {
        return None;
    }
    if directives::parse(request).no_store {
        return None;
    }
    cc.s_maxage.or(cc.max_age).filter(|&lifetime| lifetime > 0)
}

fn vary_star(headers: &HeaderMap) -> bool {
    headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .map(|text| text.split(',').any(|name| name.trim() == "*"))
            .unwrap_or(true)
    })
}

/// The `Age` the app's response already carries (0 when none or not a number).
pub fn initial_age(headers: &HeaderMap) -> u64 {
    headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A method whose non-error response invalidates the stored responses of its URL (§4.4):
/// any but the safe ones.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::header_map;

    fn ok(response: &[(&'static str, &'static str)]) -> Option<u64> {
        storable(&HeaderMap::new(), StatusCode::OK, &header_map(response))
    }

    #[test]
    fn public_with_a_lifetime_is_stored() {
        assert_eq!(ok(&[("cache-control", "public, max-age=60")]), Some(60));
        assert_eq!(
            ok(&[("cache-control", "s-maxage=30, max-age=60")]),
            Some(30)
        );
        assert_eq!(ok(&[("cache-control", "public, s-maxage=30")]), Some(30));
    }

    #[test]
    fn what_is_never_stored() {
        for response in [
            &[("cache-control", "max-age=60")][..],
            &[("cache-control", "public")],
            &[("cache-control", "public, max-age=0")],
            &[("cache-control", "public, max-age=60, private")],
            &[("cache-control", "public, max-age=60, no-store")],
            &[("cache-control", "public, max-age=60, no-cache")],
            &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "a=1"),
            ],
            &[
                ("cache-control", "public, max-age=60"),
                ("vary", "accept, *"),
            ],
            &[],
        ] {
            assert_eq!(ok(response), None, "{response:?}");
        }
        let public = header_map(&[("cache-control", "public, max-age=60")]);
        assert_eq!(
            storable(&HeaderMap::new(), StatusCode::PARTIAL_CONTENT, &public),
            None
        );
        assert_eq!(
            storable(&HeaderMap::new(), StatusCode::NOT_MODIFIED, &public),
            None
        );
        let no_store = header_map(&[("cache-control", "no-store")]);
        assert_eq!(storable(&no_store, StatusCode::OK, &public), None);
    }

    #[test]
    fn authorization_needs_the_response_to_allow_it() {
        let auth = header_map(&[("authorization", "Bearer x")]);
        let public = header_map(&[("cache-control", "public, max-age=60")]);
        assert_eq!(storable(&auth, StatusCode::OK, &public), Some(60));
        let s_maxage = header_map(&[("cache-control", "s-maxage=60")]);
        assert_eq!(storable(&auth, StatusCode::OK, &s_maxage), Some(60));
    }

    #[test]
    fn request_directives() {
        assert_eq!(
            request_use(&HeaderMap::new()),
            RequestUse::Lookup { max_age: None }
        );
        let h = header_map(&[("cache-control", "max-age=5")]);
        assert_eq!(request_use(&h), RequestUse::Lookup { max_age: Some(5) });
        for value in ["no-cache", "max-age=0"] {
            let h = header_map(&[("cache-control", value)]);
            assert_eq!(request_use(&h), RequestUse::Refresh);
        }
        let h = header_map(&[("pragma", "no-cache")]);
        assert_eq!(request_use(&h), RequestUse::Refresh);
        let h = header_map(&[("cache-control", "no-store")]);
        assert_eq!(request_use(&h), RequestUse::Bypass);
    }

    #[test]
    fn unsafe_methods() {
        assert!(is_unsafe(&Method::POST) && is_unsafe(&Method::DELETE));
        assert!(is_unsafe(&Method::from_bytes(b"PURGE").unwrap()));
        assert!(!is_unsafe(&Method::GET) && !is_unsafe(&Method::OPTIONS));
    }
}
