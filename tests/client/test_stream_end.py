"""How a stream ends, over raw sockets: a server closing mid-stream is a cut stream (issue 10:
it used to spin at 100% CPU until the read timeout), on the fast and the slow path."""

from __future__ import annotations

import asyncio

import pytest

from ollamakit.client import AsyncOllamaClient, OllamaClient, StreamReused
from ollamakit.errors import StreamCut
from tests.client.conftest import RawServer, chunked, ndjson_head, settings_for

LINE = b'{"response":"a","done":false}\n'
DONE = b'{"response":"","done":true,"eval_count":2,"eval_duration":1000000}\n'


def _sync_end(url: str) -> tuple[type[BaseException] | None, str | None, int]:
    # A long read timeout: a cut must be seen at once, not after the timeout.
    with OllamaClient(settings_for(url), read_timeout_s=60) as client:
        stream = client.stream_generate("m", "hi")
        got = 0
        try:
            with stream:
                for _chunk in stream:
                    got += 1
        except StreamCut as exc:
            return type(exc), stream.end, got
        return None, stream.end, got


async def _async_end(url: str) -> tuple[type[BaseException] | None, str | None, int]:
    async with AsyncOllamaClient(settings_for(url), read_timeout_s=60) as client:
        stream = client.stream_generate("m", "hi")
        got = 0
        try:
            async with asyncio.timeout(30), stream:
                async for _chunk in stream:
                    got += 1
        except StreamCut as exc:
            return type(exc), stream.end, got
        return None, stream.end, got


@pytest.mark.parametrize(
    "body",
    [
        b"%x\r\n%s\r\n" % (len(LINE), LINE),  # whole frames, then the peer closes
        b"%x\r\n%s" % (len(LINE) * 2, LINE),  # inside a frame
        b"%x\r\n%s\r\n1" % (len(LINE), LINE),  # inside a size line
        b"",  # right after the head
    ],
    ids=["between-frames", "mid-frame", "mid-size-line", "after-head"],
)
def test_a_server_closing_mid_stream_is_a_cut_stream(body: bytes) -> None:
    with RawServer([ndjson_head(), body]) as server:
        assert _sync_end(server.url)[:2] == (StreamCut, "cut")
        assert asyncio.run(_async_end(server.url))[:2] == (StreamCut, "cut")


def test_a_complete_stream_ends_done() -> None:
    with RawServer([ndjson_head(), chunked(LINE, DONE)]) as server:
        assert _sync_end(server.url) == (None, "done", 2)
        assert asyncio.run(_async_end(server.url)) == (None, "done", 2)


def test_slow_path_content_length_stream_and_reiteration() -> None:
    body = LINE + DONE
    head = ndjson_head(f"Content-Length: {len(body)}\r\n")
    with RawServer([head, body]) as server:
        assert _sync_end(server.url) == (None, "done", 2)
        with (
            OllamaClient(settings_for(server.url)) as client,
            client.stream_generate("m", "hi") as stream,
        ):
            next(iter(stream))
            with pytest.raises(StreamReused):
                iter(stream)


def test_a_clean_end_without_done_is_clean_eof_not_a_cut() -> None:
    # Ollama's token-repeat guard: the chunked body ends properly with no done line.
    with RawServer([ndjson_head(), chunked(LINE, LINE)]) as server:
        assert _sync_end(server.url) == (None, "clean_eof", 2)
        assert asyncio.run(_async_end(server.url)) == (None, "clean_eof", 2)
