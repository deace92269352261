"""Load generator capacity: how many concurrent streams one core holds while keeping the schedule.

Run: ``uv run python bench/load_generator.py`` (under a minute; ``--quick`` for a smoke run).

The simulator runs in its own process with enough parallel slots that nothing queues, and a
model whose replies last ``STREAM_S`` (``CHUNKS`` chunks at a fixed pace). The load engine
and driver of ``ollamakit load`` then send Poisson arrivals at ``rate = streams / STREAM_S``,
so about ``streams`` replies are being streamed at any time. The load generator is pinned to
one CPU (``sched_setaffinity``), the simulator to the other when there is one.

For each level the figure of merit is the *send lag*: the driver's ``sent_ns`` (just before
the request is written) minus the time the schedule planned, p50/p99/max, in ms. The goal
(issue 12): lag p99 ≤ 5 ms at 512 concurrent streams. Also printed: the streams actually in
flight (median over the level, from the samples' send/end times), requests completed, errors,
and the machine's load average, which matters more than anything else on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time

from ollamakit.config import Flags, load_settings
from ollamakit.load.dataset import Dataset, Item
from ollamakit.load.driver import OllamaDriver
from ollamakit.load.engine import Engine, Level, LevelRun, Schedule
from ollamakit.measure.stats import percentile
from ollamakit.sim import ModelSpec, SimConfig, start_subprocess

STREAM_S = 2.0
CHUNKS = 20
MODEL = "fast:1b"


def in_flight_median(run: LevelRun) -> float:
    """Median number of requests in flight at the samples' send times."""
    spans = [(s.outcome.sent_ns, s.outcome.end_ns) for s in run.samples]
    counts = [
        sum(1 for a, b in spans if a <= t < b) for t, _ in spans[:: max(1, len(spans) // 200)]
    ]
    return statistics.median(counts) if counts else 0.0


async def measure(url: str, levels: list[int], duration_s: float, lane_size: int) -> list[str]:
    settings = load_settings(Flags(base_url=url))
    dataset = Dataset("bench", (Item("hi", "chat", ({"role": "user", "content": "Hello"},)),))
    driver = OllamaDriver(settings, MODEL, options={"num_predict": CHUNKS}, lane_size=lane_size)
    lines = []
    try:
        await driver.warmup(dataset.items[0])
        engine = Engine(
            driver.send,
            dataset.picker(1),
            Schedule(duration_s=duration_s, drain_s=30),
            prepare=driver.prepare,
        )
        for streams in levels:
            rate = streams / STREAM_S
            started = time.perf_counter()
            run = await engine.run_level(Level("rate", rate))
            lags = [s.lag_ms for s in run.samples]
            errors = sum(1 for s in run.samples if not s.outcome.ok)
            load1 = os.getloadavg()[0]
            p50, p99 = percentile(lags, 50) or 0.0, percentile(lags, 99) or 0.0
            lines.append(
                f"{streams:>5} streams  rate {rate:6.1f}/s  "
                f"in flight ~{in_flight_median(run):5.0f}  "
                f"requests {len(run.samples):5d}  errors {errors:3d}  "
                f"lag p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  max {max(lags, default=0):7.1f} ms  "
                f"({time.perf_counter() - started:4.1f} s, load {load1:.1f})"
            )
            print(lines[-1], flush=True)
    finally:
        await driver.aclose()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short level of 64 streams")
    parser.add_argument("--levels", default="64,256,512")
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--lane-size", type=int, default=8)
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the processes to one CPU each"
    )
    args = parser.parse_args()
    levels = [64] if args.quick else [int(v) for v in args.levels.split(",")]
    duration = 2.0 if args.quick else args.duration
    spec = ModelSpec(
        MODEL,
        load_ms=0,
        warm_load_ms=0,
        prompt_tps=float("inf"),
        eval_tps=(CHUNKS - 1) / STREAM_S,
        reply_tokens=CHUNKS,
    )
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    with start_subprocess(
        config=SimConfig(models=(spec,), num_parallel=4096, max_queue=8192)
    ) as sim:
        if len(cpus) >= 2 and not args.no_pin:
            os.sched_setaffinity(sim.pid, {cpus[1]})
            os.sched_setaffinity(0, {cpus[0]})
        print(
            f"# {platform.python_implementation()} {platform.python_version()} · "
            f"{platform.machine()} · {os.cpu_count()} CPUs · load generator on CPU "
            f"{'any' if args.no_pin or not cpus else cpus[0]} · lane size {args.lane_size} · "
            f"{CHUNKS} chunks over {STREAM_S:g} s per stream · {duration:g} s per level",
            flush=True,
        )
        asyncio.run(measure(sim.url, levels, duration, args.lane_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
