"""A hostile server on raw sockets for the deadline tests (``tests/client/test_deadline.py``,
``tests/security/test_hostile_trickle.py``): an ordinary Ollama on every path but one, and on
that one an answer that never ends.

Modes (``HostileStream(path, mode)``):

* ``trickle`` — a valid answer, one byte per ``interval_s`` (0.2 s), forever: a read timeout
  never fires, because every wait ends with a byte;
* ``endless`` — valid NDJSON (or SSE) chunks as fast as the socket takes them, never ``done``;
* ``line`` — one line that never ends (``{"message":{"content":"xxxx…``), 64 KiB per frame.

A non-streamed path (``/api/version``, ``/api/tags``) gets the same treatment in its JSON body.
The answer is chunked HTTP/1.1, the way Ollama sends; a connection the client closes ends its
thread. Standard library only, 127.0.0.1 only. No test in this module: it is imported.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Final

MODEL: Final = "m"
CREATED: Final = "2026-01-01T00:00:00.000000000Z"

_TAGS: Final = {
    "models": [
        {
            "name": MODEL,
            "model": MODEL,
            "modified_at": CREATED,
            "size": 1_000_000,
            "digest": "0" * 64,
            "details": {"family": "llama", "parameter_size": "1B", "quantization_level": "Q4"},
        }
    ]
}
_NORMAL_JSON: Final[dict[str, object]] = {
    "/api/version": {"version": "0.12.6"},
    "/api/tags": _TAGS,
    "/api/ps": {"models": []},
    "/api/show": {"capabilities": ["completion"], "details": {}, "model_info": {}},
    "/v1/models": {"object": "list", "data": [{"id": MODEL, "object": "model"}]},
}
_STREAMS: Final = ("/api/chat", "/api/generate", "/v1/chat/completions")


def _ndjson_line(text: str, done: bool = False) -> bytes:
    chunk: dict[str, object] = {
        "model": MODEL,
        "created_at": CREATED,
        "message": {"role": "assistant", "content": text},
        "done": done,
    }
    if done:
        chunk.update(done_reason="stop", eval_count=2, eval_duration=1_000_000)
    return json.dumps(chunk).encode() + b"\n"


def _sse_line(text: str) -> bytes:
    chunk = {
        "id": "x",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _frame(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class HostileStream:
    """``with HostileStream("/api/chat", "trickle") as server: ... server.url``."""

    def __init__(self, path: str, mode: str, *, interval_s: float = 0.2) -> None:
        assert mode in ("trickle", "endless", "line"), mode
        self.path, self.mode, self.interval_s = path, mode, interval_s
        self.hostile_requests = 0
        self.sent_bytes = 0  # what the hostile answers sent, for the tests' own checks
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> HostileStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            with conn:
                while not self._stop.is_set():
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buffer += data
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    method, target = lines[0].split(" ")[:2]
                    length = 0
                    for line in lines[1:]:
                        name, _, value = line.partition(":")
                        if name.strip().lower() == "content-length":
                            length = int(value.strip())
                    while len(buffer) < length:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buffer += data
                    body, buffer = buffer[:length], buffer[length:]
                    if target == self.path:
                        self.hostile_requests += 1
                        self._hostile(conn, target)
                        return
                    self._normal(conn, method, target, body)
        except OSError:  # the client went away: what every hostile answer ends in
            return

    def _normal(self, conn: socket.socket, method: str, target: str, body: bytes) -> None:
        if target == "/":
            self._send(conn, 200, "text/plain; charset=utf-8", b"Ollama is running")
        elif target in _NORMAL_JSON:
            self._send(conn, 200, "application/json", json.dumps(_NORMAL_JSON[target]).encode())
        elif target in ("/api/chat", "/api/generate") and method == "POST":
            reply = _ndjson_line("Hi") + _ndjson_line("", done=True)
            self._send(conn, 200, "application/x-ndjson", reply)
        else:
            self._send(conn, 404, "application/json", b'{"error":"not found"}')

    @staticmethod
    def _send(conn: socket.socket, status: int, content_type: str, body: bytes) -> None:
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        conn.sendall(head.encode() + body)

    def _hostile(self, conn: socket.socket, target: str) -> None:
        sse = target.startswith("/v1/")
        stream = target in _STREAMS
        content_type = (
            "text/event-stream" if sse else "application/x-ndjson" if stream else "application/json"
        )
        conn.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        if self.mode == "line":
            prefix = b"data: " if sse else b""
            start = b'{"message":{"role":"assistant","content":"' if stream else b'{"version":"'
            self._write(conn, _frame(prefix + start))
            frame = _frame(b"x" * 65536)
            while not self._stop.is_set():
                self._write(conn, frame)
            return
        if stream:
            line = _sse_line("x") if sse else _ndjson_line("x")
        else:
            line = b'{"version":"0.12.6"' + b" " * 64
        if self.mode == "endless":
            frame = _frame(line * 64)
            while not self._stop.is_set():
                self._write(conn, frame)
            return
        # trickle: one byte per frame, every interval_s; a non-stream body never closes
        # (its JSON is padded with spaces forever).
        index = 0
        while not self._stop.is_set():
            if not stream and index >= len(line):
                byte = b" "
            else:
                byte = line[index % len(line) : index % len(line) + 1]
            index += 1
            self._write(conn, _frame(byte))
            time.sleep(self.interval_s)

    def _write(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent_bytes += len(data)
