//! A request under a static mount, answered: the file, 304, 206, 416, a redirect to the
//! directory's slash, or 400/404/405/412, with an access line like any response.

use std::fs::{File, Metadata};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::common::settings::ResponseDefaults;
use crate::exchange::connection::Connection;
use crate::http::context::ServerContext;
use crate::http::core_access::{self, RequestLine};
use crate::http::response_body::{file_body, ResponseBody};
use crate::http::static_files::conditional::{self, Precondition, Validators};
use crate::http::static_files::encoding::{self, Coding};
use crate::http::static_files::mounts::{Mount, StaticFiles};
use crate::http::static_files::range::{self, Ranged};
use crate::http::static_files::resolve::{self, Refused, Relative};

/// The response for `req` if its path is under a mount; `None` to hand it to the app.
pub fn serve(
    req: &Request<Incoming>,
    conn: &Connection,
    ctx: &ServerContext,
    files: &StaticFiles,
) -> Option<Response<ResponseBody>> {
    let (mount, rest) = files.find(req.uri().path())?;
    let line = RequestLine {
        method: req.method(),
        uri: req.uri(),
        version: req.version(),
        headers: req.headers(),
    };
    let response = answer(req, conn, mount, rest);
    if let Some(metrics) = &conn.hub.metrics {
        metrics.static_response();
    }
    core_access::log(ctx, conn, &line, response.status().as_u16());
    Some(response)
}

/// The file chosen to serve: the file, its metadata and its content coding.
struct Chosen {
    file: File,
    meta: Metadata,
    coding: Option<Coding>,
}

fn answer(
    req: &Request<Incoming>,
    conn: &Connection,
    mount: &Mount,
    rest: &str,
) -> Response<ResponseBody> {
    let defaults = &conn.hub.response;
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(
            defaults,
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let relative = match resolve::relative_path(rest) {
        Ok(relative) => relative,
        Err(Refused::Malformed) => return plain(defaults, StatusCode::BAD_REQUEST, "Bad Request"),
        Err(Refused::NotFound) => return not_found(defaults),
    };
    let Some((name, file, meta)) = locate(mount, &relative) else {
        if relative.trailing_slash || !mount.index || !is_directory(mount, &relative) {
            return not_found(defaults);
        }
        return to_directory(defaults, req.uri());
    };
    let chosen = precompressed(mount, &name, req.headers()).unwrap_or(Chosen {
        file,
        meta,
        coding: None,
    });
    let size = chosen.meta.len();
    let mtime = chosen.meta.modified().unwrap_or(std::time::UNIX_EPOCH);
    let validators = Validators::new(mtime, size, chosen.coding.map(Coding::token));

    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(9);
    headers.push((header::ETAG, validators.etag.clone()));
    if let Some(cache_control) = &mount.cache_control {
        headers.push((header::CACHE_CONTROL, cache_control.clone()));
    }
    headers.push((header::VARY, HeaderValue::from_static("accept-encoding")));
    match conditional::evaluate(method, req.headers(), &validators) {
        Precondition::NotModified => {
            return build(
                defaults,
                StatusCode::NOT_MODIFIED,
                headers,
                ResponseBody::empty(),
            );
        }
        Precondition::Failed => {
            return plain(
                defaults,
                StatusCode::PRECONDITION_FAILED,
                "Precondition Failed",
            );
        }
        Precondition::Proceed => {}
    }
    headers.push((header::LAST_MODIFIED, validators.last_modified.clone()));
    headers.push((header::CONTENT_TYPE, content_type(&name)));
    if let Some(coding) = chosen.coding {
        headers.push((
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.token()),
        ));
    }
    headers.push((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")));

    let ranged = match req.headers().get(header::RANGE) {
        Some(value)
            if method == Method::GET && conditional::range_allowed(req.headers(), &validators) =>
        {
            range::parse(value.as_bytes(), size)
        }
        _ => Ranged::Whole,
    };
    let (status, offset, len) = match ranged {
        Ranged::Whole => (StatusCode::OK, 0, size),
        Ranged::Part { start, end } => {
            headers.push((
                header::CONTENT_RANGE,
                header_value(format!("bytes {start}-{end}/{size}")),
            ));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Ranged::Unsatisfiable => {
            headers.push((
                header::CONTENT_RANGE,
                header_value(format!("bytes */{size}")),
            ));
            return build(
                defaults,
                StatusCode::RANGE_NOT_SATISFIABLE,
                headers,
                ResponseBody::empty(),
            );
        }
    };
    if method == Method::HEAD {
        headers.push((header::CONTENT_LENGTH, HeaderValue::from(len)));
        return build(defaults, status, headers, ResponseBody::empty());
    }
    match file_body(chosen.file, offset, len, req.version(), conn) {
        Ok(body) => build(defaults, status, headers, body),
        Err(_) => not_found(defaults),
    }
}

/// The file `relative` names (a directory's `index.html` when the mount serves them),
/// with the name its content type comes from. `None` when there is no such regular file.
fn locate(mount: &Mount, relative: &Relative) -> Option<(String, File, Metadata)> {
    let file = resolve::open_beneath(&mount.root, &mount.canonical, &relative.path).ok()?;
    let meta = file.metadata().ok()?;
    if meta.is_file() {
        if relative.trailing_slash {
            return None;
        }
        return Some((relative.path.clone(), file, meta));
    }
    if !meta.is_dir() || !mount.index || !relative.trailing_slash {
        return None;
    }
    let index = if relative.path.is_empty() {
        "index.html".to_owned()
    } else {
        format!("{}/index.html", relative.path)
    };
    let file = resolve::open_beneath(&mount.root, &mount.canonical, &index).ok()?;
    let meta = file.metadata().ok()?;
    meta.is_file().then_some((index, file, meta))
}

fn is_directory(mount: &Mount, relative: &Relative) -> bool {
    resolve::open_beneath(&mount.root, &mount.canonical, &relative.path)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.is_dir())
}

/// The best precompressed sibling of `name` the client accepts, if one exists.
fn precompressed(mount: &Mount, name: &str, headers: &HeaderMap) -> Option<Chosen> {
    if !headers.contains_key(header::ACCEPT_ENCODING) {
        return None;
    }
    encoding::accepted(headers).into_iter().find_map(|coding| {
        let sibling = format!("{name}{}", coding.suffix());
        let file = resolve::open_beneath(&mount.root, &mount.canonical, &sibling).ok()?;
        let meta = file.metadata().ok()?;
        meta.is_file().then_some(Chosen {
            file,
            meta,
            coding: Some(coding),
        })
    })
}

/// `Content-Type` from the name's extension; text is UTF-8.
fn content_type(name: &str) -> HeaderValue {
    let guess = mime_guess::from_path(name).first_raw();
    match guess {
        Some(mime) if mime.starts_with("text/") => header_value(format!("{mime}; charset=utf-8")),
        Some(mime) => HeaderValue::from_static(mime),
        None => HeaderValue::from_static("application/octet-stream"),
    }
}

fn header_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("built from ASCII")
}

/// `/docs` names a directory: send the client to `/docs/` so relative links resolve.
fn to_directory(defaults: &ResponseDefaults, uri: &hyper::Uri) -> Response<ResponseBody> {
    let location = match uri.query() {
        Some(query) => format!("{}/?{query}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    let mut response = plain(defaults, StatusCode::MOVED_PERMANENTLY, "Moved Permanently");
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn not_found(defaults: &ResponseDefaults) -> Response<ResponseBody> {
    plain(defaults, StatusCode::NOT_FOUND, "Not Found")
}

fn plain(
    defaults: &ResponseDefaults,
    status: StatusCode,
    text: &'static str,
) -> Response<ResponseBody> {
    build(
        defaults,
        status,
        vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        ResponseBody::full(Bytes::from_static(text.as_bytes())),
    )
}

fn build(
    defaults: &ResponseDefaults,
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = defaults.headers(headers);
    response
}
