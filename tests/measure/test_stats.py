"""Percentiles, summaries and the benchmark's summary rows."""

from __future__ import annotations

import pytest

from ollamakit.measure.schema import Identity, empty_result
from ollamakit.measure.stats import (
    concurrency_row,
    percentile,
    saturation_level,
    summarize,
    summary_rows,
)


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


def test_buffered_replies_are_left_out_of_token_timings() -> None:
    streamed = empty_result(Identity("m", "p", "c", 0, 1)) | {"ttft_ms": 80.0, "total_ms": 500.0}
    held = empty_result(Identity("m", "p", "c", 1, 1)) | {
        "ttft_ms": 931.0,
        "total_ms": 931.0,
        "buffered": True,
    }
    [row] = summary_rows([streamed, held])
    assert row["ttft_ms"]["median"] == 80.0  # the held reply's 931 ms is not a TTFT
    assert row["total_ms"]["median"] == (500.0 + 931.0) / 2  # its total is real
    assert concurrency_row("m", 1, [streamed, held], 1.0)["ttft_ms"]["median"] == 80.0
