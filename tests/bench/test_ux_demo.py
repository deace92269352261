"""``--demo``: the newcomer's first command, with no server anywhere (issue 11).

The benchmark starts the built-in simulator in its own process and benchmarks it; every
output says the numbers are simulated. Run as a user runs it: the root script, a real process.
"""

from __future__ import annotations

import json
from pathlib import Path

from ollamakit.errors import ExitStatus
from tests.support import assert_no_traceback, closed_port, run_program

#: Short enough for a test: one prompt, no warm-up (the demo's own defaults run 18 requests).
SHORT = ("--prompt", "greeting", "--warmup", "0", "--num-predict", "8")


def test_demo_benchmarks_the_built_in_simulator_and_says_so(tmp_path: Path) -> None:
    js, html, md = tmp_path / "d.json", tmp_path / "d.html", tmp_path / "d.md"
    result = run_program(
        [
            "--auto",
            "--demo",
            *SHORT,
            *("--output", str(js), "--output", str(html)),
            "--output",
            str(md),
        ],
        script="ollama-benchmark.py",
        # A configured server, unreachable, with a key: --demo neither uses nor needs it.
        env={"OLLAMA_BASE_URL": f"http://127.0.0.1:{closed_port()}", "OLLAMA_API_KEY": "k"},
    )
    assert_no_traceback(result)
    assert result.returncode == 0, result.output
    assert "DEMO: benchmarking the built-in simulator" in result.stderr  # the header
    assert "DEMO: these numbers come from the built-in simulator" in result.stdout  # summary
    for model in ("llama3.2:3b", "qwen2.5:0.5b", "deepseek-r1:1.5b"):
        assert model in result.stdout
    doc = json.loads(js.read_text("utf-8"))
    assert doc["demo"] is True
    assert doc["server"]["base_url"].startswith("http://127.0.0.1:")
    assert doc["config"]["runs"] == 1  # the demo's default
    assert all(r["ok"] for r in doc["results"]) and len(doc["results"]) == 3
    assert 'class="demo-banner"' in html.read_text("utf-8")
    assert md.read_text("utf-8").splitlines()[2].startswith("> **Demo run:")

    listing = run_program(["history"])
    assert "demo (simulated)" in listing.stdout


def test_demo_in_zh_tw_says_so(tmp_path: Path) -> None:
    js = tmp_path / "d.json"
    result = run_program(
        ["--auto", "--demo", *SHORT, "--output", str(js), "--no-save"],
        script="ollama-benchmark.py",
        env={"OLLAMAKIT_LANG": "zh-TW"},
    )
    assert result.returncode == 0, result.output
    assert "示範模式" in result.stderr and "示範模式" in result.stdout


def test_demo_with_base_url_is_a_usage_error() -> None:
    result = run_program(
        ["--auto", "--demo", "--base-url", "http://127.0.0.1:9"], script="ollama-benchmark.py"
    )
    assert_no_traceback(result)
    assert result.returncode == int(ExitStatus.ERROR)
    assert "--demo benchmarks the built-in simulator" in result.stderr
    assert "--base-url" in result.stderr


def test_chat_demo_answers_from_the_built_in_simulator() -> None:
    result = run_program(["--demo", "--model", "qwen2.5:0.5b"], script="hi-ai.py", input="hi\n")
    assert_no_traceback(result)
    assert result.returncode == 0, result.output
    assert "qwen2.5:0.5b, a simulated model" in result.stdout  # the simulator's reply
    assert "DEMO:" in result.stderr and "DEMO" not in result.stdout  # stdout: replies only

    refused = run_program(["--demo", "--base-url", "http://127.0.0.1:9"], script="hi-ai.py")
    assert refused.returncode == int(ExitStatus.ERROR)
    assert "--demo chats with the built-in simulator" in refused.stderr


def test_report_of_a_demo_run_says_so_first() -> None:
    made = run_program(["--auto", "--demo", *SHORT], script="ollama-benchmark.py")
    assert made.returncode == 0, made.output
    report = run_program(["report"])
    assert report.returncode == 0, report.output
    assert report.stdout.splitlines()[1].startswith("Demo run: measured against the built-in")
