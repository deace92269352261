"""Issue 9, item 2 in the doctor: "the smallest model" is never a cloud or an embedding model.

``ollamakit doctor --json`` in its own process against the real-world simulator, whose three
smallest entries are the cloud model (384 bytes), the embedding model and then qwen2.5:0.5b.
Under 0.12.4 the list carries no capabilities (``/api/show`` tells); under 0.33.0 it does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ollamakit.errors import ExitStatus
from ollamakit.sim import SimConfig
from ollamakit.sim.config import real_world_models
from tests.support import assert_no_traceback, run_program


@pytest.mark.parametrize("version", ["0.12.4", "0.33.0"])
def test_doctor_generates_with_the_smallest_local_chat_model(start_sim: Any, version: str) -> None:
    sim = start_sim(SimConfig(models=real_world_models(), version=version, speed=20))
    result = run_program(["doctor", "--json", "--base-url", sim.url], timeout=60)
    assert_no_traceback(result)
    assert result.returncode == ExitStatus.OK, result.output
    steps = {s["name"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps["generate"]["details"]["model"] == "qwen2.5:0.5b"
    generated = {r.model for r in sim.requests() if r.path in ("/api/generate", "/api/chat")}
    assert generated == {"qwen2.5:0.5b"}  # neither the cloud nor the embedding model was tried


@pytest.mark.parametrize("version", ["0.12.4", "0.33.0"])
def test_doctor_model_follows_the_one_matching_rule(start_sim: Any, version: str) -> None:
    sim = start_sim(SimConfig(models=real_world_models(), version=version, speed=20))
    result = run_program(["doctor", "--json", "--base-url", sim.url, "--model", "LLAMA3"])
    assert_no_traceback(result)
    steps = {s["name"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps["generate"]["details"]["model"] == "llama3.2:3b"
