"""Cost of one access line: through ``logging`` against Sandman's direct path.

Usage: python bench/access_line.py [N] > /dev/null
Sets up logging with Sandman's default config (access lines to stdout), writes N lines
(default 20,000) each way and prints microseconds per line to stderr.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import time

from sandman_asgi.access_log import AccessLog
from sandman_asgi.logging import LOGGING_CONFIG


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    logging.config.dictConfig(LOGGING_CONFIG)
    logger = logging.getLogger("uvicorn.access")
    args = ("127.0.0.1:50000", "GET", "/", "1.1", 200)
    direct = AccessLog(logger).write
    paths = {
        "logging": lambda: logger.info('%s - "%s %s HTTP/%s" %d', *args),
        "direct": lambda: direct(*args),
    }
    for name, write in paths.items():
        start = time.perf_counter()
        for _ in range(n):
            write()
        print(f"{name}: {(time.perf_counter() - start) / n * 1e6:.2f} us/line", file=sys.stderr)


if __name__ == "__main__":
    main()
