"""Fixtures for the load tests: a simulator in its own process with a scripted speed.

The simulator runs as a subprocess (``start_subprocess``) so the load generator and the server
do not share a GIL: the arrival times in its request log are the server's, on the same
``CLOCK_MONOTONIC`` the load engine plans with.

``SCRIPT`` is the model every load test uses: ``REPLY_TOKENS`` chunks at ``EVAL_TPS``, instant
prefill and load, ``NUM_PARALLEL`` slots. A request therefore occupies a slot for
``SERVICE_S`` = (REPLY_TOKENS − 1) / EVAL_TPS plus the first chunk's tick, and the server's
capacity is NUM_PARALLEL / SERVICE_S requests per second.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ollamakit.sim import ModelSpec, RequestRecord, SimConfig, SimProcess, start_subprocess

MODEL = "load:1b"
NUM_PARALLEL = 4
EVAL_TPS = 200.0
REPLY_TOKENS = 20
SERVICE_S = REPLY_TOKENS / EVAL_TPS  # slot time per request: 20 chunks, 5 ms apart

SCRIPT = ModelSpec(
    MODEL,
    load_ms=0,
    warm_load_ms=0,
    prompt_tps=float("inf"),
    eval_tps=EVAL_TPS,
    reply_tokens=REPLY_TOKENS,
)

_MARK = re.compile(r"^\[load \w+ #(?P<level>\w+=[\d.]+)\.(?P<index>\d+)\]")


@pytest.fixture
def start_load_sim() -> Iterator[Callable[..., SimProcess]]:
    started: list[SimProcess] = []

    def start(*models: ModelSpec, num_parallel: int = NUM_PARALLEL, **kwargs: Any) -> SimProcess:
        config = SimConfig(models=models or (SCRIPT,), num_parallel=num_parallel, **kwargs)
        proc = start_subprocess(config=config)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def load_sim(start_load_sim: Callable[..., SimProcess]) -> SimProcess:
    return start_load_sim()


def marker_of(record: RequestRecord) -> tuple[str, int] | None:
    """(level label, request index) from the marker the driver puts in the first message."""
    body = record.body if isinstance(record.body, dict) else {}
    messages = body.get("messages") or []
    if not messages:
        return None
    match = _MARK.match(str(messages[0].get("content", "")))
    return (match["level"], int(match["index"])) if match else None


#: The driver's unmeasured warm-up request is marked as level ``users=0``.
WARMUP = "users=0"


def chat_records(sim: SimProcess) -> list[RequestRecord]:
    """The measured chat requests the simulator saw (the warm-up request left out)."""
    return [
        r
        for r in sim.requests()
        if r.path == "/api/chat" and (mark := marker_of(r)) is not None and mark[0] != WARMUP
    ]
