"""``bench --resume RUN`` of a run that compared servers is worked out per server, through the CLI.

The first session (``--base-url A --base-url B``, or one server through ``--api
ollama,openai``) is stopped by a real SIGINT while B's request is in flight, so A has measured
a run that B has not; the second session sends each server only the (model, prompt, run)
cells it lacks (checked on each simulator's own request log), and the final document holds
every cell of every server exactly once, labelled with its server, with each server's own
summary rows and side-by-side cells. Other servers, another order or another API are refused
before any request; a server whose part had ended (its connections failed) is tried again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ollamakit.errors import ExitStatus
from ollamakit.sim import SimConfig
from ollamakit.store import HistoryStore
from tests.bench.test_resume import SLOW, suite_file
from tests.support import assert_no_traceback, run_program

RUNS = 6
NAMES = ("ollama /api", "ollama /api #2")


def flags(urls: list[str], tmp_path: Path, api: str | None = None, runs: int = RUNS) -> list[str]:
    servers = [arg for url in urls for arg in ("--base-url", url)]
    return ["bench", *servers, *(["--api", api] if api else []), "--auto", "--runs", str(runs),
            "--warmup", "1", "--num-predict", "16", "--suite", suite_file(tmp_path)]  # fmt: skip


class Setup:
    """The compared servers of one test: their URLs, ``--api``, names, and each one's log."""

    def __init__(self, start_sim: Any, kind: str) -> None:
        self.a = start_sim(SimConfig(models=(SLOW,)))
        if kind == "two sims":
            self.b = start_sim(SimConfig(models=(SLOW,)))
            self.urls, self.api, self.names = [self.a.url, self.b.url], None, NAMES
            self.paths = ("/api/chat", "/api/chat")
        else:  # one server, its native API against its own /v1
            self.b = self.a
            self.urls, self.api = [self.a.url], "ollama,openai"
            self.names = ("ollama /api", "ollama /v1")
            self.paths = ("/api/chat", "/v1/chat/completions")

    def chats(self) -> dict[str, list[Any]]:
        """Each server's chat requests so far (warm-ups included), by server name."""
        return {
            name: [r for r in sim.requests() if r.path == path]
            for name, sim, path in zip(self.names, (self.a, self.b), self.paths, strict=True)
        }

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.chats().items()}


def interrupted(setup: Setup, tmp_path: Path, home: Path) -> dict[str, Any]:
    """A comparison stopped by SIGINT while B's 4th measured request is in flight."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollamakit", *flags(setup.urls, tmp_path, setup.api)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + 30
    while setup.counts()[setup.names[1]] < 1 + 4:  # B's warm-up and its 4th measured request
        assert time.monotonic() < deadline and proc.poll() is None, "no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == ExitStatus.INTERRUPTED, stderr
    with HistoryStore.open(home) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        doc = store.load_run(run_id)
    assert doc["status"] == "interrupted"
    return dict(doc)


def rows_of(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in doc["results"] if r.get("server") == name]


@pytest.mark.parametrize("kind", ["two sims", "one server, two APIs"])
def test_resume_of_a_comparison_measures_each_servers_missing_cells(
    start_sim: Any, tmp_path: Path, isolated_env: Path, kind: str
) -> None:
    setup = Setup(start_sim, kind)
    first = interrupted(setup, tmp_path, isolated_env)
    run_id = first["run_id"]
    saved = {name: len(rows_of(first, name)) for name in setup.names}
    a, b = setup.names
    assert sum(saved.values()) == len(first["results"])  # every row labelled with its server
    assert 3 <= saved[a] < RUNS and saved[b] <= saved[a], saved  # B behind A: the case at hand
    before = setup.counts()

    out = tmp_path / "run.json"
    command = [*flags(setup.urls, tmp_path, setup.api), "--output", str(out)]
    result = run_program([*command, "--resume", run_id[:6]], env={"COLUMNS": "200"}, timeout=120)
    assert_no_traceback(result)
    assert result.returncode == ExitStatus.OK, result.output
    done = saved[a] + saved[b]
    assert f"Resuming run {run_id}: {done} of {2 * RUNS} batch(es) already measured" in (
        result.stderr
    )
    assert f"{b}: {saved[b]} of {RUNS} measured, {1 + RUNS - saved[b]} to go" in result.stderr
    # Each server was sent its warm-up and exactly the runs it lacked, nothing more.
    after = setup.counts()
    for name in setup.names:
        assert after[name] - before[name] == 1 + RUNS - saved[name], (name, saved, after)
    # New requests carried new run markers: no prompt repeated on a server.
    for rows in setup.chats().values():
        prompts = [json.dumps(r.body["messages"]) for r in rows]
        assert len(set(prompts)) == len(prompts)

    with HistoryStore.open(isolated_env) as store:
        assert store.latest_run_id() == run_id  # no new run
        doc = dict(store.load_run(run_id))
    written = json.loads(out.read_text("utf-8"))
    for final in (doc, written):  # the history and the --output file alike
        assert final["status"] == "complete"
        assert [s["name"] for s in final["servers"]] == list(setup.names)
        cells = Counter((r["server"], r["run_index"]) for r in final["results"])
        assert cells == Counter({(name, i): 1 for name in setup.names for i in range(RUNS)})
        assert all(r["ok"] for r in final["results"])
        # The first session's rows are kept as they were, with their server label.
        kept = {(r["server"], r["run_index"], r["started_at"]) for r in final["results"]}
        assert {(r["server"], r["run_index"], r["started_at"]) for r in first["results"]} <= kept
        # Each server's own summary: every run of its own, none of the other's.
        summary = {row["server"]: row for row in final["summary"]}
        assert set(summary) == set(setup.names)
        assert all(row["n"] == RUNS and row["ok"] == RUNS for row in summary.values())
        levels = Counter(row["server"] for row in final["concurrency_summary"])
        assert levels == Counter(dict.fromkeys(setup.names, 1))
        models = Counter(m["server"] for m in final["models"])
        assert models == Counter(dict.fromkeys(setup.names, 1))
    side = result.stdout.split("Servers side by side")[1]
    line = next(x for x in side.splitlines() if x.strip().startswith("slow:1b"))
    assert line.count(f"{RUNS}/{RUNS}") == 2, side  # both servers' cells whole

    # The history's report of the run shows the same, server by server.
    report = run_program(["report", run_id], env={"COLUMNS": "200"})
    assert report.returncode == ExitStatus.OK, report.output
    assert f"slow:1b @ {a}" in report.stdout and f"slow:1b @ {b}" in report.stdout
    side = report.stdout.split("Servers side by side")[1]
    line = next(x for x in side.splitlines() if x.strip().startswith("slow:1b"))
    assert line.count(f"{RUNS}/{RUNS}") == 2, side


def test_resume_of_a_comparison_refuses_other_servers(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    setup = Setup(start_sim, "two sims")
    run_id = interrupted(setup, tmp_path, isolated_env)["run_id"]
    before = setup.counts()
    a, b = setup.urls
    cases = [
        ([b, a], None, f"server 1: saved {a}, now {b}"),  # the same servers, another order
        ([a], None, f"servers: saved {a} /api 0.33.0 · {b} /api 0.33.0, now {a} /api 0.33.0"),
        ([a, b], "ollama,openai", f"server 2 API: saved {b} /api 0.33.0, now {b} /v1 0.33.0"),
    ]
    for urls, api, expected in cases:
        result = run_program([*flags(urls, tmp_path, api), "--resume", run_id])
        assert_no_traceback(result)
        assert result.returncode == ExitStatus.ERROR, result.output
        assert f"Cannot resume run {run_id}" in result.stderr, result.stderr
        assert expected in result.stderr, result.stderr
    assert setup.counts() == before  # refused before any request


def reopen(start: Any, upstream: str, url: str) -> None:
    """The proxy back on the port of the one that went away."""
    port = int(url.rsplit(":", 1)[1])
    for _ in range(200):
        try:
            start(upstream, port=port)
            return
        except OSError:
            time.sleep(0.01)
    pytest.fail("the proxy's port did not come free")


def test_a_run_whose_one_server_went_away_is_resumed_when_it_is_back(
    start_sim: Any, proxy: Any, tmp_path: Path, isolated_env: Path
) -> None:
    sim = start_sim(SimConfig(models=(SLOW,)))
    proxied = proxy(sim.url, die_after=3)
    command = flags([proxied], tmp_path)
    first = run_program(command, timeout=120)
    assert first.returncode == ExitStatus.ERROR, first.output
    with HistoryStore.open(isolated_env) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        doc = dict(store.load_run(run_id))
    assert doc["status"] == "failed"
    good = sum(1 for r in doc["results"] if r["ok"])
    assert [r["ok"] for r in doc["results"]][-3:] == [False] * 3
    before = len([r for r in sim.requests() if r.path == "/api/chat"])
    reopen(proxy, sim.url, proxied)
    result = run_program([*command, "--resume", run_id], timeout=120)
    assert_no_traceback(result)
    assert result.returncode == ExitStatus.OK, result.output
    assert f"{good} of {RUNS} batch(es) already measured (3 result(s)" in result.stderr
    after = len([r for r in sim.requests() if r.path == "/api/chat"])
    assert after - before == 1 + RUNS - good
    with HistoryStore.open(isolated_env) as store:
        final = dict(store.load_run(run_id))
    assert final["status"] == "complete" and final["failure"] is None
    assert sorted(r["run_index"] for r in final["results"]) == list(range(RUNS))
    assert all(r["ok"] for r in final["results"])


def test_a_server_whose_part_ended_is_tried_again_on_resume(
    start_sim: Any, proxy: Any, tmp_path: Path, isolated_env: Path
) -> None:
    healthy = start_sim(SimConfig(models=(SLOW,)))
    dying = start_sim(SimConfig(models=(SLOW,)))
    proxied = proxy(dying.url, die_after=3)  # B: a warm-up and two measured, then gone
    command = flags([healthy.url, proxied], tmp_path, runs=RUNS)
    first = run_program(command, timeout=120)
    assert_no_traceback(first)
    assert first.returncode == ExitStatus.ERROR, first.output
    with HistoryStore.open(isolated_env) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        doc = dict(store.load_run(run_id))
    a, b = NAMES
    assert doc["status"] == "failed" and doc["failure"].startswith(f"{b}: 3 connections")
    assert doc["servers"][1]["ended"].startswith("3 connections in a row failed")
    oks = [r["ok"] for r in rows_of(doc, b)]
    assert oks[-3:] == [False] * 3 and all(oks[:-3]), oks  # found gone three times
    good_b = len(oks) - 3
    assert len(rows_of(doc, a)) == RUNS
    healthy_before, dying_before = len(healthy.requests()), len(dying.requests())

    # The same URL answers again: B is tried again, its failed rows measured anew.
    reopen(proxy, dying.url, proxied)
    result = run_program([*command, "--resume", run_id], timeout=120)
    assert_no_traceback(result)
    assert result.returncode == ExitStatus.OK, result.output
    assert f"{b}: {good_b} of {RUNS} measured" in result.stderr
    assert "its part had ended: it is tried again" in result.stderr
    chats_a = [r for r in healthy.requests()[healthy_before:] if r.path == "/api/chat"]
    chats_b = [r for r in dying.requests()[dying_before:] if r.path == "/api/chat"]
    assert chats_a == []  # A had measured everything: not even a warm-up
    assert len(chats_b) == 1 + RUNS - good_b
    with HistoryStore.open(isolated_env) as store:
        final = dict(store.load_run(run_id))
    assert final["status"] == "complete" and final["failure"] is None
    assert "ended" not in final["servers"][1]
    cells = Counter((r["server"], r["run_index"]) for r in final["results"])
    assert cells == Counter({(name, i): 1 for name in NAMES for i in range(RUNS)})
    assert all(r["ok"] for r in final["results"])


def test_a_batch_cut_short_on_one_server_is_measured_again_there_only(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    """A crash mid-batch at concurrency 2 on B: A's batch whole, one of B's two rows saved."""
    setup = Setup(start_sim, "two sims")
    command = [*flags(setup.urls, tmp_path, runs=3), "--concurrency", "2"]
    assert run_program(command, timeout=120).returncode == ExitStatus.OK
    a, b = setup.names
    with HistoryStore.open(isolated_env) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        doc = store.load_run(run_id)
        # The history deletes by cell whatever the server: delete both, give A's back.
        a_row = next(r for r in doc["results"] if r["server"] == a and r["run_index"] == 5)
        store.delete_results(run_id, [("slow:1b", "hi", 5, 2)])
        store.add_result(run_id, a_row)
        store.finish_run(run_id, {**doc, "status": "running", "finished_at": None})
    before = setup.counts()

    result = run_program([*command, "--resume", run_id], timeout=120)
    assert_no_traceback(result)
    assert result.returncode == ExitStatus.OK, result.output
    assert "5 of 6 batch(es) already measured (1 result(s)" in result.stderr
    after = setup.counts()
    assert after[a] == before[a]  # A had every batch: not even a warm-up
    assert after[b] - before[b] == 1 + 2  # B: a warm-up, then its whole batch of 2 again
    with HistoryStore.open(isolated_env) as store:
        final = dict(store.load_run(run_id))
    assert final["status"] == "complete"
    cells = Counter((r["server"], r["run_index"]) for r in final["results"])
    assert cells == Counter({(name, i): 1 for name in setup.names for i in range(6)})
    levels = Counter((row["server"], row["concurrency"]) for row in final["concurrency_summary"])
    assert levels == Counter({(a, 2): 1, (b, 2): 1})
    summary = {row["server"]: row for row in final["summary"]}
    assert summary[a]["n"] == summary[b]["n"] == 6
