"""Apps that report what they see of their own task: for tests/test_request_task.py.

Each path runs one scenario and answers with a JSON object of facts about
``asyncio.current_task()``, cancellation and contextvars, so a test can check the task an
HTTP app runs in behaves as an ``asyncio.Task`` wherever the app can tell.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import sys
import weakref
from typing import Any

import anyio

REQUEST_PATH: contextvars.ContextVar[str] = contextvars.ContextVar("request_path", default="")
# Callbacks fired by the tasks of earlier requests (see /callback).
FIRED: list[str] = []
# Every task `app` ran in and that is still alive (see /live-tasks).
SEEN: weakref.WeakSet[Any] = weakref.WeakSet()
# Task.cancelling() and Task.uncancel() are new in 3.11; on 3.10 those facts are None.
COUNTS_CANCELS = sys.version_info >= (3, 11)


async def _json(send: Any, facts: dict[str, Any]) -> None:
    body = json.dumps(facts).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _first_step_only(task: Any, facts: dict[str, Any]) -> None:
    facts["name"] = task.get_name()
    facts["in_all_tasks"] = task in asyncio.all_tasks()
    facts["done"] = task.done()


async def _sleep(task: Any, facts: dict[str, Any]) -> None:
    await asyncio.sleep(0.01)
    await asyncio.sleep(0)
    facts["same_task"] = asyncio.current_task() is task
    facts["in_all_tasks"] = any(t is task for t in asyncio.all_tasks())


async def _thread(task: Any, facts: dict[str, Any]) -> None:
    # What FastAPI does for a sync endpoint: a cancel scope kept across a suspension.
    facts["thread_result"] = await anyio.to_thread.run_sync(lambda: 6 * 7)
    facts["same_task"] = asyncio.current_task() is task


async def _anyio_timeout(task: Any, facts: dict[str, Any]) -> None:
    with anyio.move_on_after(0.05) as scope:
        await anyio.sleep(5)
    facts["cancelled_caught"] = scope.cancelled_caught
    facts["cancelling"] = task.cancelling() if COUNTS_CANCELS else None
    facts["same_task"] = asyncio.current_task() is task


async def _asyncio_timeout(task: Any, facts: dict[str, Any]) -> None:
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(5)
    except TimeoutError:
        facts["timed_out"] = True
    facts["cancelling"] = task.cancelling()


async def _task_group(task: Any, facts: dict[str, Any]) -> None:
    children: list[bool] = []

    async def child() -> None:
        await anyio.sleep(0.01)
        children.append(REQUEST_PATH.get() == "/task-group")

    async with anyio.create_task_group() as group:
        group.start_soon(child)
        group.start_soon(child)
    facts["children_saw_context"] = children
    facts["same_task"] = asyncio.current_task() is task


async def _cancel_self(task: Any, facts: dict[str, Any]) -> None:
    # Cancelled during the first step: the next await raises CancelledError, as in asyncio.
    facts["cancel_returned"] = task.cancel("from the app")
    facts["cancelling_before"] = task.cancelling() if COUNTS_CANCELS else None
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError as exc:
        facts["cancelled_with"] = exc.args[0] if exc.args else None
        facts["uncancel"] = task.uncancel() if COUNTS_CANCELS else None


async def _callback(task: Any, facts: dict[str, Any]) -> None:
    task.add_done_callback(lambda t: FIRED.append(f"first-step {t is task} {t.done()}"))


async def _callback_after_suspend(task: Any, facts: dict[str, Any]) -> None:
    await asyncio.sleep(0.01)
    task.add_done_callback(lambda t: FIRED.append(f"suspended {t is task} {t.done()}"))


async def _fired(task: Any, facts: dict[str, Any]) -> None:
    facts["fired"] = list(FIRED)


async def _live_tasks(task: Any, facts: dict[str, Any]) -> None:
    # Every earlier request's task must be gone once the garbage collector has run (it
    # must see through the references between a task, its coroutine and its inner task).
    gc.collect()
    facts["live_request_tasks"] = sum(1 for seen in SEEN if seen is not task)


SCENARIOS = {
    "/first-step": _first_step_only,
    "/sleep": _sleep,
    "/thread": _thread,
    "/anyio-timeout": _anyio_timeout,
    "/asyncio-timeout": _asyncio_timeout,
    "/task-group": _task_group,
    "/cancel-self": _cancel_self,
    "/callback": _callback,
    "/callback-after-suspend": _callback_after_suspend,
    "/fired": _fired,
    "/live-tasks": _live_tasks,
}


async def _unobserved(send: Any) -> None:
    # Nothing keeps the first step's task, so the task that runs the rest may differ.
    first_name = asyncio.current_task().get_name()
    await asyncio.sleep(0.01)
    later = asyncio.current_task()
    facts = {
        "first_name": first_name,
        "later_is_asyncio_task": isinstance(later, asyncio.Task),
        "later_in_all_tasks": later in asyncio.all_tasks(),
        "later_name": later.get_name(),
    }
    await asyncio.sleep(0.01)
    facts["still_same"] = asyncio.current_task() is later
    await _json(send, facts)


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/unobserved":
        return await _unobserved(send)
    task = asyncio.current_task()
    SEEN.add(task)
    facts: dict[str, Any] = {"context_before": REQUEST_PATH.get()}
    REQUEST_PATH.set(scope["path"])
    await SCENARIOS[scope["path"]](task, facts)
    facts["context_after"] = REQUEST_PATH.get()
    facts["task_is_current"] = asyncio.current_task() is task
    await _json(send, facts)
