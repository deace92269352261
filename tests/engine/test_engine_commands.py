"""Every command, through the real CLI, against the real llama-server (SmolLM2-135M).

``--api auto`` must find llama.cpp by itself (its ``/api/*`` answers 404); each command says
so in one line, and the numbers come from the engine's own ``usage``/``timings``: real token
counts without a tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.engine.harness import ALIAS, Engine
from tests.support import assert_no_traceback, run_program

pytestmark = [pytest.mark.engine, pytest.mark.timeout(240)]

NUM_PREDICT = 8


def run(args: list[str], stdin: str | None = None) -> Any:
    result = run_program(args, env={"COLUMNS": "200"}, timeout=200, input=stdin)
    assert_no_traceback(result)
    return result


def suite_file(tmp_path: Path) -> str:
    path = tmp_path / "suite.toml"
    path.write_text('[[prompts]]\nid = "hi"\ncategory = "greeting"\nprompt = "Hi!"\n', "utf-8")
    return str(path)


def test_bench_auto(engine: Engine, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = run(
        [
            "bench",
            "--auto",
            "--base-url",
            engine.url,
            "--runs",
            "2",
            "--warmup",
            "1",
            "--num-predict",
            str(NUM_PREDICT),
            "--suite",
            suite_file(tmp_path),
            "--no-save",
            "--output",
            str(out),
        ]
    )
    assert result.returncode == 0, result.output
    assert f"{engine.url}: llama.cpp" in result.stderr
    doc = json.loads(out.read_text("utf-8"))
    assert doc["server"]["engine"] == "llama.cpp" and doc["server"]["api"] == "openai"
    assert doc["config"]["models"] == [ALIAS]
    for row in doc["results"]:
        assert row["ok"], row["error"]
        assert row["eval_count"] == NUM_PREDICT  # the engine's own count: no tokenizer
        assert row["eval_tps"] is not None and row["eval_tps"] > 0  # from timings
        assert row["ttft_ms"] is not None and row["ttft_ms"] > 0
        assert row["load_ms"] is None and row["server_total_ms"] is None  # not reported


def test_piped_chat_and_chat_auto(engine: Engine) -> None:
    chat = run(["chat", "--base-url", engine.url], stdin="Say hello.\n")
    assert chat.returncode == 0, chat.output
    assert chat.stdout.strip()
    assert "llama.cpp" in chat.stderr and "OpenAI-compatible API (/v1)" in chat.stderr
    auto = run(["chat", "--auto", "--base-url", engine.url])
    assert auto.returncode == 0, auto.output
    assert ALIAS in auto.stdout
    assert "All 1 models answered" in auto.output


def test_doctor(engine: Engine) -> None:
    result = run(["doctor", "--json", "--base-url", engine.url])
    assert result.returncode == 0, result.output
    steps = {s["name"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps["root"]["details"] == {"api": "openai", "engine": "llama.cpp"}
    assert steps["tags"]["details"]["models"][0]["name"] == ALIAS
    assert any("not available on llama.cpp" in n for n in steps["tags"]["notes"])
    generate = steps["generate"]
    assert generate["status"] == "ok"
    assert generate["details"]["eval_count"] and generate["details"]["eval_tps"]


def test_short_load_run(engine: Engine, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    result = run(
        [
            "load",
            "--base-url",
            engine.url,
            "--auto",
            "--users",
            "1",
            "--duration",
            "4",
            "--ramp",
            "0",
            "--num-predict",
            str(NUM_PREDICT),
            "--no-save",
            "--output",
            str(out),
        ]
    )
    assert result.returncode == 0, result.output
    assert "llama.cpp" in result.stderr
    [level] = json.loads(out.read_text("utf-8"))["load"]["levels"]
    assert level["ok"] >= 1 and level["ok"] == level["requests"], level
