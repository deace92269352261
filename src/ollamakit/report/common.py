"""What every renderer shares: number formatting, the run's header facts, summary access.

Renderers (terminal tables, Markdown, CSV, HTML) read only the :class:`RunDocument`. The
helpers here keep them consistent: the same precision for the same metric everywhere, ``—``
for a value that is not known (``null``), and the same header facts in the same order.

:func:`summary_rows` returns the document's own ``summary``; a run that never finished (the
process was killed) has none, so one is computed from the saved requests instead, with the
same definitions (median and p95 of the successful requests of each model × prompt ×
concurrency cell; linear-interpolated percentiles).
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast

from ollamakit.i18n import t
from ollamakit.measure import format as fmt
from ollamakit.measure import stats as metrics
from ollamakit.measure.schema import (
    ConcurrencyRow,
    LoadInfo,
    MetricSummary,
    ModelFacts,
    RequestResult,
    RunDocument,
    SummaryRow,
)
from ollamakit.report.runstatus import doc_status

DASH: Final = "—"


Stat = Literal["median", "p95", "mean", "stdev"]


# ---------------------------------------------------------------------------------------------
# Numbers


def is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


#: The one formatter per unit lives in :mod:`ollamakit.measure.format`; these are its names here.
fmt_num = fmt.number
fmt_duration = fmt.duration


def fmt_pct(change: float | None) -> str:
    """A relative change: ``+12.3%``, ``-4.0%``, ``—``."""
    return fmt.percent(change, signed=True)


def fmt_int(value: object) -> str:
    return f"{int(cast(float, value)):,}" if is_number(value) else DASH


def change(old: float | None, new: float | None) -> float | None:
    """Relative change from ``old`` to ``new`` (0.1 = 10 % more); None when not computable."""
    if old is None or new is None or old == 0:
        return None
    return (new - old) / abs(old)


def fmt_time(iso: str | None) -> str:
    """An ISO-8601 timestamp for people: ``2025-03-01 14:05:09 UTC``.

    >>> fmt_time("2025-03-01T14:05:09.123456+00:00")
    '2025-03-01 14:05:09 UTC'
    >>> fmt_time("2025-03-01T22:05:09+08:00")
    '2025-03-01 22:05:09 +08:00'
    >>> fmt_time(None), fmt_time("yesterday")
    ('—', 'yesterday')
    """
    if not iso:
        return DASH
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    offset = when.utcoffset()
    if offset is None:
        return text
    if not offset:
        return f"{text} UTC"
    zone = when.strftime("%z")
    return f"{text} {zone[:3]}:{zone[3:]}"


def duration_s(start: str | None, end: str | None) -> float | None:
    try:
        if start and end:
            return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (ValueError, TypeError):
        pass
    return None


# ---------------------------------------------------------------------------------------------
# The run's header


def status_text(status: str) -> str:
    key = f"report.status_{status}"
    try:
        return t(key)
    except KeyError:
        return status


def rtt_text(doc: RunDocument) -> str:
    rtt = doc["server"].get("rtt_ms") or {}
    median, p95 = rtt.get("median"), rtt.get("p95")
    if not is_number(median):
        return DASH
    if is_number(p95):
        return t("report.rtt_value", median=fmt_num(median), p95=fmt_num(p95))
    return f"{fmt_num(median)} ms"


def config_items(doc: RunDocument) -> list[tuple[str, str]]:
    """The run's settings as ``(option, value)``; lists of models and prompts are left out
    (the tables show them)."""
    items: list[tuple[str, str]] = []
    for key, value in cast(Mapping[str, Any], doc.get("config") or {}).items():
        if key in ("models", "prompts"):
            continue
        if isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, dict):  # per model (think_sent): "gpt-oss:20b=low, qwen3=false"
            text = ", ".join(
                f"{k}={str(v).lower() if isinstance(v, bool) or v is None else v}"
                for k, v in value.items()
            )
        elif value is None:
            text = DASH
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float) and value.is_integer():
            text = str(int(value))
        else:
            text = str(value)
        items.append((str(key), text))
    return items


#: The catalogue keys of the run settings' names: English keeps the option names people type
#: (``runs 3``, ``num_predict 256``), zh-TW names them in Chinese (the HTML chips, headers).
_CONFIG_LABELS: Final = {
    "runs": "report.config_runs",
    "warmup": "report.config_warmup",
    "concurrency": "report.config_concurrency",
    "num_predict": "report.config_num_predict",
    "seed": "report.config_seed",
    "suite": "report.config_suite",
    "timeout_s": "report.config_timeout_s",
    "temperature": "report.config_temperature",
}


def config_label(key: str) -> str:
    """A run setting's name in the current language (unknown keys as they are).

    >>> config_label("runs"), config_label("think")
    ('runs', 'think')
    """
    label = _CONFIG_LABELS.get(key)
    return t(label) if label else key


def config_text(doc: RunDocument) -> str:
    return " · ".join(f"{config_label(k)} {v}" for k, v in config_items(doc)) or DASH


def header_facts(doc: RunDocument) -> list[tuple[str, str]]:
    """The labelled facts every report starts with, translated, in a fixed order."""
    server = doc["server"]
    facts = [
        (t("report.server"), server.get("base_url") or DASH),
        (t("report.ollama_version"), server.get("version") or DASH),
        (t("report.rtt"), rtt_text(doc)),
        (t("report.started"), fmt_time(doc.get("started_at"))),
        (
            t("report.duration"),
            fmt_duration(duration_s(doc.get("started_at"), doc.get("finished_at"))),
        ),
        (t("report.status"), doc_status(doc).text),  # "complete, 30 failed"
        (t("report.run_id"), doc.get("run_id", DASH)),
    ]
    tool = doc.get("tool") or {}
    if tool:
        facts.append(
            (t("report.tool"), f"{tool.get('name', 'ollamakit')} {tool.get('version', '')}")
        )
    return facts


def title(doc: RunDocument) -> str:
    label = doc.get("label")
    return t("report.title_label", label=label) if label else t("report.title")


# ---------------------------------------------------------------------------------------------
# Summary access


def metric(row: Mapping[str, Any], name: str, stat: Stat = "median") -> float | None:
    """``row[name][stat]`` when it is a finite number, else None."""
    block = row.get(name)
    value = block.get(stat) if isinstance(block, Mapping) else None
    return float(cast(float, value)) if is_number(value) else None


def summarize_values(values: Iterable[object]) -> MetricSummary:
    """Median, p95, mean, stdev of the numbers among ``values`` (the benchmark's own method)."""
    return metrics.summarize(float(cast(float, v)) for v in values if is_number(v))


def compute_summary(results: list[RequestResult]) -> list[SummaryRow]:
    """Summary rows from the requests, exactly as the benchmark computes them at the end of a
    run (used for a run that never finished, whose document has no summary)."""
    return metrics.summary_rows(results)


def summary_rows(doc: RunDocument) -> list[SummaryRow]:
    """The document's summary, or one computed from its results when it has none.

    A run saved before a summary field existed (``eval_count``, ``client_overhead_ms``,
    ``buffered``...) gets it from its results, where they hold it; otherwise it stays absent
    and shows as —.
    """
    results = doc.get("results") or []
    if not doc.get("summary"):
        return compute_summary(results)
    rows = list(doc["summary"])
    if results and any("eval_count" not in row for row in rows):
        computed = {
            (r.get("model"), r.get("prompt_id"), r.get("concurrency")): r
            for r in compute_summary(results)
        }
        merged: list[SummaryRow] = []
        for row in rows:
            extra = computed.get((row.get("model"), row.get("prompt_id"), row.get("concurrency")))
            merged.append(cast(SummaryRow, {**(extra or {}), **row}))
        rows = merged
    return rows


def summary_is_computed(doc: RunDocument) -> bool:
    return not doc.get("summary") and bool(doc.get("results"))


def concurrency_levels(doc: RunDocument) -> list[int]:
    levels = {int(row.get("concurrency", 1)) for row in summary_rows(doc)}
    return sorted(levels) or [1]


def base_rows(doc: RunDocument) -> list[SummaryRow]:
    """Summary rows at the lowest concurrency of each model: the single-user picture."""
    rows = summary_rows(doc)
    lowest: dict[str, int] = {}
    for row in rows:
        level = int(row.get("concurrency", 1))
        model = row.get("model", "")
        lowest[model] = min(level, lowest.get(model, level))
    return [r for r in rows if int(r.get("concurrency", 1)) == lowest[r.get("model", "")]]


def concurrency_rows(doc: RunDocument) -> list[ConcurrencyRow]:
    return list(doc.get("concurrency_summary") or [])


def model_order(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(str(row.get("model", "")), None)
    return list(seen)


def per_model_eval_tps(doc: RunDocument) -> list[tuple[str, float | None]]:
    """Median decode rate (eval tok/s) of each model over all its successful single-user
    requests, best first; models with no value last."""
    rows = base_rows(doc)
    wanted = {(r.get("model"), r.get("prompt_id"), r.get("concurrency", 1)) for r in rows}
    values: dict[str, list[float]] = {m: [] for m in model_order(rows)}
    for result in doc.get("results") or []:
        key = (result["model"], result["prompt_id"], result.get("concurrency", 1))
        if key in wanted and result.get("ok") and is_number(result.get("eval_tps")):
            values.setdefault(result["model"], []).append(float(cast(float, result["eval_tps"])))
    out: list[tuple[str, float | None]] = []
    for model, numbers in values.items():
        if numbers:
            out.append((model, statistics.median(numbers)))
        else:  # no per-request data (a summary-only document): median of the cell medians
            cells = [metric(r, "eval_tps") for r in rows if r.get("model") == model]
            known = [c for c in cells if c is not None]
            out.append((model, statistics.median(known) if known else None))
    return sorted(out, key=lambda item: (item[1] is None, -(item[1] or 0.0)))


#: The load time below which a model's first request did not load it: it was already in
#: memory (a second run within the server's keep-alive). A loaded model still reports a
#: ``load_duration`` — the few milliseconds the server takes to find its runner: about 5 ms in
#: Ollama's API documentation, 2.26 ms in the review that found a warm model listed as a cold
#: load. A real load starts a runner process and maps the weights into memory, which takes
#: hundreds of milliseconds even for a small model. 50 ms is an order of magnitude from both.
WARM_LOAD_MS: Final = 50.0


def already_loaded(load: Mapping[str, Any]) -> bool:
    """Whether a ``cold_loads`` entry is in fact a model that was already in memory.

    >>> already_loaded({"load_ms": 2.26}), already_loaded({"load_ms": 2143.7})
    (True, False)
    >>> already_loaded({"load_ms": None})  # unknown (the warm-up failed): not claimed either way
    False
    """
    value = load.get("load_ms")
    return is_number(value) and float(cast(float, value)) < WARM_LOAD_MS


def cold_loads(doc: RunDocument) -> tuple[list[LoadInfo], list[LoadInfo]]:
    """The document's ``cold_loads`` split into (real or unknown cold loads, already loaded)."""
    loads = doc.get("cold_loads") or []
    return (
        [x for x in loads if not already_loaded(x)],
        [x for x in loads if already_loaded(x)],
    )


def failures(doc: RunDocument) -> list[RequestResult]:
    return [r for r in doc.get("results") or [] if not r.get("ok")]


def ok_of(row: Mapping[str, Any]) -> str:
    return f"{row.get('ok', 0)}/{row.get('n', 0)}"


def shorten(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters with an ellipsis.

    >>> shorten("hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M", 24)
    'hf.co/bartowski/Llama-3…'
    """
    return text if len(text) <= width else text[: width - 1] + "…"


#: Where a model runs, as ``ollama ps`` says it: one formatter, in :mod:`ollamakit.measure.format`.
FULL_GPU_SHARE = fmt.FULL_GPU_SHARE
gpu_text = fmt.gpu


# ---------------------------------------------------------------------------------------------
# The summary's columns: one set, the same in every format (issue 11)


@dataclass(frozen=True, slots=True)
class SummaryColumn:
    """One number column of the summary table. ``detail`` columns are the ones a narrow
    terminal moves to a second table; Markdown, HTML and a wide terminal show them all."""

    key: str  # machine name: "ttft", "total", ...
    label_key: str  # the i18n key of its header (one key per label, reused everywhere)
    detail: bool = False

    @property
    def label(self) -> str:
        return t(self.label_key)


#: In order. ``eval_rate`` is the server's ``eval_count / eval_duration`` (``ollama run
#: --verbose``'s "eval rate"); ``decode`` is the client's rate (``e2e_tps``); side by side.
SUMMARY_COLUMNS: Final = (
    SummaryColumn("ttft", "report.col_ttft_median"),
    SummaryColumn("total", "report.col_total_ms"),
    SummaryColumn("tokens", "report.col_tokens"),
    SummaryColumn("eval_rate", "report.col_eval_tps"),
    SummaryColumn("decode", "report.col_e2e_tps"),
    SummaryColumn("ok", "report.col_ok"),
    SummaryColumn("prefill", "report.col_prompt_tps", detail=True),
    SummaryColumn("overhead", "report.col_overhead_ms", detail=True),
    SummaryColumn("gpu", "report.col_gpu", detail=True),
)
#: Shown only when some model thought before answering: the thinking apart from the answer's
#: TTFT (which stays the time to the first *answer* text).
THINKING_COLUMN: Final = SummaryColumn("thinking", "report.col_thinking_ms")
#: Shown only when some reply ended by Ollama's repeat guard (its own outcome, issue 9 #10).
CLEAN_EOF_COLUMN: Final = SummaryColumn("clean_eof", "report.col_clean_eof", detail=True)


def summary_columns(doc: RunDocument) -> list[SummaryColumn]:
    """The summary's number columns for this run (every renderer uses exactly these)."""
    columns = list(SUMMARY_COLUMNS)
    rows = summary_rows(doc)
    if any(metric(row, "thinking_ms") is not None for row in rows):
        columns.insert(1, THINKING_COLUMN)  # right after the answer's TTFT
    if any(int(row.get("clean_eof") or 0) for row in rows):
        columns.append(CLEAN_EOF_COLUMN)
    return columns


def model_facts(doc: RunDocument) -> dict[str, ModelFacts]:
    """The document's ``models`` section by name (empty for runs before it existed)."""
    return {m.get("model", ""): m for m in doc.get("models") or []}


def gpu_of(doc: RunDocument, model: str) -> str:
    """ "100% GPU", "63% GPU", "CPU", or — when the run did not learn where it ran."""
    facts = model_facts(doc).get(model)
    share = facts.get("gpu_share") if facts else None
    # A compared run says why a server has none (bench/compare.py: "no /api/ps" on /v1).
    absent = cast(Mapping[str, Any], facts or {}).get("residency_absent")
    if share is None and isinstance(absent, str):
        with contextlib.suppress(KeyError):
            return t(f"report.servers_gpu_{absent}")
    return gpu_text(share)


def summary_cell(doc: RunDocument, row: Mapping[str, Any], column: SummaryColumn) -> str:
    """The text of one summary cell: the same in the terminal, Markdown and HTML.

    A TTFT that a buffering proxy made meaningless reads "— (buffered)"; a missing prefill
    rate says why ("— (short prompt)").
    """
    key = column.key
    if key == "ttft":
        value = metric(row, "ttft_ms")
        if value is None and int(row.get("buffered") or 0):
            return t("report.cell_buffered")
        return fmt_num(value)
    if key == "thinking":
        return fmt_num(metric(row, "thinking_ms"))
    if key == "total":
        return fmt_num(metric(row, "total_ms"))
    if key == "tokens":
        return fmt_int(metric(row, "eval_count"))
    if key == "eval_rate":
        return fmt_num(metric(row, "eval_tps"))
    if key == "decode":
        value = metric(row, "e2e_tps")
        if value is None and int(row.get("buffered") or 0):
            return t("report.cell_buffered")
        return fmt_num(value)
    if key == "ok":
        return ok_of(row)
    if key == "prefill":
        value = metric(row, "prompt_tps")
        reason = row.get("prompt_tps_absent")
        if value is None and int(row.get("ok") or 0) and isinstance(reason, str):
            try:
                return t(f"report.prompt_tps_absent_{reason}")
            except KeyError:
                return DASH
        return fmt_num(value)
    if key == "overhead":
        # Below zero the time outside the server's timer was within one round trip (the RTT
        # sampled before the run is noisy on a busy machine): nothing to attribute, not "-5 ms".
        value = metric(row, "client_overhead_ms")
        return t("report.cell_overhead_none") if value is not None and value < 0 else fmt_num(value)
    if key == "gpu":
        return gpu_of(doc, str(row.get("model", "")))
    if key == "clean_eof":
        return str(int(row.get("clean_eof") or 0))
    return DASH


def failure_groups(doc: RunDocument) -> list[tuple[str, str, int, list[str]]]:
    """Failures grouped by model and error: (model, error, count, prompts), most first.

    Every group is listed (no "… 5 more"); a group names its prompts once, not per request.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for r in failures(doc):
        error = r.get("error") or t("report.unknown_error")
        groups.setdefault((r["model"], error), []).append(r["prompt_id"])
    out = [
        (model, error, len(prompts), list(dict.fromkeys(prompts)))
        for (model, error), prompts in groups.items()
    ]
    return sorted(out, key=lambda g: -g[2])


def skipped_models(doc: RunDocument) -> list[tuple[str, str]]:
    """(model, reason) of the models the run skipped (fail fast)."""
    return [
        (m.get("model", ""), str(m["skipped"])) for m in doc.get("models") or [] if m.get("skipped")
    ]
