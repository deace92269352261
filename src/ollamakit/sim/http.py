"""A small HTTP/1.1 server on :class:`asyncio.Protocol`, shaped like Go's ``net/http``.

Why not a framework: the simulator must control the exact bytes on the wire (header order,
``Content-Length`` vs chunked, when the status line leaves, cutting a chunked body in the middle,
stalling) and must push several hundred thousand chunks a second. A protocol class with one
parser and one writer does both with little code.

One :class:`HTTPConnection` per TCP connection. It parses one request at a time (keep-alive,
no concurrent pipelining: a second request that arrives early waits in the buffer), runs the
handler as a task, and hands it a :class:`Responder` that writes:

* :meth:`Responder.send` — a complete response with ``Content-Length`` (Go's ``c.JSON``);
* :meth:`Responder.begin_stream` / :meth:`Responder.write` / :meth:`Responder.end_stream` —
  a chunked response whose status line leaves together with the first chunk, as Go sends it
  on the first flush; HTTP/1.0 clients get the raw body and a close instead;
* :meth:`Responder.cut` — close without the terminating chunk (a cut stream).

Flow control: when the transport's buffer passes its high-water mark, writers ``await
drain()``. When the client goes away, the handler task is cancelled, which is how Ollama
notices a cancelled request too.

Headers are written in Go's order: the handler's own headers sorted by name, then ``Date``,
``Content-Length``, ``Connection`` and ``Transfer-Encoding``. There is no ``Server`` header,
as with Ollama.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import socket
import ssl
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final
from urllib.parse import unquote, urlsplit

MAX_HEADER_BYTES: Final = 1 << 20  # Go's DefaultMaxHeaderBytes
MAX_BODY_BYTES: Final = 64 << 20
WRITE_HIGH_WATER: Final = 1 << 20


@dataclass
class Request:
    """A parsed request. Header names are lower-case; repeated headers are joined by ``, ``."""

    method: str
    target: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes
    peer: str
    received_ns: int  # perf_counter_ns when the whole request had arrived
    host_count: int = 1
    keep_alive: bool = True

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def reason_phrase(status: int) -> str:
    """Go's ``StatusText``; unknown codes read ``status code N`` like Go writes them."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"status code {status}"


_date_cache: tuple[int, bytes] = (-1, b"")


def _date_header() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def _chunked_body(buf: bytearray | bytes, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked request body beginning at ``start``: (body, end) or None if incomplete."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest(400, "invalid byte in chunk length") from None
        pos = eol + 2
        if size == 0:
            # Skip trailers up to the empty line.
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return bytes(body), eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos : pos + size]
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(413, "request body too large")
        pos += size + 2


Handler = Callable[[Request, "Responder"], Awaitable[None]]


class HTTPConnection(asyncio.Protocol):
    """One client connection; see the module docstring."""

    def __init__(self, server: HTTPServer) -> None:
        self._server = server
        self._buf = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self._sent_continue = False
        self._eof = False
        self.transport: asyncio.Transport | None = None
        self.closed = False
        # Set when the client stops sending (EOF) or the connection drops: a stalled reply
        # waits on it, so a client that gave up frees the model's slot at once.
        self.hangup = asyncio.Event()
        self.peer = ""

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            host = str(peer[0])
            self.peer = f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._task is None:
            self._next_request()

    def eof_received(self) -> bool | None:
        # A client that half-closes after its request (printf ... | nc) still gets an answer.
        self._eof = True
        self.hangup.set()
        if self._task is None:
            self._next_request()
            if self._task is None:
                return None  # nothing to answer: let the transport close
        return None if self._server.tls else True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.hangup.set()
        self._server.connections.discard(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._wake_writers()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writers()

    def _wake_writers(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # --- writing -------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    @property
    def paused(self) -> bool:
        return self._paused

    async def drain(self) -> None:
        if self._paused and not self.closed:
            if self._drain is None:
                self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- parsing -------------------------------------------------------------------------------

    def _next_request(self) -> None:
        if self.closed:
            return
        try:
            request = self._parse()
        except BadRequest as exc:
            self._reject(exc.status, exc.reason)
            return
        if request is None:
            if self._eof and self._buf.strip():
                self._reject(400, "malformed request")
            elif self._eof:
                self.close()
            return
        self._task = asyncio.get_running_loop().create_task(self._run(request))

    def _reject(self, status: int, reason: str) -> None:
        # Go's own answer to unparsable requests: plain text and a close.
        body = f"{status} {reason_phrase(status)}: {reason}".encode()
        if status == 431:
            body = b"431 Request Header Fields Too Large"
        self.write(
            f"HTTP/1.1 {status} {reason_phrase(status)}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        self._buf.clear()
        self.close()

    def _parse(self) -> Request | None:
        buf = self._buf
        while buf.startswith(b"\r\n"):  # Go ignores blank lines before a request line
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        sep = 4
        if end < 0:
            end = buf.find(b"\n\n")
            sep = 2
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise BadRequest(431, "request header too large")
            return None
        head = bytes(buf[:end]).decode("latin-1")
        lines = head.replace("\r\n", "\n").split("\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise BadRequest(400, "malformed HTTP request " + repr(lines[0]))
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            if version.startswith("HTTP/"):
                raise BadRequest(505, "unsupported protocol version")
            raise BadRequest(400, "malformed HTTP version " + repr(version))
        headers: dict[str, str] = {}
        host_count = 0
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise BadRequest(400, "malformed MIME header line: " + line)
            key = name.lower()
            value = value.strip()
            if key == "host":
                host_count += 1
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if version == "HTTP/1.1" and host_count == 0:
            raise BadRequest(400, "missing required Host header")
        if host_count > 1:
            raise BadRequest(400, "too many Host headers")
        body_start = end + sep
        body: bytes
        consumed: int
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._maybe_continue(headers)
            decoded = _chunked_body(buf, body_start)
            if decoded is None:
                return None
            body, consumed = decoded
        else:
            length_text = headers.get("content-length", "0") or "0"
            try:
                length = int(length_text)
                if length < 0:
                    raise ValueError(length_text)
            except ValueError:
                raise BadRequest(400, "bad Content-Length") from None
            if length > MAX_BODY_BYTES:
                raise BadRequest(413, "request body too large")
            if len(buf) < body_start + length:
                self._maybe_continue(headers)
                return None
            body = bytes(buf[body_start : body_start + length])
            consumed = body_start + length
        del buf[:consumed]
        self._sent_continue = False
        if target.startswith(("http://", "https://")):
            split = urlsplit(target)  # absolute form, as sent to proxies
            path = split.path or "/"
            headers.setdefault("host", split.netloc)
        else:
            path = target.split("?", 1)[0]
        # HTTP/1.0 clients get one request per connection (Go would honour keep-alive there,
        # but no client this simulator serves relies on it).
        keep_alive = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        return Request(
            method=method,
            target=target,
            path=unquote(path),
            version=version,
            headers=headers,
            body=body,
            peer=self.peer,
            received_ns=time.perf_counter_ns(),
            host_count=host_count,
            keep_alive=keep_alive and not self._eof,
        )

    def _maybe_continue(self, headers: dict[str, str]) -> None:
        if not self._sent_continue and headers.get("expect", "").lower() == "100-continue":
            self._sent_continue = True
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def _run(self, request: Request) -> None:
        responder = Responder(self, request)
        try:
            await self._server.handler(request, responder)
        except asyncio.CancelledError:
            responder.cancelled = True
            if not self.closed:  # cancelled by server shutdown, not by the client
                self.abort()
            raise
        except Exception as exc:
            # A bug in a handler must not take the server down: answer 500 like gin's Recovery.
            if not responder.started:
                responder.send(500, b"", None)
            self.close()
            self._server.on_error(exc)
            return
        finally:
            self._task = None
        if responder.cut_done:
            return
        if not responder.started:
            responder.send(200, b"", None)  # Go: a handler that wrote nothing sends an empty 200
        elif not responder.finished:
            self.close()  # a body that cannot be completed must not be followed by another reply
            return
        if request.keep_alive and not responder.must_close and not self._eof:
            if self._buf:
                self._next_request()
        else:
            self.close()


@dataclass
class Responder:
    """Writes one response on a connection; records when its bytes left."""

    conn: HTTPConnection
    request: Request
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    status: int | None = None
    started: bool = False
    finished: bool = False
    cut_done: bool = False
    cancelled: bool = False
    must_close: bool = False
    headers_sent_ns: int | None = None
    bytes_sent: int = 0
    on_headers: Callable[[int, int], None] | None = None  # (status, perf_counter_ns) when sent

    @property
    def chunked(self) -> bool:
        """Whether streams use chunked framing (HTTP/1.1) or a raw body plus close (HTTP/1.0)."""
        return self.request.version == "HTTP/1.1"

    @property
    def head_only(self) -> bool:
        return self.request.method == "HEAD"

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def _head(self, status: int, headers: Iterable[tuple[str, str]], tail: list[bytes]) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode()]
        for name, value in sorted([*headers, *self.extra_headers], key=lambda h: h[0]):
            lines.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
        lines.append(b"Date: " + _date_header() + b"\r\n")
        lines.extend(tail)
        if self.request.version == "HTTP/1.1" and (not self.request.keep_alive or self.must_close):
            lines.append(b"Connection: close\r\n")
        return b"".join(lines)

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """A complete response with ``Content-Length`` (no body for HEAD, length kept)."""
        assert not self.started, "response already started"
        hdrs = list(headers)
        if content_type is not None:
            hdrs.append(("Content-Type", content_type))
        tail = [] if status in (204, 304) else [f"Content-Length: {len(body)}\r\n".encode()]
        head = self._head(status, hdrs, tail) + b"\r\n"
        data = head if self.head_only or status in (204, 304) else head + body
        self.status = status
        self.started = self.finished = True
        self.bytes_sent += len(data)
        self._sent(status)  # before the write: whoever sees the bytes also sees the record
        self.conn.write(data)

    def begin_stream(
        self, status: int, content_type: str, first: bytes = b"", sent_ns: int | None = None
    ) -> None:
        """Send the status line and headers, together with ``first`` (already framed)."""
        assert not self.started, "response already started"
        if self.chunked:
            tail = [b"Transfer-Encoding: chunked\r\n"]
        else:
            tail = []
            self.must_close = True  # HTTP/1.0: the end of the body is the end of the connection
        head = self._head(status, [("Content-Type", content_type)], tail) + b"\r\n"
        self.status = status
        self.started = True
        data = head + first
        self.bytes_sent += len(data)
        self._sent(status, sent_ns)
        self.conn.write(data)

    def _sent(self, status: int, sent_ns: int | None = None) -> None:
        self.headers_sent_ns = now = sent_ns or time.perf_counter_ns()
        if self.on_headers is not None:
            self.on_headers(status, now)

    def frame(self, data: bytes) -> bytes:
        """One HTTP chunk holding ``data`` (or ``data`` itself for HTTP/1.0)."""
        if not self.chunked:
            return data
        return b"%x\r\n%b\r\n" % (len(data), data)

    def write(self, framed: bytes) -> None:
        self.bytes_sent += len(framed)
        self.conn.write(framed)

    def end_stream(self) -> None:
        if self.chunked:
            self.write(b"0\r\n\r\n")
        self.finished = True

    def cut(self) -> None:
        """Close the connection now, leaving the chunked body unfinished."""
        self.cut_done = self.finished = True
        self.must_close = True
        self.conn.close()  # flushes what was written, then FIN: the client sees a short body

    @property
    def paused(self) -> bool:
        return self.conn.paused

    async def drain(self) -> None:
        await self.conn.drain()


class HTTPServer:
    """Listens on one address and runs ``handler`` for every request."""

    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections: set[HTTPConnection] = set()
        self._server: asyncio.Server | None = None

    def on_error(self, exc: BaseException) -> None:
        """Report a handler bug on stderr without stopping the server."""
        traceback.print_exception(exc)

    @property
    def tls(self) -> bool:
        return self.ssl_context is not None

    async def start(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HTTPConnection(self),
            sock=sock,
            ssl=self.ssl_context,
            backlog=1024,
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
