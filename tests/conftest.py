from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.serverproc import ServerProcess, sandman


@pytest.fixture(scope="module")
def hello_server() -> Iterator[ServerProcess]:
    with sandman("tests.apps:hello") as server:
        yield server


@pytest.fixture(scope="module")
def scope_server() -> Iterator[ServerProcess]:
    with sandman("tests.apps:scope_echo") as server:
        yield server
