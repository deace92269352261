"""``/stats``: the session's numbers, honest about what is missing, and a path to copy whole."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from ollamakit.chat.repl import ChatApp
from ollamakit.chat.session import ChatSession, Reply, ReplyStats
from ollamakit.i18n import set_language, t

HOME = Path("/home/someone/.local/share/ollamakit")
LONG = HOME / "transcripts" / "chat-20250301-140509-llama3.2-3b.jsonl"  # 76 characters


def stats(session: ChatSession, path: Path, width: int = 80) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    app: Any = ChatApp(
        settings=None,  # type: ignore[arg-type]
        client=None,  # type: ignore[arg-type]
        session=session,
        models=[],
        transcript=SimpleNamespace(path=path),  # type: ignore[arg-type]
        out=console,
        view_factory=lambda name: None,  # type: ignore[arg-type,return-value]
    )
    app.cmd_stats("")
    return out.getvalue().splitlines()


def session_with_an_interrupted_reply() -> ChatSession:
    session = ChatSession("llama3.2:3b")
    for text in ("one", "two", "three"):
        done = ReplyStats(
            total_ms=900, ttft_ms=120, chunks=51, eval_count=50, eval_ms=800, decode_tps=63.1
        )
        session.record(text, Reply("llama3.2:3b", "answer", stats=done))
    cut = ReplyStats(total_ms=400, ttft_ms=110, chunks=23)  # no final chunk: no counts
    session.record("four", Reply("llama3.2:3b", "Once upon", interrupted=True, stats=cut))
    return session


def test_a_long_transcript_path_is_not_broken_at_80_columns() -> None:
    lines = stats(ChatSession("llama3.2:3b"), LONG)
    assert str(LONG) in lines  # on a line of its own, whole
    assert lines[lines.index(str(LONG)) - 1] == "transcript"
    assert [line for line in lines if line != line.rstrip()] == []


def test_a_short_transcript_path_stays_in_the_table() -> None:
    short = Path("/tmp/t/chat-1.jsonl")
    lines = stats(ChatSession("llama3.2:3b"), short)
    row = next(line for line in lines if line.startswith("transcript"))
    assert row.endswith(str(short))


def test_generated_tokens_say_that_interrupted_replies_are_missing() -> None:
    lines = stats(session_with_an_interrupted_reply(), LONG, width=200)
    text = "\n".join(lines)
    assert "4 (1 interrupted), 0 failed requests" in text
    assert "150 generated (interrupted replies not counted" in text

    session = ChatSession("llama3.2:3b")
    session.record("one", Reply("m", "a", stats=ReplyStats(total_ms=9, eval_count=5, eval_ms=8)))
    text = "\n".join(stats(session, LONG, width=200))
    assert "5 generated" in text and "not counted" not in text


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_labels_stay_whole_at_80_columns_when_values_are_long(language: str) -> None:
    set_language(language)
    try:
        session = session_with_an_interrupted_reply()
        session.model = "hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M"
        session.options = {"temperature": 0.7, "num_ctx": 8192, "top_p": 0.9, "seed": 42}
        session.set_system("Be brief.")
        lines = stats(session, LONG)
        labels = [t(f"chat.st_{key}") for key in ("model", "turns", "replies", "tokens")]
        labels += [t(f"chat.st_{key}") for key in ("eval_rate", "decode", "ttft", "time")]
        labels += [t(f"chat.st_{key}") for key in ("context", "options")]
        for label in labels:
            assert any(line.startswith(f"{label}  ") for line in lines), (label, lines)
        assert not any("…" in line for line in lines), lines
        assert max(cell_len(line) for line in lines if line != str(LONG)) <= 80
    finally:
        set_language("en")


def test_both_rates_are_labelled_as_in_the_benchmark_and_a_missing_one_is_left_out() -> None:
    text = "\n".join(stats(session_with_an_interrupted_reply(), LONG, width=200))
    assert "eval rate" in text and "62.5 tok/s" in text  # 150 tokens / 2.4 s
    assert "client decode (median)" in text and "63.1 tok/s" in text
    session = ChatSession("m")
    session.record("one", Reply("m", "a", stats=ReplyStats(total_ms=9, eval_count=5, eval_ms=8)))
    text = "\n".join(stats(session, LONG, width=200))
    assert "eval rate" in text and "client decode" not in text
    assert "generation speed" not in text


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_the_context_row_with_cuts_fits_80_columns(language: str) -> None:
    set_language(language)
    try:
        session = session_with_an_interrupted_reply()
        session.context.num_ctx, session.context.used_tokens, session.context.cuts = 4096, 4012, 2
        lines = stats(session, LONG)
        row = next(i for i, line in enumerate(lines) if line.startswith(f"{t('chat.st_context')} "))
        text = "".join("".join(lines[row : row + 4]).split())
        assert "4,012" in text and "4,096" in text and "/clear" in text
        assert max(cell_len(line) for line in lines if line != str(LONG)) <= 80
    finally:
        set_language("en")
