"""Side-by-side benchmark: Sandman and its peers, same apps, same machine, one run.

Each server runs one worker pinned to CPU 0 (``taskset -c 0``); ``wrk`` runs pinned to CPU 1.
For every workload and server: start the server, check that the server answering is the
one started (its ``server`` header), warm up, measure, record req/s, p50/p99 latency,
errors and the server's peak RSS, stop it by PID. Peers are installed into their own
virtualenv (``--venv``) on first use. Results: a table on stdout and ``bench/RESULTS.md``
(ignored by git: the current table lives in bench/README.md, its history in git).

Usage: python bench/run.py [--servers sandman,uvicorn,granian] [--workloads hello,fortunes]
       [--duration 8] [--conns 128] [--out bench/RESULTS.md] [--access-log]
       [--baseline-python PATH]
``--servers sandman,baseline --baseline-python OTHER_VENV/bin/python`` runs an A/B: the
``baseline`` server is Sandman as installed for that interpreter (another build, say the one
before a change), measured in the same rounds and reported as sandman/baseline.
``--variant NAME=FLAGS`` (repeatable) adds a server NAME that is Sandman with FLAGS added
("{port}" becomes a free port): ``--servers sandman,metrics --variant "metrics=--metrics-port
{port}"`` measures the metrics listener's cost in the same rounds (sandman/metrics).
Needs: wrk, taskset, curl (Debian: wrk util-linux curl); nginx-light for the nginx ceiling.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ["uvicorn[standard]==0.54.0", "granian==2.8.7", "hypercorn==0.18.0", "fastapi"]


@dataclass
class Workload:
    name: str
    app: str
    path: str
    wrk_script: str | None = None  # lua body for POST / pipelining
    nginx_file: str | None = None  # static file nginx serves for this workload
    needs_fastapi: bool = False
    ws_message: int = 0  # > 0: a WebSocket echo workload with messages of this size
    # Extra flags for Sandman: "{www}" is a directory holding nginx's files, "{port}" a free
    # port (for --metrics-port).
    sandman_flags: tuple[str, ...] = ()
    nginx_sendfile: bool = False  # nginx as Debian configures it: sendfile on, tcp_nopush on


def post_script(kib: int) -> str:
    """A wrk script that POSTs a body of ``kib`` KiB (also used by ab.py and rss_check.py)."""
    return (
        'wrk.method = "POST"\n'
        f'wrk.body = string.rep("x", {kib * 1024})\n'
        'wrk.headers["Content-Type"] = "application/octet-stream"\n'
    )


PIPELINE_SCRIPT = """
init = function(args)
  local depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil, wrk.path) end
  req = table.concat(r)
end
request = function() return req end
"""

WORKLOADS = {
    "hello": Workload("hello", "apps:hello", "/", nginx_file="hello"),
    "fortunes": Workload("fortunes", "apps:fortunes", "/", nginx_file="index.html"),
    "echo64k": Workload("echo64k", "apps:echo", "/", wrk_script=post_script(64)),
    "stream1m": Workload("stream1m", "apps:stream", "/", nginx_file="stream"),
    "fastapi": Workload("fastapi", "apps:api", "/json", needs_fastapi=True),
    # A file the app names (http.response.pathsend where offered, as Starlette's
    # FileResponse does; read in chunks by Python elsewhere).
    "pathsend10k": Workload("pathsend10k", "apps:pathsend", "/10k"),
    "pathsend1m": Workload("pathsend1m", "apps:pathsend", "/1m"),
    "ws16": Workload("ws16", "apps:ws_echo", "/", ws_message=16),
    "ws64k": Workload("ws64k", "apps:ws_echo", "/", ws_message=64 * 1024),
    "pipeline16": Workload(
        "pipeline16", "apps:hello", "/", wrk_script=PIPELINE_SCRIPT, nginx_file="hello"
    ),
    # Answered by Sandman's core without the app: the page and a 1 MiB file from a static
    # mount, against nginx serving the same files (with sendfile, as Debian configures it).
    "static_page": Workload(
        "static_page",
        "apps:hello",
        "/static/index.html",
        nginx_file="index.html",
        sandman_flags=("--static", "/static={www}"),
        nginx_sendfile=True,
    ),
    "static1m": Workload(
        "static1m",
        "apps:hello",
        "/static/stream",
        nginx_file="stream",
        sandman_flags=("--static", "/static={www}"),
        nginx_sendfile=True,
    ),
    # A FastAPI route marked Cache-Control: public, max-age=60 (with --cache-size, in a
    # --variant, answered from Sandman's response cache).
    "fastapi_public": Workload("fastapi_public", "apps:api", "/public", needs_fastapi=True),
}

VARIANTS: dict[str, tuple[str, ...]] = {}
"""``--variant`` servers: Sandman with these flags added."""


def is_sandman(server: str) -> bool:
    return server in ("sandman", "baseline") or server in VARIANTS


@dataclass
class Result:
    server: str
    workload: str
    rps: float | None
    p50: str
    p99: str
    errors: str
    rss_mib: float | None
    note: str = ""
    cpu_us: float | None = None  # server CPU time (user + sys) per request, all its processes
    client_cpu: float | None = None  # the client's CPU time over its run, % of its one core


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run(
        [str(python), "-c", "import uvicorn, granian, hypercorn, fastapi, uvloop, httptools"],
        capture_output=True,
    )
    if probe.returncode != 0:
        print(f"installing peers into {venv} ...", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS], check=True)
    return venv / "bin"


def server_command(
    server: str,
    app: str,
    port: int,
    peer_bin: Path,
    io_threads: int,
    ws: bool = False,
    access_log: bool = False,
    python: str = sys.executable,
    extra: list[str] | None = None,
) -> list[str]:
    # With --access-log every server writes one line per request to its stdout (a file,
    # see run_one); the access loggers log at INFO, so the level has to let them through.
    level = ["--log-level", "info" if access_log else "warning"]
    if is_sandman(server):
        return [
            python,
            "-m",
            "sandman_asgi",
            app,
            "--port",
            str(port),
            *level,
            *([] if access_log else ["--no-access-log"]),
            *(extra or []),
        ]
    if server == "uvicorn":
        return [
            str(peer_bin / "uvicorn"),
            app,
            "--port",
            str(port),
            *level,
            *([] if access_log else ["--no-access-log"]),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ]
    if server == "granian":
        return [
            str(peer_bin / "granian"),
            "--interface",
            "asgi",
            app,
            "--port",
            str(port),
            *level,
            *(["--access-log"] if access_log else []),
            *([] if ws else ["--no-ws"]),
            "--workers",
            "1",
            "--runtime-threads",
            "1",
        ]
    if server == "hypercorn":
        return [
            str(peer_bin / "hypercorn"),
            app,
            "-b",
            f"127.0.0.1:{port}",
            *level,
            *(["--access-logfile", "-"] if access_log else []),
        ]
    raise ValueError(server)


def static_root() -> tuple[Path, Path]:
    """A temporary directory with the files nginx serves (and Sandman's static mounts): the
    directory to remove afterwards, and the files' directory."""
    sys.path.insert(0, str(HERE))
    import apps  # noqa: PLC0415

    root = Path(tempfile.mkdtemp(prefix="sandman-bench-static-"))
    root.chmod(0o755)  # nginx workers run as an unprivileged user: they must reach the files
    www = root / "www"
    www.mkdir(mode=0o755)
    (www / "index.html").write_bytes(apps.FORTUNES)
    (www / "hello").write_bytes(b"Hello, world!")
    (www / "stream").write_bytes(apps.STREAM_CHUNK * apps.STREAM_CHUNKS)
    return root, www


def nginx_setup(
    port: int, access_log: bool = False, sendfile: bool = False
) -> tuple[list[str], Path]:
    root, www = static_root()
    conf = root / "nginx.conf"
    access = f"access_log {root}/access.log" if access_log else "access_log off"
    files = "sendfile on; tcp_nopush on; " if sendfile else ""
    conf.write_text(
        f"worker_processes 1; daemon off; pid {root}/pid; error_log {root}/err.log;\n"
        "events { worker_connections 4096; }\n"
        "http { %s; %sserver { listen 127.0.0.1:%d; root %s; "
        "keepalive_requests 1000000; location = /hello { default_type text/plain; } } }\n"
        % (access, files, port, www)
    )
    return ["nginx", "-c", str(conf)], root


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 20) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        r = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-D", "-", f"http://127.0.0.1:{port}{path}"],
            capture_output=True,
            text=True,
        )
        if r.returncode == 0 and r.stdout.startswith("HTTP/"):
            m = re.search(r"(?im)^server:\s*(.+?)\s*$", r.stdout)
            return m.group(1) if m else "none"
        time.sleep(0.2)
    return None


def group_pids(pid: int) -> list[int]:
    """The server and every process it started (granian and nginx run workers)."""
    try:
        children = subprocess.run(
            ["pgrep", "-g", str(pid)], capture_output=True, text=True
        ).stdout.split()
        return sorted({pid, *map(int, children)})
    except FileNotFoundError:
        return [pid]


def group_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by the server's processes."""
    ticks = 0
    for p in group_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_us_per_request(cpu_before: float, pid: int, rps: float | None, secs: int) -> float | None:
    if not rps:
        return None
    return (group_cpu_seconds(pid) - cpu_before) / (rps * secs) * 1e6


class ClientCpu:
    """The load generator's share of its core over one run: user + system CPU time of the
    children reaped while it ran (the client is the only child that exits then), over the
    wall time. Near 100%, the client and not the server set the pace and the latency."""

    def __init__(self) -> None:
        self.percent: float | None = None
        self._cpu = self._wall = 0.0

    def __enter__(self) -> ClientCpu:
        self._cpu, self._wall = self._children_cpu(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._wall
        if wall > 0:
            self.percent = (self._children_cpu() - self._cpu) / wall * 100

    @staticmethod
    def _children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime


def peak_rss_mib(pid: int) -> float | None:
    total = 0
    for p in group_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1) if total else None


def parse_wrk(out: str) -> tuple[float | None, str, str, str]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = []
    m = re.search(r"Socket errors: (.*)", out)
    if m:
        errors.append("socket " + m.group(1).strip())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors.append(f"non-2xx {m.group(1)}")
    return (
        float(rps.group(1)) if rps else None,
        p50.group(1) if p50 else "-",
        p99.group(1) if p99 else "-",
        "; ".join(errors) or "0",
    )


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


@dataclass
class Launched:
    """A server started for one workload and answering as itself."""

    server: str
    proc: subprocess.Popen
    port: int
    path: str
    log: Any
    tmp_root: Path | None = None

    def close(self) -> None:
        stop(self.proc)
        self.log.close()
        if self.tmp_root:
            shutil.rmtree(self.tmp_root, ignore_errors=True)


def launch(
    server: str, wl: Workload, args: argparse.Namespace, peer_bin: Path
) -> Launched | Result:
    """Start ``server`` for ``wl`` on CPU ``--server-cpu``; a failure Result if it cannot
    serve (or another server answers)."""
    port = free_port()
    tmp_root = None
    if server == "nginx":
        if not wl.nginx_file:
            return Result(server, wl.name, None, "-", "-", "-", None, "n/a")
        cmd, tmp_root = nginx_setup(port, args.access_log, wl.nginx_sendfile)
        path = "/" + wl.nginx_file
    else:
        flags: list[str] = []
        wanted = (*wl.sandman_flags, *VARIANTS.get(server, ()))
        if is_sandman(server) and wanted:
            www = ""
            if any("{www}" in f for f in wanted):
                tmp_root, www_dir = static_root()
                www = str(www_dir)
            flags = [f.format(www=www, port=free_port()) for f in wanted]
        cmd = server_command(
            server,
            wl.app,
            port,
            peer_bin,
            args.io_threads,
            ws=wl.ws_message > 0,
            access_log=args.access_log,
            python=args.baseline_python if server == "baseline" else sys.executable,
            extra=flags,
        )
        path = wl.path
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    log = open(HERE / f".bench-{server}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        ["taskset", "-c", args.server_cpu, *cmd],
        cwd=HERE,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    launched = Launched(server, proc, port, path, log, tmp_root)
    answered = wait_ready(port, path, proc)
    expected = (
        "sandman"
        if is_sandman(server)
        else {
            "uvicorn": "uvicorn",
            "granian": "granian",
            "hypercorn": "hypercorn",
            "nginx": "nginx",
        }[server]
    )
    if answered is None or expected not in answered.lower():
        launched.close()
        return Result(
            server, wl.name, None, "-", "-", "-", None, f"not ready / wrong server ({answered})"
        )
    return launched


def load_command(wl: Workload, args: argparse.Namespace, at: Launched, conns: int) -> list[str]:
    """The client for ``wl`` against ``at`` on CPU ``--client-cpu``, without its duration
    (wrk: add ``-dNs URL [-- args]``; see ``timed``)."""
    if wl.ws_message:
        return ["taskset", "-c", args.client_cpu, str(WSBENCH), f"ws://127.0.0.1:{at.port}/", "64"]
    wrk = ["taskset", "-c", args.client_cpu, "wrk", "-t1", f"-c{conns}", "--latency"]
    if wl.wrk_script:
        script = HERE / f".bench-{wl.name}.lua"
        script.write_text(wl.wrk_script)
        wrk += ["-s", str(script)]
    return wrk


def timed(wl: Workload, command: list[str], at: Launched, seconds: int, warmup: int) -> list[str]:
    """``command`` running for ``seconds`` (wsbench: after ``warmup`` of its own)."""
    if wl.ws_message:
        return [*command, str(seconds), str(wl.ws_message), str(warmup)]
    url = f"http://127.0.0.1:{at.port}{at.path}"
    script_args = ["--", wl.name.removeprefix("pipeline")] if wl.name.startswith("pipeline") else []
    return [*command, f"-d{seconds}s", url, *script_args]


def result_of(
    wl: Workload, at: Launched, out: str, cpu_before: float, seconds: int, client: float | None
) -> Result:
    """The measurement ``out`` (wrk's or wsbench's report) as a Result."""
    if wl.ws_message:
        try:
            data = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return Result(at.server, wl.name, None, "-", "-", "-", None, "wsbench failed")
        rps = data["messages_per_sec"]
        p50, p99 = f"{data['p50_us'] / 1000:.2f}ms", f"{data['p99_us'] / 1000:.2f}ms"
        errors = str(data["errors"])
    else:
        rps, p50, p99, errors = parse_wrk(out)
        if wl.name.startswith("pipeline"):
            # wrk times a pipelined batch as one request and reports the rest as 0 µs:
            # its latency columns mean nothing here.
            p50 = p99 = "n/a"
    cpu_us = cpu_us_per_request(cpu_before, at.proc.pid, rps, seconds)
    return Result(
        at.server, wl.name, rps, p50, p99, errors, peak_rss_mib(at.proc.pid), "", cpu_us, client
    )


def run_one(
    server: str, wl: Workload, args: argparse.Namespace, peer_bin: Path, conns: int
) -> Result:
    launched = launch(server, wl, args, peer_bin)
    if isinstance(launched, Result):
        return launched
    try:
        command = load_command(wl, args, launched, conns)
        if wl.ws_message:
            # wsbench warms up itself; its CPU window spans warm-up and measurement.
            seconds = args.duration + args.warmup
        else:
            seconds = args.duration
            warm = timed(wl, command, launched, args.warmup, 0)
            subprocess.run(warm, capture_output=True, timeout=120)
        cpu_before = group_cpu_seconds(launched.proc.pid)
        with ClientCpu() as client:
            out = subprocess.run(
                timed(wl, command, launched, args.duration, args.warmup),
                capture_output=True,
                text=True,
                timeout=args.duration + args.warmup + 300,
            ).stdout
        return result_of(wl, launched, out, cpu_before, seconds, client.percent)
    finally:
        launched.close()


def run_together(
    servers: list[str], wl: Workload, args: argparse.Namespace, peer_bin: Path, conns: int
) -> list[Result]:
    """Every server started and loaded at the same time, sharing the server CPU (each with
    its own client on the client CPU): whatever else runs on the machine slows them alike,
    so their ratio holds on a busy machine where runs one after another do not."""
    started = [launch(server, wl, args, peer_bin) for server in servers]
    live = [s for s in started if isinstance(s, Launched)]
    try:
        commands = [load_command(wl, args, at, conns) for at in live]
        if not wl.ws_message:
            warm = [
                subprocess.Popen(timed(wl, c, at, args.warmup, 0), stdout=subprocess.DEVNULL)
                for c, at in zip(commands, live, strict=True)
            ]
            for w in warm:
                w.wait(timeout=120)
        seconds = args.duration + (args.warmup if wl.ws_message else 0)
        before = [group_cpu_seconds(at.proc.pid) for at in live]
        loads = [
            subprocess.Popen(
                timed(wl, c, at, args.duration, args.warmup), stdout=subprocess.PIPE, text=True
            )
            for c, at in zip(commands, live, strict=True)
        ]
        outs = [load.communicate(timeout=args.duration + args.warmup + 300)[0] for load in loads]
        measured = {
            at.server: result_of(wl, at, out, cpu, seconds, None)
            for at, out, cpu in zip(live, outs, before, strict=True)
        }
        return [measured[s.server] if isinstance(s, Launched) else s for s in started]
    finally:
        for at in live:
            at.close()


WSBENCH = HERE / "wsbench" / "target" / "release" / "wsbench"


def build_wsbench() -> None:
    if not WSBENCH.exists():
        subprocess.run(
            [
                "cargo",
                "build",
                "--release",
                "--manifest-path",
                str(HERE / "wsbench" / "Cargo.toml"),
            ],
            check=True,
        )


def fmt_rps(v: float | None) -> str:
    return f"{v / 1000:.1f}k" if v else "—"


RATIO_PEERS = ("baseline", "uvicorn", "granian", "nginx")


def ratio_peers() -> tuple[str, ...]:
    """Whom Sandman's req/s is divided by: the peers, and every --variant."""
    return RATIO_PEERS + tuple(VARIANTS)


def round_ratios(ours: list[Result], theirs: list[Result]) -> list[float]:
    """Sandman's req/s divided by the peer's in the same round, for each round both completed.

    The tables quote the median of these. The machine's speed drifts by 20-30% over
    minutes; a ratio taken within one round cancels most of that drift, where dividing two
    independently taken medians does not (both are written out, with every round's ratio).
    """
    return [a.rps / b.rps for a, b in zip(ours, theirs, strict=False) if a.rps and b.rps]


def fmt_ratios(pairs: list[float]) -> str:
    """Per-round ratios, in run order."""
    return ", ".join(f"{p:.2f}" for p in pairs)


def latency_ms(text: str) -> float | None:
    """wrk's latency figure ("850.00us", "43.94ms", "1.20s") in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def round_p99s(rounds: list[Result]) -> list[float | None]:
    """Each round's p99 in ms, in run order."""
    return [latency_ms(r.p99) for r in rounds]


def fmt_p99s(values: list[float | None]) -> str:
    """Per-round p99s in ms, in run order ("—" for a round wrk gave none)."""
    return ", ".join("—" if v is None else f"{v:.1f}" for v in values)


def total_errors(rounds: list[Result]) -> str:
    """Errors summed over every round (the median round alone could hide some)."""
    counts = [r.errors for r in rounds if r.errors.isdigit()]
    return str(sum(int(c) for c in counts)) if counts else rounds[0].errors


def render(
    results: list[Result],
    ratios: dict[tuple[str, str], list[float]],
    p99s: dict[tuple[str, str], list[float | None]],
    args: argparse.Namespace,
    command: str,
) -> str:
    servers = list(dict.fromkeys(r.server for r in results))
    workloads = list(dict.fromkeys(r.workload for r in results))
    peers = [p for p in ratio_peers() if p in servers and "sandman" in servers]
    by = {(r.server, r.workload): r for r in results}
    lines = [
        f"Measured {datetime.date.today()} on {platform.node()} ({os.cpu_count()} CPUs), "
        f"Python {platform.python_version()}. Server on CPU {args.server_cpu}, wrk on CPU "
        f"{args.client_cpu}, 1 thread; {args.conns} connections (WebSocket: 64); "
        f"{args.warmup} s warm-up, {args.duration} s measured; each req/s figure the median of "
        f"{args.rounds} interleaved round(s), each ratio the median of the per-round ratios "
        "(sandman and the peer in the same round). Workloads marked @N ran with N connections. "
        + (
            "Access logs on: every server wrote a line per request to a file."
            if args.access_log
            else "Access logs off."
        ),
        "",
        f"Command: `{command}`",
        "",
        "| workload | " + " | ".join(servers + [f"sandman/{p}" for p in peers]) + " |",
        "| --- | " + " | ".join("---:" for _ in servers + peers) + " |",
    ]
    for w in workloads:
        cells = [fmt_rps(by[(s, w)].rps) if (s, w) in by else "—" for s in servers]
        for peer in peers:
            pairs = ratios.get((w, peer))
            cells.append(f"{statistics.median(pairs):.2f}x" if pairs else "—")
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Every round's ratio (in run order), so the medians above can be checked; the last"
        " column divides the two median req/s instead, which carries the drift between rounds.",
        "",
        "| workload | ratio | per round | median | ratio of medians |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for w in workloads:
        for peer in peers:
            pairs = ratios.get((w, peer))
            ours, theirs = by.get(("sandman", w)), by.get((peer, w))
            if not pairs or not ours or not theirs or not ours.rps or not theirs.rps:
                continue
            lines.append(
                f"| {w} | sandman/{peer} | {fmt_ratios(pairs)} |"
                f" {statistics.median(pairs):.2f}x | {ours.rps / theirs.rps:.2f}x |"
            )
    if args.rounds > 1:
        lines += [
            "",
            "p99 latency of every round (ms, in run order). The p99 in the last table is the"
            " median-req/s round's; one 6-second round's p99 moves by 2x between rounds on this"
            " machine, so the median of the rounds is written out too, and how many rounds"
            " Sandman's p99 was at or below granian's in the same round.",
            "",
            "| workload | server | per round | median | rounds <= granian's |",
            "| --- | --- | --- | ---: | ---: |",
        ]
        for w in workloads:
            ours = p99s.get((w, "sandman"), [])
            theirs = p99s.get((w, "granian"), [])
            for server in servers:
                values = p99s.get((w, server), [])
                known = [v for v in values if v is not None]
                if not known:
                    continue  # nginx has no echo or FastAPI route
                median = f"{statistics.median(known):.1f}"
                won = "—"
                if server == "sandman" and theirs:
                    pairs = [
                        (a, b)
                        for a, b in zip(ours, theirs, strict=False)
                        if a is not None and b is not None
                    ]
                    won = f"{sum(a <= b for a, b in pairs)} of {len(pairs)}"
                lines.append(f"| {w} | {server} | {fmt_p99s(values)} | {median} | {won} |")
    lines += [
        "",
        "Server CPU µs/request: the server's user + system CPU time over the measured window"
        " divided by the requests it served (all its processes). Where this times req/s comes"
        " near 1,000,000 (one whole core), the server was the bottleneck. Client CPU: the"
        " load generator's own CPU time over its run as a share of its one core; near 100%,"
        " the client set the pace, and the latency columns measure it as much as the server.",
        "",
        "| workload | server | req/s | p50 | p99 | errors (all rounds) | peak RSS MiB |"
        " server CPU µs/req | client CPU |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        rps = f"{r.rps:,.0f}" if r.rps else r.note or "—"
        rss = f"{r.rss_mib}" if r.rss_mib else "—"
        cpu = f"{r.cpu_us:.1f}" if r.cpu_us else "—"
        client = f"{r.client_cpu:.0f}%" if r.client_cpu is not None else "—"
        lines.append(
            f"| {r.workload} | {r.server} | {rps} | {r.p50} | {r.p99} | {r.errors} | {rss}"
            f" | {cpu} | {client} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="sandman,uvicorn,granian")
    parser.add_argument("--workloads", default="hello,fortunes,echo64k")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--conns", default="128", help="comma list, e.g. 128,1000")
    parser.add_argument("--rounds", type=int, default=1, help="median of N interleaved runs")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--io-threads", type=int, default=1)
    parser.add_argument("--venv", default=os.environ.get("BENCH_VENV", str(HERE / ".bench-venv")))
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument(
        "--together",
        action="store_true",
        help="each round, run every server at once on the server CPU (see run_together)",
    )
    parser.add_argument(
        "--baseline-python",
        help="the interpreter whose installed Sandman the 'baseline' server runs (an A/B)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        help="NAME=FLAGS: a server NAME that is Sandman with FLAGS added (repeatable)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="run every server with its access log on, written to a file (default: off)",
    )
    args = parser.parse_args()

    from sandman_asgi import _core

    if _core.build_profile != "release":
        print("refusing to benchmark a debug build of sandman_asgi._core", file=sys.stderr)
        return 2
    for tool in ("wrk", "taskset", "curl"):
        if not shutil.which(tool):
            print(f"missing {tool} (apt-get install wrk util-linux curl)", file=sys.stderr)
            return 2
    servers = args.servers.split(",")
    if "baseline" in servers and not args.baseline_python:
        print("the baseline server needs --baseline-python", file=sys.stderr)
        return 2
    if "nginx" in servers and not shutil.which("nginx"):
        print("missing nginx (apt-get install nginx-light)", file=sys.stderr)
        return 2
    for spec in args.variant or []:
        name, _, flags = spec.partition("=")
        VARIANTS[name.strip()] = tuple(flags.split())
    own = {"sandman", "baseline", "nginx", *VARIANTS}
    peer_bin = ensure_venv(Path(args.venv)) if set(servers) - own else Path()
    if any(WORKLOADS[w].ws_message for w in args.workloads.split(",")):
        build_wsbench()
    results = []
    print(
        f"{'workload':<12} {'server':<10} {'req/s':>10} {'p50':>9} {'p99':>9}  errors  rss"
        "  cpu-us/req  client-cpu",
        flush=True,
    )
    conns_list = [int(c) for c in str(args.conns).split(",")]
    ratios: dict[tuple[str, str], list[float]] = {}
    p99s: dict[tuple[str, str], list[float | None]] = {}
    for conns in conns_list:
        for name in args.workloads.split(","):
            wl = WORKLOADS[name]
            if wl.ws_message and conns != conns_list[0]:
                continue  # WebSocket runs use 64 connections whatever --conns says
            label = wl.name if conns == conns_list[0] else f"{wl.name}@{conns}"
            runs: dict[str, list[Result]] = {s: [] for s in servers}
            for k in range(args.rounds):
                # Each round starts with the next server, so none always runs first or
                # right after a peer that left the machine hot.
                order = servers[k % len(servers) :] + servers[: k % len(servers)]
                if args.together:
                    for result in run_together(order, wl, args, peer_bin, conns):
                        runs[result.server].append(result)
                    continue
                for server in order:
                    runs[server].append(run_one(server, wl, args, peer_bin, conns))
            for peer in ratio_peers():
                pairs = round_ratios(runs.get("sandman", []), runs.get(peer, []))
                ratios[(label, peer)] = pairs
                if pairs:
                    print(
                        f"{label:<12} sandman/{peer} per round: {fmt_ratios(pairs)}",
                        flush=True,
                    )
            for server in servers:
                p99s[(label, server)] = round_p99s(runs[server])
                if args.rounds > 1 and any(v is not None for v in p99s[(label, server)]):
                    cells = fmt_p99s(p99s[(label, server)])
                    print(f"{label:<12} {server} p99 per round (ms): {cells}", flush=True)
                ordered = sorted(runs[server], key=lambda r: r.rps or 0.0)
                r = ordered[len(ordered) // 2]
                r.workload = label
                r.errors = total_errors(runs[server])
                results.append(r)
                rps = f"{r.rps:,.0f}" if r.rps else (r.note or "FAIL")
                print(
                    f"{label:<12} {server:<10} {rps:>10} {r.p50:>9} {r.p99:>9}"
                    f"  {r.errors}  {r.rss_mib}  {r.cpu_us and round(r.cpu_us, 1)}"
                    f"  {'-' if r.client_cpu is None else f'{r.client_cpu:.0f}%'}",
                    flush=True,
                )
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    Path(args.out).write_text(
        "# Benchmark results\n\n" + render(results, ratios, p99s, args, command.strip())
    )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
