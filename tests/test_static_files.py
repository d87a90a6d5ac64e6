"""Static mounts served by the core (``--static PREFIX=DIRECTORY``), end to end over real
sockets with real clients (httpx, curl, raw sockets): the file and its headers, validators
and 304, ranges and 416, precompressed siblings, index files, every traversal spelling the
issue lists, 404/405, access lines, pipelining, TLS, and the app never being called."""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import ssl
import subprocess
import time
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
import trustme

from tests.serverproc import ServerProcess, command, raw_exchange, sandman, spawn

PAGE = b"<!doctype html><title>page</title>" + b"<p>sandman static page</p>\n" * 90
BIG = os.urandom(1024 * 1024 + 17)  # a bit over 1 MiB: sent with sendfile on plain TCP
SECRET = b"the secret outside the mount\n"
CURL = shutil.which("curl")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("static")
    (base / "secret.txt").write_bytes(SECRET)
    root = base / "public"
    (root / "css").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "empty-dir").mkdir()
    (root / "page.html").write_bytes(PAGE)
    (root / "big.bin").write_bytes(BIG)
    (root / "empty.txt").write_bytes(b"")
    css = b"body { color: red }\n" * 50
    (root / "css" / "site.css").write_bytes(css)
    (root / "css" / "site.css.gz").write_bytes(gzip.compress(css))
    (root / "css" / "site.css.br").write_bytes(b"pretend-brotli")
    (root / "css" / "site.css.zst").write_bytes(b"pretend-zstd")
    (root / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    (root / "a b.txt").write_bytes(b"space")
    (root / "caf\u00e9.txt").write_bytes(b"accent")
    # A symlink that leaves the mount, and one that stays inside it.
    (root / "escape.txt").symlink_to(base / "secret.txt")
    (root / "escape-dir").symlink_to(base)
    (root / "inside.html").symlink_to("page.html")
    (root / "inside-absolute.html").symlink_to(root / "page.html")
    other = base / "other"
    other.mkdir()
    (other / "page.html").write_bytes(b"the nested mount")
    return base


@pytest.fixture(scope="module")
def server(site: Path):
    flags = [
        "--static",
        f"/assets={site / 'public'}",
        "--static",
        f"/assets/nested={site / 'other'}",
        "--static-max-age",
        "/assets=3600",
        "--static-index",
    ]
    with sandman("tests.parsing_apps:witness", *flags) as running:
        yield running


def _sentinel(server: ServerProcess, name: str) -> str:
    """A request that does reach the app, so its ``APP call`` line marks a point in the log."""
    httpx.get(f"{server.url}/sentinel-{name}", timeout=5)
    line = f"APP call GET /sentinel-{name}"
    server.wait_for(line)
    return line


def _app_calls_between(server: ServerProcess, start: str, end: str) -> list[str]:
    lines = server.stderr.splitlines()
    between = lines[lines.index(start) + 1 : lines.index(end)]
    return [line for line in between if line.startswith("APP call")]


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def _get(server: ServerProcess, target: str) -> bytes:
    """One raw request (the target exactly as given: no client normalises it)."""
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1")
    return raw_exchange(server.port, request)


# -- the file and its headers ----------------------------------------------------------------


def test_a_file_comes_with_type_validators_and_cache_control(server):
    r = httpx.get(f"{server.url}/assets/page.html")
    assert r.status_code == 200
    assert r.content == PAGE
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-length"] == str(len(PAGE))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["cache-control"] == "public, max-age=3600"
    assert r.headers["vary"] == "accept-encoding"
    assert r.headers["server"] == "sandman" and "date" in r.headers
    mtime = int((Path(server_dir(server)) / "page.html").stat().st_mtime)
    assert r.headers["etag"] == f'"{mtime:x}-{len(PAGE):x}"'
    assert parsedate_to_datetime(r.headers["last-modified"]).timestamp() == mtime


def server_dir(server: ServerProcess) -> str:
    args = server.proc.args
    return next(a.split("=", 1)[1] for a in args if a.startswith("/assets="))


def test_content_types_from_the_extension(server):
    assert httpx.get(f"{server.url}/assets/css/site.css").headers["content-type"] == (
        "text/css; charset=utf-8"
    )
    assert httpx.get(f"{server.url}/assets/big.bin").headers["content-type"] == (
        "application/octet-stream"
    )


def test_a_large_file_arrives_whole_and_the_connection_stays_usable(server):
    with httpx.Client() as client:
        for _ in range(3):
            r = client.get(f"{server.url}/assets/big.bin")
            assert r.status_code == 200 and r.content == BIG
            r = client.get(f"{server.url}/assets/page.html")
            assert r.content == PAGE
        assert client.get(f"{server.url}/app-route").json()["path"] == "/app-route"


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_downloads_the_large_file_byte_for_byte(server, tmp_path):
    out = tmp_path / "big.out"
    result = subprocess.run(
        [CURL, "-sS", "-o", str(out), "-w", "%{http_code}", f"{server.url}/assets/big.bin"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout == "200", result.stderr
    assert out.read_bytes() == BIG


def test_names_with_escapes_and_utf8(server):
    assert httpx.get(f"{server.url}/assets/a%20b.txt").content == b"space"
    assert httpx.get(f"{server.url}/assets/caf%C3%A9.txt").content == b"accent"


def test_an_empty_file(server):
    r = httpx.get(f"{server.url}/assets/empty.txt")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"


def test_head_has_the_headers_and_no_body(server):
    for name, size in (("page.html", len(PAGE)), ("big.bin", len(BIG))):
        raw = raw_exchange(
            server.port,
            f"HEAD /assets/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        )
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert f"content-length: {size}".encode() in head
        assert b"etag: " in head
        assert body == b""


def test_the_longest_prefix_wins(server):
    assert httpx.get(f"{server.url}/assets/nested/page.html").content == b"the nested mount"
    assert httpx.get(f"{server.url}/assets/page.html").content == PAGE
    # Only the /assets mount has a max-age.
    assert "cache-control" not in httpx.get(f"{server.url}/assets/nested/page.html").headers


def test_paths_outside_the_mounts_reach_the_app(server):
    start = _sentinel(server, "outside-1")
    r = httpx.get(f"{server.url}/assetsX/page.html")
    assert r.json()["path"] == "/assetsX/page.html"
    end = _sentinel(server, "outside-2")
    assert _app_calls_between(server, start, end) == ["APP call GET /assetsX/page.html"]


def test_static_requests_never_reach_the_app(server):
    start = _sentinel(server, "never-1")
    with httpx.Client() as client:
        for path in ("page.html", "big.bin", "missing.txt", "docs/", "docs"):
            client.get(f"{server.url}/assets/{path}")
        client.post(f"{server.url}/assets/page.html", content=b"x")
    end = _sentinel(server, "never-2")
    assert _app_calls_between(server, start, end) == []


def test_access_lines_look_like_any_other_request(server):
    httpx.get(f"{server.url}/assets/page.html?v=2")
    httpx.get(f"{server.url}/assets/nope.txt")
    # uvicorn's access logger writes to stdout.
    server.wait_for(
        r'127\.0\.0\.1:\d+ - "GET /assets/page\.html\?v=2 HTTP/1\.1" 200 OK', stream="stdout"
    )
    server.wait_for(
        r'127\.0\.0\.1:\d+ - "GET /assets/nope\.txt HTTP/1\.1" 404 Not Found', stream="stdout"
    )


# -- conditional requests --------------------------------------------------------------------


def test_if_none_match_and_if_modified_since_give_304(server):
    r = httpx.get(f"{server.url}/assets/page.html")
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    for headers in (
        {"if-none-match": etag},
        {"if-none-match": f'"other", W/{etag}'},
        {"if-none-match": "*"},
        {"if-modified-since": modified},
    ):
        r304 = httpx.get(f"{server.url}/assets/page.html", headers=headers)
        assert r304.status_code == 304, headers
        assert r304.content == b""
        assert r304.headers["etag"] == etag
        assert r304.headers["cache-control"] == "public, max-age=3600"
    stale = format_datetime(parsedate_to_datetime(modified).replace(year=2000), usegmt=True)
    assert (
        httpx.get(f"{server.url}/assets/page.html", headers={"if-modified-since": stale}).content
        == PAGE
    )
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    r = httpx.get(
        f"{server.url}/assets/page.html",
        headers={"if-none-match": '"other"', "if-modified-since": modified},
    )
    assert r.status_code == 200


def test_if_match_failure_is_412(server):
    r = httpx.get(f"{server.url}/assets/page.html", headers={"if-match": '"other"'})
    assert r.status_code == 412


# -- ranges ----------------------------------------------------------------------------------


def test_ranges_give_206_with_content_range(server):
    size = len(BIG)
    for spec, start, end in (
        ("bytes=0-99", 0, 99),
        ("bytes=1000000-", 1000000, size - 1),
        ("bytes=-500", size - 500, size - 1),
        ("bytes=100-200000", 100, 200000),  # large: sent with sendfile from an offset
    ):
        r = httpx.get(f"{server.url}/assets/big.bin", headers={"range": spec})
        assert r.status_code == 206, spec
        assert r.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert r.content == BIG[start : end + 1]


def test_an_unsatisfiable_range_is_416(server):
    r = httpx.get(f"{server.url}/assets/page.html", headers={"range": "bytes=99999-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(PAGE)}"


def test_if_range_keeps_or_drops_the_range(server):
    etag = httpx.get(f"{server.url}/assets/page.html").headers["etag"]
    r = httpx.get(
        f"{server.url}/assets/page.html", headers={"range": "bytes=0-9", "if-range": etag}
    )
    assert r.status_code == 206 and r.content == PAGE[:10]
    r = httpx.get(
        f"{server.url}/assets/page.html", headers={"range": "bytes=0-9", "if-range": '"old"'}
    )
    assert r.status_code == 200 and r.content == PAGE


def test_several_ranges_are_answered_with_the_whole_file(server):
    r = httpx.get(f"{server.url}/assets/page.html", headers={"range": "bytes=0-1,5-6"})
    assert r.status_code == 200 and r.content == PAGE


# -- precompressed siblings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "coding", "body_file"),
    [
        ("gzip, deflate, br, zstd", "br", "site.css.br"),
        ("gzip, zstd", "zstd", "site.css.zst"),
        ("gzip", "gzip", "site.css.gz"),
        ("br;q=0, gzip;q=0.5", "gzip", "site.css.gz"),
        ("identity", None, "site.css"),
    ],
)
def test_precompressed_siblings_follow_accept_encoding(server, site, accept, coding, body_file):
    raw = raw_exchange(
        server.port,
        (
            "GET /assets/css/site.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Accept-Encoding: {accept}\r\n\r\n"
        ).encode(),
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == (site / "public" / "css" / body_file).read_bytes()
    assert b"vary: accept-encoding" in head
    assert b"content-type: text/css; charset=utf-8" in head
    if coding:
        assert f"content-encoding: {coding}".encode() in head
    else:
        assert b"content-encoding" not in head


def test_httpx_decodes_the_gzip_sibling(server, site):
    r = httpx.get(f"{server.url}/assets/css/site.css", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == (site / "public" / "css" / "site.css").read_bytes()


# -- directories -----------------------------------------------------------------------------


def test_index_files_and_the_slash_redirect(server):
    r = httpx.get(f"{server.url}/assets/docs/")
    assert r.status_code == 200 and r.content == b"<h1>docs</h1>"
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    r = httpx.get(f"{server.url}/assets/docs?x=1")
    assert r.status_code == 301 and r.headers["location"] == "/assets/docs/?x=1"
    assert httpx.get(f"{server.url}/assets/empty-dir/").status_code == 404


def test_without_static_index_a_directory_is_404(site):
    with sandman("tests.apps:hello", "--static", f"/s={site / 'public'}") as running:
        assert httpx.get(f"{running.url}/s/docs/").status_code == 404
        assert httpx.get(f"{running.url}/s/docs").status_code == 404
        assert httpx.get(f"{running.url}/s/page.html").content == PAGE


# -- traversal: each spelling the issue lists ------------------------------------------------


TRAVERSALS = {
    "dot-dot": "/assets/../secret.txt",
    "dot-dot-deep": "/assets/css/../../secret.txt",
    "encoded-dot-dot": "/assets/%2e%2e/secret.txt",
    "encoded-dot-dot-upper": "/assets/%2E%2E/secret.txt",
    "half-encoded-dot-dot": "/assets/.%2e/secret.txt",
    "encoded-slash": "/assets/..%2fsecret.txt",
    "encoded-slash-inside": "/assets/css%2f..%2f..%2fsecret.txt",
    "encoded-backslash": "/assets/..%5csecret.txt",
    "backslash": "/assets/..\\secret.txt",
    "nul": "/assets/page.html%00.txt",
    "overlong-utf8-dot": "/assets/%c0%ae%c0%ae/secret.txt",
    "overlong-utf8-slash": "/assets/..%c0%afsecret.txt",
    "symlink-file-out": "/assets/escape.txt",
    "symlink-dir-out": "/assets/escape-dir/secret.txt",
}


@pytest.mark.parametrize("target", TRAVERSALS.values(), ids=TRAVERSALS.keys())
def test_traversal_is_refused(server, target):
    raw = _get(server, target)
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    assert _status(raw) in (400, 404), raw[:200]
    assert SECRET not in raw
    assert server.proc.poll() is None


def test_a_symlink_inside_the_mount_is_followed(server):
    assert httpx.get(f"{server.url}/assets/inside.html").content == PAGE
    assert httpx.get(f"{server.url}/assets/inside-absolute.html").content == PAGE


# -- methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405_with_allow(server, method):
    r = httpx.request(method, f"{server.url}/assets/page.html")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


def test_a_missing_file_is_404(server):
    assert httpx.get(f"{server.url}/assets/nope.txt").status_code == 404
    assert httpx.get(f"{server.url}/assets/page.html/").status_code == 404


# -- the wire --------------------------------------------------------------------------------


def _read_responses(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` content-length responses from ``sock``: (head, body) each."""
    buf = b""
    out = []
    deadline = time.monotonic() + 10
    while len(out) < count and time.monotonic() < deadline:
        while b"\r\n\r\n" in buf:
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            if len(rest) < length:
                break
            out.append((head, rest[:length]))
            buf = rest[length:]
        if len(out) == count:
            break
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    return out


def test_pipelined_file_responses_stay_in_order(server):
    request = b"GET /assets/%s HTTP/1.1\r\nHost: x\r\n\r\n"
    names = [b"big.bin", b"page.html", b"big.bin", b"css/site.css", b"page.html"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"".join(request % name for name in names))
        responses = _read_responses(sock, len(names))
    assert [body for _, body in responses] == [
        BIG,
        PAGE,
        BIG,
        b"body { color: red }\n" * 50,
        PAGE,
    ]


@pytest.mark.parametrize("rcvbuf", [None, 8192])
def test_a_half_close_after_the_requests_still_gets_every_file(server, rcvbuf):
    # The FIN comes while the files are going out (a small receive buffer keeps sendfile
    # waiting on the socket): it is held back until the responses are out, so the side
    # door's bytes and hyper's arrive whole, in order, and then the server closes.
    names = [b"big.bin", b"page.html", b"big.bin"]
    request = b"GET /assets/%s HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.socket() as sock:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"".join(request % name for name in names))
        sock.shutdown(socket.SHUT_WR)  # as `nc -q`: nothing more to send, still reading
        responses = _read_responses(sock, len(names))
        assert sock.recv(1) == b"", "the server closes once the last file is out"
    assert [body for _, body in responses] == [BIG, PAGE, BIG]


def test_a_client_leaving_mid_file_does_not_hurt_the_server(server):
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /assets/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(1000)
    assert httpx.get(f"{server.url}/assets/big.bin").content == BIG


def test_files_over_tls(site, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "combined.pem"))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    flags = ["--ssl-certfile", str(tmp_path / "combined.pem"), "--static", f"/s={site / 'public'}"]
    with sandman("tests.apps:hello", *flags) as running:
        with httpx.Client(verify=ctx) as client:
            url = f"https://127.0.0.1:{running.port}/s"
            assert client.get(f"{url}/big.bin").content == BIG
            assert client.get(f"{url}/page.html").content == PAGE
            r = client.get(f"{url}/big.bin", headers={"range": "bytes=5-300000"})
            assert r.status_code == 206 and r.content == BIG[5:300001]


def test_the_environment_spelling(site):
    env = {"SANDMAN_STATIC": f"/a={site / 'public'} /b={site / 'other'}"}
    with sandman("tests.apps:hello", env=env) as running:
        assert httpx.get(f"{running.url}/a/page.html").content == PAGE
        assert httpx.get(f"{running.url}/b/page.html").content == b"the nested mount"


def test_no_access_line_without_the_access_log(site):
    flags = ["--no-access-log", "--static", f"/a={site / 'public'}"]
    with sandman("tests.apps:hello", *flags) as running:
        assert httpx.get(f"{running.url}/a/page.html").content == PAGE
        running.stop()
    assert '"GET /a/page.html' not in running.stdout + running.stderr


# -- bad settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--static", "/a=/no/such/directory"], "is not a directory"),
        (["--static", "assets=/tmp"], "must start with '/'"),
        (["--static", "/a"], "expected PREFIX=VALUE"),
        (["--static", "/a=/tmp", "--static-max-age", "-1"], "--static-max-age"),
        (["--static", "/a=/tmp", "--static-max-age", "/b=60"], "not a --static mount"),
    ],
)
def test_bad_static_settings_are_usage_errors(flags, message):
    proc = spawn(command("tests.apps:hello", "--port", "0", *flags))
    assert proc.wait(timeout=30) == 2
    assert message in proc.stderr


def test_files_over_http2(server):
    # h2c by prior knowledge: no sendfile side door, the file is read in chunks into frames.
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        r = client.get(f"{server.url}/assets/big.bin")
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200 and r.content == BIG
        r = client.get(f"{server.url}/assets/big.bin", headers={"range": "bytes=10-70000"})
        assert r.status_code == 206 and r.content == BIG[10:70001]
        r = client.get(f"{server.url}/assets/page.html")
        assert r.content == PAGE and r.headers["content-type"] == "text/html; charset=utf-8"
