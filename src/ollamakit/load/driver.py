"""The driver: the one module of ``load/`` that talks to a server and measures a reply.

:class:`OllamaDriver` turns a :class:`~ollamakit.load.engine.LoadRequest` into one streamed
``/api/chat`` request and its :class:`~ollamakit.load.engine.Outcome`. Everything else in
``load/`` (the engine's scheduling, the analysis, the reports, the Locust user's bookkeeping)
sees only ``LoadRequest``/``Outcome``, so switching to another client or recorder changes
this module alone. What it depends on today:

* ``ollamakit.client.AsyncOllamaClient(settings, read_timeout_s=, max_connections=)``,
  its ``stream_chat(model, messages, options=)`` → ``AsyncChunkStream`` (``sent_ns``;
  ``StreamChunk`` values and the stream's ``end``), ``version()``
  and ``aclose()``; the sync ``OllamaClient.stream_chat`` for :func:`measure_sync` (Locust);
* ``ollamakit.measure.ReplyRecorder`` (the one set of rules every tool measures a reply by:
  TTFT, TPOT, ITL and the server's figures), turned into an ``Outcome`` by
  :func:`outcome_from`;
* the error tree of ``ollamakit.errors`` for the error kinds (:func:`error_kind`).

The lean path (Ollama's API, no proxy): :class:`ollamakit.client.lean.LeanPool`, one pool
of keep-alive connections for the whole driver, asyncio protocol callbacks instead of httpx
(~3 ms of CPU per 20-chunk request through httpx, a whole core at ~300 streams; see
docs/performance.md, "Load generator capacity"). :meth:`OllamaDriver.prepare` opens the
connections a level needs before its clock starts, and a reply is read with one wake-up
(:meth:`~ollamakit.client.lean.LeanStream.read_into`). The same recorder, stamps and error
kinds as the httpx path (tests/load/test_driver_lean.py runs both). ``lean=False``, an
OpenAI-compatible server, or a proxy from the environment use the lanes below.

Connections ("lanes"): one ``AsyncOllamaClient`` per :data:`LANE_SIZE` concurrent streams.
One httpx pool of many connections re-examines every pooled connection whenever a request
starts or ends (bench/runner.py, "lanes"; profiled here at ~10 ms per request with 32
connections in a pool), which shows up as send lag; a request takes the first lane with room.
Creating a client of an ``https://`` server costs 40–200 ms on the 2-core test machine (it
builds an SSL context; one of an ``http://`` server builds none since the context became lazy),
so lanes are built in a worker thread of their own (OpenSSL releases the GIL while it loads
certificates; not the default executor, whose threads resolve host names for new connections):
:meth:`OllamaDriver.prepare` opens what a level needs *before* its clock starts (``users``
streams in a closed loop, ``rate × e2e p95 so far × 1.5`` in an open one), and while a level
runs a spare lane is built in the background whenever fewer than :data:`LANE_SIZE` slots are
free. :meth:`OllamaDriver.warmup` sends one unmeasured request first: it loads the model (a
cold load must not count as the first level's TTFT) and the client's lazy imports.

Every request runs under ``asyncio.timeout(timeout_s)`` end to end.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from ollamakit.client import (
    AsyncAutoBackend,
    AsyncBackend,
    AsyncOllamaBackend,
    AsyncOpenAIBackend,
    Backend,
    OllamaClient,
)
from ollamakit.client.lean import LeanPool, LeanStream, lean_usable
from ollamakit.config import Settings
from ollamakit.domain import ChatRequest, ServerIdentity, StreamChunk, StreamEnd
from ollamakit.errors import (
    ConnectFailed,
    ConnectionLost,
    HTTPError,
    OllamakitError,
    ProtocolError,
    ReadTimeout,
    ServerBusy,
)
from ollamakit.load.dataset import Item, messages_for
from ollamakit.load.engine import Level, LoadRequest, Outcome
from ollamakit.measure import ReplyRecorder
from ollamakit.measure.stats import percentile
from ollamakit.types import Message, Options

#: Concurrent streams per client (connection pool) before another one is opened.
LANE_SIZE: Final = 8


def error_kind(exc: BaseException) -> str:
    """The load report's error category for an exception.

    >>> error_kind(ServerBusy(status=503)), error_kind(TimeoutError()), error_kind(ValueError())
    ('busy', 'timeout', 'other')
    """
    if isinstance(exc, ServerBusy):
        return "busy"
    if isinstance(exc, TimeoutError | ReadTimeout):
        return "timeout"
    if isinstance(exc, HTTPError):
        return "http"
    if isinstance(exc, ProtocolError):
        return "stream"
    if isinstance(exc, ConnectFailed | ConnectionLost):
        return "connect"
    return "other"


def _short(exc: BaseException) -> str:
    if isinstance(exc, OllamakitError):
        return exc.short
    if isinstance(exc, TimeoutError):
        return "timeout"
    return f"{type(exc).__name__}: {exc}"[:200]


def outcome_from(
    sent_ns: int,
    end_ns: int,
    chunks: Sequence[StreamChunk],
    end: StreamEnd | None,
    exc: BaseException | None,
) -> Outcome:
    """Measure one reply with the one recorder (measure/) and keep what ``load`` reports."""
    error = None if exc is None else _short(exc)
    recorder = ReplyRecorder(sent_ns)
    for chunk in chunks:
        recorder.add(chunk)
    m = recorder.finish(end, error)
    if error is None and not m.ok:
        error = m.error or "no final chunk"
    final = m.final
    return Outcome(
        ok=error is None,
        sent_ns=sent_ns,
        end_ns=end_ns,
        error_kind=None if error is None else (error_kind(exc) if exc else "stream"),
        error=error,
        ttft_ms=m.ttft_ms,
        tpot_ms=m.tpot_ms,
        total_ms=m.total_ms,
        itl_p95_ms=m.itl_ms.p95,
        load_ms=m.load_ms,
        prompt_eval_count=None if final is None else final.prompt_eval_count,
        prompt_eval_ms=None if final is None else final.prompt_eval_ms,
        eval_count=m.eval_count,
        eval_ms=m.eval_ms,
        prompt_tps=m.prompt_tps,
        eval_tps=m.eval_tps,
        extra={
            "itl_ms": {"p50": m.itl_ms.p50, "p95": m.itl_ms.p95, "p99": m.itl_ms.p99},
            "done_reason": m.done_reason,
            "end": m.end,
        },
    )


def request_options(base: Options, item: Item) -> Options:
    """The suite's sampling options with the item's output cap (``max_tokens``) when it has one.

    >>> request_options({"temperature": 0.0, "num_predict": 256}, Item("a", "c", (), 40))
    {'temperature': 0.0, 'num_predict': 40}
    """
    options: Options = dict(base)  # type: ignore[assignment]
    if item.max_tokens is not None:
        cap = options.get("num_predict")
        options["num_predict"] = item.max_tokens if cap is None else min(cap, item.max_tokens)
    return options


class OllamaDriver:
    """Sends load requests to one model on one server (``async with OllamaDriver(...)``)."""

    def __init__(
        self,
        settings: Settings,
        model: str,
        *,
        options: Options | None = None,
        timeout_s: float = 300.0,
        marker: str = "load",
        lane_size: int = LANE_SIZE,
        lean: bool = True,
    ) -> None:
        self.settings = settings
        self.lane_size = lane_size
        self.model = model
        self.options: Options = options or {}
        self.timeout_s = timeout_s
        self.marker = marker
        self._lanes: list[AsyncBackend] = []
        self.api: str = settings.api  # "auto" until server_version() detected it
        self.identity: ServerIdentity | None = None
        self._busy: list[int] = []
        self._totals_ms: list[float] = []
        self._building: asyncio.Future[None] | None = None
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ollamakit-lanes")
        self.lean = lean  # the lean stream path for Ollama's API (client/lean.py)
        self._pool: LeanPool | None = None

    async def __aenter__(self) -> OllamaDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._building is not None:
            await asyncio.gather(self._building, return_exceptions=True)
        self._builder.shutdown(wait=False)
        lanes, self._lanes, self._busy = self._lanes, [], []
        for lane in lanes:
            await lane.aclose()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    @property
    def lean_pool(self) -> LeanPool | None:
        """The lean path's connection pool, once a request or ``prepare`` made it."""
        return self._pool

    def _lean_pool(self) -> LeanPool | None:
        """The lean path's pool, for Ollama's API on a server reached without a proxy."""
        if self._pool is None and self.lean and self.api == "ollama":
            if lean_usable(self.settings):
                self._pool = LeanPool(self.settings, read_timeout_s=self.timeout_s)
            else:
                self.lean = False
        return self._pool

    def _client(self) -> AsyncBackend:
        """A backend for the API (``auto`` only before :meth:`server_version` detected it)."""
        timeout, size = self.timeout_s, self.lane_size
        if self.api == "openai":
            backend = AsyncOpenAIBackend(
                self.settings, read_timeout_s=timeout, max_connections=size
            )
            if self.identity is not None:  # detected once: the engine decides the framing
                backend.identity = self.identity
            return backend
        if self.api == "ollama":
            return AsyncOllamaBackend(self.settings, read_timeout_s=timeout, max_connections=size)
        return AsyncAutoBackend(self.settings, read_timeout_s=timeout, max_connections=size)

    async def server_version(self) -> str:
        """What answers (``--api auto`` detects it here, once) and its version ("—" when an
        OpenAI-compatible server does not say); raises before the run when the server
        cannot be used."""
        client = self._client()
        try:
            self.identity = await client.connect()
        finally:
            await client.aclose()
        self.api = self.identity.api
        return self.identity.version or "—"

    def server_label(self) -> str:
        """``Ollama 0.33.0``, ``llama.cpp /v1``: what answered, for the plan line."""
        if self.identity is None:
            return "Ollama"
        names = {"ollama": "Ollama", "vllm": "vLLM", "lm-studio": "LM Studio", "sglang": "SGLang"}
        text = names.get(self.identity.engine, self.identity.engine)
        text += f" {self.identity.version}" if self.identity.version else ""
        return text + (" /v1" if self.identity.api == "openai" else "")

    async def list_models(self) -> list[str]:
        """The names the server lists (``/api/tags``, ``/v1/models``), in its order."""
        client = self._client()
        try:
            return [m.name for m in await client.list_models()]
        finally:
            await client.aclose()

    async def prepare(self, level: Level) -> None:
        """Open the lanes ``level`` needs before it starts (the engine's ``prepare`` hook)."""
        if level.kind == "users":
            streams = int(level.value)
        else:
            e2e_s = max(1.0, (percentile(self._totals_ms[-200:], 95) or 1000.0) / 1000)
            streams = math.ceil(level.value * e2e_s * 1.5)
        pool = self._lean_pool()
        if pool is not None:
            await pool.open(streams)
            return
        while len(self._lanes) * self.lane_size < streams:
            self._add_lane(await self._build_lane())

    async def _build_lane(self) -> AsyncBackend:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._builder, self._client)

    async def warmup(self, item: Item) -> Outcome:
        """One unmeasured request before the first level (model load, lazy imports).

        With ``--api auto`` not yet detected (a caller that skipped :meth:`server_version`)
        it detects first: an undetected lane detects on its first stream, building one more
        client per concurrent request, hundreds of ms each, inside the measured send."""
        if self.identity is None and self.api == "auto":
            await self.server_version()
        await self.prepare(Level("users", 1))
        return await self.send(LoadRequest(0, Level("users", 0), None, item, 0))

    def _add_lane(self, client: AsyncBackend) -> None:
        self._lanes.append(client)
        self._busy.append(0)

    def _top_up(self) -> None:
        """Build a spare lane in the background when fewer than ``lane_size`` slots are free."""
        free = len(self._lanes) * self.lane_size - sum(self._busy)
        if free >= self.lane_size or self._building is not None:
            return

        async def build() -> None:
            try:
                self._add_lane(await self._build_lane())
            finally:
                self._building = None

        self._building = asyncio.ensure_future(build())

    async def _take_lane(self) -> int:
        while True:
            for i, busy in enumerate(self._busy):
                if busy < self.lane_size:
                    self._busy[i] += 1
                    self._top_up()
                    return i
            self._top_up()
            assert self._building is not None
            await asyncio.shield(self._building)

    async def send(self, request: LoadRequest) -> Outcome:
        item: Item = request.item
        messages = messages_for(item, f"{self.marker} #{request.level.label}.{request.index}")
        options = request_options(self.options, item)
        pool = self._lean_pool()
        lane = -1 if pool is not None else await self._take_lane()
        client: AsyncBackend | LeanPool = pool if pool is not None else self._lanes[lane]
        chunks: list[StreamChunk] = []
        end: StreamEnd | None = None
        sent_ns = 0
        exc: BaseException | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                stream = client.stream_chat(chat_request(self.model, messages, options))
                try:
                    async with stream:
                        sent_ns = stream.sent_ns
                        if isinstance(stream, LeanStream):
                            await stream.read_into(chunks)  # one wake-up per reply
                        else:
                            async for chunk in stream:
                                chunks.append(chunk)
                        end = stream.end
                finally:
                    sent_ns = sent_ns or stream.sent_ns
        except (OllamakitError, TimeoutError) as error:
            exc = error
            end = "timeout" if isinstance(error, TimeoutError) else "error"
        finally:
            if lane >= 0:
                self._busy[lane] -= 1
        end_ns = time.perf_counter_ns()
        outcome = outcome_from(sent_ns or end_ns, end_ns, chunks, end, exc)
        if outcome.total_ms is not None:
            self._totals_ms.append(outcome.total_ms)
        return outcome


def chat_request(model: str, messages: Sequence[Message], options: Options) -> ChatRequest:
    """One load request as a :class:`ChatRequest` (any API)."""
    turns = tuple({"role": m["role"], "content": m["content"]} for m in messages)
    return ChatRequest(model, turns, dict(options))  # type: ignore[arg-type]


def measure_sync(
    client: OllamaClient | Backend, model: str, item: Item, options: Options, marker: str
) -> Outcome:
    """The same measurement with the synchronous client (the Locust user, under gevent)."""
    chunks: list[StreamChunk] = []
    end: StreamEnd | None = None
    exc: BaseException | None = None
    sent_ns = 0
    messages, opts = messages_for(item, marker), request_options(options, item)
    stream = (
        client.stream_chat(model, messages, options=opts)
        if isinstance(client, OllamaClient)
        else client.stream_chat(chat_request(model, messages, opts))
    )
    try:
        with stream:
            sent_ns = stream.sent_ns
            for chunk in stream:
                chunks.append(chunk)
            end = stream.end
    except OllamakitError as error:
        exc = error
        end = "error"
    end_ns = time.perf_counter_ns()
    sent_ns = sent_ns or stream.sent_ns or end_ns
    return outcome_from(sent_ns, end_ns, chunks, end, exc)


__all__ = [
    "LANE_SIZE",
    "OllamaDriver",
    "chat_request",
    "error_kind",
    "measure_sync",
    "outcome_from",
    "request_options",
]
