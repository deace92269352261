"""The asynchronous shell: :class:`AsyncOllamaClient` for the benchmark and ``chat --auto``.

Many streams run at once there and a per-model deadline must be exact (``asyncio.timeout``).
The twin of :mod:`~ollamakit.client.sync`, method for method; only the waiting differs.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Self, cast

import httpx

from ollamakit.client.core import MAX_BODY_BYTES, Core, Deadline, chat_body, generate_body
from ollamakit.client.judge import ERROR_BODY_LIMIT
from ollamakit.client.log import log_answer, log_no_answer
from ollamakit.client.stream import NDJSON, StreamDecoder, StreamKind, StreamState
from ollamakit.client.sync import _models, build, client_kwargs, too_large, translate_for
from ollamakit.client.transport import AsyncFastTransport
from ollamakit.config import Settings
from ollamakit.domain import StreamChunk, StreamEnd
from ollamakit.types import Message, ModelEntry, Options, RunningModel


def async_transport(
    verify: ssl.SSLContext | bool, limits: httpx.Limits, *, fast: bool
) -> httpx.AsyncBaseTransport:
    """Async twin of :func:`ollamakit.client.sync.sync_transport`."""

    def own() -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=True)

    if not fast:
        return own()
    return AsyncFastTransport(verify=verify, fallback=own, max_idle=limits.max_connections or 64)


class AsyncChunkStream:
    """Async twin of :class:`~ollamakit.client.sync.ChunkStream`:
    ``async with ... as s: async for chunk in s``."""

    def __init__(
        self,
        core: Core,
        http: httpx.AsyncClient,
        path: str,
        body: Mapping[str, Any],
        kind: StreamKind = NDJSON,
        decoder: StreamDecoder | None = None,
    ) -> None:
        self._state = StreamState(core, path, body, kind, decoder)
        self._http = http
        self._response: httpx.Response | None = None

    @property
    def sent_ns(self) -> int:
        return self._state.sent_ns

    @property
    def headers_ns(self) -> int:
        return self._state.headers_ns

    @property
    def end(self) -> StreamEnd | None:
        return self._state.end

    async def __aenter__(self) -> Self:
        state = self._state
        core = state.core
        request = state.request(functools.partial(build, core, self._http))
        state.sent_ns = time.perf_counter_ns()
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            log_no_answer("POST", state.url, exc, state.sent_ns)
            state.end = "error"
            raise translate_for(core, exc, state.path, state.deadline) from None
        self._response = response
        if not state.head(response):
            try:
                body = await aread_limited(response, state.deadline)
            except httpx.HTTPError:
                body = b""
            finally:
                await response.aclose()
            state.refuse(response, body)
        return self

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        assert self._response is not None, "use the stream as an async context manager"
        self._state.begin()
        return self._chunks(self._response)

    async def read_into(self, chunks: list[StreamChunk]) -> None:
        """Append every chunk of the reply to ``chunks`` as it comes: one list extend per
        socket read instead of one async-generator step per chunk (the benchmark's path;
        each chunk keeps its read's arrival stamp). Raises as iteration would, after the
        chunks before it; once only, like iteration."""
        assert self._response is not None, "use the stream as an async context manager"
        self._state.begin()
        extend = chunks.extend
        async for batch in self._reads(self._response):
            extend(batch)

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[StreamChunk]:
        async for batch in self._reads(response):
            for chunk in batch:
                yield chunk

    async def _reads(self, response: httpx.Response) -> AsyncIterator[list[StreamChunk]]:
        state = self._state
        take = state.take
        try:
            # As the sync twin: one batch per socket read; the end of the body is a clean end.
            async for data in response.aiter_bytes():
                batch = take(data)
                if batch:
                    yield batch
            last = state.end_of_body()
            if last:
                yield last
        except httpx.HTTPError as exc:
            error = translate_for(state.core, exc, state.path, state.deadline)
            state.failed(error)
            raise error from None
        except BaseException as exc:
            state.failed(exc)
            raise
        state.finished()

    async def aclose(self) -> None:
        if self._response is not None:
            self._state.closing()
            await self._response.aclose()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def aread_limited(response: httpx.Response, deadline: Deadline | None = None) -> bytes:
    """Async twin of :func:`ollamakit.client.sync.read_limited` (the start of an error body)."""
    body = b""
    async for data in response.aiter_raw():
        body += data
        if len(body) > ERROR_BODY_LIMIT or (deadline is not None and deadline.expired()):
            break
    return body


async def aread_body(
    core: Core, response: httpx.Response, deadline: Deadline | None, path: str
) -> bytes:
    """Async twin of :func:`ollamakit.client.sync.read_body`; closes ``response``."""
    parts: list[bytes] = []
    size = 0
    clock = time.perf_counter_ns
    try:
        async for data in response.aiter_bytes():
            size += len(data)
            if size > MAX_BODY_BYTES:
                raise too_large(core, path)
            parts.append(data)
            core.check_deadline(deadline, path, clock())
    finally:
        await response.aclose()
    return b"".join(parts)


class AsyncOllamaClient:
    """Asynchronous client for one server; ``async with AsyncOllamaClient(settings) as c``."""

    def __init__(
        self,
        settings: Settings,
        *,
        read_timeout_s: float | None = None,
        deadline_s: float | None = None,
        deadline_setting: str | None = None,
        max_connections: int = 64,
        fast: bool = True,
    ) -> None:
        """``deadline_s``/``deadline_setting``: as :class:`~ollamakit.client.OllamaClient`."""
        self._core = Core(
            settings,
            read_timeout_s or settings.benchmark_timeout_s,
            deadline_s=deadline_s,
            deadline_setting=deadline_setting,
        )
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        kwargs = client_kwargs(self._core)
        #: The transport streams go through (:mod:`ollamakit.client.transport`).
        self.transport = async_transport(kwargs["verify"], limits, fast=fast)
        self._http = httpx.AsyncClient(limits=limits, transport=self.transport, **kwargs)
        self.server = settings.base_url

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def deadline_s(self) -> float | None:
        """The total time one request may take (None: unbounded but for the read timeout)."""
        return self._core.deadline_s

    async def _get(
        self, path: str, *, method: str = "GET", json: Any = None, model: str | None = None
    ) -> tuple[int, str, bytes]:
        core = self._core
        url = self.server.url(path)
        deadline = core.deadline()
        request = build(core, self._http, method, url, deadline, json=json)
        start = time.perf_counter_ns()
        try:
            response = await self._http.send(request, stream=True)
            body = await aread_body(core, response, deadline, path)
        except httpx.HTTPError as exc:
            log_no_answer(method, url, exc, start)
            raise translate_for(core, exc, path, deadline) from None
        log_answer(method, url, response.status_code, start)
        self._core.check(response.status_code, response.headers, body, path, model)
        return response.status_code, response.headers.get("content-type", "?"), body

    async def _json(
        self, path: str, *, method: str = "GET", json: Any = None, model: str | None = None
    ) -> Any:
        status, content_type, body = await self._get(path, method=method, json=json, model=model)
        return self._core.decode_json(status, content_type, body, path)

    async def heartbeat(self) -> str:
        status, content_type, body = await self._get("/")
        return self._core.check_heartbeat(status, content_type, body)

    async def version(self) -> str:
        data = await self._json("/api/version")
        return str(data.get("version", "?")) if isinstance(data, dict) else "?"

    async def list_models(self) -> list[ModelEntry]:
        return cast(list[ModelEntry], _models(await self._json("/api/tags")))

    async def running_models(self) -> list[RunningModel]:
        return cast(list[RunningModel], _models(await self._json("/api/ps")))

    async def show(self, model: str) -> dict[str, Any]:
        data = await self._json("/api/show", method="POST", json={"model": model}, model=model)
        return data if isinstance(data, dict) else {}

    async def rtt_ms(self, path: str = "/api/version") -> float:
        """Round-trip time of one small request, in milliseconds."""
        start = time.perf_counter_ns()
        await self._get(path)
        return (time.perf_counter_ns() - start) / 1e6

    async def post_json(self, path: str, body: dict[str, Any], *, model: str | None = None) -> Any:
        """POST a JSON body, judge the answer, return its decoded JSON."""
        return await self._json(path, method="POST", json=body, model=model)

    def stream_chat(
        self,
        model: str,
        messages: list[Message],
        *,
        options: Options | None = None,
        think: bool | str | None = None,
        keep_alive: str | float | None = None,
    ) -> AsyncChunkStream:
        body = chat_body(model, messages, options, think, keep_alive, stream=True)
        return AsyncChunkStream(self._core, self._http, "/api/chat", body)

    def stream_body(self, path: str, body: dict[str, Any]) -> AsyncChunkStream:
        """A stream of any NDJSON endpoint with a prepared body (used by the backend)."""
        return AsyncChunkStream(self._core, self._http, path, body)

    def stream_generate(
        self,
        model: str,
        prompt: str,
        *,
        options: Options | None = None,
        think: bool | str | None = None,
        keep_alive: str | float | None = None,
        system: str | None = None,
    ) -> AsyncChunkStream:
        body = generate_body(model, prompt, options, think, keep_alive, system, stream=True)
        return AsyncChunkStream(self._core, self._http, "/api/generate", body)
