//! HTTP/1.x: hyper's service for each request, request and response bodies, the checks
//! hyper leaves to us, and proxy headers. Nothing here touches Python; requests go to the
//! app side through their exchange (`exchange/`).

pub mod body_data;
pub mod body_pace;
pub mod cached;
pub mod context;
pub mod core_access;
pub mod h2;
pub mod proxy;
pub mod request_body;
pub mod response_body;
pub mod service;
pub mod static_files;
pub mod validate;
