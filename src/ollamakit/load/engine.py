"""The load engine: when each request is sent. Pure asyncio scheduling, no HTTP.

The engine knows nothing about Ollama. It is handed an async ``send(request) -> Outcome``
callable (``load/driver.py`` is the one that talks to a server; tests and
``bench/load_generator.py`` may pass their own) and decides *when* to call it:

Closed loop (``--users 1,2,4``)
    ``users`` independent loops. Each sends its next request when its last one ended, after an
    optional think time. Users start staggered over ``ramp_s`` (user *i* at ``i/users·ramp``),
    so a level does not begin with one synchronised burst. The measurement window is
    ``[start + ramp_s, start + ramp_s + duration_s)``.

Open loop (``--rate 0.5,1,2``)
    Arrivals of a Poisson process: inter-arrival gaps are exponential with mean ``1/rate``,
    drawn from ``random.Random(seed)``, so the same seed gives the same schedule. A request is
    sent at its planned time whether or not earlier ones have finished (that is what makes the
    server's queue visible). The window starts after ``ramp_s`` as in the closed loop.

For every request the engine records the *planned* send time next to the driver's *actual*
``sent_ns``: their difference (``lag_ms``) says whether the load generator kept the schedule.
A level ends at its window's end: no new request is started, and the ones in flight are
awaited (bounded by ``drain_s``, then cancelled and recorded as ``cancelled``) so their
latencies, which were measured under the level's load, are kept.

Only samples whose request was *sent* inside the window count for latency statistics; the
throughput of a level is the number of requests that *ended* inside the window divided by its
length (``load/analysis.py``). Ramp-phase requests are kept with ``phase = "ramp"``.

Clock: ``time.perf_counter_ns`` (``CLOCK_MONOTONIC`` on Linux, the clock the simulator's
request log uses), injectable for tests. Sleeping uses ``asyncio.sleep`` until a deadline
computed from the level start, so a late wake-up never accumulates into drift.

Event loop: :func:`loop_factory` gives uvloop's loop when it is installed (the ``uvloop``
extra, Linux and macOS) and not turned off with ``OLLAMAKIT_UVLOOP=0``; ``None`` means
asyncio's own. For ``asyncio.Runner(loop_factory=...)``; nothing here depends on which.

Garbage collection: a full collection walks every object the process holds (the imported
modules, earlier levels' samples) with the loop blocked: ~26 ms of CPU on the shared test
machine, all of it send lag. Before each level's clock starts the engine collects and then
freezes what is left (``gc.freeze``: the survivors move to a permanent generation that later
collections skip); during the level a full collection (now of the level's own objects, still
~5 ms at 256 streams here) waits for :data:`FULL_GC_EVERY` middle-generation ones instead of
10, while the young generations, where short-lived cycles die, are collected as usual.
``freeze_gc=False`` leaves the collector alone.

Ctrl-C: :meth:`Engine.run` catches the cancellation of its task, cancels the requests in
flight and returns what finished with ``interrupted = True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

NS_PER_S: Final = 1_000_000_000
NS_PER_MS: Final = 1_000_000
#: During a level: a full garbage collection after this many middle-generation ones (10 is
#: Python's default); see "Garbage collection" above.
FULL_GC_EVERY: Final = 1000

LevelKind = Literal["users", "rate"]
Phase = Literal["ramp", "measure"]


@dataclass(frozen=True, slots=True)
class Level:
    """One step of a load test: ``users`` concurrent users or ``rate`` requests per second.

    >>> Level("users", 4).label, Level("rate", 0.5).label
    ('users=4', 'rate=0.5')
    """

    kind: LevelKind
    value: float

    @property
    def label(self) -> str:
        value = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.kind}={value}"


@dataclass(frozen=True, slots=True)
class Schedule:
    """How long each level lasts and how requests are spaced."""

    duration_s: float = 30.0
    ramp_s: float = 0.0
    think_s: float = 0.0
    seed: int = 42
    drain_s: float = 300.0  # how long a level waits for its requests in flight at its end
    max_in_flight: int = 4096  # open loop: beyond this, an arrival is dropped (error "overflow")


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """What the engine asks the driver to send."""

    index: int  # sequence number within the level
    level: Level
    user: int | None  # closed loop: which user; open loop: None
    item: Any  # the dataset item (a load.dataset.Item); opaque to the engine
    planned_ns: int  # when the schedule wanted it sent (perf_counter_ns)


#: Error kinds an :class:`Outcome` can carry (the driver maps transport errors onto them).
ERROR_KINDS: Final = ("busy", "timeout", "http", "stream", "connect", "overflow", "cancelled")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one request went, as the driver measured it (client clock, ms)."""

    ok: bool
    sent_ns: int  # just before the request left (the driver's stamp)
    end_ns: int  # when the reply ended (or failed)
    error_kind: str | None = None  # one of ERROR_KINDS, "other", or None
    error: str | None = None  # short human text
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    total_ms: float | None = None
    itl_p95_ms: float | None = None
    load_ms: float | None = None
    prompt_eval_count: int | None = None
    prompt_eval_ms: float | None = None
    eval_count: int | None = None
    eval_ms: float | None = None
    prompt_tps: float | None = None
    eval_tps: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # driver-specific (RequestResult)


@dataclass(frozen=True, slots=True)
class Sample:
    """One finished request: what was planned, and what happened."""

    request: LoadRequest
    outcome: Outcome
    phase: Phase

    @property
    def lag_ms(self) -> float:
        """Actual minus planned send time: how late the load generator was."""
        return (self.outcome.sent_ns - self.request.planned_ns) / NS_PER_MS


@dataclass
class LevelRun:
    """The samples of one level and its window (perf_counter_ns)."""

    level: Level
    started_ns: int
    window_start_ns: int
    window_end_ns: int
    samples: list[Sample] = field(default_factory=list)
    interrupted: bool = False

    @property
    def window_s(self) -> float:
        return max(0.0, (self.window_end_ns - self.window_start_ns) / NS_PER_S)

    def measured(self) -> list[Sample]:
        return [s for s in self.samples if s.phase == "measure"]


Send = Callable[[LoadRequest], Awaitable[Outcome]]
Picker = Callable[[int, int | None], Any]  # (request index, user) -> dataset item


@dataclass
class Progress:
    """Live counters the progress display reads (updated by the engine, never locked)."""

    level: Level | None = None
    level_index: int = 0
    levels: int = 0
    in_flight: int = 0
    sent: int = 0
    done: int = 0
    errors: int = 0
    level_started_ns: int = 0
    level_ends_ns: int = 0
    ttfts_ms: list[float] = field(default_factory=list)  # this level's, for "TTFT p95 so far"


def poisson_offsets_s(rate: float, horizon_s: float, seed: int) -> list[float]:
    """Arrival times (s from 0) of a Poisson process of ``rate``/s up to ``horizon_s``.

    >>> offs = poisson_offsets_s(10.0, 100.0, seed=1)
    >>> 900 < len(offs) < 1100, offs == sorted(offs), offs == poisson_offsets_s(10.0, 100.0, 1)
    (True, True, True)
    >>> poisson_offsets_s(0.0, 10.0, 1)
    []
    """
    if rate <= 0:
        return []
    rng = random.Random(seed)
    offsets: list[float] = []
    t = rng.expovariate(rate)
    while t < horizon_s:
        offsets.append(t)
        t += rng.expovariate(rate)
    return offsets


class Engine:
    """Runs levels against ``send``; one engine per load test."""

    def __init__(
        self,
        send: Send,
        pick: Picker,
        schedule: Schedule,
        *,
        clock: Callable[[], int] = time.perf_counter_ns,
        on_sample: Callable[[Sample], None] | None = None,
        on_level: Callable[[LevelRun], None] | None = None,
        prepare: Callable[[Level], Awaitable[None]] | None = None,
        freeze_gc: bool = True,
    ) -> None:
        self.send = send
        self.pick = pick
        self.schedule = schedule
        self.clock = clock
        self.on_sample = on_sample
        self.on_level = on_level
        self.prepare = prepare  # before a level's clock starts (the driver opens connections)
        self.freeze_gc = freeze_gc
        self.runs: list[LevelRun] = []  # every level so far, finished or cut short
        self.progress = Progress()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ shared

    async def _sleep_until(self, deadline_ns: int) -> None:
        delay_ns = deadline_ns - self.clock()
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / NS_PER_S)

    async def _one(self, run: LevelRun, request: LoadRequest) -> None:
        progress = self.progress
        progress.in_flight += 1
        progress.sent += 1
        try:
            outcome = await self.send(request)
        except asyncio.CancelledError:
            now = self.clock()
            outcome = Outcome(False, sent_ns=now, end_ns=now, error_kind="cancelled")
            self._record(run, request, outcome)
            raise
        finally:
            progress.in_flight -= 1
        self._record(run, request, outcome)

    def _record(self, run: LevelRun, request: LoadRequest, outcome: Outcome) -> None:
        phase: Phase = "measure" if request.planned_ns >= run.window_start_ns else "ramp"
        sample = Sample(request, outcome, phase)
        run.samples.append(sample)
        progress = self.progress
        progress.done += 1
        if not outcome.ok:
            progress.errors += 1
        elif outcome.ttft_ms is not None and phase == "measure":
            progress.ttfts_ms.append(outcome.ttft_ms)
        if self.on_sample is not None:
            self.on_sample(sample)

    def _begin(self, level: Level, index: int, levels: int) -> LevelRun:
        schedule = self.schedule
        start = self.clock()
        window_start = start + int(schedule.ramp_s * NS_PER_S)
        window_end = window_start + int(schedule.duration_s * NS_PER_S)
        progress = self.progress
        progress.level, progress.level_index, progress.levels = level, index, levels
        progress.level_started_ns, progress.level_ends_ns = start, window_end
        progress.ttfts_ms = []
        return LevelRun(level, start, window_start, window_end)

    async def _drain(self) -> None:
        """Wait for the requests in flight (bounded), then cancel what is left."""
        if not self._tasks:
            return
        pending = set(self._tasks)
        _done, late = await asyncio.wait(pending, timeout=self.schedule.drain_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)

    async def _cancel_all(self) -> None:
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, run: LevelRun, request: LoadRequest) -> None:
        task = asyncio.get_running_loop().create_task(self._one(run, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ closed loop

    async def closed_level(self, level: Level, index: int = 0, levels: int = 1) -> LevelRun:
        """``level.value`` users, each sending its next request when its last one ended."""
        run = self._begin(level, index, levels)
        users = int(level.value)
        counter = iter(range(1 << 62))
        schedule = self.schedule

        async def user(u: int) -> None:
            planned = run.started_ns + int(u / users * schedule.ramp_s * NS_PER_S)
            await self._sleep_until(planned)
            while planned < run.window_end_ns:
                n = next(counter)
                request = LoadRequest(n, level, u, self.pick(n, u), planned)
                await self._one(run, request)
                planned = self.clock() + int(schedule.think_s * NS_PER_S)
                await self._sleep_until(planned)

        loops = [asyncio.ensure_future(user(u)) for u in range(users)]
        try:
            # Stop at the window's end: users that are mid-request finish that request.
            done, pending = await asyncio.wait(
                loops, timeout=max(0.0, (run.window_end_ns - self.clock()) / NS_PER_S)
            )
            if pending:
                _, late = await asyncio.wait(pending, timeout=schedule.drain_s)
                for task in late:
                    task.cancel()
                if late:
                    await asyncio.gather(*late, return_exceptions=True)
            for task in done:
                task.result()  # a bug in send() must surface, not vanish
        except asyncio.CancelledError:
            _uncancel()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            run.interrupted = True
        return run

    # ------------------------------------------------------------------ open loop

    async def open_level(self, level: Level, index: int = 0, levels: int = 1) -> LevelRun:
        """Poisson arrivals at ``level.value`` requests/s, sent on time whatever the server does."""
        run = self._begin(level, index, levels)
        schedule = self.schedule
        horizon_s = schedule.ramp_s + schedule.duration_s
        offsets = poisson_offsets_s(level.value, horizon_s, schedule.seed + index)
        try:
            for n, offset_s in enumerate(offsets):
                planned = run.started_ns + int(offset_s * NS_PER_S)
                await self._sleep_until(planned)
                request = LoadRequest(n, level, None, self.pick(n, None), planned)
                if len(self._tasks) >= schedule.max_in_flight:
                    now = self.clock()
                    self._record(run, request, Outcome(False, now, now, "overflow", "overflow"))
                    continue
                self._spawn(run, request)
            await self._sleep_until(run.window_end_ns)
            await self._drain()
        except asyncio.CancelledError:
            _uncancel()
            await self._cancel_all()
            run.interrupted = True
        return run

    # ------------------------------------------------------------------ a plan

    async def run_level(self, level: Level, index: int = 0, levels: int = 1) -> LevelRun:
        if self.prepare is not None:
            await self.prepare(level)
        thresholds = gc.get_threshold()
        if self.freeze_gc:  # (see the module docstring: no full collection during a level)
            gc.collect()
            gc.freeze()
            gc.set_threshold(thresholds[0], thresholds[1], max(thresholds[2], FULL_GC_EVERY))
        try:
            if level.kind == "users":
                run = await self.closed_level(level, index, levels)
            else:
                run = await self.open_level(level, index, levels)
        finally:
            gc.set_threshold(*thresholds)
        self.runs.append(run)
        if self.on_level is not None:
            self.on_level(run)
        return run

    async def run(self, levels: Sequence[Level]) -> list[LevelRun]:
        """Every level in order; stops early (``interrupted``) on cancellation."""
        runs: list[LevelRun] = []
        for i, level in enumerate(levels):
            run = await self.run_level(level, i, len(levels))
            runs.append(run)
            if run.interrupted:
                break
        return runs

    async def sweep(
        self,
        sustained: Callable[[LevelRun], bool],
        *,
        start_rate: float,
        max_steps: int = 8,
        refine_steps: int = 3,
    ) -> list[LevelRun]:
        """``--rate sweep``: the highest Poisson rate the server sustains.

        Doubles the rate from ``start_rate`` until a level is not ``sustained`` (or
        ``max_steps`` levels), then bisects between the last good and the first bad rate
        ``refine_steps`` times. Every level is kept, in the order it ran.
        """
        runs: list[LevelRun] = []
        good: float | None = None
        bad: float | None = None
        rate = start_rate
        step = 0
        while step < max_steps:
            run = await self.run_level(Level("rate", round(rate, 3)), step, max_steps)
            runs.append(run)
            step += 1
            if run.interrupted:
                return runs
            if sustained(run):
                good = rate
                rate *= 2
            else:
                bad = rate
                break
        if good is None or bad is None:
            return runs
        for _ in range(refine_steps):
            rate = (good + bad) / 2
            run = await self.run_level(Level("rate", round(rate, 3)), step, step + 1)
            runs.append(run)
            step += 1
            if run.interrupted:
                return runs
            if sustained(run):
                good = rate
            else:
                bad = rate
        return runs


#: ``OLLAMAKIT_UVLOOP=0`` (or ``off``, ``no``, ``false``) keeps asyncio's own event loop.
UVLOOP_ENV: Final = "OLLAMAKIT_UVLOOP"


def loop_factory(use_uvloop: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when wanted and installed, else None (asyncio's loop).

    ``use_uvloop``: True requires it (ModuleNotFoundError without it), False never, None
    (default) uses it when it is installed unless :data:`UVLOOP_ENV` turns it off.

    >>> loop_factory(False) is None
    True
    """
    if use_uvloop is None:
        if os.environ.get(UVLOOP_ENV, "").strip().lower() in ("0", "off", "no", "false"):
            return None
        try:
            module = importlib.import_module("uvloop")
        except ImportError:
            return None
    elif use_uvloop:
        module = importlib.import_module("uvloop")
    else:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def _uncancel() -> None:
    """Undo the cancellation of Ctrl-C (asyncio.run cancels the main task) once handled,
    so the clean-up, and asyncio.run's own, proceed and the run returns what finished."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()


async def cancel_quietly(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


__all__ = [
    "ERROR_KINDS",
    "Engine",
    "Level",
    "LevelRun",
    "LoadRequest",
    "Outcome",
    "Progress",
    "Sample",
    "Schedule",
    "cancel_quietly",
    "loop_factory",
    "poisson_offsets_s",
]
