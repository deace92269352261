"""The Backend protocol: the sync and async twins expose the same methods and give the same
values for the same server (one simulator); registry; once-only streams."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from ollamakit.client import (
    AsyncBackend,
    AsyncOllamaBackend,
    Backend,
    OllamaBackend,
    StreamReused,
    open_async_backend,
    open_backend,
)
from ollamakit.domain import ChatRequest
from ollamakit.errors import UsageError
from tests.client.conftest import settings_for

REQUEST = ChatRequest(
    model="m:1b",
    messages=({"role": "user", "content": "hello"},),
    options={"num_predict": 8, "seed": 1, "temperature": 0},
)


def _protocol_methods(proto: type) -> set[str]:
    return {n for n in dir(proto) if not n.startswith("_")}


def test_twins_have_the_same_methods_and_signatures() -> None:
    sync_names = _protocol_methods(Backend)
    assert sync_names - {"close"} == _protocol_methods(AsyncBackend) - {"aclose"}
    for name in sync_names - {"close", "identity"}:
        sync_sig = inspect.signature(getattr(OllamaBackend, name))
        async_sig = inspect.signature(getattr(AsyncOllamaBackend, name))
        assert list(sync_sig.parameters) == list(async_sig.parameters), name
        is_coro = inspect.iscoroutinefunction(getattr(AsyncOllamaBackend, name))
        assert is_coro == (name != "stream_chat"), name


def _sync_values(url: str) -> dict[str, Any]:
    backend = open_backend(settings_for(url))
    try:
        identity = backend.connect()
        with backend.stream_chat(REQUEST) as stream:
            chunks = list(stream)
            with pytest.raises(StreamReused):
                list(stream)
        return {
            "identity": identity,
            "models": backend.list_models(),
            "describe": backend.describe("think:1b"),
            "residency": backend.residency(),
            "text": [c.content for c in chunks],
            "final": chunks[-1].final,
            "end": stream.end,
            "stamps": stream.sent_ns <= stream.headers_ns <= chunks[0].arrival_ns,
            "unload": backend.unload("m:1b"),
        }
    finally:
        backend.close()


async def _async_values(url: str) -> dict[str, Any]:
    backend = open_async_backend(settings_for(url))
    try:
        identity = await backend.connect()
        async with backend.stream_chat(REQUEST) as stream:
            chunks = [c async for c in stream]
            with pytest.raises(StreamReused):
                [c async for c in stream]
        return {
            "identity": identity,
            "models": await backend.list_models(),
            "describe": await backend.describe("think:1b"),
            "residency": await backend.residency(),
            "text": [c.content for c in chunks],
            "final": chunks[-1].final,
            "end": stream.end,
            "stamps": stream.sent_ns <= stream.headers_ns <= chunks[0].arrival_ns,
            "unload": await backend.unload("m:1b"),
        }
    finally:
        await backend.aclose()


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    final = values["final"]
    # Durations are measured by the server per request; counts and the reason are not.
    values["final"] = (final.done_reason, final.eval_count, final.prompt_eval_count)
    values["residency"] = sorted((r.model, r.size_bytes, r.vram_bytes) for r in values["residency"])
    return values


def test_sync_and_async_give_the_same_values(sim_url: str) -> None:
    sync = _comparable(_sync_values(sim_url))
    async_ = _comparable(asyncio.run(_async_values(sim_url)))
    assert sync == async_
    assert sync["identity"].api == "ollama" and sync["identity"].version
    assert sync["end"] == "done" and sync["stamps"] and sync["unload"] is True
    names = [m.name for m in sync["models"]]
    assert names == ["m:1b", "think:1b", "half:3b"]
    assert sync["describe"].can_think is True
    assert "".join(sync["text"]) and sync["final"][1] is not None


def test_residency_after_a_load_shows_the_gpu_share(sim_url: str) -> None:
    backend = open_backend(settings_for(sim_url))
    try:
        with backend.stream_chat(ChatRequest("half:3b", REQUEST.messages, REQUEST.options)) as s:
            list(s)
        found = {r.model: r for r in backend.residency() or []}
    finally:
        backend.close()
    assert found["half:3b"].gpu_share == pytest.approx(0.63)


def test_unknown_api_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        open_backend(settings_for("http://127.0.0.1:1"), api="grpc")
    assert "ollama" in info.value.message


def test_reiterating_a_partly_read_stream_raises(sim_url: str) -> None:
    backend = open_backend(settings_for(sim_url))
    try:
        with backend.stream_chat(REQUEST) as stream:
            for _chunk in stream:
                break
            with pytest.raises(StreamReused, match="only once"):
                next(iter(stream))
    finally:
        backend.close()


def test_reiterating_a_partly_read_async_stream_raises(sim_url: str) -> None:
    async def run() -> None:
        backend = open_async_backend(settings_for(sim_url))
        try:
            async with backend.stream_chat(REQUEST) as stream:
                async for _chunk in stream:
                    break
                with pytest.raises(StreamReused, match="only once"):
                    stream.__aiter__()
        finally:
            await backend.aclose()

    asyncio.run(run())
