"""Running one HTTP request's app call and ending the response by the ASGI rules.

The message ordering rules live in the Rust core (``asgi/http_rules.rs``); this coroutine only
decides what an app's *ending* means (the ASGI spec's error handling, and uvicorn's):

* raised before ``http.response.start`` -> 500 ``Internal Server Error`` + traceback logged;
* raised after the start -> connection closed (the status can no longer change);
* raised ``ClientDisconnected`` (our own ``OSError`` from ``send()``) -> not an error, not logged;
* returned without starting -> 500 + "ASGI callable returned without starting response.";
* returned mid-body -> connection closed + "... without completing response.";
* returned a value -> error logged and connection closed.
"""

from __future__ import annotations

import logging
from typing import Any

from sandman_asgi._core import ClientDisconnected, HttpCycle, WsCycle

logger = logging.getLogger("uvicorn.error")


async def run_http(app: Any, scope: dict[str, Any], cycle: HttpCycle) -> None:
    """Run ``app`` for one request and end the response whatever the app did."""
    try:
        result = await app(scope, cycle.receive, cycle.send)
    except ClientDisconnected:
        cycle.app_failed(False)
    except BaseException as exc:  # noqa: BLE001 - the server must survive any app failure
        cycle.app_failed()
        logger.error("Exception in ASGI application\n", exc_info=exc)
    else:
        if result is not None:
            logger.error("ASGI callable should return None, but returned '%s'.", result)
            cycle.app_failed(False)
            return
        problem = cycle.app_returned()
        if problem is not None:
            logger.error(problem)


async def run_websocket(app: Any, scope: dict[str, Any], cycle: WsCycle) -> None:
    """Run ``app`` for one WebSocket and end the socket whatever the app did.

    Returned or raised before answering the handshake -> HTTP 500; raised after accepting
    -> close 1011; returned while still open -> close 1000 (ASGI WebSocket spec).
    """
    try:
        result = await app(scope, cycle.receive, cycle.send)
    except ClientDisconnected:
        cycle.app_failed()
    except BaseException as exc:  # noqa: BLE001 - the server must survive any app failure
        cycle.app_failed()
        logger.error("Exception in ASGI application\n", exc_info=exc)
    else:
        if result is not None:
            logger.error("ASGI callable should return None, but returned '%s'.", result)
            cycle.app_failed()
        else:
            problem = cycle.app_returned()
            if problem is not None:
                logger.error(problem)
