"""The backend seam (docs/architecture.md): what runner, chat and doctor need from a server.

Design
------
A backend validates the wire JSON at the boundary and speaks only in
:mod:`ollamakit.domain` values. :class:`Backend` / :class:`ReplyStream` are the synchronous
twins of :class:`AsyncBackend` / :class:`AsyncReplyStream`, with the same names and the same
values for the same server (a test checks both). ``client/ollama.py`` implements them for
Ollama's native API; an OpenAI-compatible backend is one more module registered with
:func:`ollamakit.client.register_backend`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Protocol, Self

from ollamakit.domain import (
    ChatRequest,
    ModelInfo,
    Residency,
    ServerIdentity,
    StreamChunk,
    StreamEnd,
)


class ReplyStream(Protocol):
    """``with backend.stream_chat(r) as s: for chunk in s: ...`` (iterable once)."""

    @property
    def sent_ns(self) -> int: ...  # just before the request was sent
    @property
    def headers_ns(self) -> int: ...  # when the response head arrived
    @property
    def end(self) -> StreamEnd | None: ...  # how it ended, once iteration stopped

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def __iter__(self) -> Iterator[StreamChunk]: ...


class AsyncReplyStream(Protocol):
    """``async with backend.stream_chat(r) as s: async for chunk in s: ...`` (iterable once)."""

    @property
    def sent_ns(self) -> int: ...
    @property
    def headers_ns(self) -> int: ...
    @property
    def end(self) -> StreamEnd | None: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc: object) -> None: ...
    def __aiter__(self) -> AsyncIterator[StreamChunk]: ...
    #: The whole reply into ``chunks`` (appended as it comes, chunks before an error kept):
    #: iteration without a step per chunk, for a caller that only records them.
    async def read_into(self, chunks: list[StreamChunk]) -> None: ...


class Backend(Protocol):
    identity: ServerIdentity  # filled by connect()

    def connect(self) -> ServerIdentity: ...  # version / engine detection
    def list_models(self) -> list[ModelInfo]: ...
    def describe(self, model: str) -> ModelInfo: ...  # capabilities (/api/show)
    def residency(self) -> list[Residency] | None: ...  # None: the API has no /api/ps
    def stream_chat(self, request: ChatRequest) -> ReplyStream: ...
    def unload(self, model: str) -> bool: ...  # False: not supported
    def close(self) -> None: ...


class AsyncBackend(Protocol):
    identity: ServerIdentity

    async def connect(self) -> ServerIdentity: ...
    async def list_models(self) -> list[ModelInfo]: ...
    async def describe(self, model: str) -> ModelInfo: ...
    async def residency(self) -> list[Residency] | None: ...
    def stream_chat(self, request: ChatRequest) -> AsyncReplyStream: ...
    async def unload(self, model: str) -> bool: ...
    async def aclose(self) -> None: ...
