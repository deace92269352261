"""``ollamakit bench`` as a user runs it: a subprocess, real HTTP to a simulator, exit codes.

0 all ok · 1 some requests failed · 2 could not run (unreachable, no models, bad suite) ·
130 interrupted (the finished part saved and summarised). Outputs are checked against the
schema's shape, and a canary password in the URL must not appear in anything written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import pytest

from ollamakit.errors import ExitStatus
from ollamakit.measure.schema import (
    SCHEMA_VERSION,
    MetricSummary,
    Percentiles,
    RequestResult,
    RunDocument,
    ServerInfo,
    SummaryRow,
)
from ollamakit.sim import FaultKind, ModelSpec, SimConfig
from ollamakit.store import HistoryStore
from tests.support import assert_no_traceback, run_program

from .conftest import FAST, faulty

QUICK_ARGS = ("--auto", "--runs", "1", "--warmup", "0", "--num-predict", "8")


def bench(url: str, *args: str, **kwargs: Any) -> Any:
    result = run_program(["bench", "--base-url", url, *args], **kwargs)
    assert_no_traceback(result)
    return result


def suite_file(tmp_path: Path) -> str:
    path = tmp_path / "suite.toml"
    path.write_text('[[prompts]]\nid = "hi"\ncategory = "greeting"\nprompt = "Hello!"\n', "utf-8")
    return str(path)


def test_all_ok_exits_0_prints_summary_and_saves(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    result = bench(sim.url, *QUICK_ARGS, "--suite", suite_file(tmp_path), "--label", "ci")
    assert result.returncode == ExitStatus.OK, result.output
    assert "fast:1b" in result.stdout
    assert "hi" in result.stdout
    assert "[1/1] fast:1b · hi · c=1: TTFT" in result.stderr  # plain progress off a terminal
    assert "Saved as run" in result.stderr
    store = HistoryStore.open(isolated_env)
    run_id = store.latest_run_id()
    assert run_id is not None and run_id in result.stderr
    doc = store.load_run(run_id)
    assert doc["status"] == "complete"
    assert doc["label"] == "ci"
    assert len(doc["results"]) == 1 and doc["results"][0]["ok"]


def test_the_root_script_runs_the_same_command(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    result = run_program(
        ["--base-url", sim.url, *QUICK_ARGS, "--suite", suite_file(tmp_path), "--no-save"],
        script="ollama-benchmark.py",
    )
    assert_no_traceback(result)
    assert result.returncode == 0, result.output


def test_failed_requests_exit_1(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST, faulty("busy:1b", FaultKind.BUSY))))
    result = bench(sim.url, *QUICK_ARGS, "--suite", suite_file(tmp_path))
    assert result.returncode == ExitStatus.FAILURES, result.output
    assert "busy:1b" in result.output and "503" in result.output


def test_unknown_model_exits_2_before_sending_anything(start_sim: Any, tmp_path: Path) -> None:
    # issue 9 item 3: a wrong --model is checked against /api/tags first (tests/bench/
    # test_select_cli.py has the details); it used to be a run of failures, exit 1.
    sim = start_sim(SimConfig(models=(FAST,)))
    result = bench(sim.url, *QUICK_ARGS, "--suite", suite_file(tmp_path), "--model", "llama9")
    assert result.returncode == ExitStatus.ERROR
    assert 'No model "llama9" on the server. Available: fast:1b' in result.output


def test_unreachable_server_exits_2_with_the_doctor_message(isolated_env: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = bench(f"http://127.0.0.1:{port}", "--auto")
    assert result.returncode == ExitStatus.ERROR
    assert "refused" in result.stderr
    # the fix, not just the symptom: on this machine, is Ollama (or the simulator) running?
    # (remote-access advice, OLLAMA_HOST=0.0.0.0 and the firewall, is for a remote 11434)
    assert "Is Ollama running" in result.stderr and "ollamakit sim" in result.stderr
    assert "OLLAMA_HOST=0.0.0.0" not in result.stderr
    assert not HistoryStore.exists(isolated_env)  # nothing ran, nothing saved


def test_no_models_exits_2_and_suggests_a_pull(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=()))
    result = bench(sim.url, "--auto")
    assert result.returncode == ExitStatus.ERROR
    assert "no models" in result.stderr
    assert "ollama pull llama3.2" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--suite", "missing.toml"), "not a built-in suite"),
        (("--concurrency", "1,x"), "--concurrency 1,x"),
        (("--runs", "0"), "--runs 0"),
        (("--output", "run.pdf"), "run.pdf"),
    ],
)
def test_bad_arguments_exit_2_before_anything_runs(
    start_sim: Any, args: tuple[str, ...], message: str
) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    result = bench(sim.url, "--auto", *args)
    assert result.returncode == ExitStatus.ERROR
    assert message in result.stderr
    assert not [r for r in sim.requests() if r.path == "/api/chat"]


def test_invalid_suite_file_names_the_field(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompts:\n  - id: a\n", "utf-8")
    result = bench(sim.url, "--auto", "--suite", str(bad))
    assert result.returncode == ExitStatus.ERROR
    assert f"{bad}, field prompts[0].prompt: missing" in result.stderr


def _check_keys(obj: dict[str, Any], cls: Any, where: str) -> None:
    hints = typing.get_type_hints(cls)
    missing = cls.__required_keys__ - obj.keys()
    assert not missing, f"{where}: missing {missing}"
    unknown = obj.keys() - hints.keys()
    assert not unknown, f"{where}: not in the schema: {unknown}"


def test_json_output_has_the_schema_shape(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    out = tmp_path / "out" / "run.json"
    md = tmp_path / "run.md"
    table = tmp_path / "run.csv"
    result = bench(
        sim.url, *QUICK_ARGS, "--runs", "2", "--suite", suite_file(tmp_path),
        "--output", str(out), "--output", str(md), "--output", str(table), "--no-save",
    )  # fmt: skip
    assert result.returncode == 0, result.output
    for path in (out, md, table):
        assert f"Wrote {path}" in result.stderr
    doc = json.loads(out.read_text("utf-8"))
    _check_keys(doc, RunDocument, "document")
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["status"] == "complete"
    _check_keys(doc["server"], ServerInfo, "server")
    assert doc["config"]["runs"] == 2 and doc["config"]["num_predict"] == 8
    assert len(doc["results"]) == 2
    for r in doc["results"]:
        _check_keys(r, RequestResult, "result")
        _check_keys(r["itl_ms"], Percentiles, "itl_ms")
        assert r["eval_count"] == 8  # --num-predict reached the server
    for row in doc["summary"]:
        _check_keys(row, SummaryRow, "summary")
        _check_keys(row["ttft_ms"], MetricSummary, "summary.ttft_ms")
    rows = list(csv.DictReader(io.StringIO(table.read_text("utf-8"))))
    assert len(rows) == 2
    assert "fast:1b" in md.read_text("utf-8")


def test_json_to_stdout_keeps_the_pipe_clean(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    result = bench(sim.url, *QUICK_ARGS, "--suite", suite_file(tmp_path), "--output", "-")
    assert result.returncode == 0, result.output
    assert json.loads(result.stdout)["results"][0]["model"] == "fast:1b"


def test_no_save_writes_no_history(start_sim: Any, tmp_path: Path, isolated_env: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    result = bench(sim.url, *QUICK_ARGS, "--suite", suite_file(tmp_path), "--no-save")
    assert result.returncode == 0, result.output
    assert "Not saved" in result.stderr
    assert not HistoryStore.exists(isolated_env)


def test_the_password_is_never_written(start_sim: Any, tmp_path: Path, isolated_env: Path) -> None:
    canary = "canary-Pw-31337"
    sim = start_sim(SimConfig(models=(FAST, faulty("busy:1b", FaultKind.BUSY))))
    url = sim.url.replace("http://", f"http://ollama-user:{canary}@")
    outputs = [tmp_path / f"run.{ext}" for ext in ("json", "csv", "md", "html")]
    args = [a for p in outputs for a in ("--output", str(p))]
    result = bench(url, *QUICK_ARGS, "--suite", suite_file(tmp_path), *args)
    assert result.returncode == ExitStatus.FAILURES, result.output  # busy:1b failed
    assert "ollama-user:***@" in result.stderr
    assert canary not in result.output
    files = [*outputs, *[p for p in isolated_env.rglob("*") if p.is_file()]]
    assert any(p.name.startswith("history") for p in files)
    for path in files:
        assert canary.encode() not in path.read_bytes(), path
    # it was sent, though: as a Basic header, not stored by the simulator either
    assert all(r.authorization for r in sim.requests() if r.path == "/api/chat")


def test_zh_tw_messages(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    result = bench(sim.url, *QUICK_ARGS, "--suite", suite_file(tmp_path), "--lang", "zh-TW")
    assert result.returncode == 0, result.output
    assert "已儲存為測試" in result.stderr


def test_ctrl_c_saves_the_finished_part_and_exits_130(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    slow = ModelSpec("slow:1b", load_ms=10, warm_load_ms=1, prompt_tps=50_000, eval_tps=40,
                     reply_tokens=16)  # fmt: skip  # 0.4 s a request
    sim = start_sim(SimConfig(models=(slow,)))
    cmd = [sys.executable, "-m", "ollamakit", "bench", "--base-url", sim.url, "--auto",
           "--runs", "10", "--warmup", "0", "--suite", suite_file(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ),
    )
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if line.startswith("[2/10]"):
            break
    else:
        proc.kill()
        pytest.fail("no progress: " + "".join(seen))
    # Interrupt while the third request is in flight: wait until the simulator has it.
    while len([r for r in sim.requests() if r.path == "/api/chat"]) < 3:
        assert time.monotonic() < deadline, "the third request never arrived"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    output = stdout + "".join(seen) + stderr
    assert "Traceback" not in output, output
    assert proc.returncode == ExitStatus.INTERRUPTED, output
    assert "Interrupted" in stderr
    assert "slow:1b" in stdout  # the partial summary
    store = HistoryStore.open(isolated_env)
    run_id = store.latest_run_id()
    assert run_id is not None
    doc = store.load_run(run_id)
    assert doc["status"] == "interrupted"
    assert doc["finished_at"] is not None
    assert 2 <= len(doc["results"]) < 10
    assert all(r["ok"] for r in doc["results"])  # the cancelled one is dropped, not a failure


def test_menu_on_a_terminal_picks_models_and_categories(start_sim: Any, tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    other = ModelSpec("other:1b", load_ms=5, warm_load_ms=1, prompt_tps=50_000, eval_tps=1_000,
                      reply_tokens=4)  # fmt: skip
    sim = start_sim(SimConfig(models=(FAST, other)))
    suite = tmp_path / "two.toml"
    suite.write_text(
        '[[prompts]]\nid = "a"\ncategory = "greeting"\nprompt = "Hi"\n'
        '[[prompts]]\nid = "b"\ncategory = "coding"\nprompt = "Code"\n',
        "utf-8",
    )
    args = ["-m", "ollamakit", "bench", "--base-url", sim.url, "--runs", "1", "--warmup", "0",
            "--suite", str(suite), "--no-save"]  # fmt: skip
    child = pexpect.spawn(sys.executable, args, env=dict(os.environ), encoding="utf-8", timeout=30)
    try:
        child.expect("Models on")
        child.expect("Enter = all")
        child.sendline("2")
        child.expect("Prompt categories")
        child.expect("Enter = all")
        child.sendline("2")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    chats = [r.body for r in sim.requests() if r.path == "/api/chat"]
    assert [(b["model"], b["messages"][0]["content"].split("] ", 1)[1]) for b in chats] == [
        ("other:1b", "Code")
    ]
