"""The OpenAI-compatible layer as Ollama's ``/v1``, and ``--engine llama.cpp`` as llama-server."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ollamakit.sim import Fault, FaultKind, ModelSpec, SimConfig

from .conftest import QUICK, THINKER, faulty, quick_config, raw

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]


def sse(url: str, body: dict[str, Any]) -> tuple[httpx.Response, list[Any]]:
    """POST and split the SSE body into its ``data:`` payloads (``[DONE]`` kept as a string)."""
    reply = httpx.post(url + "/v1/chat/completions", json=body, timeout=20)
    frames = []
    for block in reply.text.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: ") :]
        frames.append(payload if payload == "[DONE]" else json.loads(payload))
    return reply, frames


def test_models_list_and_one_model(start_sim) -> None:
    sim = start_sim()
    listed = httpx.get(sim.url + "/v1/models").json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["quick:1b", "thinker:1b"]
    assert list(listed["data"][0]) == ["id", "object", "created", "owned_by"]
    assert listed["data"][0]["owned_by"] == "library"
    one = httpx.get(sim.url + "/v1/models/quick:1b").json()
    assert one["id"] == "quick:1b" and one["object"] == "model"
    missing = httpx.get(sim.url + "/v1/models/nope:1b")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "message": "model 'nope:1b' not found",
            "type": "not_found_error",
            "param": None,
            "code": None,
        }
    }
    empty = start_sim(SimConfig(models=()))
    assert raw(empty.url, "GET", "/v1/models").body == b'{"object":"list","data":null}'


def test_non_streaming_completion_with_usage(start_sim) -> None:
    sim = start_sim()
    reply = httpx.post(
        sim.url + "/v1/chat/completions", json={"model": "quick:1b", "messages": MESSAGES}
    )
    assert reply.status_code == 200
    data = reply.json()
    assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-")
    assert data["system_fingerprint"] == "fp_ollama"
    (choice,) = data["choices"]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    usage = data["usage"]
    assert usage["completion_tokens"] == QUICK.reply_tokens
    assert usage["prompt_tokens"] == 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # The same text as the native API gives.
    native = raw(
        sim.url,
        "POST",
        "/api/chat",
        body={"model": "quick:1b", "messages": MESSAGES, "stream": False},
    ).lines[0]
    assert choice["message"]["content"] == native["message"]["content"]


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_frames(start_sim, include_usage: bool) -> None:
    sim = start_sim()
    body: dict[str, Any] = {"model": "quick:1b", "messages": MESSAGES, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    reply, frames = sse(sim.url, body)
    assert reply.headers["content-type"] == "text/event-stream"
    assert frames[-1] == "[DONE]"
    chunks = frames[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] is None]
    assert len(content) == QUICK.reply_tokens
    finish = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["choices"][0]["delta"]["content"] == ""
    usage = [c for c in chunks if c["choices"] == []]
    if include_usage:
        (frame,) = usage
        assert frame["usage"]["completion_tokens"] == QUICK.reply_tokens
        assert chunks[-1] is frame  # after the finish frame
    else:
        assert usage == [] and all("usage" not in c for c in chunks)


def test_reasoning_arrives_in_delta_reasoning(start_sim) -> None:
    sim = start_sim()
    _, frames = sse(sim.url, {"model": "thinker:1b", "messages": MESSAGES, "stream": True})
    deltas = [f["choices"][0]["delta"] for f in frames[:-1] if f["choices"]]
    reasoning = [d for d in deltas if d.get("reasoning")]
    assert len(reasoning) == THINKER.thinking_tokens
    assert deltas.index(reasoning[0]) == 0  # reasoning first
    whole = httpx.post(
        sim.url + "/v1/chat/completions", json={"model": "thinker:1b", "messages": MESSAGES}
    ).json()
    assert whole["choices"][0]["message"]["reasoning"]
    # reasoning_effort "none" turns it off on a model that can.
    off = httpx.post(
        sim.url + "/v1/chat/completions",
        json={"model": "thinker:1b", "messages": MESSAGES, "reasoning_effort": "none"},
    ).json()
    assert "reasoning" not in off["choices"][0]["message"]


def test_errors_in_openai_shape(start_sim) -> None:
    embed = ModelSpec("emb:1b", kind="embedding")
    sim = start_sim(quick_config(embed, faulty("busy:1b", Fault(FaultKind.BUSY))))
    cases = [
        ({"model": "nope:1b", "messages": MESSAGES}, 404, "not_found_error"),
        ({"model": "emb:1b", "messages": MESSAGES}, 400, "invalid_request_error"),
        ({"model": "busy:1b", "messages": MESSAGES}, 503, "api_error"),
    ]
    for body, status, kind in cases:
        reply = httpx.post(sim.url + "/v1/chat/completions", json=body)
        assert reply.status_code == status
        error = reply.json()["error"]
        assert list(error) == ["message", "type", "param", "code"]
        assert error["type"] == kind
    bad = httpx.post(sim.url + "/v1/chat/completions", content=b"{nope")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_v1_uses_the_same_timing_and_faults(start_sim) -> None:
    sim = start_sim(quick_config(faulty("cut:1b", Fault(FaultKind.CUT_AFTER, 3))))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            sim.url + "/v1/chat/completions",
            json={"model": "cut:1b", "messages": MESSAGES, "stream": True},
        )
    assert sim.requests()[-1].outcome == "cut"


# --- llama.cpp's llama-server -----------------------------------------------------------------

LLAMA = SimConfig(
    models=(
        ModelSpec(
            "smollm2:135m",
            load_ms=0,
            warm_load_ms=0,
            prompt_tps=20_000,
            eval_tps=2_000,
            reply_tokens=8,
        ),
    ),
    engine="llama.cpp",
)


def test_llamacpp_has_no_api_routes(start_sim) -> None:
    sim = start_sim(LLAMA)
    for method, path in (
        ("GET", "/api/tags"),
        ("GET", "/api/version"),
        ("GET", "/"),
        ("POST", "/api/chat"),
    ):
        reply = raw(sim.url, method, path, body={} if method == "POST" else None)
        assert reply.status == 404
        assert reply.lines[0] == {  # dict equality: key order is not compared
            "error": {"message": "File Not Found", "type": "not_found_error", "code": 404}
        }
    assert httpx.get(sim.url + "/health").json() == {"status": "ok"}
    props = httpx.get(sim.url + "/props").json()
    assert props["total_slots"] == 1 and props["default_generation_settings"]["n_ctx"] == 4096


def test_llamacpp_models_list_has_both_shapes(start_sim) -> None:
    sim = start_sim(LLAMA)
    for path in ("/v1/models", "/models"):
        body = httpx.get(sim.url + path).json()
        assert body["object"] == "list"
        assert [m["owned_by"] for m in body["data"]] == ["llamacpp"]
        assert [m["name"] for m in body["models"]] == ["smollm2:135m"]


def test_llamacpp_stream_with_timings(start_sim) -> None:
    sim = start_sim(LLAMA)
    body = {
        "model": "anything",  # llama-server ignores it
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    reply, frames = sse(sim.url, body)
    assert reply.status_code == 200 and frames[-1] == "[DONE]"
    first = frames[0]["choices"][0]["delta"]
    assert first == {"content": None, "role": "assistant"}
    content = [f for f in frames[1:-1] if f["choices"] and f["choices"][0]["finish_reason"] is None]
    assert len(content) == 8 and all(list(f["choices"][0]["delta"]) == ["content"] for f in content)
    finish = frames[-3]["choices"][0]
    assert finish["finish_reason"] == "stop" and finish["delta"] == {}
    usage = frames[-2]
    assert usage["choices"] == []
    timings = usage["timings"]
    assert timings["predicted_n"] == 8 and timings["prompt_n"] == 6 and timings["cache_n"] == 0
    assert timings["predicted_ms"] > 0 and timings["predicted_per_second"] > 0
    assert usage["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    # Again: the prompt is in the slot's cache now.
    _, again = sse(sim.url, body)
    cached = again[-2]["timings"]
    assert cached["cache_n"] == 5 and cached["prompt_n"] == 1
    assert again[-2]["usage"]["prompt_tokens"] == 6


def test_engine_and_version_flags_in_a_subprocess() -> None:
    from ollamakit.sim import subprocess_sim

    with subprocess_sim(["--engine", "llama.cpp", "--model", "tiny:1b,eval_tps=inf"]) as sim:
        assert httpx.get(sim.url + "/health", timeout=10).json() == {"status": "ok"}
        assert httpx.get(sim.url + "/api/version", timeout=10).status_code == 404
    with subprocess_sim(["--ollama-version", "0.12.4"]) as sim:
        assert httpx.get(sim.url + "/api/version", timeout=10).json() == {"version": "0.12.4"}
        body = {"model": "deepseek-r1:1.5b", "prompt": "hi", "stream": False}
        reply = httpx.post(sim.url + "/api/generate", json=body, timeout=30).json()
        assert reply["response"].startswith("<think>") and "thinking" not in reply
