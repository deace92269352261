"""A chat longer than the runner's ``num_ctx`` is cut from the front, whole messages at a time,
as Ollama's ``server/prompt.go`` does: the system prompt and the latest message stay, and the
reply's ``prompt_eval_count`` counts only what was kept. Over real HTTP, under the old
(≤ 0.15.4, history grown from the back) and the new (0.15.5+, dropped from the front) rule."""

from __future__ import annotations

from typing import Any

import pytest

from ollamakit.sim import ModelSpec, SimConfig, count_tokens

from .conftest import raw

SYSTEM = "Answer in one short sentence please."  # 7 tokens
WORDS = " ".join(f"w{i}" for i in range(20))  # 20 tokens per old message


def _model(**kwargs: Any) -> ModelSpec:
    return ModelSpec(
        "small:1b",
        context_length=64,
        template_tokens=4,
        load_ms=1,
        warm_load_ms=0,
        prompt_tps=100_000,
        eval_tps=5_000,
        reply="Fine.",
        reply_tokens=2,
        **kwargs,
    )


def _chat(url: str, messages: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    body = {"model": "small:1b", "messages": messages, "stream": False, **extra}
    reply = raw(url, "POST", "/api/chat", body=body)
    assert reply.status == 200, reply.lines
    line: dict[str, Any] = reply.lines[0]
    return line


def _history(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM}]
    for _ in range(turns):
        messages += [
            {"role": "user", "content": WORDS},
            {"role": "assistant", "content": WORDS},
        ]
    return [*messages, {"role": "user", "content": "last one"}]


@pytest.mark.parametrize("version", ["0.12.4", "0.33.0"])
def test_a_history_over_num_ctx_loses_its_oldest_messages(start_sim, version: str) -> None:
    sim = start_sim(SimConfig(models=(_model(),), version=version))
    fits = _chat(sim.url, _history(1))
    # 4 template + 7 system + 20 + 20 + 2 = 53 <= 64: everything was evaluated
    assert fits["prompt_eval_count"] == 4 + count_tokens(SYSTEM) + 40 + 2
    # Two more turns make 4 + 7 + 120 + 2 = 133 > 64: the oldest messages go, whole, until the
    # rest fits: the system prompt (kept), the last exchange and the new message.
    cut = _chat(sim.url, _history(3))
    assert cut["prompt_eval_count"] == fits["prompt_eval_count"]
    # A shorter message before the last exchange fits too (4 + 7 + 10 + 40 + 2 = 63); the one
    # before it would not, and is dropped whole (no part of a message is kept).
    odd = _history(3)
    odd[4]["content"] = " ".join(WORDS.split()[:10])
    assert _chat(sim.url, odd)["prompt_eval_count"] == 4 + count_tokens(SYSTEM) + 10 + 40 + 2


@pytest.mark.parametrize("version", ["0.12.4", "0.33.0"])
def test_the_latest_message_is_always_kept(start_sim, version: str) -> None:
    sim = start_sim(SimConfig(models=(_model(),), version=version))
    long = " ".join(f"x{i}" for i in range(80))  # alone longer than num_ctx
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": WORDS},
        {"role": "assistant", "content": WORDS},
        {"role": "user", "content": long},
    ]
    reply = _chat(sim.url, messages)
    assert reply["prompt_eval_count"] == 4 + count_tokens(SYSTEM) + 80
    # The new rule keeps the system prompt beside it; the old one (a quirk of its loop) loses
    # it when the system message is the one that did not fit: right before the latest.
    alone = _chat(sim.url, [messages[0], messages[-1]])
    system = count_tokens(SYSTEM) if version == "0.33.0" else 0
    assert alone["prompt_eval_count"] == 4 + system + 80


def test_a_larger_num_ctx_keeps_the_whole_history(start_sim) -> None:
    sim = start_sim(SimConfig(models=(_model(),)))
    whole = _chat(sim.url, _history(3), options={"num_ctx": 256})
    assert whole["prompt_eval_count"] == 4 + count_tokens(SYSTEM) + 120 + 2


@pytest.mark.parametrize(("version", "cut"), [("0.12.5", True), ("0.12.6", False)])
def test_truncate_false_keeps_everything_from_0_12_6(start_sim, version: str, cut: bool) -> None:
    """``truncate`` came in 0.12.6; before, the field is ignored and the history is cut."""
    sim = start_sim(SimConfig(models=(_model(),), version=version))
    reply = _chat(sim.url, _history(3), truncate=False)
    kept = 40 if cut else 120
    assert reply["prompt_eval_count"] == 4 + count_tokens(SYSTEM) + kept + 2
