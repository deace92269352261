"""A raw-socket HTTP/1.1 server on 127.0.0.1 that replays scripted Ollama streams byte for byte.

The model name in the request picks the script; each step of a script is written at its
offset (ms after the request arrived) as one HTTP chunk holding one or more NDJSON lines, so a
"buffered" step delivers a whole reply in one socket write, as nginx with ``proxy_buffering on``
does. ``/api/chat`` gets ``message`` objects, ``/api/generate`` gets ``response`` text: the same
script serves the bench, the chat, ``chat --auto`` and the doctor.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

CREATED_BASE_S = 1_760_000_000  # a fixed wall-clock second for created_at


@dataclass(frozen=True)
class Piece:
    """One streamed object: text, thinking, or the final figures (``final``), or an error."""

    at_ms: float  # when the server "made" it (created_at), ms after the request
    content: str = ""
    thinking: str = ""
    final: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Step:
    """Write these pieces together, ``send_ms`` after the request arrived."""

    send_ms: float
    pieces: tuple[Piece, ...]


@dataclass(frozen=True)
class Script:
    steps: tuple[Step, ...]
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def streamed(*pieces: Piece) -> tuple[Step, ...]:
    """Each piece written when it is made."""
    return tuple(Step(p.at_ms, (p,)) for p in pieces)


def _created_at(at_ms: float) -> str:
    ns = int(at_ms * 1_000_000)
    seconds = CREATED_BASE_S + ns // 1_000_000_000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{ns % 1_000_000_000:09d}Z"


def _line(piece: Piece, model: str, chat: bool) -> bytes:
    if piece.error is not None:
        return json.dumps({"error": piece.error}).encode() + b"\n"
    obj: dict[str, Any] = {"model": model, "created_at": _created_at(piece.at_ms)}
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": piece.content}
        if piece.thinking:
            message["thinking"] = piece.thinking
        obj["message"] = message
    else:
        obj["response"] = piece.content
        if piece.thinking:
            obj["thinking"] = piece.thinking
    obj["done"] = piece.final is not None
    if piece.final is not None:
        obj.update(piece.final)
    return json.dumps(obj).encode() + b"\n"


class ReplayServer:
    def __init__(self, scripts: dict[str, Script]) -> None:
        self.scripts = scripts
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        # A client that hangs up early (a failed reply, a closed connection) is not a failure
        # of the replay: what the tools measured is what the test checks.
        with contextlib.suppress(ConnectionError, OSError), conn:
            self._converse(conn)

    def _converse(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            arrived = time.perf_counter()
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
            length = int(headers.get("content-length", "0"))
            while len(buffer) < length:
                buffer += conn.recv(65536)
            body, buffer = buffer[:length], buffer[length:]
            if not self._answer(conn, method, path, body, arrived):
                return

    def _answer(
        self, conn: socket.socket, method: str, path: str, body: bytes, arrived: float
    ) -> bool:
        if method == "GET" and path in ("/api/version", "/"):
            payload = json.dumps({"version": "0.12.6"}).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            return True
        if method == "GET" and path == "/api/tags":
            models = [{"name": n, "model": n, "size": 1_000_000} for n in self.scripts]
            payload = json.dumps({"models": models}).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            return True
        if method == "GET" and path == "/api/ps":  # the bench reads residency: none known
            payload = b'{"models": []}'
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            return True
        request = json.loads(body or b"{}")
        model = str(request.get("model", ""))
        script = self.scripts[model]
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chat = path == "/api/chat"
        for step in script.steps:
            delay = arrived + step.send_ms / 1000 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # the script's clock, not a test waiting
            data = b"".join(_line(p, model, chat) for p in step.pieces)
            conn.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        conn.sendall(b"0\r\n\r\n")
        return True


@contextmanager
def replay(scripts: dict[str, Script]) -> Iterator[ReplayServer]:
    server = ReplayServer(scripts)
    server.start()
    try:
        yield server
    finally:
        server.close()
