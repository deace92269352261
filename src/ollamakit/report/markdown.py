"""Markdown report (``--output run.md``): a summary ready to paste into a GitHub issue.

GitHub-flavoured Markdown: the run's facts as two short paragraphs, the model × prompt
table, then the concurrency table, cold loads, failures and hints when the run has them.
Every untrusted string (model names, prompt ids, error texts, labels, the server URL) is
escaped: names go in code spans (``|`` escaped so the table holds), free text has Markdown
and HTML syntax characters backslash-escaped, and newlines become spaces.
"""

from __future__ import annotations

import re

from ollamakit.i18n import t
from ollamakit.measure.schema import RunDocument
from ollamakit.report.common import (
    DASH,
    cold_loads,
    concurrency_levels,
    concurrency_rows,
    config_items,
    config_label,
    failure_groups,
    fmt_num,
    header_facts,
    metric,
    rtt_text,
    skipped_models,
    summary_cell,
    summary_columns,
    summary_is_computed,
    summary_rows,
    title,
)

# Characters with a meaning in GFM; "_" only at a word edge (GitHub ignores intraword "_").
_SPECIAL = re.compile(r"([\\`*\[\]<>|~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def text(value: object) -> str:
    """Free text, safe in a paragraph or a table cell.

    >>> text("a|b <script> *x*")
    'a\\\\|b \\\\<script\\\\> \\\\*x\\\\*'
    """
    flat = " ".join(str(value).split())
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), flat) if flat else DASH


def code(value: object) -> str:
    """A name in a code span, safe in a table cell.

    The span's fence is one backtick longer than the longest run of backticks inside, so a
    name cannot close it early and put raw HTML after it (``a``<img onerror=…>``).

    >>> code("llama3.2:3b"), code("a|b"), code("x`y")
    ('`llama3.2:3b`', '`a\\\\|b`', '`` x`y ``')
    >>> code("a``<img src=x onerror=alert(1)>``b")
    '``` a``<img src=x onerror=alert(1)>``b ```'
    """
    flat = " ".join(str(value).split()).replace("|", "\\|")
    if not flat:
        return DASH
    runs = re.findall(r"`+", flat)
    if runs:
        fence = "`" * (max(len(r) for r in runs) + 1)
        return f"{fence} {flat} {fence}"
    return f"`{flat}`"


def _table(header: list[str], rows: list[list[str]], numeric_from: int) -> list[str]:
    align = [":--" if i < numeric_from else "--:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(doc: RunDocument) -> str:
    out: list[str] = [f"### {text(title(doc))}", ""]
    if doc.get("demo"):  # before anything else: these numbers are not a measurement
        out += [f"> **{text(t('report.demo_banner'))}**", ""]
    facts = header_facts(doc)
    server_value = facts[0][1]
    parts = [f"**{text(facts[0][0])}** {code(server_value)}"]
    parts += [f"**{text(label)}** {text(value)}" for label, value in facts[1:]]
    out += [" · ".join(parts), ""]
    config = " · ".join(f"{code(config_label(k))} {text(v)}" for k, v in config_items(doc))
    out += [f"**{text(t('report.config'))}** {config or DASH}", ""]

    swept = len(concurrency_levels(doc)) > 1
    header = [t("report.col_model"), t("report.col_prompt")]
    if swept:
        header.append(t("report.col_concurrency_short"))
    columns = summary_columns(doc)  # the same columns as the terminal and HTML
    header += [column.label for column in columns]
    rows: list[list[str]] = []
    for row in summary_rows(doc):
        cells = [code(row.get("model", "")), text(row.get("prompt_id", ""))]
        if swept:
            cells.append(str(row.get("concurrency", 1)))
        cells += [text(summary_cell(doc, row, column)) for column in columns]
        rows.append(cells)
    out += _table([text(h) for h in header], rows, 2)
    if summary_is_computed(doc):
        out += ["", f"_{text(t('report.summary_computed'))}_"]
    out += ["", text(t("report.columns_note", rtt=rtt_text(doc)))]
    if any(column.key == "clean_eof" for column in columns):
        out += ["", text(t("report.clean_eof_note"))]

    conc = concurrency_rows(doc)
    if conc:
        out += ["", f"#### {text(t('report.concurrency_title'))}", ""]
        header = [
            t("report.col_model"),
            t("report.col_concurrency"),
            t("report.col_output_tps"),
            t("report.col_requests_per_s"),
            t("report.col_ttft_median"),
            t("report.col_ttft_p95"),
            t("report.col_itl_p95"),
            t("report.col_ok"),
        ]
        rows = [
            [
                code(r.get("model", "")),
                str(r.get("concurrency", "")),
                fmt_num(r.get("output_tps")),
                fmt_num(r.get("requests_per_s")),
                fmt_num(metric(r, "ttft_ms")),
                fmt_num(metric(r, "ttft_ms", "p95")),
                fmt_num(metric(r, "itl_p95_ms")),
                f"{r.get('ok', 0)}/{r.get('requests', 0)}",
            ]
            for r in conc
        ]
        out += _table([text(h) for h in header], rows, 1)

    loads, warm = cold_loads(doc)
    if loads or warm:
        out += ["", f"#### {text(t('report.cold_loads_title'))}", ""]
    if loads:
        rows = [[code(x.get("model", "")), fmt_num(x.get("load_ms"))] for x in loads]
        out += _table([text(t("report.col_model")), text(t("report.col_load_ms"))], rows, 1)
    if warm:
        models = ", ".join(f"{x.get('model', '')} ({fmt_num(x.get('load_ms'))} ms)" for x in warm)
        out += [""] if loads else []
        out.append(text(t("report.already_loaded_note", models=models)))

    skipped = skipped_models(doc)
    if skipped:
        out += ["", f"#### {text(t('report.skipped_title', n=len(skipped)))}", ""]
        out += [f"- {code(model)}: {text(reason)}" for model, reason in skipped]
    if doc.get("status") == "failed" and doc.get("failure"):
        out += ["", f"**{text(t('report.run_failed_reason', reason=doc.get('failure') or ''))}**"]

    groups = failure_groups(doc)
    if groups:
        total = sum(n for _, _, n, _ in groups)
        out += ["", f"#### {text(t('report.failures_count', n=total))}", ""]
        for model, error, n, prompts in groups:
            where = t("report.failure_group", n=n, prompts=", ".join(prompts))
            out.append(f"- {code(model)} {text(where)}: {text(error)}")

    hints = doc.get("hints") or []
    if hints:
        out += ["", f"#### {text(t('report.hints_title'))}", ""]
        out += [f"- {text(h)}" for h in hints]

    out.append("")
    return "\n".join(out)
