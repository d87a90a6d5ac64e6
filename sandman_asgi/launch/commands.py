"""``sandman dev [PATH]`` and ``sandman run [PATH]``: fastapi-cli's two commands on Sandman.

Both find the app (``discover``), print where it is served, then call ``sandman_asgi.run``
with the import string, so reload and workers run the same supervisors as
``sandman module:app --reload`` / ``--workers N``. ``dev``: reload on, 127.0.0.1. ``run``:
reload off, 0.0.0.0, ``--workers``. Both trust proxy headers from ``--forwarded-allow-ips``.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sandman_asgi.config import STARTUP_FAILURE
from sandman_asgi.importer import app_frames
from sandman_asgi.launch.banner import banner_lines
from sandman_asgi.launch.discover import (
    Discovered,
    DiscoveryError,
    ModuleImportFailed,
    default_path,
    discover,
    from_import_string,
    module_source,
    pyproject_entrypoint,
)


def _common_options(host_default: str, reload_default: bool) -> Callable[[Any], Any]:
    """The options ``dev`` and ``run`` share; only two defaults differ."""

    def decorate(command: Any) -> Any:
        options = [
            click.argument("path", required=False, type=click.Path(path_type=Path)),
            click.option(
                "--host",
                default=host_default,
                show_default=True,
                help="Bind socket to this host (0.0.0.0: every interface, e.g. in a container).",
            ),
            click.option(
                "--port",
                type=int,
                default=8000,
                show_default=True,
                envvar="PORT",
                show_envvar=True,
                help="Bind socket to this port. If 0, an available port will be picked.",
            ),
            click.option(
                "--reload/--no-reload",
                default=reload_default,
                show_default=True,
                help="Restart the server when Python files change.",
            ),
            click.option(
                "--reload-dir",
                "reload_dirs",
                multiple=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path),
                help="Directory to watch instead of the current working directory.",
            ),
            click.option(
                "--root-path",
                default="",
                help="The ASGI 'root_path' for an app served below a proxy's path prefix.",
            ),
            click.option(
                "--app",
                "app_name",
                default=None,
                help="Name of the app object in the module (default: 'app' or 'api', else "
                "the first FastAPI or Starlette app found).",
            ),
            click.option(
                "--entrypoint",
                "-e",
                default=None,
                help="The app as an import string 'module:attribute', instead of PATH.",
            ),
            click.option(
                "--proxy-headers/--no-proxy-headers",
                default=True,
                show_default=True,
                help="Read X-Forwarded-For/-Proto from trusted proxies.",
            ),
            click.option(
                "--forwarded-allow-ips",
                default=None,
                help="Comma separated IPs or networks whose proxy headers are trusted "
                "(default: $FORWARDED_ALLOW_IPS or '127.0.0.1,::1'; '*' trusts everything).",
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def find_app(path: Path | None, app_name: str | None, entrypoint: str | None) -> Discovered:
    """PATH/--app, else --entrypoint, else pyproject's entrypoint, else a default path
    (fastapi-cli's order). A bad PATH is a usage error (exit 2)."""
    cwd = Path(os.getcwd())
    if entrypoint is not None:
        if path is not None or app_name is not None:
            raise click.UsageError("--entrypoint cannot be combined with PATH or --app")
        return from_import_string(entrypoint, cwd, "--entrypoint")
    if path is None and app_name is None:
        configured = pyproject_entrypoint(cwd)
        if configured is not None:
            return from_import_string(configured, cwd, "pyproject.toml [tool.fastapi]")
    try:
        # Resolve the path first, so a path problem is a usage error and not a load error.
        module_source(path if path is not None else default_path(cwd))
    except DiscoveryError as exc:
        raise click.BadParameter(str(exc), param_hint="PATH") from None
    return discover(path, app_name, cwd)


def launch(command: str, workers: int | None = None, **options: Any) -> None:
    """Find the app, print the banner, serve it with ``sandman_asgi.run``."""
    from sandman_asgi.main import run

    try:
        found = find_app(options.pop("path"), options.pop("app_name"), options.pop("entrypoint"))
    except DiscoveryError as exc:
        # Same words and status as any app that fails to load (`sandman module:app`).
        click.echo(f"ERROR:    Error loading ASGI app. {exc}", err=True)
        if isinstance(exc, ModuleImportFailed):
            _explain(exc.error)
        raise SystemExit(STARTUP_FAILURE) from None
    reload_dirs = [str(d.resolve()) for d in options.pop("reload_dirs")] or None
    for line in banner_lines(
        command, found, options["host"], options["port"], options["reload"], workers
    ):
        click.echo(line)
    run(
        found.import_string,
        app_dir=str(found.import_root),
        reload_dirs=reload_dirs,
        workers=workers,
        **options,
    )


def _explain(error: BaseException) -> None:
    """The traceback of an exception the app's module raised, from the app's own code on."""
    lines = traceback.format_exception(type(error), error, app_frames(error.__traceback__))
    click.echo("".join(lines).rstrip(), err=True)
    if isinstance(error, ImportError):
        # The usual cause: a folder between the file and its package lacks __init__.py, so
        # the module was imported outside its package.
        click.echo(
            "If the module belongs to a package, every folder of that package needs an "
            "__init__.py.",
            err=True,
        )


@click.command(name="dev")
@_common_options(host_default="127.0.0.1", reload_default=True)
def dev(**options: Any) -> None:
    """Serve the FastAPI or Starlette app in PATH for development: auto-reload, 127.0.0.1.

    PATH is a .py file or a package directory (default: the first of main.py, app.py,
    api.py, app/main.py, app/app.py, app/api.py). Enclosing folders with __init__.py are
    imported as packages.
    """
    os.environ.setdefault("FASTAPI_ENV", "development")
    launch("dev", **options)


@click.command(name="run")
@_common_options(host_default="0.0.0.0", reload_default=False)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Number of worker processes (default: $WEB_CONCURRENCY, or 1). Not with --reload.",
)
def run_command(**options: Any) -> None:
    """Serve the FastAPI or Starlette app in PATH for production: 0.0.0.0, proxy headers,
    --workers.

    PATH is a .py file or a package directory (default: the first of main.py, app.py,
    api.py, app/main.py, app/app.py, app/api.py). Enclosing folders with __init__.py are
    imported as packages.
    """
    launch("run", **options)


COMMANDS: dict[str, click.Command] = {"dev": dev, "run": run_command}
