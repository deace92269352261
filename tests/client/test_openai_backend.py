"""The OpenAI-compatible backend over real HTTP: a scripted server on loopback, byte for byte.

:class:`FakeEngine` answers like llama-server, vLLM or a broken proxy would (routes and exact
response bytes given per test, SSE written as chunked frames) and records what reached it, so
the tests check the request the backend sent (auth headers, body) and what it made of each
answer. The same checks against the real llama-server are in ``tests/engine/``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ollamakit.client import (
    AsyncAutoBackend,
    AsyncOpenAIBackend,
    AutoBackend,
    OpenAIBackend,
    identity_line,
    open_async_backend,
    open_backend,
)
from ollamakit.config import load_settings
from ollamakit.domain import ChatRequest, FinalStats, ServerIdentity, StreamChunk
from ollamakit.errors import (
    AuthError,
    ConnectionRefused,
    NotFoundError,
    ProtocolError,
    ServerBusy,
    StreamCut,
)
from tests.client.conftest import settings_for

REQUEST = ChatRequest(
    model="smollm2-135m",
    messages=({"role": "user", "content": "hello"},),
    options={"num_predict": 8, "seed": 1, "temperature": 0},
)


def frame(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def token(text: str, field_name: str = "content") -> bytes:
    return frame(
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {field_name: text}}]}
    )


ROLE = frame({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]})
FINISH = frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
TIMINGS = {"cache_n": 0, "prompt_n": 9, "prompt_ms": 40.5, "predicted_n": 2, "predicted_ms": 20.0}
USAGE = frame(
    {
        "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
        "timings": TIMINGS,
    }
)
DONE = b"data: [DONE]\n\n"
LLAMA_STREAM = [ROLE, token("Hel"), token("lo"), FINISH, USAGE, DONE]
LLAMA_MODELS = {
    "object": "list",
    "data": [
        {
            "id": "smollm2-135m",
            "object": "model",
            "owned_by": "llamacpp",
            "meta": {"size": 92_567_104, "n_params": 134_515_008, "n_ctx_train": 8192},
        }
    ],
}
NOT_FOUND = {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}


@dataclass
class Answer:
    status: int = 200
    body: bytes | list[bytes] = b""  # a list: SSE frames, one chunk each
    content_type: str = "application/json"
    cut: bool = False  # close the connection without the last chunk

    @classmethod
    def json(cls, obj: object, status: int = 200) -> Answer:
        return cls(status, json.dumps(obj).encode())


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeEngine:
    routes: dict[str, Answer]
    seen: list[Seen] = field(default_factory=list)

    def start(self) -> ThreadingHTTPServer:
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                engine.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        json.loads(raw) if raw else None,
                    )
                )
                answer = engine.routes.get(f"{self.command} {self.path}") or Answer.json(
                    NOT_FOUND, 404
                )
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                if isinstance(answer.body, list):
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    frames = answer.body[:-1] if answer.cut else answer.body
                    for part in frames:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                        self.wfile.flush()
                    if answer.cut:
                        self.close_connection = True
                        return
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)

            do_GET = _answer
            do_POST = _answer

        return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[str, Answer]) -> tuple[str, FakeEngine]:
        fake = FakeEngine(routes)
        server = fake.start()
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}", fake

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def llama_routes(stream: list[bytes] | None = None, *, cut: bool = False) -> dict[str, Answer]:
    return {
        "GET /v1/models": Answer.json(LLAMA_MODELS),
        "GET /props": Answer.json({"build_info": "b6915-a1b2c3d", "total_slots": 1}),
        "POST /v1/chat/completions": Answer(
            body=stream or LLAMA_STREAM, content_type="text/event-stream", cut=cut
        ),
    }


def read_all(backend: Any) -> tuple[list[StreamChunk], Any]:
    with backend.stream_chat(REQUEST) as stream:
        chunks = list(stream)
    return chunks, stream


# --------------------------------------------------------------------------- detection


def test_auto_detects_llamacpp_and_streams_its_figures(serve: Any) -> None:
    url, fake = serve(llama_routes())
    backend = open_backend(settings_for(url))
    try:
        identity = backend.connect()
        chunks, stream = read_all(backend)
        models = backend.list_models()
        residency, unloaded = backend.residency(), backend.unload("smollm2-135m")
    finally:
        backend.close()
    assert isinstance(backend, AutoBackend) and isinstance(backend.chosen, OpenAIBackend)
    assert identity == ServerIdentity("openai", "llama.cpp", "b6915-a1b2c3d")
    assert identity_line(identity, url) == (
        f"{url}: llama.cpp b6915-a1b2c3d, OpenAI-compatible API (/v1)"
    )
    assert [m.name for m in models] == ["smollm2-135m"] and models[0].context_length == 8192
    assert residency is None and unloaded is False
    assert "".join(c.content for c in chunks) == "Hello"
    assert chunks[-1].final == FinalStats(
        done_reason="stop",
        prompt_eval_count=9,
        prompt_eval_ms=40.5,
        prompt_cached_count=0,
        eval_count=2,
        eval_ms=20.0,
    )
    assert stream.end == "done"
    assert stream.sent_ns <= stream.headers_ns <= chunks[0].arrival_ns
    # Ollama's route was asked first, then /v1/models; the chat body is OpenAI's.
    assert [s.path for s in fake.seen[:2]] == ["/api/version", "/v1/models"]
    [chat] = [s for s in fake.seen if s.path == "/v1/chat/completions"]
    assert chat.body == {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 8,
        "temperature": 0.0,
        "seed": 1,
    }
    assert chat.headers["accept"] == "text/event-stream"


def test_vllm_without_timings_leaves_durations_unknown(serve: Any) -> None:
    usage = frame({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}})
    routes = {
        "GET /v1/models": Answer.json({"data": [{"id": "Qwen/Qwen3-0.6B", "owned_by": "vllm"}]}),
        "POST /v1/chat/completions": Answer(
            body=[token("a"), token("b"), FINISH, usage, DONE], content_type="text/event-stream"
        ),
    }
    url, fake = serve(routes)
    backend = open_backend(settings_for(url, api="openai"))
    try:
        identity = backend.connect()
        chunks, _ = read_all(backend)
    finally:
        backend.close()
    assert isinstance(backend, OpenAIBackend)
    assert identity == ServerIdentity("openai", "vllm", None)
    assert "/api/version" not in [s.path for s in fake.seen]  # --api openai: no Ollama probe
    final = chunks[-1].final
    assert final is not None and (final.eval_count, final.eval_ms, final.prompt_eval_ms) == (
        2,
        None,
        None,
    )


def test_reasoning_stream_is_thinking(serve: Any) -> None:
    stream = [
        ROLE,
        token("Let me", "reasoning_content"),
        token(" think.", "reasoning_content"),
        token("Hi"),
        FINISH,
        USAGE,
        DONE,
    ]
    url, _ = serve(llama_routes(stream))
    with OpenAIBackend(settings_for(url)) as backend:
        chunks, _ = read_all(backend)
    assert "".join(c.thinking for c in chunks) == "Let me think."
    assert "".join(c.content for c in chunks) == "Hi"
    first_thinking = next(i for i, c in enumerate(chunks) if c.thinking)
    first_answer = next(i for i, c in enumerate(chunks) if c.content)
    assert first_thinking < first_answer


def test_neither_api_keeps_the_ollama_diagnosis(serve: Any) -> None:
    url, fake = serve({})  # every route 404
    backend = open_backend(settings_for(url))
    with pytest.raises(NotFoundError) as info:
        backend.connect()
    backend.close()
    assert "/api/version" in info.value.message
    assert [s.path for s in fake.seen] == ["/api/version", "/v1/models"]


def test_a_refused_connection_is_not_tried_as_another_api() -> None:
    backend = open_backend(settings_for("http://127.0.0.1:1"))
    with pytest.raises(ConnectionRefused):
        backend.connect()
    backend.close()


def test_a_base_url_ending_in_v1_is_not_doubled(serve: Any) -> None:
    url, fake = serve(llama_routes())
    with OpenAIBackend(settings_for(url + "/v1")) as backend:
        backend.list_models()
        read_all(backend)
    assert [s.path for s in fake.seen] == ["/v1/models", "/v1/chat/completions"]


# --------------------------------------------------------------------------- auth, errors


def test_basic_auth_from_the_url_and_bearer_from_the_api_key(serve: Any) -> None:
    url, fake = serve(llama_routes())
    with OpenAIBackend(settings_for(url.replace("//", "//user:pa%40ss@"))) as backend:
        read_all(backend)
    # base64("user:pa@ss")
    assert fake.seen[-1].headers["authorization"] == "Basic dXNlcjpwYUBzcw=="
    settings = settings_for(url)
    keyed = type(settings)(**{**_fields(settings), "api_key": "sk-test-123"})
    with OpenAIBackend(keyed) as backend:
        backend.list_models()
    assert fake.seen[-1].headers["authorization"] == "Bearer sk-test-123"


def _fields(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def test_401_is_the_same_auth_error_as_for_ollama(serve: Any) -> None:
    url, _ = serve({"GET /v1/models": Answer.json({"error": {"message": "Invalid API Key"}}, 401)})
    with OpenAIBackend(settings_for(url)) as backend, pytest.raises(AuthError) as info:
        backend.connect()
    assert "401" in info.value.message or "Invalid API Key" in info.value.message


def test_503_with_an_openai_error_body(serve: Any) -> None:
    routes = llama_routes()
    routes["POST /v1/chat/completions"] = Answer.json(
        {"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}}, 503
    )
    url, _ = serve(routes)
    with OpenAIBackend(settings_for(url)) as backend, pytest.raises(ServerBusy) as info:
        read_all(backend)
    assert "Loading model" in info.value.message


def test_a_200_that_is_not_an_event_stream(serve: Any) -> None:
    routes = llama_routes()
    routes["POST /v1/chat/completions"] = Answer(
        body=b"<html><title>Portal login</title></html>", content_type="text/html"
    )
    url, _ = serve(routes)
    with OpenAIBackend(settings_for(url)) as backend, pytest.raises(ProtocolError) as info:
        read_all(backend)
    assert "text/event-stream" in info.value.message and "Portal login" in info.value.message


def test_a_stream_cut_before_done_is_cut(serve: Any) -> None:
    url, _ = serve(llama_routes([ROLE, token("Hel"), token("lo"), FINISH], cut=True))
    with OpenAIBackend(settings_for(url)) as backend:
        stream = backend.stream_chat(REQUEST)
        got: list[StreamChunk] = []
        with stream, pytest.raises(StreamCut):
            got.extend(stream)
    assert "".join(c.content for c in got) == "Hello"  # the frames before the cut were yielded
    assert stream.end == "cut"


# --------------------------------------------------------------------------- twins


def _sync_values(url: str) -> dict[str, Any]:
    with OpenAIBackend(settings_for(url)) as backend:
        chunks, stream = read_all(backend)
        return {
            "identity": backend.connect(),
            "models": backend.list_models(),
            "describe": backend.describe("smollm2-135m"),
            "residency": backend.residency(),
            "unload": backend.unload("smollm2-135m"),
            "chunks": [(c.content, c.thinking, c.final) for c in chunks],
            "end": stream.end,
        }


async def _async_values(url: str) -> dict[str, Any]:
    async with AsyncOpenAIBackend(settings_for(url)) as backend:
        async with backend.stream_chat(REQUEST) as stream:
            chunks = [c async for c in stream]
        return {
            "identity": await backend.connect(),
            "models": await backend.list_models(),
            "describe": await backend.describe("smollm2-135m"),
            "residency": await backend.residency(),
            "unload": await backend.unload("smollm2-135m"),
            "chunks": [(c.content, c.thinking, c.final) for c in chunks],
            "end": stream.end,
        }


def test_sync_and_async_twins_give_the_same_values(serve: Any) -> None:
    url, _ = serve(llama_routes())
    sync = _sync_values(url)
    assert sync == asyncio.run(_async_values(url))
    assert sync["identity"].engine == "llama.cpp" and sync["end"] == "done"


def test_async_auto_streams_before_connect(serve: Any) -> None:
    url, _ = serve(llama_routes())

    async def run() -> tuple[str, ServerIdentity]:
        backend = open_async_backend(settings_for(url))
        assert isinstance(backend, AsyncAutoBackend)
        try:
            async with backend.stream_chat(REQUEST) as stream:
                text = "".join([c.content async for c in stream])
            return text, backend.identity
        finally:
            await backend.aclose()

    text, identity = asyncio.run(run())
    assert text == "Hello" and identity.engine == "llama.cpp"


def test_the_api_setting_picks_the_backend(serve: Any) -> None:
    url, fake = serve(llama_routes())

    from_env = load_settings(environ={"OLLAMA_BASE_URL": url, "OLLAMAKIT_API": "OpenAI"})
    assert from_env.api == "openai" and from_env.sources["OLLAMAKIT_API"] == "env"
    backend = open_backend(from_env)
    try:
        assert isinstance(backend, OpenAIBackend)
        assert backend.connect().engine == "llama.cpp"
    finally:
        backend.close()
    assert "/api/version" not in [s.path for s in fake.seen]
    assert isinstance(open_backend(from_env, api="auto"), AutoBackend)  # the argument wins
