"""One id for a prompt everywhere, and ``--prompt`` / ``--category`` (issue 11).

Through the real command against the simulator: the picker shows the ids the tables show,
the filters pick prompts with and without ``--auto``, and a name the suite lacks is a usage
error that lists what exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ollamakit.bench.suites import default_suite
from ollamakit.cli import main
from ollamakit.errors import ExitStatus
from ollamakit.i18n import set_language
from ollamakit.sim import SimConfig
from ollamakit.ui.terminal import Terminal
from tests.support import assert_no_traceback, run_program

from .conftest import FAST

QUICK = ("--runs", "1", "--warmup", "0", "--num-predict", "4", "--no-save")


def _prompt_ids(path: Path) -> list[str]:
    doc = json.loads(path.read_text("utf-8"))
    return sorted({r["prompt_id"] for r in doc["results"]})


def test_default_suite_categories_are_the_prompt_ids() -> None:
    suite = default_suite()
    assert suite.categories == [p.id for p in suite.prompts]
    assert "long-summary" in suite.categories and "zh-tw" in suite.categories


def test_auto_with_prompt_and_category_runs_only_those(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    out = tmp_path / "run.json"
    result = run_program(
        [
            *("bench", "--base-url", sim.url, "--auto", *QUICK),
            *("--prompt", "greeting", "--category", "zh-tw", "--output", str(out)),
        ]
    )
    assert_no_traceback(result)
    assert result.returncode == 0, result.output
    assert _prompt_ids(out) == ["greeting", "zh-tw"]
    assert "1 model(s) × 2 prompt(s)" in result.stderr


def test_unknown_prompt_is_a_usage_error_listing_the_prompts(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    result = run_program(["bench", "--base-url", sim.url, "--auto", *QUICK, "--prompt", "zh-TW"])
    assert_no_traceback(result)
    assert result.returncode == int(ExitStatus.ERROR)
    assert "--prompt zh-TW" in result.stderr
    assert "greeting, coding, reasoning, long-summary, zh-tw" in result.stderr
    assert sim.requests() == []  # refused before anything was sent


def test_unknown_category_lists_the_categories_in_zh_tw(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    args = ["--lang", "zh-TW", "bench", "--base-url", sim.url, "--auto", *QUICK]
    result = run_program([*args, "--category", "long-prompt"])
    assert result.returncode == int(ExitStatus.ERROR)
    assert "沒有這個類別" in result.stderr
    assert "long-summary" in result.stderr


def _interactive(url: str, answers: str, *extra: str, language: str = "en") -> Terminal:
    set_language(language)
    terminal = Terminal.for_test(width=100, isatty=True, stdin=answers, language=language)
    status = main(
        ["--lang", language, "bench", "--base-url", url, *QUICK, *extra], terminal=terminal
    )
    assert status == 0, terminal.stderr.file.getvalue()  # type: ignore[attr-defined]
    return terminal


def test_picker_shows_the_ids_the_tables_show(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    # Enter: every model; 4: the fourth category.
    terminal = _interactive(sim.url, "\n4\n")
    menu = terminal.stderr.file.getvalue()  # type: ignore[attr-defined]
    table = terminal.stdout.file.getvalue()  # type: ignore[attr-defined]
    assert "4) long-summary — summary of a long report" in menu
    assert "5) zh-tw — " in menu
    assert "long-prompt" not in menu and "zh-TW" not in menu
    assert "long-summary" in table and "greeting" not in table
    chats = [r for r in sim.requests() if r.path == "/api/chat"]
    assert chats
    assert all(
        "Summarise the following annual report" in r.body["messages"][-1]["content"] for r in chats
    )


def test_picker_in_zh_tw_translates_category_descriptions(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    terminal = _interactive(sim.url, "\n1\n", language="zh-TW")
    menu = terminal.stderr.file.getvalue()  # type: ignore[attr-defined]
    assert "long-summary（長篇報告摘要" in menu
    assert "zh-tw（繁體中文提示詞）" in menu


def test_filters_skip_the_category_menu(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    terminal = _interactive(sim.url, "\n", "--prompt", "coding")
    menu = terminal.stderr.file.getvalue()  # type: ignore[attr-defined]
    assert "Prompt categories" not in menu
    table = terminal.stdout.file.getvalue()  # type: ignore[attr-defined]
    assert "coding" in table and "greeting" not in table
