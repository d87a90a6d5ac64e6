"""A stand-in "server" for the harness tests: ``fake_server.py MODE PORT``.

``ok``: answers every HTTP request with 200 "ok", and exits with status 7 on ``GET /die``
(a crash); ``silent``: never listens; ``exit``: exits with status 4 at once; ``where``: as
``ok``, after writing its cwd, PYTHONPATH and where it finds the probe app to ``where.json``
in its cwd.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import time


def serve(port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    while True:
        conn, _ = listener.accept()
        conn.settimeout(2.0)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        if data.startswith(b"GET /die "):
            os._exit(7)
        if data:
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        conn.close()


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "exit":
        print("fake server: giving up", flush=True)
        sys.exit(4)
    if mode == "silent":
        time.sleep(60)
        return
    if mode == "where":
        spec = importlib.util.find_spec("compat.probe.app")
        where = {
            "cwd": os.getcwd(),
            "pythonpath": os.environ.get("PYTHONPATH", ""),
            "probe": spec.origin if spec else None,
        }
        with open("where.json", "w") as file:
            json.dump(where, file)
    serve(port)


if __name__ == "__main__":
    main()
