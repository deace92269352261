"""``chat --auto`` sends an explicit ``think`` with the bench's plan: off where the model allows
it, "low" for gpt-oss (with a notice), so the first-token column is the answer's. The real
program against ``--preset real-world`` under an old (0.12.4: unset think puts the reasoning
inside the content) and the newest profile (unset think = thinking on)."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import pexpect
import pytest
from rich.cells import cell_len

from ollamakit.i18n import set_language, t
from ollamakit.sim import SimConfig
from ollamakit.sim.config import preset_models
from tests.support import assert_no_traceback, run_program

SPEED = 20  # every delay of the preset divided by 20


def _specs() -> dict[str, Any]:
    return {m.name: m for m in preset_models("real-world")}


def _cell_ms(text: str) -> float:
    value, unit = text.split()[-2:]
    return float(value.replace(",", "")) * (1000.0 if unit == "s" else 1.0)


@pytest.mark.parametrize("version", ["0.12.4", "0.33.0"])
def test_auto_sends_think_off_or_low_and_times_the_answer(start_sim: Any, version: str) -> None:
    sim = start_sim(SimConfig(models=preset_models("real-world"), version=version, speed=SPEED))
    result = run_program(
        ["chat", "--auto", "--base-url", sim.url], env={"GREETING_TIMEOUT_SECONDS": "30"}
    )
    assert result.returncode == 0, result.output
    assert_no_traceback(result)
    sent = {r.model: r for r in sim.requests() if r.path == "/api/chat"}
    assert {m: r.body.get("think", "unset") for m, r in sent.items()} == {
        "llama3.2:3b": False,
        "qwen2.5:0.5b": False,
        "deepseek-r1:1.5b": False,
        "gpt-oss:20b": "low",
        "gemma3:27b": False,
    }
    assert 'gpt-oss:20b cannot turn thinking off (gpt-oss): sending think "low" instead.' in (
        " ".join(result.stdout.split())
    )
    specs = _specs()
    # deepseek-r1 thinks no more: no reasoning generated, none in the content (0.12.4 would
    # have sent it there, between <think> tags, and the first token would have been the tag)
    assert sent["deepseek-r1:1.5b"].eval_count == specs["deepseek-r1:1.5b"].reply_tokens
    assert "<think>" not in result.stdout
    # gpt-oss still thinks ("low"); its first-token cell is the answer's, after the thinking
    gpt = specs["gpt-oss:20b"]
    assert sent["gpt-oss:20b"].eval_count == gpt.thinking_tokens + gpt.reply_tokens
    row = next(
        line.split()
        for line in result.stdout.splitlines()
        if line.startswith("gpt-oss:20b ") and " ok " in line  # the table's row
    )
    ttft_ms = _cell_ms(" ".join(row[2:4]))  # model, status, first token (value, unit), ...
    thinking_done_ms = (gpt.load_ms + gpt.thinking_tokens * 1000 / gpt.eval_tps) / SPEED
    assert ttft_ms >= thinking_done_ms, (row, thinking_done_ms)


def test_auto_think_on_is_sent_as_asked(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=preset_models("real-world"), speed=SPEED))
    result = run_program(
        ["chat", "--auto", "--base-url", sim.url, "--model", "deepseek-r1", "--think", "on"]
    )
    assert result.returncode == 0, result.output
    (request,) = [r for r in sim.requests() if r.path == "/api/chat"]
    assert request.body["think"] is True
    bad = run_program(["chat", "--auto", "--base-url", sim.url, "--think", "maybe"])
    assert bad.returncode == 2 and "maybe" in bad.stderr


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_auto_table_with_both_rates_fits_80_columns(start_sim: Any, language: str) -> None:
    sim = start_sim(SimConfig(models=preset_models("real-world"), speed=SPEED))
    env = {**os.environ, "TERM": "dumb", "NO_COLOR": "1", "OLLAMAKIT_LANG": language}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ollamakit", "chat", "--auto", "--base-url", sim.url],
        env=env,
        encoding="utf-8",
        dimensions=(40, 80),
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", child.before).replace("\r", "")
    lines = text.splitlines()
    set_language(language)
    try:
        start = max(i for i, line in enumerate(lines) if set(line.strip()) == {"─"}) - 2
        table = lines[start : start + 8]
        header = " ".join(" ".join(table[:2]).split())
        for key in ("chat.col_eval_rate", "chat.col_decode"):  # the bench's labels
            for word in t(key).split():
                assert word in header, (word, table)
    finally:
        set_language("en")
    assert max(cell_len(line) for line in lines) <= 80, text


def test_chat_think_option_is_the_first_think_command(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=preset_models("real-world"), speed=SPEED))
    result = run_program(
        ["chat", "--base-url", sim.url, "--model", "deepseek-r1", "--think", "off"],
        input="Why?\n",
    )
    assert result.returncode == 0, result.output
    (request,) = [r for r in sim.requests() if r.path == "/api/chat"]
    assert request.body["think"] is False
    assert "Thinking off." in result.stderr
    plain = run_program(["chat", "--base-url", sim.url, "--model", "deepseek-r1"], input="Hi\n")
    assert plain.returncode == 0, plain.output
    assert "think" not in [r for r in sim.requests() if r.path == "/api/chat"][-1].body
