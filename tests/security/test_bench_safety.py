"""Data safety of a benchmark, through the real program against the simulator.

* One, two or three quick Ctrl-C, SIGTERM or SIGHUP: one orderly stop; the summary, every
  ``--output`` file and the history (status ``interrupted``) are all there, no traceback, and
  the exit status is ``128 + signal`` (130, 143, 129).
* A disk that fills up mid-run: the run goes on, says so once, writes every ``--output`` file.
* A database locked by another process: the same, and the history catches up at the end.
* stderr closed under the run (``2>&1 | head``): the run finishes and is saved, not left
  "running" forever.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ollamakit.bench.runner import BenchPlan, StoreSink
from ollamakit.bench.suites import Prompt, Suite
from ollamakit.errors import OllamakitError
from ollamakit.sim import ThreadedSim
from ollamakit.store import HistoryStore
from tests.bench.conftest import run_plan
from tests.security.conftest import QUICK, SLOW

FORMATS = ("json", "csv", "md", "html")


def _start_bench(
    url: str, suite: Path, out: Path, *extra: str, runs: int = 4
) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "ollamakit", "bench", "--base-url", url, "--auto",
           "--runs", str(runs), "--warmup", "0", "--suite", str(suite), *extra]  # fmt: skip
    for fmt in FORMATS:
        cmd += ["--output", str(out / f"run.{fmt}")]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )


def _wait_for(proc: subprocess.Popen[str], prefix: str) -> list[str]:
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if line.startswith(prefix):
            return seen
    proc.kill()
    pytest.fail("no progress: " + "".join(seen))


def _check_outputs(out: Path, status: str) -> dict[str, object]:
    doc = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert doc["status"] == status
    rows = list(csv.DictReader(io.StringIO((out / "run.csv").read_text(encoding="utf-8"))))
    assert len(rows) == len(doc["results"])
    assert doc["run_id"] in (out / "run.md").read_text(encoding="utf-8")
    assert doc["run_id"] in (out / "run.html").read_text(encoding="utf-8")
    return doc


@pytest.mark.parametrize(
    ("signals", "status"),
    [
        ((signal.SIGINT,), 130),
        ((signal.SIGINT, signal.SIGINT), 130),
        ((signal.SIGINT, signal.SIGINT, signal.SIGINT), 130),
        ((signal.SIGTERM,), 143),
        ((signal.SIGHUP,), 129),
        # Pending together, the kernel delivers the lowest number first: any may be "first".
        ((signal.SIGTERM, signal.SIGINT, signal.SIGHUP), None),
    ],
    ids=["int", "int*2", "int*3", "term", "hup", "term+int+hup"],
)
def test_signals_stop_in_order_and_keep_everything(
    signals: tuple[int, ...],
    status: int | None,
    tmp_path: Path,
    isolated_env: Path,
    suite_file: Path,
    start_sim: Callable[..., ThreadedSim],
) -> None:
    url = start_sim(SLOW).url
    out = tmp_path / "out"
    proc = _start_bench(url, suite_file, out)
    seen = _wait_for(proc, "[2/8]")
    for signum in signals:  # as fast as a hand on Ctrl-C can go: no pause between them
        proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    output = stdout + "".join(seen) + stderr
    assert "Traceback" not in output, output
    allowed = {status} if status is not None else {128 + s for s in signals}
    assert proc.returncode in allowed, output
    assert "slow:1b" in stdout  # the summary
    assert stderr.count("Stopping") == 1, stderr
    doc = _check_outputs(out, "interrupted")
    assert 2 <= len(doc["results"]) < 8  # type: ignore[arg-type]
    with HistoryStore.open(isolated_env) as store:
        saved = store.load_run(str(doc["run_id"]))
    assert saved["status"] == "interrupted" and saved["finished_at"]
    assert len(saved["results"]) == len(doc["results"])  # type: ignore[arg-type]


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    for n, size in enumerate((65536, 4096, 512, 1)):
        try:
            with open(folder / f"filler{n}", "wb", buffering=0) as handle:
                while True:
                    handle.write(b"\0" * size)
        except OSError:
            pass


def test_a_full_disk_mid_run_keeps_measuring_and_writes_the_outputs(
    tmp_path: Path, tiny_disk: Path, suite_file: Path, start_sim: Callable[..., ThreadedSim]
) -> None:
    url = start_sim(SLOW).url
    out = tmp_path / "out"  # another disk
    home = tiny_disk / "home"
    env = {**os.environ, "OLLAMAKIT_HOME": str(home)}
    cmd = [sys.executable, "-m", "ollamakit", "bench", "--base-url", url, "--auto", "--runs", "4",
           "--warmup", "0", "--suite", str(suite_file)]  # fmt: skip
    for fmt in FORMATS:
        cmd += ["--output", str(out / f"run.{fmt}")]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=env,
    )  # fmt: skip
    seen = _wait_for(proc, "[1/8]")
    _fill(tiny_disk)
    stdout, stderr = proc.communicate(timeout=120)
    output = stdout + "".join(seen) + stderr
    assert "This is a bug" not in output and "Traceback" not in output, output
    assert proc.returncode == 0, output
    assert output.count("cannot be written") == 1, output  # said once
    assert "could not be saved to the history in full" in output
    doc = _check_outputs(out, "complete")
    assert len(doc["results"]) == 8  # type: ignore[arg-type]


def test_a_locked_database_keeps_measuring_and_catches_up_at_the_end(
    tmp_path: Path, start_sim: Callable[..., ThreadedSim]
) -> None:
    url = start_sim(QUICK).url
    home = tmp_path / "home"
    store = HistoryStore.open(home, busy_timeout_s=0.05)
    locker = sqlite3.connect(home / "history.sqlite3", isolation_level=None)
    errors: list[OllamakitError] = []

    def on_error(exc: OllamakitError) -> None:
        errors.append(exc)
        locker.execute("COMMIT")  # the other process lets go: the end catches up

    sink = StoreSink(store, on_error=on_error)
    suite = Suite(name="s", prompts=(Prompt("hi", "greeting", "Hello"),))
    plan = BenchPlan(models=("quick:1b",), suite=suite, runs=6, warmup=0)

    class LockAfterTwo:
        def __init__(self) -> None:
            self.count = 0

        def add(self, result: object) -> None:
            self.count += 1
            if self.count == 3:
                locker.execute("BEGIN EXCLUSIVE")  # another process takes the write lock
            sink.add(result)  # type: ignore[arg-type]

        def begin(self, doc: object) -> None:
            sink.begin(doc)  # type: ignore[arg-type]

        def finish(self, doc: object) -> None:
            sink.finish(doc)  # type: ignore[arg-type]

    doc = run_plan(url, plan, LockAfterTwo())  # type: ignore[arg-type]
    assert doc["status"] == "complete" and len(doc["results"]) == 6
    assert len(errors) == 1 and "locked" in errors[0].message
    assert sink.complete
    saved = store.load_run(doc["run_id"])
    store.close()
    locker.close()
    assert saved["status"] == "complete"
    assert [r["started_at"] for r in saved["results"]] == [r["started_at"] for r in doc["results"]]


def test_a_closed_stderr_does_not_leave_the_run_running(
    tmp_path: Path, isolated_env: Path, suite_file: Path, start_sim: Callable[..., ThreadedSim]
) -> None:
    url = start_sim(SLOW).url
    out = tmp_path / "out"
    proc = _start_bench(url, suite_file, out, runs=2)
    _wait_for(proc, "[1/4]")
    assert proc.stderr is not None and proc.stdout is not None
    proc.stderr.close()  # `2>&1 | head -1`: the reader is gone
    proc.stdout.close()
    proc.wait(timeout=60)
    doc = _check_outputs(out, "complete")
    assert len(doc["results"]) == 4  # type: ignore[arg-type]
    with HistoryStore.open(isolated_env) as store:
        saved = store.load_run(str(doc["run_id"]))
    assert saved["status"] == "complete"
