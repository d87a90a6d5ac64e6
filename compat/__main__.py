"""``python -m compat``: see ``compat.cli``."""

from compat.cli import main

raise SystemExit(main())
