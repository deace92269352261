"""The chat's view of a server through the backend protocol, whichever API answers.

Design
------
The REPL and ``chat --auto`` were written against Ollama's client: a model list of
``/api/tags`` entries and ``stream_chat(model, messages, options=, think=)``. These two small
adapters keep exactly that surface over :class:`~ollamakit.client.Backend` /
:class:`~ollamakit.client.AsyncBackend`, so the chat code did not have to change to talk to
llama.cpp, vLLM or Ollama's own ``/v1``:

* on Ollama's native API the model list is still the raw ``/api/tags`` entries (nothing is
  lost: capabilities, cloud markers, details);
* on an OpenAI-compatible server it is built from :class:`~ollamakit.domain.ModelInfo`; what
  the server does not say (size, quantization) stays empty and shows as ``—``.

``connect()`` detects the API once (``--api auto``); :attr:`identity` then says what answered
(the one line printed at the start, :func:`~ollamakit.client.identity_line`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from ollamakit.client import (
    AsyncBackend,
    AsyncOllamaBackend,
    AsyncReplyStream,
    Backend,
    OllamaBackend,
    ReplyStream,
    open_async_backend,
    open_backend,
)
from ollamakit.config import Settings
from ollamakit.domain import ChatRequest, ModelInfo, Residency, ServerIdentity
from ollamakit.types import Message, ModelEntry, Options


def model_entry(info: ModelInfo) -> ModelEntry:
    """An ``/api/tags``-shaped entry for a model an OpenAI-compatible server lists.

    >>> e = model_entry(ModelInfo("smollm2-135m", family="llama"))
    >>> e["name"], e["size"], e["details"]
    ('smollm2-135m', 0, {'family': 'llama'})
    """
    entry: ModelEntry = {
        "name": info.name,
        "model": info.name,
        "modified_at": info.modified_at or "",
        "size": info.size_bytes or 0,
        "digest": "",
        "details": {},
    }
    if info.family:
        entry["details"]["family"] = info.family
    if info.parameter_size:
        entry["details"]["parameter_size"] = info.parameter_size
    if info.quantization:
        entry["details"]["quantization_level"] = info.quantization
    if info.context_length:
        entry["details"]["context_length"] = info.context_length
    if info.capabilities is not None:
        entry["capabilities"] = sorted(info.capabilities)
    return entry


def chat_request(
    model: str,
    messages: Sequence[Message],
    options: Options | None = None,
    think: bool | str | None = None,
) -> ChatRequest:
    """The REPL's arguments as a :class:`ChatRequest`."""
    turns = tuple({"role": m["role"], "content": m["content"]} for m in messages)
    opts: dict[str, Any] = dict(options or {})
    return ChatRequest(model, turns, opts, think)  # type: ignore[arg-type]


def _ollama_of(backend: object) -> object:
    """The Ollama backend behind ``backend`` (itself, or what ``--api auto`` chose), if any."""
    chosen = getattr(backend, "chosen", None)
    return chosen if chosen is not None else backend


class ChatClient:
    """The synchronous chat REPL's client (``hi-ai.py``)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.identity: ServerIdentity = backend.identity

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> ServerIdentity:
        self.identity = self.backend.connect()
        return self.identity

    def list_models(self) -> list[ModelEntry]:
        native = _ollama_of(self.backend)
        if isinstance(native, OllamaBackend):
            return native.client.list_models()
        return [model_entry(m) for m in self.backend.list_models()]

    def describe(self, model: str) -> ModelInfo:
        return self.backend.describe(model)

    def running_models(self) -> list[Residency] | None:
        """What is loaded (``/api/ps``); None where the API cannot tell."""
        return self.backend.residency()

    def stream_chat(
        self,
        model: str,
        messages: list[Message],
        *,
        options: Options | None = None,
        think: bool | str | None = None,
    ) -> ReplyStream:
        return self.backend.stream_chat(chat_request(model, messages, options, think))

    def close(self) -> None:
        self.backend.close()


class AsyncChatClient:
    """The asynchronous client of ``chat --auto``."""

    def __init__(self, backend: AsyncBackend) -> None:
        self.backend = backend
        self.identity: ServerIdentity = backend.identity

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def connect(self) -> ServerIdentity:
        self.identity = await self.backend.connect()
        return self.identity

    async def list_models(self) -> list[ModelEntry]:
        native = _ollama_of(self.backend)
        if isinstance(native, AsyncOllamaBackend):
            return await native.client.list_models()
        return [model_entry(m) for m in await self.backend.list_models()]

    def stream_chat(
        self,
        model: str,
        messages: list[Message],
        *,
        options: Options | None = None,
        think: bool | str | None = None,
    ) -> AsyncReplyStream:
        return self.backend.stream_chat(chat_request(model, messages, options, think))

    async def aclose(self) -> None:
        await self.backend.aclose()


def open_chat_client(
    settings: Settings,
    *,
    read_timeout_s: float | None = None,
    deadline_s: float | None = None,
    deadline_setting: str | None = None,
) -> ChatClient:
    """The REPL's client for ``--api`` (``auto``: detected by :meth:`ChatClient.connect`)."""
    return ChatClient(
        open_backend(
            settings,
            read_timeout_s=read_timeout_s,
            deadline_s=deadline_s,
            deadline_setting=deadline_setting,
        )
    )


def open_async_chat_client(
    settings: Settings, *, read_timeout_s: float | None = None
) -> AsyncChatClient:
    """``chat --auto``'s client for ``--api``."""
    return AsyncChatClient(open_async_backend(settings, read_timeout_s=read_timeout_s))


__all__ = [
    "AsyncChatClient",
    "ChatClient",
    "chat_request",
    "model_entry",
    "open_async_chat_client",
    "open_chat_client",
]
