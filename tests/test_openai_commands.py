"""chat (piped), ``chat --auto``, doctor and load on an OpenAI-compatible API, through the CLI.

Against the simulator's ``/v1`` (Ollama's OpenAI layer) and its ``--engine llama.cpp`` mode
(llama-server's API: no ``/api/*`` at all, so ``--api auto`` must find ``/v1`` by itself).
Real HTTP on loopback; what was sent is read from the simulator's request log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ollamakit.sim import ModelSpec, SimConfig
from tests.support import assert_no_traceback, run_program

MODEL = ModelSpec("tiny:1b", eval_tps=2_000, reply_tokens=12, load_ms=0, warm_load_ms=0)


def run(args: list[str], **kwargs: Any) -> Any:
    result = run_program(args, env={"COLUMNS": "200"}, timeout=90, **kwargs)
    assert_no_traceback(result)
    return result


@pytest.fixture(params=["ollama", "llama.cpp"])
def v1_sim(request: pytest.FixtureRequest, start_sim: Any) -> Any:
    return start_sim(SimConfig(models=(MODEL,), engine=request.param))


def api_args(sim: Any) -> list[str]:
    # llama.cpp is detected by --api auto (nothing answers /api there); Ollama's /v1 is asked.
    return [] if sim.config.engine == "llama.cpp" else ["--api", "openai"]


def paths(sim: Any) -> list[str]:
    return [r.path for r in sim.requests()]


def test_piped_chat_on_v1(v1_sim: Any, isolated_env: Path) -> None:
    result = run(
        ["chat", "--base-url", v1_sim.url, *api_args(v1_sim), "--model", MODEL.name],
        input="Hello\nAnd again\n",
    )
    assert result.returncode == 0, result.output
    assert "OpenAI-compatible API (/v1)" in result.stderr
    assert result.stdout.count("\n") == 2 and result.stdout.strip()  # two replies, nothing else
    chats = [r for r in v1_sim.requests() if r.path == "/v1/chat/completions"]
    assert len(chats) == 2
    assert len(chats[1].body["messages"]) == 3  # multi-turn: the first exchange went along
    assert "/api/chat" not in paths(v1_sim)


def test_chat_auto_on_v1(v1_sim: Any) -> None:
    result = run(["chat", "--auto", "--base-url", v1_sim.url, *api_args(v1_sim)])
    assert result.returncode == 0, result.output
    assert "OpenAI-compatible API (/v1)" in result.output
    assert MODEL.name in result.stdout
    assert "All 1 models answered" in result.output
    assert "/v1/chat/completions" in paths(v1_sim)


def test_doctor_on_v1_passes_and_says_what_it_cannot_check(v1_sim: Any) -> None:
    result = run(["doctor", "--json", "--base-url", v1_sim.url, *api_args(v1_sim)])
    assert result.returncode == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["steps"]}
    assert checks["root"]["status"] == "ok"
    assert checks["root"]["details"]["api"] == "openai"
    assert "not Ollama" not in checks["root"]["summary"].replace("not Ollama's API", "")
    assert checks["tags"]["status"] == "ok"
    assert any("/api/ps" in note for note in checks["tags"]["notes"])
    assert checks["generate"]["status"] == "ok"
    assert checks["generate"]["details"]["model"] == MODEL.name
    assert "/api/ps" not in paths(v1_sim)
    assert "/v1/chat/completions" in paths(v1_sim)
    if v1_sim.config.engine == "llama.cpp":
        assert checks["root"]["details"]["engine"] == "llama.cpp"


def test_doctor_on_llama_cpp_is_not_called_not_ollama(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(MODEL,), engine="llama.cpp"))
    result = run(["doctor", "--base-url", sim.url])
    assert result.returncode == 0, result.output
    assert "does not lead to Ollama" not in result.output
    assert "not available on llama.cpp" in result.stdout
    [root] = [line for line in result.stdout.splitlines() if "API detection" in line]
    assert f"{sim.url}: llama.cpp" in root and "OpenAI-compatible API (/v1)" in root


def test_short_load_run_on_v1(v1_sim: Any, tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    result = run(
        [
            "load",
            "--base-url",
            v1_sim.url,
            *api_args(v1_sim),
            "--model",
            MODEL.name,
            "--users",
            "1,2",
            "--duration",
            "2",
            "--ramp",
            "0",
            "--no-save",
            "--output",
            str(out),
        ]
    )
    assert result.returncode == 0, result.output
    assert "OpenAI-compatible API (/v1)" in result.stderr
    doc = json.loads(out.read_text("utf-8"))
    levels = doc["load"]["levels"]
    assert [lv["level"] for lv in levels] == ["users=1", "users=2"]
    assert all(0 < lv["ok"] == lv["requests"] for lv in levels), levels
    assert "/api/chat" not in paths(v1_sim)


def test_an_api_list_is_for_bench_only(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(MODEL,)))
    result = run(["doctor", "--base-url", sim.url, "--api", "ollama,openai"])
    assert result.returncode == 2
    assert "a list of APIs is for bench" in result.stderr
    assert sim.requests() == []
