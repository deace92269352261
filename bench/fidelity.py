"""Measurement fidelity: how close are ollamakit's benchmark numbers to the truth?

Run: ``uv run python bench/fidelity.py`` (about 30 s; ``--quick`` for a smoke run).

The simulator runs in its own process (so it does not share the client's GIL) with scripted
timing: a warm load of ``warm_load_ms``, prefill at ``prompt_tps``, then one chunk every
``1 / eval_tps`` seconds, with enough parallel slots that nothing queues. The benchmark runner
then measures it exactly as ``ollamakit bench`` would, at concurrency 1 and 16, and every
request is compared with two references:

* **the script**: TTFT should be ``warm_load_ms + prompt_eval_count / prompt_tps`` plus the
  unavoidable cost of one loopback round trip and the simulator's own request handling; the
  decode rate should be ``eval_tps``.
* **the simulator's request log**: the server's ``perf_counter_ns`` when the first and last
  chunks left. On Linux ``perf_counter`` is ``CLOCK_MONOTONIC``, shared by both processes, so
  ``client first-chunk arrival − server first-chunk write`` is the instrument's own error: the
  loopback delivery plus however late the client's event loop got round to stamping the read.
  The decode-rate reference is ``(chunks − 1) / (last write − first write)`` from the log.

Reported per concurrency level: median and p95 of the TTFT error (ms) against each reference,
and median and worst absolute decode-rate error (%) of ``e2e_tps`` against each reference.
Goals (docs/performance.md, "Measurement fidelity"): median TTFT error ≤ 2 ms, rate error ≤ 1 %.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import statistics
import sys
from dataclasses import dataclass

from ollamakit.bench.runner import BenchPlan, Event, Runner
from ollamakit.bench.suites import Prompt, Suite, default_suite
from ollamakit.client import AsyncOllamaClient
from ollamakit.config import Flags, load_settings
from ollamakit.measure.schema import RequestResult, RunDocument
from ollamakit.measure.stats import percentile
from ollamakit.sim import ModelSpec, RequestRecord, SimConfig, start_subprocess

MODEL = "fidelity:1b"
SPEC = ModelSpec(
    MODEL,
    load_ms=400,  # cold: seen by the warm-up only
    warm_load_ms=2,
    prompt_tps=4_000,
    eval_tps=80,  # 12.5 ms between chunks, like a mid-size model on a GPU
    reply_tokens=48,
    num_parallel=32,  # never queue: TTFT is prefill only
)


def marker_of(content: str) -> str:
    """``"[bench ab12 #7] Hello"`` → ``"bench ab12 #7"``."""
    return content[1 : content.index("]")]


@dataclass
class Sample:
    result: RequestResult
    sent_ns: int
    record: RequestRecord


def run_level(
    url: str, suite: Suite, concurrency: int, runs: int, warmup: int
) -> tuple[RunDocument, list[Event]]:
    """One benchmark run at one level, as ``ollamakit bench`` does it; also the raw events."""
    settings = load_settings(Flags(base_url=url), environ={})
    plan = BenchPlan(
        models=(MODEL,), suite=suite, runs=runs, warmup=warmup, concurrency=(concurrency,)
    )
    events: list[Event] = []

    async def go() -> RunDocument:
        async with AsyncOllamaClient(settings, max_connections=64) as client:
            runner = Runner(
                client=client,
                plan=plan,
                base_url=settings.base_url.redacted(),
                listener=events.append,
                client_factory=lambda: AsyncOllamaClient(settings, max_connections=2),
            )
            try:
                return await runner.execute()
            finally:
                await runner.aclose()

    return asyncio.run(go()), events


def pair(events: list[Event], log: list[RequestRecord]) -> list[Sample]:
    """Each measured result with its send stamp and its server log record (by run marker)."""
    by_marker = {
        marker_of(r.body["messages"][0]["content"]): r
        for r in log
        if r.path == "/api/chat" and isinstance(r.body, dict)
    }
    return [Sample(e.result, e.sent_ns, by_marker[e.marker]) for e in events if not e.warmup]


def stats(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), percentile(values, 95) or math.nan


def report(samples: list[Sample]) -> dict[str, float]:
    ttft_vs_script = []
    ttft_vs_log = []
    rate_vs_script = []
    rate_vs_log = []
    server_rate_vs_script = []
    itl_p50 = []
    upload_ms = []
    sim_late_ms = []
    for s in samples:
        r, rec = s.result, s.record
        assert r["ok"], r["error"]
        assert r["ttft_ms"] is not None and r["e2e_tps"] is not None
        assert r["prompt_eval_count"] is not None and r["eval_count"] is not None
        scripted_ttft_ms = SPEC.warm_load_ms + r["prompt_eval_count"] / SPEC.prompt_tps * 1000
        ttft_vs_script.append(r["ttft_ms"] - scripted_ttft_ms)
        assert rec.first_chunk_ns is not None and rec.last_chunk_ns is not None
        server_ttft_ms = (rec.first_chunk_ns - s.sent_ns) / 1e6
        ttft_vs_log.append(r["ttft_ms"] - server_ttft_ms)
        upload_ms.append((rec.received_ns - s.sent_ns) / 1e6)
        sim_late_ms.append((rec.first_chunk_ns - rec.received_ns) / 1e6 - scripted_ttft_ms)
        rate_vs_script.append(abs(r["e2e_tps"] / SPEC.eval_tps - 1) * 100)
        # chunks in the log include the final done line; token chunks = eval_count
        log_rate = (r["eval_count"] - 1) / ((rec.last_chunk_ns - rec.first_chunk_ns) / 1e9)
        rate_vs_log.append(abs(r["e2e_tps"] / log_rate - 1) * 100)
        if r["eval_tps"] is not None:
            server_rate_vs_script.append(abs(r["eval_tps"] / SPEC.eval_tps - 1) * 100)
        if r["itl_ms"]["p50"] is not None:
            itl_p50.append(r["itl_ms"]["p50"])
    out: dict[str, float] = {"n": len(samples)}
    out["ttft_err_script_median"], out["ttft_err_script_p95"] = stats(ttft_vs_script)
    out["ttft_err_log_median"], out["ttft_err_log_p95"] = stats(ttft_vs_log)
    out["rate_err_script_median"] = statistics.median(rate_vs_script)
    out["rate_err_script_max"] = max(rate_vs_script)
    out["rate_err_log_median"] = statistics.median(rate_vs_log)
    out["rate_err_log_max"] = max(rate_vs_log)
    out["server_rate_err_median"] = (
        statistics.median(server_rate_vs_script) if server_rate_vs_script else math.nan
    )
    out["itl_p50_median"] = statistics.median(itl_p50) if itl_p50 else math.nan
    out["upload_median"] = statistics.median(upload_ms)
    out["sim_late_median"] = statistics.median(sim_late_ms)
    return out


def load_average() -> str:
    """The 1-minute load average: other work on the machine shows up in every figure."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    parser.add_argument("--levels", default="1,16", help="concurrency levels (default 1,16)")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    base = default_suite()
    suite = Suite(
        "fidelity",
        (
            next(p for p in base.prompts if p.id == "greeting"),
            next(p for p in base.prompts if p.id == "long-summary"),
        ),
        num_predict=None,  # the script decides the length
    )
    assert all(isinstance(p, Prompt) for p in suite.prompts)

    load_before = load_average()
    sim = start_subprocess(config=SimConfig(models=(SPEC,), num_parallel=32))
    rows: list[tuple[int, dict[str, float]]] = []
    cold: list[float | None] = []
    try:
        for i, level in enumerate(levels):
            runs = (3 if args.quick else 15) if level == 1 else (1 if args.quick else 3)
            sim.clear_requests()
            doc, events = run_level(sim.url, suite, level, runs, warmup=1 if i == 0 else 0)
            cold.extend(c["load_ms"] for c in doc.get("cold_loads", []))
            samples = pair(events, sim.requests())
            assert len(samples) == len(doc["results"]), (len(samples), len(doc["results"]))
            rows.append((level, report(samples)))
    finally:
        sim.stop()

    print(
        f"ollamakit measurement fidelity · Python {platform.python_version()} · "
        f"{platform.system()} {platform.machine()} · {os.cpu_count()} CPUs · "
        f"load average before/after {load_before} / {load_average()} · simulator in a subprocess"
    )
    print(
        f"script: warm load {SPEC.warm_load_ms:g} ms, prefill {SPEC.prompt_tps:g} tok/s, "
        f"decode {SPEC.eval_tps:g} tok/s ({1000 / SPEC.eval_tps:g} ms/token), "
        f"{SPEC.reply_tokens} tokens; prompts: greeting, long-summary (~2k tokens)"
    )
    if cold and cold[0] is not None:
        print(f"cold load (warm-up): {cold[0]:.1f} ms measured, {SPEC.load_ms:g} ms scripted")
    header = (
        f"{'conc':>4} {'n':>4} │ {'TTFT err vs script ms':>22} │ {'TTFT err vs log ms':>19} │"
        f" {'rate err vs script %':>21} │ {'rate err vs log %':>18} │ {'ITL p50 ms':>10}"
    )
    print(header)
    print(f"{'':>9} │ {'median':>10} {'p95':>11} │ {'median':>9} {'p95':>9} │"
          f" {'median':>10} {'max':>10} │ {'median':>8} {'max':>9} │")  # fmt: skip
    for level, m in rows:
        print(
            f"{level:>4} {int(m['n']):>4} │ {m['ttft_err_script_median']:>10.3f}"
            f" {m['ttft_err_script_p95']:>11.3f} │ {m['ttft_err_log_median']:>9.3f}"
            f" {m['ttft_err_log_p95']:>9.3f} │ {m['rate_err_script_median']:>10.3f}"
            f" {m['rate_err_script_max']:>10.3f} │ {m['rate_err_log_median']:>8.3f}"
            f" {m['rate_err_log_max']:>9.3f} │ {m['itl_p50_median']:>10.3f}"
        )
    print(
        "where the TTFT error vs script goes (medians, ms): "
        + "; ".join(
            f"c={lvl}: request upload {m['upload_median']:.3f}, simulator late "
            f"{m['sim_late_median']:.3f}, delivery to the client {m['ttft_err_log_median']:.3f}"
            for lvl, m in rows
        )
    )
    print(
        "server eval_tps (count / eval_duration) vs script, median error %: "
        + ", ".join(f"c={lvl}: {m['server_rate_err_median']:.2f}" for lvl, m in rows)
    )
    ok = all(
        abs(m["ttft_err_log_median"]) <= 2 and m["rate_err_script_median"] <= 1 for _, m in rows
    )
    print("goal (median TTFT error ≤ 2 ms, rate error ≤ 1 %):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
