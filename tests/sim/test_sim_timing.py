"""Scripted timing as a client sees it over real HTTP, and durations that agree with it.

Tolerances are generous (CI machines are noisy), but tight enough that a simulator ignoring its
script, drifting, or reporting made-up durations fails.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time

import httpx

from ollamakit.sim import ModelSpec, SimConfig, ThreadedSim, generate_prompt_tokens

from .conftest import raw

MS = 1_000_000
PROMPT = " ".join(["word"] * 400)  # 400 tokens

SCRIPTED = ModelSpec(
    "timed:1b",
    load_ms=300,
    warm_load_ms=2,
    prompt_tps=2_000,  # 400 tokens -> 200 ms prefill
    eval_tps=50,  # 20 ms per chunk
    reply_tokens=25,
)


def stream(url: str, body: dict[str, object]) -> tuple[float, list[float], dict[str, int]]:
    """(TTFT s, arrival times of every line, final chunk) measured by the client."""
    arrivals: list[float] = []
    final: dict[str, int] = {}
    with httpx.Client(timeout=30) as client:
        start = time.perf_counter()
        with client.stream("POST", url + "/api/generate", json=body) as reply:
            for line in reply.iter_lines():
                if line:
                    arrivals.append(time.perf_counter())
                    data = httpx.Response(200, content=line).json()
                    if data.get("done"):
                        final = data
    return arrivals[0] - start, arrivals, final


def test_ttft_interval_and_reported_durations_follow_the_script(start_sim) -> None:
    sim: ThreadedSim = start_sim(SimConfig(models=(SCRIPTED,)))
    body = {"model": "timed:1b", "prompt": PROMPT}
    prompt_tokens = generate_prompt_tokens(PROMPT)
    assert prompt_tokens == 400

    # Cold: TTFT = load 300 ms + prefill 200 ms.
    ttft, arrivals, final = stream(sim.url, body)
    assert 0.45 < ttft < 0.75, ttft
    assert 290 * MS <= final["load_duration"] < 450 * MS
    assert 190 * MS <= final["prompt_eval_duration"] < 300 * MS
    assert final["prompt_eval_count"] == prompt_tokens

    gaps = [b - a for a, b in itertools.pairwise(arrivals[:-1])]  # token chunks
    assert 0.017 < statistics.median(gaps) < 0.025, statistics.median(gaps)
    # Absolute deadlines: the whole run does not drift even if single sleeps are late.
    span = arrivals[-2] - arrivals[0]
    assert 0.9 * 24 * 0.020 < span < 1.2 * 24 * 0.020, span

    tps = final["eval_count"] / final["eval_duration"] * 1e9
    assert final["eval_count"] == 25
    # eval_duration spans first to last chunk: 24 intervals for 25 tokens, like llama.cpp.
    assert 45 < tps < 60, tps
    assert final["eval_duration"] / 1e9 == pytest_approx(span, 0.02)
    assert final["total_duration"] >= (
        final["load_duration"] + final["prompt_eval_duration"] + final["eval_duration"]
    )
    # The server's total fits inside what the client saw; the rest is connect/send/parse time.
    client_total = arrivals[-1] - (arrivals[0] - ttft)
    assert 0 <= client_total - final["total_duration"] / 1e9 < 0.15

    # Warm, another prompt of the same length (no shared prefix): a few ms of load, same prefill.
    other = {"model": "timed:1b", "prompt": "other " + " ".join(["word"] * 399)}
    ttft_warm, _, warm = stream(sim.url, other)
    assert 0.18 < ttft_warm < 0.35, ttft_warm
    assert warm["load_duration"] < 20 * MS

    # The same prompt again: its prefix is in the slot's cache. The count still has every
    # token; the duration covers only the one token that is always evaluated (as Ollama).
    ttft_cached, _, cached = stream(sim.url, other)
    assert ttft_cached < 0.1, ttft_cached
    assert cached["prompt_eval_count"] == 400
    assert cached["prompt_eval_duration"] < 60 * MS  # vs 200 ms for the whole prompt


def pytest_approx(value: float, abs_tol: float) -> object:
    import pytest

    return pytest.approx(value, abs=abs_tol)


def test_speed_scales_every_delay(start_sim) -> None:
    sim = start_sim(SimConfig(models=(SCRIPTED,), speed=10))
    ttft, _, final = stream(sim.url, {"model": "timed:1b", "prompt": PROMPT})
    assert 0.03 < ttft < 0.12, ttft  # (300 + 200) ms / 10
    assert 30 * MS <= final["load_duration"] < 120 * MS
    tps = final["eval_count"] / final["eval_duration"] * 1e9
    # 50 tok/s * 10 = 500, 2 ms a token: a late first token on a busy machine shortens the
    # measured window (later tokens keep their deadlines), so only the tenfold scaling is
    # checked (unscaled it would be 50).
    assert 350 < tps < 1000, tps


def run_concurrently(sim: ThreadedSim, model: str, n: int) -> list[tuple[int, int]]:
    """``n`` streaming requests at once; each one's (first chunk, last chunk) on the server."""
    threads = [
        threading.Thread(
            target=raw,
            args=(sim.url, "POST", "/api/generate"),
            kwargs={"body": {"model": model, "prompt": "x"}},
        )
        for _ in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    windows = []
    for record in sim.requests():
        assert record.first_chunk_ns is not None and record.last_chunk_ns is not None
        windows.append((record.first_chunk_ns, record.last_chunk_ns))
    return sorted(windows)


def test_num_parallel_one_serialises_requests(start_sim) -> None:
    model = ModelSpec(
        "serial:1b", load_ms=0, warm_load_ms=0, prompt_tps=1e9, eval_tps=100, reply_tokens=10
    )
    sim = start_sim(SimConfig(models=(model,), num_parallel=1))
    windows = run_concurrently(sim, "serial:1b", 3)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start >= end  # the next one starts streaming only after the previous finished


def test_num_parallel_two_overlaps(start_sim) -> None:
    model = ModelSpec(
        "par:1b", load_ms=0, warm_load_ms=0, prompt_tps=1e9, eval_tps=100, reply_tokens=40
    )  # 400 ms a reply: the second thread's request still starts inside the first one's
    sim = start_sim(SimConfig(models=(model,), num_parallel=2))
    (_, a_end), (b_start, _) = run_concurrently(sim, "par:1b", 2)
    assert b_start < a_end  # both streams ran at the same time
