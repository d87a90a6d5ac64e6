"""The ``sandman`` command: ``dev``/``run`` launchers, otherwise uvicorn's command line.

Only a first argument that is exactly ``dev`` or ``run`` selects a launcher. ``dev:app`` or
``run:app`` is an import string (a module named ``dev`` or ``run``), as uvicorn reads it,
and so is anything after an option: uvicorn never accepts a bare word without ``:`` as APP.
"""

from __future__ import annotations

import sys


def cli(argv: list[str] | None = None) -> None:
    """Console-script entry point (``sandman`` and ``python -m sandman_asgi``)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("dev", "run"):
        from sandman_asgi.launch.commands import COMMANDS

        COMMANDS[args[0]].main(args[1:], prog_name=f"sandman {args[0]}")
        return
    from sandman_asgi.main import main

    if argv is None:
        main()  # click reads sys.argv and names itself as invoked
    else:
        main.main(argv, prog_name="sandman")
