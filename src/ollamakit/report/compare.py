"""Comparing two runs: ``ollamakit history compare RUN_A RUN_B``.

Cells are matched on (model, prompt_id, concurrency). For each: the median TTFT and median
eval tok/s of both runs and the relative change from A to B. A change counts as better or
worse only beyond :data:`NOISE_PCT` (run-to-run noise of a few percent is normal on a GPU);
lower is better for TTFT, higher for tok/s. Cells present in one run only are listed with
``—`` for the other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from ollamakit.measure.schema import RunDocument
from ollamakit.report.common import change, concurrency_levels, metric, summary_rows

NOISE_PCT: Final = 5.0


class Verdict(enum.Enum):
    BETTER = "better"
    WORSE = "worse"
    SAME = "same"


def verdict(rel_change: float | None, higher_is_better: bool, noise_pct: float) -> Verdict | None:
    """Classify a relative change.

    >>> verdict(0.12, True, 5.0), verdict(0.12, False, 5.0), verdict(-0.01, True, 5.0)
    (<Verdict.BETTER: 'better'>, <Verdict.WORSE: 'worse'>, <Verdict.SAME: 'same'>)
    """
    if rel_change is None:
        return None
    if abs(rel_change) * 100 < noise_pct:
        return Verdict.SAME
    improved = rel_change > 0 if higher_is_better else rel_change < 0
    return Verdict.BETTER if improved else Verdict.WORSE


@dataclass(frozen=True, slots=True)
class CompareRow:
    model: str
    prompt_id: str
    concurrency: int
    ttft_a: float | None
    ttft_b: float | None
    eval_a: float | None
    eval_b: float | None
    ttft_change: float | None
    eval_change: float | None
    ttft_verdict: Verdict | None
    eval_verdict: Verdict | None


@dataclass(frozen=True)
class Comparison:
    run_a: RunDocument
    run_b: RunDocument
    rows: list[CompareRow]
    noise_pct: float = NOISE_PCT
    swept: bool = False
    only_a: list[tuple[str, str, int]] = field(default_factory=list)
    only_b: list[tuple[str, str, int]] = field(default_factory=list)


def compare_runs(
    run_a: RunDocument, run_b: RunDocument, noise_pct: float = NOISE_PCT
) -> Comparison:
    def cells(doc: RunDocument) -> dict[tuple[str, str, int], tuple[float | None, float | None]]:
        return {
            (r.get("model", ""), r.get("prompt_id", ""), int(r.get("concurrency", 1))): (
                metric(r, "ttft_ms"),
                metric(r, "eval_tps"),
            )
            for r in summary_rows(doc)
        }

    a, b = cells(run_a), cells(run_b)
    keys = list(a) + [k for k in b if k not in a]
    rows: list[CompareRow] = []
    for key in keys:
        ttft_a, eval_a = a.get(key, (None, None))
        ttft_b, eval_b = b.get(key, (None, None))
        ttft_change, eval_change = change(ttft_a, ttft_b), change(eval_a, eval_b)
        rows.append(
            CompareRow(
                model=key[0],
                prompt_id=key[1],
                concurrency=key[2],
                ttft_a=ttft_a,
                ttft_b=ttft_b,
                eval_a=eval_a,
                eval_b=eval_b,
                ttft_change=ttft_change,
                eval_change=eval_change,
                ttft_verdict=verdict(ttft_change, False, noise_pct),
                eval_verdict=verdict(eval_change, True, noise_pct),
            )
        )
    swept = len(set(concurrency_levels(run_a)) | set(concurrency_levels(run_b))) > 1
    return Comparison(
        run_a=run_a,
        run_b=run_b,
        rows=rows,
        noise_pct=noise_pct,
        swept=swept,
        only_a=[k for k in a if k not in b],
        only_b=[k for k in b if k not in a],
    )
