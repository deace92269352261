"""Fixtures of the client tests: a simulator in a thread, settings for a URL, a raw server.

``RawServer`` is a hostile or exact server written with sockets: it answers every connection
with the bytes it was given, written with chosen boundaries, then closes (or keeps the socket
open), so a test controls the wire byte for byte.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ollamakit.config import Flags, Settings, load_settings
from ollamakit.sim import ModelSpec, SimConfig, run_in_thread


def settings_for(url: str, **flags: Any) -> Settings:
    return load_settings(Flags(base_url=url, **flags), environ={})


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    models = (
        ModelSpec("m:1b", eval_tps=float("inf"), load_ms=0, reply_tokens=12),
        ModelSpec("think:1b", family="qwen3", thinking=True, eval_tps=float("inf"), load_ms=0),
        ModelSpec("half:3b", size=1000, size_vram=630, eval_tps=float("inf"), load_ms=0),
    )
    with run_in_thread(SimConfig(models=models, speed=1000.0)) as sim:
        yield sim.url


class RawServer:
    """Answers each connection with ``parts`` (written one ``sendall`` each), then closes.

    ``hold`` keeps the connection open after the last part instead (a stalled server).
    """

    def __init__(self, parts: Sequence[bytes], *, hold: bool = False) -> None:
        self.parts = list(parts)
        self.hold = hold
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)  # so the accept loop sees _stop promptly
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()
        for conn in self._open:
            conn.close()
        self._thread.join(5)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            self._open.append(conn)
            with contextlib.suppress(OSError):
                _read_request(conn)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for part in self.parts:
                    conn.sendall(part)
            if not self.hold:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()


def _read_request(conn: socket.socket) -> None:
    """Read one request (head and Content-Length body) so closing does not reset the client."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            return
        body += piece


def chunked(*payloads: bytes) -> bytes:
    """The chunked framing of ``payloads`` and the terminating frame."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"


def ndjson_head(extra: str = "Transfer-Encoding: chunked\r\n") -> bytes:
    return ("HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n" + extra + "\r\n").encode()


def write_splits(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """``data`` cut into pieces of the given sizes (the last one takes the rest)."""
    parts, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        parts.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        parts.append(data[pos:])
    return parts


__all__ = ["Path", "RawServer", "chunked", "ndjson_head", "settings_for", "write_splits"]
