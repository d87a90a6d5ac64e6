"""Turning run reports into text, a markdown matrix, or JSON."""

from __future__ import annotations

import json
import platform
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from compat.checks.base import H2, H2C, HTTP11, HTTP11_TLS, PROTOCOLS, Status, Strength
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
# The matrix's sections, one per protocol the checks talk.
SECTIONS = {
    HTTP11: "over HTTP/1.x (plain connections)",
    HTTP11_TLS: "over HTTP/1.1 with TLS (ALPN http/1.1)",
    H2C: "over h2c (HTTP/2 by prior knowledge, plain connections)",
    H2: "over h2 (HTTP/2 over TLS, ALPN h2)",
}
HTTP2 = (H2C, H2)
NOT_BINDING = (Status.NOT_ADVERTISED, Status.UNSUPPORTED, Status.NOT_APPLICABLE)


def results_over(report: RunReport, protocols: tuple[str, ...] | None) -> list[Result]:
    return [r for r in report.results if protocols is None or r.check.protocol in protocols]


def counts(
    report: RunReport,
    strength: Strength | None = None,
    protocols: tuple[str, ...] | None = None,
) -> Counter[Status]:
    """How many results of each status (for one strength, or all; over some protocols)."""
    return Counter(
        r.status
        for r in results_over(report, protocols)
        if strength is None or r.check.strength is strength
    )


def speaks(report: RunReport, protocols: tuple[str, ...]) -> bool:
    """Whether any check over ``protocols`` found something to judge or advertised."""
    return any(
        r.status not in (Status.UNSUPPORTED, Status.NOT_APPLICABLE)
        for r in results_over(report, protocols)
    )


def headline(report: RunReport, protocols: tuple[str, ...] | None = None) -> str:
    """'41/45 MUST, 12/14 SHOULD, 9/12 de facto; 3 not advertised, ...' (of the checks over
    ``protocols``, or all)."""
    parts = []
    for strength in Strength:
        c = counts(report, strength, protocols)
        judged = c[Status.PASS] + sum(c[s] for s in BAD)
        parts.append(f"{c[Status.PASS]}/{judged} {strength.value}")
    c = counts(report, protocols=protocols)
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
                f"  [{r.status.value:^14}] {r.check.id:<48} {r.check.strength.value:<8} "
                f"{r.check.protocol:<12}{detail}"
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
        "| server | version | result (all) | HTTP/2 (h2c and h2) | time | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in reports:
        h2 = headline(r, HTTP2) if speaks(r, HTTP2) else "does not speak HTTP/2"
        out.append(
            f"| {r.server} | {r.version} | {headline(r)} | {h2} | {r.seconds:.0f} s "
            f"| `{_cell(r.command)}` |"
        )
    out += [
        "",
        "Counts are passed/judged per strength (MUST and SHOULD from the asgiref specs, "
        "de facto = what the major servers do where the spec is silent). `not adv.`: the "
        "server does not advertise the extension or spec version, so the rule does not "
        "bind it; `unsupported`: the whole protocol is missing (the check for the protocol "
        "itself fails; HTTP/2 and WebSockets over HTTP/2 are optional, so nothing fails "
        "for them); `n/a`: the rule is superseded by what the server advertises, or "
        "the suite cannot set it up for that server.",
        "",
    ]
    by_id = [{res.check.id: res for res in r.results} for r in reports]
    checks = [res.check for res in reports[0].results] if reports else []
    for protocol in PROTOCOLS:
        chosen = [c for c in checks if c.protocol == protocol]
        if not chosen:
            continue
        # A server that does not speak the protocol at all gets a line, not a column.
        shown = [i for i, r in enumerate(reports) if speaks(r, (protocol,))]
        hidden = [reports[i].server for i in range(len(reports)) if i not in shown]
        out += [f"## Checks {SECTIONS[protocol]}", ""]
        if hidden:
            out += [
                f"Not shown (the protocol is unsupported or not set up): {', '.join(hidden)}.",
                "",
            ]
        if not shown:
            continue
        names = " | ".join(reports[i].server for i in shown)
        out += [
            f"| check | strength | source | {names} |",
            "| --- | --- | --- | " + " | ".join("---" for _ in shown) + " |",
        ]
        for c in chosen:
            cells = " | ".join(
                SYMBOL[by_id[i][c.id].status] if c.id in by_id[i] else "-" for i in shown
            )
            out.append(
                f"| `{c.id}`: {_cell(c.title)} | {c.strength.value} | {_cell(c.source)} | {cells} |"
            )
        out.append("")
    out += ["## Details of failures and non-passes", ""]
    for r in reports:
        notes = [x for x in r.results if x.status is not Status.PASS]
        if not notes:
            continue
        out.append(f"### {r.server} {r.version}")
        out.append("")
        out += _details(notes)
        out.append("")
    return "\n".join(out)


def _details(notes: list[Result]) -> list[str]:
    """One line per result; results left unjudged for one reason (a protocol the server
    does not speak) share a line."""
    lines: list[str] = []
    grouped: dict[tuple[str, Status, str], list[Result]] = {}
    for x in notes:
        if x.status in NOT_BINDING:
            grouped.setdefault((x.check.protocol, x.status, x.detail), []).append(x)
    done: set[int] = set()
    for x in notes:
        if id(x) in done:
            continue
        group = grouped.get((x.check.protocol, x.status, x.detail), [x])
        if len(group) > 2:
            done.update(id(g) for g in group)
            lines.append(
                f"- {len(group)} checks over {x.check.protocol} (`{group[0].check.id}` ... "
                f"`{group[-1].check.id}`) {x.status.value}: {_cell(x.detail)}"
            )
            continue
        lines.append(
            f"- `{x.check.id}` ({x.check.strength.value}, {x.check.protocol}) "
            f"{x.status.value}: {_cell(x.detail)}"
        )
    return lines


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
                        "protocol": x.check.protocol,
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
