"""A hostile server cannot drive the terminal: no escape sequence it sends reaches our output.

The server here is written for the test (raw sockets on 127.0.0.1, one thread per
connection): it speaks just enough of Ollama's API for every command, and puts an OSC
"set window title" (``ESC ] 0 ; … BEL``), an alternate-screen switch (``ESC [ ? 1049 h``), an
8-bit CSI (U+009B) and a bidi override into its version, its model names, the replies, the
thinking text and an error body. The real CLI runs against it in a subprocess; its stdout and
stderr must hold no ESC, no BEL and no C1 control, while the Chinese text and the emoji of
the same strings come through.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import assert_no_traceback, run_program

EVIL = "\x1b]0;pwned\x07\x1b[?1049h\x9b2J\u202e"
MODEL = f"evil{EVIL}模型🦙:1b"
BROKEN = f"broken{EVIL}:1b"
VERSION = f"0.9.0{EVIL}"
PIECES = ["你好", EVIL, "！👋 ", "world\x1b[31m", " 🦙"]
ERROR = f"model exploded{EVIL} 爆炸💥"


def _reply(path: str, request: dict[str, Any]) -> tuple[int, bytes, str]:
    if path == "/":
        return 200, b"Ollama is running", "text/plain"
    if path == "/api/version":
        return 200, json.dumps({"version": VERSION}).encode(), "application/json"
    if path == "/api/tags":
        models = [
            {
                "name": name,
                "model": name,
                "size": 1_000_000,
                "digest": "0" * 64,
                "modified_at": "2026-01-01T00:00:00Z",
                "details": {"parameter_size": f"1B{EVIL}", "quantization_level": "Q4_0"},
            }
            for name in (MODEL, BROKEN)
        ]
        return 200, json.dumps({"models": models}).encode(), "application/json"
    if path == "/api/ps":
        return 200, b'{"models": []}', "application/json"
    if path == "/api/show":
        body = {"capabilities": ["completion"], "details": {"family": "evil"}}
        return 200, json.dumps(body).encode(), "application/json"
    if path in ("/api/chat", "/api/generate"):
        if request.get("model") == BROKEN:
            return 500, json.dumps({"error": ERROR}).encode(), "application/json"
        chat = path == "/api/chat"

        def chunk(text: str, *, thinking: str = "", done: bool = False) -> dict[str, Any]:
            out: dict[str, Any] = {"model": request.get("model"), "created_at": "x", "done": done}
            if chat:
                out["message"] = {"role": "assistant", "content": text}
                if thinking:
                    out["message"]["thinking"] = thinking
            else:
                out["response"] = text
                if thinking:
                    out["thinking"] = thinking
            if done:
                out.update(
                    done_reason="stop",
                    total_duration=9_000_000,
                    load_duration=1_000_000,
                    prompt_eval_count=5,
                    prompt_eval_duration=1_000_000,
                    eval_count=len(PIECES),
                    eval_duration=5_000_000,
                )
            return out

        chunks = [chunk("", thinking=f"thinking {EVIL} 想一想🤔")]
        chunks += [chunk(piece) for piece in PIECES]
        chunks.append(chunk("", done=True))
        if request.get("stream") is False:
            whole = chunk("".join(PIECES), done=True)
            return 200, json.dumps(whole).encode(), "application/json"
        body = b"".join(json.dumps(c).encode() + b"\n" for c in chunks)
        return 200, body, "application/x-ndjson"
    return 404, b'{"error": "not found"}', "application/json"


def _serve(conn: socket.socket) -> None:
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(65536)
            if not more:
                return
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(body) < length:
            more = conn.recv(65536)
            if not more:
                break
            body += more
        try:
            request = json.loads(body) if body else {}
        except ValueError:
            request = {}
        status, payload, kind = _reply(target.split("?")[0], request)
        reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}[status]
        conn.sendall(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + (payload if method != "HEAD" else b"")
        )


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()
        thread.join(timeout=5)


def _assert_safe(output: str) -> None:
    assert "\x1b" not in output, repr(output)
    assert "\x07" not in output, repr(output)
    assert not any(0x80 <= ord(c) <= 0x9F for c in output), repr(output)
    assert "\u202e" not in output, repr(output)


QUICK_BENCH = ["--auto", "--runs", "1", "--warmup", "0", "--no-save", "--num-predict", "8"]


@pytest.mark.parametrize(
    ("args", "stdin", "survivors"),
    [
        (["bench", *QUICK_BENCH], None, ["模型🦙", "爆炸💥"]),
        (["chat", "--auto"], None, ["你好", "👋", "🦙", "想一想🤔", "爆炸💥"]),
        (["chat", "--model", MODEL], "hello\n", ["你好", "👋", "🦙"]),
        (["chat", "--model", BROKEN], "hello\n", ["爆炸💥"]),
        (["doctor"], None, ["0.9.0"]),
        (["doctor", "--json"], None, ["0.9.0"]),
    ],
    ids=["bench", "chat-auto", "chat-piped", "chat-piped-error", "doctor", "doctor-json"],
)
def test_no_escape_sequence_from_the_server_reaches_the_terminal(
    hostile_url: str, args: list[str], stdin: str | None, survivors: list[str]
) -> None:
    result = run_program([*args, "--base-url", hostile_url], input=stdin)
    assert_no_traceback(result)
    assert result.returncode in (0, 1, 2), result.output
    _assert_safe(result.stdout)
    _assert_safe(result.stderr)
    for text in survivors:
        assert text in result.output, (text, result.output)
