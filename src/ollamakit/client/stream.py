"""The one reply-stream shell, for both APIs: the I/O-free state a sync and an async stream share.

Design
------
Ollama's NDJSON streams and an OpenAI-compatible server's SSE streams go through the same
code (:class:`~ollamakit.client.sync.ChunkStream` and
:class:`~ollamakit.client.aio.AsyncChunkStream`); what differs is a :class:`StreamKind` (the
request's headers, which response heads are a stream, how a refused head is explained) and
the decoder (:class:`~ollamakit.client.ndjson.NDJSONDecoder` or
:class:`~ollamakit.client.openai_wire.ChatStreamDecoder`, both a :class:`StreamDecoder`).

A reply stream is read once, from the socket: a second iteration raises
:class:`~ollamakit.client.core.StreamReused` on every path (the fast path used to replay the
buffered bytes, the slow one raised httpx's ``StreamConsumed``). ``end`` records how iteration
stopped (:data:`ollamakit.domain.StreamEnd`), so callers never guess from an exception type.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import httpx
import orjson

from ollamakit.client.core import Core, Deadline, StreamReused
from ollamakit.client.log import log, log_stream_end
from ollamakit.client.ndjson import NDJSONDecoder
from ollamakit.domain import StreamChunk, StreamEnd
from ollamakit.errors import ConnectionLost, OllamakitError, ReadTimeout, StreamCut


def end_of(exc: BaseException) -> StreamEnd:
    """How a stream ended, given the exception that stopped its iteration.

    >>> end_of(StreamCut()), end_of(ReadTimeout()), end_of(KeyboardInterrupt())
    ('cut', 'timeout', 'interrupted')
    """
    if isinstance(exc, StreamCut | ConnectionLost):
        return "cut"
    if isinstance(exc, ReadTimeout | TimeoutError):
        return "timeout"
    if isinstance(exc, OllamakitError):
        return "error"
    if isinstance(exc, GeneratorExit | KeyboardInterrupt | asyncio.CancelledError):
        return "interrupted"
    return "error"


class StreamDecoder(Protocol):
    """Socket reads in, :class:`StreamChunk` values out (one decoder per API)."""

    #: Chunks produced so far.
    count: int

    @property
    def complete(self) -> bool:
        """Whether the reply's final chunk has been produced."""
        ...

    def feed(self, data: bytes, arrival_ns: int) -> list[StreamChunk]: ...

    def end_of_body(self, arrival_ns: int) -> list[StreamChunk]:
        """The body ended cleanly: what is left; raises if the reply is incomplete where
        the API does not allow it."""
        ...


#: The error for a 2xx head that is not a stream of the kind (core, path, status, headers,
#: the body's start); error statuses are judged before, alike for every kind.
NotAStream = Callable[[Core, str, int, httpx.Headers, bytes], Exception]


@dataclass(frozen=True, slots=True)
class StreamKind:
    """What differs between the APIs' reply streams, besides the decoder."""

    #: Request headers.
    headers: Mapping[str, str]
    #: Whether a response head (status, content type) starts a stream of this kind.
    accepts: Callable[[int, str], bool]
    #: The error for a head that does not, once its status was judged.
    not_a_stream: NotAStream


def _ndjson_head(status: int, content_type: str) -> bool:
    return 200 <= status < 300 and "json" in content_type


def _not_ndjson(
    core: Core, path: str, status: int, headers: httpx.Headers, body: bytes
) -> Exception:
    return core.not_ndjson(status, headers.get("content-type", "json"), body, path)


#: Ollama's native API: JSON in, NDJSON out.
NDJSON: StreamKind = StreamKind(
    headers={"Content-Type": "application/json"}, accepts=_ndjson_head, not_a_stream=_not_ndjson
)


class StreamState:
    """The I/O-free part of a reply stream: URL, body, stamps, decoder, guard, end."""

    def __init__(
        self,
        core: Core,
        path: str,
        body: Mapping[str, Any],
        kind: StreamKind = NDJSON,
        decoder: StreamDecoder | None = None,
    ) -> None:
        self.core = core
        self.path = path
        self.body = body
        self.kind = kind
        self.url = core.url(path)
        self.decoder: StreamDecoder = decoder if decoder is not None else NDJSONDecoder(self.url)
        self.sent_ns = 0
        self.headers_ns = 0
        self.deadline: Deadline | None = None  # set when the request is sent
        self.end: StreamEnd | None = None
        self._iterated = False
        self._end_logged = False

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    def request(self, build: Callable[..., httpx.Request]) -> httpx.Request:
        """The request, built by the shell's ``build`` (the deadline is taken now)."""
        self.deadline = deadline = self.core.deadline()
        body = self.body if isinstance(self.body, dict) else dict(self.body)
        return build(
            "POST", self.url, deadline, content=orjson.dumps(body), headers=dict(self.kind.headers)
        )

    def head(self, response: httpx.Response) -> bool:
        """Stamp and log the response head; whether it starts a stream of this kind."""
        self.headers_ns = time.perf_counter_ns()
        log.debug(
            "POST %s -> %d, headers after %.1f ms",
            self.url,
            response.status_code,
            (self.headers_ns - self.sent_ns) / 1e6,
        )
        content_type = response.headers.get("content-type", "json")
        return self.kind.accepts(response.status_code, content_type)

    def refuse(self, response: httpx.Response, body: bytes) -> NoReturn:
        """Raise the error a refused head means (its body's start is ``body``): the status's
        (:mod:`~ollamakit.client.judge`, alike for both APIs), else the kind's."""
        self.end = "error"
        status, headers = response.status_code, response.headers
        self.core.check(status, headers, body, self.path, self.model)
        raise self.kind.not_a_stream(self.core, self.path, status, headers, body)

    def take(self, data: bytes) -> list[StreamChunk]:
        """One socket read's payload (client/transport.py), stamped once, checked against
        the deadline, decoded."""
        now = time.perf_counter_ns()
        deadline = self.deadline
        if deadline is not None and now >= deadline.end_ns:
            raise self.core.deadline_error(deadline, self.path)
        return self.decoder.feed(data, now)

    def end_of_body(self) -> list[StreamChunk]:
        """The body ended cleanly (with or without a final chunk: without is Ollama's
        token-repeat guard, ``end="clean_eof"``; an SSE decoder raises instead)."""
        return self.decoder.end_of_body(time.perf_counter_ns())

    def begin(self) -> None:
        if self._iterated:
            raise StreamReused
        self._iterated = True

    def finished(self) -> None:
        self.end = "done" if self.decoder.complete else "clean_eof"

    def failed(self, exc: BaseException) -> None:
        if self.end is None:
            self.end = end_of(exc)

    def closing(self) -> None:
        """Log the end once; a stream closed before it ended was interrupted."""
        if not self._end_logged:
            self._end_logged = True
            decoder = self.decoder
            log_stream_end("POST", self.url, decoder.complete, decoder.count, self.sent_ns)
        if self.end is None:
            self.end = "interrupted"
