"""Terminal output shared by every command: where things go and how errors look.

Results go to stdout; messages, warnings, progress and errors go to stderr, so
``ollamakit bench --output - > run.json``-style pipes stay clean. rich decides colour by
itself (no colour when not a terminal, or with ``NO_COLOR``).
"""

from __future__ import annotations

import sys

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape

from ollamakit.errors import OllamakitError
from ollamakit.i18n import t

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def reset_consoles() -> None:
    """Rebind to the current sys.stdout/sys.stderr (tests swap them)."""
    global stdout, stderr
    stdout = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    stderr = Console(file=sys.stderr, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    # Word-wrapped on a terminal (rich), one line into a pipe: as print_error does.
    stderr.print(f"[yellow]! {escape(message)}[/]", soft_wrap=not stderr.is_terminal)


def info(message: str) -> None:
    stderr.print(f"[dim]{escape(message)}[/]", soft_wrap=not stderr.is_terminal)


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
    from ollamakit.chat.cjk import units

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
    """
    if width is None or width - indent < 20:
        return [text]
    return wrap(text, width - indent)


def print_error(error: OllamakitError) -> None:
    """``✘ message`` then the fix, indented: the shape of every failure the user sees.

    On a terminal the text is word-wrapped to its width, continuation lines indented under
    the text they continue (soft wrapping would let the terminal cut words in half and start
    them at the left edge); into a pipe or a log each message stays on one line.
    """
    width = stderr.width if stderr.is_terminal else None
    for index, line in enumerate(hanging(error.message, width, 2)):
        mark = "✘ " if index == 0 else "  "
        stderr.print(f"[bold red]{mark}{escape(line)}[/]")
    if error.hint:
        for hint_line in error.hint.splitlines():
            for index, line in enumerate(hanging(hint_line, width, 4)):
                mark = "  [cyan]→[/] " if index == 0 else "    "
                stderr.print(f"{mark}{escape(line)}")


def print_unexpected(exc: BaseException) -> None:
    stderr.print(
        f"[bold red]✘ {escape(t('cli.unexpected', error=f'{type(exc).__name__}: {exc}'))}[/]"
    )
