"""The benchmark runner: asyncio, a plan in, a :class:`RunDocument` out.

Order of work
-------------
1. Server facts: ``GET /api/version`` once (an unreachable server or a failed login raises here,
   before anything is recorded), then the round-trip time of :data:`RTT_SAMPLES` more
   ``GET /api/version`` requests, reported as median and p95.
2. Per model, warm-up: ``warmup`` requests that are not measured. The first one's server
   ``load_duration`` is the model's cold load (``cold_loads`` in the document) — unless the
   model was already in memory (a second run within the server's keep-alive), when it is a few
   milliseconds; the reports tell the two apart (``report.common.WARM_LOAD_MS``).
3. Per model and concurrency level ``c``, per prompt, ``runs`` *batches*: a batch starts ``c``
   identical streams at once (each with its own run marker, so none hits the prefix cache) and
   ends when the last one does. At ``c = 1`` this is plain sequential repetition. A cell
   (model, prompt, c) thus has ``runs × c`` results, ``run_index`` 0 … runs·c − 1. Identical
   prompts with a fixed seed and temperature 0 finish together, so a batch's tail is short and
   "output tokens / summed batch wall time" is the level's aggregate throughput.
4. Summary rows, concurrency rows, and a hint where aggregate throughput stops growing.

Measurement hygiene
-------------------
Timestamps come from the client (``sent_ns``, each chunk's ``arrival_ns``); this module only
collects chunks, and keeps other work out of the windows in which streams are being timed:

* Results are written to the history store when their batch has ended (at ``c = 1``: right
  after each request): a SQLite commit in the event loop would delay other streams' stamps.
* In a batch, the work after a stream's last byte (returning the connection to the pool,
  computing its metrics, progress output) waits until every stream of the batch has stopped
  receiving (:class:`_Gate`).
* Each extra stream of a batch has its own client and connection ("lanes", opened by
  ``client_factory`` before the level starts). With one shared pool of ``c`` connections,
  httpcore re-examines every pooled connection (a poll and a ``getpeername`` each) whenever a
  request starts or ends, so sending 16 requests at once costs O(16²) system calls inside the
  event loop; on a busy 2-CPU machine that held requests back by 60–80 ms (median) between
  ``sent_ns`` and the wire, counted as TTFT. With lanes the same burst took 10–14 ms
  (docs/performance.md, "Measurement fidelity").

Failures
--------
Every request runs under ``asyncio.timeout(timeout_s)``, end to end (connect, queue, prefill,
decode). Timeout, HTTP errors (503, 404 unknown model, 500), an ``{"error"}`` line mid-stream and
a cut stream become ``ok: false`` rows with the error's one-line ``short`` text; the run goes on.

Ctrl-C
------
``asyncio.run`` turns the first SIGINT into cancellation of the main task. :meth:`Runner.execute`
catches it, drops the requests that were still in flight, saves the finished ones, marks the run
``interrupted`` and returns the partial document; the caller exits 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from ollamakit import __version__
from ollamakit.bench.backends import chat_request, round_trip_ms, server_info
from ollamakit.bench.suites import Prompt, Suite, marked
from ollamakit.client import AsyncBackend
from ollamakit.domain import StreamEnd, Think
from ollamakit.errors import OllamakitError
from ollamakit.i18n import t
from ollamakit.measure.recorder import ReplyRecorder
from ollamakit.measure.schema import (
    SCHEMA_VERSION,
    ConcurrencyRow,
    Identity,
    LoadInfo,
    RequestResult,
    RunConfig,
    RunDocument,
    Stat,
)
from ollamakit.measure.stats import (
    concurrency_row,
    percentile,
    saturation_level,
    summary_rows,
)
from ollamakit.selection import capped_before_answer

#: Round trips measured before the run (after one request that opened the connection).
RTT_SAMPLES: Final = 5


@dataclass(frozen=True, slots=True)
class BenchPlan:
    """What to run; validated by the CLI."""

    models: tuple[str, ...]
    suite: Suite
    runs: int = 3
    warmup: int = 1
    concurrency: tuple[int, ...] = (1,)
    timeout_s: float = 300.0
    label: str | None = None
    demo: bool = False  # the server is the built-in simulator (--demo): numbers are simulated
    #: ``--think``: the mode asked for, and per model the ``think`` value sent (selection.py);
    #: a model not in the map gets no ``think`` (the server's default).
    think: str | None = None
    think_by_model: Mapping[str, Think | None] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        """Requests the plan sends, warm-up included (for the progress bar)."""
        per_model = self.warmup + sum(c * self.runs for c in self.concurrency) * len(
            self.suite.prompts
        )
        return per_model * len(self.models)

    def config(self) -> RunConfig:
        return {
            "runs": self.runs,
            "warmup": self.warmup,
            "concurrency": list(self.concurrency),
            "num_predict": self.suite.num_predict,
            "seed": self.suite.seed,
            "suite": self.suite.name,
            "models": list(self.models),
            "prompts": [p.id for p in self.suite.prompts],
            "timeout_s": self.timeout_s,
            "temperature": self.suite.temperature,
            "think": self.think,
            "think_sent": {m: self.think_by_model.get(m) for m in self.models},
        }


class ResultSink(Protocol):
    """Where finished requests go: the history store, or nowhere (``--no-save``)."""

    def begin(self, doc: RunDocument) -> None: ...

    def add(self, result: RequestResult) -> None: ...

    def finish(self, doc: RunDocument) -> None: ...


class NullSink:
    """``--no-save``: keep nothing."""

    def begin(self, doc: RunDocument) -> None:
        pass

    def add(self, result: RequestResult) -> None:
        pass

    def finish(self, doc: RunDocument) -> None:
        pass


class StoreSink:
    """The history store (``ollamakit.store.HistoryStore``): every row committed at once.

    The history must never cost the measurements: when a write fails (disk full, the database
    locked by another process, the file system gone read-only) ``on_error`` is told once and
    the sink stops writing, the run goes on with every result in memory (and so in the
    ``--output`` files). :meth:`finish` makes one more attempt to bring the history up to date
    (the lock may be gone, space freed); ``complete`` says whether the history holds the run.
    """

    def __init__(
        self, store: Any, on_error: Callable[[OllamakitError], None] | None = None
    ) -> None:
        self.store = store
        self.run_id: str | None = None
        self.on_error = on_error
        self.error: OllamakitError | None = None
        self.complete = True
        self._begun = False
        self._added = 0

    def _failed(self, exc: OllamakitError) -> None:
        if self.error is None:
            self.error = exc
            self.complete = False
            if self.on_error is not None:
                self.on_error(exc)

    def begin(self, doc: RunDocument) -> None:
        self.run_id = doc["run_id"]
        try:
            returned = self.store.begin_run(doc)
        except OllamakitError as exc:
            self._failed(exc)
            return
        self.run_id = returned if isinstance(returned, str) else doc["run_id"]
        self._begun = True

    def add(self, result: RequestResult) -> None:
        if self.error is not None:
            return
        try:
            self.store.add_result(self.run_id, result)
        except OllamakitError as exc:
            self._failed(exc)
            return
        self._added += 1

    def finish(self, doc: RunDocument) -> None:
        try:
            if self.error is not None:
                # Catch up: the header if it never made it, then the results it missed.
                if not self._begun:
                    self.store.begin_run({**doc, "status": "running", "results": []})
                    self._begun = True
                for result in doc["results"][self._added :]:
                    self.store.add_result(self.run_id, result)
                    self._added += 1
            self.store.finish_run(self.run_id, doc)
            self.complete = True
        except OllamakitError as exc:
            self._failed(exc)
            self.complete = False


class Resumed(Protocol):
    """``bench --resume`` (:class:`ollamakit.bench.resume.Resume`): what is already measured."""

    sequence_start: int

    def document(self, fresh: RunDocument) -> RunDocument: ...

    def model_done(self, model: str) -> bool: ...

    def batch_done(self, model: str, prompt_id: str, run: int, level: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class Event:
    """Progress news: one request finished (``warmup`` marks the unmeasured ones).

    ``marker`` is the run marker the request's prompt started with and ``sent_ns`` the client's
    send stamp, so a listener can match a result with a server-side log (``bench/fidelity.py``).
    """

    result: RequestResult
    warmup: bool = False
    marker: str = ""
    sent_ns: int = 0


Listener = Callable[[Event], None]


def now_iso() -> str:
    """Wall-clock time for the document (``2025-10-26T17:21:21.196+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _stat(samples: Sequence[float]) -> Stat:
    if not samples:
        return {"median": None, "p95": None}
    p95 = percentile(samples, 95)
    return {
        "median": round(statistics.median(samples), 3),
        "p95": None if p95 is None else round(p95, 3),
    }


@dataclass
class Runner:
    """Runs one :class:`BenchPlan` against one server."""

    client: AsyncBackend
    plan: BenchPlan
    base_url: str  # redacted, for the document
    sink: ResultSink = field(default_factory=NullSink)
    listener: Listener | None = None
    client_factory: Callable[[], AsyncBackend] | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    resume: Resumed | None = None  # bench --resume: continue this saved run

    def __post_init__(self) -> None:
        self._sequence = 0
        self._results: list[RequestResult] = []
        self._unsaved: list[RequestResult] = []
        self._levels: list[ConcurrencyRow] = []
        self._cold_loads: list[LoadInfo] = []
        self._options = self.plan.suite.options()
        self.document: RunDocument | None = None  # set once the run has started
        self._lanes: list[AsyncBackend] = []
        self.server_name = ""  # the "server" of each result row (bench/compare.py)
        self._rtt_ms: float | None = None  # median round trip: network_ms beyond it is overhead

    # ------------------------------------------------------------------ the whole run

    async def execute(self) -> RunDocument:
        """Run the plan; returns the document (status ``complete`` or ``interrupted``)."""
        identity = await self.client.connect()  # unreachable / 401: raises, nothing recorded
        rtts_ms = [await round_trip_ms(self.client) for _ in range(RTT_SAMPLES)]
        self._rtt_ms = statistics.median(rtts_ms) if rtts_ms else None
        doc: RunDocument = {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "label": self.plan.label,
            "status": "running",
            "started_at": now_iso(),
            "finished_at": None,
            "tool": {"name": "ollamakit", "version": __version__},
            "server": server_info(self.base_url, identity, _stat(rtts_ms)),
            "servers": [],  # bench/compare.py: every server compared; here the one
            "config": self.plan.config(),
            "results": [],
            "summary": [],
            "cold_loads": [],
            "concurrency_summary": [],
            "hints": [],
            "demo": self.plan.demo,
        }
        doc["servers"] = [doc["server"]]
        self.server_name = doc["server"].get("name", "")
        if self.resume is not None:  # the interrupted run goes on (bench/resume.py)
            doc = self.resume.document(doc)
            self._results = list(doc["results"])
            self._cold_loads = list(doc["cold_loads"])
            self._levels = list(doc["concurrency_summary"])
            self._sequence = self.resume.sequence_start  # markers unlike the first session's
        self.sink.begin(doc)
        self.document = doc
        interrupted = False
        try:
            for model in self.plan.models:
                await self._model(model)
        except asyncio.CancelledError:
            # First Ctrl-C (asyncio.run cancels the main task). Undo the cancellation request
            # so the clean-up below, and asyncio.run's own, proceed normally.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            interrupted = True
        return self.finalize(interrupted=interrupted)

    def finalize(self, *, interrupted: bool) -> RunDocument:
        """Close the run: save what is unsaved, compute summaries, mark the status.

        :meth:`execute` calls it; so does the CLI when a second Ctrl-C ended the event loop
        before ``execute`` could (the run must not stay ``running`` in the history).
        """
        doc = self.document
        if doc is None:
            raise RuntimeError("the run has not started")
        if doc["status"] != "running":
            return doc
        self._flush()
        doc["results"] = list(self._results)
        doc["summary"] = summary_rows(self._results)
        doc["cold_loads"] = list(self._cold_loads)
        doc["concurrency_summary"] = list(self._levels)
        doc["hints"] = (
            buffering_hints(self._results)
            + thinking_cap_hints(self._results, self.plan)
            + throughput_hints(self._levels)
        )
        doc["status"] = "interrupted" if interrupted else "complete"
        doc["finished_at"] = now_iso()
        self.sink.finish(doc)
        return doc

    # ------------------------------------------------------------------ per model

    async def _model(self, model: str) -> None:
        prompts = self.plan.suite.prompts
        if self.resume is not None and self.resume.model_done(model):
            return
        load: LoadInfo = {"model": model, "load_ms": None}
        for i in range(self.plan.warmup):
            identity = Identity(model, prompts[0].id, prompts[0].category, i, 1)
            result = await self._request(identity, prompts[0], warmup=True)
            if i == 0:
                load["load_ms"] = result["load_ms"]
                self._cold_loads.append(load)
        for level in self.plan.concurrency:
            await self._prepare_lanes(level)
            level_results: list[RequestResult] = []
            wall_ns = 0
            try:
                for prompt in prompts:
                    for run in range(self.plan.runs):
                        if self.resume and self.resume.batch_done(model, prompt.id, run, level):
                            continue
                        started_ns = time.perf_counter_ns()
                        batch = await self._batch(model, prompt, run, level)
                        wall_ns += time.perf_counter_ns() - started_ns
                        level_results.extend(batch)
                        self._flush()
            finally:
                if level_results:
                    self._levels.append(concurrency_row(model, level, level_results, wall_ns / 1e9))

    async def _batch(self, model: str, prompt: Prompt, run: int, level: int) -> list[RequestResult]:
        """``level`` identical streams at once; each result is kept as soon as it ends."""
        identities = [
            Identity(model, prompt.id, prompt.category, run * level + k, level)
            for k in range(level)
        ]
        if level == 1:
            return [await self._request(identities[0], prompt)]
        done: list[RequestResult] = []
        gate = _Gate(level)

        async def one(identity: Identity, lane: int) -> None:
            done.append(await self._request(identity, prompt, gate=gate, lane=lane))

        # Interrupted mid-batch, the TaskGroup cancels the others; finished ones are recorded.
        async with asyncio.TaskGroup() as group:
            for lane, identity in enumerate(identities):
                group.create_task(one(identity, lane))
        return done

    # ------------------------------------------------------------------ one request

    async def _request(
        self,
        identity: Identity,
        prompt: Prompt,
        *,
        warmup: bool = False,
        gate: _Gate | None = None,
        lane: int = 0,
    ) -> RequestResult:
        """Send one request and measure it; failures become ``ok: false`` results.

        With a ``gate`` (a batch of several streams), the work that follows the last byte
        (returning the connection to the pool, computing the metrics, progress output) waits
        until every stream of the batch has stopped receiving, so it cannot delay the arrival
        stamps of the streams still running.
        """
        self._sequence += 1
        marker = f"bench {self.run_id[:8]} #{self._sequence}"
        client = self._lanes[lane - 1] if 0 < lane <= len(self._lanes) else self.client
        request = chat_request(
            identity.model,
            marked(prompt, marker),
            self._options,
            self.plan.think_by_model.get(identity.model),
        )
        stream = client.stream_chat(request)
        recorder: ReplyRecorder | None = None
        error: str | None = None
        end: StreamEnd | None = None  # the stream's own unless the deadline ended it
        started_at = now_iso()
        async with contextlib.AsyncExitStack() as closing:
            try:
                async with asyncio.timeout(self.plan.timeout_s):
                    await closing.enter_async_context(stream)
                    recorder = ReplyRecorder(stream.sent_ns, rtt_ms=self._rtt_ms)
                    add = recorder.add
                    async for chunk in stream:
                        add(chunk)
            except TimeoutError:
                error = t("bench.timeout", seconds=f"{self.plan.timeout_s:g}")
                end = "timeout"
            except OllamakitError as exc:
                error = exc.short
            if gate is not None:
                await gate.pass_when_all_arrived()
        if recorder is None:  # failed before the request was sent
            recorder = ReplyRecorder(stream.sent_ns, rtt_ms=self._rtt_ms)
        result = recorder.finish(end or stream.end, error).to_result(identity)
        result["started_at"] = started_at
        result["server"] = self.server_name
        if not warmup:
            self._results.append(result)
            self._unsaved.append(result)
        if self.listener is not None:
            self.listener(Event(result, warmup, marker, stream.sent_ns))
        return result

    async def _prepare_lanes(self, level: int) -> None:
        """One client (one connection) per extra stream of a batch, opened before measuring."""
        if self.client_factory is None:
            return
        while len(self._lanes) < level - 1:
            lane = self.client_factory()
            self._lanes.append(lane)
            await lane.connect()  # opens its connection now, not during a batch

    async def aclose(self) -> None:
        """Close the per-stream clients (the main client belongs to the caller)."""
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            await lane.aclose()

    def _flush(self) -> None:
        """Write finished results to the sink (called between batches, never mid-stream)."""
        while self._unsaved:
            self.sink.add(self._unsaved.pop(0))


class _Gate:
    """Holds the streams of a batch until all of them have stopped receiving."""

    def __init__(self, lanes: int) -> None:
        self._waiting = lanes
        self._open = asyncio.Event()

    async def pass_when_all_arrived(self) -> None:
        self._waiting -= 1
        if self._waiting <= 0:
            self._open.set()
        await self._open.wait()


def buffering_hints(results: Sequence[RequestResult]) -> list[str]:
    """One hint when a buffering proxy held replies back (their TTFT is not a TTFT).

    >>> from ollamakit.measure.schema import Identity, empty_result
    >>> row = empty_result(Identity("m", "p", "c", 0, 1))
    >>> held = row | {"buffered": True}
    >>> buffering_hints([row]), "proxy_buffering off" in buffering_hints([row, held])[0]
    ([], True)
    """
    count = sum(1 for r in results if r.get("buffered"))
    return [t("bench.hint_buffered", count=count, total=len(results))] if count else []


def thinking_cap_hints(results: Sequence[RequestResult], plan: BenchPlan) -> list[str]:
    """Per model, when replies hit the ``num_predict`` cap before any answer text.

    Such a reply is "ok" with an empty TTFT cell: the budget went to thinking. gpt-oss (sent a
    level because it cannot turn thinking off) can only be given a larger budget.
    """
    totals: dict[str, int] = {}
    for r in results:
        if r["ok"]:
            totals[r["model"]] = totals.get(r["model"], 0) + 1
    hints: list[str] = []
    for model, count in capped_before_answer(results).items():
        cannot_off = plan.think == "off" and isinstance(plan.think_by_model.get(model), str)
        key = "select.hint_capped_oss" if cannot_off else "select.hint_capped"
        hints.append(t(key, model=model, count=count, total=totals.get(model, count)))
    return hints


def throughput_hints(rows: Sequence[ConcurrencyRow]) -> list[str]:
    """Hints about where aggregate throughput stops growing, per model.

    >>> flat = [{"model": "m", "concurrency": 1, "output_tps": 50.0},
    ...         {"model": "m", "concurrency": 4, "output_tps": 51.0}]
    >>> "OLLAMA_NUM_PARALLEL" in throughput_hints(flat)[0]
    True
    >>> throughput_hints([{"model": "m", "concurrency": 1, "output_tps": 50.0}])
    []
    """
    by_model: dict[str, list[ConcurrencyRow]] = {}
    for row in rows:
        by_model.setdefault(row.get("model", "?"), []).append(row)
    hints: list[str] = []
    for model, model_rows in by_model.items():
        level = saturation_level(model_rows)
        if level is None:
            continue
        lowest = min(r.get("concurrency", 1) for r in model_rows)
        tps = next((r.get("output_tps") for r in model_rows if r.get("concurrency") == level), None)
        shown_tps = "?" if tps is None or not math.isfinite(tps) else f"{tps:.1f}"
        if level == lowest == 1:
            hints.append(t("bench.hint_flat", model=model, tps=shown_tps))
        else:
            hints.append(t("bench.hint_saturation", model=model, level=level, tps=shown_tps))
    return hints


__all__ = [
    "RTT_SAMPLES",
    "BenchPlan",
    "Event",
    "NullSink",
    "ResultSink",
    "Resumed",
    "Runner",
    "StoreSink",
    "buffering_hints",
    "thinking_cap_hints",
    "throughput_hints",
]
