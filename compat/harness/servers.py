"""How to start each known server, and how to find its version.

A profile is a set of argv templates. Placeholders: ``{python}`` (the interpreter in
``--bin-dir``, else the one running the suite), ``{app}``, ``{host}``, ``{port}``, ``{path}``
(unix socket), ``{root_path}``, ``{certfile}`` and ``{keyfile}`` (PEM files made for the run).
The first word of a template is looked up in ``--bin-dir``, then on ``PATH``, then next to
the running interpreter.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ServerProfile:
    """How to run one server. ``uds``/``root_path``/``tls`` are ``None`` when unknown, and
    the checks that need them report "n/a" instead of failing. ``http2`` holds the options
    that turn HTTP/2 on, for the servers that need any (whether the server then speaks it
    is for the checks to find out)."""

    name: str
    tcp: tuple[str, ...]
    uds: tuple[str, ...] | None = None
    root_path: tuple[str, ...] | None = None
    tls: tuple[str, ...] | None = None
    http2: tuple[str, ...] = ()
    dist: str | None = None
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # The signal that stops the server gracefully (lifespan shutdown included).
    stop_signal: int = signal.SIGINT


# uvicorn's TLS options (Sandman's are the same).
UVICORN_TLS = ("--ssl-keyfile", "{keyfile}", "--ssl-certfile", "{certfile}")


def _uvicorn(name: str, *http: str, http2: tuple[str, ...] = ()) -> ServerProfile:
    return ServerProfile(
        name,
        ("uvicorn", "{app}", *http, "--host", "{host}", "--port", "{port}"),
        uds=("uvicorn", "{app}", *http, "--uds", "{path}"),
        root_path=("--root-path", "{root_path}"),
        tls=UVICORN_TLS,
        http2=http2,
        dist="uvicorn",
    )


def _hypercorn_like(name: str) -> ServerProfile:
    # anycorn is hypercorn's anyio fork, with the same command line.
    return ServerProfile(
        name,
        (name, "-b", "{host}:{port}", "{app}"),
        uds=(name, "-b", "unix:{path}", "{app}"),
        root_path=("--root-path", "{root_path}"),
        tls=("--keyfile", "{keyfile}", "--certfile", "{certfile}"),
        dist=name,
    )


PROFILES: dict[str, ServerProfile] = {
    p.name: p
    for p in (
        ServerProfile(
            "sandman",
            ("{python}", "-m", "sandman_asgi", "{app}", "--host", "{host}", "--port", "{port}"),
            uds=("{python}", "-m", "sandman_asgi", "{app}", "--uds", "{path}"),
            root_path=("--root-path", "{root_path}"),
            tls=UVICORN_TLS,
            dist="sandman-asgi",
        ),
        _uvicorn("uvicorn"),  # --http auto: httptools when installed, else h11
        _uvicorn("uvicorn-h11", "--http", "h11"),
        _uvicorn("uvicorn-httptools", "--http", "httptools"),
        # Needs `pip install zttp`; HTTP/2 (h2c and ALPN h2) only with --http2.
        _uvicorn("uvicorn-zttp", "--http", "zttp", http2=("--http2",)),
        _hypercorn_like("hypercorn"),
        _hypercorn_like("anycorn"),
        ServerProfile(
            "granian",
            ("granian", "--interface", "asgi", "--host", "{host}", "--port", "{port}", "{app}"),
            uds=("granian", "--interface", "asgi", "--uds", "{path}", "{app}"),
            root_path=("--url-path-prefix", "{root_path}"),
            tls=("--ssl-keyfile", "{keyfile}", "--ssl-certificate", "{certfile}"),
            dist="granian",
        ),
        ServerProfile(
            "daphne",
            ("daphne", "-b", "{host}", "-p", "{port}", "{app}"),
            uds=("daphne", "-u", "{path}", "{app}"),
            root_path=("--root-path", "{root_path}"),
            # TLS is an endpoint string (-e ssl:...) and needs twisted's TLS extras.
            dist="daphne",
        ),
        # gunicorn's own ASGI worker (`-k asgi`, in gunicorn 27), not uvicorn's worker class.
        ServerProfile(
            "gunicorn",
            ("gunicorn", "-k", "asgi", "-b", "{host}:{port}", "{app}"),
            uds=("gunicorn", "-k", "asgi", "-b", "unix:{path}", "{app}"),
            root_path=("--root-path", "{root_path}"),
            tls=("--keyfile", "{keyfile}", "--certfile", "{certfile}"),
            # HTTP/2 (beta in 27, needs gunicorn[http2]): h2 by ALPN, h2c by either mechanism.
            http2=("--http-protocols", "h2,h1", "--http2-cleartext", "both"),
            dist="gunicorn",
            stop_signal=signal.SIGTERM,  # SIGINT is gunicorn's quick shutdown
        ),
    )
}


def custom_profile(
    template: str, name: str = "custom", stop_signal: int = signal.SIGINT
) -> ServerProfile:
    """A profile from a ``--cmd`` template such as ``'myserver {app} --port {port}'``."""
    argv = tuple(shlex.split(template))
    if not any("{app}" in a for a in argv) or not any("{port}" in a for a in argv):
        raise ValueError("a server command needs both {app} and {port} placeholders")
    return ServerProfile(name, argv, stop_signal=stop_signal)


def python_for(bin_dir: Path | None) -> str:
    """``{python}``: the interpreter of ``--bin-dir`` when it has one (the server's own
    virtualenv), else the interpreter running the suite."""
    if bin_dir is not None:
        for name in ("python", "python3"):
            candidate = bin_dir / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return os.path.abspath(candidate)
    return sys.executable


def signal_named(name: str) -> int:
    """``"TERM"`` or ``"SIGTERM"`` -> ``signal.SIGTERM`` (``ValueError`` if unknown)."""
    key = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
    try:
        return int(signal.Signals[key])
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None


def resolve_executable(word: str, bin_dir: Path | None) -> str:
    """The path to run for the first word of a template."""
    if word == "{python}":
        return python_for(bin_dir)
    if os.sep in word:
        return word
    candidates = []
    if bin_dir is not None:
        candidates.append(bin_dir / word)
    found = shutil.which(word)
    if found:
        candidates.append(Path(found))
    candidates.append(Path(sys.executable).parent / word)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            # Absolute (the server runs in its own work directory), symlinks kept (a
            # virtualenv's python finds its environment through the link's path).
            return os.path.abspath(path)
    raise FileNotFoundError(f"{word!r} not found (looked in --bin-dir, PATH, {sys.prefix})")


def render(template: tuple[str, ...], bin_dir: Path | None, **values: str) -> list[str]:
    """Fill a template's placeholders; the first word becomes an executable path."""
    rest = [a.format(python=python_for(bin_dir), **values) for a in template[1:]]
    return [resolve_executable(template[0], bin_dir), *rest]


def interpreter_of(executable: str) -> str | None:
    """The Python interpreter behind a console script (from its ``#!`` line)."""
    if os.path.basename(executable).startswith("python"):
        return executable
    try:
        with open(executable, "rb") as file:
            first = file.readline(500)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return words[0] if words and "python" in os.path.basename(words[0]) else None


def version_of(profile: ServerProfile, bin_dir: Path | None) -> str:
    """The installed version of the profile's distribution, or ``"unknown"``."""
    if profile.dist is None:
        return "unknown"
    try:
        interpreter = interpreter_of(resolve_executable(profile.tcp[0], bin_dir))
    except FileNotFoundError:
        return "not installed"
    if interpreter is None:
        return "unknown"
    code = f"import importlib.metadata as m; print(m.version({profile.dist!r}))"
    try:
        out = subprocess.run(
            [interpreter, "-c", code], capture_output=True, text=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
