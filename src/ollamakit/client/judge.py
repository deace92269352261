"""Pure judging: what a response or a transport failure means, as an error from the tree.

Design
------
Nothing here does I/O except the one TLS probe a refused plain-HTTP request needs (through
:func:`ollamakit.client.tls.speaks_tls`) and the certificate read of a failed verification:
:func:`raise_for_response` turns (status, headers, body) into an error, and
:func:`translate` maps an httpx exception to one. Sync and async shells both call these, so a
401 means the same thing everywhere.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

import httpx
import orjson

from ollamakit.client.advice import auth_advice, curl_command, suggest_base
from ollamakit.client.tls import (
    CERT_PROBE_TIMEOUT_S,
    fetch_certificate,
    speaks_tls,
    tls_verify_error,
    trust_label,
)
from ollamakit.config import ServerURL, Settings
from ollamakit.errors import (
    AuthError,
    BadRequest,
    ConnectFailed,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    DNSFailure,
    ForbiddenError,
    GatewayError,
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
    TLSMismatch,
    TLSVerifyFailed,
    Where,
)
from ollamakit.i18n import t

#: The most of an error body that is read: enough for any JSON error, bounded for a hostile one.
ERROR_BODY_LIMIT: Final = 64 * 1024


def where(server: ServerURL, path: str) -> Where:
    """The connection context of a request to ``path``, for error messages (no password)."""
    return Where(
        url=server.url(path),
        address=server.address,
        host=server.host,
        port=server.port,
        origin=server.origin,
    )


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Connect and read bounds in seconds (None: unbounded), as the messages name them."""

    connect_s: float | None
    read_s: float | None


def fmt_s(value: float | None) -> str:
    return "∞" if value is None else f"{value:g}"


def first_line(body: bytes, limit: int = 160) -> str:
    """The first meaningful line of a body, for quoting in an error message.

    >>> first_line(b"<html><head><title>502 Bad Gateway</title></head>")
    '502 Bad Gateway'
    >>> first_line(b"\\n\\n  Ollama is running  \\n")
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


def not_json(status: int, url: str, content_type: str, body: bytes) -> NotOllama:
    """The error for a body that should have been Ollama's JSON and is not."""
    return NotOllama(status=status, url=url, content_type=content_type, first_line=first_line(body))


def error_detail(body: bytes) -> str:
    """The ``error`` text of an Ollama error body, else the first line of whatever came.

    >>> error_detail(b'{"error":"model \\'x\\' not found"}'), error_detail(b"<h1>Oops</h1>")
    ("model 'x' not found", 'Oops')
    """
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return first_line(body)
    if isinstance(obj, dict) and "error" in obj:
        err = obj["error"]
        if isinstance(err, dict):  # OpenAI-style {"error": {"message": ...}}
            return str(err.get("message", err))
        return str(err)
    return first_line(body)


def ollama_body(body: bytes) -> dict[str, object] | None:
    """The body as Ollama's own error object (``{"error": "..."}``, maybe ``signin_url``),
    or None when it is something else (empty, HTML, a proxy's text, OpenAI's shape).

    >>> ollama_body(b'{"error":"unauthorized","signin_url":"https://ollama.com/connect"}')
    {'error': 'unauthorized', 'signin_url': 'https://ollama.com/connect'}
    >>> ollama_body(b""), ollama_body(b"<html>502</html>"), ollama_body(b'{"error":{"a":1}}')
    (None, None, None)
    """
    if not body.strip():
        return None
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("error"), str):
        return obj
    return None


#: Ollama's 500 for an option of the wrong type (``api/types.go``): a request error.
_OPTION_TYPE: Final = re.compile(r'option "[^"]+" must be of type')
#: Ollama's 400 when the prompt is over the context (``llm/llama_server.go``).
_CONTEXT_OVERFLOW: Final = re.compile(r"longer than the context|exceeds the context|context length")


def raise_for_response(
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
    at = where(server, path)
    detail = error_detail(body)
    own = ollama_body(body)  # Ollama's own JSON error, not a proxy's page
    if 300 <= status < 400:
        location = headers.get("location", "")
        raise RedirectError(
            detail,
            status=status,
            location=location,
            suggestion=suggest_base(location, path, server),
            password_note=t("errors.redirect_password_note") if server.password else "",
            **at,
        )
    if status == 400 and "plain HTTP request was sent to HTTPS port" in body.decode(
        "utf-8", "replace"
    ):
        raise TLSMismatch(
            detail,
            expected="plain HTTP (http)",
            suggestion=server.origin.replace("http://", "https://", 1),
            status=status,
            **at,
        )
    if status == 400:
        advice = "num_ctx" if _CONTEXT_OVERFLOW.search(detail) else None
        raise BadRequest(detail, status=status, advice=advice, **at)
    if status == 500 and own is not None and _OPTION_TYPE.search(detail):
        raise BadRequest(detail, status=status, advice="option", **at)
    if status == 401 and own is not None and own.get("signin_url"):
        raise AuthError(detail, status=status, signin=True, **at)
    if status == 401:
        realm = re.search(r'realm="([^"]*)"', headers.get("www-authenticate", ""))
        raise AuthError(
            detail,
            realm=t("errors.auth_realm", name=realm.group(1)) if realm else "",
            auth_advice=auth_advice(settings),
            curl=curl_command(settings),
            curl_note="" if settings.api_key else t("errors.auth_curl_prompts"),
            status=status,
            **at,
        )
    if status == 403:
        raise ForbiddenError(
            detail or "403",
            status=status,
            from_ollama=own is not None,
            empty=not body.strip(),
            **at,
        )
    if status == 404:
        if model is not None and "not found" in detail and "page not found" not in detail:
            raise ModelNotFound(detail, model=model, status=status, **at)
        raise NotFoundError(detail, status=status, **at)
    if status == 405:
        raise MethodNotAllowed(detail, status=status, **at)
    if status == 413:
        raise RequestTooLarge(detail, status=status, **at)
    if status in (429, 503):
        raise ServerBusy(detail, status=status, from_ollama=own is not None, **at)
    if status in (502, 504):
        # Ollama's cloud proxy answers 502 with its JSON; nginx's 502/504 is an HTML page.
        raise GatewayError(detail, status=status, from_ollama=own is not None, **at)
    raise ServerError(detail, status=status, **at)


def walk_causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def translate(
    exc: httpx.HTTPError,
    server: ServerURL,
    url: str,
    timeouts: Timeouts,
    *,
    trust: str | None = None,
) -> OllamaError:
    """Map an httpx exception to an :class:`OllamaError` with a message and a fix.

    ``trust`` names the CAs the client trusts (:func:`trust_label`), for a certificate error.
    """
    at = Where(
        url=url, address=server.address, host=server.host, port=server.port, origin=server.origin
    )
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectTimeout(detail, timeout_s=fmt_s(timeouts.connect_s), **at)
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout | httpx.PoolTimeout):
        return ReadTimeout(detail, timeout_s=fmt_s(timeouts.read_s), **at)
    for cause in walk_causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            probe_s = min(timeouts.connect_s or CERT_PROBE_TIMEOUT_S, CERT_PROBE_TIMEOUT_S)
            cert = fetch_certificate(server.host, server.port, probe_s)
            return tls_verify_error(cause, cert, trust or trust_label(None), **at)
        if isinstance(cause, ssl.SSLError):
            text = str(cause)
            if any(s in text for s in ("WRONG_VERSION_NUMBER", "record layer", "wrong version")):
                return TLSMismatch(
                    text,
                    expected="TLS (https)",
                    suggestion=server.origin.replace("https://", "http://", 1),
                    **at,
                )
            return TLSVerifyFailed(text, **at)
        if isinstance(cause, socket.gaierror):
            return DNSFailure(cause.strerror or str(cause), **at)
        if isinstance(cause, ConnectionRefusedError):
            return ConnectionRefused(cause.strerror or str(cause), **at)
        if isinstance(cause, TimeoutError) and isinstance(exc, httpx.ConnectError):
            return ConnectTimeout(detail, timeout_s=fmt_s(timeouts.connect_s), **at)
    if isinstance(exc, httpx.ConnectError):
        return ConnectFailed(detail, **at)
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in detail:
        # A plain-HTTP request to a TLS port: the TLS server drops the connection unanswered.
        # (Not "without sending complete message body": that is a body cut short, below.)
        if server.scheme == "http" and speaks_tls(server.host, server.port):
            return TLSMismatch(
                detail,
                expected="plain HTTP (http)",
                suggestion=server.origin.replace("http://", "https://", 1),
                **at,
            )
        return ConnectionLost(detail, **at)
    if isinstance(exc, httpx.RemoteProtocolError):
        return StreamCut(detail, **at)
    return ConnectionLost(detail, **at)
