"""Transitional adapter: the old client's raw chunks → :class:`ollamakit.measure.ReplyRecorder`.

The formulas and the result schema live in :mod:`ollamakit.measure`. This module only turns
what ``client.py`` yields today (a ``Chunk`` with the wire dict in ``.data``) into
:class:`~ollamakit.domain.StreamChunk` values, and goes away when the client yields those
itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ollamakit.domain import FinalStats, StreamChunk
from ollamakit.measure.recorder import ReplyRecorder
from ollamakit.measure.schema import Identity, RequestResult


class ChunkLike(Protocol):
    @property
    def arrival_ns(self) -> int: ...

    @property
    def content(self) -> str: ...

    @property
    def thinking(self) -> str: ...


def _ms(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return value / 1e6


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def final_stats(final: Mapping[str, Any]) -> FinalStats:
    """Ollama's ``done: true`` chunk as :class:`FinalStats` (ns → ms)."""
    reason = final.get("done_reason")
    return FinalStats(
        done_reason=reason if isinstance(reason, str) else None,
        total_ms=_ms(final.get("total_duration")),
        load_ms=_ms(final.get("load_duration")),
        prompt_eval_count=_count(final.get("prompt_eval_count")),
        prompt_eval_ms=_ms(final.get("prompt_eval_duration")),
        eval_count=_count(final.get("eval_count")),
        eval_ms=_ms(final.get("eval_duration")),
    )


def measure(
    identity: Identity,
    sent_ns: int,
    chunks: Sequence[ChunkLike],
    final: Mapping[str, Any] | None,
    *,
    error: str | None = None,
    rtt_ms: float | None = None,
) -> RequestResult:
    """One request's result row, measured by the recorder."""
    recorder = ReplyRecorder(sent_ns, rtt_ms=rtt_ms)
    last = len(chunks) - 1
    for index, chunk in enumerate(chunks):
        stats = final_stats(final) if final is not None and index == last else None
        recorder.add(StreamChunk(chunk.arrival_ns, chunk.content, chunk.thinking, stats))
    return recorder.finish(None, error).to_result(identity)
