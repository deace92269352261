"""``ollamakit history``: list saved runs, and compare two of them.

::

    ollamakit history [--limit N] [--model NAME]      newest runs first
    ollamakit history compare RUN_A RUN_B             (or: --compare RUN_A RUN_B)

Run ids may be shortened to any unambiguous prefix. ``--model llama3.2`` matches every tag
of that model. A missing history database is not created by reading it.
"""

from __future__ import annotations

import argparse

from ollamakit.config import Settings
from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.report.compare import compare_runs
from ollamakit.report.listing import print_history
from ollamakit.report.tables import print_compare
from ollamakit.store import HistoryStore
from ollamakit.ui.terminal import Terminal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", nargs="*", metavar="compare RUN_A RUN_B", help=t("report.help_compare_action")
    )
    parser.add_argument(
        "--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help=t("report.help_compare")
    )
    parser.add_argument(
        "-n", "--limit", type=int, default=20, metavar="N", help=t("report.help_limit")
    )
    parser.add_argument("--model", metavar="NAME", help=t("report.help_model"))


def _pair(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.compare:
        if args.action:
            raise UsageError(t("report.history_usage"))
        return args.compare[0], args.compare[1]
    if not args.action:
        return None
    if args.action[0] == "compare" and len(args.action) == 3:
        return args.action[1], args.action[2]
    raise UsageError(t("report.history_usage"))


def run(args: argparse.Namespace, settings: Settings, terminal: Terminal) -> int:
    pair = _pair(args)
    if not HistoryStore.exists(settings.home):
        if pair:
            raise UsageError(t("report.no_runs", path=str(settings.home)))
        terminal.info(t("report.no_runs", path=str(settings.home)))
        return 0
    with HistoryStore.open(settings.home) as store:
        if pair:
            comparison = compare_runs(store.load_run(pair[0]), store.load_run(pair[1]))
            print_compare(comparison, terminal.stdout)
            return 0
        listings = store.list_runs(limit=args.limit, model=args.model)
    if not listings:
        key = "report.no_runs_model" if args.model else "report.no_runs"
        terminal.info(t(key, path=str(settings.home), model=args.model))
        return 0
    print_history(terminal.stdout, listings)
    return 0
