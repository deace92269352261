"""An estimate before a long run and an ETA on the progress line, through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ollamakit.bench.eta import Eta
from ollamakit.errors import ExitStatus
from ollamakit.sim import ModelSpec, SimConfig
from tests.support import assert_no_traceback, run_program

PACED = ModelSpec(
    "paced:1b", load_ms=20, warm_load_ms=1, prompt_tps=50_000, eval_tps=400, reply_tokens=8
)


def suite_file(tmp_path: Path) -> str:
    path = tmp_path / "suite.toml"
    path.write_text('[[prompts]]\nid = "hi"\ncategory = "greeting"\nprompt = "Hello!"\n', "utf-8")
    return str(path)


def test_a_long_plan_is_estimated_and_the_progress_lines_count_down(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    sim = start_sim(SimConfig(models=(PACED,)))
    # 1 warm-up + 11 runs = 12 requests; the default suite caps replies at 256 tokens: the
    # guess is 256 / 40 + 0.5 = 6.9 s a request, 12 × 6.9 = 82.8 s.
    result = run_program(
        [
            "bench",
            "--base-url",
            sim.url,
            "--auto",
            "--runs",
            "11",
            "--suite",
            suite_file(tmp_path),
            "--no-save",
        ]
    )
    assert_no_traceback(result)
    assert result.returncode == ExitStatus.OK, result.output
    assert (
        "About 1 min 23 s (a rough guess of 6.9 s per request; the progress line refines it): "
        "1 model(s) × 1 prompt(s) × 11 run(s); --runs 1 for a quick look." in result.stderr
    ), result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == 12
    # The first request alone says nothing (it carries the cold load), the last has no time left.
    assert "left" not in lines[0] and "left" not in lines[-1]
    lefts = [re.search(r"about (\d+) s left", line) for line in lines[1:-1]]
    assert all(lefts), lines
    # ~20 ms a request: the measured estimate is seconds at most, nothing like the guess.
    assert all(int(m.group(1)) < 10 for m in lefts if m)
    assert lefts[-1] is not None and lefts[-1].group(1) == "1"  # never "0 s left"


def test_a_short_plan_has_no_estimate_line(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    sim = start_sim(SimConfig(models=(PACED,)))
    result = run_program(
        [
            "bench",
            "--base-url",
            sim.url,
            "--auto",
            "--runs",
            "1",
            "--num-predict",
            "8",
            "--suite",
            suite_file(tmp_path),
            "--no-save",
        ]
    )
    assert result.returncode == ExitStatus.OK, result.output
    assert "rough guess" not in result.stderr


def test_a_load_run_is_estimated_from_its_plan(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    sim = start_sim(SimConfig(models=(PACED,), num_parallel=2))
    result = run_program(
        [
            "load",
            "--base-url",
            sim.url,
            "--model",
            "paced:1b",
            "--users",
            "1,2",
            "--duration",
            "1",
            "--ramp",
            "0.5",
            "--num-predict",
            "8",
            "--no-save",
        ]
    )
    assert_no_traceback(result)
    assert result.returncode == ExitStatus.OK, result.output
    assert "About 3 s: 2 level(s) × (0.5 s ramp + 1 s)." in result.stderr, result.stderr


def test_the_eta_is_the_measured_pace_times_what_is_left() -> None:
    now = [0.0]
    eta = Eta(5, clock=lambda: now[0])
    eta.update()  # the first request: the cold load, not a pace
    assert eta.suffix() == ""
    for at in (10.0, 11.0, 12.0):
        now[0] = at
        eta.update()
    assert eta.left_s() == 4.0  # (12 − 0) / 3 per request, 1 left
    assert eta.suffix() == " · about 4 s left"
    now[0] = 13.0
    eta.update()
    assert eta.suffix() == ""
