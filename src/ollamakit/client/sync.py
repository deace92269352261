"""The synchronous shell: :class:`OllamaClient` for the chat REPL and ``doctor``.

Thin by design: requests are built by :class:`~ollamakit.client.core.Core`, responses judged
by :mod:`~ollamakit.client.judge`, streams decoded by :mod:`~ollamakit.client.ndjson`. What is
left here is waiting on httpx. :mod:`~ollamakit.client.aio` is its twin, method for method.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Self, cast

import httpx
import orjson

from ollamakit.client.core import Core, Probe, chat_body, generate_body
from ollamakit.client.judge import ERROR_BODY_LIMIT, raise_for_response, translate
from ollamakit.client.log import log, log_answer, log_no_answer
from ollamakit.client.stream import StreamState
from ollamakit.client.tls import trust_label
from ollamakit.client.transport import FastTransport
from ollamakit.config import Settings
from ollamakit.domain import StreamChunk, StreamEnd
from ollamakit.errors import OllamaError
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
    own = httpx.HTTPTransport(verify=verify, trust_env=True)
    return FastTransport(verify=verify, fallback=own) if fast else own


def translate_for(core: Core, exc: httpx.HTTPError, path: str) -> OllamaError:
    return translate(
        exc, core.server, core.url(path), core.timeouts, trust=trust_label(core.settings)
    )


class ChunkStream:
    """A streamed reply: ``with client.stream_chat(...) as s: for chunk in s: ...``.

    ``sent_ns`` is taken just before the request is sent, ``headers_ns`` when the response
    head arrived; chunks carry their own ``arrival_ns``; ``end`` says how it ended once the
    iteration stopped. Closing early aborts the request (the connection is dropped, which is
    how Ollama learns to stop generating). It can be iterated once.
    """

    def __init__(self, core: Core, http: httpx.Client, path: str, body: dict[str, Any]) -> None:
        self._state = StreamState(core, path, body)
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

    @property
    def decoder_url(self) -> str:
        return self._state.url

    def __enter__(self) -> Self:
        state = self._state
        core = state.core
        request = self._http.build_request(
            "POST",
            state.url,
            content=orjson.dumps(state.body),
            headers={"Content-Type": "application/json"},
        )
        state.sent_ns = time.perf_counter_ns()
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            log_no_answer("POST", state.url, exc, state.sent_ns)
            state.end = "error"
            raise translate_for(core, exc, state.path) from None
        state.headers_ns = time.perf_counter_ns()
        self._response = response
        log.debug(
            "POST %s -> %d, headers after %.1f ms",
            state.url,
            response.status_code,
            (state.headers_ns - state.sent_ns) / 1e6,
        )
        content_type = response.headers.get("content-type", "json")
        if not 200 <= response.status_code < 300 or "json" not in content_type:
            try:
                body = read_limited(response)
            except httpx.HTTPError:
                body = b""
            finally:
                response.close()
            state.end = "error"
            core.check(response.status_code, response.headers, body, state.path, state.model)
            raise core.not_ndjson(response.status_code, content_type, body, state.path)
        return self

    def __iter__(self) -> Iterator[StreamChunk]:
        assert self._response is not None, "use ChunkStream as a context manager"
        self._state.begin()
        return self._chunks(self._response)

    def _chunks(self, response: httpx.Response) -> Iterator[StreamChunk]:
        state = self._state
        feed = state.decoder.feed
        clock = time.perf_counter_ns
        try:
            # Each item is one socket read's payload (client/transport.py): stamped once. A
            # body cut short raises from httpx; reaching the end means it ended cleanly, with
            # or without a done line (without: Ollama's token-repeat guard, end="clean_eof").
            for data in response.iter_bytes():
                yield from feed(data, clock())
            yield from state.decoder.finish(clean=True)
        except httpx.HTTPError as exc:
            error = translate_for(state.core, exc, state.path)
            state.failed(error)
            raise error from None
        except BaseException as exc:
            state.failed(exc)
            raise
        state.finished(clean=True)

    def close(self) -> None:
        if self._response is not None:
            self._state.log_end()
            if self._state.end is None:
                self._state.end = "interrupted"
            self._response.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_limited(response: httpx.Response) -> bytes:
    body = b""
    for data in response.iter_raw():
        body += data
        if len(body) > ERROR_BODY_LIMIT:
            break
    return body


class OllamaClient:
    """Synchronous client for one server; use as a context manager."""

    def __init__(
        self, settings: Settings, *, read_timeout_s: float | None = None, fast: bool = True
    ) -> None:
        self._core = Core(settings, read_timeout_s or settings.benchmark_timeout_s)
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

    def _request(self, method: str, path: str, json: Any) -> httpx.Response:
        url = self.server.url(path)
        start = time.perf_counter_ns()
        try:
            response = self._http.request(method, url, json=json)
        except httpx.HTTPError as exc:
            log_no_answer(method, url, exc, start)
            raise translate_for(self._core, exc, path) from None
        log_answer(method, url, response.status_code, start)
        return response

    def _get(
        self, path: str, *, method: str = "GET", json: Any = None, model: str | None = None
    ) -> tuple[int, str, bytes]:
        response = self._request(method, path, json)
        body = response.content
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
        response = self._request(method, path, json)
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        return Probe(
            response.status_code,
            response.headers,
            response.content,
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
