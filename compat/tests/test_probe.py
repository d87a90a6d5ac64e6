"""The probe app, driven in memory: plans run step by step and every outcome is recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from compat import plans
from compat.harness.records import RecordStore
from compat.probe.app import app
from compat.probe.plan import ProbeFailure, _mutate, pack_plan


def run(plan: list, events: list[dict[str, Any]], reject: str | None = None) -> list[dict]:
    """Run the probe with ``plan``; ``send`` raises for events of type ``reject``."""
    sent: list[dict[str, Any]] = []
    queue = list(events)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(60)
        raise AssertionError("unreachable")

    async def send(event: dict[str, Any]) -> None:
        if event.get("type") == reject:
            raise OSError("rejected by the fake server")
        sent.append(event)

    scope = {
        "type": "http",
        "headers": [(b"x-compat-token", b"tok"), (b"x-compat-plan", pack_plan(plan))],
    }
    asyncio.run(app(scope, receive, send))
    return sent


@pytest.fixture(autouse=True)
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RecordStore:
    monkeypatch.setenv("COMPAT_RECORD_DIR", str(tmp_path))
    return RecordStore(tmp_path)


def test_drain_respond_and_records(records: RecordStore) -> None:
    body = [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"b", "more_body": False},
    ]
    sent = run([plans.drain(), *plans.respond(b"hi")], body)
    assert [e["type"] for e in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b"hi" and sent[0]["headers"] == [(b"content-type", b"text/plain")]
    trace = records.read("tok")
    assert trace.scope["type"] == "http"
    assert trace.events == body
    assert [s["error"] for s in trace.sends()] == [None, None]
    assert trace.end["outcome"] == "returned"


def test_a_raising_send_is_recorded_and_the_plan_goes_on(records: RecordStore) -> None:
    sent = run([plans.start(), plans.body(b"x")], [], reject="http.response.start")
    assert [e["type"] for e in sent] == ["http.response.body"]
    error = records.read("tok").send_at(0)["error"]
    assert error["type"] == "OSError" and error["oserror"] and "OSError" in error["mro"]


def test_receive_timeout_and_deliberate_failure(records: RecordStore) -> None:
    with pytest.raises(ProbeFailure):
        run([plans.until("http.disconnect", 0.1), plans.fail()], [])
    trace = records.read("tok")
    assert trace.of("receive_timeout") and trace.end["outcome"] == "raised"


def test_mutate_touches_nested_dicts_and_state() -> None:
    state = {"compat_shared": []}
    scope = {"type": "http", "extensions": {}, "asgi": {}, "state": state, "headers": []}
    _mutate(scope, "m")
    assert scope["extensions"]["compat.leak"] == "m" and state["compat_shared"] == ["m"]


def test_if_extension_runs_the_branch_the_scope_allows(records: RecordStore) -> None:
    plan = [plans.if_extension("x.ext", plans.respond(b"with"), plans.respond(b"without"))]
    sent: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    for token, extensions in (("on", {"x.ext": {}}), ("off", {})):
        scope = {
            "type": "http",
            "extensions": extensions,
            "headers": [(b"x-compat-token", token.encode()), (b"x-compat-plan", pack_plan(plan))],
        }
        asyncio.run(app(scope, receive, send))
    assert [e["body"] for e in sent if e["type"] == "http.response.body"] == [b"with", b"without"]
    on = records.read("on")
    assert on.mark("x.ext:offered") is not None and records.read("off").mark("x.ext:absent")
    # The branch's steps are numbered apart from the outer plan's.
    assert [s["index"] for s in on.sends()] == [100, 101]
