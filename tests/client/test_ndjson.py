"""The NDJSON decoder: wire lines in, validated domain values out (issue 10: hostile chunks)."""

from __future__ import annotations

import pytest

from ollamakit.client import NDJSONDecoder
from ollamakit.domain import FinalStats, StreamChunk
from ollamakit.errors import BadChunk, NotOllama, ProtocolError, StreamCut

URL = "http://127.0.0.1:1/api/chat"


def decode(*lines: bytes) -> list[StreamChunk]:
    decoder = NDJSONDecoder(URL)
    out = decoder.feed(b"\n".join(lines) + b"\n", 7)
    return out + decoder.finish()


def test_done_line_becomes_final_stats_in_ms_and_keeps_its_text() -> None:
    chunks = decode(
        b'{"created_at":"2025-10-26T17:21:21.5Z","message":{"content":"a"},"done":false}',
        b'{"created_at":"2025-10-26T17:21:22Z","message":{"role":"assistant","content":"b",'
        b'"thinking":"t"},"done":true,"done_reason":"stop","total_duration":4883583458,'
        b'"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,'
        b'"eval_count":282,"eval_duration":4535599000}',
    )
    assert [c.content for c in chunks] == ["a", "b"]
    assert chunks[1].thinking == "t"
    assert chunks[0].final is None and chunks[1].done
    assert chunks[1].final == FinalStats(
        done_reason="stop",
        total_ms=4883.583458,
        load_ms=1.334875,
        prompt_eval_count=26,
        prompt_eval_ms=342.546,
        eval_count=282,
        eval_ms=4535.599,
    )
    assert chunks[1].created_ns is not None and chunks[0].created_ns is not None
    assert chunks[1].created_ns - chunks[0].created_ns == 500_000_000
    assert all(c.arrival_ns == 7 for c in chunks)


def test_generate_lines_use_response_and_thinking() -> None:
    [chunk] = decode(b'{"response":"hi","thinking":"hm","done":true}')
    assert (chunk.content, chunk.thinking, chunk.done) == ("hi", "hm", True)


@pytest.mark.parametrize(
    "line",
    [
        b'{"message":null,"done":false}',
        b'{"message":"hello","done":false}',
        b'{"message":["x"],"done":false}',
        b'{"message":{"content":5},"done":false}',
        b'{"message":{"content":"x","thinking":{}},"done":false}',
        b'{"response":["x"],"done":false}',
        b'{"message":{"content":"x"},"done":"yes"}',
        b'{"message":{"content":"x"},"done":1}',
    ],
)
def test_malformed_fields_are_a_clear_protocol_error(line: bytes) -> None:
    with pytest.raises(BadChunk) as info:
        decode(line, b'{"done":true}')
    assert isinstance(info.value, ProtocolError)
    assert URL in info.value.message and info.value.hint


@pytest.mark.parametrize("line", [b"[1,2]", b'"text"', b"42", b"<html>"])
def test_a_line_that_is_not_an_object_is_not_ollama(line: bytes) -> None:
    with pytest.raises(NotOllama):
        decode(line)


@pytest.mark.parametrize(
    "value", [b"-1", b"1e30", b"1.5", b'"12"', b"true", b"null", b"99999999999999999999999"]
)
def test_impossible_figures_become_unknown(value: bytes) -> None:
    line = (
        b'{"done":true,"eval_count":%s,"eval_duration":%s,"total_duration":%s,'
        b'"prompt_eval_count":%s}' % (value, value, value, value)
    )
    [chunk] = decode(line)
    assert chunk.final == FinalStats()


def test_nan_is_not_json_and_is_refused() -> None:
    with pytest.raises(ProtocolError):
        decode(b'{"done":true,"eval_duration":NaN}')


def test_null_text_is_empty_text() -> None:
    [chunk] = decode(b'{"message":{"content":null,"thinking":null},"done":true}')
    assert (chunk.content, chunk.thinking) == ("", "")


def test_bad_created_at_is_unknown_not_an_error() -> None:
    [chunk] = decode(b'{"created_at":"yesterday","done":true}')
    assert chunk.created_ns is None


def test_no_done_line_is_a_cut_stream() -> None:
    decoder = NDJSONDecoder(URL)
    decoder.feed(b'{"response":"a","done":false}\n', 1)
    with pytest.raises(StreamCut):
        decoder.finish()


def test_an_endless_line_is_refused_at_the_bound() -> None:
    decoder = NDJSONDecoder(URL, max_line=1024 * 1024)
    piece = b"x" * 65536
    with pytest.raises(BadChunk, match="longer than"):
        for _ in range(100):
            decoder.feed(piece, 1)


def test_a_long_line_in_many_reads_is_joined_once() -> None:
    text = "y" * (4 * 1024 * 1024)
    line = b'{"response":"%s","done":true}\n' % text.encode()
    decoder = NDJSONDecoder(URL)
    out = []
    for pos in range(0, len(line), 65536):
        out += decoder.feed(line[pos : pos + 65536], 1)
    assert [len(c.content) for c in out] == [len(text)]
    assert decoder.finish() == []


def test_created_at_cache_agrees_with_a_full_parse() -> None:
    from ollamakit.diagnostics import parse_created_at

    samples = [
        "2025-10-26T17:21:21.196249Z",
        "2025-10-26T17:21:21.19624Z",
        "2025-10-26T17:21:21.196249001Z",
        "2025-10-26T17:21:21Z",
        "2025-10-26T17:21:22.5Z",
        "2023-08-04T08:52:19.385406455-07:00",
        "2023-08-04T08:52:19.385406456+02:00",
        "2023-08-04T08:52:19.385406457-07:00",
        "2025-10-26T17:21:22.12x456Z",
    ]
    decoder = NDJSONDecoder(URL)
    for stamp in samples * 2:
        [chunk] = decoder.feed(b'{"created_at":"%s","done":false}\n' % stamp.encode(), 1)
        assert chunk.created_ns == parse_created_at(stamp), stamp


# Lines the fast loop (msgspec) and the exact path (orjson + checks) must treat alike: each is
# fed alone and after a normal line, and both decoders must give the same chunks or raise the
# same error with the same message.
HOSTILE_LINES = [
    b'{"message":{"role":"assistant","content":"Hi"},"done":false}',
    b'{"response":"Hi","thinking":"hm","done":false}',
    b'{"message":{"content":null,"thinking":null},"done":false}',
    b'{"response":null,"done":false}',
    b'{"message":null,"done":false}',
    b'{"message":{"content":"a"},"response":5,"done":false}',
    b'{"message":{"content":"a"},"message":{"thinking":"b"},"done":false}',
    b'{"message":{"content":5,"content":"x"},"done":false}',
    b'{"message":{"content":"x","content":5},"done":false}',
    b'{"done":false,"done":true,"eval_count":3}',
    b'{"done":true,"done":false}',
    b'{"done":null}',
    b'{"response":"a"}{"response":"b"}',
    b'{"response":"a"} {"response":"b"}',
    b'{"response":"a"} ',
    b'{"response":"a"}\r',
    b" ",
    b"\t",
    b"\r",
    b"",
    b"[]",
    b'"text"',
    b"null",
    b'{"response":"\\ud800"}',
    b'{"response":"\xff"}',
    b'{"response":"a\x01b"}',
    b'\xef\xbb\xbf{"response":"a"}',
    b'{"response":"a","x":NaN}',
    b'{"response":"a","eval_count":123456789012345678901234567890}',
    b'{"response":"a","x":' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"created_at":' + b"[" * 3000 + b"]" * 3000 + b',"response":"a"}',
    b'{"error":null}',
    b'{"error":{"message":"boom"},"response":"a"}',
    b'{"response":"a","error":"x"}',
    b'{"response":"a","created_at":5}',
    b'{"response":"a","created_at":"2025-10-26T17:21:21.19624\xc2\xb2Z"}',
    b'{"response":"\\u00e9\\n\\"q\\"","done":false}',
    b'{"Response":"a","DONE":true}',
]


def _outcome(decoder: NDJSONDecoder, data: bytes) -> object:
    try:
        return decoder.feed(data, 5)
    except ProtocolError as exc:
        return (type(exc), str(exc))
    except Exception as exc:  # a stream error (the "error" field)
        return (type(exc), str(exc))


@pytest.mark.parametrize("line", HOSTILE_LINES)
def test_the_fast_loop_agrees_with_the_exact_path(line: bytes) -> None:
    normal = b'{"created_at":"2025-10-26T17:21:21.196249Z","message":{"content":"x"},"done":false}'
    for data in (line + b"\n", normal + b"\n" + line + b"\n" + normal + b"\n"):
        fast, exact = NDJSONDecoder(URL), NDJSONDecoder(URL, fast=False)
        assert _outcome(fast, data) == _outcome(exact, data), data[:80]
        assert fast.complete == exact.complete and fast.count == exact.count


def test_fast_loop_chunks_are_ordinary_frozen_stream_chunks() -> None:
    import dataclasses

    line = b'{"created_at":"2025-10-26T17:21:21.5Z","message":{"content":"a"},"done":false}\n'
    fast = NDJSONDecoder(URL).feed(line * 2, 3)
    exact = NDJSONDecoder(URL, fast=False).feed(line * 2, 3)
    assert fast == exact and type(fast[0]) is StreamChunk
    assert hash(fast[0]) == hash(exact[0]) and repr(fast[0]) == repr(exact[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast[0].content = "b"  # type: ignore[misc]
    assert dataclasses.replace(fast[0], content="b").content == "b"


@pytest.mark.parametrize("seed", range(20))
def test_stamps_of_one_read_parse_as_each_alone(seed: int) -> None:
    import random

    from ollamakit.diagnostics import parse_created_at

    rng = random.Random(seed)
    pool = [
        "2025-10-26T17:21:21.196249Z",
        "2025-10-26T17:21:21.19625Z",
        "2025-10-26T17:21:21.196249001Z",
        "2025-10-26T17:21:22.000000001Z",
        "2025-10-26T17:21:22Z",
        "2023-08-04T08:52:19.385406455-07:00",
        "2023-08-04T08:52:19.385406456+02:00",
        "2025-10-26T17:21:22.12x456Z",
        "2025-10-26T17:21:22.1_3456Z",
        "",
    ]
    picks = rng.choices(pool, k=rng.randrange(1, 40))
    if rng.random() < 0.5:  # runs of one stamp, as a server with a coarse clock sends
        picks = [p for p in picks for _ in range(rng.randrange(1, 9))]
    data = b"".join(
        b'{"created_at":"%s","response":"x","done":false}\n' % p.encode()
        if p
        else b'{"response":"x"}\n'
        for p in picks
    )
    chunks = NDJSONDecoder(URL).feed(data, 1)
    assert [c.created_ns for c in chunks] == [parse_created_at(p) if p else None for p in picks]
