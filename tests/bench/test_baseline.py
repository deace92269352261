"""``--baseline RUN --fail-on-regression 10%``: the regression gate, through the real CLI.

A baseline is measured against a simulator decoding at a scripted rate, the candidate against
one decoding at half that rate: the decode rate (and so the end-to-end time) is worse by a
computable 50 %, significantly (every request's value differs), so the gate must exit 1 and
name those cells. Two runs against the same simulator must not trip it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ollamakit.errors import ExitStatus
from ollamakit.sim import ModelSpec, SimConfig
from ollamakit.store import HistoryStore
from tests.support import assert_no_traceback, run_program

#: Delays large enough that scheduling jitter on a busy machine stays far below 10 %:
#: ~80 prompt tokens at 1000 tok/s, 10 reply tokens at 50 tok/s (20 ms a token: a busy
#: machine's scheduling delays of a few ms do not move the server's rate between runs).
STEADY = ModelSpec(
    "steady:1b", load_ms=20, warm_load_ms=1, prompt_tps=1_000, eval_tps=50, reply_tokens=10
)
SLOWER = ModelSpec(
    "steady:1b", load_ms=20, warm_load_ms=1, prompt_tps=1_000, eval_tps=25, reply_tokens=10
)
PROMPT = " ".join(["Summarise the trade-offs of caching model weights in GPU memory."] * 6)
ARGS = ("--auto", "--model", "steady:1b", "--runs", "5", "--warmup", "1")


def suite_file(tmp_path: Path) -> str:
    path = tmp_path / "suite.toml"
    path.write_text(f'[[prompts]]\nid = "cache"\ncategory = "chat"\nprompt = "{PROMPT}"\n', "utf-8")
    return str(path)


def cli(*args: str) -> Any:
    result = run_program(list(args), timeout=120)
    assert_no_traceback(result)
    return result


def latest_run(home: Path) -> str:
    with HistoryStore.open(home) as store:
        run_id = store.latest_run_id()
    assert run_id is not None
    return run_id


def test_a_slower_server_fails_the_gate_and_writes_the_verdict(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    suite = suite_file(tmp_path)
    fast = start_sim(SimConfig(models=(STEADY,)))
    first = cli("bench", "--base-url", fast.url, *ARGS, "--suite", suite)
    assert first.returncode == ExitStatus.OK, first.output
    baseline = latest_run(isolated_env)

    slow = start_sim(SimConfig(models=(SLOWER,)))
    verdict = tmp_path / "verdict.md"
    result = cli(
        "bench", "--base-url", slow.url, *ARGS, "--suite", suite,
        "--baseline", baseline[:6], "--fail-on-regression", "10%", "--verdict", str(verdict),
    )  # fmt: skip
    assert result.returncode == ExitStatus.FAILURES, result.output
    # The failing cells are named with n, both medians, the change and p.
    line = re.search(
        r"eval_tps of steady:1b · cache · c=1: n 5/5, median ([\d.]+) → ([\d.]+) "
        r"\((-[\d.]+)%\), p ([\d.e-]+)",
        result.stderr,
    )
    assert line is not None, result.stderr
    before, after, change, p = (float(g) for g in line.groups())
    # Scripted 50 → 25 tok/s; measured, so within a few percent of it.
    assert 0.45 < after / before < 0.55 and 45 < -change < 55
    assert p < 0.05
    assert "regression(s) against baseline" in result.stderr
    markdown = verdict.read_text("utf-8")
    assert markdown.startswith("### Performance check")
    assert "❌" in markdown and "beyond 10%" in markdown
    assert re.search(
        r"\| `steady:1b · cache · c=1` \| `eval_tps` \| 5/5 \| [\d.]+ \| [\d.]+ \| -", markdown
    )
    assert "**fails**" in markdown
    assert baseline in markdown


def test_two_identical_runs_pass_and_the_verdict_goes_next_to_a_markdown_output(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    suite = suite_file(tmp_path)
    sim = start_sim(SimConfig(models=(STEADY,)))
    assert cli("bench", "--base-url", sim.url, *ARGS, "--suite", suite).returncode == 0
    baseline = latest_run(isolated_env)
    report = tmp_path / "out" / "report.md"
    result = cli(
        "bench", "--base-url", sim.url, *ARGS, "--suite", suite,
        "--baseline", baseline, "--fail-on-regression", "10%", "--output", str(report),
    )  # fmt: skip
    assert result.returncode == ExitStatus.OK, result.output
    assert "No regression against baseline" in result.stderr
    verdict = report.with_name("report.verdict.md").read_text("utf-8")
    assert "✅" in verdict and "No regression beyond 10%" in verdict
    assert report.exists()


def test_too_few_runs_cannot_be_significant_and_says_so(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    suite = suite_file(tmp_path)
    fast = start_sim(SimConfig(models=(STEADY,)))
    few = ("--auto", "--model", "steady:1b", "--runs", "3", "--warmup", "0", "--suite", suite)
    assert cli("bench", "--base-url", fast.url, *few).returncode == 0
    baseline = latest_run(isolated_env)
    slow = start_sim(SimConfig(models=(SLOWER,)))
    result = cli(
        "bench", "--base-url", slow.url, *few, "--baseline", baseline, "--fail-on-regression", "10"
    )
    # Halved speed, but 3 against 3 cannot reach p < 0.05: it passes, and warns why.
    assert result.returncode == ExitStatus.OK, result.output
    assert "Too few requests per cell" in result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--fail-on-regression", "10%"), "need --baseline RUN"),
        (("--baseline", "nosuchrun", "--fail-on-regression", "10%"), "nosuchrun"),
        (("--baseline", "x", "--fail-on-regression", "ten"), "give a percentage"),
    ],
)
def test_a_bad_gate_fails_before_the_run(
    start_sim: Any, tmp_path: Path, isolated_env: Path, flags: tuple[str, ...], message: str
) -> None:
    sim = start_sim(SimConfig(models=(STEADY,)))
    result = cli("bench", "--base-url", sim.url, *ARGS, "--suite", suite_file(tmp_path), *flags)
    assert result.returncode == ExitStatus.ERROR, result.output
    assert message in result.stderr


def test_load_is_gated_level_by_level(start_sim: Any, tmp_path: Path, isolated_env: Path) -> None:
    load = ("load", "--model", "steady:1b", "--users", "1,2", "--duration", "1.5", "--ramp", "0")
    fast = start_sim(SimConfig(models=(STEADY,), num_parallel=4))
    first = cli(*load, "--base-url", fast.url, "--num-predict", "16")
    assert first.returncode == ExitStatus.OK, first.output
    baseline = latest_run(isolated_env)
    slow = start_sim(SimConfig(models=(SLOWER,), num_parallel=4))
    verdict = tmp_path / "load-verdict.md"
    result = cli(
        *load, "--base-url", slow.url, "--num-predict", "16",
        "--baseline", baseline, "--fail-on-regression", "10%", "--verdict", str(verdict),
    )  # fmt: skip
    assert result.returncode == ExitStatus.FAILURES, result.output
    for level in ("users=1", "users=2"):
        assert f"eval_tps of steady:1b · {level}: n" in result.stderr, result.stderr
    assert "`steady:1b · users=2`" in verdict.read_text("utf-8")
