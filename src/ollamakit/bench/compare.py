"""Engines side by side: one benchmark run against several servers, interleaved.

Spelling (docs/engines.md)
--------------------------
``bench --base-url A --base-url B`` compares two servers; ``--api`` takes one value for all
or a comma list matched to the ``--base-url`` values by position. With one ``--base-url`` and
a list, the same server is asked through each API: ``--base-url http://h:11434 --api
ollama,openai`` is "Ollama's native API against its own /v1" in one command.

Design
------
The run is interleaved so that drift (thermal throttling, another process, a model being
paged) hits every server alike: for each prompt and run, the batch goes to server A, then to
B, and so on, before the next run. :class:`InterleavedRunner` is the first server's
:class:`~ollamakit.bench.runner.Runner`; the others' runners (*peers*, never executed
themselves) are driven from it step by step. Each server keeps its own runner state, so
everything that follows from an answer is that server's own (issue 9):

* fail fast: a model whose warm-up fails on B, or that fails
  :data:`~ollamakit.bench.runner.MAX_FAILURES_IN_A_ROW` requests in a row there, is skipped
  on B only; :data:`~ollamakit.bench.runner.MAX_CONNECTION_FAILURES` failed connections in a
  row end B's part, and the others go on to the end (the healthy server's numbers are whole;
  the run is still ``failed``, exit 2);
* residency: each Ollama server's ``/api/ps`` after its own warm-up (``/v1`` has none:
  ``residency_absent: "no_api_ps"``, shown as such);
* the think plan (:func:`think_plans`): each server's version gates the levels, and ``/v1``
  carries only what it can (``reasoning_effort``), recorded in ``config.servers``;
* ``--cold``, the pinned ``keep_alive`` and ``--num-ctx``: sent where the API has them, said
  where not (:func:`server_notices`).

Every result row carries ``server`` (the ``name`` of its entry in the document's ``servers``
list); summary, concurrency, cold-load and ``models`` rows too; ``server`` at the top stays the
first server's (older readers see a normal run of it).

The models come from the first server unless ``--model`` is given: llama.cpp serves one model
whatever the request names, and Ollama's ``/v1`` knows the same names as its ``/api``.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, cast

from ollamakit.bench.backends import open_bench_backend, round_trip_ms, server_info
from ollamakit.bench.resume import Resume, ServerResume
from ollamakit.bench.runner import (
    RTT_SAMPLES,
    BenchPlan,
    Event,
    Listener,
    NullSink,
    ResultSink,
    Runner,
    _ModelState,
    _ServerGone,
    _SkipModel,
    buffering_hints,
    residency_hints,
    thinking_cap_hints,
    throughput_hints,
)
from ollamakit.bench.suites import Prompt
from ollamakit.client import identity_line
from ollamakit.config import Settings, parse_api, parse_base_url
from ollamakit.domain import ModelInfo, ServerIdentity, Think
from ollamakit.errors import OllamakitError, UsageError
from ollamakit.i18n import t
from ollamakit.measure.schema import (
    ConcurrencyRow,
    LoadInfo,
    ModelFacts,
    RequestResult,
    RunConfig,
    RunDocument,
    ServerInfo,
    SummaryRow,
)
from ollamakit.measure.stats import concurrency_row, median_p95, summary_rows
from ollamakit.selection import SelectionError, ThinkMode, can_think, think_plan

if TYPE_CHECKING:
    import argparse


@dataclass(frozen=True, slots=True)
class Target:
    """One server to benchmark: its settings and the API asked (``auto`` until detected)."""

    settings: Settings
    api: str
    identity: ServerIdentity | None = None
    name: str = ""

    @property
    def url(self) -> str:
        return self.settings.base_url.redacted()

    def line(self) -> str:
        """The one detection line (``identity_line``)."""
        assert self.identity is not None
        return identity_line(self.identity, self.url)


def targets_from_args(args: argparse.Namespace, settings: Settings) -> list[Target]:
    """The servers of ``--base-url`` (repeatable for bench) × ``--api`` (one, or a list).

    >>> import argparse
    >>> from ollamakit.config import Settings, parse_base_url
    >>> s = Settings(parse_base_url("http://127.0.0.1:11434"))
    >>> ns = argparse.Namespace(base_urls=None, api="ollama,openai")
    >>> [(t.url, t.api) for t in targets_from_args(ns, s)]
    [('http://127.0.0.1:11434', 'ollama'), ('http://127.0.0.1:11434', 'openai')]
    >>> ns = argparse.Namespace(base_urls=["http://a:1", "http://b:2"], api=None)
    >>> [(t.url, t.api) for t in targets_from_args(ns, s)]
    [('http://a:1', 'auto'), ('http://b:2', 'auto')]
    """
    urls: list[str | None] = list(getattr(args, "base_urls", None) or []) or [None]
    api_text = getattr(args, "api", None)
    apis: list[str] = (
        [parse_api(a, key="--api") for a in api_text.split(",")]
        if isinstance(api_text, str) and api_text.strip()
        else [settings.api]
    )
    if len(urls) == 1:
        urls = urls * len(apis)
    elif len(apis) == 1:
        apis = apis * len(urls)
    if len(urls) != len(apis):
        raise UsageError(t("bench.compare_api_count", urls=len(urls), apis=len(apis)))
    targets: list[Target] = []
    for url, api in zip(urls, apis, strict=True):
        server = parse_base_url(url, key="--base-url") if url is not None else settings.base_url
        one = dataclasses.replace(settings, base_url=server, api=api)  # type: ignore[arg-type]
        targets.append(Target(one, api))
    return targets


def name_targets(targets: Sequence[Target]) -> list[Target]:
    """Give each detected target a short unique name: ``ollama /api``, ``llama.cpp /v1``.

    >>> from ollamakit.config import Settings, parse_base_url
    >>> s = Settings(parse_base_url("h"))
    >>> ids = [ServerIdentity("ollama", "ollama"), ServerIdentity("ollama", "ollama")]
    >>> [t.name for t in name_targets([Target(s, "ollama", i) for i in ids])]
    ['ollama /api', 'ollama /api #2']
    """
    named: list[Target] = []
    seen: dict[str, int] = {}
    for target in targets:
        assert target.identity is not None
        base = f"{target.identity.engine} {'/v1' if target.identity.api == 'openai' else '/api'}"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base} #{seen[base]}"
        named.append(dataclasses.replace(target, name=name, api=target.identity.api))
    return named


def server_label(target: Target) -> str:
    """``Ollama 0.33.0``, ``llama.cpp /v1``, ``Ollama 0.33.0 /v1``: for the plan line.

    >>> from ollamakit.config import Settings, parse_base_url
    >>> s = Settings(parse_base_url("h"))
    >>> server_label(Target(s, "ollama", ServerIdentity("ollama", "ollama", "0.33.0")))
    'Ollama 0.33.0'
    >>> server_label(Target(s, "openai", ServerIdentity("openai", "llama.cpp", None)))
    'llama.cpp /v1'
    """
    assert target.identity is not None
    names = {"ollama": "Ollama", "vllm": "vLLM", "lm-studio": "LM Studio", "sglang": "SGLang"}
    text = names.get(target.identity.engine, target.identity.engine)
    if target.identity.version:
        text += f" {target.identity.version}"
    return text + (" /v1" if target.identity.api == "openai" else "")


class ServerPlan(TypedDict):
    """``config.servers[]`` of a comparison: what each server was sent, on its own terms."""

    name: str
    #: per model, the thinking control on the wire: Ollama's ``think`` on ``/api``,
    #: ``reasoning_effort`` on ``/v1`` (a level; ``max`` → ``high``); None: nothing sent
    think_sent: dict[str, bool | str | None]
    think_field: str  # "think" or "reasoning_effort"
    keep_alive: str | None  # None: the API has no keep_alive (/v1): the server's own applies
    num_ctx: int | None  # None: not sent (the server's default; /v1 has no field)
    cold: bool  # loads forced cold (--cold) on this server; False where the API cannot unload


class CompareConfig(RunConfig, total=False):
    """The run's ``config`` with the per-server plan of a comparison."""

    servers: list[ServerPlan]


class CompareServerInfo(ServerInfo, total=False):
    """``servers[]`` of a comparison: ``ended`` says why that server's part stopped early
    (its connections failed; ``bench --resume`` tries it again)."""

    ended: str


class ServerModelFacts(ModelFacts, total=False):
    """``models[]`` of a comparison: one per server and model, with ``server``."""

    server: str
    #: why no residency was recorded: "no_api_ps" (the API has none: /v1), "not_listed"
    #: (``/api/ps`` did not list the model), "ps_failed" (``/api/ps`` answered an error)
    residency_absent: str


def _on_v1(target: Target) -> bool:
    return target.api == "openai" or (
        target.identity is not None and target.identity.api == "openai"
    )


def _wire_think(value: Think | None, *, v1: bool) -> Think | None:
    """The thinking control as sent: ``/v1`` has no on/off field, and no ``max``.

    >>> _wire_think(False, v1=False), _wire_think(False, v1=True), _wire_think("max", v1=True)
    (False, None, 'high')
    """
    if not v1:
        return value
    if isinstance(value, str):
        return "high" if value == "max" else value
    return None


def think_plans(
    targets: Sequence[Target], infos: Sequence[ModelInfo], mode: ThinkMode
) -> tuple[list[dict[str, Think | None]], list[str]]:
    """Per server the ``think`` value sent per model, and the notices (each said once).

    One server: exactly :func:`~ollamakit.selection.think_plan` with its version. Several:
    each server's own version gates the levels (an Ollama ``/v1`` too: it passes them on), so a
    level that an older server cannot take is exit 2 naming that server, before anything is
    sent; on ``/v1`` the value is what the wire carries (:func:`_wire_think`), with a notice
    where a thinking model's on/off cannot be said there.
    """

    def version(target: Target) -> str | None:
        ident = target.identity
        return ident.version if ident is not None and ident.engine == "ollama" else None

    if len(targets) == 1:
        values, single = think_plan(infos, mode, version(targets[0]))
        return [values], single
    plans: list[dict[str, Think | None]] = []
    notices: list[str] = []
    for target in targets:
        try:
            values, said = think_plan(infos, mode, version(target))
        except SelectionError as exc:
            hint = exc.hint or ""
            raise SelectionError(f"{target.url} ({target.name}): {exc.message}", hint) from None
        v1 = _on_v1(target)
        wire = {model: _wire_think(value, v1=v1) for model, value in values.items()}
        plans.append(wire)
        notices.extend(n for n in said if n not in notices)
        unsaid = [
            info.name
            for info in infos
            if v1 and can_think(info) is not False and wire.get(info.name) is None
        ]
        if unsaid:
            notices.append(
                t("bench.compare_think_v1", server=target.name, models=", ".join(unsaid))
            )
    return plans, notices


def server_notices(targets: Sequence[Target], plan: BenchPlan) -> list[str]:
    """What a ``/v1`` server of a comparison cannot be sent: ``--num-ctx``, ``--cold``'s
    unload, the pinned ``keep_alive`` (Ollama's ``/v1``; llama-server never unloads)."""
    if len(targets) < 2:
        return []
    notices: list[str] = []
    for target in targets:
        if not _on_v1(target):
            continue
        if plan.num_ctx is not None:
            notices.append(t("bench.compare_no_num_ctx", server=target.name))
            # The same Ollama asked through /api with num_ctx and /v1 without: the model is
            # loaded with one, then the other (sched.go: a num_ctx change reloads).
            native = [o.name for o in targets if not _on_v1(o) and o.url == target.url]
            if native:
                notices.append(
                    t("bench.compare_num_ctx_reloads", server=target.name, native=native[0])
                )
        if plan.cold:
            notices.append(t("bench.compare_no_unload", server=target.name))
        if target.identity is not None and target.identity.engine == "ollama":
            notices.append(t("bench.compare_no_keep_alive", server=target.name))
    return notices


def server_plan(target: Target, plan: BenchPlan) -> ServerPlan:
    """``config.servers[]`` for one server (its plan's ``think`` values are already the wire's)."""
    v1 = _on_v1(target)
    return {
        "name": target.name,
        "think_sent": {m: plan.think_by_model.get(m) for m in plan.models},
        "think_field": "reasoning_effort" if v1 else "think",
        "keep_alive": None if v1 else plan.keep_alive,
        "num_ctx": None if v1 else plan.num_ctx,
        "cold": plan.cold and not v1,
    }


def make_runner(
    targets: Sequence[Target],
    plan: BenchPlan,
    sink: ResultSink,
    *,
    max_connections: int,
    think_by_server: Sequence[Mapping[str, Think | None]] | None = None,
) -> Runner:
    """A :class:`Runner` for one target, an :class:`InterleavedRunner` for several.

    ``think_by_server`` (:func:`think_plans`): each server's ``think`` per model; without it
    every server gets the plan's.
    """

    def runner(target: Target, plan: BenchPlan, sink: ResultSink) -> Runner:
        return Runner(
            client=open_bench_backend(target.settings, target.api, max_connections=max_connections),
            plan=plan,
            base_url=target.url,
            sink=sink,
            client_factory=lambda: open_bench_backend(
                target.settings, target.api, max_connections=2
            ),
        )

    if len(targets) == 1:
        return runner(targets[0], plan, sink)
    plans = [
        plan
        if think_by_server is None
        else dataclasses.replace(plan, think_by_model=dict(think_by_server[i]))
        for i in range(len(targets))
    ]
    first = runner(targets[0], plans[0], sink)
    peers = [runner(target, plans[i + 1], NullSink()) for i, target in enumerate(targets[1:])]
    return InterleavedRunner(
        client=first.client,
        plan=plans[0],
        base_url=first.base_url,
        sink=sink,
        client_factory=first.client_factory,
        peers=peers,
        names=[target.name for target in targets],
        server_plans=[server_plan(target, plans[i]) for i, target in enumerate(targets)],
    )


def total_requests(runner: Runner) -> int:
    """Requests the run sends to all its servers (the progress bar's total)."""
    peers = runner.peers if isinstance(runner, InterleavedRunner) else []
    return runner.plan.total_requests * (1 + len(peers))


def _naming_server(listener: Listener | None) -> Listener | None:
    """Progress lines of a comparison name the server: ``fast:1b @ ollama /v1 · greeting``."""
    if listener is None:
        return None
    inner = listener

    def call(event: Event) -> None:
        row = event.result
        named = {**row, "model": f"{row['model']} @ {row.get('server', '?')}"}
        inner(dataclasses.replace(event, result=named))  # type: ignore[arg-type]

    return call


@dataclass
class InterleavedRunner(Runner):
    """Several servers, one plan: each step of a model goes to every server still in it.

    ``self`` is the first server's :class:`Runner` (its document is the one saved); ``peers``
    are the others' runners, driven step by step from here and never executed themselves.
    Each server keeps its own results, cold loads, levels, ``models`` facts, failure counters
    and connection count, so fail fast, residency, cold loads and the ``think`` plan are every
    server's own; :meth:`_merge` puts them together with ``server`` on every row.
    """

    peers: list[Runner] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # names[0]: this runner's server
    server_plans: list[ServerPlan] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._peer_servers: list[ServerInfo] = []
        self._all: list[RequestResult] = []  # every measured row, in the order sent
        self._gone: dict[int, str] = {}  # server index → why its part of the run ended
        self._views: list[ServerResume] = []  # --resume: each server's view of the saved run

    def _resume_each(self) -> None:
        """``--resume``: each server gets its own view (bench/resume.py) and its own earlier
        rows, cold loads and levels; the kept rows of every server open the document."""
        whole = self.resume
        if not isinstance(whole, Resume):
            return
        self._views = [whole.for_server(name) for name in self.names]
        self.resume = self._views[0]  # execute() takes this server's part of the document
        self._all = list(whole.kept)
        for peer, view in zip(self.peers, self._views[1:], strict=True):
            peer.resume = view
            peer._results = view.results()
            peer._cold_loads = view.cold_loads()
            peer._levels = view.levels()
            peer._sequence = view.sequence_start

    @property
    def servers(self) -> list[Runner]:
        return [self, *self.peers]

    async def execute(self) -> RunDocument:
        self.listener = _naming_server(self.listener)
        self._resume_each()
        for index, peer in enumerate(self.peers):
            identity = await peer.client.connect()  # unreachable / 401: raises
            rtts_ms = [await round_trip_ms(peer.client) for _ in range(RTT_SAMPLES)]
            peer._rtt_ms = statistics.median(rtts_ms)
            info = server_info(peer.base_url, identity, median_p95(rtts_ms))
            info["name"] = self.names[index + 1]
            self._peer_servers.append(info)
            peer.listener = self.listener
            # peer.run_id stays its own: the run marker opening every prompt must differ
            # between servers, or Ollama's /api and /v1 would share one prefix cache entry.
            peer.server_name = info["name"]
        return await super().execute()

    async def _run_models(self, doc: RunDocument) -> None:
        self.server_name = self.names[0]
        # --resume: each server's facts of the models it had measured
        earlier = [{m.get("model"): m for m in view.models()} for view in self._views]
        for model in self.plan.models:
            if len(self._gone) == len(self.servers):
                break  # every server's part has ended: nothing left to ask
            await self._everywhere(model, earlier)

    def _end(self, index: int) -> None:
        """Too many failed connections in a row on one server: its part ends, the rest go on."""
        server = self.servers[index]
        reason = t("bench.compare_server_gone", count=server._connection_failures)
        self._gone[index] = reason
        server._failure = reason

    async def _everywhere(self, model: str, earlier: Sequence[Mapping[Any, ModelFacts]]) -> None:
        """One model on every server still running: warm-ups server by server, then each
        batch on each server in turn. A model skipped on one server goes on on the others."""
        facts: dict[int, ModelFacts] = {}
        states: dict[int, _ModelState] = {}
        for index, server in enumerate(self.servers):
            if index in self._gone:
                continue  # not asked: the failure line says why its part ended
            one: ModelFacts = {"model": model, "skipped": None}
            done_before = server.resume is not None and server.resume.model_done(model)
            if done_before and index < len(earlier):  # measured on this server before
                one = earlier[index].get(model) or one
            server._models.append(one)
            facts[index] = one
            if done_before:
                continue
            try:
                states[index] = await server._warm(model, one)
            except _SkipModel as skip:
                one["skipped"] = str(skip)
            except _ServerGone:
                self._end(index)
        prompts = self.plan.suite.prompts
        for level in self.plan.concurrency:
            rows: dict[int, list[RequestResult]] = {i: [] for i in states}
            walls: dict[int, int] = dict.fromkeys(states, 0)
            for index in list(states):
                try:
                    await self.servers[index]._prepare_lanes(level)
                except OllamakitError as exc:
                    reason = t("bench.compare_lanes_failed", level=level, error=exc.short)
                    facts[index]["skipped"] = reason
                    del states[index]
            try:
                for prompt in prompts:
                    for run in range(self.plan.runs):
                        if not states:
                            return
                        await self._round(model, prompt, run, level, facts, states, rows, walls)
            finally:
                for index, level_rows in rows.items():
                    if level_rows:
                        wall_s = walls[index] / 1e9
                        row = concurrency_row(model, level, level_rows, wall_s)
                        self.servers[index]._levels.append(row)

    async def _round(
        self,
        model: str,
        prompt: Prompt,
        run: int,
        level: int,
        facts: Mapping[int, ModelFacts],
        states: dict[int, _ModelState],
        rows: dict[int, list[RequestResult]],
        walls: dict[int, int],
    ) -> None:
        """One batch on each server still measuring the model, in server order (--resume:
        on each server that lacks it)."""
        for index in list(states):
            server = self.servers[index]
            if server.resume is not None and server.resume.batch_done(model, prompt.id, run, level):
                continue
            started_ns = time.perf_counter_ns()
            batch = await server._batch(model, prompt, run, level)
            walls[index] += time.perf_counter_ns() - started_ns  # this server's own time
            rows[index].extend(batch)
            self._all.extend(batch)
            if server is not self:  # saved with the first server's, between batches
                self._unsaved.extend(server._unsaved)
                server._unsaved.clear()
            try:
                await server._judge(model, facts[index], batch, states[index])
            except _SkipModel as skip:
                facts[index]["skipped"] = str(skip)
                del states[index]
            except _ServerGone:
                self._end(index)
                del states[index]
        self._flush()

    async def aclose(self) -> None:
        await super().aclose()
        for peer in self.peers:
            await peer.aclose()
            await peer.client.aclose()

    def finalize(self, *, interrupted: bool) -> RunDocument:
        doc = self.document
        if doc is None or doc["status"] != "running":
            return super().finalize(interrupted=interrupted)
        # Rows a round did not collect (a batch cut by Ctrl-C; --resume's earlier rows) are
        # kept too, and saved with the rest.
        collected = {id(row) for row in self._all}
        for server in self.servers:
            self._all.extend(row for row in server._results if id(row) not in collected)
            if server is not self:
                self._unsaved.extend(server._unsaved)
                server._unsaved.clear()
        self._flush()
        sink, self.sink = self.sink, NullSink()  # the merged document is what gets saved
        try:
            super().finalize(interrupted=interrupted)
        finally:
            self.sink = sink
        self._merge(doc)
        sink.finish(doc)
        return doc

    def _merge(self, doc: RunDocument) -> None:
        doc["server"]["name"] = self.names[0]
        servers = [cast(CompareServerInfo, s) for s in (doc["server"], *self._peer_servers)]
        for index, why in self._gone.items():
            servers[index] = {**servers[index], "ended": why}
        doc["servers"] = list(servers)  # CompareServerInfo is a ServerInfo
        doc["results"] = list(self._all)
        summary: list[SummaryRow] = []
        levels: list[ConcurrencyRow] = []
        loads: list[LoadInfo] = []
        models: list[ModelFacts] = []
        hints: list[str] = []
        for index, server in enumerate(self.servers):
            name = self.names[index]
            results = server._results
            summary.extend(row | {"server": name} for row in summary_rows(results))
            levels.extend(row | {"server": name} for row in server._levels)
            loads.extend({**load, "server": name} for load in server._cold_loads)
            for facts in server._models:
                entry = cast(ServerModelFacts, {**facts, "server": name})
                absent = server.residency_absent.get(facts["model"])
                if absent is not None and "gpu_share" not in facts:
                    entry["residency_absent"] = absent
                models.append(entry)
            own = (
                buffering_hints(results)
                + thinking_cap_hints(results, server.plan)
                + residency_hints(server._models)
                + throughput_hints(server._levels)
            )
            hints.extend(f"{name}: {hint}" for hint in own)
        doc["summary"] = summary
        doc["concurrency_summary"] = levels
        doc["cold_loads"] = loads
        doc["models"] = models
        doc["hints"] = hints
        config: CompareConfig = {**doc["config"], "servers": list(self.server_plans)}
        doc["config"] = config
        ended = [f"{self.names[i]}: {why}" for i, why in sorted(self._gone.items())]
        if ended and doc["status"] != "interrupted":
            doc["status"] = "failed"  # exit 2, as for one server; the others' parts are whole
            doc["failure"] = " · ".join(ended)


__all__ = [
    "CompareConfig",
    "CompareServerInfo",
    "InterleavedRunner",
    "ServerModelFacts",
    "ServerPlan",
    "Target",
    "make_runner",
    "name_targets",
    "server_label",
    "server_notices",
    "server_plan",
    "targets_from_args",
    "think_plans",
    "total_requests",
]
