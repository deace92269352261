"""The doctor's checks on an OpenAI-compatible server (llama.cpp, vLLM, LM Studio, Ollama's /v1).

Design
------
:func:`ollamakit.diagnostics.diagnose` walks the same layers whatever answers; DNS, TCP and
TLS are the same. Above them it asks :func:`detect_api` which API to check (``--api``; with
``auto``, what the server answers, as every other command does) and, for an OpenAI-compatible
server, hands the HTTP steps to :func:`diagnose_openai`, which yields results under the *same*
step names so that ``--json`` keeps one shape:

* ``auth`` — the same judgement of 401/403, on ``GET /v1/models``;
* ``root`` — ``GET /`` is not asked: llama-server answers it with its web UI or a 404, which
  says nothing about the API. The step names what answered ``/v1/models`` instead;
* ``version`` — the engine and its version where it tells (llama.cpp ``/props``); a server
  that does not say is not a failure;
* ``tags`` — ``/v1/models``; what cannot be checked on such a server is said in a note
  (no ``/api/ps``: where a model sits, GPU or CPU), never failed;
* ``rtt`` — ``GET /v1/models``;
* ``generate`` / ``streaming`` — one short ``/v1/chat/completions`` stream through the
  backend, judged by the same :func:`~ollamakit.diagnostics.check_generate` and
  :func:`~ollamakit.diagnostics.check_streaming` (SSE frames carry no per-token server
  timestamps, so the buffering verdict is "cannot tell" unless arrival times say enough).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Final, cast

from ollamakit import diagnostics as d
from ollamakit.client import (
    AutoBackend,
    OllamaClient,
    OpenAIBackend,
    ReplyStream,
    identity_line,
)
from ollamakit.config import Settings
from ollamakit.domain import ChatRequest, ServerIdentity
from ollamakit.errors import OllamaError, OllamakitError
from ollamakit.i18n import t

MODELS_PATH: Final = "/v1/models"
#: The steps whose title is not Ollama's here: ``root`` names what answered (no ``GET /``),
#: ``version`` the engine's version (no ``/api/version``).
TITLES: Final = {"root": "doctor.title_root_openai", "version": "doctor.title_version_openai"}
_ENGINES: Final = {"ollama": "Ollama", "vllm": "vLLM", "lm-studio": "LM Studio", "sglang": "SGLang"}


def speaks_openai_only(settings: Settings, auth: d.CheckResult) -> bool:
    """``--api auto``, after the authentication step: is this an OpenAI-compatible server
    without Ollama's native API? Asked only when that step got an HTTP answer and did not
    fail, so an unreachable or stalled server costs no extra timeout (the Ollama steps
    explain it)."""
    if settings.api != "auto" or auth.status is d.Status.FAIL or auth.error is not None:
        return False
    return detect_api(settings) == "openai"


def detect_api(settings: Settings) -> str:
    """``ollama`` or ``openai``: ``--api`` when given, else what the server answers.

    Any failure of the detection means "check it as Ollama": the Ollama steps already explain
    an unreachable server, a 401 or a proxy page better than a detection error could.
    """
    if settings.api != "auto":
        return settings.api
    backend = AutoBackend(settings, read_timeout_s=d.SMALL_REQUEST_TIMEOUT_S)
    try:
        return backend.connect().api
    except OllamakitError:
        return "ollama"
    finally:
        backend.close()


class _GenerateVia:
    """What :func:`ollamakit.diagnostics.check_generate` asks of a client (``stream_generate``),
    over ``/v1/chat/completions``: the prompt as one user message, the same options."""

    def __init__(self, backend: OpenAIBackend) -> None:
        self.backend = backend

    def stream_generate(
        self, model: str, prompt: str, *, options: dict[str, Any] | None = None
    ) -> ReplyStream:
        request = ChatRequest(model, ({"role": "user", "content": prompt},), dict(options or {}))
        return self.backend.stream_chat(request)


def _not_here_note(identity: ServerIdentity) -> str:
    engine = identity.engine if identity.engine != "openai-compatible" else "this server"
    return t("doctor.openai_no_ps", engine=engine)


def diagnose_openai(
    settings: Settings,
    *,
    generate: bool,
    model: str | None,
    notify: Callable[[str], None],
) -> Iterator[d.CheckResult]:
    """The HTTP steps (auth … streaming) for an OpenAI-compatible server."""

    def skip_rest(after: str) -> Iterator[d.CheckResult]:
        for name in d.STEPS[d.STEPS.index(after) + 1 :]:
            yield d.CheckResult(
                name, d.Status.SKIP, t("doctor.skipped"), title_key=TITLES.get(name)
            )

    small = OllamaClient(
        settings, read_timeout_s=min(settings.benchmark_timeout_s, d.SMALL_REQUEST_TIMEOUT_S)
    )
    with small:
        notify("auth")
        auth = d.check_auth(small, settings, path=MODELS_PATH)
        yield auth
        if auth.status is d.Status.FAIL:
            yield from skip_rest("auth")
            return
    backend = OpenAIBackend(settings, read_timeout_s=settings.benchmark_timeout_s)
    with backend:
        notify("root_openai")
        start = time.perf_counter_ns()
        try:
            identity = backend.connect()
        except OllamaError as exc:
            yield _failed("root", exc, start)
            yield from skip_rest("root")
            return
        line = identity_line(identity, settings.base_url.redacted())
        yield d.CheckResult(
            "root",
            d.Status.OK,
            t("doctor.openai_root", line=line),
            _ms(start),
            {"api": identity.api, "engine": identity.engine},
            title_key=TITLES["root"],
        )
        yield d.CheckResult(
            "version",
            d.Status.OK if identity.version else d.Status.SKIP,
            t(
                "doctor.openai_version",
                engine=_ENGINES.get(identity.engine, identity.engine),
                version=identity.version,
            )
            if identity.version
            else t("doctor.openai_no_version", engine=identity.engine),
            None,
            {"version": identity.version, "engine": identity.engine, "api": identity.api},
            title_key=TITLES["version"],
        )
        notify("tags")
        start = time.perf_counter_ns()
        try:
            models = backend.list_models()
        except OllamaError as exc:
            yield _failed("tags", exc, start)
            yield from skip_rest("tags")
            return
        names = [m.name for m in models]
        details: dict[str, Any] = {
            "count": len(models),
            "models": [{"name": m.name, "size": m.size_bytes} for m in models],
        }
        note = _not_here_note(identity)
        if not models:
            yield d.CheckResult(
                "tags",
                d.Status.WARN,
                t("doctor.tags_empty"),
                _ms(start),
                details,
                t("doctor.tags_empty_fix"),
                notes=(note,),
            )
        else:
            shown = t("errors.list_sep").join(names[:6])
            if len(names) > 6:
                shown += t("doctor.tags_more", more=len(names) - 6)
            yield d.CheckResult(
                "tags",
                d.Status.OK,
                t("doctor.tags_ok", count=len(models), names=shown),
                _ms(start),
                details,
                notes=(note,),
            )
    with OllamaClient(
        settings, read_timeout_s=min(settings.benchmark_timeout_s, d.SMALL_REQUEST_TIMEOUT_S)
    ) as probe_client:
        notify("rtt")
        rtt = d.check_rtt(probe_client, path=MODELS_PATH)
        yield rtt
        if rtt.status is d.Status.FAIL:
            yield from skip_rest("rtt")
            return
    if not generate:
        yield d.CheckResult("generate", d.Status.SKIP, t("doctor.generate_disabled"))
        yield d.CheckResult("streaming", d.Status.SKIP, t("doctor.generate_disabled"))
        return
    notify("generate")
    candidates = [model] if model else names
    with OpenAIBackend(settings, read_timeout_s=settings.benchmark_timeout_s) as chat:
        # check_generate only calls stream_generate(model, prompt, options=...) on its client.
        result, generation = d.check_generate(cast(OllamaClient, _GenerateVia(chat)), candidates)
    yield result
    if generation is None:
        yield d.CheckResult("streaming", d.Status.SKIP, t("doctor.skipped"))
        return
    yield d.check_streaming(generation)


def _failed(name: str, exc: OllamaError, start_ns: int) -> d.CheckResult:
    details = {"error": type(exc).__name__}
    return d.CheckResult(
        name,
        d.Status.FAIL,
        exc.message,
        _ms(start_ns),
        details,
        exc.hint,
        (),
        exc,
        title_key=TITLES.get(name),
    )


def _ms(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


__all__ = ["TITLES", "detect_api", "diagnose_openai", "speaks_openai_only"]
