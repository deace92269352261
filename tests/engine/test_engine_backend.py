"""The OpenAI-compatible backend against the real llama-server: direct, and through nginx.

Real tokens from SmolLM2-135M on one CPU thread. Greedy decoding (``temperature: 0``) makes
the text repeatable, so the sync and async twins can be compared on content, not only shape.
The nginx case is the shipped ``ollama-tls-auth.conf`` (HTTPS + Basic auth) in front of
llama-server instead of Ollama, with the deploy tests' trustme CA.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from ollamakit.client import (
    AsyncOpenAIBackend,
    AutoBackend,
    OpenAIBackend,
    identity_line,
    open_backend,
)
from ollamakit.config import Flags, load_settings
from ollamakit.domain import ChatRequest, StreamChunk
from ollamakit.errors import AuthError
from tests.deploy.conftest import PASSWORD, USER, Nginx
from tests.engine.harness import ALIAS, THINKING_TEMPLATE, Engine, EngineFiles, free_port

pytestmark = [pytest.mark.engine, pytest.mark.timeout(180)]

REQUEST = ChatRequest(
    model=ALIAS,
    messages=({"role": "user", "content": "Name three colours."},),
    options={"num_predict": 16, "temperature": 0, "seed": 7},
)


def settings(url: str, **flags: Any) -> Any:
    return load_settings(Flags(base_url=url, **flags), environ={})


def read(backend: Any, request: ChatRequest = REQUEST) -> tuple[list[StreamChunk], Any]:
    with backend.stream_chat(request) as stream:
        chunks = list(stream)
    return chunks, stream


def test_auto_names_llamacpp_and_streams_real_tokens(engine: Engine) -> None:
    backend = open_backend(settings(engine.url))
    try:
        identity = backend.connect()
        models = backend.list_models()
        chunks, stream = read(backend)
        described = backend.describe(ALIAS)
    finally:
        backend.close()
    assert isinstance(backend, AutoBackend) and isinstance(backend.chosen, OpenAIBackend)
    assert (identity.api, identity.engine) == ("openai", "llama.cpp")
    assert "llama.cpp" in identity_line(identity, engine.url)
    assert [m.name for m in models] == [ALIAS] and described.parameter_size == "135M"
    assert stream.end == "done"
    final = chunks[-1].final
    assert final is not None and final.eval_count is not None
    assert 1 <= final.eval_count <= 16
    assert final.prompt_eval_ms and final.eval_ms and final.prompt_eval_count
    assert "".join(c.content for c in chunks).strip()
    stamps = [c.arrival_ns for c in chunks]
    assert stream.sent_ns <= stream.headers_ns <= stamps[0] and stamps == sorted(stamps)


def test_sync_and_async_twins_agree_on_the_real_server(engine: Engine) -> None:
    with OpenAIBackend(settings(engine.url)) as backend:
        sync_chunks, _ = read(backend)
        sync_identity = backend.connect()

    async def run() -> tuple[list[StreamChunk], Any]:
        async with AsyncOpenAIBackend(settings(engine.url)) as backend:
            async with backend.stream_chat(REQUEST) as stream:
                chunks = [c async for c in stream]
            return chunks, await backend.connect()

    async_chunks, async_identity = asyncio.run(run())
    assert async_identity == sync_identity
    text = "".join(c.content for c in sync_chunks)
    assert "".join(c.content for c in async_chunks) == text  # greedy: the same tokens
    sync_final, async_final = sync_chunks[-1].final, async_chunks[-1].final
    assert sync_final is not None and async_final is not None
    assert sync_final.eval_count == async_final.eval_count
    assert sync_final.done_reason == async_final.done_reason


def test_closing_early_stops_the_server_and_the_next_request_works(engine: Engine) -> None:
    long = ChatRequest(ALIAS, REQUEST.messages, {"num_predict": 400, "temperature": 0})
    with OpenAIBackend(settings(engine.url)) as backend:
        with backend.stream_chat(long) as stream:
            for i, _chunk in enumerate(stream):
                if i == 2:
                    break
        assert stream.end == "interrupted"
        chunks, again = read(backend)
    assert again.end == "done" and chunks[-1].final is not None


def test_through_nginx_with_tls_and_basic_auth(engine: Engine, start_nginx: Any, pki: Any) -> None:
    proxy: Nginx = start_nginx("ollama-tls-auth.conf", engine.address)
    good = settings(proxy.https_url(), ca_bundle=str(pki.ca_pem))
    backend = open_backend(good)
    try:
        identity = backend.connect()
        chunks, stream = read(backend)
    finally:
        backend.close()
    assert identity.engine == "llama.cpp"
    assert stream.end == "done" and chunks[-1].final is not None
    assert "".join(c.content for c in chunks).strip()
    # Chunks arrived as a stream, not one buffered lump at the end.
    assert len({c.arrival_ns for c in chunks}) > 2
    wrong = settings(proxy.https_url(USER, PASSWORD + "x"), ca_bundle=str(pki.ca_pem))
    backend = open_backend(wrong)
    try:
        with pytest.raises(AuthError):
            backend.connect()
    finally:
        backend.close()


@pytest.fixture(scope="module")
def thinking_engine(
    engine_files: EngineFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A second llama-server whose chat template opens a <think> block (reasoning_content)."""
    folder = tmp_path_factory.mktemp("llama-server-thinking")
    extra = ("--jinja", "--reasoning-format", "deepseek", "--chat-template-file")
    server = Engine(
        engine_files,
        free_port(),
        folder / "server.log",
        extra_args=(*extra, str(THINKING_TEMPLATE)),
    ).start()
    yield server
    server.stop()


def test_a_real_reasoning_stream_is_thinking(thinking_engine: Engine) -> None:
    """SmolLM2 inside an opened <think> block: llama-server sends delta.reasoning_content."""
    ask = ChatRequest(
        ALIAS, ({"role": "user", "content": "What is 2+2?"},), {"num_predict": 24, "temperature": 0}
    )
    with OpenAIBackend(settings(thinking_engine.url)) as backend:
        chunks, stream = read(backend, ask)
    assert stream.end == "done"
    thinking = "".join(c.thinking for c in chunks)
    assert thinking.strip(), chunks
    assert "<think>" not in thinking  # parsed by the server, not passed through as text
    final = chunks[-1].final
    assert final is not None and final.eval_count
    # The server's reasoning parser may hold back a few tokens (a possible "</think>") and
    # send them together: never more pieces than tokens.
    pieces = [c for c in chunks if c.thinking or c.content]
    assert 1 <= len(pieces) <= final.eval_count
