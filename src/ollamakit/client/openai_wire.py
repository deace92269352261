"""The OpenAI-compatible wire, sans I/O: request bodies out, SSE bytes in, domain values out.

Design
------
llama.cpp's ``llama-server``, vLLM, LM Studio, SGLang and Ollama's own ``/v1`` all speak
``POST /v1/chat/completions`` with ``stream: true``: Server-Sent Events, one ``data: {json}``
frame per token, ``data: [DONE]`` at the end. This module turns those bytes into the
:mod:`ollamakit.domain` values the rest of the product already measures, and does no I/O at
all, so every rule below is tested with captured bytes and no server
(``tests/client/data/``). The backend (:mod:`ollamakit.client.openai`) feeds it raw socket reads.

Layers, bottom up:

* :class:`SSEDecoder` — bytes to events. Lines end in LF, CRLF or a lone CR (a CR at the end
  of one read may be half of a CRLF, so it is held back); ``:`` lines are comments (keep-alive
  pings); ``data:`` lines accumulate until a blank line; llama.cpp's non-standard ``error:``
  field is an ``error`` event. A line longer than ``max_line_bytes`` (1 MiB) is an error rather
  than unbounded memory: a token frame is a few hundred bytes.
* :class:`ChatStreamDecoder` — events to :class:`~ollamakit.domain.StreamChunk`. Answer text is
  ``choices[0].delta.content``; thinking is ``delta.reasoning_content`` (llama.cpp, DeepSeek)
  or ``delta.reasoning`` (Ollama's ``/v1``, vLLM, OpenRouter). Frames with neither (the first,
  role-only frame; the empty-delta ``finish_reason`` frame) yield no chunk, as an Ollama chunk
  with empty text would add nothing. The **final** chunk is the ``usage`` frame
  (``stream_options.include_usage``; ``choices: []``), or ``[DONE]`` when a server sends no
  usage. A stream that stops before either is cut (:class:`~ollamakit.errors.StreamCut`).
* :func:`final_stats` — ``usage`` and llama.cpp's ``timings`` to
  :class:`~ollamakit.domain.FinalStats`, labelled like Ollama's:

  ==================  ==========================================  ========================
  FinalStats          llama.cpp ``timings`` (preferred)           OpenAI ``usage``
  ==================  ==========================================  ========================
  prompt_eval_count   ``prompt_n`` (tokens evaluated, not cached) ``prompt_tokens`` −
                                                                  ``cached_tokens``
  prompt_eval_ms      ``prompt_ms``                               —
  prompt_cached_count ``cache_n``                                 ``prompt_tokens_details
                                                                  .cached_tokens``
  eval_count          ``predicted_n``                             ``completion_tokens``
  eval_ms             ``predicted_ms``                            —
  done_reason         ``finish_reason`` of the choice             same
  total_ms, load_ms   — (never made up)                           —
  ==================  ==========================================  ========================

  ``prompt_eval_count`` counts the tokens the server *evaluated*, so that ``prompt_tps =
  prompt_eval_count / prompt_eval_ms`` pairs a count with its own duration (llama.cpp reuses
  the cached prefix: ``usage.prompt_tokens`` = ``prompt_n`` + ``cache_n``, and dividing the
  total by ``prompt_ms`` would report a prefill rate hundreds of times too high). It is also
  what Ollama's own ``prompt_eval_count`` counts (its runner drops the cached prefix first).
* :func:`chat_body` — a :class:`~ollamakit.domain.ChatRequest` as an OpenAI request body.
* :func:`models_from_list`, :func:`engine_from_models`, :func:`version_from_props`,
  :func:`error_message` — the model list, which engine answered, error bodies.

Nothing here imports httpx; errors are the project's own (:mod:`ollamakit.errors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NotRequired, TypedDict

import orjson

from ollamakit.domain import ChatRequest, FinalStats, ModelInfo, StreamChunk
from ollamakit.errors import ProtocolError, StreamCut, StreamError
from ollamakit.i18n import t

MAX_LINE_BYTES: Final = 1 << 20
DONE_MARKER: Final = b"[DONE]"

# --------------------------------------------------------------------------- wire shapes


class Delta(TypedDict, total=False):
    role: str
    content: str | None
    reasoning_content: str | None
    reasoning: str | None


class Choice(TypedDict, total=False):
    index: int
    delta: Delta
    finish_reason: str | None


class PromptTokensDetails(TypedDict, total=False):
    cached_tokens: int


class Usage(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class Timings(TypedDict, total=False):
    """llama.cpp's server-side figures (milliseconds and counts)."""

    cache_n: int
    prompt_n: int
    prompt_ms: float
    prompt_per_second: float
    predicted_n: int
    predicted_ms: float
    predicted_per_second: float


class ChatCompletionChunk(TypedDict, total=False):
    id: str
    object: str  # "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str
    choices: list[Choice]
    usage: Usage | None
    timings: NotRequired[Timings]


class ModelObject(TypedDict, total=False):
    """One item of ``GET /v1/models`` ``data`` (``meta`` is llama.cpp's)."""

    id: str
    object: str
    created: int
    owned_by: str
    meta: dict[str, Any]


class StreamOptions(TypedDict):
    include_usage: bool


class ChatCompletionBody(TypedDict, total=False):
    model: str
    messages: list[dict[str, str]]
    stream: bool
    stream_options: StreamOptions
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: list[str]
    reasoning_effort: str


# --------------------------------------------------------------------------- SSE framing


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (``message`` unless an ``event:`` line said otherwise;
    ``error`` for llama.cpp's ``error:`` field) and its data lines joined by ``\\n``."""

    event: str
    data: bytes


class SSEDecoder:
    """Incremental Server-Sent Events decoder (the WHATWG rules a chat stream needs).

    >>> d = SSEDecoder("http://h/v1/chat/completions")
    >>> d.feed(b'data: {"a":1}\\n\\nda')
    [SSEEvent(event='message', data=b'{"a":1}')]
    >>> d.feed(b'ta: [DONE]\\r\\n\\r\\n: keep-alive\\n\\n')
    [SSEEvent(event='message', data=b'[DONE]')]
    >>> d.feed(b'data: x\\r')  # a lone CR at the end may be half a CRLF: held back
    []
    >>> d.feed(b'\\n\\r\\n')
    [SSEEvent(event='message', data=b'x')]
    >>> SSEDecoder("u").feed(b'data: a\\ndata: b\\n\\nerror: {"code":500}\\n\\n')
    [SSEEvent(event='message', data=b'a\\nb'), SSEEvent(event='error', data=b'{"code":500}')]
    >>> SSEDecoder("u", max_line_bytes=8).feed(b"data: 0123456789")
    Traceback (most recent call last):
    ...
    ollamakit.errors.ProtocolError: Unexpected answer from u: ...
    """

    __slots__ = ("_buffer", "_data", "_data_bytes", "_event", "_url", "max_line_bytes")

    def __init__(self, url: str, *, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._url = url
        self.max_line_bytes = max_line_bytes
        self._buffer = b""
        self._data: list[bytes] = []
        self._data_bytes = 0
        self._event = ""

    def feed(self, data: bytes) -> list[SSEEvent]:
        """The events completed by this read (possibly none)."""
        buf = self._buffer + data if self._buffer else data
        hold = b""
        if buf.endswith(b"\r"):
            buf, hold = buf[:-1], b"\r"
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        rest = lines.pop()
        if len(rest) > self.max_line_bytes:
            raise self._too_long(len(rest))
        self._buffer = rest + hold
        events: list[SSEEvent] = []
        for line in lines:
            self._line(line, events)
        return events

    def finish(self) -> list[SSEEvent]:
        """End of body: a last unterminated line and a last undispatched event still count
        (some servers omit the blank line after ``data: [DONE]``)."""
        rest, self._buffer = self._buffer.rstrip(b"\r"), b""
        events: list[SSEEvent] = []
        if rest:
            self._line(rest, events)
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event or "message", b"\n".join(self._data)))
            self._data = []
            self._data_bytes = 0
            self._event = ""
            return
        if len(line) > self.max_line_bytes:
            raise self._too_long(len(line))
        if line[0] == 0x3A:  # ":" — a comment (keep-alive)
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data" or name == b"error":
            if name == b"error":  # llama.cpp: "error: {json}" instead of an error event
                self._event = "error"
            self._data.append(value)
            self._data_bytes += len(value) + 1
            if self._data_bytes > self.max_line_bytes:
                raise self._too_long(self._data_bytes)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        # "id", "retry" and unknown fields are ignored, as the standard says.

    def _too_long(self, size: int) -> ProtocolError:
        return ProtocolError(
            t("engine.sse_too_long", size=size, limit=self.max_line_bytes), url=self._url
        )


# --------------------------------------------------------------------------- chat stream


def _int(value: object) -> int | None:
    """An integer count from JSON (bools are not counts).

    >>> _int(3), _int(3.0), _int("3"), _int(True), _int(None)
    (3, 3, None, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def final_stats(
    usage: Mapping[str, Any] | None,
    timings: Mapping[str, Any] | None,
    finish_reason: str | None,
) -> FinalStats:
    """The server's figures for a finished reply (see the table in the module docstring).

    llama.cpp (its ``timings`` win; 3 of 17 prompt tokens came from the cache):

    >>> final_stats(
    ...     {"prompt_tokens": 17, "completion_tokens": 9,
    ...      "prompt_tokens_details": {"cached_tokens": 3}},
    ...     {"cache_n": 3, "prompt_n": 14, "prompt_ms": 112.5, "predicted_n": 9,
    ...      "predicted_ms": 150.25},
    ...     "stop")
    FinalStats(done_reason='stop', total_ms=None, load_ms=None, prompt_eval_count=14, \
prompt_eval_ms=112.5, prompt_cached_count=3, eval_count=9, eval_ms=150.25)

    vLLM or Ollama's ``/v1``: counts only, no durations (never made up):

    >>> final_stats({"prompt_tokens": 17, "completion_tokens": 9}, None, "length")
    FinalStats(done_reason='length', total_ms=None, load_ms=None, prompt_eval_count=17, \
prompt_eval_ms=None, prompt_cached_count=None, eval_count=9, eval_ms=None)
    >>> final_stats(None, None, None)
    FinalStats(done_reason=None, total_ms=None, load_ms=None, prompt_eval_count=None, \
prompt_eval_ms=None, prompt_cached_count=None, eval_count=None, eval_ms=None)
    """
    usage = usage or {}
    timings = timings or {}
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else None
    prompt_total = _int(usage.get("prompt_tokens"))
    prompt_count = prompt_total - cached if prompt_total is not None and cached else prompt_total
    eval_count = _int(usage.get("completion_tokens"))
    prompt_ms = eval_ms = None
    if timings:
        prompt_count = _int(timings.get("prompt_n")) if "prompt_n" in timings else prompt_count
        cache_n = _int(timings.get("cache_n"))
        cached = cache_n if cache_n is not None else cached
        predicted_n = _int(timings.get("predicted_n"))
        eval_count = predicted_n if predicted_n is not None else eval_count
        prompt_ms = _float(timings.get("prompt_ms"))
        eval_ms = _float(timings.get("predicted_ms"))
    return FinalStats(
        done_reason=finish_reason,
        prompt_eval_count=prompt_count,
        prompt_eval_ms=prompt_ms,
        prompt_cached_count=cached,
        eval_count=eval_count,
        eval_ms=eval_ms,
    )


class ChatStreamDecoder:
    """``/v1/chat/completions`` SSE bytes to :class:`StreamChunk` values.

    >>> d = ChatStreamDecoder("http://h/v1/chat/completions")
    >>> d.feed(b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}'
    ...        b'\\n\\ndata: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\\n\\n', 10)
    [StreamChunk(arrival_ns=10, content='Hi', thinking='', final=None, created_ns=None)]
    >>> d.feed(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\\n\\n'
    ...        b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}\\n\\n', 20)
    [StreamChunk(arrival_ns=20, content='', thinking='', final=FinalStats(done_reason='stop', \
total_ms=None, load_ms=None, prompt_eval_count=5, prompt_eval_ms=None, prompt_cached_count=None, \
eval_count=1, eval_ms=None), created_ns=None)]
    >>> d.feed(b'data: [DONE]\\n\\n', 30), d.finish(31), d.complete
    ([], [], True)

    A mid-stream error (vLLM's ``data: {"error": ...}``, llama.cpp's ``error: ...``):

    >>> ChatStreamDecoder("u").feed(b'error: {"code":500,"message":"boom"}\\n\\n', 1)
    Traceback (most recent call last):
    ...
    ollamakit.errors.StreamError: The server failed in the middle of the reply: boom
    """

    __slots__ = (
        "_final_sent",
        "_finish_reason",
        "_sse",
        "_timings",
        "_url",
        "count",
        "done_marker",
        "frames",
        "model",
    )

    def __init__(self, url: str, *, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._url = url
        self._sse = SSEDecoder(url, max_line_bytes=max_line_bytes)
        self._finish_reason: str | None = None
        self._timings: Mapping[str, Any] | None = None
        self._final_sent = False
        #: ``[DONE]`` arrived.
        self.done_marker = False
        #: JSON frames decoded, and chunks yielded.
        self.frames = 0
        self.count = 0
        #: The ``model`` field the server put in its frames (llama.cpp echoes its alias).
        self.model: str | None = None

    @property
    def complete(self) -> bool:
        """Whether the final chunk (usage frame or ``[DONE]``) has been produced."""
        return self._final_sent

    def feed(self, data: bytes, arrival_ns: int) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        for event in self._sse.feed(data):
            chunk = self._event(event, arrival_ns)
            if chunk is not None:
                out.append(chunk)
        self.count += len(out)
        return out

    def finish(self, arrival_ns: int) -> list[StreamChunk]:
        """End of body. Raises :class:`StreamCut` if neither usage nor ``[DONE]`` came."""
        out: list[StreamChunk] = []
        for event in self._sse.finish():
            try:
                chunk = self._event(event, arrival_ns)
            except StreamError:
                raise
            except ProtocolError:
                continue  # a frame cut off mid-JSON by the end of the body: a cut stream
            if chunk is not None:
                out.append(chunk)
        self.count += len(out)
        if not self._final_sent:
            raise StreamCut(t("engine.no_done_frame", count=self.frames), url=self._url)
        return out

    def end_of_body(self, arrival_ns: int) -> list[StreamChunk]:
        """The body ended cleanly (:class:`~ollamakit.client.stream.StreamDecoder`)."""
        return self.finish(arrival_ns)

    def _event(self, event: SSEEvent, arrival_ns: int) -> StreamChunk | None:
        data = event.data
        if data == DONE_MARKER:
            self.done_marker = True
            if self._final_sent:
                return None
            self._final_sent = True
            return StreamChunk(
                arrival_ns, final=final_stats(None, self._timings, self._finish_reason)
            )
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            if event.event == "error":
                raise StreamError(data.decode("utf-8", "replace")[:500], url=self._url) from None
            raise ProtocolError(
                t("engine.sse_not_json", line=_preview(data)), url=self._url
            ) from None
        if not isinstance(obj, dict):
            raise ProtocolError(t("engine.sse_not_json", line=_preview(data)), url=self._url)
        if event.event == "error" or "error" in obj:
            raise StreamError(error_text(obj), url=self._url)
        self.frames += 1
        return self._frame(obj, arrival_ns)

    def _frame(self, obj: dict[str, Any], arrival_ns: int) -> StreamChunk | None:
        if self.model is None and isinstance(obj.get("model"), str):
            self.model = obj["model"]
        content = thinking = ""
        choices = obj.get("choices")
        if not isinstance(choices, list):
            choices = []
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # n > 1 is never asked for; only the first choice is the reply
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content += _text(delta.get("content"))
                thinking += _text(delta.get("reasoning_content")) or _text(delta.get("reasoning"))
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self._finish_reason = reason
        timings = obj.get("timings")
        if isinstance(timings, dict):
            self._timings = timings
        usage = obj.get("usage")
        final = None
        # The usage frame has "choices": []; some servers put usage on the finish frame
        # instead, and vLLM's continuous stats put it on every frame: only a finished one counts.
        if (
            isinstance(usage, dict)
            and not self._final_sent
            and (not choices or self._finish_reason is not None)
        ):
            self._final_sent = True
            final = final_stats(usage, self._timings, self._finish_reason)
        if not content and not thinking and final is None:
            return None
        return StreamChunk(arrival_ns, content=content, thinking=thinking, final=final)


def _preview(data: bytes, limit: int = 160) -> str:
    return data[:limit].decode("utf-8", "replace").splitlines()[0] if data else ""


# --------------------------------------------------------------------------- requests


def chat_body(
    request: ChatRequest, *, extra: Mapping[str, Any] | None = None
) -> ChatCompletionBody:
    """A streaming ``/v1/chat/completions`` body for ``request``.

    Ollama option names map to OpenAI's where there is one (``num_predict`` → ``max_tokens``,
    ``temperature``, ``top_p``, ``seed``, ``stop``); the rest (``num_ctx``, ``top_k`` ...) have
    no portable field and are left out. A think *level* becomes ``reasoning_effort``
    (``max`` → ``high``); ``think`` on/off has no portable field. ``extra`` adds engine-specific
    fields (llama.cpp's ``cache_prompt``), sent only when asked for.

    >>> body = chat_body(ChatRequest("m", ({"role": "user", "content": "hi"},),
    ...                              {"num_predict": 32, "temperature": 0, "num_ctx": 8192}))
    >>> body["max_tokens"], body["temperature"], "num_ctx" in body, body["stream_options"]
    (32, 0.0, False, {'include_usage': True})
    >>> chat_body(ChatRequest("m", (), {"num_predict": -1}), extra={"cache_prompt": False})
    {'model': 'm', 'messages': [], 'stream': True, 'stream_options': {'include_usage': True}, \
'cache_prompt': False}
    """
    body: ChatCompletionBody = {
        "model": request.model,
        "messages": [dict(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    options = request.options
    num_predict = _int(options.get("num_predict"))
    if num_predict is not None and num_predict > 0:
        body["max_tokens"] = num_predict
    temperature = _float(options.get("temperature"))
    if temperature is not None:
        body["temperature"] = temperature
    top_p = _float(options.get("top_p"))
    if top_p is not None:
        body["top_p"] = top_p
    seed = _int(options.get("seed"))
    if seed is not None:
        body["seed"] = seed
    stop = options.get("stop")
    if isinstance(stop, str):
        body["stop"] = [stop]
    elif isinstance(stop, list):
        body["stop"] = [str(s) for s in stop]
    if isinstance(request.think, str):
        body["reasoning_effort"] = "high" if request.think == "max" else request.think
    if extra:
        body.update(extra)  # type: ignore[typeddict-item]  # engine-specific fields
    return body


# --------------------------------------------------------------------------- models, engines


def _parameter_size(n_params: int) -> str:
    """Ollama's style: ``135M``, ``1.2B``.

    >>> [_parameter_size(n) for n in (134_515_008, 1_235_814_400, 70_553_706_496)]
    ['135M', '1.2B', '70.6B']
    """
    if n_params >= 1_000_000_000:
        return f"{n_params / 1e9:.1f}B"
    return f"{n_params / 1e6:.0f}M"


def models_from_list(body: object) -> list[ModelInfo]:
    """``GET /v1/models`` to :class:`ModelInfo` values (capabilities ``None``: unknown).

    llama.cpp adds a ``meta`` object (``size`` in bytes, ``n_params``, ``n_ctx_train``,
    ``ftype``) and an Ollama-shaped ``models`` list whose ``capabilities`` are used:

    >>> models_from_list({"object": "list", "data": [{"id": "smollm2-135m", "object": "model",
    ...     "owned_by": "llamacpp", "meta": {"size": 92_567_104, "n_params": 134_515_008,
    ...     "n_ctx_train": 8192}}],
    ...     "models": [{"model": "smollm2-135m", "capabilities": ["completion"]}]})
    [ModelInfo(name='smollm2-135m', size_bytes=92567104, family=None, parameter_size='135M', \
quantization=None, context_length=8192, capabilities=frozenset({'completion'}), remote=False, \
modified_at=None)]
    >>> models_from_list({"data": [{"id": "qwen3:0.6b", "owned_by": "library"}, {"x": 1}, 7]})
    [ModelInfo(name='qwen3:0.6b', ...)]
    >>> models_from_list({"object": "list", "data": None})
    []
    >>> models_from_list({"error": {"message": "no"}})
    Traceback (most recent call last):
    ...
    ValueError: not a /v1/models list
    """
    data = body.get("data") if isinstance(body, dict) else None
    if data is None and isinstance(body, dict) and body.get("object") == "list":
        data = []  # Ollama's /v1/models with no model pulled: "data": null
    if not isinstance(data, list):
        raise ValueError("not a /v1/models list")
    # llama.cpp also lists an Ollama-shaped "models" list, with capabilities.
    capabilities: dict[str, frozenset[str]] = {}
    ollama_shaped = body.get("models") if isinstance(body, dict) else None
    for entry in ollama_shaped if isinstance(ollama_shaped, list) else []:
        caps = entry.get("capabilities") if isinstance(entry, dict) else None
        if isinstance(caps, list) and isinstance(entry.get("model"), str):
            capabilities[entry["model"]] = frozenset(c for c in caps if isinstance(c, str) and c)
    out: list[ModelInfo] = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        meta = entry.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        n_params = _int(meta.get("n_params"))
        context = _int(meta.get("n_ctx_train"))
        if context is None:
            context = _int(entry.get("max_model_len"))  # vLLM
        out.append(
            ModelInfo(
                name=entry["id"],
                size_bytes=_int(meta.get("size")),
                parameter_size=_parameter_size(n_params) if n_params else None,
                context_length=context,
                quantization=_text(meta.get("ftype")) or None,
                capabilities=capabilities.get(entry["id"]),
            )
        )
    return out


#: ``owned_by`` values that name the engine.
OWNED_BY_ENGINES: Final = {
    "llamacpp": "llama.cpp",
    "vllm": "vllm",
    "sglang": "sglang",
    "organization_owner": "lm-studio",
    "library": "ollama",
}


def engine_from_models(body: object) -> str | None:
    """The engine a ``/v1/models`` answer names, or ``None`` when it does not tell.

    >>> engine_from_models({"data": [{"id": "m", "owned_by": "llamacpp"}]})
    'llama.cpp'
    >>> engine_from_models({"data": [{"id": "m", "owned_by": "vllm", "max_model_len": 4096}]})
    'vllm'
    >>> engine_from_models({"data": [{"id": "qwen3:0.6b", "owned_by": "library"}]})
    'ollama'
    >>> engine_from_models({"data": [{"id": "gpt-x", "owned_by": "openai"}]}) is None
    True
    """
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    for entry in data:
        if isinstance(entry, dict):
            engine = OWNED_BY_ENGINES.get(str(entry.get("owned_by", "")).lower())
            if engine is not None:
                return engine
    return None


def version_from_props(body: object) -> str | None:
    """llama.cpp's build from ``GET /props`` (``build_info``, e.g. ``b6915-a1b2c3d``), or None
    when the body is not llama.cpp's.

    >>> version_from_props({"build_info": "b6915-a1b2c3d", "total_slots": 1})
    'b6915-a1b2c3d'
    >>> version_from_props({"total_slots": 1}), version_from_props([])
    ('', None)
    >>> version_from_props({"build_info": "b0-unknown"})  # a build from a source tarball
    ''

    """
    if not isinstance(body, dict) or not ("build_info" in body or "total_slots" in body):
        return None
    build = _text(body.get("build_info"))
    return "" if build.startswith("b0-") else build  # "b0-unknown": built without git


def error_text(obj: Mapping[str, Any]) -> str:
    """The message of an error object, in the shapes OpenAI-compatible servers send.

    >>> error_text({"error": {"message": "File Not Found", "type": "not_found_error", "code": 404}})
    'File Not Found'
    >>> error_text({"error": "model not found"})
    'model not found'
    >>> error_text({"object": "error", "message": "max_tokens too large", "code": 400})  # vLLM
    'max_tokens too large'
    """
    err = obj.get("error")
    if isinstance(err, dict):
        return _text(err.get("message")) or orjson.dumps(err).decode()
    if isinstance(err, str):
        return err
    if isinstance(obj.get("message"), str):
        return str(obj["message"])
    if obj.get("object") == "error":
        return orjson.dumps(dict(obj)).decode()
    return ""


def error_message(body: bytes) -> str | None:
    """The message of an error *body* (``None`` if it is not a JSON error object).

    >>> error_message(b'{"error":{"message":"File Not Found","type":"not_found_error","code":404}}')
    'File Not Found'
    >>> error_message(b"<html>502 Bad Gateway</html>") is None
    True
    """
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    return error_text(obj) or None
