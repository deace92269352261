"""Terminal output shared by every command: where things go and how errors look.

Results go to stdout; messages, warnings, progress and errors go to stderr, so
``ollamakit bench --output - > run.json``-style pipes stay clean. rich decides colour by
itself (no colour when not a terminal, or with ``NO_COLOR``).
"""

from __future__ import annotations

import sys

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
    stderr.print(f"[yellow]! {escape(message)}[/]")


def info(message: str) -> None:
    stderr.print(f"[dim]{escape(message)}[/]")


def print_error(error: OllamakitError) -> None:
    """``✘ message`` then the fix, indented: the shape of every failure the user sees.

    On a terminal the text is word-wrapped to its width (soft wrapping would let the terminal
    cut words in half); into a pipe or a log each message stays on one line, easy to grep.
    """
    wrap = not stderr.is_terminal
    stderr.print(f"[bold red]✘ {escape(error.message)}[/]", soft_wrap=wrap)
    if error.hint:
        for line in error.hint.splitlines():
            stderr.print(f"  [cyan]→[/] {escape(line)}", soft_wrap=wrap)


def print_unexpected(exc: BaseException) -> None:
    stderr.print(
        f"[bold red]✘ {escape(t('cli.unexpected', error=f'{type(exc).__name__}: {exc}'))}[/]"
    )
