"""Load reports: the terminal table, and ``--output`` files (JSON, CSV, Markdown, HTML).

All of them read the run document's ``load`` section (:mod:`ollamakit.load.document`):

* JSON: the whole document (``report.render_json``), results included;
* CSV: one row per level (the table below, machine column names with units);
* Markdown: the answer, the level table, the errors;
* HTML: the same with two inline-SVG charts (latency vs load, throughput and goodput vs load),
  drawn by ``report.html.line_chart`` with the report's stylesheet; self-contained, as the
  bench's HTML report.

Server-provided text (model names, error texts) is escaped by each format's own escaper.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, cast

from rich.console import Console
from rich.markup import escape

from ollamakit.i18n import get_language, t
from ollamakit.load.document import load_section
from ollamakit.measure.schema import RunDocument
from ollamakit.report.common import DASH, fmt_num
from ollamakit.ui.tables import layout_width, name_column, new_table, print_table

#: The per-level columns: (machine name, label key, getter).
CSV_COLUMNS: Final = (
    "run_id",
    "model",
    "level",
    "kind",
    "value",
    "window_s",
    "requests",
    "ok",
    "errors_busy",
    "errors_timeout",
    "errors_other",
    "requests_per_s",
    "goodput_rps",
    "output_tps",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "tpot_p50_ms",
    "tpot_p95_ms",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "prefill_ms",
    "wait_ms",
    "ttft_growth",
    "lag_p99_ms",
    "slo_ok",
    "sustained",
)


def _levels(doc: RunDocument) -> list[dict[str, Any]]:
    section = load_section(doc) or {}
    levels = section.get("levels")
    return [cast(dict[str, Any], r) for r in levels] if isinstance(levels, list) else []


def _answer_text(doc: RunDocument) -> str:
    section = load_section(doc) or {}
    answer = section.get("answer")
    return str(answer.get("text", "")) if isinstance(answer, dict) else ""


def _model(doc: RunDocument) -> str:
    models = doc["config"].get("models") or ["?"]
    return str(models[0])


def _facts(doc: RunDocument) -> str:
    """The run's id, server, version, start and status: one line of the Markdown and HTML."""
    return t(
        "load.md_facts",
        run_id=doc["run_id"],
        url=doc["server"].get("base_url", ""),
        version=doc["server"].get("version") or DASH,
        started=doc.get("started_at") or DASH,
        status=doc["status"],
    )


def level_values(doc: RunDocument, row: dict[str, Any]) -> dict[str, Any]:
    """The flat values of one level (CSV columns)."""
    errors = row.get("errors") or {}
    other = sum(v for k, v in errors.items() if k not in ("busy", "timeout"))
    return {
        "run_id": doc["run_id"],
        "model": _model(doc),
        "level": row["level"],
        "kind": row["kind"],
        "value": row["value"],
        "window_s": row["window_s"],
        "requests": row["requests"],
        "ok": row["ok"],
        "errors_busy": errors.get("busy", 0),
        "errors_timeout": errors.get("timeout", 0),
        "errors_other": other,
        "requests_per_s": row["requests_per_s"],
        "goodput_rps": row["goodput_rps"],
        "output_tps": row["output_tps"],
        "ttft_p50_ms": row["ttft_ms"]["p50"],
        "ttft_p95_ms": row["ttft_ms"]["p95"],
        "ttft_p99_ms": row["ttft_ms"]["p99"],
        "tpot_p50_ms": row["tpot_ms"]["p50"],
        "tpot_p95_ms": row["tpot_ms"]["p95"],
        "e2e_p50_ms": row["e2e_ms"]["p50"],
        "e2e_p95_ms": row["e2e_ms"]["p95"],
        "prefill_ms": row["prefill_ms"],
        "wait_ms": row["wait_ms"],
        "ttft_growth": row["ttft_growth"],
        "lag_p99_ms": row["lag_ms"]["p99"],
        "slo_ok": row["slo_ok"],
        "sustained": row["sustained"],
    }


def render_csv(doc: RunDocument) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in _levels(doc):
        values = level_values(doc, row)
        writer.writerow(
            ""
            if values[c] is None
            else str(values[c]).lower()
            if isinstance(values[c], bool)
            else _csv_text(values[c])
            for c in CSV_COLUMNS
        )
    return out.getvalue()


def _csv_text(value: object) -> str:
    text = str(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@"):
        return "'" + text
    return text


def _cells(row: dict[str, Any]) -> list[str]:
    errors = row.get("errors") or {}
    n_err = sum(errors.values())
    return [
        row["level"],
        f"{row['ok']}/{row['requests']}",
        fmt_num(row["requests_per_s"], 2),
        fmt_num(row["goodput_rps"], 2),
        fmt_num(row["output_tps"], 1),
        fmt_num(row["ttft_ms"]["p50"], 0),
        fmt_num(row["ttft_ms"]["p95"], 0),
        fmt_num(row["tpot_ms"]["p95"], 1),
        fmt_num(row["e2e_ms"]["p95"], 0),
        fmt_num(row["wait_ms"], 0),
        DASH if row["ttft_growth"] is None else f"×{row['ttft_growth']:.1f}",
        ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) if n_err else "0",
        "✔" if row["sustained"] else "✘",
    ]


def _headers() -> list[str]:
    return [
        t("load.col_level"),
        t("load.col_ok"),
        t("load.col_rps"),
        t("load.col_goodput"),
        t("load.col_tps"),
        t("load.col_ttft_p50"),
        t("load.col_ttft_p95"),
        t("load.col_tpot_p95"),
        t("load.col_e2e_p95"),
        t("load.col_wait"),
        t("load.col_growth"),
        t("load.col_errors"),
        t("load.col_sustained"),
    ]


#: Columns kept on a narrow terminal (< WIDE_COLUMNS cells): level, ok, req/s, goodput, TTFT
#: p95, TPOT p95, wait, errors, within SLO. The files always have them all.
NARROW: Final = (0, 1, 2, 3, 6, 7, 9, 11, 12)
WIDE_COLUMNS: Final = 140


def print_levels(doc: RunDocument, console: Console) -> None:
    """The level table and the answer, on a terminal or into a pipe.

    In the house style (``ui.tables``): level names whole, headers wrapped at spaces to fit
    the terminal, into a pipe as wide as the table needs.
    """
    keep = range(13) if layout_width(console) >= WIDE_COLUMNS else NARROW
    table = new_table(t("load.table_title", model=escape(_model(doc))), compact=True)
    headers = _headers()
    rows = [_cells(row) for row in _levels(doc)]
    for i in keep:
        if i == 0:
            name_column(table, headers[0], [cells[0] for cells in rows])
        else:
            table.add_column(headers[i], justify="right" if i < 11 else "left")
    for cells in rows:
        table.add_row(*(escape(cells[i]) for i in keep))
    print_table(console, table)
    section = load_section(doc) or {}
    answer = section.get("answer") or {}
    if answer.get("knee"):
        console.print(escape(t("load.knee", level=answer["knee"])))
    text = _answer_text(doc)
    if text:
        console.print(f"[bold]{escape(text)}[/]")


def render_markdown(doc: RunDocument) -> str:
    from ollamakit.report.markdown import code, text

    lines = [
        f"# {text(t('load.md_title', model=_model(doc)))}",
        "",
        f"**{text(_answer_text(doc))}**",
        "",
        text(_facts(doc)),
        "",
    ]
    headers = _headers()
    lines.append("| " + " | ".join(text(h) for h in headers) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|")
    for row in _levels(doc):
        cells = _cells(row)
        lines.append("| " + " | ".join([code(cells[0]), *(text(c) for c in cells[1:])]) + " |")
    section = load_section(doc) or {}
    answer = section.get("answer") or {}
    if answer.get("knee"):
        lines += ["", text(t("load.knee", level=answer["knee"]))]
    lines += ["", text(t("load.md_queueing"))]
    return "\n".join(lines) + "\n"


def render_html(doc: RunDocument) -> str:
    from ollamakit.report.html import CSS, e, line_chart

    rows = _levels(doc)
    xs = [r["value"] for r in rows]
    kind = rows[0]["kind"] if rows else "users"
    x_label = t("load.axis_users") if kind == "users" else t("load.axis_rate")
    xints = cast(Sequence[int], [int(x) if float(x).is_integer() else x for x in xs])

    def series(name: str, getter: Any) -> tuple[str, dict[int, float | None]]:
        return name, {x: getter(r) for x, r in zip(xints, rows, strict=True)}

    latency = line_chart(
        xints,
        [
            series("TTFT p50", lambda r: r["ttft_ms"]["p50"]),
            series("TTFT p95", lambda r: r["ttft_ms"]["p95"]),
            series("e2e p95", lambda r: r["e2e_ms"]["p95"]),
        ],
        x_label,
        "ms",
        t("load.chart_latency"),
    )
    throughput = line_chart(
        xints,
        [
            series(t("load.col_rps"), lambda r: r["requests_per_s"]),
            series(t("load.col_goodput"), lambda r: r["goodput_rps"]),
        ],
        x_label,
        "req/s",
        t("load.chart_throughput"),
    )
    head = "".join(f"<th>{e(h)}</th>" for h in _headers())
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in _cells(r)) + "</tr>" for r in rows)
    title = t("load.md_title", model=_model(doc))
    facts = _facts(doc)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{e(get_language())}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{e(title)}</h1><p>{e(facts)}</p></header>\n<main>\n"
        f"<p><strong>{e(_answer_text(doc))}</strong></p>\n"
        f"<h2>{e(t('load.chart_latency'))}</h2>\n{latency}\n"
        f"<h2>{e(t('load.chart_throughput'))}</h2>\n{throughput}\n"
        f"<h2>{e(t('load.table_title', model=_model(doc)))}</h2>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"
        f"<p>{e(t('load.md_queueing'))}</p>\n</main>\n</body>\n</html>\n"
    )


def render(doc: RunDocument, fmt: str) -> str:
    from ollamakit.redact import scrub
    from ollamakit.report import render_json

    clean = scrub(doc)
    if fmt == "json":
        return render_json(clean)
    if fmt == "csv":
        return render_csv(clean)
    if fmt == "md":
        return render_markdown(clean)
    return render_html(clean)


def write_output(doc: RunDocument, path: Path) -> None:
    """``--output FILE``: format by extension, written atomically (``-``: JSON on stdout)."""
    import sys

    from ollamakit.report import atomic_write, output_format

    text = render(doc, output_format(path))
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    atomic_write(path, text.encode("utf-8"))


__all__ = ["CSV_COLUMNS", "print_levels", "render", "render_csv", "render_html", "write_output"]
