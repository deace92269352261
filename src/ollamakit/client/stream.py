"""What a sync and an async reply stream share: the once-only guard and how a stream ended.

Design
------
A reply stream is read once, from the socket: a second iteration raises
:class:`~ollamakit.client.core.StreamReused` on every path (the fast path used to replay the
buffered bytes, the slow one raised httpx's ``StreamConsumed``). ``end`` records how iteration
stopped (:data:`ollamakit.domain.StreamEnd`), so callers never guess from an exception type.
"""

from __future__ import annotations

import asyncio

from ollamakit.client.core import Core, Deadline, StreamReused
from ollamakit.client.log import log_stream_end
from ollamakit.client.ndjson import NDJSONDecoder
from ollamakit.domain import StreamEnd
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


class StreamState:
    """The I/O-free part of a reply stream: URL, body, stamps, decoder, guard, end."""

    def __init__(self, core: Core, path: str, body: dict[str, object]) -> None:
        self.core = core
        self.path = path
        self.body = body
        self.url = core.url(path)
        self.decoder = NDJSONDecoder(self.url)
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

    def begin(self) -> None:
        if self._iterated:
            raise StreamReused
        self._iterated = True

    def finished(self, *, clean: bool) -> None:
        self.end = "done" if self.decoder.complete else "clean_eof" if clean else "cut"

    def failed(self, exc: BaseException) -> None:
        if self.end is None:
            self.end = end_of(exc)

    def log_end(self) -> None:
        if not self._end_logged:
            self._end_logged = True
            decoder = self.decoder
            log_stream_end("POST", self.url, decoder.complete, decoder.count, self.sent_ns)
