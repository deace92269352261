"""The fast stream path as an httpx transport (httpx's public extension point).

Why
---
Ollama flushes every token as its own HTTP chunk frame. Through httpcore and h11 each frame
becomes one event at about 11 µs in Python: a fast stream then tops out near 90,000 chunks/s
before a line is parsed, and under load the per-frame cost shows up as delay in the arrival
stamps the benchmark measures. This transport reads the socket in 64 KiB reads and undoes the
chunked framing with :class:`~ollamakit.client.chunked.ChunkedDecoder` (``bytes.find``, ~0.3 µs per
frame); a body delivered in one read is handed to the decoder in one piece.

How
---
* The socket is opened with httpcore's public network backends (``SyncBackend`` /
  ``AnyIOBackend``: ``connect_tcp``, ``start_tls``, ``read``, ``write``) and the request and
  the response head go through h11's public API (``Connection.send``, ``receive_data``,
  ``next_event``, ``trailing_data``). No private attribute of httpx, httpcore or h11 is used.
* A chunked response body is de-framed here; any other body (``Content-Length``, read to
  close) is read through h11's events. The bytes are yielded still content-encoded: httpx's
  ``Response`` decodes gzip and friends as usual.
* Connections are pooled per origin, so a warm-up request opens the connection the measured
  stream then uses. One is reused only after a complete body with keep-alive; an abandoned
  stream closes its connection (which is how Ollama learns to stop generating). A pooled
  connection found readable (the server closed it) is dropped; a request on a reused
  connection that got no byte back is retried once on a fresh one.
* Proxies never reach this transport: httpx mounts its own proxy transports for them (from
  the environment). Any scheme other than http/https goes to the ``fallback`` transport,
  httpx's own; ``fast=False`` on the clients uses that for everything (tests compare both).
* Errors are raised as the httpx exceptions httpx would raise, with the OS error as cause,
  so :func:`ollamakit.client.judge.translate` treats both paths alike.
* A request's total deadline (the ``ollamakit.deadline_ns`` extension, see
  :mod:`ollamakit.client.core`) cuts every wait (connect, write, each read of the head and
  the body) to the time left, and a read that would start after it raises ``ReadTimeout``:
  a trickling server cannot stretch a request past it.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Final

import h11
import httpcore
import httpx

from ollamakit.client.chunked import ChunkedDecoder, ChunkedFramingError

READ_SIZE: Final = 64 * 1024
_MAX_HEAD: Final = 100 * 1024
_NO_RESPONSE: Final = "Server disconnected without sending a response."
_CUT: Final = "peer closed connection without sending complete message body"

Origin = tuple[str, str, int]

_ERRORS: Final[tuple[tuple[type[Exception], type[httpx.TransportError]], ...]] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (h11.RemoteProtocolError, httpx.RemoteProtocolError),
    (h11.LocalProtocolError, httpx.LocalProtocolError),
    (ChunkedFramingError, httpx.RemoteProtocolError),
)


def as_httpx(exc: Exception, request: httpx.Request) -> Exception:
    """The httpx exception for a network or protocol error (the original stays the cause)."""
    for source, target in _ERRORS:
        if isinstance(exc, source):
            error = target(str(exc) or type(exc).__name__, request=request)
            error.__cause__ = exc
            return error
    return exc


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    value = request.extensions.get("timeout")
    return value if isinstance(value, dict) else {}


#: The extension :class:`ollamakit.client.core.Core` sets (``DEADLINE_EXTENSION`` there).
_DEADLINE: Final = "ollamakit.deadline_ns"


def _deadline_ns(request: httpx.Request) -> int | None:
    value = request.extensions.get(_DEADLINE)
    return value if isinstance(value, int) else None


class DeadlineReached(httpcore.ReadTimeout):
    """A wait was cut short by the request's total deadline (not a read timeout of its own):
    the cause of the ``httpx.ReadTimeout`` raised, so the client can tell the two apart."""


#: A wait cut by less than this is still the read timeout's own (the deadline started a
#: moment before the read): the message then says "sent nothing for N s".
_CUT_S: Final = 0.05


def _cut(timeout_s: float | None, wait: float | None) -> bool:
    return wait is not None and (timeout_s is None or wait < timeout_s - _CUT_S)


def _read(sock: httpcore.NetworkStream, read_s: float | None, end_ns: int | None) -> bytes:
    """One read of at most :data:`READ_SIZE`, waiting until the deadline at the latest."""
    if end_ns is None:
        return sock.read(READ_SIZE, read_s)
    wait = _wait(read_s, end_ns)
    try:
        return sock.read(READ_SIZE, wait)
    except httpcore.ReadTimeout:
        if _cut(read_s, wait):
            raise DeadlineReached(_PASSED) from None
        raise


async def _aread(
    sock: httpcore.AsyncNetworkStream, read_s: float | None, end_ns: int | None
) -> bytes:
    """Async twin of :func:`_read`."""
    if end_ns is None:
        return await sock.read(READ_SIZE, read_s)
    wait = _wait(read_s, end_ns)
    try:
        return await sock.read(READ_SIZE, wait)
    except httpcore.ReadTimeout:
        if _cut(read_s, wait):
            raise DeadlineReached(_PASSED) from None
        raise


_PASSED: Final = "the request's total deadline passed"


def _wait(timeout_s: float | None, end_ns: int | None) -> float | None:
    """The timeout of the next wait: ``timeout_s`` cut to the time left before ``end_ns``.

    >>> _wait(5.0, None), _wait(None, None)
    (5.0, None)
    >>> 0 < _wait(5.0, time.perf_counter_ns() + 10**9) <= 1.0
    True
    >>> _wait(5.0, 0)
    Traceback (most recent call last):
    ...
    ollamakit.client.transport.DeadlineReached: the request's total deadline passed
    """
    if end_ns is None:
        return timeout_s
    left = (end_ns - time.perf_counter_ns()) / 1e9
    if left <= 0:  # (a timeout of 0 would make the socket non-blocking, not wait)
        raise DeadlineReached(_PASSED)
    return left if timeout_s is None else min(timeout_s, left)


def tls_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """The context for https: the client's trust context, or an unverifying one (--insecure)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _LazyTLS:
    """The TLS context, built on the first https connection: building one loads the trust
    store (~0.1 s), which a client of an http:// server never needs."""

    __slots__ = ("_context", "_lock", "_verify")

    def __init__(self, verify: ssl.SSLContext | bool) -> None:
        self._verify = verify
        self._context: ssl.SSLContext | None = (
            verify if isinstance(verify, ssl.SSLContext) else None
        )
        self._lock = threading.Lock()

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._context = tls_context(self._verify)
        return self._context


class Exchange:
    """The sans-I/O part of one request/response on a connection (h11 for request and head)."""

    __slots__ = ("conn", "decoder", "got_bytes", "request", "response_head")

    def __init__(self, request: httpx.Request) -> None:
        self.request = request
        self.conn = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self.response_head: h11.Response | None = None
        self.decoder: ChunkedDecoder | None = None
        self.got_bytes = False

    def request_bytes(self, body: bytes) -> bytes:
        request = self.request
        headers = list(request.headers.raw)
        out = self.conn.send(
            h11.Request(method=request.method, target=request.url.raw_path, headers=headers)
        )
        if body:
            out += self.conn.send(h11.Data(data=body))
        out += self.conn.send(h11.EndOfMessage())
        return out

    def feed_head(self, data: bytes) -> h11.Response | None:
        """Feed bytes until the response head is complete; returns it then."""
        if not data:  # EOF before a complete head
            raise h11.RemoteProtocolError(_NO_RESPONSE)
        self.got_bytes = True
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                self.response_head = event
                if _is_chunked(event) and self.request.method != "HEAD":
                    self.decoder = ChunkedDecoder()
                return event
            if isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError(_NO_RESPONSE)
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")

    def leading(self) -> bytes:
        """Body bytes that came with the head (h11's public ``trailing_data``)."""
        return self.conn.trailing_data[0]

    def h11_body(self, data: bytes | None) -> tuple[list[bytes], bool]:
        """Body pieces h11 decodes from ``data`` (None: only what it already holds), and
        whether the body is complete."""
        if data is not None:
            self.conn.receive_data(data)
        out: list[bytes] = []
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError:
                if data == b"":
                    raise h11.RemoteProtocolError(_CUT) from None
                raise
            if event is h11.NEED_DATA:
                if data == b"":
                    raise h11.RemoteProtocolError(_CUT)
                return out, False
            if isinstance(event, h11.Data):
                out.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return out, True
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError(_CUT)

    def reusable(self, complete: bool) -> bool:
        head = self.response_head
        if not complete or head is None or head.http_version != b"1.1":
            return False
        if any(n == b"connection" and b"close" in v.lower() for n, v in head.headers):
            return False
        if self.decoder is not None:
            return self.decoder.done and not self.decoder.extra
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE

    def response(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> httpx.Response:
        head = self.response_head
        assert head is not None
        return httpx.Response(
            head.status_code,
            headers=list(head.headers),
            stream=stream,
            request=self.request,
            extensions={
                "http_version": b"HTTP/" + head.http_version,
                "reason_phrase": head.reason,
            },
        )


def _is_chunked(head: h11.Response) -> bool:
    for name, value in head.headers:
        if name == b"transfer-encoding":
            return value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
    return False


def _origin(url: httpx.URL) -> Origin:
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.host, port)


# --------------------------------------------------------------------------- sync


class _Body(httpx.SyncByteStream):
    def __init__(
        self,
        owner: FastTransport,
        origin: Origin,
        sock: httpcore.NetworkStream,
        exchange: Exchange,
        read_s: float | None,
        end_ns: int | None,
    ) -> None:
        self._owner, self._origin, self._sock = owner, origin, sock
        self._exchange, self._read_s, self._end_ns = exchange, read_s, end_ns
        self._complete = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        exchange, sock, read_s, end_ns = self._exchange, self._sock, self._read_s, self._end_ns
        decoder = exchange.decoder
        try:
            if decoder is not None:
                first = decoder.feed(exchange.leading())
                if first:
                    yield first
                while not decoder.done:
                    data = _read(sock, read_s, end_ns)
                    if not data:
                        raise h11.RemoteProtocolError(_CUT)
                    payload = decoder.feed(data)
                    if payload:
                        yield payload
                self._complete = True
            else:
                pieces, done = exchange.h11_body(None)
                yield from pieces
                while not done:
                    data = _read(sock, read_s, end_ns)
                    pieces, done = exchange.h11_body(data)
                    yield from pieces
                self._complete = True
        except Exception as exc:
            raise as_httpx(exc, exchange.request) from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._exchange.reusable(self._complete):
            self._owner._release(self._origin, self._sock)
        else:
            self._sock.close()


class FastTransport(httpx.BaseTransport):
    """HTTP/1.1 over httpcore's public sync network backend; see the module docstring."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool,
        fallback: Callable[[], httpx.BaseTransport],
        max_idle: int = 16,
    ) -> None:
        """``fallback`` builds httpx's own transport when a request needs it (never, for
        http and https): building one costs an SSL context, ~0.1 s."""
        self._backend = httpcore.SyncBackend()
        self._tls = _LazyTLS(verify)
        self._make_fallback = fallback
        self._fallback: httpx.BaseTransport | None = None
        self._idle: dict[Origin, list[httpcore.NetworkStream]] = {}
        self._lock = threading.Lock()
        self._max_idle = max_idle

    @property
    def idle_connections(self) -> int:
        """Open connections waiting in the pool for the next request."""
        with self._lock:
            return sum(len(socks) for socks in self._idle.values())

    def _acquire(self, origin: Origin) -> httpcore.NetworkStream | None:
        with self._lock:
            idle = self._idle.get(origin, [])
            while idle:
                sock = idle.pop()
                if not sock.get_extra_info("is_readable"):
                    return sock
                sock.close()
        return None

    def _release(self, origin: Origin, sock: httpcore.NetworkStream) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self._max_idle:
                idle.append(sock)
                return
        sock.close()

    def _connect(
        self, origin: Origin, timeouts: dict[str, float | None], end_ns: int | None
    ) -> httpcore.NetworkStream:
        scheme, host, port = origin
        connect_s = timeouts.get("connect")
        sock = self._backend.connect_tcp(host, port, timeout=_wait(connect_s, end_ns))
        if scheme == "https":
            try:
                sock = sock.start_tls(
                    self._tls.context(), server_hostname=host, timeout=_wait(connect_s, end_ns)
                )
            except Exception:
                sock.close()
                raise
        return sock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            with self._lock:
                if self._fallback is None:
                    self._fallback = self._make_fallback()
            return self._fallback.handle_request(request)
        origin = _origin(request.url)
        timeouts = _timeouts(request)
        end_ns = _deadline_ns(request)
        body = request.read()
        try:
            reused = self._acquire(origin)
            try:
                sock = reused or self._connect(origin, timeouts, end_ns)
                return self._send(
                    origin, sock, request, body, timeouts, end_ns, fresh=reused is None
                )
            except _Retry:
                sock = self._connect(origin, timeouts, end_ns)
                return self._send(origin, sock, request, body, timeouts, end_ns, fresh=True)
        except Exception as exc:
            raise as_httpx(exc, request) from exc

    def _send(
        self,
        origin: Origin,
        sock: httpcore.NetworkStream,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
        end_ns: int | None,
        *,
        fresh: bool,
    ) -> httpx.Response:
        exchange = Exchange(request)
        read_s = timeouts.get("read")
        try:
            sock.write(exchange.request_bytes(body), _wait(timeouts.get("write"), end_ns))
            head = None
            while head is None:
                head = exchange.feed_head(_read(sock, read_s, end_ns))
        except BaseException as exc:
            sock.close()
            retry = isinstance(exc, h11.RemoteProtocolError | OSError | httpcore.NetworkError)
            if retry and not exchange.got_bytes and not fresh:
                raise _Retry from exc
            raise
        return exchange.response(_Body(self, origin, sock, exchange, read_s, end_ns))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for socks in idle.values():
            for sock in socks:
                sock.close()
        if self._fallback is not None:
            self._fallback.close()


class _Retry(Exception):
    """A reused connection was closed by the server before answering: try a fresh one."""


# --------------------------------------------------------------------------- async


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(
        self,
        owner: AsyncFastTransport,
        origin: Origin,
        sock: httpcore.AsyncNetworkStream,
        exchange: Exchange,
        read_s: float | None,
        end_ns: int | None,
    ) -> None:
        self._owner, self._origin, self._sock = owner, origin, sock
        self._exchange, self._read_s, self._end_ns = exchange, read_s, end_ns
        self._complete = False
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        exchange, sock, read_s, end_ns = self._exchange, self._sock, self._read_s, self._end_ns
        decoder = exchange.decoder
        try:
            if decoder is not None:
                first = decoder.feed(exchange.leading())
                if first:
                    yield first
                while not decoder.done:
                    data = await _aread(sock, read_s, end_ns)
                    if not data:
                        raise h11.RemoteProtocolError(_CUT)
                    payload = decoder.feed(data)
                    if payload:
                        yield payload
                self._complete = True
            else:
                pieces, done = exchange.h11_body(None)
                for piece in pieces:
                    yield piece
                while not done:
                    data = await _aread(sock, read_s, end_ns)
                    pieces, done = exchange.h11_body(data)
                    for piece in pieces:
                        yield piece
                self._complete = True
        except Exception as exc:
            raise as_httpx(exc, exchange.request) from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._exchange.reusable(self._complete):
            await self._owner._release(self._origin, self._sock)
        else:
            await self._sock.aclose()


class AsyncFastTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`FastTransport`, over httpcore's ``AnyIOBackend``."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool,
        fallback: Callable[[], httpx.AsyncBaseTransport],
        max_idle: int = 64,
    ) -> None:
        self._backend = httpcore.AnyIOBackend()
        self._tls = _LazyTLS(verify)
        self._make_fallback = fallback
        self._fallback: httpx.AsyncBaseTransport | None = None
        self._idle: dict[Origin, list[httpcore.AsyncNetworkStream]] = {}
        self._max_idle = max_idle

    @property
    def idle_connections(self) -> int:
        """Open connections waiting in the pool for the next request."""
        return sum(len(socks) for socks in self._idle.values())

    async def _acquire(self, origin: Origin) -> httpcore.AsyncNetworkStream | None:
        idle = self._idle.get(origin, [])
        while idle:
            sock = idle.pop()
            if not sock.get_extra_info("is_readable"):
                return sock
            await sock.aclose()
        return None

    async def _release(self, origin: Origin, sock: httpcore.AsyncNetworkStream) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) < self._max_idle:
            idle.append(sock)
        else:
            await sock.aclose()

    async def _connect(
        self, origin: Origin, timeouts: dict[str, float | None], end_ns: int | None
    ) -> httpcore.AsyncNetworkStream:
        scheme, host, port = origin
        connect_s = timeouts.get("connect")
        sock = await self._backend.connect_tcp(host, port, timeout=_wait(connect_s, end_ns))
        if scheme == "https":
            try:
                sock = await sock.start_tls(
                    self._tls.context(), server_hostname=host, timeout=_wait(connect_s, end_ns)
                )
            except BaseException:
                await sock.aclose()
                raise
        return sock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            if self._fallback is None:
                self._fallback = self._make_fallback()
            return await self._fallback.handle_async_request(request)
        origin = _origin(request.url)
        timeouts = _timeouts(request)
        end_ns = _deadline_ns(request)
        body = await request.aread()
        try:
            reused = await self._acquire(origin)
            try:
                sock = reused or await self._connect(origin, timeouts, end_ns)
                return await self._send(
                    origin, sock, request, body, timeouts, end_ns, fresh=reused is None
                )
            except _Retry:
                sock = await self._connect(origin, timeouts, end_ns)
                return await self._send(origin, sock, request, body, timeouts, end_ns, fresh=True)
        except Exception as exc:
            raise as_httpx(exc, request) from exc

    async def _send(
        self,
        origin: Origin,
        sock: httpcore.AsyncNetworkStream,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
        end_ns: int | None,
        *,
        fresh: bool,
    ) -> httpx.Response:
        exchange = Exchange(request)
        read_s = timeouts.get("read")
        try:
            await sock.write(exchange.request_bytes(body), _wait(timeouts.get("write"), end_ns))
            head = None
            while head is None:
                head = exchange.feed_head(await _aread(sock, read_s, end_ns))
        except BaseException as exc:
            await sock.aclose()
            retry = isinstance(exc, h11.RemoteProtocolError | OSError | httpcore.NetworkError)
            if retry and not exchange.got_bytes and not fresh:
                raise _Retry from exc
            raise
        return exchange.response(_AsyncBody(self, origin, sock, exchange, read_s, end_ns))

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for socks in idle.values():
            for sock in socks:
                await sock.aclose()
        if self._fallback is not None:
            await self._fallback.aclose()
