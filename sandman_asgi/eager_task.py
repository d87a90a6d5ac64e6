"""The rest of an HTTP app's run after its first step suspended (Python 3.11).

There the core starts each HTTP app as a ``RequestTask`` (``sandman_core/src/asgi/eager_task.rs``):
it runs the coroutine's first step at once, as ``eager_start`` does on 3.12+, and most
requests end in that step without costing an ``asyncio.Task``. A coroutine that suspends
is handed here to a real ``asyncio.Task``, which drives it to the end. While it runs the
app, ``asyncio.current_task()`` still returns the ``RequestTask``: anything that kept the
task in the first step (anyio's cancel scopes, ``asyncio.timeout``, asgiref) must find the
same task in every later step. The ``RequestTask`` defers its methods (``cancel``,
``cancelling``, ``done``, ...) to the inner task, so cancelling it cancels the inner one.

Keeping the ``RequestTask`` current costs a switch of asyncio's current task around every
later step (~3.6k instructions each; a 1 MiB stream suspends ~16 times). It is only paid
when someone could tell the difference: when the first step left a reference to the task
behind (a local, a cancel scope, a weak reference) or cancelled it. Otherwise nothing can
ever compare the two, and the inner task is simply the current task from the second step
on, with the app's coroutine delegated to natively (``yield from``).
"""

from __future__ import annotations

import asyncio
import sys
import types
import weakref
from asyncio import tasks
from collections.abc import Coroutine, Generator
from contextvars import Context
from typing import Any

from sandman_asgi.core_settings import RequestTaskHooks

# The hooks asyncio provides for task implementations of other event loops (bpo-32250).
_enter_task = tasks._enter_task
_leave_task = tasks._leave_task
_current_task = tasks.current_task


def request_task_hooks(loop: asyncio.AbstractEventLoop) -> RequestTaskHooks | None:
    """What the core needs to start HTTP apps as ``RequestTask``s, or None where it should
    create plain ``asyncio.Task``s: on 3.12+, which start tasks eagerly themselves; on
    3.10, whose ``asyncio.Task`` takes no ``context`` (the inner task must run in the
    request's) and has no ``uncancel``; and when the loop has a task factory (the app asked
    for its own tasks)."""
    if sys.version_info[:2] != (3, 11) or loop.get_task_factory() is not None:
        return None
    return RequestTaskHooks(
        enter=_enter_task,
        leave=_leave_task,
        hand_over=hand_over,
        cancelled_error=asyncio.CancelledError,
        invalid_state=asyncio.InvalidStateError,
        # The counter asyncio numbers its pure-Python tasks' names with.
        name_counter=tasks._task_name_counter,
        weakref_count=weakref.getweakrefcount,
    )


def hand_over(
    task: Any,
    coro: Coroutine[Any, Any, Any],
    pending: Any,
    loop: asyncio.AbstractEventLoop,
    context: Context,
    name: str | None,
    cancel: tuple[str | None] | None,
    kept: bool,
) -> asyncio.Task[Any]:
    """Drive ``coro``, suspended on ``pending``, to its end in an ``asyncio.Task``.

    ``kept``: the first step left a reference to ``task`` behind. ``cancel`` holds the
    message of a cancellation requested during the first step: as ``asyncio.Task`` does,
    it cancels the future the coroutine waits on, or is thrown in at the next step. Either
    one keeps ``task`` the current task while the coroutine runs (a cancel means someone
    had the task in hand).
    """
    if not kept and cancel is None:
        rest: Any = _continue(pending, coro)
        rest.send(None)  # to its first yield: a cancel before the first step lands inside
        return asyncio.Task(rest, loop=loop, context=context, name=name)
    kept = _Rest(task, coro, pending, loop)
    if cancel is not None:
        cancel_future = getattr(pending, "cancel", None)
        if cancel_future is None or not cancel_future(msg=cancel[0]):
            kept.throw_first = asyncio.CancelledError(*(() if cancel[0] is None else cancel))
    return asyncio.Task(kept, loop=loop, context=context, name=name)


@types.coroutine
def _continue(pending: Any, coro: Coroutine[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """Wait on ``pending``, then hand every step to ``coro`` (``yield from``: no Python
    frame of ours runs per step). An exception thrown in while waiting (a cancellation, the
    future's error) goes into ``coro`` and the wait starts again on what it yields next."""
    error: BaseException | None = None
    try:
        yield  # consumed by hand_over
    except GeneratorExit:
        coro.close()
        raise
    except BaseException as exc:  # noqa: BLE001 - it belongs to the app's coroutine
        error = exc
    while True:
        if error is not None:
            try:
                pending = coro.throw(error)
            except StopIteration as stop:
                return stop.value
            error = None
        try:
            yield pending
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - it belongs to the app's coroutine
            error = exc
            continue
        # asyncio's task resumes a coroutine with send(None) once its future is done,
        # which is exactly how `yield from` starts.
        return (yield from coro)


_RESUMED = object()


class _Rest(Coroutine[Any, Any, Any]):
    """The coroutine the inner task runs when the ``RequestTask`` must stay current: the
    app's coroutine, stepped with the ``RequestTask`` as the current task.

    A class rather than a generator so that a cancellation thrown in before the inner
    task's first step reaches the app's coroutine (a generator not yet started would die
    on it without running a line)."""

    __slots__ = ("task", "coro", "pending", "loop", "throw_first")

    def __init__(self, task: Any, coro: Coroutine[Any, Any, Any], pending: Any, loop: Any) -> None:
        self.task = task
        self.coro = coro
        self.pending = pending
        self.loop = loop
        self.throw_first: BaseException | None = None

    def send(self, value: Any) -> Any:
        if self.pending is not _RESUMED:
            # The inner task's first step: wait on what the first step yielded.
            pending, self.pending = self.pending, _RESUMED
            if self.throw_first is None:
                return pending
            value = None
        if self.throw_first is not None:
            error, self.throw_first = self.throw_first, None
            return self._step(self.coro.throw, error)
        return self._step(self.coro.send, value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self.pending = _RESUMED
        error = typ if val is None else val
        if isinstance(error, type):
            error = error()
        if tb is not None:
            error = error.with_traceback(tb)
        return self._step(self.coro.throw, error)

    def close(self) -> None:
        self.coro.close()

    def __next__(self) -> Any:
        return self.send(None)

    def __iter__(self) -> _Rest:
        return self

    def __await__(self) -> _Rest:  # type: ignore[override]
        return self

    def _step(self, resume: Any, arg: Any) -> Any:
        # asyncio made the inner task current; the app must see its own task instead.
        loop, task = self.loop, self.task
        inner = _current_task(loop)
        _leave_task(loop, inner)
        _enter_task(loop, task)
        try:
            return resume(arg)
        except BaseException:
            # The coroutine ended (StopIteration) or raised: let go of the task, which
            # refers to the inner task, which refers to this object.
            self.task = None
            raise
        finally:
            _leave_task(loop, task)
            _enter_task(loop, inner)


def app_coroutine(coro: Any) -> Any:
    """The app's coroutine behind an inner task's ``get_coro()``."""
    if isinstance(coro, _Rest):
        return coro.coro
    if getattr(coro, "gi_code", None) is _continue.__code__:
        frame = coro.gi_frame
        return None if frame is None else frame.f_locals.get("coro")
    return coro
