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
import ipaddress
import logging
import re
import shlex
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self, cast

import httpx
import orjson

from ollamakit import __version__, _http11
from ollamakit.config import ServerURL, Settings
from ollamakit.domain import FinalStats, StreamChunk
from ollamakit.errors import (
    AuthError,
    BadChunk,
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
    Items,
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

#: A duration above this (ns) is not a real figure: ~31 years. Such a value becomes None.
_MAX_DURATION_NS: Final = 10**18
#: A token count above this is not a real figure (no context holds a billion tokens).
_MAX_COUNT: Final = 10**9

Chunk = StreamChunk  # the name callers typed against before the domain values existed


def _duration_ms(value: object) -> float | None:
    """A Go duration (int ns) in ms; None when absent, not an integer, negative or absurd.

    >>> _duration_ms(4535599000), _duration_ms(-1), _duration_ms(1.5), _duration_ms(10**19)
    (4535.599, None, None, None)
    """
    if value.__class__ is not int or not 0 <= value <= _MAX_DURATION_NS:
        return None
    return value / 1e6


def _count(value: object) -> int | None:
    """A token count; None when absent, not an integer, negative or absurd.

    >>> _count(26), _count(True), _count(-3), _count(10**12), _count("7")
    (26, None, None, None, None)
    """
    if value.__class__ is not int or not 0 <= value <= _MAX_COUNT:
        return None
    return value


def final_stats(obj: Mapping[str, Any]) -> FinalStats:
    """The server's figures of a final (``done: true``) wire object, validated, ns → ms.

    >>> final_stats({"done_reason": "stop", "eval_count": 4, "eval_duration": 40_000_000})
    FinalStats(done_reason='stop', total_ms=None, load_ms=None, prompt_eval_count=None, \
prompt_eval_ms=None, prompt_cached_count=None, eval_count=4, eval_ms=40.0)
    """
    reason = obj.get("done_reason")
    return FinalStats(
        done_reason=reason if isinstance(reason, str) and reason else None,
        total_ms=_duration_ms(obj.get("total_duration")),
        load_ms=_duration_ms(obj.get("load_duration")),
        prompt_eval_count=_count(obj.get("prompt_eval_count")),
        prompt_eval_ms=_duration_ms(obj.get("prompt_eval_duration")),
        eval_count=_count(obj.get("eval_count")),
        eval_ms=_duration_ms(obj.get("eval_duration")),
    )


_CREATED_AT: Final = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


class _CreatedAtParser:
    """``created_at`` (RFC 3339, up to ns) → ns since the epoch, cheap on a stream.

    Consecutive chunks share the whole-second part, so the last one is cached and only the
    fraction is parsed per chunk.

    >>> p = _CreatedAtParser()
    >>> p("2025-10-26T17:21:21.196249Z") - p("2025-10-26T17:21:21Z")
    196249000
    >>> p("2023-08-04T08:52:19.385406455-07:00") == p("2023-08-04T15:52:19.385406455Z")
    True
    >>> p("yesterday") is None, p(None) is None
    (True, True)
    """

    __slots__ = ("_key", "_seconds")

    def __init__(self) -> None:
        self._key = ""
        self._seconds = 0

    def __call__(self, text: object) -> int | None:
        if text.__class__ is not str:
            return None
        match = _CREATED_AT.match(text)
        if match is None:
            return None
        base, fraction, zone = match.groups()
        key = base + zone
        if key != self._key:
            try:
                moment = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
            except ValueError:
                return None
            self._key, self._seconds = key, int(moment.timestamp())
        nanos = int(fraction.ljust(9, "0")) if fraction else 0
        return self._seconds * 1_000_000_000 + nanos


class NDJSONDecoder:
    """Incremental NDJSON decoder for Ollama streams: wire lines in, :class:`StreamChunk` out.

    Every field is checked at this boundary: a line that is not a JSON object, a ``message``
    that is not an object, text that is not a string or a ``done`` that is not a boolean raise
    :class:`BadChunk`; a figure that cannot be right (negative, absurd, wrong type) becomes
    ``None``. Nothing above the client sees a raw dict.

    >>> d = NDJSONDecoder("http://h/api/generate")
    >>> [c.content for c in d.feed(b'{"response":"Hi","done":false}\\n{"resp', 1)]
    ['Hi']
    >>> [(c.content, c.done) for c in d.feed(b'onse":"!","done":true}\\n', 2)]
    [('!', True)]
    >>> d.finish()
    []
    >>> NDJSONDecoder("u").feed(b'{"error":"boom"}\\n', 3)
    Traceback (most recent call last):
    ...
    ollamakit.errors.StreamError: The server failed in the middle of the reply: boom
    >>> NDJSONDecoder("u").feed(b'{"message":"hi","done":false}\\n', 3)
    Traceback (most recent call last):
    ...
    ollamakit.errors.BadChunk: Unexpected answer from u: "message" is a str, not an object
    """

    __slots__ = ("_buffer", "_created", "_done", "_url", "count")

    def __init__(self, url: str) -> None:
        self._url = url
        self._buffer = b""
        self._done = False
        self._created = _CreatedAtParser()
        self.count = 0

    def feed(self, data: bytes, arrival_ns: int) -> list[StreamChunk]:
        if self._buffer:
            data = self._buffer + data
        lines = data.split(b"\n")
        self._buffer = lines.pop()
        out = []
        loads = orjson.loads
        created = self._created
        for line in lines:
            if not line or line == b"\r":
                continue
            try:
                obj = loads(line)
            except orjson.JSONDecodeError:
                raise self._not_json(line) from None
            if obj.__class__ is not dict:
                raise self._not_json(line)
            get = obj.get
            if "error" in obj:
                raise StreamError(str(obj["error"]), url=self._url)
            message = get("message")
            if message.__class__ is dict:
                content = message.get("content", "")
                thinking = message.get("thinking", "")
            elif message is None and "message" not in obj:
                content = get("response", "")
                thinking = get("thinking", "")
            else:
                raise self._bad(f'"message" is a {type(message).__name__}, not an object')
            if content.__class__ is not str:
                if content is not None:
                    raise self._bad(f'"content" is a {type(content).__name__}, not a string')
                content = ""
            if thinking.__class__ is not str:
                if thinking is not None:
                    raise self._bad(f'"thinking" is a {type(thinking).__name__}, not a string')
                thinking = ""
            done = get("done", False)
            if done is True:
                self._done = True
                final: FinalStats | None = final_stats(obj)
            elif done is False:
                final = None
            else:
                raise self._bad(f'"done" is {done!r}, not true or false')
            out.append(
                StreamChunk(arrival_ns, content, thinking, final, created(get("created_at")))
            )
        self.count += len(out)
        return out

    @property
    def complete(self) -> bool:
        """Whether the ``"done": true`` line has arrived."""
        return self._done

    def finish(self) -> list[StreamChunk]:
        """Call at end of body: decodes a last unterminated line; raises if ``done`` never came."""
        rest = self._buffer.strip()
        self._buffer = b""
        out = self.feed(rest + b"\n", time.perf_counter_ns()) if rest else []
        if not self._done:
            raise StreamCut(t("client.no_done_line", count=self.count), url=self._url)
        return out

    def _bad(self, what: str) -> BadChunk:
        return BadChunk(what, url=self._url)

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
    exc: httpx.HTTPError,
    server: ServerURL,
    url: str,
    timeouts: httpx.Timeout,
    *,
    trust: str | None = None,
) -> Exception:
    """Map an httpx exception to an :class:`OllamaError` with a message and a fix.

    ``trust`` names the CAs the client trusts (:func:`trust_label`), for a certificate error.
    """
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
            probe_s = min(timeouts.connect or CERT_PROBE_TIMEOUT_S, CERT_PROBE_TIMEOUT_S)
            cert = fetch_certificate(server.host, server.port, probe_s)
            return tls_verify_error(cause, cert, trust or trust_label(None), **params)
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


# --------------------------------------------------------------------------- certificates

CERT_PROBE_TIMEOUT_S: Final = 3.0


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What a message needs from a certificate: names, issuer, validity."""

    subject: str  # "CN=x, O=y"
    issuer: str
    not_before: datetime | None
    not_after: datetime | None
    names: tuple[str, ...]  # subjectAltName: DNS names and IP addresses


_NAME_OIDS: Final = {b"\x55\x04\x03": "CN", b"\x55\x04\x0a": "O", b"\x55\x04\x0b": "OU"}
_SAN_OID: Final = b"\x55\x1d\x11"


def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """One DER element at ``pos``: (tag, start of content, end of content)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    children = []
    while start < end:
        child = _der(data, start)
        children.append(child)
        start = child[2]
    return children


def _der_string(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", "replace")
    return raw.decode("utf-8", "replace")


def _der_name(data: bytes, start: int, end: int) -> str:
    """``CN=x, O=y`` from a DER Name (only CN, O and OU: what identifies a CA to a person)."""
    parts = []
    for _, set_start, set_end in _der_children(data, start, end):
        for _, seq_start, seq_end in _der_children(data, set_start, set_end):
            (_, oid_start, oid_end), (tag, v_start, v_end) = _der_children(
                data, seq_start, seq_end
            )[:2]
            short = _NAME_OIDS.get(data[oid_start:oid_end])
            if short:
                parts.append(f"{short}={_der_string(tag, data[v_start:v_end])}")
    return ", ".join(parts) or "?"


def _der_time(tag: int, raw: bytes) -> datetime | None:
    text = raw.decode("ascii", "replace").rstrip("Z")
    try:
        if tag == 0x17:  # UTCTime: YYMMDDHHMMSS
            moment = datetime.strptime(text, "%y%m%d%H%M%S")
        else:  # GeneralizedTime: YYYYMMDDHHMMSS
            moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC)


def parse_certificate(der: bytes) -> CertificateInfo:
    """The parts of a DER certificate that messages name (no verification: only reading).

    ``ssl`` parses a certificate only once it verified, and the point here is to say why one
    did not, so this reads the few fields needed from the DER itself.
    """
    cert_start = _der(der, 0)[1]
    _, tbs_start, tbs_end = _der(der, cert_start)
    fields = _der_children(der, tbs_start, tbs_end)
    if fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
    issuer = _der_name(der, fields[2][1], fields[2][2])
    validity = _der_children(der, fields[3][1], fields[3][2])
    not_before, not_after = (_der_time(tag, der[a:b]) for tag, a, b in validity[:2])
    subject = _der_name(der, fields[4][1], fields[4][2])
    names: list[str] = []
    for tag, start, end in fields[6:]:
        if tag != 0xA3:  # [3] extensions
            continue
        (_, ext_start, ext_end), *_ = _der_children(der, start, end)
        for _, e_start, e_end in _der_children(der, ext_start, ext_end):
            parts = _der_children(der, e_start, e_end)
            if der[parts[0][1] : parts[0][2]] != _SAN_OID:
                continue
            o_start = parts[-1][1]  # extnValue: an OCTET STRING holding GeneralNames
            _, g_start, g_end = _der(der, o_start)
            for g_tag, n_start, n_end in _der_children(der, g_start, g_end):
                value = der[n_start:n_end]
                if g_tag == 0x82:  # dNSName
                    names.append(value.decode("ascii", "replace"))
                elif g_tag == 0x87 and len(value) in (4, 16):  # iPAddress
                    names.append(str(ipaddress.ip_address(value)))
    return CertificateInfo(subject, issuer, not_before, not_after, tuple(names))


def fetch_certificate(host: str, port: int, timeout_s: float) -> CertificateInfo | None:
    """The certificate a TLS server shows, read without verifying it (None if that fails)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            ctx.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    if not der:
        return None
    try:
        return parse_certificate(der)
    except (ValueError, IndexError):
        return None


def trust_label(settings: Settings | None) -> str:
    """The CAs the client trusts, in words: ``public CAs`` or ``public CAs + ca.pem``."""
    label = t("errors.tls_trust_public")
    if settings is not None and settings.ca_bundle is not None:
        label += f" + {settings.ca_bundle.name}"
    return label


# OpenSSL's X509_V_ERR_* codes that have a plain-words explanation.
_UNTRUSTED_ISSUER: Final = frozenset({2, 19, 20, 21})  # no trusted CA issued it
_SELF_SIGNED: Final = 18
_EXPIRED: Final = 10
_NOT_YET_VALID: Final = 9
_NAME_MISMATCH: Final = frozenset({62, 64})  # host name, IP address


def tls_verify_error(
    exc: ssl.SSLCertVerificationError,
    cert: CertificateInfo | None,
    trust: str,
    **params: object,
) -> TLSVerifyFailed:
    """A :class:`TLSVerifyFailed` that says in words what is wrong with the certificate.

    OpenSSL's reason ("unable to get local issuer certificate") stays, in brackets, for
    searching; the sentence before it names the issuer, the dates or the names instead.
    """
    reason = str(exc.verify_message or exc.reason or exc)
    code = exc.verify_code
    words: dict[str, object] = {"reason": reason, "trust": trust}
    explain, problem = None, "trust"
    if cert is not None:
        words.update(subject=cert.subject, issuer=cert.issuer)
        if code in _UNTRUSTED_ISSUER:
            explain = "errors.tls_untrusted_issuer"
        elif code == _SELF_SIGNED:
            explain = "errors.tls_self_signed"
        elif code == _EXPIRED and cert.not_after is not None:
            explain, problem = "errors.tls_expired", "date"
            words["date"] = f"{cert.not_after:%Y-%m-%d}"
        elif code == _NOT_YET_VALID and cert.not_before is not None:
            explain, problem = "errors.tls_not_yet_valid", "date"
            words["date"] = f"{cert.not_before:%Y-%m-%d}"
        elif code in _NAME_MISMATCH:
            explain, problem = "errors.tls_wrong_name", "name"
            words["names"] = Items(cert.names or (cert.subject,))
    return TLSVerifyFailed(reason, explain=explain, problem=problem, **words, **params)


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
    settings: Settings,
    path: str,
    model: str | None,
) -> None:
    """Raise the error a non-2xx response means; return for 2xx."""
    if 200 <= status < 300:
        return
    server = settings.base_url
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
            password_note=t("errors.redirect_password_note") if server.password else "",
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
        raise AuthError(
            detail,
            realm=t("errors.auth_realm", name=realm.group(1)) if realm else "",
            auth_advice=_auth_advice(settings),
            curl=curl_command(settings),
            curl_note="" if settings.api_key else t("errors.auth_curl_prompts"),
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


def _auth_advice(settings: Settings) -> str:
    """What a 401 means given what was sent: no login, a rejected password, a rejected key."""
    server = settings.base_url
    if server.has_credentials:
        return t(
            "errors.auth_wrong_password",
            user=server.username,
            source=settings.setting_origin("OLLAMA_BASE_URL"),
        )
    if settings.api_key:
        return t("errors.auth_wrong_key", source=settings.setting_origin("OLLAMA_API_KEY"))
    return t("errors.auth_no_credentials")


def curl_command(settings: Settings, path: str = "/api/tags") -> str:
    """A curl command line that makes the same request with the same trust and login.

    Never the password: ``-u USER`` makes curl ask for it (which keeps it out of the shell
    history), and an API key is referred to as ``$OLLAMA_API_KEY``.

    >>> from pathlib import Path
    >>> from ollamakit.config import parse_base_url
    >>> curl_command(Settings(parse_base_url("https://ollama-user:pw@h.example")))
    'curl -u ollama-user https://h.example/api/tags'
    >>> curl_command(Settings(parse_base_url("https://h.example"), ca_bundle=Path("/etc/ca.pem"),
    ...                       api_key="k"))
    'curl --cacert /etc/ca.pem -H "Authorization: Bearer $OLLAMA_API_KEY" https://h.example/api/tags'
    """
    server = settings.base_url
    words = ["curl"]
    if server.scheme == "https":
        if settings.ca_bundle is not None:
            words += ["--cacert", shlex.quote(str(settings.ca_bundle))]
        if settings.insecure:
            words.append("-k")
    if server.username is not None:
        words += ["-u", shlex.quote(server.username)]
    elif settings.api_key:
        words += ["-H", '"Authorization: Bearer $OLLAMA_API_KEY"']
    else:
        words += ["-u", t("errors.curl_user")]
    words.append(shlex.quote(server.url(path)))
    return " ".join(words)


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


# --------------------------------------------------------------------------- request log
# With --debug, every request is one line on the "ollamakit.http" logger: method, URL (which
# never holds credentials: they travel as a header, and headers are not logged), status and
# time. A stream gets two: when its headers came, and when it was closed.


def _ms_since(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


def _log_answer(method: str, url: str, status: int, start_ns: int) -> None:
    log.debug("%s %s -> %d (%.1f ms)", method, url, status, _ms_since(start_ns))


def _log_no_answer(method: str, url: str, exc: BaseException, start_ns: int) -> None:
    log.debug(
        "%s %s -> no answer after %.1f ms: %s: %s",
        method,
        url,
        _ms_since(start_ns),
        type(exc).__name__,
        exc,
    )


def _log_stream_end(method: str, url: str, decoder: NDJSONDecoder, start_ns: int) -> None:
    log.debug(
        "%s %s: stream %s, %d chunks in %.1f ms",
        method,
        url,
        "complete" if decoder.complete else "closed early",
        decoder.count,
        _ms_since(start_ns),
    )


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
                    key=self.settings.setting_name("OLLAMA_CA_BUNDLE"),
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
        _raise_for_response(
            status=response.status_code,
            headers=response.headers,
            body=body,
            settings=self.settings,
            path=path,
            model=model,
        )

    def translate(self, exc: httpx.HTTPError, path: str) -> Exception:
        return _translate(
            exc, self.server, self.server.url(path), self.timeout, trust=trust_label(self.settings)
        )

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
        self._end_logged = False

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
            _log_no_answer("POST", self.decoder_url, exc, self.sent_ns)
            raise core.translate(exc, self._path) from None
        self.headers_ns = time.perf_counter_ns()
        self._response = response
        log.debug(
            "POST %s -> %d, headers after %.1f ms",
            self.decoder_url,
            response.status_code,
            (self.headers_ns - self.sent_ns) / 1e6,
        )
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
            if not self._end_logged:
                self._end_logged = True
                _log_stream_end("POST", self.decoder_url, self.decoder, self.sent_ns)
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
        url = self.server.url(path)
        start = time.perf_counter_ns()
        try:
            response = self._http.request(method, url, json=json)
        except httpx.HTTPError as exc:
            _log_no_answer(method, url, exc, start)
            raise self._core.translate(exc, path) from None
        _log_answer(method, url, response.status_code, start)
        self._core.check(response, response.content, path, model)
        return response, response.content

    def probe(self, method: str, path: str, *, json: Any = None) -> Probe:
        """Send one request and return what came back, judging nothing (for ``doctor``)."""
        url = self.server.url(path)
        start = time.perf_counter_ns()
        try:
            response = self._http.request(method, url, json=json)
        except httpx.HTTPError as exc:
            _log_no_answer(method, url, exc, start)
            raise self._core.translate(exc, path) from None
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        _log_answer(method, url, response.status_code, start)
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
            settings=self._core.settings,
            path=path,
            model=model,
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
        self._end_logged = False

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
            _log_no_answer("POST", self.decoder_url, exc, self.sent_ns)
            raise core.translate(exc, self._path) from None
        self.headers_ns = time.perf_counter_ns()
        self._response = response
        log.debug(
            "POST %s -> %d, headers after %.1f ms",
            self.decoder_url,
            response.status_code,
            (self.headers_ns - self.sent_ns) / 1e6,
        )
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
            if not self._end_logged:
                self._end_logged = True
                _log_stream_end("POST", self.decoder_url, self.decoder, self.sent_ns)
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
        url = self.server.url(path)
        start = time.perf_counter_ns()
        try:
            response = await self._http.request(method, url, json=json)
        except httpx.HTTPError as exc:
            _log_no_answer(method, url, exc, start)
            raise self._core.translate(exc, path) from None
        _log_answer(method, url, response.status_code, start)
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
