"""OpenAI-compatible servers behind the backend protocol, and ``--api auto`` detection.

Design
------
llama.cpp's ``llama-server``, vLLM, LM Studio, SGLang and Ollama's own ``/v1`` are spoken to
through ``GET /v1/models`` and ``POST /v1/chat/completions`` (``stream: true``,
``stream_options.include_usage``). The bytes are decoded by the sans-I/O
:mod:`~ollamakit.client.openai_wire`; everything else is the shared core, exactly as for
Ollama: :class:`~ollamakit.client.core.Core` (Basic auth from the URL's userinfo, Bearer from
``OLLAMA_API_KEY``, the one TLS trust context, timeouts), :mod:`~ollamakit.client.judge`
(a 401 or a 502 reads the same whichever API was asked), the one stream shell
(:mod:`~ollamakit.client.stream`, with the SSE kind and decoder) and the chunked-body fast
path (:mod:`ollamakit.client.transport`), so arrival stamps are taken the same way for both
APIs (one per socket read) and a comparison of the two measures the servers, not the client.
(The fast path was once taken off SSE because a reasoning stream's thinking and answer
arrived in one read: that was the socket, not the transport: on a reused connection to the
simulator the rest of a short reply came ~40 ms late in one read, for a raw socket too (a
delayed ACK); httpx's own transport saw the same read but stamped each frame as it parsed it,
0.05 ms apart. See docs/performance.md.)

* :class:`OpenAIBackend` / :class:`AsyncOpenAIBackend` — the sync/async twins.
  ``residency()`` is ``None`` (no ``/api/ps``) and ``unload()`` is ``False``: the doctor and
  the benchmark say what cannot be checked rather than failing.
* :class:`AutoBackend` / :class:`AsyncAutoBackend` (``--api auto``) — ``connect()`` asks
  ``/api/version`` first (→ Ollama's native API); if that route is missing or answers
  something that is not Ollama's version, ``GET /v1/models`` (→ this backend, naming the
  engine); if neither, the Ollama error stands (its diagnosis names the likely cause).
  Connection, TLS and authentication failures are never "another API": they are raised at
  once.
* :func:`identity_line` — the one line that says what answered.

**The prefix cache.** llama.cpp reuses the cached prefix of a slot's previous prompt.
``cache_prompt: false`` is *not* sent by default: a benchmark measures the server as users get
it, and :class:`~ollamakit.domain.FinalStats` shows the effect (``prompt_cached_count``, and a
``prompt_eval_count`` that counts only evaluated tokens). Pass ``extra={"cache_prompt":
False}`` to the backend for cold-prefill figures on llama.cpp.

A base URL that ends in ``/v1`` (as OpenAI clients are usually configured) is accepted: the
``/v1`` is not doubled.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, Self

import httpx
import orjson

from ollamakit.client.aio import AsyncChunkStream, aread_body, async_transport
from ollamakit.client.backend import AsyncBackend, AsyncReplyStream, Backend, ReplyStream
from ollamakit.client.core import Core
from ollamakit.client.judge import first_line
from ollamakit.client.log import log_answer, log_no_answer
from ollamakit.client.ollama import AsyncOllamaBackend, OllamaBackend
from ollamakit.client.openai_wire import (
    ChatStreamDecoder,
    chat_body,
    engine_from_models,
    models_from_list,
    version_from_props,
)
from ollamakit.client.stream import StreamKind
from ollamakit.client.sync import (
    ChunkStream,
    build,
    client_kwargs,
    read_body,
    sync_transport,
    translate_for,
)
from ollamakit.config import Settings
from ollamakit.domain import (
    ChatRequest,
    ModelInfo,
    Residency,
    ServerIdentity,
    StreamChunk,
    StreamEnd,
)
from ollamakit.errors import (
    MethodNotAllowed,
    NotFoundError,
    NotOllama,
    OllamaError,
    ProtocolError,
)
from ollamakit.i18n import t

UNKNOWN: Final = ServerIdentity(api="openai", engine="openai-compatible", version=None)
CHAT_PATH: Final = "/v1/chat/completions"
MODELS_PATH: Final = "/v1/models"
SSE_ACCEPT: Final = {"Content-Type": "application/json", "Accept": "text/event-stream"}

#: llama-server (cpp-httplib) closes the connection after every streamed reply without saying
#: so; the next request sent on it fails with "Server disconnected without sending a
#: response" (the engine tier saw it on 2 runs in 5). Asking for ``Connection: close`` makes
#: the close expected, so the pool opens a fresh connection for the next request (a local
#: TCP connect, well under a millisecond, inside the next TTFT).
SSE_ACCEPT_CLOSE: Final = {**SSE_ACCEPT, "Connection": "close"}


def _stream_headers(identity: ServerIdentity) -> dict[str, str]:
    return SSE_ACCEPT_CLOSE if identity.engine == "llama.cpp" else SSE_ACCEPT


#: What ``/api/version`` may answer on a server that is not Ollama: try ``/v1`` next.
_NOT_OLLAMA: Final = (NotFoundError, NotOllama, MethodNotAllowed)


def _api_path(core: Core, path: str) -> str:
    """``path`` under the base URL, without doubling a ``/v1`` the base URL already ends in.

    >>> from ollamakit.config import Settings, parse_base_url
    >>> _api_path(Core(Settings(parse_base_url("http://h:8080/v1")), 5), "/v1/models")
    '/models'
    >>> _api_path(Core(Settings(parse_base_url("http://h:8080")), 5), "/v1/models")
    '/v1/models'
    """
    if core.server.path.endswith("/v1") and path.startswith("/v1/"):
        return path[3:]
    return path


def identity_line(identity: ServerIdentity, url: str) -> str:
    """The one line that says what answered (``--api auto``).

    >>> from ollamakit.i18n import set_language
    >>> set_language("en")
    >>> identity_line(ServerIdentity("openai", "llama.cpp", "b6915-a1b2c3d"), "http://h:8080")
    'http://h:8080: llama.cpp b6915-a1b2c3d, OpenAI-compatible API (/v1)'
    >>> identity_line(ServerIdentity("ollama", "ollama", "0.12.6"), "http://h:11434")
    'http://h:11434: Ollama 0.12.6, native API (/api)'
    """
    names = {"ollama": "Ollama", "vllm": "vLLM", "lm-studio": "LM Studio", "sglang": "SGLang"}
    engine = names.get(identity.engine, identity.engine)
    key = "engine.identity_native" if identity.api == "ollama" else "engine.identity_openai"
    version = f" {identity.version}" if identity.version else ""
    return t(key, url=url, engine=engine, version=version)


def _identity(
    models: object, props: object = None, ollama_version: str | None = None
) -> ServerIdentity:
    """The engine from what the server answered (pure; the probing is in the backends).

    >>> _identity({"data": [{"id": "m", "owned_by": "llamacpp"}]}, {"build_info": "b1-x"})
    ServerIdentity(api='openai', engine='llama.cpp', version='b1-x')
    >>> _identity({"data": []}, None, "0.12.6")
    ServerIdentity(api='openai', engine='ollama', version='0.12.6')
    >>> _identity({"data": [{"id": "gpt", "owned_by": "openai"}]})
    ServerIdentity(api='openai', engine='openai-compatible', version=None)
    """
    engine = engine_from_models(models)
    version = version_from_props(props) or None
    if engine is None and version is not None:
        engine = "llama.cpp"  # an llama-server build that names itself otherwise in /v1/models
    if ollama_version is not None:
        engine, version = "ollama", ollama_version
    return ServerIdentity(api="openai", engine=engine or "openai-compatible", version=version)


def _json_or_none(probe_status: int, body: bytes) -> object:
    if not 200 <= probe_status < 300:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _ollama_version(status: int, body: bytes) -> str | None:
    data = _json_or_none(status, body)
    if isinstance(data, dict) and isinstance(data.get("version"), str):
        return str(data["version"])
    return None


def _pick(models: list[ModelInfo], name: str) -> ModelInfo:
    """The listed model ``name``; llama-server serves one model whatever the name asked."""
    for info in models:
        if info.name == name:
            return info
    return ModelInfo(name=name)


# --------------------------------------------------------------------------- streams


def _event_stream_head(status: int, content_type: str) -> bool:
    return 200 <= status < 300 and "text/event-stream" in content_type


def _not_event_stream(
    core: Core, path: str, status: int, headers: httpx.Headers, body: bytes
) -> Exception:
    """A 2xx that is not an event stream."""
    content_type = headers.get("content-type", "?")
    return ProtocolError(
        t("engine.not_event_stream", content_type=content_type, line=first_line(body)),
        **core.where(path),
    )


def sse_kind(headers: Mapping[str, str] = SSE_ACCEPT) -> StreamKind:
    """The :class:`~ollamakit.client.stream.StreamKind` of ``/v1/chat/completions``."""
    return StreamKind(headers=headers, accepts=_event_stream_head, not_a_stream=_not_event_stream)


class OpenAIChunkStream(ChunkStream):
    """A streamed ``/v1/chat/completions`` reply: ``with backend.stream_chat(r) as s``.

    The one stream shell (:class:`~ollamakit.client.sync.ChunkStream`) with the SSE kind and
    decoder: ``sent_ns`` just before sending, ``headers_ns`` at the response head, chunks
    stamped per socket read, iterable once, ``end`` set when iteration stops; closing early
    drops the connection (which is how llama-server learns to stop generating).
    """

    def __init__(
        self,
        core: Core,
        http: httpx.Client,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str] = SSE_ACCEPT,
    ) -> None:
        self._sse = ChatStreamDecoder(core.url(path))
        super().__init__(core, http, path, body, sse_kind(headers), self._sse)

    @property
    def decoder(self) -> ChatStreamDecoder:
        return self._sse


class AsyncOpenAIChunkStream(AsyncChunkStream):
    """Async twin of :class:`OpenAIChunkStream`: ``async with ... as s: async for chunk in s``."""

    def __init__(
        self,
        core: Core,
        http: httpx.AsyncClient,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str] = SSE_ACCEPT,
    ) -> None:
        self._sse = ChatStreamDecoder(core.url(path))
        super().__init__(core, http, path, body, sse_kind(headers), self._sse)

    @property
    def decoder(self) -> ChatStreamDecoder:
        return self._sse


# --------------------------------------------------------------------------- backends


class OpenAIBackend:
    """The synchronous OpenAI-compatible backend (chat REPL, doctor).

    ``extra`` adds fields to every chat body (llama.cpp's ``cache_prompt``); none by default.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        read_timeout_s: float | None = None,
        deadline_s: float | None = None,
        deadline_setting: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.core = Core(
            settings,
            read_timeout_s or settings.benchmark_timeout_s,
            deadline_s=deadline_s,
            deadline_setting=deadline_setting,
        )
        # The same transport as the Ollama client: arrival stamps taken alike (one per socket
        # read), and a pooled connection the server closed silently is retried fresh.
        kwargs = client_kwargs(self.core)
        self._http = httpx.Client(transport=sync_transport(kwargs["verify"], fast=True), **kwargs)
        self.extra = dict(extra or {})
        self.identity = UNKNOWN

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, path: str) -> tuple[int, bytes]:
        """GET ``path``; the status and body, judging nothing (transport errors translated)."""
        path = _api_path(self.core, path)
        url = self.core.url(path)
        deadline = self.core.deadline()
        request = build(self.core, self._http, "GET", url, deadline)
        start = time.perf_counter_ns()
        try:
            response = self._http.send(request, stream=True)
            body = read_body(self.core, response, deadline, path)
        except httpx.HTTPError as exc:
            log_no_answer("GET", url, exc, start)
            raise translate_for(self.core, exc, path, deadline) from None
        log_answer("GET", url, response.status_code, start)
        return response.status_code, body

    def _models_body(self) -> Any:
        path = _api_path(self.core, MODELS_PATH)
        status, body = self._send(MODELS_PATH)
        self.core.check(status, httpx.Headers(), body, path, None)
        data = self.core.decode_json(status, "application/json", body, path)
        try:
            models_from_list(data)
        except ValueError:
            raise ProtocolError(
                t("engine.not_model_list", line=first_line(body)), **self.core.where(path)
            ) from None
        return data

    def connect(self) -> ServerIdentity:
        models = self._models_body()
        props: object = None
        ollama: str | None = None
        engine = engine_from_models(models)
        if engine in (None, "llama.cpp"):
            props = _json_or_none(*self._send("/props"))
        if engine in (None, "ollama") and version_from_props(props) is None:
            ollama = _ollama_version(*self._send("/api/version"))
        self.identity = _identity(models, props, ollama)
        return self.identity

    def list_models(self) -> list[ModelInfo]:
        return models_from_list(self._models_body())

    def describe(self, model: str) -> ModelInfo:
        return _pick(self.list_models(), model)

    def residency(self) -> list[Residency] | None:
        return None

    def stream_chat(self, request: ChatRequest) -> OpenAIChunkStream:
        body = chat_body(request, extra=self.extra)
        path = _api_path(self.core, CHAT_PATH)
        return OpenAIChunkStream(self.core, self._http, path, body, _stream_headers(self.identity))

    def unload(self, model: str) -> bool:
        return False

    def close(self) -> None:
        self._http.close()


class AsyncOpenAIBackend:
    """The asynchronous OpenAI-compatible backend (benchmark, ``chat --auto``, load)."""

    def __init__(
        self,
        settings: Settings,
        *,
        read_timeout_s: float | None = None,
        deadline_s: float | None = None,
        deadline_setting: str | None = None,
        max_connections: int = 64,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.core = Core(
            settings,
            read_timeout_s or settings.benchmark_timeout_s,
            deadline_s=deadline_s,
            deadline_setting=deadline_setting,
        )
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        kwargs = client_kwargs(self.core)
        transport = async_transport(kwargs["verify"], limits, fast=True)
        self._http = httpx.AsyncClient(limits=limits, transport=transport, **kwargs)
        self.extra = dict(extra or {})
        self.identity = UNKNOWN

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, path: str) -> tuple[int, bytes]:
        path = _api_path(self.core, path)
        url = self.core.url(path)
        deadline = self.core.deadline()
        request = build(self.core, self._http, "GET", url, deadline)
        start = time.perf_counter_ns()
        try:
            response = await self._http.send(request, stream=True)
            body = await aread_body(self.core, response, deadline, path)
        except httpx.HTTPError as exc:
            log_no_answer("GET", url, exc, start)
            raise translate_for(self.core, exc, path, deadline) from None
        log_answer("GET", url, response.status_code, start)
        return response.status_code, body

    async def _models_body(self) -> Any:
        path = _api_path(self.core, MODELS_PATH)
        status, body = await self._send(MODELS_PATH)
        self.core.check(status, httpx.Headers(), body, path, None)
        data = self.core.decode_json(status, "application/json", body, path)
        try:
            models_from_list(data)
        except ValueError:
            raise ProtocolError(
                t("engine.not_model_list", line=first_line(body)), **self.core.where(path)
            ) from None
        return data

    async def connect(self) -> ServerIdentity:
        models = await self._models_body()
        props: object = None
        ollama: str | None = None
        engine = engine_from_models(models)
        if engine in (None, "llama.cpp"):
            props = _json_or_none(*await self._send("/props"))
        if engine in (None, "ollama") and version_from_props(props) is None:
            ollama = _ollama_version(*await self._send("/api/version"))
        self.identity = _identity(models, props, ollama)
        return self.identity

    async def list_models(self) -> list[ModelInfo]:
        return models_from_list(await self._models_body())

    async def describe(self, model: str) -> ModelInfo:
        return _pick(await self.list_models(), model)

    async def residency(self) -> list[Residency] | None:
        return None

    def stream_chat(self, request: ChatRequest) -> AsyncOpenAIChunkStream:
        body = chat_body(request, extra=self.extra)
        path = _api_path(self.core, CHAT_PATH)
        return AsyncOpenAIChunkStream(
            self.core, self._http, path, body, _stream_headers(self.identity)
        )

    async def unload(self, model: str) -> bool:
        return False

    async def aclose(self) -> None:
        await self._http.aclose()


# --------------------------------------------------------------------------- --api auto


class AutoBackend:
    """``--api auto``: Ollama's native API if ``/api/version`` says so, else ``/v1``.

    Detection happens in :meth:`connect` (called implicitly by the first other call); after
    it, every call goes to the chosen backend, available as :attr:`chosen`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        read_timeout_s: float | None = None,
        deadline_s: float | None = None,
        deadline_setting: str | None = None,
    ) -> None:
        self._settings = settings
        self._bounds: dict[str, Any] = {
            "read_timeout_s": read_timeout_s,
            "deadline_s": deadline_s,
            "deadline_setting": deadline_setting,
        }
        self.chosen: Backend | None = None
        self.identity = ServerIdentity(api="ollama", engine="ollama", version=None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> ServerIdentity:
        if self.chosen is not None:
            self.identity = self.chosen.connect()
            return self.identity
        ollama = OllamaBackend(self._settings, **self._bounds)
        try:
            identity = ollama.connect()
            if identity.version is not None:
                self.chosen, self.identity = ollama, identity
                return identity
            first: OllamaError | None = None
        except _NOT_OLLAMA as exc:
            first = exc
        except BaseException:
            ollama.close()
            raise
        ollama.close()
        openai = OpenAIBackend(self._settings, **self._bounds)
        try:
            self.identity = openai.connect()
        except OllamaError:
            openai.close()
            if first is not None:
                raise first from None
            raise
        self.chosen = openai
        return self.identity

    def _backend(self) -> Backend:
        if self.chosen is None:
            self.connect()
        assert self.chosen is not None
        return self.chosen

    def list_models(self) -> list[ModelInfo]:
        return self._backend().list_models()

    def describe(self, model: str) -> ModelInfo:
        return self._backend().describe(model)

    def residency(self) -> list[Residency] | None:
        return self._backend().residency()

    def stream_chat(self, request: ChatRequest) -> ReplyStream:
        return self._backend().stream_chat(request)

    def unload(self, model: str) -> bool:
        return self._backend().unload(model)

    def close(self) -> None:
        if self.chosen is not None:
            self.chosen.close()


class _DetectThenStream:
    """A stream asked of :class:`AsyncAutoBackend` before ``connect()``: it detects the API
    when entered (``stream_chat`` itself cannot wait), then is the chosen backend's stream."""

    def __init__(self, auto: AsyncAutoBackend, request: ChatRequest) -> None:
        self._auto = auto
        self._request = request
        self._inner: AsyncReplyStream | None = None

    @property
    def sent_ns(self) -> int:
        return self._inner.sent_ns if self._inner is not None else 0

    @property
    def headers_ns(self) -> int:
        return self._inner.headers_ns if self._inner is not None else 0

    @property
    def end(self) -> StreamEnd | None:
        return self._inner.end if self._inner is not None else None

    async def __aenter__(self) -> Self:
        backend = await self._auto._backend()
        self._inner = backend.stream_chat(self._request)
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._inner is not None:
            await self._inner.__aexit__(*exc)

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        assert self._inner is not None, "use the stream as an async context manager"
        return self._inner.__aiter__()

    async def read_into(self, chunks: list[StreamChunk]) -> None:
        assert self._inner is not None, "use the stream as an async context manager"
        await self._inner.read_into(chunks)


class AsyncAutoBackend:
    """Async twin of :class:`AutoBackend`."""

    def __init__(
        self,
        settings: Settings,
        *,
        read_timeout_s: float | None = None,
        deadline_s: float | None = None,
        deadline_setting: str | None = None,
        max_connections: int = 64,
    ) -> None:
        self._settings = settings
        self._bounds: dict[str, Any] = {
            "read_timeout_s": read_timeout_s,
            "deadline_s": deadline_s,
            "deadline_setting": deadline_setting,
            "max_connections": max_connections,
        }
        self.chosen: AsyncBackend | None = None
        self.identity = ServerIdentity(api="ollama", engine="ollama", version=None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def connect(self) -> ServerIdentity:
        if self.chosen is not None:
            self.identity = await self.chosen.connect()
            return self.identity
        ollama = AsyncOllamaBackend(self._settings, **self._bounds)
        try:
            identity = await ollama.connect()
            if identity.version is not None:
                self.chosen, self.identity = ollama, identity
                return identity
            first: OllamaError | None = None
        except _NOT_OLLAMA as exc:
            first = exc
        except BaseException:
            await ollama.aclose()
            raise
        await ollama.aclose()
        openai = AsyncOpenAIBackend(self._settings, **self._bounds)
        try:
            self.identity = await openai.connect()
        except OllamaError:
            await openai.aclose()
            if first is not None:
                raise first from None
            raise
        self.chosen = openai
        return self.identity

    async def _backend(self) -> AsyncBackend:
        if self.chosen is None:
            await self.connect()
        assert self.chosen is not None
        return self.chosen

    async def list_models(self) -> list[ModelInfo]:
        return await (await self._backend()).list_models()

    async def describe(self, model: str) -> ModelInfo:
        return await (await self._backend()).describe(model)

    async def residency(self) -> list[Residency] | None:
        return await (await self._backend()).residency()

    def stream_chat(self, request: ChatRequest) -> AsyncReplyStream:
        backend = self.chosen
        if isinstance(backend, AsyncOpenAIBackend | AsyncOllamaBackend):
            return backend.stream_chat(request)
        return _DetectThenStream(self, request)

    async def unload(self, model: str) -> bool:
        return await (await self._backend()).unload(model)

    async def aclose(self) -> None:
        if self.chosen is not None:
            await self.chosen.aclose()
