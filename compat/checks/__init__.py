"""The checks, one module per area. Importing this package registers all of them."""

from compat.checks import (  # noqa: F401 - imported for their @check registrations
    extensions,
    extensions_h2,
    http2,
    http_body,
    http_disconnect,
    http_errors,
    http_response,
    http_scope,
    lifespan,
    tls,
    websocket,
    websocket_h2,
)
from compat.checks.base import GROUPS, REGISTRY

# Reports read best from the scope outwards: registration order is import order, so sort.
_MODULES = [
    http_scope,
    http_body,
    http_response,
    http_disconnect,
    http_errors,
    http2,
    websocket,
    websocket_h2,
    lifespan,
    extensions,
    tls,
    extensions_h2,
]
REGISTRY.sort(
    key=lambda c: (
        GROUPS.index(c.group),
        [m.__name__ for m in _MODULES].index(c.func.__module__),
    )
)

__all__ = ["REGISTRY"]
