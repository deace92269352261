"""``ollamakit bench`` / ``uv run ollama-benchmark.py``: arguments, menu, progress, summary.

This module parses and presents; :mod:`ollamakit.bench.runner` measures. :func:`run` does no
error handling of its own: an :class:`OllamakitError` raised before the run starts (server
unreachable, TLS, 401, a bad ``--suite`` file) propagates to :func:`ollamakit.cli.main`, which
prints the doctor-style message and exits 2. Once the run has started, failures are rows.

Flow: validate flags → ``GET /api/version`` + ``/api/tags`` → the models by
:mod:`ollamakit.selection` (``--model`` names and globs, ``--exclude``, capabilities from the list
or ``/api/show``: a wrong or embedding ``--model`` is exit 2 here, before anything is sent;
embedding and cloud models not named are skipped with a notice) → on a terminal without
``--auto``, a menu of models and suite categories → the ``think`` value per model (``--think``,
gated on the server version) → the run, with a rich
progress bar on a terminal or one plain line per request otherwise → the summary table, hints,
where the run was saved, and the ``--output`` files.

Exit status: 0 every measured request succeeded, 1 some failed, 2 could not run (including "no
models on the server"), 130 interrupted by Ctrl-C, 143/129 stopped by SIGTERM/SIGHUP (in each
case the finished part is saved, summarised and written to every ``--output``; see
:class:`OrderlyStop` and docs/security.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from ollamakit.bench import baseline, resume
from ollamakit.bench.compare import (
    Target,
    make_runner,
    name_targets,
    server_label,
    server_notices,
    targets_from_args,
    think_plans,
)
from ollamakit.bench.compare import total_requests as all_requests
from ollamakit.bench.eta import Eta, bench_estimate
from ollamakit.bench.runner import BenchPlan, Event, NullSink, ResultSink, Runner, StoreSink
from ollamakit.bench.suites import DEFAULT_SUITE_NAME, Suite, category_label, resolve_suite
from ollamakit.config import Settings
from ollamakit.errors import ExitStatus, OllamakitError, UsageError
from ollamakit.i18n import t
from ollamakit.measure.schema import RequestResult, RunDocument
from ollamakit.selection import (
    AsyncCatalog,
    Selection,
    SelectionError,
    ThinkMode,
    parse_think_mode,
    select_async,
)
from ollamakit.ui.sanitize import clean, clean_line
from ollamakit.ui.terminal import Terminal
from ollamakit.ui.wrap import WrapText

MAX_CONCURRENCY: Final = 256
INT64_MAX: Final = 2**63 - 1
DEFAULT_RUNS: Final = 3
#: ``--demo`` without ``--runs``: one measured request per model and prompt, so the first
#: command a newcomer runs ends in seconds (its numbers are simulated anyway).
DEMO_RUNS: Final = 1
#: What to run after the demo (printed below its summary).
DEMO_NEXT_COMMAND: Final = "uv run ollama-benchmark.py --auto --base-url http://HOST:11434"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench flags of design.md (common flags are added by :mod:`ollamakit.cli`)."""
    parser.add_argument("--auto", action="store_true", help=t("bench.help_auto"))
    parser.add_argument(
        "--model", action="append", metavar="NAME", default=None, help=t("bench.help_model")
    )
    parser.add_argument(
        "--exclude", action="append", metavar="PATTERN", default=[], help=t("select.help_exclude")
    )
    parser.add_argument("--think", metavar="MODE", default="off", help=t("select.help_think"))
    parser.add_argument(
        "--suite", metavar="NAME|FILE", default=DEFAULT_SUITE_NAME, help=t("bench.help_suite")
    )
    parser.add_argument(
        "--prompt", action="append", metavar="ID", default=[], help=t("bench.help_prompt")
    )
    parser.add_argument(
        "--category", action="append", metavar="NAME", default=[], help=t("bench.help_category")
    )
    parser.add_argument("--runs", type=int, default=None, metavar="N", help=t("bench.help_runs"))
    parser.add_argument("--warmup", type=int, default=1, metavar="N", help=t("bench.help_warmup"))
    parser.add_argument(
        "--concurrency", default="1", metavar="1,2,4,...", help=t("bench.help_concurrency")
    )
    parser.add_argument(
        "--num-predict", type=int, default=None, metavar="N", help=t("bench.help_num_predict")
    )
    parser.add_argument("--seed", type=int, default=None, metavar="N", help=t("bench.help_seed"))
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help=t("bench.help_timeout")
    )
    parser.add_argument(
        "--output", action="append", default=[], metavar="FILE", help=t("bench.help_output")
    )
    parser.add_argument("--no-save", action="store_true", help=t("bench.help_no_save"))
    parser.add_argument("--label", metavar="TEXT", default=None, help=t("bench.help_label"))
    parser.add_argument("--cold", action="store_true", help=t("bench.help_cold"))
    parser.add_argument(
        "--cold-runs", type=int, default=1, metavar="K", help=t("bench.help_cold_runs")
    )
    parser.add_argument(
        "--num-ctx", type=int, default=None, metavar="N", help=t("bench.help_num_ctx")
    )
    parser.add_argument("--demo", action="store_true", help=t("bench.help_demo"))
    resume.add_arguments(parser)  # --resume RUN (bench/resume.py)
    baseline.add_arguments(parser)  # --baseline/--fail-on-regression/--verdict (bench/baseline.py)


# --------------------------------------------------------------------------- validation


def parse_concurrency(text: str) -> tuple[int, ...]:
    """``--concurrency 1,2,4,8``: sorted, unique, each 1 … 256.

    >>> parse_concurrency("4, 1,2,2")
    (1, 2, 4)
    >>> parse_concurrency("0")
    Traceback (most recent call last):
    ...
    ollamakit.errors.UsageError: --concurrency 0: ...
    """
    levels: set[int] = set()
    for part in text.replace(" ", "").split(","):
        try:
            level = int(part)
        except ValueError:
            level = 0
        if not 1 <= level <= MAX_CONCURRENCY:
            raise UsageError(t("bench.bad_concurrency", value=text, maximum=MAX_CONCURRENCY))
        levels.add(level)
    return tuple(sorted(levels))


def _think_mode(args: argparse.Namespace) -> ThinkMode:
    mode = parse_think_mode(args.think)
    if mode is None:
        raise UsageError(t("select.bad_think", value=args.think))
    return mode


def _check_args(args: argparse.Namespace) -> None:
    if args.runs < 1:
        raise UsageError(t("bench.bad_number", flag="--runs", value=args.runs, minimum=1))
    if args.warmup < 0:
        raise UsageError(t("bench.bad_number", flag="--warmup", value=args.warmup, minimum=0))
    if args.num_predict is not None and (args.num_predict == 0 or args.num_predict < -1):
        raise UsageError(t("bench.bad_num_predict", value=args.num_predict))
    if args.cold_runs < 1:
        raise UsageError(t("bench.bad_number", flag="--cold-runs", value=args.cold_runs, minimum=1))
    if args.num_ctx is not None and args.num_ctx < 1:
        raise UsageError(t("bench.bad_number", flag="--num-ctx", value=args.num_ctx, minimum=1))
    if args.seed is not None and args.seed < 0:
        raise UsageError(t("bench.bad_number", flag="--seed", value=args.seed, minimum=0))
    for flag, value in (
        ("--runs", args.runs),
        ("--warmup", args.warmup),
        ("--num-predict", args.num_predict),
        ("--seed", args.seed),
        ("--num-ctx", args.num_ctx),
    ):
        if value is not None and value > INT64_MAX:  # Ollama's options are Go int64
            raise UsageError(t("files.number_too_large", flag=flag, value=value, maximum=INT64_MAX))
    from ollamakit.report import output_format

    for output in args.output:
        output_format(Path(output))  # --output run.pdf fails now, not after the run


# --------------------------------------------------------------------------- menu


def choose(
    title: str,
    items: Sequence[str],
    *,
    ask: Callable[[str], str] = input,
    show: Callable[[str], None] | None = None,
    labels: Sequence[str] | None = None,
) -> list[str]:
    """A numbered menu: Enter picks everything, ``1,3`` or ``2-4`` pick some.

    ``labels`` are shown instead of the items (an id with its description); the items are
    what is returned.

    >>> answers = iter(["9", "1, 3"])
    >>> choose("Models", ["a", "b", "c"], ask=lambda _: next(answers), show=lambda _: None)
    ['a', 'c']
    >>> choose("Models", ["a", "b"], ask=lambda _: "", show=lambda _: None)
    ['a', 'b']
    """
    say = show or (lambda line: print(clean(line), file=sys.stderr))
    say(title)
    for i, item in enumerate(labels if labels is not None else items, 1):
        say(f"  {i:>2}) {item}")
    while True:
        try:
            answer = ask(t("bench.menu_prompt")).strip()
        except EOFError:
            answer = ""
        if not answer:
            return list(items)
        picked = _parse_selection(answer, len(items))
        if picked:
            return [items[i] for i in picked]
        say(t("bench.menu_invalid", count=len(items)))


def _parse_selection(answer: str, count: int) -> list[int]:
    """``"1,3-4"`` → ``[0, 2, 3]``; an empty list when anything is out of range.

    >>> _parse_selection("1,3-4", 4), _parse_selection("5", 4), _parse_selection("x", 4)
    ([0, 2, 3], [], [])
    """
    picked: list[int] = []
    for part in answer.replace(" ", "").split(","):
        low, sep, high = part.partition("-")
        try:
            start, end = int(low), int(high if sep else low)
        except ValueError:
            return []
        if not 1 <= start <= end <= count:
            return []
        picked.extend(i - 1 for i in range(start, end + 1) if i - 1 not in picked)
    return picked


def _interactive(args: argparse.Namespace, terminal: Terminal) -> bool:
    return not args.auto and terminal.interactive


def _asker(terminal: Terminal) -> Callable[[str], str]:
    """How the menu reads an answer: ``input()`` on the process's own terminal (line editing),
    else a line from the terminal's stdin (a test's, or a wrapped stream)."""
    if terminal.stdin is sys.stdin:
        return input

    def ask(prompt: str) -> str:
        terminal.stderr.print(escape(prompt), end="")
        line = terminal.stdin.readline()
        if not line:
            raise EOFError
        return line

    return ask


def category_menu_labels(suite: Suite) -> list[str]:
    """The picker's lines for the suite's categories: the category id (the same id the
    tables, ``--category`` and the result files use), its description for a built-in one,
    and the prompt ids it holds when they differ from the category's own.

    >>> from ollamakit.bench.suites import Prompt
    >>> s = Suite("s", (Prompt("a", "x", "A"), Prompt("b", "x", "B"), Prompt("c", "c", "C")))
    >>> category_menu_labels(s)
    ['x: a, b', 'c']
    """
    lines: list[str] = []
    for category in suite.categories:
        label = category_label(category)
        ids = suite.prompts_in(category)
        if ids != [category]:
            label = t("bench.menu_category_prompts", label=label, prompts=", ".join(ids))
        lines.append(label)
    return lines


# --------------------------------------------------------------------------- progress


class PlainProgress:
    """Not a terminal: one line per finished request on stderr."""

    def __init__(self, total: int, out: Console) -> None:
        self.total = total
        self.count = 0
        self.out = out
        self.eta = Eta(total)

    def __call__(self, event: Event) -> None:
        self.count += 1
        self.eta.update()
        line = f"[{self.count}/{self.total}] {describe(event.result, warmup=event.warmup)}"
        self.out.print(escape(line + self.eta.suffix()))


class BarProgress:
    """A terminal: a rich progress bar, the last request's outcome as its description."""

    def __init__(self, total: int, out: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[eta]}[/]"),
            console=out,
            transient=True,
            refresh_per_second=4,  # each refresh holds the GIL: keep it rare while measuring
        )
        self.task = self.progress.add_task(t("bench.progress"), total=total, eta="")
        self.eta = Eta(total)

    def __enter__(self) -> BarProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        self.eta.update()
        self.progress.update(
            self.task,
            advance=1,
            description=escape(clean_line(describe(event.result, warmup=event.warmup))),
            eta=escape(self.eta.suffix().removeprefix(" · ")),
        )


def describe(result: RequestResult, *, warmup: bool = False) -> str:
    """One line about one finished request (plain progress, the bar's caption)."""
    where = f"{result['model']} · {result['prompt_id']} · c={result['concurrency']}"
    if warmup:
        where = f"{result['model']} · {t('bench.warmup')}"
    if not result["ok"]:
        return t("bench.line_failed", where=where, error=result["error"] or "?")
    if result.get("end") == "clean_eof":  # the repeat guard: usable, no server figures
        return t("bench.line_clean_eof", where=where, ttft=_num(result["ttft_ms"]))
    if result.get("buffered"):  # its TTFT is not a time to first token
        total = _num(result["total_ms"])
        return t("bench.line_buffered", where=where, total=total, tps=_num(result["eval_tps"]))
    return t(
        "bench.line_ok",
        where=where,
        ttft=_num(result["ttft_ms"]),
        tps=_num(result["eval_tps"]),
    )


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


# --------------------------------------------------------------------------- the command


async def _discover(
    targets: list[Target], wanted: Sequence[str], exclude: Sequence[str]
) -> tuple[list[Target], int, Selection]:
    """What answers at each target (API detected), how many models the first one lists, and
    the models to benchmark (chosen on the first server, whose capabilities decide).

    Raises (→ exit 2) when a server cannot be used, and :class:`SelectionError` for a
    ``--model`` that is not there or cannot chat: nothing has been sent to a model yet.
    """
    from ollamakit.bench.backends import open_bench_backend

    found: list[Target] = []
    listed = 0
    selection = Selection(())
    for index, target in enumerate(targets):
        async with contextlib.aclosing(open_bench_backend(target.settings, target.api)) as b:
            found.append(Target(target.settings, target.api, await b.connect()))
            if index == 0:
                models = await b.list_models()
                listed = len(models)
                if models:
                    selection = await select_async(
                        models, wanted, exclude, AsyncCatalog(b.describe)
                    )
    return name_targets(found), listed, selection


async def _execute(runner: Runner, stop: OrderlyStop | None = None) -> RunDocument:
    if stop is not None:
        stop.attach()
    try:
        return await runner.execute()
    finally:
        await runner.aclose()
        await runner.client.aclose()


def _open_sink(settings: Settings, no_save: bool, terminal: Terminal) -> tuple[ResultSink, Any]:
    if no_save:
        return NullSink(), None
    from ollamakit.store import HistoryStore

    store = HistoryStore.open(settings.home)
    return StoreSink(store, on_error=lambda exc: terminal.warn(exc.message)), store


class OrderlyStop:
    """SIGINT (Ctrl-C), SIGTERM and SIGHUP during a run: one orderly stop that nothing breaks.

    The first signal cancels the run's main task: :meth:`Runner.execute` keeps the finished
    requests, saves them and marks the run ``interrupted``; then the summary is printed and
    every ``--output`` file written. Further signals only say that the stop is under way:
    pressing Ctrl-C three times cannot lose the outputs or print a traceback. The handlers
    stay installed until the outputs are written, then the previous ones come back.

    The exit status is ``128 + signal``, as a shell reports it: 130 for Ctrl-C, 143 for
    SIGTERM, 129 for SIGHUP. The handler itself only sets a flag, schedules the cancellation
    and writes a short line with ``os.write`` (safe inside a signal handler, unlike rich).
    """

    SIGNALS: Final = tuple(
        getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
    )

    def __init__(self) -> None:
        self.signum: int | None = None
        self._presses = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> OrderlyStop:
        for signum in self.SIGNALS:
            # Not in the main thread (tests calling run() from one), or not supported here.
            with contextlib.suppress(ValueError, OSError):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def attach(self) -> None:
        """Called inside the run's event loop: the task the first signal cancels."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        if self.signum is not None and self._task is not None:
            self._task.cancel()  # a signal came before the loop started

    def _handle(self, signum: int, frame: object) -> None:
        self._presses += 1
        if self.signum is None:
            self.signum = signum
            _say(t("files.stopping"))
            loop, task = self._loop, self._task
            if loop is not None and task is not None and not task.done() and not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
        elif self._presses == 2:
            _say(t("files.still_stopping"))

    def exit_status(self, status: int) -> int:
        """The command's status, ``128 + signal`` when a signal stopped the run."""
        if self.signum is not None and status == int(ExitStatus.INTERRUPTED):
            return 128 + self.signum
        return status


def _say(line: str) -> None:
    with contextlib.suppress(OSError):
        os.write(sys.stderr.fileno(), f"\n{line}\n".encode("utf-8", "replace"))


#: A terminal or pipe that is gone: BrokenPipeError, EIO after SIGHUP, and rich's own answer to
#: a broken pipe (``Console.on_broken_pipe`` raises ``SystemExit(1)``).
_GONE: Final = (OSError, SystemExit)


def _quiet_when_gone(listener: Any) -> Any:
    """A progress listener that stops, rather than stopping the run, when stderr is gone
    (``2>&1 | head``, a closed terminal): measuring and saving go on."""
    broken = False

    def call(event: Event) -> None:
        nonlocal broken
        if broken:
            return
        try:
            listener(event)
        except _GONE:
            broken = True

    return call


def run(args: argparse.Namespace, settings: Settings, terminal: Terminal) -> int:
    """Run the benchmark command; errors before the run propagate to ``cli.main``.

    ``--demo``: the built-in simulator is started in this process (a thread, an ephemeral
    loopback port; :mod:`ollamakit.sim.demo`) for the length of the command, and benchmarked
    instead of a server; ``--base-url`` (or ``--ca-bundle``/``--insecure``) with it is a usage
    error, since they name a real server.
    """
    if args.runs is None:
        args.runs = DEMO_RUNS if args.demo else DEFAULT_RUNS
    if not args.demo:
        return _run(args, settings, terminal)
    from ollamakit.sim.demo import demo_settings, refused_flag, start_demo

    flag = refused_flag(settings, bool(getattr(args, "insecure", False)))
    if flag is not None:
        raise UsageError(t("bench.demo_with_server", flag=flag))
    _check_args(args)  # before the simulator starts

    with start_demo() as sim:
        return _run(args, demo_settings(settings, sim.url), terminal, demo=True)


def _run(
    args: argparse.Namespace, settings: Settings, terminal: Terminal, *, demo: bool = False
) -> int:
    _check_args(args)
    gate = baseline.prepare(args, settings)  # a bad --baseline fails before the run
    resumed = resume.open_resume(args.resume, settings, args.no_save)
    levels = parse_concurrency(args.concurrency)
    suite: Suite = resolve_suite(args.suite).with_overrides(
        num_predict=args.num_predict, seed=args.seed
    )
    chosen_prompts = bool(args.prompt or args.category)
    suite = suite.select(prompts=args.prompt, categories=args.category)
    mode = _think_mode(args)
    given: list[str] = list(dict.fromkeys(args.model or []))
    targets, listed, selection = asyncio.run(
        _discover(targets_from_args(args, settings), given, args.exclude)
    )
    for target in targets:
        terminal.info(target.line())
    version = " · ".join(server_label(target) for target in targets)
    for notice in selection.notices():
        terminal.info(notice)
    models = selection.names
    if not listed:
        terminal.stderr.print(
            f"[bold red]✘ {escape(t('bench.no_models', url=settings.base_url.redacted()))}[/]"
        )
        terminal.stderr.print(f"  [cyan]→[/] {escape(t('bench.no_models_hint'))}")
        return int(ExitStatus.ERROR)
    if not models:
        skipped = ", ".join(s.name for s in selection.skipped)
        raise SelectionError(
            t("select.no_chat_models", url=settings.base_url.redacted(), skipped=skipped),
            t("select.no_chat_models_hint"),
        )
    if _interactive(args, terminal):

        def say(line: str) -> None:
            terminal.stderr.print(escape(line))

        if not given:
            models = choose(
                t("bench.menu_models", url=settings.base_url.redacted()),
                models,
                show=say,
                ask=_asker(terminal),
            )
        if not chosen_prompts and len(suite.categories) > 1:
            categories = choose(
                t("bench.menu_categories"),
                suite.categories,
                show=say,
                ask=_asker(terminal),
                labels=category_menu_labels(suite),
            )
            suite = suite.only(categories)
    chosen = [m for m in selection.models if m.name in models]
    # Each server's version and API decide its own think values (bench/compare.py).
    think_by_server, think_notices = think_plans(targets, chosen, mode)
    think_by_model = think_by_server[0]
    for notice in think_notices:
        terminal.info(notice)

    plan = BenchPlan(
        models=tuple(models),
        suite=suite,
        runs=args.runs,
        warmup=args.warmup,
        concurrency=levels,
        timeout_s=settings.benchmark_timeout_s,
        label=args.label,
        cold=args.cold,
        cold_runs=args.cold_runs,
        num_ctx=args.num_ctx,
        demo=demo,
        think=mode,
        think_by_model=think_by_model,
    )
    if resumed is not None:  # same plan, same server, or nothing is sent
        resumed.check(plan, [resume_key(target) for target in targets])
    if demo:
        _demo_banner(terminal, terminal.stderr)
    terminal.info(
        t(
            "bench.plan",
            url=" · ".join(dict.fromkeys(target.url for target in targets)),  # every server
            version=version,
            models=len(plan.models),
            prompts=len(suite.prompts),
            runs=plan.runs,
            levels=",".join(map(str, levels)),
            warmup=plan.warmup,
            requests=plan.total_requests * len(targets),
        )
    )
    if plan.num_ctx is not None:
        terminal.info(t("bench.num_ctx_reload", num_ctx=plan.num_ctx))
    for notice in server_notices(targets, plan):  # what a /v1 server of a comparison lacks
        terminal.info(notice)
    # A long run: how long, and how to make it short (resumed: the news line says what is left).
    estimate = bench_estimate(plan) if resumed is None else None
    if estimate is not None:
        terminal.info(estimate)
    sink, store = _open_sink(settings, args.no_save, terminal)
    if resumed is not None and isinstance(sink, StoreSink):
        sink = resume.ResumeSink(sink.store, resumed, on_error=sink.on_error)
        terminal.info(resumed.news())
    runner = make_runner(
        targets, plan, sink, max_connections=max(64, max(levels)), think_by_server=think_by_server
    )
    if resumed is not None:  # the same run id, what is measured skipped
        runner.resume, runner.run_id = resumed, resumed.doc["run_id"]
    total = all_requests(runner) if resumed is None else resumed.requests_left()
    with OrderlyStop() as stop:
        try:
            try:
                if terminal.stderr_isatty:
                    with BarProgress(total, terminal.stderr) as bar:
                        runner.listener = _quiet_when_gone(bar)
                        doc = asyncio.run(_execute(runner, stop))
                else:
                    runner.listener = _quiet_when_gone(PlainProgress(total, terminal.stderr))
                    doc = asyncio.run(_execute(runner, stop))
            except (KeyboardInterrupt, asyncio.CancelledError):
                # Stopped (a signal, or Ctrl-C outside the handler): the finished part is kept
                # and the run closed; stopped before it started, there is nothing to keep.
                if runner.document is None:
                    if stop.signum is None:
                        raise KeyboardInterrupt from None
                    return stop.exit_status(int(ExitStatus.INTERRUPTED))
                doc = runner.finalize(interrupted=True)
            except BaseException:
                # Whatever went wrong, the run must not stay "running" in the history.
                if runner.document is not None and runner.document["status"] == "running":
                    with contextlib.suppress(Exception):
                        runner.finalize(interrupted=True)
                raise
        finally:
            if store is not None and hasattr(store, "close"):
                with contextlib.suppress(Exception):
                    store.close()
        status = _finish(doc, args, store is not None, settings, terminal, sink)
        if gate is not None:
            status = baseline.check(gate, doc, terminal, status)
        if stop.signum is not None and doc["status"] == "interrupted":
            name = signal.Signals(stop.signum).name
            with contextlib.suppress(*_GONE):
                terminal.warn(t("files.stopped_by_signal", signal=name))
        return stop.exit_status(status)


def _finish(
    doc: RunDocument,
    args: argparse.Namespace,
    saved: bool,
    settings: Settings,
    terminal: Terminal,
    sink: ResultSink | None = None,
) -> int:
    """Summary (with failures and hints), where things went, and the exit status.

    The ``--output`` files are data, the terminal lines only news: a terminal or pipe that
    is gone (``| head``, SIGHUP) must not cost the files, so a failed write to it is ignored.
    """
    from ollamakit.report import write_output
    from ollamakit.report.servers import labelled, print_side_by_side
    from ollamakit.report.tables import print_summary

    to_stdout = any(str(o) == "-" for o in args.output)  # keep a JSON pipe clean
    summary_console = terminal.stderr if to_stdout else terminal.stdout
    with contextlib.suppress(*_GONE):
        print_summary(labelled(doc), summary_console)
        print_side_by_side(doc, summary_console)
        if doc.get("demo"):
            _demo_banner(terminal, summary_console, after=True)
    history_ok = not isinstance(sink, StoreSink) or sink.complete
    with contextlib.suppress(*_GONE):
        if isinstance(sink, StoreSink) and sink.error is not None:
            if sink.complete:
                terminal.info(t("files.history_recovered"))
            else:
                terminal.warn(t("files.history_incomplete"))
        if saved and history_ok:
            terminal.info(t("bench.saved", run_id=doc["run_id"], home=str(settings.home)))
        elif not saved:
            terminal.info(t("bench.not_saved"))
    write_failed = False
    for output in args.output:
        path = Path(output)
        try:
            write_output(doc, path)
        except OllamakitError as exc:  # the run itself is saved: report and go on
            with contextlib.suppress(*_GONE):
                terminal.print_error(exc)
            write_failed = True
            continue
        except BrokenPipeError:  # --output - into a pipe that closed
            write_failed = True
            continue
        if str(path) != "-":
            with contextlib.suppress(*_GONE):
                terminal.info(t("bench.wrote", path=str(path)))
    results = doc["results"]
    if doc["status"] == "interrupted":
        with contextlib.suppress(*_GONE):
            terminal.warn(t("bench.interrupted", count=len(results)))
        return int(ExitStatus.INTERRUPTED)
    if doc["status"] == "failed":
        with contextlib.suppress(*_GONE):
            terminal.warn(t("bench.run_failed", reason=doc.get("failure") or "?"))
        return int(ExitStatus.ERROR)
    skipped = any(m.get("skipped") for m in doc.get("models") or [])
    failed = write_failed or skipped or not results or any(not r["ok"] for r in results)
    return int(ExitStatus.FAILURES if failed else ExitStatus.OK)


def resume_key(target: Target) -> resume.ServerKey:
    """What ``--resume`` compares for one server: URL (redacted), API, version, name."""
    ident = target.identity
    return resume.ServerKey(
        target.url,
        ident.api if ident is not None else None,
        ident.version if ident is not None else None,
        target.name,
    )


def _demo_banner(terminal: Terminal, console: Console, *, after: bool = False) -> None:
    """The line that says a ``--demo`` run's numbers are simulated (above the plan, below the
    summary): bold yellow on a terminal, one plain line into a pipe."""
    key = "bench.demo_summary" if after else "bench.demo_banner"
    isatty = terminal.stdout_isatty if console is terminal.stdout else terminal.stderr_isatty
    console.print(WrapText(t(key), style="bold yellow"), soft_wrap=not isatty)
    if after:  # a command to copy: whole, on a line of its own
        console.print(Text(f"  {DEMO_NEXT_COMMAND}"), soft_wrap=True)


__all__ = ["add_arguments", "choose", "parse_concurrency", "run"]
