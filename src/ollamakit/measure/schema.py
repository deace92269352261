"""The benchmark result document (``--output run.json``), as TypedDicts: the contract.

This is the result format of ``docs/result-format.md``, version 1. The runner produces it, the
history store persists and reloads it, and every report renderer (table, Markdown, CSV,
HTML) reads only this; it lives in ``measure/`` so none of them imports the benchmark.
Units are in the names (``_ms``, ``_tps``); a value that cannot be known is ``None`` (JSON
``null``), never a made-up number. Extending it is fine (readers ignore unknown keys);
renaming or changing units needs a new ``schema_version``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NotRequired, TypedDict

SCHEMA_VERSION = 1

RunStatus = Literal["running", "complete", "interrupted", "failed"]


class ToolInfo(TypedDict):
    name: str
    version: str


class Stat(TypedDict):
    """Median and 95th percentile of one metric (``rtt_ms``)."""

    median: float | None
    p95: float | None


class ServerInfo(TypedDict):
    base_url: str  # always redacted: https://user:***@host
    version: str | None
    rtt_ms: Stat
    api: NotRequired[str]  # "ollama" (/api) or "openai" (/v1)
    engine: NotRequired[str]  # "ollama", "llama.cpp", "vllm", ...
    name: NotRequired[str]  # a compared server's label, as in each result's "server"


class RunConfig(TypedDict, total=False):
    runs: int
    warmup: int
    concurrency: list[int]
    num_predict: int | None
    seed: int | None
    suite: str
    models: list[str]
    prompts: list[str]  # prompt ids
    timeout_s: float
    temperature: float
    # issue 9 (absent in older runs)
    num_ctx: int | None  # sent as options.num_ctx in every request; None: the server's default
    keep_alive: str  # sent with every request, so no model is evicted mid-run
    cold: bool  # --cold: each model unloaded before its warm-up
    cold_runs: int  # --cold-runs: loads measured per model (0 without --cold)
    think: str | None  # --think as asked: off, on, low, medium, high, max (None: not sent)
    think_sent: dict[str, bool | str | None]  # per model, the think value sent


def planned_requests(config: Mapping[str, Any] | None) -> int | None:
    """Measured requests the plan held (warm-up excluded): models × prompts × runs × the sum
    of the concurrency levels; None when the config does not say.

    >>> planned_requests({"models": ["a", "b"], "prompts": ["p"] * 5, "runs": 3,
    ...                   "concurrency": [1, 2]})
    90
    >>> planned_requests({}) is None
    True
    """
    if not config:
        return None
    models, prompts = config.get("models"), config.get("prompts")
    runs, levels = config.get("runs"), config.get("concurrency")
    if not isinstance(models, list) or not isinstance(prompts, list) or not isinstance(runs, int):
        return None
    if not isinstance(levels, list) or not all(isinstance(c, int) for c in levels):
        return None
    return len(models) * len(prompts) * runs * sum(levels)


class Percentiles(TypedDict):
    p50: float | None
    p95: float | None
    p99: float | None


class RequestResult(TypedDict):
    """One measured request (warm-up excluded)."""

    model: str
    prompt_id: str
    category: str
    run_index: int
    concurrency: int
    ok: bool
    error: str | None  # short text when ok is false
    # client clock (perf_counter): request sent -> first answer chunk / last byte
    ttft_ms: float | None
    total_ms: float | None
    # server-side, from the final chunk's nanosecond durations
    load_ms: float | None
    prompt_eval_count: int | None
    prompt_eval_ms: float | None
    eval_count: int | None
    eval_ms: float | None
    server_total_ms: float | None
    prompt_tps: float | None  # prompt_eval_count / prompt_eval_s
    eval_tps: float | None  # eval_count / eval_s (ollama run --verbose)
    tpot_ms: float | None  # (total_ms - ttft_ms) / (eval_count - 1)
    e2e_tps: float | None  # 1000 / tpot_ms
    network_ms: float | None  # total_ms - server_total_ms
    itl_ms: Percentiles  # gaps between streamed chunks
    # extensions (docs/result-format.md: readers ignore unknown keys)
    ttft_thinking_ms: NotRequired[float | None]  # -> first thinking chunk
    thinking_chunks: NotRequired[int | None]
    done_reason: NotRequired[str | None]
    started_at: NotRequired[str]  # ISO-8601, when the request was sent
    # extensions of the honest-numbers work (issue 9); absent in older runs
    end: NotRequired[str]  # done | clean_eof | cut | error | timeout | interrupted
    reads: NotRequired[int]  # distinct arrival stamps (socket reads) of the reply
    buffered: NotRequired[bool]  # one or two reads held the whole reply: TTFT is not a TTFT
    prompt_tps_absent: NotRequired[str | None]  # why prompt_tps is null: short_prompt, ...
    client_overhead_ms: NotRequired[float | None]  # network_ms - server rtt_ms
    server: NotRequired[str]  # bench comparing servers: the "name" of its entry in "servers"


#: The scalar fields of a :class:`RequestResult` in docs/result-format.md, in document order
#: (``itl_ms`` is an object and the extensions are optional): the columns of a CSV report and
#: of the history database's ``results`` table.
RESULT_SCALAR_FIELDS: Final = (
    "model",
    "prompt_id",
    "category",
    "run_index",
    "concurrency",
    "ok",
    "error",
    "ttft_ms",
    "total_ms",
    "load_ms",
    "prompt_eval_count",
    "prompt_eval_ms",
    "eval_count",
    "eval_ms",
    "server_total_ms",
    "prompt_tps",
    "eval_tps",
    "tpot_ms",
    "e2e_tps",
    "network_ms",
)


class MetricSummary(TypedDict):
    median: float | None
    p95: float | None
    mean: float | None
    stdev: float | None


class SummaryRow(TypedDict, total=False):
    """Aggregate of one (model, prompt_id, concurrency) cell."""

    server: str  # bench comparing servers: which one
    model: str
    prompt_id: str
    category: str
    concurrency: int
    n: int  # measured requests
    ok: int  # of which succeeded
    failed: int
    ttft_ms: MetricSummary
    total_ms: MetricSummary
    eval_tps: MetricSummary
    prompt_tps: MetricSummary
    e2e_tps: MetricSummary
    tpot_ms: MetricSummary
    network_ms: MetricSummary
    itl_p95_ms: MetricSummary
    # issue 9 / 11 (absent in older runs: readers compute them from the results or show —)
    eval_count: MetricSummary  # output tokens per reply
    client_overhead_ms: MetricSummary  # network_ms minus one round trip
    thinking_ms: MetricSummary  # first thinking chunk -> first answer chunk (thinking models)
    buffered: int  # ok replies a buffering proxy held back (TTFT not a TTFT)
    clean_eof: int  # ok replies ended by the repeat guard (no done line, no server figures)
    prompt_tps_absent: str | None  # why prompt_tps is empty: the commonest reason of the cell


class ConcurrencyRow(TypedDict, total=False):
    """Aggregate throughput of one model at one concurrency level."""

    server: str  # bench comparing servers: which one
    model: str
    concurrency: int
    requests: int
    ok: int
    wall_s: float
    requests_per_s: float | None
    output_tps: float | None  # all eval tokens / wall time
    ttft_ms: MetricSummary
    itl_p95_ms: MetricSummary


class LoadInfo(TypedDict):
    """The cold load seen by a model's first (warm-up) request."""

    model: str
    load_ms: float | None  # with --cold: the median of load_runs_ms
    server: NotRequired[str]  # bench comparing servers: which one
    # issue 9 (absent in older runs: readers then judge by load_ms alone)
    state: NotRequired[str | None]  # "cold" | "already_loaded" | None (unknown)
    load_runs_ms: NotRequired[list[float]]  # --cold: every measured load


class ModelFacts(TypedDict):
    """One model of the run: where it ran (``/api/ps`` after its warm-up), whether skipped.

    The residency fields are absent when the server has no ``/api/ps`` or did not list the
    model; ``gpu_share`` is ``size_vram / size`` (``ollama ps``: 1.0 = "100% GPU", 0 = CPU).
    """

    model: str
    skipped: str | None  # why the rest of the run left it out; None: it ran to the end
    size: NotRequired[int]  # bytes in memory (weights + KV cache)
    size_vram: NotRequired[int]  # of which in GPU memory
    gpu_share: NotRequired[float | None]
    context_length: NotRequired[int | None]  # the num_ctx it is loaded with
    expires_at: NotRequired[str | None]


class RunDocument(TypedDict):
    schema_version: int
    run_id: str
    label: str | None
    status: RunStatus
    started_at: str
    finished_at: str | None
    tool: ToolInfo
    server: ServerInfo
    config: RunConfig
    results: list[RequestResult]
    summary: list[SummaryRow]
    # extensions
    cold_loads: NotRequired[list[LoadInfo]]
    concurrency_summary: NotRequired[list[ConcurrencyRow]]
    hints: NotRequired[list[str]]
    # issue 9 (absent in older runs)
    models: NotRequired[list[ModelFacts]]
    failure: NotRequired[str | None]  # status "failed": why the run ended early
    demo: NotRequired[bool]  # true: measured against the built-in simulator (--demo)
    servers: NotRequired[list[ServerInfo]]  # bench comparing servers; "server" is the first


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
        "end": "done" if error is None else "error",
        "reads": 0,
        "buffered": False,
        "prompt_tps_absent": None,
        "client_overhead_ms": None,
    }
