"""The load run as a history document: the bench's :class:`RunDocument`, extended.

A load run is stored and exported exactly like a benchmark run (same store, same ``results``
rows, so ``history``, ``report`` and ``history compare`` work on it), with:

* ``config.kind = "load"`` and the load's own settings (``mode``, ``levels``, ``duration_s``,
  ``ramp_s``, ``think_s``, ``seed``, ``slo``, ``dataset``);
* per request, the extension fields ``level`` (``users=4`` / ``rate=2``), ``phase``
  (``ramp``/``measure``), ``planned_ms`` (planned send time since the level started),
  ``lag_ms`` (actual − planned), ``error_kind`` and, from Locust, ``worker``. ``concurrency``
  is the number of users (closed loop) or 0 (open loop); ``prompt_id`` the dataset item;
* ``load``: ``{"levels": [LevelSummary ...], "answer": Answer, "slo": [...]}``
  (:mod:`ollamakit.load.analysis`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from ollamakit import __version__
from ollamakit.load.analysis import SloTarget, answer, slo_to_json, summarize_levels
from ollamakit.load.engine import NS_PER_MS, LevelRun, Sample
from ollamakit.measure.schema import (
    SCHEMA_VERSION,
    Identity,
    RequestResult,
    RunDocument,
    empty_result,
)
from ollamakit.measure.stats import summary_rows


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def new_document(
    *, run_id: str, label: str | None, base_url: str, version: str | None, config: dict[str, Any]
) -> RunDocument:
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "label": label,
        "status": "running",
        "started_at": now_iso(),
        "finished_at": None,
        "tool": {"name": "ollamakit", "version": __version__},
        "server": {
            "base_url": base_url,
            "version": version,
            "rtt_ms": {"median": None, "p95": None},
        },
        "config": {"kind": "load", **config},
        "results": [],
        "summary": [],
        "hints": [],
    }
    return cast(RunDocument, doc)


def result_of(
    sample: Sample, model: str, run: LevelRun, worker: str | None = None
) -> RequestResult:
    """One request as a history row."""
    request, o = sample.request, sample.outcome
    item = request.item
    level = request.level
    users = int(level.value) if level.kind == "users" else 0
    row = empty_result(
        Identity(
            model, getattr(item, "id", "?"), getattr(item, "category", "?"), request.index, users
        ),
        error=None if o.ok else (o.error or o.error_kind or "error"),
    )
    row.update(
        {
            "ttft_ms": o.ttft_ms,
            "total_ms": o.total_ms,
            "load_ms": o.load_ms,
            "prompt_eval_count": o.prompt_eval_count,
            "prompt_eval_ms": o.prompt_eval_ms,
            "eval_count": o.eval_count,
            "eval_ms": o.eval_ms,
            "prompt_tps": o.prompt_tps,
            "eval_tps": o.eval_tps,
            "tpot_ms": o.tpot_ms,
            "e2e_tps": round(1000 / o.tpot_ms, 6) if o.tpot_ms else None,
        }
    )
    if isinstance(o.extra.get("itl_ms"), dict):
        row["itl_ms"] = o.extra["itl_ms"]
    if o.extra.get("done_reason") is not None:
        row["done_reason"] = o.extra["done_reason"]
    extra = cast(dict[str, Any], row)
    extra["level"] = level.label
    extra["phase"] = sample.phase
    extra["planned_ms"] = round((request.planned_ns - run.started_ns) / NS_PER_MS, 3)
    extra["lag_ms"] = round(sample.lag_ms, 3)
    extra["error_kind"] = o.error_kind
    if worker is not None:
        extra["worker"] = worker
    return row


def finish_document(
    doc: RunDocument,
    runs: Sequence[LevelRun],
    slo: Sequence[SloTarget],
    *,
    interrupted: bool,
) -> RunDocument:
    """Fill in the summaries, the answer and the status."""
    rows = summarize_levels(runs, slo)
    measured = [r for r in doc["results"] if cast(dict[str, Any], r).get("phase") != "ramp"]
    doc["summary"] = summary_rows(measured)
    extra = cast(dict[str, Any], doc)
    extra["load"] = {"levels": rows, "answer": answer(rows, slo), "slo": slo_to_json(slo)}
    doc["status"] = "interrupted" if interrupted else "complete"
    doc["finished_at"] = now_iso()
    return doc


def load_section(doc: RunDocument) -> dict[str, Any] | None:
    section = cast(dict[str, Any], doc).get("load")
    return section if isinstance(section, dict) else None


__all__ = ["finish_document", "load_section", "new_document", "new_run_id", "result_of"]
