"""Issue 9, item 1 (thinking under control), through ``ollamakit bench`` and the runner.

The bench sends an explicit ``think`` to every model: ``false`` by default, ``"low"`` to
gpt-oss (which cannot turn thinking off, said in one line), the ``--think`` value otherwise,
refused (exit 2, nothing sent) where the server's version would answer 400. What was sent is
read from the simulator's request log and from the run's config; replies that spend the whole
``num_predict`` budget thinking get a hint instead of a silent empty TTFT cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ollamakit.bench.runner import BenchPlan
from ollamakit.bench.suites import Prompt, Suite
from ollamakit.errors import ExitStatus
from ollamakit.sim import SimConfig
from ollamakit.sim.config import default_models, real_world_models

from .conftest import run_plan
from .test_select_cli import bench, chats, document


def sim_at(start_sim: Any, version: str) -> Any:
    return start_sim(SimConfig(models=real_world_models(), version=version, speed=20))


@pytest.mark.parametrize("version", ["0.12.4", "0.33.0"])
def test_default_is_think_false_and_gpt_oss_gets_low_with_a_notice(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    sim = sim_at(start_sim, version)
    out = tmp_path / "run.json"
    result = bench(sim, tmp_path, "--auto", "--num-predict", "128", "--output", str(out))
    assert result.returncode == ExitStatus.OK, result.output
    assert 'gpt-oss:20b cannot turn thinking off (gpt-oss): sending think "low"' in result.stderr
    sent = {r.model: r.body.get("think", "unset") for r in chats(sim)}
    assert sent["gpt-oss:20b"] == "low"
    assert sent["deepseek-r1:1.5b"] is False and sent["llama3.2:3b"] is False
    doc = document(out)
    assert doc["config"]["think"] == "off"
    assert doc["config"]["think_sent"]["gpt-oss:20b"] == "low"
    assert doc["config"]["think_sent"]["deepseek-r1:1.5b"] is False
    rows = {r["model"]: r for r in doc["results"]}
    # With thinking off, deepseek-r1 answers at once: a TTFT, no thinking chunks.
    assert rows["deepseek-r1:1.5b"]["ttft_ms"] is not None
    assert rows["deepseek-r1:1.5b"]["thinking_chunks"] == 0
    assert rows["gpt-oss:20b"]["thinking_chunks"] > 0  # it thinks anyway, apart from TTFT
    assert "before any answer text" not in result.output


@pytest.mark.parametrize("version", ["0.12.4", "0.33.0"])
def test_replies_capped_while_thinking_get_a_hint(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    sim = sim_at(start_sim, version)
    out = tmp_path / "run.json"
    result = bench(
        sim, tmp_path, "--auto", "--model", "deepseek-r1", "--think", "on", "--output", str(out)
    )  # --num-predict 8: all of it goes to the 40 thinking tokens
    assert result.returncode == ExitStatus.OK, result.output
    assert [r.body["think"] for r in chats(sim)] == [True]
    hint = "deepseek-r1:1.5b: 1 of 1 replies used the whole --num-predict budget thinking"
    assert hint in result.output
    assert "raise --num-predict or use --think off" in result.output
    doc = document(out)
    assert doc["config"]["think"] == "on"
    assert doc["results"][0]["ttft_ms"] is None and doc["results"][0]["done_reason"] == "length"
    assert any(hint in h for h in doc["hints"])


@pytest.mark.parametrize(
    ("version", "args", "refused"),
    [
        ("0.17.0", ("--think", "high", "--model", "deepseek-r1:1.5b"), "needs Ollama 0.18"),
        ("0.17.0", ("--think", "max", "--model", "gpt-oss:20b"), "needs Ollama 0.22"),
        ("0.22.0", ("--think", "max", "--model", "deepseek-r1:1.5b"), None),
        ("0.17.0", ("--think", "high", "--model", "gpt-oss:20b"), None),  # gpt-oss takes levels
        ("0.33.0", ("--think", "medium", "--model", "deepseek-r1:1.5b"), None),
    ],
)
def test_think_levels_are_gated_on_the_server_version(
    start_sim: Any, tmp_path: Path, version: str, args: tuple[str, ...], refused: str | None
) -> None:
    sim = sim_at(start_sim, version)
    out = tmp_path / "run.json"
    result = bench(sim, tmp_path, "--auto", "--num-predict", "128", "--output", str(out), *args)
    if refused is not None:
        assert result.returncode == ExitStatus.ERROR, result.output
        assert refused in result.stderr and f"this server is {version}" in result.stderr
        assert chats(sim) == []
        return
    assert result.returncode == ExitStatus.OK, result.output
    level = args[1]
    assert [r.body["think"] for r in chats(sim)] == [level]
    assert all(r.status == 200 for r in chats(sim))
    assert document(out)["config"]["think"] == level


def test_a_think_level_on_a_model_that_cannot_think_sends_false(
    start_sim: Any, tmp_path: Path
) -> None:
    sim = sim_at(start_sim, "0.33.0")
    result = bench(sim, tmp_path, "--auto", "--think", "high", "--model", "qwen2.5:0.5b")
    assert result.returncode == ExitStatus.OK, result.output
    assert [r.body["think"] for r in chats(sim)] == [False]  # true would be a 400


def test_a_bad_think_value_exits_2_before_contacting_the_server(tmp_path: Path) -> None:
    result = bench(type("S", (), {"url": "http://127.0.0.1:9"})(), tmp_path, "--think", "loud")
    assert result.returncode == ExitStatus.ERROR
    assert "--think loud: one of off, on, low, medium, high, max." in result.stderr


@pytest.mark.parametrize("version", ["0.12.4", "0.33.0"])
def test_reasoning_in_think_tags_is_not_answer_ttft(start_sim: Any, version: str) -> None:
    # Without a think value (a plan from before --think), Ollama 0.12.0-0.12.4 puts
    # deepseek-r1's reasoning inside the content between <think> tags; 0.12.5+ sends it as
    # thinking. Either way the recorder must time the answer, not the reasoning.
    r1 = next(m for m in default_models() if m.name == "deepseek-r1:1.5b")
    sim = start_sim(SimConfig(models=(r1,), version=version, speed=20))
    suite = Suite(name="one", prompts=(Prompt("hi", "greeting", "Hello there!"),), num_predict=256)
    plan = BenchPlan(models=("deepseek-r1:1.5b",), suite=suite, runs=1, warmup=0)
    doc = run_plan(sim.url, plan)
    sent = chats(sim)
    assert "think" not in sent[0].body
    row = doc["results"][0]
    assert row["ok"], row
    assert row["thinking_chunks"] >= 40  # the sim's 40 thinking tokens (+ the tags on 0.12.4)
    assert row["ttft_thinking_ms"] is not None and row["ttft_ms"] is not None
    assert row["ttft_ms"] > row["ttft_thinking_ms"]
