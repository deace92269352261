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
* timeouts, request bodies, and the once-only guard of a reply stream.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import certifi
import orjson

from ollamakit import __version__
from ollamakit.client.judge import Timeouts, not_json, raise_for_response, where
from ollamakit.config import Settings
from ollamakit.domain import ChatRequest
from ollamakit.errors import ConfigError, NotOllama, Where
from ollamakit.i18n import t

USER_AGENT: Final = f"ollamakit/{__version__}"


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
class Probe:
    """A raw response for diagnostics: nothing judged, only measured."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_ms: float
    http_version: str


class Core:
    """What sync and async clients share: URLs, headers, TLS and timeouts."""

    def __init__(self, settings: Settings, read_timeout_s: float | None) -> None:
        self.settings = settings
        self.server = settings.base_url
        self.timeouts = Timeouts(connect_s=settings.connect_timeout_s, read_s=read_timeout_s)
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
