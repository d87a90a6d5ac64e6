"""``--log-level trace``: every ASGI message an app receives and sends, on ``uvicorn.asgi``.

The lines read as uvicorn's (``ASGI [3] Send {...}``, prefixed with the client address for
connection scopes), with bodies, text and headers replaced by their size so a trace log
stays readable and never leaks payloads. Only installed when the trace level is on, so it
costs nothing otherwise.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sandman_asgi.logging import TRACE_LOG_LEVEL

Message = MutableMapping[str, Any]
App = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

_SIZED = {"body": "<{} bytes>", "bytes": "<{} bytes>", "text": "<{} chars>"}


def summarised(message: Message) -> dict[str, Any]:
    """A copy of ``message`` with payloads replaced by ``<N bytes>``/``<N chars>``/``<...>``."""
    copy = dict(message)
    for key, template in _SIZED.items():
        if copy.get(key) is not None:
            copy[key] = template.format(len(copy[key]))
    if copy.get("headers") is not None:
        copy["headers"] = "<...>"
    return copy


class MessageLoggerMiddleware:
    """Wraps an ASGI 3 app; numbers each call so interleaved requests can be told apart."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.logger = logging.getLogger("uvicorn.asgi")
        self._numbers = itertools.count(1)

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        number = next(self._numbers)
        client = scope.get("client")
        prefix = f"{client[0]}:{client[1]} - ASGI" if client else "ASGI"
        log = self.logger.log

        async def traced_receive() -> Message:
            message = await receive()
            log(TRACE_LOG_LEVEL, "%s [%d] Receive %s", prefix, number, summarised(message))
            return message

        async def traced_send(message: Message) -> None:
            log(TRACE_LOG_LEVEL, "%s [%d] Send %s", prefix, number, summarised(message))
            await send(message)

        log(TRACE_LOG_LEVEL, "%s [%d] Started scope=%s", prefix, number, summarised(scope))
        try:
            await self.app(scope, traced_receive, traced_send)
        except BaseException:
            log(TRACE_LOG_LEVEL, "%s [%d] Raised exception", prefix, number)
            raise
        log(TRACE_LOG_LEVEL, "%s [%d] Completed", prefix, number)
