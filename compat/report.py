"""Turning run reports into text, a markdown matrix, or JSON."""

from __future__ import annotations

import json
import platform
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from compat.checks.base import Status, Strength
from compat.runner import Result, RunReport

SYMBOL = {
    Status.PASS: "pass",
    Status.FAIL: "**FAIL**",
    Status.NOT_ADVERTISED: "not adv.",
    Status.UNSUPPORTED: "unsupported",
    Status.NOT_APPLICABLE: "n/a",
    Status.ERROR: "**error**",
    Status.CRASH: "**crash**",
}
BAD = (Status.FAIL, Status.ERROR, Status.CRASH)


def counts(report: RunReport, strength: Strength | None = None) -> Counter[Status]:
    """How many results of each status (for one strength, or all)."""
    return Counter(
        r.status for r in report.results if strength is None or r.check.strength is strength
    )


def headline(report: RunReport) -> str:
    """'41/45 MUST, 12/14 SHOULD, 9/12 de facto; 3 not advertised, ...'."""
    parts = []
    for strength in Strength:
        c = counts(report, strength)
        judged = c[Status.PASS] + sum(c[s] for s in BAD)
        parts.append(f"{c[Status.PASS]}/{judged} {strength.value}")
    c = counts(report)
    extra = [
        f"{c[s]} {s.value}"
        for s in (Status.NOT_ADVERTISED, Status.UNSUPPORTED, Status.NOT_APPLICABLE)
        if c[s]
    ]
    extra += [f"{c[s]} {s.value}" for s in (Status.ERROR, Status.CRASH) if c[s]]
    return ", ".join(parts) + ("; " + ", ".join(extra) if extra else "")


def failing(report: RunReport, strict: bool = False) -> list[Result]:
    """MUST results (and SHOULD ones when ``strict``) that failed, errored or crashed: what
    makes ``python -m compat`` exit 1."""
    gated = (Strength.MUST, Strength.SHOULD) if strict else (Strength.MUST,)
    return [r for r in report.results if r.status in BAD and r.check.strength in gated]


def failing_strict(report: RunReport) -> list[Result]:
    """MUST and SHOULD results that failed (``--strict``)."""
    return failing(report, strict=True)


def as_text(reports: list[RunReport]) -> str:
    lines = []
    for report in reports:
        lines.append(f"== {report.server} {report.version} ({report.seconds:.1f} s)")
        lines.append(f"   {report.command}")
        for r in report.results:
            detail = f" - {r.detail}" if r.detail else ""
            lines.append(
                f"  [{r.status.value:^14}] {r.check.id:<48} {r.check.strength.value:<8}{detail}"
            )
            if r.status in BAD and r.evidence:
                lines.extend("      | " + line for line in r.evidence.splitlines()[:12])
        lines.append(f"   {headline(report)}")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def as_markdown(reports: list[RunReport], command: str | None = None) -> str:
    out = ["# ASGI server conformance matrix", ""]
    if command:
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out += [
            f"Produced {when} on {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, by:",
            "",
            "```",
            command,
            "```",
            "",
        ]
    out += [
        "| server | version | result | time | command |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in reports:
        out.append(
            f"| {r.server} | {r.version} | {headline(r)} | {r.seconds:.0f} s "
            f"| `{_cell(r.command)}` |"
        )
    out += [
        "",
        "Counts are passed/judged per strength (MUST and SHOULD from the asgiref specs, "
        "de facto = what the major servers do where the spec is silent). `not adv.`: the "
        "server does not advertise the extension or spec version, so the rule does not "
        "bind it; `unsupported`: the whole protocol is missing (the check for the protocol "
        "itself fails); `n/a`: the rule is superseded by what the server advertises, or "
        "the suite cannot set it up for that server.",
        "",
    ]
    names = " | ".join(r.server for r in reports)
    out += [
        f"| check | strength | source | {names} |",
        "| --- | --- | --- | " + " | ".join("---" for _ in reports) + " |",
    ]
    by_id = [{res.check.id: res for res in r.results} for r in reports]
    for res in reports[0].results if reports else []:
        c = res.check
        cells = " | ".join(SYMBOL[m[c.id].status] if c.id in m else "-" for m in by_id)
        out.append(
            f"| `{c.id}`: {_cell(c.title)} | {c.strength.value} | {_cell(c.source)} | {cells} |"
        )
    out += ["", "## Details of failures and non-passes", ""]
    for r in reports:
        notes = [x for x in r.results if x.status is not Status.PASS]
        if not notes:
            continue
        out.append(f"### {r.server} {r.version}")
        out.append("")
        for x in notes:
            out.append(
                f"- `{x.check.id}` ({x.check.strength.value}) {x.status.value}: {_cell(x.detail)}"
            )
        out.append("")
    return "\n".join(out)


def as_json(reports: list[RunReport]) -> str:
    data: list[dict[str, Any]] = []
    for r in reports:
        data.append(
            {
                "server": r.server,
                "version": r.version,
                "command": r.command,
                "seconds": round(r.seconds, 2),
                "headline": headline(r),
                "results": [
                    {
                        "id": x.check.id,
                        "group": x.check.group,
                        "title": x.check.title,
                        "source": x.check.source,
                        "strength": x.check.strength.value,
                        "status": x.status.value,
                        "detail": x.detail,
                        "evidence": x.evidence,
                        "seconds": round(x.seconds, 3),
                    }
                    for x in r.results
                ],
            }
        )
    return json.dumps(data, indent=2)
