"""How the benchmark opens and times a server through the backend protocol, whichever API.

Design
------
The runner speaks only :class:`~ollamakit.client.AsyncBackend`, so the same suite measures
Ollama's native API, its ``/v1`` and any OpenAI-compatible engine (docs/engines.md). This
module holds the few API-dependent choices so that :mod:`ollamakit.bench.runner` stays one
code path:

* :func:`open_bench_backend` — the concrete backend for an API that was already detected
  (``--api auto`` detects once, in discovery; the main client and the lanes then skip it).
* :func:`round_trip_ms` — one small request: ``GET /api/version`` on Ollama (as before),
  ``GET /v1/models`` on an OpenAI-compatible server (its ``connect()`` asks two or three
  URLs, which would not be *one* round trip).
* :func:`server_info` — the document's ``server`` object, with the API and engine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from ollamakit.client import (
    AsyncAutoBackend,
    AsyncBackend,
    AsyncOllamaBackend,
    AsyncOpenAIBackend,
)
from ollamakit.config import Settings
from ollamakit.domain import ChatRequest, ServerIdentity, Think
from ollamakit.measure.schema import ServerInfo, Stat
from ollamakit.types import Message


def chat_request(
    model: str,
    messages: Sequence[Message],
    options: Mapping[str, object],
    think: Think | None = None,
    *,
    keep_alive: str | float | None = None,
) -> ChatRequest:
    """The suite's messages and Ollama options as a :class:`ChatRequest` (an OpenAI backend
    maps ``num_predict``/``temperature``/``seed`` and leaves out the rest)."""
    kept = {k: v for k, v in options.items() if isinstance(v, int | float | str | list)}
    turns = tuple({"role": m["role"], "content": m["content"]} for m in messages)
    return ChatRequest(model, turns, kept, think=think, keep_alive=keep_alive)


def open_bench_backend(
    settings: Settings, api: str | None = None, *, max_connections: int = 64
) -> AsyncBackend:
    """The async backend for ``api`` ("ollama", "openai", else auto-detecting)."""
    # --timeout bounds every request twice over: the longest silence (read timeout) and the
    # total time (deadline), so neither a stalled server nor a trickle outlasts it.
    timeout = settings.benchmark_timeout_s
    name = api or settings.api
    if name == "openai":
        return AsyncOpenAIBackend(
            settings, read_timeout_s=timeout, deadline_s=timeout, max_connections=max_connections
        )
    if name == "ollama":
        return AsyncOllamaBackend(
            settings, read_timeout_s=timeout, deadline_s=timeout, max_connections=max_connections
        )
    return AsyncAutoBackend(
        settings, read_timeout_s=timeout, deadline_s=timeout, max_connections=max_connections
    )


async def round_trip_ms(backend: AsyncBackend) -> float:
    """The time of one small request to the server, in milliseconds (after ``connect()``)."""
    start = time.perf_counter_ns()
    if backend.identity.api == "openai":
        await backend.list_models()
    else:
        await backend.connect()
    return (time.perf_counter_ns() - start) / 1e6


def server_info(base_url: str, identity: ServerIdentity, rtt_ms: Stat) -> ServerInfo:
    """The document's ``server`` object (``api``/``engine`` since OpenAI-compatible servers).

    >>> info = server_info("http://h", ServerIdentity("openai", "llama.cpp", None),
    ...                    {"median": 1.0, "p95": 2.0})
    >>> info["version"], info["api"], info["engine"]
    (None, 'openai', 'llama.cpp')
    """
    return {
        "base_url": base_url,
        "version": identity.version,
        "rtt_ms": rtt_ms,
        "api": identity.api,
        "engine": identity.engine,
        "name": f"{identity.engine} {'/v1' if identity.api == 'openai' else '/api'}",
    }


__all__ = ["chat_request", "open_bench_backend", "round_trip_ms", "server_info"]
