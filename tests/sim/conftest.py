"""Fixtures for the simulator tests: quick scripted models, servers in a thread, raw HTTP.

* ``sim`` — a fresh simulator (in a background thread) serving :func:`quick_config`'s models
  on 127.0.0.1, stopped after the test. ``start_sim(config, **kwargs)`` starts more.
* :func:`raw` — send exact request bytes over a socket and get the exact response back
  (status line, headers in order, and for chunked bodies the list of HTTP chunks), for the
  assertions no HTTP client library would let us make.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from ollamakit.sim import Fault, FaultKind, ModelSpec, SimConfig, ThreadedSim, run_in_thread

# Quick but not instant: loads and intervals are long enough to be seen in the durations.
QUICK = ModelSpec(
    "quick:1b",
    family="llama",
    parameter_size="1.2B",
    quantization="Q8_0",
    size=1_321_098_329,
    size_vram=1_000_000_000,
    load_ms=60,
    warm_load_ms=1,
    prompt_tps=20_000,
    eval_tps=2_000,
    reply_tokens=12,
)
THINKER = ModelSpec(
    "thinker:1b",
    family="qwen3",
    thinking=True,
    thinking_tokens=5,
    load_ms=20,
    prompt_tps=20_000,
    eval_tps=2_000,
    reply_tokens=7,
)


def quick_config(*extra: ModelSpec, **kwargs: Any) -> SimConfig:
    return SimConfig(models=(QUICK, THINKER, *extra), **kwargs)


def faulty(name: str, *faults: Fault, **kwargs: Any) -> ModelSpec:
    base = {"load_ms": 5, "warm_load_ms": 0, "prompt_tps": 50_000, "eval_tps": 1_000}
    return ModelSpec(name, faults=faults, **{"reply_tokens": 10, **base, **kwargs})


@pytest.fixture
def start_sim() -> Iterator[Callable[..., ThreadedSim]]:
    started: list[ThreadedSim] = []

    def start(config: SimConfig | None = None, **kwargs: Any) -> ThreadedSim:
        server = run_in_thread(config or quick_config(), **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sim(start_sim: Callable[..., ThreadedSim]) -> ThreadedSim:
    return start_sim()


# --- raw HTTP ---------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # in wire order, names as sent
    body: bytes  # decoded (de-chunked) body
    chunks: list[bytes] = field(default_factory=list)  # HTTP chunks, when chunked
    complete: bool = True  # the chunked body ended with its 0-size chunk

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.body.splitlines() if line]


def _recv_all(sock: socket.socket) -> bytes:
    data = bytearray()
    while True:
        try:
            piece = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not piece:
            break
        data += piece
    return bytes(data)


def parse_response(data: bytes) -> RawResponse:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    _, status, reason = lines[0].split(" ", 2)
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    response = RawResponse(int(status), reason, headers, b"")
    if (response.header("transfer-encoding") or "").lower() == "chunked":
        response.complete = False
        pos = 0
        while True:
            eol = rest.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(rest[pos:eol], 16)
            if size == 0:
                response.complete = True
                break
            chunk = rest[eol + 2 : eol + 2 + size]
            if len(chunk) < size or rest[eol + 2 + size : eol + 4 + size] != b"\r\n":
                break
            response.chunks.append(chunk)
            pos = eol + 4 + size
        response.body = b"".join(response.chunks)
    else:
        length = response.header("content-length")
        response.body = rest[: int(length)] if length is not None else rest
    return response


def raw(
    url: str,
    method: str = "GET",
    path: str = "/",
    *,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    host: str | None = None,
    timeout: float = 10,
) -> RawResponse:
    """One request with ``Connection: close``; reads the whole answer."""
    hostport = url.split("://", 1)[1]
    addr, _, port = hostport.rpartition(":")
    payload = orjson.dumps(body) if isinstance(body, dict) else (body or b"")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host if host is not None else hostport}"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(payload)}")
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    with socket.create_connection((addr.strip("[]"), int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        return parse_response(_recv_all(sock))


__all__ = ["QUICK", "THINKER", "FaultKind", "RawResponse", "faulty", "quick_config", "raw"]
