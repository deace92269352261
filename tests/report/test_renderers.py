"""JSON, CSV and Markdown renderers, and write_output's file handling."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from ollamakit.errors import UsageError
from ollamakit.i18n import set_language
from ollamakit.measure.schema import RunDocument
from ollamakit.report import output_format, render, write_output
from ollamakit.report.common import compute_summary, fmt_num
from ollamakit.report.csv import COLUMNS

CANARY = "CANARY-pw-5518"


def test_json_is_exactly_the_document(doc: RunDocument, tmp_path: Path) -> None:
    path = tmp_path / "out" / "deeper" / "run.json"  # parent directories are created
    write_output(doc, path)
    text = path.read_text("utf-8")
    assert orjson.loads(text) == doc
    assert text.startswith('{\n  "schema_version": 1,\n  "run_id": ')  # indent 2, key order kept
    assert "NaN" not in text and "Infinity" not in text


def test_json_nulls_stay_null(doc: RunDocument) -> None:
    data = orjson.loads(render(doc, "json"))
    failed = next(r for r in data["results"] if not r["ok"])
    assert failed["ttft_ms"] is None and failed["itl_ms"] == {"p50": None, "p95": None, "p99": None}


def test_csv_has_one_row_per_request(doc: RunDocument, tmp_path: Path) -> None:
    write_output(doc, tmp_path / "run.csv")
    with (tmp_path / "run.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(doc["results"])
    assert list(rows[0])[: len(COLUMNS)] == list(COLUMNS)
    first, source = rows[0], doc["results"][0]
    assert first["run_id"] == doc["run_id"]
    assert first["model"] == source["model"] and first["ok"] == "true"
    assert float(first["ttft_ms"]) == source["ttft_ms"]  # full precision
    assert float(first["itl_p95_ms"]) == source["itl_ms"]["p95"]
    assert float(first["itl_p99_ms"]) == source["itl_ms"]["p99"]
    failed = next(r for r in rows if r["ok"] == "false")
    assert failed["ttft_ms"] == "" and failed["itl_p50_ms"] == ""
    assert failed["error"].startswith("HTTP 503")


def test_csv_keeps_unknown_fields_and_defuses_formulas(doc: RunDocument) -> None:
    results: list[Any] = [dict(r) for r in doc["results"][:2]]
    results[0]["gpu_temp_c"] = 71
    results[1]["model"] = '=HYPERLINK("http://evil")'
    text = render(cast(RunDocument, {**doc, "results": results}), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["gpu_temp_c"] == "71" and rows[1]["gpu_temp_c"] == ""
    assert rows[1]["model"].startswith("'=")


def _md_tables(text: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            current.append([c.strip() for c in cells])
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_markdown_tables_are_well_formed(doc: RunDocument) -> None:
    text = render(doc, "md")
    tables = _md_tables(text)
    assert len(tables) == 3  # summary, concurrency, cold loads
    for table in tables:
        width = len(table[0])
        assert all(len(row) == width for row in table), table
        assert all(re.fullmatch(r":--|--:", cell) for cell in table[1])
    summary = tables[0]
    assert summary[0][:2] == ["Model", "Prompt"]
    assert len(summary) == 2 + len(doc["summary"])
    ok = summary[0].index("OK/n")
    assert summary[2][0] == "`llama3.2:3b`" and summary[2][ok] == "3/3"
    assert any(row[ok] == "2/3" for row in summary)
    for header in ("E2E ms", "Out tokens", "Eval rate tok/s", "Client decode tok/s", "GPU"):
        assert header in summary[0]  # the terminal's columns (issue 11)
    assert "**Server** `https://ollama-user:***@gpu.example.com`" in text
    assert "Ollama version** 0.6.2" in text and "1.84 ms (p95 3.10 ms)" in text
    assert "HTTP 503" in text  # the failure, with its error text
    assert "OLLAMA_NUM_PARALLEL" in text  # the hint (intraword "_" is not escaped)


def test_markdown_tells_an_already_loaded_model_from_a_cold_load(doc: RunDocument) -> None:
    doc["cold_loads"] = [
        {"model": "llama3.2:3b", "load_ms": 2143.7},
        {"model": "qwen2.5-coder:7b", "load_ms": 2.26},  # already in memory (keep-alive)
    ]
    md = render(doc, "md")
    cold = md.split("#### Cold loads", 1)[1].split("####", 1)[0]
    rows = [line for line in cold.splitlines() if line.startswith("| `")]
    assert rows == ["| `llama3.2:3b` | 2,144 |"]
    assert "Already in memory, so no cold load was measured: qwen2.5-coder:7b (2.26 ms)" in cold

    doc["cold_loads"] = doc["cold_loads"][1:]  # nothing was loaded: no table, just the note
    cold = render(doc, "md").split("#### Cold loads", 1)[1].split("####", 1)[0]
    assert "| " not in cold and "qwen2.5-coder:7b (2.26 ms)" in cold


def test_markdown_escapes_untrusted_text(doc_factory: Callable[..., RunDocument]) -> None:
    doc = doc_factory(models=["evil|model<script>alert(1)</script>"], sweep=False)
    doc["results"][1]["ok"] = False
    doc["results"][1]["error"] = "bad | pipe <img src=x onerror=alert(1)> *bold*\nsecond line"
    text = render(doc, "md")
    outside_code = re.sub(r"`[^`]*`", "", text.replace("\\|", ""))
    assert not re.search(r"(?<!\\)<", outside_code), outside_code  # only escaped "\<" left
    assert "`evil\\|model<script>alert(1)</script>`" in text  # literal text in a code span
    for table in _md_tables(text):
        assert all(len(row) == len(table[0]) for row in table)
    assert "\\<img src=x onerror=alert(1)\\> \\*bold\\* second line" in text


def test_markdown_in_traditional_chinese(doc: RunDocument) -> None:
    set_language("zh-TW")
    text = render(doc, "md")
    assert "| 模型 | 提示詞 |" in text and "伺服器" in text


def test_a_run_without_summary_gets_one_computed(doc: RunDocument) -> None:
    partial = cast(RunDocument, {**doc, "summary": [], "status": "running"})
    text = render(partial, "md")
    assert "did not finish" in text
    assert len(_md_tables(text)[0]) == 2 + len(compute_summary(doc["results"]))


@pytest.mark.parametrize("name", ["run.pdf", "run", "run.txt", "report.JSON.bak"])
def test_unknown_extension_names_the_known_ones(
    name: str, doc: RunDocument, tmp_path: Path
) -> None:
    with pytest.raises(UsageError) as info:
        write_output(doc, tmp_path / "out" / name)
    message = str(info.value)
    assert all(ext in message for ext in (".json", ".csv", ".md", ".html"))
    assert not (tmp_path / "out").exists()


def test_extensions_are_case_insensitive() -> None:
    assert [output_format(Path(p)) for p in ("a.JSON", "b.Md", "c.htm", "d.markdown", "-")] == [
        "json",
        "md",
        "html",
        "md",
        "json",
    ]


def test_write_is_atomic_and_replaces(doc: RunDocument, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "run.md"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_output(doc, path)
    assert path.read_text("utf-8").startswith("### Benchmark report")
    assert path.stat().st_mode & 0o777 == 0o640  # the mode of the file it replaced
    assert [p.name for p in path.parent.iterdir()] == ["run.md"]  # no temporary left behind


def test_write_failure_is_a_usage_error(doc: RunDocument, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="Could not write"):
        write_output(doc, blocker / "run.json")


@pytest.mark.parametrize("fmt", ["json", "csv", "md", "html"])
def test_no_renderer_lets_a_password_through(fmt: str, doc: RunDocument) -> None:
    leaky: Any = orjson.loads(orjson.dumps(doc))
    leaky["server"]["base_url"] = f"https://ollama-user:{CANARY}@gpu.example.com"
    leaky["results"][3]["ok"] = False
    leaky["results"][3]["error"] = f"401 from https://ollama-user:{CANARY}@gpu.example.com"
    leaky["hints"].append(f"check ollama-user:{CANARY}@gpu.example.com")
    text = render(leaky, fmt)
    assert CANARY not in text
    assert "ollama-user:***@gpu.example.com" in text


def test_number_formatting() -> None:
    assert fmt_num(float("nan")) == "—" and fmt_num(float("inf")) == "—"
    assert fmt_num(True) == "—"
