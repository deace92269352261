"""The OpenAI-compatible backend against the simulator: Ollama's own ``/v1``, and the simulator
as llama-server (``engine="llama.cpp"``), over real HTTP on loopback.

Ollama's native API and its ``/v1`` serve the same generation core in the simulator, so the
two backends must agree on the text and the token counts of the same request; only what each
API reports differs (``/v1`` has no durations).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from ollamakit.client import (
    AsyncOpenAIBackend,
    AutoBackend,
    OllamaBackend,
    OpenAIBackend,
    open_backend,
)
from ollamakit.domain import ChatRequest, ServerIdentity, StreamChunk
from ollamakit.errors import ModelNotFound
from ollamakit.sim import ModelSpec, SimConfig, run_in_thread
from tests.client.conftest import settings_for

MODELS = (
    ModelSpec("m:1b", eval_tps=float("inf"), load_ms=0, reply_tokens=12),
    ModelSpec("think:1b", family="qwen3", thinking=True, eval_tps=float("inf"), load_ms=0),
)
MESSAGES = ({"role": "user", "content": "Why is the sky blue?"},)


def request(model: str = "m:1b", **extra: Any) -> ChatRequest:
    return ChatRequest(model, MESSAGES, {"num_predict": 64, "seed": 3, "temperature": 0}, **extra)


@pytest.fixture(scope="module")
def ollama_sim() -> Iterator[str]:
    with run_in_thread(SimConfig(models=MODELS, speed=1000.0)) as sim:
        yield sim.url


@pytest.fixture(scope="module")
def llama_sim() -> Iterator[str]:
    config = SimConfig(models=MODELS[:1], speed=1000.0, engine="llama.cpp")
    with run_in_thread(config) as sim:
        yield sim.url


def read(backend: Any, req: ChatRequest) -> list[StreamChunk]:
    with backend.stream_chat(req) as stream:
        chunks = list(stream)
    assert stream.end == "done"
    return chunks


def test_ollama_native_and_its_v1_agree(ollama_sim: str) -> None:
    with OllamaBackend(settings_for(ollama_sim)) as native:
        native_chunks = read(native, request())
    with OpenAIBackend(settings_for(ollama_sim, api="openai")) as v1:
        identity = v1.connect()
        v1_chunks = read(v1, request())
        models = v1.list_models()
    assert identity.api == "openai" and identity.engine == "ollama" and identity.version
    assert [m.name for m in models] == ["m:1b", "think:1b"]
    text = "".join(c.content for c in native_chunks)
    assert "".join(c.content for c in v1_chunks) == text
    native_final, v1_final = native_chunks[-1].final, v1_chunks[-1].final
    assert native_final is not None and v1_final is not None
    assert v1_final.eval_count == native_final.eval_count
    assert v1_final.done_reason == native_final.done_reason
    # What /v1 does not report stays unknown; Ollama's native API has its durations.
    assert v1_final.eval_ms is None and v1_final.total_ms is None
    assert native_final.eval_ms is not None


def test_auto_picks_the_native_api_on_ollama(ollama_sim: str) -> None:
    backend = open_backend(settings_for(ollama_sim))
    try:
        identity = backend.connect()
    finally:
        backend.close()
    assert isinstance(backend, AutoBackend) and isinstance(backend.chosen, OllamaBackend)
    assert identity.api == "ollama"


def test_reasoning_over_ollama_v1(ollama_sim: str) -> None:
    with OpenAIBackend(settings_for(ollama_sim)) as v1:
        chunks = read(v1, request("think:1b", think="high"))
    thinking = "".join(c.thinking for c in chunks)
    answer = "".join(c.content for c in chunks)
    assert thinking and answer
    first_thinking = next(c.arrival_ns for c in chunks if c.thinking)
    first_answer = next(c.arrival_ns for c in chunks if c.content)
    assert first_thinking <= first_answer


def test_unknown_model_on_v1(ollama_sim: str) -> None:
    with OpenAIBackend(settings_for(ollama_sim)) as v1, pytest.raises(ModelNotFound):
        read(v1, request("nope:1b"))


def test_simulated_llamacpp_timings_and_prefix_cache(llama_sim: str) -> None:
    backend = open_backend(settings_for(llama_sim))
    try:
        identity = backend.connect()
        first = read(backend, request())
        second = read(backend, request())
        residency = backend.residency()
    finally:
        backend.close()
    assert identity == ServerIdentity("openai", "llama.cpp", identity.version)
    assert identity.version
    assert residency is None
    f1, f2 = first[-1].final, second[-1].final
    assert f1 is not None and f2 is not None
    assert f1.prompt_eval_ms is not None and f1.eval_ms is not None
    assert f1.eval_count == 12
    # The second identical prompt is served from the slot's cache: fewer tokens evaluated.
    assert f2.prompt_cached_count and f2.prompt_cached_count > 0
    assert f2.prompt_eval_count is not None and f1.prompt_eval_count is not None
    assert f2.prompt_eval_count < f1.prompt_eval_count


def test_async_backend_on_simulated_llamacpp(llama_sim: str) -> None:
    async def run() -> tuple[ServerIdentity, str]:
        async with AsyncOpenAIBackend(settings_for(llama_sim)) as backend:
            identity = await backend.connect()
            async with backend.stream_chat(request()) as stream:
                text = "".join([c.content async for c in stream])
            return identity, text

    identity, text = asyncio.run(run())
    with OpenAIBackend(settings_for(llama_sim)) as backend:
        assert backend.connect() == identity
        assert "".join(c.content for c in read(backend, request())) == text
