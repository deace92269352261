"""``ollamakit history``: list saved runs, compare two of them, delete and prune.

::

    ollamakit history [--limit N] [--model NAME]      newest runs first
    ollamakit history compare RUN_A RUN_B [--alpha 0.05]   (or: --compare RUN_A RUN_B)
    ollamakit history delete RUN... [--yes]
    ollamakit history prune (--keep N | --older-than 30d) [--yes]

Run ids may be shortened to any unambiguous prefix. ``--model llama3.2`` matches every tag
of that model. A missing history database is not created by reading it.

``compare`` tests every cell (bench: model, prompt, concurrency; load: model and level) and
metric with Mann-Whitney U on the per-request samples (:func:`ollamakit.report.compare.
compare_stats`): n, median and stdev of each side, the Hodges-Lehmann shift with its
confidence interval, p, and a verdict only when p < alpha. Exit 0; with ``--fail-on-regression``
exit 1 when any verdict is "worse".

``delete`` and ``prune`` list what they will delete and ask first; without a terminal they
need ``--yes``. ``--older-than`` takes ``30d``, ``12h``, ``2w``. Exit 0, or 2 when nothing
was confirmed.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

from rich.markup import escape
from rich.table import Table

from ollamakit.config import Settings
from ollamakit.errors import ExitStatus, UsageError
from ollamakit.i18n import t
from ollamakit.report.common import DASH, fmt_num, fmt_pct
from ollamakit.report.compare import ALPHA, StatComparison, Verdict, compare_stats
from ollamakit.report.listing import print_history
from ollamakit.store import HistoryStore, RunListing
from ollamakit.ui.tables import print_table
from ollamakit.ui.terminal import Terminal

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([hdw])$")
_VERDICT_STYLE = {Verdict.BETTER: "green", Verdict.WORSE: "red", Verdict.SAME: "", None: "dim"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="*",
        metavar="compare RUN_A RUN_B | delete RUN... | prune",
        help=t("report.help_compare_action"),
    )
    parser.add_argument(
        "--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help=t("report.help_compare")
    )
    parser.add_argument(
        "-n", "--limit", type=int, default=20, metavar="N", help=t("report.help_limit")
    )
    parser.add_argument("--model", metavar="NAME", help=t("report.help_model"))
    parser.add_argument(
        "--alpha", type=float, default=ALPHA, metavar="P", help=t("load.help_history_alpha")
    )
    parser.add_argument(
        "--fail-on-regression", action="store_true", help=t("load.help_history_fail")
    )
    parser.add_argument("--keep", type=int, default=None, metavar="N", help=t("load.help_keep"))
    parser.add_argument("--older-than", default=None, metavar="AGE", help=t("load.help_older_than"))
    parser.add_argument("-y", "--yes", action="store_true", help=t("load.help_yes"))


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``.

    >>> parse_age("30d"), parse_age("12h"), parse_age("2w")
    (datetime.timedelta(days=30), datetime.timedelta(seconds=43200), datetime.timedelta(days=14))
    >>> parse_age("soon")
    Traceback (most recent call last):
    ...
    ollamakit.errors.UsageError: --older-than soon: ...
    """
    match = _AGE.match(text.strip().lower())
    if not match:
        raise UsageError(t("load.bad_age", value=text))
    value = float(match.group(1))
    unit = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
    return value * unit[match.group(2)]


def _pair(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.compare:
        if args.action:
            raise UsageError(t("report.history_usage"))
        return args.compare[0], args.compare[1]
    if not args.action:
        return None
    if args.action[0] == "compare" and len(args.action) == 3:
        return args.action[1], args.action[2]
    if args.action[0] in ("delete", "prune"):
        return None
    raise UsageError(t("report.history_usage"))


def print_stat_compare(comparison: StatComparison, terminal: Terminal) -> None:
    out = terminal.stdout
    for name, doc in (("A", comparison.run_a), ("B", comparison.run_b)):
        label = f" · {doc['label']}" if doc.get("label") else ""
        out.print(
            f"[bold]{name} {escape(doc['run_id'])}[/]{escape(label)}"
            f"[dim] · {escape(str(doc.get('started_at')))}"
            f" · {escape(str(doc['server'].get('base_url')))}[/]"
        )
    table = Table(
        title=t("load.compare_title", alpha=f"{comparison.alpha:g}"), title_justify="left"
    )
    for header, right in (
        (t("load.compare_cell"), False),
        (t("load.compare_metric"), False),
        ("n A/B", True),
        (t("load.compare_median_a"), True),
        (t("load.compare_median_b"), True),
        (t("load.compare_stdev"), True),
        (t("load.compare_change"), True),
        (t("load.compare_ci"), True),
        ("p", True),
        (t("load.compare_verdict"), False),
    ):
        table.add_column(header, justify="right" if right else "left")
    for row in comparison.rows:
        test = row.test
        ci = DASH if test is None else f"[{fmt_num(test.ci_low, 1)}, {fmt_num(test.ci_high, 1)}]"
        verdict = DASH if row.verdict is None else t(f"load.verdict_{row.verdict.value}")
        style = _VERDICT_STYLE[row.verdict]
        table.add_row(
            escape(row.cell),
            row.metric,
            f"{row.n_a}/{row.n_b}",
            fmt_num(row.median_a, 1),
            fmt_num(row.median_b, 1),
            f"{fmt_num(row.stdev_a, 1)} / {fmt_num(row.stdev_b, 1)}",
            fmt_pct(row.change),
            ci,
            DASH if test is None else f"{test.p_value:.3g}",
            f"[{style}]{escape(verdict)}[/]" if style else escape(verdict),
        )
    print_table(out, table)
    if not comparison.rows:
        terminal.info(t("load.compare_nothing"))


def _confirm(listings: list[RunListing], args: argparse.Namespace, terminal: Terminal) -> bool:
    for run in listings:
        terminal.stderr.print(
            escape(f"  {run.run_id}  {run.started_at}  {run.status}  {', '.join(run.models)}")
        )
    if args.yes:
        return True
    if not terminal.stdin_isatty:
        raise UsageError(t("load.need_yes"))
    try:
        terminal.stderr.print(escape(t("load.confirm_delete", count=len(listings))), end="")
        answer = terminal.stdin.readline()
    except (EOFError, OSError):
        answer = ""
    return answer.strip().lower() in ("y", "yes", "是", "好")


def _delete(store: HistoryStore, args: argparse.Namespace, terminal: Terminal) -> int:
    ids = args.action[1:]
    if not ids:
        raise UsageError(t("report.history_usage"))
    full = [store.resolve(r) for r in ids]  # an unknown id fails before any question
    listings = [run for run in store.list_runs(limit=0) if run.run_id in full]
    if not _confirm(listings, args, terminal):
        terminal.info(t("load.nothing_deleted"))
        return int(ExitStatus.ERROR)
    deleted = store.delete_runs(full)
    terminal.info(t("load.deleted", count=len(deleted)))
    return 0


def _prune(store: HistoryStore, args: argparse.Namespace, terminal: Terminal) -> int:
    if args.keep is None and args.older_than is None:
        raise UsageError(t("load.prune_usage"))
    if args.keep is not None and args.keep < 0:
        raise UsageError(t("load.prune_usage"))
    older = None if args.older_than is None else datetime.now(UTC) - parse_age(args.older_than)
    listings = store.prune_candidates(keep=args.keep, older_than=older)
    if not listings:
        terminal.info(t("load.nothing_to_prune"))
        return 0
    if not _confirm(listings, args, terminal):
        terminal.info(t("load.nothing_deleted"))
        return int(ExitStatus.ERROR)
    deleted = store.delete_runs([run.run_id for run in listings])
    terminal.info(t("load.deleted", count=len(deleted)))
    return 0


def run(args: argparse.Namespace, settings: Settings, terminal: Terminal) -> int:
    pair = _pair(args)
    action = args.action[0] if args.action else None
    if not HistoryStore.exists(settings.home):
        if pair or action in ("delete",):
            raise UsageError(t("report.no_runs", path=str(settings.home)))
        terminal.info(t("report.no_runs", path=str(settings.home)))
        return 0
    with HistoryStore.open(settings.home) as store:
        if pair:
            if not 0 < args.alpha < 1:
                raise UsageError(t("load.bad_alpha", value=args.alpha))
            comparison = compare_stats(
                store.load_run(pair[0]), store.load_run(pair[1]), alpha=args.alpha
            )
            print_stat_compare(comparison, terminal)
            if args.fail_on_regression and comparison.regressions:
                return int(ExitStatus.FAILURES)
            return 0
        if action == "delete":
            return _delete(store, args, terminal)
        if action == "prune":
            return _prune(store, args, terminal)
        listings = store.list_runs(limit=args.limit, model=args.model)
    if not listings:
        key = "report.no_runs_model" if args.model else "report.no_runs"
        terminal.info(t(key, path=str(settings.home), model=args.model))
        return 0
    print_history(terminal.stdout, listings)
    return 0
