"""What a load run is (:class:`LoadPlan`), how it is kept (:class:`Recorder`) and how it ends
(:func:`finish`): shared by the command (:mod:`ollamakit.load.cli`) and the Locust mode
(:mod:`ollamakit.load.locust_cli`), so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollamakit.config import Settings
from ollamakit.errors import ExitStatus, OllamakitError
from ollamakit.i18n import t
from ollamakit.load.analysis import (
    SloTarget,
    slo_to_json,
)
from ollamakit.load.dataset import Dataset, describe
from ollamakit.load.document import finish_document, result_of
from ollamakit.load.engine import Level, LevelRun, Schedule
from ollamakit.measure.schema import RunDocument
from ollamakit.ui.terminal import Terminal


@dataclass(frozen=True)
class LoadPlan:
    """Everything a run needs, validated."""

    levels: tuple[Level, ...]  # empty for a sweep
    sweep: bool
    schedule: Schedule
    slo: tuple[SloTarget, ...]
    dataset: Dataset
    num_predict: int | None
    timeout_s: float
    label: str | None
    outputs: tuple[Path, ...] = field(default_factory=tuple)

    def config(self, model: str) -> dict[str, Any]:
        s = self.schedule
        return {
            "mode": "sweep" if self.sweep else self.levels[0].kind if self.levels else "users",
            "models": [model],
            "levels": [lv.label for lv in self.levels],
            "concurrency": [int(lv.value) for lv in self.levels if lv.kind == "users"],
            "duration_s": s.duration_s,
            "ramp_s": s.ramp_s,
            "think_s": s.think_s,
            "seed": s.seed,
            "slo": slo_to_json(self.slo),
            "dataset": describe(self.dataset),
            "num_predict": self.num_predict,
            "timeout_s": self.timeout_s,
            "temperature": 0.0,
        }


class Recorder:
    """Collects levels; writes each finished level's rows to the history store."""

    def __init__(self, doc: RunDocument, model: str, store: Any) -> None:
        self.doc = doc
        self.model = model
        self.store = store
        self.runs: list[LevelRun] = []

    def begin(self) -> None:
        if self.store is not None:
            self.store.begin_run(self.doc)

    def level_done(self, run: LevelRun) -> None:
        self.runs.append(run)
        rows = [
            result_of(s, self.model, run)
            for s in sorted(run.samples, key=lambda s: s.request.planned_ns)
        ]
        self.doc["results"].extend(rows)
        if self.store is not None:
            for row in rows:
                self.store.add_result(self.doc["run_id"], row)

    def finish(self, slo: Sequence[SloTarget], interrupted: bool) -> RunDocument:
        if self.doc["status"] != "running":
            return self.doc
        finish_document(self.doc, self.runs, slo, interrupted=interrupted)
        if self.store is not None:
            self.store.finish_run(self.doc["run_id"], self.doc)
        return self.doc


def finish(
    doc: RunDocument, plan: LoadPlan, *, saved: bool, settings: Settings, terminal: Terminal
) -> int:
    """The table, the answer, where it went, and the exit status."""
    from ollamakit.load.render import print_levels, write_output

    to_stdout = any(str(o) == "-" for o in plan.outputs)
    print_levels(doc, terminal.stderr if to_stdout else terminal.stdout)
    if saved:
        terminal.info(t("load.saved", run_id=doc["run_id"], home=str(settings.home)))
    write_failed = False
    for path in plan.outputs:
        try:
            write_output(doc, path)
        except OllamakitError as exc:
            terminal.print_error(exc)
            write_failed = True
            continue
        if str(path) != "-":
            terminal.info(t("load.wrote", path=str(path)))
    if doc["status"] == "interrupted":
        terminal.warn(t("load.interrupted", count=len(doc["results"])))
        return int(ExitStatus.INTERRUPTED)
    measured = [r for r in doc["results"] if r.get("phase") != "ramp"]
    failed = write_failed or not measured or any(not r["ok"] for r in measured)
    return int(ExitStatus.FAILURES if failed else ExitStatus.OK)
