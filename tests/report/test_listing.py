"""``ollamakit history`` at 80 and 200 columns, with realistic model names (issue 11).

Runs are made by the real benchmark against the simulator; the listing is then printed as on
a terminal of each width. Nothing that must stay whole may break: dates, the server URL,
model names.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from rich.cells import cell_len

from ollamakit.cli import main
from ollamakit.i18n import set_language
from ollamakit.sim import ModelSpec, SimConfig
from ollamakit.ui.terminal import Terminal
from tests.support import run_program

LONG = "hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M"
CODER = "qwen2.5-coder:7b-instruct-q4_K_M"
QUICK = ("--auto", "--runs", "1", "--warmup", "0", "--num-predict", "4", "--prompt", "greeting")
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def _spec(name: str) -> ModelSpec:
    return ModelSpec(name, load_ms=5, warm_load_ms=1, prompt_tps=50_000, eval_tps=2_000,
                     reply_tokens=4)  # fmt: skip


@pytest.fixture
def history(start_sim: Any) -> str:
    """Two saved runs: one with both long names and a label, one with one of them."""
    sim = start_sim(SimConfig(models=(_spec(LONG), _spec(CODER))))
    for extra in (("--label", "gpu box, q4"), ("--model", CODER)):
        result = run_program(["bench", "--base-url", sim.url, *QUICK, *extra])
        assert result.returncode == 0, result.output
    return str(sim.url)


def _listing(width: int, language: str = "en") -> str:
    set_language(language)
    terminal = Terminal.for_test(width=width, isatty=True, language=language)
    assert main(["--lang", language, "history"], terminal=terminal) == 0
    return terminal.stdout.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize("language", ["en", "zh-TW"])
@pytest.mark.parametrize("width", [80, 120, 160, 200])
def test_nothing_breaks(history: str, width: int, language: str) -> None:
    out = _listing(width, language)
    lines = out.splitlines()
    assert all(cell_len(line) <= width for line in lines), out
    assert len(DATE.findall(out)) == 2  # both dates whole
    assert sum(line.count(history) for line in lines) == 2  # the URL whole, once per run
    assert sum(line.count(LONG) for line in lines) == 1
    assert sum(line.count(CODER) for line in lines) == 2
    assert "gpu box, q4" in out
    assert "…" not in out  # nothing cut short either


def test_wide_terminal_is_one_row_per_run(history: str) -> None:
    rows = [line for line in _listing(200).splitlines() if DATE.search(line)]
    assert len(rows) == 2
    assert LONG in rows[1] and history in rows[1]  # the older run: its models on its row


def test_into_a_pipe_each_run_is_one_line(history: str) -> None:
    result = run_program(["history"])
    assert result.returncode == 0, result.output
    rows = [line for line in result.stdout.splitlines() if DATE.search(line)]
    assert len(rows) == 2
    assert all(history in row for row in rows)
    assert f"{LONG}, {CODER}" in rows[1]
