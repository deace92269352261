"""Drawing a streamed reply: live Markdown on a terminal, plain text everywhere else.

The problem
-----------
A reply arrives a few characters at a time and should look like rendered Markdown (headings,
lists, highlighted code) while it streams. Re-rendering the whole reply in one live region
breaks as soon as it is taller than the window: a terminal cannot redraw lines that scrolled
away, and the result is duplicated or torn output.

The approach
------------
:class:`MarkdownSplitter` cuts the text into *finished blocks* — everything before a blank line
that lies outside a code fence (and is not followed by an indented continuation), or a closed
fence. A finished block never changes again, so it is printed once, permanently, above the
live region. Only the unfinished last block lives in a small transient :class:`rich.live.Live`
region, cropped to its bottom lines if it grows taller than the window (a long code block
being written). When the reply ends — done, interrupted or failed — the live region is cleared
and the last block is printed in full, so whatever arrived is on screen exactly once.

Thinking text (``message.thinking``) goes through the same machinery line by line
(:class:`LineSplitter`), drawn dim and italic behind a ``┊`` gutter, before the answer.
Paragraph width is capped at :data:`MAX_WIDTH` columns for readability on wide terminals;
on an 80-column terminal everything wraps at 80, Chinese text included: paragraphs, headings
and thinking lines are :class:`ollamakit.ui.wrap.WrapText`, which breaks between CJK
characters (rich itself is left alone).

Everything the server sent is passed through :func:`ollamakit.ui.sanitize.clean` as it
arrives (:meth:`RichReplyView.content`, :meth:`PlainReplyView.content`, and the thinking
twins): no escape sequence in a reply reaches the terminal, CJK and emoji stay.

When standard output is not a terminal, :class:`PlainReplyView` writes the text as it comes
(no colour, no cursor movement) and sends thinking text to stderr, so ``> file`` or ``| less``
get the reply and nothing else.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import IO, ClassVar, Final, Literal, Protocol

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, JustifyMethod, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Heading, Markdown, MarkdownElement, Paragraph
from rich.segment import Segment
from rich.spinner import Spinner
from rich.text import Text

from ollamakit.chat.session import ReplyStats, format_ms
from ollamakit.i18n import t
from ollamakit.measure import format as fmt
from ollamakit.ui.sanitize import clean
from ollamakit.ui.wrap import wrap_text

MAX_WIDTH: Final = 100
THINK_STYLE: Final = "dim italic"
GUTTER: Final = "┊ "
Outcome = Literal["done", "interrupted", "failed"]

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


# --------------------------------------------------------------------------- splitting


class MarkdownSplitter:
    """Cuts streamed Markdown into blocks that are finished (will not change any more).

    >>> s = MarkdownSplitter()
    >>> s.feed("# Title\\nSome text,\\nmore.\\n\\n")
    []
    >>> s.feed("Next")           # a new block starts: the first one is finished
    ['# Title\\nSome text,\\nmore.']
    >>> s.feed(" para\\n\\n```py\\nx = 1\\n\\ny = 2\\n")   # no split inside a fence
    ['Next para']
    >>> s.feed("```\\n")
    ['```py\\nx = 1\\n\\ny = 2\\n```']
    >>> s.feed("1. one\\n\\n   still item one\\n")    # indented: the list item goes on
    []
    >>> s.tail
    '1. one\\n\\n   still item one\\n'
    >>> s.flush()
    ['1. one\\n\\n   still item one']
    """

    def __init__(self) -> None:
        self._buf = ""
        self._scanned = 0  # offset in _buf up to which complete lines were examined
        self._fence: tuple[str, int] | None = None  # (char, length) of the open fence
        self._blank_at: int | None = None  # where a run of blank lines after content began
        self._has_content = False

    @property
    def tail(self) -> str:
        """The unfinished text (shown live)."""
        return self._buf

    def feed(self, text: str) -> list[str]:
        self._buf += text
        blocks: list[str] = []
        while True:
            end = self._buf.find("\n", self._scanned)
            if end < 0:
                break
            start, self._scanned = self._scanned, end + 1
            cut = self._line(self._buf[start:end], start, end + 1)
            if cut is not None:
                block, rest_from = cut
                if block.strip():
                    blocks.append(block.rstrip())
                self._buf = self._buf[rest_from:]
                self._scanned -= rest_from
                if self._blank_at is not None:
                    self._blank_at -= rest_from
        # A line has begun after blank lines: its first character already tells whether it
        # continues the block (indented) or starts a new one, so the block need not wait.
        if self._blank_at is not None:
            first = self._buf[self._scanned : self._scanned + 1]
            if first and not first.isspace():
                block = self._buf[: self._blank_at]
                if block.strip():
                    blocks.append(block.rstrip())
                self._buf = self._buf[self._scanned :]
                self._scanned, self._blank_at, self._has_content = 0, None, False
        return blocks

    def _line(self, line: str, start: int, end: int) -> tuple[str, int] | None:
        """Examine one complete line; return (finished block, offset where the rest begins)."""
        fence = _FENCE.match(line)
        if self._fence is not None:
            char, length = self._fence
            closes = fence is not None and not fence.group(3).strip()
            if closes and fence and fence.group(2)[0] == char and len(fence.group(2)) >= length:
                self._fence = None
                self._has_content = False
                return self._buf[:end], end
            return None
        if not line.strip():
            if self._has_content and self._blank_at is None:
                self._blank_at = start
            return None
        cut: tuple[str, int] | None = None
        if self._blank_at is not None:
            if line[:1].isspace():
                self._blank_at = None  # indented: the previous block (a list item) continues
            else:
                cut = (self._buf[: self._blank_at], start)
                self._blank_at = None
        if fence:
            if cut is None and self._has_content and not fence.group(1):
                cut = (self._buf[:start], start)  # a fence ends the paragraph before it
            self._fence = (fence.group(2)[0], len(fence.group(2)))
        self._has_content = True
        return cut

    def flush(self) -> list[str]:
        """End of the reply: the rest is the last block."""
        rest, self._buf = self._buf.strip("\n"), ""
        self._scanned, self._fence, self._blank_at, self._has_content = 0, None, None, False
        return [rest.rstrip()] if rest.strip() else []


class LineSplitter:
    """Cuts streamed thinking text into finished lines (runs of blank lines collapse to one).

    >>> s = LineSplitter()
    >>> s.feed("\\nOkay, the user"), s.feed(" says hi.\\n\\n\\nSo"), s.tail
    ([], ['Okay, the user says hi.', ''], 'So')
    >>> s.flush()
    ['So']
    """

    def __init__(self) -> None:
        self.tail = ""
        self._last_blank = True  # no blank line at the very start

    def feed(self, text: str) -> list[str]:
        self.tail += text
        *lines, self.tail = self.tail.split("\n")
        out = []
        for line in lines:
            blank = not line.strip()
            if blank and self._last_blank:
                continue
            self._last_blank = blank
            out.append("" if blank else line.rstrip())
        return out

    def flush(self) -> list[str]:
        rest, self.tail = self.tail.rstrip(), ""
        self._last_blank = True
        return [rest] if rest.strip() else []


# --------------------------------------------------------------------------- rich pieces


class _LeftHeading(Heading):
    """Headings aligned left (centred titles look lost in a chat transcript), CJK-wrapped."""

    LEVEL_ALIGN: ClassVar[dict[str, JustifyMethod]] = dict.fromkeys(
        ("h1", "h2", "h3", "h4", "h5", "h6"), "left"
    )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for item in super().__rich_console__(console, options):
            yield wrap_text(item) if isinstance(item, Text) else item


class _Paragraph(Paragraph):
    """A paragraph that breaks lines between CJK characters too."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for item in super().__rich_console__(console, options):
            yield wrap_text(item) if isinstance(item, Text) else item


class ChatMarkdown(Markdown):
    elements: ClassVar[dict[str, type[MarkdownElement]]] = {
        **Markdown.elements,
        "heading_open": _LeftHeading,
        "paragraph_open": _Paragraph,
    }


class Gutter:
    """A renderable drawn behind a prefix on every line (``┊ thinking...``)."""

    def __init__(self, renderable: RenderableType, prefix: str = GUTTER, style: str = "dim"):
        self.renderable = renderable
        self.prefix = prefix
        self.style = style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width - len(self.prefix), 10)
        lines = console.render_lines(self.renderable, options.update_width(width), pad=False)
        prefix = Segment(self.prefix, console.get_style(self.style))
        for line in lines:
            yield prefix
            yield from line
            yield Segment.line()


class BottomLines:
    """Only the last ``max_lines`` lines of a renderable (the live tail of a long block)."""

    def __init__(self, renderable: RenderableType, max_lines: int) -> None:
        self.renderable = renderable
        self.max_lines = max_lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.renderable, options, pad=False)
        if len(lines) > self.max_lines:
            yield Segment("⋮", console.get_style("dim"))
            yield Segment.line()
            lines = lines[-(self.max_lines - 1) :]
        for line in lines:
            yield from line
            yield Segment.line()


class Trimmed:
    """A renderable without the blank lines rich puts above lists, tables and quotes.

    Blocks are rendered one by one, so their spacing is ours to set: exactly one blank line
    between blocks. Lines with a background (a code block's padding) are content, not space.
    """

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    @staticmethod
    def _blank(line: list[Segment]) -> bool:
        return all(
            seg.control or (not seg.text.strip() and not (seg.style and seg.style.bgcolor))
            for seg in line
        )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.renderable, options, pad=False)
        start, end = 0, len(lines)
        while start < end and self._blank(lines[start]):
            start += 1
        while end > start and self._blank(lines[end - 1]):
            end -= 1
        for line in lines[start:end]:
            yield from line
            yield Segment.line()


def markdown(text: str) -> Trimmed:
    return Trimmed(ChatMarkdown(text, code_theme="monokai"))


def thinking_line(line: str) -> Gutter:
    return Gutter(wrap_text(line, style=THINK_STYLE))


# --------------------------------------------------------------------------- stats line


def stats_line(stats: ReplyStats, outcome: Outcome = "done") -> str:
    """The dim line under a reply: tokens · eval rate · client decode · first token · total.

    The two rates are labelled as in the benchmark: the server's ``eval_count /
    eval_duration`` ("eval rate", ``ollama run --verbose``) and the rate this client saw
    after the first token ("client decode"); without the second, only the first.

    >>> from ollamakit.i18n import set_language
    >>> set_language("en")
    >>> stats_line(ReplyStats(total_ms=1400, ttft_ms=180, chunks=43, eval_count=42, eval_ms=1190,
    ...                       decode_tps=33.04))
    '42 tokens · eval rate 35.3 tok/s · client decode 33.0 tok/s · first token 180 ms · 1.40 s'
    >>> stats_line(ReplyStats(total_ms=1400, ttft_ms=180, chunks=43, eval_count=42, eval_ms=1190))
    '42 tokens · eval rate 35.3 tok/s · first token 180 ms · 1.40 s'
    >>> stats_line(ReplyStats(total_ms=900, ttft_ms=200, chunks=12), "interrupted")
    'interrupted after 12 chunks · first token 200 ms · 900 ms'
    """
    parts: list[str] = []
    if outcome == "interrupted":
        parts.append(t("chat.stats_interrupted", chunks=stats.chunks))
    elif stats.eval_count is None:
        parts.append(t("chat.stats_partial", chunks=stats.chunks))
    else:
        parts.append(t("chat.stats_tokens", count=stats.eval_count))
        if stats.eval_tps is not None:
            parts.append(t("chat.stats_eval_rate", value=fmt.tps(stats.eval_tps)))
        if stats.decode_tps is not None and not stats.buffered:
            parts.append(t("chat.stats_decode", value=fmt.tps(stats.decode_tps)))
    if stats.ttft_thinking_ms is not None and not stats.buffered:
        parts.append(t("chat.stats_thinking", value=format_ms(stats.ttft_thinking_ms)))
    if stats.buffered:  # one read held the whole reply: the first token's time is not a TTFT
        parts.append(t("chat.stats_buffered", value=format_ms(stats.ttft_ms)))
    elif stats.ttft_ms is not None:
        parts.append(t("chat.stats_ttft", value=format_ms(stats.ttft_ms)))
    parts.append(format_ms(stats.total_ms))
    if stats.done_reason == "length":
        parts.append(t("chat.stats_length"))
    return " · ".join(parts)


def fold_stats(line: str, width: int) -> str:
    """The stats line folded between its `` · `` parts (never inside one) to fit ``width``
    cells; a continuation line starts with ``·``. The last column stays free (as the chat's
    own wrapping does: a full row can be joined with the next when copied).

    >>> print(fold_stats("56 tokens · eval rate 61.2 tok/s · first token 16 ms · 930 ms", 40))
    56 tokens · eval rate 61.2 tok/s
    · first token 16 ms · 930 ms
    >>> fold_stats("12 chunks · 50 ms", 80)
    '12 chunks · 50 ms'
    """
    limit = max(width - 1, 20)
    rows: list[str] = []
    for part in line.split(" · "):
        if rows and cell_len(rows[-1]) + 3 + cell_len(part) <= limit:
            rows[-1] += " · " + part
        else:
            rows.append(f"· {part}" if rows else part)
    return "\n".join(rows)


# --------------------------------------------------------------------------- views


class ReplyView(Protocol):
    """Where a reply is drawn while it streams."""

    def start(self) -> None: ...

    def thinking(self, text: str) -> None: ...

    def content(self, text: str) -> None: ...

    def finish(self, outcome: Outcome, stats: ReplyStats | None) -> None: ...

    def slow(self, text: str) -> None:
        """No token for a while: ``text`` says what may be going on (called from a thread)."""
        ...


class RichReplyView:
    """Live Markdown for a terminal (see the module docstring)."""

    def __init__(self, console: Console, *, model: str, show_stats: bool = True) -> None:
        self.console = console
        self.model = model
        self.show_stats = show_stats
        self._md = MarkdownSplitter()
        self._think = LineSplitter()
        self._phase: Literal["wait", "thinking", "answer"] = "wait"
        self._printed = False  # something permanent was printed in the current section
        self._started_at = time.monotonic()
        self._slow: str | None = None  # set by the chat's slow-reply watch (another thread)
        self._live = Live(
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
            get_renderable=self._live_view,
        )
        # Redraws come from our own timer thread, under the same lock as the permanent prints
        # of the main thread: with rich's auto-refresh thread, a redraw could slip between the
        # moment a print computes where the live region is and the moment it writes, and the
        # region would be erased at the wrong height (torn, duplicated lines under load).
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="chat-live", daemon=True)

    def _tick(self) -> None:
        while not self._stop.wait(1 / 12):
            with self._lock:
                if not self._stop.is_set():
                    self._live.refresh()

    @property
    def width(self) -> int:
        return min(self.console.width, MAX_WIDTH)

    # -- the live region

    def _live_view(self) -> RenderableType:
        max_lines = max(self.console.height - 3, 4)
        if self._phase == "wait":
            elapsed = time.monotonic() - self._started_at
            label = t("chat.waiting", model=self.model, seconds=f"{elapsed:.1f}")
            spinner = Spinner("dots", text=Text(label, style="dim"), style="dim")
            if self._slow is None:
                return spinner
            return Group(spinner, _Width(Text(self._slow, style="yellow"), self.width))
        note = "" if self._slow is None else _Width(Text(self._slow, style="yellow"), self.width)
        if self._phase == "thinking":
            tail = self._think.tail
            return Group(BottomLines(thinking_line(tail), max_lines) if tail else "", note)
        answer = self._md.tail
        if not answer.strip():
            return note
        view = _Width(BottomLines(markdown(answer), max_lines), self.width)
        # the blank line a block will get
        return Group("", view, note) if self._printed else Group(view, note)

    # -- permanent output

    def _print(self, renderable: RenderableType) -> None:
        with self._lock:
            self._live.console.print(renderable, width=self.width)

    def _block(self, block: str) -> None:
        if self._printed:
            self._print("")
        self._print(markdown(block))
        self._printed = True

    def _to_answer(self) -> None:
        if self._phase == "thinking":
            for line in self._think.flush():
                self._print(thinking_line(line))
            self._printed = True  # a blank line separates thinking from the answer
        elif self._phase == "wait":
            self._printed = False
        self._phase = "answer"

    # -- ReplyView

    def slow(self, text: str) -> None:
        self._slow = text  # the spinner shows it while the reply waits for its first token

    def start(self) -> None:
        self._started_at = time.monotonic()
        with self._lock:
            self._live.start(refresh=True)
        self._ticker.start()

    def thinking(self, text: str) -> None:
        text = clean(text)
        self._slow = None if text else self._slow  # tokens again: the note is out of date
        if not text or self._phase == "answer":
            if text:  # thinking after the answer began: rare; keep it, dimmed, in the flow
                self._print(thinking_line(text.strip()))
            return
        self._phase = "thinking"
        for line in self._think.feed(text):
            self._print(thinking_line(line))

    def content(self, text: str) -> None:
        text = clean(text)
        if not text:
            return
        self._slow = None  # tokens again: the note is out of date
        if self._phase != "answer":
            if not text.strip() and not self._md.tail:
                return  # leading whitespace between thinking and answer
            self._to_answer()
        for block in self._md.feed(text):
            self._block(block)

    def finish(self, outcome: Outcome, stats: ReplyStats | None) -> None:
        """Clear the live region, print what is left, then the outcome and the stats line."""
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join()
        with self._lock:
            self._live.stop()
        if self._phase == "thinking":
            self._to_answer()
            self._printed = False
        for block in self._md.flush():
            self._block(block)
        if outcome == "interrupted":
            self.console.print(f"[yellow]⏹ {t('chat.interrupted_mark')}[/]", highlight=False)
        if stats is not None and self.show_stats and outcome != "failed":
            line = fold_stats(stats_line(stats, outcome), self.console.width)
            self.console.print(Text(line, style="dim"))
        self.console.print()


class _Width:
    """Render something at a capped width (the live tail matches the permanent blocks)."""

    def __init__(self, renderable: RenderableType, width: int) -> None:
        self.renderable = renderable
        self.width = width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from console.render(
            self.renderable, options.update_width(min(self.width, options.max_width))
        )


class PlainReplyView:
    """Text as it arrives, no colour or cursor movement (output is a file or a pipe)."""

    def __init__(
        self,
        out: IO[str] | None = None,
        thinking_out: IO[str] | None = None,
        stats_out: Console | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.thinking_out = thinking_out if thinking_out is not None else sys.stderr
        self.stats_out = stats_out
        self._wrote = False
        self._last = ""
        self._thought = False
        self._thought_last = ""

    def start(self) -> None:
        pass

    def slow(self, text: str) -> None:
        # a note, so stderr (stdout holds replies only); on a line of its own
        note = self.thinking_out
        if self._thought and not self._thought_last.endswith("\n"):
            note.write("\n")
            self._thought_last = "\n"
        note.write(f"[{text}]\n")
        note.flush()

    def thinking(self, text: str) -> None:
        text = clean(text)
        if text and self.thinking_out is not None:
            if not self._thought:
                text = text.lstrip()
            if text:
                self.thinking_out.write(text)
                self.thinking_out.flush()
                self._thought, self._thought_last = True, text

    def content(self, text: str) -> None:
        text = clean(text)
        if not text:
            return
        if not self._wrote:
            text = text.lstrip("\n")
            if not text:
                return
        self.out.write(text)
        self.out.flush()
        self._wrote, self._last = True, text

    def finish(self, outcome: Outcome, stats: ReplyStats | None) -> None:
        if (
            self._thought
            and self.thinking_out is not None
            and not self._thought_last.endswith("\n")
        ):
            self.thinking_out.write("\n")
            self.thinking_out.flush()
        if self._wrote and not self._last.endswith("\n"):
            self.out.write("\n")
        self.out.flush()
        if outcome == "interrupted":
            # stdout holds replies only: the mark goes with the other notes, to stderr
            note = self.thinking_out if self.thinking_out is not None else sys.stderr
            note.write(f"[{t('chat.interrupted_mark')}]\n")
            note.flush()
        if stats is not None and self.stats_out is not None and outcome != "failed":
            line = fold_stats(stats_line(stats, outcome), self.stats_out.width)
            self.stats_out.print(Text(line, style="dim"))
