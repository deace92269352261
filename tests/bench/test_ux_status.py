"""Run status with the counts that matter (issue 11), through the real command.

A run in which requests failed must not look like a clean one (a green "complete" badge), and
an interrupted run must say how far it got and which models it never reached.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ollamakit.cli import main
from ollamakit.errors import ExitStatus
from ollamakit.sim import FaultKind, ModelSpec, SimConfig
from ollamakit.ui.terminal import Terminal
from tests.support import assert_no_traceback, run_program

from .conftest import FAST, faulty

QUICK = ("--auto", "--runs", "2", "--warmup", "0", "--num-predict", "4")


def _suite(tmp_path: Path) -> str:
    path = tmp_path / "two.toml"
    path.write_text(
        '[[prompts]]\nid = "a"\nprompt = "Hello"\n[[prompts]]\nid = "b"\nprompt = "Bye"\n', "utf-8"
    )
    return str(path)


def test_failures_turn_the_badge_amber_and_say_how_many(start_sim: Any, tmp_path: Path) -> None:
    broken = faulty("broken:1b", FaultKind.STATUS, 500)
    sim = start_sim(SimConfig(models=(FAST, broken)))
    html, md, js = tmp_path / "r.html", tmp_path / "r.md", tmp_path / "r.json"
    result = run_program(
        [
            *("bench", "--base-url", sim.url, *QUICK, "--suite", _suite(tmp_path)),
            *("--output", str(html), "--output", str(md), "--output", str(js)),
        ]
    )
    assert_no_traceback(result)
    assert result.returncode == int(ExitStatus.FAILURES)
    doc = json.loads(js.read_text("utf-8"))
    assert doc["status"] == "complete"
    failed = sum(1 for r in doc["results"] if not r["ok"])
    assert failed == 3  # fail fast (issue 9): 3 in a row skip the rest of the broken model
    page = html.read_text("utf-8")
    badge = re.search(r'<span class="badge ([^"]*)">([^<]*)</span>', page)
    assert badge is not None
    assert "tone-warn" in badge.group(1) and "tone-ok" not in badge.group(1)
    assert badge.group(2) == "complete, 3 failed"
    assert "complete, 3 failed" in md.read_text("utf-8")


def test_all_failed_is_red(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(faulty("broken:1b", FaultKind.STATUS, 500),)))
    html = tmp_path / "r.html"
    result = run_program(
        [
            *("--lang", "zh-TW", "bench", "--base-url", sim.url, *QUICK),
            *("--suite", _suite(tmp_path), "--output", str(html), "--no-save"),
        ]
    )
    assert result.returncode == int(ExitStatus.FAILURES)
    badge = re.search(r'<span class="badge ([^"]*)">([^<]*)</span>', html.read_text("utf-8"))
    assert badge is not None
    assert "tone-bad" in badge.group(1)
    assert badge.group(2) == "完成，3 個全部失敗"  # fail fast: the 4th is never sent


def test_a_clean_run_stays_green(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    html = tmp_path / "r.html"
    result = run_program(
        [
            *("bench", "--base-url", sim.url, *QUICK, "--suite", _suite(tmp_path)),
            *("--no-save", "--output", str(html)),
        ]
    )
    assert result.returncode == 0, result.output
    assert '<span class="badge status-complete tone-ok">complete</span>' in html.read_text("utf-8")


def _history(width: int, *args: str) -> str:
    terminal = Terminal.for_test(width=width, isatty=True)
    assert main(["history", *args], terminal=terminal) == 0
    return terminal.stdout.file.getvalue()  # type: ignore[attr-defined]


def test_interrupted_run_says_how_far_it_got(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    slow = ModelSpec("slow:1b", load_ms=10, warm_load_ms=1, prompt_tps=50_000, eval_tps=40,
                     reply_tokens=16)  # fmt: skip  # 0.4 s a request
    sim = start_sim(SimConfig(models=(slow, FAST)))
    cmd = [sys.executable, "-m", "ollamakit", "bench", "--base-url", sim.url, "--auto",
           "--runs", "10", "--warmup", "0", "--suite", _suite(tmp_path),
           "--model", "slow:1b", "--model", "fast:1b"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=dict(os.environ),
    )  # fmt: skip
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while not (proc.stderr.readline() or "").startswith("[2/40]"):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("no progress")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == int(ExitStatus.INTERRUPTED)

    out = _history(80)
    status = re.search(r"interrupted after (\d+) of 40 requests", out)
    assert status is not None, out
    assert 2 <= int(status.group(1)) < 20
    assert "not run: fast:1b" in out  # the model it never reached, apart
    assert "slow:1b" in out

    md = tmp_path / "r.md"
    assert main(["report", "--output", str(md)], terminal=Terminal.for_test()) == 0
    assert f"interrupted after {status.group(1)} of 40 requests" in md.read_text("utf-8")
