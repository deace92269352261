"""The server client: the only package that touches httpx, and where errors are translated.

Layout
------
``core``     sans-I/O: headers, URLs, timeouts, the one TLS trust context, request bodies
``judge``    pure response judging and httpx-exception translation into :mod:`ollamakit.errors`
``ndjson``   the stream decoder (validated :class:`~ollamakit.domain.StreamChunk` values)
``tls``      a small X.509 reader and certificate explanations
``advice``   what a 401 means, and the curl command that repeats a request
``log``      the ``--debug`` request log
``sync``/``aio``   thin shells over httpx: :class:`OllamaClient`, :class:`AsyncOllamaClient`
``backend``  the :class:`Backend`/:class:`AsyncBackend` protocol (docs/architecture.md)
``ollama``   Ollama's native API behind that protocol
``openai``   OpenAI-compatible servers (``openai_wire``: their sans-I/O SSE decoding) and the
           ``--api auto`` detection (docs/engines.md)

:func:`open_backend` / :func:`open_async_backend` pick a backend by API name from a registry;
another API is one module plus one :func:`register_backend` call. Redirects are never
followed: a redirected POST turns into a GET, so a 3xx becomes an error naming the URL to use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ollamakit.client.advice import curl_command
from ollamakit.client.aio import AsyncChunkStream, AsyncOllamaClient
from ollamakit.client.backend import AsyncBackend, AsyncReplyStream, Backend, ReplyStream
from ollamakit.client.core import (
    DEFAULT_DEADLINE_SETTING,
    MAX_BODY_BYTES,
    USER_AGENT,
    Deadline,
    Probe,
    StreamReused,
    trust_context,
)
from ollamakit.client.judge import first_line, raise_for_response, translate, where
from ollamakit.client.ndjson import MAX_LINE_BYTES, NDJSONDecoder, final_stats
from ollamakit.client.ollama import AsyncOllamaBackend, OllamaBackend
from ollamakit.client.openai import (
    AsyncAutoBackend,
    AsyncOpenAIBackend,
    AutoBackend,
    OpenAIBackend,
    identity_line,
)
from ollamakit.client.sync import ChunkStream, OllamaClient
from ollamakit.client.tls import (
    CERT_PROBE_TIMEOUT_S,
    CertificateInfo,
    fetch_certificate,
    parse_certificate,
    tls_verify_error,
    trust_label,
)
from ollamakit.config import Settings
from ollamakit.domain import StreamChunk
from ollamakit.errors import HTTPError, OllamaError, UsageError

#: The name callers typed against before the domain values existed.
Chunk = StreamChunk


@dataclass(frozen=True, slots=True)
class Bounds:
    """How long a backend's requests may take: the read timeout (per wait; None: the
    settings' ``BENCHMARK_TIMEOUT_SECONDS``) and the total deadline of each request (None:
    none), with the setting its error names (see :mod:`ollamakit.client.core`)."""

    read_timeout_s: float | None = None
    deadline_s: float | None = None
    deadline_setting: str | None = None


@dataclass(frozen=True, slots=True)
class BackendFactory:
    """How to open one API's backends (sync and async) from the settings."""

    sync: Callable[[Settings, Bounds], Backend]
    async_: Callable[[Settings, Bounds], AsyncBackend]


_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(
    api: str,
    sync: Callable[[Settings, Bounds], Backend],
    async_: Callable[[Settings, Bounds], AsyncBackend],
) -> None:
    """Make ``api`` available to :func:`open_backend` (``client/openai.py`` adds "openai")."""
    _REGISTRY[api] = BackendFactory(sync, async_)


def _factory(api: str) -> BackendFactory:
    # "auto" means Ollama when nothing registered a detector for it.
    name = "ollama" if api == "auto" and "auto" not in _REGISTRY else api
    factory = _REGISTRY.get(name)
    if factory is None:
        names = ["auto", *sorted(n for n in _REGISTRY if n != "auto")]
        raise UsageError(f"--api {api}: one of {', '.join(names)}")
    return factory


def open_backend(
    settings: Settings,
    api: str | None = None,
    *,
    read_timeout_s: float | None = None,
    deadline_s: float | None = None,
    deadline_setting: str | None = None,
) -> Backend:
    """The synchronous backend for ``api`` ("auto", "ollama", "openai"; default: the
    settings' ``--api``/``OLLAMAKIT_API``). With "auto", ``connect()`` detects the API.

    ``deadline_s`` bounds the total time of each request, streams included (a trickling or
    endless answer raises :class:`~ollamakit.errors.DeadlineExceeded`); ``deadline_setting``
    is the setting its message tells the user to raise."""
    bounds = Bounds(read_timeout_s, deadline_s, deadline_setting)
    return _factory(api or settings.api).sync(settings, bounds)


def open_async_backend(
    settings: Settings,
    api: str | None = None,
    *,
    read_timeout_s: float | None = None,
    deadline_s: float | None = None,
    deadline_setting: str | None = None,
) -> AsyncBackend:
    """The asynchronous backend for ``api`` (as :func:`open_backend`)."""
    bounds = Bounds(read_timeout_s, deadline_s, deadline_setting)
    return _factory(api or settings.api).async_(settings, bounds)


def _kw(bounds: Bounds) -> dict[str, Any]:
    return {
        "read_timeout_s": bounds.read_timeout_s,
        "deadline_s": bounds.deadline_s,
        "deadline_setting": bounds.deadline_setting,
    }


register_backend(
    "ollama",
    lambda s, b: OllamaBackend(s, **_kw(b)),
    lambda s, b: AsyncOllamaBackend(s, **_kw(b)),
)
register_backend(
    "openai",
    lambda s, b: OpenAIBackend(s, **_kw(b)),
    lambda s, b: AsyncOpenAIBackend(s, **_kw(b)),
)
register_backend(
    "auto",
    lambda s, b: AutoBackend(s, **_kw(b)),
    lambda s, b: AsyncAutoBackend(s, **_kw(b)),
)

__all__ = [
    "CERT_PROBE_TIMEOUT_S",
    "DEFAULT_DEADLINE_SETTING",
    "MAX_BODY_BYTES",
    "MAX_LINE_BYTES",
    "USER_AGENT",
    "AsyncAutoBackend",
    "AsyncBackend",
    "AsyncChunkStream",
    "AsyncOllamaBackend",
    "AsyncOllamaClient",
    "AsyncOpenAIBackend",
    "AsyncReplyStream",
    "AutoBackend",
    "Backend",
    "Bounds",
    "CertificateInfo",
    "Chunk",
    "ChunkStream",
    "Deadline",
    "HTTPError",
    "NDJSONDecoder",
    "OllamaBackend",
    "OllamaClient",
    "OllamaError",
    "OpenAIBackend",
    "Probe",
    "ReplyStream",
    "StreamReused",
    "curl_command",
    "fetch_certificate",
    "final_stats",
    "first_line",
    "identity_line",
    "open_async_backend",
    "open_backend",
    "parse_certificate",
    "raise_for_response",
    "register_backend",
    "tls_verify_error",
    "translate",
    "trust_context",
    "trust_label",
    "where",
]
