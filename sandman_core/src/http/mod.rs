//! The HTTP layer: hyper's service for each request, response bodies, the body pump and the
//! few responses the server writes itself.
//!
//! Only this module and `server/` touch tokio; nothing here touches Python.

pub mod body;
pub mod canned;
pub mod frame_data;
pub mod proxy;
pub mod service;
pub mod validate;
