"""Issue 10, "no overall deadline": an endless stream, a one-byte-per-0.2-s trickle and an
endless line, through the real program (``ollamakit doctor``, ``ollamakit bench --auto
--timeout 3``, piped ``ollamakit chat --model m``). Each run must end within its bound with
the documented exit status and a message that says the total time ran out (and what to
raise), and its memory must stay bounded.

Before the client had a total deadline, every one of these ran until the test's own limit:
a read timeout restarts with each byte. The hostile server is
``tests/client/test_deadline_server.py`` (raw sockets, 127.0.0.1). Each program is started
with :mod:`subprocess`; its peak resident memory is the ``VmHWM`` of ``/proc/PID/status``,
read while it runs (``wait4``'s ``ru_maxrss`` would include the RSS of the pytest worker the
child was forked from, which is larger than the bound by itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.client.test_deadline_server import HostileStream

TIMEOUT_S = 1.5
#: Start-up of a fresh interpreter and scheduling on a loaded 2-core machine.
MARGIN_S = 15.0
#: Peak memory a run may reach: the program itself is ~60-90 MB; an endless line or body
#: that were kept would pass this within a second on loopback.
MAX_RSS_MB = 250
DEADLINE_TEXT = f"did not finish its answer within {TIMEOUT_S} s"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float
    max_rss_mb: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(args: list[str], url: str, *, stdin: str = "", limit_s: float = 120) -> Run:
    env = {**os.environ, "BENCHMARK_TIMEOUT_SECONDS": str(TIMEOUT_S)}
    start = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-m", "ollamakit", *args, "--base-url", url],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        out, err, status, usage = _reap(proc, stdin, limit_s)
    elapsed = time.perf_counter() - start
    assert elapsed < limit_s, f"killed after {limit_s} s: the run did not end"
    return Run(
        os.waitstatus_to_exitcode(status),
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        elapsed,
        usage / 1024,  # KiB
    )


def _reap(
    proc: subprocess.Popen[bytes], stdin: str, limit_s: float
) -> tuple[bytes, bytes, int, int]:
    """Feed stdin, read both pipes, watch the child's peak RSS (KiB) and reap it."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    pipes = {"out": proc.stdout, "err": proc.stderr}
    got: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda k=k, f=f: got.__setitem__(k, f.read()), daemon=True)
        for k, f in pipes.items()
    ]
    peak_kib = [0]
    done = threading.Event()

    def watch() -> None:
        status_file = f"/proc/{proc.pid}/status"
        while not done.is_set():
            try:
                with open(status_file) as f:
                    text = f.read()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib[0] = max(peak_kib[0], int(line.split()[1]))
            done.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    for reader in readers:
        reader.start()
    watcher.start()
    proc.stdin.write(stdin.encode())
    proc.stdin.close()
    killer = threading.Timer(limit_s, proc.kill)  # a hang fails the test, not the suite
    killer.start()
    try:
        _, status, _usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
        done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
    for reader in readers:
        reader.join(10)
    watcher.join(1)
    return got.get("out", b""), got.get("err", b""), status, peak_kib[0]


def _bounded(result: Run, bound_s: float) -> None:
    print(f"{result.elapsed_s:.1f} s, {result.max_rss_mb:.0f} MB")  # shown with -s
    assert result.elapsed_s < bound_s + MARGIN_S, (result.elapsed_s, result.output[-2000:])
    assert result.max_rss_mb < MAX_RSS_MB, result.max_rss_mb
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- doctor


@pytest.mark.parametrize("path", ["/api/version", "/api/tags", "/"])
def test_doctor_ends_when_a_small_request_trickles(path: str) -> None:
    with HostileStream(path, "trickle") as server:
        result = run(["doctor"], server.url)
    assert result.returncode == 2, result.output
    assert DEADLINE_TEXT in result.output
    assert "raise --timeout / BENCHMARK_TIMEOUT_SECONDS" in result.output
    _bounded(result, TIMEOUT_S)


@pytest.mark.parametrize("mode", ["trickle", "endless"])
def test_doctor_ends_when_the_generation_never_ends(mode: str) -> None:
    with HostileStream("/api/generate", mode) as server:
        result = run(["doctor"], server.url)
    assert result.returncode == 2, result.output
    assert DEADLINE_TEXT in result.output
    _bounded(result, TIMEOUT_S)


def test_doctor_json_reports_an_endless_body_without_growing() -> None:
    with HostileStream("/api/tags", "line") as server:
        result = run(["doctor", "--json"], server.url)
    assert result.returncode == 2, result.output
    assert "larger than 16777216 bytes" in result.stdout
    _bounded(result, 0)


def test_doctor_ends_when_the_generation_is_one_endless_line() -> None:
    with HostileStream("/api/generate", "line") as server:
        result = run(["doctor"], server.url)
    assert result.returncode == 2, result.output
    assert "a stream line longer than 8388608 bytes" in result.output
    _bounded(result, TIMEOUT_S)


# --------------------------------------------------------------------------- bench


BENCH = ["bench", "--auto", "--timeout", str(TIMEOUT_S), "--no-save", "--runs", "1"]


@pytest.mark.parametrize("path", ["/api/version", "/api/tags"])
@pytest.mark.parametrize("mode", ["trickle", "line"])
def test_bench_startup_requests_end(path: str, mode: str) -> None:
    with HostileStream(path, mode) as server:
        result = run([*BENCH, "--warmup", "0"], server.url)
    assert result.returncode == 2, result.output
    expected = DEADLINE_TEXT if mode == "trickle" else "larger than 16777216 bytes"
    assert expected in result.output
    _bounded(result, TIMEOUT_S)


ONE_PROMPT = """name = "one"
num_predict = 16
[[prompts]]
id = "hi"
category = "greeting"
prompt = "Hello there"
"""


@pytest.mark.parametrize("mode", ["trickle", "endless", "line"])
def test_a_bench_request_that_never_ends_fails_alone(mode: str, tmp_path: Path) -> None:
    suite = tmp_path / "one.toml"
    suite.write_text(ONE_PROMPT, encoding="utf-8")
    with HostileStream("/api/chat", mode) as server:
        result = run([*BENCH, "--warmup", "0", "--suite", str(suite)], server.url)
    assert result.returncode == 1, result.output  # ran; a request failed
    assert "1 prompt(s)" in result.output
    _bounded(result, TIMEOUT_S)


# --------------------------------------------------------------------------- piped chat


@pytest.mark.parametrize("mode", ["trickle", "endless"])
def test_piped_chat_ends_when_the_reply_never_ends(mode: str) -> None:
    with HostileStream("/api/chat", mode) as server:
        result = run(["chat", "--model", "m"], server.url, stdin="hi\n")
    # A failed reply in piped chat is exit 1 (chat's rule: it ran, a request failed).
    assert result.returncode == 1, result.output
    assert DEADLINE_TEXT in result.output
    assert "raise BENCHMARK_TIMEOUT_SECONDS" in result.output
    _bounded(result, TIMEOUT_S)


def test_piped_chat_rejects_an_endless_line() -> None:
    with HostileStream("/api/chat", "line") as server:
        result = run(["chat", "--model", "m"], server.url, stdin="hi\n")
    assert result.returncode == 1, result.output
    assert "a stream line longer than 8388608 bytes" in result.output
    _bounded(result, TIMEOUT_S)


@pytest.mark.parametrize("mode", ["trickle", "line"])
def test_piped_chat_ends_when_the_model_list_never_ends(mode: str) -> None:
    with HostileStream("/api/tags", mode) as server:
        result = run(["chat", "--model", "m"], server.url, stdin="hi\n")
    assert result.returncode == 2, result.output
    _bounded(result, TIMEOUT_S)
