//! A response as the app side hands it to the transport, and the few the server writes
//! itself, byte-compatible with uvicorn's where it has one.

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::StatusCode;

use crate::common::settings::ResponseDefaults;

/// A response head and how its body comes. The transport turns it into its own response
/// type (`http/response_body.rs`).
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Headers, defaults included, in order.
    pub headers: HeaderMap,
    /// The body.
    pub body: AnswerBody,
}

/// How an [`Answer`]'s body comes.
pub enum AnswerBody {
    /// No body (`content-length: 0` unless the status forbids a body).
    Empty,
    /// The whole body at once: one write, `content-length` known.
    Full(Bytes),
    /// Streamed from the exchange's response queue as the app sends it.
    Streamed,
    /// The whole body from an open file, `len` bytes from its start: the transport sends
    /// it (with `sendfile` where it can), and no Python code reads it (`pathsend`).
    File(std::fs::File, u64),
}

impl Answer {
    /// A response with `status`, `headers` and `body`.
    pub fn new(status: StatusCode, headers: HeaderMap, body: AnswerBody) -> Answer {
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A small `text/plain` response with the default headers and `connection: close`.
    pub fn plain(defaults: &ResponseDefaults, status: StatusCode, text: &'static str) -> Answer {
        let mut headers = defaults.headers(Vec::new());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        Answer::new(
            status,
            headers,
            AnswerBody::Full(Bytes::from_static(text.as_bytes())),
        )
    }

    /// The request head is over the head limit (RFC 6585 §5: 431).
    pub fn header_fields_too_large(defaults: &ResponseDefaults) -> Answer {
        Answer::plain(
            defaults,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large",
        )
    }

    /// The app raised, or returned, before starting its response.
    pub fn internal_server_error(defaults: &ResponseDefaults) -> Answer {
        Answer::plain(
            defaults,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        )
    }

    /// A WebSocket the app closed before accepting (ASGI: HTTP 403).
    pub fn forbidden(defaults: &ResponseDefaults) -> Answer {
        Answer::plain(defaults, StatusCode::FORBIDDEN, "Forbidden")
    }

    /// `--limit-concurrency` reached.
    pub fn service_unavailable(defaults: &ResponseDefaults) -> Answer {
        Answer::plain(
            defaults,
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
        )
    }

    /// A request the server refuses to pass to the app (uvicorn's body text).
    pub fn bad_request(defaults: &ResponseDefaults) -> Answer {
        Answer::plain(
            defaults,
            StatusCode::BAD_REQUEST,
            "Invalid HTTP request received.",
        )
    }

    /// The request target is over `--limit-request-line` (RFC 9112 §3: 414).
    pub fn uri_too_long(defaults: &ResponseDefaults) -> Answer {
        Answer::plain(defaults, StatusCode::URI_TOO_LONG, "URI Too Long")
    }

    /// The body is over `--limit-request-body` (RFC 9110 §15.5.14: 413).
    pub fn payload_too_large(defaults: &ResponseDefaults) -> Answer {
        Answer::plain(defaults, StatusCode::PAYLOAD_TOO_LARGE, "Content Too Large")
    }

    /// The body stopped arriving (RFC 9110 §15.5.9: 408).
    pub fn request_timeout(defaults: &ResponseDefaults) -> Answer {
        Answer::plain(defaults, StatusCode::REQUEST_TIMEOUT, "Request Timeout")
    }

    /// A transfer coding we do not implement (RFC 9112 §6.1: SHOULD answer 501).
    pub fn not_implemented(defaults: &ResponseDefaults) -> Answer {
        Answer::plain(defaults, StatusCode::NOT_IMPLEMENTED, "Not Implemented")
    }
}
