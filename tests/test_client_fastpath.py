"""The client's fast chunked-body path (``ollamakit._http11``), over real HTTP to the simulator.

What must hold: the fast path is actually taken for Ollama's streams, it yields exactly what
the server sent, a finished stream leaves its connection reusable, an abandoned one closes it,
and a cut or stalled stream is reported like on the slow path.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollamakit import _http11
from ollamakit.client import OllamaClient
from ollamakit.config import Settings, parse_base_url
from ollamakit.errors import ReadTimeout, StreamCut
from ollamakit.sim import Fault, FaultKind, ModelSpec, SimConfig, run_in_thread


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
    return len(client._http._transport._pool.connections)  # type: ignore[attr-defined]


def test_fast_path_is_taken_and_complete(sim_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    attached: list[object] = []
    real_attach = _http11.attach

    def spy(response: object) -> object:
        raw = real_attach(response)  # type: ignore[arg-type]
        attached.append(raw)
        return raw

    monkeypatch.setattr(_http11, "attach", spy)
    with _client(sim_url) as client, client.stream_generate("fast:1b", "count") as stream:
        chunks = list(stream)
    assert attached and attached[0] is not None, "the fast path was not used"
    assert len(chunks) == 3001
    assert chunks[-1].done and chunks[-1].final is not None and chunks[-1].final.eval_count == 3000
    assert all(not c.done for c in chunks[:-1])


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
        decoder = _http11.ChunkedDecoder()
        assert b"".join(decoder.feed(p) for p in parts) == b"".join(payloads)
        assert decoder.done and decoder.extra == b""


def test_decoder_handles_extensions_and_trailers() -> None:
    decoder = _http11.ChunkedDecoder()
    assert decoder.feed(b"3;name=v\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n") == b"abc"
    assert decoder.done
