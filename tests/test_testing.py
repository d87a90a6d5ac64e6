"""``sandman_asgi.testing``: ``serve(app)`` (thread and asyncio forms) and the
``sandman_server`` fixture, driven over real sockets with httpx and websockets, under plain
pytest, pytest-asyncio and anyio's pytest plugin."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from sandman_asgi.testing import LiveServer, ServerStartupError, serve


def make_app(events: list[str]) -> FastAPI:
    """A FastAPI app that records its lifespan and the thread it serves on."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        events.append("startup")
        yield {"greeting": "hi"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"thread": threading.current_thread().name}

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text("echo: " + await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    return app


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


# -- serve(): thread form ---------------------------------------------------------------------


def test_serve_runs_the_app_with_lifespan_on_a_free_port():
    events: list[str] = []
    with serve(make_app(events)) as server:
        assert events == ["startup"]
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        assert server.ws_url == f"ws://127.0.0.1:{server.port}"
        assert httpx.get(server.url + "/").json() == {"thread": "sandman-testing"}
        with connect(server.ws_url + "/ws", open_timeout=5) as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "echo: hello"
        port = server.port
    assert events == ["startup", "shutdown"]
    assert refused(port)


def test_serve_stops_with_lifespan_shutdown_when_the_block_fails():
    events: list[str] = []
    with pytest.raises(AssertionError, match="the test failed"):
        with serve(make_app(events)) as server:
            port = server.port
            assert httpx.get(server.url).status_code == 200
            raise AssertionError("the test failed")
    assert events == ["startup", "shutdown"]
    assert refused(port)


def test_serve_stops_even_with_a_websocket_left_open():
    events: list[str] = []
    server = serve(make_app(events), timeout_graceful_shutdown=2).start()
    with connect(server.ws_url + "/ws", open_timeout=5) as ws:
        server.stop()
        # The server closed the socket as it stopped (1012, service restart).
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert events == ["startup", "shutdown"]


def test_serve_passes_server_options_and_takes_import_strings():
    with serve("tests.apps:hello", headers=[("X-Test", "1")], server_header=False) as server:
        response = httpx.get(server.url + "/")
    assert response.headers["x-test"] == "1" and "server" not in response.headers


def test_serve_with_tls_gives_https_and_wss_urls(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "combined.pem"))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    with serve(make_app([]), ssl_certfile=str(tmp_path / "combined.pem")) as server:
        assert server.url.startswith("https://") and server.ws_url.startswith("wss://")
        assert httpx.get(server.url + "/", verify=client).status_code == 200
        with connect(server.ws_url + "/ws", ssl=client, open_timeout=5) as ws:
            ws.send("tls")
            assert ws.recv(timeout=5) == "echo: tls"


def test_a_failed_lifespan_startup_is_an_error_with_the_servers_reason():
    with pytest.raises(ServerStartupError, match="Application startup failed"):
        with serve("tests.apps:lifespan_failed"):
            pass
    with pytest.raises(ServerStartupError, match='Could not import module "tests.nowhere"'):
        serve("tests.nowhere:app").start()


def test_options_that_need_other_processes_are_refused():
    for option in ("reload", "workers", "uds", "fd"):
        with pytest.raises(ValueError, match=f"{option}= is not supported"):
            serve(make_app([]), **{option: 2 if option in ("workers", "fd") else True})


def test_a_server_runs_once_and_keeps_its_port():
    server = serve(make_app([]))
    with pytest.raises(RuntimeError, match="has not started"):
        server.port  # noqa: B018
    with server:
        port = server.port
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    assert server.port == port and refused(port)


# -- serve(): asyncio form, under pytest-asyncio and anyio ------------------------------------


async def exercise(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/")).status_code == 200
    async with async_connect(server.ws_url + "/ws") as ws:
        await ws.send("async")
        assert await ws.recv() == "echo: async"


@pytest.mark.asyncio
async def test_async_serve_under_pytest_asyncio():
    events: list[str] = []
    async with serve(make_app(events)) as server:
        assert events == ["startup"]
        await exercise(server)
        # The app runs on the test's own loop and thread.
        body = (await httpx.AsyncClient().get(server.url)).json()
        assert body == {"thread": threading.current_thread().name}
    assert events == ["startup", "shutdown"]


@pytest.mark.anyio
async def test_async_serve_under_anyio():
    events: list[str] = []
    with pytest.raises(KeyError):
        async with serve(make_app(events)) as server:
            await exercise(server)
            raise KeyError("the test failed")
    assert events == ["startup", "shutdown"]


@pytest.mark.asyncio
async def test_async_serve_reports_a_failed_startup():
    with pytest.raises(ServerStartupError, match="Application startup failed"):
        async with serve("tests.apps:lifespan_failed"):
            pass


# -- the sandman_server fixture ---------------------------------------------------------------


@pytest.fixture
def events() -> list[str]:
    return []


def test_fixture_in_a_plain_test(sandman_server, events):
    server = sandman_server(make_app(events))
    other = sandman_server("tests.apps:hello")
    assert server.port != other.port
    assert httpx.get(server.url + "/").status_code == 200
    assert httpx.get(other.url + "/").text == "Hello, world!"
    with connect(server.ws_url + "/ws", open_timeout=5) as ws:
        ws.send("sync")
        assert ws.recv(timeout=5) == "echo: sync"


@pytest.mark.asyncio
async def test_fixture_in_a_pytest_asyncio_test(sandman_server, events):
    server = sandman_server(make_app(events))
    await exercise(server)


@pytest.mark.anyio
async def test_fixture_in_an_anyio_test(sandman_server, events):
    server = sandman_server(make_app(events))
    await exercise(server)


def test_the_fixture_is_registered_by_the_entry_point(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("sandman")
    assert plugin is not None and plugin.__name__ == "sandman_asgi.testing.plugin"
