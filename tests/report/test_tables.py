"""The terminal summary (rich tables) and the comparison of two runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from rich.console import Console

from ollamakit.bench.schema import RunDocument
from ollamakit.i18n import set_language
from ollamakit.report.compare import Verdict, compare_runs
from ollamakit.report.tables import print_compare, print_header, print_summary, summary_table


def text_of(*renderables: object, width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def printed(fn: Callable[[Console], None], width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None)
    fn(console)
    return console.export_text()


def test_summary_table_has_a_row_per_cell(doc: RunDocument) -> None:
    table = summary_table(doc)
    assert table.row_count == len(doc["summary"])
    text = text_of(table)
    for header in ("Model", "Prompt", "Conc.", "TTFT ms", "Eval tok/s", "Prompt tok/s"):
        assert header in text
    assert "Network ms" in text and "OK/n" in text
    assert "llama3.2:3b" in text and "qwen2.5-coder:7b" in text
    assert "2/3" in text  # the failed request's cell
    assert text.count("llama3.2:3b") == 2  # model named once per block (sweep: second block)


def test_print_summary_shows_every_part(doc: RunDocument) -> None:
    text = printed(lambda c: print_summary(doc, c))
    assert "Concurrency" in text and "×1.00" in text
    assert "Cold loads" in text and "2,144" in text and "—" in text
    assert "Failed requests: 1" in text and "HTTP 503" in text
    assert "OLLAMA_NUM_PARALLEL" in text


def test_header_shows_the_run(doc: RunDocument) -> None:
    text = printed(lambda c: print_header(doc, c))
    assert "Benchmark report: rtx4070 behind nginx" in text
    assert "https://ollama-user:***@gpu.example.com" in text
    assert "1.84 ms (p95 3.10 ms)" in text and "2025-03-01 14:05:09 UTC" in text
    assert "runs 3" in text and "4 min 32 s" in text


def test_no_sweep_no_concurrency_column(doc_factory: Callable[..., RunDocument]) -> None:
    doc = doc_factory(sweep=False, failed=False)
    text = printed(lambda c: print_summary(doc, c))
    assert "Conc." not in text and "Concurrency" not in text and "Failed" not in text


def test_markup_in_names_is_printed_as_is(doc_factory: Callable[..., RunDocument]) -> None:
    doc = doc_factory(models=["[bold red]evil[/]"], sweep=False)
    doc["results"][0]["ok"] = False
    doc["results"][0]["error"] = "[link=http://x]click[/link]"
    text = printed(lambda c: print_summary(doc, c))
    assert "[bold red]evil[/]" in text and "[link=http://x]click[/link]" in text


def test_summary_in_traditional_chinese(doc: RunDocument) -> None:
    set_language("zh-TW")
    text = text_of(summary_table(doc))
    assert "模型" in text and "生成 tok/s" in text


def test_compare_faster_run(doc_factory: Callable[..., RunDocument]) -> None:
    a = doc_factory(run_id="aaaa", seed=1)
    b = doc_factory(run_id="bbbb", seed=2, speedup=1.25)
    comparison = compare_runs(a, b)
    assert len(comparison.rows) == len(a["summary"])
    assert comparison.swept
    for row in comparison.rows:
        assert row.eval_change is not None and 0.15 < row.eval_change < 0.35
        assert row.eval_verdict is Verdict.BETTER
        assert row.ttft_verdict in (Verdict.BETTER, Verdict.SAME)
    reverse = compare_runs(b, a)
    assert all(r.eval_verdict is Verdict.WORSE for r in reverse.rows)
    text = printed(lambda c: print_compare(comparison, c), width=200)
    assert "aaaa" in text and "bbbb" in text and "+2" in text


def test_compare_with_itself_is_all_noise(doc: RunDocument) -> None:
    comparison = compare_runs(doc, doc)
    assert {r.eval_verdict for r in comparison.rows} == {Verdict.SAME}
    assert {r.eval_change for r in comparison.rows} == {0.0}


def test_compare_unmatched_cells(doc_factory: Callable[..., RunDocument]) -> None:
    a = doc_factory(models=["llama3.2:3b"], sweep=False)
    b = doc_factory(models=["qwen2.5-coder:7b"], sweep=False)
    comparison = compare_runs(a, b)
    assert len(comparison.only_a) == 5 and len(comparison.only_b) == 5
    assert all(r.eval_verdict is None for r in comparison.rows)
    text = printed(lambda c: print_compare(comparison, c), width=200)
    assert "only in A: 5" in text


def test_compare_runs_without_summary(doc: RunDocument) -> None:
    partial = cast(RunDocument, {**doc, "summary": []})
    comparison = compare_runs(doc, partial)
    assert {r.eval_verdict for r in comparison.rows} == {Verdict.SAME}
