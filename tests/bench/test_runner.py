"""The runner against the simulator: scripted timing comes back, failures become rows."""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any

import pytest

from ollamakit.bench.runner import BenchPlan
from ollamakit.bench.suites import Prompt, Suite
from ollamakit.measure.recorder import PROMPT_TPS_MIN_TOKENS
from ollamakit.measure.schema import RequestResult, RunDocument
from ollamakit.sim import FaultKind, ModelSpec, SimConfig

from .conftest import FAST, ONE_PROMPT, faulty, run_plan

SCRIPTED = ModelSpec(
    "scripted:1b",
    load_ms=150,
    warm_load_ms=5,
    prompt_tps=1_000,
    eval_tps=100,
    reply_tokens=25,
)


def test_scripted_timing_comes_back(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(SCRIPTED,)))
    plan = BenchPlan(models=("scripted:1b",), suite=ONE_PROMPT, runs=3, warmup=1)
    doc = run_plan(sim.url, plan)

    assert doc["status"] == "complete"
    assert doc["server"]["version"] == sim.config.version
    assert doc["server"]["rtt_ms"]["median"] is not None
    [cold] = doc["cold_loads"]
    assert cold["load_ms"] == pytest.approx(150, abs=40)

    assert len(doc["results"]) == 3
    scripted_ttft_ms: list[float] = []
    for r in doc["results"]:
        assert r["ok"], r["error"]
        count, prompt_count = r["eval_count"], r["prompt_eval_count"]
        assert count == 25
        assert prompt_count is not None and prompt_count > 5
        # TTFT = warm load + prefill (prompt tokens / prompt_tps) on the script's clock.
        scripted_ttft_ms.append(5 + prompt_count / 1_000 * 1_000)
        # server rates are exactly count / duration
        assert r["eval_tps"] == pytest.approx(count / (r["eval_ms"] / 1000), rel=1e-6)
        # a short prompt: Ollama's count includes the cached template prefix, no honest rate
        assert prompt_count < PROMPT_TPS_MIN_TOKENS
        assert (r["prompt_tps"], r["prompt_tps_absent"]) == (None, "short_prompt")
        assert r["load_ms"] is not None and r["load_ms"] < 50  # warm
        assert r["total_ms"] > r["server_total_ms"] - 1  # clock granularity only
        assert r["network_ms"] == pytest.approx(r["total_ms"] - r["server_total_ms"], abs=1e-5)
        assert r["done_reason"] == "stop"
    # The client's own figures, as medians of the three runs: one read delayed by a busy
    # machine moves one run's stamps (a late first token shortens its decode window), not two.
    # (generous: simulator and client share this process, and CI machines are busy)
    results = doc["results"]
    ttft_error_ms = [r["ttft_ms"] - want for r, want in zip(results, scripted_ttft_ms, strict=True)]
    assert statistics.median(ttft_error_ms) == pytest.approx(0, abs=30)
    # the decode rate the client saw is the script's rate
    assert statistics.median(r["e2e_tps"] for r in results) == pytest.approx(100, rel=0.15)
    assert statistics.median(r["tpot_ms"] for r in results) == pytest.approx(10, rel=0.15)
    assert statistics.median(r["itl_ms"]["p50"] for r in results) == pytest.approx(10, abs=3)

    [row] = doc["summary"]
    assert (row["n"], row["ok"], row["failed"]) == (3, 3, 0)
    assert row["e2e_tps"]["median"] == pytest.approx(100, rel=0.15)


def test_prompts_carry_a_run_marker_and_fixed_options(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    plan = BenchPlan(models=("fast:1b",), suite=ONE_PROMPT, runs=3, warmup=1)
    run_plan(sim.url, plan)
    bodies = [r.body for r in sim.requests() if r.path == "/api/chat"]
    assert len(bodies) == 4
    firsts = [b["messages"][0]["content"] for b in bodies]
    assert len(set(firsts)) == 4  # no two requests share a prefix
    assert all(f.startswith("[bench ") and f.endswith("Hello there, how are you?") for f in firsts)
    for body in bodies:
        assert body["stream"] is True
        assert body["options"] == {"temperature": 0.0, "seed": 42, "num_predict": 256}


def test_thinking_model_reports_thinking_apart(start_sim: Any) -> None:
    # 20 ms a token: the thinking (120 ms) and the answer arrive in distinct reads even when a
    # busy machine delays the client's reads by tens of milliseconds.
    thinker = dataclasses.replace(
        FAST, name="think:1b", thinking=True, thinking_tokens=6, eval_tps=50
    )
    sim = start_sim(SimConfig(models=(thinker,)))
    doc = run_plan(sim.url, BenchPlan(models=("think:1b",), suite=ONE_PROMPT, runs=1, warmup=0))
    [r] = doc["results"]
    assert r["ok"]
    assert r["thinking_chunks"] == 6
    assert r["ttft_thinking_ms"] is not None and r["ttft_ms"] is not None
    assert r["ttft_thinking_ms"] < r["ttft_ms"]
    assert r["eval_count"] == 6 + 8


def by_model(doc: RunDocument) -> dict[str, RequestResult]:
    return {r["model"]: r for r in doc["results"]}


def test_failures_are_recorded_per_request_and_the_run_goes_on(start_sim: Any) -> None:
    models = (
        faulty("stall:1b", FaultKind.STALL_AFTER, 2),
        faulty("busy:1b", FaultKind.BUSY),
        faulty("err:1b", FaultKind.ERROR_AFTER, 3),
        faulty("cut:1b", FaultKind.CUT_AFTER, 3),
        faulty("crash:1b", FaultKind.STATUS, 500),
        FAST,
    )
    sim = start_sim(SimConfig(models=models))
    names = ("stall:1b", "busy:1b", "err:1b", "cut:1b", "crash:1b", "nope:1b", "fast:1b")
    plan = BenchPlan(models=names, suite=ONE_PROMPT, runs=1, warmup=0, timeout_s=1.0)
    doc = run_plan(sim.url, plan)
    results = by_model(doc)
    assert doc["status"] == "complete"
    assert set(results) == set(names)

    def error(model: str) -> str:
        r = results[model]
        assert r["ok"] is False
        assert r["error"] and "\n" not in r["error"]
        assert r["total_ms"] is None and r["eval_tps"] is None
        return r["error"]

    assert "timed out after 1 s" in error("stall:1b")
    assert results["stall:1b"]["ttft_ms"] is not None  # two chunks did arrive
    assert "busy" in error("busy:1b") and "503" in error("busy:1b")
    assert "middle of the reply" in error("err:1b")
    assert "ended before it was complete" in error("cut:1b")
    assert "500" in error("crash:1b")
    assert "not on the server" in error("nope:1b")
    assert results["fast:1b"]["ok"] is True
    rows = {row["model"]: row for row in doc["summary"]}
    assert rows["busy:1b"]["failed"] == 1
    assert rows["busy:1b"]["ttft_ms"]["median"] is None  # nothing made up


def test_concurrency_sweep_and_the_num_parallel_hint(start_sim: Any) -> None:
    quick = dataclasses.replace(FAST, eval_tps=200, reply_tokens=40)  # 200 ms a request
    wide = dataclasses.replace(quick, name="wide:1b", num_parallel=8)
    sim = start_sim(SimConfig(models=(quick, wide), num_parallel=1))
    plan = BenchPlan(
        models=("fast:1b", "wide:1b"), suite=ONE_PROMPT, runs=1, warmup=1, concurrency=(1, 2, 4)
    )
    doc = run_plan(sim.url, plan)
    assert all(r["ok"] for r in doc["results"])
    counts = {(r["model"], r["concurrency"]) for r in doc["results"]}
    assert len(counts) == 6
    assert sum(1 for r in doc["results"] if r["model"] == "fast:1b" and r["concurrency"] == 4) == 4
    rows = {(row["model"], row["concurrency"]): row for row in doc["concurrency_summary"]}
    assert set(rows) == counts
    flat = [rows["fast:1b", c]["output_tps"] or 0 for c in (1, 2, 4)]
    grows = [rows["wide:1b", c]["output_tps"] or 0 for c in (1, 2, 4)]
    assert flat[2] < flat[0] * 1.5  # one slot: no gain (pipelining aside)
    assert grows[2] > grows[0] * 2  # eight slots: ~4x on a quiet machine
    # with one slot, queued requests wait: TTFT grows with concurrency
    assert (rows["fast:1b", 4]["ttft_ms"]["p95"] or 0) > (rows["fast:1b", 1]["ttft_ms"]["p95"] or 0)
    hints = doc["hints"]
    assert len(hints) == 1
    assert "fast:1b" in hints[0] and "OLLAMA_NUM_PARALLEL" in hints[0]


class RecordingSink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def begin(self, doc: RunDocument) -> None:
        self.calls.append(("begin", (doc["status"], len(doc["results"]))))

    def add(self, result: RequestResult) -> None:
        self.calls.append(("add", result["run_index"]))

    def finish(self, doc: RunDocument) -> None:
        self.calls.append(("finish", (doc["status"], len(doc["results"]))))


def test_every_result_is_handed_to_the_store(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    sink = RecordingSink()
    suite = Suite("two", (Prompt("a", "x", "one"), Prompt("b", "y", "two")))
    run_plan(sim.url, BenchPlan(("fast:1b",), suite, runs=2, warmup=1, concurrency=(1, 2)), sink)
    kinds = [k for k, _ in sink.calls]
    assert kinds[0] == "begin" and kinds[-1] == "finish"
    assert sink.calls[0][1] == ("running", 0)
    assert kinds.count("add") == 2 * 2 + 2 * 2 * 2
    assert sink.calls[-1][1] == ("complete", 12)


def test_degenerate_fast_path_gives_null_rates_not_infinity(start_sim: Any) -> None:
    instant = dataclasses.replace(FAST, name="instant:1b", eval_tps=math.inf, reply_tokens=1)
    sim = start_sim(SimConfig(models=(instant,)))
    doc = run_plan(sim.url, BenchPlan(("instant:1b",), ONE_PROMPT, runs=1, warmup=0))
    [r] = doc["results"]
    assert r["ok"]
    assert r["eval_count"] == 1
    assert r["tpot_ms"] is None and r["e2e_tps"] is None
    assert r["eval_tps"] is None  # 1 token, eval_duration 0: omitted by the server
    assert r["eval_ms"] is None


def test_each_stream_of_a_batch_has_its_own_connection(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    doc = run_plan(sim.url, BenchPlan(("fast:1b",), ONE_PROMPT, runs=2, warmup=0, concurrency=(4,)))
    assert len(doc["results"]) == 8 and all(r["ok"] for r in doc["results"])
    chats = [r for r in sim.requests() if r.path == "/api/chat"]
    assert len({r.peer for r in chats}) == 4  # four lanes, each reused by both batches
    # the lanes were opened before the level started, not inside a measured batch
    first_chat = min(r.received_ns for r in chats)
    versions = [r for r in sim.requests() if r.path == "/api/version"]
    assert sum(1 for r in versions if r.received_ns < first_chat) >= 1 + 5 + 3
