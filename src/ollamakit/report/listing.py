"""``ollamakit history``: the list of saved runs, laid out for the terminal it is printed on.

Two layouts, the first that fits (:func:`ollamakit.ui.tables.first_fitting`):

* **A table**, one row per run: run id, start time, label, status, server, models, OK/n. It
  is used when it fits without breaking anything that must stay whole: the run id, the date
  and time (never cut to ``2026-12-01 20:3``), the server URL, and each model name (the
  models cell wraps only *between* names, at ``", "``). Into a pipe a table is as wide as it
  needs (grep-friendly: one run per line).
* **Blocks**, one per run, when the table does not fit (80 columns with realistic names such
  as ``hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M``)::

      9fe2b9257ceb  2026-12-01 20:38:15 UTC  complete, 30 failed  20/50 ok
        Server  http://127.0.0.1:11434 · Ollama 0.33.0
        Models  hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M, qwen2.5:0.5b
        Label   gpu box, q4

  The URL has a line of its own and the model names wrap between names, under each other
  (a name wider than the whole line is the only thing that ever folds).

The status is :func:`ollamakit.report.runstatus.run_status`'s: a run with failures says so,
an interrupted one says how far it got, and lists the models that ran apart from the models
it never reached. A ``--demo`` run is marked as such.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ollamakit.i18n import t
from ollamakit.report.common import fmt_time
from ollamakit.report.runstatus import TONE_STYLE, RunStatus, run_status
from ollamakit.store import RunListing
from ollamakit.ui.sanitize import clean_line
from ollamakit.ui.tables import first_fitting, name_column, new_table, print_lines, print_table

#: Between the columns of a block's first line.
GAP = "  "


def listing_status(run: RunListing) -> RunStatus:
    return run_status(run.status, done=run.n_results, failed=run.n_failed, planned=run.planned)


def _ok_text(run: RunListing) -> Text:
    ok = run.n_results - run.n_failed
    style = "" if ok == run.n_results else ("red" if ok == 0 else "yellow")
    return Text(t("report.listing_ok", ok=ok, n=run.n_results), style=style)


def _models_text(run: RunListing) -> Text:
    """The models that ran; for a run that stopped early, those it never reached apart.

    Names are joined with ``", "``: the only places a line may break."""
    names = [clean_line(m) for m in run.models]
    if run.status == "complete" or not run.models_ran:
        ran, missing = names, []
        if run.status != "complete" and run.n_results == 0:
            ran, missing = [], names
    else:
        done = set(run.models_ran)
        ran = [n for n, m in zip(names, run.models, strict=True) if m in done]
        missing = [n for n, m in zip(names, run.models, strict=True) if m not in done]
    text = Text(", ".join(ran))
    if missing:
        if ran:
            text.append(" · ")
        text.append(t("report.listing_not_run", models=", ".join(missing)), style="dim")
    return text


def _server_text(run: RunListing) -> Text:
    text = Text(clean_line(run.base_url))
    if run.server_version:
        text.append(f" · Ollama {clean_line(run.server_version)}", style="dim")
    return text


def _status_text(run: RunListing) -> Text:
    status = listing_status(run)
    text = Text(status.text, style=TONE_STYLE[status.tone])
    if run.demo:
        text.append(" · ")
        text.append(t("report.listing_demo"), style="bold yellow")
    return text


def history_table(listings: Sequence[RunListing]) -> Table:
    """One row per run; names, URLs and dates never break (see the module docstring)."""
    table = new_table(None)
    # Whole cells: rich measures a no-wrap cell by its longest word and would cut the rest
    # ("2026-12-01 20:5…"), so each such column is as wide as its widest cell (name_column's
    # rule).
    whole = [
        (t("report.run_id"), [run.run_id for run in listings], "bold"),
        (t("report.started"), [fmt_time(run.started_at) for run in listings], ""),
    ]
    for header, values, style in whole:
        name_column(table, header, values, style=style)
    table.add_column(t("report.col_label"))
    table.add_column(t("report.status"))
    name_column(table, t("report.server"), [_server_text(run).plain for run in listings])
    longest = max((cell_len(clean_line(m)) for run in listings for m in run.models), default=0)
    # Wraps between names only: no narrower than the longest name (rich would fold it).
    table.add_column(t("report.col_models"), min_width=max(longest, 1))
    table.add_column(t("report.col_ok"), justify="right", no_wrap=True)
    for run in listings:
        ok = run.n_results - run.n_failed
        style = "" if ok == run.n_results else ("red" if ok == 0 else "yellow")
        table.add_row(
            Text(run.run_id),
            Text(fmt_time(run.started_at)),
            Text(clean_line(run.label or "")),
            _status_text(run),
            _server_text(run),
            _models_text(run),
            Text(f"{ok}/{run.n_results}", style=style),
        )
    return table


def _block(run: RunListing, width: int) -> list[RenderableType]:
    """One run as a heading line and labelled lines (the narrow layout)."""
    head = Text.assemble((run.run_id, "bold"), GAP, fmt_time(run.started_at))
    status = _status_text(run)
    status.append(GAP)
    status.append_text(_ok_text(run))
    parts: list[RenderableType] = []
    if cell_len(head.plain) + len(GAP) + cell_len(status.plain) <= width:
        head.append(GAP)
        head.append_text(status)
        parts.append(head)
        status_row = None
    else:
        parts.append(head)
        status_row = status
    details = Table.grid(padding=(0, 2, 0, 0))
    details.add_column(no_wrap=True, style="dim")  # the labels
    details.add_column(overflow="fold")  # wraps at spaces; only a too-long name folds
    if status_row is not None:
        details.add_row(t("report.status"), status_row)
    details.add_row(t("report.server"), _server_text(run))
    details.add_row(t("report.col_models"), _models_text(run))
    if run.label:
        details.add_row(t("report.col_label"), Text(clean_line(run.label)))
    parts.append(Padding(details, (0, 0, 0, 2)))
    return parts


def print_history(console: Console, listings: Sequence[RunListing]) -> None:
    """``ollamakit history``'s output: the table when it fits, else one block per run."""
    tables = first_fitting(console, lambda: [history_table(listings)], lambda: [])
    if tables:
        print_table(console, tables[0])
        return
    width = console.width
    for run in listings:
        for part in _block(run, width):
            print_lines(console, part)
        console.print()


__all__ = ["history_table", "listing_status", "print_history"]
