"""Locust master and two workers, as real processes on loopback, against the simulator.

Every worker's requests must be in the merged run: the test matches the simulator's own log
(each request carries its worker's id and sequence number in its first message) with the
rows of the run the master saved.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ollamakit.sim import SimProcess
from ollamakit.store import HistoryStore
from tests.load.conftest import MODEL

# Never import locust here: importing it monkey-patches this process with gevent (the test
# runs Locust in child processes only).
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None, reason="needs the locust extra"
)

_LOCUST_MARK = re.compile(r"^\[locust (?P<worker>\S+) #(?P<index>\d+)\]")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ollamakit", "load", *args]


@pytest.mark.timeout(150)
def test_master_and_two_workers_are_merged(load_sim: SimProcess, tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "locust.json"
    common = ["--base-url", load_sim.url, "--model", MODEL, "--locust-port", str(port)]
    master = subprocess.Popen(
        _cli(*common, "--locust-master", "--locust-workers", "2", "--locust-bind", "127.0.0.1",
             "--users", "2,4", "--duration", "2", "--ramp", "0.5", "--slo", "none",
             "--output", str(out)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers = [
        subprocess.Popen(
            _cli(*common, "--locust-worker", "127.0.0.1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        m_out, m_err = master.communicate(timeout=120)
        for worker in workers:
            worker.communicate(timeout=30)  # a worker quits when its master does
    finally:
        for proc in (master, *workers):
            if proc.poll() is None:
                proc.kill()
    assert master.returncode == 0, m_out + m_err
    assert all(w.returncode == 0 for w in workers), [w.returncode for w in workers]
    assert "Traceback" not in m_err

    doc: dict[str, Any] = orjson.loads(out.read_bytes())
    rows = doc["results"]
    merged = {(r["worker"], r["run_index"]) for r in rows}
    assert len({w for w, _ in merged}) == 2  # both workers' requests are in the run

    # Every request a worker finished, as the simulator logged it, is in the merged run.
    served: set[tuple[str, int]] = set()
    for record in load_sim.requests():
        body = record.body if isinstance(record.body, dict) else {}
        messages = body.get("messages") or [{}]
        match = _LOCUST_MARK.match(str(messages[0].get("content", "")))
        if match and record.outcome == "ok":
            served.add((match["worker"], int(match["index"])))
    assert served, "the simulator saw no Locust requests"
    assert {w for w, _ in served} == {w for w, _ in merged}
    # A request in flight when the master stopped the last level may have been written out
    # whole by the simulator (logged "ok") while its worker was already stopping: at most the
    # last level's users (4), and only among each worker's latest requests.
    missing = served - merged
    assert len(missing) <= 4, sorted(missing)
    for worker, index in missing:
        assert index > max(i for w, i in merged if w == worker) - 4, (worker, index)
    assert [lv["level"] for lv in doc["load"]["levels"]] == ["users=2", "users=4"]
    assert all(lv["requests"] > 0 for lv in doc["load"]["levels"])
    with HistoryStore.open(Path(os.environ["OLLAMAKIT_HOME"])) as store:
        assert len(store.load_run(doc["run_id"])["results"]) == len(rows)
