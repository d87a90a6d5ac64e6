"""The checks, one module per area. Importing this package registers all of them."""

from compat.checks import (  # noqa: F401 - imported for their @check registrations
    extensions,
    http_body,
    http_disconnect,
    http_errors,
    http_response,
    http_scope,
    lifespan,
    websocket,
)
from compat.checks.base import REGISTRY

__all__ = ["REGISTRY"]
