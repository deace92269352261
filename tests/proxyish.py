"""A tiny threaded HTTP(S) server that answers canned responses: a stand-in for nginx.

Real nginx is tested elsewhere (deploy tests); here we only need *what a proxy says* when
something is wrong: a 401 with ``WWW-Authenticate``, an empty 403, an HTML 502 page, a 301 to
https, a login portal. Each path maps to a :class:`Canned` response (or a function of the
request, for answers that depend on it, like a redirect to the same path)::

    with CannedServer({"/": Canned(502, NGINX_502, content_type="text/html")}) as srv:
        run_cli(["doctor", "--base-url", srv.url])

A route key is ``"METHOD /path"`` or ``"/path"`` (any method); ``"*"`` is the fallback.
:class:`Canned` can also stream ``chunks`` with chunked encoding, spaced by ``interval_s``
(0 sends them back to back, i.e. in one lump, as a buffering proxy does). Requests are
recorded (method, path, headers) so tests can check what the client sent.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

# Re-exported: it lives in tests.support with the other race-free port helpers.
from tests.support import closed_port as closed_port


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Canned:
    """One canned answer."""

    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: Sequence[bytes] | None = None  # stream these (Transfer-Encoding: chunked)
    interval_s: float = 0.0  # pause between chunks
    delay_s: float = 0.0  # pause before the status line
    finish: bool = True  # False: drop the connection after the chunks (a cut stream)


Route = Canned | Callable[[Request], Canned]

NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)
NGINX_504 = NGINX_502.replace("502 Bad Gateway", "504 Gateway Time-out")
NGINX_401 = NGINX_502.replace("502 Bad Gateway", "401 Authorization Required")
NGINX_405 = NGINX_502.replace("502 Bad Gateway", "405 Not Allowed")
NGINX_301 = NGINX_502.replace("502 Bad Gateway", "301 Moved Permanently")
PORTAL = (
    "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
    "<title>Guest Wi-Fi - Sign in</title></head><body>Please sign in</body></html>"
)
BUSY = '{"error":"server busy, please try again.  maximum pending requests exceeded"}'


def ollama_json(obj: Any) -> Canned:
    return Canned(200, json.dumps(obj), content_type="application/json; charset=utf-8")


def model_entry(name: str, size: int, family: str = "llama") -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-05-04T17:37:44.706015396-07:00",
        "size": size,
        "digest": "a" * 64,
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": "1B",
            "quantization_level": "Q4_K_M",
        },
    }


def generate_chunks(
    model: str, count: int, interval_ms: float, *, start: datetime | None = None
) -> list[bytes]:
    """NDJSON lines of a generate stream whose ``created_at`` stamps are ``interval_ms`` apart.

    The stamps are what the server claims; when the lines are *sent* is up to ``Canned``.
    """
    base = start or datetime.now(UTC)
    lines = []
    for i in range(count):
        stamp = (base + timedelta(milliseconds=i * interval_ms)).isoformat().replace("+00:00", "Z")
        lines.append(
            json.dumps(
                {"model": model, "created_at": stamp, "response": f" {i + 1}", "done": False}
            ).encode()
            + b"\n"
        )
    stamp = (base + timedelta(milliseconds=count * interval_ms)).isoformat().replace("+00:00", "Z")
    final = {
        "model": model,
        "created_at": stamp,
        "response": "",
        "done": True,
        "done_reason": "length",
        "total_duration": int((count * interval_ms + 50) * 1e6),
        "load_duration": 2_000_000,
        "prompt_eval_count": 12,
        "prompt_eval_duration": 20_000_000,
        "eval_count": count,
        "eval_duration": int(count * interval_ms * 1e6),
    }
    lines.append(json.dumps(final).encode() + b"\n")
    return lines


def ollama_routes(
    models: Sequence[dict[str, Any]] = (),
    *,
    version: str = "0.5.1",
    generate: Route | None = None,
) -> dict[str, Route]:
    """The endpoints doctor uses, answering like a healthy Ollama (generation is up to you)."""
    models = list(models) or [model_entry("tiny:latest", 1_000_000)]
    routes: dict[str, Route] = {
        "GET /": Canned(200, "Ollama is running"),
        "GET /api/version": ollama_json({"version": version}),
        "GET /api/tags": ollama_json({"models": models}),
    }
    routes["POST /api/generate"] = generate or Canned(
        200,
        content_type="application/x-ndjson",
        chunks=generate_chunks(str(models[0]["name"]), 8, 5),
    )
    return routes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        request = Request(self.command, path, dict(self.headers.items()), body)
        owner = self.server.owner
        owner.requests.append(request)
        route = owner.routes.get(f"{self.command} {path}") or owner.routes.get(path)
        route = route or owner.routes.get("*") or Canned(404, "404 page not found")
        canned = route(request) if callable(route) else route
        if canned.delay_s:
            time.sleep(canned.delay_s)
        self.send_response(canned.status)
        self.send_header("Content-Type", canned.content_type)
        for name, value in canned.headers.items():
            self.send_header(name, value)
        if canned.chunks is None:
            data = canned.body.encode() if isinstance(canned.body, str) else canned.body
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if canned.interval_s:
            for index, chunk in enumerate(canned.chunks):
                if index:
                    time.sleep(canned.interval_s)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
        else:
            # One write: a buffering proxy hands the client the whole body at once.
            self.wfile.write(b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in canned.chunks))
        if canned.finish:
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.close_connection = True
        self.wfile.flush()

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: CannedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed TLS handshakes and clients hanging up are the point of several tests.
        pass


class CannedServer:
    """``with CannedServer(routes) as srv: srv.url`` — on 127.0.0.1, a free port."""

    def __init__(
        self,
        routes: Mapping[str, Route] | None = None,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[Request] = []
        self._tls = tls
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        if tls is not None:
            # The handshake happens on the first read, in the request's own thread, so a client
            # that never starts one (plain http:// to this port) cannot block the accept loop.
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = int(self._server.server_address[1])
        # A short poll interval: shutdown() waits for the loop to notice, 0.5 s by default.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# --------------------------------------------------------------------------- helpers for tests


class Blackhole:
    """A loopback port whose SYNs are dropped: a *real* connect timeout, without a firewall.

    A listening socket with a backlog of 0 that never accepts: once one connection fills the
    queue, Linux drops further SYNs, so the next connect attempt times out, exactly like a
    firewall that drops packets.
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = int(self._listener.getsockname()[1])
        self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=2)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._filler.close()
        self._listener.close()


def server_tls_context(ca: Any, *names: str) -> ssl.SSLContext:
    """A server-side context with a certificate for ``names`` issued by a ``trustme.CA``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1", "localhost"))).configure_cert(ctx)
    return ctx
