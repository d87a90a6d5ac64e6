//! The response cache (`--cache-size`): GET and HEAD responses the app marks storable by a
//! shared cache, replayed by the transport without waking Python, following RFC 9111.
//!
//! Theory of operation
//! -------------------
//! Before a request is handed to the app, the transport asks the cache (`store.rs`): a
//! fresh stored response whose `Vary` matches answers it at once (with `Age`); otherwise
//! the first request for a key becomes its *fill* and goes to the app, while concurrent
//! requests for the same key wait for it and then look again (so a burst of misses reaches
//! the app once). The fill rides on the request's exchange as a tap (`tap.rs`): the app's
//! response passes through it on its way to the transport, and at its end it is stored if
//! `policy.rs` allows. A request with an unsafe method carries a tap that invalidates its
//! URL once the response is known not to be an error (§4.4). `directives.rs` reads
//! `Cache-Control`; `entry.rs` is one stored response.

pub mod directives;
pub mod entry;
pub mod policy;
pub mod store;
pub mod tap;
