"""``ollamakit load``: how many people can this server serve?

::

    ollamakit load --auto                              users 1,2,4,8,16, 30 s each, default SLO
    ollamakit load --model llama3.2 --users 1,4,8 --duration 20 --slo ttft_p95=2s,tpot_p95=100ms
    ollamakit load --model llama3.2 --rate 0.5,1,2,4   Poisson arrivals (seeded)
    ollamakit load --model llama3.2 --rate sweep       the highest rate the server sustains
    ollamakit load --locust-master --locust-workers 2 ...   /   --locust-worker HOST

Flow: validate every flag (a bad ``--slo`` fails before any request) → ``GET /api/version``
(unreachable, TLS, 401: exit 2) → the model (``--model``; else ``--auto`` takes the first the
server lists, a terminal gets a menu) → the levels, with a live progress line on stderr
(level, in flight, req/s, TTFT p95 so far, errors) → the level table, the knee and the answer;
the run saved to the history and to every ``--output``.

Results are written to the history store after each level (never while a level is being
measured: a SQLite commit in the event loop would delay other streams). Ctrl-C keeps the
finished levels and the finished requests of the current one, marks the run ``interrupted``
and exits 130.

Exit status: 0 every measured request succeeded, 1 some failed (503s, timeouts, errors) or an
output could not be written, 2 could not run, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ollamakit.bench.eta import load_estimate, load_suffix
from ollamakit.client import identity_line
from ollamakit.config import Settings
from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.load.analysis import (
    DEFAULT_SLO,
    parse_levels,
    parse_slo,
    sustained_run,
)
from ollamakit.load.dataset import Dataset, load_dataset
from ollamakit.load.document import new_document, new_run_id
from ollamakit.load.engine import NS_PER_S, Engine, Level, Schedule, loop_factory
from ollamakit.load.plan import LoadPlan, Recorder, finish
from ollamakit.measure.stats import percentile
from ollamakit.types import Options
from ollamakit.ui.terminal import Terminal

DEFAULT_USERS: Final = "1,2,4,8,16"
MAX_USERS: Final = 4096
MAX_RATE: Final = 10_000.0
DEFAULT_NUM_PREDICT: Final = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--auto", action="store_true", help=t("load.help_auto"))
    parser.add_argument("--model", metavar="NAME", default=None, help=t("load.help_model"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--users", metavar="1,2,4,...", default=None, help=t("load.help_users"))
    mode.add_argument("--rate", metavar="0.5,1,2|sweep", default=None, help=t("load.help_rate"))
    parser.add_argument(
        "--duration", type=float, default=30.0, metavar="SECONDS", help=t("load.help_duration")
    )
    parser.add_argument(
        "--ramp", type=float, default=None, metavar="SECONDS", help=t("load.help_ramp")
    )
    parser.add_argument(
        "--think", type=float, default=0.0, metavar="SECONDS", help=t("load.help_think")
    )
    parser.add_argument("--seed", type=int, default=42, metavar="N", help=t("load.help_seed"))
    parser.add_argument(
        "--dataset", metavar="team|suite|FILE", default=None, help=t("load.help_dataset")
    )
    parser.add_argument("--slo", metavar="SPEC", default=DEFAULT_SLO, help=t("load.help_slo"))
    parser.add_argument(
        "--num-predict",
        type=int,
        default=DEFAULT_NUM_PREDICT,
        metavar="N",
        help=t("load.help_num_predict"),
    )
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help=t("load.help_timeout")
    )
    parser.add_argument(
        "--output", action="append", default=[], metavar="FILE", help=t("load.help_output")
    )
    parser.add_argument("--no-save", action="store_true", help=t("load.help_no_save"))
    parser.add_argument("--label", metavar="TEXT", default=None, help=t("load.help_label"))
    from ollamakit.bench import baseline

    baseline.add_arguments(parser)  # --baseline/--fail-on-regression/--verdict, level by level
    locust = parser.add_argument_group(t("load.locust_group"))
    where = locust.add_mutually_exclusive_group()
    where.add_argument("--locust-master", action="store_true", help=t("load.help_locust_master"))
    where.add_argument(
        "--locust-worker", metavar="HOST", default=None, help=t("load.help_locust_worker")
    )
    locust.add_argument(
        "--locust-workers", type=int, default=1, metavar="N", help=t("load.help_locust_workers")
    )
    locust.add_argument(
        "--locust-port", type=int, default=5557, metavar="PORT", help=t("load.help_locust_port")
    )
    locust.add_argument(
        "--locust-bind", default="*", metavar="ADDRESS", help=t("load.help_locust_bind")
    )


def plan_from(args: argparse.Namespace, settings: Settings) -> LoadPlan:
    """Validate every flag before any request is sent."""
    if args.duration <= 0:
        raise UsageError(t("load.bad_number", flag="--duration", value=args.duration))
    if args.think < 0 or (args.ramp is not None and args.ramp < 0):
        raise UsageError(t("load.bad_number", flag="--think/--ramp", value=args.think))
    if args.num_predict is not None and (args.num_predict == 0 or args.num_predict < -1):
        raise UsageError(t("load.bad_number", flag="--num-predict", value=args.num_predict))
    sweep = (args.rate or "").strip().lower() == "sweep"
    if args.rate and not sweep:
        levels = parse_levels(args.rate, integer=False, flag="--rate", maximum=MAX_RATE)
    elif sweep:
        levels = ()
    else:
        levels = parse_levels(
            args.users or DEFAULT_USERS, integer=True, flag="--users", maximum=MAX_USERS
        )
    slo = parse_slo(args.slo)
    from ollamakit.report import output_format

    for output in args.output:
        output_format(Path(output))
    closed = bool(levels) and levels[0].kind == "users"
    # Closed loop: ramp the users in over a tenth of the level (≤ 5 s) unless told otherwise.
    ramp = args.ramp if args.ramp is not None else (min(5.0, args.duration / 10) if closed else 0.0)
    timeout_s = args.timeout or settings.benchmark_timeout_s
    return LoadPlan(
        levels=levels,
        sweep=sweep,
        schedule=Schedule(
            duration_s=args.duration,
            ramp_s=ramp,
            think_s=args.think,
            seed=args.seed,
            drain_s=timeout_s,
        ),
        slo=slo,
        dataset=load_dataset(args.dataset),
        num_predict=None if args.num_predict == -1 else args.num_predict,
        timeout_s=timeout_s,
        label=args.label,
        outputs=tuple(Path(o) for o in args.output),
    )


# --------------------------------------------------------------------------- progress


class ProgressLine:
    """Once a second on stderr: level, in flight, req/s, TTFT p95 so far, errors."""

    def __init__(self, engine: Engine, err: Console, interval_s: float = 1.0) -> None:
        self.engine = engine
        self.err = err
        self.terminal = err.is_terminal
        self.interval_s = interval_s if self.terminal else 5.0

    def line(self) -> str:
        p = self.engine.progress
        if p.level is None:
            return ""
        now = self.engine.clock()
        elapsed_s = max(1e-9, (now - p.level_started_ns) / NS_PER_S)
        left_s = max(0.0, (p.level_ends_ns - now) / NS_PER_S)
        p95 = percentile(p.ttfts_ms, 95)
        return t(
            "load.progress",
            level=p.level.label,
            index=p.level_index + 1,
            levels=p.levels,
            left=f"{left_s:.0f}",
            in_flight=p.in_flight,
            rps=f"{p.done / elapsed_s:.2f}" if p.done else "0",
            ttft="—" if p95 is None else f"{p95:.0f}",
            errors=p.errors,
        ) + load_suffix(
            left_s,
            p.levels - p.level_index - 1,
            self.engine.schedule.ramp_s,
            self.engine.schedule.duration_s,
        )

    async def run(self) -> None:
        last_level = None
        while True:
            await asyncio.sleep(self.interval_s)
            p = self.engine.progress
            if p.level is not last_level:
                p.done = p.errors = 0
                last_level = p.level
                continue
            text = self.line()
            if text:
                if self.terminal:
                    # One terminal line, redrawn in place: cut to the width (a wrapped line
                    # would leave its first half behind at every redraw) and padded over the
                    # previous one's end.
                    width = max(1, self.err.width - 1)
                    shown = Text(text, style="dim")
                    shown.truncate(width, overflow="ellipsis", pad=True)
                    self.err.print(shown, end="\r")
                else:
                    self.err.print(escape(text))


# --------------------------------------------------------------------------- the run


async def _probe_rate(driver: Any, dataset: Dataset) -> float:
    """``--rate sweep`` starts at the rate one user reaches alone (3 unmeasured requests)."""
    from ollamakit.load.engine import LoadRequest

    pick = dataset.picker(0)
    totals: list[float] = []
    for i in range(3):
        outcome = await driver.send(LoadRequest(i, Level("users", 1), 0, pick(i, 0), 0))
        if outcome.ok and outcome.total_ms:
            totals.append(outcome.total_ms)
    if not totals:
        return 0.5
    return max(0.05, round(1000 / statistics.median(totals), 3))


async def execute(
    plan: LoadPlan, driver: Any, recorder: Recorder, err: Console | None = None
) -> bool:
    err = err if err is not None else Terminal.from_env().stderr
    """Run the plan; returns True when it was interrupted."""
    engine = Engine(
        driver.send,
        plan.dataset.picker(plan.schedule.seed),
        plan.schedule,
        on_level=recorder.level_done,
        prepare=getattr(driver, "prepare", None),
    )
    progress = asyncio.ensure_future(ProgressLine(engine, err).run())
    try:
        await driver.warmup(plan.dataset.items[0])
        if plan.sweep:
            start = await _probe_rate(driver, plan.dataset)
            runs = await engine.sweep(lambda run: sustained_run(run, plan.slo), start_rate=start)
        else:
            runs = await engine.run(plan.levels)
    except asyncio.CancelledError:  # Ctrl-C during the sweep's probe
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True
    finally:
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
        if err.is_terminal:
            err.print(" " * 100, end="\r")
    return any(r.interrupted for r in runs)


async def _connect(
    driver: Any, model: str | None, auto: bool, terminal: Terminal
) -> tuple[str, str]:
    version = await driver.server_version()
    if driver.identity is not None:  # what answered, in one line (--api auto)
        terminal.info(identity_line(driver.identity, driver.settings.base_url.redacted()))
    if model:
        return version, model
    models = await driver.list_models()
    if not models:
        raise UsageError(t("load.no_models"))
    if auto or not (terminal.stdin_isatty and terminal.stdout_isatty):
        return version, models[0]
    from ollamakit.bench.cli import choose

    picked = choose(t("load.menu_model"), models)
    return version, picked[0]


def run(args: argparse.Namespace, settings: Settings, terminal: Terminal) -> int:
    """``ollamakit load``; errors before the run propagate to ``cli.main`` (exit 2)."""
    from ollamakit.bench import baseline

    plan = plan_from(args, settings)
    gate = baseline.prepare(args, settings)  # a bad --baseline fails before the run
    if args.locust_master or args.locust_worker:
        from ollamakit.load.locust_cli import run_locust

        return int(run_locust(args, settings, plan, terminal))
    from ollamakit.load.driver import OllamaDriver

    options: Options = {"temperature": 0.0, "seed": plan.schedule.seed}
    if plan.num_predict is not None:
        options["num_predict"] = plan.num_predict
    run_id = new_run_id()
    driver = OllamaDriver(
        settings,
        args.model or "",
        options=options,
        timeout_s=plan.timeout_s,
        marker=f"load {run_id}",
    )
    version, model = asyncio.run(_connect(driver, args.model, args.auto, terminal))
    driver.model = model
    what = t("load.plan_sweep") if plan.sweep else ",".join(lv.label for lv in plan.levels)
    terminal.info(
        t(
            "load.plan",
            url=settings.base_url.redacted(),
            version=driver.server_label(),
            model=model,
            levels=what,
            duration=f"{plan.schedule.duration_s:g}",
            dataset=plan.dataset.name,
            items=len(plan.dataset.items),
        )
    )
    if plan.levels:  # a sweep has no fixed length
        terminal.info(
            load_estimate(len(plan.levels), plan.schedule.ramp_s, plan.schedule.duration_s)
        )
    store = None
    if not args.no_save:
        from ollamakit.store import HistoryStore

        store = HistoryStore.open(settings.home)
    doc = new_document(
        run_id=run_id,
        label=plan.label,
        base_url=settings.base_url.redacted(),
        version=version,
        config=plan.config(model),
    )
    recorder = Recorder(doc, model, store)
    recorder.begin()

    async def main() -> bool:
        try:
            return await execute(plan, driver, recorder, terminal.stderr)
        finally:
            await driver.aclose()

    try:
        try:
            # uvloop's loop when installed (the 'uvloop' extra; OLLAMAKIT_UVLOOP=0 turns it
            # off): about half the send lag of asyncio's at hundreds of streams.
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                interrupted = runner.run(main())
        except KeyboardInterrupt:  # a second Ctrl-C: keep what finished
            interrupted = True
        doc = recorder.finish(plan.slo, interrupted)
    finally:
        if store is not None:
            store.close()
    status = finish(doc, plan, saved=store is not None, settings=settings, terminal=terminal)
    return status if gate is None else baseline.check(gate, doc, terminal, status)


__all__ = ["LoadPlan", "add_arguments", "execute", "finish", "plan_from", "run"]
