"""The task an HTTP app runs in, as the app sees it: on Python 3.11 the core starts it as
a ``RequestTask`` that runs its first step eagerly (``sandman_core/src/asgi/eager_task.rs``). Each
scenario checks what asyncio, anyio and contextvars users rely on, over a real socket."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.serverproc import ServerProcess, sandman
from tests.task_apps import COUNTS_CANCELS


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with sandman("tests.task_apps:app", "--no-access-log") as proc:
        yield proc


def facts(server: ServerProcess, path: str, client: httpx.Client | None = None) -> dict:
    r = (client or httpx).get(server.url + path, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_request_that_never_suspends_has_a_named_current_task(server: ServerProcess) -> None:
    f = facts(server, "/first-step")
    assert f["name"].startswith("Task-") and f["name"][5:].isdigit()
    assert f["done"] is False
    assert f["task_is_current"] is True
    if sys.version_info[:2] == (3, 11):
        # It ends in its first step without ever entering asyncio's registry.
        assert f["in_all_tasks"] is False


def test_the_current_task_stays_the_same_across_suspensions(server: ServerProcess) -> None:
    f = facts(server, "/sleep")
    assert f["same_task"] is True
    assert f["task_is_current"] is True
    # Once suspended it is a running task like any other (uvicorn's shutdown counts it).
    if sys.version_info[:2] == (3, 11):
        assert f["in_all_tasks"] is False  # the inner asyncio.Task is listed, not this one


def test_a_cancel_scope_kept_across_a_thread_call_exits_in_the_same_task(
    server: ServerProcess,
) -> None:
    f = facts(server, "/thread")
    assert f == {**f, "thread_result": 42, "same_task": True, "task_is_current": True}


def test_an_anyio_timeout_cancels_the_await_and_the_app_goes_on(server: ServerProcess) -> None:
    f = facts(server, "/anyio-timeout")
    assert f["cancelled_caught"] is True
    assert f["cancelling"] == (0 if COUNTS_CANCELS else None)
    assert f["same_task"] is True


def test_an_asyncio_timeout_raises_timeout_error_in_the_app(server: ServerProcess) -> None:
    if sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout is new in 3.11")
    f = facts(server, "/asyncio-timeout")
    assert f["timed_out"] is True
    assert f["cancelling"] == 0


def test_task_group_children_inherit_the_request_context(server: ServerProcess) -> None:
    f = facts(server, "/task-group")
    assert f["children_saw_context"] == [True, True]
    assert f["same_task"] is True


def test_a_cancel_during_the_first_step_reaches_the_next_await(server: ServerProcess) -> None:
    f = facts(server, "/cancel-self")
    assert f["cancel_returned"] is True
    assert f["cancelled_with"] == "from the app"
    if COUNTS_CANCELS:
        assert (f["cancelling_before"], f["uncancel"]) == (1, 0)


def test_contextvars_set_by_one_request_are_not_seen_by_the_next(server: ServerProcess) -> None:
    with httpx.Client() as client:  # one keep-alive connection for every request
        for path in ("/first-step", "/sleep", "/first-step", "/thread"):
            f = facts(server, path, client)
            assert f["context_before"] == ""
            assert f["context_after"] == path


def test_done_callbacks_get_the_task_once_it_is_done(server: ServerProcess) -> None:
    facts(server, "/callback")
    facts(server, "/callback-after-suspend")
    deadline = time.monotonic() + 5
    while True:
        fired = facts(server, "/fired")["fired"]
        if len(fired) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert fired == ["first-step True True", "suspended True True"]


def test_finished_request_tasks_are_freed(server: ServerProcess) -> None:
    with httpx.Client() as client:
        for _ in range(30):
            for path in ("/first-step", "/sleep", "/thread", "/anyio-timeout", "/unobserved"):
                assert client.get(server.url + path, timeout=10).status_code == 200
    assert facts(server, "/live-tasks")["live_request_tasks"] == 0


def test_a_task_nobody_kept_is_driven_by_a_plain_asyncio_task_after_it_suspends(
    server: ServerProcess,
) -> None:
    f = facts(server, "/unobserved")
    assert f["still_same"] is True
    assert f["later_in_all_tasks"] is True
    assert f["later_name"] == f["first_name"]  # one name for the whole request
    if sys.version_info[:2] == (3, 11):
        assert f["later_is_asyncio_task"] is True


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="RequestTask is for 3.11 only")
@pytest.mark.parametrize("kept", [False, True])
def test_a_cancel_before_the_inner_task_first_runs_reaches_the_app(kept: bool) -> None:
    # The window between hand-over and the inner task's first step: a cancel there must
    # be thrown into the app's coroutine, not lost in a wrapper that never started.
    import asyncio
    import contextvars

    from sandman_asgi.eager_task import hand_over

    seen: list[str] = []

    async def app_coro(fut: asyncio.Future) -> str:
        try:
            await fut
        except asyncio.CancelledError:
            seen.append("cancelled")
            return "handled"
        return "not cancelled"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        coro = app_coro(fut)
        pending = coro.send(None)  # the first step, suspended on fut
        inner = hand_over(
            object(), coro, pending, loop, contextvars.copy_context(), None, None, kept
        )
        inner.cancel()
        assert await asyncio.wait_for(inner, 5) == "handled"

    asyncio.run(main())
    assert seen == ["cancelled"]
