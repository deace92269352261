"""``ollamakit report`` and ``ollamakit history``, run as a user runs them (a subprocess),
against a history database filled by the store (``filled_home``: runs A, B, and C that
crashed after two requests)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ollamakit.measure.schema import RunDocument

Home = tuple[Path, list[RunDocument]]
Run = Callable[..., Any]  # the root conftest's run_program: (args, env=...) -> CLIResult

WIDE = {"COLUMNS": "220"}  # rich wraps tables to 80 columns when there is no terminal


def test_report_defaults_to_the_newest_run(run_cli: Run, filled_home: Home) -> None:
    result = run_cli(["report"], env=WIDE)
    assert result.returncode == 0, result.output
    assert "Benchmark report: crashed" in result.stdout
    assert "not finished" in result.stdout
    assert "did not finish" in result.stdout  # summary computed from the two saved rows
    assert "2/2" in result.stdout or "1/1" in result.stdout


def test_report_by_prefix(run_cli: Run, filled_home: Home) -> None:
    result = run_cli(["report", "3f9a"], env=WIDE)
    assert result.returncode == 0, result.output
    out = result.stdout
    assert "Benchmark report: baseline" in out and "3f9a2c7e41d84b0c" in out
    assert "https://ollama-user:***@gpu.example.com" in out
    assert "Summary" in out and "Concurrency" in out and "HTTP 503" in out


def test_ambiguous_and_unknown_ids(run_cli: Run, filled_home: Home) -> None:
    result = run_cli(["report", "7b"], env=WIDE)
    assert result.returncode == 2
    assert "7b01d4e9aa3c5f21" in result.stderr and "7b9e0000c0ffee00" in result.stderr
    result = run_cli(["report", "zzz"], env=WIDE)
    assert result.returncode == 2 and "No saved run matches 'zzz'" in result.stderr
    assert "Traceback" not in result.output


def test_report_outputs(run_cli: Run, filled_home: Home, tmp_path: Path) -> None:
    _, (a, _, _) = filled_home
    html, table = tmp_path / "out" / "run.html", tmp_path / "run.csv"
    result = run_cli(["report", "3f9a", "--output", str(html), "-o", str(table)])
    assert result.returncode == 0, result.output
    assert result.stdout == ""
    assert f"Wrote {html}" in result.stderr and f"Wrote {table}" in result.stderr
    assert html.read_text("utf-8").startswith("<!DOCTYPE html>")
    with table.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(a["results"])


def test_report_format_to_stdout(run_cli: Run, filled_home: Home) -> None:
    _, (a, _, _) = filled_home
    result = run_cli(["report", "3f9a", "--format", "json"])
    assert result.returncode == 0, result.output
    assert orjson.loads(result.stdout) == a  # the store round-trips the document
    result = run_cli(["report", "3f9a", "--format", "md"])
    assert result.stdout.startswith("### Benchmark report: baseline")


def test_report_rejects_an_unknown_extension(
    run_cli: Run, filled_home: Home, tmp_path: Path
) -> None:
    good, bad = tmp_path / "a.md", tmp_path / "a.pdf"
    result = run_cli(["report", "--output", str(good), "--output", str(bad)])
    assert result.returncode == 2
    assert ".json" in result.stderr and ".html" in result.stderr
    assert not good.exists()  # checked before anything was written


def test_report_from_a_json_file(run_cli: Run, doc: RunDocument, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(orjson.dumps(doc))
    result = run_cli(["report", str(path)], env=WIDE)
    assert result.returncode == 0, result.output
    assert "rtx4070 behind nginx" in result.stdout
    path.write_text("{not json")
    result = run_cli(["report", str(path)])
    assert result.returncode == 2 and "Cannot read" in result.stderr


def test_report_and_history_without_a_database(run_cli: Run, isolated_env: Path) -> None:
    result = run_cli(["report"])
    assert result.returncode == 2 and "No saved benchmark runs yet" in result.stderr
    result = run_cli(["history"])
    assert result.returncode == 0 and "No saved benchmark runs yet" in result.stderr
    assert not (isolated_env / "history.sqlite3").exists()  # reading creates nothing


def test_history_lists_newest_first(run_cli: Run, filled_home: Home) -> None:
    result = run_cli(["history"], env=WIDE)
    assert result.returncode == 0, result.output
    out = result.stdout
    positions = [out.index(i) for i in ("7b9e0000c0ffee00", "7b01d4e9aa3c5f21", "3f9a2c7e41d84b0c")]
    assert positions == sorted(positions)
    assert "after driver update" in out and "complete" in out and "not finished" in out
    assert "41/42" in out and "2/2" in out
    limited = run_cli(["history", "--limit", "1"], env=WIDE).stdout
    assert "7b9e0000c0ffee00" in limited and "3f9a2c7e41d84b0c" not in limited


def test_history_model_filter(run_cli: Run, filled_home: Home) -> None:
    out = run_cli(["history", "--model", "qwen2.5-coder"], env=WIDE).stdout
    assert "3f9a2c7e41d84b0c" in out and "7b01d4e9aa3c5f21" in out
    result = run_cli(["history", "--model", "mistral"], env=WIDE)
    assert result.returncode == 0 and "No saved runs with model mistral" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["history", "compare", "3f9a", "7b01"], ["history", "--compare", "3f9a", "7b01"]],
)
def test_history_compare(run_cli: Run, filled_home: Home, args: list[str]) -> None:
    result = run_cli(args, env=WIDE)
    assert result.returncode == 0, result.output
    out = result.stdout
    assert "A 3f9a2c7e41d84b0c" in out and "B 7b01d4e9aa3c5f21" in out
    assert "baseline" in out and "after driver update" in out
    assert "+1" in out or "+2" in out  # eval tok/s about 20 % faster
    assert "Mann-Whitney" in out


def test_history_usage_errors(run_cli: Run, filled_home: Home) -> None:
    for args in (["history", "compare", "3f9a"], ["history", "show"]):
        result = run_cli(args)
        assert result.returncode == 2 and "Usage: ollamakit history" in result.stderr


def test_history_in_traditional_chinese(run_cli: Run, filled_home: Home) -> None:
    result = run_cli(["history", "--lang", "zh-TW"], env=WIDE)
    assert result.returncode == 0
    assert "執行編號" in result.stdout and "完成" in result.stdout
