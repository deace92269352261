"""The OpenAI-compatible layer, as Ollama's ``/v1`` and as llama.cpp's ``llama-server``.

Ollama (``middleware/openai.go``, ``openai/openai.go``): ``GET /v1/models`` (``data`` is
``null`` with no models), ``GET /v1/models/{model}``, ``POST /v1/chat/completions``. ``stream``
defaults to false. A stream is SSE: ``data: {json}\\n\\n`` frames (every delta carries
``role``; reasoning in ``delta.reasoning``), a finish frame with ``finish_reason``, a usage frame
with ``choices: []`` only when ``stream_options.include_usage`` is true, then ``data: [DONE]``.
Errors are ``{"error":{"message","type","param":null,"code":null}}``.

llama-server (``--engine llama.cpp``): no ``/api/*`` route at all (404 with a JSON body), ``GET
/health``, ``GET /props``, ``/v1/models`` (and ``/models``) with both an OpenAI ``data`` list
(``owned_by: "llamacpp"``) and an Ollama-shaped ``models`` list; the request's ``model`` is
ignored (one model per server, the first configured); the first frame carries ``role`` with
``content: null``, reasoning comes in ``delta.reasoning_content``, and the usage frame (and a
non-streaming reply) carries ``timings``: ``cache_n``, ``prompt_n``, ``prompt_ms``,
``predicted_n``, ``predicted_ms`` and per-token/per-second rates. Keys are sorted, as
nlohmann::json writes them.

Both share the simulator's generation core (:meth:`SimApp._serve`): the same timing, prefix
cache, faults and request log; only the framing (a :class:`~ollamakit.sim.app.Sink`) differs.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import orjson

from ollamakit.sim.app import Done, Sink, _Generation, _Reply
from ollamakit.sim.engine import LoadState
from ollamakit.sim.faults import JSON_UTF8, ApiError
from ollamakit.sim.gojson import (
    MAX_DURATION_NS,
    EmptyBody,
    GoDecodeError,
    decode_body,
    dumps,
)
from ollamakit.sim.http import Request, Responder
from ollamakit.sim.log import RequestRecord
from ollamakit.sim.stream import ChunkEncoder

if TYPE_CHECKING:
    from ollamakit.sim.app import SimApp

SSE: Final = "text/event-stream"
DONE_FRAME: Final = b"data: [DONE]\n\n"
LLAMA_FINGERPRINT: Final = "b6500-ollamakit-sim"
_TYPES: Final = {400: "invalid_request_error", 404: "not_found_error"}

RouteHandler = Callable[[Request, Responder, RequestRecord], Awaitable[None]]


def openai_error(status: int, message: str) -> dict[str, Any]:
    """Ollama's ``openai.NewError``: the type follows the status."""
    kind = _TYPES.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def llama_error(status: int, message: str) -> dict[str, Any]:
    kind = {404: "not_found_error", 503: "unavailable_error"}.get(status, "invalid_request_error")
    return {"error": {"code": status, "message": message, "type": kind}}


def _sorted(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI request fields mapped onto Ollama options (as the middleware does)."""
    options: dict[str, Any] = {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool):
        options["num_predict"] = limit
    for key in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
        if key in body and body[key] is not None:
            options[key] = body[key]
    stop = body.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif isinstance(stop, list):
        options["stop"] = stop
    return options


class OllamaSSESink(Sink):
    """Ollama's ``/v1/chat/completions`` framing."""

    def __init__(self, gen: _Generation, framed: bool) -> None:
        self.gen = gen
        self.framed = framed
        self.id = f"chatcmpl-{random.randrange(999)}"
        self.created = int(time.time())
        self.head: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": gen.model,
            "system_fingerprint": "fp_ollama",
        }

    def encoder(self) -> ChunkEncoder:
        pre = (
            dumps(self.head)[:-1]
            + b',"choices":[{"index":0,"delta":{"role":"assistant","content":"'
        )
        return ChunkEncoder(
            b"data: " + pre,
            b"",
            b'","reasoning":"',
            b'"},"finish_reason":null}]}\n\n',
            framed=self.framed,
            stamped=False,
            content_type=SSE,
        )

    def _frame(self, obj: Any) -> bytes:
        return b"data: " + dumps(obj) + b"\n\n"

    def _usage(self, done: Done) -> dict[str, int]:
        prompt = done.prompt_eval_count or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": done.eval_count,
            "total_tokens": prompt + done.eval_count,
        }

    def final_lines(self, done: Done) -> list[bytes]:
        delta = {"role": "assistant", "content": done.reply.tail_text()}
        choice = {"index": 0, "delta": delta, "finish_reason": done.done_reason}
        lines = [self._frame({**self.head, "choices": [choice]})]
        if self.gen.include_usage:
            lines.append(self._frame({**self.head, "choices": [], "usage": self._usage(done)}))
        lines.append(DONE_FRAME)
        return lines

    def _message(self, content: str, thinking: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["reasoning"] = thinking
        return message

    def final_body(self, done: Done) -> tuple[int, bytes]:
        reply = done.reply
        choice = {
            "index": 0,
            "message": self._message(reply.content(), reply.thinking_text()),
            "finish_reason": done.done_reason,
        }
        body = {**self.head, "object": "chat.completion", "choices": [choice]}
        body["usage"] = self._usage(done)
        return 200, dumps(body)

    def partial(self, reply: _Reply, sent: int) -> dict[str, Any]:
        content, thinking = reply.streamed_text(sent)
        choice = {"index": 0, "message": self._message(content, thinking), "finish_reason": None}
        return {**self.head, "object": "chat.completion", "choices": [choice]}

    def error_line(self, message: str) -> bytes:
        return self._frame(openai_error(500, message))


class LlamaSink(Sink):
    """llama-server's framing: sorted keys, ``reasoning_content``, ``timings``."""

    json_type = JSON_UTF8

    def __init__(self, gen: _Generation, framed: bool) -> None:
        self.gen = gen
        self.framed = framed
        self.id = "chatcmpl-" + "".join(random.choices(string.ascii_letters + string.digits, k=32))
        self.created = int(time.time())
        self.tail_fields: dict[str, Any] = {
            "created": self.created,
            "id": self.id,
            "model": gen.model,
            "system_fingerprint": LLAMA_FINGERPRINT,
            "object": "chat.completion.chunk",
        }

    def _frame(self, obj: Any) -> bytes:
        return b"data: " + _sorted(obj) + b"\n\n"

    def encoder(self) -> ChunkEncoder:
        tail = _sorted(self.tail_fields)[1:]  # "created":...} without the opening brace
        return ChunkEncoder(
            b'data: {"choices":[{"delta":{"',
            b'content":"',
            b'reasoning_content":"',
            b'"},"finish_reason":null,"index":0}],' + tail + b"\n\n",
            framed=self.framed,
            stamped=False,
            content_type=SSE,
        )

    def preamble(self) -> bytes:
        choice = {
            "delta": {"role": "assistant", "content": None},
            "finish_reason": None,
            "index": 0,
        }
        return self._frame({**self.tail_fields, "choices": [choice]})

    @staticmethod
    def timings(done: Done) -> dict[str, Any]:
        prompt_n = max(0, (done.prompt_eval_count or 0) - done.cached)
        prompt_ms = done.prompt_eval_ns / 1e6
        predicted_ms = done.eval_ns / 1e6
        return {
            "cache_n": done.cached,
            "prompt_n": prompt_n,
            "prompt_ms": prompt_ms,
            "prompt_per_token_ms": prompt_ms / prompt_n if prompt_n else 0.0,
            "prompt_per_second": prompt_n / prompt_ms * 1e3 if prompt_ms else 0.0,
            "predicted_n": done.eval_count,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": predicted_ms / done.eval_count if done.eval_count else 0.0,
            "predicted_per_second": done.eval_count / predicted_ms * 1e3 if predicted_ms else 0.0,
        }

    @staticmethod
    def usage(done: Done) -> dict[str, Any]:
        prompt = done.prompt_eval_count or 0
        return {
            "completion_tokens": done.eval_count,
            "prompt_tokens": prompt,
            "total_tokens": prompt + done.eval_count,
            "prompt_tokens_details": {"cached_tokens": done.cached},
        }

    def final_lines(self, done: Done) -> list[bytes]:
        lines = []
        tail = done.reply.tail_text()
        if tail:
            choice = {"delta": {"content": tail}, "finish_reason": None, "index": 0}
            lines.append(self._frame({**self.tail_fields, "choices": [choice]}))
        finish = {"delta": {}, "finish_reason": done.done_reason, "index": 0}
        lines.append(self._frame({**self.tail_fields, "choices": [finish]}))
        if self.gen.include_usage:
            usage = {**self.tail_fields, "choices": [], "usage": self.usage(done)}
            usage["timings"] = self.timings(done)
            lines.append(self._frame(usage))
        lines.append(DONE_FRAME)
        return lines

    def _message(self, content: str, thinking: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["reasoning_content"] = thinking
        return message

    def final_body(self, done: Done) -> tuple[int, bytes]:
        reply = done.reply
        choice = {
            "finish_reason": done.done_reason,
            "index": 0,
            "message": self._message(reply.content(), reply.thinking_text()),
        }
        body = {**self.tail_fields, "object": "chat.completion", "choices": [choice]}
        body["usage"] = self.usage(done)
        body["timings"] = self.timings(done)
        return 200, _sorted(body)

    def partial(self, reply: _Reply, sent: int) -> dict[str, Any]:
        content, thinking = reply.streamed_text(sent)
        choice = {"finish_reason": None, "index": 0, "message": self._message(content, thinking)}
        return {**self.tail_fields, "object": "chat.completion", "choices": [choice]}

    def error_line(self, message: str) -> bytes:
        return self._frame(llama_error(500, message))


class OpenAIRoutes:
    """The ``/v1`` handlers of a :class:`SimApp`, and the whole of llama-server's API."""

    def __init__(self, app: SimApp) -> None:
        self.app = app
        self.handlers: dict[tuple[str, str], RouteHandler] = {
            ("GET", "/v1/models"): self._models,
            ("GET", "/v1/models/:model"): self._model,
            ("POST", "/v1/chat/completions"): self._chat,
        }
        if app.config.engine == "llama.cpp":
            self._preload()

    @property
    def llama(self) -> bool:
        return self.app.config.engine == "llama.cpp"

    def _send(self, resp: Responder, status: int, obj: Any) -> None:
        resp.send(status, _sorted(obj) if self.llama else dumps(obj), JSON_UTF8)

    def _error(self, resp: Responder, record: RequestRecord, status: int, message: str) -> None:
        record.error = message
        if not resp.started:
            self._send(resp, status, (llama_error if self.llama else openai_error)(status, message))

    # --- Ollama's /v1 ----------------------------------------------------------------------

    def _model_entry(self, name: str) -> dict[str, Any]:
        owner = name.split("/", 1)[0] if "/" in name else "library"
        created = self.app.modified_at[name] // 1_000_000_000
        return {"id": name, "object": "model", "created": created, "owned_by": owner}

    async def _models(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        names = sorted(self.app.modified_at, key=self.app.modified_at.__getitem__, reverse=True)
        data = [self._model_entry(n) for n in names] or None  # Go: a nil slice is null
        self._send(resp, 200, {"object": "list", "data": data})

    async def _model(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        name = req.path.rsplit("/", 1)[-1]
        record.model = name
        spec = self.app.config.find(name)
        if spec is None:
            self._error(resp, record, 404, f"model '{name}' not found")
            return
        self._send(resp, 200, self._model_entry(spec.tag_name))

    async def _chat(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        try:
            body = self._body(req, record)
            gen = self._generation(body, record)
            sink: Sink = (
                LlamaSink(gen, resp.chunked) if self.llama else OllamaSSESink(gen, resp.chunked)
            )
            await self.app._serve(gen, sink, resp, record)
        except ApiError as exc:
            self._error(resp, record, exc.status, exc.message)

    def _body(self, req: Request, record: RequestRecord) -> dict[str, Any]:
        try:
            obj = decode_body(req.body)
        except EmptyBody:
            raise ApiError(400, "missing request body") from None
        except GoDecodeError as exc:
            raise ApiError(400, str(exc)) from None
        record.body = obj
        if not isinstance(obj, dict):
            raise ApiError(400, "invalid request body")
        return obj

    def _generation(self, body: dict[str, Any], record: RequestRecord) -> _Generation:
        app = self.app
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "messages is required")
        stream = body.get("stream") is True  # OpenAI: false unless asked
        record.stream = stream
        stream_options = body.get("stream_options")
        include_usage = (
            isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        )
        if self.llama:
            spec = app.config.models[0]
            model = str(body.get("model") or spec.tag_name)
            thinking, tags = spec.thinking, False
        else:
            model = str(body.get("model") or "")
            app._check_name(model, chat=True)
            spec = app._lookup(model, chat=True)
            if spec.embedding:
                raise ApiError(400, f'"{model}" does not support chat')
            effort = body.get("reasoning_effort")
            reasoning = body.get("reasoning")
            if isinstance(reasoning, dict) and effort is None:
                effort = reasoning.get("effort")
            think: Any = None
            if isinstance(effort, str):
                think = False if effort == "none" else effort
            thinking, tags = app._think(spec, model, think)
        record.model = model
        return _Generation(
            api="openai",
            model=model,
            spec=spec,
            body=body,
            stream=stream,
            think=thinking,
            think_tags=tags,
            options=_options(body),
            messages=[m for m in messages if isinstance(m, dict)],
            empty=False,
            keep_alive=MAX_DURATION_NS / 1e9 if self.llama else None,
            include_usage=include_usage,
        )

    # --- llama-server ----------------------------------------------------------------------

    def _preload(self) -> None:
        """llama-server loads its model at start-up, before it listens."""
        app = self.app
        for spec in app.config.models[:1]:
            rt = app.scheduler.runtime(spec)
            rt.state = LoadState.LOADED
            rt.num_ctx = app.config.num_ctx(spec)
            rt.expires_at_ns = rt.expires_at(MAX_DURATION_NS)

    async def llamacpp_dispatch(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        path, method = req.path, req.method
        try:
            if method == "GET" and path == "/health":
                self._send(resp, 200, {"status": "ok"})
            elif method == "GET" and path == "/props":
                self._send(resp, 200, self._props())
            elif method == "GET" and path in ("/v1/models", "/models"):
                self._send(resp, 200, self._llama_models())
            elif method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
                await self._chat(req, resp, record)
            else:
                self._send(resp, 404, llama_error(404, "File Not Found"))
        except ApiError as exc:
            self._error(resp, record, exc.status, exc.message)

    def _props(self) -> dict[str, Any]:
        config = self.app.config
        spec = config.models[0] if config.models else None
        n_ctx = config.num_ctx(spec) if spec else 4096
        return {
            "default_generation_settings": {"n_ctx": n_ctx, "params": {"temperature": 0.8}},
            "total_slots": (spec.num_parallel if spec else None) or config.num_parallel,
            "model_path": f"/models/{spec.name.replace(':', '-')}.gguf" if spec else "",
            "chat_template": "{{ messages }}",
            "modalities": {"vision": False, "audio": False},
            "build_info": LLAMA_FINGERPRINT,
        }

    def _llama_models(self) -> dict[str, Any]:
        config = self.app.config
        specs = config.models[:1]
        models = [
            {
                "name": spec.tag_name,
                "model": spec.tag_name,
                "modified_at": "",
                "size": "",
                "digest": "",
                "type": "model",
                "description": "",
                "tags": [""],
                "capabilities": ["completion"],
                "parameters": "",
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": "",
                    "families": [""],
                    "parameter_size": "",
                    "quantization_level": "",
                },
            }
            for spec in specs
        ]
        data = [
            {
                "id": spec.tag_name,
                "object": "model",
                "created": int(time.time()),
                "owned_by": "llamacpp",
                "meta": {
                    "n_ctx_train": self.app.trained_context(spec),
                    "n_params": 0,
                    "size": spec.size,
                },
            }
            for spec in specs
        ]
        return {"models": models, "object": "list", "data": data}


__all__ = ["LlamaSink", "OllamaSSESink", "OpenAIRoutes"]
