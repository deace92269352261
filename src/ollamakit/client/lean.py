"""The lean stream path: many concurrent ``/api/chat`` streams from one process (``load``).

Why
---
``ollamakit load`` holds hundreds of streams open at once and must send each request at its
planned time. Through httpx every request builds a ``Request`` (URL parsing, header
normalisation, cookies), passes the client's auth/redirect layers and the transport's pool,
and every socket read goes through httpcore's anyio backend (a cancel scope per read):
profiled at ~3 ms of CPU per 20-chunk request, which is a whole core at ~300 streams. This
module does the same exchange with asyncio's own :class:`asyncio.Protocol` callbacks and
the client's decoders, so a socket read costs one callback: de-frame
(:class:`~ollamakit.client.chunked.ChunkedDecoder`), decode lines
(:class:`~ollamakit.client.ndjson.NDJSONDecoder`, through
:class:`~ollamakit.client.stream.StreamState`), append the chunks, wake the reader once (or,
with :meth:`LeanStream.read_into`, only when the reply has ended).

What it keeps from the other paths
----------------------------------
* The request is the one :class:`~ollamakit.client.core.Core` describes: same headers
  (User-Agent, Accept, Basic/Bearer credentials), same JSON body; only httpx's
  ``Accept-Encoding`` is not sent, so replies come uncompressed (a ``gzip``/``deflate`` body
  is still decoded).
* ``sent_ns`` is stamped just before the request is written, chunks carry the arrival time
  of their socket read, ``end`` is set as on the httpx path (``StreamState``).
* Errors are the same :mod:`ollamakit.errors` values: non-2xx answers go through
  ``Core.check`` (503 → ``ServerBusy`` ...), a non-NDJSON answer through ``Core.not_ndjson``,
  network errors are raised as the httpx exception httpx would raise and translated by
  :func:`ollamakit.client.sync.translate_for` (refused, timed out, TLS, cut stream).
* Keep-alive as in :mod:`~ollamakit.client.transport`: a connection is reused only after a
  complete body on HTTP/1.1 without ``Connection: close``; an abandoned stream closes its
  connection (how Ollama learns to stop); a reused connection that the server had closed
  and that got no byte back is retried once on a fresh one.

Scope: http and https to the server itself. A proxy from the environment is not spoken
here: :func:`lean_usable` says False and the caller keeps the httpx backend. There is no
total deadline (``deadline_s``): the load driver bounds every request with
``asyncio.timeout``; the read timeout (a silence longer than ``read_timeout_s``) is one
timer per request, moved forward lazily rather than re-armed on every read.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import AsyncIterator
from typing import Any, Final, Self, cast

import httpx
import orjson

from ollamakit.client.chunked import ChunkedDecoder, ChunkedFramingError
from ollamakit.client.core import Core, request_body
from ollamakit.client.judge import ERROR_BODY_LIMIT
from ollamakit.client.log import log, log_no_answer
from ollamakit.client.stream import StreamState
from ollamakit.client.sync import translate_for
from ollamakit.client.transport import tls_context
from ollamakit.config import Settings
from ollamakit.domain import ChatRequest, StreamChunk, StreamEnd
from ollamakit.errors import OllamakitError

_MAX_HEAD: Final = 100 * 1024
_NO_RESPONSE: Final = "Server disconnected without sending a response."
_CUT: Final = "peer closed connection without sending complete message body"


def lean_usable(settings: Settings) -> bool:
    """Whether the lean path can reach the server: http(s) and no proxy from the environment
    applies to it (httpx would use that proxy; this path does not speak to proxies)."""
    server = settings.base_url
    if server.scheme not in ("http", "https"):
        return False
    proxies = urllib.request.getproxies()
    if not proxies.get(server.scheme) and not proxies.get("all"):
        return True
    return bool(urllib.request.proxy_bypass(server.host))


class HeadError(ValueError):
    """The response head is not valid HTTP/1.x."""


class Head:
    """A parsed response head: status, version, headers (names lower-cased).

    >>> h = Head.parse(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/x-ndjson\\r\\n"
    ...                b"Transfer-Encoding: chunked\\r\\n")
    >>> h.status, h.version, h.chunked, h.get("content-type"), h.keep_alive
    (200, '1.1', True, 'application/x-ndjson', True)
    >>> Head.parse(b"HTTP/1.0 503 Busy\\r\\nContent-Length: 4\\r\\n").keep_alive
    False
    >>> Head.parse(b"HTTP/1.1 2000 OK\\r\\n")
    Traceback (most recent call last):
    ...
    ollamakit.client.lean.HeadError: bad status line: 'HTTP/1.1 2000 OK'
    """

    __slots__ = ("headers", "status", "version")

    def __init__(self, status: int, version: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.version = version
        self.headers = headers

    @classmethod
    def parse(cls, raw: bytes) -> Head:
        """``raw``: the head without its final empty line."""
        text = raw.decode("latin-1")
        lines = text.split("\r\n")
        first = lines[0]
        parts = first.split(" ", 2)
        if (
            len(parts) < 2
            or parts[0] not in ("HTTP/1.1", "HTTP/1.0")
            or len(parts[1]) != 3
            or not parts[1].isdigit()
        ):
            raise HeadError(f"bad status line: {first[:80]!r}")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or line[0] in " \t":
                raise HeadError(f"bad header line: {line[:80]!r}")
            headers.append((name.lower(), value.strip(" \t")))
        return cls(int(parts[1]), parts[0][5:], headers)

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return default

    @property
    def chunked(self) -> bool:
        value = self.get("transfer-encoding")
        return value is not None and value.lower().rsplit(",", 1)[-1].strip() == "chunked"

    @property
    def keep_alive(self) -> bool:
        if self.version != "1.1":
            return False
        return "close" not in (self.get("connection") or "").lower()

    def as_httpx_headers(self) -> httpx.Headers:
        return httpx.Headers(self.headers)


class _Conn(asyncio.Protocol):
    """One keep-alive connection; hands what it reads to the exchange using it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.exchange: LeanStream | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports implement asyncio.Transport without subclassing it)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # bytes on an idle connection: not reusable
            self.close()
            return
        exchange._data(data)

    def eof_received(self) -> bool | None:
        exchange = self.exchange
        if exchange is not None:
            exchange._eof(None)
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self.exchange
        if exchange is not None:
            exchange._eof(exc)

    def close(self) -> None:
        self.closed = True
        transport = self.transport
        if transport is None:
            return
        if transport.get_extra_info("sslcontext") is not None:
            # No TLS close_notify exchange: it can outlive the event loop (a socket left
            # open, a ResourceWarning), and a peer that stops reading would hold it for
            # asyncio's 30 s shutdown timeout. The server sees the connection closed either way.
            transport.abort()
        else:
            transport.close()


class LeanPool:
    """Keep-alive connections to one server for lean streams; one per load driver.

    Unbounded: the caller (the load engine) bounds how many streams run at once. Idle
    connections are reused last-in first-out.
    """

    def __init__(self, settings: Settings, *, read_timeout_s: float | None = None) -> None:
        self.core = core = Core(settings, read_timeout_s or settings.benchmark_timeout_s)
        server = settings.base_url
        self.host, self.port = server.host, server.port
        self._ssl: ssl.SSLContext | None = (
            tls_context(core.verify()) if server.scheme == "https" else None
        )
        self._idle: list[_Conn] = []
        self.busy = 0
        self.opened = 0  # connections opened so far (a benchmark's check that none were late)
        self._closing = False
        head = [f"Host: {server.netloc}"]
        head += [f"{name}: {value}" for name, value in core.headers.items()]
        head += ["Content-Type: application/json"]
        self._head_lines = "\r\n".join(head)
        self._targets: dict[str, str] = {}

    @property
    def idle(self) -> int:
        return len(self._idle)

    def target(self, path: str) -> str:
        found = self._targets.get(path)
        if found is None:
            found = self._targets[path] = urllib.parse.urlsplit(self.core.url(path)).path
        return found

    def request_bytes(self, path: str, body: bytes) -> bytes:
        head = (
            f"POST {self.target(path)} HTTP/1.1\r\n{self._head_lines}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode("latin-1") + body

    async def connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        connect_s = self.core.timeouts.connect_s
        try:
            async with asyncio.timeout(connect_s):
                _, conn = await loop.create_connection(
                    _Conn,
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"timed out after {connect_s} s") from exc
        except OSError as exc:  # refused, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        self.opened += 1
        return conn

    def acquire(self) -> _Conn | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def release(self, conn: _Conn) -> None:
        conn.exchange = None
        if self._closing or conn.closed:
            conn.close()
        else:
            self._idle.append(conn)

    async def open(self, count: int, batch: int = 32) -> None:
        """Open connections until ``count`` are idle or busy (before a level starts)."""
        while len(self._idle) + self.busy < count:
            todo = min(batch, count - len(self._idle) - self.busy)
            conns = await asyncio.gather(*(self.connect() for _ in range(todo)))
            self._idle.extend(conns)

    def stream_chat(self, request: ChatRequest) -> LeanStream:
        return LeanStream(self, "/api/chat", request_body(request))

    async def aclose(self) -> None:
        self._closing = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        await asyncio.sleep(0)  # (the transports finish closing on the next loop iteration)


class LeanStream:
    """One streamed reply on a pooled connection: an
    :class:`~ollamakit.client.backend.AsyncReplyStream` (``async with s: async for c in s``)."""

    def __init__(self, pool: LeanPool, path: str, body: dict[str, Any]) -> None:
        self._pool = pool
        self._state = StreamState(pool.core, path, body)
        self._conn: _Conn | None = None
        self._head_buf = b""
        self._head: Head | None = None
        self._chunked: ChunkedDecoder | None = None
        self._left: int | None = None  # Content-Length bytes still to come
        self._inflate: Any = None  # a zlib decompressor for a compressed body
        self._error_body: list[bytes] | None = None  # a non-NDJSON answer's body
        self._chunks: list[StreamChunk] = []
        self._complete = False  # the body ended as its framing says
        self._failure: BaseException | None = None
        self._got_bytes = False
        self._waiter: asyncio.Future[None] | None = None
        self._last_ns = 0
        self._timer: asyncio.TimerHandle | None = None
        self._read_s = pool.core.timeouts.read_s
        self._finished = False
        self._keep = True  # False: bytes came after the body (the connection is spent)
        self._per_chunk = True  # wake the reader for new chunks (False: only at the end)

    # ----------------------------------------------------------------- the protocol's side

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        conn = self._conn
        if conn is not None:
            conn.close()
        self._wake()

    def _data(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        self._last_ns = now
        self._got_bytes = True
        try:
            if self._head is None:
                data = self._feed_head(data)
                if self._head is None:
                    return
                self._wake()
                if not data and not self._complete:
                    return
            self._body(data, now)
        except (ChunkedFramingError, HeadError, zlib.error) as exc:
            self._fail(httpx.RemoteProtocolError(str(exc)))
        except OllamakitError as exc:  # a bad line, an error line in the stream
            self._fail(exc)

    def _feed_head(self, data: bytes) -> bytes:
        buf = self._head_buf + data if self._head_buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise HeadError("response head too long")
                self._head_buf = buf
                return b""
            head = Head.parse(buf[:end])
            buf = buf[end + 4 :]
            if head.status >= 200:
                break  # (1xx heads are skipped)
        self._head_buf = b""
        self._head = head
        encoding = (head.get("content-encoding") or "identity").lower()
        if encoding in ("gzip", "deflate"):
            self._inflate = zlib.decompressobj(wbits=47)  # gzip or zlib header
        elif encoding != "identity":
            raise HeadError(f"unsupported content-encoding: {encoding[:40]}")
        if head.chunked:
            self._chunked = ChunkedDecoder()
        else:
            length = head.get("content-length")
            if length is not None:
                if not length.isdigit():
                    raise HeadError(f"bad content-length: {length[:40]!r}")
                self._left = int(length)
                self._complete = self._left == 0
        content_type = head.get("content-type") or "json"
        if not 200 <= head.status < 300 or "json" not in content_type:
            self._error_body = []
        return buf

    def _body(self, data: bytes, now: int) -> None:
        chunked = self._chunked
        if chunked is not None:
            payload = chunked.feed(data)
            if chunked.done:
                self._complete = True
                if chunked.extra:  # bytes after the body: the connection is not reusable
                    self._keep = False
        elif self._left is not None:
            if len(data) >= self._left:
                payload, self._left = data[: self._left], 0
                self._complete = True
            else:
                payload = data
                self._left -= len(data)
        else:
            payload = data  # read to close
        if self._inflate is not None and payload:
            payload = self._inflate.decompress(payload)
        if self._error_body is not None:
            self._error_body.append(payload)
            if self._complete or sum(map(len, self._error_body)) > ERROR_BODY_LIMIT:
                self._complete = True
                self._wake()
            return
        if payload:
            chunks = self._state.decoder.feed(payload, now)
            if chunks:
                self._chunks.extend(chunks)
                if self._per_chunk:
                    self._wake()
        if self._complete:
            self._wake()

    def _eof(self, exc: Exception | None) -> None:
        if self._complete or self._failure is not None:
            self._wake()
            return
        if self._head is None:
            cause = exc or ConnectionResetError(_NO_RESPONSE)
            error: Exception = httpx.RemoteProtocolError(_NO_RESPONSE)
            error.__cause__ = cause
            self._failure = error
        elif self._chunked is None and self._left is None:
            self._complete = True  # a body read to close ends here
        else:
            error = httpx.RemoteProtocolError(_CUT)
            error.__cause__ = exc
            self._failure = error
        self._wake()

    def _on_timer(self) -> None:
        self._timer = None
        read_s = self._read_s
        if read_s is None or self._finished:
            return
        loop = asyncio.get_running_loop()
        due_ns = self._last_ns + int(read_s * 1e9)
        now = time.perf_counter_ns()
        if now >= due_ns:
            self._fail(httpx.ReadTimeout(f"no data for {read_s:g} s"))
            return
        self._timer = loop.call_later((due_ns - now) / 1e9, self._on_timer)

    # ----------------------------------------------------------------- the reader's side

    @property
    def sent_ns(self) -> int:
        return self._state.sent_ns

    @property
    def headers_ns(self) -> int:
        return self._state.headers_ns

    @property
    def end(self) -> StreamEnd | None:
        return self._state.end

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    async def _send(self, conn: _Conn, payload: bytes) -> None:
        """Write the request on ``conn`` and wait for the response head."""
        self._conn = conn
        conn.exchange = self
        state = self._state
        if not state.sent_ns:
            state.sent_ns = time.perf_counter_ns()
        self._last_ns = time.perf_counter_ns()
        if self._read_s is not None and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._read_s, self._on_timer)
        assert conn.transport is not None
        if conn.closed or conn.transport.is_closing():
            self._failure = httpx.RemoteProtocolError(_NO_RESPONSE)
            return
        conn.transport.write(payload)
        while self._head is None and self._failure is None:
            await self._wait()

    async def __aenter__(self) -> Self:
        pool, state = self._pool, self._state
        payload = pool.request_bytes(state.path, orjson.dumps(state.body))
        pool.busy += 1
        try:
            conn = pool.acquire()
            fresh = conn is None
            try:
                await self._send(conn or await pool.connect(), payload)
                if self._failure is not None and not self._got_bytes and not fresh:
                    # A reused connection the server had closed: once more on a new one.
                    old = self._conn
                    if old is not None:
                        old.exchange = None
                        old.close()
                    self._failure = None
                    self._reset_head()
                    await self._send(await pool.connect(), payload)
                if self._failure is not None:
                    raise self._failure
            except httpx.HTTPError as exc:
                log_no_answer("POST", state.url, exc, state.sent_ns or time.perf_counter_ns())
                state.end = "error"
                raise translate_for(pool.core, exc, state.path) from None
            state.headers_ns = time.perf_counter_ns()
            if log.isEnabledFor(logging.DEBUG):
                assert self._head is not None
                log.debug(
                    "POST %s -> %d, headers after %.1f ms (lean)",
                    state.url,
                    self._head.status,
                    (state.headers_ns - state.sent_ns) / 1e6,
                )
            if self._error_body is not None:
                await self._answer_error()
        except BaseException:
            self._finish(keep=False)
            raise
        return self

    def _reset_head(self) -> None:
        self._head = None
        self._head_buf = b""
        self._chunked = None
        self._left = None
        self._inflate = None
        self._error_body = None
        self._complete = False

    async def _answer_error(self) -> None:
        """Read (the start of) a non-NDJSON answer and raise the error it means."""
        state, head = self._state, self._head
        assert head is not None and self._error_body is not None
        while not self._complete and self._failure is None:
            await self._wait()
        body = b"".join(self._error_body)
        state.end = "error"
        core = state.core
        core.check(head.status, head.as_httpx_headers(), body, state.path, state.model)
        raise core.not_ndjson(head.status, head.get("content-type") or "json", body, state.path)

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        assert self._head is not None, "use the stream as an async context manager"
        self._state.begin()
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamChunk]:
        state = self._state
        try:
            while True:
                if self._chunks:
                    chunks, self._chunks = self._chunks, []
                    for chunk in chunks:
                        yield chunk
                    continue
                if self._failure is not None:
                    raise self._failure
                if self._complete:
                    break
                await self._wait()
            for chunk in state.end_of_body():
                yield chunk
        except httpx.HTTPError as exc:
            error = translate_for(state.core, exc, state.path)
            state.failed(error)
            raise error from None
        except BaseException as exc:
            state.failed(exc)
            raise
        state.finished()

    async def read_into(self, chunks: list[StreamChunk]) -> None:
        """Append every chunk of the reply to ``chunks``, waking only when it has ended:
        ``async for`` without a wake-up per socket read (the load driver's path; each chunk
        keeps its arrival stamp). Raises as iteration would, after the chunks before it."""
        self._per_chunk = False
        async for chunk in self:
            chunks.append(chunk)

    def _finish(self, *, keep: bool) -> None:
        if self._finished:
            return
        self._finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pool, conn = self._pool, self._conn
        pool.busy -= 1
        if conn is None:
            return
        head = self._head
        reusable = (
            keep
            and self._keep
            and self._complete
            and self._failure is None
            and head is not None
            and head.keep_alive
            and (self._chunked is not None or self._left is not None)
        )
        if reusable:
            pool.release(conn)
        else:
            conn.exchange = None
            conn.close()

    async def aclose(self) -> None:
        state = self._state
        if self._head is not None and self._error_body is None:
            state.closing()
        self._finish(keep=True)

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["Head", "HeadError", "LeanPool", "LeanStream", "lean_usable"]
