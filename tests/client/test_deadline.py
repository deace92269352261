"""The total deadline of a request (``deadline_s``, ``ollamakit.client.core``) and the size
bounds of what is read: a trickle, an endless stream and an endless line all end, on time,
with a clear error, on every path (sync and async, fast transport and httpx's own, Ollama's
NDJSON and OpenAI's SSE, streams and plain JSON answers).

The hostile server is ``tests/client/test_deadline_server.py``. Times are asserted with a
margin for a loaded machine; without the deadline these requests would never end (the
trickle defeats the 30 s read timeout every 0.2 s), so the tests can fail.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from ollamakit.client import (
    MAX_BODY_BYTES,
    MAX_LINE_BYTES,
    AsyncOllamaClient,
    NDJSONDecoder,
    OllamaClient,
    open_async_backend,
    open_backend,
)
from ollamakit.client.openai_wire import MAX_LINE_BYTES as SSE_MAX_LINE_BYTES
from ollamakit.client.openai_wire import SSEDecoder
from ollamakit.domain import ChatRequest
from ollamakit.errors import BadChunk, DeadlineExceeded, ProtocolError, ReadTimeout
from tests.client.conftest import RawServer
from tests.client.test_deadline_server import MODEL, HostileStream
from tests.support import settings_for

DEADLINE_S = 1.0
#: How late a request may end on a loaded 2-core machine (start-up, scheduling).
MARGIN_S = 2.0
FORTY_MB = 40 * 1024 * 1024

MESSAGES: Any = [{"role": "user", "content": "hi"}]


def _settings(url: str) -> Any:
    return settings_for(url, BENCHMARK_TIMEOUT_SECONDS="30")


def _timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    start = time.perf_counter()
    with pytest.raises(Exception) as info:
        call()
    return info.value, time.perf_counter() - start


def _drain_sync(client: OllamaClient) -> None:
    with client.stream_chat(MODEL, MESSAGES) as stream:
        for _ in stream:
            pass


async def _drain_async(client: AsyncOllamaClient) -> None:
    async with client.stream_chat(MODEL, MESSAGES) as stream:
        async for _ in stream:
            pass


def _assert_deadline(error: BaseException, elapsed_s: float, bound_s: float) -> None:
    assert isinstance(error, DeadlineExceeded), repr(error)
    assert isinstance(error, ReadTimeout)  # the same family: callers that bound time agree
    assert "within 1 s" in error.message and "total time" in error.message
    assert "BENCHMARK_TIMEOUT_SECONDS" in (error.hint or "")
    assert DEADLINE_S * 0.9 <= elapsed_s < bound_s + MARGIN_S, elapsed_s


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize("mode", ["trickle", "endless"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "httpx"])
def test_a_stream_that_never_ends_stops_at_the_deadline_sync(mode: str, fast: bool) -> None:
    with HostileStream("/api/chat", mode) as server:
        client = OllamaClient(_settings(server.url), deadline_s=DEADLINE_S, fast=fast)
        with client:
            error, elapsed = _timed(lambda: _drain_sync(client))
        assert server.hostile_requests == 1
    # httpx's own transport cannot cut a read that is already waiting: twice at worst.
    _assert_deadline(error, elapsed, DEADLINE_S if fast else 2 * DEADLINE_S)


@pytest.mark.parametrize("mode", ["trickle", "endless"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "httpx"])
def test_a_stream_that_never_ends_stops_at_the_deadline_async(mode: str, fast: bool) -> None:
    async def run() -> None:
        async with AsyncOllamaClient(
            _settings(server.url), deadline_s=DEADLINE_S, fast=fast
        ) as client:
            await _drain_async(client)

    with HostileStream("/api/chat", mode) as server:
        error, elapsed = _timed(lambda: asyncio.run(run()))
    _assert_deadline(error, elapsed, DEADLINE_S if fast else 2 * DEADLINE_S)


def test_the_stream_records_how_it_ended() -> None:
    with (
        HostileStream("/api/chat", "trickle") as server,
        OllamaClient(_settings(server.url), deadline_s=DEADLINE_S) as client,
    ):
        stream = client.stream_chat(MODEL, MESSAGES)
        with stream, pytest.raises(DeadlineExceeded):
            for _ in stream:
                pass
    assert stream.end == "timeout"


def test_without_a_deadline_the_trickle_keeps_the_stream_open() -> None:
    """The read timeout alone does not bound a trickle (why the deadline exists): after
    three deadlines' worth of time the stream is still delivering."""
    with HostileStream("/api/chat", "trickle", interval_s=0.01) as server:
        settings = settings_for(server.url, BENCHMARK_TIMEOUT_SECONDS="1")
        with OllamaClient(settings) as client, client.stream_chat(MODEL, MESSAGES) as stream:
            start = time.perf_counter()
            chunks = 0
            for _ in stream:
                chunks += 1
                if time.perf_counter() - start > 3 * DEADLINE_S:
                    break  # the test stops it: nothing else would
        assert stream.end == "interrupted"  # stopped by the break, not by a timeout
        assert chunks >= 2


# --------------------------------------------------------------------------- plain answers


@pytest.mark.parametrize("path", ["/api/version", "/api/tags"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "httpx"])
def test_a_trickled_json_answer_stops_at_the_deadline(path: str, fast: bool) -> None:
    call = {"/api/version": "version", "/api/tags": "list_models"}[path]
    with (
        HostileStream(path, "trickle") as server,
        OllamaClient(_settings(server.url), deadline_s=DEADLINE_S, fast=fast) as client,
    ):
        error, elapsed = _timed(getattr(client, call))
    _assert_deadline(error, elapsed, DEADLINE_S if fast else 2 * DEADLINE_S)


def test_a_trickled_json_answer_stops_at_the_deadline_async() -> None:
    async def run() -> None:
        async with AsyncOllamaClient(_settings(server.url), deadline_s=DEADLINE_S) as client:
            await client.version()

    with HostileStream("/api/version", "trickle") as server:
        error, elapsed = _timed(lambda: asyncio.run(run()))
    _assert_deadline(error, elapsed, DEADLINE_S)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "httpx"])
def test_an_endless_json_answer_is_cut_at_the_size_bound(fast: bool) -> None:
    """No deadline here: the body's size bound alone stops it, long before memory grows."""
    with HostileStream("/api/tags", "line") as server:
        tracemalloc.start()
        try:
            with OllamaClient(_settings(server.url), fast=fast) as client:
                error, elapsed = _timed(client.list_models)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert isinstance(error, ProtocolError), repr(error)
    assert f"larger than {MAX_BODY_BYTES} bytes" in error.message
    assert peak < 3 * MAX_BODY_BYTES, peak
    assert elapsed < 10, elapsed


def test_an_endless_line_in_a_stream_is_rejected_at_its_bound() -> None:
    with (
        HostileStream("/api/chat", "line") as server,
        OllamaClient(_settings(server.url), deadline_s=30) as client,
    ):
        error, elapsed = _timed(lambda: _drain_sync(client))
    assert isinstance(error, BadChunk), repr(error)
    assert f"longer than {MAX_LINE_BYTES} bytes" in error.message
    assert elapsed < 10, elapsed


# --------------------------------------------------------------------------- backends


@pytest.mark.parametrize("api", ["ollama", "openai", "auto"])
def test_every_backend_takes_the_deadline(api: str) -> None:
    path = "/v1/chat/completions" if api == "openai" else "/api/chat"
    request = ChatRequest(model=MODEL, messages=({"role": "user", "content": "hi"},))
    with HostileStream(path, "trickle") as server:
        backend = open_backend(_settings(server.url), api, deadline_s=DEADLINE_S)

        def drain() -> None:
            with backend.stream_chat(request) as stream:
                for _ in stream:
                    pass

        with backend:  # type: ignore[attr-defined]
            backend.connect()
            error, elapsed = _timed(drain)
    # The OpenAI backend reads through httpx's own transport.
    _assert_deadline(error, elapsed, 2 * DEADLINE_S)


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_every_async_backend_takes_the_deadline(api: str) -> None:
    path = "/v1/chat/completions" if api == "openai" else "/api/chat"
    request = ChatRequest(model=MODEL, messages=({"role": "user", "content": "hi"},))

    async def run() -> None:
        backend = open_async_backend(_settings(server.url), api, deadline_s=DEADLINE_S)
        try:
            async with backend.stream_chat(request) as stream:
                async for _ in stream:
                    pass
        finally:
            await backend.aclose()

    with HostileStream(path, "endless") as server:
        error, elapsed = _timed(lambda: asyncio.run(run()))
    _assert_deadline(error, elapsed, 2 * DEADLINE_S)


def test_an_endless_sse_line_is_rejected_at_its_bound() -> None:
    request = ChatRequest(model=MODEL, messages=({"role": "user", "content": "hi"},))
    with HostileStream("/v1/chat/completions", "line") as server:
        backend = open_backend(_settings(server.url), "openai", deadline_s=30)

        def drain() -> None:
            with backend.stream_chat(request) as stream:
                for _ in stream:
                    pass

        try:
            error, elapsed = _timed(drain)
        finally:
            backend.close()
    assert isinstance(error, ProtocolError), repr(error)
    assert elapsed < 10, elapsed


def test_a_deadline_does_not_disturb_a_normal_server(sim_url: str) -> None:
    for fast in (True, False):
        with OllamaClient(settings_for(sim_url), deadline_s=5, fast=fast) as client:
            assert client.deadline_s == 5
            assert client.version()
            with client.stream_chat("m:1b", MESSAGES) as stream:
                chunks = list(stream)
            assert stream.end == "done" and chunks[-1].done


def test_a_deadline_must_be_positive(sim_url: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        OllamaClient(settings_for(sim_url), deadline_s=0)


# --------------------------------------------------------------------------- decoders


def _feed_40mb(feed: Callable[[bytes], object]) -> tuple[BaseException, float, int]:
    piece = b"x" * 65536
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(Exception) as info:
            feed(b'{"message":{"content":"')
            for _ in range(FORTY_MB // len(piece)):
                feed(piece)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return info.value, elapsed, peak


def test_a_40_mb_ndjson_line_is_rejected_quickly_in_bounded_memory() -> None:
    decoder = NDJSONDecoder("http://h/api/chat")
    error, elapsed, peak = _feed_40mb(lambda data: decoder.feed(data, 1))
    assert isinstance(error, BadChunk)
    assert "a stream line longer than 8388608 bytes" in error.message
    assert elapsed < 2.0, elapsed  # it was 15 s of CPU when lines were joined on every read
    assert peak < 3 * MAX_LINE_BYTES, peak


def test_a_40_mb_sse_line_is_rejected_quickly_in_bounded_memory() -> None:
    decoder = SSEDecoder("http://h/v1/chat/completions")
    error, elapsed, peak = _feed_40mb(decoder.feed)
    assert isinstance(error, ProtocolError)
    assert elapsed < 2.0, elapsed
    assert peak < 3 * SSE_MAX_LINE_BYTES + 2 * 65536, peak


def test_a_long_line_under_the_bound_parses_in_linear_time() -> None:
    """A 7 MiB line in 64 KiB reads: joined once, at its newline, not on every read."""
    decoder = NDJSONDecoder("http://h/api/chat")
    text = "x" * (7 * 1024 * 1024)
    data = b'{"message":{"role":"assistant","content":"' + text.encode() + b'"},"done":false}\n'
    start = time.perf_counter()
    chunks = []
    for offset in range(0, len(data), 65536):
        chunks += decoder.feed(data[offset : offset + 65536], 1)
    elapsed = time.perf_counter() - start
    assert [len(c.content) for c in chunks] == [len(text)]
    assert elapsed < 1.0, elapsed


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "httpx"])
def test_a_silent_server_is_still_a_read_timeout(fast: bool) -> None:
    """Silent for the whole read timeout: "sent nothing for 1 s", even when the deadline is
    as long (the doctor's small requests), not the deadline's message."""
    with RawServer([], hold=True) as server:
        settings = settings_for(server.url, BENCHMARK_TIMEOUT_SECONDS="1")
        with OllamaClient(settings, read_timeout_s=1, deadline_s=1, fast=fast) as client:
            error, elapsed = _timed(client.version)
    assert type(error) is ReadTimeout, repr(error)
    assert "sent nothing for 1 s" in error.message
    assert elapsed < 1 + MARGIN_S
