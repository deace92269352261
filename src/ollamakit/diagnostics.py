"""``ollamakit doctor``'s checks: each step of a connection, judged on its own, no printing.

Design
------
A connection to Ollama can fail at many layers, and the fix depends on which one: a typo in
the host name (DNS), Ollama listening on 127.0.0.1 only (TCP refused), a self-signed proxy
certificate (TLS), a wrong password (HTTP 401), nginx forwarding a public ``Host`` header
(HTTP 403), Ollama down behind nginx (HTTP 502), a proxy buffering the stream. So the doctor
walks the layers bottom-up, one ``check_*`` function per layer, each returning a
:class:`CheckResult` (status, timing, a one-line summary, details for ``--json``, and the fix).

Order, and why::

    configuration → warnings → DNS → TCP → TLS → authentication → GET / → /api/version
        → /api/tags → round trip → generation → streaming → residency (/api/ps)

* Each step assumes the ones before it passed, so after the first failure the rest are
  *skipped*: a refused connection must not be followed by ten confusing HTTP errors.
* Authentication comes before ``GET /``: behind nginx with ``auth_basic`` every path,
  ``/`` included, answers 401, and that is the finding to report, under its own name.
  The authentication step only judges 401/403; any other outcome of its request
  (a 502 page, a redirect, a dropped connection) is left to ``GET /``, whose failure
  messages are written for exactly those cases. A transport error is handed over rather
  than repeated, so a stalled server costs one read timeout, not two.
* Streaming is judged last, from the generation's own chunks (see :func:`analyze_streaming`).

DNS, TCP and TLS use :mod:`socket`/:mod:`ssl` directly, because they look *below* HTTP
(which address answered, which certificate was shown). Everything at the HTTP level goes
through :class:`ollamakit.client.OllamaClient`, so the doctor sees exactly the errors every
other command sees, and their fixes come from the same place (``err.hint``). Failures at the
socket level are turned into the same error classes, with the same parameters the client
uses, so a refused connection reads the same in ``doctor`` and in ``bench``.

Nothing here prints: :mod:`ollamakit.doctor` renders results as they arrive (the runner is
a generator), as aligned lines on a terminal or as a JSON document.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import socket
import ssl
import statistics
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from ollamakit import redact
from ollamakit.client import (
    CERT_PROBE_TIMEOUT_S,
    Chunk,
    OllamaClient,
    fetch_certificate,
    tls_verify_error,
    trust_context,
    trust_label,
    where,
)
from ollamakit.client.ollama import describe_info, model_info
from ollamakit.config import ServerURL, Settings
from ollamakit.domain import ModelInfo
from ollamakit.errors import (
    AuthError,
    BadRequest,
    ConnectFailed,
    ConnectionRefused,
    ConnectTimeout,
    DNSFailure,
    ForbiddenError,
    OllamaError,
    OllamakitError,
    TLSMismatch,
    TLSVerifyFailed,
    Where,
    certificate_name,
)
from ollamakit.i18n import t
from ollamakit.measure import format as fmt
from ollamakit.measure.recorder import BUFFERED_MIN_SERVER_SPAN_MS, ReplyRecorder
from ollamakit.selection import Catalog, kind_of, resolve, smallest_local
from ollamakit.types import ModelEntry

# Small requests (GET /, /api/version, /api/tags) answer in milliseconds on a healthy server;
# waiting the full benchmark timeout (300 s by default) for one of them would make the doctor
# look hung. The generation keeps the configured timeout: a cold model load can take minutes.
SMALL_REQUEST_TIMEOUT_S: Final = 30.0
RTT_SAMPLES: Final = 5
# Enough tokens for the streaming check to have something to judge even on a fast GPU
# (48 tokens at 400 tokens/s still span 120 ms, see MIN_SERVER_SPREAD_MS), and few enough that
# the whole reply (~110 bytes per chunk, ~5 KB) fits in one proxy buffer (nginx's TLS record
# buffer is 16 KB): a buffering proxy then delivers it in one lump, which is what the check
# looks for. On a CPU-only server (5 tokens/s) this costs about ten seconds.
GENERATE_NUM_PREDICT: Final = 48
# Counting gives a reply that runs past num_predict in every model and language, instead of
# stopping after a few words and leaving too little to judge.
GENERATE_PROMPT: Final = "Count from 1 to 100, separated by spaces."
TLS_EXPIRY_WARN_DAYS: Final = 14
MAX_MODEL_ATTEMPTS: Final = 3  # models tried when one turns out unable to generate

# Streaming-check thresholds (see analyze_streaming):
# Below ~100 ms of server-side spread, ordinary effects (TCP delayed ACKs of up to 40 ms,
# a proxy's write coalescing, scheduler jitter) can bunch chunks together on a healthy path,
# so such a short reply cannot tell a buffering proxy from a fast one.
MIN_SERVER_SPREAD_MS: Final = BUFFERED_MIN_SERVER_SPAN_MS  # the recorder's rule: one threshold
MIN_CHUNKS: Final = 5
# A path that streams reproduces the server's spread almost 1:1 (ratio ~0.9-1.1: network
# jitter shifts single chunks by milliseconds, not the whole span). A proxy that buffers the
# reply delivers it in one or two socket reads (ratio ~0-0.1, even when it flushes one full
# 4 KB buffer early). 0.2 sits well clear of both.
BUFFERED_RATIO: Final = 0.2


class Status(enum.StrEnum):
    """The outcome of one check."""

    OK = "ok"
    WARN = "warn"  # works, but something should be fixed; does not change the exit status
    FAIL = "fail"
    SKIP = "skip"  # not run: an earlier step failed, or it does not apply


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the doctor's report."""

    name: str  # step id: config, warning, dns, tcp, tls, auth, root, version, tags, ...
    status: Status
    summary: str  # one line, in the current language
    elapsed_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)  # JSON-safe, never a credential
    fix: str | None = None  # what to do, possibly several lines
    notes: tuple[str, ...] = ()  # extra lines of information shown under the summary
    # The error behind a failure (also kept for a skipped step whose request failed, so the
    # next step can report it without repeating the request). Not part of the JSON.
    error: OllamakitError | None = field(default=None, compare=False, repr=False)
    # The message key of the title when it is not ``doctor.title_<name>``: on an
    # OpenAI-compatible server the root and version steps ask other things (same names,
    # so that ``--json`` keeps one shape).
    title_key: str | None = None

    @property
    def title(self) -> str:
        return t(self.title_key or f"doctor.title_{self.name}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": str(self.status),
            "elapsed_ms": None if self.elapsed_ms is None else round(self.elapsed_ms, 2),
            "summary": self.summary,
            "notes": list(self.notes),
            "details": self.details,
            "fix": self.fix,
        }


def _failed(
    name: str,
    error: OllamakitError,
    elapsed_ms: float | None = None,
    *,
    extra_fix: str | None = None,
    notes: tuple[str, ...] = (),
    **details: Any,
) -> CheckResult:
    fix = "\n".join(part for part in (error.hint, extra_fix) if part) or None
    return CheckResult(
        name,
        Status.FAIL,
        error.message,
        elapsed_ms,
        {"error": type(error).__name__, **details},
        fix,
        notes,
        error,
    )


def _skipped(name: str, summary: str | None = None) -> CheckResult:
    return CheckResult(name, Status.SKIP, summary or t("doctor.skipped"))


def _since_ms(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


def _params(server: ServerURL) -> Where:
    """The parameters the client gives its connection errors, so messages read the same."""
    return where(server, "/")


def _default_url_fix(settings: Settings) -> str | None:
    """When nothing was configured, the likeliest fix is to configure something."""
    if settings.sources.get("OLLAMA_BASE_URL", "default") == "default":
        return t("doctor.default_url_fix", url=settings.base_url.redacted())
    return None


# --------------------------------------------------------------------------- configuration


def credential_kind(settings: Settings) -> str:
    """How the client authenticates, in words (never the secret itself)."""
    if settings.base_url.has_credentials:
        return t("doctor.auth_kind_basic", user=settings.base_url.username)
    if settings.api_key:
        return t("doctor.auth_kind_bearer")
    return t("doctor.auth_kind_none")


def env_proxy(server: ServerURL) -> str | None:
    """The proxy (from HTTP(S)_PROXY/ALL_PROXY) requests to this server go through, redacted.

    The client trusts the environment like curl does, so DNS/TCP/TLS checks of the server
    itself would test a path the requests do not take.
    """
    proxies = urllib.request.getproxies()
    proxy = proxies.get(server.scheme) or proxies.get("all")
    if not proxy or bypasses_proxy(server.host, proxies.get("no", "")):
        return None
    return redact.url_userinfo(proxy)


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts a host (``*``, exact names, and domain suffixes).

    >>> bypasses_proxy("ollama.lan", "localhost, .lan")
    True
    >>> bypasses_proxy("example.com", "localhost")
    False
    >>> bypasses_proxy("anything", "*")
    True
    """
    host = host.lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*" or host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")):
            return True
    return False


def config_sources(settings: Settings) -> str:
    """``KEY ← source`` for each setting that is not the default ("" when none is).

    Keys from ./.env say ``.env``; keys from another env file (``--env-file``) are listed
    together before its path, so a long path is shown once::

        OLLAMA_BASE_URL ← command line, OLLAMA_CA_BUNDLE + OLLAMA_MODEL ← /srv/ollama/prod.env
    """
    labels = {"flag": t("doctor.source_flag"), "env": t("doctor.source_env")}
    chosen = {k: v for k, v in settings.sources.items() if v != "default"}
    file_label = settings.env_file_label
    items = [
        f"{key} ← {labels.get(source, file_label)}"
        for key, source in chosen.items()
        if source != ".env" or file_label == ".env"
    ]
    from_file = [key for key, source in chosen.items() if source == ".env"]
    if from_file and file_label != ".env":
        items.append(f"{' + '.join(from_file)} ← {file_label}")
    return t("errors.list_sep").join(items)


def check_config(settings: Settings) -> CheckResult:
    """The URL in use (redacted), where each setting came from, and that a client can be built."""
    url = settings.base_url.redacted()
    notes = []
    listed = config_sources(settings)
    if listed:
        notes.append(t("doctor.config_sources", sources=listed))
    else:
        notes.append(t("doctor.config_all_default"))
    proxy = env_proxy(settings.base_url)
    if proxy:
        notes.append(t("doctor.config_proxy", proxy=proxy))
    details: dict[str, Any] = {
        "url": url,
        "sources": dict(settings.sources),
        "env_file": str(settings.env_file) if settings.env_file else None,
        "ca_bundle": str(settings.ca_bundle) if settings.ca_bundle else None,
        "insecure": settings.insecure,
        "credentials": (
            "basic"
            if settings.base_url.has_credentials
            else ("bearer" if settings.api_key else None)
        ),
        "timeout_s": settings.benchmark_timeout_s,
        "proxy": proxy,
        "language": settings.lang,
    }
    try:
        # Building a client validates what only it checks: a readable CA bundle, and not
        # both a password and an API key.
        OllamaClient(settings).close()
    except OllamakitError as exc:
        return _failed("config", exc, notes=tuple(notes), **details)
    return CheckResult("config", Status.OK, url, None, details, None, tuple(notes))


def check_warnings(settings: Settings) -> list[CheckResult]:
    """Settings that work but should not be used: the seed's security rules, a misplaced var."""
    found = []
    if settings.credentials_in_clear:
        found.append(
            CheckResult(
                "warning",
                Status.WARN,
                t("cli.warn_clear_credentials", url=settings.base_url.redacted()),
                details={"kind": "credentials_in_clear"},
                fix=t("doctor.warn_clear_fix", cert_host=certificate_name(settings.base_url.host)),
            )
        )
    if settings.insecure:
        found.append(
            CheckResult(
                "warning",
                Status.WARN,
                t("cli.warn_insecure"),
                details={"kind": "insecure"},
                fix=t("doctor.warn_insecure_fix"),
            )
        )
    if settings.ollama_host_env:
        found.append(
            CheckResult(
                "warning",
                Status.WARN,
                t("doctor.warn_ollama_host", value=settings.ollama_host_env),
                details={"kind": "ollama_host_env", "value": settings.ollama_host_env},
                fix=t("doctor.warn_ollama_host_fix"),
            )
        )
    return found


# --------------------------------------------------------------------------- network layers


def check_dns(server: ServerURL) -> CheckResult:
    """Resolve the host name; the addresses found are what TCP will try, in order."""
    try:
        ipaddress.ip_address(server.host)
    except ValueError:
        pass
    else:
        return CheckResult(
            "dns",
            Status.OK,
            t("doctor.dns_ip", host=server.host),
            None,
            {"addresses": [server.host]},
        )
    start = time.perf_counter_ns()
    try:
        infos = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        detail = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        return _failed("dns", DNSFailure(detail or str(exc), **_params(server)), _since_ms(start))
    elapsed = _since_ms(start)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    shown = t("errors.list_sep").join(addresses[:4]) + (" …" if len(addresses) > 4 else "")
    return CheckResult(
        "dns",
        Status.OK,
        t("doctor.dns_ok", host=server.host, addresses=shown),
        elapsed,
        {"addresses": addresses},
    )


def check_tcp(settings: Settings) -> CheckResult:
    """Open a TCP connection (every resolved address in turn, like the client does)."""
    server = settings.base_url
    timeout = settings.connect_timeout_s
    start = time.perf_counter_ns()
    try:
        with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
            peer = sock.getpeername()
    except ConnectionRefusedError as exc:
        error: OllamaError = ConnectionRefused(exc.strerror or str(exc), **_params(server))
    except TimeoutError as exc:
        error = ConnectTimeout(str(exc), timeout_s=f"{timeout:g}", **_params(server))
    except OSError as exc:  # unreachable network or host, and the like
        error = ConnectFailed(exc.strerror or str(exc), **_params(server))
    else:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        address = f"{host}:{peer[1]}"
        return CheckResult(
            "tcp",
            Status.OK,
            t("doctor.tcp_ok", address=address),
            _since_ms(start),
            {"address": address},
        )
    return _failed("tcp", error, _since_ms(start), extra_fix=_default_url_fix(settings))


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The client's one trust context (:func:`ollamakit.client.trust_context`): certifi's CAs
    plus ``--ca-bundle``. It verifies even under ``--insecure`` so the doctor can say what
    ``--insecure`` is hiding."""
    return trust_context(settings)


def _answers_plain_http(host: str, port: int, timeout_s: float) -> bool:
    """Whether the port answers a plain HTTP request (https:// to an http port)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def _name_of(field_: Any) -> str:
    """``CN=x, O=y`` from ``getpeercert()``'s tuple-of-tuples form."""
    parts = []
    for rdn in field_ or ():
        for key, value in rdn:
            short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
            if key in short:
                parts.append(f"{short[key]}={value}")
    return ", ".join(parts) or "?"


def check_tls(settings: Settings) -> CheckResult:
    """TLS handshake with the configured trust: who the certificate names, who issued it,
    when it expires, and whether it verifies."""
    server = settings.base_url
    if server.scheme != "https":
        return _skipped("tls", t("doctor.tls_plain_http"))
    start = time.perf_counter_ns()
    ctx = tls_context(settings)
    trust = trust_label(settings)
    try:
        with (
            socket.create_connection(
                (server.host, server.port), timeout=settings.connect_timeout_s
            ) as sock,
            ctx.wrap_socket(sock, server_hostname=server.host) as tls,
        ):
            cert = tls.getpeercert() or {}
            version = tls.version() or "?"
    except ssl.SSLCertVerificationError as exc:
        elapsed = _since_ms(start)
        # Read the certificate again, unverified, to say what is wrong with it in words.
        probe_s = min(settings.connect_timeout_s, CERT_PROBE_TIMEOUT_S)
        shown = fetch_certificate(server.host, server.port, probe_s)
        error = tls_verify_error(exc, shown, trust, **_params(server))
        found: dict[str, Any] = {
            "verified": False,
            "reason": error.detail,
            "verify_code": exc.verify_code,
            "trust": trust,
        }
        if shown is not None:
            found.update(
                subject=shown.subject,
                issuer=shown.issuer,
                names=list(shown.names),
                not_after=None if shown.not_after is None else shown.not_after.isoformat(),
            )
        if settings.insecure:
            return CheckResult(
                "tls",
                Status.WARN,
                t("doctor.tls_insecure_untrusted", detail=error.explanation),
                elapsed,
                found,
                t("doctor.warn_insecure_fix"),
            )
        return _failed("tls", error, elapsed, **found)
    except (ssl.SSLError, ConnectionResetError) as exc:
        elapsed = _since_ms(start)
        if _answers_plain_http(server.host, server.port, settings.connect_timeout_s):
            mismatch: OllamaError = TLSMismatch(
                str(exc),
                expected="TLS (https)",
                suggestion=server.origin.replace("https://", "http://", 1),
                **_params(server),
            )
        else:
            mismatch = TLSVerifyFailed(str(exc), **_params(server))
        return _failed("tls", mismatch, elapsed, verified=False)
    except TimeoutError as exc:
        # TCP connected a moment ago, so a silent handshake is rarely a firewall: more often a
        # plain-HTTP server waiting for a request line that never comes.
        elapsed = _since_ms(start)
        if _answers_plain_http(server.host, server.port, settings.connect_timeout_s):
            silent: OllamaError = TLSMismatch(
                str(exc),
                expected="TLS (https)",
                suggestion=server.origin.replace("https://", "http://", 1),
                **_params(server),
            )
        else:
            silent = ConnectTimeout(
                str(exc), timeout_s=f"{settings.connect_timeout_s:g}", **_params(server)
            )
        return _failed("tls", silent, elapsed)
    except OSError as exc:
        return _failed(
            "tls", ConnectFailed(exc.strerror or str(exc), **_params(server)), _since_ms(start)
        )
    elapsed = _since_ms(start)
    subject = _name_of(cert.get("subject"))
    issuer = _name_of(cert.get("issuer"))
    not_after = str(cert.get("notAfter", ""))
    days = None
    if not_after:
        days = int((ssl.cert_time_to_seconds(not_after) - time.time()) // 86400)
    details = {
        "verified": True,
        "subject": subject,
        "issuer": issuer,
        "not_after": not_after,
        "expires_in_days": days,
        "version": version,
        "trust": trust,
    }
    summary = t(
        "doctor.tls_ok",
        subject=subject,
        issuer=issuer,
        days="?" if days is None else days,
        version=version,
        trust=trust,
    )
    if days is not None and days < TLS_EXPIRY_WARN_DAYS:
        return CheckResult(
            "tls", Status.WARN, summary, elapsed, details, t("doctor.tls_expiring_fix", days=days)
        )
    return CheckResult("tls", Status.OK, summary, elapsed, details)


# --------------------------------------------------------------------------- HTTP


def check_auth(
    client: OllamaClient, settings: Settings, *, path: str = "/api/version"
) -> CheckResult:
    """Are we let in? One request to an API path, judged only for 401 and 403.

    ``/api/version`` rather than ``/``: a proxy may protect only ``/api/``
    (``/v1/models`` on an OpenAI-compatible server, :mod:`ollamakit.diagnostics_openai`).
    """
    sent = credential_kind(settings)
    has_credentials = settings.base_url.has_credentials or bool(settings.api_key)
    details: dict[str, Any] = {"credentials_sent": has_credentials}
    start = time.perf_counter_ns()
    try:
        probe = client.probe("GET", path)
    except OllamaError as exc:
        # No HTTP answer at all: not an authentication finding. GET / reports it.
        result = _skipped("auth", t("doctor.auth_no_answer"))
        return CheckResult(
            result.name, result.status, result.summary, _since_ms(start), details, error=exc
        )
    details["status"] = probe.status
    # An empty 403 is Ollama's own Host-header check (a proxy's 403 is a page): the proxy let
    # the request through, so it is no authentication finding; GET / reports it with the fix.
    host_check = probe.status == 403 and not probe.body.strip()
    if probe.status == 401 or (probe.status == 403 and not host_check):
        try:
            client.raise_for(probe, path)
        except (AuthError, ForbiddenError) as exc:
            note = t("doctor.auth_sent_note", kind=sent)
            return _failed("auth", exc, probe.elapsed_ms, notes=(note,), **details)
    gateway = probe.status in (502, 504) and not _from_ollama(probe.headers)
    if has_credentials and (gateway or host_check):
        # nginx checks auth_basic (or the key) before it proxies: a gateway error from the
        # proxy, or Ollama's own Host check, means the login got through, and the failure lies
        # behind it (GET / says what).
        key = "doctor.auth_past_proxy_basic"
        if not settings.base_url.has_credentials:
            key = "doctor.auth_past_proxy_key"
        details["accepted_by_proxy"] = True
        details["host_check"] = host_check
        summary = t(key, kind=sent, status=probe.status)
        return CheckResult("auth", Status.OK, summary, probe.elapsed_ms, details)
    if not 200 <= probe.status < 300:
        return CheckResult(
            "auth",
            Status.SKIP,
            t("doctor.auth_not_checked", status=probe.status),
            probe.elapsed_ms,
            details,
        )
    summary = t("doctor.auth_sent", kind=sent) if has_credentials else t("doctor.auth_none")
    return CheckResult("auth", Status.OK, summary, probe.elapsed_ms, details)


def _from_ollama(headers: Mapping[str, str]) -> bool:
    """Whether an error answer is Ollama's own (a JSON body) rather than a proxy's page."""
    return "json" in headers.get("content-type", "")


def check_root(client: OllamaClient, settings: Settings, auth: CheckResult) -> CheckResult:
    """``GET /`` answers "Ollama is running" (not a proxy page, not another service)."""
    if auth.status is Status.SKIP and isinstance(auth.error, OllamaError):
        return _failed("root", auth.error, auth.elapsed_ms)
    start = time.perf_counter_ns()
    try:
        text = client.heartbeat()
    except OllamaError as exc:
        return _failed("root", exc, _since_ms(start))
    return CheckResult("root", Status.OK, f'"{text}"', _since_ms(start))


def check_version(client: OllamaClient) -> CheckResult:
    start = time.perf_counter_ns()
    try:
        version = client.version()
    except OllamaError as exc:
        return _failed("version", exc, _since_ms(start))
    return CheckResult(
        "version",
        Status.OK,
        t("doctor.version_ok", version=version),
        _since_ms(start),
        {"version": version},
    )


def check_tags(client: OllamaClient) -> tuple[CheckResult, list[ModelEntry]]:
    """The models on the server: how many, which (and they feed the generation step)."""
    start = time.perf_counter_ns()
    try:
        models = client.list_models()
    except OllamaError as exc:
        return _failed("tags", exc, _since_ms(start)), []
    elapsed = _since_ms(start)
    details = {
        "count": len(models),
        "models": [
            {
                "name": m.get("name"),
                "size": m.get("size"),
                "parameter_size": (m.get("details") or {}).get("parameter_size"),
            }
            for m in models
        ],
    }
    if not models:
        return (
            CheckResult(
                "tags",
                Status.WARN,
                t("doctor.tags_empty"),
                elapsed,
                details,
                t("doctor.tags_empty_fix"),
            ),
            models,
        )
    names = [str(m.get("name", "?")) for m in models]
    shown = t("errors.list_sep").join(names[:6])
    if len(names) > 6:
        shown += t("doctor.tags_more", more=len(names) - 6)
    return (
        CheckResult(
            "tags",
            Status.OK,
            t("doctor.tags_ok", count=len(models), names=shown),
            elapsed,
            details,
        ),
        models,
    )


def check_rtt(
    client: OllamaClient, samples: int = RTT_SAMPLES, *, path: str = "/api/version"
) -> CheckResult:
    """Round-trip time: the median of a few tiny requests on a warm connection.

    The median, because one sample is at the mercy of a scheduler hiccup; ``/api/version``,
    because the server answers it without touching a model (``/v1/models`` on /v1).
    """
    times = []
    start = time.perf_counter_ns()
    try:
        for _ in range(samples):
            probe = client.probe("GET", path)
            client.raise_for(probe, path)
            times.append(probe.elapsed_ms)
    except OllamaError as exc:
        return _failed("rtt", exc, _since_ms(start))
    median = statistics.median(times)
    details = {
        "median_ms": round(median, 2),
        "min_ms": round(min(times), 2),
        "max_ms": round(max(times), 2),
        "samples_ms": [round(x, 2) for x in times],
    }
    return CheckResult(
        "rtt",
        Status.OK,
        t(
            "doctor.rtt_ok",
            median=fmt.ms(median),
            min=fmt.ms(min(times)),
            max=fmt.ms(max(times)),
            n=len(times),
        ),
        median,
        details,
    )


# --------------------------------------------------------------------------- generation


def pick_models(
    models: Sequence[ModelEntry], describe: Callable[[str], ModelInfo] | None = None
) -> list[str]:
    """Models to try for the test generation: local models that can chat, smallest first.

    The smallest, because it loads fastest (a cold load of a 70B model takes minutes) and the
    test is about the connection, not the model. Never a cloud or an embedding model. Where
    the list has no capabilities (Ollama < 0.30), ``describe`` (``/api/show``) confirms each
    candidate, smallest first, until :data:`MAX_MODEL_ATTEMPTS` are found.

    >>> pick_models([
    ...     {"name": "big", "size": 9 << 30, "details": {}},
    ...     {"name": "nomic-embed-text", "size": 1 << 28, "details": {"family": "nomic-bert"}},
    ...     {"name": "oss:120b-cloud", "size": 384, "remote_model": "oss:120b"},
    ...     {"name": "small", "size": 5 << 30, "details": {}},
    ... ])
    ['small', 'big']
    """
    usable = smallest_local(model_info(m) for m in models)
    if describe is None:
        return [m.name for m in usable]
    catalog = Catalog(describe)
    picked: list[str] = []
    for info in usable:
        if len(picked) >= MAX_MODEL_ATTEMPTS:
            break
        if kind_of(catalog.info(info)) == "chat":
            picked.append(info.name)
    return picked


@dataclass(frozen=True, slots=True)
class StreamedChunk:
    """What the streaming check needs of a chunk: when the server made it, when it arrived."""

    arrival_ns: int
    created_ns: int | None


_CREATED_AT = re.compile(r"^(.*?T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


def parse_created_at(text: str) -> int | None:
    """Ollama's ``created_at`` (RFC 3339, up to nanoseconds) as nanoseconds since the epoch.

    Python's ``datetime`` stops at microseconds, and Go trims trailing zeros, so the fraction
    is handled by hand.

    >>> parse_created_at("2025-10-26T17:21:21.196249Z") - parse_created_at("2025-10-26T17:21:21Z")
    196249000
    >>> a = parse_created_at("2023-08-04T08:52:19.385406455-07:00")
    >>> b = parse_created_at("2023-08-04T15:52:19.385406455Z")
    >>> a == b, a % 1000
    (True, 455)
    >>> parse_created_at("yesterday") is None
    True
    """
    match = _CREATED_AT.match(text.strip())
    if not match:
        return None
    base, fraction, zone = match.groups()
    try:
        moment = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    return int(moment.timestamp()) * 1_000_000_000 + nanos


class StreamVerdict(enum.StrEnum):
    STREAMING = "streaming"
    BUFFERED = "buffered"
    TOO_SHORT = "too_short"  # not enough chunks or server time to judge
    NO_TIMESTAMPS = "no_timestamps"


@dataclass(frozen=True, slots=True)
class StreamAnalysis:
    verdict: StreamVerdict
    chunks: int
    server_spread_ms: float | None
    arrival_spread_ms: float | None

    @property
    def ratio(self) -> float | None:
        if not self.server_spread_ms or self.arrival_spread_ms is None:
            return None
        return self.arrival_spread_ms / self.server_spread_ms


def analyze_streaming(chunks: Sequence[StreamedChunk]) -> StreamAnalysis:
    """Did the chunks arrive as the server produced them, or in one lump (a buffering proxy)?

    Compares two spreads over the same chunks: the server's, from their ``created_at``
    stamps (server clock), and the client's, from their arrival times (client clock). Only
    differences within one clock are used, so the clocks need not agree. Thresholds are
    explained where they are defined (``MIN_SERVER_SPREAD_MS``, ``BUFFERED_RATIO``).

    >>> ms = 1_000_000
    >>> streamed = [StreamedChunk(arrival_ns=5 * ms + i * 20 * ms, created_ns=i * 20 * ms)
    ...             for i in range(10)]
    >>> analyze_streaming(streamed).verdict
    <StreamVerdict.STREAMING: 'streaming'>
    >>> lump = [StreamedChunk(arrival_ns=900 * ms, created_ns=i * 20 * ms) for i in range(10)]
    >>> analyze_streaming(lump).verdict
    <StreamVerdict.BUFFERED: 'buffered'>
    >>> fast = [StreamedChunk(arrival_ns=0, created_ns=i * ms) for i in range(10)]
    >>> analyze_streaming(fast).verdict
    <StreamVerdict.TOO_SHORT: 'too_short'>
    """
    stamped = [c for c in chunks if c.created_ns is not None]
    if not stamped:
        return StreamAnalysis(StreamVerdict.NO_TIMESTAMPS, len(chunks), None, None)
    created = [c.created_ns for c in stamped if c.created_ns is not None]
    arrived = [c.arrival_ns for c in stamped]
    server_ms = (max(created) - min(created)) / 1e6
    arrival_ms = (max(arrived) - min(arrived)) / 1e6
    if len(stamped) < MIN_CHUNKS or server_ms < MIN_SERVER_SPREAD_MS:
        return StreamAnalysis(StreamVerdict.TOO_SHORT, len(stamped), server_ms, arrival_ms)
    verdict = (
        StreamVerdict.BUFFERED
        if arrival_ms < BUFFERED_RATIO * server_ms
        else StreamVerdict.STREAMING
    )
    return StreamAnalysis(verdict, len(stamped), server_ms, arrival_ms)


@dataclass(frozen=True, slots=True)
class Generation:
    """What the test generation measured, for the generation and streaming steps."""

    model: str
    ttft_ms: float | None
    total_ms: float
    eval_count: int | None
    eval_tps: float | None
    load_ms: float | None
    chunks: list[StreamedChunk]
    decode_tps: float | None = None  # the client's decode rate, beside the server's eval_tps
    buffered: bool = False  # the recorder's buffering flag (the streaming check says more)


def _generate_once(client: OllamaClient, model: str) -> Generation:
    """One short generation, measured by the same recorder as the bench and the chat."""
    chunks: list[Chunk] = []
    with client.stream_generate(
        model, GENERATE_PROMPT, options={"num_predict": GENERATE_NUM_PREDICT, "temperature": 0}
    ) as stream:
        recorder = ReplyRecorder(stream.sent_ns)
        for chunk in stream:
            recorder.add(chunk)
            # The streaming check compares token chunks only; the done chunk's text counts
            # like any other (issue 9 item 10).
            if chunk.content or chunk.thinking or chunk.final is None:
                chunks.append(chunk)
    m = recorder.finish(stream.end)
    return Generation(
        model=model,
        ttft_ms=m.ttft_ms,
        total_ms=m.total_ms if m.total_ms is not None else 0.0,
        eval_count=m.eval_count,
        eval_tps=m.eval_tps,
        load_ms=m.load_ms,
        chunks=[StreamedChunk(c.arrival_ns, c.created_ns) for c in chunks],
        decode_tps=m.decode_tps,
        buffered=m.buffered,
    )


def check_generate(
    client: OllamaClient, candidates: Sequence[str]
) -> tuple[CheckResult, Generation | None]:
    """A short streamed generation: TTFT as the client sees it, the server's eval rate and the
    client's decode rate.

    A model that turns out unable to generate (HTTP 400 "does not support generate") is
    skipped in favour of the next smallest one.
    """
    if not candidates:
        return _skipped("generate", t("doctor.generate_no_model")), None
    start = time.perf_counter_ns()
    for index, model in enumerate(candidates[:MAX_MODEL_ATTEMPTS]):
        try:
            gen = _generate_once(client, model)
        except BadRequest as exc:
            last = index == min(len(candidates), MAX_MODEL_ATTEMPTS) - 1
            if "does not support" in exc.detail and not last:
                continue
            return _failed("generate", exc, _since_ms(start), model=model), None
        except OllamaError as exc:
            return _failed("generate", exc, _since_ms(start), model=model), None
        details = {
            "model": gen.model,
            "ttft_ms": None if gen.ttft_ms is None else round(gen.ttft_ms, 2),
            "total_ms": round(gen.total_ms, 2),
            "eval_count": gen.eval_count,
            "eval_tps": None if gen.eval_tps is None else round(gen.eval_tps, 2),
            "decode_tps": None if gen.decode_tps is None else round(gen.decode_tps, 2),
            "load_ms": None if gen.load_ms is None else round(gen.load_ms, 2),
            "chunks": len(gen.chunks),
        }
        # Both rates, labelled as in the benchmark; a reply a proxy held back whole has no
        # client decode rate, and one without it never shows the server's under its name.
        decode = None if gen.buffered else gen.decode_tps
        summary = t(
            "doctor.generate_ok" if decode is not None else "doctor.generate_ok_no_decode",
            model=gen.model,
            ttft="?" if gen.ttft_ms is None else fmt.ms(gen.ttft_ms),
            tps="?" if gen.eval_tps is None else fmt.tps(gen.eval_tps),
            decode="?" if decode is None else fmt.tps(decode),
            tokens="?" if gen.eval_count is None else gen.eval_count,
        )
        notes: tuple[str, ...] = ()
        # A load of over a second means the model was not in memory: TTFT includes it.
        if gen.load_ms is not None and gen.load_ms >= 1000:
            notes = (t("doctor.generate_cold", seconds=f"{gen.load_ms / 1000:.1f}"),)
        return (
            CheckResult("generate", Status.OK, summary, gen.total_ms, details, notes=notes),
            gen,
        )
    raise AssertionError("unreachable: the last candidate always returns")  # pragma: no cover


def check_streaming(generation: Generation) -> CheckResult:
    """Judge the generation's chunks: streamed, or held back by a buffering proxy."""
    analysis = analyze_streaming(generation.chunks)
    details = {
        "verdict": str(analysis.verdict),
        "chunks": analysis.chunks,
        "server_spread_ms": _round(analysis.server_spread_ms),
        "arrival_spread_ms": _round(analysis.arrival_spread_ms),
        "ratio": _round(analysis.ratio, 3),
        "thresholds": {
            "min_server_spread_ms": MIN_SERVER_SPREAD_MS,
            "min_chunks": MIN_CHUNKS,
            "buffered_ratio": BUFFERED_RATIO,
        },
    }
    server = fmt.ms(analysis.server_spread_ms or 0.0)
    arrival = fmt.ms(analysis.arrival_spread_ms or 0.0)
    if analysis.verdict is StreamVerdict.NO_TIMESTAMPS:
        return CheckResult(
            "streaming", Status.SKIP, t("doctor.streaming_no_timestamps"), None, details
        )
    if analysis.verdict is StreamVerdict.TOO_SHORT:
        return CheckResult(
            "streaming",
            Status.SKIP,
            t("doctor.streaming_too_short", server=server, chunks=analysis.chunks),
            None,
            details,
        )
    if analysis.verdict is StreamVerdict.BUFFERED:
        return CheckResult(
            "streaming",
            Status.WARN,
            t("doctor.streaming_buffered", server=server, arrival=arrival),
            None,
            details,
            t("doctor.streaming_buffered_fix"),
        )
    return CheckResult(
        "streaming",
        Status.OK,
        t("doctor.streaming_ok", server=server, arrival=arrival, chunks=analysis.chunks),
        None,
        details,
    )


def check_residency(client: OllamaClient, model: str) -> CheckResult:
    """Where the generation's model runs (``/api/ps``, as ``ollama ps`` shows it).

    "100% GPU" is OK; part of the model in CPU memory (``size_vram < size``), the commonest
    cause of slow tokens, is a warning with what to do; no ``/api/ps`` or no entry is a skip.
    """
    from ollamakit.client.ollama import residency as residency_of

    start = time.perf_counter_ns()
    try:
        entries = client.running_models()
    except OllamaError:
        return _skipped("residency", t("doctor.residency_unknown"))
    names = {model, f"{model}:latest"}
    found = [r for r in (residency_of(e) for e in entries) if r is not None]
    match = next((r for r in found if r.model in names), None)
    if match is None:
        return _skipped("residency", t("doctor.residency_unknown"))
    share = match.gpu_share
    where = fmt.gpu(share)
    details = {
        "model": match.model,
        "size": match.size_bytes,
        "size_vram": match.vram_bytes,
        "gpu_share": None if share is None else round(share, 4),
        "context_length": match.context_length,
        "expires_at": match.expires_at,
    }
    context = match.context_length if match.context_length else "?"
    summary = t(
        "doctor.residency_ok",
        model=match.model,
        where=where,
        size=fmt.size(match.size_bytes),
        num_ctx=context,
    )
    if share is not None and share < fmt.FULL_GPU_SHARE:
        fix = t("bench.hint_offload", model=match.model, where=where, num_ctx=context)
        return CheckResult("residency", Status.WARN, summary, _since_ms(start), details, fix)
    return CheckResult("residency", Status.OK, summary, _since_ms(start), details)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- the run

#: Step ids in the order they run (``warning`` lines come right after ``config``).
STEPS: Final = (
    "config",
    "dns",
    "tcp",
    "tls",
    "auth",
    "root",
    "version",
    "tags",
    "rtt",
    "generate",
    "streaming",
    "residency",
)


class OpenAISteps(Protocol):
    """The HTTP steps for an OpenAI-compatible server (the module ``diagnostics_openai``)."""

    def speaks_openai_only(self, settings: Settings, auth: CheckResult) -> bool: ...

    def diagnose_openai(
        self,
        settings: Settings,
        *,
        generate: bool,
        model: str | None,
        notify: Callable[[str], None],
    ) -> Iterator[CheckResult]: ...


def diagnose(
    settings: Settings,
    *,
    generate: bool = True,
    model: str | None = None,
    on_step: Callable[[str], None] | None = None,
    openai_steps: OpenAISteps | None = None,
) -> Iterator[CheckResult]:
    """Run every check in order, yielding each result as soon as it is known.

    ``on_step(name)`` is called before a step that does I/O starts (for a spinner).
    ``model`` forces the generation model; otherwise the smallest one that can generate.
    ``openai_steps`` runs the HTTP steps on an OpenAI-compatible server (``--api openai``):
    the doctor passes the module :mod:`ollamakit.diagnostics_openai`, which builds on this
    module's checks (so this module does not import it).
    """
    notify = on_step or (lambda _name: None)
    server = settings.base_url

    config = check_config(settings)
    yield config
    yield from check_warnings(settings)
    failed = config.status is Status.FAIL

    def skip_rest(after: str) -> Iterator[CheckResult]:
        for name in STEPS[STEPS.index(after) + 1 :]:
            yield _skipped(name)

    if failed:
        yield from skip_rest("config")
        return

    proxy = env_proxy(server)
    network: list[tuple[str, Callable[[], CheckResult]]] = [
        ("dns", lambda: check_dns(server)),
        ("tcp", lambda: check_tcp(settings)),
        ("tls", lambda: check_tls(settings)),
    ]
    for name, check in network:
        if proxy:
            yield _skipped(name, t("doctor.via_proxy", proxy=proxy))
            continue
        notify(name)
        result = check()
        yield result
        if result.status is Status.FAIL:
            yield from skip_rest(name)
            return

    if settings.api == "openai" and openai_steps is not None:  # llama.cpp, vLLM, Ollama's /v1
        yield from openai_steps.diagnose_openai(
            settings, generate=generate, model=model, notify=notify
        )
        return
    # Every request has a total deadline (a trickling or endless answer cannot hold a step
    # open): the small ones min(--timeout, 30 s), the generation --timeout
    # (docs/security.md, "Bounded time and memory", gives the bound of a whole run).
    small_s = min(settings.benchmark_timeout_s, SMALL_REQUEST_TIMEOUT_S)
    small = OllamaClient(settings, read_timeout_s=small_s, deadline_s=small_s)
    with small:
        notify("auth")
        auth = check_auth(small, settings)
        if openai_steps is not None and openai_steps.speaks_openai_only(settings, auth):
            # --api auto found no /api but a /v1
            yield from openai_steps.diagnose_openai(
                settings, generate=generate, model=model, notify=notify
            )
            return
        yield auth
        if auth.status is Status.FAIL:
            yield from skip_rest("auth")
            return
        steps: list[tuple[str, Callable[[], CheckResult]]] = [
            ("root", lambda: check_root(small, settings, auth)),
            ("version", lambda: check_version(small)),
        ]
        for name, run in steps:
            notify(name)
            result = run()
            yield result
            if result.status is Status.FAIL:
                yield from skip_rest(name)
                return
        notify("tags")
        tags, models = check_tags(small)
        yield tags
        if tags.status is Status.FAIL:
            yield from skip_rest("tags")
            return
        notify("rtt")
        rtt = check_rtt(small)
        yield rtt
        if rtt.status is Status.FAIL:
            yield from skip_rest("rtt")
            return

    if not generate:
        yield _skipped("generate", t("doctor.generate_disabled"))
        yield _skipped("streaming", t("doctor.generate_disabled"))
        yield _skipped("residency", t("doctor.generate_disabled"))
        return
    notify("generate")
    with OllamaClient(settings, deadline_s=settings.benchmark_timeout_s) as client:
        if model:  # the one matching rule (selection.py): llama3.2 -> llama3.2:latest
            match = resolve(model, [m["name"] for m in models])
            candidates = [match.name if match is not None else model]
        else:
            candidates = pick_models(models, lambda name: describe_info(name, client.show(name)))
        result, generation = check_generate(client, candidates)
        yield result
        if generation is None:
            yield _skipped("streaming")
            yield _skipped("residency")
            return
        yield check_streaming(generation)
        notify("residency")
        yield check_residency(client, generation.model)


def config_failure(error: OllamakitError) -> list[CheckResult]:
    """The results of a run whose settings could not even be loaded: the configuration
    step failed with ``error``, every other step skipped."""
    return [_failed("config", error), *(_skipped(name) for name in STEPS[1:])]


def exit_status(results: Sequence[CheckResult]) -> int:
    """0 when nothing failed (warnings allowed), 2 otherwise (design.md's exit codes)."""
    return 2 if any(r.status is Status.FAIL for r in results) else 0


__all__ = [
    "CheckResult",
    "Generation",
    "Status",
    "StreamAnalysis",
    "StreamVerdict",
    "StreamedChunk",
    "analyze_streaming",
    "check_auth",
    "check_config",
    "check_dns",
    "check_generate",
    "check_residency",
    "check_rtt",
    "check_streaming",
    "check_tags",
    "check_tcp",
    "check_tls",
    "check_version",
    "check_warnings",
    "config_failure",
    "config_sources",
    "diagnose",
    "exit_status",
    "parse_created_at",
    "pick_models",
]
