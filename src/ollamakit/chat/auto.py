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
The models are chosen by :mod:`ollamakit.selection` (a ``--model`` that is not there or cannot
chat is exit 2, with the list and close names). After that, a model that fails (503, error
line, cut stream) is a row in the table, not the end of the run.

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
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ollamakit.chat.backend import AsyncChatClient, open_async_chat_client
from ollamakit.chat.render import GUTTER, THINK_STYLE
from ollamakit.chat.session import format_ms
from ollamakit.client import AsyncReplyStream, identity_line
from ollamakit.client.ollama import model_info
from ollamakit.config import Settings
from ollamakit.domain import StreamEnd, Think
from ollamakit.errors import ExitStatus, OllamakitError, UsageError
from ollamakit.i18n import t
from ollamakit.measure.recorder import ReplyRecorder
from ollamakit.selection import (
    AsyncCatalog,
    SelectionError,
    ThinkMode,
    parse_think_mode,
    select_async,
    think_plan,
)
from ollamakit.types import Message
from ollamakit.ui.tables import (
    first_fitting,
    name_column,
    print_lines,
    print_table,
    print_text,
)
from ollamakit.ui.terminal import Terminal
from ollamakit.ui.wrap import units

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
    decode_tps: float | None = None  # the client's decode rate (shown beside the server's)
    buffered: bool = False  # a buffering proxy held the reply: ttft_ms is not a TTFT
    hint: str | None = None


class _Printer:
    """Streams a reply under the model's name: thinking behind a ``┊`` gutter, answer plain.

    On a terminal, text is word-wrapped as it arrives (the column is tracked across chunks),
    so words are not split at the right edge, and thinking text is dim. A row never reaches
    the last column: a terminal may take a row that fills it for one it wrapped itself, and
    copying the text would then join the last word with the first of the next row.

    Into a file or a pipe the text is written as it comes, unwrapped, each thinking line
    behind the same ``┊`` (without colour it is the only way to tell thinking from answer).
    Either way no line ends in spaces: whitespace is written only when text follows it.
    """

    def __init__(self, out: Console) -> None:
        self.out = out
        self.wrap = out.is_terminal
        self.kind: str | None = None
        self.held = ""  # terminal: the start of a word whose end may be in the next chunk
        self._reset_row()

    def _reset_row(self) -> None:
        self.column = 0  # cells used on the current row, gutter included
        self.words = False  # the current row has text
        self.space = False  # terminal: a space is owed before the next word
        self.owed = ""  # pipe: whitespace written only if text follows on this row
        self.blank_rows = 0  # empty rows of the text, written only if text follows

    def header(self, model: str) -> None:
        self.out.rule(Text(model, style="bold"), align="left", style="dim")
        self.kind, self.held = None, ""
        self._reset_row()

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
        if self.wrap:
            # A word can arrive in pieces ("luck", then "!"): the last piece of a chunk waits
            # for the next one, so the whole word is placed at once (never "luck" at the end
            # of a row and "!" alone on the next).
            text, self.held = self.held + text, ""
            if not text[-1:].isspace():
                last = text.rsplit("\n", 1)[-1]
                start, _, unit = list(units(last))[-1]  # it ends in a word: there is one
                cut = len(text) - len(last) + start + len(unit) - len(unit.lstrip())
                text, self.held = text[:cut], text[cut:]
        self._lines(text)

    def _lines(self, text: str) -> None:
        for index, line in enumerate(text.split("\n")):
            if index:
                self._newline()
            if self.wrap:
                self._wrapped(line)
            else:
                self._verbatim(line)

    @property
    def _style(self) -> str:
        return THINK_STYLE if self.kind == "thinking" else ""

    def _emit(self, text: str, style: str = "") -> None:
        self.out.print(Text(text, style=style), end="", soft_wrap=True)

    def _newline(self) -> None:
        """A line break of the text."""
        if self.words:
            self.out.print()
            blank_rows = 0
        else:
            blank_rows = self.blank_rows + 1
        self._reset_row()
        self.blank_rows = blank_rows

    def _start_row(self) -> None:
        """Before the first text of a row: the empty rows owed, then the gutter (thinking)."""
        gutter = self.kind == "thinking"
        for _ in range(self.blank_rows):
            self.out.print(Text(GUTTER.rstrip() if gutter else "", style="dim"))
        self.blank_rows = 0
        if gutter:
            self._emit(GUTTER, "dim")
            self.column = cell_len(GUTTER)

    def _verbatim(self, line: str) -> None:
        """Not a terminal: the text as it is, but no whitespace at the end of a line."""
        line = self.owed + line
        text = line.rstrip()
        self.owed = line[len(text) :]
        if not text:
            return
        if not self.words:
            self._start_row()
        self._emit(text, self._style)
        self.words = True

    def _wrapped(self, line: str) -> None:
        """A terminal: word by word (and CJK character by character), wrapped by us."""
        width = max(self.out.width, 20)
        limit = width - 1  # never the last column (see the class docstring)
        if line[:1].isspace() and self.words:
            self.space = True
        for _, _, unit in units(line):
            core = unit.strip()
            if unit[:1].isspace() and self.words:
                self.space = True
            size = cell_len(core)
            gap = 1 if self.space and self.words else 0
            if self.words and self.column + gap + size > limit:
                self.out.print()
                self._reset_row()
                gap = 0
            if not self.words:
                self._start_row()
            if gap:
                self._emit(" ")
            self._emit(core, self._style)
            # A word longer than a row was wrapped by the terminal: where did it end?
            self.column = (self.column + gap + size - 1) % width + 1
            self.words = True
            self.space = unit[-1:].isspace()

    def end_line(self) -> None:
        held, self.held = self.held, ""
        self._lines(held)
        if self.words:
            self.out.print()
        self._reset_row()


async def greet(
    client: AsyncChatClient,
    model: str,
    messages: list[Message],
    timeout_s: float,
    printer: _Printer,
    think: Think | None = None,
) -> GreetResult:
    """One greeting, bounded end to end by ``timeout_s``, measured by the one recorder."""
    stream: AsyncReplyStream = client.stream_chat(model, messages, think=think)
    start_ns = time.perf_counter_ns()
    recorder: ReplyRecorder | None = None
    parts: list[str] = []

    def result(
        status: Status, end: StreamEnd | None, reason: str | None = None, **text: str | None
    ) -> GreetResult:
        sent_ns = stream.sent_ns or start_ns
        m = (recorder or ReplyRecorder(sent_ns)).finish(end or stream.end, reason)
        elapsed_ms = (time.perf_counter_ns() - sent_ns) / 1e6
        return GreetResult(
            model,
            status,
            reason,
            ttft_ms=m.ttft_ms,
            eval_tps=m.eval_tps,
            eval_count=m.eval_count,
            total_ms=m.total_ms if m.ok and m.total_ms is not None else elapsed_ms,
            reply="".join(parts),
            message=text.get("message"),
            hint=text.get("hint"),
            decode_tps=m.decode_tps,
            buffered=m.buffered,
        )

    try:
        async with asyncio.timeout(timeout_s), stream:
            recorder = ReplyRecorder(stream.sent_ns)
            async for chunk in stream:
                recorder.add(chunk)
                printer.write(chunk.thinking, "thinking")
                printer.write(chunk.content, "content")
                parts.append(chunk.content)
    except TimeoutError:
        return result("timeout", "timeout", t("chat.auto_timeout", seconds=f"{timeout_s:g}"))
    except OllamakitError as exc:
        reason = exc.detail or exc.short
        return result("error", "error", reason, message=exc.message, hint=exc.hint)
    finally:
        printer.end_line()
    return result("ok", None)


async def greet_all(
    settings: Settings,
    models: Sequence[str] | None,
    greeting: str,
    system: str | None,
    out: Console,
    think: ThinkMode = "off",
) -> list[GreetResult]:
    timeout_s = settings.greeting_timeout_s
    # The read timeout only backs up the deadline below, which always fires first.
    async with open_async_chat_client(settings, read_timeout_s=timeout_s + 5) as client:
        identity = await client.connect()  # an unreachable server raises here: exit 2
        listed = await client.list_models()
        if not listed:
            raise UsageError(t("chat.no_models"))

        # The one matching rule (selection.py): a name that matches nothing, or an embedding
        # model named, is exit 2 before any greeting; without names, embedding and cloud
        # models are left out, each with a one-line notice.
        selection = await select_async(
            [model_info(m) for m in listed],
            list(models or ()),
            (),
            AsyncCatalog(client.backend.describe),
        )
        names = selection.names
        if not names:
            raise SelectionError(
                t(
                    "select.no_chat_models",
                    url=settings.base_url.redacted(),
                    skipped=", ".join(s.name for s in selection.skipped),
                ),
                t("select.no_chat_models_hint"),
            )
        # The bench's think plan (selection.py): an explicit ``think`` for every model, off
        # where the model allows it (gpt-oss: "low", with a notice), so that a thinking model's
        # first token is its answer's and the reply is not all reasoning; a level this server
        # version cannot take is exit 2 before any greeting.
        think_by_model, think_notices = think_plan(selection.models, think, identity.version)
        header = t(
            "chat.auto_header",
            count=len(names),
            server=settings.base_url.redacted(),
            greeting=greeting,
            timeout=f"{timeout_s:g}",
        )
        print_text(out, Text(header, style="dim"))
        for notice in [*selection.notices(), *think_notices]:  # after the header
            print_text(out, Text(notice, style="dim"))
        print_text(out, Text(identity_line(identity, settings.base_url.redacted()), style="dim"))
        messages: list[Message] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": greeting})
        printer = _Printer(out)
        results = []
        for name in names:
            out.print()
            printer.header(name)
            result = await greet(
                client, name, messages, timeout_s, printer, think_by_model.get(name)
            )
            _print_outcome(out, result)
            results.append(result)
        return results


def _print_outcome(out: Console, result: GreetResult) -> None:
    if result.status == "ok":
        answered = t("chat.auto_ok", time=format_ms(result.total_ms))
        print_text(out, Text.assemble(("✔ ", "green"), (answered, "dim")))
    elif result.status == "timeout":
        print_text(out, Text(f"✘ {result.reason or ''}", style="yellow"))
    else:
        print_text(out, Text(f"✘ {result.message or result.reason or ''}", style="red"))
        for hint in (result.hint or "").splitlines():
            line = Text.assemble(("→ ", "cyan"), hint)
            if out.is_terminal:  # wrapped lines indented under the first
                print_lines(out, Padding(line, (0, 0, 0, 2)))
            else:
                print_text(out, Text.assemble("  ", line))


def _rate(value: float | None) -> str:
    """A rate cell: the number alone (the header carries the unit), thousands grouped.

    >>> _rate(1234.56), _rate(None)
    ('1,234.6', '—')
    """
    return "—" if value is None else f"{value:,.1f}"


def results_table(results: Sequence[GreetResult], *, fold_names: bool = False) -> Table:
    """Model, status (with the reason of a failure), first token, eval rate, client decode,
    total time.

    Model names never break (``fold_names`` is for terminals too narrow to avoid it); the
    status column, the one with free text, wraps instead.
    """
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    name_column(table, t("chat.col_model"), [r.model for r in results], fold=fold_names)
    table.add_column(t("chat.col_status"), overflow="fold")
    # The two rates labelled as in the benchmark; a buffered reply has no client rate, and a
    # table where no reply has one has no such column (never the server's under its name).
    decode = any(r.decode_tps is not None and not r.buffered for r in results)
    keys = ["chat.col_ttft", "chat.col_eval_rate", "chat.col_total"]
    if decode:
        keys.insert(2, "chat.col_decode")
    numbers = []
    for r in results:
        row = [
            t("chat.cell_buffered") if r.buffered else format_ms(r.ttft_ms),
            _rate(r.eval_tps),
            format_ms(r.total_ms),
        ]
        if decode:
            row.insert(2, _rate(None if r.buffered else r.decode_tps))
        numbers.append(row)
    for index, key in enumerate(keys):
        longest = max((cell_len(row[index]) for row in numbers), default=0)
        # at least as wide as "199 ms": the values stay on one line, the headers wrap instead
        table.add_column(t(key), justify="right", min_width=longest or None)
    for r, row in zip(results, numbers, strict=True):
        if r.status == "ok":
            status = Text(t("chat.status_ok"), style="green")
        elif r.status == "timeout":
            status = Text(t("chat.status_timeout"), style="yellow")
        else:
            status = Text.assemble((t("chat.status_error"), "red"), f": {r.reason or ''}")
        table.add_row(Text(r.model), status, *row)
    return table


def run_auto(
    settings: Settings,
    terminal: Terminal,
    *,
    models: Sequence[str] | None,
    greeting: str | None,
    system: str | None,
    think: str | None = None,
) -> int:
    mode = parse_think_mode(think or "off")
    if mode is None:
        raise UsageError(t("select.bad_think", value=think))
    out = terminal.console()
    results = asyncio.run(
        greet_all(settings, models, greeting or t("chat.greeting"), system, out, mode)
    )
    out.print()
    for table in first_fitting(
        out,
        lambda: [results_table(results)],
        lambda: [results_table(results, fold_names=True)],
    ):
        print_table(out, table)
    failed = [r for r in results if r.status != "ok"]
    if not failed:
        print_text(out, Text(t("chat.auto_summary_all", total=len(results)), style="green"))
        return int(ExitStatus.OK)
    summary = t("chat.auto_summary_some", failed=len(failed), total=len(results))
    if any(r.status == "timeout" for r in failed):
        hint = t("chat.auto_timeout_hint", seconds=f"{settings.greeting_timeout_s:g}")
        # Chinese sentences follow each other without a space (after "。")
        summary += ("" if summary.endswith(("。", "！", "？")) else " ") + hint
    print_text(terminal.console(stderr=True), Text(summary, style="yellow"))
    return int(ExitStatus.FAILURES)
