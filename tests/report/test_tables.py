"""The terminal summary (rich tables) and the comparison of two runs."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, cast

import pytest
from rich.console import Console

from ollamakit.i18n import set_language
from ollamakit.measure.schema import RunDocument
from ollamakit.report.common import fmt_num
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
    for header in ("Model", "Prompt", "Conc.", "TTFT ms", "Eval rate tok/s", "Prefill tok/s"):
        assert header in text
    headers = [str(column.header) for column in table.columns]
    for header in ("E2E ms", "Out tokens", "Client decode tok/s", "Overhead ms", "GPU"):
        assert header in headers  # the same columns as Markdown and HTML (issue 11)
    assert "Network ms" not in text and "OK/n" in text
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
    table = summary_table(doc)
    headers = [str(column.header) for column in table.columns]
    assert "模型" in headers and "生成速率 tok/s" in headers and "用戶端解碼 tok/s" in headers


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


# --------------------------------------------------------------------------- layout


def on_terminal(fn: Callable[[Console], None], width: int) -> list[str]:
    """What ``fn`` prints on a terminal of ``width`` columns, line by line (no colour)."""
    out = io.StringIO()
    fn(Console(file=out, width=width, force_terminal=True, color_system=None))
    return out.getvalue().splitlines()


def into_pipe(fn: Callable[[Console], None]) -> list[str]:
    """What ``fn`` prints into a pipe (rich assumes 80 columns there)."""
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    assert not console.is_terminal
    fn(console)
    return out.getvalue().splitlines()


def small_models_doc(doc_factory: Callable[..., RunDocument], **kwargs: Any) -> RunDocument:
    """The run of the review: small models with colons and dots, a prompt id with a dash."""
    doc = doc_factory(models=["deepseek-r1:1.5b", "qwen2.5:0.5b"], **kwargs)
    for row in [*doc["results"], *doc["summary"]]:
        if row["prompt_id"] == "long_summary":
            row["prompt_id"] = "long-summary"
    return doc


def body_lines(lines: list[str], title: str) -> list[str]:
    """The lines of the table called ``title``: from its title to the next blank line after
    its header rule's section."""
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rule = next(i for i in range(start, len(lines)) if set(lines[i].strip()) == {"─"})
    end = next((i for i in range(rule + 1, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("sweep", [False, True])
def test_names_never_break_at_80_columns(
    doc_factory: Callable[..., RunDocument], sweep: bool
) -> None:
    doc = small_models_doc(doc_factory, sweep=sweep, failed=False)
    lines = on_terminal(lambda c: print_summary(doc, c), width=80)
    text = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines)
    for name in ("deepseek-r1:1.5b", "qwen2.5:0.5b"):
        assert text.count(name) >= 2  # summary and cold loads (and the concurrency table)
    for prompt in ("greeting", "reasoning", "long-summary"):
        assert prompt in text
    assert "…" not in text  # no header or number cut short ("Netwo…")
    summary = "\n".join(body_lines(lines, "Summary"))
    assert "E2E" in summary and "Out" in summary  # the main columns in the first table
    details = "\n".join(body_lines(lines, "Details"))
    assert "Prefill" in details and "Overhead" in details and "GPU" in details
    row = next(line for line in lines if "long-summary" in line)
    cell = next(r for r in doc["summary"] if r["prompt_id"] == "long-summary")
    assert fmt_num(cell["ttft_ms"]["median"]) in row  # the numbers stay on the name's line
    assert fmt_num(cell["total_ms"]["median"]) in row


def test_a_narrower_terminal_moves_the_details_to_a_second_table(
    doc_factory: Callable[..., RunDocument],
) -> None:
    doc = small_models_doc(doc_factory, sweep=False, failed=False)
    lines = on_terminal(lambda c: print_summary(doc, c), width=76)
    text = "\n".join(lines)
    assert all(len(line) <= 76 for line in lines)
    assert "Overhead" not in "\n".join(body_lines(lines, "Summary"))
    details = body_lines(lines, "Details")
    assert any("deepseek-r1:1.5b" in line and "greeting" in line for line in details)
    assert "long-summary" in text and "…" not in text


def test_long_names_fold_only_as_a_last_resort(doc_factory: Callable[..., RunDocument]) -> None:
    name = "hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M"
    doc = doc_factory(models=[name], sweep=False, failed=False)
    lines = on_terminal(lambda c: print_summary(doc, c), width=60)
    assert all(len(line) <= 60 for line in lines)
    assert name in lines  # too long for a column: it names its own table, whole (issue 11)
    assert "…" not in "\n".join(body_lines(lines, name))
    lines = on_terminal(lambda c: print_summary(doc, c), width=44)
    summary = body_lines(lines, "Summary")
    assert "".join(line.split("  ")[0].strip() for line in summary if line.strip()).count(
        name[:20]
    )  # folded over several lines (the last resort), but all there


def test_no_trailing_spaces_on_a_terminal_or_in_a_pipe(
    doc_factory: Callable[..., RunDocument],
) -> None:
    doc = small_models_doc(doc_factory)
    for lines in (
        on_terminal(lambda c: print_summary(doc, c), width=80),
        into_pipe(lambda c: print_summary(doc, c)),
    ):
        assert lines
        assert [line for line in lines if line != line.rstrip()] == []


def test_a_pipe_gets_whole_lines(doc_factory: Callable[..., RunDocument]) -> None:
    doc = small_models_doc(doc_factory)
    lines = into_pipe(lambda c: print_summary(doc, c))
    header = next(line for line in lines if "Model" in line and "OK/n" in line)
    assert "Overhead ms" in header and "Prefill tok/s" in header  # not wrapped at 80 columns
    hint = next(line for line in lines if line.startswith("→"))
    assert hint.endswith("OLLAMA_NUM_PARALLEL=2.")  # one line, however long


def test_compare_keeps_names_whole_at_80_columns(doc_factory: Callable[..., RunDocument]) -> None:
    a = small_models_doc(doc_factory, run_id="aaaa", seed=1)
    b = small_models_doc(doc_factory, run_id="bbbb", seed=2, speedup=1.25)
    lines = on_terminal(lambda c: print_compare(compare_runs(a, b), c), width=80)
    text = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines)
    assert "deepseek-r1:1.5b" in text and "long-summary" in text and "…" not in text


# --------------------------------------------------------------------------- cold loads


def test_an_already_loaded_model_is_no_cold_load(doc_factory: Callable[..., RunDocument]) -> None:
    doc = small_models_doc(doc_factory, sweep=False, failed=False)
    doc["cold_loads"] = [
        {"model": "deepseek-r1:1.5b", "load_ms": 2143.7},
        {"model": "qwen2.5:0.5b", "load_ms": 2.26},  # second run within keep-alive
    ]
    lines = printed(lambda c: print_summary(doc, c)).splitlines()
    cold = body_lines(lines, "Cold loads")
    assert any("deepseek-r1:1.5b" in line and "2,144" in line for line in cold)
    assert not any("qwen2.5:0.5b" in line for line in cold)
    note = next(line for line in lines if "Already in memory" in line)
    assert "qwen2.5:0.5b (2.26 ms)" in note and "no cold load was measured" in note


def test_only_already_loaded_models_no_cold_table(doc_factory: Callable[..., RunDocument]) -> None:
    doc = doc_factory(sweep=False, failed=False)
    doc["cold_loads"] = [{"model": m, "load_ms": 3.1} for m in doc["config"]["models"]]
    text = printed(lambda c: print_summary(doc, c))
    assert "Cold loads" not in text
    assert "Already in memory, so no cold load was measured: llama3.2:3b (3.10 ms)" in text
