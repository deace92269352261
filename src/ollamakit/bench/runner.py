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

Residency, cold loads, keep-alive (issue 9, items 6, 7, 13)
-------------------------------------------------------------
Every request carries ``keep_alive`` (:data:`KEEP_ALIVE`, "30m") so the server does not evict a
model in the middle of its measurements (Ollama's default is 5 minutes, and another model's
load may evict it sooner), and ``num_ctx`` when ``--num-ctx`` is given (a different ``num_ctx``
than the loaded one reloads the model, ``sched.go:201``, so it is sent on every request, warm-up
included). After a model's warm-up, ``/api/ps`` says where it runs (``size_vram`` of ``size``:
"100% GPU", "63% GPU", "CPU") and with what context; that goes into the document's ``models``
section. With ``cold`` each of ``cold_runs`` loads is made on purpose: unload
(``keep_alive: 0``), then one warm-up request whose ``load_duration`` is the load; without it,
the first warm-up's load is what it is, and a load under ``report.common.WARM_LOAD_MS`` means
the model was already in memory (``state: "already_loaded"`` in ``cold_loads``).

Failures: fail fast, keep everything (issue 9, item 4)
------------------------------------------------------
Every request runs under ``asyncio.timeout(timeout_s)``, end to end (connect, queue, prefill,
decode). Timeout, HTTP errors (503, 404 unknown model, 500), an ``{"error"}`` line mid-stream and
a cut stream become ``ok: false`` rows with the error's one-line ``short`` text. But a model
whose warm-up fails, or whose measured requests fail :data:`MAX_FAILURES_IN_A_ROW` times in a
row, is skipped for the rest of the run, with its reason in ``models`` (one stalled model
costs one timeout, not one per prompt and run); and :data:`MAX_CONNECTION_FAILURES` failed
connections in a row (the server went away) end the run: the results so far are kept, the
run is marked ``failed`` and the command exits 2.

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
from ollamakit.domain import Residency, StreamEnd, Think
from ollamakit.errors import ConnectFailed, ConnectionLost, OllamakitError
from ollamakit.i18n import t
from ollamakit.measure.recorder import ReplyRecorder
from ollamakit.measure.schema import (
    SCHEMA_VERSION,
    ConcurrencyRow,
    Identity,
    LoadInfo,
    ModelFacts,
    RequestResult,
    RunConfig,
    RunDocument,
)
from ollamakit.measure.stats import (
    concurrency_row,
    median_p95,
    saturation_level,
    summary_rows,
)
from ollamakit.report.common import FULL_GPU_SHARE, gpu_text
from ollamakit.selection import capped_before_answer

#: Round trips measured before the run (after one request that opened the connection).
RTT_SAMPLES: Final = 5
#: ``keep_alive`` sent with every request of a run: long enough that no model is evicted
#: between its warm-up and its last measurement.
KEEP_ALIVE: Final = "30m"
#: Measured requests of one model that fail in a row before the model is skipped.
MAX_FAILURES_IN_A_ROW: Final = 3
#: Failed connections in a row (any model) that end the run: the server is gone.
MAX_CONNECTION_FAILURES: Final = 3
#: Below this load time a model's first request found it in memory (``report.common`` too).
WARM_LOAD_MS: Final = 50.0


class _SkipModel(Exception):
    """The current model is skipped for the rest of the run (its reason in ``args[0]``)."""


class _ServerGone(Exception):
    """Too many failed connections in a row: the run ends, marked ``failed``."""


@dataclass
class _ModelState:
    """One model on one server while it is measured: what fail fast and residency need."""

    resident_known: bool  # /api/ps was read (after the warm-up, or the first good reply)
    in_a_row: int = 0  # measured requests that failed in a row


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
    cold: bool = False  # unload each model before its warm-up, measure cold_runs loads
    cold_runs: int = 1
    num_ctx: int | None = None  # sent as options.num_ctx in every request
    keep_alive: str = KEEP_ALIVE
    demo: bool = False  # the server is the built-in simulator (--demo): numbers are simulated
    #: ``--think``: the mode asked for, and per model the ``think`` value sent (selection.py);
    #: a model not in the map gets no ``think`` (the server's default).
    think: str | None = None
    think_by_model: Mapping[str, Think | None] = field(default_factory=dict)

    @property
    def total_requests(self) -> int:
        """Requests the plan sends, warm-up included (for the progress bar)."""
        warmup = max(self.warmup - 1, 0) + self.cold_runs if self.cold else self.warmup
        per_model = warmup + sum(c * self.runs for c in self.concurrency) * len(self.suite.prompts)
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
            "num_ctx": self.num_ctx,
            "keep_alive": self.keep_alive,
            "cold": self.cold,
            "cold_runs": self.cold_runs if self.cold else 0,
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
        if self.plan.num_ctx is not None:
            self._options["num_ctx"] = self.plan.num_ctx
        self._models: list[ModelFacts] = []
        self._connection_failures = 0  # in a row, any model
        self._failure: str | None = None  # why the run ended early (status "failed")
        self.document: RunDocument | None = None  # set once the run has started
        self._lanes: list[AsyncBackend] = []
        self.server_name = ""  # the "server" of each result row (bench/compare.py)
        self._rtt_ms: float | None = None  # median round trip: network_ms beyond it is overhead
        #: per model, why ``/api/ps`` gave no residency ("no_api_ps", "not_listed",
        #: "ps_failed"); only a comparison records it (``models[].residency_absent``)
        self.residency_absent: dict[str, str] = {}

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
            "server": server_info(self.base_url, identity, median_p95(rtts_ms)),
            "servers": [],  # bench/compare.py: every server compared; here the one
            "config": self.plan.config(),
            "results": [],
            "summary": [],
            "cold_loads": [],
            "concurrency_summary": [],
            "hints": [],
            "models": [],
            "failure": None,
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
            await self._run_models(doc)
        except _ServerGone as gone:
            self._failure = str(gone)
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
        doc["models"] = list(self._models)
        doc["hints"] = (
            buffering_hints(self._results)
            + thinking_cap_hints(self._results, self.plan)
            + residency_hints(self._models)
            + throughput_hints(self._levels)
        )
        if interrupted:
            doc["status"] = "interrupted"
        elif self._failure is not None:
            doc["status"] = "failed"
            doc["failure"] = self._failure
        else:
            doc["status"] = "complete"
        doc["finished_at"] = now_iso()
        self.sink.finish(doc)
        return doc

    # ------------------------------------------------------------------ per model

    async def _run_models(self, doc: RunDocument) -> None:
        """Every model of the plan in turn (``bench/compare.py`` runs them on every server)."""
        earlier = {m.get("model"): m for m in doc.get("models") or []}  # --resume
        for model in self.plan.models:
            facts: ModelFacts = {"model": model, "skipped": None}
            if self.resume is not None and self.resume.model_done(model):
                facts = earlier.get(model) or facts  # measured before: keep its facts
            self._models.append(facts)
            try:
                await self._model(model, facts)
            except _SkipModel as skip:
                facts["skipped"] = str(skip)

    async def _model(self, model: str, facts: ModelFacts) -> None:
        prompts = self.plan.suite.prompts
        if self.resume is not None and self.resume.model_done(model):
            return
        state = await self._warm(model, facts)
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
                        await self._judge(model, facts, batch, state)
            finally:
                if level_results:
                    self._levels.append(concurrency_row(model, level, level_results, wall_ns / 1e9))

    async def _warm(self, model: str, facts: ModelFacts) -> _ModelState:
        """The model's cold loads and warm-ups, then where it runs; raises to skip it."""
        prompts = self.plan.suite.prompts
        load: LoadInfo = {"model": model, "load_ms": None}
        warmups = self.plan.warmup
        if self.plan.cold:
            loads: list[float] = []
            forced = True  # every load came after an unload (not on an API that cannot unload)
            for k in range(self.plan.cold_runs):
                forced = await self._unload(model) and forced
                identity = Identity(model, prompts[0].id, prompts[0].category, k, 1)
                result = await self._warmup(identity, prompts[0])
                if result["load_ms"] is not None:
                    loads.append(result["load_ms"])
            load["load_ms"] = round(statistics.median(loads), 6) if loads else None
            load["load_runs_ms"] = loads
            load["state"] = "cold" if forced else _load_state(load["load_ms"])
            self._cold_loads.append(load)
            warmups = max(warmups - 1, 0)  # the cold loads were warm-ups too
        for i in range(warmups):
            identity = Identity(model, prompts[0].id, prompts[0].category, i, 1)
            result = await self._warmup(identity, prompts[0])
            if i == 0 and not self.plan.cold:
                load["load_ms"] = result["load_ms"]
                load["state"] = _load_state(result["load_ms"])
                self._cold_loads.append(load)
        state = _ModelState(resident_known=warmups > 0 or self.plan.cold)
        if state.resident_known:
            await self._residency(model, facts)
        return state

    async def _judge(
        self, model: str, facts: ModelFacts, batch: Sequence[RequestResult], state: _ModelState
    ) -> None:
        """After a measured batch: the server gone, residency if still unknown, fail fast."""
        self._check_server()
        if not state.resident_known and any(r["ok"] for r in batch):
            state.resident_known = True  # no warm-up: the first reply loaded it
            await self._residency(model, facts)
        for result in batch:
            state.in_a_row = 0 if result["ok"] else state.in_a_row + 1
        if state.in_a_row >= MAX_FAILURES_IN_A_ROW:
            error = batch[-1]["error"] or t("report.unknown_error")
            raise _SkipModel(t("bench.skipped_failures", count=state.in_a_row, error=error))

    async def _warmup(self, identity: Identity, prompt: Prompt) -> RequestResult:
        """One unmeasured request; a failed one skips the model (or ends the run)."""
        result = await self._request(identity, prompt, warmup=True)
        self._check_server()
        if not result["ok"]:
            error = result["error"] or t("report.unknown_error")
            raise _SkipModel(t("bench.skipped_warmup", error=error))
        return result

    async def _unload(self, model: str) -> bool:
        """``keep_alive: 0`` with no prompt: the model leaves memory (``--cold``); False when
        the API cannot unload (OpenAI-compatible), so the load that follows is not forced."""
        try:
            return await self.client.unload(model)
        except OllamakitError as exc:
            self._count_connection(exc)
            self._check_server()
            raise _SkipModel(t("bench.skipped_unload", error=exc.short)) from None

    async def _residency(self, model: str, facts: ModelFacts) -> None:
        """Where the model runs now (``/api/ps``), into ``facts``; nothing when unknown."""
        try:
            found = await self.client.residency()
        except OllamakitError:
            self.residency_absent[model] = "ps_failed"  # an old proxy rule: unknown
            return
        if found is None:  # the API has no /api/ps (another engine)
            self.residency_absent[model] = "no_api_ps"
            return
        match = _find_residency(model, found)
        if match is None:
            self.residency_absent[model] = "not_listed"
            return
        self.residency_absent.pop(model, None)
        share = match.gpu_share
        facts["size"] = match.size_bytes
        facts["size_vram"] = match.vram_bytes
        facts["gpu_share"] = None if share is None else round(share, 4)
        facts["context_length"] = match.context_length
        facts["expires_at"] = match.expires_at

    def _count_connection(self, error: OllamakitError | None) -> None:
        if isinstance(error, ConnectFailed | ConnectionLost):
            self._connection_failures += 1
        else:
            self._connection_failures = 0

    def _check_server(self) -> None:
        if self._connection_failures >= MAX_CONNECTION_FAILURES:
            raise _ServerGone(t("bench.server_gone", count=self._connection_failures))

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
            keep_alive=self.plan.keep_alive,
        )
        stream = client.stream_chat(request)
        recorder: ReplyRecorder | None = None
        error: str | None = None
        failure: OllamakitError | None = None
        end: StreamEnd | None = None  # the stream's own unless the deadline ended it
        started_at = now_iso()
        async with contextlib.AsyncExitStack() as closing:
            try:
                async with asyncio.timeout(self.plan.timeout_s):
                    await closing.enter_async_context(stream)
                    recorder = ReplyRecorder(stream.sent_ns, rtt_ms=self._rtt_ms)
                    await stream.read_into(recorder.chunks)  # kept as they come
            except TimeoutError:
                error = t("bench.timeout", seconds=f"{self.plan.timeout_s:g}")
                end = "timeout"
            except OllamakitError as exc:
                error = exc.short
                failure = exc
            if gate is not None:
                await gate.pass_when_all_arrived()
        if recorder is None:  # failed before the request was sent
            recorder = ReplyRecorder(stream.sent_ns, rtt_ms=self._rtt_ms)
        result = recorder.finish(end or stream.end, error).to_result(identity)
        result["started_at"] = started_at
        result["server"] = self.server_name
        self._count_connection(failure)
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


def _load_state(load_ms: float | None) -> str | None:
    """``"already_loaded"`` below :data:`WARM_LOAD_MS`, ``"cold"`` above, None when unknown.

    >>> _load_state(2.3), _load_state(1843.0), _load_state(None)
    ('already_loaded', 'cold', None)
    """
    if load_ms is None:
        return None
    return "already_loaded" if load_ms < WARM_LOAD_MS else "cold"


def _find_residency(model: str, found: Sequence[Residency]) -> Residency | None:
    """The ``/api/ps`` entry of ``model`` (``llama3.2`` is ``llama3.2:latest`` there).

    >>> ps = [Residency("llama3.2:latest", 10, 10), Residency("qwen3:8b", 10, 5)]
    >>> _find_residency("llama3.2", ps).model, _find_residency("qwen3:8b", ps).vram_bytes
    ('llama3.2:latest', 5)
    >>> _find_residency("gemma3", ps) is None
    True
    """

    def full(name: str) -> str:
        return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

    return next((r for r in found if full(r.model) == full(model)), None)


def residency_hints(models: Sequence[ModelFacts]) -> list[str]:
    """One warning per partly offloaded (or CPU-only) model, with what to do about it.

    >>> residency_hints([{"model": "m", "skipped": None, "gpu_share": 1.0}])
    []
    >>> "OLLAMA_FLASH_ATTENTION=1" in residency_hints(
    ...     [{"model": "m", "skipped": None, "gpu_share": 0.63, "context_length": 8192}])[0]
    True
    """
    hints: list[str] = []
    for facts in models:
        share = facts.get("gpu_share")
        if share is None or share >= FULL_GPU_SHARE:
            continue
        context = facts.get("context_length")
        hints.append(
            t(
                "bench.hint_offload",
                model=facts["model"],
                where=gpu_text(share),
                num_ctx=context if context else "?",
            )
        )
    return hints


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
    >>> two = flat + [{**row, "model": "n"} for row in flat]
    >>> [h.count("OLLAMA_NUM_PARALLEL") > 0 for h in throughput_hints(two)]  # said once
    [True]
    >>> throughput_hints([{"model": "m", "concurrency": 1, "output_tps": 50.0}])
    []
    """
    by_model: dict[str, list[ConcurrencyRow]] = {}
    for row in rows:
        by_model.setdefault(row.get("model", "?"), []).append(row)
    hints: list[str] = []
    flat: list[str] = []
    for model, model_rows in by_model.items():
        level = saturation_level(model_rows)
        if level is None:
            continue
        lowest = min(r.get("concurrency", 1) for r in model_rows)
        tps = next((r.get("output_tps") for r in model_rows if r.get("concurrency") == level), None)
        shown_tps = "?" if tps is None or not math.isfinite(tps) else f"{tps:.1f}"
        if level == lowest == 1:
            flat.append(t("bench.hint_flat_model", model=model, tps=shown_tps))
        else:
            hints.append(t("bench.hint_saturation", model=model, level=level, tps=shown_tps))
    if flat:  # the OLLAMA_NUM_PARALLEL advice once, for all the models it concerns
        hints.insert(0, t("bench.hint_flat", models="; ".join(flat)))
    return hints


__all__ = [
    "KEEP_ALIVE",
    "MAX_CONNECTION_FAILURES",
    "MAX_FAILURES_IN_A_ROW",
    "RTT_SAMPLES",
    "BenchPlan",
    "Event",
    "NullSink",
    "ResultSink",
    "Resumed",
    "Runner",
    "StoreSink",
    "buffering_hints",
    "residency_hints",
    "thinking_cap_hints",
    "throughput_hints",
]
