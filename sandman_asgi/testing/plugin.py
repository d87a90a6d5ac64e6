"""The pytest plugin behind the ``sandman_server`` fixture (entry point ``pytest11``).

pytest loads it in every session of an environment where sandman-asgi is installed, so it
imports the server only when a test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sandman_asgi.testing.live import LiveServer


@pytest.fixture
def sandman_server() -> Iterator[Callable[..., LiveServer]]:
    """A factory: ``sandman_server(app, **options)`` starts ``app`` on a free port (its own
    thread and event loop, so it serves sync tests and pytest-asyncio or anyio tests alike)
    and returns the running ``LiveServer``; every server it started is stopped, lifespan
    shutdown included, when the test ends, whether it passed or not."""
    from sandman_asgi.testing.live import serve

    started: list[LiveServer] = []

    def start(app: Any, **options: Any) -> LiveServer:
        server = serve(app, **options).start()
        started.append(server)
        return server

    yield start
    errors: list[BaseException] = []
    for server in reversed(started):
        try:
            server.stop()
        except Exception as exc:  # stop the others before reporting
            errors.append(exc)
    if errors:
        raise errors[0]
