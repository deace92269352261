"""Load generator capacity: how many concurrent streams one core holds while keeping the schedule.

Run: ``uv run python bench/load_generator.py`` (about a minute; ``--quick`` for a smoke run;
``uv run --extra uvloop ...`` to have uvloop, which ``--loop auto`` then uses).

A server in its own process streams every reply as ``CHUNKS`` chunks over ``STREAM_S``; the
load engine and driver of ``ollamakit load`` send Poisson arrivals at
``rate = streams / STREAM_S``, so about ``streams`` replies are in flight at any time. The load
generator is pinned to one CPU (``sched_setaffinity``), the server to the other when there is
one. Two servers:

``--server sim`` (default)
    ollamakit's simulator (``ollamakit.sim``) with 4096 slots, so nothing queues.
``--server raw``
    a minimal paced NDJSON server written here (one timer per chunk, pre-built bytes), a few
    percent of a core at 5,000 chunks/s: for when the simulator's own CPU use, which this
    script prints, reaches its core (its replies then stretch, and more streams are in flight
    than planned; the generator's lag is not what is measured any more).

For each level the figure of merit is the *send lag*: the driver's ``sent_ns`` (just before
the request is written) minus the time the schedule planned, p50/p99/max, in ms. The goal
(issue 12): lag p99 ≤ 5 ms at 512 concurrent streams. Also printed per level: the streams
actually in flight (median, from the samples' send/end times), requests, errors, the CPU
seconds the generator process and the server process used during the level (and as a share
of the level's wall time), and the load average before and after: on a shared machine the
other processes matter more than anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from ollamakit.config import Flags, load_settings
from ollamakit.load.dataset import Dataset, Item
from ollamakit.load.driver import OllamaDriver
from ollamakit.load.engine import Engine, Level, LevelRun, Schedule, loop_factory
from ollamakit.measure.stats import percentile
from ollamakit.sim import ModelSpec, SimConfig, start_subprocess

STREAM_S = 2.0
CHUNKS = 20
MODEL = "fast:1b"
LISTENING = "listening on "


def in_flight_median(run: LevelRun) -> float:
    """Median number of requests in flight at the samples' send times."""
    spans = sorted((s.outcome.sent_ns, s.outcome.end_ns) for s in run.samples)
    ends = sorted(b for _, b in spans)
    counts = []
    j = 0
    for i, (t, _) in enumerate(spans):  # started so far minus ended so far
        while j < len(ends) and ends[j] <= t:
            j += 1
        counts.append(i + 1 - j)
    return statistics.median(counts) if counts else 0.0


class GCPauses:
    """The garbage collector's pauses, in CPU time of the loop's thread (a pause blocks the
    loop: it is send lag too; wall time would also count the waits for a busy CPU)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (perf_counter_ns at the start, CPU ms)
        self.full = 0  # full (generation 2) collections
        self._start = self._start_cpu = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start, self._start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        else:
            self.pauses.append((self._start, (time.thread_time_ns() - self._start_cpu) / 1e6))
            self.full += info.get("generation") == 2

    def take(self, since_ns: int = 0) -> list[float]:
        """The pauses that started at ``since_ns`` or later (and forget all)."""
        pauses, self.pauses, self.full = self.pauses, [], 0
        return [ms for start, ms in pauses if start >= since_ns]


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pid_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used (Linux ``/proc``; else None)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    url: str, server_pid: int, levels: list[int], duration_s: float, args: argparse.Namespace
) -> list[str]:
    settings = load_settings(Flags(base_url=url))
    dataset = Dataset("bench", (Item("hi", "chat", ({"role": "user", "content": "Hello"},)),))
    driver = OllamaDriver(
        settings,
        MODEL,
        options={"num_predict": CHUNKS},
        lane_size=args.lane_size,
        lean=not args.no_lean,
    )
    lines = []
    gc_pauses = GCPauses()
    try:
        await driver.server_version()
        await driver.warmup(dataset.items[0])
        engine = Engine(
            driver.send,
            dataset.picker(1),
            Schedule(duration_s=duration_s, drain_s=30),
            prepare=driver.prepare,
            freeze_gc=not args.no_freeze_gc,
        )
        for streams in levels:
            rate = streams / STREAM_S
            level = Level("rate", rate)
            await driver.prepare(level)  # (connections are opened before the clocks start)
            load_before = os.getloadavg()[0]
            gc_pauses.take()
            pool = driver.lean_pool
            opened = 0 if pool is None else pool.opened
            cpu0, server0, started = own_cpu_s(), pid_cpu_s(server_pid), time.perf_counter()
            run = await engine.run_level(level)
            wall_s = time.perf_counter() - started
            opened = 0 if pool is None else pool.opened - opened
            full = gc_pauses.full - 1  # (not the engine's collect before the level)
            pauses = gc_pauses.take(run.started_ns)
            cpu_s, server1 = own_cpu_s() - cpu0, pid_cpu_s(server_pid)
            server_s = None if server0 is None or server1 is None else server1 - server0
            lags = [s.lag_ms for s in run.samples]
            errors = sum(1 for s in run.samples if not s.outcome.ok)
            p50, p99 = percentile(lags, 50) or 0.0, percentile(lags, 99) or 0.0
            server_text = (
                "?" if server_s is None else f"{server_s:4.1f} s ({server_s / wall_s:4.0%})"
            )
            lines.append(
                f"{streams:>5} streams  rate {rate:5.0f}/s  "
                f"in flight ~{in_flight_median(run):4.0f}  "
                f"requests {len(run.samples):5d}  errors {errors:3d}  new conns {opened}  "
                f"lag p50 {p50:6.2f}  p99 {p99:7.2f}  max {max(lags, default=0):7.1f} ms  "
                f"cpu gen {cpu_s:4.1f} s ({cpu_s / wall_s:4.0%}) server {server_text}  "
                f"gc {len(pauses)}× ({full} full) max {max(pauses, default=0):4.1f} ms  "
                f"wall {wall_s:4.1f} s  load {load_before:.1f}->{os.getloadavg()[0]:.1f}"
            )
            print(lines[-1], flush=True)
    finally:
        await driver.aclose()
    return lines


# --------------------------------------------------------------------------- the raw server


class _RawReply(asyncio.Protocol):
    """HTTP/1.1 keep-alive: ``GET /api/version``, and any POST streams one paced reply."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports implement asyncio.Transport without subclassing it)
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            self._answer(head.split(" ", 2)[0])

    def _answer(self, method: str) -> None:
        assert self.transport is not None
        if method != "POST":
            body = b'{"version":"0.33.0"}'
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        interval = STREAM_S / (CHUNKS - 1)

        def send(k: int) -> None:
            assert self.transport is not None
            self.timer = None
            if self.transport.is_closing():
                return
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".%06dZ" % (
                time.time_ns() // 1000 % 1_000_000
            )
            if k < CHUNKS - 1:
                line = (
                    b'{"model":"%s","created_at":"%s","message":{"role":"assistant",'
                    b'"content":" tok"},"done":false}\n' % (MODEL.encode(), stamp.encode())
                )
            else:
                ns = int(STREAM_S * 1e9)
                line = (
                    b'{"model":"%s","created_at":"%s","message":{"role":"assistant",'
                    b'"content":""},"done":true,"done_reason":"length","total_duration":%d,'
                    b'"load_duration":0,"prompt_eval_count":5,"prompt_eval_duration":1000,'
                    b'"eval_count":%d,"eval_duration":%d}\n'
                    % (MODEL.encode(), stamp.encode(), ns, CHUNKS, ns)
                )
            frame = b"%x\r\n%s\r\n" % (len(line), line)
            if k == CHUNKS - 1:
                self.transport.write(frame + b"0\r\n\r\n")
                return
            self.transport.write(frame)
            self.timer = loop.call_at(start + (k + 1) * interval, send, k + 1)

        send(0)


def serve_raw() -> int:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_RawReply, "127.0.0.1", 0, backlog=4096)
        port = server.sockets[0].getsockname()[1]
        print(f"{LISTENING}http://127.0.0.1:{port}", flush=True)
        await server.serve_forever()

    asyncio.run(main())
    return 0


@contextmanager
def raw_server() -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-raw"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(LISTENING):
            raise RuntimeError(f"the raw server did not start: {line!r}")
        yield line[len(LISTENING) :].strip(), proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def sim_server() -> Iterator[tuple[str, int]]:
    spec = ModelSpec(
        MODEL,
        load_ms=0,
        warm_load_ms=0,
        prompt_tps=float("inf"),
        eval_tps=(CHUNKS - 1) / STREAM_S,
        reply_tokens=CHUNKS,
    )
    config = SimConfig(models=(spec,), num_parallel=4096, max_queue=8192)
    with start_subprocess(config=config) as sim:
        yield sim.url, sim.pid


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short level of 64 streams")
    parser.add_argument("--levels", default="64,256,512")
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--server", choices=("sim", "raw"), default="sim")
    parser.add_argument(
        "--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="event loop"
    )
    parser.add_argument("--no-lean", action="store_true", help="the httpx lanes, not client/lean")
    parser.add_argument(
        "--no-freeze-gc", action="store_true", help="no gc.freeze() before each level"
    )
    parser.add_argument("--lane-size", type=int, default=8, help="streams per httpx lane")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the processes to one CPU each"
    )
    parser.add_argument("--serve-raw", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_raw:
        return serve_raw()
    levels = [64] if args.quick else [int(v) for v in args.levels.split(",")]
    duration = 2.0 if args.quick else args.duration
    factory: Callable[[], asyncio.AbstractEventLoop] | None = loop_factory(
        {"auto": None, "asyncio": False, "uvloop": True}[args.loop]
    )
    loop_name = "asyncio" if factory is None else factory.__module__.split(".")[0]
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server: Any = raw_server() if args.server == "raw" else sim_server()
    with server as (url, pid):
        if len(cpus) >= 2 and not args.no_pin:
            os.sched_setaffinity(pid, {cpus[1]})
            os.sched_setaffinity(0, {cpus[0]})
        print(
            f"# {platform.python_implementation()} {platform.python_version()} · "
            f"{platform.machine()} · {os.cpu_count()} CPUs · load generator on CPU "
            f"{'any' if args.no_pin or not cpus else cpus[0]} · server {args.server} · "
            f"loop {loop_name} · {'httpx lanes' if args.no_lean else 'lean path'} · "
            f"{CHUNKS} chunks over {STREAM_S:g} s per stream · {duration:g} s per level",
            flush=True,
        )
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(measure(url, pid, levels, duration, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
