"""`eci audit-log`: the proxy's refusals as the admin reads them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from eci.cli.main import app
from eci.engine.layout import EngineLayout

runner = CliRunner()


def _record(n: int) -> dict[str, object]:
    return {
        "time": f"2026-01-01T00:00:0{n}Z",
        "uid": 1000 + n,
        "pid": 40 + n,
        "gid": 1000,
        "method": "POST",
        "route": "/containers/create",
        "rule": "restricted-mount",
        "status": 403,
        "reason": f"enhanced container isolation: can't mount /etc/docker ({n})",
    }


def _write_log(state: Path, lines: list[str]) -> None:
    log = EngineLayout.for_state_dir(state).audit_log
    log.parent.mkdir(parents=True)
    log.write_text("".join(line + "\n" for line in lines))


def test_json_output_keeps_every_record_and_last_n(tmp_path: Path) -> None:
    _write_log(tmp_path, [json.dumps(_record(n)) for n in range(3)])
    every = runner.invoke(app, ["audit-log", "--state-dir", str(tmp_path), "--json"])
    assert every.exit_code == 0, every.output
    assert [r["uid"] for r in json.loads(every.stdout)] == [1000, 1001, 1002]
    last = runner.invoke(app, ["audit-log", "--state-dir", str(tmp_path), "--json", "-n", "1"])
    assert [r["pid"] for r in json.loads(last.stdout)] == [42]


def test_human_output_shows_rule_in_brackets_and_route(tmp_path: Path) -> None:
    _write_log(tmp_path, [json.dumps(_record(1))])
    result = runner.invoke(app, ["audit-log", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "uid=1001 pid=41 POST /containers/create [restricted-mount]" in result.stdout


def test_a_damaged_line_is_reported_not_fatal(tmp_path: Path) -> None:
    _write_log(tmp_path, ["{not json", json.dumps(_record(2))])
    result = runner.invoke(app, ["audit-log", "--state-dir", str(tmp_path), "--json"])
    records = json.loads(result.stdout)
    assert "unreadable line 1" in records[0]["reason"]
    assert records[1]["uid"] == 1002


def test_no_log_yet_says_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit-log", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "no refusals recorded" in result.stdout
