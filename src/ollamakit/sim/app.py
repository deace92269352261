"""The simulated Ollama API: middlewares, routing and the endpoint handlers.

Request flow, as in Ollama's gin engine (``server/routes.go``)::

    CORS check ─▶ Host check ─▶ route lookup ─┬─ handler
                                              ├─ 301/307 trailing-slash redirect
                                              ├─ 405 "405 method not allowed" + Allow
                                              └─ 404 "404 page not found"

``/api/generate`` and ``/api/chat`` follow Ollama's handler order: decode the body (400 with
Go's decoder text), check the model name (generate: 404 ``model '' not found``; chat: 400
``model is required``), look the model up (404), check capabilities (400 ``does not support
thinking``), unload when there is no prompt and ``keep_alive`` is 0, validate options (500),
schedule (503 when the queue is full), answer a load when there is no prompt, and only then
generate. Errors raised before the first byte use ``c.JSON`` (``application/json;
charset=utf-8``); a failure inside a stream before its first chunk uses the real status with
``application/json``; after chunks were sent it becomes a final ``{"error": ...}`` line.

Durations in the final chunk are measured on the monotonic clock (what the simulator really
did), not copied from the script: ``load_duration`` runs from the handler's start to the
model being ready (queueing included), ``prompt_eval_duration`` from taking a slot to the
first chunk (after the uncached prompt tokens), ``eval_duration`` from the first to the last
chunk (from when the first was due, if one late write carried them all), ``total_duration``
from the start to the final chunk.

The generation core is shared by every API: ``_serve`` admits and schedules a validated
``_Generation``, ``_plan`` decides what the reply says (``_Reply``), ``_emit`` sends it on
schedule and ends it with the done line or a fault's hook; a ``Sink`` frames it (Ollama's NDJSON
here, SSE in :mod:`ollamakit.sim.openai`).

Routes under ``/_sim/`` are the simulator's own (the request log and state); real Ollama has no
such routes, and the middlewares do not apply to them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
import re
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

from ollamakit.sim.config import ModelSpec, SimConfig, normalize_name
from ollamakit.sim.engine import Lease, QueueFull, Scheduler
from ollamakit.sim.faults import (
    JSON_BARE,
    JSON_UTF8,
    SERVER_BUSY,
    ApiError,
    FaultKind,
    FaultScene,
    pick_chunk_fault,
)
from ollamakit.sim.gojson import (
    CHAT,
    EMBED,
    EMBEDDINGS,
    GENERATE,
    SHOW,
    EmptyBody,
    GoDecodeError,
    Schema,
    canonical_keys,
    check_fields,
    check_options,
    check_think,
    decode_body,
    dumps,
    keep_alive_ns,
    rfc3339nano_local,
)
from ollamakit.sim.guards import PREFLIGHT_HEADERS, HostVerdict, OriginPolicy, check_host
from ollamakit.sim.http import Request, Responder
from ollamakit.sim.log import RequestLog, RequestRecord
from ollamakit.sim.stream import (
    ChunkEncoder,
    ClientGone,
    created_at,
    sleep_until,
    write_chunks,
    write_line,
)
from ollamakit.sim.tokens import (
    TOKEN_RE,
    TokenSeq,
    count_tokens,
    reply_seq,
    stop_index,
    thinking_seq,
    token_id,
)

__all__ = ["JSON_BARE", "ApiError", "SimApp"]

CLOUD_DISABLED: Final = "ollama cloud is disabled: remote model is unavailable"
TEXT_UTF8: Final = "text/plain; charset=utf-8"  # gin c.String
TEXT: Final = "text/plain"  # gin's own 404/405 bodies

# Every route real Ollama registers, with its methods, so 404 vs 405 and the Allow header come
# out as Ollama's. Methods are listed in gin's tree order (the order Ollama first registers
# them: HEAD, GET, POST, DELETE), which is the order of the Allow header.
_METHOD_ORDER: Final = ("HEAD", "GET", "POST", "DELETE")
_ROUTES: Final[Mapping[str, tuple[str, ...]]] = {
    "/": ("HEAD", "GET"),
    "/api/version": ("HEAD", "GET"),
    "/api/status": ("GET",),
    "/api/pull": ("POST",),
    "/api/push": ("POST",),
    "/api/tags": ("HEAD", "GET"),
    "/api/show": ("POST",),
    "/api/delete": ("DELETE",),
    "/api/create": ("POST",),
    "/api/copy": ("POST",),
    "/api/ps": ("GET",),
    "/api/generate": ("POST",),
    "/api/chat": ("POST",),
    "/api/embed": ("POST",),
    "/api/embeddings": ("POST",),
    "/api/blobs/:digest": ("HEAD", "POST"),
    "/v1/chat/completions": ("POST",),
    "/v1/completions": ("POST",),
    "/v1/embeddings": ("POST",),
    "/v1/models": ("GET",),
    "/v1/models/:model": ("GET",),
    "/v1/responses": ("POST",),
    "/v1/messages": ("POST",),
}
_NAME_RE: Final = re.compile(r"^[\w][\w.\-]*(:\d+)?(/[\w][\w.\-]*)*(:[\w][\w.\-]*)?$")


def _route_key(path: str) -> str | None:
    if path in _ROUTES:
        return path
    for prefix, key in (
        ("/api/blobs/", "/api/blobs/:digest"),
        ("/v1/models/", "/v1/models/:model"),
    ):
        rest = path[len(prefix) :]
        if path.startswith(prefix) and rest and "/" not in rest:
            return key
    return None


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the strings that appear in Ollama's messages."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _param_count(size: str) -> int:
    """``"3.2B"`` -> 3200000000, ``"494.03M"`` -> 494030000."""
    match = re.fullmatch(r"([\d.]+)\s*([KMBT]?)", size.strip().upper())
    if not match:
        return 0
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2)]
    return int(float(match.group(1)) * scale)


Handler = Callable[[Request, Responder, RequestRecord], Awaitable[None]]


class ExtraRoutes(Protocol):
    """Routes mounted on a :class:`SimApp` from outside (the ``/v1`` layer)."""

    handlers: dict[tuple[str, str], Handler]

    async def llamacpp_dispatch(
        self, req: Request, resp: Responder, record: RequestRecord
    ) -> None: ...


class SimApp:
    """The request handler behind :class:`ollamakit.sim.http.HTTPServer`."""

    def __init__(self, config: SimConfig, *, loopback: bool, log: RequestLog) -> None:
        self.config = config
        self.loopback = loopback
        self.log = log
        self.hostname = socket.gethostname()
        self.origins = OriginPolicy(config.origins)
        self.scheduler = Scheduler(config)
        self.default_keep_alive_ns = config.keep_alive_ns
        self.profile = config.profile
        start = time.time_ns()
        # Deterministic "pulled at" times: a few hours apart, first model newest.
        self.modified_at = {
            spec.tag_name: spec.modified_at_ns or start - (i + 1) * 3_723_000_000_000
            for i, spec in enumerate(config.models)
        }
        self.handlers: dict[tuple[str, str], Handler] = {
            ("GET", "/"): self._root,
            ("HEAD", "/"): self._root,
            ("GET", "/api/version"): self._version,
            ("HEAD", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("HEAD", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/generate"): self._generate,
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/embed"): self._embed,
            ("POST", "/api/embeddings"): self._embeddings_legacy,
        }
        #: The ``/v1`` layer (:mod:`ollamakit.sim.openai`, built on this module's core) is
        #: mounted by whoever builds the app (:class:`ollamakit.sim.server.SimServer`), so
        #: this module does not import its own extension.
        self.openai: ExtraRoutes | None = None

    def mount(self, routes: ExtraRoutes) -> None:
        """Add the ``/v1`` layer's handlers (and llama-server's whole API with ``--engine``)."""
        self.openai = routes
        self.handlers.update(routes.handlers)

    # --- entry point --------------------------------------------------------------------------

    async def __call__(self, req: Request, resp: Responder) -> None:
        if req.path.startswith("/_sim/"):
            await self._sim_route(req, resp)
            return
        record = self.log.begin(req.method, req.path, req.received_ns)
        record.host = req.header("host")
        record.authorization = "authorization" in req.headers
        record.origin = req.headers.get("origin")
        record.user_agent = req.headers.get("user-agent")
        record.peer = req.peer

        def headers_sent(status: int, ns: int) -> None:
            record.status, record.headers_sent_ns = status, ns

        resp.on_headers = headers_sent  # so /_sim/requests shows them while a stream runs
        try:
            await self._dispatch(req, resp, record)
        except ClientGone:
            record.outcome = "client_closed"
        except asyncio.CancelledError:
            record.outcome = "client_closed" if resp.closed else "server_stopped"
            raise
        finally:
            record.status = resp.status
            record.headers_sent_ns = resp.headers_sent_ns
            record.bytes_sent = resp.bytes_sent
            record.finished_ns = time.perf_counter_ns()
            if record.outcome == "pending":
                ok = resp.status is not None and resp.status < 400 and record.error is None
                record.outcome = "ok" if ok else "error"
            self.log.finish(record)

    async def _dispatch(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        if self.config.engine == "llama.cpp" and self.openai is not None:
            await self.openai.llamacpp_dispatch(req, resp, record)
            return
        # 1. CORS (gin-contrib/cors), only for requests that carry an Origin.
        origin = req.headers.get("origin", "")
        host = req.header("host")
        if origin and origin not in (f"http://{host}", f"https://{host}"):
            if not self.origins.allows(origin):
                resp.send(403, b"", None)
                return
            if req.method == "OPTIONS":
                resp.send(
                    204, b"", None, [*PREFLIGHT_HEADERS, ("Access-Control-Allow-Origin", origin)]
                )
                return
            resp.extra_headers += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        # 2. Host check, only on a loopback listener.
        if self.loopback:
            verdict = check_host(host, self.hostname)
            if verdict is HostVerdict.FORBIDDEN:
                resp.send(403, b"", None)
                return
            if verdict is HostVerdict.ALLOWED_NAME and req.method == "OPTIONS":
                resp.send(204, b"", None)
                return
        # 3. Routing.
        key = _route_key(req.path)
        methods = _ROUTES.get(key, ()) if key else ()
        if req.method in methods:
            assert key is not None
            handler = self.handlers.get((req.method, key))
            if handler is None:
                self._json(
                    resp,
                    501,
                    {"error": f"the ollamakit simulator does not implement {req.method} {key}"},
                )
                return
            try:
                await handler(req, resp, record)
            except ApiError as exc:
                record.error = exc.message
                if not resp.started:
                    self._json(resp, exc.status, exc.body())
            return
        if req.path != "/" and req.path.endswith("/"):
            target = _route_key(req.path.rstrip("/") or "/")
            if target and req.method in _ROUTES[target]:
                self._redirect(req, resp, req.path[:-1])
                return
        if methods:
            allow = ", ".join(m for m in _METHOD_ORDER if m in methods)
            resp.send(405, b"405 method not allowed", TEXT, [("Allow", allow)])
            return
        resp.send(404, b"404 page not found", TEXT)

    def _redirect(self, req: Request, resp: Responder, path: str) -> None:
        query = req.target.split("?", 1)[1] if "?" in req.target else ""
        location = path + ("?" + query if query else "")
        code = 301 if req.method == "GET" else 307
        if req.method in ("GET", "HEAD"):
            text = "Moved Permanently" if code == 301 else "Temporary Redirect"
            body = f'<a href="{location}">{text}</a>.\n\n'.encode()
            resp.send(code, body, "text/html; charset=utf-8", [("Location", location)])
        else:
            resp.send(code, b"", None, [("Location", location)])

    @staticmethod
    def _json(resp: Responder, status: int, obj: Any, content_type: str = JSON_UTF8) -> None:
        resp.send(status, dumps(obj), content_type)

    # --- simple endpoints ---------------------------------------------------------------------

    async def _root(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        resp.send(200, b"Ollama is running", TEXT_UTF8)

    async def _version(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        self._json(resp, 200, {"version": self.config.version})

    def _details(self, spec: ModelSpec) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": spec.format,
            "family": spec.family,
            "families": [spec.family],
            "parameter_size": spec.parameter_size,
            "quantization_level": spec.quantization,
        }

    def trained_context(self, spec: ModelSpec) -> int:
        """The context the model was trained with (``model_info``), above any num_ctx."""
        return max(self.config.num_ctx(spec), 4096) * 32

    def _tag_entry(self, spec: ModelSpec) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": spec.tag_name, "model": spec.tag_name}
        if spec.cloud:
            entry["remote_model"] = spec.remote_model or spec.name
            entry["remote_host"] = spec.remote_host or "https://ollama.com:443"
        entry["modified_at"] = rfc3339nano_local(self.modified_at[spec.tag_name])
        entry["size"] = spec.size
        entry["digest"] = spec.digest
        details = self._details(spec)
        if self.profile.tags_capabilities:
            details["context_length"] = self.trained_context(spec)
            details["embedding_length"] = spec.embedding_length if spec.embedding else 3072
        entry["details"] = details
        if self.profile.tags_capabilities:
            entry["capabilities"] = spec.capabilities
        return entry

    async def _tags(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        models = sorted(
            self.config.models, key=lambda s: self.modified_at[s.tag_name], reverse=True
        )
        self._json(resp, 200, {"models": [self._tag_entry(spec) for spec in models]})

    async def _ps(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        entries = [
            {
                "name": rt.spec.tag_name,
                "model": rt.spec.tag_name,
                "size": rt.spec.size,
                "digest": rt.spec.digest,
                "details": self._details(rt.spec),
                "expires_at": rfc3339nano_local(rt.expires_at_ns),
                "size_vram": rt.spec.vram,
                "context_length": rt.num_ctx or self.config.num_ctx(rt.spec),
            }
            for rt in self.scheduler.loaded()
            if not rt.spec.cloud  # cloud models run on ollama.com, not here
        ]
        self._json(resp, 200, {"models": entries})

    def _parse(self, req: Request, schema: Schema, record: RequestRecord) -> dict[str, Any]:
        try:
            obj = decode_body(req.body)
        except EmptyBody:
            raise ApiError(400, "missing request body") from None
        except GoDecodeError as exc:
            raise ApiError(400, str(exc)) from None
        record.body = obj
        try:
            check_fields(obj, schema)
            if isinstance(obj, dict) and schema.field("think") is not None:
                check_think(canonical_keys(obj, schema).get("think"), self.profile.think_levels)
        except GoDecodeError as exc:
            raise ApiError(400, str(exc)) from None
        return canonical_keys(obj, schema) if isinstance(obj, dict) else {}

    async def _show(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        body = self._parse(req, SHOW, record)
        name = body.get("model") or body.get("name") or ""
        record.model = name or None
        if not name:
            raise ApiError(400, "model is required")
        spec = self.config.find(name)
        if spec is None:
            raise ApiError(404, f"model '{normalize_name(name)}' not found")
        family = spec.family
        params = 'stop                           "<|eot_id|>"'
        model_info: dict[str, Any] = {
            "general.architecture": family,
            "general.file_type": 15,
            "general.parameter_count": _param_count(spec.parameter_size),
            "general.quantization_version": 2,
            f"{family}.attention.head_count": 24,
            f"{family}.block_count": 28,
            # The trained context, larger than the num_ctx the runner uses (context_length).
            f"{family}.context_length": self.trained_context(spec),
            f"{family}.embedding_length": spec.embedding_length if spec.embedding else 3072,
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.tokens": [],
            "tokenizer.ggml.merges": [],
            "tokenizer.ggml.token_type": [],
        }
        out = {
            "license": "Simulated model served by ollamakit sim; no license applies.",
            "modelfile": (
                '# Modelfile generated by "ollama show"\n'
                "# To build a new Modelfile based on this, replace FROM with:\n"
                f"# FROM {spec.tag_name}\n\n"
                f"FROM /usr/share/ollama/.ollama/models/blobs/sha256-{spec.digest}\n"
                'TEMPLATE """{{ .Prompt }}"""\n'
                "PARAMETER stop <|eot_id|>\n"
            ),
            "parameters": params,
            "template": "{{ .Prompt }}",
            "details": self._details(spec),
            **(
                {
                    "remote_model": spec.remote_model or spec.name,
                    "remote_host": spec.remote_host or "https://ollama.com:443",
                }
                if spec.cloud
                else {}
            ),
            # A Go map: encoding/json writes its keys sorted.
            "model_info": dict(sorted(model_info.items())),
            "capabilities": spec.capabilities,
            "modified_at": rfc3339nano_local(self.modified_at[spec.tag_name]),
        }
        self._json(resp, 200, out)

    # --- /_sim ---------------------------------------------------------------------------------

    async def _sim_route(self, req: Request, resp: Responder) -> None:
        query = parse_qs(req.target.split("?", 1)[1]) if "?" in req.target else {}
        if req.path == "/_sim/requests" and req.method in ("GET", "HEAD"):
            since_text = query.get("since", ["0"])[0]
            since = int(since_text) if since_text.isdigit() else 0
            records = [r.to_json() for r in self.log.snapshot(since)]
            resp.send(200, dumps(records), JSON_UTF8)
        elif req.path == "/_sim/requests" and req.method == "DELETE":
            resp.send(200, dumps({"cleared": self.log.clear()}), JSON_UTF8)
        elif req.path == "/_sim/state" and req.method in ("GET", "HEAD"):
            self.scheduler.expire()
            state = {
                "waiting": self.scheduler.waiting,
                "models": {
                    rt.spec.tag_name: {
                        "state": rt.state.value,
                        "active": rt.active,
                        "loads": rt.loads,
                        "num_ctx": rt.num_ctx or None,
                        "expires_at": rfc3339nano_local(rt.expires_at_ns)
                        if rt.expires_at_ns
                        else None,
                    }
                    for rt in self.scheduler.runtimes.values()
                },
            }
            resp.send(200, dumps(state), JSON_UTF8)
        else:
            resp.send(404, b"404 page not found", TEXT)

    # --- generate and chat: validation ---------------------------------------------------------

    async def _generate(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        body = self._parse(req, GENERATE, record)
        gen = self._native_generation(body, record, chat=False)
        await self._serve(gen, NativeSink(gen, resp.chunked), resp, record)

    async def _chat(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        body = self._parse(req, CHAT, record)
        gen = self._native_generation(body, record, chat=True)
        await self._serve(gen, NativeSink(gen, resp.chunked), resp, record)

    def _check_name(self, model: str, *, chat: bool) -> None:
        """The name checks of Ollama's handlers, as the profile's version words them."""
        if chat and not model:
            raise ApiError(400, "model is required")
        if model and _NAME_RE.match(model):
            return
        if model and self.profile.invalid_name_error:
            raise ApiError(400, "invalid model name")
        if chat:
            raise ApiError(400, "model is required")
        raise ApiError(404, f"model '{model}' not found")

    def _lookup(self, model: str, *, chat: bool) -> ModelSpec:
        spec = self.config.find(model)
        if spec is None:
            if chat and self.profile.chat_not_found_legacy:
                raise ApiError(404, f'model "{model}" not found, try pulling it first')
            raise ApiError(404, f"model '{model}' not found")
        return spec

    def _native_generation(
        self, body: dict[str, Any], record: RequestRecord, *, chat: bool
    ) -> _Generation:
        model = body.get("model") or ""
        record.model = model or None
        stream = body.get("stream") is not False  # only an explicit false disables streaming
        record.stream = stream
        self._check_name(model, chat=chat)
        if not chat and (
            body.get("raw") and (body.get("template") or body.get("system") or body.get("context"))
        ):
            raise ApiError(400, "raw mode does not support template, system, or context")
        spec = self._lookup(model, chat=chat)
        if spec.embedding:
            raise ApiError(
                400, f"{_go_quote(model)} does not support {'chat' if chat else 'generate'}"
            )
        if not chat and body.get("suffix"):
            raise ApiError(400, f"{_go_quote(model)} does not support insert")
        thinking, tags = self._think(spec, model, body.get("think"))
        if chat:
            messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
            empty = not messages
        else:
            messages = []
            empty = not body.get("prompt") and not body.get("images")
        return _Generation(
            api="chat" if chat else "generate",
            model=model,
            spec=spec,
            body=body,
            stream=stream,
            think=thinking,
            think_tags=tags,
            options=dict(body.get("options") or {}),
            messages=messages,
            empty=empty,
            keep_alive=body.get("keep_alive"),
        )

    def _think(self, spec: ModelSpec, model: str, value: Any) -> tuple[bool, bool]:
        """(thinking chunks or not, reasoning inside the content in ``<think>`` tags)."""
        profile = self.profile
        if value is not None and value is not False and not spec.thinking:
            raise ApiError(400, f"{_go_quote(model)} does not support thinking")
        if isinstance(value, str):
            if not spec.think_levels_only and not profile.think_levels_on_any_model:
                raise ApiError(
                    400, f"think value {_go_quote(value)} is not supported for this model"
                )
            return True, False
        if value is True:
            return True, False
        if value is False:
            return spec.think_levels_only, False  # gpt-oss cannot turn thinking off
        if not spec.thinking:
            return False, False
        if spec.think_levels_only or profile.think_default_on:
            return True, False
        return True, True  # 0.12.0-0.12.4: the reasoning comes inside the content

    def _cloud_gate(self, spec: ModelSpec) -> None:
        if not spec.cloud:
            return
        if self.config.cloud == "disabled":
            raise ApiError(403, CLOUD_DISABLED)
        if self.config.cloud == "signed_out":
            key = base64.b64encode(hashlib.sha256(self.hostname.encode()).digest()).decode()
            url = f"https://ollama.com/connect?name={self.hostname}&key={key}"
            raise ApiError(401, "unauthorized", signin_url=url)

    # --- generate and chat: scheduling ---------------------------------------------------------

    async def _serve(
        self, gen: _Generation, sink: Sink, resp: Responder, record: RequestRecord
    ) -> None:
        """Admit, schedule and answer one validated request (native or OpenAI-compatible)."""
        spec = gen.spec
        for fault in sorted(spec.faults, key=lambda f: f.kind is not FaultKind.SLOW_HEADERS_MS):
            await fault.behaviour().before_headers()
        self._cloud_gate(spec)
        t0 = time.perf_counter_ns()
        try:
            ka = keep_alive_ns(gen.keep_alive)
        except GoDecodeError as exc:  # checked while decoding already; kept for safety
            raise ApiError(400, str(exc)) from None
        keep_alive = self.default_keep_alive_ns if ka is None else ka
        if gen.empty and keep_alive == 0 and gen.keep_alive is not None:
            self.scheduler.unload(spec)
            record.done_reason = "unload"
            self._json(resp, 200, self._done_only(gen, "unload"))
            return
        try:
            check_options(gen.options)
        except GoDecodeError as exc:
            raise ApiError(500, str(exc)) from None
        reply = self._plan(gen)
        num_ctx = gen.options.get("num_ctx")
        try:
            lease = await self.scheduler.acquire(
                spec,
                keep_alive,
                need_slot=not gen.empty,
                num_ctx=int(num_ctx) if isinstance(num_ctx, (int, float)) and num_ctx > 0 else None,
                prompt_ids=reply.ids,
            )
        except QueueFull:
            raise ApiError(503, SERVER_BUSY) from None
        record.cold_load = lease.cold
        cache_ids: list[int] = []
        try:
            if gen.empty:
                record.done_reason = "load"
                self._json(resp, 200, self._done_only(gen, "load"))
                return
            if await self._emit(gen, reply, lease, t0, sink, resp, record):
                cache_ids = reply.cache_ids()
        finally:
            self.scheduler.release(lease, keep_alive, cache_ids)

    @staticmethod
    def _done_only(gen: _Generation, reason: str) -> dict[str, Any]:
        out: dict[str, Any] = {"model": gen.model, "created_at": created_at()}
        if gen.api == "generate":
            out["response"] = ""
        else:
            out["message"] = {"role": "assistant", "content": ""}
        out["done"] = True
        out["done_reason"] = reason
        return out

    # --- generate and chat: what to say --------------------------------------------------------

    def _prompt(self, gen: _Generation) -> tuple[str, list[int]]:
        """The text the reply is "about", and the prompt's token ids (BOS and role header
        first: identical in every request, so always in the prefix cache).

        A chat history longer than the runner's ``num_ctx`` is cut from the front, whole
        messages at a time, as Ollama does without a word (:func:`fit_history`): the reply's
        ``prompt_eval_count`` then counts only what was kept."""
        spec, body = gen.spec, gen.body
        ids = list(range(1, spec.template_tokens + 1))
        if gen.api != "generate":
            messages = gen.messages
            prompt = next(
                (
                    str(m.get("content") or "")
                    for m in reversed(messages)
                    if m.get("role") == "user"
                ),
                str(messages[-1].get("content") or "") if messages else "",
            )
            wanted = gen.options.get("num_ctx")
            num_ctx = (
                int(wanted)
                if isinstance(wanted, (int, float)) and wanted > 0
                else self.config.num_ctx(spec)  # what the runner loads with (engine.acquire)
            )
            # ``truncate: false`` (0.12.6+) keeps everything: the runner then has to cope
            cut = body.get("truncate") is not False or self.profile.version < (0, 12, 6)
            if cut:
                messages = fit_history(
                    messages,
                    num_ctx - spec.template_tokens,
                    backward=self.profile.version <= (0, 15, 4),
                )
            for message in messages:
                content = message.get("content")
                if isinstance(content, str):
                    ids += [token_id(tok) for tok in TOKEN_RE.findall(content)]
        else:
            prompt = str(body.get("prompt") or "")
            ids += [c for c in body.get("context") or [] if isinstance(c, int)]
            for part in (body.get("system"), prompt, body.get("suffix")):
                ids += [token_id(tok) for tok in TOKEN_RE.findall(str(part or ""))]
        return prompt, ids or [0]  # a template adds at least one token

    def _plan(self, gen: _Generation) -> _Reply:
        spec, options = gen.spec, gen.options
        prompt, ids = self._prompt(gen)
        seed = options.get("seed")
        thinking = thinking_seq(prompt, spec.thinking_tokens) if gen.think else None
        answer = reply_seq(
            spec.name,
            prompt,
            spec.reply_length,
            seed=int(seed) if isinstance(seed, (int, float)) else None,
            json_format=gen.body.get("format") not in (None, ""),
            fixed=spec.reply,
        )
        n_think = thinking.count if thinking else 0
        n_answer = answer.count
        done_reason = "stop"
        stops = options.get("stop") or []
        if isinstance(stops, str):
            stops = [stops]
        cut = stop_index(answer, [s for s in stops if isinstance(s, str)])
        if cut is not None:
            n_answer = cut
        num_predict = options.get("num_predict")
        if isinstance(num_predict, (int, float)) and num_predict > 0:
            cap = int(num_predict)
            if n_think + n_answer > cap:
                done_reason = "length"
                n_think = min(n_think, cap)
                n_answer = cap - n_think
        answer = answer.truncated(n_answer)
        return _Reply(
            prompt=prompt,
            ids=ids,
            thinking=thinking.truncated(n_think) if thinking is not None else None,
            answer=answer,
            tags=gen.think_tags and thinking is not None,
            done_reason=done_reason,
            tail=min(spec.done_text, n_answer),
        )

    # --- generate and chat: sending ------------------------------------------------------------

    def _schedule(self, gen: _Generation, reply: _Reply, lease: Lease) -> _Schedule:
        """When the chunks are due: prefill of the uncached prompt tokens, then one chunk per
        interval (slower by the CPU-offloaded share)."""
        spec, speed = gen.spec, self.config.speed
        uncached = len(reply.ids) - lease.cached
        prefill_ns = 0 if math.isinf(spec.prompt_tps) else uncached / spec.prompt_tps * 1e9
        rate = spec.eval_tps / spec.decode_factor
        interval_ns = 0 if spec.fast else int(1e9 / rate / speed)
        return _Schedule(lease.slot_ns + int(prefill_ns / speed), interval_ns, uncached)

    async def _emit(
        self,
        gen: _Generation,
        reply: _Reply,
        lease: Lease,
        t0_ns: int,
        sink: Sink,
        resp: Responder,
        record: RequestRecord,
    ) -> bool:
        """Stream (or wait out) the chunks on schedule, then the done line or a fault's end.
        True when the reply completed (so the slot caches it)."""
        plan = self._schedule(gen, reply, lease)
        total = len(reply.ids)
        only_uncached = self.profile.prompt_count_uncached_only
        record.prompt_eval_count = plan.uncached if only_uncached else total
        encoder = sink.encoder()
        reply.add_phases(encoder)
        fault, limit = pick_chunk_fault(gen.spec.faults, reply.streamed)
        first_ns, last_ns = await self._send_chunks(gen, plan, limit, encoder, sink, resp, record)
        if fault is not None:
            scene = FaultScene(
                resp,
                record,
                gen.stream,
                encoder,
                self.config.stall_s,
                partial=lambda: sink.partial(reply, limit),
                error_line=sink.error_line,
            )
            await fault.at_chunk(scene)
            return False
        if reply.tail:  # the done chunk carries the last tokens: it comes when they are due
            await sleep_until(plan.t_first_ns + (limit - 1 + reply.tail) * plan.interval_ns)
            last_ns = time.perf_counter_ns()
            first_ns = first_ns or last_ns
        done_ns = time.perf_counter_ns()
        # The eval window runs from the first write to the last, as a client sees it. When a
        # late first write carried every chunk (a busy machine), it starts when the first
        # chunk was due instead, so the window is not 0.
        if first_ns is not None and first_ns == last_ns and reply.count > 1:
            first_ns = min(first_ns, plan.t_first_ns)
        done = Done(
            reply=reply,
            done_reason=reply.done_reason,
            total_ns=done_ns - t0_ns,
            load_ns=lease.loaded_ns - t0_ns,
            prompt_eval_count=record.prompt_eval_count,
            cached=lease.cached,
            prompt_eval_ns=(first_ns or done_ns) - lease.slot_ns,
            eval_count=reply.count,
            eval_ns=(last_ns - first_ns) if first_ns and last_ns else 0,
        )
        record.done_reason = reply.done_reason
        record.eval_count = reply.count
        if gen.stream:
            for line in sink.final_lines(done):
                write_line(resp, encoder, line, record)
            resp.end_stream()
        else:
            status, payload = sink.final_body(done)
            resp.send(status, payload, sink.json_type)
        return True

    @staticmethod
    async def _send_chunks(
        gen: _Generation,
        plan: _Schedule,
        limit: int,
        encoder: ChunkEncoder,
        sink: Sink,
        resp: Responder,
        record: RequestRecord,
    ) -> tuple[int | None, int | None]:
        """Chunks ``[0, limit)`` on schedule (without streaming: only the waiting); returns
        when the first and the last went out."""
        if not gen.stream:
            await sleep_until(plan.t_first_ns)
            first_ns = time.perf_counter_ns() if limit else None
            if limit:
                await sleep_until(plan.t_first_ns + (limit - 1) * plan.interval_ns)
            return first_ns, time.perf_counter_ns() if limit else None
        preamble = sink.preamble()
        if preamble is not None and limit > 0:
            await sleep_until(plan.t_first_ns)
            write_line(resp, encoder, preamble, record)
        result = await write_chunks(
            resp,
            encoder,
            t_first_ns=plan.t_first_ns,
            interval_ns=plan.interval_ns,
            limit=limit,
            record=record,
        )
        return result.first_ns, result.last_ns

    # --- embeddings ----------------------------------------------------------------------------

    async def _embed(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        body = self._parse(req, EMBED, record)
        await self._embeddings(body, resp, record, legacy=False)

    async def _embeddings_legacy(
        self, req: Request, resp: Responder, record: RequestRecord
    ) -> None:
        body = self._parse(req, EMBEDDINGS, record)
        await self._embeddings(body, resp, record, legacy=True)

    async def _embeddings(
        self, body: dict[str, Any], resp: Responder, record: RequestRecord, *, legacy: bool
    ) -> None:
        model = body.get("model") or ""
        record.model = model or None
        if not model:
            raise ApiError(400, "model is required")
        spec = self._lookup(model, chat=False)
        self._cloud_gate(spec)
        if legacy:
            prompt = body.get("prompt")
            inputs = [str(prompt)] if prompt else []
        else:
            raw_input = body.get("input")
            if raw_input is None or raw_input == "" or raw_input == []:
                inputs = []
            elif isinstance(raw_input, str):
                inputs = [raw_input]
            elif isinstance(raw_input, list) and all(isinstance(x, str) for x in raw_input):
                inputs = list(raw_input)
            else:
                raise ApiError(400, "invalid input type")
        t0 = time.perf_counter_ns()
        ka = keep_alive_ns(body.get("keep_alive"))
        keep_alive = self.default_keep_alive_ns if ka is None else ka
        tokens = sum(max(1, count_tokens(text)) for text in inputs)
        try:
            lease = await self.scheduler.acquire(spec, keep_alive, need_slot=bool(inputs))
        except QueueFull:
            raise ApiError(503, SERVER_BUSY) from None
        record.cold_load = lease.cold
        try:
            if not math.isinf(spec.prompt_tps):
                await sleep_until(
                    lease.slot_ns + int(tokens / spec.prompt_tps * 1e9 / self.config.speed)
                )
            dims = body.get("dimensions")
            size = (
                int(dims)
                if isinstance(dims, int) and 0 < dims < spec.embedding_length
                else spec.embedding_length
            )
            vectors = [embedding_vector(spec.name, text, size) for text in inputs]
            record.prompt_eval_count = tokens
            if legacy:
                self._json(resp, 200, {"embedding": vectors[0] if vectors else []})
                return
            out: dict[str, Any] = {"model": model, "embeddings": vectors}
            metrics = {
                "total_duration": time.perf_counter_ns() - t0,
                "load_duration": lease.loaded_ns - t0,
                "prompt_eval_count": tokens,
            }
            out.update((k, v) for k, v in metrics.items() if v)
            self._json(resp, 200, out)
        finally:
            self.scheduler.release(lease, keep_alive)


def fit_history(
    messages: list[dict[str, Any]], budget: int, *, backward: bool = False
) -> list[dict[str, Any]]:
    """The messages Ollama renders when the chat does not fit ``budget`` tokens.

    ``server/prompt.go`` ``chatPrompt``: drop whole messages from the front until the rest
    fits; the latest message is always kept, and so are the system messages before the cut
    (they go first). From 0.15.5 (df7024952) it tries the whole history first and drops one
    message at a time; through 0.15.4 (``backward``) it grows the history from the back and
    stops at the first message that does not fit, with one quirk kept here: the system
    messages kept are those *before* the message that did not fit, so a system message that
    is itself that message (right before a latest message too long to fit) is dropped.
    Counted with the simulator's tokenizer (the contents; images and tools are not counted).

    >>> sys, u1, a1, u2 = ({"role": r, "content": c} for r, c in
    ...     [("system", "Be brief."), ("user", "one two three"), ("assistant", "four five"),
    ...      ("user", "six")])
    >>> [m["content"] for m in fit_history([sys, u1, a1, u2], 100)]
    ['Be brief.', 'one two three', 'four five', 'six']
    >>> [m["content"] for m in fit_history([sys, u1, a1, u2], 7)]
    ['Be brief.', 'four five', 'six']
    >>> [m["content"] for m in fit_history([sys, u1, a1, u2], 2)]
    ['Be brief.', 'six']
    >>> [m["content"] for m in fit_history([sys, u1, a1, u2], 2, backward=True)]
    ['Be brief.', 'six']
    >>> [m["content"] for m in fit_history([sys, u2], 2, backward=True)]
    ['six']
    """

    def size(part: list[dict[str, Any]]) -> int:
        return sum(count_tokens(m["content"]) for m in part if isinstance(m.get("content"), str))

    def systems(before: int) -> list[dict[str, Any]]:
        return [m for m in messages[:before] if m.get("role") == "system"]

    last = len(messages) - 1
    if last < 1:
        return messages
    if not backward:
        for start in range(last + 1):
            kept = systems(start) + messages[start:]
            if start == last or size(kept) <= budget:
                return kept
    start, held = last, systems(0)
    for i in range(last - 1, -1, -1):
        held = systems(i)
        if size(held + messages[i:]) > budget:
            break
        start = i
    return held + messages[start:]  # all fitted: i ended at 0, where no system is before


@dataclass
class _Generation:
    """One generate/chat request after validation: what to send and how."""

    api: str  # generate, chat or openai
    model: str  # the name as the client sent it; Ollama echoes it
    spec: ModelSpec
    body: dict[str, Any]
    stream: bool
    think: bool  # thinking tokens are produced
    think_tags: bool  # ... and sent inside the content between <think> tags (0.12.0-0.12.4)
    options: dict[str, Any]
    messages: list[dict[str, Any]]
    empty: bool  # no prompt: a load (or, with keep_alive 0, an unload)
    keep_alive: Any
    include_usage: bool = False  # OpenAI stream_options.include_usage


_OPEN_TAG: Final = TokenSeq(("<think>",), ("<think>",), 1)
_CLOSE_TAG: Final = TokenSeq(("</think>\n\n",), ("</think>\n\n",), 1)


@dataclass
class _Reply:
    """What a reply will say, planned before any byte is sent."""

    prompt: str
    ids: list[int]  # prompt token ids (the prefix cache compares them)
    thinking: TokenSeq | None
    answer: TokenSeq
    tags: bool  # thinking goes out as content between <think> tags
    done_reason: str
    tail: int  # answer tokens carried on the done chunk instead of their own chunks

    @property
    def count(self) -> int:
        """eval_count: every generated token (the tags are one token each)."""
        n = self.thinking.count if self.thinking else 0
        return n + self.answer.count + (2 if self.tags else 0)

    @property
    def streamed(self) -> int:
        return self.count - self.tail

    def add_phases(self, encoder: ChunkEncoder) -> None:
        answer = self.answer.truncated(self.answer.count - self.tail)
        if self.tags:
            for seq in (_OPEN_TAG, self.thinking, _CLOSE_TAG, answer):
                encoder.add(seq, thinking=False)
        else:
            encoder.add(self.thinking, thinking=True)
            encoder.add(answer, thinking=False)

    def tail_text(self) -> str:
        return "".join(self.answer.chunks(self.answer.count - self.tail))

    def content(self) -> str:
        """The whole answer text (with the tagged reasoning in front, when it is inline)."""
        text = self.answer.text()
        if self.tags and self.thinking is not None:
            return "<think>" + self.thinking.text() + "</think>\n\n" + text
        return text

    def thinking_text(self) -> str:
        return "" if self.tags or self.thinking is None else self.thinking.text()

    def streamed_text(self, n: int) -> tuple[str, str]:
        """(content, thinking) of the first ``n`` chunks (for a reply cut short)."""
        n_think = self.thinking.count if self.thinking else 0
        if self.tags:
            return self.content()[: len(self.content())], ""  # rare path: keep it simple
        thinking = self.thinking.text(min(n, n_think)) if self.thinking else ""
        return self.answer.text(max(0, n - n_think)), thinking

    def context_ids(self, body: Mapping[str, Any]) -> list[int]:
        """Fake token ids of the conversation so far, as ``/api/generate`` returns them."""
        ids = [c for c in body.get("context") or [] if isinstance(c, int)]
        system = str(body.get("system") or "")
        ids += [token_id(tok) for tok in TOKEN_RE.findall(system + " " + self.prompt)]
        if self.thinking is not None:
            ids += self.thinking.ids()
        return ids + self.answer.ids()

    def cache_ids(self) -> list[int]:
        """What the slot holds afterwards: the prompt, then what was generated."""
        out = list(self.ids)
        if self.thinking is not None and self.thinking.count < 4096:
            out += self.thinking.ids()
        if self.answer.count < 4096:  # the fast path's huge replies are not worth caching
            out += self.answer.ids()
        return out


@dataclass(frozen=True)
class _Schedule:
    """When a reply's chunks are due (perf_counter_ns)."""

    t_first_ns: int
    interval_ns: int
    uncached: int  # prompt tokens that were evaluated


@dataclass
class Done:
    """The measured end of a reply, for a sink's final line."""

    reply: _Reply
    done_reason: str
    total_ns: int
    load_ns: int
    prompt_eval_count: int | None
    cached: int
    prompt_eval_ns: int
    eval_count: int
    eval_ns: int


class Sink:
    """How a reply is framed: Ollama's NDJSON here, SSE in :mod:`ollamakit.sim.openai`."""

    json_type: str = JSON_UTF8

    def encoder(self) -> ChunkEncoder:
        raise NotImplementedError

    def preamble(self) -> bytes | None:
        """A frame sent before the first token's (llama-server's role frame)."""
        return None

    def final_lines(self, done: Done) -> list[bytes]:
        raise NotImplementedError

    def final_body(self, done: Done) -> tuple[int, bytes]:
        raise NotImplementedError

    def partial(self, reply: _Reply, sent: int) -> dict[str, Any]:
        raise NotImplementedError

    def error_line(self, message: str) -> bytes:
        return dumps({"error": message}) + b"\n"


class NativeSink(Sink):
    """``/api/generate`` and ``/api/chat``: NDJSON chunks, a done line with the metrics."""

    def __init__(self, gen: _Generation, framed: bool) -> None:
        self.gen = gen
        self.framed = framed
        spec = gen.spec
        self.remote = (
            (spec.remote_model or spec.name, spec.remote_host or "https://ollama.com:443")
            if spec.cloud
            else None
        )

    def encoder(self) -> ChunkEncoder:
        return ChunkEncoder.native(
            self.gen.model, chat=self.gen.api != "generate", framed=self.framed, remote=self.remote
        )

    def _head(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.gen.model}
        if self.remote is not None:
            out["remote_model"], out["remote_host"] = self.remote
        out["created_at"] = created_at()
        return out

    def _final(self, done: Done, content: str, thinking: str) -> dict[str, Any]:
        gen = self.gen
        final = self._head()
        if gen.api != "generate":
            message = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            final["message"] = message
            final["done"] = True
            final["done_reason"] = done.done_reason
        else:
            final["response"] = content
            if thinking:
                final["thinking"] = thinking
            final["done"] = True
            final["done_reason"] = done.done_reason
            if not gen.body.get("raw"):
                final["context"] = done.reply.context_ids(gen.body)
        metrics = {
            "total_duration": done.total_ns,
            "load_duration": done.load_ns,
            "prompt_eval_count": done.prompt_eval_count,
            "prompt_eval_duration": done.prompt_eval_ns,
            "eval_count": done.eval_count,
            "eval_duration": done.eval_ns,
        }
        final.update((k, v) for k, v in metrics.items() if v)  # Go omitempty: zeros left out
        return final

    def final_lines(self, done: Done) -> list[bytes]:
        return [dumps(self._final(done, done.reply.tail_text(), "")) + b"\n"]

    def final_body(self, done: Done) -> tuple[int, bytes]:
        reply = done.reply
        return 200, dumps(self._final(done, reply.content(), reply.thinking_text()))

    def partial(self, reply: _Reply, sent: int) -> dict[str, Any]:
        content, thinking = reply.streamed_text(sent)
        out = self._head()
        if self.gen.api != "generate":
            message = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            out["message"] = message
        else:
            out["response"] = content
            if thinking:
                out["thinking"] = thinking
        out["done"] = False
        return out


def embedding_vector(model: str, text: str, size: int) -> list[float]:
    """A deterministic unit vector for ``text`` (``/api/embed`` normalizes, as Ollama does)."""
    rng = random.Random(zlib.crc32(f"{model}\0{text}".encode()))
    values = [rng.gauss(0.0, 1.0) for _ in range(size)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [float(f"{v / norm:.7g}") for v in values]
