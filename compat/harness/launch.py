"""Starting a server for a target: a free endpoint, a fresh record directory, readiness;
with TLS, a certificate made for the run."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from compat.harness.certs import TLSFiles, make_tls_files
from compat.harness.endpoint import LOOPBACK, Endpoint, free_port, wait_accepting
from compat.harness.process import ServerProcess
from compat.harness.records import RecordStore
from compat.harness.servers import ServerProfile, render

# The probe apps the server under test imports (standard library only).
PROBE_PACKAGE = Path(__file__).resolve().parent.parent / "probe"


def probe_import_path(workroot: Path) -> Path:
    """A folder holding only ``compat/probe`` (a copy), for the server's ``PYTHONPATH``.

    The server gets this and nothing else from here: putting the folder above ``compat/`` on
    its path would also put whatever sits next to ``compat/`` there (in a source checkout,
    the unbuilt sources of the server being tested), shadowing the server that is installed.
    A copy also works when the server runs in another virtualenv than the suite.
    """
    root = workroot / "import-path"
    target = root / "compat" / "probe"
    if not target.is_dir():
        target.mkdir(parents=True)
        (root / "compat" / "__init__.py").write_text('"""The probe apps only (a copy)."""\n')
        for source in PROBE_PACKAGE.glob("*.py"):
            shutil.copyfile(source, target / source.name)
    return root


class ServerStartError(Exception):
    """The server exited or never accepted a connection."""

    def __init__(self, message: str, log_tail: str = "", returncode: int | None = None):
        super().__init__(message)
        self.log_tail = log_tail
        self.returncode = returncode


class NotConfigurable(Exception):
    """The profile does not say how to set up what the target needs."""


@dataclass
class RunningServer:
    process: ServerProcess
    endpoint: Endpoint
    records: RecordStore
    workdir: Path
    stop_signal: int = signal.SIGINT  # the server's graceful-stop signal
    tls: TLSFiles | None = None  # the certificate it serves, when it listens with TLS

    def stop(self, sig: int | None = None, grace: float = 8.0) -> int | None:
        return self.process.stop(sig if sig is not None else self.stop_signal, grace)


class Launcher:
    """Starts servers of one profile; every process it started is stopped by ``close()``."""

    def __init__(self, profile: ServerProfile, bin_dir: Path | None, workroot: Path) -> None:
        self.profile = profile
        self.bin_dir = bin_dir
        self.workroot = workroot
        self.startup_timeout = 20.0
        self._count = 0
        self._started: list[ServerProcess] = []
        self._socket_dirs: list[str] = []
        self._tls: TLSFiles | None = None

    def tls_files(self) -> TLSFiles:
        """The run's certificate and key (made on first use)."""
        if self._tls is None:
            self._tls = make_tls_files(self.workroot / "tls")
        return self._tls

    def argv(
        self,
        app: str,
        endpoint: Endpoint,
        root_path: str | None,
        tls: TLSFiles | None = None,
        http2: bool = False,
    ) -> list[str]:
        profile = self.profile
        if endpoint.uds is not None:
            if profile.uds is None:
                raise NotConfigurable(f"no unix-socket command known for {profile.name}")
            argv = render(profile.uds, self.bin_dir, app=app, path=endpoint.uds)
        else:
            argv = render(
                profile.tcp, self.bin_dir, app=app, host=endpoint.host, port=str(endpoint.port)
            )
        if root_path is not None:
            if profile.root_path is None:
                raise NotConfigurable(f"no root-path option known for {profile.name}")
            argv += [a.format(root_path=root_path) for a in profile.root_path]
        if tls is not None:
            if profile.tls is None:
                raise NotConfigurable(f"no TLS options known for {profile.name}")
            files = {"certfile": str(tls.certfile), "keyfile": str(tls.keyfile)}
            argv += [a.format(**files) for a in profile.tls]
        if http2:
            argv += list(profile.http2)
        return argv

    def start(
        self,
        app: str = "compat.probe.app:app",
        env: dict[str, str] | None = None,
        uds: bool = False,
        root_path: str | None = None,
        ready: bool = True,
        tls: bool = False,
        http2: bool = False,
    ) -> RunningServer:
        """Start a server; with ``ready`` wait until it accepts connections. ``tls`` serves
        the run's certificate; ``http2`` adds the profile's options that turn HTTP/2 on."""
        if tls and self.profile.tls is None:
            raise NotConfigurable(f"no TLS options known for {self.profile.name}")
        files = self.tls_files() if tls else None
        self._count += 1
        workdir = self.workroot / f"{self.profile.name}-{self._count}"
        workdir.mkdir(parents=True)
        if uds:
            # AF_UNIX paths are short (108 bytes): keep the socket in a short temp dir.
            sockdir = tempfile.mkdtemp(prefix="compat-")
            self._socket_dirs.append(sockdir)
            endpoint = Endpoint(uds=os.path.join(sockdir, "s.sock"))
        else:
            endpoint = Endpoint(LOOPBACK, free_port())
        argv = self.argv(app, endpoint, root_path, files, http2)
        records = RecordStore(workdir / "records")
        full_env = dict(os.environ)
        full_env.update(dict(self.profile.env))
        import_path = probe_import_path(self.workroot)
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(import_path), full_env.get("PYTHONPATH", "")) if p
        )
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env["COMPAT_RECORD_DIR"] = str(records.directory)
        full_env.update(env or {})
        # The exact command, for whoever reads a failure in a kept work directory.
        (workdir / "command.txt").write_text(" ".join(argv) + "\n")
        # The work directory as cwd: `python -m` puts the cwd on the import path too.
        process = ServerProcess(argv, workdir / "server.log", env=full_env, cwd=workdir)
        self._started.append(process)
        server = RunningServer(process, endpoint, records, workdir, self.profile.stop_signal, files)
        if ready:
            self.wait_ready(server)
        return server

    def wait_ready(self, server: RunningServer, timeout: float | None = None) -> None:
        """Wait until the server accepts; on failure stop it and raise ``ServerStartError``."""
        limit = timeout if timeout is not None else self.startup_timeout
        if wait_accepting(server.endpoint, limit, server.process.alive):
            return
        code = server.process.returncode
        server.stop(grace=2.0)
        reason = (
            f"exited with status {code} before accepting connections"
            if code is not None
            else f"did not accept connections within {limit:.0f} s"
        )
        raise ServerStartError(reason, server.process.log_tail(), code)

    def close(self) -> None:
        """Stop whatever is still running (normally nothing); remove socket directories."""
        for process in self._started:
            if process.alive():
                process.stop(grace=3.0)
            else:
                process.kill_group()
        for sockdir in self._socket_dirs:
            shutil.rmtree(sockdir, ignore_errors=True)
