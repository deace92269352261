"""The synchronous shell: :class:`OllamaClient` for the chat REPL and ``doctor``.

Thin by design: requests are built by :class:`~ollamakit.client.core.Core`, responses judged
by :mod:`~ollamakit.client.judge`, streams decoded by :mod:`~ollamakit.client.ndjson`. What is
left here is waiting on httpx. :mod:`~ollamakit.client.aio` is its twin, method for method.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Self, cast

import httpx

from ollamakit.client.core import MAX_BODY_BYTES, Core, Deadline, Probe, chat_body, generate_body
from ollamakit.client.judge import ERROR_BODY_LIMIT, raise_for_response, translate, walk_causes
from ollamakit.client.log import log_answer, log_no_answer
from ollamakit.client.stream import NDJSON, StreamDecoder, StreamKind, StreamState
from ollamakit.client.tls import trust_label
from ollamakit.client.transport import DeadlineReached, FastTransport
from ollamakit.config import Settings
from ollamakit.domain import StreamChunk, StreamEnd
from ollamakit.errors import OllamaError, ProtocolError
from ollamakit.i18n import t
from ollamakit.types import ChatChunk, GenerateChunk, Message, ModelEntry, Options, RunningModel


def httpx_timeout(core: Core) -> httpx.Timeout:
    read = core.timeouts.read_s
    return httpx.Timeout(connect=core.timeouts.connect_s, read=read, write=read, pool=read)


def client_kwargs(core: Core) -> dict[str, Any]:
    return {
        "headers": core.headers,
        "timeout": httpx_timeout(core),
        "verify": core.verify(),
        "follow_redirects": False,
        "trust_env": True,
    }


def sync_transport(verify: ssl.SSLContext | bool, *, fast: bool) -> httpx.BaseTransport:
    """The fast stream transport over httpx's own (which it falls back to), or httpx's own."""

    def own() -> httpx.BaseTransport:
        return httpx.HTTPTransport(verify=verify, trust_env=True)

    return FastTransport(verify=verify, fallback=own) if fast else own()


def translate_for(
    core: Core, exc: httpx.HTTPError, path: str, deadline: Deadline | None = None
) -> OllamaError:
    """The error an httpx exception means; a timeout at ``deadline`` is the deadline's."""
    if deadline is not None and _is_deadline(core, exc, deadline):
        return core.deadline_error(deadline, path)
    return translate(
        exc, core.server, core.url(path), core.timeouts, trust=trust_label(core.settings)
    )


def _is_deadline(core: Core, exc: httpx.HTTPError, deadline: Deadline) -> bool:
    """Whether a timeout is the deadline's: the fast transport says so (a wait it cut); on
    httpx's own, a timeout at the deadline when the deadline is shorter than the read
    timeout. A server silent for the whole read timeout stays a read timeout ("sent
    nothing for N s"), also when the deadline is as long."""
    if not isinstance(exc, httpx.TimeoutException):
        return False
    if any(isinstance(cause, DeadlineReached) for cause in walk_causes(exc)):
        return True
    read_s = core.timeouts.read_s
    shorter = read_s is None or deadline.seconds < read_s - 0.05
    return shorter and core.deadline_passed(deadline)


def request_timeout(core: Core, deadline: Deadline | None) -> httpx.Timeout | None:
    """A request's own timeouts: each wait cut to the whole deadline (for httpx's own
    transport, which cannot know the deadline; the fast one cuts them to the time left).
    None: the client's defaults."""
    if deadline is None:
        return None
    bound = deadline.seconds
    connect, read = core.timeouts.connect_s, core.timeouts.read_s
    read = bound if read is None else min(read, bound)
    connect = bound if connect is None else min(connect, bound)
    return httpx.Timeout(connect=connect, read=read, write=read, pool=read)


def build(
    core: Core,
    http: httpx.Client | httpx.AsyncClient,
    method: str,
    url: str,
    deadline: Deadline | None,
    **kwargs: Any,
) -> httpx.Request:
    """``http.build_request`` with the deadline's timeouts and extension."""
    timeout = request_timeout(core, deadline)
    if timeout is not None:
        kwargs["timeout"] = timeout
        kwargs["extensions"] = core.extensions(deadline)
    return http.build_request(method, url, **kwargs)


def too_large(core: Core, path: str) -> ProtocolError:
    return ProtocolError(t("client.body_too_large", limit=MAX_BODY_BYTES), **core.where(path))


def read_body(core: Core, response: httpx.Response, deadline: Deadline | None, path: str) -> bytes:
    """A whole (non-streamed) body, bounded in size and by the deadline; closes ``response``.

    httpx errors propagate (the caller translates them)."""
    parts: list[bytes] = []
    size = 0
    clock = time.perf_counter_ns
    try:
        for data in response.iter_bytes():
            size += len(data)
            if size > MAX_BODY_BYTES:
                raise too_large(core, path)
            parts.append(data)
            core.check_deadline(deadline, path, clock())
    finally:
        response.close()
    return b"".join(parts)


class ChunkStream:
    """A streamed reply: ``with client.stream_chat(...) as s: for chunk in s: ...``.

    ``sent_ns`` is taken just before the request is sent, ``headers_ns`` when the response
    head arrived; chunks carry their own ``arrival_ns``; ``end`` says how it ended once the
    iteration stopped. Closing early aborts the request (the connection is dropped, which is
    how the server learns to stop generating). It can be iterated once. Ollama's NDJSON by
    default; ``kind`` and ``decoder`` make it an OpenAI SSE stream
    (:mod:`ollamakit.client.stream`).
    """

    def __init__(
        self,
        core: Core,
        http: httpx.Client,
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

    def __enter__(self) -> Self:
        state = self._state
        core = state.core
        request = state.request(functools.partial(build, core, self._http))
        state.sent_ns = time.perf_counter_ns()
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            log_no_answer("POST", state.url, exc, state.sent_ns)
            state.end = "error"
            raise translate_for(core, exc, state.path, state.deadline) from None
        self._response = response
        if not state.head(response):
            try:
                body = read_limited(response, state.deadline)
            except httpx.HTTPError:
                body = b""
            finally:
                response.close()
            state.refuse(response, body)
        return self

    def __iter__(self) -> Iterator[StreamChunk]:
        assert self._response is not None, "use the stream as a context manager"
        self._state.begin()
        return self._chunks(self._response)

    def _chunks(self, response: httpx.Response) -> Iterator[StreamChunk]:
        state = self._state
        take = state.take
        try:
            # Each item is one socket read's payload (client/transport.py). A body cut short
            # raises from httpx; reaching the end means it ended cleanly.
            for data in response.iter_bytes():
                yield from take(data)
            yield from state.end_of_body()
        except httpx.HTTPError as exc:
            error = translate_for(state.core, exc, state.path, state.deadline)
            state.failed(error)
            raise error from None
        except BaseException as exc:
            state.failed(exc)
            raise
        state.finished()

    def close(self) -> None:
        if self._response is not None:
            self._state.closing()
            self._response.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_limited(response: httpx.Response, deadline: Deadline | None = None) -> bytes:
    """The start of an error body: at most :data:`ERROR_BODY_LIMIT` bytes, read until the
    deadline at the latest (it is only quoted in a message)."""
    body = b""
    for data in response.iter_raw():
        body += data
        if len(body) > ERROR_BODY_LIMIT or (deadline is not None and deadline.expired()):
            break
    return body


class OllamaClient:
    """Synchronous client for one server; use as a context manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        read_timeout_s: float | None = None,
        deadline_s: float | None = None,
        deadline_setting: str | None = None,
        fast: bool = True,
    ) -> None:
        """``deadline_s``: the total time one request may take, streams included (None: no
        bound beyond the read timeout); ``deadline_setting`` names the setting that raises
        it, for the error message (see :mod:`ollamakit.client.core`)."""
        self._core = Core(
            settings,
            read_timeout_s or settings.benchmark_timeout_s,
            deadline_s=deadline_s,
            deadline_setting=deadline_setting,
        )
        kwargs = client_kwargs(self._core)
        #: The transport streams go through (:mod:`ollamakit.client.transport`).
        self.transport = sync_transport(kwargs["verify"], fast=fast)
        self._http = httpx.Client(transport=self.transport, **kwargs)
        self.server = settings.base_url

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def deadline_s(self) -> float | None:
        """The total time one request may take (None: unbounded but for the read timeout)."""
        return self._core.deadline_s

    def _request(self, method: str, path: str, json: Any) -> tuple[httpx.Response, bytes]:
        """Send, and read the whole body (bounded in size and time); the body's bytes."""
        core = self._core
        url = self.server.url(path)
        deadline = core.deadline()
        request = build(core, self._http, method, url, deadline, json=json)
        start = time.perf_counter_ns()
        try:
            response = self._http.send(request, stream=True)
            body = read_body(core, response, deadline, path)
        except httpx.HTTPError as exc:
            log_no_answer(method, url, exc, start)
            raise translate_for(core, exc, path, deadline) from None
        log_answer(method, url, response.status_code, start)
        return response, body

    def _get(
        self, path: str, *, method: str = "GET", json: Any = None, model: str | None = None
    ) -> tuple[int, str, bytes]:
        response, body = self._request(method, path, json)
        self._core.check(response.status_code, response.headers, body, path, model)
        return response.status_code, response.headers.get("content-type", "?"), body

    def _json(
        self, path: str, *, method: str = "GET", json: Any = None, model: str | None = None
    ) -> Any:
        status, content_type, body = self._get(path, method=method, json=json, model=model)
        return self._core.decode_json(status, content_type, body, path)

    def probe(self, method: str, path: str, *, json: Any = None) -> Probe:
        """Send one request and return what came back, judging nothing (for ``doctor``)."""
        start = time.perf_counter_ns()
        response, body = self._request(method, path, json)
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        return Probe(
            response.status_code,
            response.headers,
            body,
            elapsed_ms,
            response.http_version,
        )

    def raise_for(self, probe: Probe, path: str, model: str | None = None) -> None:
        """Judge a :class:`Probe` the way every other call is judged."""
        raise_for_response(
            status=probe.status,
            headers=probe.headers,
            body=probe.body,
            settings=self._core.settings,
            path=path,
            model=model,
        )

    def heartbeat(self) -> str:
        """``GET /``: "Ollama is running", or :class:`NotOllama`."""
        status, content_type, body = self._get("/")
        return self._core.check_heartbeat(status, content_type, body)

    def version(self) -> str:
        data = self._json("/api/version")
        return str(data.get("version", "?")) if isinstance(data, dict) else "?"

    def list_models(self) -> list[ModelEntry]:
        data = self._json("/api/tags")
        return cast(list[ModelEntry], _models(data))

    def running_models(self) -> list[RunningModel]:
        data = self._json("/api/ps")
        return cast(list[RunningModel], _models(data))

    def show(self, model: str) -> dict[str, Any]:
        data = self._json("/api/show", method="POST", json={"model": model}, model=model)
        return data if isinstance(data, dict) else {}

    def rtt_ms(self, path: str = "/api/version") -> float:
        """Round-trip time of one small request, in milliseconds."""
        start = time.perf_counter_ns()
        self._get(path)
        return (time.perf_counter_ns() - start) / 1e6

    def post_json(self, path: str, body: dict[str, Any], *, model: str | None = None) -> Any:
        """POST a JSON body, judge the answer, return its decoded JSON."""
        return self._json(path, method="POST", json=body, model=model)

    def stream_chat(
        self,
        model: str,
        messages: list[Message],
        *,
        options: Options | None = None,
        think: bool | str | None = None,
        keep_alive: str | float | None = None,
    ) -> ChunkStream:
        body = chat_body(model, messages, options, think, keep_alive, stream=True)
        return ChunkStream(self._core, self._http, "/api/chat", body)

    def stream_body(self, path: str, body: dict[str, Any]) -> ChunkStream:
        """A stream of any NDJSON endpoint with a prepared body (used by the backend)."""
        return ChunkStream(self._core, self._http, path, body)

    def stream_generate(
        self,
        model: str,
        prompt: str,
        *,
        options: Options | None = None,
        think: bool | str | None = None,
        keep_alive: str | float | None = None,
        system: str | None = None,
    ) -> ChunkStream:
        body = generate_body(model, prompt, options, think, keep_alive, system, stream=True)
        return ChunkStream(self._core, self._http, "/api/generate", body)

    def chat(
        self, model: str, messages: list[Message], *, options: Options | None = None
    ) -> ChatChunk:
        body = chat_body(model, messages, options, None, None, stream=False)
        return cast(ChatChunk, self._json("/api/chat", method="POST", json=body, model=model))

    def generate(
        self,
        model: str,
        prompt: str,
        *,
        options: Options | None = None,
        keep_alive: str | float | None = None,
    ) -> GenerateChunk:
        body = generate_body(model, prompt, options, None, keep_alive, None, stream=False)
        return cast(
            GenerateChunk, self._json("/api/generate", method="POST", json=body, model=model)
        )


def _models(data: object) -> list[Mapping[str, Any]]:
    """The ``models`` list of /api/tags or /api/ps, keeping only the entries that are objects."""
    if not isinstance(data, dict):
        return []
    models = data.get("models")
    if not isinstance(models, list):
        return []
    return [m for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]
