"""Comparing two runs: ``ollamakit history compare RUN_A RUN_B``.

Cells are matched on (model, prompt_id, concurrency). For each: the median TTFT and median
eval tok/s of both runs and the relative change from A to B. A change counts as better or
worse only beyond :data:`NOISE_PCT` (run-to-run noise of a few percent is normal on a GPU);
lower is better for TTFT, higher for tok/s. Cells present in one run only are listed with
``—`` for the other.

:func:`compare_stats` is the statistical comparison ``history compare`` prints (below).
"""

from __future__ import annotations

import enum
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Final, cast

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


# ---------------------------------------------------------------------------------------------
# The statistical comparison (``history compare``): Mann-Whitney U on the per-request samples.
#
# A fixed noise threshold says nothing about whether a difference is real: 5 % on three
# requests is noise, 2 % on three hundred may not be. For each cell and metric this compares
# the *samples* of both runs (every request's value, not the medians) with the Mann-Whitney U
# test (two-sided; normal approximation with tie correction and continuity correction, exact
# permutation distribution when both samples are small and untied), and gives the
# Hodges-Lehmann shift (the median of all pairwise differences B − A) with its
# distribution-free confidence interval (Lehmann 1975; the same U quantiles). A change is
# reported only when p < alpha; then its direction says better or worse.
#
# Cells: bench runs by (model, prompt, concurrency); load runs by (model, level), so a
# "users=8" level is compared with the other run's "users=8". Metrics: TTFT, decode rate
# (eval tok/s), prompt rate (prompt tok/s), TPOT and end-to-end time.

STAT_METRICS: Final = (
    ("ttft_ms", False),
    ("eval_tps", True),
    ("prompt_tps", True),
    ("tpot_ms", False),
    ("total_ms", False),
)
ALPHA: Final = 0.05
_EXACT_MAX: Final = 20  # both samples this small and untied: exact distribution


@dataclass(frozen=True, slots=True)
class MannWhitney:
    """The result of one two-sample test."""

    n_a: int
    n_b: int
    u: float  # U of sample A
    p_value: float
    shift: float  # Hodges-Lehmann estimate of B − A
    ci_low: float  # confidence interval of the shift, level 1 − alpha
    ci_high: float


def _ranks(values: list[float]) -> tuple[list[float], float]:
    """Mid-ranks (1-based) and the tie-correction sum Σ(t³ − t)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        mid = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = mid
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    return ranks, ties


def _exact_p(u: float, n_a: int, n_b: int) -> float:
    """Two-sided exact p of U (no ties): the permutation distribution by recursion."""
    from functools import cache

    @cache
    def count(u_: int, m: int, n: int) -> int:  # arrangements of m A's, n B's with U = u_
        if u_ < 0:
            return 0
        if m == 0 or n == 0:
            return 1 if u_ == 0 else 0
        return count(u_ - n, m - 1, n) + count(u_, m, n - 1)

    total = math.comb(n_a + n_b, n_a)
    low = min(u, n_a * n_b - u)
    tail = sum(count(k, n_a, n_b) for k in range(math.floor(low) + 1)) / total
    return min(1.0, 2 * tail)


def mann_whitney(a: list[float], b: list[float], alpha: float = ALPHA) -> MannWhitney | None:
    """Two-sided Mann-Whitney U test of A vs B, with the Hodges-Lehmann shift and its CI.

    ``None`` when either sample has fewer than 2 values.

    >>> r = mann_whitney([10.0, 11, 12, 13, 14], [20.0, 21, 22, 23, 24])
    >>> r.u, round(r.p_value, 4), r.shift, (r.ci_low, r.ci_high)
    (0.0, 0.0079, 10.0, (8.0, 12.0))
    >>> same = mann_whitney([1.0, 2, 3, 4, 5, 6], [1.5, 2.5, 3.5, 4.5, 5.5, 6.5])
    >>> same.p_value > 0.5
    True
    """
    a, b = [float(x) for x in a], [float(y) for y in b]
    n_a, n_b = len(a), len(b)
    if n_a < 2 or n_b < 2:
        return None
    ranks, ties = _ranks([*a, *b])
    r_a = sum(ranks[:n_a])
    u = r_a - n_a * (n_a + 1) / 2
    n = n_a + n_b
    mean_u = n_a * n_b / 2
    if ties == 0 and n_a <= _EXACT_MAX and n_b <= _EXACT_MAX:
        p = _exact_p(u, n_a, n_b)
    else:
        var_u = n_a * n_b / 12 * ((n + 1) - ties / (n * (n - 1)))
        if var_u <= 0:
            p = 1.0
        else:
            z = (abs(u - mean_u) - 0.5) / math.sqrt(var_u)
            p = min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
    diffs = sorted(y - x for x in a for y in b)
    shift = statistics.median(diffs)
    # CI: the k-th smallest and largest pairwise differences, k from the U distribution's
    # alpha/2 quantile (normal approximation; exact enough for n ≥ 5 per side).
    z_crit = statistics.NormalDist().inv_cdf(1 - alpha / 2)
    k = math.floor(mean_u - z_crit * math.sqrt(n_a * n_b * (n + 1) / 12))
    k = max(k, 0)
    low, high = diffs[k], diffs[len(diffs) - 1 - k]
    return MannWhitney(n_a, n_b, u, p, shift, low, high)


@dataclass(frozen=True, slots=True)
class StatRow:
    """One cell and metric of a statistical comparison."""

    cell: str  # "model · prompt · c=2" or "model · users=8"
    metric: str
    n_a: int
    n_b: int
    median_a: float | None
    median_b: float | None
    stdev_a: float | None
    stdev_b: float | None
    change: float | None  # relative change of the median, B vs A
    test: MannWhitney | None
    verdict: Verdict | None  # None: not enough samples


@dataclass(frozen=True)
class StatComparison:
    run_a: RunDocument
    run_b: RunDocument
    rows: list[StatRow]
    alpha: float = ALPHA

    @property
    def regressions(self) -> list[StatRow]:
        return [r for r in self.rows if r.verdict is Verdict.WORSE]


def _cell_of(result: dict[str, Any]) -> str:
    model = str(result.get("model", ""))
    level = result.get("level")
    if isinstance(level, str):  # a load run: compare levels
        return f"{model} · {level}"
    return f"{model} · {result.get('prompt_id', '')} · c={result.get('concurrency', 1)}"


def _samples(doc: RunDocument) -> dict[str, dict[str, list[float]]]:
    cells: dict[str, dict[str, list[float]]] = {}
    for result in doc.get("results") or []:
        r = cast(dict[str, Any], result)
        if not r.get("ok") or r.get("phase") == "ramp":
            continue
        metrics = cells.setdefault(_cell_of(r), {})
        for name, _ in STAT_METRICS:
            value = r.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics.setdefault(name, []).append(float(value))
    return cells


def compare_stats(run_a: RunDocument, run_b: RunDocument, alpha: float = ALPHA) -> StatComparison:
    """Every cell present in both runs, every metric with samples on both sides."""
    a, b = _samples(run_a), _samples(run_b)
    rows: list[StatRow] = []
    for cell in [c for c in a if c in b]:
        for name, higher_is_better in STAT_METRICS:
            xs, ys = a[cell].get(name, []), b[cell].get(name, [])
            if not xs or not ys:
                continue
            test = mann_whitney(xs, ys, alpha)
            med_a, med_b = statistics.median(xs), statistics.median(ys)
            rel = change(med_a, med_b)
            if test is None:
                result_verdict = None
            elif test.p_value >= alpha:
                result_verdict = Verdict.SAME
            else:
                improved = test.shift > 0 if higher_is_better else test.shift < 0
                result_verdict = Verdict.BETTER if improved else Verdict.WORSE
            rows.append(
                StatRow(
                    cell=cell,
                    metric=name,
                    n_a=len(xs),
                    n_b=len(ys),
                    median_a=med_a,
                    median_b=med_b,
                    stdev_a=statistics.stdev(xs) if len(xs) > 1 else None,
                    stdev_b=statistics.stdev(ys) if len(ys) > 1 else None,
                    change=rel,
                    test=test,
                    verdict=result_verdict,
                )
            )
    return StatComparison(run_a, run_b, rows, alpha)


# ---------------------------------------------------------------------------------------------
# The regression gate (``bench/load --baseline RUN --fail-on-regression 10%``).
#
# A cell fails the gate when two things hold at once: the change is statistically significant
# (Mann-Whitney p < alpha, verdict WORSE) and it is large enough to matter: the median moved in
# the bad direction by more than the threshold. Significance alone would fail a CI job over a
# real but irrelevant 1 % shift measured on many samples; size alone would fail it over noise.


def parse_percent(text: str) -> float:
    """``--fail-on-regression 10%`` (or ``10``, ``2.5%``): the threshold in percent.

    >>> parse_percent("10%"), parse_percent(" 2.5 "), parse_percent("0%")
    (10.0, 2.5, 0.0)
    >>> parse_percent("ten")
    Traceback (most recent call last):
    ...
    ValueError: ten
    """
    cleaned = text.strip().removesuffix("%").strip()
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(text) from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def worse_by_pct(row: StatRow) -> float | None:
    """How far the median moved in the bad direction, in percent (negative: it improved).

    >>> def row(metric, a, b):
    ...     return StatRow("c", metric, 5, 5, a, b, None, None, change(a, b), None, None)
    >>> worse_by_pct(row("ttft_ms", 100.0, 130.0)), worse_by_pct(row("eval_tps", 50.0, 40.0))
    (30.0, 20.0)
    >>> worse_by_pct(row("eval_tps", 50.0, 60.0))
    -20.0
    """
    if row.change is None:
        return None
    higher_is_better = dict(STAT_METRICS).get(row.metric, False)
    pct = row.change * 100
    return round(-pct if higher_is_better else pct, 6)


def gate_failures(comparison: StatComparison, threshold_pct: float) -> list[StatRow]:
    """The rows that fail the gate: significantly worse, and worse by more than the threshold."""
    failing: list[StatRow] = []
    for row in comparison.regressions:
        worse = worse_by_pct(row)
        if worse is not None and worse > threshold_pct:
            failing.append(row)
    return failing


def min_possible_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p a Mann-Whitney test of samples this small can reach.

    With 3 requests a side no difference, however large, is significant at 0.05:

    >>> round(min_possible_p(3, 3), 3), round(min_possible_p(4, 4), 3)
    (0.1, 0.029)
    """
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def underpowered(comparison: StatComparison) -> bool:
    """True when no cell has enough samples for a significant result at ``alpha``."""
    return not any(min_possible_p(r.n_a, r.n_b) < comparison.alpha for r in comparison.rows)
