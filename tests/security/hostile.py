"""A hostile Ollama for the tests: the real wire format, with whatever names and numbers a
test wants to attack with (model names with HTML, formulas and control characters, integers
beyond 64 bits). Standard library only, on 127.0.0.1, in a thread.

``HostileServer(models=["a``<img …>``"], final={"eval_count": 2**70})`` — every model answers
``/api/chat`` with ``reply`` split in a few chunks and then the ``done`` line with ``final``'s
fields merged over ordinary statistics.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODIFIED_AT = "2026-01-01T00:00:00.000000000Z"


class _Answered(Exception):
    """The request was answered already (a redirect)."""


class HostileServer:
    def __init__(
        self,
        models: list[str],
        *,
        reply: str = "Hello from the hostile server.",
        final: dict[str, Any] | None = None,
        version: str = "0.12.6",
        redirect_to: str | None = None,
    ) -> None:
        self.redirect_to = redirect_to  # answer everything with a 307 to this origin
        self.models = models
        self.reply = reply
        self.final = final or {}
        self.version = version
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _tags(self) -> dict[str, Any]:
        details = {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "1B",
            "quantization_level": "Q4_K_M",
        }
        return {
            "models": [
                {
                    "name": name,
                    "model": name,
                    "modified_at": MODIFIED_AT,
                    "size": 1_000_000,
                    "digest": "0" * 64,
                    "details": details,
                }
                for name in self.models
            ]
        }

    def _chat_lines(self, model: str) -> list[bytes]:
        words = self.reply.split(" ")
        lines = []
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            chunk = {
                "model": model,
                "created_at": MODIFIED_AT,
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            lines.append(json.dumps(chunk).encode() + b"\n")
        final = {
            "model": model,
            "created_at": MODIFIED_AT,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "total_duration": 30_000_000,
            "load_duration": 1_000_000,
            "prompt_eval_count": 5,
            "prompt_eval_duration": 1_000_000,
            "eval_count": len(words),
            "eval_duration": 20_000_000,
            **self.final,
        }
        lines.append(json.dumps(final).encode() + b"\n")
        return lines

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, body: Any, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> dict[str, Any]:
                outer.requests.append((self.command, self.path, dict(self.headers.items())))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if outer.redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", outer.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    raise _Answered
                try:
                    return dict(json.loads(raw or b"{}"))
                except ValueError:
                    return {}

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except _Answered:
                    self.wfile.flush()

            def do_GET(self) -> None:
                self._record()
                if self.path == "/api/version":
                    self._json({"version": outer.version})
                elif self.path == "/api/tags":
                    self._json(outer._tags())
                elif self.path == "/api/ps":
                    self._json({"models": []})
                elif self.path == "/":
                    self.send_response(200)
                    self.send_header("Content-Length", "17")
                    self.end_headers()
                    self.wfile.write(b"Ollama is running")
                else:
                    self._json({"error": "not found"}, 404)

            def do_HEAD(self) -> None:
                self._record()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self._record()
                model = str(body.get("model") or (outer.models or ["m"])[0])
                if self.path == "/api/show":
                    self._json(
                        {
                            "capabilities": ["completion"],
                            "details": outer._tags()["models"][0]["details"]
                            if outer.models
                            else {},
                            "model_info": {},
                            "modified_at": MODIFIED_AT,
                        }
                    )
                elif self.path in ("/api/chat", "/api/generate"):
                    if body.get("stream") is False:
                        self._json(json.loads(outer._chat_lines(model)[-1]))
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-ndjson")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for line in outer._chat_lines(model):
                        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self._json({"error": "not found"}, 404)

        return Handler
