"""Metrics from made-up timestamps: formulas, thinking chunks, degenerate values, summaries."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ollamakit.bench.metrics import (
    Identity,
    concurrency_row,
    empty_result,
    measure,
    percentile,
    rate_per_s,
    saturation_level,
    summarize,
    summary_rows,
)
from ollamakit.client import final_stats
from ollamakit.domain import FinalStats

MS = 1_000_000
IDENT = Identity("m:latest", "p", "cat", 0, 1)


@dataclass
class FakeChunk:
    arrival_ns: int
    content: str = ""
    thinking: str = ""


def final_chunk(**fields: object) -> FinalStats:
    """The figures of a final chunk with these wire fields, as the client's decoder gives them."""
    return final_stats({"done": True, "done_reason": "stop", **fields})


def test_server_rates_are_count_over_duration_like_ollama_verbose() -> None:
    # The chat example from Ollama's docs/api.md.
    final = final_chunk(
        total_duration=4883583458,
        load_duration=1334875,
        prompt_eval_count=26,
        prompt_eval_duration=342546000,
        eval_count=282,
        eval_duration=4535599000,
    )
    chunks = [FakeChunk(100 * MS, content="a"), FakeChunk(4_900 * MS)]
    r = measure(IDENT, 0, chunks, final)
    assert r["prompt_tps"] == pytest.approx(26 / 0.342546, abs=1e-3)
    assert r["eval_tps"] == pytest.approx(282 / 4.535599, abs=1e-3)
    assert r["load_ms"] == pytest.approx(1.334875)
    assert r["prompt_eval_ms"] == pytest.approx(342.546)
    assert r["eval_ms"] == pytest.approx(4535.599)
    assert r["server_total_ms"] == pytest.approx(4883.583458, abs=1e-4)
    assert r["network_ms"] == pytest.approx(4900 - 4883.583458, abs=1e-3)
    assert r["done_reason"] == "stop"


def test_client_timings() -> None:
    sent = 5 * MS
    arrivals = [125, 135, 145, 160, 200]  # ms; last one is the done chunk without text
    chunks = [FakeChunk(t * MS, content="x") for t in arrivals[:-1]]
    chunks.append(FakeChunk(arrivals[-1] * MS))
    r = measure(IDENT, sent, chunks, final_chunk(eval_count=5, eval_duration=80 * MS))
    assert r["ttft_ms"] == 120.0
    assert r["total_ms"] == 195.0
    assert r["tpot_ms"] == pytest.approx((195 - 120) / 4)
    assert r["e2e_tps"] == pytest.approx(1000 / ((195 - 120) / 4))
    # gaps between token-bearing chunks only: 10, 10, 15
    assert r["itl_ms"]["p50"] == 10.0
    assert r["itl_ms"]["p99"] == pytest.approx(14.9)
    assert r["ttft_thinking_ms"] is None
    assert r["thinking_chunks"] == 0


def test_thinking_chunks_are_counted_apart_and_start_the_decode_window() -> None:
    chunks = [
        FakeChunk(50 * MS, thinking="hmm"),
        FakeChunk(60 * MS, thinking="so"),
        FakeChunk(70 * MS, content="Answer"),
        FakeChunk(80 * MS, content="."),
        FakeChunk(81 * MS),
    ]
    r = measure(IDENT, 0, chunks, final_chunk(eval_count=4, eval_duration=30 * MS))
    assert r["ttft_thinking_ms"] == 50.0
    assert r["ttft_ms"] == 70.0
    assert r["thinking_chunks"] == 2
    assert r["tpot_ms"] == pytest.approx((81 - 50) / 3, abs=1e-3)


def test_missing_stats_stay_null() -> None:
    chunks = [FakeChunk(10 * MS, content="hi"), FakeChunk(11 * MS)]
    r = measure(IDENT, 0, chunks, FinalStats())
    for key in (
        "load_ms",
        "prompt_eval_count",
        "prompt_eval_ms",
        "eval_count",
        "eval_ms",
        "server_total_ms",
        "prompt_tps",
        "eval_tps",
        "tpot_ms",
        "e2e_tps",
        "network_ms",
        "done_reason",
    ):
        assert r[key] is None, key  # type: ignore[literal-required]
    assert r["ok"] is True
    assert r["ttft_ms"] == 10.0
    assert r["total_ms"] == 11.0


@pytest.mark.parametrize(
    ("count", "duration_ns"),
    [(1, 0), (5, 0), (1, 500), (0, 10 * MS), (None, 10 * MS), (3, None), (3, -5)],
)
def test_degenerate_rates_are_null(count: int | None, duration_ns: int | None) -> None:
    assert rate_per_s(count, duration_ns) is None


def test_one_token_reply_has_no_tpot() -> None:
    chunks = [FakeChunk(10 * MS, content="Hi"), FakeChunk(10 * MS)]
    r = measure(IDENT, 0, chunks, final_chunk(eval_count=1, eval_duration=0))
    assert r["tpot_ms"] is None
    assert r["e2e_tps"] is None
    assert r["eval_tps"] is None


def test_negative_network_time_is_kept() -> None:
    chunks = [FakeChunk(10 * MS, content="a"), FakeChunk(20 * MS)]
    r = measure(IDENT, 0, chunks, final_chunk(total_duration=20 * MS + 300_000))
    assert r["network_ms"] == pytest.approx(-0.3)


def test_failed_request_keeps_only_what_was_observed() -> None:
    chunks = [FakeChunk(10 * MS, content="a"), FakeChunk(20 * MS, content="b")]
    r = measure(IDENT, 0, chunks, None, error="cut")
    assert r["ok"] is False
    assert r["error"] == "cut"
    assert r["ttft_ms"] == 10.0
    assert r["total_ms"] is None
    assert r["eval_tps"] is None


def test_percentile_is_linear_interpolation() -> None:
    data = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(data, 0) == 15.0
    assert percentile(data, 100) == 50.0
    assert percentile(data, 40) == 29.0  # numpy.percentile(data, 40) == 29.0
    assert percentile(data, 95) == pytest.approx(48.0)


def test_summarize_and_rows() -> None:
    ok = [
        empty_result(Identity("m", "p", "c", i, 1)) | {"ttft_ms": float(v), "eval_tps": 50.0}
        for i, v in enumerate([10, 20, 30])
    ]
    bad = empty_result(Identity("m", "p", "c", 3, 1), error="503")
    [row] = summary_rows([*ok, bad])
    assert (row["n"], row["ok"], row["failed"]) == (4, 3, 1)
    assert row["ttft_ms"] == summarize([10.0, 20.0, 30.0])
    assert row["ttft_ms"]["stdev"] == 10.0
    assert row["eval_tps"]["median"] == 50.0


def test_concurrency_row_and_saturation() -> None:
    r = empty_result(Identity("m", "p", "c", 0, 4)) | {"eval_count": 50}
    row = concurrency_row("m", 4, [r] * 4, 2.0)
    assert row["output_tps"] == 100.0
    assert row["requests_per_s"] == 2.0
    assert row["wall_s"] == 2.0
    rows = [
        {"concurrency": 1, "output_tps": 50.0},
        {"concurrency": 2, "output_tps": 99.0},
        {"concurrency": 4, "output_tps": 190.0},
        {"concurrency": 8, "output_tps": 200.0},
    ]
    assert saturation_level(rows) == 4  # type: ignore[arg-type]
