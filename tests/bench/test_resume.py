"""``bench --resume RUN``: a run cut short by Ctrl-C is finished under its own id, through the CLI.

The first session is interrupted with a real SIGINT after a few requests; the second measures
only what is missing (checked on the simulator's own request log), and the run ends complete
with every (prompt, run) exactly once. A different plan or server is refused before any request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ollamakit.errors import ExitStatus
from ollamakit.sim import ModelSpec, SimConfig
from ollamakit.store import HistoryStore
from tests.support import assert_no_traceback, run_program

SLOW = ModelSpec(
    "slow:1b", load_ms=10, warm_load_ms=1, prompt_tps=50_000, eval_tps=80, reply_tokens=16
)  # 0.2 s a request
RUNS = 8


def suite_file(tmp_path: Path) -> str:
    path = tmp_path / "suite.toml"
    path.write_text('[[prompts]]\nid = "hi"\ncategory = "greeting"\nprompt = "Hello!"\n', "utf-8")
    return str(path)


def flags(url: str, tmp_path: Path, runs: int = RUNS) -> list[str]:
    return ["bench", "--base-url", url, "--auto", "--runs", str(runs), "--warmup", "1",
            "--num-predict", "16", "--suite", suite_file(tmp_path)]  # fmt: skip


def chats(sim: Any) -> int:
    return len([r for r in sim.requests() if r.path == "/api/chat"])


def interrupted_run(sim: Any, tmp_path: Path, home: Path) -> str:
    """Start a run, Ctrl-C it while its 4th measured request is in flight; its id."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollamakit", *flags(sim.url, tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + 30
    while chats(sim) < 5:  # warm-up + 4
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
    assert 3 <= len(doc["results"]) < RUNS
    return run_id


def test_resume_measures_only_what_is_missing_and_completes_the_run(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    sim = start_sim(SimConfig(models=(SLOW,)))
    run_id = interrupted_run(sim, tmp_path, isolated_env)
    with HistoryStore.open(isolated_env) as store:
        saved = len(store.load_run(run_id)["results"])
    before = chats(sim)

    result = run_program([*flags(sim.url, tmp_path), "--resume", run_id[:5]], timeout=120)
    assert_no_traceback(result)
    assert result.returncode == ExitStatus.OK, result.output
    assert f"Resuming run {run_id}: {saved} of {RUNS} batch(es) already measured" in result.stderr
    # The simulator saw one warm-up and exactly the missing requests.
    assert chats(sim) - before == 1 + RUNS - saved
    with HistoryStore.open(isolated_env) as store:
        assert store.latest_run_id() == run_id  # no new run
        doc = store.load_run(run_id)
    assert doc["status"] == "complete" and doc["finished_at"] is not None
    assert sorted(r["run_index"] for r in doc["results"]) == list(range(RUNS))
    assert all(r["ok"] for r in doc["results"])
    assert doc["summary"]  # computed over both sessions' results
    # New requests carried new run markers: none repeated a first-session prompt.
    prompts = [json.dumps(r.body["messages"]) for r in sim.requests() if r.path == "/api/chat"]
    assert len(set(prompts)) == len(prompts)

    again = run_program([*flags(sim.url, tmp_path), "--resume", run_id])
    assert again.returncode == ExitStatus.ERROR
    assert "is complete: there is nothing to resume" in again.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (["--runs", "9"], "runs: saved 8, now 9"),
        (["--num-predict", "32"], "num_predict: saved 16, now 32"),
    ],
)
def test_resume_refuses_another_plan(
    start_sim: Any, tmp_path: Path, isolated_env: Path, change: list[str], expected: str
) -> None:
    sim = start_sim(SimConfig(models=(SLOW,)))
    run_id = interrupted_run(sim, tmp_path, isolated_env)
    before = chats(sim)
    result = run_program([*flags(sim.url, tmp_path), *change, "--resume", run_id])
    assert_no_traceback(result)
    assert result.returncode == ExitStatus.ERROR, result.output
    assert f"Cannot resume run {run_id}" in result.stderr and expected in result.stderr
    assert chats(sim) == before  # refused before any request


def test_resume_refuses_another_server(start_sim: Any, tmp_path: Path, isolated_env: Path) -> None:
    sim = start_sim(SimConfig(models=(SLOW,)))
    run_id = interrupted_run(sim, tmp_path, isolated_env)
    other = start_sim(SimConfig(models=(SLOW,)))
    result = run_program([*flags(other.url, tmp_path), "--resume", run_id])
    assert result.returncode == ExitStatus.ERROR, result.output
    assert f"server: saved {sim.url}" in result.stderr
    assert chats(other) == 0


def test_resume_with_no_save_or_an_unknown_run_is_refused(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    sim = start_sim(SimConfig(models=(SLOW,)))
    result = run_program([*flags(sim.url, tmp_path), "--resume", "abc", "--no-save"])
    assert result.returncode == ExitStatus.ERROR
    assert "cannot be combined with --no-save" in result.stderr
    result = run_program([*flags(sim.url, tmp_path), "--resume", "abc"])
    assert result.returncode == ExitStatus.ERROR
    assert "abc" in result.stderr


def test_a_batch_cut_short_is_measured_again_in_full(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    """A crash mid-batch at concurrency 2: one stream's row saved, the other's lost."""
    sim = start_sim(SimConfig(models=(SLOW,), num_parallel=2))
    command = [*flags(sim.url, tmp_path, runs=3), "--concurrency", "2"]
    assert run_program(command).returncode == ExitStatus.OK
    with HistoryStore.open(isolated_env) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        doc = store.load_run(run_id)
        # Leave run 2's batch (run_index 4, 5) with only its first stream, as a crash would.
        store.delete_results(run_id, [("slow:1b", "hi", 5, 2)])
        store.finish_run(run_id, {**doc, "status": "running", "finished_at": None})
    before = chats(sim)

    result = run_program([*command, "--resume", run_id])
    assert_no_traceback(result)
    assert result.returncode == ExitStatus.OK, result.output
    assert "2 of 3 batch(es) already measured (1 result(s) of cut-short batches" in result.stderr
    assert chats(sim) - before == 1 + 2  # a warm-up, then the whole batch of 2 again
    with HistoryStore.open(isolated_env) as store:
        doc = store.load_run(run_id)
    assert doc["status"] == "complete"
    assert sorted(r["run_index"] for r in doc["results"]) == list(range(6))
    assert [row["concurrency"] for row in doc["concurrency_summary"]] == [2]
