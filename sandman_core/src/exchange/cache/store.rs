//! The store: responses by URL in a `quick_cache` bounded by their size in bytes, each URL
//! holding the variants its `Vary` set apart; the fills in progress, for concurrent misses
//! to wait on; and invalidation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::header::{self, HeaderMap};
use hyper::{Method, Uri};
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};
use tokio::sync::watch;

use crate::common::metrics::recorder::Metrics;
use crate::exchange::cache::entry::Entry;
use crate::exchange::cache::policy::{self, RequestUse};

/// Every stored variant of one URL.
type Variants = Arc<Vec<Arc<Entry>>>;

/// Variants kept per URL; the oldest goes beyond.
const MAX_VARIANTS: usize = 8;

#[derive(Clone)]
struct Weigh;

impl Weighter<String, Variants> for Weigh {
    fn weight(&self, key: &String, variants: &Variants) -> u64 {
        key.len() as u64 + variants.iter().map(|e| e.weight()).sum::<u64>()
    }
}

/// Counts what the store evicts to stay within its bound.
#[derive(Clone)]
struct Evictions(Arc<AtomicU64>);

impl Lifecycle<String, Variants> for Evictions {
    type RequestState = ();

    fn begin_request(&self) {}

    fn on_evict(&self, _state: &mut (), _key: String, _variants: Variants) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the cache does for a request.
pub enum Lookup {
    /// A fresh stored response answers it.
    Hit(Arc<Entry>),
    /// Another request for the same URL is at the app: wait for it, then look again.
    Wait(watch::Receiver<bool>),
    /// Go to the app and keep its response (`tap::Fill`).
    Fill(FillTicket),
    /// An unsafe method: go to the app, and drop these keys' responses again once its
    /// response is not an error (`tap::Invalidate`).
    Invalidate([String; 2]),
    /// Go to the app; the cache has nothing to do with it.
    Pass,
}

/// What a fill needs to store its response.
pub struct FillTicket {
    /// The URL's key.
    pub key: String,
    /// The invalidation count when it began.
    pub epoch: u64,
    /// Signals the requests waiting on it (none for a fill others may not join).
    pub done: Option<watch::Sender<bool>>,
}

/// The response cache of one server.
pub struct ResponseCache {
    store: Cache<String, Variants, Weigh, DefaultHashBuilder, Evictions>,
    evictions: Arc<AtomicU64>,
    /// Fills in progress: URL key -> "done" signal.
    filling: Mutex<HashMap<String, watch::Receiver<bool>>>,
    /// Bumped by every invalidation: a fill that began before one does not store.
    invalidations: AtomicU64,
    /// Largest response stored.
    max_entry: usize,
    metrics: Option<Metrics>,
}

impl ResponseCache {
    /// A cache of at most `bytes`.
    pub fn new(bytes: u64, metrics: Option<Metrics>) -> Arc<ResponseCache> {
        let evictions = Arc::new(AtomicU64::new(0));
        // Few shards: each holds a share of the bound, and an entry larger than a share is
        // never admitted.
        let options = quick_cache::OptionsBuilder::new()
            .shards(4)
            .estimated_items_capacity(((bytes / 4096) as usize).clamp(16, 1 << 20))
            .weight_capacity(bytes)
            .build()
            .expect("valid cache options");
        Arc::new(ResponseCache {
            store: Cache::with_options(
                options,
                Weigh,
                DefaultHashBuilder::default(),
                Evictions(evictions.clone()),
            ),
            evictions,
            filling: Mutex::new(HashMap::new()),
            invalidations: AtomicU64::new(0),
            max_entry: (bytes / 4) as usize,
            metrics,
        })
    }

    /// The key of a URL: method (GET, or HEAD for responses to HEAD), scheme, host and
    /// target as received.
    pub fn key(head: bool, tls: bool, uri: &Uri, headers: &HeaderMap) -> String {
        let host = headers
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).to_ascii_lowercase())
            .or_else(|| uri.authority().map(|a| a.as_str().to_ascii_lowercase()))
            .unwrap_or_default();
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        format!(
            "{} {}://{host}{target}",
            if head { "HEAD" } else { "GET" },
            if tls { "https" } else { "http" }
        )
    }

    /// What to do for a request with `method`, `uri`, `headers` (on a TLS connection or
    /// not) and no body. `may_wait`: join a fill in progress (false after one wait).
    pub fn lookup(
        self: &Arc<Self>,
        method: &Method,
        tls: bool,
        uri: &Uri,
        headers: &HeaderMap,
        may_wait: bool,
    ) -> Lookup {
        let head = *method == Method::HEAD;
        if !head && *method != Method::GET {
            if !policy::is_unsafe(method) {
                return Lookup::Pass;
            }
            let keys = [
                Self::key(false, tls, uri, headers),
                Self::key(true, tls, uri, headers),
            ];
            self.invalidate(&keys);
            return Lookup::Invalidate(keys);
        }
        let use_ = policy::request_use(headers);
        let own_key = Self::key(head, tls, uri, headers);
        if let RequestUse::Lookup { max_age } = use_ {
            let found = self.find(&own_key, headers, max_age).or_else(|| {
                // A HEAD is answered by a stored GET as well (its head, without the body).
                head.then(|| self.find(&Self::key(false, tls, uri, headers), headers, max_age))
                    .flatten()
            });
            if let Some(entry) = found {
                if let Some(metrics) = &self.metrics {
                    metrics.cache_hit();
                }
                return Lookup::Hit(entry);
            }
        }
        if use_ == RequestUse::Bypass {
            return Lookup::Pass;
        }
        if let Some(metrics) = &self.metrics {
            metrics.cache_miss();
        }
        let epoch = self.invalidations.load(Ordering::Acquire);
        if use_ != RequestUse::Refresh {
            let mut filling = self.filling.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(done) = filling.get(&own_key) {
                if may_wait {
                    return Lookup::Wait(done.clone());
                }
            } else {
                let (tx, rx) = watch::channel(false);
                filling.insert(own_key.clone(), rx);
                return Lookup::Fill(FillTicket {
                    key: own_key,
                    epoch,
                    done: Some(tx),
                });
            }
        }
        Lookup::Fill(FillTicket {
            key: own_key,
            epoch,
            done: None,
        })
    }

    fn find(&self, key: &str, headers: &HeaderMap, max_age: Option<u64>) -> Option<Arc<Entry>> {
        let variants = self.store.get(key)?;
        let now = Instant::now();
        variants
            .iter()
            .find(|e| e.matches(headers) && e.fresh(now, max_age))
            .cloned()
    }

    /// The largest response a fill keeps.
    pub fn max_entry(&self) -> usize {
        self.max_entry
    }

    /// The invalidation count a fill starting now sees.
    pub fn epoch(&self) -> u64 {
        self.invalidations.load(Ordering::Acquire)
    }

    /// Store `entry` under `key` if no invalidation came since `epoch`; it replaces the
    /// variant it matches and stale ones.
    pub fn store(&self, key: &str, entry: Entry, epoch: u64) {
        if self.invalidations.load(Ordering::Acquire) != epoch {
            return;
        }
        let now = Instant::now();
        let mut variants: Vec<Arc<Entry>> = self
            .store
            .get(key)
            .map(|v| {
                v.iter()
                    .filter(|e| !e.same_variant(&entry) && e.fresh(now, None))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if variants.len() >= MAX_VARIANTS {
            variants.remove(0);
        }
        variants.push(Arc::new(entry));
        let evicted_before = self.evictions.load(Ordering::Relaxed);
        self.store.insert(key.to_owned(), Arc::new(variants));
        if let Some(metrics) = &self.metrics {
            let evicted = self.evictions.load(Ordering::Relaxed) - evicted_before;
            metrics.cache_stored(self.store.weight());
            if evicted > 0 {
                metrics.cache_evicted(evicted, self.store.weight());
            }
        }
    }

    /// Drop every stored response under `keys` (§4.4).
    pub fn invalidate(&self, keys: &[String]) {
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        for key in keys {
            self.store.remove(key.as_str());
        }
    }

    /// A fill for `key` is over (stored or not): requests waiting on it look again.
    pub fn fill_done(&self, key: &str) {
        self.filling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Bytes held.
    pub fn weight(&self) -> u64 {
        self.store.weight()
    }

    /// Entries evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}
