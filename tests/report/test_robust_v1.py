"""Runs saved before issue 9 (schema version 1, none of its fields) stay readable.

``report`` (a file and the history) and ``history`` must render them with the new columns:
what the old run has (output tokens from its results) is shown, what it never measured
(GPU share, client overhead) is "—", never a made-up number and never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ollamakit.measure.schema import RunDocument
from ollamakit.report.common import summary_cell, summary_columns, summary_rows
from ollamakit.store import HistoryStore

from .conftest import make_doc

#: The keys of a version-1 request result (design.md), nothing added later.
V1_RESULT_KEYS = {
    "model", "prompt_id", "category", "run_index", "concurrency", "ok", "error", "ttft_ms",
    "total_ms", "load_ms", "prompt_eval_count", "prompt_eval_ms", "eval_count", "eval_ms",
    "server_total_ms", "prompt_tps", "eval_tps", "tpot_ms", "e2e_tps", "network_ms", "itl_ms",
}  # fmt: skip
V1_SUMMARY_KEYS = {"model", "prompt_id", "category", "concurrency", "n", "ok", "failed"}
V1_SUMMARY_METRICS = {"ttft_ms", "total_ms", "eval_tps", "prompt_tps", "e2e_tps", "tpot_ms"}


def version_1_doc() -> dict[str, Any]:
    doc: dict[str, Any] = dict(make_doc(label="old run", sweep=False))
    doc["schema_version"] = 1
    doc["results"] = [{k: v for k, v in r.items() if k in V1_RESULT_KEYS} for r in doc["results"]]
    doc["summary"] = [
        {k: v for k, v in row.items() if k in V1_SUMMARY_KEYS | V1_SUMMARY_METRICS}
        for row in doc["summary"]
    ]
    for key in ("models", "failure", "concurrency_summary"):
        doc.pop(key, None)
    doc["config"] = {k: v for k, v in doc["config"].items() if k not in ("num_ctx", "cold")}
    return doc


def test_new_columns_read_an_old_summary() -> None:
    doc: RunDocument = version_1_doc()  # type: ignore[assignment]
    rows = summary_rows(doc)
    columns = {c.key: c for c in summary_columns(doc)}
    first = rows[0]
    assert summary_cell(doc, first, columns["tokens"]) == "40"  # from the old run's results
    assert summary_cell(doc, first, columns["gpu"]) == "—"  # never measured then
    assert summary_cell(doc, first, columns["overhead"]) == "—"
    assert summary_cell(doc, first, columns["ok"]) == "3/3"


def test_report_and_history_render_a_version_1_run(
    run_cli: Callable[..., Any], isolated_env: Path, tmp_path: Path
) -> None:
    doc = version_1_doc()
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc), "utf-8")
    for args in ([str(path)], [str(path), "--format", "md"], [str(path), "--format", "html"]):
        result = run_cli(["report", *args])
        assert result.returncode == 0, result.stderr
        assert "llama3.2:3b" in result.stdout and "Traceback" not in result.stderr
    table = run_cli(["report", str(path)]).stdout
    assert "Out tokens" in table and "GPU" in table and "Eval rate tok/s" in table
    md = run_cli(["report", str(path), "--format", "md"]).stdout
    assert "| 40 |" in md  # output tokens, computed from the version-1 results

    store = HistoryStore.open(isolated_env)
    store.begin_run({**doc, "status": "running", "results": []})
    for r in doc["results"]:
        store.add_result(doc["run_id"], r)
    store.finish_run(doc["run_id"], doc)
    store.close()
    history = run_cli(["history"])
    assert history.returncode == 0, history.stderr
    assert doc["run_id"][:8] in history.stdout
    again = run_cli(["report", doc["run_id"][:8]])
    assert again.returncode == 0 and "llama3.2:3b" in again.stdout, again.stderr
