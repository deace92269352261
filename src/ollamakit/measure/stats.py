"""Statistics over measurements: percentiles, summaries, the benchmark's summary rows.

Pure functions, no I/O. Percentiles use linear interpolation between closest ranks (Hyndman &
Fan type 7: numpy's default, Excel's ``PERCENTILE.INC``); with few samples p95 lies between the
two largest values. :func:`summarize` gives median, p95, mean and sample standard deviation of
the known values. Moved out of ``bench/metrics.py`` so that ``report`` and ``store`` read the
result format without importing the benchmark.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Final

from ollamakit.measure.schema import (
    ConcurrencyRow,
    MetricSummary,
    Percentiles,
    RequestResult,
    Stat,
    SummaryRow,
)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0–100), linear interpolation between closest ranks (type 7).

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    >>> percentile([10.0, 20.0, 30.0], 95)
    29.0
    >>> percentile([7.0], 99)
    7.0
    >>> percentile([], 50) is None
    True
    """
    return percentile_sorted(sorted(values), q)


def percentile_sorted(ordered: Sequence[float], q: float) -> float | None:
    """:func:`percentile` of values already in ascending order (several percentiles of one
    long list, the inter-token gaps of a reply: sorted once).

    >>> percentile_sorted([1, 2, 3, 4], 50)
    2.5
    """
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def percentiles(values: Sequence[float]) -> Percentiles:
    """p50/p95/p99 of a list (``None`` each when empty).

    >>> percentiles([1.0, 2.0, 3.0])
    {'p50': 2.0, 'p95': 2.9, 'p99': 2.98}
    """
    ordered = sorted(values)
    return {
        "p50": _round(percentile_sorted(ordered, 50)),
        "p95": _round(percentile_sorted(ordered, 95)),
        "p99": _round(percentile_sorted(ordered, 99)),
    }


def median_p95(samples: Sequence[float]) -> Stat:
    """Median and p95, rounded to µs (the round-trip figures of a run).

    >>> median_p95([1.0, 2.0, 4.0])
    {'median': 2.0, 'p95': 3.8}
    >>> median_p95([])
    {'median': None, 'p95': None}
    """
    if not samples:
        return {"median": None, "p95": None}
    p95 = percentile(samples, 95)
    return {
        "median": round(statistics.median(samples), 3),
        "p95": None if p95 is None else round(p95, 3),
    }


def summarize(values: Iterable[float | None]) -> MetricSummary:
    """Median, p95, mean and sample stdev of the known values (``None`` values are skipped).

    >>> summarize([10.0, 12.0, None, 14.0])
    {'median': 12.0, 'p95': 13.8, 'mean': 12.0, 'stdev': 2.0}
    >>> summarize([5.0])  # one sample has no spread
    {'median': 5.0, 'p95': 5.0, 'mean': 5.0, 'stdev': None}
    >>> summarize([])
    {'median': None, 'p95': None, 'mean': None, 'stdev': None}
    """
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return {"median": None, "p95": None, "mean": None, "stdev": None}
    return {
        "median": _round(statistics.median(known)),
        "p95": _round(percentile(known, 95)),
        "mean": _round(statistics.fmean(known)),
        "stdev": _round(statistics.stdev(known)) if len(known) > 1 else None,
    }


def _round(value: float | None, digits: int = 6) -> float | None:
    """Round for the document: 6 decimals keep a nanosecond of a ms value, drop float noise."""
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- aggregates

_SUMMARY_METRICS: Final = (
    "ttft_ms",
    "total_ms",
    "eval_tps",
    "prompt_tps",
    "e2e_tps",
    "tpot_ms",
    "network_ms",
    "eval_count",
    "client_overhead_ms",
)


#: Metrics that time individual tokens: meaningless for a reply a buffering proxy held back
#: (``buffered``), so such rows are left out of their summaries (the rows keep the numbers).
_TIMING_OF_TOKENS: Final = frozenset({"ttft_ms", "tpot_ms", "e2e_tps"})


def summary_rows(results: Iterable[RequestResult]) -> list[SummaryRow]:
    """One row per (model, prompt_id, concurrency), in first-seen order; stats over ok rows.

    TTFT, TPOT, the client decode rate and ITL leave out rows flagged ``buffered``.

    >>> from ollamakit.measure.schema import Identity, empty_result
    >>> ok = empty_result(Identity("m", "p", "c", 0, 1)) | {"ttft_ms": 10.0}
    >>> bad = empty_result(Identity("m", "p", "c", 1, 1), error="timeout")
    >>> [row] = summary_rows([ok, bad])
    >>> row["n"], row["ok"], row["failed"], row["ttft_ms"]["median"]
    (2, 1, 1, 10.0)
    """
    groups: dict[tuple[str, str, int], list[RequestResult]] = {}
    for result in results:
        key = (result["model"], result["prompt_id"], result["concurrency"])
        groups.setdefault(key, []).append(result)
    rows: list[SummaryRow] = []
    for (model, prompt_id, concurrency), members in groups.items():
        good = [r for r in members if r["ok"]]
        streamed = [r for r in good if not r.get("buffered")]
        row: SummaryRow = {
            "model": model,
            "prompt_id": prompt_id,
            "category": members[0]["category"],
            "concurrency": concurrency,
            "n": len(members),
            "ok": len(good),
            "failed": len(members) - len(good),
        }
        for metric in _SUMMARY_METRICS:
            pool = streamed if metric in _TIMING_OF_TOKENS else good
            row[metric] = summarize(_metric(r, metric) for r in pool)
        row["itl_p95_ms"] = summarize(r["itl_ms"]["p95"] for r in streamed)
        row["thinking_ms"] = summarize(_thinking_ms(r) for r in streamed)
        row["buffered"] = len(good) - len(streamed)
        row["clean_eof"] = sum(1 for r in good if r.get("end") == "clean_eof")
        reasons = [r.get("prompt_tps_absent") for r in good if r.get("prompt_tps") is None]
        known = [reason for reason in reasons if reason]
        row["prompt_tps_absent"] = max(set(known), key=known.count) if known else None
        rows.append(row)
    return rows


def _thinking_ms(result: RequestResult) -> float | None:
    """Time spent thinking before the answer: first thinking chunk → first answer chunk.

    >>> from ollamakit.measure.schema import Identity, empty_result
    >>> r = empty_result(Identity("m", "p", "c", 0, 1)) | {"ttft_ms": 900.0}
    >>> _thinking_ms(r | {"ttft_thinking_ms": 150.0}), _thinking_ms(r) is None
    (750.0, True)
    """
    answer, thinking = _metric(result, "ttft_ms"), _metric(result, "ttft_thinking_ms")
    if answer is None or thinking is None or answer < thinking:
        return None
    return answer - thinking


def _metric(result: RequestResult, name: str) -> float | None:
    value = result.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def concurrency_row(
    model: str, concurrency: int, results: Sequence[RequestResult], wall_s: float
) -> ConcurrencyRow:
    """Aggregate throughput of one model at one concurrency level.

    ``wall_s`` is the summed wall time of the level's batches (each batch: ``concurrency``
    streams started together, timed until the last one ends). Output tokens are the server's
    ``eval_count`` of the successful requests.

    >>> from ollamakit.measure.schema import Identity, empty_result
    >>> r = empty_result(Identity("m", "p", "c", 0, 2)) | {"eval_count": 100, "ttft_ms": 50.0}
    >>> row = concurrency_row("m", 2, [r, r], 2.0)
    >>> row["output_tps"], row["requests_per_s"]
    (100.0, 1.0)
    """
    good = [r for r in results if r["ok"]]
    streamed = [r for r in good if not r.get("buffered")]
    tokens = sum(r["eval_count"] or 0 for r in good)
    known_wall = wall_s > 0
    return {
        "model": model,
        "concurrency": concurrency,
        "requests": len(results),
        "ok": len(good),
        "wall_s": round(wall_s, 6),
        "requests_per_s": _round(len(good) / wall_s) if known_wall and good else None,
        "output_tps": _round(tokens / wall_s) if known_wall and tokens else None,
        "ttft_ms": summarize(r["ttft_ms"] for r in streamed),
        "itl_p95_ms": summarize(r["itl_ms"]["p95"] for r in streamed),
    }


#: A step up in concurrency "pays off" if it brings at least this share of the ideal gain
#: (doubling the streams ideally doubles throughput: 25 % of that is ×1.25).
SATURATION_SHARE: Final = 0.25


def saturation_level(rows: Sequence[ConcurrencyRow]) -> int | None:
    """The concurrency after which aggregate output tokens/s stops growing.

    Going from level ``a`` to ``b`` ideally multiplies throughput by ``b / a``; the step counts
    as growth when it brings at least :data:`SATURATION_SHARE` of that ideal gain. Measured
    against the ideal, not a fixed percentage, because pipelining alone gives a small gain even
    on a server with one slot (the next request's upload and queueing overlap this one's
    decode), and that must not read as "it scales".

    Returns the last level that still paid off, or ``None`` if throughput grew all the way
    (or there are fewer than two measured levels).

    >>> rows = [{"concurrency": c, "output_tps": t} for c, t in [(1, 30.0), (2, 58.0), (4, 61.0)]]
    >>> saturation_level(rows)
    2
    >>> flat = [{"concurrency": 1, "output_tps": 30.0}, {"concurrency": 2, "output_tps": 35.0}]
    >>> saturation_level(flat)
    1
    >>> linear = [{"concurrency": 1, "output_tps": 30.0}, {"concurrency": 2, "output_tps": 60.0}]
    >>> saturation_level(linear) is None
    True
    """
    measured = sorted(
        (r for r in rows if r.get("output_tps")), key=lambda r: r.get("concurrency", 0)
    )
    if len(measured) < 2:
        return None
    for before, after in itertools.pairwise(measured):
        level_before, level_after = before.get("concurrency", 1), after.get("concurrency", 1)
        ideal_gain = level_after / level_before - 1
        gain = (after.get("output_tps") or 0) / (before.get("output_tps") or 1) - 1
        if gain < SATURATION_SHARE * ideal_gain:
            return level_before
    return None


__all__ = [
    "SATURATION_SHARE",
    "concurrency_row",
    "median_p95",
    "percentile",
    "percentile_sorted",
    "percentiles",
    "saturation_level",
    "summarize",
    "summary_rows",
]
