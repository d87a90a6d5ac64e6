//! Access lines for responses the transport writes without the app (static files, cache
//! hits): the same record an app's response gets, so they read as any other request.

use hyper::{HeaderMap, Method, Uri, Version};

use crate::common::access::AccessRecord;
use crate::exchange::connection::Connection;
use crate::exchange::head::scope_path;
use crate::http::context::ServerContext;
use crate::http::proxy;

/// What an access line needs of a request.
pub struct RequestLine<'a> {
    /// Method.
    pub method: &'a Method,
    /// Target.
    pub uri: &'a Uri,
    /// Protocol version.
    pub version: Version,
    /// Headers (for a trusted proxy's `X-Forwarded-For`).
    pub headers: &'a HeaderMap,
}

/// Write the access line for `line` answered with `status` (nothing when the access log
/// is off: the app side drops it without waking the loop).
pub fn log(ctx: &ServerContext, conn: &Connection, line: &RequestLine<'_>, status: u16) {
    if !ctx.settings.http.access_log {
        return;
    }
    let forwarded = ctx
        .settings
        .http
        .proxy
        .as_ref()
        .and_then(|trusted| proxy::forwarded_client(conn, trusted, line.headers));
    let client = forwarded.as_ref().or(conn.peer.client.as_ref());
    ctx.app.access(AccessRecord::new(
        client,
        line.method.as_str(),
        &scope_path(&ctx.settings.http.root_path, line.uri.path()),
        line.uri.query().unwrap_or("").as_bytes(),
        line.version,
        status,
    ));
}
