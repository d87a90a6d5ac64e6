"""Heap bytes per connection by allocation site, from a heaptrack recording.

Record a server built with the system allocator while N idle connections are open and kill
it there (what is still allocated at the end is what the connections hold); see
docs/memory.md for the whole recipe. Then:

    heaptrack_print -f RECORDING.zst --print-leaks 1 --print-peaks 0 --print-allocators 0 \
        --print-temporary 0 -n 200 > leaks.txt
    python bench/heap_sites.py leaks.txt N

prints every call stack that made at least ~one allocation per connection and still holds
it, as bytes per connection, labelled by the first frame that says what it is, and the sums
for the core (Rust) and for Python objects (with PYTHONMALLOC=malloc every Python object
is a malloc call too).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict

# heaptrack_print writes decimal units (16.38M is 16,384,000 bytes).
UNITS = {"B": 1, "K": 1e3, "M": 1e6, "G": 1e9}
# Frames that name a component, most specific first: (substring, label).
LABELS = [
    ("zlib_rs::deflate", "zlib-rs deflate state"),
    ("zlib_rs::inflate", "zlib-rs inflate state"),
    ("yawc::compression::Deflate", "deflate output buffer"),
    ("yawc::compression::Inflate", "inflate output buffer"),
    ("UpgradeFut", "yawc read/write buffer"),
    ("yawc::", "yawc"),
    ("Buffered$LT$T$C$B$GT$::poll_read_from_io", "hyper read buffer"),
    ("BufList$LT$T$GT$::push", "hyper write queue"),
    ("ResponseDefaults::headers", "response header map (hyper keeps it for the next request)"),
    ("task::core::Cell", "tokio task (the future inline)"),
    ("_core::ws::handshake::serve", "WebSocket handshake/exchange"),
    ("_core::server::conn::serve", "per-request state (service)"),
    ("_core::server::listener::spawn_connection::", "hyper connection (write buffer)"),
    ("_core::server::listener::accept_loop", "Connection (exchange::connection)"),
    ("_core::server::", "server"),
    ("_core::", "core"),
]


def size(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)([BKMG])", text)
    assert m, text
    return float(m.group(1)) * UNITS[m.group(2)]


def parse(path: str) -> list[dict]:
    """Each call stack heaptrack lists under its allocation function: bytes still
    allocated, allocation calls, frames innermost first."""
    entries: list[dict] = []
    inner: list[str] = []
    current: dict | None = None
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"^\s*([\d.]+[BKMG]) leaked over (\d+) calls from(:?)", line)
        if m:
            if m.group(3):  # a caller stack under the allocation frames above it
                current = {"bytes": size(m.group(1)), "calls": int(m.group(2)), "frames": []}
                current["frames"] = list(inner)
                entries.append(current)
            else:
                inner = []
                current = None
            continue
        frame = line.strip()
        if not frame or frame.startswith(("at ", "in ", "and ")):
            continue
        frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
        if current is None:
            inner.append(frame)
        else:
            current["frames"].append(frame)
    return entries


def label(frames: list[str]) -> tuple[str, str]:
    python = any(f.startswith(("_Py", "Py")) for f in frames[:4])
    if python:
        for f in frames:
            if "_core::" in f:
                return "python", "Python object made by the core: " + f.split("::")[-1]
        return "python", "Python object"
    for key, name in LABELS:
        if any(key in f for f in frames):
            return "core", name
    return "core", frames[0][:80] if frames else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("leaks", help="heaptrack_print --print-leaks output")
    parser.add_argument("n", type=int, help="idle connections open when the server was killed")
    args = parser.parse_args()
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for e in parse(args.leaks):
        if e["calls"] < 0.9 * args.n:
            continue  # fewer allocations than connections: not per connection
        per = e["bytes"] / args.n
        if per >= 1:
            sums[label(e["frames"])] += per
    totals: dict[str, float] = defaultdict(float)
    print("| side | what | bytes per connection |")
    print("| --- | --- | ---: |")
    for (side, name), per in sorted(sums.items(), key=lambda kv: -kv[1]):
        totals[side] += per
        if per >= 64:
            print(f"| {side} | {name} | {per:,.0f} |")
    for side, total in totals.items():
        print(f"| {side} | **all of it** (sites under 64 B included) | {total:,.0f} |")


if __name__ == "__main__":
    main()
