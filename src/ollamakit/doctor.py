"""``ollamakit doctor``: the command-line face of :mod:`ollamakit.diagnostics`.

The checks live in ``diagnostics`` and print nothing; this module only renders them:

* on a terminal (or a pipe), one aligned line per step as soon as it finishes, a spinner
  while a slow step runs (terminal only), the fix indented under a failure, and a verdict::

      ✔ DNS               1.2 ms  ollama.example.com → 203.0.113.5
      ✘ authentication    8.0 ms  Authentication failed (HTTP 401) at https://… .
                                  → The password for ollama-user was rejected …

* with ``--json``, one JSON document on stdout (no colours, no credentials: every URL in it
  is already redacted by whoever made the text), also when the configuration cannot be
  loaded (:func:`config_error`).

On a terminal, long texts are word-wrapped into the value column (CJK-aware widths); into a
pipe or a file each text stays on one line.

Colour comes from rich, which turns itself off when stdout is not a terminal or ``NO_COLOR``
is set. Exit status: 0 when no check failed (warnings allowed), 2 otherwise.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.cells import cell_len
from rich.status import Status as Spinner
from rich.text import Text

from ollamakit import __version__, diagnostics_openai
from ollamakit.config import Settings
from ollamakit.diagnostics import (
    STEPS,
    CheckResult,
    Status,
    config_failure,
    diagnose,
    exit_status,
)
from ollamakit.errors import ConfigError
from ollamakit.i18n import t
from ollamakit.measure import format as fmt
from ollamakit.ui.sanitize import clean, clean_line, json_safe
from ollamakit.ui.terminal import Terminal
from ollamakit.ui.wrap import hanging

_SYMBOLS = {
    Status.OK: ("✔", "green"),
    Status.WARN: ("!", "yellow"),
    Status.FAIL: ("✘", "bold red"),
    Status.SKIP: ("-", "dim"),
}
_TIME_WIDTH = 9  # "12345 ms" / "123.4 s" right-aligned
#: A fix line that starts with this is a command to copy (see the catalogues' hints).
COMMAND_INDENT = "    "


#: The --insecure / plain-http warnings are checks of their own here; cli.main skips its copy.
REPORTS_WARNINGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help=t("doctor.help_json"))
    parser.add_argument("--no-generate", action="store_true", help=t("doctor.help_no_generate"))
    parser.add_argument("--model", metavar="NAME", help=t("doctor.help_model"))
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help=t("doctor.help_timeout"))


def format_elapsed(elapsed_ms: float | None) -> str:
    """Time for the timing column (:func:`ollamakit.measure.format.ms`; blank when unknown).

    >>> [format_elapsed(x) for x in (None, 0.25, 4.21, 42.4, 1234.0, 65432.1)]
    ['', '0.25 ms', '4.2 ms', '42 ms', '1.23 s', '65.4 s']
    """
    return "" if elapsed_ms is None else fmt.ms(elapsed_ms)


def _pad(text: str, width: int) -> str:
    """Pad to a display width (CJK characters take two cells)."""
    return text + " " * max(0, width - cell_len(text))


def render_line(result: CheckResult, title_width: int, width: int | None = None) -> list[Text]:
    """The lines one result prints: the step line, then notes and fix lines indented.

    ``width`` (a terminal's) word-wraps the text into the value column, continuation lines
    indented to it; ``None`` (a pipe, a file) keeps each text on one line.
    """
    symbol, style = _SYMBOLS[result.status]
    elapsed = format_elapsed(result.elapsed_ms)
    head = Text()
    head.append(f"{symbol} ", style=style)
    head.append(
        _pad(result.title, title_width), style="bold" if result.status is not Status.SKIP else "dim"
    )
    head.append(f"{elapsed:>{_TIME_WIDTH}}  ", style="dim")
    summary_style = {Status.FAIL: "red", Status.WARN: "yellow", Status.SKIP: "dim"}.get(
        result.status, ""
    )
    column = 2 + title_width + _TIME_WIDTH + 2
    indent = " " * column
    first, *rest = hanging(clean_line(result.summary), width, column)
    head.append(first, style=summary_style)
    lines = [head]
    lines.extend(Text(indent + more, style=summary_style) for more in rest)
    for note in result.notes:
        lines.extend(
            Text(indent + part, style="dim") for part in hanging(clean_line(note), width, column)
        )
    if result.fix and result.status in (Status.FAIL, Status.WARN):
        # One arrow per fix: its lines are whole sentences, and a line indented by four spaces
        # is a command to copy, never wrapped: moved left as far as it must be to fit.
        for index, fix_line in enumerate(clean(result.fix).splitlines()):
            if fix_line.startswith(COMMAND_INDENT):
                command = fix_line.strip()
                lead = column + 2
                if width is not None:
                    lead = max(0, min(lead, width - cell_len(command)))
                lines.append(Text(" " * lead + command, style="bold", no_wrap=True))
                continue
            for part_index, part in enumerate(hanging(fix_line, width, column + 2)):
                line = Text(indent)
                line.append("→ " if index == 0 and part_index == 0 else "  ", style="cyan")
                line.append(part)
                lines.append(line)
    return lines


def _title_width() -> int:
    titles = [t(f"doctor.title_{name}") for name in (*STEPS, "warning")]
    titles += [t(key) for key in diagnostics_openai.TITLES.values()]
    return max(cell_len(title) for title in titles) + 2


def _verdict(results: list[CheckResult]) -> Text:
    if any(r.status is Status.FAIL for r in results):
        return Text(t("doctor.verdict_fail"), style="bold red")
    warnings = sum(r.status is Status.WARN for r in results)
    if warnings:
        return Text(t("doctor.verdict_warn", count=warnings), style="bold yellow")
    return Text(t("doctor.verdict_ok"), style="bold green")


def _document(settings: Settings, results: list[CheckResult]) -> dict[str, Any]:
    status = exit_status(results)
    return {
        "schema_version": 1,
        "tool": {"name": "ollamakit", "version": __version__},
        "server": settings.base_url.redacted(),
        "healthy": status == 0,
        "exit_status": status,
        "warnings": sum(r.status is Status.WARN for r in results),
        "steps": [r.to_json() for r in results],
    }


def config_error(args: argparse.Namespace, error: ConfigError, terminal: Terminal) -> int | None:
    """With ``--json``, a configuration error is a JSON document too (cli.main calls this
    when the settings cannot be loaded); otherwise ``None``: cli.main prints it as usual."""
    if not getattr(args, "json", False):
        return None
    results = config_failure(error)
    document = {
        "schema_version": 1,
        "tool": {"name": "ollamakit", "version": __version__},
        "server": None,
        "healthy": False,
        "exit_status": exit_status(results),
        "warnings": 0,
        "error": {"type": type(error).__name__, "message": error.message, "fix": error.hint},
        "steps": [r.to_json() for r in results],
    }
    terminal.stdout.file.write(json_safe(json.dumps(document, ensure_ascii=False, indent=2)))
    terminal.stdout.file.write("\n")
    return exit_status(results)


def run(args: argparse.Namespace, settings: Settings, terminal: Terminal) -> int:
    generate = not args.no_generate
    model = args.model
    results: list[CheckResult] = []
    if args.json:
        results.extend(
            diagnose(settings, generate=generate, model=model, openai_steps=diagnostics_openai)
        )
        terminal.stdout.file.write(
            json_safe(json.dumps(_document(settings, results), ensure_ascii=False, indent=2))
        )
        terminal.stdout.file.write("\n")
        return exit_status(results)

    out = terminal.stdout
    width = _title_width()
    line_width = terminal.wrap_width()
    out.print(Text(t("doctor.header", url=settings.base_url.redacted()), style="bold"))
    spinner: Spinner | None = None

    def on_step(name: str) -> None:
        nonlocal spinner
        if terminal.stdout_isatty:
            spinner = out.status(t("doctor.running", step=t(f"doctor.title_{name}")))
            spinner.start()

    try:
        for result in diagnose(
            settings,
            generate=generate,
            model=model,
            on_step=on_step,
            openai_steps=diagnostics_openai,
        ):
            if spinner is not None:
                spinner.stop()
                spinner = None
            results.append(result)
            for line in render_line(result, width, line_width):
                out.print(line)
    finally:
        if spinner is not None:
            spinner.stop()
    out.print()
    out.print(_verdict(results))
    return exit_status(results)
