"""``bench --resume RUN``: finish a run that Ctrl-C, a signal or a crash cut short.

::

    ollamakit bench --auto --model llama3.2 --runs 5          # Ctrl-C half way: run 3f2a…
    ollamakit bench --auto --model llama3.2 --runs 5 --resume 3f2a

The interrupted run is re-opened in the history (status ``interrupted``, ``running`` when the
process died without closing it, or ``failed`` when a server went away) and goes on under the
same run id:

* The same flags are needed: the plan's configuration (models, prompts, runs, warm-up,
  concurrency, num_predict, seed, timeout ...) must equal the saved one, and so must the
  servers: for a comparison (``--base-url A --base-url B``, ``--api ollama,openai``) the same
  servers in the same order, each with its redacted URL, its API, its version and its name.
  Any difference is refused before a request is sent, naming each setting with both values:
  mixing two configurations in one run would make its medians meaningless. A complete run is
  refused too (there is nothing left to measure).
* Everything is worked out **per server** (a cell is (server, model, prompt, run,
  concurrency); the server is the row's ``server`` label, the ``name`` of its entry in the
  document's ``servers``). A *batch* — ``c`` streams started together on one server — counts
  as measured when all its ``c`` results are saved (a failed request is a result). A batch
  cut short mid-way is measured again in full on that server, and its partial rows are
  deleted from the history first: a batch of 8 with 3 survivors is not a measurement at
  concurrency 8. Server B's missing batch is measured on B only, never again on A.
* A server whose part had ended (:data:`~ollamakit.bench.runner.MAX_CONNECTION_FAILURES`
  failed connections in a row: ``servers[].ended``, or the ``failed`` status of a one-server
  run) is tried again: its trailing failed rows (the requests that found it gone) are dropped
  and measured again with the rest of what it lacks.
* A model with every batch measured on a server is skipped there, warm-up included; a model
  with batches left is warmed up again on that server (its load time is measured anew and
  replaces the saved one).
* A concurrency level finished in the first session keeps its aggregate row (per server); a
  level that was cut short gets a row computed from the batches measured now (the wall time
  of the first session's batches is not saved).
* The run marker of every new request differs from those of the first session, so no request
  is served from the first session's prompt cache.

Each server's runner sees the run through its own :class:`ServerResume` (the
:class:`~ollamakit.bench.runner.Resumed` hooks for that server), so the earlier rows, cold
loads, levels and ``models`` facts go back to the server that measured them, and the final
summary, side-by-side table and history hold each server's own rows.

At the end the run is marked ``complete`` (or ``interrupted`` again, to be resumed again).
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ollamakit.bench.runner import MAX_CONNECTION_FAILURES, BenchPlan, StoreSink
from ollamakit.config import Settings
from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.measure.schema import (
    ConcurrencyRow,
    LoadInfo,
    ModelFacts,
    RequestResult,
    RunDocument,
)

#: Statuses a run can be resumed from (``failed``: a server went away; it is tried again).
RESUMABLE: Final = ("interrupted", "running", "failed")

Batch = tuple[str, str, int, int]  # model, prompt_id, run, concurrency
Cell = tuple[str, str, str, int, int]  # server, model, prompt_id, run, concurrency


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


def _row_key(result: RequestResult) -> tuple[str, str, int, int]:
    """What the history deletes by: (model, prompt_id, run_index, concurrency)."""
    return (
        str(result.get("model", "")),
        str(result.get("prompt_id", "")),
        int(result.get("run_index") or 0),
        int(result.get("concurrency") or 1),
    )


def saved_names(doc: Mapping[str, Any]) -> list[str]:
    """The saved run's server names, in order (one entry for a run of one server).

    >>> saved_names({"server": {"name": "a"}, "servers": [{"name": "a"}, {"name": "b"}]})
    ['a', 'b']
    >>> saved_names({"server": {"base_url": "http://h"}})  # an older run: no names
    ['']
    """
    servers = [s for s in doc.get("servers") or [] if isinstance(s, Mapping)]
    if not servers:
        servers = [doc.get("server") or {}]
    return [str(s.get("name") or "") for s in servers]


@dataclass(frozen=True, slots=True)
class ServerKey:
    """What must be the same for each server of a resumed run (position matters)."""

    base_url: str
    api: str | None
    version: str | None
    name: str = ""

    def text(self) -> str:
        api = {"ollama": "/api", "openai": "/v1"}.get(self.api or "", self.api or "?")
        return f"{self.base_url} {api} {self.version or '?'}"


def _saved_keys(doc: Mapping[str, Any]) -> list[ServerKey]:
    servers = [s for s in doc.get("servers") or [] if isinstance(s, Mapping)]
    if not servers:
        servers = [doc.get("server") or {}]
    return [
        ServerKey(
            str(s.get("base_url") or ""),
            s.get("api"),
            s.get("version"),
            str(s.get("name") or ""),
        )
        for s in servers
    ]


def _ended(doc: Mapping[str, Any], names: Sequence[str]) -> set[str]:
    """The servers whose part had ended because they went away (tried again on resume)."""
    servers = [s for s in doc.get("servers") or [] if isinstance(s, Mapping)]
    ended = {str(s.get("name") or "") for s in servers if s.get("ended")}
    if len(names) == 1 and doc.get("status") == "failed":
        ended.add(names[0])  # one server: "failed" is the server gone
    failure = str(doc.get("failure") or "")
    for part in failure.split(" · ") if len(names) > 1 else []:  # runs saved before "ended"
        ended.update(n for n in names if n and part.startswith(f"{n}: "))
    return ended


@dataclass
class ServerResume:
    """One server's view of the saved run: the :class:`~ollamakit.bench.runner.Resumed` hooks
    of its runner (:class:`~ollamakit.bench.compare.InterleavedRunner` gives each its own)."""

    owner: Resume
    name: str
    sequence_start: int = 0  # the owner's: this session's run markers

    def batch_done(self, model: str, prompt_id: str, run: int, level: int) -> bool:
        return (self.name, model, prompt_id, run, level) in self.owner.done

    def model_done(self, model: str) -> bool:
        plan = self.owner.plan
        if plan is None:
            return False
        return all(
            self.batch_done(model, prompt.id, run, level)
            for level in plan.concurrency
            for prompt in plan.suite.prompts
            for run in range(plan.runs)
        )

    def level_done(self, model: str, level: int) -> bool:
        plan = self.owner.plan
        if plan is None:
            return False
        return all(
            self.batch_done(model, prompt.id, run, level)
            for prompt in plan.suite.prompts
            for run in range(plan.runs)
        )

    def requests_left(self) -> int:
        """Requests this session sends to this server: warm-ups of unfinished models (the cold
        loads with ``--cold``) and the unmeasured batches."""
        plan = self.owner.plan
        if plan is None:
            return 0
        warmups = max(plan.warmup - 1, 0) + plan.cold_runs if plan.cold else plan.warmup
        total = 0
        for model in plan.models:
            if self.model_done(model):
                continue
            total += warmups
            for level in plan.concurrency:
                for prompt in plan.suite.prompts:
                    for run in range(plan.runs):
                        if not self.batch_done(model, prompt.id, run, level):
                            total += level
        return total

    # ------------------------------------------------------------------ what is kept

    def _mine(self, row: Mapping[str, Any]) -> bool:
        return self.owner.server_of(row) == self.name

    def results(self) -> list[RequestResult]:
        """This server's rows of measured batches (the very objects of :attr:`Resume.kept`)."""
        return [r for r in self.owner.kept if self._mine(r)]

    def cold_loads(self) -> list[LoadInfo]:
        return [
            c
            for c in self.owner.doc.get("cold_loads") or []
            if self._mine(c) and self.model_done(c.get("model", ""))
        ]

    def levels(self) -> list[ConcurrencyRow]:
        return [
            row
            for row in self.owner.doc.get("concurrency_summary") or []
            if self._mine(row)
            and self.level_done(row.get("model", ""), int(row.get("concurrency", 1)))
        ]

    def models(self) -> list[ModelFacts]:
        return [m for m in self.owner.doc.get("models") or [] if self._mine(m)]

    def document(self, fresh: RunDocument) -> RunDocument:
        """The saved document, re-opened: what the runner continues instead of ``fresh``.

        The saved header stays (run id, start time, label); the results are this server's
        rows of measured batches; cold loads and concurrency rows of the parts measured again
        are dropped. (A comparison puts every server's part together at the end.)
        """
        doc: RunDocument = {**self.owner.doc}
        doc["status"] = "running"
        doc["finished_at"] = None
        doc["failure"] = None
        doc["results"] = self.results()
        doc["cold_loads"] = self.cold_loads()
        doc["concurrency_summary"] = self.levels()
        doc["models"] = self.models()
        doc["server"] = {**fresh["server"], "base_url": self.owner.doc["server"]["base_url"]}
        return doc


@dataclass
class Resume:
    """The saved part of an interrupted run, and what is left of its plan, per server.

    Used directly as a runner's :class:`~ollamakit.bench.runner.Resumed`, it is the first
    server's view (a run of one server); :meth:`for_server` gives each compared server its own.
    """

    doc: RunDocument
    done: set[Cell] = field(default_factory=set)
    kept: list[RequestResult] = field(default_factory=list)  # rows of measured batches
    partial: list[RequestResult] = field(default_factory=list)  # rows measured again
    names: list[str] = field(default_factory=lambda: [""])
    #: the servers whose part had ended (gone) in the saved run: tried again now
    ended: set[str] = field(default_factory=set)
    plan: BenchPlan | None = None
    #: Sequence numbers of this session's run markers start here, far from earlier sessions'.
    sequence_start: int = field(default_factory=lambda: (1 + secrets.randbelow(10**6)) * 10**6)

    @classmethod
    def of(cls, doc: RunDocument) -> Resume:
        """Sort the saved results into measured batches and the rows measured again, per server.

        >>> from ollamakit.measure.schema import Identity, empty_result
        >>> rows = [empty_result(Identity("m", "p", "c", i, 2)) for i in range(3)]
        >>> r = Resume.of({"results": rows})  # type: ignore[typeddict-item]
        >>> sorted(r.done), [x["run_index"] for x in r.partial]
        ([('', 'm', 'p', 0, 2)], [2])
        >>> two = [{**row, "server": s} for row in rows[:2] for s in ("a", "b")]
        >>> r = Resume.of({"servers": [{"name": "a"}, {"name": "b"}], "results": two[:3]})
        >>> sorted(r.done), [(x["server"], x["run_index"]) for x in r.partial]
        ([('a', 'm', 'p', 0, 2)], [('b', 0)])
        """
        names = saved_names(doc)
        resume = cls(doc, names=names, ended=_ended(doc, names))
        rows = list(doc.get("results") or [])
        retried = resume._retried(rows)
        counts: dict[Cell, int] = {}
        for result in rows:
            if id(result) not in retried:
                cell = resume.cell_of(result)
                counts[cell] = counts.get(cell, 0) + 1
        resume.done = {c for c, n in counts.items() if n >= c[4]}
        for result in rows:
            keep = id(result) not in retried and resume.cell_of(result) in resume.done
            (resume.kept if keep else resume.partial).append(result)
        return resume

    def _retried(self, rows: Sequence[RequestResult]) -> set[int]:
        """The rows of ended servers that found them gone: their trailing failed requests."""
        retried: set[int] = set()
        for name in self.ended:
            mine = [r for r in rows if self.server_of(r) == name]
            for result in reversed(mine[-MAX_CONNECTION_FAILURES:]):
                if result.get("ok"):
                    break
                retried.add(id(result))
        return retried

    def server_of(self, row: Mapping[str, Any]) -> str:
        """The row's server name; unlabelled (older runs, one server): the first server."""
        label = str(row.get("server") or "")
        return label if label in self.names else self.names[0]

    def cell_of(self, result: RequestResult) -> Cell:
        return (self.server_of(result), *_batch_of(result))

    def for_server(self, name: str) -> ServerResume:
        return ServerResume(
            self, name if name in self.names else self.names[0], self.sequence_start
        )

    @property
    def first(self) -> ServerResume:
        return self.for_server(self.names[0])

    # ------------------------------------------------------------------ checks

    def check(self, plan: BenchPlan, servers: Sequence[ServerKey]) -> None:
        """Refuse (UsageError, exit 2) when the plan or the servers are not the saved run's.

        ``servers``: this command's servers in order (URL redacted, API and version as
        detected, the name each result row will carry).
        """
        run_id = self.doc["run_id"]
        saved: dict[str, Any] = dict(self.doc.get("config") or {})
        now: dict[str, Any] = dict(plan.config())
        differences = [
            t("regress.resume_difference", key=key, saved=_show(saved.get(key)), now=_show(value))
            for key, value in now.items()
            if _norm(saved.get(key)) != _norm(value)
        ]
        before = _saved_keys(self.doc)
        if len(before) != len(servers):
            differences.append(
                t(
                    "regress.resume_difference",
                    key="servers",
                    saved=" · ".join(s.text() for s in before),
                    now=" · ".join(s.text() for s in servers),
                )
            )
        else:
            differences.extend(_server_differences(before, servers))
        if differences:
            raise UsageError(
                t("regress.resume_differs", run_id=run_id, differences="; ".join(differences))
            )
        self.plan = plan

    # ------------------------------------------------------------------ the runner's hooks

    def batch_done(self, model: str, prompt_id: str, run: int, level: int) -> bool:
        return self.first.batch_done(model, prompt_id, run, level)

    def model_done(self, model: str) -> bool:
        return self.first.model_done(model)

    def document(self, fresh: RunDocument) -> RunDocument:
        return self.first.document(fresh)

    def requests_left(self) -> int:
        """Requests this session sends, to every server."""
        return sum(self.for_server(name).requests_left() for name in self.names)

    def news(self) -> str:
        """ "Resuming run 3f2a…: 4 of 10 batch(es) measured, 6 request(s) to go." """
        plan = self.plan
        batches = 0 if plan is None else len(plan.models) * len(plan.suite.prompts) * plan.runs
        batches *= (1 if plan is None else len(plan.concurrency)) * len(self.names)
        line = t(
            "regress.resuming",
            run_id=self.doc["run_id"],
            done=len(self.done),
            batches=batches,
            dropped=len(self.partial),
            left=self.requests_left(),
        )
        if len(self.names) < 2 or plan is None:
            return line
        per_server = batches // len(self.names)
        parts = [
            t(
                "regress.resuming_server",
                server=name,
                done=sum(1 for cell in self.done if cell[0] == name),
                batches=per_server,
                left=self.for_server(name).requests_left(),
            )
            + (t("regress.resuming_ended") if name in self.ended else "")
            for name in self.names
        ]
        return line + " " + "; ".join(parts) + "."


def _server_differences(before: Sequence[ServerKey], now: Sequence[ServerKey]) -> list[str]:
    """Position by position: URL, API, version, name (one server: the keys of older runs)."""
    differences: list[str] = []
    single = len(now) == 1
    for index, (saved, given) in enumerate(zip(before, now, strict=True), 1):
        label = "server" if single else f"server {index}"
        if saved.base_url != given.base_url:
            differences.append(
                t("regress.resume_difference", key=label, saved=saved.base_url, now=given.base_url)
            )
        if saved.api is not None and given.api is not None and saved.api != given.api:
            differences.append(
                t(
                    "regress.resume_difference",
                    key=f"{label} API",
                    saved=saved.text(),
                    now=given.text(),
                )
            )
        if saved.version != given.version:
            differences.append(
                t(
                    "regress.resume_difference",
                    key=f"{label} version",
                    saved=saved.version,
                    now=given.version,
                )
            )
        if not single and saved.name and given.name and saved.name != given.name:
            differences.append(
                t(
                    "regress.resume_difference",
                    key=f"{label} name",
                    saved=saved.name,
                    now=given.name,
                )
            )
    return differences


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
    """The history, for a resumed run: the run exists, the rows measured again are dropped.

    The history deletes rows by (model, prompt, run_index, concurrency), whatever their server:
    the rows of other servers sharing such a key (their batch was measured) are written back.
    """

    def __init__(self, store: Any, resume: Resume, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self.resume = resume

    def begin(self, doc: RunDocument) -> None:
        self.run_id = doc["run_id"]
        cells = list(dict.fromkeys(_row_key(r) for r in self.resume.partial))
        wanted = set(cells)
        restore = [r for r in self.resume.kept if _row_key(r) in wanted]
        from ollamakit.errors import OllamakitError

        try:
            if cells:
                self.store.delete_results(self.run_id, cells)
                for result in restore:
                    self.store.add_result(self.run_id, result)
            self.store.finish_run(self.run_id, doc)  # status back to "running"
        except OllamakitError as exc:
            self._failed(exc)
            return
        self._begun = True
        # Already stored (every server's): finish() catches up from here; a comparison's
        # document lists the kept rows first (bench/compare.py).
        self._added = len(self.resume.kept)


__all__ = [
    "RESUMABLE",
    "Resume",
    "ResumeSink",
    "ServerKey",
    "ServerResume",
    "add_arguments",
    "open_resume",
    "saved_names",
]
