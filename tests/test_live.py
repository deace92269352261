"""Against a real Ollama server: off unless ``OLLAMAKIT_LIVE_URL`` is set.

    OLLAMAKIT_LIVE_URL=http://gpu-box:11434 uv run pytest -m live

The simulator stands in for Ollama everywhere else; these few checks are how someone with a
real server confirms that the two still agree (wire format, timings that make sense).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support import assert_no_traceback, run_program

# Read at import time: the autouse fixture clears every OLLAMAKIT_* variable before a test.
LIVE_URL = os.environ.get("OLLAMAKIT_LIVE_URL", "")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not LIVE_URL, reason="set OLLAMAKIT_LIVE_URL to test a real Ollama"),
    pytest.mark.timeout(900),
]


def test_doctor_is_healthy() -> None:
    result = run_program(["doctor", "--json", "--base-url", LIVE_URL], timeout=300)
    assert_no_traceback(result)
    doc = json.loads(result.stdout)
    assert result.returncode == 0 and doc["healthy"], result.output


def test_benchmark_numbers_are_plausible(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    args = ["bench", "--auto", "--runs", "1", "--warmup", "1", "--num-predict", "32"]
    result = run_program([*args, "--base-url", LIVE_URL, "--output", str(out)], timeout=900)
    assert_no_traceback(result)
    assert result.returncode in (0, 1), result.output
    doc = json.loads(out.read_text())
    ok = [r for r in doc["results"] if r["ok"]]
    assert ok, "no request succeeded"
    for r in ok:
        # A thinking model may spend a small budget on thinking only: then ttft_ms is null.
        first = r["ttft_ms"] if r["ttft_ms"] is not None else r.get("ttft_thinking_ms")
        assert first is not None and 0 < first <= r["total_ms"]
        assert r["eval_count"] and r["eval_count"] <= 32 + 1
        assert r["eval_tps"] is None or 0 < r["eval_tps"] < 100_000
        assert r["server_total_ms"] is None or r["server_total_ms"] <= r["total_ms"] + 5


def test_chat_auto_greets_every_model() -> None:
    result = run_program(["chat", "--auto", "--base-url", LIVE_URL], timeout=900)
    assert_no_traceback(result)
    assert result.returncode == 0, result.output
