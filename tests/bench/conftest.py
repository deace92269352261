"""Fixtures for benchmark tests: simulators with scripted timing, and a quick way to run a plan.

Every test talks real HTTP to an ``ollamakit.sim`` on 127.0.0.1. Timings are short (tens of
milliseconds per request) so the whole directory runs in seconds; tolerances are generous
because the simulator and the client may share one GIL here (``bench/fidelity.py`` measures
the exact figures with the simulator in its own process).
"""

from __future__ import annotations

import asyncio
import dataclasses

from ollamakit.bench.backends import open_bench_backend
from ollamakit.bench.runner import BenchPlan, NullSink, ResultSink, Runner
from ollamakit.bench.suites import Prompt, Suite
from ollamakit.config import Flags, load_settings
from ollamakit.measure.schema import RunDocument
from ollamakit.sim import FaultKind, ModelSpec
from tests.support import faulty as shared_faulty

FAST = ModelSpec(
    "fast:1b", load_ms=30, warm_load_ms=1, prompt_tps=50_000, eval_tps=1_000, reply_tokens=8
)

ONE_PROMPT = Suite(name="one", prompts=(Prompt("hi", "greeting", "Hello there, how are you?"),))


def faulty(name: str, kind: FaultKind, arg: int = 0) -> ModelSpec:
    """:data:`FAST` with one fault (``tests.support.faulty`` with ``base=FAST``)."""
    return shared_faulty(name, kind, arg, base=FAST)


# ``start_sim(config) -> ThreadedSim`` is the root fixture (tests/conftest.py).


def run_plan(
    url: str,
    plan: BenchPlan,
    sink: ResultSink | None = None,
    *,
    max_connections: int = 64,
    api: str = "ollama",
) -> RunDocument:
    """Run a plan in this process, as ``ollamakit bench`` does, and return the document."""
    settings = load_settings(Flags(base_url=url), environ={})
    settings = dataclasses.replace(settings, benchmark_timeout_s=plan.timeout_s)

    async def go() -> RunDocument:
        client = open_bench_backend(settings, api, max_connections=max_connections)
        runner = Runner(
            client=client,
            plan=plan,
            base_url=settings.base_url.redacted(),
            sink=sink or NullSink(),
            client_factory=lambda: open_bench_backend(settings, api, max_connections=2),
        )
        try:
            return await runner.execute()
        finally:
            await runner.aclose()
            await client.aclose()

    return asyncio.run(go())
