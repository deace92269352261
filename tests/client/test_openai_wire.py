"""The OpenAI-compatible wire layer, sans I/O: SSE framing and chat chunks from exact bytes.

Two kinds of input: hand-written frames for the rules (each test says which server sends that
shape), and streams captured byte for byte from the real llama-server of the engine tier
(``tests/client/data/llamacpp-*.sse``, written by ``tests/engine/test_capture.py``), so the
decoder is checked against what llama.cpp actually sends, split at every possible byte.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from ollamakit.client.openai_wire import (
    ChatStreamDecoder,
    SSEDecoder,
    SSEEvent,
    chat_body,
    engine_from_models,
    error_message,
    final_stats,
    models_from_list,
    version_from_props,
)
from ollamakit.domain import ChatRequest, FinalStats, StreamChunk
from ollamakit.errors import ProtocolError, StreamCut, StreamError

DATA = Path(__file__).parent / "data"
URL = "http://127.0.0.1:8080/v1/chat/completions"


def frame(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def delta(content: str | None = None, **extra: object) -> bytes:
    d: dict[str, object] = {"content": content, **extra}
    return frame({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d}]})


FINISH = frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
USAGE = frame({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}})
DONE = b"data: [DONE]\n\n"


def decode_all(data: bytes, pieces: list[int] | None = None) -> list[StreamChunk]:
    """Decode ``data`` cut at the offsets ``pieces`` (each read stamped with its index)."""
    decoder = ChatStreamDecoder(URL)
    cuts = [0, *(pieces or []), len(data)]
    out: list[StreamChunk] = []
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        out.extend(decoder.feed(data[a:b], i))
    out.extend(decoder.finish(len(cuts)))
    return out


def text_of(chunks: list[StreamChunk]) -> tuple[str, str, FinalStats | None]:
    finals = [c.final for c in chunks if c.final is not None]
    assert len(finals) == 1, chunks
    assert chunks[-1].final is not None, "the final chunk must be the last one"
    return "".join(c.content for c in chunks), "".join(c.thinking for c in chunks), finals[0]


# --------------------------------------------------------------------------- SSE framing


def test_line_endings_lf_crlf_and_cr_give_the_same_events() -> None:
    lf = b'data: {"a":1}\n\n: ping\n\nevent: x\ndata: 2\ndata: 3\n\ndata: [DONE]\n\n'
    expected = [
        SSEEvent("message", b'{"a":1}'),
        SSEEvent("x", b"2\n3"),
        SSEEvent("message", b"[DONE]"),
    ]
    for variant in (lf, lf.replace(b"\n", b"\r\n"), lf.replace(b"\n", b"\r")):
        # A lone CR at the very end may be half a CRLF: it counts once the body ends.
        decoder = SSEDecoder(URL)
        assert decoder.feed(variant) + decoder.finish() == expected, variant
        # Byte by byte: a CRLF split between two reads is still one line end.
        decoder = SSEDecoder(URL)
        events = [e for i in range(len(variant)) for e in decoder.feed(variant[i : i + 1])]
        assert events + decoder.finish() == expected, variant


def test_field_without_space_and_unknown_fields() -> None:
    events = SSEDecoder(URL).feed(b"data:x\nid: 7\nretry: 10\nfoo: bar\n\n")
    assert events == [SSEEvent("message", b"x")]


def test_an_unterminated_last_event_still_counts_at_the_end() -> None:
    decoder = SSEDecoder(URL)
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.finish() == [SSEEvent("message", b"[DONE]")]


def test_a_line_without_end_is_bounded() -> None:
    decoder = SSEDecoder(URL, max_line_bytes=1024)
    decoder.feed(b"data: " + b"x" * 1000)
    with pytest.raises(ProtocolError, match="exceeds the 1024-byte limit"):
        decoder.feed(b"x" * 100)


def test_many_data_lines_in_one_event_are_bounded() -> None:
    decoder = SSEDecoder(URL, max_line_bytes=1024)
    with pytest.raises(ProtocolError):
        decoder.feed(b"data: 0123456789\n" * 200)


# --------------------------------------------------------------------------- chat chunks


def test_llamacpp_shape_role_frame_tokens_finish_usage_done() -> None:
    usage = {
        "choices": [],
        "usage": {
            "prompt_tokens": 17,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
        "timings": {
            "cache_n": 0,
            "prompt_n": 17,
            "prompt_ms": 130.5,
            "predicted_n": 2,
            "predicted_ms": 31.0,
        },
    }
    data = (
        frame({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]})
        + delta("Hel")
        + delta("lo")
        + FINISH
        + frame(usage)
        + DONE
    )
    chunks = decode_all(data)
    assert [c.content for c in chunks] == ["Hel", "lo", ""]  # no chunk for the empty frames
    content, thinking, final = text_of(chunks)
    assert (content, thinking) == ("Hello", "")
    assert final == FinalStats(
        done_reason="stop",
        prompt_eval_count=17,
        prompt_eval_ms=130.5,
        prompt_cached_count=0,
        eval_count=2,
        eval_ms=31.0,
    )


def test_reasoning_fields_of_each_server_are_thinking() -> None:
    data = (
        delta(None, reasoning_content="Let me")  # llama.cpp, DeepSeek
        + delta("", reasoning=" think.")  # Ollama's /v1, vLLM
        + delta("Answer")
        + FINISH
        + USAGE
        + DONE
    )
    content, thinking, final = text_of(decode_all(data))
    assert (content, thinking) == ("Answer", "Let me think.")
    assert final.eval_count == 2 and final.prompt_eval_count == 7


def test_done_without_usage_is_the_final_chunk() -> None:
    """A server that ignores stream_options (or an older one): counts stay unknown."""
    content, _, final = text_of(decode_all(delta("Hi") + FINISH + DONE))
    assert content == "Hi"
    assert final == FinalStats(done_reason="stop")


def test_usage_on_the_finish_frame_and_continuous_usage() -> None:
    """Some servers put usage on the finish frame; vLLM's continuous stats on every frame."""
    with_usage = {"prompt_tokens": 3, "completion_tokens": 1}
    data = (
        frame({"choices": [{"index": 0, "delta": {"content": "a"}}], "usage": with_usage})
        + frame(
            {
                "choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            }
        )
        + USAGE  # a usage frame after the final one adds nothing
        + DONE
    )
    content, _, final = text_of(decode_all(data))
    assert content == "ab"
    assert (final.done_reason, final.eval_count) == ("length", 2)


@pytest.mark.parametrize(
    "data",
    [
        delta("Hi"),  # connection closed mid-reply
        delta("Hi") + FINISH,  # finish frame but neither usage nor [DONE]
        delta("Hi") + b"data: {",  # cut inside a frame
    ],
)
def test_a_stream_that_stops_early_is_cut(data: bytes) -> None:
    decoder = ChatStreamDecoder(URL)
    decoder.feed(data, 1)
    with pytest.raises(StreamCut):
        decoder.finish(2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'data: {"error":{"message":"slot unavailable","code":503}}\n\n', "slot unavailable"),
        (b'error: {"code":500,"message":"boom","type":"server_error"}\n\n', "boom"),
        (b"event: error\ndata: upstream went away\n\n", "upstream went away"),
    ],
)
def test_mid_stream_errors(data: bytes, message: str) -> None:
    decoder = ChatStreamDecoder(URL)
    decoder.feed(delta("Hi"), 1)
    with pytest.raises(StreamError, match=message):
        decoder.feed(data, 2)


def test_a_frame_that_is_not_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not a JSON object"):
        ChatStreamDecoder(URL).feed(b"data: <html>\n\n", 1)
    with pytest.raises(ProtocolError):
        ChatStreamDecoder(URL).feed(b"data: [1, 2]\n\n", 1)


def test_chunks_share_the_stamp_of_the_read_they_came_in() -> None:
    decoder = ChatStreamDecoder(URL)
    first = decoder.feed(delta("a") + delta("b") + delta("c")[:10], 100)
    second = decoder.feed(delta("c")[10:] + FINISH + USAGE, 200)
    assert [(c.content, c.arrival_ns) for c in first + second] == [
        ("a", 100),
        ("b", 100),
        ("c", 200),
        ("", 200),
    ]
    assert decoder.complete and not decoder.done_marker
    assert decoder.finish(300) == []


def test_cached_prompt_tokens_are_not_counted_as_evaluated() -> None:
    """prompt_tps = prompt_eval_count / prompt_eval_ms must pair a count with its duration."""
    stats = final_stats(
        {"prompt_tokens": 865, "prompt_tokens_details": {"cached_tokens": 864}},
        {"cache_n": 864, "prompt_n": 1, "prompt_ms": 12.0, "predicted_n": 5},
        "stop",
    )
    assert (stats.prompt_eval_count, stats.prompt_cached_count) == (1, 864)
    usage_only = final_stats(
        {"prompt_tokens": 865, "prompt_tokens_details": {"cached_tokens": 864}}, None, None
    )
    assert (usage_only.prompt_eval_count, usage_only.prompt_cached_count) == (1, 864)


def test_junk_in_usage_is_unknown_not_a_crash() -> None:
    stats = final_stats(
        {"prompt_tokens": "17", "completion_tokens": True, "prompt_tokens_details": []},
        {"prompt_ms": "fast", "predicted_ms": None},
        None,
    )
    assert stats == FinalStats()


# --------------------------------------------------------------------------- requests, lists


def test_chat_body_maps_options_and_think_level() -> None:
    request = ChatRequest(
        "smollm2-135m",
        ({"role": "user", "content": "hi"},),
        {"num_predict": 16, "seed": 42, "top_p": 0.9, "stop": "\n", "top_k": 20},
        think="max",
    )
    body = chat_body(request)
    assert body == {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 16,
        "top_p": 0.9,
        "seed": 42,
        "stop": ["\n"],
        "reasoning_effort": "high",
    }
    assert "cache_prompt" not in body  # llama.cpp's prefix cache stays on unless asked


def test_model_list_and_engine_of_each_server() -> None:
    vllm = {"object": "list", "data": [{"id": "Qwen/Qwen3-0.6B", "owned_by": "vllm"}]}
    ollama = {"object": "list", "data": [{"id": "qwen3:0.6b", "owned_by": "library"}]}
    lm_studio = {
        "data": [{"id": "qwen3-0.6b", "object": "model", "owned_by": "organization_owner"}]
    }
    assert [engine_from_models(b) for b in (vllm, ollama, lm_studio)] == [
        "vllm",
        "ollama",
        "lm-studio",
    ]
    assert [m.name for m in models_from_list(vllm)] == ["Qwen/Qwen3-0.6B"]
    assert version_from_props({"build_info": "b1-abc", "total_slots": 1}) == "b1-abc"
    assert version_from_props({"version": "0.11.0"}) is None  # vLLM's /version is not /props


def test_error_bodies() -> None:
    llama = b'{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}'
    assert error_message(llama) == "File Not Found"
    assert error_message(b'{"object":"error","message":"bad","code":400}') == "bad"
    assert error_message(b"{}") is None
    assert error_message(b"Bad Gateway") is None


# --------------------------------------------------------------------------- captured bytes

CAPTURES = sorted(DATA.glob("llamacpp-*.sse"))


@pytest.mark.skipif(not CAPTURES, reason="no captured llama-server streams yet")
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_captured_llamacpp_stream_decodes_the_same_at_every_split(path: Path) -> None:
    data = path.read_bytes()
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    whole = decode_all(data)
    content, thinking, final = text_of(whole)
    assert content == meta["content"]
    assert final.eval_count == meta["timings"]["predicted_n"]
    assert final.prompt_eval_ms == meta["timings"]["prompt_ms"]
    assert final.eval_ms == meta["timings"]["predicted_ms"]
    assert final.done_reason == meta["finish_reason"]
    # Cut into two reads at every byte: the same text and figures.
    for cut in range(1, len(data)):
        assert text_of(decode_all(data, [cut])) == (content, thinking, final), cut
