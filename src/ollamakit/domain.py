"""Domain values shared by every layer: what a backend yields and what measuring consumes.

Design
------
The wire formats differ (Ollama's NDJSON with nanosecond durations, an OpenAI-compatible
server's SSE frames with a ``usage`` object and, for llama.cpp, a ``timings`` object), but the
things the rest of the product needs from a reply are the same. A backend in
:mod:`ollamakit.client` validates the wire JSON at the boundary and turns it into these frozen
values; nothing above the client reads a raw dict.

* :class:`StreamChunk` — one streamed piece of a reply, stamped with the ``perf_counter_ns``
  time its bytes arrived (chunks delivered by one socket read share a stamp).
* :class:`FinalStats` — the server's own figures for a finished reply, in milliseconds and
  counts, ``None`` where the server did not say (never a made-up number).
* :class:`ModelInfo` — one model of the server's list, with what it can do.
* :class:`Residency` — where a loaded model lives (``/api/ps``): GPU share, context length.
* :class:`ChatRequest` — what to ask, independent of the API that carries it.

This module imports nothing from the project, so every package may depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ApiKind = Literal["ollama", "openai"]

#: How a stream ended, as the client saw it.
#: ``done``: a final chunk arrived; ``clean_eof``: the server closed the stream cleanly without
#: a final chunk (Ollama's token-repeat guard); the others are failures.
StreamEnd = Literal["done", "clean_eof", "cut", "error", "timeout", "interrupted"]

#: ``think`` as sent: off/on, or a level (``"max"`` only on Ollama ≥ 0.22).
Think = bool | Literal["low", "medium", "high", "max"]


@dataclass(frozen=True, slots=True)
class FinalStats:
    """The server's figures for one finished reply (Ollama's final chunk, OpenAI ``usage``).

    Durations are milliseconds (Ollama sends ns; llama.cpp's ``timings`` send ms).
    ``prompt_cached_count`` is the number of prompt tokens served from the prefix cache when
    the server says (llama.cpp ``cache_n``, OpenAI ``cached_tokens``); Ollama does not say.
    """

    done_reason: str | None = None
    total_ms: float | None = None
    load_ms: float | None = None
    prompt_eval_count: int | None = None
    prompt_eval_ms: float | None = None
    prompt_cached_count: int | None = None
    eval_count: int | None = None
    eval_ms: float | None = None


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a streamed reply.

    ``final`` is set on the last chunk only (Ollama's ``done: true`` line, an OpenAI usage
    frame); that chunk may still carry text, which counts like any other.
    """

    arrival_ns: int
    content: str = ""
    thinking: str = ""
    final: FinalStats | None = None
    #: Server timestamp of the chunk in ns since the epoch (Ollama's ``created_at``), if any:
    #: the doctor compares its spread with the arrival spread to spot a buffering proxy.
    created_ns: int | None = None

    @property
    def done(self) -> bool:
        return self.final is not None


Capability = Literal[
    "completion", "tools", "insert", "vision", "embedding", "thinking", "image", "audio"
]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model the server lists.

    ``capabilities`` is ``None`` when unknown (Ollama < 0.30 lists none in ``/api/tags``;
    ask ``/api/show``). ``remote`` marks a cloud model (``remote_host``/``remote_model``):
    inference is proxied to ollama.com, so it is neither local nor "the smallest model".
    """

    name: str
    size_bytes: int | None = None
    family: str | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    context_length: int | None = None
    capabilities: frozenset[str] | None = None
    remote: bool = False
    modified_at: str | None = None

    @property
    def can_chat(self) -> bool | None:
        """False for embedding-only models; None when the capabilities are unknown."""
        if self.capabilities is None:
            return None
        return "completion" in self.capabilities or (
            "embedding" not in self.capabilities and bool(self.capabilities)
        )

    @property
    def can_think(self) -> bool | None:
        if self.capabilities is None:
            return None
        return "thinking" in self.capabilities


@dataclass(frozen=True, slots=True)
class Residency:
    """A loaded model as ``/api/ps`` shows it (``ollama ps``)."""

    model: str
    size_bytes: int
    vram_bytes: int
    context_length: int | None = None
    expires_at: str | None = None

    @property
    def gpu_share(self) -> float | None:
        """Fraction of the model in VRAM: 1.0 = "100% GPU", 0.0 = CPU only.

        >>> Residency("m", 100, 63).gpu_share, Residency("m", 0, 0).gpu_share
        (0.63, None)
        """
        if self.size_bytes <= 0:
            return None
        return min(1.0, max(0.0, self.vram_bytes / self.size_bytes))


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """What answered: the API family, the engine when it can be told, its version."""

    api: ApiKind
    engine: str  # "ollama", "llama.cpp", "vllm", "lm-studio", "openai-compatible", ...
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat turn to send. ``options`` uses Ollama's option names (``num_predict``,
    ``num_ctx``, ``temperature``, ``seed``, ``top_p``, ...); an OpenAI backend maps the ones it
    can (``max_tokens``, ``temperature``, ``seed``, ``top_p``) and ignores the rest."""

    model: str
    messages: tuple[dict[str, str], ...]
    options: dict[str, float | int | str | list[str]] = field(default_factory=dict)
    think: Think | None = None
    keep_alive: str | float | None = None
