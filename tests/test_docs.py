"""The documentation stays true to the repository: links resolve, nothing points outside the
repository, the README stays short and keeps the commands CI runs, and the README's
benchmark figures are the ones bench/README.md records."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Spelled in two parts so this file does not match itself.
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "/" + "work/"]))


def _tracked(*patterns: str) -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", *patterns],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def test_relative_links_in_markdown_resolve():
    broken = []
    for path in _tracked("*.md"):
        for target in LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (path.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []


def test_no_file_refers_to_a_path_outside_the_repository():
    found = []
    for path in _tracked():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_readme_is_short_and_has_the_two_set_up_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert "\npip install . && sandman sandman_asgi.demo:app\n" in readme
    test_command = "pip install -e '.[test]' && pytest && cargo test --workspace"
    assert f"\n{test_command}\n" in readme
    # CI runs the README's test command (.ci/run says to keep the two in step); there its
    # Rust builds go through .ci/rust-build, which only adds a lock around them.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").replace(".ci/rust-build ", "")
    assert test_command in ci


README_ROWS = {
    "hello world": "hello",
    "2.4 KB HTML page": "fortunes",
    "64 KiB POST echo": "echo64k",
    "1 MiB streamed response": "stream1m",
    "FastAPI JSON route": "fastapi",
    "hello, 16 pipelined requests": "pipeline16",
}


def _rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 2:
            rows[cells[0]] = cells[1:]
    return rows


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of its level."""
    after = text.split(f"\n{heading}\n", 1)[1]
    return after.split("\n## ", 1)[0]


def test_the_readme_quotes_the_current_benchmark_table():
    readme = _rows((ROOT / "README.md").read_text(encoding="utf-8"))
    bench_readme = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    bench = _rows(_section(bench_readme, "## Current results"))
    for name, workload in README_ROWS.items():
        # sandman, uvicorn, granian, hypercorn, nginx: the first five columns of both.
        assert readme[name] == bench[workload][:5], name
