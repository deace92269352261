"""Terminal tables (rich): the end-of-run summary, history listings and run comparisons.

:func:`print_summary` is what ``ollamakit bench`` prints when a run ends and what
``ollamakit report`` prints without ``--output``: the model × prompt table, then (when the
run has them) the concurrency sweep, cold loads, failures and hints. :func:`print_header`
prints the run's facts above it (``report`` uses it; the benchmark has shown them already).

Every cell is plain text (``rich.text.Text``), never markup, so a model name such as
``[bold]x`` or an error text with brackets prints as it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.segment import Segments
from rich.table import Table
from rich.text import Text

from ollamakit.bench.schema import RunDocument
from ollamakit.i18n import t
from ollamakit.report.common import (
    DASH,
    concurrency_levels,
    concurrency_rows,
    config_text,
    failures,
    fmt_num,
    fmt_pct,
    fmt_time,
    header_facts,
    metric,
    status_text,
    summary_is_computed,
    summary_rows,
    title,
)
from ollamakit.report.compare import Comparison, Verdict
from ollamakit.store import RunListing

_VERDICT_STYLE = {Verdict.BETTER: "green", Verdict.WORSE: "red", Verdict.SAME: "", None: "dim"}


MAX_PIPE_WIDTH = 240


def print_table(console: Console, table: Table) -> None:
    """Print a table; when not on a terminal (a pipe or a file, where rich assumes 80
    columns), as wide as the table needs, so rows are not folded into unreadable cells."""
    if console.is_terminal:
        console.print(table)
        return
    wide = console.options.update_width(MAX_PIPE_WIDTH)
    needed = Measurement.get(console, wide, table).maximum
    if needed <= console.width:
        console.print(table)
        return
    # Console.print caps width= at the console's own width; render at ours and print the
    # segments unwrapped instead.
    segments = console.render(table, console.options.update_width(needed))
    console.print(Segments(segments), soft_wrap=True)


def _ok_cell(ok: int, n: int) -> Text:
    return Text(f"{ok}/{n}", style="" if ok == n else ("red" if ok == 0 else "yellow"))


def _num(value: object, style: str = "") -> Text:
    text = fmt_num(value)
    return Text(text, style="dim" if text == DASH else style)


def summary_table(doc: RunDocument) -> Table:
    """Model × prompt (× concurrency when swept): TTFT, eval tok/s, prompt tok/s, network, ok/n."""
    rows = summary_rows(doc)
    swept = len(concurrency_levels(doc)) > 1
    table = Table(
        title=t("report.summary_title"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=t("report.summary_computed") if summary_is_computed(doc) else None,
        caption_justify="left",
    )
    table.add_column(t("report.col_model"), style="bold", overflow="fold")
    table.add_column(t("report.col_prompt"), overflow="fold")
    if swept:
        table.add_column(t("report.col_concurrency_short"), justify="right")
    table.add_column(t("report.col_ttft_median"), justify="right")
    table.add_column(t("report.col_eval_tps"), justify="right")
    table.add_column(t("report.col_prompt_tps"), justify="right")
    table.add_column(t("report.col_network_ms"), justify="right")
    table.add_column(t("report.col_ok"), justify="right")
    for i, row in enumerate(rows):
        model = row.get("model", "")
        first = i == 0 or rows[i - 1].get("model") != model
        last = i == len(rows) - 1 or rows[i + 1].get("model") != model
        cells: list[Text] = [
            Text(model if first else ""),
            Text(row.get("prompt_id", "")),
        ]
        if swept:
            cells.append(Text(str(row.get("concurrency", 1))))
        cells += [
            _num(metric(row, "ttft_ms")),
            _num(metric(row, "eval_tps"), "cyan"),
            _num(metric(row, "prompt_tps")),
            _num(metric(row, "network_ms")),
            _ok_cell(int(row.get("ok", 0)), int(row.get("n", 0))),
        ]
        table.add_row(*cells, end_section=last and i != len(rows) - 1)
    return table


def concurrency_table(doc: RunDocument) -> Table | None:
    """Aggregate throughput per model and concurrency level, with the scaling from level 1."""
    rows = concurrency_rows(doc)
    if len({int(row.get("concurrency", 1)) for row in rows}) < 2:
        # One level is no sweep: its aggregate tok/s (idle gaps included) next to the summary's
        # decode rate only invites a wrong comparison.
        return None
    table = Table(title=t("report.concurrency_title"), title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column(t("report.col_model"), style="bold", overflow="fold")
    table.add_column(t("report.col_concurrency"), justify="right")
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
        last = i == len(rows) - 1 or rows[i + 1].get("model") != model
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
            end_section=last and i != len(rows) - 1,
        )
    return table


def cold_loads_table(doc: RunDocument) -> Table | None:
    loads = doc.get("cold_loads") or []
    if not loads:
        return None
    table = Table(title=t("report.cold_loads_title"), title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column(t("report.col_model"), style="bold", overflow="fold")
    table.add_column(t("report.col_load_ms"), justify="right")
    for load in loads:
        table.add_row(Text(load.get("model", "")), _num(load.get("load_ms")))
    return table


def failure_counts(doc: RunDocument) -> list[tuple[str, str, str, int]]:
    """(model, prompt, error, count), most frequent first."""
    counts = Counter(
        (r["model"], r["prompt_id"], (r.get("error") or t("report.unknown_error")).splitlines()[0])
        for r in failures(doc)
    )
    return [(m, p, e, n) for (m, p, e), n in counts.most_common()]


def print_header(doc: RunDocument, console: Console) -> None:
    console.print(Text(title(doc), style="bold"))
    for label, value in header_facts(doc):
        console.print(Text.assemble((f"  {label}: ", "dim"), value))
    console.print(Text.assemble((f"  {t('report.config')}: ", "dim"), config_text(doc)))
    console.print()


def print_summary(doc: RunDocument, console: Console) -> None:
    """The end-of-run summary: tables, then failures and hints."""
    print_table(console, summary_table(doc))
    for extra in (concurrency_table(doc), cold_loads_table(doc)):
        if extra is not None:
            print_table(console, extra)
    failed = failure_counts(doc)
    if failed:
        total = sum(n for *_, n in failed)
        console.print(Text(t("report.failures_count", n=total), style="bold red"))
        for model, prompt, error, n in failed[:10]:
            console.print(Text.assemble("  ✘ ", (f"{model} · {prompt}", "bold"), f" ×{n}: {error}"))
        if len(failed) > 10:
            console.print(Text(f"  … {t('report.more', n=len(failed) - 10)}", style="dim"))
    for hint in doc.get("hints") or []:
        console.print(Text.assemble(("→ ", "cyan"), hint))


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


def compare_table(comparison: Comparison) -> Table:
    """Per (model, prompt, concurrency): TTFT and eval tok/s of both runs and the change."""
    table = Table(
        box=box.SIMPLE_HEAD,
        caption=t("report.compare_caption", noise=fmt_num(comparison.noise_pct, 0)),
        caption_justify="left",
    )
    table.add_column(t("report.col_model"), style="bold", overflow="fold")
    table.add_column(t("report.col_prompt"), overflow="fold")
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
        console.print(
            Text.assemble(
                (f"{name} ", "bold"),
                (doc["run_id"], "bold"),
                label,
                (f" · {fmt_time(doc.get('started_at'))} · {doc['server'].get('base_url')}", "dim"),
                (f" · Ollama {doc['server'].get('version') or DASH}", "dim"),
            )
        )
    print_table(console, compare_table(comparison))
    if comparison.only_a or comparison.only_b:
        console.print(
            Text(
                t("report.compare_unmatched", a=len(comparison.only_a), b=len(comparison.only_b)),
                style="dim",
            )
        )


__all__ = [
    "cold_loads_table",
    "compare_table",
    "concurrency_table",
    "print_compare",
    "print_header",
    "print_summary",
    "runs_table",
    "summary_table",
]
