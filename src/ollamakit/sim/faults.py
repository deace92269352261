"""Scripted faults as registered objects: one class per fault, hooks where it acts.

A :class:`Fault` is the plain value a config holds (``kind``, ``arg``, ``message``); its
behaviour is the :class:`FaultBehaviour` subclass registered for its kind. A reply asks the
behaviours of its model at three points::

    request accepted ── before_headers() ── load, prefill ── chunks ... ─┬─ at_chunk(n) ─▶
                        (delay, refuse)                                  │  (error, cut,
                                                                         │   stall, end)
                                                                         └─ done line

* :meth:`FaultBehaviour.before_headers` runs before the model is scheduled (a delay before the
  status line, a 503);
* :meth:`FaultBehaviour.chunk_limit` says after how many chunks the fault takes over; the
  smallest limit of a model's faults wins (ties: registry order) and its
  :meth:`FaultBehaviour.at_chunk` ends the reply instead of the done line.

The registry (:data:`REGISTRY`, in declaration order) is the one table that ``--fault``
parsing, ``--help``, the model table and the docs table (:func:`fault_table`) are built from,
so a new fault is one class here plus one :class:`FaultKind` member (a test checks they match)
and its ``fault_<kind>`` help entry in ``i18n/messages/sim.toml``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, ClassVar, Final

from ollamakit.errors import UsageError
from ollamakit.i18n import catalogue, t
from ollamakit.sim.gojson import dumps
from ollamakit.sim.http import Responder
from ollamakit.sim.log import RequestRecord
from ollamakit.sim.stream import ChunkEncoder, write_line

# Ollama's own texts for the failures a fault imitates (llm/server.go, server/sched.go).
RUNNER_ERROR: Final = "an error was encountered while running the model"
RUNNER_CRASHED: Final = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details"
)
SERVER_BUSY: Final = "server busy, please try again.  maximum pending requests exceeded"

JSON_UTF8: Final = "application/json; charset=utf-8"  # gin c.JSON
JSON_BARE: Final = "application/json"  # an error before the first byte of a stream


class ApiError(Exception):
    """An ``{"error": message}`` answer with a status (extra keys go into the body too)."""

    def __init__(self, status: int, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


class FaultKind(str, Enum):
    """The registered faults' names; see :data:`REGISTRY`."""

    ERROR_AFTER = "error_after"
    CUT_AFTER = "cut_after"
    STALL_AFTER = "stall_after"
    REPEAT_GUARD = "repeat_guard"
    SLOW_HEADERS_MS = "slow_headers_ms"
    BUSY = "busy"
    STATUS = "status"


@dataclass(frozen=True)
class Fault:
    """One scripted failure of a model. ``arg`` is a chunk count, milliseconds or a status."""

    kind: FaultKind
    arg: int = 0
    message: str | None = None

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``KIND``, ``KIND=ARG`` or ``KIND:ARG``.

        >>> Fault.parse("error_after=3")
        Fault(kind=<FaultKind.ERROR_AFTER: 'error_after'>, arg=3, message=None)
        >>> Fault.parse("busy").kind.value
        'busy'
        """
        head, sep, arg_text = text.strip().replace(":", "=", 1).partition("=")
        try:
            kind = FaultKind(head.strip().lower())
        except ValueError:
            raise UsageError(t("sim.bad_fault", spec=text, kinds=kinds_text())) from None
        if REGISTRY[kind].needs_arg and not sep:
            raise UsageError(t("sim.fault_needs_arg", spec=text, kind=kind.value))
        arg = 0
        if sep:
            try:
                arg = int(float(arg_text))
            except ValueError:
                raise UsageError(t("sim.bad_fault", spec=text, kinds=kinds_text())) from None
        return cls(kind, arg)

    @classmethod
    def from_value(cls, value: Any) -> Fault:
        """A fault from a file: ``"error_after=3"`` or ``{kind=..., arg=..., message=...}``."""
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, Mapping):
            arg = value.get("arg")
            base = cls.parse(str(value.get("kind", "")) + ("" if arg is None else f"={arg}"))
            message = value.get("message")
            return replace(base, message=str(message) if message is not None else None)
        raise UsageError(t("sim.bad_fault", spec=repr(value), kinds=kinds_text()))

    def to_value(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value, "arg": self.arg}
        if self.message is not None:
            out["message"] = self.message
        return out

    def __str__(self) -> str:
        return f"{self.kind.value}={self.arg}" if REGISTRY[self.kind].needs_arg else self.kind.value

    def behaviour(self) -> FaultBehaviour:
        return REGISTRY[self.kind](self)


@dataclass
class FaultScene:
    """What a hook may touch: the response being written and the request's record."""

    resp: Responder
    record: RequestRecord
    stream: bool
    encoder: ChunkEncoder
    stall_s: float
    partial: Callable[[], dict[str, Any]]  # the non-streaming reply so far (done: false)
    error_line: Callable[[str], bytes]  # an error inside a stream, in the stream's framing

    def send_json(self, status: int, obj: Any, content_type: str) -> None:
        self.resp.send(status, dumps(obj), content_type)


class FaultBehaviour:
    """Base class: a fault that does nothing. Subclasses set ``kind`` and override hooks."""

    kind: ClassVar[FaultKind]
    needs_arg: ClassVar[bool] = True
    metavar: ClassVar[str] = "N"
    always: ClassVar[bool] = False  # acts even when the reply is shorter than its limit

    def __init__(self, fault: Fault) -> None:
        self.fault = fault

    @property
    def arg(self) -> int:
        return self.fault.arg

    async def before_headers(self) -> None:
        """Before the model is scheduled; raise :class:`ApiError` to answer instead."""

    def chunk_limit(self) -> int | None:
        """After how many chunks :meth:`at_chunk` takes over (None: never)."""
        return None

    async def at_chunk(self, scene: FaultScene) -> None:
        """End the reply the fault's way instead of with the done line."""

    @classmethod
    def help(cls) -> str:
        return t(f"sim.fault_{cls.kind.value}")

    @classmethod
    def usage(cls) -> str:
        return f"{cls.kind.value}={cls.metavar}" if cls.needs_arg else cls.kind.value


REGISTRY: Final[dict[FaultKind, type[FaultBehaviour]]] = {}


def register(cls: type[FaultBehaviour]) -> type[FaultBehaviour]:
    REGISTRY[cls.kind] = cls
    return cls


def _error_body(scene: FaultScene, status: int, message: str) -> None:
    scene.record.error = message
    # A stream's first value is the error: Ollama sets the status and plain
    # application/json; a non-stream reply goes through c.JSON.
    scene.send_json(status, {"error": message}, JSON_BARE if scene.stream else JSON_UTF8)


@register
class ErrorAfter(FaultBehaviour):
    kind = FaultKind.ERROR_AFTER

    def chunk_limit(self) -> int:
        return self.arg

    async def at_chunk(self, scene: FaultScene) -> None:
        message = self.fault.message or RUNNER_ERROR
        if scene.stream and scene.resp.started:
            scene.record.error = message
            write_line(scene.resp, scene.encoder, scene.error_line(message), scene.record)
            scene.resp.end_stream()
        else:
            _error_body(scene, 500, message)


@register
class CutAfter(FaultBehaviour):
    kind = FaultKind.CUT_AFTER

    def chunk_limit(self) -> int:
        return self.arg

    async def at_chunk(self, scene: FaultScene) -> None:
        scene.record.outcome = "cut"
        scene.record.error = "connection cut"
        scene.resp.cut()


@register
class StallAfter(FaultBehaviour):
    kind = FaultKind.STALL_AFTER

    def chunk_limit(self) -> int:
        return self.arg

    async def at_chunk(self, scene: FaultScene) -> None:
        scene.record.outcome = "stall"
        scene.record.error = "stalled"
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(scene.resp.conn.hangup.wait(), scene.stall_s)
        finally:
            scene.resp.cut()


@register
class RepeatGuard(FaultBehaviour):
    """Ollama's token-repeat guard: the runner returns without an error and the handler ends
    the stream cleanly, so there is neither a done line nor an error line."""

    kind = FaultKind.REPEAT_GUARD

    def chunk_limit(self) -> int:
        return self.arg

    async def at_chunk(self, scene: FaultScene) -> None:
        scene.record.outcome = "no_done"
        if scene.stream:
            if not scene.resp.started:
                scene.resp.begin_stream(200, scene.encoder.content_type)
            scene.resp.end_stream()
        else:
            # Non-streaming: the last chunk collected, done still false.
            scene.send_json(200, scene.partial(), JSON_UTF8)


@register
class SlowHeaders(FaultBehaviour):
    kind = FaultKind.SLOW_HEADERS_MS
    metavar = "MS"

    async def before_headers(self) -> None:
        await asyncio.sleep(self.arg / 1000)  # fault delays are literal, not scaled


@register
class Busy(FaultBehaviour):
    kind = FaultKind.BUSY
    needs_arg = False

    async def before_headers(self) -> None:
        raise ApiError(503, SERVER_BUSY)


@register
class Status(FaultBehaviour):
    kind = FaultKind.STATUS
    metavar = "CODE"
    always = True

    def chunk_limit(self) -> int:
        return 0  # after the load and prefill, before the first chunk

    async def at_chunk(self, scene: FaultScene) -> None:
        code = self.arg or 500
        default = {500: RUNNER_CRASHED, 503: "model is overloaded", 429: "rate limit exceeded"}
        message = self.fault.message or default.get(code, f"simulated error (status {code})")
        _error_body(scene, code, message)


_ORDER: Final = {kind: i for i, kind in enumerate((FaultKind.STATUS, *FaultKind))}


def pick_chunk_fault(faults: tuple[Fault, ...], total: int) -> tuple[FaultBehaviour | None, int]:
    """The fault that ends a reply of ``total`` chunks first, and after how many chunks."""
    chosen: FaultBehaviour | None = None
    limit = total
    for fault in sorted(faults, key=lambda f: _ORDER[f.kind]):
        behaviour = fault.behaviour()
        n = behaviour.chunk_limit()
        if n is not None and (n < limit or (behaviour.always and chosen is None)):
            chosen, limit = behaviour, n
    return chosen, limit


def kinds_text() -> str:
    return ", ".join(k.value for k in REGISTRY)


def fault_help() -> str:
    """The ``--fault`` help: the syntax and every registered kind."""
    return t("sim.help_fault", kinds=", ".join(cls.usage() for cls in REGISTRY.values()))


def fault_table(lang: str) -> str:
    """The docs' fault table in ``lang`` (docs/simulator.md holds it; a test compares)."""
    entries = catalogue("sim")
    head = entries["fault_table_head"][lang]
    lines = [head, "|---|---|"]
    for cls in REGISTRY.values():
        lines.append(f"| `{cls.usage()}` | {entries[f'fault_{cls.kind.value}'][lang]} |")
    return "\n".join(lines)
