"""TypedDicts for Ollama's wire JSON, with field names and units exactly as Ollama sends them.

Durations are integers in nanoseconds (Go ``time.Duration``). Optional keys are omitted by the
server when empty (Go ``omitempty``), hence ``total=False`` and ``NotRequired``. See
``shared/ollama-api.md`` for the source of each shape.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class ModelDetails(TypedDict, total=False):
    parent_model: str
    format: str
    family: str
    families: list[str] | None
    parameter_size: str
    quantization_level: str
    context_length: int
    embedding_length: int


class ModelEntry(TypedDict):
    """One item of ``GET /api/tags``."""

    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails
    capabilities: NotRequired[list[str]]
    remote_model: NotRequired[str]
    remote_host: NotRequired[str]


class TagsResponse(TypedDict):
    models: list[ModelEntry]


class RunningModel(TypedDict):
    """One item of ``GET /api/ps``."""

    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: NotRequired[int]


class PsResponse(TypedDict):
    models: list[RunningModel]


class VersionResponse(TypedDict):
    version: str


class ToolCallFunction(TypedDict, total=False):
    index: int
    name: str
    arguments: dict[str, Any]


class ToolCall(TypedDict, total=False):
    id: str
    function: ToolCallFunction


class Message(TypedDict):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    thinking: NotRequired[str]
    images: NotRequired[list[str]]
    tool_calls: NotRequired[list[ToolCall]]
    tool_name: NotRequired[str]


class Options(TypedDict, total=False):
    """``options`` of generate/chat; Ollama ignores unknown keys."""

    num_keep: int
    seed: int
    num_predict: int
    top_k: int
    top_p: float
    min_p: float
    typical_p: float
    repeat_last_n: int
    temperature: float
    repeat_penalty: float
    presence_penalty: float
    frequency_penalty: float
    stop: list[str]
    num_ctx: int
    num_batch: int
    num_gpu: int
    main_gpu: int
    use_mmap: bool
    num_thread: int


class _Metrics(TypedDict, total=False):
    """Fields of a final (``done: true``) chunk; omitted when zero."""

    done_reason: str
    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


class GenerateChunk(_Metrics, total=False):
    """One NDJSON line of ``POST /api/generate`` (or the whole reply with ``stream: false``)."""

    model: str
    created_at: str
    response: str
    thinking: str
    done: bool
    context: list[int]
    error: str


class ChatChunk(_Metrics, total=False):
    """One NDJSON line of ``POST /api/chat`` (or the whole reply with ``stream: false``)."""

    model: str
    created_at: str
    message: Message
    done: bool
    error: str


class ErrorBody(TypedDict):
    error: str
