"""What a hostile server's strings do to the reports: Markdown rendered by a real CommonMark/GFM
parser (markdown-it-py, with raw HTML enabled as GitHub's sanitiser sees it) has no live
element from the server; CSV cells never start a formula; a chat reply with an ``eval_count``
beyond 64 bits is still in the transcript.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from ollamakit.chat.transcript import Transcript, read_events
from ollamakit.measure.schema import RunDocument
from ollamakit.report.csv import cell, render_csv
from ollamakit.report.markdown import render_markdown
from tests.report.conftest import make_doc
from tests.security.hostile import HostileServer
from tests.support import run_program

HOSTILE_NAMES = [
    "a``<img src=x onerror=alert(1)>``b",  # closes a double-backtick span early on today's main
    "`<script>alert(1)</script>`",
    "x```<iframe src=//evil>```y",
    "pipe|name\nwith <b>newline</b>",
    '\r=HYPERLINK("http://evil")',
    "  @SUM(A1)",
]


def _live_tags(markdown: str) -> list[str]:
    """HTML tags that would reach the browser: raw HTML tokens of the parsed document."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    found: list[str] = []
    for token in md.parse(markdown):
        for child in [token, *(token.children or [])]:
            if child.type in ("html_inline", "html_block"):
                found.append(child.content)
    return found


def _doc_with(models: list[str]) -> RunDocument:
    doc = make_doc(models=models, sweep=False)
    doc["results"][0]["ok"] = False
    doc["results"][0]["error"] = "boom ``<img src=x onerror=alert(2)>`` " + models[0]
    doc["hints"] = [f"hint about {models[0]}"]
    doc["label"] = models[1]
    return doc


def test_markdown_has_no_live_html_from_the_server() -> None:
    text = render_markdown(_doc_with(HOSTILE_NAMES))
    assert _live_tags(text) == [], text
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(text)
    assert "<img" not in html and "<script" not in html and "<iframe" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown, as text


def test_markdown_tables_keep_their_shape_with_pipes_and_newlines() -> None:
    text = render_markdown(_doc_with(HOSTILE_NAMES))
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    rows: list[int] = []
    cells = 0
    for token in tokens:
        if token.type == "tr_open":
            cells = 0
        elif token.type in ("td_open", "th_open"):
            cells += 1
        elif token.type == "tr_close":
            rows.append(cells)
    assert rows and len(set(rows[: len(HOSTILE_NAMES) + 1])) == 1, rows


@pytest.mark.parametrize(
    "value",
    ["\r=cmd()", "\n=cmd()", " =cmd()", "\t+1", " \r\n@SUM(A1)", "\u3000-2+3", "=1", "@x"],
)
def test_csv_never_starts_a_formula(value: str) -> None:
    shown = cell(value)
    assert shown.startswith("'"), repr(shown)


def test_csv_with_hostile_model_names_round_trips_defused() -> None:
    text = render_csv(_doc_with(HOSTILE_NAMES))
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        for value in row.values():
            stripped = value.lstrip(" \t\r\n\u3000")
            assert not re.match(r"[=+\-@]", stripped) or value.startswith("'"), value
            assert value[:1] not in ("\t", "\r", "\n"), value


def test_a_reply_with_an_eval_count_beyond_64_bits_is_in_the_transcript(tmp_path: Path) -> None:
    transcript = Transcript.create(tmp_path, "m")
    transcript.write("reply", content="kept", stats={"eval_count": 2**70, "eval_tps": float("inf")})
    transcript.close()
    (event,) = read_events(transcript.path)
    assert event["content"] == "kept"
    assert event["stats"] == {"eval_count": 2**70, "eval_tps": None}


def test_chat_against_a_server_with_an_oversized_eval_count(
    tmp_path: Path, isolated_env: Path
) -> None:
    with HostileServer(["m:1b"], final={"eval_count": 2**70}) as server:
        result = run_program(["chat", "--base-url", server.url, "--model", "m:1b"], input="hi\n")
    assert "This is a bug" not in result.output
    assert "Hello from the hostile server." in result.stdout
    (path,) = (isolated_env / "transcripts").glob("*.jsonl")
    replies = [e for e in read_events(path) if e["event"] in ("reply", "error")]
    assert replies and "Hello from the hostile server." in replies[0]["content"]


def test_reports_written_by_a_benchmark_of_a_hostile_server(
    tmp_path: Path, suite_file: Path, start_sim: Callable[..., object]
) -> None:
    md, csv_path = tmp_path / "run.md", tmp_path / "run.csv"
    with HostileServer(HOSTILE_NAMES[:2] + HOSTILE_NAMES[4:5]) as server:
        args = ["bench", "--auto", "--base-url", server.url, "--runs", "1", "--warmup", "0"]
        args += ["--suite", str(suite_file), "--output", str(md), "--output", str(csv_path)]
        result = run_program(args)
    assert result.returncode in (0, 1), result.output
    assert _live_tags(md.read_text(encoding="utf-8")) == []
    for row in csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8"))):
        assert row[1][:1] not in ("=", "\r", "+", "-", "@"), row
