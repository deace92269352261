"""How long will this take? An estimate before a run, an ETA on its progress line.

Before a bench run nothing has been measured, so the estimate is a rough guess per request
(:func:`guess_s_per_request`: a few seconds, from ``num_predict`` when it is set) times the
number of *batches* (a batch of ``c`` concurrent streams takes about as long as one request when
the server runs them in parallel). The line says it is a guess, and how to make the run short.
It is printed only when the guess is :data:`LONG_RUN_S` or more.

During the run :class:`Eta` replaces the guess with what was measured: the wall time from the
first finished request to the latest, divided by the requests finished in between, times the
requests left. The first request is left out because it carries the model's cold load.

A load run's length is known from its plan (levels × (ramp + duration)), so
:func:`load_estimate_s` and :func:`load_left_s` need no guess; a sweep has no fixed length.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from ollamakit.i18n import t
from ollamakit.measure import format as fmt

#: Seconds per request when nothing is known: a ~200-token reply at ~40 tok/s plus prefill.
DEFAULT_GUESS_S: Final = 5.0
#: Decode rate assumed when ``num_predict`` gives the reply length.
GUESS_TPS: Final = 40.0
#: Shorter than this, the estimate before the run is not worth a line.
LONG_RUN_S: Final = 60.0


class _Suite(Protocol):
    @property
    def num_predict(self) -> int | None: ...

    @property
    def prompts(self) -> Sequence[object]: ...


class _Plan(Protocol):
    @property
    def models(self) -> Sequence[str]: ...

    @property
    def suite(self) -> _Suite: ...

    @property
    def runs(self) -> int: ...

    @property
    def warmup(self) -> int: ...

    @property
    def concurrency(self) -> Sequence[int]: ...


def guess_s_per_request(num_predict: int | None) -> float:
    """A rough time per request: ``num_predict`` tokens at 40 tok/s plus half a second.

    >>> guess_s_per_request(None), guess_s_per_request(100), guess_s_per_request(-1)
    (5.0, 3.0, 5.0)
    """
    if num_predict is None or num_predict <= 0:
        return DEFAULT_GUESS_S
    return round(num_predict / GUESS_TPS + 0.5, 1)


def batches(plan: _Plan) -> int:
    """Sequential steps of a bench plan: warm-ups, then one batch per prompt, run and level."""
    per_model = plan.warmup + len(plan.suite.prompts) * plan.runs * len(plan.concurrency)
    return per_model * len(plan.models)


def bench_estimate(plan: _Plan) -> str | None:
    """The line before a long run, or None when it should be short.

    "About 13 min 45 s (a rough guess of 5 s per request): 3 model(s) × 5 prompt(s) × 3 run(s);
    --runs 1 for a quick look."
    """
    guess_s = guess_s_per_request(plan.suite.num_predict)
    total_s = batches(plan) * guess_s
    if total_s < LONG_RUN_S:
        return None
    levels = (
        ""
        if tuple(plan.concurrency) == (1,)
        else " × " + t("regress.estimate_levels", levels=",".join(map(str, plan.concurrency)))
    )
    text = t(
        "regress.estimate",
        duration=fmt.duration(total_s),
        guess=f"{guess_s:g}",
        models=len(plan.models),
        prompts=len(plan.suite.prompts),
        runs=plan.runs,
        levels=levels,
    )
    if plan.runs > 1:
        text += t("regress.estimate_quick")
    return text


class Eta:
    """Time left in a run of ``total`` requests, from the requests measured so far."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = 0
        self._clock = clock
        self._first_s: float | None = None
        self._latest_s: float | None = None

    def update(self) -> None:
        """One request finished."""
        self.done += 1
        now = self._clock()
        if self._first_s is None:
            self._first_s = now
        self._latest_s = now

    def left_s(self) -> float | None:
        """Seconds left, or None until two requests have finished.

        >>> ticks = iter([0.0, 2.0, 4.0])
        >>> eta = Eta(10, clock=lambda: next(ticks))
        >>> eta.update(); eta.left_s() is None
        True
        >>> eta.update(); eta.update(); eta.left_s()
        14.0
        """
        if self._first_s is None or self._latest_s is None or self.done < 2:
            return None
        per_request_s = (self._latest_s - self._first_s) / (self.done - 1)
        return max(0, self.total - self.done) * per_request_s

    def suffix(self) -> str:
        """`` · about 14 s left`` for the progress line ("" while unknown or at the end)."""
        left = self.left_s()
        if left is None or self.done >= self.total:
            return ""
        return " · " + t("regress.eta", left=fmt.duration(max(left, 1.0)))


def load_estimate_s(levels: int, ramp_s: float, duration_s: float) -> float:
    """A load run's length from its plan: every level ramps up, then runs its duration.

    >>> load_estimate_s(5, 3.0, 30.0)
    165.0
    """
    return levels * (ramp_s + duration_s)


def load_estimate(levels: int, ramp_s: float, duration_s: float) -> str:
    """ "About 2 min 45 s: 5 level(s) × (3 s ramp + 30 s)." """
    return t(
        "regress.load_estimate",
        duration=fmt.duration(load_estimate_s(levels, ramp_s, duration_s)),
        levels=levels,
        ramp=f"{ramp_s:g}",
        seconds=f"{duration_s:g}",
    )


def load_left_s(level_left_s: float, levels_after: int, ramp_s: float, duration_s: float) -> float:
    """Time left in a load run: the current level's rest, then every level after it.

    >>> load_left_s(10.0, 2, 3.0, 30.0)
    76.0
    """
    return level_left_s + max(0, levels_after) * (ramp_s + duration_s)


def load_suffix(level_left_s: float, levels_after: int, ramp_s: float, duration_s: float) -> str:
    left = load_left_s(level_left_s, levels_after, ramp_s, duration_s)
    return " · " + t("regress.eta", left=fmt.duration(max(left, 1.0)))


__all__ = [
    "DEFAULT_GUESS_S",
    "LONG_RUN_S",
    "Eta",
    "batches",
    "bench_estimate",
    "guess_s_per_request",
    "load_estimate",
    "load_estimate_s",
    "load_left_s",
    "load_suffix",
]
