"""``ollamakit report [RUN_ID] [--output FILE ...] [--format md|csv|json|html]``.

Renders a saved run: by default the newest one in the history, or the one whose id (or
unambiguous prefix, as ``ollamakit history`` lists them) is given, or a ``run.json`` file
written by ``--output``. Without ``--output`` or ``--format`` it prints the run's facts and
the terminal summary; ``--output`` writes files (format by extension, repeatable);
``--format`` prints one format to standard output, for pipes.

Like every command module, :func:`run` does no error handling: a bad id or path raises
:class:`~ollamakit.errors.UsageError` and ``ollamakit.cli.main`` turns it into a message
and exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, cast

import orjson

from ollamakit.config import Settings
from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.measure.schema import RunDocument
from ollamakit.report import FORMATS, output_format, render, write_output
from ollamakit.report.servers import labelled, print_side_by_side
from ollamakit.report.tables import print_header, print_summary
from ollamakit.store import HistoryStore
from ollamakit.ui.terminal import Terminal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", nargs="?", metavar="RUN_ID", help=t("report.help_run_id"))
    parser.add_argument(
        "-o",
        "--output",
        action="append",
        type=Path,
        metavar="FILE",
        help=t("report.help_output"),
    )
    parser.add_argument("--format", choices=FORMATS, help=t("report.help_format"))


def load_document(ref: str | None, home: Path) -> RunDocument:
    """The run ``ref`` names: a ``.json`` file, a run id or prefix, or (None) the newest run."""
    if ref and ref.lower().endswith(".json") and Path(ref).expanduser().is_file():
        return read_json_document(Path(ref).expanduser())
    if not HistoryStore.exists(home):
        raise UsageError(t("report.no_runs", path=str(home)))
    with HistoryStore.open(home) as store:
        run_id = ref or store.latest_run_id()
        if run_id is None:
            raise UsageError(t("report.no_runs", path=str(home)))
        return store.load_run(run_id)


def read_json_document(path: Path) -> RunDocument:
    """A run document from a ``--output run.json`` file, checked just enough to render."""
    try:
        data: Any = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UsageError(t("report.bad_json", path=str(path), error=str(exc))) from None
    required = ("run_id", "server", "results")
    if not isinstance(data, dict) or any(k not in data for k in required):
        raise UsageError(t("report.bad_json", path=str(path), error=t("report.not_a_run")))
    data.setdefault("summary", [])
    data.setdefault("status", "complete")
    data.setdefault("config", {})
    return cast(RunDocument, data)


def run(args: argparse.Namespace, settings: Settings, terminal: Terminal) -> int:
    doc = load_document(args.run_id, settings.home)
    outputs: list[Path] = args.output or []
    for path in outputs:
        output_format(path)  # reject a bad extension before writing anything
    if args.format:
        terminal.stdout.file.write(render(doc, args.format))
        terminal.stdout.file.flush()
    for path in outputs:
        write_output(doc, path)
        if str(path) != "-":
            terminal.info(t("report.wrote", path=str(path)))
    if not outputs and not args.format:
        print_header(doc, terminal.stdout)
        print_summary(labelled(doc), terminal.stdout)
        print_side_by_side(doc, terminal.stdout)  # a run that compared servers
    return 0
