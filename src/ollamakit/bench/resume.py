"""``bench --resume RUN``: finish a run that Ctrl-C, a signal or a crash cut short.

::

    ollamakit bench --auto --model llama3.2 --runs 5          # Ctrl-C half way: run 3f2a…
    ollamakit bench --auto --model llama3.2 --runs 5 --resume 3f2a

The interrupted run is re-opened in the history (status ``interrupted``, or ``running`` when
the process died without closing it) and goes on under the same run id:

* The same flags are needed: the plan's configuration (models, prompts, runs, warm-up,
  concurrency, num_predict, seed, timeout ...) must equal the saved one, and so must the server
  (its redacted URL and its version). Any difference is refused before a request is sent, naming
  each setting with both values: mixing two configurations in one run would make its medians
  meaningless. A complete run is refused too (there is nothing left to measure).
* A *batch* — (model, prompt, run, concurrency): ``c`` streams started together — counts as
  measured when all its ``c`` results are saved (a failed request is a result). A batch cut
  short mid-way is measured again in full, and its partial rows are deleted from the history
  first: a batch of 8 with 3 survivors is not a measurement at concurrency 8.
* A model with every batch measured is skipped, warm-up included; a model with batches left is
  warmed up again (its load time is measured anew and replaces the saved one).
* A concurrency level finished in the first session keeps its aggregate row; a level that
  was cut short gets a row computed from the batches measured now (the wall time of the first
  session's batches is not saved).
* The run marker of every new request differs from those of the first session, so no request
  is served from the first session's prompt cache.

At the end the run is marked ``complete`` (or ``interrupted`` again, to be resumed again).
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from ollamakit.bench.runner import BenchPlan, StoreSink
from ollamakit.config import Settings
from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.measure.schema import RequestResult, RunDocument

#: Statuses a run can be resumed from.
RESUMABLE: Final = ("interrupted", "running")

Batch = tuple[str, str, int, int]  # model, prompt_id, run, concurrency


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", metavar="RUN", default=None, help=t("regress.help_resume"))


def _batch_of(result: RequestResult) -> Batch:
    level = max(1, int(result.get("concurrency") or 1))
    return (
        str(result.get("model", "")),
        str(result.get("prompt_id", "")),
        int(result.get("run_index") or 0) // level,
        level,
    )


@dataclass
class Resume:
    """The saved part of an interrupted run, and what is left of its plan."""

    doc: RunDocument
    done: set[Batch] = field(default_factory=set)
    partial: list[RequestResult] = field(default_factory=list)  # cut-short batches' rows
    plan: BenchPlan | None = None
    #: Sequence numbers of this session's run markers start here, far from earlier sessions'.
    sequence_start: int = field(default_factory=lambda: (1 + secrets.randbelow(10**6)) * 10**6)

    @classmethod
    def of(cls, doc: RunDocument) -> Resume:
        """Sort the saved results into measured batches and cut-short ones.

        >>> from ollamakit.measure.schema import Identity, empty_result
        >>> rows = [empty_result(Identity("m", "p", "c", i, 2)) for i in range(3)]
        >>> r = Resume.of({"results": rows})  # type: ignore[typeddict-item]
        >>> sorted(r.done), [x["run_index"] for x in r.partial]
        ([('m', 'p', 0, 2)], [2])
        """
        counts: dict[Batch, int] = {}
        for result in doc.get("results") or []:
            batch = _batch_of(result)
            counts[batch] = counts.get(batch, 0) + 1
        done = {b for b, n in counts.items() if n >= b[3]}
        partial = [r for r in doc.get("results") or [] if _batch_of(r) not in done]
        return cls(doc, done, partial)

    # ------------------------------------------------------------------ checks

    def check(self, plan: BenchPlan, base_url: str, version: str) -> None:
        """Refuse (UsageError, exit 2) when the plan or the server is not the saved run's."""
        run_id = self.doc["run_id"]
        saved: dict[str, Any] = dict(self.doc.get("config") or {})
        now: dict[str, Any] = dict(plan.config())
        differences = [
            t("regress.resume_difference", key=key, saved=_show(saved.get(key)), now=_show(value))
            for key, value in now.items()
            if _norm(saved.get(key)) != _norm(value)
        ]
        server = self.doc.get("server") or {}
        if server.get("base_url") != base_url:
            differences.append(
                t(
                    "regress.resume_difference",
                    key="server",
                    saved=server.get("base_url"),
                    now=base_url,
                )
            )
        if server.get("version") != version:
            differences.append(
                t(
                    "regress.resume_difference",
                    key="server version",
                    saved=server.get("version"),
                    now=version,
                )
            )
        if differences:
            raise UsageError(
                t("regress.resume_differs", run_id=run_id, differences="; ".join(differences))
            )
        self.plan = plan

    # ------------------------------------------------------------------ the runner's hooks

    def batch_done(self, model: str, prompt_id: str, run: int, level: int) -> bool:
        return (model, prompt_id, run, level) in self.done

    def model_done(self, model: str) -> bool:
        plan = self.plan
        if plan is None:
            return False
        return all(
            (model, prompt.id, run, level) in self.done
            for level in plan.concurrency
            for prompt in plan.suite.prompts
            for run in range(plan.runs)
        )

    def level_done(self, model: str, level: int) -> bool:
        plan = self.plan
        if plan is None:
            return False
        return all(
            (model, prompt.id, run, level) in self.done
            for prompt in plan.suite.prompts
            for run in range(plan.runs)
        )

    def requests_left(self) -> int:
        """Requests this session sends: warm-ups of unfinished models, unmeasured batches."""
        plan = self.plan
        if plan is None:
            return 0
        total = 0
        for model in plan.models:
            if self.model_done(model):
                continue
            total += plan.warmup
            for level in plan.concurrency:
                for prompt in plan.suite.prompts:
                    for run in range(plan.runs):
                        if not self.batch_done(model, prompt.id, run, level):
                            total += level
        return total

    def news(self) -> str:
        """ "Resuming run 3f2a…: 4 of 10 batch(es) measured, 6 request(s) to go." """
        plan = self.plan
        batches = 0 if plan is None else len(plan.models) * len(plan.suite.prompts) * plan.runs
        batches *= 1 if plan is None else len(plan.concurrency)
        return t(
            "regress.resuming",
            run_id=self.doc["run_id"],
            done=len(self.done),
            batches=batches,
            dropped=len(self.partial),
            left=self.requests_left(),
        )

    def document(self, fresh: RunDocument) -> RunDocument:
        """The saved document, re-opened: what the runner continues instead of ``fresh``.

        The saved header stays (run id, start time, label); the results are those of measured
        batches; cold loads and concurrency rows of the parts measured again are dropped.
        """
        doc: RunDocument = {**self.doc}
        doc["status"] = "running"
        doc["finished_at"] = None
        doc["results"] = [r for r in self.doc.get("results") or [] if _batch_of(r) in self.done]
        doc["cold_loads"] = [
            c for c in self.doc.get("cold_loads") or [] if self.model_done(c.get("model", ""))
        ]
        doc["concurrency_summary"] = [
            row
            for row in self.doc.get("concurrency_summary") or []
            if self.level_done(row.get("model", ""), int(row.get("concurrency", 1)))
        ]
        doc["server"] = {**fresh["server"], "base_url": self.doc["server"]["base_url"]}
        return doc


def _norm(value: object) -> object:
    """Lists and tuples compare equal; ints and equal floats too (JSON round trip)."""
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _show(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return "—" if value is None else str(value)


def open_resume(run_id: str | None, settings: Settings, no_save: bool) -> Resume | None:
    """Read the run to resume from the history; ``None`` without ``--resume``."""
    if run_id is None:
        return None
    if no_save:
        raise UsageError(t("regress.resume_no_save"))
    from ollamakit.store import HistoryStore

    if not HistoryStore.exists(settings.home):
        raise UsageError(t("report.unknown_run", run_id=run_id))
    with HistoryStore.open(settings.home) as store:
        doc = store.load_run(run_id)  # unknown / ambiguous: UsageError
    if doc.get("status") not in RESUMABLE:
        raise UsageError(t("regress.resume_complete", run_id=doc["run_id"]))
    return Resume.of(doc)


class ResumeSink(StoreSink):
    """The history, for a resumed run: the run exists, its cut-short batches are dropped."""

    def __init__(self, store: Any, resume: Resume, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self.resume = resume

    def begin(self, doc: RunDocument) -> None:
        self.run_id = doc["run_id"]
        cells = [
            (
                str(r.get("model", "")),
                str(r.get("prompt_id", "")),
                int(r.get("run_index") or 0),
                int(r.get("concurrency") or 1),
            )
            for r in self.resume.partial
        ]
        from ollamakit.errors import OllamakitError

        try:
            if cells:
                self.store.delete_results(self.run_id, cells)
            self.store.finish_run(self.run_id, doc)  # status back to "running"
        except OllamakitError as exc:
            self._failed(exc)
            return
        self._begun = True
        self._added = len(doc["results"])  # already stored: finish() catches up from here


__all__ = ["RESUMABLE", "Resume", "ResumeSink", "add_arguments", "open_resume"]
