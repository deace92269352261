"""The Ollama HTTP client: the only module that touches httpx, and where errors are translated.

Design
------
Two front ends share one core:

* :class:`OllamaClient` (sync) for the chat REPL and ``doctor``;
* :class:`AsyncOllamaClient` for the benchmark and ``chat --auto``, where many streams run at
  once and a per-model deadline must be exact (``asyncio.timeout``).

Both build requests with :class:`_Core` (auth headers, URLs, timeouts, TLS) and judge responses
with :func:`_raise_for_response`, so a 401 means the same thing everywhere. Transport exceptions
are translated once, in :func:`_translate`, into the tree in :mod:`ollamakit.errors`; nothing
above this module sees an httpx exception.

Streams are parsed by :class:`NDJSONDecoder`, which works on raw socket reads: each read is
stamped once with ``time.perf_counter_ns()`` (all chunks in one read arrived together), split on
``\\n`` and decoded with orjson. This keeps per-chunk cost around a microsecond, so parsing does
not distort the timings it produces (see ``bench/stream_intake.py``).

Credentials: the URL's userinfo becomes an ``Authorization: Basic`` header and never appears in
a request URL, a log line or an error message. Redirects are never followed: a redirected POST
turns into a GET, so a 3xx becomes an error naming the URL to use instead.
"""

from __future__ import annotations

import base64
import logging
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, cast

import httpx
import orjson

from ollamakit import __version__, _http11
from ollamakit.config import ServerURL, Settings
from ollamakit.errors import (
    AuthError,
    BadRequest,
    ConfigError,
    ConnectFailed,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    DNSFailure,
    ForbiddenError,
    GatewayError,
    HTTPError,
    MethodNotAllowed,
    ModelNotFound,
    NotFoundError,
    NotOllama,
    OllamaError,
    ReadTimeout,
    RedirectError,
    RequestTooLarge,
    ServerBusy,
    ServerError,
    StreamCut,
    StreamError,
    TLSMismatch,
    TLSVerifyFailed,
)
from ollamakit.i18n import t
from ollamakit.types import ChatChunk, GenerateChunk, Message, ModelEntry, Options, RunningModel

log = logging.getLogger("ollamakit.http")

USER_AGENT: Final = f"ollamakit/{__version__}"
_ERROR_BODY_LIMIT: Final = 64 * 1024


# --------------------------------------------------------------------------- stream decoding


class Chunk:
    """One streamed NDJSON object and the ``perf_counter_ns`` time its bytes arrived."""

    __slots__ = ("arrival_ns", "data")

    def __init__(self, data: dict[str, Any], arrival_ns: int) -> None:
        self.data = data
        self.arrival_ns = arrival_ns

    @property
    def content(self) -> str:
        """Answer text of this chunk (``response`` for generate, ``message.content`` for chat)."""
        data = self.data
        if "message" in data:
            return str(data["message"].get("content") or "")
        return str(data.get("response") or "")

    @property
    def thinking(self) -> str:
        data = self.data
        if "message" in data:
            return str(data["message"].get("thinking") or "")
        return str(data.get("thinking") or "")

    @property
    def done(self) -> bool:
        return bool(self.data.get("done"))

    def __repr__(self) -> str:
        return f"Chunk({self.data!r}, arrival_ns={self.arrival_ns})"


class NDJSONDecoder:
    """Incremental NDJSON decoder for Ollama streams.

    >>> d = NDJSONDecoder("http://h/api/generate")
    >>> [c.content for c in d.feed(b'{"response":"Hi","done":false}\\n{"resp', 1)]
    ['Hi']
    >>> [c.done for c in d.feed(b'onse":"","done":true}\\n', 2)]
    [True]
    >>> d.finish()
    []
    >>> NDJSONDecoder("u").feed(b'{"error":"boom"}\\n', 3)
    Traceback (most recent call last):
    ...
    ollamakit.errors.StreamError: The server failed in the middle of the reply: boom
    """

    __slots__ = ("_buffer", "_done", "_url", "count")

    def __init__(self, url: str) -> None:
        self._url = url
        self._buffer = b""
        self._done = False
        self.count = 0

    def feed(self, data: bytes, arrival_ns: int) -> list[Chunk]:
        if self._buffer:
            data = self._buffer + data
        lines = data.split(b"\n")
        self._buffer = lines.pop()
        out = []
        loads = orjson.loads
        for line in lines:
            if not line or line == b"\r":
                continue
            try:
                obj = loads(line)
            except orjson.JSONDecodeError:
                raise self._not_json(line) from None
            if not isinstance(obj, dict):
                raise self._not_json(line)
            if "error" in obj:
                raise StreamError(str(obj["error"]), url=self._url)
            if obj.get("done"):
                self._done = True
            out.append(Chunk(obj, arrival_ns))
        self.count += len(out)
        return out

    def finish(self) -> list[Chunk]:
        """Call at end of body: decodes a last unterminated line; raises if ``done`` never came."""
        rest = self._buffer.strip()
        self._buffer = b""
        out = self.feed(rest + b"\n", time.perf_counter_ns()) if rest else []
        if not self._done:
            raise StreamCut(t("client.no_done_line", count=self.count), url=self._url)
        return out

    def _not_json(self, line: bytes) -> NotOllama:
        return NotOllama(
            status=200,
            url=self._url,
            content_type="application/x-ndjson",
            first_line=_first_line(line),
        )


def _first_line(body: bytes, limit: int = 160) -> str:
    """The first meaningful line of a body, for quoting in an error message.

    >>> _first_line(b"<html><head><title>502 Bad Gateway</title></head>")
    '502 Bad Gateway'
    >>> _first_line(b"\\n\\n  Ollama is running  \\n")
    'Ollama is running'
    """
    text = body[:4096].decode("utf-8", "replace")
    title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line[:limit] + ("…" if len(line) > limit else "")
    return ""


# --------------------------------------------------------------------------- error translation


def _walk_causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _translate(
    exc: httpx.HTTPError, server: ServerURL, url: str, timeouts: httpx.Timeout
) -> Exception:
    """Map an httpx exception to an :class:`OllamaError` with a message and a fix."""
    params: dict[str, object] = {
        "url": url,
        "address": server.address,
        "host": server.host,
        "port": server.port,
        "origin": server.origin,
    }
    causes = list(_walk_causes(exc))
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectTimeout(detail, timeout_s=_fmt_s(timeouts.connect), **params)
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout):
        return ReadTimeout(detail, timeout_s=_fmt_s(timeouts.read), **params)
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or cause.reason or str(cause)
            return TLSVerifyFailed(str(reason), **params)
        if isinstance(cause, ssl.SSLError):
            text = str(cause)
            if any(s in text for s in ("WRONG_VERSION_NUMBER", "record layer", "wrong version")):
                return TLSMismatch(
                    text,
                    expected="TLS (https)",
                    suggestion=server.origin.replace("https://", "http://", 1),
                    **params,
                )
            return TLSVerifyFailed(text, **params)
        if isinstance(cause, socket.gaierror):
            return DNSFailure(cause.strerror or str(cause), **params)
        if isinstance(cause, ConnectionRefusedError):
            return ConnectionRefused(cause.strerror or str(cause), **params)
        if isinstance(cause, TimeoutError) and isinstance(exc, httpx.ConnectError):
            return ConnectTimeout(detail, timeout_s=_fmt_s(timeouts.connect), **params)
    if isinstance(exc, httpx.ConnectError):
        return ConnectFailed(detail, **params)
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in detail:
        # A plain-HTTP request to a TLS port: the TLS server drops the connection unanswered.
        # (Not "without sending complete message body": that is a body cut short, below.)
        if server.scheme == "http" and _speaks_tls(server.host, server.port):
            return TLSMismatch(
                detail,
                expected="plain HTTP (http)",
                suggestion=server.origin.replace("http://", "https://", 1),
                **params,
            )
        return ConnectionLost(detail, **params)
    if isinstance(exc, httpx.RemoteProtocolError):
        return StreamCut(detail, **params)
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.NetworkError):
        return ConnectionLost(detail, **params)
    return ConnectionLost(detail, **params)


def _speaks_tls(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether a TLS handshake succeeds at host:port (certificate not checked: only a probe)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            ctx.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def _fmt_s(value: float | None) -> str:
    return "∞" if value is None else f"{value:g}"


def _error_detail(body: bytes) -> str:
    """The ``error`` text of an Ollama error body, else the first line of whatever came."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _first_line(body)
    if isinstance(obj, dict) and "error" in obj:
        err = obj["error"]
        if isinstance(err, dict):  # OpenAI-style {"error": {"message": ...}}
            return str(err.get("message", err))
        return str(err)
    return _first_line(body)


def _raise_for_response(
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    server: ServerURL,
    path: str,
    model: str | None,
    has_credentials: bool,
) -> None:
    """Raise the error a non-2xx response means; return for 2xx."""
    if 200 <= status < 300:
        return
    url = server.url(path)
    detail = _error_detail(body)
    params: dict[str, object] = {
        "url": url,
        "address": server.address,
        "host": server.host,
        "port": server.port,
        "origin": server.origin,
    }
    if 300 <= status < 400:
        location = headers.get("location", "")
        raise RedirectError(
            detail,
            status=status,
            location=location,
            suggestion=_suggest_base(location, path, server),
            **params,
        )
    if status == 400 and "plain HTTP request was sent to HTTPS port" in body.decode(
        "utf-8", "replace"
    ):
        raise TLSMismatch(
            detail,
            expected="plain HTTP (http)",
            suggestion=server.origin.replace("http://", "https://", 1),
            status=status,
            **params,
        )
    if status == 400:
        raise BadRequest(detail, status=status, **params)
    if status == 401:
        realm = re.search(r'realm="([^"]*)"', headers.get("www-authenticate", ""))
        advice = t(
            "errors.auth_wrong_credentials" if has_credentials else "errors.auth_no_credentials"
        )
        raise AuthError(
            detail,
            realm=f' (realm "{realm.group(1)}")' if realm else "",
            auth_advice=advice,
            status=status,
            **params,
        )
    if status == 403:
        raise ForbiddenError(detail or "403", status=status, **params)
    if status == 404:
        if model is not None and "not found" in detail and "page not found" not in detail:
            raise ModelNotFound(detail, model=model, status=status, **params)
        raise NotFoundError(detail, status=status, **params)
    if status == 405:
        raise MethodNotAllowed(detail, status=status, **params)
    if status == 413:
        raise RequestTooLarge(detail, status=status, **params)
    if status in (429, 503):
        raise ServerBusy(detail, status=status, **params)
    if status in (502, 504):
        raise GatewayError(detail, status=status, **params)
    raise ServerError(detail, status=status, **params)


def _suggest_base(location: str, path: str, server: ServerURL) -> str:
    """The base URL a redirect points to, with the user's credentials redacted.

    >>> from ollamakit.config import parse_base_url
    >>> _suggest_base("https://h.example/api/tags", "/api/tags", parse_base_url("http://u:p@h.example"))
    'https://u:***@h.example'
    """
    target = location
    if target.endswith(path):
        target = target[: -len(path)]
    if "://" not in target:  # relative redirect
        target = server.origin + target
    target = target.rstrip("/")
    if server.username is not None and "@" not in target:
        scheme, _, rest = target.partition("://")
        user = server.redacted().split("://", 1)[1].split("@", 1)[0]
        target = f"{scheme}://{user}@{rest}"
    return target


# --------------------------------------------------------------------------- shared core


@dataclass(frozen=True, slots=True)
class Probe:
    """A raw response for diagnostics: nothing judged, only measured."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_ms: float
    http_version: str


class _Core:
    """What sync and async clients share: URLs, headers, TLS and timeouts."""

    def __init__(self, settings: Settings, read_timeout_s: float | None) -> None:
        self.settings = settings
        self.server = settings.base_url
        self.timeout = httpx.Timeout(
            connect=settings.connect_timeout_s,
            read=read_timeout_s,
            write=read_timeout_s,
            pool=read_timeout_s,
        )
        self.headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json, application/x-ndjson",
        }
        if self.server.has_credentials and settings.api_key:
            raise ConfigError(
                t("client.two_credentials"),
                key="OLLAMA_API_KEY",
                value="***",
                example="(empty)",
            )
        if self.server.has_credentials:
            token = f"{self.server.username}:{self.server.password or ''}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        elif settings.api_key:
            self.headers["Authorization"] = f"Bearer {settings.api_key}"

    @property
    def has_credentials(self) -> bool:
        return "Authorization" in self.headers

    def verify(self) -> ssl.SSLContext | bool:
        if self.server.scheme != "https":
            return True
        if self.settings.insecure:
            return False
        import certifi

        ctx = ssl.create_default_context(cafile=certifi.where())
        if self.settings.ca_bundle is not None:
            try:
                ctx.load_verify_locations(cafile=str(self.settings.ca_bundle))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    str(exc),
                    key="OLLAMA_CA_BUNDLE",
                    value=str(self.settings.ca_bundle),
                    example="./ca.pem",
                ) from None
        return ctx

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "headers": self.headers,
            "timeout": self.timeout,
            "verify": self.verify(),
            "follow_redirects": False,
            "trust_env": True,
        }

    def check(self, response: httpx.Response, body: bytes, path: str, model: str | None) -> None:
        log.debug(
            "%s %s -> %s", response.request.method, self.server.url(path), response.status_code
        )
        _raise_for_response(
            status=response.status_code,
            headers=response.headers,
            body=body,
            server=self.server,
            path=path,
            model=model,
            has_credentials=self.has_credentials,
        )

    def translate(self, exc: httpx.HTTPError, path: str) -> Exception:
        return _translate(exc, self.server, self.server.url(path), self.timeout)

    def decode_json(self, response: httpx.Response, body: bytes, path: str) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise NotOllama(
                status=response.status_code,
                url=self.server.url(path),
                content_type=response.headers.get("content-type", "?"),
                first_line=_first_line(body),
            ) from None

    def check_heartbeat(self, response: httpx.Response, body: bytes) -> str:
        text = body.decode("utf-8", "replace").strip()
        if "Ollama is running" not in text:
            raise NotOllama(
                status=response.status_code,
                url=self.server.url("/"),
                content_type=response.headers.get("content-type", "?"),
                first_line=_first_line(body),
            )
        return text


def _chat_body(
    model: str,
    messages: list[Message],
    options: Options | None,
    think: bool | str | None,
    keep_alive: str | float | None,
    stream: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
    if options:
        body["options"] = options
    if think is not None:
        body["think"] = think
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return body


def _generate_body(
    model: str,
    prompt: str,
    options: Options | None,
    think: bool | str | None,
    keep_alive: str | float | None,
    system: str | None,
    stream: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": stream}
    if system is not None:
        body["system"] = system
    if options:
        body["options"] = options
    if think is not None:
        body["think"] = think
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return body


# --------------------------------------------------------------------------- sync client


class ChunkStream:
    """A streamed reply: ``with client.stream_chat(...) as s: for chunk in s: ...``.

    ``sent_ns`` is taken just before the request is sent, ``headers_ns`` when the response
    head arrived; chunks carry their own ``arrival_ns``. Closing early aborts the request
    (the connection is dropped, which is how Ollama learns to stop generating).
    """

    def __init__(self, core: _Core, http: httpx.Client, path: str, body: dict[str, Any]) -> None:
        self._core = core
        self._http = http
        self._path = path
        self._body = body
        self._response: httpx.Response | None = None
        self.sent_ns = 0
        self.headers_ns = 0
        self.decoder_url = core.server.url(path)
        self.decoder = NDJSONDecoder(self.decoder_url)

    def __enter__(self) -> Self:
        core = self._core
        request = self._http.build_request(
            "POST",
            core.server.url(self._path),
            content=orjson.dumps(self._body),
            headers={"Content-Type": "application/json"},
        )
        self.sent_ns = time.perf_counter_ns()
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise core.translate(exc, self._path) from None
        self.headers_ns = time.perf_counter_ns()
        self._response = response
        if not 200 <= response.status_code < 300:
            try:
                body = _read_limited(response)
            except httpx.HTTPError:
                body = b""
            finally:
                response.close()
            core.check(response, body, self._path, self._body.get("model"))
        elif "json" not in response.headers.get("content-type", "json"):
            body = _read_limited(response)
            response.close()
            raise NotOllama(
                status=response.status_code,
                url=core.server.url(self._path),
                content_type=response.headers.get("content-type", "?"),
                first_line=_first_line(body),
            )
        return self

    def __iter__(self) -> Iterator[Chunk]:
        assert self._response is not None, "use ChunkStream as a context manager"
        decoder = self.decoder
        clock = time.perf_counter_ns
        raw = _http11.attach(self._response)
        try:
            if raw is None:
                for data in self._response.iter_bytes():
                    yield from decoder.feed(data, clock())
            else:
                # The fast path (see _http11): bytes that came with the headers arrived then.
                yield from decoder.feed(_unframe(raw, raw.leading, self), self.headers_ns)
                timeout = self._core.timeout.read
                while not raw.decoder.done:
                    try:
                        data = raw.network.read(_http11.READ_SIZE, timeout=timeout)
                    except Exception as exc:
                        raise _http11.as_httpx_error(exc) from exc
                    now = clock()
                    yield from decoder.feed(_unframe(raw, data, self), now)
                raw.release()
        except httpx.HTTPError as exc:
            raise self._core.translate(exc, self._path) from None
        yield from decoder.finish()

    def close(self) -> None:
        if self._response is not None:
            self._response.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _unframe(raw: _http11.RawBody, data: bytes, stream: ChunkStream | AsyncChunkStream) -> bytes:
    """Chunked payload of one raw read; end of data before the last frame is a cut stream."""
    if not data and not raw.decoder.done and data is not raw.leading:
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body"
        )
    try:
        return raw.decoder.feed(data)
    except _http11.ChunkedFramingError as exc:
        raise StreamCut(str(exc), url=stream.decoder_url) from None


def _read_limited(response: httpx.Response) -> bytes:
    body = b""
    for data in response.iter_raw():
        body += data
        if len(body) > _ERROR_BODY_LIMIT:
            break
    return body


class OllamaClient:
    """Synchronous client for one server; use as a context manager."""

    def __init__(self, settings: Settings, *, read_timeout_s: float | None = None) -> None:
        self._core = _Core(settings, read_timeout_s or settings.benchmark_timeout_s)
        self._http = httpx.Client(**self._core.client_kwargs())
        self.server = settings.base_url

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _get(
        self, path: str, *, method: str = "GET", json: Any = None, model: str | None = None
    ) -> tuple[httpx.Response, bytes]:
        try:
            response = self._http.request(method, self.server.url(path), json=json)
        except httpx.HTTPError as exc:
            raise self._core.translate(exc, path) from None
        self._core.check(response, response.content, path, model)
        return response, response.content

    def probe(self, method: str, path: str, *, json: Any = None) -> Probe:
        """Send one request and return what came back, judging nothing (for ``doctor``)."""
        start = time.perf_counter_ns()
        try:
            response = self._http.request(method, self.server.url(path), json=json)
        except httpx.HTTPError as exc:
            raise self._core.translate(exc, path) from None
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        return Probe(
            response.status_code,
            response.headers,
            response.content,
            elapsed_ms,
            response.http_version,
        )

    def raise_for(self, probe: Probe, path: str, model: str | None = None) -> None:
        """Judge a :class:`Probe` the way every other call is judged."""
        _raise_for_response(
            status=probe.status,
            headers=probe.headers,
            body=probe.body,
            server=self.server,
            path=path,
            model=model,
            has_credentials=self._core.has_credentials,
        )

    def heartbeat(self) -> str:
        """``GET /``: "Ollama is running", or :class:`NotOllama`."""
        response, body = self._get("/")
        return self._core.check_heartbeat(response, body)

    def version(self) -> str:
        response, body = self._get("/api/version")
        return str(self._core.decode_json(response, body, "/api/version").get("version", "?"))

    def list_models(self) -> list[ModelEntry]:
        response, body = self._get("/api/tags")
        data = self._core.decode_json(response, body, "/api/tags")
        return cast(list[ModelEntry], data.get("models") or [])

    def running_models(self) -> list[RunningModel]:
        response, body = self._get("/api/ps")
        data = self._core.decode_json(response, body, "/api/ps")
        return cast(list[RunningModel], data.get("models") or [])

    def show(self, model: str) -> dict[str, Any]:
        response, body = self._get("/api/show", method="POST", json={"model": model}, model=model)
        return cast(dict[str, Any], self._core.decode_json(response, body, "/api/show"))

    def stream_chat(
        self,
        model: str,
        messages: list[Message],
        *,
        options: Options | None = None,
        think: bool | str | None = None,
        keep_alive: str | float | None = None,
    ) -> ChunkStream:
        body = _chat_body(model, messages, options, think, keep_alive, stream=True)
        return ChunkStream(self._core, self._http, "/api/chat", body)

    def stream_generate(
        self,
        model: str,
        prompt: str,
        *,
        options: Options | None = None,
        think: bool | str | None = None,
        keep_alive: str | float | None = None,
        system: str | None = None,
    ) -> ChunkStream:
        body = _generate_body(model, prompt, options, think, keep_alive, system, stream=True)
        return ChunkStream(self._core, self._http, "/api/generate", body)

    def chat(
        self, model: str, messages: list[Message], *, options: Options | None = None
    ) -> ChatChunk:
        body = _chat_body(model, messages, options, None, None, stream=False)
        response, raw = self._get("/api/chat", method="POST", json=body, model=model)
        return cast(ChatChunk, self._core.decode_json(response, raw, "/api/chat"))

    def generate(
        self,
        model: str,
        prompt: str,
        *,
        options: Options | None = None,
        keep_alive: str | float | None = None,
    ) -> GenerateChunk:
        body = _generate_body(model, prompt, options, None, keep_alive, None, stream=False)
        response, raw = self._get("/api/generate", method="POST", json=body, model=model)
        return cast(GenerateChunk, self._core.decode_json(response, raw, "/api/generate"))


# --------------------------------------------------------------------------- async client


class AsyncChunkStream:
    """Async twin of :class:`ChunkStream`: ``async with ... as s: async for chunk in s``."""

    def __init__(
        self, core: _Core, http: httpx.AsyncClient, path: str, body: dict[str, Any]
    ) -> None:
        self._core = core
        self._http = http
        self._path = path
        self._body = body
        self._response: httpx.Response | None = None
        self.sent_ns = 0
        self.headers_ns = 0
        self.decoder_url = core.server.url(path)
        self.decoder = NDJSONDecoder(self.decoder_url)

    async def __aenter__(self) -> Self:
        core = self._core
        request = self._http.build_request(
            "POST",
            core.server.url(self._path),
            content=orjson.dumps(self._body),
            headers={"Content-Type": "application/json"},
        )
        self.sent_ns = time.perf_counter_ns()
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise core.translate(exc, self._path) from None
        self.headers_ns = time.perf_counter_ns()
        self._response = response
        if not 200 <= response.status_code < 300:
            body = b""
            try:
                async for data in response.aiter_raw():
                    body += data
                    if len(body) > _ERROR_BODY_LIMIT:
                        break
            except httpx.HTTPError:
                pass
            finally:
                await response.aclose()
            core.check(response, body, self._path, self._body.get("model"))
        elif "json" not in response.headers.get("content-type", "json"):
            body = b""
            async for data in response.aiter_raw():
                body += data
                if len(body) > _ERROR_BODY_LIMIT:
                    break
            await response.aclose()
            raise NotOllama(
                status=response.status_code,
                url=core.server.url(self._path),
                content_type=response.headers.get("content-type", "?"),
                first_line=_first_line(body),
            )
        return self

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        assert self._response is not None, "use AsyncChunkStream as an async context manager"
        decoder = self.decoder
        clock = time.perf_counter_ns
        raw = _http11.attach(self._response)
        try:
            if raw is None:
                async for data in self._response.aiter_bytes():
                    for chunk in decoder.feed(data, clock()):
                        yield chunk
            else:
                for chunk in decoder.feed(_unframe(raw, raw.leading, self), self.headers_ns):
                    yield chunk
                timeout = self._core.timeout.read
                while not raw.decoder.done:
                    try:
                        data = await raw.network.read(_http11.READ_SIZE, timeout=timeout)
                    except Exception as exc:
                        raise _http11.as_httpx_error(exc) from exc
                    now = clock()
                    for chunk in decoder.feed(_unframe(raw, data, self), now):
                        yield chunk
                raw.release()
        except httpx.HTTPError as exc:
            raise self._core.translate(exc, self._path) from None
        for chunk in decoder.finish():
            yield chunk

    async def aclose(self) -> None:
        if self._response is not None:
            await self._response.aclose()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncOllamaClient:
    """Asynchronous client for one server; ``async with AsyncOllamaClient(settings) as c``."""

    def __init__(
        self, settings: Settings, *, read_timeout_s: float | None = None, max_connections: int = 64
    ) -> None:
        self._core = _Core(settings, read_timeout_s or settings.benchmark_timeout_s)
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._http = httpx.AsyncClient(limits=limits, **self._core.client_kwargs())
        self.server = settings.base_url

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(
        self, path: str, *, method: str = "GET", json: Any = None, model: str | None = None
    ) -> tuple[httpx.Response, bytes]:
        try:
            response = await self._http.request(method, self.server.url(path), json=json)
        except httpx.HTTPError as exc:
            raise self._core.translate(exc, path) from None
        self._core.check(response, response.content, path, model)
        return response, response.content

    async def heartbeat(self) -> str:
        response, body = await self._get("/")
        return self._core.check_heartbeat(response, body)

    async def version(self) -> str:
        response, body = await self._get("/api/version")
        return str(self._core.decode_json(response, body, "/api/version").get("version", "?"))

    async def list_models(self) -> list[ModelEntry]:
        response, body = await self._get("/api/tags")
        data = self._core.decode_json(response, body, "/api/tags")
        return cast(list[ModelEntry], data.get("models") or [])

    async def rtt_ms(self, path: str = "/api/version") -> float:
        """Round-trip time of one small request, in milliseconds."""
        start = time.perf_counter_ns()
        await self._get(path)
        return (time.perf_counter_ns() - start) / 1e6

    def stream_chat(
        self,
        model: str,
        messages: list[Message],
        *,
        options: Options | None = None,
        think: bool | str | None = None,
        keep_alive: str | float | None = None,
    ) -> AsyncChunkStream:
        body = _chat_body(model, messages, options, think, keep_alive, stream=True)
        return AsyncChunkStream(self._core, self._http, "/api/chat", body)

    def stream_generate(
        self,
        model: str,
        prompt: str,
        *,
        options: Options | None = None,
        think: bool | str | None = None,
        keep_alive: str | float | None = None,
        system: str | None = None,
    ) -> AsyncChunkStream:
        body = _generate_body(model, prompt, options, think, keep_alive, system, stream=True)
        return AsyncChunkStream(self._core, self._http, "/api/generate", body)


__all__ = [
    "AsyncChunkStream",
    "AsyncOllamaClient",
    "Chunk",
    "ChunkStream",
    "HTTPError",
    "NDJSONDecoder",
    "OllamaClient",
    "OllamaError",
    "Probe",
]
