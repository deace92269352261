"""``--auto``: say hello to every model once, under a deadline, and tabulate who answered.

It is the quick "does every model on that server answer, and how fast?" check of the seed's
``hi-ai.py --auto``. Models are greeted one after another (in parallel they would compete for
the same GPU and every number would be wrong). Each greeting — connecting, waiting for the
model to load, streaming the reply to its ``done`` line — runs inside
``asyncio.timeout(GREETING_TIMEOUT_SECONDS)``, so a model that stalls, or a server that
accepts the connection and then says nothing, costs at most that long; leaving the block
closes the connection, which makes Ollama stop generating.

The server's model list is fetched first, also with ``--model``: when the server cannot be
reached that request raises, and ``cli.main`` turns it into exit status 2 before any greeting.
After that, a model that fails (unknown name, 503, error line, cut stream) is a row in the
table, not the end of the run.

Exit status: 0 when every model answered, 1 when at least one did not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ollamakit.chat import cjk
from ollamakit.chat.models import resolve_model
from ollamakit.chat.session import format_ms
from ollamakit.client import AsyncChunkStream, AsyncOllamaClient
from ollamakit.config import Settings
from ollamakit.errors import ExitStatus, OllamakitError, UsageError
from ollamakit.i18n import t
from ollamakit.types import Message

Status = Literal["ok", "timeout", "error"]


@dataclass(frozen=True, slots=True)
class GreetResult:
    """One model's answer to the greeting; ``None`` where a number could not be known."""

    model: str
    status: Status
    reason: str | None = None
    ttft_ms: float | None = None
    eval_tps: float | None = None
    eval_count: int | None = None
    total_ms: float | None = None
    reply: str = ""
    message: str | None = None  # the full error message (``reason`` is its short form)
    hint: str | None = None


class _Printer:
    """Streams a reply under the model's name: thinking dim, answer plain.

    On a terminal, text is word-wrapped as it arrives (the column is tracked across chunks),
    so words are not split at the right edge; into a file or pipe it is written unchanged.
    """

    def __init__(self, out: Console) -> None:
        self.out = out
        self.wrap = out.is_terminal  # words (and CJK characters) are never split at the edge
        self.column = 0
        self.space = False  # a space is owed before the next word
        self.kind: str | None = None

    def header(self, model: str) -> None:
        self.out.rule(Text(model, style="bold"), align="left", style="dim")
        self.kind = None
        self.column, self.space = 0, False

    def write(self, text: str, kind: Literal["thinking", "content"]) -> None:
        if not text:
            return
        if self.kind is None:
            text = text.lstrip()
        elif self.kind != kind:
            self.end_line()
            self.out.print()
            text = text.lstrip()
        if not text:
            return
        self.kind = kind
        style = "dim italic" if kind == "thinking" else ""
        if not self.wrap:
            self.out.print(Text(text, style=style), end="", soft_wrap=True)
            self.column = 0 if text.endswith("\n") else 1
            return
        width = max(self.out.width, 20)
        for index, line in enumerate(text.split("\n")):
            if index:
                self.out.print()
                self.column, self.space = 0, False
            if line[:1].isspace() and self.column:
                self.space = True
            for _, _, unit in cjk.units(line):
                core = unit.strip()
                if unit[:1].isspace() and self.column:
                    self.space = True
                size = cell_len(core)
                gap = 1 if self.space else 0
                if self.column and self.column + gap + size > width:
                    self.out.print()
                    self.column, gap = 0, 0
                if gap:
                    self.out.print(" ", end="", soft_wrap=True)
                self.out.print(Text(core, style=style), end="", soft_wrap=True)
                self.column = (self.column + gap + size) % width
                self.space = unit[-1:].isspace()

    def end_line(self) -> None:
        if self.column:
            self.out.print()
        self.column, self.space = 0, False


async def greet(
    client: AsyncOllamaClient,
    model: str,
    messages: list[Message],
    timeout_s: float,
    printer: _Printer,
) -> GreetResult:
    """One greeting, bounded end to end by ``timeout_s``."""
    stream: AsyncChunkStream = client.stream_chat(model, messages)
    start_ns = time.perf_counter_ns()
    first_ns: int | None = None
    final: dict[str, object] | None = None
    parts: list[str] = []

    def elapsed_ms() -> float:
        return (time.perf_counter_ns() - (stream.sent_ns or start_ns)) / 1e6

    try:
        async with asyncio.timeout(timeout_s), stream:
            async for chunk in stream:
                thinking, content = chunk.thinking, chunk.content
                if (thinking or content) and first_ns is None:
                    first_ns = chunk.arrival_ns
                printer.write(thinking, "thinking")
                printer.write(content, "content")
                parts.append(content)
                if chunk.done:
                    final = chunk.data
    except TimeoutError:
        return GreetResult(
            model,
            "timeout",
            t("chat.auto_timeout", seconds=f"{timeout_s:g}"),
            ttft_ms=_ttft(first_ns, stream),
            total_ms=elapsed_ms(),
            reply="".join(parts),
        )
    except OllamakitError as exc:
        return GreetResult(
            model,
            "error",
            exc.detail or exc.short,
            ttft_ms=_ttft(first_ns, stream),
            total_ms=elapsed_ms(),
            reply="".join(parts),
            message=exc.message,
            hint=exc.hint,
        )
    finally:
        printer.end_line()
    final = final or {}
    count = final.get("eval_count")
    duration = final.get("eval_duration")
    tps = (
        count / duration * 1e9
        if isinstance(count, int) and isinstance(duration, int) and duration > 0
        else None
    )
    return GreetResult(
        model,
        "ok",
        ttft_ms=_ttft(first_ns, stream),
        eval_tps=tps,
        eval_count=count if isinstance(count, int) else None,
        total_ms=elapsed_ms(),
        reply="".join(parts),
    )


def _ttft(first_ns: int | None, stream: AsyncChunkStream) -> float | None:
    if first_ns is None or not stream.sent_ns:
        return None
    return (first_ns - stream.sent_ns) / 1e6


async def greet_all(
    settings: Settings,
    models: Sequence[str] | None,
    greeting: str,
    system: str | None,
    out: Console,
) -> list[GreetResult]:
    timeout_s = settings.greeting_timeout_s
    # The read timeout only backs up the deadline below, which always fires first.
    async with AsyncOllamaClient(settings, read_timeout_s=timeout_s + 5) as client:
        listed = await client.list_models()  # an unreachable server raises here: exit 2
        # A typed name is matched like in the interactive chat (llama3.2 -> llama3.2:latest);
        # one that matches nothing is sent as typed, and the server's 404 becomes its row.
        names = [resolve_model(m, listed) or m for m in models] if models else []
        names = names or [m["name"] for m in listed]
        if not names:
            raise UsageError(t("chat.no_models"))
        out.print(
            Text(
                t(
                    "chat.auto_header",
                    count=len(names),
                    server=settings.base_url.redacted(),
                    greeting=greeting,
                    timeout=f"{timeout_s:g}",
                ),
                style="dim",
            )
        )
        messages: list[Message] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": greeting})
        printer = _Printer(out)
        results = []
        for name in names:
            out.print()
            printer.header(name)
            result = await greet(client, name, messages, timeout_s, printer)
            _print_outcome(out, result)
            results.append(result)
        return results


def _print_outcome(out: Console, result: GreetResult) -> None:
    if result.status == "ok":
        out.print(f"[green]✔[/] [dim]{t('chat.auto_ok', time=format_ms(result.total_ms))}[/]")
    elif result.status == "timeout":
        out.print(f"[yellow]✘ {escape(result.reason or '')}[/]")
    else:
        out.print(f"[red]✘ {escape(result.message or result.reason or '')}[/]")
        for line in (result.hint or "").splitlines():
            out.print(f"  [cyan]→[/] {escape(line)}")


def results_table(results: Sequence[GreetResult]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column(t("chat.col_model"), overflow="fold")
    table.add_column(t("chat.col_status"), overflow="fold")
    table.add_column(t("chat.col_ttft"), justify="right")
    table.add_column(t("chat.col_tps"), justify="right")
    table.add_column(t("chat.col_total"), justify="right")
    for r in results:
        if r.status == "ok":
            status = f"[green]{t('chat.status_ok')}[/]"
        elif r.status == "timeout":
            status = f"[yellow]{t('chat.status_timeout')}[/]"
        else:
            status = f"[red]{t('chat.status_error')}[/]: {escape(r.reason or '')}"
        table.add_row(
            escape(r.model),
            status,
            format_ms(r.ttft_ms),
            f"{r.eval_tps:.1f}" if r.eval_tps is not None else "—",
            format_ms(r.total_ms),
        )
    return table


def run_auto(
    settings: Settings, *, models: Sequence[str] | None, greeting: str | None, system: str | None
) -> int:
    out = Console(highlight=False)
    results = asyncio.run(greet_all(settings, models, greeting or t("chat.greeting"), system, out))
    out.print()
    out.print(results_table(results))
    failed = [r for r in results if r.status != "ok"]
    if not failed:
        out.print(Text(t("chat.auto_summary_all", total=len(results)), style="green"))
        return int(ExitStatus.OK)
    summary = t("chat.auto_summary_some", failed=len(failed), total=len(results))
    if any(r.status == "timeout" for r in failed):
        summary += " " + t("chat.auto_timeout_hint", seconds=f"{settings.greeting_timeout_s:g}")
    Console(stderr=True, highlight=False).print(Text(summary, style="yellow"))
    return int(ExitStatus.FAILURES)
