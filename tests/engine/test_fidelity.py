"""Fidelity: ollamakit's client-side TTFT and decode rate against llama-server's own timings.

For the same requests, two instruments: the client's arrival stamps (the async backend the
benchmark uses, the formulas of ``ReplyMeasurement``) and llama-server's ``timings``, which
this build defines as (``tools/server/server-common.h``, ``server_slot_stats``):

* ``prompt_ms`` — slot start to the first token sampled (the first token is free: it comes
  from the logits of the last prompt batch). The client's TTFT contains it strictly (the
  request left before the slot started; the first chunk arrives after it was sampled), so
  ``ttft_ms − prompt_ms`` is the overhead the server does not see: HTTP, JSON, the chat
  template, tokenising, delivery.
* ``predicted_per_second`` = (``predicted_n`` − 1) / ``predicted_ms``: decode steps over the
  first-to-last-token window — exactly the client's ``decode_tps`` =
  (tokens − 1) / (last chunk − first chunk). Their ratio is the instrument's error.

The figures are written to ``$OLLAMAKIT_ENGINE_REPORT_DIR/fidelity.json`` (``run_tier.sh``
prints them); docs/performance.md records a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
from pathlib import Path
from typing import Any

import pytest

from ollamakit.client import AsyncOpenAIBackend
from ollamakit.config import Flags, load_settings
from ollamakit.domain import ChatRequest
from tests.engine.harness import ALIAS, Engine

pytestmark = [pytest.mark.engine, pytest.mark.timeout(300)]

REPORT_DIR = os.environ.get("OLLAMAKIT_ENGINE_REPORT_DIR", "")
TOPICS = ("a lighthouse", "a tea shop", "a lost key", "the moon", "a river", "a small robot")
TOKENS = 48


def prompt(i: int) -> ChatRequest:
    return ChatRequest(
        ALIAS,
        ({"role": "user", "content": f"Write a long story about {TOPICS[i % len(TOPICS)]}."},),
        {"num_predict": TOKENS, "temperature": 0},
    )


async def measure(url: str, count: int) -> list[dict[str, Any]]:
    settings = load_settings(Flags(base_url=url), environ={})
    rows = []
    async with AsyncOpenAIBackend(settings) as backend:
        for i in range(count + 1):
            async with backend.stream_chat(prompt(i)) as stream:
                chunks = [c async for c in stream]
            if i == 0:
                continue  # warm-up: first request after start pays one-off costs
            texts = [c for c in chunks if c.content]
            final = chunks[-1].final
            assert final is not None and final.eval_count is not None
            first, last = texts[0].arrival_ns, texts[-1].arrival_ns
            rows.append(
                {
                    "ttft_ms": (first - stream.sent_ns) / 1e6,
                    "prompt_ms": final.prompt_eval_ms,
                    "prompt_n": final.prompt_eval_count,
                    "cache_n": final.prompt_cached_count,
                    "tokens": len(texts),
                    "predicted_n": final.eval_count,
                    "predicted_ms": final.eval_ms,
                    "client_decode_tps": (len(texts) - 1) / ((last - first) / 1e9),
                    "server_decode_tps": (final.eval_count - 1) / (final.eval_ms / 1e3)
                    if final.eval_ms
                    else None,
                    "reads": len({c.arrival_ns for c in texts}),
                }
            )
    return rows


def test_client_ttft_and_decode_rate_agree_with_llamacpp_timings(
    engine: Engine, tmp_path: Path
) -> None:
    rows = asyncio.run(measure(engine.url, count=6))
    for row in rows:
        # Every token is its own chunk (greedy, ASCII text): the counts must agree exactly.
        assert row["tokens"] == row["predicted_n"], row
        # The client's TTFT contains the server's prompt time.
        assert row["ttft_ms"] >= row["prompt_ms"], row
    overhead = [r["ttft_ms"] - r["prompt_ms"] for r in rows]
    errors = [r["client_decode_tps"] / r["server_decode_tps"] - 1 for r in rows]
    summary = {
        "requests": len(rows),
        "tokens_per_reply": TOKENS,
        "ttft_ms_median": statistics.median(r["ttft_ms"] for r in rows),
        "prompt_ms_median": statistics.median(r["prompt_ms"] for r in rows),
        "ttft_overhead_ms_median": statistics.median(overhead),
        "ttft_overhead_ms_max": max(overhead),
        "decode_tps_client_median": statistics.median(r["client_decode_tps"] for r in rows),
        "decode_tps_server_median": statistics.median(r["server_decode_tps"] for r in rows),
        "decode_rate_error_median_pct": 100 * statistics.median(abs(e) for e in errors),
        "decode_rate_error_max_pct": 100 * max(abs(e) for e in errors),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    folder = Path(REPORT_DIR) if REPORT_DIR else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fidelity.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    # Bounds wide enough for a busy 2-core CI box (the recorded run is much tighter).
    assert summary["decode_rate_error_median_pct"] < 10, summary
    assert summary["ttft_overhead_ms_median"] < 250, summary
