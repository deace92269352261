"""Ollama's native API behind the :mod:`~ollamakit.client.backend` protocol.

Design
------
The wire JSON (``types.py`` TypedDicts) is read here and nowhere above: ``/api/tags`` entries
become :class:`ModelInfo` (capabilities from the list on Ollama ≥ 0.30, else ``None``: ask
:meth:`describe`, which reads ``/api/show``), ``/api/ps`` entries become :class:`Residency`.
Every field is checked for its type; a value of the wrong type is unknown (``None``), never a
crash. The pure converters are shared by the sync and async backends, which differ only in
waiting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ollamakit.client.aio import AsyncChunkStream, AsyncOllamaClient
from ollamakit.client.core import request_body
from ollamakit.client.sync import ChunkStream, OllamaClient
from ollamakit.config import Settings
from ollamakit.domain import ChatRequest, ModelInfo, Residency, ServerIdentity

UNKNOWN: ServerIdentity = ServerIdentity(api="ollama", engine="ollama", version=None)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _capabilities(value: object) -> frozenset[str] | None:
    if not isinstance(value, list):
        return None
    return frozenset(v for v in value if isinstance(v, str))


def model_info(entry: Mapping[str, Any], capabilities: object = None) -> ModelInfo:
    """A :class:`ModelInfo` from one ``/api/tags`` entry (or ``/api/show`` reply + name).

    >>> m = model_info({"name": "q:1b", "size": 9, "details": {"family": "qwen3"},
    ...                 "capabilities": ["completion", "thinking"]})
    >>> m.name, m.family, m.can_think, model_info({"name": "x"}).capabilities is None
    ('q:1b', 'qwen3', True, True)
    """
    details = entry.get("details")
    details = details if isinstance(details, dict) else {}
    caps = capabilities if capabilities is not None else entry.get("capabilities")
    return ModelInfo(
        name=str(entry.get("name") or entry.get("model") or "?"),
        size_bytes=_int(entry.get("size")),
        family=_str(details.get("family")),
        parameter_size=_str(details.get("parameter_size")),
        quantization=_str(details.get("quantization_level")),
        context_length=_int(details.get("context_length")),
        capabilities=_capabilities(caps),
        remote=bool(_str(entry.get("remote_host")) or _str(entry.get("remote_model"))),
        modified_at=_str(entry.get("modified_at")),
    )


def describe_info(name: str, show: Mapping[str, Any]) -> ModelInfo:
    """A :class:`ModelInfo` from an ``/api/show`` reply (capabilities on every 0.12+)."""
    info = model_info({**show, "name": name}, show.get("capabilities"))
    if info.context_length is None:
        model_info_kv = show.get("model_info")
        if isinstance(model_info_kv, dict):
            for key, value in model_info_kv.items():
                if isinstance(key, str) and key.endswith(".context_length") and _int(value):
                    return dataclasses.replace(info, context_length=_int(value))
    return info


def residency(entry: Mapping[str, Any]) -> Residency | None:
    """A :class:`Residency` from one ``/api/ps`` entry (None when it lacks its sizes)."""
    size, vram = _int(entry.get("size")), _int(entry.get("size_vram"))
    name = _str(entry.get("name")) or _str(entry.get("model"))
    if size is None or vram is None or name is None:
        return None
    return Residency(
        model=name,
        size_bytes=size,
        vram_bytes=vram,
        context_length=_int(entry.get("context_length")),
        expires_at=_str(entry.get("expires_at")),
    )


def identity(version: str) -> ServerIdentity:
    return ServerIdentity(
        api="ollama", engine="ollama", version=version if version != "?" else None
    )


def unload_body(model: str) -> dict[str, Any]:
    """An empty generate with ``keep_alive: 0``: Ollama answers ``done_reason: "unload"``."""
    return {"model": model, "prompt": "", "keep_alive": 0, "stream": False}


class OllamaBackend:
    """The synchronous Ollama backend (chat REPL, doctor)."""

    def __init__(
        self,
        settings: Settings,
        *,
        read_timeout_s: float | None = None,
        deadline_s: float | None = None,
        deadline_setting: str | None = None,
    ) -> None:
        self.client = OllamaClient(
            settings,
            read_timeout_s=read_timeout_s,
            deadline_s=deadline_s,
            deadline_setting=deadline_setting,
        )
        self.identity = UNKNOWN

    def __enter__(self) -> OllamaBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> ServerIdentity:
        self.identity = identity(self.client.version())
        return self.identity

    def list_models(self) -> list[ModelInfo]:
        return [model_info(entry) for entry in self.client.list_models()]

    def describe(self, model: str) -> ModelInfo:
        return describe_info(model, self.client.show(model))

    def residency(self) -> list[Residency] | None:
        found = (residency(entry) for entry in self.client.running_models())
        return [r for r in found if r is not None]

    def stream_chat(self, request: ChatRequest) -> ChunkStream:
        return self.client.stream_body("/api/chat", request_body(request))

    def unload(self, model: str) -> bool:
        self.client.post_json("/api/generate", unload_body(model), model=model)
        return True

    def close(self) -> None:
        self.client.close()


class AsyncOllamaBackend:
    """The asynchronous Ollama backend (benchmark, ``chat --auto``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        read_timeout_s: float | None = None,
        deadline_s: float | None = None,
        deadline_setting: str | None = None,
        max_connections: int = 64,
    ) -> None:
        self.client = AsyncOllamaClient(
            settings,
            read_timeout_s=read_timeout_s,
            deadline_s=deadline_s,
            deadline_setting=deadline_setting,
            max_connections=max_connections,
        )
        self.identity = UNKNOWN

    async def __aenter__(self) -> AsyncOllamaBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def connect(self) -> ServerIdentity:
        self.identity = identity(await self.client.version())
        return self.identity

    async def list_models(self) -> list[ModelInfo]:
        return [model_info(entry) for entry in await self.client.list_models()]

    async def describe(self, model: str) -> ModelInfo:
        return describe_info(model, await self.client.show(model))

    async def residency(self) -> list[Residency] | None:
        found = (residency(entry) for entry in await self.client.running_models())
        return [r for r in found if r is not None]

    def stream_chat(self, request: ChatRequest) -> AsyncChunkStream:
        return self.client.stream_body("/api/chat", request_body(request))

    async def unload(self, model: str) -> bool:
        await self.client.post_json("/api/generate", unload_body(model), model=model)
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
