//! Taps on a request's exchange: the app's response passes through one on its way to the
//! transport (`exchange/request.rs` calls it from `respond` and `stream`). A [`Fill`]
//! keeps the response and stores it at its end if the policy allows; an [`Invalidate`]
//! drops a URL's stored responses once an unsafe request's response is not an error.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use hyper::header::HeaderMap;
use hyper::StatusCode;
use tokio::sync::watch;

use crate::exchange::cache::entry::Entry;
use crate::exchange::cache::policy;
use crate::exchange::cache::store::{FillTicket, ResponseCache};
use crate::exchange::head::RequestHead;
use crate::exchange::response::{Answer, AnswerBody};

/// What sees a response pass.
pub trait ResponseTap: Send + Sync {
    /// The response head, for the request `request`.
    fn head(&self, request: &RequestHead, status: StatusCode, headers: &HeaderMap);

    /// A piece of the body; `end` with the last.
    fn body(&self, request: &RequestHead, data: &Bytes, end: bool);

    /// The response will not be seen whole (its body is a file the transport sends).
    fn abandon(&self) {}

    /// A whole response at once.
    fn whole(&self, request: &RequestHead, answer: &Answer) {
        self.head(request, answer.status, &answer.headers);
        match &answer.body {
            AnswerBody::Full(data) => self.body(request, data, true),
            AnswerBody::File(..) => self.abandon(),
            _ => self.body(request, &Bytes::new(), true),
        }
    }
}

/// A miss on its way to the app: keeps the response, stores it at its end.
pub struct Fill {
    cache: Arc<ResponseCache>,
    key: String,
    epoch: u64,
    /// Dropped (or sent) when the fill is over: waiting requests look again.
    done: Mutex<Option<watch::Sender<bool>>>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// Status, headers and lifetime once the head is known to be storable.
    head: Option<(StatusCode, HeaderMap, u64)>,
    body: BytesMut,
    /// Not storable, too large, or over.
    given_up: bool,
}

impl Fill {
    /// The fill `ticket` describes, storing into `cache`.
    pub fn new(cache: Arc<ResponseCache>, ticket: FillTicket) -> Fill {
        Fill {
            cache,
            key: ticket.key,
            epoch: ticket.epoch,
            done: Mutex::new(ticket.done),
            kept: Mutex::new(Kept::default()),
        }
    }

    fn finish(&self) {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(done) = done {
            self.cache.fill_done(&self.key);
            let _ = done.send(true);
        }
    }
}

impl ResponseTap for Fill {
    fn abandon(&self) {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).given_up = true;
        self.finish();
    }

    fn head(&self, request: &RequestHead, status: StatusCode, headers: &HeaderMap) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        match policy::storable(&request.headers, status, headers) {
            Some(lifetime) => kept.head = Some((status, headers.clone(), lifetime)),
            None => kept.given_up = true,
        }
        let give_up = kept.given_up;
        drop(kept);
        if give_up {
            // Waiting requests need not wait for the body of a response no one keeps.
            self.finish();
        }
    }

    fn body(&self, request: &RequestHead, data: &Bytes, end: bool) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if !kept.given_up {
            if kept.body.len() + data.len() > self.cache.max_entry() {
                kept.given_up = true;
                kept.body = BytesMut::new();
            } else {
                // A copy: the app's buffer may be a Python object, not to be held for long.
                kept.body.extend_from_slice(data);
            }
        }
        if !end {
            if kept.given_up {
                drop(kept);
                self.finish();
            }
            return;
        }
        let stored = match (kept.given_up, kept.head.take()) {
            (false, Some((status, headers, lifetime))) => {
                let body = std::mem::take(&mut kept.body).freeze();
                Some(Entry::new(
                    status,
                    &headers,
                    body,
                    &request.headers,
                    lifetime,
                ))
            }
            _ => None,
        };
        kept.given_up = true;
        drop(kept);
        if let Some(entry) = stored {
            self.cache.store(&self.key, entry, self.epoch);
        }
        self.finish();
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        self.finish();
    }
}

/// An unsafe request's tap: its URL's stored responses go once its response is not an
/// error (they went at the request too; this catches a fill that raced it).
pub struct Invalidate {
    cache: Arc<ResponseCache>,
    keys: [String; 2],
}

impl Invalidate {
    /// Invalidate `keys` (the GET and HEAD keys of the URL).
    pub fn new(cache: Arc<ResponseCache>, keys: [String; 2]) -> Invalidate {
        Invalidate { cache, keys }
    }
}

impl ResponseTap for Invalidate {
    fn head(&self, _request: &RequestHead, status: StatusCode, _headers: &HeaderMap) {
        if status.as_u16() < 400 {
            self.cache.invalidate(&self.keys);
        }
    }

    fn body(&self, _request: &RequestHead, _data: &Bytes, _end: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::header_map;
    use crate::exchange::cache::store::Lookup;
    use hyper::{Method, Uri, Version};

    fn fill(cache: &Arc<ResponseCache>, lookup: Lookup) -> Fill {
        match lookup {
            Lookup::Fill(ticket) => Fill::new(cache.clone(), ticket),
            _ => panic!("expected a fill"),
        }
    }

    fn request(uri: &str) -> (Uri, HeaderMap, RequestHead) {
        let uri: Uri = uri.parse().unwrap();
        let headers = header_map(&[("host", "example.com")]);
        let head = RequestHead::new(
            Method::GET,
            Version::HTTP_11,
            &uri,
            headers.clone(),
            "",
            false,
        );
        (uri, headers, head)
    }

    fn public() -> HeaderMap {
        header_map(&[("cache-control", "public, max-age=60")])
    }

    #[test]
    fn the_first_miss_fills_the_others_wait_then_hit() {
        let cache = ResponseCache::new(1 << 20, None);
        let (uri, headers, head) = request("/a?x=1");
        let fill = fill(
            &cache,
            cache.lookup(&Method::GET, false, &uri, &headers, true),
        );
        let Lookup::Wait(done) = cache.lookup(&Method::GET, false, &uri, &headers, true) else {
            panic!("a concurrent request waits");
        };
        assert!(!*done.borrow());
        fill.head(&head, StatusCode::OK, &public());
        fill.body(&head, &Bytes::from_static(b"one "), false);
        fill.body(&head, &Bytes::from_static(b"two"), true);
        assert!(done.has_changed().unwrap_or(true), "the waiters are told");
        let Lookup::Hit(entry) = cache.lookup(&Method::GET, false, &uri, &headers, false) else {
            panic!("stored");
        };
        assert_eq!(&entry.body[..], b"one two");
        // A HEAD is answered by the stored GET.
        assert!(matches!(
            cache.lookup(&Method::HEAD, false, &uri, &headers, true),
            Lookup::Hit(_)
        ));
        // Another scheme or host is another URL.
        assert!(matches!(
            cache.lookup(&Method::GET, true, &uri, &headers, true),
            Lookup::Fill(_)
        ));
    }

    #[test]
    fn an_invalidation_during_a_fill_keeps_it_from_storing() {
        let cache = ResponseCache::new(1 << 20, None);
        let (uri, headers, head) = request("/b");
        let fill = fill(
            &cache,
            cache.lookup(&Method::GET, false, &uri, &headers, true),
        );
        assert!(matches!(
            cache.lookup(&Method::POST, false, &uri, &headers, true),
            Lookup::Invalidate(_)
        ));
        fill.head(&head, StatusCode::OK, &public());
        fill.body(&head, &Bytes::from_static(b"stale"), true);
        drop(fill);
        assert!(matches!(
            cache.lookup(&Method::GET, false, &uri, &headers, true),
            Lookup::Fill(_)
        ));
    }

    #[test]
    fn the_bound_evicts() {
        let cache = ResponseCache::new(64 * 1024, None);
        for i in 0..100 {
            let (uri, headers, head) = request(&format!("/e{i}"));
            let fill = fill(
                &cache,
                cache.lookup(&Method::GET, false, &uri, &headers, true),
            );
            fill.head(&head, StatusCode::OK, &public());
            fill.body(&head, &Bytes::from(vec![b'x'; 4000]), true);
        }
        assert!(cache.weight() <= 64 * 1024, "{}", cache.weight());
        assert!(cache.evictions() > 0);
    }
}
