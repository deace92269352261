"""From samples to answers: per-level statistics, SLO goodput, the knee, and the one-line answer.

Pure functions over :class:`~ollamakit.load.engine.Sample` lists (no I/O, no clock).

Per level (:func:`summarize_level`)
    ``requests`` sent in the measurement window, ``ok``, ``errors`` by kind (``busy`` = 503/429,
    ``timeout``, ``http``, ``stream``, ``connect``, ``overflow``, ``other``); TTFT, TPOT and e2e
    (``total_ms``) percentiles of the successful ones; ``requests_per_s`` and ``output_tps``
    (requests that *ended* inside the window, and their ``eval_count``, over the window);
    ``goodput_rps``: the same count restricted to requests that met every SLO *individually*
    (DistServe's definition: a request is good when its own TTFT, TPOT and e2e are within the
    limits); ``slo_ok``: whether the level's percentiles meet the SLO; the send lag.

Queueing made visible
    ``wait_ms`` = TTFT − the server's prefill time (``prompt_eval_ms``): what a request spent
    waiting (for a slot, a load, the network) before its prefill started. ``ttft_growth`` is
    the level's TTFT p50 over the first level's: at 1 user it is 1, and a server that queues
    shows it growing while ``prefill_ms`` stays flat.

The knee (:func:`knee`)
    Throughput is measured against the ideal: going from ``a`` to ``b`` users (or req/s) ideally
    multiplies it by ``b/a``; a step "pays off" when it brings at least
    :data:`KNEE_SHARE` of that gain. The knee is the last level that still paid off (as
    ``bench``'s saturation hint).

The answer (:func:`answer`)
    The highest level that is *sustained*: its percentiles meet the SLO, at most
    :data:`MAX_ERROR_SHARE` of its requests failed, and (open loop) it completed at least
    :data:`MIN_COMPLETION` of the offered rate.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict

from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.load.engine import Level, LevelKind, LevelRun, Sample
from ollamakit.measure.stats import percentile

KNEE_SHARE: Final = 0.25
MAX_ERROR_SHARE: Final = 0.01
MIN_COMPLETION: Final = 0.9
SLO_METRICS: Final = ("ttft", "tpot", "e2e")
DEFAULT_SLO: Final = "ttft_p95=2s,tpot_p95=100ms"

_SLO_RE: Final = re.compile(r"^(ttft|tpot|e2e)_p(\d{1,2}(?:\.\d+)?)$")
_DURATION_RE: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s)$")


@dataclass(frozen=True, slots=True)
class SloTarget:
    """``ttft_p95=2s``: the 95th percentile of TTFT at most 2000 ms."""

    metric: str  # ttft | tpot | e2e
    quantile: float  # 0-100
    limit_ms: float

    @property
    def key(self) -> str:
        q = int(self.quantile) if self.quantile.is_integer() else self.quantile
        return f"{self.metric}_p{q}"


def parse_duration_ms(text: str) -> float:
    """``2s`` → 2000.0, ``100ms`` → 100.0 (units required: ``s`` or ``ms``).

    >>> parse_duration_ms("2s"), parse_duration_ms("100ms"), parse_duration_ms("0.5 s")
    (2000.0, 100.0, 500.0)
    >>> parse_duration_ms("100")
    Traceback (most recent call last):
    ...
    ValueError: 100
    """
    match = _DURATION_RE.match(text.strip().lower())
    if not match:
        raise ValueError(text)
    value = float(match.group(1))
    return value * 1000 if match.group(2) == "s" else value


def parse_slo(text: str) -> tuple[SloTarget, ...]:
    """``--slo ttft_p95=2s,tpot_p95=100ms,e2e_p99=30s``.

    >>> [(s.key, s.limit_ms) for s in parse_slo("ttft_p95=2s, tpot_p95=100ms")]
    [('ttft_p95', 2000.0), ('tpot_p95', 100.0)]
    >>> parse_slo("e2e_p99=1.5s")[0]
    SloTarget(metric='e2e', quantile=99.0, limit_ms=1500.0)
    >>> parse_slo("none")
    ()
    >>> parse_slo("ttft=2s")
    Traceback (most recent call last):
    ...
    ollamakit.errors.UsageError: --slo ttft=2s: ...
    """
    text = text.strip()
    if text.lower() in ("", "none", "off"):
        return ()
    targets: dict[str, SloTarget] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        match = _SLO_RE.match(name.strip().lower())
        try:
            if not sep or not match:
                raise ValueError(part)
            limit = parse_duration_ms(value)
            quantile = float(match.group(2))
            if not 0 < quantile < 100 or limit <= 0:
                raise ValueError(part)
        except ValueError:
            raise UsageError(t("load.bad_slo", value=part.strip())) from None
        target = SloTarget(match.group(1), quantile, limit)
        targets[target.key] = target
    return tuple(targets.values())


# --------------------------------------------------------------------------- per level


class Pcts(TypedDict):
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None


class LevelSummary(TypedDict):
    """One row of the load report (also stored in the run document under ``load.levels``)."""

    level: str  # users=4 / rate=2
    kind: str
    value: float
    window_s: float
    requests: int
    ok: int
    errors: dict[str, int]
    ttft_ms: Pcts
    tpot_ms: Pcts
    e2e_ms: Pcts
    lag_ms: Pcts
    prefill_ms: float | None  # median prompt_eval_ms
    wait_ms: float | None  # median TTFT - prompt_eval_ms
    ttft_growth: float | None  # TTFT p50 / first level's TTFT p50
    requests_per_s: float | None
    output_tps: float | None
    goodput_rps: float | None
    good_share: float | None  # good requests / requests
    offered_rps: float | None  # open loop: the rate asked for
    slo: dict[str, bool]  # key -> percentile met
    slo_ok: bool
    sustained: bool
    interrupted: bool


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def pcts(values: Sequence[float]) -> Pcts:
    """p50/p90/p95/p99 (type 7), rounded to µs.

    >>> pcts([1.0, 2.0, 3.0, 4.0])["p50"], pcts([])["p99"]
    (2.5, None)
    """
    return {
        "p50": _r(percentile(values, 50)),
        "p90": _r(percentile(values, 90)),
        "p95": _r(percentile(values, 95)),
        "p99": _r(percentile(values, 99)),
    }


def _metric_value(sample: Sample, metric: str) -> float | None:
    o = sample.outcome
    return {"ttft": o.ttft_ms, "tpot": o.tpot_ms, "e2e": o.total_ms}[metric]


def is_good(sample: Sample, slo: Sequence[SloTarget]) -> bool:
    """A request meets the SLO when it succeeded and each of its own values is within limits.

    TPOT is unknown for a one-token reply; an unknown TPOT does not fail the TPOT limit.
    """
    if not sample.outcome.ok:
        return False
    for target in slo:
        value = _metric_value(sample, target.metric)
        if value is None:
            if target.metric == "tpot":
                continue
            return False
        if value > target.limit_ms:
            return False
    return True


def summarize_level(
    run: LevelRun, slo: Sequence[SloTarget], base_ttft_ms: float | None = None
) -> LevelSummary:
    """The statistics of one level (see the module docstring)."""
    measured = run.measured()
    if run.interrupted:  # cut short by Ctrl-C, not by the server
        measured = [s for s in measured if s.outcome.error_kind != "cancelled"]
    good_samples = [s for s in measured if s.outcome.ok]
    errors: dict[str, int] = {}
    for s in measured:
        if not s.outcome.ok:
            kind = s.outcome.error_kind or "other"
            errors[kind] = errors.get(kind, 0) + 1

    def values(metric: str) -> list[float]:
        return [v for s in good_samples if (v := _metric_value(s, metric)) is not None]

    ttft, tpot, e2e = values("ttft"), values("tpot"), values("e2e")
    window_s = run.window_s
    # Throughput: requests that ended inside the window (whenever they were sent).
    ended = [
        s
        for s in run.samples
        if s.outcome.ok and run.window_start_ns <= s.outcome.end_ns <= run.window_end_ns
    ]
    tokens = sum(s.outcome.eval_count or 0 for s in ended)
    good_ended = [s for s in ended if is_good(s, slo)]
    prefill = [
        s.outcome.prompt_eval_ms for s in good_samples if s.outcome.prompt_eval_ms is not None
    ]
    waits = [
        s.outcome.ttft_ms - s.outcome.prompt_eval_ms
        for s in good_samples
        if s.outcome.ttft_ms is not None and s.outcome.prompt_eval_ms is not None
    ]
    ttft_pcts = pcts(ttft)
    slo_met: dict[str, bool] = {}
    for target in slo:
        observed = percentile(values(target.metric), target.quantile)
        slo_met[target.key] = observed is not None and observed <= target.limit_ms
    requests = len(measured)
    n_errors = requests - len(good_samples)
    rps = len(ended) / window_s if window_s > 0 else None
    level = run.level
    offered = level.value if level.kind == "rate" else None
    slo_ok = all(slo_met.values()) and bool(good_samples)
    sustained = (
        slo_ok
        and requests > 0
        and n_errors <= MAX_ERROR_SHARE * requests
        and (offered is None or (rps is not None and rps >= MIN_COMPLETION * offered))
        and not run.interrupted
    )
    growth = None
    if base_ttft_ms and ttft_pcts["p50"] is not None:
        growth = _r(ttft_pcts["p50"] / base_ttft_ms, 2)
    return {
        "level": level.label,
        "kind": level.kind,
        "value": level.value,
        "window_s": round(window_s, 3),
        "requests": requests,
        "ok": len(good_samples),
        "errors": errors,
        "ttft_ms": ttft_pcts,
        "tpot_ms": pcts(tpot),
        "e2e_ms": pcts(e2e),
        "lag_ms": pcts([s.lag_ms for s in measured if s.outcome.error_kind != "overflow"]),
        "prefill_ms": _r(percentile(prefill, 50)),
        "wait_ms": _r(percentile(waits, 50)),
        "ttft_growth": growth,
        "requests_per_s": _r(rps),
        "output_tps": _r(tokens / window_s) if window_s > 0 else None,
        "goodput_rps": _r(len(good_ended) / window_s) if window_s > 0 else None,
        "good_share": _r(sum(is_good(s, slo) for s in measured) / requests) if requests else None,
        "offered_rps": offered,
        "slo": slo_met,
        "slo_ok": slo_ok,
        "sustained": sustained,
        "interrupted": run.interrupted,
    }


def summarize_levels(runs: Sequence[LevelRun], slo: Sequence[SloTarget]) -> list[LevelSummary]:
    """Every level, with TTFT growth measured against the first level's TTFT p50."""
    rows: list[LevelSummary] = []
    base: float | None = None
    for run in runs:
        row = summarize_level(run, slo, base)
        if base is None and row["ttft_ms"]["p50"]:
            base = row["ttft_ms"]["p50"]
            row["ttft_growth"] = 1.0
        rows.append(row)
    return rows


def knee(rows: Sequence[LevelSummary]) -> str | None:
    """The last level whose step up still paid off in throughput (``None``: it kept growing).

    >>> rows = [{"level": f"users={u}", "value": u, "requests_per_s": r}
    ...         for u, r in [(1, 10.0), (2, 19.0), (4, 38.0), (8, 40.0)]]
    >>> knee(rows)
    'users=4'
    >>> knee(rows[:3]) is None
    True
    """
    measured = sorted((r for r in rows if r.get("requests_per_s")), key=lambda r: r["value"])
    if len(measured) < 2:
        return None
    for before, after in itertools.pairwise(measured):
        if before["value"] <= 0:
            continue
        ideal_gain = after["value"] / before["value"] - 1
        gain = (after["requests_per_s"] or 0) / (before["requests_per_s"] or 1) - 1
        if gain < KNEE_SHARE * ideal_gain:
            return before["level"]
    return None


class Answer(TypedDict):
    kind: str  # users | rate
    sustained: float | None  # users or req/s; None: not even the first level
    level: str | None
    requests_per_s: float | None
    goodput_rps: float | None
    knee: str | None
    text: str


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def answer(rows: Sequence[LevelSummary], slo: Sequence[SloTarget]) -> Answer:
    """The one line: "this server sustains N users / R req/s within your SLO"."""
    kind = rows[0]["kind"] if rows else "users"
    good = [r for r in rows if r["sustained"]]
    best = max(good, key=lambda r: r["value"]) if good else None
    slo_text = ", ".join(f"{s.key} ≤ {_num(s.limit_ms)} ms" for s in slo) or t("load.no_slo")
    the_knee = knee(rows)
    if best is None:
        text = t("load.answer_none", slo=slo_text)
    else:
        rps = best["requests_per_s"] or 0.0
        key = "load.answer_users" if kind == "users" else "load.answer_rate"
        text = t(
            key,
            users=_num(best["value"]),
            rate=f"{rps:.2f}",
            offered=_num(best["value"]),
            goodput=f"{best['goodput_rps'] or 0.0:.2f}",
            slo=slo_text,
        )
    return {
        "kind": kind,
        "sustained": None if best is None else best["value"],
        "level": None if best is None else best["level"],
        "requests_per_s": None if best is None else best["requests_per_s"],
        "goodput_rps": None if best is None else best["goodput_rps"],
        "knee": the_knee,
        "text": text,
    }


def sustained_run(run: LevelRun, slo: Sequence[SloTarget]) -> bool:
    """``--rate sweep``'s test for one level."""
    return summarize_level(run, slo)["sustained"]


def slo_to_json(slo: Sequence[SloTarget]) -> list[dict[str, Any]]:
    return [
        {"key": s.key, "metric": s.metric, "quantile": s.quantile, "limit_ms": s.limit_ms}
        for s in slo
    ]


def parse_levels(text: str, *, integer: bool, flag: str, maximum: float) -> tuple[Level, ...]:
    """``--users 1,2,4`` / ``--rate 0.5,1,2``: sorted, unique, positive.

    >>> [lv.label for lv in parse_levels("4,1,2,2", integer=True, flag="--users", maximum=4096)]
    ['users=1', 'users=2', 'users=4']
    >>> [lv.label for lv in parse_levels("0.5, 2", integer=False, flag="--rate", maximum=1e4)]
    ['rate=0.5', 'rate=2']
    >>> parse_levels("0", integer=True, flag="--users", maximum=10)
    Traceback (most recent call last):
    ...
    ollamakit.errors.UsageError: --users 0: ...
    """
    values: set[float] = set()
    for part in text.replace(" ", "").split(","):
        try:
            value = float(int(part)) if integer else float(part)
        except ValueError:
            value = math.nan
        if not (0 < value <= maximum) or not math.isfinite(value):
            raise UsageError(t("load.bad_levels", flag=flag, value=text, maximum=_num(maximum)))
        values.add(value)
    kind: LevelKind = "users" if integer else "rate"
    return tuple(Level(kind, v) for v in sorted(values))


__all__ = [
    "DEFAULT_SLO",
    "Answer",
    "LevelSummary",
    "SloTarget",
    "answer",
    "is_good",
    "knee",
    "parse_duration_ms",
    "parse_levels",
    "parse_slo",
    "pcts",
    "summarize_level",
    "summarize_levels",
    "sustained_run",
]
