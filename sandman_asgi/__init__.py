"""Sandman: an ASGI server with a Rust core, a drop-in replacement for uvicorn."""

from sandman_asgi._core import ClientDisconnected
from sandman_asgi._core import __version__ as __version__
from sandman_asgi.config import Config
from sandman_asgi.main import main, run
from sandman_asgi.server import Server

__all__ = ["main", "run", "Config", "Server", "ClientDisconnected", "__version__"]
