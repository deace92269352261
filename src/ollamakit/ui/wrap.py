"""Line breaking that works for Chinese and Japanese, not only for space-separated languages.

rich wraps text at spaces. A Chinese sentence has none, so rich treats it as one long word and
moves it whole to the next line, leaving the line before it half empty::

    你好！我是 qwen2.5:0.5b，由 ollamakit
    模擬器提供的模型。今天想聊些什麼呢？請記

Here every CJK character is a break opportunity, closing punctuation (``，。！？」``…)
stays with the character before it, so it never starts a line, and opening punctuation
(``（「``…) with the one after it, so it never ends one. :func:`units` does the
splitting, :func:`break_offsets` chooses the breaks for a width (as rich does, with these
units), and :func:`wrap` / :func:`hanging` wrap plain strings (messages, the doctor's column).

:class:`WrapText` is a :class:`rich.text.Text` whose ``wrap`` uses these breaks: it is ours,
passed where we build the text (chat Markdown paragraphs and headings, thinking lines), so
rich itself is not changed for anybody else in the process. For space-separated text it breaks
exactly where rich does (a test compares them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from rich.cells import cell_len, chop_cells
from rich.containers import Lines
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, JustifyMethod, OverflowMethod, RenderResult
    from rich.measure import Measurement

__all__ = ["WrapText", "break_offsets", "hanging", "units", "wrap", "wrap_text"]

_CJK: Final = (
    "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f"
)
_CLOSE: Final = "，。、；：！？」』）】》〉〕｝,.;:!?)\\]}%"
_OPEN: Final = "（「『【《〈〔｛"
UNIT: Final = re.compile(rf"\s*[{_OPEN}]*(?:[{_CJK}][{_CLOSE}]*|[^\s{_CJK}]+[{_CLOSE}]*)\s*")


def units(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, unit)``: words with the spaces after them, each CJK character its own unit.

    >>> [u for _, _, u in units("你好！我是 qwen，好")]
    ['你', '好！', '我', '是 ', 'qwen，', '好']
    >>> [u for _, _, u in units("設定（OLLAMA_CA_BUNDLE）「好」")]
    ['設', '定', '（OLLAMA_CA_BUNDLE）', '「好」']
    >>> [u for _, _, u in units("plain words here")]
    ['plain ', 'words ', 'here']
    """
    match = UNIT.match(text, 0)
    while match is not None:
        start, end = match.span()
        yield start, end, match.group(0)
        match = UNIT.match(text, end)


def break_offsets(text: str, width: int, *, fold: bool = True) -> list[int]:
    """Offsets in ``text`` where new lines start so that each fits ``width`` cells.

    The same rule as rich's own wrapping (a unit that does not fit moves to the next line; a
    unit longer than a whole line is cut when ``fold``), with :func:`units` as the units.

    >>> break_offsets("The proxy cannot reach Ollama", 16)
    [17]
    >>> break_offsets("代理無法連到伺服器", 8)
    [4, 8]
    >>> break_offsets("abcdefghij", 4)
    [4, 8]
    """
    breaks: list[int] = []
    offset = 0  # cells used on the current line
    for start, _end, unit in units(text):
        size = cell_len(unit.rstrip())
        if width - offset >= size:
            offset += cell_len(unit)
        elif size > width:
            if fold:
                pieces = chop_cells(unit, width)
                at = start
                for index, piece in enumerate(pieces):
                    if at:
                        breaks.append(at)
                    if index == len(pieces) - 1:
                        offset = cell_len(piece)
                    else:
                        at += len(piece)
            else:
                if start:
                    breaks.append(start)
                offset = cell_len(unit)
        elif offset and start:
            breaks.append(start)
            offset = cell_len(unit)
    return breaks


class WrapText(Text):
    """A rich ``Text`` that breaks lines between CJK characters too (see the module doc).

    ``Console.print`` joins the ``Text`` objects it is given into a new plain ``Text``;
    :meth:`__rich__` hands it a renderable instead, so printing one keeps our wrapping.
    """

    def __rich__(self) -> _Rendered:
        return _Rendered(self)

    def wrap(
        self,
        console: Console,
        width: int,
        *,
        justify: JustifyMethod | None = None,
        overflow: OverflowMethod | None = None,
        tab_size: int = 8,
        no_wrap: bool | None = None,
    ) -> Lines:
        # Text.wrap's steps, with our break offsets instead of rich's.
        wrap_justify = justify or self.justify or "default"
        wrap_overflow = overflow or self.overflow or "fold"
        own_no_wrap = self.no_wrap if no_wrap is None else no_wrap
        no_wrap = bool(own_no_wrap) or overflow == "ignore"
        lines = Lines()
        for line in self.split(allow_blank=True):
            if "\t" in line:
                line.expand_tabs(tab_size)
            if no_wrap:
                if overflow == "ignore":
                    lines.append(line)
                    continue
                new_lines = Lines([line])
            else:
                offsets = break_offsets(line.plain, width, fold=wrap_overflow == "fold")
                new_lines = line.divide(offsets)
                for piece in new_lines:
                    piece.rstrip_end(width)
            if wrap_justify:
                new_lines.justify(console, width, justify=wrap_justify, overflow=wrap_overflow)
            for piece in new_lines:
                piece.truncate(width, overflow=wrap_overflow)
            lines.extend(new_lines)
        return lines


class _Rendered:
    """A :class:`WrapText` as a plain renderable (see :meth:`WrapText.__rich__`)."""

    def __init__(self, text: WrapText) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        return self.text.__rich_console__(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return self.text.__rich_measure__(console, options)


def wrap_text(text: Text | str, style: str = "") -> WrapText:
    """``text`` as a :class:`WrapText` (same characters, styles and settings).

    >>> wrap_text(Text("x", style="bold")).style
    'bold'
    """
    if isinstance(text, str):
        return WrapText(text, style=style)
    copy = WrapText(
        text.plain,
        style=text.style,
        justify=text.justify,
        overflow=text.overflow,
        no_wrap=text.no_wrap,
        end=text.end,
        tab_size=text.tab_size,
    )
    copy.spans = list(text.spans)
    return copy


def wrap(text: str, width: int) -> list[str]:
    """Break ``text`` into lines of at most ``width`` terminal cells.

    Lines break at spaces and between CJK characters (a Chinese sentence has no spaces),
    closing punctuation stays with the character before it, and a word longer than a line
    (a long URL) is cut. Widths are display cells: a CJK character takes two.

    >>> wrap("The proxy cannot reach Ollama on the server", 16)
    ['The proxy cannot', 'reach Ollama on', 'the server']
    >>> wrap("代理無法連到 Ollama。請在伺服器確認", 12)
    ['代理無法連到', 'Ollama。請在', '伺服器確認']
    >>> wrap("https://ollama.example.com/api/tags", 12)
    ['https://olla', 'ma.example.c', 'om/api/tags']
    """
    if width < 1 or cell_len(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    for _, _, unit in units(text):
        if line and cell_len(line + unit.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        if not line:
            unit = unit.lstrip()
        while cell_len(line + unit.rstrip()) > width:  # longer than a whole line: cut it
            room = width - cell_len(line)
            cut = 0
            while cut < len(unit) and cell_len(unit[: cut + 1]) <= room:
                cut += 1
            lines.append((line + unit[:cut]).rstrip())
            line, unit = "", unit[cut:].lstrip()
        line += unit
    if line.strip():
        lines.append(line.rstrip())
    return lines


def hanging(text: str, width: int | None, indent: int) -> list[str]:
    """``text`` wrapped for a column that starts ``indent`` cells in (first line included).

    ``None`` (not a terminal), or a column too narrow to be worth wrapping into, leaves the
    text on one line: lines into a pipe or a log stay whole, easy to grep.

    >>> hanging("one two three", None, 4)
    ['one two three']
    >>> hanging("one two three four five six seven", 30, 4)
    ['one two three four five', 'six seven']
    """
    if width is None or width - indent < 20:
        return [text]
    return wrap(text, width - indent)
