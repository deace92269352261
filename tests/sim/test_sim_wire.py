"""The simulator's wire format against ollama-api.md, checked on raw bytes over real sockets."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from ollamakit.sim import (
    ModelSpec,
    ThreadedSim,
    chat_prompt_tokens,
    count_tokens,
    generate_prompt_tokens,
)

from .conftest import QUICK, THINKER, quick_config, raw

CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
GENERATE_FINAL_KEYS = [
    "model",
    "created_at",
    "response",
    "done",
    "done_reason",
    "context",
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
]
CHAT_FINAL_KEYS = [
    "model",
    "created_at",
    "message",
    "done",
    "done_reason",
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
]


def parse_time(text: str) -> datetime:
    # Python < 3.11 cannot parse 9 fraction digits; trim to microseconds.
    match = re.match(r"^(.*?:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    assert match, text
    frac = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(match.group(1) + frac + zone)


# --- liveness, version, routing ---------------------------------------------------------------


def test_root_get_and_head(sim: ThreadedSim) -> None:
    get = raw(sim.url, "GET", "/")
    assert (get.status, get.body) == (200, b"Ollama is running")
    assert get.header("Content-Type") == "text/plain; charset=utf-8"
    assert get.header("Content-Length") == "17"
    assert get.header("Date") is not None and get.header("Server") is None
    head = raw(sim.url, "HEAD", "/")
    assert (head.status, head.body) == (200, b"")
    assert head.header("Content-Length") == "17"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_version(start_sim, method: str) -> None:
    sim = start_sim(quick_config(version="0.9.9"))
    reply = raw(sim.url, method, "/api/version")
    assert reply.status == 200
    assert reply.header("Content-Type") == "application/json; charset=utf-8"
    assert reply.body == (b'{"version":"0.9.9"}' if method == "GET" else b"")


def test_unknown_route_is_gin_404(sim: ThreadedSim) -> None:
    reply = raw(sim.url, "GET", "/api/nothing")
    assert (reply.status, reply.body) == (404, b"404 page not found")
    assert reply.header("Content-Type") == "text/plain"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/", "HEAD, GET"),
        ("GET", "/api/generate", "POST"),
        ("GET", "/api/chat", "POST"),
        ("POST", "/api/tags", "HEAD, GET"),
        ("DELETE", "/api/ps", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(
    sim: ThreadedSim, method: str, path: str, allow: str
) -> None:
    reply = raw(sim.url, method, path, body=b"" if method == "POST" else None)
    assert (reply.status, reply.body) == (405, b"405 method not allowed")
    assert reply.header("Allow") == allow
    assert reply.header("Content-Type") == "text/plain"


def test_trailing_slash_redirects_like_gin(sim: ThreadedSim) -> None:
    reply = raw(sim.url, "GET", "/api/tags/")
    assert reply.status == 301
    assert reply.header("Location") == "/api/tags"


def test_keep_alive_serves_several_requests_on_one_connection(sim: ThreadedSim) -> None:
    with httpx.Client(base_url=sim.url) as client:
        for _ in range(3):
            assert client.get("/").text == "Ollama is running"
            assert (
                client.post("/api/generate", json={"model": "quick:1b", "prompt": "hi"}).status_code
                == 200
            )
    peers = {r.peer for r in sim.requests()}
    assert len(peers) == 1  # all six requests came over the same client socket


# --- /api/tags, /api/ps, /api/show ------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.12.6", "0.30.0"])
def test_tags_lists_models_newest_first_with_go_field_order(start_sim, version: str) -> None:
    extra = ModelSpec("newest:7b", modified_at_ns=time.time_ns())
    sim = start_sim(quick_config(extra, version=version))
    reply = raw(sim.url, "GET", "/api/tags")
    assert reply.header("Content-Type") == "application/json; charset=utf-8"
    models = reply.lines[0]["models"]
    assert [m["name"] for m in models] == ["newest:7b", "quick:1b", "thinker:1b"]
    first = models[1]
    keys = ["name", "model", "modified_at", "size", "digest", "details"]
    # capabilities and details.context_length/embedding_length arrived in 0.30.0.
    new = version >= "0.30"
    assert list(first) == ([*keys, "capabilities"] if new else keys)
    assert (first.get("capabilities"), models[2].get("capabilities")) == (
        (["completion"], ["completion", "thinking"]) if new else (None, None)
    )
    assert first["model"] == first["name"] == "quick:1b"
    assert first["size"] == QUICK.size
    assert re.fullmatch(r"[0-9a-f]{64}", first["digest"])
    assert list(first["details"]) == [
        "parent_model",
        "format",
        "family",
        "families",
        "parameter_size",
        "quantization_level",
        *(["context_length", "embedding_length"] if new else []),
    ]
    assert first["details"]["quantization_level"] == "Q8_0"
    assert parse_time(first["modified_at"]) < datetime.now(timezone.utc)


def test_tags_empty_is_an_empty_list_not_null(start_sim) -> None:
    from ollamakit.sim import SimConfig

    sim = start_sim(SimConfig(models=()))
    assert raw(sim.url, "GET", "/api/tags").body == b'{"models":[]}'
    assert raw(sim.url, "GET", "/api/ps").body == b'{"models":[]}'


def test_show(sim: ThreadedSim) -> None:
    reply = raw(sim.url, "POST", "/api/show", body={"model": "thinker:1b"})
    assert reply.status == 200
    data = reply.lines[0]
    assert data["details"]["family"] == "qwen3"
    assert data["capabilities"] == ["completion", "thinking"]
    assert data["model_info"]["general.architecture"] == "qwen3"
    assert list(data["model_info"]) == sorted(data["model_info"])  # a Go map: sorted keys
    assert data["parameters"].startswith("stop ")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "nope"}, 404, "model 'nope:latest' not found"),
        ({"name": "nope:7b"}, 404, "model 'nope:7b' not found"),
        ({}, 400, "model is required"),
    ],
)
def test_show_errors(sim: ThreadedSim, body: dict[str, str], status: int, error: str) -> None:
    reply = raw(sim.url, "POST", "/api/show", body=body)
    assert reply.status == status
    assert reply.lines[0] == {"error": error}


def test_ps_tracks_load_and_unload(sim: ThreadedSim) -> None:
    assert raw(sim.url, "GET", "/api/ps").lines[0] == {"models": []}
    before = datetime.now(timezone.utc)
    load = raw(sim.url, "POST", "/api/generate", body={"model": "quick:1b", "keep_alive": "10m"})
    assert load.status == 200
    assert load.header("Content-Type") == "application/json; charset=utf-8"
    done = load.lines[0]
    assert list(done) == ["model", "created_at", "response", "done", "done_reason"]
    assert (done["response"], done["done"], done["done_reason"]) == ("", True, "load")

    models = raw(sim.url, "GET", "/api/ps").lines[0]["models"]
    assert [m["name"] for m in models] == ["quick:1b"]
    entry = models[0]
    assert list(entry) == [
        "name",
        "model",
        "size",
        "digest",
        "details",
        "expires_at",
        "size_vram",
        "context_length",
    ]
    assert entry["size_vram"] == 1_000_000_000 and entry["size"] == QUICK.size
    expires = parse_time(entry["expires_at"])
    assert timedelta(minutes=9, seconds=50) < expires - before < timedelta(minutes=10, seconds=10)

    unload = raw(sim.url, "POST", "/api/generate", body={"model": "quick:1b", "keep_alive": 0})
    assert unload.lines[0]["done_reason"] == "unload"
    assert raw(sim.url, "GET", "/api/ps").lines[0] == {"models": []}


def test_chat_load_and_unload_shapes(sim: ThreadedSim) -> None:
    load = raw(sim.url, "POST", "/api/chat", body={"model": "thinker:1b", "messages": []})
    assert load.lines[0]["message"] == {"role": "assistant", "content": ""}
    assert load.lines[0]["done_reason"] == "load"
    unload = raw(sim.url, "POST", "/api/chat", body={"model": "thinker:1b", "keep_alive": 0})
    assert unload.lines[0]["done_reason"] == "unload"


def test_default_keep_alive_is_five_minutes_and_a_prompt_with_zero_unloads_after(
    sim: ThreadedSim,
) -> None:
    raw(sim.url, "POST", "/api/generate", body={"model": "quick:1b", "prompt": "hi"})
    entry = raw(sim.url, "GET", "/api/ps").lines[0]["models"][0]
    left = parse_time(entry["expires_at"]) - datetime.now(timezone.utc)
    assert timedelta(minutes=4, seconds=50) < left <= timedelta(minutes=5)
    body = {"model": "quick:1b", "prompt": "hi", "keep_alive": 0, "stream": False}
    assert raw(sim.url, "POST", "/api/generate", body=body).lines[0]["done_reason"] == "stop"
    assert raw(sim.url, "GET", "/api/ps").lines[0] == {"models": []}


def test_expired_model_is_unloaded_and_loads_cold_again(sim: ThreadedSim) -> None:
    first = raw(
        sim.url,
        "POST",
        "/api/generate",
        body={"model": "quick:1b", "prompt": "hi", "keep_alive": "200ms"},
    )
    assert raw(sim.url, "GET", "/api/ps").lines[0]["models"]
    time.sleep(0.3)
    assert raw(sim.url, "GET", "/api/ps").lines[0] == {"models": []}
    again = raw(sim.url, "POST", "/api/generate", body={"model": "quick:1b", "prompt": "hi"})
    cold = [r.cold_load for r in sim.requests() if r.path == "/api/generate"]
    assert cold == [True, True]
    assert first.lines[-1]["load_duration"] > 50_000_000
    assert again.lines[-1]["load_duration"] > 50_000_000


# --- streaming generate and chat --------------------------------------------------------------


def test_generate_stream_framing_and_final_chunk(sim: ThreadedSim) -> None:
    prompt = "Why is the sky blue?"
    reply = raw(sim.url, "POST", "/api/generate", body={"model": "quick:1b", "prompt": prompt})
    assert reply.status == 200
    assert reply.header("Content-Type") == "application/x-ndjson"
    assert reply.header("Transfer-Encoding") == "chunked"
    assert reply.header("Content-Length") is None
    assert reply.complete
    # One JSON object and a newline per HTTP chunk, as Ollama flushes them.
    assert all(c.endswith(b"\n") and c.count(b"\n") == 1 for c in reply.chunks)
    lines = reply.lines
    assert len(lines) == QUICK.reply_tokens + 1
    for line in lines[:-1]:
        assert list(line) == ["model", "created_at", "response", "done"]
        assert line["model"] == "quick:1b" and line["done"] is False
        assert CREATED_AT.match(line["created_at"])
    final = lines[-1]
    assert list(final) == GENERATE_FINAL_KEYS
    assert (final["response"], final["done"], final["done_reason"]) == ("", True, "stop")
    text = "".join(line["response"] for line in lines[:-1])
    assert final["eval_count"] == QUICK.reply_tokens == count_tokens(text)
    assert final["prompt_eval_count"] == generate_prompt_tokens(prompt) == 6
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int) and final[key] > 0
    assert final["total_duration"] >= final["load_duration"] + final["eval_duration"]
    assert final["load_duration"] >= 60_000_000  # cold: load_ms=60, in nanoseconds
    assert len(final["context"]) == final["prompt_eval_count"] + final["eval_count"]
    times = [parse_time(line["created_at"]) for line in lines]
    assert times == sorted(times)


def test_warm_load_is_a_few_ms(sim: ThreadedSim) -> None:
    body = {"model": "quick:1b", "prompt": "hi", "stream": False}
    cold = raw(sim.url, "POST", "/api/generate", body=body).lines[0]
    warm = raw(sim.url, "POST", "/api/generate", body=body).lines[0]
    assert cold["load_duration"] >= 60_000_000
    assert warm["load_duration"] < 30_000_000


def test_chat_stream_shape(sim: ThreadedSim) -> None:
    messages = [{"role": "user", "content": "Tell me about rivers."}]
    reply = raw(sim.url, "POST", "/api/chat", body={"model": "quick:1b", "messages": messages})
    lines = reply.lines
    for line in lines[:-1]:
        assert list(line) == ["model", "created_at", "message", "done"]
        assert list(line["message"]) == ["role", "content"]
        assert line["message"]["role"] == "assistant"
    final = lines[-1]
    assert list(final) == CHAT_FINAL_KEYS  # no context in chat
    assert final["message"] == {"role": "assistant", "content": ""}


def test_chat_prompt_count_grows_with_turns(sim: ThreadedSim) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there!"},
    ]
    counts = []
    for turn in range(3):
        body = {"model": "quick:1b", "messages": messages, "stream": False}
        reply = raw(sim.url, "POST", "/api/chat", body=body).lines[0]
        assert reply["prompt_eval_count"] == chat_prompt_tokens(messages)
        counts.append(reply["prompt_eval_count"])
        messages = [*messages, reply["message"], {"role": "user", "content": f"And {turn}?"}]
    assert counts[0] < counts[1] < counts[2]


def test_stream_false_is_one_json_object_with_concatenated_text(sim: ThreadedSim) -> None:
    body = {"model": "quick:1b", "prompt": "Why is the sky blue?"}
    streamed = raw(sim.url, "POST", "/api/generate", body=body).lines
    single = raw(sim.url, "POST", "/api/generate", body={**body, "stream": False})
    assert single.header("Content-Type") == "application/json; charset=utf-8"
    assert single.header("Content-Length") == str(len(single.body))
    assert not single.body.endswith(b"\n")
    data = single.lines[0]
    assert list(data) == GENERATE_FINAL_KEYS
    assert data["response"] == "".join(line["response"] for line in streamed[:-1])
    assert data["context"] == streamed[-1]["context"]


@pytest.mark.parametrize("stream", [None, True, "null"])
def test_stream_defaults_to_true(sim: ThreadedSim, stream: object) -> None:
    body: dict[str, object] = {"model": "quick:1b", "prompt": "hi"}
    if stream == "null":
        body["stream"] = None
    elif stream is not None:
        body["stream"] = stream
    reply = raw(sim.url, "POST", "/api/generate", body=body)
    assert reply.header("Content-Type") == "application/x-ndjson"


def test_raw_generate_has_no_context(sim: ThreadedSim) -> None:
    body = {"model": "quick:1b", "prompt": "hi", "raw": True, "stream": False}
    assert "context" not in raw(sim.url, "POST", "/api/generate", body=body).lines[0]


def test_num_predict_caps_eval_count_with_done_reason_length(sim: ThreadedSim) -> None:
    body = {
        "model": "quick:1b",
        "prompt": "hi",
        "options": {"num_predict": 4, "seed": 7, "temperature": 0},
    }
    lines = raw(sim.url, "POST", "/api/generate", body=body).lines
    assert len(lines) == 5
    assert lines[-1]["done_reason"] == "length"
    assert lines[-1]["eval_count"] == 4


def test_stop_sequence_ends_with_stop(sim: ThreadedSim) -> None:
    body = {"model": "quick:1b", "prompt": "hi", "stream": False}
    full = raw(sim.url, "POST", "/api/generate", body=body).lines[0]
    words = full["response"].split()
    stop = " " + words[3]
    cut = raw(sim.url, "POST", "/api/generate", body={**body, "options": {"stop": [stop]}}).lines[0]
    assert cut["done_reason"] == "stop"
    assert stop not in cut["response"]
    assert full["response"].startswith(cut["response"])
    assert cut["eval_count"] < full["eval_count"]


def test_replies_are_deterministic_and_depend_on_seed(sim: ThreadedSim) -> None:
    def reply(seed: int) -> str:
        body = {
            "model": "quick:1b",
            "prompt": "explain caching",
            "stream": False,
            "options": {"seed": seed},
        }
        return str(raw(sim.url, "POST", "/api/generate", body=body).lines[0]["response"])

    assert reply(1) == reply(1)
    assert len({reply(s) for s in range(6)}) > 1


def test_reply_language_and_kind_follow_the_prompt(start_sim) -> None:
    sim = start_sim(quick_config(ModelSpec("long:1b", eval_tps=5000, load_ms=1, reply_tokens=60)))

    def reply(prompt: str) -> str:
        body = {"model": "long:1b", "prompt": prompt, "stream": False}
        return str(raw(sim.url, "POST", "/api/generate", body=body).lines[0]["response"])

    chinese = reply("請用繁體中文解釋天空為什麼是藍色的")
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in chinese) > 20
    assert "```" in reply("Write a Python function that greets someone")
    assert reply("Hello!").startswith("Hello")
    assert reply("你好").startswith("你好")


def test_format_json_gives_a_json_reply(sim: ThreadedSim) -> None:
    import json

    body = {
        "model": "quick:1b",
        "prompt": "x",
        "format": "json",
        "stream": False,
        "options": {"num_predict": 1000},
    }
    sim_with_room = raw(sim.url, "POST", "/api/generate", body=body).lines[0]["response"]
    assert sim_with_room.startswith("{")
    json.loads(sim_with_room + "" if sim_with_room.endswith("}") else sim_with_room + '"}')


# --- thinking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("think", [None, True, "high"])
def test_thinking_chunks_come_first(sim: ThreadedSim, think: object) -> None:
    body: dict[str, object] = {"model": "thinker:1b", "prompt": "Why?"}
    if think is not None:
        body["think"] = think
    lines = raw(sim.url, "POST", "/api/generate", body=body).lines
    thinking = [line for line in lines[:-1] if "thinking" in line]
    answer = [line for line in lines[:-1] if "thinking" not in line]
    assert len(thinking) == THINKER.thinking_tokens and len(answer) == THINKER.reply_tokens
    assert lines[: len(thinking)] == thinking  # all thinking before any answer
    assert all(line["response"] == "" for line in thinking)
    assert list(thinking[0]) == ["model", "created_at", "response", "thinking", "done"]
    assert lines[-1]["eval_count"] == THINKER.thinking_tokens + THINKER.reply_tokens


def test_think_false_on_thinking_model_skips_thinking(sim: ThreadedSim) -> None:
    body = {"model": "thinker:1b", "prompt": "Why?", "think": False}
    lines = raw(sim.url, "POST", "/api/generate", body=body).lines
    assert not any("thinking" in line for line in lines)
    assert lines[-1]["eval_count"] == THINKER.reply_tokens


def test_chat_thinking_chunks_and_non_stream_fields(sim: ThreadedSim) -> None:
    body = {"model": "thinker:1b", "messages": [{"role": "user", "content": "hi"}]}
    lines = raw(sim.url, "POST", "/api/chat", body=body).lines
    first = lines[0]["message"]
    assert list(first) == ["role", "content", "thinking"] and first["content"] == ""
    single = raw(sim.url, "POST", "/api/chat", body={**body, "stream": False}).lines[0]
    message = single["message"]
    assert list(message) == ["role", "content", "thinking"]
    assert message["thinking"] == "".join(line["message"].get("thinking", "") for line in lines)
    assert message["content"] == "".join(line["message"]["content"] for line in lines)


def test_think_on_non_thinking_model_is_400(sim: ThreadedSim) -> None:
    for path, body in (
        ("/api/generate", {"model": "quick:1b", "prompt": "x", "think": True}),
        ("/api/chat", {"model": "quick:1b", "messages": [], "think": "low"}),
    ):
        reply = raw(sim.url, "POST", path, body=body)
        assert reply.status == 400
        assert reply.body == b'{"error":"\\"quick:1b\\" does not support thinking"}'


def test_num_predict_can_stop_inside_thinking(sim: ThreadedSim) -> None:
    body = {"model": "thinker:1b", "prompt": "x", "stream": False, "options": {"num_predict": 3}}
    data = raw(sim.url, "POST", "/api/generate", body=body).lines[0]
    assert (data["response"], data["done_reason"], data["eval_count"]) == ("", "length", 3)
    assert count_tokens(data["thinking"]) == 3


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/generate", b"", 400, "missing request body"),
        ("/api/chat", b"  \n", 400, "missing request body"),
        ("/api/generate", b"{", 400, "unexpected EOF"),
        (
            "/api/generate",
            b"{bad}",
            400,
            "invalid character 'b' looking for beginning of object key string",
        ),
        (
            "/api/generate",
            b'{"model":"x",}',
            400,
            "invalid character '}' looking for beginning of object key string",
        ),
        ("/api/generate", b'{"model" "x"}', 400, "invalid character '\"' after object key"),
        ("/api/generate", b"nope", 400, "invalid character 'o' in literal null (expecting 'u')"),
        (
            "/api/generate",
            b'{"model":"x","stream":"yes"}',
            400,
            "json: cannot unmarshal string into Go struct field GenerateRequest.stream"
            " of type bool",
        ),
        (
            "/api/chat",
            b'{"model":"x","messages":"hi"}',
            400,
            "json: cannot unmarshal string into Go struct field ChatRequest.messages"
            " of type []api.Message",
        ),
        (
            "/api/generate",
            b"[]",
            400,
            "json: cannot unmarshal array into Go value of type api.GenerateRequest",
        ),
        (
            "/api/generate",
            b'{"model":"quick:1b","think":"x"}',
            400,
            'invalid think value: "x" (must be "high", "medium", "low", "max", true, or false)',
        ),
        (
            "/api/generate",
            b'{"model":"quick:1b","keep_alive":"300"}',
            400,
            'time: missing unit in duration "300"',
        ),
        (
            "/api/generate",
            b'{"model":"quick:1b","keep_alive":[]}',
            400,
            "Unsupported type: '[]interface {}'",
        ),
        ("/api/generate", b"{}", 404, "model '' not found"),
        ("/api/generate", b'{"model":""}', 404, "model '' not found"),
        ("/api/chat", b"{}", 400, "model is required"),
        ("/api/generate", b'{"model":"llama9","prompt":"x"}', 404, "model 'llama9' not found"),
        ("/api/chat", b'{"model":"llama9","messages":[]}', 404, "model 'llama9' not found"),
        (
            "/api/generate",
            b'{"model":"quick:1b","prompt":"x","options":{"temperature":"hot"}}',
            500,
            'option "temperature" must be of type float32',
        ),
        (
            "/api/generate",
            b'{"model":"quick:1b","prompt":"x","raw":true,"system":"s"}',
            400,
            "raw mode does not support template, system, or context",
        ),
    ],
)
def test_error_bodies(sim: ThreadedSim, path: str, body: bytes, status: int, error: str) -> None:
    reply = raw(sim.url, "POST", path, body=body)
    assert reply.status == status
    assert reply.header("Content-Type") == "application/json; charset=utf-8"
    assert httpx.Response(200, content=reply.body).json() == {"error": error}


def test_model_name_matches_like_ollama(sim: ThreadedSim) -> None:
    body = {"model": "QUICK:1B", "prompt": "x", "stream": False}
    data = raw(sim.url, "POST", "/api/generate", body=body).lines[0]
    assert data["model"] == "QUICK:1B"  # echoed as sent
    reply = raw(sim.url, "POST", "/api/generate", body={"model": "quick", "prompt": "x"})
    assert reply.lines[0] == {"error": "model 'quick' not found"}  # quick:latest is not quick:1b


def test_unknown_fields_are_ignored_and_keys_match_case_insensitively(sim: ThreadedSim) -> None:
    body = {"Model": "quick:1b", "Prompt": "hi", "Stream": False, "whatever": [1, 2]}
    reply = raw(sim.url, "POST", "/api/generate", body=body)
    assert reply.status == 200 and reply.lines[0]["done"] is True


def test_go_escapes_html_characters(start_sim) -> None:
    # 0.12.x: a malformed name still echoes in the not-found text (0.18+: "invalid model name").
    html = ModelSpec("html:1b", reply="a <b> & c", load_ms=0, eval_tps=5000)
    sim = start_sim(quick_config(html, version="0.12.6"))
    body = {"model": "html:1b", "prompt": "x", "stream": False}
    reply = raw(sim.url, "POST", "/api/generate", body=body)
    assert b'"response":"a \\u003cb\\u003e \\u0026 c"' in reply.body
    assert b"<" not in reply.body and b"&" not in reply.body
    missing = raw(sim.url, "POST", "/api/generate", body={"model": "<x>", "prompt": "x"})
    assert missing.body == b'{"error":"model \'\\u003cx\\u003e\' not found"}'


def test_chunked_request_body_and_expect_continue(sim: ThreadedSim) -> None:
    import socket

    body = b'{"model":"quick:1b","prompt":"hi","stream":false}'
    hostport = sim.url.split("://")[1]
    request = (
        f"POST /api/generate HTTP/1.1\r\nHost: {hostport}\r\nTransfer-Encoding: chunked\r\n"
        "Expect: 100-continue\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((sim.host, sim.port), timeout=5) as sock:
        sock.sendall(request)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        data = b""
        while piece := sock.recv(65536):
            data += piece
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"done":true' in data


# --- Host and CORS checks ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/tags", "/api/generate", "/nothing"])
def test_public_host_name_is_403_on_loopback(sim: ThreadedSim, path: str) -> None:
    reply = raw(sim.url, "GET", path, host="ollama.example.com")
    assert (reply.status, reply.body) == (403, b"")
    assert reply.header("Content-Type") is None


@pytest.mark.parametrize(
    "host",
    [
        "localhost:11434",
        "localhost",
        "127.0.0.1:11434",
        "[::1]:11434",
        "10.1.2.3",
        "192.168.1.20:8080",
        "gpu.local",
        "box.internal:11434",
        "app.localhost",
        "",
    ],
)
def test_local_hosts_pass_on_loopback(sim: ThreadedSim, host: str) -> None:
    assert raw(sim.url, "GET", "/", host=host).status == 200


def test_host_check_is_off_when_not_bound_to_loopback(start_sim) -> None:
    sim = start_sim(host="0.0.0.0")
    url = f"http://127.0.0.1:{sim.port}"
    assert raw(url, "GET", "/", host="ollama.example.com").status == 200


def test_options_with_allowed_host_name_is_204(sim: ThreadedSim) -> None:
    assert raw(sim.url, "OPTIONS", "/api/chat", host="localhost:11434").status == 204


def test_cors(start_sim) -> None:
    sim = start_sim(quick_config(origins=("https://ui.example.com", "chrome-extension://*")))
    denied = raw(sim.url, "GET", "/api/tags", headers={"Origin": "https://evil.example.com"})
    assert (denied.status, denied.body) == (403, b"")
    for origin in ("https://ui.example.com", "http://localhost:3000", "chrome-extension://abc"):
        ok = raw(sim.url, "GET", "/api/tags", headers={"Origin": origin})
        assert ok.status == 200
        assert ok.header("Access-Control-Allow-Origin") == origin
        assert ok.header("Vary") == "Origin"
    preflight = raw(
        sim.url,
        "OPTIONS",
        "/api/chat",
        headers={"Origin": "https://ui.example.com", "Access-Control-Request-Method": "POST"},
        host="ollama.example.com",  # the preflight is answered before the Host check
    )
    assert preflight.status == 204
    assert preflight.header("Access-Control-Max-Age") == "43200"
    assert "Authorization" in (preflight.header("Access-Control-Allow-Headers") or "")
    same_origin = raw(sim.url, "GET", "/", headers={"Origin": sim.url})
    assert same_origin.status == 200 and same_origin.header("Access-Control-Allow-Origin") is None


def test_request_log_records_what_was_asked(sim: ThreadedSim) -> None:
    raw(
        sim.url,
        "POST",
        "/api/generate",
        body={"model": "quick:1b", "prompt": "hi"},
        headers={"Authorization": "Bearer secret-token", "Origin": "http://localhost"},
        host="localhost:11434",
    )
    (record,) = sim.requests()
    assert (record.method, record.path, record.model, record.status) == (
        "POST",
        "/api/generate",
        "quick:1b",
        200,
    )
    assert record.authorization is True and record.host == "localhost:11434"
    assert record.origin == "http://localhost"
    assert record.body == {"model": "quick:1b", "prompt": "hi"}
    assert "secret-token" not in repr(record)
    assert record.chunks == QUICK.reply_tokens + 1
    assert record.received_ns <= record.headers_sent_ns <= record.first_chunk_ns  # type: ignore[operator]
    assert record.first_chunk_ns <= record.last_chunk_ns <= record.finished_ns  # type: ignore[operator]
    assert record.done_reason == "stop" and record.outcome == "ok"
    via_http = httpx.get(sim.url + "/_sim/requests").json()
    assert via_http[0]["id"] == record.id and via_http[0]["first_chunk_ns"] == record.first_chunk_ns
