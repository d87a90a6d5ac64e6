//! Responses the server writes itself, byte-compatible with uvicorn's where it has one.

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::http::body::ResponseBody;
use crate::server::shared::HttpSettings;

/// A small `text/plain` response with the default headers and `connection: close`.
pub fn text(
    settings: &HttpSettings,
    status: StatusCode,
    body: &'static str,
) -> Response<ResponseBody> {
    let mut headers = settings.response_headers(Vec::new());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    let mut response = Response::new(ResponseBody::full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The request head is over `--h11-max-incomplete-event-size` (RFC 6585 §5: 431).
pub fn header_fields_too_large(settings: &HttpSettings) -> Response<ResponseBody> {
    text(
        settings,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "Request Header Fields Too Large",
    )
}

/// The app raised, or returned, before starting its response (D-HTTP-3).
pub fn internal_server_error(settings: &HttpSettings) -> Response<ResponseBody> {
    text(
        settings,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error",
    )
}

/// A WebSocket the app closed before accepting ([WWW] "Close - send event": HTTP 403).
pub fn forbidden(settings: &HttpSettings) -> Response<ResponseBody> {
    text(settings, StatusCode::FORBIDDEN, "Forbidden")
}

/// `--limit-concurrency` reached (D-HTTP-4).
pub fn service_unavailable(settings: &HttpSettings) -> Response<ResponseBody> {
    text(
        settings,
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable",
    )
}

/// A request the server refuses to pass to the app (D-HTTP-2 body text).
pub fn bad_request(settings: &HttpSettings) -> Response<ResponseBody> {
    text(
        settings,
        StatusCode::BAD_REQUEST,
        "Invalid HTTP request received.",
    )
}

/// The request target is over `--limit-request-line` (RFC 9112 §3: 414).
pub fn uri_too_long(settings: &HttpSettings) -> Response<ResponseBody> {
    text(settings, StatusCode::URI_TOO_LONG, "URI Too Long")
}

/// The body is over `--limit-request-body` (RFC 9110 §15.5.14: 413).
pub fn payload_too_large(settings: &HttpSettings) -> Response<ResponseBody> {
    text(settings, StatusCode::PAYLOAD_TOO_LARGE, "Content Too Large")
}

/// The body stopped arriving (RFC 9110 §15.5.9: 408).
pub fn request_timeout(settings: &HttpSettings) -> Response<ResponseBody> {
    text(settings, StatusCode::REQUEST_TIMEOUT, "Request Timeout")
}

/// A transfer coding we do not implement (RFC 9112 §6.1: SHOULD answer 501).
pub fn not_implemented(settings: &HttpSettings) -> Response<ResponseBody> {
    text(settings, StatusCode::NOT_IMPLEMENTED, "Not Implemented")
}
