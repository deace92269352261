"""The chat says when the server cut the history to fit the context (Ollama does it without a
word): the real program, piped, against a simulator whose model has a small ``num_ctx``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ollamakit.sim import ModelSpec, SimConfig, count_tokens
from tests.support import assert_no_traceback, run_program

from .conftest import Chat, only_transcript, spawn_chat

REPLY = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
QUESTION = "alpha bravo charlie delta echo foxtrot golf hotel india juliet"  # 10 tokens
CTX = 60


def _sim(start_sim: Any, version: str, **kwargs: Any) -> Any:
    model = ModelSpec(
        "tiny:1b",
        reply=REPLY,
        reply_tokens=count_tokens(REPLY),
        context_length=CTX,
        load_ms=1,
        warm_load_ms=0,
        eval_tps=2_000,
        prompt_tps=100_000,
        **kwargs,
    )
    return start_sim(SimConfig(models=(model,), version=version))


def _counts(sim: Any) -> list[int]:
    return [r.prompt_eval_count for r in sim.requests() if r.path == "/api/chat"]


def _chat(sim: Any, lines: list[str], env: dict[str, str] | None = None) -> Any:
    result = run_program(
        ["chat", "--base-url", sim.url, "--model", "tiny"], input="\n".join(lines) + "\n", env=env
    )
    assert result.returncode == 0, result.output
    assert_no_traceback(result)
    return result


@pytest.mark.parametrize("version", ["0.12.4", "0.30.0", "0.33.0"])
def test_a_history_cut_to_fit_the_context_is_said_once_with_the_fix(
    start_sim: Any, isolated_env: Path, version: str
) -> None:
    sim = _sim(start_sim, version)
    result = _chat(sim, [QUESTION] * 5 + ["/stats"])
    assert result.stdout == f"{REPLY}\n" * 5  # replies only: the notice is on stderr
    counts = _counts(sim)
    if version != "0.30.0":  # 0.30.0 counts the uncached tokens only
        # 10, 35, 60 fit; then the oldest messages go and the prompt stops growing
        assert counts == [10, 35, 60, 60, 60], counts
    err = " ".join(result.stderr.split())
    notice = (
        f"⚠ The server dropped the oldest messages to fit the model's context ({CTX} tokens): "
        "the model no longer sees the start of this chat. /clear starts afresh; "
        "/set num_ctx 8192 gives it more room (the model reloads)."
    )
    assert err.count(notice) == 1, result.stderr
    # 0.30.0 counts only the uncached prompt tokens: the cut is known from the context size
    # and the sum of what was sent, one turn later (the 5th reply's)
    cuts = 1 if version == "0.30.0" else 2
    if cuts == 2:
        assert "Older messages dropped again to fit the context (2 times so far; /stats)" in err
    assert f"the server dropped the oldest messages {cuts} times" in err  # /stats
    assert f"of {CTX} tokens after the last complete reply" in err
    events = only_transcript(isolated_env)
    noted = [e for e in events if e["event"] == "context_cut"]
    assert [e["cuts"] for e in noted] == list(range(1, cuts + 1)) and noted[0]["num_ctx"] == CTX
    kinds = [e["event"] for e in events]
    replies = [i for i, k in enumerate(kinds) if k == "reply"]
    # said after the reply whose request was cut, not before: the first three fitted
    assert replies[3 if cuts == 2 else 4] < kinds.index("context_cut")


@pytest.mark.parametrize("version", ["0.12.4", "0.33.0"])
def test_no_notice_while_the_history_fits_or_after_clear_or_a_larger_num_ctx(
    start_sim: Any, version: str
) -> None:
    sim = _sim(start_sim, version)
    fits = _chat(sim, [QUESTION] * 3 + ["/clear"] + [QUESTION] * 3)
    assert "⚠" not in fits.stderr, fits.stderr
    assert _counts(sim) == [10, 35, 60] * 2
    larger = _chat(sim, ["/set num_ctx 256", *[QUESTION] * 5])
    assert "⚠" not in larger.stderr, larger.stderr
    assert _counts(sim)[-5:] == [10, 35, 60, 85, 110]


def test_zh_tw_notice(start_sim: Any) -> None:
    sim = _sim(start_sim, "0.33.0")
    result = _chat(sim, [QUESTION] * 4, env={"OLLAMAKIT_LANG": "zh-TW"})
    err = "".join(result.stderr.split())
    assert "伺服器為了放進模型的上下文（60個token）已丟棄最早的訊息" in err, result.stderr
    assert "/setnum_ctx8192可給它更多空間" in err


def test_at_a_terminal_the_notice_follows_the_reply_of_the_cut_request(start_sim: Any) -> None:
    sim = _sim(start_sim, "0.33.0")
    child = spawn_chat(sim.url, "--model", "tiny")
    try:
        chat = Chat(child)
        chat.prompt()
        for _ in range(3):
            chat.say(QUESTION, "fifteen")
        chat.send(QUESTION)
        child.expect_exact("fifteen")
        child.expect_exact("first token")
        chat.prompt()
        # the notice wraps at the terminal's width, each row with its own colour codes
        shown = " ".join(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before).split())
        assert "The server dropped the oldest messages to fit the model's context" in shown
        assert "/set num_ctx 8192 gives it more room" in shown
        assert chat.bye() == 0
    finally:
        if child.isalive():
            child.terminate(force=True)
