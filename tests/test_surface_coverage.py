"""Keep ``docs/uvicorn-surface-coverage.md`` honest (no servers, standard library only).

That document maps every item of the uvicorn compatibility contract (D-CLI, D-API, D-PROC,
D-LOG, D-HTTP, D-ASGI) to the tests that check it. A table like that rots quietly: a test is
renamed or deleted and the reference dangles, an item is dropped or listed twice, an M item
loses its last test. These checks fail on each of those, so the table stays a true account
of what the suite checks, and an M item without a test has to be listed under "Gaps" in
plain sight. The 46 item IDs and their levels are recorded below, where a change to the
contract is a reviewed change to this file.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "uvicorn-surface-coverage.md"
COMPAT_CHECKS = ROOT / "compat" / "checks"

# The contract's items: ID -> level (M must, S should, N nice to have).
LEVELS: dict[str, str] = {
    "D-CLI-1": "M",
    "D-CLI-2": "M",
    "D-CLI-3": "M",
    "D-CLI-4": "M",
    "D-CLI-5": "S",
    "D-CLI-6": "M",
    "D-API-1": "M",
    "D-API-2": "M",
    "D-API-3": "M",
    "D-API-4": "S",
    "D-API-5": "S",
    "D-API-6": "N",
    "D-PROC-1": "M",
    "D-PROC-2": "M",
    "D-PROC-3": "M",
    "D-PROC-4": "M",
    "D-PROC-5": "M",
    "D-PROC-6": "M",
    "D-PROC-7": "S",
    "D-LOG-1": "M",
    "D-LOG-2": "M",
    "D-LOG-3": "M",
    "D-LOG-4": "S",
    "D-LOG-5": "S",
    "D-HTTP-1": "M",
    "D-HTTP-2": "M",
    "D-HTTP-3": "M",
    "D-HTTP-4": "M",
    "D-HTTP-5": "M",
    "D-HTTP-6": "M",
    "D-HTTP-7": "M",
    "D-HTTP-8": "M",
    "D-HTTP-9": "M",
    "D-HTTP-10": "M",
    "D-HTTP-11": "S",
    "D-HTTP-12": "S",
    "D-HTTP-13": "S",
    "D-ASGI-1": "M",
    "D-ASGI-2": "M",
    "D-ASGI-3": "M",
    "D-ASGI-4": "M",
    "D-ASGI-5": "M",
    "D-ASGI-6": "M",
    "D-ASGI-7": "S",
    "D-ASGI-8": "N",
    "D-ASGI-9": "S",
}

ROW = re.compile(r"^\|\s*(D-[A-Z]+-\d+)\s*\|")
# ``tests/x.py::name`` or ``tests/sub/x.py::name[param-id]``
REF = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)(?:\[([^\]\s]+)\])?")
GAPS_HEADING = re.compile(r"^## Gaps\s*$", re.MULTILINE)
# Main table columns: ID | Level | Item | Checked by | Notes
LEVEL_COLUMN, CHECKED_BY_COLUMN = 1, 3


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _split_doc() -> tuple[str, str]:
    """The document before the Gaps heading, and the Gaps section."""
    text = DOC.read_text(encoding="utf-8")
    match = GAPS_HEADING.search(text)
    assert match, f"{DOC.name} has no '## Gaps' section"
    return text[: match.start()], text[match.end() :]


def _rows(text: str) -> list[list[str]]:
    return [_cells(line) for line in text.splitlines() if ROW.match(line)]


def _table() -> dict[str, list[str]]:
    return {row[0]: row for row in _rows(_split_doc()[0])}


def _gap_ids() -> set[str]:
    return {row[0] for row in _rows(_split_doc()[1])}


def _test_refs(cell: str) -> list[str]:
    return [m.group(0) for m in REF.finditer(cell) if m.group(2).startswith("test")]


def test_every_item_has_exactly_one_row() -> None:
    counts = Counter(row[0] for row in _rows(_split_doc()[0]))
    assert sorted(set(LEVELS) - set(counts)) == [], "items without a row"
    assert sorted(set(counts) - set(LEVELS)) == [], "rows for unknown items"
    assert sorted(i for i, n in counts.items() if n > 1) == [], "items with several rows"


def test_levels_match_the_contract() -> None:
    table = _table()
    wrong = {i: row[LEVEL_COLUMN] for i, row in table.items() if row[LEVEL_COLUMN] != LEVELS[i]}
    assert wrong == {}


def _defines(path: Path, name: str) -> bool:
    pattern = rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\("
    return re.search(pattern, path.read_text(encoding="utf-8"), re.MULTILINE) is not None


def _names_param(path: Path, param: str) -> bool:
    """A parametrize id is spelled as a quoted string in the test file (or, for the compat
    column, in the compat check registry)."""
    sources = [path]
    if path.name == "test_compat_sandman.py":
        sources += sorted(COMPAT_CHECKS.glob("*.py"))
    quoted = (f'"{param}"', f"'{param}'")
    return any(q in source.read_text(encoding="utf-8") for source in sources for q in quoted)


def test_every_test_reference_exists() -> None:
    refs = list(REF.finditer(DOC.read_text(encoding="utf-8")))
    assert refs, "no test references found: has the reference format changed?"
    broken = []
    for match in refs:
        file, name, param = match.groups()
        path = ROOT / file
        if not path.is_file():
            broken.append(f"{match.group(0)}: no file {file}")
        elif not _defines(path, name):
            broken.append(f"{match.group(0)}: no 'def {name}' in {file}")
        elif param is not None and not _names_param(path, param):
            broken.append(f"{match.group(0)}: parameter id {param!r} not found")
    assert broken == []


def test_every_m_item_names_a_test_or_is_a_gap() -> None:
    gaps = _gap_ids()
    missing = [
        i
        for i, row in _table().items()
        if LEVELS[i] == "M" and not _test_refs(row[CHECKED_BY_COLUMN]) and i not in gaps
    ]
    assert missing == []


def test_untested_s_and_n_items_say_why_or_are_gaps() -> None:
    gaps = _gap_ids()
    silent = [
        i
        for i, row in _table().items()
        if LEVELS[i] != "M"
        and not _test_refs(row[CHECKED_BY_COLUMN])
        and not re.search(r"README|docs/\w+\.md", " ".join(row))
        and i not in gaps
    ]
    assert silent == []


def test_gaps_are_known_items_with_a_description() -> None:
    rows = _rows(_split_doc()[1])
    assert sorted(row[0] for row in rows if row[0] not in LEVELS) == []
    assert [row[0] for row in rows if len(row) < 3 or not row[-1]] == []
