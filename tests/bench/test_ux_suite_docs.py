"""The suite format's documentation: its example file and its YAML sample are real suites.

``docs/suites.md`` and ``docs/examples/suite.toml`` (issue 11): the example is loaded and run
through the real command against the simulator, so the documentation cannot drift from what
the parser accepts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ollamakit.bench.suites import load_suite, parse_suite
from ollamakit.sim import SimConfig
from tests.support import REPO, assert_no_traceback, run_program

from .conftest import FAST

EXAMPLE = REPO / "docs" / "examples" / "suite.toml"
GUIDE = REPO / "docs" / "suites.md"


def test_example_suite_runs_against_the_simulator(start_sim: Any, tmp_path: Path) -> None:
    suite = load_suite(EXAMPLE)
    assert suite.name == "support-bot" and suite.num_predict == 128
    sim = start_sim(SimConfig(models=(FAST,)))
    out = tmp_path / "run.json"
    result = run_program(
        [
            *("bench", "--base-url", sim.url, "--auto", "--runs", "1", "--warmup", "0"),
            *("--suite", str(EXAMPLE), "--category", "support", "--output", str(out), "--no-save"),
        ]
    )
    assert_no_traceback(result)
    assert result.returncode == 0, result.output
    doc = json.loads(out.read_text("utf-8"))
    assert doc["config"]["suite"] == "support-bot"
    assert [r["prompt_id"] for r in doc["results"]] == ["refund", "shipping"]
    chats = [r.body for r in sim.requests() if r.path == "/api/chat"]
    assert chats[0]["messages"][0]["role"] == "system"  # the example's system message
    assert chats[0]["options"]["num_predict"] == 128


def test_yaml_sample_in_the_guide_is_the_same_suite() -> None:
    block = re.search(r"```yaml\n(.*?)```", GUIDE.read_text("utf-8"), re.S)
    assert block is not None
    from_yaml = parse_suite(yaml.safe_load(block.group(1)), Path("guide.yaml"))
    from_toml = load_suite(EXAMPLE)
    assert from_yaml.name == from_toml.name
    assert [p.id for p in from_yaml.prompts] == [p.id for p in from_toml.prompts][:2]


def test_guide_lists_the_built_in_ids() -> None:
    from ollamakit.bench.suites import default_suite

    guide = GUIDE.read_text("utf-8")
    for prompt in default_suite().prompts:
        assert f"| `{prompt.id}` |" in guide
