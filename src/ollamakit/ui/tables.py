"""Generic table layout for the terminal: names never break, numbers give way, lines stay clean.

Used by every table the tools print (the benchmark summary, history, ``chat --auto`` results,
``/stats``). The rules:

* model and prompt names never break (``deepseek-r1:1.5b`` must not become ``deepseek-`` /
  ``r1:1.5b``): :func:`name_column`; the number columns give way instead, their headers
  wrapping at spaces (:func:`fit_columns`); as a last resort a caller may fold names
  (:func:`first_fitting` tries layouts in order);
* printed lines carry no trailing padding (:func:`print_lines`);
* when the output is not a terminal a table is as wide as it needs to be (up to
  :data:`MAX_PIPE_WIDTH`), never folded to rich's assumed 80 columns (:func:`print_table`).

Cells should be :class:`rich.text.Text` (never markup), so a name such as ``[bold]x`` prints
as it is; :func:`cell` makes one from server text, sanitised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType
from rich.measure import Measurement
from rich.segment import Segment, Segments
from rich.table import Table
from rich.text import Text

from ollamakit.ui.sanitize import clean_line

__all__ = [
    "COMPACT_PADDING",
    "MAX_PIPE_WIDTH",
    "cell",
    "first_fitting",
    "fit_columns",
    "fits",
    "layout_width",
    "min_width",
    "name_column",
    "new_table",
    "print_lines",
    "print_table",
    "print_text",
    "rstrip_line",
]


def cell(text: str, style: str = "") -> Text:
    """A table cell holding text that came from a server (a model name): one line, no
    control characters, no markup."""
    return Text(clean_line(text), style=style)


MAX_PIPE_WIDTH = 240

#: Cell padding of a compact table: right only (with the box's one-space divider, two spaces
#: between columns). Not ``collapse_padding``: rich 15 miscounts its width for fixed widths.
COMPACT_PADDING = (0, 1, 0, 0)


def _visible(segment: Segment) -> bool:
    """Whether a blank segment shows (a background, reverse video, an underline)."""
    style = segment.style
    return bool(style and (style.bgcolor or style.reverse or style.underline))


def rstrip_line(line: Sequence[Segment]) -> list[Segment]:
    """A rendered line without its trailing blanks (padding that only gets in the way of
    copying and makes ``grep 'x$'`` fail), keeping blanks that show.

    >>> [s.text for s in rstrip_line([Segment("ab "), Segment("  ")])]
    ['ab']
    """
    segments = list(line)
    while segments:
        last = segments[-1]
        if last.control or _visible(last):
            break
        text = last.text.rstrip()
        if text:
            if text != last.text:
                segments[-1] = Segment(text, last.style)
            break
        segments.pop()
    return segments


def print_lines(
    console: Console,
    renderable: RenderableType,
    width: int | None = None,
    *,
    blank_after: bool = False,
) -> None:
    """Render at ``width`` (the console's by default; wider is allowed) and print the lines
    without trailing blanks and without any further wrapping; ``blank_after`` makes sure the
    last line printed is empty (a table without a bottom edge)."""
    options = console.options if width is None else console.options.update_width(width)
    lines = [rstrip_line(line) for line in console.render_lines(renderable, options, pad=False)]
    if blank_after and (not lines or lines[-1]):
        lines.append([])
    segments: list[Segment] = []
    for line in lines:
        segments += line
        segments.append(Segment.line())
    # Console.print caps width= at the console's own width; print the segments as they are.
    console.print(Segments(segments), soft_wrap=True, end="")


def print_text(console: Console, text: Text) -> None:
    """A paragraph: word-wrapped on a terminal (without trailing blanks; soft wrapping would
    let the terminal cut words in half), one line into a pipe or a file, easy to grep."""
    if console.is_terminal:
        print_lines(console, text)
    else:
        console.print(text, soft_wrap=True)


def layout_width(console: Console) -> int:
    """The width tables are laid out for: the terminal's, or up to :data:`MAX_PIPE_WIDTH`
    when not a terminal (where rich assumes 80 columns)."""
    return console.width if console.is_terminal else max(console.width, MAX_PIPE_WIDTH)


def print_table(console: Console, table: Table) -> None:
    """Print a table; when not on a terminal, as wide as the table needs, so rows are not
    folded into unreadable cells. Lines carry no trailing padding."""
    width = console.width
    if not console.is_terminal:
        wide = console.options.update_width(MAX_PIPE_WIDTH)
        width = max(width, Measurement.get(console, wide, table).maximum)
    fit_columns(console, table, width)
    print_lines(console, table, width, blank_after=True)


def _wide(console: Console) -> ConsoleOptions:
    return console.options.update_width(10_000)


def min_width(console: Console, table: Table) -> int:
    """The narrowest the table can be without breaking a word or a no-wrap column."""
    return Measurement.get(console, _wide(console), table).minimum


def fit_columns(console: Console, table: Table, width: int) -> None:
    """Fix the column widths so the table fits ``width`` with no column below its minimum.

    rich shrinks a table that is too wide by narrowing its widest columns first, whatever
    they hold: a header such as "Network ms" would lose its end ("Netwo…") while a narrower
    column keeps room to spare. Here each step takes one cell from the column with the most
    room above its minimum (its longest word, or a whole name), so headers wrap at spaces
    and numbers and names stay whole. A table that fits, or that cannot, is left to rich.
    Folding name columns (the last resort) may shrink to their header's longest word.
    """
    options = _wide(console)
    lows: list[int] = []  # as rich measures them
    highs: list[int] = []
    floors: list[int] = []  # how narrow each column may become here
    for column in table.columns:
        sizes = [Measurement.get(console, options, cell) for cell in (column.header, *column.cells)]
        low = max([m.minimum for m in sizes] + [column.min_width or 0])
        lows.append(low)
        highs.append(max([m.maximum for m in sizes] + [low]))
        fold = column.overflow == "fold"
        floors.append(Measurement.get(console, options, column.header).minimum if fold else low)
    budget = width - (min_width(console, table) - sum(lows))  # less padding, edges, dividers
    excess = sum(highs) - budget
    if excess <= 0 or sum(floors) > budget:
        return
    folds = [column.overflow == "fold" for column in table.columns]
    widths = list(highs)
    for _ in range(excess):  # numbers and headers first; names only when they may fold
        i = max(
            range(len(widths)),
            key=lambda k: (widths[k] > floors[k] and not folds[k], widths[k] - floors[k]),
        )
        widths[i] -= 1
    for column, size in zip(table.columns, widths, strict=True):
        # A header cut short wraps: keep only the width its lines need ("Prompt tok/s" at 11
        # cells is "Prompt" over "tok/s": 6), not a half-empty column.
        cells = (column.header, *column.cells)
        column.width = min(size, max(_drawn_width(console, cell, size) for cell in cells))


def _drawn_width(console: Console, cell: RenderableType, width: int) -> int:
    """The widest line of ``cell`` rendered at ``width``."""
    lines = console.render_lines(cell, console.options.update_width(width), pad=False)
    return max((Segment.get_line_length(rstrip_line(line)) for line in lines), default=0)


def fits(console: Console, *tables: Table) -> bool:
    width = layout_width(console)
    return all(min_width(console, table) <= width for table in tables)


def first_fitting(console: Console, *layouts: Callable[[], list[Table]]) -> list[Table]:
    """The first layout whose tables fit :func:`layout_width`; the last one otherwise."""
    tables: list[Table] = []
    for layout in layouts:
        tables = layout()
        if fits(console, *tables):
            break
    return tables


def new_table(title: str | None, *, compact: bool = False, **options: Any) -> Table:
    """A table in the house style; ``compact`` puts two spaces between columns, not three,
    and none before the first."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=COMPACT_PADDING if compact else (0, 1),
        show_edge=not compact,
        **options,
    )


def name_column(
    table: Table, header: str, values: Sequence[str], *, fold: bool = False, style: str = ""
) -> None:
    """A column of names (models, prompts): never broken, unless ``fold`` (the last resort).

    ``min_width`` makes the table's measurement count the whole name, so :func:`fits` knows
    whether the table can be laid out without breaking one.
    """
    if fold:
        table.add_column(header, style=style, overflow="fold")
        return
    longest = max([cell_len(v) for v in values] + [cell_len(header)])
    table.add_column(header, style=style, no_wrap=True, min_width=longest)
