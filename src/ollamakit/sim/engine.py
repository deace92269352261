"""Model state and scheduling: loading, keep-alive, parallel slots and the bounded queue.

Each model has a :class:`ModelRuntime`: unloaded → loading → loaded, an expiry time
(``now + keep_alive`` after each request, as Ollama's ``/api/ps`` shows it), a count of active
requests and ``num_parallel`` slots.

:meth:`Scheduler.acquire` is what Ollama's ``scheduleRunner`` plus the runner's slot semaphore
do, in the simulator's simplified form:

1. Only requests that wait for a (re)load are queued: one that arrives while a model is
   loading and ``max_queue`` others already wait for a load gets :class:`QueueFull` (HTTP
   503), as Ollama's bounded pending channel does (``sched.go:88``). The request that starts a
   load is the scheduler's current one and is not counted.
2. An unloaded model is loaded by the first request (``load_ms``); requests that arrive while
   it loads wait for the same load. A loaded model costs ``warm_load_ms``. A request whose
   ``num_ctx`` differs from the loaded one reloads the model (``sched.go:201``).
3. Generating requests for a loaded model then wait for one of its slots however many there
   are (a long TTFT, never a 503).

Prefix cache: each slot remembers the token ids of its last request (prompt and reply). A new
request takes the free slot with the longest common prefix; the shared tokens are "cached"
(at least one prompt token is always evaluated), so only the rest costs prefill time.

Models expire lazily: whenever state is looked at, an idle model past its ``expires_at`` is
unloaded. ``keep_alive: 0`` unloads as soon as the model is idle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from ollamakit.sim.config import ModelSpec, SimConfig
from ollamakit.sim.gojson import MAX_DURATION_NS


class QueueFull(Exception):
    """More than ``max_queue`` requests would be waiting."""


class LoadState(Enum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"


class ModelRuntime:
    """The mutable state of one model; touched only from the event loop."""

    def __init__(self, spec: ModelSpec, num_parallel: int) -> None:
        self.spec = spec
        self.state = LoadState.UNLOADED
        size = spec.num_parallel or num_parallel
        self.slots = asyncio.Semaphore(size)
        self.caches: list[Sequence[int]] = [() for _ in range(size)]  # per slot: last ids
        self.free = list(range(size))
        self.num_ctx = 0  # what the model was loaded with
        self.load_done: asyncio.Event | None = None
        self.active = 0
        self.expires_at_ns = 0  # wall clock (time.time_ns)
        self.unload_when_idle = False
        self.loads = 0  # completed cold loads, for /_sim/state

    def unload(self) -> None:
        self.state = LoadState.UNLOADED
        self.caches = [() for _ in self.caches]

    def take_slot(self, ids: Sequence[int]) -> tuple[int, int]:
        """The free slot sharing the longest prefix with ``ids``, and that prefix's length."""
        best, best_n = self.free[0], -1
        for index in self.free:
            n = common_prefix(self.caches[index], ids)
            if n > best_n:
                best, best_n = index, n
        self.free.remove(best)
        return best, max(0, best_n)

    def expires_at(self, keep_alive_ns: int) -> int:
        if keep_alive_ns >= MAX_DURATION_NS:
            return time.time_ns() + MAX_DURATION_NS  # Go adds MaxInt64 too: year 2262+
        return time.time_ns() + keep_alive_ns


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """
    >>> common_prefix([1, 2, 3], [1, 2, 4, 5]), common_prefix([], [1])
    (2, 0)
    """
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class Lease:
    """A request's hold on a model, and the times the holding took."""

    runtime: ModelRuntime
    cold: bool
    loaded_ns: int  # perf_counter_ns: model ready (end of load_duration)
    slot_ns: int  # perf_counter_ns: slot acquired (start of prompt evaluation)
    has_slot: bool
    slot: int = -1  # which slot (its prefix cache)
    cached: int = 0  # prompt tokens served from the slot's cache


class Scheduler:
    """Owns every :class:`ModelRuntime`; see the module docstring."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.runtimes = {
            spec.tag_name.lower(): ModelRuntime(spec, config.num_parallel) for spec in config.models
        }
        self.waiting = 0

    def runtime(self, spec: ModelSpec) -> ModelRuntime:
        return self.runtimes[spec.tag_name.lower()]

    def expire(self) -> None:
        now = time.time_ns()
        for rt in self.runtimes.values():
            if rt.state is LoadState.LOADED and rt.active == 0 and rt.expires_at_ns <= now:
                rt.unload()

    def loaded(self) -> list[ModelRuntime]:
        """Loaded (or loading) models, longest remaining time first, as ``/api/ps`` sorts."""
        self.expire()
        running = [rt for rt in self.runtimes.values() if rt.state is not LoadState.UNLOADED]
        return sorted(running, key=lambda rt: rt.expires_at_ns, reverse=True)

    def _delay(self, ms: float) -> float:
        return ms / 1000.0 / self.config.speed

    async def acquire(
        self,
        spec: ModelSpec,
        keep_alive_ns: int,
        *,
        need_slot: bool,
        num_ctx: int | None = None,
        prompt_ids: Sequence[int] = (),
    ) -> Lease:
        """Load the model if needed and (for generation) take a slot; raises :class:`QueueFull`."""
        rt = self.runtime(spec)
        self.expire()
        wanted_ctx = num_ctx or self.config.num_ctx(spec)
        if rt.state is LoadState.LOADED and rt.num_ctx != wanted_ctx:
            rt.unload()  # a different num_ctx is a different runner: load again
        queued = rt.state is LoadState.LOADING
        if queued and self.waiting >= self.config.max_queue:
            raise QueueFull
        if queued:
            self.waiting += 1
        rt.active += 1  # an active model never expires under a waiting request
        if keep_alive_ns > 0:
            rt.unload_when_idle = False  # a newer keep_alive replaces an earlier "unload"
        has_slot = False
        slot, cached = -1, 0
        try:
            cold = rt.state is not LoadState.LOADED
            await self._load(rt, wanted_ctx)
            if queued:
                self.waiting -= 1
                queued = False
            rt.expires_at_ns = rt.expires_at(keep_alive_ns)
            loaded_ns = time.perf_counter_ns()
            if need_slot:
                await rt.slots.acquire()
                has_slot = True
                slot, cached = rt.take_slot(prompt_ids)
                if not self.config.prefix_cache:
                    cached = 0
                cached = min(cached, max(0, len(prompt_ids) - 1))  # one token is always evaluated
            slot_ns = time.perf_counter_ns()
        except BaseException:
            rt.active -= 1
            if has_slot:
                rt.free.append(slot)
                rt.slots.release()
            raise
        finally:
            if queued:
                self.waiting -= 1
        return Lease(rt, cold, loaded_ns, slot_ns, has_slot, slot, cached)

    async def _load(self, rt: ModelRuntime, num_ctx: int) -> None:
        while True:
            if rt.state is LoadState.LOADED:
                await asyncio.sleep(self._delay(rt.spec.warm_load_ms))
                if rt.state is LoadState.LOADED:
                    return
                continue  # unloaded meanwhile (keep_alive 0 from another request): load again
            if rt.state is LoadState.LOADING and rt.load_done is not None:
                await rt.load_done.wait()
                continue  # loaded now (returns above), or the loader was cancelled: load here
            rt.state = LoadState.LOADING
            rt.num_ctx = num_ctx
            rt.caches = [() for _ in rt.caches]
            done = rt.load_done = asyncio.Event()
            try:
                await asyncio.sleep(self._delay(rt.spec.load_ms))
            except BaseException:
                rt.state = LoadState.UNLOADED
                done.set()
                raise
            rt.state = LoadState.LOADED
            rt.loads += 1
            done.set()
            return

    def release(self, lease: Lease, keep_alive_ns: int, cache_ids: Sequence[int] = ()) -> None:
        rt = lease.runtime
        rt.active -= 1
        if lease.has_slot:
            rt.caches[lease.slot] = cache_ids
            rt.free.append(lease.slot)
            rt.slots.release()
        rt.expires_at_ns = rt.expires_at(keep_alive_ns)
        if keep_alive_ns == 0:
            rt.unload_when_idle = True
        if rt.unload_when_idle and rt.active == 0:
            rt.unload()
            rt.unload_when_idle = False

    def unload(self, spec: ModelSpec) -> None:
        """``keep_alive: 0`` with no prompt: unload now, or as soon as the model is idle."""
        rt = self.runtime(spec)
        if rt.active == 0:
            rt.unload()
        else:
            rt.unload_when_idle = True
