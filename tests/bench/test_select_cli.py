"""Issue 9, items 1–3, through ``ollamakit bench`` against the real-world simulator.

Every test runs the real program in its own process against a simulator that claims a given
Ollama version, with ``--preset real-world``'s models: a gpt-oss-like thinker that cannot turn
thinking off, an embedding model, a cloud model and a partly offloaded one beside the three
ordinary ones. Checks are on what the program printed and wrote, and on what the simulator
was sent (its request log): a wrong ``--model`` must cost no chat request at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ollamakit.errors import ExitStatus
from ollamakit.sim import SimConfig
from ollamakit.sim.config import real_world_models
from tests.support import assert_no_traceback, run_program

QUICK = ("--runs", "1", "--warmup", "0", "--num-predict", "8", "--no-save")
OLD, NEW = "0.12.4", "0.33.0"  # capabilities only from /api/show / also in /api/tags


def real_world(start_sim: Any, version: str) -> Any:
    return start_sim(SimConfig(models=real_world_models(), version=version, speed=20))


def one_prompt(tmp_path: Path) -> str:
    path = tmp_path / "suite.toml"
    path.write_text('[[prompts]]\nid = "hi"\ncategory = "greeting"\nprompt = "Hello!"\n', "utf-8")
    return str(path)


def bench(sim: Any, tmp_path: Path, *args: str) -> Any:
    result = run_program(
        ["bench", "--base-url", sim.url, *QUICK, "--suite", one_prompt(tmp_path), *args]
    )
    assert_no_traceback(result)
    return result


def chats(sim: Any) -> list[Any]:
    return [r for r in sim.requests() if r.path == "/api/chat"]


def document(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


@pytest.mark.parametrize("version", [OLD, NEW])
def test_auto_skips_embedding_and_cloud_models_with_a_notice_each(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    sim = real_world(start_sim, version)
    out = tmp_path / "run.json"
    result = bench(sim, tmp_path, "--auto", "--output", str(out))
    assert result.returncode == ExitStatus.OK, result.output
    assert "Skipping nomic-embed-text:latest: an embedding model, it cannot chat." in result.stderr
    assert "Skipping gpt-oss:120b-cloud: a cloud model" in result.stderr
    sent = {r.model for r in chats(sim)}
    assert sent == {"llama3.2:3b", "qwen2.5:0.5b", "deepseek-r1:1.5b", "gpt-oss:20b", "gemma3:27b"}
    doc = document(out)
    assert {r["model"] for r in doc["results"]} == sent
    assert all(r["ok"] for r in doc["results"])
    if version == OLD:  # no capabilities in /api/tags: they came from /api/show
        assert any(r.path == "/api/show" for r in sim.requests())


@pytest.mark.parametrize("version", [OLD, NEW])
def test_a_wrong_model_exits_2_before_any_chat_with_the_list_and_close_names(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    sim = real_world(start_sim, version)
    result = bench(sim, tmp_path, "--auto", "--model", "lama3.2")
    assert result.returncode == ExitStatus.ERROR, result.output
    assert 'No model "lama3.2" on the server. Available: llama3.2:3b, ' in result.stderr
    assert "gemma3:27b" in result.stderr  # the whole list
    assert "Did you mean: llama3.2:3b?" in result.stderr
    assert "ollama pull lama3.2" in result.stderr
    assert chats(sim) == []
    # A glob that matches nothing is refused the same way (no "ollama pull" for a pattern).
    globbed = bench(sim, tmp_path, "--auto", "--model", "mistral*")
    assert globbed.returncode == ExitStatus.ERROR
    assert 'No model "mistral*"' in globbed.stderr and "ollama pull" not in globbed.stderr
    assert chats(sim) == []


@pytest.mark.parametrize("version", [OLD, NEW])
def test_expansion_is_said_globs_select_and_exclude_removes(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    sim = real_world(start_sim, version)
    result = bench(
        sim,
        tmp_path,
        "--auto",
        "--model",
        "LLAMA3",  # case-insensitive unique prefix
        "--model",
        "gpt-oss*",  # glob: gpt-oss:20b and the cloud model (skipped: not named exactly)
        "--model",
        "gemma3",
        "--exclude",
        "gemma*",
    )
    assert result.returncode == ExitStatus.OK, result.output
    assert '"LLAMA3" is llama3.2:3b (the only model whose name starts with it).' in result.stderr
    assert '"gemma3" is gemma3:27b' in result.stderr
    assert "Skipping gemma3:27b: excluded by --exclude." in result.stderr
    assert "Skipping gpt-oss:120b-cloud: a cloud model" in result.stderr
    assert {r.model for r in chats(sim)} == {"llama3.2:3b", "gpt-oss:20b"}


@pytest.mark.parametrize("version", [OLD, NEW])
def test_an_embedding_model_named_exits_2_it_cannot_chat(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    sim = real_world(start_sim, version)
    result = bench(sim, tmp_path, "--auto", "--model", "nomic-embed-text")
    assert result.returncode == ExitStatus.ERROR, result.output
    assert "nomic-embed-text:latest is an embedding model: it cannot chat" in result.stderr
    assert chats(sim) == []


@pytest.mark.parametrize("version", [OLD, NEW])
def test_a_cloud_model_named_exactly_is_benchmarked(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    # The simulator is not signed in: 401 with a signin_url. The request is sent (the user
    # asked for the model); what the 401 says is the client's (see the branch report).
    sim = real_world(start_sim, version)
    result = bench(sim, tmp_path, "--auto", "--model", "gpt-oss:120b-cloud")
    assert result.returncode == ExitStatus.FAILURES, result.output
    assert [r.model for r in chats(sim)] == ["gpt-oss:120b-cloud"]
    assert [r.status for r in chats(sim)] == [401]
    assert "Skipping" not in result.stderr
    assert "gpt-oss:120b-cloud is a cloud model" in result.stderr
    assert "run `ollama signin` on the server" in result.stderr
