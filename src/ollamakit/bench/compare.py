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
B, and so on, before the next run. :class:`InterleavedRunner` is the ordinary
:class:`~ollamakit.bench.runner.Runner` for the first server, whose batches and warm-ups are
each followed by the same batch on the *peers* (plain runners, one per other server, never
executed themselves). Every result row carries ``server`` (the ``name`` of its entry in the
document's ``servers`` list); summary, concurrency and cold-load rows too; ``server`` at the
top stays the first server's (older readers see a normal run of it).

The models come from the first server unless ``--model`` is given: llama.cpp serves one model
whatever the request names, and Ollama's ``/v1`` knows the same names as its ``/api``.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ollamakit.bench.backends import open_bench_backend, round_trip_ms, server_info
from ollamakit.bench.runner import (
    RTT_SAMPLES,
    BenchPlan,
    Event,
    Listener,
    NullSink,
    ResultSink,
    Runner,
    _Gate,
    buffering_hints,
    throughput_hints,
)
from ollamakit.bench.suites import Prompt
from ollamakit.client import identity_line
from ollamakit.config import Settings, parse_api, parse_base_url
from ollamakit.domain import ServerIdentity
from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.measure.schema import (
    ConcurrencyRow,
    Identity,
    LoadInfo,
    RequestResult,
    RunDocument,
    ServerInfo,
    Stat,
)
from ollamakit.measure.stats import concurrency_row, percentile, summary_rows

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


def make_runner(
    targets: Sequence[Target], plan: BenchPlan, sink: ResultSink, *, max_connections: int
) -> Runner:
    """A :class:`Runner` for one target, an :class:`InterleavedRunner` for several."""

    def runner(target: Target, sink: ResultSink) -> Runner:
        return Runner(
            client=open_bench_backend(target.settings, target.api, max_connections=max_connections),
            plan=plan,
            base_url=target.url,
            sink=sink,
            client_factory=lambda: open_bench_backend(
                target.settings, target.api, max_connections=2
            ),
        )

    first = runner(targets[0], sink)
    if len(targets) == 1:
        return first
    peers = [runner(target, NullSink()) for target in targets[1:]]
    return InterleavedRunner(
        client=first.client,
        plan=plan,
        base_url=first.base_url,
        sink=sink,
        client_factory=first.client_factory,
        peers=peers,
        names=[target.name for target in targets],
    )


def total_requests(runner: Runner) -> int:
    """Requests the run sends to all its servers (the progress bar's total)."""
    peers = runner.peers if isinstance(runner, InterleavedRunner) else []
    return runner.plan.total_requests * (1 + len(peers))


def _stat(samples: Sequence[float]) -> Stat:
    if not samples:
        return {"median": None, "p95": None}
    p95 = percentile(samples, 95)
    return {
        "median": round(statistics.median(samples), 3),
        "p95": None if p95 is None else round(p95, 3),
    }


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
    """The first server's runner; each of its batches is followed by the peers' same batch."""

    peers: list[Runner] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # names[0]: this runner's server

    def __post_init__(self) -> None:
        super().__post_init__()
        self._peer_servers: list[ServerInfo] = []
        self._peer_results: list[list[RequestResult]] = [[] for _ in self.peers]
        self._peer_loads: list[LoadInfo] = []
        # (peer, model, level) -> the level's results and summed batch wall time
        self._peer_levels: dict[tuple[int, str, int], tuple[list[RequestResult], int]] = {}
        self._all: list[RequestResult] = []  # every measured row, in the order sent
        self._own_levels: dict[tuple[str, int], tuple[list[RequestResult], int]] = {}

    async def execute(self) -> RunDocument:
        self.listener = _naming_server(self.listener)
        for index, peer in enumerate(self.peers):
            identity = await peer.client.connect()  # unreachable / 401: raises
            rtts_ms = [await round_trip_ms(peer.client) for _ in range(RTT_SAMPLES)]
            peer._rtt_ms = statistics.median(rtts_ms)
            info = server_info(peer.base_url, identity, _stat(rtts_ms))
            info["name"] = self.names[index + 1]
            self._peer_servers.append(info)
            peer.listener = self.listener
            # peer.run_id stays its own: the run marker opening every prompt must differ
            # between servers, or Ollama's /api and /v1 would share one prefix cache entry.
            peer.server_name = info["name"]
        return await super().execute()

    async def _request(
        self,
        identity: Identity,
        prompt: Prompt,
        *,
        warmup: bool = False,
        gate: _Gate | None = None,
        lane: int = 0,
    ) -> RequestResult:
        result = await super()._request(identity, prompt, warmup=warmup, gate=gate, lane=lane)
        if warmup:  # warm every server alike; the first warm-up is the cold load
            for index, peer in enumerate(self.peers):
                peer_result = await peer._request(identity, prompt, warmup=True)
                if identity.run_index == 0:
                    load: LoadInfo = {"model": identity.model, "load_ms": peer_result["load_ms"]}
                    load["server"] = self.names[index + 1]
                    self._peer_loads.append(load)
        return result

    async def _prepare_lanes(self, level: int) -> None:
        await super()._prepare_lanes(level)
        for peer in self.peers:
            await peer._prepare_lanes(level)

    async def _batch(self, model: str, prompt: Prompt, run: int, level: int) -> list[RequestResult]:
        started_ns = time.perf_counter_ns()
        mine = await super()._batch(model, prompt, run, level)
        wall_ns = time.perf_counter_ns() - started_ns
        # The runner's own level timing includes the peers' batches: keep this server's own.
        rows, summed_ns = self._own_levels.get((model, level), ([], 0))
        self._own_levels[(model, level)] = ([*rows, *mine], summed_ns + wall_ns)
        for row in mine:
            row["server"] = self.names[0]
        self._all.extend(mine)
        for index, peer in enumerate(self.peers):
            started_ns = time.perf_counter_ns()
            theirs = await peer._batch(model, prompt, run, level)
            wall_ns = time.perf_counter_ns() - started_ns
            key = (index, model, level)
            rows, summed_ns = self._peer_levels.get(key, ([], 0))
            self._peer_levels[key] = ([*rows, *theirs], summed_ns + wall_ns)
            for row in theirs:
                row["server"] = self.names[index + 1]
            self._peer_results[index].extend(theirs)
            self._all.extend(theirs)
            self._unsaved.extend(theirs)  # saved with the first server's, between batches
        return mine

    async def aclose(self) -> None:
        await super().aclose()
        for peer in self.peers:
            await peer.aclose()
            await peer.client.aclose()

    def finalize(self, *, interrupted: bool) -> RunDocument:
        doc = self.document
        if doc is None or doc["status"] != "running":
            return super().finalize(interrupted=interrupted)
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
        first = self.names[0]
        doc["server"]["name"] = first
        doc["servers"] = [doc["server"], *self._peer_servers]
        doc["results"] = list(self._all)
        summary = [row | {"server": first} for row in doc["summary"]]
        own_levels = [
            concurrency_row(model, level, rows, wall_ns / 1e9)
            for (model, level), (rows, wall_ns) in self._own_levels.items()
            if rows
        ]
        levels: list[ConcurrencyRow] = [row | {"server": first} for row in own_levels]
        loads: list[LoadInfo] = [{**load, "server": first} for load in doc.get("cold_loads", [])]
        own = [r for r in self._all if r.get("server") == first]
        hints = [f"{first}: {h}" for h in buffering_hints(own) + throughput_hints(own_levels)]
        for index, results in enumerate(self._peer_results):
            name = self.names[index + 1]
            summary.extend(row | {"server": name} for row in summary_rows(results))
            peer_levels = [
                concurrency_row(model, level, rows, wall_ns / 1e9) | {"server": name}
                for (peer, model, level), (rows, wall_ns) in self._peer_levels.items()
                if peer == index and rows
            ]
            levels.extend(peer_levels)
            hints.extend(
                f"{name}: {hint}"
                for hint in buffering_hints(results) + throughput_hints(peer_levels)
            )
        loads.extend(self._peer_loads)
        doc["summary"] = summary
        doc["concurrency_summary"] = levels
        doc["cold_loads"] = loads
        doc["hints"] = hints


__all__ = [
    "InterleavedRunner",
    "Target",
    "make_runner",
    "name_targets",
    "server_label",
    "targets_from_args",
    "total_requests",
]
