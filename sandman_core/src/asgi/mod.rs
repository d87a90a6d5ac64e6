//! The ASGI side of a request: the scope, the messages, and the response cycle.
//!
//! `cycle` holds the ordering rules and knows nothing of Python or IO; `message` turns the
//! app's dicts into typed values; `scope` builds scope dicts; `http` is the Python-facing
//! `receive`/`send` pair that ties them to a running request; `task` starts an HTTP app
//! eagerly on Pythons without `eager_start`.

pub mod awaitable;
pub mod cycle;
pub mod http;
pub mod lent;
pub mod message;
pub mod scope;
pub mod task;
pub mod websocket;
pub mod ws_cycle;
