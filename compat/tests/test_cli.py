"""Command line, check selection, profiles and report formats."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from compat.checks import REGISTRY
from compat.checks.base import (
    GROUPS,
    H2,
    H2C,
    HTTP11,
    HTTP11_TLS,
    PROTOCOLS,
    Status,
    Strength,
    select,
)
from compat.cli import bin_dirs_from, comma_list, exit_status, main
from compat.harness.servers import PROFILES, custom_profile, render
from compat.report import as_json, as_markdown, as_text, failing_strict, headline
from compat.runner import Result, RunReport


def test_comma_list() -> None:
    assert comma_list("http, lifespan,,") == ["http", "lifespan"]


def test_select_groups_and_prefixes() -> None:
    chosen = select(REGISTRY, ["http", "lifespan"])
    assert chosen and {c.group for c in chosen} == {"http", "lifespan"}
    assert all(c.id.startswith("http.scope") for c in select(REGISTRY, ["http.scope"]))
    assert select(REGISTRY, []) == REGISTRY


def test_every_check_is_well_formed() -> None:
    ids = [c.id for c in REGISTRY]
    assert len(ids) == len(set(ids))
    for c in REGISTRY:
        assert c.group in GROUPS and c.title and c.source
        assert isinstance(c.strength, Strength)


def test_custom_profile_needs_app_and_port() -> None:
    with pytest.raises(ValueError):
        custom_profile("myserver --port {port}")
    profile = custom_profile("{python} -m myserver {app} --port {port}")
    argv = render(profile.tcp, None, app="a:b", host="127.0.0.1", port="8000")
    assert argv[1:] == ["-m", "myserver", "a:b", "--port", "8000"]


def test_known_profiles_have_placeholders() -> None:
    for profile in PROFILES.values():
        joined = " ".join(profile.tcp)
        assert "{app}" in joined and "{port}" in joined


def test_list_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list", "--only", "lifespan"]) == 0
    out = capsys.readouterr().out
    assert "lifespan.state_copied" in out and "http.scope" not in out
    with pytest.raises(SystemExit):
        main(["--server", "nosuchserver"])
    with pytest.raises(SystemExit):
        main([])


def fake_report() -> RunReport:
    checks = REGISTRY[:3]
    statuses = [Status.PASS, Status.FAIL, Status.NOT_ADVERTISED]
    results = [
        Result(c, s, f"detail {i}") for i, (c, s) in enumerate(zip(checks, statuses, strict=True))
    ]
    return RunReport("fake", "1.0", "fake APP", results, 1.0)


def test_reports() -> None:
    report = fake_report()
    assert "1 not advertised" in headline(report)
    assert [r.status for r in failing_strict(report)] == [Status.FAIL]
    md = as_markdown([report, report], "python -m compat ...")
    assert "| fake | 1.0 |" in md and "**FAIL**" in md and "detail 1" in md
    assert "[     fail     ]" in as_text([report])
    data = json.loads(as_json([report]))
    assert data[0]["results"][1]["status"] == "fail"


FAKE = Path(__file__).with_name("fake_server.py")


def fake_cmd(mode: str) -> str:
    return f"{{python}} {FAKE} {mode} {{port}} {{app}}"


def test_exit_status_rules() -> None:
    must, should = (
        next(c for c in REGISTRY if c.strength is s) for s in (Strength.MUST, Strength.SHOULD)
    )
    ok = RunReport("a", "1", "a", [Result(must, Status.PASS), Result(should, Status.PASS)])
    should_fails = RunReport("b", "1", "b", [Result(should, Status.FAIL)])
    must_crashes = RunReport("c", "1", "c", [Result(must, Status.CRASH)])
    dead = RunReport("d", "1", "d", [Result(must, Status.CRASH)], not_started=["main"])
    assert exit_status([ok], False, []) == 0
    assert exit_status([ok, should_fails], False, []) == 0
    assert exit_status([ok, should_fails], True, []) == 1
    assert exit_status([must_crashes], False, []) == 1
    assert exit_status([must_crashes], False, [must.id]) == 0
    assert exit_status([ok, dead], False, [must.id]) == 3


def test_a_server_that_cannot_start_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--cmd", fake_cmd("exit"), "--only", "http.scope.dict,http.scope.type"])
    assert status == 3
    captured = capsys.readouterr()
    assert "custom: the server could not be started" in captured.err
    assert captured.out.count("server did not start: exited with status 4") == 2


def test_a_failed_must_check_exits_1_unless_expected(capsys: pytest.CaptureFixture[str]) -> None:
    # The fake server answers "ok" without running the probe app: the check fails.
    args = ["--cmd", fake_cmd("ok"), "--only", "http.scope.dict", "--quiet"]
    assert main(args) == 1
    assert main([*args, "--expect-fail", "http.scope.dict"]) == 0
    assert "[     fail     ] http.scope.dict" in capsys.readouterr().out


def test_bin_dirs_per_server() -> None:
    dirs = bin_dirs_from(["/all/bin", "uvicorn-zttp=/venvs/uvicorn/bin"])
    assert dirs == {"": Path("/all/bin"), "uvicorn-zttp": Path("/venvs/uvicorn/bin")}


def test_python_placeholder_follows_the_bin_dir(tmp_path: Path) -> None:
    (tmp_path / "python").symlink_to(sys.executable)
    argv = render(PROFILES["sandman"].tcp, tmp_path, app="a:b", host="h", port="1")
    assert argv[0] == str(tmp_path / "python")
    assert render(PROFILES["sandman"].tcp, None, app="a:b", host="h", port="1")[0] == (
        sys.executable
    )


def test_a_relative_bin_dir_works_from_the_servers_work_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.chdir(tmp_path)
    args = ["--cmd", fake_cmd("ok"), "--bin-dir", "bin", "--only", "http.scope.type", "--quiet"]
    assert main(args) == 1  # started (3 if not), and the fake fails the check
    # The report shows the command as it can be rerun from here.
    assert f"   bin/python {FAKE} ok 0 APP" in capsys.readouterr().out


def test_every_check_names_a_protocol_and_runs_where_it_can() -> None:
    for c in REGISTRY:
        assert c.protocol in PROTOCOLS
        if c.target.own:
            continue  # starts its own servers, as the protocol needs
        assert c.target.tls == (c.protocol in (H2, HTTP11_TLS))
        if c.protocol == H2C:
            assert c.target.http2 and not c.target.tls
    h2c = select(REGISTRY, [], [H2C])
    assert h2c and {c.protocol for c in h2c} == {H2C}
    assert {c.group for c in h2c} >= {"http2", "websocket", "extensions"}
    assert select(REGISTRY, ["http.scope"], [HTTP11_TLS]) == [
        c for c in REGISTRY if c.id == "http.scope.scheme_tls"
    ]


def test_unknown_protocol_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--list", "--protocol", "h3"])
    assert caught.value.code == 2


def test_the_matrix_has_a_section_per_protocol_and_an_http2_column() -> None:
    h1 = next(c for c in REGISTRY if c.protocol == HTTP11)
    h2c_checks = [c for c in REGISTRY if c.protocol == H2C][:2]
    speaks = RunReport(
        "speaks", "1", "s", [Result(h1, Status.PASS)] + [Result(c, Status.PASS) for c in h2c_checks]
    )
    silent = RunReport(
        "silent",
        "1",
        "q",
        [Result(h1, Status.FAIL)]
        + [Result(c, Status.UNSUPPORTED, "no HTTP/2 by prior knowledge") for c in h2c_checks],
    )
    md = as_markdown([speaks, silent])
    assert "| speaks | 1 | 3/3 MUST" in md and "| 2/2 MUST, 0/0 SHOULD" in md
    assert "| silent | 1 |" in md and "does not speak HTTP/2" in md
    h2c_section = md.split("## Checks over h2c")[1].split("## ")[0]
    assert "| check | strength | source | speaks |" in h2c_section
    assert "Not shown (the protocol is unsupported or not set up): silent." in h2c_section
    assert "2 checks over h2c" not in md  # two alike are listed, more are grouped
    data = json.loads(as_json([speaks]))
    assert data[0]["results"][1]["protocol"] == H2C
