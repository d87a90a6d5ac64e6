//! The exchange: the Python-free state one request or one WebSocket shares between the IO
//! side (`http/`, `ws/`, driven by `server/`) and the app side (`asgi/`).
//!
//! Theory of operation
//! -------------------
//! The IO side parses a request, builds its [`head::RequestHead`] and a
//! [`request::RequestExchange`] (or a [`websocket::WsExchange`]) and hands it up through
//! [`app::AppSide`], the one interface the app side implements. From then on both sides
//! meet only here, behind one mutex per exchange that is never held across an `.await` or
//! a call into Python: the IO side feeds the request body in and takes the response out;
//! the app side takes the body and puts the response in. Each side waits for the other
//! with a plain [`std::task::Waker`]: the IO side's are tokio tasks, the app side's wake the
//! event loop through the bridge. Nothing here knows what an ASGI message looks like, so a
//! second transport drives the same app side by driving these types.

pub mod activity;
pub mod app;
pub mod cache;
pub mod chunks;
pub mod connection;
pub mod head;
pub mod hub;
pub mod request;
pub mod response;
pub mod websocket;
pub mod wire;
