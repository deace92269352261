"""The client's fast stream transport (``client/transport.py``), over real loopback HTTP.

What must hold: the fast path is actually taken for Ollama's streams, it yields exactly what
the server sent (the same chunks and measurements as httpx's own transport, for the same bytes
written with any boundaries), a finished stream leaves its connection reusable, an abandoned
one closes it, and a cut or stalled stream is reported like on the slow path.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollamakit.client import OllamaClient
from ollamakit.client.chunked import ChunkedDecoder
from ollamakit.client.transport import FastTransport
from ollamakit.config import Settings, parse_base_url
from ollamakit.errors import ReadTimeout, StreamCut
from ollamakit.measure import Identity, ReplyRecorder
from ollamakit.sim import Fault, FaultKind, ModelSpec, SimConfig, run_in_thread
from tests.client.conftest import RawServer, write_splits


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    config = SimConfig(
        models=(
            ModelSpec("fast:1b", eval_tps=float("inf"), reply_tokens=3000, load_ms=0),
            ModelSpec("slow:1b", eval_tps=500, reply_tokens=20, load_ms=0),
            ModelSpec(
                "cut:1b",
                eval_tps=500,
                reply_tokens=50,
                load_ms=0,
                faults=(Fault(FaultKind.CUT_AFTER, 5),),
            ),
            ModelSpec(
                "stall:1b",
                eval_tps=500,
                reply_tokens=50,
                load_ms=0,
                faults=(Fault(FaultKind.STALL_AFTER, 3),),
            ),
        ),
        stall_s=30,
    )
    with run_in_thread(config) as sim:
        yield sim.url


def _client(url: str, read_timeout_s: float | None = None) -> OllamaClient:
    settings = Settings(base_url=parse_base_url(url), home=Path("unused"))
    return OllamaClient(settings, read_timeout_s=read_timeout_s)


def _pool_size(client: OllamaClient) -> int:
    assert isinstance(client.transport, FastTransport)
    return client.transport.idle_connections


def test_fast_path_is_taken_and_complete(sim_url: str) -> None:
    with _client(sim_url) as client:
        assert isinstance(client.transport, FastTransport)
        with client.stream_generate("fast:1b", "count") as stream:
            chunks = list(stream)
        assert _pool_size(client) == 1  # the connection came back to *our* pool
    assert len(chunks) == 3001
    assert chunks[-1].final is not None and chunks[-1].final.eval_count == 3000


def _wire_stream(rng: random.Random) -> bytes:
    lines = [
        b'{"model":"m","created_at":"2025-10-26T17:21:21.%03dZ","response":"t%d ","done":false}\n'
        % (i, i)
        for i in range(rng.randrange(1, 60))
    ]
    lines.append(
        b'{"model":"m","created_at":"2025-10-26T17:21:22Z","response":"end","done":true,'
        b'"done_reason":"stop","total_duration":90000000,"load_duration":1000000,'
        b'"prompt_eval_count":7,"prompt_eval_duration":2000000,"eval_count":%d,'
        b'"eval_duration":80000000}\n' % len(lines)
    )
    frames = []
    for line in lines:  # Ollama flushes a line per frame; sometimes two lines share one
        if frames and rng.random() < 0.2:
            frames[-1] += line
        else:
            frames.append(line)
    return b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"


def _read_all(url: str, *, fast: bool) -> tuple[list[tuple[object, ...]], dict[str, object]]:
    settings = Settings(base_url=parse_base_url(url), home=Path("unused"))
    with (
        OllamaClient(settings, read_timeout_s=10, fast=fast) as client,
        client.stream_generate("m", "hi") as stream,
    ):
        chunks = list(stream)
        end = stream.end
    recorder = ReplyRecorder(stream.sent_ns)
    for chunk in chunks:
        recorder.add(chunk)
    result = recorder.finish(end).to_result(Identity("m", "p", "c", 0, 1))
    untimed = {
        k: result[k]
        for k in (
            "eval_tps",
            "prompt_tps",
            "eval_count",
            "done_reason",
            "server_total_ms",
            "load_ms",
            "error",
            "ok",
        )
    }
    untimed["end"] = end
    return [(c.content, c.thinking, c.final, c.created_ns) for c in chunks], untimed


@pytest.mark.parametrize("seed", range(6))
def test_fast_and_slow_paths_agree_on_any_write_boundaries(seed: int) -> None:
    rng = random.Random(seed)
    body = _wire_stream(rng)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    data = head + body
    splits = [
        [len(data)],  # everything in one write (head and body together)
        [len(head)] + [1] * 40,  # byte by byte after the head
        [rng.randrange(1, 200) for _ in range(60)],  # random boundaries
    ]
    seen = []
    for sizes in splits:
        with RawServer(write_splits(data, sizes)) as server:
            seen.append(_read_all(server.url, fast=True))
            seen.append(_read_all(server.url, fast=False))
    assert all(s == seen[0] for s in seen), seed
    assert seen[0][1]["end"] == "done" and seen[0][1]["eval_count"]


def test_finished_stream_leaves_connection_reusable(sim_url: str) -> None:
    with _client(sim_url) as client:
        for _ in range(3):
            with client.stream_generate("slow:1b", "hi") as stream:
                assert list(stream)[-1].done
        assert client.version()  # a plain request on the same pool
        assert _pool_size(client) == 1


def test_abandoned_stream_closes_its_connection(sim_url: str) -> None:
    with _client(sim_url) as client:
        with client.stream_generate("slow:1b", "hi") as stream:
            next(iter(stream))
        assert _pool_size(client) == 0
        with client.stream_generate("slow:1b", "hi") as stream:  # and the next one still works
            assert list(stream)[-1].done


def test_cut_stream_is_reported(sim_url: str) -> None:
    with (
        _client(sim_url) as client,
        pytest.raises(StreamCut),
        client.stream_generate("cut:1b", "hi") as stream,
    ):
        list(stream)


def test_stall_hits_the_read_timeout(sim_url: str) -> None:
    with (
        _client(sim_url, read_timeout_s=0.5) as client,
        pytest.raises(ReadTimeout) as info,
        client.stream_generate("stall:1b", "hi") as stream,
    ):
        list(stream)
    assert "0.5" in info.value.message


def test_decoder_survives_any_split() -> None:
    rng = random.Random(7)
    for _ in range(200):
        payloads = [rng.randbytes(rng.randrange(1, 300)) for _ in range(rng.randrange(0, 30))]
        body = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in payloads) + b"0\r\n\r\n"
        cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randrange(0, 25))))
        parts = [body[i:j] for i, j in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        decoder = ChunkedDecoder()
        assert b"".join(decoder.feed(p) for p in parts) == b"".join(payloads)
        assert decoder.done and decoder.extra == b""


def test_decoder_handles_extensions_and_trailers() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3;name=v\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n") == b"abc"
    assert decoder.done


@pytest.mark.parametrize("body", [b"-2\r\n\r\n", b"3\r\nabc\r\n-2\r\n\r\n0\r\n\r\n"])
def test_decoder_refuses_a_negative_size(body: bytes) -> None:
    from ollamakit.client.chunked import ChunkedFramingError

    with pytest.raises(ChunkedFramingError, match="bad chunk size"):
        ChunkedDecoder().feed(body)


def test_decoder_split_pass_agrees_with_the_framing_when_payloads_hold_crlf() -> None:
    # Payloads made of size-like text and CRLFs: the CRLF split must never be taken for the
    # framing unless it is the framing.
    rng = random.Random(11)
    alphabet = [b"\r\n", b"\r\n", b"1", b"a", b"0", b"\n", b"\r", b"3\r\nabc"]
    for _ in range(300):
        payloads = [
            b"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 8)))
            for _ in range(rng.randrange(0, 20))
        ]
        body = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in payloads) + b"0\r\n\r\n"
        cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randrange(0, 6))))
        parts = [body[i:j] for i, j in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        decoder = ChunkedDecoder()
        assert b"".join(decoder.feed(p) for p in parts) == b"".join(payloads)
        assert decoder.done and decoder.extra == b""
