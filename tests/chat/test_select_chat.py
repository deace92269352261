"""Issue 9, items 1–3 in the chat: the one matching rule, embedding and cloud models, /think.

The real program in its own process (piped stdin: every line a message or a command, the
chat's own lines on stderr), against the real-world simulator under two or more versions.
"""

from __future__ import annotations

from typing import Any

import pytest

from ollamakit.errors import ExitStatus
from ollamakit.sim import SimConfig
from ollamakit.sim.config import real_world_models
from tests.support import assert_no_traceback, run_program

from .conftest import chat_requests

OLD, NEW = "0.12.4", "0.33.0"


def real_world(start_sim: Any, version: str) -> Any:
    return start_sim(SimConfig(models=real_world_models(), version=version, speed=20))


def chat(sim: Any, *args: str, input: str = "Hi\n") -> Any:
    result = run_program(["chat", "--base-url", sim.url, *args], input=input)
    assert_no_traceback(result)
    return result


@pytest.mark.parametrize("version", [OLD, NEW])
def test_auto_skips_embedding_and_cloud_models_with_a_notice_each(
    start_sim: Any, version: str
) -> None:
    sim = real_world(start_sim, version)
    result = chat(sim, "--auto")
    assert result.returncode == ExitStatus.OK, result.output
    assert "Skipping nomic-embed-text:latest: an embedding model, it cannot chat." in result.stdout
    assert "Skipping gpt-oss:120b-cloud: a cloud model" in result.stdout
    greeted = {r.model for r in chat_requests(sim)}
    assert greeted == {
        "llama3.2:3b",
        "qwen2.5:0.5b",
        "deepseek-r1:1.5b",
        "gpt-oss:20b",
        "gemma3:27b",
    }
    assert "All 5 models answered." in result.stdout


@pytest.mark.parametrize("version", [OLD, NEW])
def test_auto_wrong_or_embedding_model_exits_2_before_any_greeting(
    start_sim: Any, version: str
) -> None:
    sim = real_world(start_sim, version)
    wrong = chat(sim, "--auto", "--model", "qwen2.5:05b")
    assert wrong.returncode == ExitStatus.ERROR, wrong.output
    assert 'No model "qwen2.5:05b" on the server. Available: ' in wrong.stderr
    assert "Did you mean: qwen2.5:0.5b?" in wrong.stderr
    assert "ollama pull qwen2.5:05b" in wrong.stderr
    embed = chat(sim, "--auto", "--model", "nomic-embed-text:latest")
    assert embed.returncode == ExitStatus.ERROR, embed.output
    assert "is an embedding model: it cannot chat" in embed.stderr
    assert chat_requests(sim) == []


@pytest.mark.parametrize("version", [OLD, NEW])
def test_an_expanded_name_is_said_in_one_line(start_sim: Any, version: str) -> None:
    sim = real_world(start_sim, version)
    result = chat(sim, "--model", "deepseek")
    assert result.returncode == ExitStatus.OK, result.output
    assert '"deepseek" is deepseek-r1:1.5b (the only model whose name starts with it).' in (
        result.stderr
    )
    assert [r.model for r in chat_requests(sim)] == ["deepseek-r1:1.5b"]
    auto = chat(sim, "--auto", "--model", "gemma")
    assert '"gemma" is gemma3:27b' in auto.stdout


@pytest.mark.parametrize("version", [OLD, NEW])
def test_without_a_model_the_pick_is_never_embedding_or_cloud(start_sim: Any, version: str) -> None:
    # Ordered so that the "newest" (first listed) models are the embedding and cloud ones.
    models = real_world_models()
    odd = [m for m in models if m.kind != "llm"]
    sim = start_sim(
        SimConfig(models=(*odd, *(m for m in models if m.kind == "llm")), version=version)
    )
    result = chat(sim)
    assert result.returncode == ExitStatus.OK, result.output
    assert "Skipping nomic-embed-text:latest" in result.stderr
    assert "Skipping gpt-oss:120b-cloud" in result.stderr
    assert [r.model for r in chat_requests(sim)] == ["llama3.2:3b"]


@pytest.mark.parametrize("version", [OLD, NEW])
def test_model_command_refuses_an_embedding_model_and_says_an_expansion(
    start_sim: Any, version: str
) -> None:
    sim = real_world(start_sim, version)
    result = chat(sim, "--model", "llama3.2:3b", input="/model nomic\n/model qwen\nHi\n")
    assert "nomic-embed-text:latest is an embedding model" in result.stderr
    assert '"qwen" is qwen2.5:0.5b' in result.stderr
    assert [r.model for r in chat_requests(sim)] == ["qwen2.5:0.5b"]


@pytest.mark.parametrize(
    ("version", "model", "command", "said", "sent"),
    [
        ("0.17.0", "deepseek-r1:1.5b", "/think high", "needs Ollama 0.18", None),
        ("0.33.0", "deepseek-r1:1.5b", "/think high", "Thinking level high.", "high"),
        ("0.17.0", "gpt-oss:20b", "/think max", "needs Ollama 0.22", None),
        ("0.22.0", "gpt-oss:20b", "/think max", "Thinking level max.", "max"),
        ("0.12.4", "gpt-oss:20b", "/think off", "cannot turn thinking off", None),
        ("0.33.0", "qwen2.5:0.5b", "/think on", "qwen2.5:0.5b cannot think", None),
        ("0.12.4", "qwen2.5:0.5b", "/think low", "qwen2.5:0.5b cannot think", None),
        ("0.12.4", "deepseek-r1:1.5b", "/think on", "Thinking on", True),
    ],
)
def test_think_command_is_checked_before_anything_is_sent(
    start_sim: Any, version: str, model: str, command: str, said: str, sent: object
) -> None:
    sim = real_world(start_sim, version)
    result = chat(sim, "--model", model, input=f"{command}\nHi\n")
    assert result.returncode == ExitStatus.OK, result.output  # the reply came: no 400
    assert said in result.stderr
    assert "/retry" not in result.output
    body = chat_requests(sim)[0].body
    assert body.get("think") == sent
    assert chat_requests(sim)[0].status == 200


@pytest.mark.parametrize("version", [OLD, NEW])
def test_a_cloud_model_named_is_allowed_and_the_signin_is_explained(
    start_sim: Any, version: str
) -> None:
    sim = real_world(start_sim, version)
    result = chat(sim, "--model", "gpt-oss:120b-cloud")
    assert "gpt-oss:120b-cloud is a cloud model" in result.stderr
    assert "ollama signin" in result.stderr
    assert [(r.model, r.status) for r in chat_requests(sim)] == [("gpt-oss:120b-cloud", 401)]
