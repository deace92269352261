"""The terminal a command writes to, as one object built once and passed down.

:class:`Terminal` is httpie's ``Environment``: :func:`ollamakit.cli.main` builds it from the
real streams (:meth:`Terminal.from_env`) and hands it to the command; a test builds one
directly (:meth:`Terminal.for_test`, writing to ``StringIO``, with the width and "is a
terminal" it wants). Nothing else in the code asks ``sys.stdout.isatty()`` or keeps a
module-global console.

What it holds:

* ``stdout`` / ``stderr``: rich consoles. Results go to stdout; messages, warnings, progress
  and errors to stderr, so ``--output - > run.json`` style pipes stay clean. Both have
  ``highlight=False`` (rich would colour numbers and URLs in our messages at random) and
  ``emoji=False`` (``:abc:`` in a model name or a message stays ``:abc:``).
* ``stdin_isatty`` / ``stdout_isatty`` / ``stderr_isatty``: decided once per stream, the way
  rich decides whether it may draw (``FORCE_COLOR`` / ``TTY_COMPATIBLE`` count), so layout and
  interactivity never disagree.
* ``width``, ``color``, ``language`` (the i18n language the command runs in).

The message helpers (:meth:`warn`, :meth:`info`, :meth:`print_error`) pass every text
through :func:`ollamakit.ui.sanitize.clean`: an error message may quote what a server said.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from typing import IO, Literal, TextIO

from rich.console import (
    Console,
    ConsoleOptions,
    ConsoleRenderable,
    RenderableType,
    RenderHook,
    RenderResult,
)
from rich.markup import escape
from rich.measure import Measurement
from rich.segment import Segment

from ollamakit.errors import OllamakitError
from ollamakit.i18n import get_language, t
from ollamakit.ui.sanitize import clean, needs_cleaning
from ollamakit.ui.wrap import WrapText, hanging

__all__ = ["ColorSystem", "Sanitized", "Terminal", "make_console"]

ColorSystem = Literal["auto", "standard", "256", "truecolor"]


class Sanitized:
    """A renderable drawn with :func:`clean` applied to its text (not to rich's own control
    segments: cursor movement of a live region, styles are added when written)."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for segment in console.render(self.renderable, options):
            if segment.control is None and needs_cleaning(segment.text):
                yield Segment(clean(segment.text), segment.style)
            else:
                yield segment

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.renderable)


class _SanitizeHook(RenderHook):
    """Every ``print`` on our consoles goes through :class:`Sanitized`: whatever a caller
    forgot, no escape sequence from a server reaches the terminal (rich strips only BEL, BS,
    VT, FF and CR from a ``Text``; ``ESC`` passes)."""

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [Sanitized(r) for r in renderables]


_SANITIZE_HOOK = _SanitizeHook()


def make_console(
    file: IO[str],
    *,
    isatty: bool | None = None,
    width: int | None = None,
    color_system: ColorSystem | None = "auto",
    soft_wrap: bool = False,
) -> Console:
    """A rich console in the house settings: no highlighting, no emoji codes, and every
    text printed sanitised (:class:`Sanitized`)."""
    console = Console(
        file=file,
        force_terminal=isatty,
        width=width,
        color_system=color_system,
        highlight=False,
        emoji=False,
        soft_wrap=soft_wrap,
    )
    console.push_render_hook(_SANITIZE_HOOK)
    return console


@dataclass
class Terminal:
    """Where a command's output goes, and what kind of place it is (see the module doc)."""

    stdout: Console
    stderr: Console
    stdin: TextIO
    stdin_isatty: bool
    stdout_isatty: bool
    stderr_isatty: bool
    language: str = field(default_factory=get_language)
    #: the width and colours the consoles were built with (None: rich decides)
    width_override: int | None = None
    color_system: ColorSystem | None = "auto"

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_env(
        cls,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> Terminal:
        """The real streams (the current ``sys.std*``, so pytest's capture is honoured)."""
        stdin = sys.stdin if stdin is None else stdin
        out_file = sys.stdout if stdout is None else stdout
        err_file = sys.stderr if stderr is None else stderr
        out_tty = make_console(out_file).is_terminal
        err_tty = make_console(err_file).is_terminal
        return cls(
            stdout=make_console(out_file, isatty=out_tty, soft_wrap=True),
            stderr=make_console(err_file, isatty=err_tty, soft_wrap=True),
            stdin=stdin,
            stdin_isatty=_isatty(stdin),
            stdout_isatty=out_tty,
            stderr_isatty=err_tty,
        )

    @classmethod
    def for_test(
        cls,
        *,
        width: int = 80,
        isatty: bool = False,
        stdin_isatty: bool | None = None,
        color: bool = False,
        language: str | None = None,
        stdin: str = "",
    ) -> Terminal:
        """A terminal writing to ``StringIO`` (read back with :meth:`stdout_text`)."""
        color_system: ColorSystem | None = "truecolor" if color else None
        out, err = io.StringIO(), io.StringIO()
        return cls(
            stdout=make_console(
                out, isatty=isatty, width=width, color_system=color_system, soft_wrap=True
            ),
            stderr=make_console(
                err, isatty=isatty, width=width, color_system=color_system, soft_wrap=True
            ),
            stdin=io.StringIO(stdin),
            stdin_isatty=isatty if stdin_isatty is None else stdin_isatty,
            stdout_isatty=isatty,
            stderr_isatty=isatty,
            language=language or get_language(),
            width_override=width,
            color_system=color_system,
        )

    def console(self, *, stderr: bool = False, soft_wrap: bool | None = None) -> Console:
        """Another console on stdout (or stderr) with this terminal's settings.

        ``soft_wrap`` defaults to "only when not a terminal": into a pipe or a file lines are
        not hard-wrapped at rich's assumed 80 columns (the reader's pager wraps them).
        """
        base = self.stderr if stderr else self.stdout
        isatty = self.stderr_isatty if stderr else self.stdout_isatty
        return make_console(
            base.file,
            isatty=isatty,
            width=self.width_override,
            color_system=self.color_system,
            soft_wrap=not isatty if soft_wrap is None else soft_wrap,
        )

    # ------------------------------------------------------------------ facts

    @property
    def interactive(self) -> bool:
        """A person at a keyboard watching stdout: menus and prompts make sense."""
        return self.stdin_isatty and self.stdout_isatty

    @property
    def width(self) -> int:
        return self.stdout.width

    @property
    def color(self) -> bool:
        return self.stdout.color_system is not None

    def wrap_width(self, *, stderr: bool = False) -> int | None:
        """The width to word-wrap to, or ``None`` into a pipe (lines stay whole)."""
        if stderr:
            return self.stderr.width if self.stderr_isatty else None
        return self.stdout.width if self.stdout_isatty else None

    def stdout_text(self) -> str:
        """What was written to stdout (a :meth:`for_test` terminal only)."""
        return _text_of(self.stdout)

    def stderr_text(self) -> str:
        return _text_of(self.stderr)

    # ------------------------------------------------------------------ messages (stderr)

    def warn(self, message: str) -> None:
        # Word-wrapped on a terminal (CJK-aware), one line into a pipe: as print_error does.
        text = WrapText(f"! {clean(message)}", style="yellow")
        self.stderr.print(text, soft_wrap=not self.stderr_isatty)

    def info(self, message: str) -> None:
        text = WrapText(clean(message), style="dim")
        self.stderr.print(text, soft_wrap=not self.stderr_isatty)

    def print_error(self, error: OllamakitError) -> None:
        """``✘ message`` then the fix, indented: the shape of every failure the user sees.

        On a terminal the text is word-wrapped to its width, continuation lines indented under
        the text they continue (soft wrapping would let the terminal cut words in half and
        start them at the left edge); into a pipe or a log each message stays on one line.
        """
        width = self.wrap_width(stderr=True)
        for index, line in enumerate(hanging(clean(error.message, multiline=False), width, 2)):
            mark = "✘ " if index == 0 else "  "
            self.stderr.print(f"[bold red]{mark}{escape(line)}[/]")
        if error.hint:
            for hint_line in clean(error.hint).splitlines():
                for index, line in enumerate(hanging(hint_line, width, 4)):
                    mark = "  [cyan]→[/] " if index == 0 else "    "
                    self.stderr.print(f"{mark}{escape(line)}")

    def print_unexpected(self, exc: BaseException) -> None:
        error = clean(f"{type(exc).__name__}: {exc}", multiline=False)
        message = t("cli.unexpected", error=error)
        for index, line in enumerate(hanging(message, self.wrap_width(stderr=True), 2)):
            mark = "✘ " if index == 0 else "  "
            self.stderr.print(f"[bold red]{mark}{escape(line)}[/]")


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def _text_of(console: Console) -> str:
    file = console.file
    if not isinstance(file, io.StringIO):
        raise TypeError("only a Terminal.for_test() keeps its output")
    return file.getvalue()
