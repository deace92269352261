"""The sans-I/O core both shells share: headers, URLs, timeouts, the one TLS trust context.

Design
------
:class:`Core` is built once per client from the :class:`~ollamakit.config.Settings`; it holds
no socket. The sync shell (:mod:`.sync`) and the async shell (:mod:`.aio`) differ only in how
they wait; everything they must agree on lives here or in :mod:`.judge`:

* credentials: the URL's userinfo becomes an ``Authorization: Basic`` header and never appears
  in a request URL, a log line or an error message; an API key becomes ``Bearer``;
* trust: :func:`trust_context` is the only place a verifying ``ssl.SSLContext`` is built
  (certifi's CAs plus ``--ca-bundle``); the doctor uses it too, so what it checks is what the
  client trusts;
* timeouts, request bodies, and the once-only guard of a reply stream;
* the total deadline of a request (:class:`Deadline`), see below.

The total deadline
------------------
A read timeout restarts with every byte: a server that sends one byte a second, or an
endless stream, or an endless line, never trips it. ``deadline_s`` bounds the *whole*
request instead, from just before it is sent to the last byte read (connect, head, body,
and for a stream the time the caller spends between chunks too). It is enforced in three
places, so no path escapes it:

* the fast transport (:mod:`.transport`) waits for each read at most until the deadline
  (``min(read timeout, time left)``), so it ends on time even against a silent or trickling
  server;
* the shells check the clock after every read of a body (a stream, or a JSON answer read
  piece by piece with a size bound, :data:`MAX_BODY_BYTES`);
* on httpx's own transport (``fast=False``, the OpenAI backends) every read waits at most
  ``min(read timeout, deadline_s)``: a read already waiting when the deadline passes ends
  within that, so such a request ends within twice its deadline at worst.

It raises :class:`~ollamakit.errors.DeadlineExceeded` (a :class:`~ollamakit.errors.
ReadTimeout`), whose message names the setting that raises it (``deadline_setting``).
"""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import certifi
import orjson

from ollamakit import __version__
from ollamakit.client.judge import Timeouts, not_json, raise_for_response, where
from ollamakit.config import Settings
from ollamakit.domain import ChatRequest
from ollamakit.errors import ConfigError, DeadlineExceeded, NotOllama, Where
from ollamakit.i18n import t

USER_AGENT: Final = f"ollamakit/{__version__}"

#: The largest non-streamed answer read (``/api/tags``, ``/api/show``, ...): real ones are
#: kilobytes; an endless body must not grow memory without limit.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024

#: The request extension that carries a request's deadline to the fast transport: an
#: absolute ``time.perf_counter_ns()`` value (httpx passes unknown extensions through).
DEADLINE_EXTENSION: Final = "ollamakit.deadline_ns"

#: What a deadline error names as the setting to raise, unless the caller says otherwise.
DEFAULT_DEADLINE_SETTING: Final = "--timeout / BENCHMARK_TIMEOUT_SECONDS"

# A timeout that fires this close to the deadline is the deadline (socket waits may end a
# little early or late).
_DEADLINE_SLACK_NS: Final = 50_000_000


class StreamReused(RuntimeError):
    """A reply stream was iterated a second time: a stream is read once, from the socket."""

    def __init__(self) -> None:
        super().__init__(
            "a reply stream can be iterated only once (it reads the connection); "
            "keep the chunks from the first pass, or send the request again"
        )


def trust_context(settings: Settings) -> ssl.SSLContext:
    """A verifying context with the client's trust: certifi's CAs plus ``--ca-bundle``.

    It verifies even under ``--insecure`` (the client then passes ``verify=False`` instead),
    so the doctor can say what ``--insecure`` is hiding.
    """
    ctx = ssl.create_default_context(cafile=certifi.where())
    if settings.ca_bundle is not None:
        try:
            ctx.load_verify_locations(cafile=str(settings.ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                str(exc),
                key=settings.setting_name("OLLAMA_CA_BUNDLE"),
                value=str(settings.ca_bundle),
                example="./ca.pem",
            ) from None
    return ctx


@dataclass(frozen=True, slots=True)
class Deadline:
    """One request's total deadline: ``end_ns`` on the ``time.perf_counter_ns()`` clock.

    >>> d = Deadline(end_ns=time.perf_counter_ns() + 10**9, seconds=1.0)
    >>> 0.9 < d.left_s() <= 1.0, d.expired(), d.wait(30.0) <= 1.0, d.wait(None) <= 1.0
    (True, False, True, True)
    >>> Deadline(end_ns=0, seconds=1.0).expired()
    True
    """

    end_ns: int
    seconds: float

    @classmethod
    def start(cls, seconds: float, now_ns: int | None = None) -> Deadline:
        now = time.perf_counter_ns() if now_ns is None else now_ns
        return cls(end_ns=now + int(seconds * 1e9), seconds=seconds)

    def left_s(self, now_ns: int | None = None) -> float:
        now = time.perf_counter_ns() if now_ns is None else now_ns
        return (self.end_ns - now) / 1e9

    def expired(self, now_ns: int | None = None, *, slack_ns: int = 0) -> bool:
        now = time.perf_counter_ns() if now_ns is None else now_ns
        return now >= self.end_ns - slack_ns

    def wait(self, timeout_s: float | None) -> float:
        """How long the next wait may last: the timeout, cut to the time left (never < 0)."""
        left = max(self.left_s(), 0.0)
        return left if timeout_s is None else min(timeout_s, left)


@dataclass(frozen=True, slots=True)
class Probe:
    """A raw response for diagnostics: nothing judged, only measured."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_ms: float
    http_version: str


class Core:
    """What sync and async clients share: URLs, headers, TLS and timeouts."""

    def __init__(
        self,
        settings: Settings,
        read_timeout_s: float | None,
        *,
        deadline_s: float | None = None,
        deadline_setting: str | None = None,
    ) -> None:
        self.settings = settings
        self.server = settings.base_url
        self.timeouts = Timeouts(connect_s=settings.connect_timeout_s, read_s=read_timeout_s)
        if deadline_s is not None and not deadline_s > 0:
            raise ValueError(f"deadline_s must be positive, not {deadline_s!r}")
        #: The total time one request may take (None: only the read timeout bounds it).
        self.deadline_s = deadline_s
        self.deadline_setting = deadline_setting or DEFAULT_DEADLINE_SETTING
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

    def deadline(self, now_ns: int | None = None) -> Deadline | None:
        """A new request's deadline, starting now (None when there is no total bound)."""
        return None if self.deadline_s is None else Deadline.start(self.deadline_s, now_ns)

    def extensions(self, deadline: Deadline | None) -> dict[str, object]:
        """Request extensions that carry ``deadline`` to the fast transport."""
        return {} if deadline is None else {DEADLINE_EXTENSION: deadline.end_ns}

    def deadline_passed(self, deadline: Deadline | None) -> bool:
        """Whether a timeout just seen is ``deadline`` running out (not a read timeout)."""
        return deadline is not None and deadline.expired(slack_ns=_DEADLINE_SLACK_NS)

    def deadline_error(self, deadline: Deadline, path: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{deadline.seconds:g} s",
            timeout_s=f"{deadline.seconds:g}",
            setting=self.deadline_setting,
            **self.where(path),
        )

    def check_deadline(self, deadline: Deadline | None, path: str, now_ns: int) -> None:
        """Raise :class:`DeadlineExceeded` when ``deadline`` has passed at ``now_ns``."""
        if deadline is not None and now_ns >= deadline.end_ns:
            raise self.deadline_error(deadline, path)

    @property
    def has_credentials(self) -> bool:
        return "Authorization" in self.headers

    def verify(self) -> ssl.SSLContext | bool:
        """What to give httpx's ``verify``: the trust context, or False under --insecure."""
        if self.server.scheme != "https":
            return True
        if self.settings.insecure:
            return False
        return trust_context(self.settings)

    def url(self, path: str) -> str:
        return self.server.url(path)

    def where(self, path: str) -> Where:
        return where(self.server, path)

    def check(
        self, status: int, headers: Mapping[str, str], body: bytes, path: str, model: str | None
    ) -> None:
        raise_for_response(
            status=status,
            headers=headers,
            body=body,
            settings=self.settings,
            path=path,
            model=model,
        )

    def decode_json(self, status: int, content_type: str, body: bytes, path: str) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise not_json(status, self.url(path), content_type, body) from None

    def check_heartbeat(self, status: int, content_type: str, body: bytes) -> str:
        text = body.decode("utf-8", "replace").strip()
        if "Ollama is running" not in text:
            raise not_json(status, self.url("/"), content_type, body)
        return text

    def not_ndjson(self, status: int, content_type: str, body: bytes, path: str) -> NotOllama:
        return not_json(status, self.url(path), content_type, body)


def chat_body(
    model: str,
    messages: list[Any],
    options: Mapping[str, Any] | None,
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


def request_body(request: ChatRequest) -> dict[str, Any]:
    """``/api/chat`` body of a :class:`ChatRequest`."""
    return chat_body(
        request.model,
        list(request.messages),
        request.options,
        request.think,
        request.keep_alive,
        stream=True,
    )


def generate_body(
    model: str,
    prompt: str,
    options: Mapping[str, Any] | None,
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
