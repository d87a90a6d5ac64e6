//! Static mounts (`--static PREFIX=DIRECTORY`): files answered by the transport itself,
//! never handed to the app side, so Python does not wake for them (beyond the access line).
//!
//! `mounts.rs` matches a request to a mount (longest prefix); `resolve.rs` turns the rest of
//! the path into a file beneath the mount's directory, refusing anything that could leave
//! it; `conditional.rs`, `range.rs` and `encoding.rs` apply the request's validators, its
//! `Range` and its `Accept-Encoding`; `serve.rs` puts them together into a response, whose
//! body `file_body.rs` reads (or sends with `sendfile(2)` on plain TCP).

pub mod conditional;
pub mod encoding;
pub mod file_body;
pub mod mounts;
pub mod range;
pub mod resolve;
pub mod serve;
