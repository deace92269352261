"""``ollamakit doctor``: the command-line face of :mod:`ollamakit.diagnostics`.

The checks live in ``diagnostics`` and print nothing; this module only renders them:

* on a terminal (or a pipe), one aligned line per step as soon as it finishes, a spinner
  while a slow step runs (terminal only), the fix indented under a failure, and a verdict::

      ✔ DNS               1.2 ms  ollama.example.com → 203.0.113.5
      ✘ authentication    8.0 ms  Authentication failed (HTTP 401) at https://… .
                                  → The user name or password … was rejected …

* with ``--json``, one JSON document on stdout (no colours, no credentials: every URL in it
  is already redacted by whoever made the text).

Colour comes from rich, which turns itself off when stdout is not a terminal or ``NO_COLOR``
is set. Exit status: 0 when no check failed (warnings allowed), 2 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.cells import cell_len
from rich.status import Status as Spinner
from rich.text import Text

from ollamakit import __version__, console
from ollamakit.config import Settings
from ollamakit.diagnostics import STEPS, CheckResult, Status, diagnose, exit_status
from ollamakit.i18n import t

_SYMBOLS = {
    Status.OK: ("✔", "green"),
    Status.WARN: ("!", "yellow"),
    Status.FAIL: ("✘", "bold red"),
    Status.SKIP: ("-", "dim"),
}
_TIME_WIDTH = 9  # "12345 ms" / "123.4 s" right-aligned


#: The --insecure / plain-http warnings are checks of their own here; cli.main skips its copy.
REPORTS_WARNINGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help=t("doctor.help_json"))
    parser.add_argument("--no-generate", action="store_true", help=t("doctor.help_no_generate"))
    parser.add_argument("--model", metavar="NAME", help=t("doctor.help_model"))
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help=t("doctor.help_timeout"))


def format_elapsed(elapsed_ms: float | None) -> str:
    """Time for the timing column.

    >>> [format_elapsed(x) for x in (None, 0.25, 4.21, 42.4, 1234.0, 65432.1)]
    ['', '0.25 ms', '4.2 ms', '42 ms', '1234 ms', '65.4 s']
    """
    if elapsed_ms is None:
        return ""
    if elapsed_ms < 1:
        return f"{elapsed_ms:.2f} ms"
    if elapsed_ms < 10:
        return f"{elapsed_ms:.1f} ms"
    if elapsed_ms < 10_000:
        return f"{elapsed_ms:.0f} ms"
    return f"{elapsed_ms / 1000:.1f} s"


def _pad(text: str, width: int) -> str:
    """Pad to a display width (CJK characters take two cells)."""
    return text + " " * max(0, width - cell_len(text))


def render_line(result: CheckResult, title_width: int) -> list[Text]:
    """The lines one result prints: the step line, then notes and fix lines indented."""
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
    head.append(result.summary, style=summary_style)
    lines = [head]
    indent = " " * (2 + title_width + _TIME_WIDTH + 2)
    for note in result.notes:
        lines.append(Text(indent + note, style="dim"))
    if result.fix and result.status in (Status.FAIL, Status.WARN):
        # One arrow per fix: a hint's later lines often continue its first sentence.
        for index, fix_line in enumerate(result.fix.splitlines()):
            line = Text(indent)
            line.append("→ " if index == 0 else "  ", style="cyan")
            line.append(fix_line)
            lines.append(line)
    return lines


def _title_width() -> int:
    titles = [t(f"doctor.title_{name}") for name in (*STEPS, "warning")]
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


def run(args: argparse.Namespace, settings: Settings) -> int:
    generate = not args.no_generate
    model = args.model
    results: list[CheckResult] = []
    if args.json:
        results.extend(diagnose(settings, generate=generate, model=model))
        sys.stdout.write(json.dumps(_document(settings, results), ensure_ascii=False, indent=2))
        sys.stdout.write("\n")
        return exit_status(results)

    out = console.stdout
    width = _title_width()
    out.print(Text(t("doctor.header", url=settings.base_url.redacted()), style="bold"))
    spinner: Spinner | None = None

    def on_step(name: str) -> None:
        nonlocal spinner
        if out.is_terminal:
            spinner = out.status(t("doctor.running", step=t(f"doctor.title_{name}")))
            spinner.start()

    try:
        for result in diagnose(settings, generate=generate, model=model, on_step=on_step):
            if spinner is not None:
                spinner.stop()
                spinner = None
            results.append(result)
            for line in render_line(result, width):
                out.print(line)
    finally:
        if spinner is not None:
            spinner.stop()
    out.print()
    out.print(_verdict(results))
    return exit_status(results)
