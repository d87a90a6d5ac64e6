"""The pathsend extension (ASGI HTTP spec, "Path Send") end to end: the core streams the
file the app names, with ``sendfile`` on plain HTTP/1.1 and in frames or TLS records
otherwise; no Python code opens it. Driven by hand (tests/pathsend_apps.py:raw) and through
Starlette's ``FileResponse``, with httpx over HTTP/1.1, HTTP/2 (h2c and h2 over TLS) and
curl, and strace showing the ``sendfile`` calls."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.serverproc import sandman

SMALL = os.urandom(3000)
BIG = os.urandom(1024 * 1024 + 17)  # over the core's small-file size: sendfile on plain TCP
STRACE = shutil.which("strace")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pathsend")
    (folder / "small.bin").write_bytes(SMALL)
    (folder / "big.bin").write_bytes(BIG)
    (folder / "empty.bin").write_bytes(b"")
    (folder / "page.html").write_bytes(b"<!doctype html><p>hi</p>\n")
    return folder


@pytest.fixture(scope="module")
def raw_server(files):
    with sandman("tests.pathsend_apps:raw", env={"PATHSEND_FILES": str(files)}) as s:
        yield s


@pytest.fixture(scope="module")
def starlette_server(files):
    env = {"PATHSEND_FILES": str(files)}
    with sandman("tests.pathsend_apps:starlette_app", env=env) as s:
        yield s


def _nothing_opened_by_python(url: str) -> None:
    assert httpx.get(f"{url}/opened", timeout=10).json() == []


def test_advertised_in_http_scopes(raw_server, starlette_server):
    for server in (raw_server, starlette_server):
        assert "http.response.pathsend" in httpx.get(f"{server.url}/extensions").json()


@pytest.mark.parametrize("name,data", [("small.bin", SMALL), ("big.bin", BIG), ("empty.bin", b"")])
def test_the_file_is_the_body_over_http11(raw_server, name, data):
    with httpx.Client(timeout=10) as client:
        for _ in range(2):  # and the connection stays usable after it
            r = client.get(f"{raw_server.url}/file/{name}")
            assert r.status_code == 200
            assert r.headers["content-length"] == str(len(data))
            assert r.content == data
            assert r.http_version == "HTTP/1.1"
    _nothing_opened_by_python(raw_server.url)


def test_head_announces_the_length_and_sends_nothing(raw_server):
    r = httpx.head(f"{raw_server.url}/file/big.bin", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(BIG))
    assert r.content == b""


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_sendfile_on_plain_http11(raw_server, tmp_path):
    trace = tmp_path / "trace.txt"
    strace = subprocess.Popen(
        [STRACE, "-f", "-qq", "-e", "trace=sendfile", "-o", str(trace)]
        + ["-p", str(raw_server.proc.pid)],
        stderr=subprocess.PIPE,
    )
    try:
        # strace says nothing on attaching with -qq: a request it sees proves it is on.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = httpx.get(f"{raw_server.url}/file/big.bin", timeout=10)
            assert r.content == BIG
            time.sleep(0.2)
            if trace.exists() and "sendfile(" in trace.read_text():
                break
    finally:
        strace.send_signal(signal.SIGINT)
        strace.wait(timeout=10)
    # e.g. `sendfile(18, 19, [0] => [1048593], 1048593) = 1048593`
    sent = [int(n) for n in re.findall(r"sendfile\(.*\) = (\d+)", trace.read_text())]
    assert sum(sent) >= len(BIG), trace.read_text()[-2000:]
    assert raw_server.proc.poll() is None


def test_over_h2c(raw_server):
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        for name, data in [("small.bin", SMALL), ("big.bin", BIG), ("empty.bin", b"")]:
            r = client.get(f"{raw_server.url}/file/{name}")
            assert r.http_version == "HTTP/2"
            assert r.headers["content-length"] == str(len(data))
            assert r.content == data


def test_over_tls_http11_and_h2(files, server_certificate):
    certfile, context = server_certificate.pem, server_certificate.client_context()
    env = {"PATHSEND_FILES": str(files)}
    with sandman("tests.pathsend_apps:raw", "--ssl-certfile", str(certfile), env=env) as server:
        url = f"https://localhost:{server.port}"
        for http2 in (False, True):
            with httpx.Client(verify=context, http2=http2, timeout=10) as client:
                for name, data in [("small.bin", SMALL), ("big.bin", BIG)]:
                    r = client.get(f"{url}/file/{name}")
                    assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
                    assert r.content == data
        assert "http.response.pathsend" in httpx.get(f"{url}/extensions", verify=context).json()


def test_a_missing_file_raises_in_the_app_and_changes_nothing(raw_server):
    r = httpx.get(f"{raw_server.url}/missing", timeout=10)
    # The start was held: the app's own body after the failed pathsend answers it.
    assert r.status_code == 200
    assert r.text.startswith("FileNotFoundError: ")


def test_pathsend_after_a_body_part_is_refused(raw_server):
    r = httpx.get(f"{raw_server.url}/after-body/small.bin", timeout=10)
    assert r.content == (
        b"first|RuntimeError: Unexpected ASGI message 'http.response.pathsend' sent, "
        b"after the response body started."
    )


@pytest.mark.parametrize("declared,error", [(10, "longer"), (len(SMALL) + 1, "shorter")])
def test_a_declared_length_the_file_does_not_have(raw_server, declared, error):
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{raw_server.url}/declared/{declared}/small.bin", timeout=10).read()
    raw_server.wait_for(f"Response content {error} than Content-Length")
    # The server lives on, and a matching length is fine.
    r = httpx.get(f"{raw_server.url}/declared/{len(SMALL)}/small.bin", timeout=10)
    assert r.content == SMALL


def test_starlette_file_response_uses_it(starlette_server):
    for http2 in (False, True):
        with httpx.Client(http1=not http2, http2=http2, timeout=10) as client:
            r = client.get(f"{starlette_server.url}/files/big.bin")
            assert r.status_code == 200
            assert r.content == BIG
            assert r.headers["content-length"] == str(len(BIG))
            assert "etag" in r.headers and "last-modified" in r.headers
            r = client.get(f"{starlette_server.url}/files/page.html")
            assert r.headers["content-type"].startswith("text/html")
            r = client.head(f"{starlette_server.url}/files/big.bin")
            assert r.headers["content-length"] == str(len(BIG)) and r.content == b""
    # Starlette only stats the file; nothing in Python opened it.
    _nothing_opened_by_python(starlette_server.url)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_with_curl(raw_server, tmp_path):
    out = tmp_path / "out.bin"
    subprocess.run(
        ["curl", "-sS", "--fail", "-o", str(out), f"{raw_server.url}/file/big.bin"],
        check=True,
        timeout=30,
    )
    assert out.read_bytes() == BIG
