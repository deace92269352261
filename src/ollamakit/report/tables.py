"""Terminal tables (rich): the end-of-run summary, history listings and run comparisons.

:func:`print_summary` is what ``ollamakit bench`` prints when a run ends and what
``ollamakit report`` prints without ``--output``: the model × prompt table, then (when the
run has them) the concurrency sweep, cold loads, failures and hints. :func:`print_header`
prints the run's facts above it (``report`` uses it; the benchmark has shown them already).

Every cell is plain text (``rich.text.Text``), never markup, so a model name such as
``[bold]x`` or an error text with brackets prints as it is.

Layout follows :mod:`ollamakit.ui.tables` (names never break, numbers give way, lines without
trailing padding, as wide as needed into a pipe). Only when even that is too wide does a table
drop a column here (the summary's "Network ms" moves to a second table) and, as a last resort,
names fold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ollamakit.i18n import t
from ollamakit.measure.schema import RunDocument, SummaryRow
from ollamakit.report.common import (
    DASH,
    cold_loads,
    concurrency_levels,
    concurrency_rows,
    config_text,
    failure_groups,
    fmt_num,
    fmt_pct,
    fmt_time,
    header_facts,
    metric,
    model_order,
    rtt_text,
    skipped_models,
    status_text,
    summary_cell,
    summary_columns,
    summary_is_computed,
    summary_rows,
    title,
)
from ollamakit.report.compare import Comparison, Verdict
from ollamakit.store import RunListing
from ollamakit.ui.tables import (
    MAX_PIPE_WIDTH,
    first_fitting,
    name_column,
    new_table,
    print_lines,
    print_table,
    print_text,
)

_VERDICT_STYLE = {Verdict.BETTER: "green", Verdict.WORSE: "red", Verdict.SAME: "", None: "dim"}


def _ok_cell(ok: int, n: int) -> Text:
    return Text(f"{ok}/{n}", style="" if ok == n else ("red" if ok == 0 else "yellow"))


def _num(value: object, style: str = "") -> Text:
    text = fmt_num(value)
    return Text(text, style="dim" if text == DASH else style)


def summary_table(
    doc: RunDocument,
    *,
    part: str = "all",
    compact: bool = False,
    fold_names: bool = False,
    model: str | None = None,
) -> Table:
    """Model × prompt (× concurrency when swept) with the columns of
    :data:`~ollamakit.report.common.SUMMARY_COLUMNS` (the same in Markdown and HTML).

    For narrow terminals (:func:`summary_tables`): ``part`` is ``"all"``, ``"main"`` (the
    columns a reader looks at first) or ``"detail"`` (the rest, in a second table);
    ``compact`` narrows the gaps; ``model`` makes a table of that model's rows only, named in
    the title instead of a column (a long name such as
    ``hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M`` then stays whole at 80 columns);
    ``fold_names`` lets names break (the last resort).
    """
    rows = summary_rows(doc)
    if model is not None:
        rows = [r for r in rows if r.get("model") == model]
    swept = len(concurrency_levels(doc)) > 1
    columns = [
        c
        for c in summary_columns(doc)
        if part == "all" or (c.detail if part == "detail" else not c.detail)
    ]
    if model is not None:
        heading = model if part != "detail" else f"{model} · {t('report.details_title')}"
    else:
        heading = t("report.summary_title") if part != "detail" else t("report.details_title")
    caption = None
    if summary_is_computed(doc) and part != "detail":
        caption = t("report.summary_computed")
    table = new_table(heading, compact=compact, caption=caption, caption_justify="left")
    _name_columns(table, rows, swept, fold_names, with_model=model is None)
    for column in columns:
        table.add_column(column.label, justify="right")
    for i, row in enumerate(rows):
        cells = _name_cells(rows, i, swept, with_model=model is None)
        for column in columns:
            text = summary_cell(doc, row, column)
            if column.key == "ok":
                cells.append(_ok_cell(int(row.get("ok", 0)), int(row.get("n", 0))))
            else:
                style = "cyan" if column.key in ("eval_rate", "decode") else ""
                cells.append(Text(text, style="dim" if text.startswith(DASH) else style))
        table.add_row(*cells, end_section=model is None and _last_of_model(rows, i))
    return table


def summary_tables(doc: RunDocument, console: Console) -> list[Table]:
    """The summary laid out for ``console``, the first of these that fits without breaking
    a name: one table; the same with narrower gaps; the main columns and then the details in
    a second table; the same per model, the model named above its table (long names); and
    as a last resort, names folded."""
    models = model_order(summary_rows(doc))

    def per_model() -> list[Table]:
        tables: list[Table] = []
        for name in models:
            tables.append(summary_table(doc, part="main", compact=True, model=name))
            tables.append(summary_table(doc, part="detail", compact=True, model=name))
        return tables

    return first_fitting(
        console,
        lambda: [summary_table(doc)],
        lambda: [summary_table(doc, compact=True)],
        lambda: [
            summary_table(doc, part="main", compact=True),
            summary_table(doc, part="detail", compact=True),
        ],
        per_model,
        lambda: [
            summary_table(doc, part="main", compact=True, fold_names=True),
            summary_table(doc, part="detail", compact=True, fold_names=True),
        ],
    )


def _name_columns(
    table: Table, rows: Sequence[SummaryRow], swept: bool, fold: bool, *, with_model: bool = True
) -> None:
    models = [str(row.get("model", "")) for row in rows]
    prompts = [str(row.get("prompt_id", "")) for row in rows]
    if with_model:
        name_column(table, t("report.col_model"), models, fold=fold, style="bold")
    name_column(table, t("report.col_prompt"), prompts, fold=fold)
    if swept:
        table.add_column(t("report.col_concurrency_short"), justify="right")


def _name_cells(
    rows: Sequence[SummaryRow], i: int, swept: bool, *, with_model: bool = True
) -> list[Text]:
    """Model (named once per block of rows), prompt and, when swept, concurrency."""
    model = rows[i].get("model", "")
    first = i == 0 or rows[i - 1].get("model") != model
    cells = [Text(model if first else "")] if with_model else []
    cells.append(Text(rows[i].get("prompt_id", "")))
    if swept:
        cells.append(Text(str(rows[i].get("concurrency", 1))))
    return cells


def _last_of_model(rows: Sequence[Mapping[str, Any]], i: int) -> bool:
    """Whether row ``i`` ends a model's block (a section line), the table's last row aside."""
    last = i == len(rows) - 1 or rows[i + 1].get("model") != rows[i].get("model")
    return last and i != len(rows) - 1


def concurrency_table(
    doc: RunDocument, *, compact: bool = False, fold_names: bool = False
) -> Table | None:
    """Aggregate throughput per model and concurrency level, with the scaling from level 1.

    ``compact`` narrows the gaps and heads the level column "Conc." ("Concurrency" is one word:
    it cannot wrap); ``fold_names`` lets model names break (for narrow terminals:
    :func:`concurrency_tables`).
    """
    rows = concurrency_rows(doc)
    if len({int(row.get("concurrency", 1)) for row in rows}) < 2:
        # One level is no sweep: its aggregate tok/s (idle gaps included) next to the summary's
        # decode rate only invites a wrong comparison.
        return None
    table = new_table(t("report.concurrency_title"), compact=compact)
    models = [str(row.get("model", "")) for row in rows]
    name_column(table, t("report.col_model"), models, fold=fold_names, style="bold")
    level_key = "report.col_concurrency_short" if compact else "report.col_concurrency"
    table.add_column(t(level_key), justify="right")
    table.add_column(t("report.col_output_tps"), justify="right")
    table.add_column(t("report.col_scaling"), justify="right")
    table.add_column(t("report.col_requests_per_s"), justify="right")
    table.add_column(t("report.col_ttft_median"), justify="right")
    table.add_column(t("report.col_ttft_p95"), justify="right")
    table.add_column(t("report.col_itl_p95"), justify="right")
    table.add_column(t("report.col_ok"), justify="right")
    base: dict[str, float] = {}
    for row in sorted(rows, key=lambda r: r.get("concurrency", 0)):
        tps = row.get("output_tps")
        if tps and row.get("model", "") not in base:
            base[row.get("model", "")] = float(tps)
    for i, row in enumerate(rows):
        model = row.get("model", "")
        first = i == 0 or rows[i - 1].get("model") != model
        tps = row.get("output_tps")
        scaling = f"×{tps / base[model]:.2f}" if tps is not None and base.get(model) else DASH
        table.add_row(
            Text(model if first else ""),
            Text(str(row.get("concurrency", ""))),
            _num(tps, "cyan"),
            Text(scaling),
            _num(row.get("requests_per_s")),
            _num(metric(row, "ttft_ms")),
            _num(metric(row, "ttft_ms", "p95")),
            _num(metric(row, "itl_p95_ms")),
            _ok_cell(int(row.get("ok", 0)), int(row.get("requests", 0))),
            end_section=_last_of_model(rows, i),
        )
    return table


def concurrency_tables(doc: RunDocument, console: Console) -> list[Table]:
    """The concurrency table laid out for ``console`` (see :func:`summary_tables`)."""

    def layout(**how: bool) -> Callable[[], list[Table]]:
        return lambda: [table] if (table := concurrency_table(doc, **how)) else []

    return first_fitting(
        console, layout(), layout(compact=True), layout(compact=True, fold_names=True)
    )


def cold_loads_table(doc: RunDocument, *, compact: bool = False) -> Table | None:
    """The models' cold loads; models that were already in memory are not in it (see
    :func:`already_loaded_note`). With ``--cold`` it also shows each measured load."""
    loads, _ = cold_loads(doc)
    if not loads:
        return None
    table = new_table(t("report.cold_loads_title"), compact=compact)
    name_column(table, t("report.col_model"), [x.get("model", "") for x in loads], style="bold")
    table.add_column(t("report.col_load_ms"), justify="right")
    runs = any(x.get("load_runs_ms") for x in loads)
    if runs:
        table.add_column(t("report.col_load_runs"), justify="right")
    for load in loads:
        cells = [Text(load.get("model", "")), _num(load.get("load_ms"))]
        if runs:
            cells.append(Text(" ".join(fmt_num(v) for v in load.get("load_runs_ms") or [])))
        table.add_row(*cells)
    return table


def already_loaded_note(doc: RunDocument) -> str | None:
    """ "Already in memory, so no cold load was measured: qwen2.5:0.5b (2.26 ms)", or None."""
    _, warm = cold_loads(doc)
    if not warm:
        return None
    models = ", ".join(f"{x.get('model', '')} ({fmt_num(x.get('load_ms'))} ms)" for x in warm)
    return t("report.already_loaded_note", models=models)


def print_header(doc: RunDocument, console: Console) -> None:
    print_text(console, Text(title(doc), style="bold"))
    if doc.get("demo"):  # a --demo run: say it before any number
        print_text(console, Text(t("report.demo_banner"), style="bold yellow"))
    for label, value in header_facts(doc):
        print_text(console, Text.assemble((f"  {label}: ", "dim"), value))
    print_text(console, Text.assemble((f"  {t('report.config')}: ", "dim"), config_text(doc)))
    console.print()


def print_summary(doc: RunDocument, console: Console) -> None:
    """The end-of-run summary: tables, then failures and hints."""
    tables = summary_tables(doc, console)
    compact = not tables[0].show_edge  # the other tables in the same style
    for table in tables + concurrency_tables(doc, console):
        print_table(console, table)
    cold = cold_loads_table(doc, compact=compact)
    if cold is not None:
        print_table(console, cold)
    note = already_loaded_note(doc)
    if note is not None:
        print_text(console, Text(note, style="dim"))
        console.print()
    if any(c.key == "clean_eof" for c in summary_columns(doc)):
        print_text(console, Text(t("report.clean_eof_note"), style="dim"))
    print_text(console, Text(t("report.columns_note", rtt=rtt_text(doc)), style="dim"))
    console.print()
    skipped = skipped_models(doc)
    if skipped:
        print_text(console, Text(t("report.skipped_title", n=len(skipped)), style="bold red"))
        for model, reason in skipped:
            print_text(console, Text.assemble("  ✘ ", (model, "bold"), f": {reason}"))
    groups = failure_groups(doc)
    if groups:
        total = sum(n for _, _, n, _ in groups)
        print_text(console, Text(t("report.failures_count", n=total), style="bold red"))
        for model, error, n, prompts in groups:  # every group: nothing hidden behind "… more"
            where = t("report.failure_group", n=n, prompts=", ".join(prompts))
            first_line = error.splitlines()[0] if error.strip() else error
            print_text(console, Text.assemble("  ✘ ", (model, "bold"), f" {where}: {first_line}"))
    if doc.get("status") == "failed" and doc.get("failure"):
        print_text(
            console,
            Text(t("report.run_failed_reason", reason=doc.get("failure") or ""), style="bold red"),
        )
    for hint in doc.get("hints") or []:
        print_text(console, Text.assemble(("→ ", "cyan"), hint))


def runs_table(listings: Sequence[RunListing]) -> Table:
    """``ollamakit history``: the newest runs first."""
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column(t("report.run_id"), style="bold", no_wrap=True)
    table.add_column(t("report.started"), no_wrap=True)
    table.add_column(t("report.col_label"), overflow="fold")
    table.add_column(t("report.status"))
    table.add_column(t("report.server"), overflow="fold")
    table.add_column(t("report.col_models"), overflow="fold")
    table.add_column(t("report.col_ok"), justify="right")
    for run in listings:
        ok = run.n_results - run.n_failed
        status_style = {"complete": "green", "running": "yellow"}.get(run.status, "red")
        table.add_row(
            Text(run.run_id),
            Text(fmt_time(run.started_at)),
            Text(run.label or ""),
            Text(status_text(run.status), style=status_style),
            Text(run.base_url),
            Text(", ".join(run.models)),
            _ok_cell(ok, run.n_results),
        )
    return table


def compare_table(
    comparison: Comparison, *, compact: bool = False, fold_names: bool = False
) -> Table:
    """Per (model, prompt, concurrency): TTFT and eval tok/s of both runs and the change."""
    table = new_table(
        None,
        compact=compact,
        caption=t("report.compare_caption", noise=fmt_num(comparison.noise_pct, 0)),
        caption_justify="left",
    )
    models = [row.model for row in comparison.rows]
    prompts = [row.prompt_id for row in comparison.rows]
    name_column(table, t("report.col_model"), models, fold=fold_names, style="bold")
    name_column(table, t("report.col_prompt"), prompts, fold=fold_names)
    if comparison.swept:
        table.add_column(t("report.col_concurrency_short"), justify="right")
    table.add_column(f"{t('report.col_ttft_median')}\nA", justify="right")
    table.add_column("B", justify="right")
    table.add_column("Δ", justify="right")
    table.add_column(f"{t('report.col_eval_tps')}\nA", justify="right")
    table.add_column("B", justify="right")
    table.add_column("Δ", justify="right")
    for row in comparison.rows:
        cells = [Text(row.model), Text(row.prompt_id)]
        if comparison.swept:
            cells.append(Text(str(row.concurrency)))
        cells += [
            _num(row.ttft_a),
            _num(row.ttft_b),
            Text(fmt_pct(row.ttft_change), style=_VERDICT_STYLE[row.ttft_verdict]),
            _num(row.eval_a),
            _num(row.eval_b),
            Text(fmt_pct(row.eval_change), style=_VERDICT_STYLE[row.eval_verdict]),
        ]
        table.add_row(*cells)
    return table


def print_compare(comparison: Comparison, console: Console) -> None:
    for name, doc in (("A", comparison.run_a), ("B", comparison.run_b)):
        label = f" · {doc['label']}" if doc.get("label") else ""
        print_text(
            console,
            Text.assemble(
                (f"{name} ", "bold"),
                (doc["run_id"], "bold"),
                label,
                (f" · {fmt_time(doc.get('started_at'))} · {doc['server'].get('base_url')}", "dim"),
                (f" · Ollama {doc['server'].get('version') or DASH}", "dim"),
            ),
        )
    for table in first_fitting(
        console,
        lambda: [compare_table(comparison)],
        lambda: [compare_table(comparison, compact=True)],
        lambda: [compare_table(comparison, compact=True, fold_names=True)],
    ):
        print_table(console, table)
    if comparison.only_a or comparison.only_b:
        print_text(
            console,
            Text(
                t("report.compare_unmatched", a=len(comparison.only_a), b=len(comparison.only_b)),
                style="dim",
            ),
        )


__all__ = [
    "MAX_PIPE_WIDTH",
    "already_loaded_note",
    "cold_loads_table",
    "compare_table",
    "concurrency_table",
    "concurrency_tables",
    "print_compare",
    "print_header",
    "print_lines",
    "print_summary",
    "print_table",
    "print_text",
    "runs_table",
    "summary_table",
    "summary_tables",
]
