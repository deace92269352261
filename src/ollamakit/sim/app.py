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
model being ready (queueing included), ``prompt_eval_duration`` from taking a slot to the first
chunk, ``eval_duration`` from the first to the last chunk, ``total_duration`` from the start to
the final chunk.

Routes under ``/_sim/`` are the simulator's own (the request log and state); real Ollama has no
such routes, and the middlewares do not apply to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs

from ollamakit.sim.config import (
    RUNNER_CRASHED,
    RUNNER_ERROR,
    SERVER_BUSY,
    Fault,
    FaultKind,
    ModelSpec,
    SimConfig,
    normalize_name,
)
from ollamakit.sim.engine import Lease, QueueFull, Scheduler
from ollamakit.sim.gojson import (
    CHAT,
    GENERATE,
    SHOW,
    EmptyBody,
    GoDecodeError,
    Schema,
    canonical_keys,
    check_fields,
    check_options,
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
    chat_prompt_tokens,
    generate_prompt_tokens,
    reply_seq,
    stop_index,
    thinking_seq,
    token_id,
)

JSON_UTF8: Final = "application/json; charset=utf-8"  # gin c.JSON
JSON_BARE: Final = "application/json"  # an error before the first byte of a stream
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


class ApiError(Exception):
    """An ``{"error": message}`` answer with a status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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


@dataclass
class _Generation:
    """One generate/chat request after validation: what to send and how."""

    chat: bool
    model: str  # the name as the client sent it; Ollama echoes it
    spec: ModelSpec
    body: dict[str, Any]
    stream: bool
    think: bool
    keep_alive_ns: int
    t0_ns: int


Handler = Callable[[Request, Responder, RequestRecord], Awaitable[None]]


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
        }

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
                    self._json(resp, exc.status, {"error": exc.message})
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

    async def _tags(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        models = sorted(
            self.config.models, key=lambda s: self.modified_at[s.tag_name], reverse=True
        )
        entries = [
            {
                "name": spec.tag_name,
                "model": spec.tag_name,
                "modified_at": rfc3339nano_local(self.modified_at[spec.tag_name]),
                "size": spec.size,
                "digest": spec.digest,
                "details": self._details(spec),
            }
            for spec in models
        ]
        self._json(resp, 200, {"models": entries})

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
                "context_length": rt.spec.context_length,
            }
            for rt in self.scheduler.loaded()
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
            f"{family}.context_length": spec.context_length * 32,
            f"{family}.embedding_length": 3072,
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

    # --- generate and chat ---------------------------------------------------------------------

    async def _generate(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        await self._complete(req, resp, record, chat=False)

    async def _chat(self, req: Request, resp: Responder, record: RequestRecord) -> None:
        await self._complete(req, resp, record, chat=True)

    async def _complete(
        self, req: Request, resp: Responder, record: RequestRecord, *, chat: bool
    ) -> None:
        body = self._parse(req, CHAT if chat else GENERATE, record)
        model = body.get("model") or ""
        record.model = model or None
        stream = body.get("stream") is not False  # only an explicit false disables streaming
        record.stream = stream
        if chat:
            if not model or not _NAME_RE.match(model):
                raise ApiError(400, "model is required")
        else:
            if not _NAME_RE.match(model):
                raise ApiError(404, f"model '{model}' not found")
            if body.get("raw") and (
                body.get("template") or body.get("system") or body.get("context")
            ):
                raise ApiError(400, "raw mode does not support template, system, or context")
        spec = self.config.find(model)
        if spec is None:
            raise ApiError(404, f"model '{model}' not found")
        if not chat and body.get("suffix"):
            raise ApiError(400, f"{_go_quote(model)} does not support insert")
        think_value = body.get("think")
        if think_value is not None and think_value is not False and not spec.thinking:
            raise ApiError(400, f"{_go_quote(model)} does not support thinking")
        think = spec.thinking if think_value is None else think_value is not False

        slow = spec.fault(FaultKind.SLOW_HEADERS_MS)
        if slow is not None:
            await asyncio.sleep(slow.arg / 1000)  # fault delays are literal, not scaled
        t0 = time.perf_counter_ns()
        if spec.fault(FaultKind.BUSY) is not None:
            raise ApiError(503, SERVER_BUSY)
        try:
            ka = keep_alive_ns(body.get("keep_alive"))
        except GoDecodeError as exc:  # checked while decoding already; kept for safety
            raise ApiError(400, str(exc)) from None
        keep_alive = self.default_keep_alive_ns if ka is None else ka
        if chat:
            empty = not body.get("messages")
        else:
            empty = not body.get("prompt") and not body.get("images")

        if empty and keep_alive == 0:
            self.scheduler.unload(spec)
            record.done_reason = "unload"
            self._json(resp, 200, self._done_only(model, chat, "unload"))
            return
        options = body.get("options") or {}
        try:
            check_options(options)
        except GoDecodeError as exc:
            raise ApiError(500, str(exc)) from None
        try:
            lease = await self.scheduler.acquire(spec, keep_alive, need_slot=not empty)
        except QueueFull:
            raise ApiError(503, SERVER_BUSY) from None
        record.cold_load = lease.cold
        try:
            if empty:
                record.done_reason = "load"
                self._json(resp, 200, self._done_only(model, chat, "load"))
                return
            gen = _Generation(chat, model, spec, body, stream, think, keep_alive, t0)
            await self._run(gen, lease, options, resp, record)
        finally:
            self.scheduler.release(lease, keep_alive)

    @staticmethod
    def _done_only(model: str, chat: bool, reason: str) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "created_at": created_at()}
        if chat:
            out["message"] = {"role": "assistant", "content": ""}
        else:
            out["response"] = ""
        out["done"] = True
        out["done_reason"] = reason
        return out

    async def _run(
        self,
        gen: _Generation,
        lease: Lease,
        options: Mapping[str, Any],
        resp: Responder,
        record: RequestRecord,
    ) -> None:
        spec, body = gen.spec, gen.body
        # What to say: the prompt the reply is "about", and how many tokens the prompt has.
        if gen.chat:
            messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
            prompt = next(
                (
                    str(m.get("content") or "")
                    for m in reversed(messages)
                    if m.get("role") == "user"
                ),
                str(messages[-1].get("content") or "") if messages else "",
            )
            prompt_tokens = chat_prompt_tokens(messages)
        else:
            prompt = str(body.get("prompt") or "")
            context = [c for c in body.get("context") or [] if isinstance(c, int)]
            prompt_tokens = generate_prompt_tokens(
                prompt, str(body.get("system") or ""), str(body.get("suffix") or ""), context
            )
        seed = options.get("seed")
        fmt = body.get("format")
        thinking = (
            thinking_seq(prompt, spec.thinking_tokens) if gen.think and spec.thinking else None
        )
        answer = reply_seq(
            spec.name,
            prompt,
            spec.reply_length,
            seed=int(seed) if isinstance(seed, (int, float)) else None,
            json_format=fmt not in (None, ""),
            fixed=spec.reply,
        )
        n_think = thinking.count if thinking else 0
        n_answer = answer.count
        done_reason = "stop"
        stops = options.get("stop") or []
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
        if thinking is not None:
            thinking = thinking.truncated(n_think)
        answer = answer.truncated(n_answer)
        record.prompt_eval_count = prompt_tokens

        # When: prefill, then one chunk per interval.
        speed = self.config.speed
        prefill_ns = 0 if math.isinf(spec.prompt_tps) else prompt_tokens / spec.prompt_tps * 1e9
        interval_ns = 0 if spec.fast else int(1e9 / spec.eval_tps / speed)
        t_first = lease.slot_ns + int(prefill_ns / speed)
        total = n_think + n_answer

        # Where it goes wrong, if the script says so.
        fault: Fault | None = None
        limit = total
        for kind in (FaultKind.ERROR_AFTER, FaultKind.CUT_AFTER, FaultKind.STALL_AFTER):
            f = spec.fault(kind)
            if f is not None and f.arg < limit:
                fault, limit = f, f.arg
        status_fault = spec.fault(FaultKind.STATUS)

        encoder = ChunkEncoder(gen.model, chat=gen.chat, framed=resp.chunked)
        encoder.add(thinking, thinking=True)
        encoder.add(answer, thinking=False)

        if status_fault is not None:
            await sleep_until(t_first)
            await self._fail_before_first_byte(status_fault, gen, resp, record)
            return
        if gen.stream:
            result = await write_chunks(
                resp,
                encoder,
                t_first_ns=t_first,
                interval_ns=interval_ns,
                limit=limit,
                record=record,
            )
            first_ns, last_ns = result.first_ns, result.last_ns
        else:
            await sleep_until(t_first)
            first_ns = time.perf_counter_ns() if limit else None
            if limit:
                await sleep_until(t_first + (limit - 1) * interval_ns)
            last_ns = time.perf_counter_ns() if limit else None

        if fault is not None:
            await self._fail_mid_stream(fault, gen, encoder, resp, record)
            return

        # The final chunk, with what was measured.
        done_ns = time.perf_counter_ns()
        eval_count = total
        metrics = {
            "total_duration": done_ns - gen.t0_ns,
            "load_duration": lease.loaded_ns - gen.t0_ns,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": (first_ns or done_ns) - lease.slot_ns,
            "eval_count": eval_count,
            "eval_duration": (last_ns - first_ns) if first_ns and last_ns else 0,
        }
        final: dict[str, Any] = {"model": gen.model, "created_at": created_at()}
        answer_text = "" if gen.stream else answer.text()
        thinking_text = "" if gen.stream or thinking is None else thinking.text()
        if gen.chat:
            message = {"role": "assistant", "content": answer_text}
            if thinking_text:
                message["thinking"] = thinking_text
            final["message"] = message
            final["done"] = True
            final["done_reason"] = done_reason
        else:
            final["response"] = answer_text
            if thinking_text:
                final["thinking"] = thinking_text
            final["done"] = True
            final["done_reason"] = done_reason
            if not body.get("raw"):
                final["context"] = self._context(body, prompt, thinking, answer)
        final.update((k, v) for k, v in metrics.items() if v)  # Go omitempty: zeros are left out
        record.done_reason = done_reason
        record.eval_count = eval_count
        if gen.stream:
            write_line(resp, encoder, dumps(final) + b"\n", record)
            resp.end_stream()
        else:
            self._json(resp, 200, final)

    @staticmethod
    def _context(
        body: Mapping[str, Any], prompt: str, thinking: TokenSeq | None, answer: TokenSeq
    ) -> list[int]:
        """Fake token ids of the conversation so far, as ``/api/generate`` returns them."""
        ids = [c for c in body.get("context") or [] if isinstance(c, int)]
        system = str(body.get("system") or "")
        ids += [token_id(tok) for tok in TOKEN_RE.findall(system + " " + prompt)]
        if thinking is not None:
            ids += thinking.ids()
        return ids + answer.ids()

    async def _fail_before_first_byte(
        self, fault: Fault, gen: _Generation, resp: Responder, record: RequestRecord
    ) -> None:
        code = fault.arg or 500
        default = {500: RUNNER_CRASHED, 503: "model is overloaded", 429: "rate limit exceeded"}
        message = fault.message or default.get(code, f"simulated error (status {code})")
        record.error = message
        # A stream's first value is the error: Ollama sets the status and plain
        # application/json; a non-stream reply goes through c.JSON.
        self._json(resp, code, {"error": message}, JSON_BARE if gen.stream else JSON_UTF8)

    async def _fail_mid_stream(
        self,
        fault: Fault,
        gen: _Generation,
        encoder: ChunkEncoder,
        resp: Responder,
        record: RequestRecord,
    ) -> None:
        if fault.kind is FaultKind.ERROR_AFTER:
            message = fault.message or RUNNER_ERROR
            record.error = message
            if gen.stream and resp.started:
                write_line(resp, encoder, dumps({"error": message}) + b"\n", record)
                resp.end_stream()
            else:
                self._json(resp, 500, {"error": message}, JSON_BARE if gen.stream else JSON_UTF8)
            return
        if fault.kind is FaultKind.STALL_AFTER:
            record.outcome = "stall"
            record.error = "stalled"
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(resp.conn.hangup.wait(), self.config.stall_s)
            finally:
                resp.cut()
            return
        record.outcome = "cut"
        record.error = "connection cut"
        resp.cut()
