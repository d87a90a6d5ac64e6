"""Run a real Sandman server inside tests: ``serve(app)`` and the ``sandman_server`` fixture.

See docs/testing.md. The pytest plugin (``sandman_asgi.testing.plugin``) is registered
through the ``pytest11`` entry point, so the fixture is there once sandman-asgi is installed.
"""

from sandman_asgi.testing.live import LiveServer, ServerStartupError, serve

__all__ = ["LiveServer", "ServerStartupError", "serve"]
