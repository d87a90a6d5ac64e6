//! The ASGI side: the only code that knows Python shapes. It sits on the exchange (what a
//! request or WebSocket shares with the transport) and on the bridge (the hand-off to the
//! event loop), and never reaches into the transport itself.
//!
//! `server` is the object Python drives; `events` what the IO threads send it; `http` and
//! `websocket` the `receive`/`send` pair of one request or socket, which apply the ASGI
//! rules of `http_rules` and `ws_rules`; `convert` every dict, tuple and keyword crossing
//! into or out of Python; `tasks` and `eager_task` how app calls start.

pub mod awaitable;
pub mod body_bytes;
pub mod convert;
pub mod eager_task;
pub mod events;
pub mod http;
pub mod http_rules;
pub mod loop_hooks;
pub mod metrics_group;
pub mod server;
pub mod tasks;
pub mod websocket;
pub mod ws_rules;
