"""The error tree. Every failure a user can meet is one of these, with a message and a fix.

::

    OllamakitError                  base: .message, .hint, .exit_status
    ├── ConfigError                 a setting is invalid (names the key, the value, an example)
    ├── UsageError                  a command-line argument or input file is invalid
    └── OllamaError                 talking to the server failed
        ├── ConnectFailed           no connection could be made
        │   ├── ConnectionRefused   nothing listens on that address and port
        │   ├── DNSFailure          the host name does not resolve
        │   ├── ConnectTimeout      no answer to the connection attempt (firewall, wrong IP)
        │   ├── TLSVerifyFailed     the server's certificate is not trusted
        │   └── TLSMismatch         https:// to a plain-HTTP port, or http:// to a TLS port
        ├── ReadTimeout             connected, but the server stopped sending
        │   └── DeadlineExceeded    the request's total time ran out (an endless or trickled answer)
        ├── ConnectionLost          the connection dropped mid-request
        ├── HTTPError               the server answered with an error status
        │   ├── RedirectError       3xx: the URL should be another one (often http -> https)
        │   ├── BadRequest          400: Ollama rejected the request
        │   ├── AuthError           401: the proxy wants (other) credentials
        │   ├── ForbiddenError      403: Ollama's Host-header check, or a proxy rule
        │   ├── NotFoundError       404: wrong URL path / not an Ollama endpoint
        │   │   └── ModelNotFound   404: the model is not pulled on the server
        │   ├── MethodNotAllowed    405: usually a redirect that turned POST into GET
        │   ├── RequestTooLarge     413: a proxy's body size limit (nginx client_max_body_size)
        │   ├── ServerBusy          503/429: queue full or rate-limited
        │   ├── GatewayError        502/504: the proxy is up, Ollama behind it is not (in time)
        │   └── ServerError         500 and anything else: Ollama reported a failure
        └── ProtocolError           the answer is not what Ollama sends
            ├── NotOllama           an HTML page or other non-JSON body (often from a proxy)
            ├── StreamError         an {"error": ...} line inside a stream
            ├── BadChunk            a stream line whose fields Ollama would not send
            └── StreamCut           the stream ended before its "done": true line

Messages are catalogue keys (``i18n/messages/errors.toml``) rendered on access, so an error
raised before the language is known still prints in the right one. Errors never hold a
password: URLs in parameters are redacted by whoever raises them.

Constructors are typed: each class takes exactly the keyword parameters its message and hint
use, each with a default, so an error built with its minimum arguments still renders (no
``KeyError`` while an error is being printed). :class:`Where` is the connection context most
errors share; ``ollamakit.client.where(server, path)`` builds it.
"""

from __future__ import annotations

import ipaddress
from enum import IntEnum
from typing import ClassVar, TypedDict, Unpack

from ollamakit.i18n import t


class Items(tuple[str, ...]):
    """A list in a message, joined the way the language at rendering time does it.

    >>> from ollamakit.i18n import set_language
    >>> names = Items(("a.example", "b.example"))
    >>> set_language("zh-TW"); f"{names}"
    'a.example、b.example'
    >>> set_language("en"); f"{names}"
    'a.example, b.example'
    """

    __slots__ = ()

    def __str__(self) -> str:
        return t("errors.list_sep").join(self)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class ExitStatus(IntEnum):
    """Process exit codes, as documented in the README."""

    OK = 0
    FAILURES = 1  # it ran, but some requests or models failed or timed out
    ERROR = 2  # could not run: configuration, unreachable server, TLS or auth failure
    INTERRUPTED = 130  # Ctrl-C


class Where(TypedDict, total=False):
    """Where a request went, for messages: the URL, ``host:port``, the host, the port, origin."""

    url: str
    address: str
    host: str
    port: int | str
    origin: str


class OllamakitError(Exception):
    """Base class: a user-facing failure with a message key, parameters and a fix."""

    key: ClassVar[str] = "errors.generic"
    hint_key: ClassVar[str | None] = None
    exit_status: ClassVar[ExitStatus] = ExitStatus.ERROR

    def __init__(self, detail: str = "", /) -> None:
        self.detail = detail
        self.params: dict[str, object] = {"detail": detail}
        super().__init__(detail or self.key)

    @property
    def message(self) -> str:
        return t(self.key, **self.params)

    @property
    def hint(self) -> str | None:
        return t(self.hint_key, **self.params) if self.hint_key else None

    @property
    def short(self) -> str:
        """One line for tables and result rows (``error`` field)."""
        return self.message.splitlines()[0]

    def __str__(self) -> str:
        return self.message


class ConfigError(OllamakitError):
    """A setting is invalid; the message names the key, the bad value and a valid example.

    ``value`` is shown: pass ``"***"`` for anything that may hold a secret.
    """

    key = "errors.config"
    hint_key = "errors.config_hint"

    def __init__(
        self,
        detail: str = "",
        /,
        *,
        key: str = "?",
        value: object = "",
        example: str = "",
        where: str = "",
    ) -> None:
        # ``where``: " (in .env)" when the value came from an env file; set by load_settings.
        super().__init__(detail)
        self.params.update(key=key, value=value, example=example, where=where)


class UsageError(OllamakitError):
    """A command-line argument or an input file is invalid."""

    key = "errors.usage"


class OllamaError(OllamakitError):
    """Talking to the Ollama server (or the proxy in front of it) failed."""

    key = "errors.ollama"

    def __init__(
        self,
        detail: str = "",
        /,
        *,
        url: str = "?",
        address: str = "?",
        host: str = "?",
        port: int | str = "?",
        origin: str = "?",
    ) -> None:
        super().__init__(detail)
        self.params.update(url=url, address=address, host=host, port=port, origin=origin)

    @property
    def where(self) -> Where:
        """This error's connection context, to build a related error for the same request."""
        p = self.params
        return Where(
            url=str(p["url"]),
            address=str(p["address"]),
            host=str(p["host"]),
            port=p["port"],  # type: ignore[typeddict-item]
            origin=str(p["origin"]),
        )


class ConnectFailed(OllamaError):
    """No connection could be made."""

    key = "errors.connect_failed"
    hint_key = "errors.connect_failed_hint"


class ConnectionRefused(ConnectFailed):
    """Nothing listens on that address and port."""

    key = "errors.refused"
    hint_key = "errors.refused_hint"

    @property
    def hint(self) -> str:
        """Advice for where the refusal came from: this machine, another port, Ollama's port.

        >>> ConnectionRefused(host="localhost", port=11434).hint.splitlines()[-1].strip()
        'uv run ollamakit sim'
        >>> "is 8080 the right port" in ConnectionRefused(host="10.0.0.5", port=8080).hint
        True
        >>> "OLLAMA_HOST=0.0.0.0:11434" in ConnectionRefused(host="10.0.0.5", port=11434).hint
        True
        """
        host = str(self.params.get("host", ""))
        key = self.hint_key or "errors.refused_hint"
        if _is_loopback(host):
            key = "errors.refused_local_hint"  # no remote access or firewall to talk about
        elif str(self.params.get("port", "")) != "11434":
            key = "errors.refused_port_hint"
        return t(key, **self.params)


def _is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1.

    >>> [_is_loopback(h) for h in ("localhost", "127.0.0.2", "::1", "10.0.0.5", "ollama")]
    [True, True, True, False, False]
    """
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class DNSFailure(ConnectFailed):
    """The host name does not resolve."""

    key = "errors.dns"
    hint_key = "errors.dns_hint"


class ConnectTimeout(ConnectFailed):
    """The connection attempt got no answer (firewall, wrong address, host down)."""

    key = "errors.connect_timeout"
    hint_key = "errors.connect_timeout_hint"

    def __init__(
        self, detail: str = "", /, *, timeout_s: str = "?", **where: Unpack[Where]
    ) -> None:
        super().__init__(detail, **where)
        self.params["timeout_s"] = timeout_s


class TLSVerifyFailed(ConnectFailed):
    """The server's certificate is not trusted (self-signed, expired, wrong name).

    ``problem`` picks the fix: ``trust`` (an unknown CA: --ca-bundle, or a public
    certificate), ``name`` (issued for another name) or ``date`` (expired, not yet valid).
    ``explain`` is the catalogue key of a sentence that says what is wrong in words (see
    ``client.tls_verify_error``), filled from ``reason``, ``trust``, ``subject``, ``issuer``,
    ``date`` and ``names``; the detail, OpenSSL's reason, then follows it in brackets.
    """

    key = "errors.tls_verify"
    hint_key = "errors.tls_verify_hint"

    def __init__(
        self,
        detail: str = "",
        /,
        *,
        problem: str = "trust",
        explain: str | None = None,
        reason: str = "",
        trust: str = "",
        subject: str = "?",
        issuer: str = "?",
        date: str = "?",
        names: Items | str = "?",
        **where: Unpack[Where],
    ) -> None:
        super().__init__(detail, **where)
        self.params.update(
            problem=problem,
            explain=explain,
            reason=reason or detail,
            trust=trust,
            subject=subject,
            issuer=issuer,
            date=date,
            names=names,
            cert_host=certificate_name(str(self.params["host"])),
        )

    @property
    def explanation(self) -> str:
        """What is wrong with the certificate, in words when known (else OpenSSL's reason)."""
        explain = self.params.get("explain")
        return t(str(explain), **self.params) if explain else self.detail

    @property
    def message(self) -> str:
        return t(self.key, **{**self.params, "detail": self.explanation})

    @property
    def hint(self) -> str:
        key = {"name": "errors.tls_name_hint", "date": "errors.tls_date_hint"}.get(
            str(self.params["problem"]), "errors.tls_verify_hint"
        )
        return t(key, **self.params)


def certificate_name(host: str) -> str:
    """The name for a ``certbot -d`` example: the host when a public CA could certify it,
    else the docs' example name (an IP address or ``localhost`` is no such name).

    >>> [certificate_name(h) for h in ("ollama.example.org", "127.0.0.1", "::1", "localhost")]
    ['ollama.example.org', 'ollama.example.com', 'ollama.example.com', 'ollama.example.com']
    """
    public = "." in host and ":" not in host and not host.replace(".", "").isdigit()
    return host if public else "ollama.example.com"


class TLSMismatch(ConnectFailed):
    """https:// was used against a plain-HTTP port, or http:// against a TLS port."""

    key = "errors.tls_mismatch"
    hint_key = "errors.tls_mismatch_hint"

    def __init__(
        self,
        detail: str = "",
        /,
        *,
        expected: str = "?",
        suggestion: str = "?",
        status: int | None = None,
        **where: Unpack[Where],
    ) -> None:
        super().__init__(detail, **where)
        self.params.update(expected=expected, suggestion=suggestion, status=status)

    @property
    def _to_tls_port(self) -> bool:
        """http:// to a TLS port: no handshake took place (only https:// to http attempts one)."""
        return str(self.params.get("expected", "")).startswith("plain HTTP")

    @property
    def message(self) -> str:
        """
        >>> TLSMismatch("closed.", expected="plain HTTP (http)", address="h:443").message
        'h:443 expects TLS (https://), but the request was plain http://: closed.'
        """
        key = "errors.tls_mismatch_plain" if self._to_tls_port else self.key
        return t(key, **self.params)

    @property
    def hint(self) -> str:
        key = "errors.tls_mismatch_plain_hint" if self._to_tls_port else self.hint_key
        return t(key or "errors.tls_mismatch_hint", **self.params)


class ReadTimeout(OllamaError):
    """Connected, but the server sent nothing for longer than the read timeout."""

    key = "errors.read_timeout"
    hint_key = "errors.read_timeout_hint"

    def __init__(
        self, detail: str = "", /, *, timeout_s: str = "?", **where: Unpack[Where]
    ) -> None:
        super().__init__(detail, **where)
        self.params["timeout_s"] = timeout_s


class DeadlineExceeded(ReadTimeout):
    """The request's total time (``deadline_s``) ran out while the server was still sending.

    A read timeout restarts with every byte, so a server that trickles one byte a second, or
    never ends its answer, defeats it; this bound does not. ``setting`` names what raises it
    (for example ``--timeout / BENCHMARK_TIMEOUT_SECONDS``).
    """

    key = "errors.deadline"
    hint_key = "errors.deadline_hint"

    def __init__(
        self,
        detail: str = "",
        /,
        *,
        timeout_s: str = "?",
        setting: str = "--timeout",
        **where: Unpack[Where],
    ) -> None:
        super().__init__(detail, timeout_s=timeout_s, **where)
        self.params["setting"] = setting


class ConnectionLost(OllamaError):
    """The connection dropped in the middle of a request."""

    key = "errors.connection_lost"
    hint_key = "errors.connection_lost_hint"


class HTTPError(OllamaError):
    """The server answered with an error status."""

    key = "errors.http"

    def __init__(self, detail: str = "", /, *, status: int, **where: Unpack[Where]) -> None:
        super().__init__(detail, **where)
        self.params["status"] = status
        self.status = status


class RedirectError(HTTPError):
    """3xx: the configured URL redirects; redirects are not followed (POST would become GET)."""

    key = "errors.redirect"
    hint_key = "errors.redirect_hint"

    def __init__(
        self,
        detail: str = "",
        /,
        *,
        status: int,
        location: str = "?",
        suggestion: str = "?",
        password_note: str = "",
        **where: Unpack[Where],
    ) -> None:
        super().__init__(detail, status=status, **where)
        self.params.update(location=location, suggestion=suggestion, password_note=password_note)


class BadRequest(HTTPError):
    """400 (or Ollama's 500 for a wrong option type): the request itself is wrong.

    ``advice`` names a hint: ``num_ctx`` (the prompt is over the context length),
    ``option`` (an option of the wrong type), or None.
    """

    key = "errors.bad_request"

    def __init__(
        self,
        detail: str = "",
        /,
        *,
        status: int = 400,
        advice: str | None = None,
        **where: Unpack[Where],
    ) -> None:
        super().__init__(detail, status=status, **where)
        self.params["advice"] = advice

    @property
    def hint(self) -> str | None:
        advice = self.params.get("advice")
        return t(f"errors.bad_request_{advice}_hint", **self.params) if advice else None


class AuthError(HTTPError):
    """401: the proxy requires credentials, or the ones given are wrong."""

    key = "errors.auth"
    hint_key = "errors.auth_hint"

    def __init__(
        self,
        detail: str = "",
        /,
        *,
        status: int = 401,
        realm: str = "",
        auth_advice: str = "",
        curl: str = "",
        curl_note: str = "",
        signin: bool = False,
        **where: Unpack[Where],
    ) -> None:
        super().__init__(detail, status=status, **where)
        self.params.update(realm=realm, auth_advice=auth_advice, curl=curl, curl_note=curl_note)
        self.signin = signin  # Ollama's own 401 with signin_url: the server is not signed in

    @property
    def message(self) -> str:
        return t("errors.auth_signin" if self.signin else self.key, **self.params)

    @property
    def hint(self) -> str:
        return t("errors.auth_signin_hint" if self.signin else "errors.auth_hint", **self.params)


class HTTPErrorFromOllama(HTTPError):
    """An error status that may be Ollama's own (a JSON ``{"error"}`` body) or a proxy's.

    ``from_ollama`` picks the texts: Ollama's message and what it means, or the proxy's.
    """

    ollama_key: ClassVar[str] = "errors.http"
    ollama_hint_key: ClassVar[str | None] = None

    def __init__(
        self, detail: str = "", /, *, status: int, from_ollama: bool = False, **where: Unpack[Where]
    ) -> None:
        super().__init__(detail, status=status, **where)
        self.from_ollama = from_ollama

    @property
    def message(self) -> str:
        return t(self.ollama_key, **self.params) if self.from_ollama else super().message

    @property
    def hint(self) -> str | None:
        if self.from_ollama:
            return t(self.ollama_hint_key, **self.params) if self.ollama_hint_key else None
        return super().hint


class ForbiddenError(HTTPErrorFromOllama):
    """403: Ollama's Host-header check behind a proxy (an empty body), a proxy access rule, or
    Ollama's own refusal with a JSON message (cloud models disabled)."""

    key = "errors.forbidden"
    hint_key = "errors.forbidden_hint"
    ollama_key = "errors.forbidden_ollama"
    ollama_hint_key = "errors.forbidden_ollama_hint"

    def __init__(
        self,
        detail: str = "",
        /,
        *,
        status: int = 403,
        from_ollama: bool = False,
        empty: bool = True,
        **where: Unpack[Where],
    ) -> None:
        super().__init__(detail, status=status, from_ollama=from_ollama, **where)
        self.empty = empty  # the Host-header check answers with an empty body

    @property
    def hint(self) -> str | None:
        if not self.from_ollama and not self.empty:
            return t("errors.forbidden_proxy_hint", **self.params)
        return super().hint


class NotFoundError(HTTPError):
    """404 on an API path: the URL (or its path prefix) does not lead to Ollama's API."""

    key = "errors.not_found"
    hint_key = "errors.not_found_hint"


class ModelNotFound(NotFoundError):
    """404: the model is not pulled on the server."""

    key = "errors.model_not_found"
    hint_key = "errors.model_not_found_hint"

    def __init__(
        self, detail: str = "", /, *, status: int = 404, model: str = "?", **where: Unpack[Where]
    ) -> None:
        super().__init__(detail, status=status, **where)
        self.params["model"] = model


class MethodNotAllowed(HTTPError):
    """405: usually a proxy redirect that turned POST into GET, or a path that is not the API."""

    key = "errors.method_not_allowed"
    hint_key = "errors.method_not_allowed_hint"


class RequestTooLarge(HTTPError):
    """413: the request body is over a proxy's size limit (nginx's default is 1 MB)."""

    key = "errors.too_large"
    hint_key = "errors.too_large_hint"


class ServerBusy(HTTPErrorFromOllama):
    """503 or 429: Ollama's queue is full, or a rate limit (a proxy's, or ollama.com's passed
    through by Ollama for a cloud model: a 429 with Ollama's JSON body)."""

    key = "errors.busy"
    hint_key = "errors.busy_hint"
    ollama_key = "errors.busy"
    ollama_hint_key = "errors.busy_ollama_hint"

    @property
    def hint(self) -> str | None:
        if self.from_ollama and self.status != 429:
            return t(self.hint_key, **self.params)
        return super().hint


class GatewayError(HTTPErrorFromOllama):
    """502/504: the proxy answered, but could not reach Ollama (502) or gave up waiting (504);
    or, with Ollama's JSON body, Ollama's cloud proxy could not reach ollama.com."""

    key = "errors.gateway"
    hint_key = "errors.gateway_hint"
    ollama_key = "errors.gateway_ollama"
    ollama_hint_key = "errors.gateway_ollama_hint"

    @property
    def message(self) -> str:
        if self.from_ollama:
            return super().message
        return t("errors.gateway_timeout" if self.status == 504 else self.key, **self.params)

    @property
    def hint(self) -> str | None:
        if self.from_ollama:
            return super().hint
        key = "errors.gateway_timeout_hint" if self.status == 504 else "errors.gateway_hint"
        return t(key, **self.params)


class ServerError(HTTPError):
    """500 or another status: Ollama reported a failure."""

    key = "errors.server"
    hint_key = "errors.server_hint"


class ProtocolError(OllamaError):
    """The answer is not what an Ollama server sends."""

    key = "errors.protocol"


class NotOllama(ProtocolError):
    """A non-JSON body where JSON was expected (an HTML page from a proxy, a captive portal)."""

    key = "errors.not_ollama"
    hint_key = "errors.not_ollama_hint"

    def __init__(
        self,
        detail: str = "",
        /,
        *,
        status: int | str = "?",
        content_type: str = "?",
        first_line: str = "",
        **where: Unpack[Where],
    ) -> None:
        super().__init__(detail, **where)
        self.params.update(status=status, content_type=content_type, first_line=first_line)


class StreamError(ProtocolError):
    """An ``{"error": ...}`` line inside a stream: the server failed mid-reply."""

    key = "errors.stream_error"
    hint_key = "errors.server_hint"


class BadChunk(ProtocolError):
    """A stream line that is JSON but not an Ollama chunk (``message`` a string, ``done`` not a
    boolean, text that is not a string, a line over the length bound): refused at the
    boundary instead of crashing above."""

    key = "errors.bad_chunk"
    hint_key = "errors.bad_chunk_hint"


class StreamCut(ProtocolError):
    """The stream ended before its ``"done": true`` line (connection closed or proxy cut it)."""

    key = "errors.stream_cut"
    hint_key = "errors.stream_cut_hint"
