"""Reading what the probe app recorded (see ``compat.probe.recorder``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat.probe.encoding import decode
from compat.probe.recorder import token_file

# Record fields that carry tagged values.
_TAGGED = ("scope", "event", "value")


@dataclass
class Trace:
    """The records of one token, in the order they were written."""

    token: str
    records: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Every record of ``kind``."""
        return [r for r in self.records if r["kind"] == kind]

    @property
    def scope(self) -> dict[str, Any] | None:
        """The first recorded scope (``None`` when the app never ran)."""
        scopes = self.of("scope")
        return scopes[0]["scope"] if scopes else None

    @property
    def events(self) -> list[Any]:
        """Every event ``receive()`` returned, in order."""
        return [r["event"] for r in self.of("receive")]

    def sends(self) -> list[dict[str, Any]]:
        """Every ``send`` step outcome (``error`` is ``None`` when send returned)."""
        return self.of("send")

    def send_at(self, index: int) -> dict[str, Any] | None:
        """The outcome of the ``send`` plan step number ``index``."""
        for r in self.of("send"):
            if r.get("index") == index:
                return r
        return None

    @property
    def end(self) -> dict[str, Any] | None:
        """How the app call ended, once it has."""
        ends = self.of("end")
        return ends[0] if ends else None

    def mark(self, name: str) -> dict[str, Any] | None:
        for r in self.of("mark"):
            if r.get("name") == name:
                return r
        return None


class RecordStore:
    """The records of one server run, in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def read(self, token: str) -> Trace:
        """What has been recorded for ``token`` so far."""
        trace = Trace(token)
        path = token_file(str(self.directory), token)
        if not os.path.exists(path):
            return trace
        with open(path, encoding="utf-8") as file:
            for line in file:
                if not line.endswith("\n"):
                    break  # a record still being written
                record = json.loads(line)
                for key in _TAGGED:
                    if key in record:
                        record[key] = decode(record[key])
                trace.records.append(record)
        return trace

    def wait(self, token: str, until: Callable[[Trace], bool], timeout: float) -> Trace:
        """Poll until ``until(trace)`` holds or ``timeout`` passes; returns the last trace
        either way (the caller decides whether a partial trace is a failure)."""
        deadline = time.monotonic() + timeout
        while True:
            trace = self.read(token)
            if until(trace) or time.monotonic() >= deadline:
                return trace
            time.sleep(0.02)

    def wait_end(self, token: str, timeout: float = 5.0) -> Trace:
        """Wait until the app call for ``token`` has ended."""
        return self.wait(token, lambda t: t.end is not None, timeout)
