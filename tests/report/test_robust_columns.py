"""The summary's outcomes (issue 9): a repeat-guard ending is its own outcome and a buffered
reply's TTFT is not presented as one, in the terminal, Markdown and HTML alike."""

from __future__ import annotations

import io

from rich.console import Console

from ollamakit.measure.schema import RunDocument
from ollamakit.measure.stats import summary_rows
from ollamakit.report.html import render_html
from ollamakit.report.markdown import render_markdown
from ollamakit.report.tables import print_summary

from .conftest import make_doc


def _doc(**marks: object) -> RunDocument:
    doc = make_doc(models=["llama3.2:3b"], sweep=False, failed=False)
    for r in doc["results"]:
        if r["prompt_id"] == "greeting":
            r.update(marks)  # type: ignore[typeddict-item]
    doc["summary"] = summary_rows(doc["results"])
    doc["concurrency_summary"] = []
    return doc


def _terminal(doc: RunDocument, width: int = 200) -> str:
    out = io.StringIO()
    print_summary(doc, Console(file=out, width=width, force_terminal=True, color_system=None))
    return out.getvalue()


def test_a_repeat_guard_ending_is_its_own_outcome_everywhere() -> None:
    doc = _doc(end="clean_eof")
    row = next(r for r in doc["summary"] if r["prompt_id"] == "greeting")
    assert row["clean_eof"] == 3 and row["ok"] == 3  # usable replies, not failures
    text = _terminal(doc)
    assert "Repeat guard" in text and "not a proxy problem" in text
    assert "Failed requests" not in text
    for rendered in (render_markdown(doc), render_html(doc)):
        assert "Repeat guard" in rendered and "not a proxy problem" in rendered
    plain = _doc()
    assert "Repeat guard" not in _terminal(plain)  # no such ending: no such column


def test_a_buffered_ttft_is_not_shown_as_a_ttft() -> None:
    doc = _doc(buffered=True)
    line = next(x for x in _terminal(doc).splitlines() if "greeting" in x)
    assert "— (buffered)" in line
    md_line = next(x for x in render_markdown(doc).splitlines() if "| greeting |" in x)
    assert "— (buffered)" in md_line
    assert "— (buffered)" in render_html(doc)
    other = next(x for x in _terminal(doc).splitlines() if "reasoning" in x)
    assert "buffered" not in other


def test_csv_has_the_outcome_columns() -> None:
    from ollamakit.report.csv import render_csv

    header = render_csv(_doc(end="clean_eof", buffered=True)).splitlines()[0].split(",")
    for column in ("end", "buffered", "reads", "prompt_tps_absent", "client_overhead_ms"):
        assert column in header
    assert header.index("end") > header.index("started_at")  # after the version-1 columns
