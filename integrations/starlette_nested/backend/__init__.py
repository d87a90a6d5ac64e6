"""A Starlette project as a nested package: ``sandman run backend`` serves the app this
package exports; ``sandman run backend/api/server.py`` the module's own ``api``."""

from .api.server import api as app

__all__ = ["app"]
