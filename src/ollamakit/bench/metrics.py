"""Metrics: pure functions from one streamed reply to a :class:`RequestResult`, and summaries.

Nothing here does I/O or reads a clock: the runner hands in the ``perf_counter_ns`` stamps
the client took (``AsyncChunkStream.sent_ns`` just before sending, ``Chunk.arrival_ns`` per
socket read) and the final ``done: true`` chunk, and gets numbers back. That keeps every
formula testable with made-up timestamps (see the doctests).

Client clock (perf_counter, ns → ms)
    ``ttft_ms``           sent → first chunk with answer text (``content``/``response``)
    ``ttft_thinking_ms``  sent → first chunk with thinking text (thinking models)
    ``total_ms``          sent → arrival of the final chunk (the last byte that matters)
    ``itl_ms``            p50/p95/p99 of the gaps between consecutive token-bearing chunks
                          (answer or thinking). Chunks that arrived in one socket read share a
                          stamp, so a 0 ms gap is real: they were delivered together.
    ``tpot_ms``           (total − first token) / (eval_count − 1). "First token" is the first
                          chunk of *any* kind, so for thinking models the decode window starts
                          with the first thinking token, which ``eval_count`` also counts; for
                          other models it is exactly design.md's (total − ttft)/(eval_count − 1).
    ``e2e_tps``           1000 / tpot_ms: the decode rate the client saw.

Server clock (final chunk, Go ``time.Duration`` ns → ms)
    ``load_ms``, ``prompt_eval_ms``, ``eval_ms``, ``server_total_ms``, and the two rates
    ``prompt_tps`` = prompt_eval_count / prompt_eval_s and ``eval_tps`` = eval_count / eval_s,
    exactly the formulas ``ollama run --verbose`` prints ("prompt eval rate", "eval rate").
    ``network_ms`` = total_ms − server_total_ms: the part of the wait the server did not see
    (connection, proxies, transfer, client parsing).

Degenerate values become ``None`` (JSON ``null``), never a made-up number:

* a missing or zero duration or count (Ollama omits zero fields) gives no rate;
* a duration under :data:`MIN_RATE_DURATION_NS` (1 µs) is clock granularity, not a
  measurement: 1 token in 0 ns must not become a billion tokens/s;
* ``tpot_ms`` needs ``eval_count ≥ 2`` and a positive decode window;
* ``network_ms`` is *kept when slightly negative*: the client and server clocks are different
  clocks, and on coarse timers (Windows, some VMs) the server's total can exceed the client's by
  a tick. It is reported as measured; readers should treat |network_ms| below ~1 ms as zero.

Summaries
    :func:`summarize` gives median, p95, mean and sample standard deviation. Percentiles use
    linear interpolation between closest ranks (Hyndman & Fan type 7: numpy's default, Excel's
    ``PERCENTILE.INC``). With few samples p95 lies between the two largest values.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from ollamakit.bench.schema import (
    ConcurrencyRow,
    MetricSummary,
    Percentiles,
    RequestResult,
    SummaryRow,
)
from ollamakit.domain import FinalStats

#: Shorter durations than this are treated as unknown when computing a rate.
MIN_RATE_DURATION_NS: Final = 1_000
NS_PER_MS: Final = 1_000_000
NS_PER_S: Final = 1_000_000_000


class ChunkLike(Protocol):
    """What metrics need from a streamed chunk (:class:`ollamakit.client.Chunk` fits)."""

    @property
    def arrival_ns(self) -> int: ...

    @property
    def content(self) -> str: ...

    @property
    def thinking(self) -> str: ...


# --------------------------------------------------------------------------- small helpers


def ns_to_ms(value_ns: object) -> float | None:
    """A Go duration (int ns) in milliseconds; ``None`` when absent or not a number.

    >>> ns_to_ms(4535599000)
    4535.599
    >>> ns_to_ms(None) is None, ns_to_ms("12") is None, ns_to_ms(True) is None
    (True, True, True)
    >>> ns_to_ms(0)
    0.0
    """
    if isinstance(value_ns, bool) or not isinstance(value_ns, int | float):
        return None
    if not math.isfinite(value_ns) or value_ns < 0:
        return None
    return value_ns / NS_PER_MS


def count_of(value: object) -> int | None:
    """A token count from the final chunk; ``None`` when absent or malformed.

    >>> count_of(26), count_of(None), count_of(-1), count_of(2.0)
    (26, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def rate_per_s(count: int | None, duration_ns: object) -> float | None:
    """``count / duration_s``, as ``ollama run --verbose`` prints it, or ``None`` if degenerate.

    >>> round(rate_per_s(282, 4535599000), 2)  # the chat example in Ollama's docs
    62.17
    >>> rate_per_s(1, 0) is None  # 1 token in 0 ns is not infinitely fast: it is unknown
    True
    >>> rate_per_s(1, 999) is None  # below 1 µs: clock granularity
    True
    >>> rate_per_s(0, 5_000_000) is None, rate_per_s(None, 5_000_000) is None
    (True, True)
    """
    if count is None or count <= 0:
        return None
    if isinstance(duration_ns, bool) or not isinstance(duration_ns, int | float):
        return None
    if not math.isfinite(duration_ns) or duration_ns < MIN_RATE_DURATION_NS:
        return None
    return count / (duration_ns / NS_PER_S)


def _ns(value_ms: float | None) -> int | None:
    """FinalStats' milliseconds back to the ns the rate rule is written in (exact for ns input)."""
    return None if value_ms is None else round(value_ms * NS_PER_MS)


def tpot(
    total_ms: float | None, first_token_ms: float | None, eval_count: int | None
) -> float | None:
    """Time per output token after the first: (total − first) / (eval_count − 1).

    >>> tpot(1100.0, 100.0, 101)
    10.0
    >>> tpot(100.0, 100.0, 1) is None  # one token has no "per token after the first"
    True
    >>> tpot(100.0, 100.0, 50) is None  # zero-length decode window: unknown, not 0 ms
    True
    """
    if total_ms is None or first_token_ms is None or eval_count is None or eval_count < 2:
        return None
    window_ms = total_ms - first_token_ms
    if window_ms <= 0:
        return None
    return window_ms / (eval_count - 1)


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
    if not values:
        return None
    ordered = sorted(values)
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
    return {
        "p50": _round(percentile(values, 50)),
        "p95": _round(percentile(values, 95)),
        "p99": _round(percentile(values, 99)),
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


# --------------------------------------------------------------------------- one request


@dataclass(frozen=True, slots=True)
class Identity:
    """Which cell of the benchmark matrix a request belongs to."""

    model: str
    prompt_id: str
    category: str
    run_index: int
    concurrency: int


def empty_result(identity: Identity, *, error: str | None = None) -> RequestResult:
    """A result with every measurement unknown (a failed request starts from this)."""
    return {
        "model": identity.model,
        "prompt_id": identity.prompt_id,
        "category": identity.category,
        "run_index": identity.run_index,
        "concurrency": identity.concurrency,
        "ok": error is None,
        "error": error,
        "ttft_ms": None,
        "total_ms": None,
        "load_ms": None,
        "prompt_eval_count": None,
        "prompt_eval_ms": None,
        "eval_count": None,
        "eval_ms": None,
        "server_total_ms": None,
        "prompt_tps": None,
        "eval_tps": None,
        "tpot_ms": None,
        "e2e_tps": None,
        "network_ms": None,
        "itl_ms": {"p50": None, "p95": None, "p99": None},
        "ttft_thinking_ms": None,
        "thinking_chunks": None,
        "done_reason": None,
    }


def measure(
    identity: Identity,
    sent_ns: int,
    chunks: Sequence[ChunkLike],
    final: FinalStats | None,
    *,
    error: str | None = None,
) -> RequestResult:
    """The result of one request from its send stamp, its chunks and its final chunk.

    ``final`` is the ``done: true`` chunk's figures (``None`` when the stream failed before it);
    ``error`` marks the request failed. A failed request keeps what was genuinely observed
    before the failure (TTFT, chunk gaps) but has no total and no server figures.

    >>> from types import SimpleNamespace as C
    >>> ms = 1_000_000
    >>> chunks = [C(arrival_ns=t * ms, content="x", thinking="") for t in (120, 130, 140, 150)]
    >>> final = FinalStats(done_reason="stop", total_ms=145.0, load_ms=5.0, prompt_eval_count=26,
    ...                    prompt_eval_ms=100.0, eval_count=4, eval_ms=40.0)
    >>> r = measure(Identity("m", "p", "c", 0, 1), 0, chunks, final)
    >>> r["ttft_ms"], r["total_ms"], r["tpot_ms"], r["e2e_tps"]
    (120.0, 150.0, 10.0, 100.0)
    >>> r["prompt_tps"], r["eval_tps"], r["network_ms"], r["itl_ms"]["p50"]
    (260.0, 100.0, 5.0, 10.0)
    """
    result = empty_result(identity, error=error)
    first_content_ns: int | None = None
    first_thinking_ns: int | None = None
    token_arrivals_ns: list[int] = []
    thinking_chunks = 0
    for chunk in chunks:
        has_text = bool(chunk.content)
        has_thinking = bool(chunk.thinking)
        if has_text and first_content_ns is None:
            first_content_ns = chunk.arrival_ns
        if has_thinking:
            thinking_chunks += 1
            if first_thinking_ns is None:
                first_thinking_ns = chunk.arrival_ns
        if has_text or has_thinking:
            token_arrivals_ns.append(chunk.arrival_ns)

    def since_sent_ms(stamp_ns: int | None) -> float | None:
        return None if stamp_ns is None else _round((stamp_ns - sent_ns) / NS_PER_MS)

    result["ttft_ms"] = since_sent_ms(first_content_ns)
    result["ttft_thinking_ms"] = since_sent_ms(first_thinking_ns)
    result["thinking_chunks"] = thinking_chunks
    gaps_ms = [(b - a) / NS_PER_MS for a, b in itertools.pairwise(token_arrivals_ns)]
    result["itl_ms"] = percentiles(gaps_ms)
    if error is not None or final is None or not chunks:
        return result

    total_ms = since_sent_ms(chunks[-1].arrival_ns)
    result["total_ms"] = total_ms
    result["done_reason"] = final.done_reason

    prompt_count = final.prompt_eval_count
    eval_count = final.eval_count
    result["load_ms"] = _round(final.load_ms)
    result["prompt_eval_count"] = prompt_count
    result["prompt_eval_ms"] = _round(final.prompt_eval_ms)
    result["eval_count"] = eval_count
    result["eval_ms"] = _round(final.eval_ms)
    server_total_ms = _round(final.total_ms)
    result["server_total_ms"] = server_total_ms
    result["prompt_tps"] = _round(rate_per_s(prompt_count, _ns(final.prompt_eval_ms)))
    result["eval_tps"] = _round(rate_per_s(eval_count, _ns(final.eval_ms)))

    first_token_ns = min(
        (s for s in (first_content_ns, first_thinking_ns) if s is not None), default=None
    )
    tpot_ms = tpot(total_ms, since_sent_ms(first_token_ns), eval_count)
    result["tpot_ms"] = _round(tpot_ms)
    result["e2e_tps"] = _round(1000 / tpot_ms) if tpot_ms else None
    if total_ms is not None and server_total_ms is not None and server_total_ms > 0:
        # May be slightly negative on coarse clocks: kept as measured (module docstring).
        result["network_ms"] = _round(total_ms - server_total_ms)
    return result


# --------------------------------------------------------------------------- aggregates

_SUMMARY_METRICS: Final = (
    "ttft_ms",
    "total_ms",
    "eval_tps",
    "prompt_tps",
    "e2e_tps",
    "tpot_ms",
    "network_ms",
)


def summary_rows(results: Iterable[RequestResult]) -> list[SummaryRow]:
    """One row per (model, prompt_id, concurrency), in first-seen order; stats over ok rows.

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
            row[metric] = summarize(_metric(r, metric) for r in good)
        row["itl_p95_ms"] = summarize(r["itl_ms"]["p95"] for r in good)
        rows.append(row)
    return rows


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

    >>> r = empty_result(Identity("m", "p", "c", 0, 2)) | {"eval_count": 100, "ttft_ms": 50.0}
    >>> row = concurrency_row("m", 2, [r, r], 2.0)
    >>> row["output_tps"], row["requests_per_s"]
    (100.0, 1.0)
    """
    good = [r for r in results if r["ok"]]
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
        "ttft_ms": summarize(r["ttft_ms"] for r in good),
        "itl_p95_ms": summarize(r["itl_ms"]["p95"] for r in good),
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
    "MIN_RATE_DURATION_NS",
    "ChunkLike",
    "Identity",
    "concurrency_row",
    "count_of",
    "empty_result",
    "measure",
    "ns_to_ms",
    "percentile",
    "percentiles",
    "rate_per_s",
    "saturation_level",
    "summarize",
    "summary_rows",
    "tpot",
]
