//! The response cache as the transport uses it (`exchange/cache/`): before a request goes
//! to the app, answer it from the cache, wait for another request's fill, or send it on
//! with a tap on its exchange.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use crate::exchange::cache::entry::Entry;
use crate::exchange::cache::store::{Lookup, ResponseCache};
use crate::exchange::cache::tap::{Fill, Invalidate, ResponseTap};
use crate::exchange::connection::Connection;
use crate::http::context::ServerContext;
use crate::http::core_access::{self, RequestLine};
use crate::http::response_body::ResponseBody;

/// Longest a request waits for another's fill before going to the app itself.
const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// What to do with a request, as far as the cache is concerned.
pub enum Consult {
    /// Answered from the cache.
    Answered(Response<ResponseBody>),
    /// Wait for the fill in progress for its URL ([`after_wait`]).
    Wait(watch::Receiver<bool>),
    /// Send it to the app, with this tap on its exchange.
    Dispatch(Option<Box<dyn ResponseTap>>),
}

/// Ask the cache about `req`.
pub fn consult(
    req: &Request<Incoming>,
    conn: &Connection,
    ctx: &ServerContext,
    cache: &Arc<ResponseCache>,
) -> Consult {
    let method = req.method();
    let safe = *method == Method::GET || *method == Method::HEAD;
    if safe && !req.body().is_end_stream() {
        // A GET with a body is not a request a cache answers.
        return Consult::Dispatch(None);
    }
    match cache.lookup(method, conn.peer.tls, req.uri(), req.headers(), true) {
        Lookup::Hit(entry) => Consult::Answered(replay(&entry, req, conn, ctx)),
        Lookup::Wait(done) => Consult::Wait(done),
        other => Consult::Dispatch(tap_for(cache, other)),
    }
}

/// The tap a request that goes to the app carries.
fn tap_for(cache: &Arc<ResponseCache>, lookup: Lookup) -> Option<Box<dyn ResponseTap>> {
    match lookup {
        Lookup::Fill(ticket) => Some(Box::new(Fill::new(cache.clone(), ticket))),
        Lookup::Invalidate(keys) => Some(Box::new(Invalidate::new(cache.clone(), keys))),
        Lookup::Hit(_) | Lookup::Wait(_) | Lookup::Pass => None,
    }
}

/// After waiting for the fill of `req`'s URL: the stored response, or the tap to go to
/// the app with (the fill did not store, or stored a variant this request does not take).
pub async fn after_wait(
    mut done: watch::Receiver<bool>,
    req: &Request<Incoming>,
    conn: &Connection,
    ctx: &ServerContext,
    cache: &Arc<ResponseCache>,
) -> Result<Response<ResponseBody>, Option<Box<dyn ResponseTap>>> {
    // A dropped sender ends the wait as well as a sent `true`.
    let _ = tokio::time::timeout(WAIT_LIMIT, done.wait_for(|over| *over)).await;
    match cache.lookup(req.method(), conn.peer.tls, req.uri(), req.headers(), false) {
        Lookup::Hit(entry) => Ok(replay(&entry, req, conn, ctx)),
        other => Err(tap_for(cache, other)),
    }
}

/// Weak comparison of `If-None-Match` with the stored `ETag` (RFC 9110 §13.1.2).
fn not_modified(request: &HeaderMap, entry: &Entry) -> bool {
    let Some(etag) = entry.headers.get(header::ETAG) else {
        return false;
    };
    let opaque = |tag: &[u8]| -> Vec<u8> { tag.strip_prefix(b"W/").unwrap_or(tag).to_vec() };
    let stored = opaque(etag.as_bytes());
    request.get_all(header::IF_NONE_MATCH).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .map(|tag| tag.trim_ascii())
            .any(|tag| tag == b"*" || opaque(tag) == stored)
    })
}

/// Headers a 304 keeps (RFC 9110 §15.4.5).
const KEPT_BY_304: [header::HeaderName; 8] = [
    header::DATE,
    header::SERVER,
    header::ETAG,
    header::CACHE_CONTROL,
    header::VARY,
    header::EXPIRES,
    header::CONTENT_LOCATION,
    header::LAST_MODIFIED,
];

/// The stored response, as the answer to `req`: with its `Age`, its head only for a HEAD,
/// a 304 when the request's `If-None-Match` matches it.
fn replay(
    entry: &Entry,
    req: &Request<Incoming>,
    conn: &Connection,
    ctx: &ServerContext,
) -> Response<ResponseBody> {
    let age = HeaderValue::from(entry.age(Instant::now()));
    let (status, mut headers, body) = if not_modified(req.headers(), entry) {
        let mut kept = HeaderMap::new();
        for name in &KEPT_BY_304 {
            for value in entry.headers.get_all(name) {
                kept.append(name.clone(), value.clone());
            }
        }
        (StatusCode::NOT_MODIFIED, kept, ResponseBody::empty())
    } else if req.method() == Method::HEAD {
        let mut headers = entry.headers.clone();
        if !headers.contains_key(header::CONTENT_LENGTH) {
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(entry.body.len() as u64),
            );
        }
        (entry.status, headers, ResponseBody::empty())
    } else {
        let body = ResponseBody::full(Bytes::clone(&entry.body));
        (entry.status, entry.headers.clone(), body)
    };
    headers.insert(header::AGE, age);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    let line = RequestLine {
        method: req.method(),
        uri: req.uri(),
        version: req.version(),
        headers: req.headers(),
    };
    core_access::log(ctx, conn, &line, status.as_u16());
    response
}
