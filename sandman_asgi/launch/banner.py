"""What ``sandman dev|run`` prints before serving: the app it found, where it is served and,
for FastAPI, where its interactive docs are."""

from __future__ import annotations

import os
from typing import Any

from sandman_asgi.launch.discover import Discovered


def base_url(host: str, port: int, public_url: str | None) -> str:
    """``http://host:port`` (IPv6 hosts bracketed), or the public URL the user set."""
    if public_url:
        return public_url.rstrip("/")
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def docs_path(app: Any) -> str | None:
    """The path of a FastAPI app's docs page (Swagger UI, else ReDoc), or None when it has
    none (FastAPI serves neither without an OpenAPI schema)."""
    if getattr(app, "openapi_url", None) is None:
        return None
    return getattr(app, "docs_url", None) or getattr(app, "redoc_url", None)


def banner_lines(
    command: str,
    found: Discovered,
    host: str,
    port: int,
    reload: bool,
    workers: int | None,
) -> list[str]:
    """The lines printed on stdout before the server's own log lines."""
    mode = "development" if command == "dev" else "production"
    extras = []
    if reload:
        extras.append("auto-reload on")
    if workers and workers > 1:
        extras.append(f"{workers} workers")
    url = base_url(host, port, os.environ.get("FASTAPI_PUBLIC_URL"))
    lines = [
        f"sandman {command}: {found.kind} app in {mode} mode"
        + (f" ({', '.join(extras)})" if extras else ""),
        f"  import    {found.import_string}  ({found.how}; from {found.import_root})",
    ]
    if port == 0:
        lines.append("  serving   on a free port: see the 'running on' line below")
        return lines
    lines.append(f"  serving   {url}")
    docs = docs_path(found.app) if found.kind == "FastAPI" else None
    if docs is not None:
        lines.append(f"  API docs  {url}{docs}")
    return lines
