"""``history compare``: Mann-Whitney U on per-request samples, for bench cells and load levels."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

from ollamakit.measure.schema import Identity, RunDocument, empty_result
from ollamakit.report.compare import Verdict, compare_stats, mann_whitney
from ollamakit.store import HistoryStore
from tests.support import run_program


def test_exact_p_matches_the_textbook_value() -> None:
    # n = 5 + 5, complete separation: p = 2 / C(10, 5) = 2 / 252.
    result = mann_whitney([1.0, 2, 3, 4, 5], [6.0, 7, 8, 9, 10])
    assert result is not None
    assert result.u == 0
    assert abs(result.p_value - 2 / 252) < 1e-12


def test_normal_approximation_with_ties() -> None:
    # Hand-computed: ranks of A = 1.5+1.5+3+4.5 ... see below; tie-corrected variance.
    a = [1.0, 1.0, 2.0, 3.0, 3.0, 4.0] * 4
    b = [3.0, 3.0, 4.0, 5.0, 5.0, 6.0] * 4
    result = mann_whitney(a, b)
    assert result is not None
    assert result.p_value < 0.001
    assert result.shift == 2.0
    assert result.ci_low <= 2.0 <= result.ci_high


def test_same_distribution_is_not_significant_and_a_shift_is_found() -> None:
    rng = random.Random(3)
    a = [rng.gauss(100, 10) for _ in range(40)]
    same = [rng.gauss(100, 10) for _ in range(40)]
    slower = [rng.gauss(115, 10) for _ in range(40)]
    assert mann_whitney(a, same).p_value > 0.05  # type: ignore[union-attr]
    shifted = mann_whitney(a, slower)
    assert shifted is not None and shifted.p_value < 1e-4
    assert shifted.ci_low < 15 < shifted.ci_high  # the true shift is inside the interval
    assert shifted.ci_low > 5


def _doc(run_id: str, ttfts: list[float], level: str | None = None) -> RunDocument:
    results = []
    for i, ttft in enumerate(ttfts):
        row = empty_result(Identity("m:1b", "chat", "chat", i, 4))
        row.update({"ttft_ms": ttft, "eval_tps": 50.0 + (i % 3), "total_ms": ttft + 500})
        if level is not None:
            cast(dict[str, Any], row)["level"] = level
        results.append(row)
    return cast(
        RunDocument,
        {
            "schema_version": 1,
            "run_id": run_id,
            "label": None,
            "status": "complete",
            "started_at": "2026-12-01T10:00:00+00:00",
            "finished_at": "2026-12-01T10:01:00+00:00",
            "tool": {"name": "ollamakit", "version": "0"},
            "server": {"base_url": "http://127.0.0.1:1", "version": "0", "rtt_ms": {}},
            "config": {"models": ["m:1b"]},
            "results": results,
            "summary": [],
        },
    )


def test_compare_stats_flags_a_real_regression_only() -> None:
    rng = random.Random(5)
    base = [rng.gauss(200, 20) for _ in range(30)]
    # 3 % slower on average with this spread: a fixed 5 % rule says "same", the test too.
    close = [v * 1.03 for v in base[::-1]]
    worse = [rng.gauss(260, 20) for _ in range(30)]
    a = _doc("a", base, level="users=4")
    rows = {r.metric: r for r in compare_stats(a, _doc("b", close, level="users=4")).rows}
    assert rows["ttft_ms"].verdict is Verdict.SAME
    assert rows["ttft_ms"].cell == "m:1b · users=4"
    rows = {r.metric: r for r in compare_stats(a, _doc("c", worse, level="users=4")).rows}
    assert rows["ttft_ms"].verdict is Verdict.WORSE
    assert rows["ttft_ms"].n_a == rows["ttft_ms"].n_b == 30
    assert rows["ttft_ms"].stdev_a is not None
    # Different levels are different cells: nothing in common.
    assert compare_stats(a, _doc("d", worse, level="users=8")).rows == []


def test_history_compare_command(tmp_path: Path, isolated_env: Path) -> None:
    rng = random.Random(9)
    with HistoryStore.open(isolated_env) as store:
        store.save_run(_doc("aaaa1111", [rng.gauss(200, 20) for _ in range(25)]))
        store.save_run(_doc("bbbb2222", [rng.gauss(300, 20) for _ in range(25)]))
    result = run_program(["history", "compare", "aaaa", "bbbb"], env={"COLUMNS": "200"})
    assert result.returncode == 0, result.output
    assert "Mann-Whitney" in result.stdout and "worse" in result.stdout
    gate = run_program(["history", "compare", "aaaa", "bbbb", "--fail-on-regression"])
    assert gate.returncode == 1
    same = run_program(["history", "compare", "aaaa", "aaaa", "--fail-on-regression"])
    assert same.returncode == 0, same.output
