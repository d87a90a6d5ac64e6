"""Gunicorn worker classes: ``gunicorn -k sandman_asgi.workers.SandmanWorker app:app``.

Gunicorn stays the process manager (binding, worker count, ``--max-requests``, timeouts,
HUP/TTIN/TTOU, its log files); each worker runs one Sandman ``Server`` on the sockets gunicorn
bound, the way ``uvicorn.workers.UvicornWorker`` does:

* ``uvicorn.error``/``uvicorn.access`` records go to gunicorn's error and access logs;
* the worker heartbeat (``--timeout``) is sent from the server's tick (``callback_notify``);
* SIGTERM is a graceful stop, SIGINT/SIGQUIT (gunicorn's quick shutdown) stop at once;
* a worker whose app cannot start exits with gunicorn's boot-error status, so gunicorn
  stops instead of respawning it forever.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from sandman_asgi.config import Config
from sandman_asgi.server import Server


class SandmanWorker(Worker):
    """An ASGI worker for gunicorn, running Sandman's server."""

    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto", "http": "auto"}
    """Extra ``Config`` keywords; subclasses change the event loop this way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _route_logger("uvicorn.error", self.log.error_log)
        _route_logger("uvicorn.access", self.log.access_log)

        settings: dict[str, Any] = {
            "app": None,  # set in run(): gunicorn loads the app in the worker (self.wsgi)
            "log_config": None,  # gunicorn owns logging
            "timeout_keep_alive": self.cfg.keepalive,
            "timeout_notify": self.timeout,
            "callback_notify": self.callback_notify,
            "limit_max_requests": self.max_requests,
            "forwarded_allow_ips": self.cfg.forwarded_allow_ips,
        }
        if self.cfg.is_ssl:
            options = self.cfg.ssl_options
            settings.update(
                ssl_keyfile=options.get("keyfile"),
                ssl_certfile=options.get("certfile"),
                ssl_keyfile_password=options.get("password"),
                ssl_version=options.get("ssl_version"),
                ssl_cert_reqs=options.get("cert_reqs"),
                ssl_ca_certs=options.get("ca_certs"),
                ssl_ciphers=options.get("ciphers"),
            )
        backlog = self.cfg.settings["backlog"].value
        if backlog:
            settings["backlog"] = backlog
        settings.update(self.CONFIG_KWARGS)
        self.config = Config(**settings)

    def init_signals(self) -> None:
        # Gunicorn's own worker handlers would turn SIGTERM into an abrupt exit; the server
        # installs its graceful ones when it starts. Keep only SIGUSR1 (reopen log files).
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.siginterrupt(signal.SIGUSR1, False)

    def run(self) -> None:
        """Serve until gunicorn stops this worker."""
        self.config.app = self.wsgi
        server = Server(config=self.config)

        def quick_exit(sig: int, frame: object) -> None:
            # SIGQUIT is gunicorn's "quick shutdown": skip the graceful wait.
            server.should_exit = True
            server.force_exit = True

        signal.signal(signal.SIGQUIT, quick_exit)
        server.run(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    async def callback_notify(self) -> None:
        """Tell the arbiter this worker is alive (gunicorn's ``--timeout``)."""
        self.notify()


class SandmanAsyncioWorker(SandmanWorker):
    """``SandmanWorker`` on the stdlib asyncio loop instead of uvloop."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": "auto"}


def _route_logger(name: str, target: logging.Logger) -> None:
    logger = logging.getLogger(name)
    logger.handlers = target.handlers
    logger.setLevel(target.level)
    logger.propagate = False
