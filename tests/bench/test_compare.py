"""``bench`` on an OpenAI-compatible API, and servers compared side by side, through the CLI.

Real HTTP to the simulator's ``/v1`` (as Ollama's OpenAI layer serves it) and to its
``--engine llama.cpp`` mode; the document, the reports and the interleaving are read from
what the command wrote.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ollamakit.sim import ModelSpec, SimConfig
from tests.support import assert_no_traceback, run_program

from .conftest import FAST

QUICK = ("--auto", "--runs", "2", "--warmup", "1", "--num-predict", "8", "--no-save")
# 5 ms a token: the answer comes ~30 ms after the thinking, never in the same socket read
THINKER = ModelSpec("thinker:1b", eval_tps=200, reply_tokens=6, thinking=True, thinking_tokens=6)


def suite_file(tmp_path: Path) -> str:
    path = tmp_path / "suite.toml"
    path.write_text(
        '[[prompts]]\nid = "hi"\ncategory = "greeting"\nprompt = "Hello!"\n'
        '[[prompts]]\nid = "sum"\ncategory = "coding"\nprompt = "Add 2 and 3."\n',
        "utf-8",
    )
    return str(path)


def bench(*args: str) -> Any:
    result = run_program(["bench", *args], env={"COLUMNS": "200"}, timeout=90)
    assert_no_traceback(result)
    return result


def test_bench_on_ollamas_v1(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    out = tmp_path / "run.json"
    result = bench(
        "--base-url",
        sim.url,
        "--api",
        "openai",
        *QUICK,
        "--suite",
        suite_file(tmp_path),
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.output
    assert f"{sim.url}: Ollama {sim.config.version}, OpenAI-compatible API (/v1)" in result.stderr
    doc = json.loads(out.read_text("utf-8"))
    assert doc["server"]["api"] == "openai"
    assert doc["server"]["engine"] == "ollama"
    assert [s["name"] for s in doc["servers"]] == ["ollama /v1"]
    assert len(doc["results"]) == 4
    for row in doc["results"]:
        assert row["ok"], row["error"]
        assert row["server"] == "ollama /v1"
        assert row["eval_count"] == 8  # from usage.completion_tokens: no tokenizer
        assert row["eval_tps"] is None  # Ollama's /v1 reports no durations: stays null
        assert row["e2e_tps"] is not None and row["ttft_ms"] is not None
    sent = [r for r in sim.requests() if r.path == "/v1/chat/completions"]
    assert len(sent) == 5  # warm-up + 2 prompts x 2 runs, all on /v1
    assert not [r for r in sim.requests() if r.path == "/api/chat"]


def test_native_api_against_its_own_v1_interleaved(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    out, md, html = tmp_path / "run.json", tmp_path / "run.md", tmp_path / "run.html"
    result = bench(
        "--base-url",
        sim.url,
        "--api",
        "ollama,openai",
        *QUICK,
        "--suite",
        suite_file(tmp_path),
        "--output",
        str(out),
        "--output",
        str(md),
        "--output",
        str(html),
    )
    assert result.returncode == 0, result.output
    assert "native API (/api)" in result.stderr and "OpenAI-compatible API (/v1)" in result.stderr
    assert "Servers side by side" in result.stdout
    doc = json.loads(out.read_text("utf-8"))
    names = [s["name"] for s in doc["servers"]]
    assert names == ["ollama /api", "ollama /v1"]
    assert doc["server"]["name"] == "ollama /api"  # the first, for older readers
    # interleaved: per prompt and run, the first server then the second
    order = [(r["prompt_id"], r["run_index"], r["server"]) for r in doc["results"]]
    assert order == [(p, run, name) for p in ("hi", "sum") for run in (0, 1) for name in names]
    assert {(s["server"], s["prompt_id"]) for s in doc["summary"]} == {
        (n, p) for n in names for p in ("hi", "sum")
    }
    native = [r for r in doc["results"] if r["server"] == "ollama /api"]
    v1 = [r for r in doc["results"] if r["server"] == "ollama /v1"]
    assert all(r["eval_tps"] is not None for r in native)
    assert all(r["eval_tps"] is None for r in v1)
    assert {c["server"] for c in doc["cold_loads"]} == set(names)
    assert {c["server"] for c in doc["concurrency_summary"]} == set(names)
    totals = {n: sum(r["total_ms"] for r in doc["results"] if r["server"] == n) for n in names}
    for level in doc["concurrency_summary"]:  # each server's wall time: its own batches only
        own_ms = totals[level["server"]]
        other_ms = sum(totals.values()) - own_ms
        assert level["wall_s"] * 1000 - own_ms < 0.8 * other_ms, (level, totals)
    # the request log: both endpoints, alternating, and no two prompts alike (no shared cache)
    chats = [r for r in sim.requests() if r.path in ("/api/chat", "/v1/chat/completions")]
    assert [r.path for r in chats] == ["/api/chat", "/v1/chat/completions"] * 5
    firsts = [r.body["messages"][0]["content"] for r in chats]
    assert len(set(firsts)) == len(firsts)
    for report in (md.read_text("utf-8"), html.read_text("utf-8")):
        assert "Servers side by side" in report
        assert "ollama /api" in report and "ollama /v1" in report


def test_two_servers_llama_cpp_and_ollama(start_sim: Any, tmp_path: Path) -> None:
    ollama = start_sim(SimConfig(models=(FAST,)))
    llama = start_sim(SimConfig(models=(FAST,), engine="llama.cpp"))
    out = tmp_path / "run.json"
    result = bench(
        "--base-url",
        ollama.url,
        "--base-url",
        llama.url,
        *QUICK,
        "--suite",
        suite_file(tmp_path),
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.output
    assert f"{llama.url}: llama.cpp" in result.stderr
    doc = json.loads(out.read_text("utf-8"))
    assert [(s["api"], s["engine"]) for s in doc["servers"]] == [
        ("ollama", "ollama"),
        ("openai", "llama.cpp"),
    ]
    llama_rows = [r for r in doc["results"] if r["server"] == "llama.cpp /v1"]
    assert len(llama_rows) == 4
    for row in llama_rows:
        # llama.cpp's timings are the server-side figures
        assert row["eval_count"] == 8 and row["eval_tps"] is not None
        assert row["load_ms"] is None  # not reported: null, not 0


def test_api_list_must_match_the_urls(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    result = bench(
        "--base-url", sim.url, "--base-url", sim.url, "--api", "ollama,openai,auto", *QUICK
    )
    assert result.returncode == 2
    assert "--api gives 3 APIs for 2 --base-url values" in result.stderr


def test_reasoning_stream_on_v1_is_measured_as_thinking(start_sim: Any, tmp_path: Path) -> None:
    for engine in ("ollama", "llama.cpp"):
        sim = start_sim(SimConfig(models=(THINKER,), engine=engine))
        out = tmp_path / f"{engine}.json"
        result = bench(
            "--base-url",
            sim.url,
            "--api",
            "openai",
            *QUICK,
            "--suite",
            suite_file(tmp_path),
            "--output",
            str(out),
        )
        assert result.returncode == 0, result.output
        for row in json.loads(out.read_text("utf-8"))["results"]:
            assert row["ttft_thinking_ms"] is not None, engine
            assert row["thinking_chunks"], engine
            assert row["ttft_ms"] is not None and row["ttft_ms"] > row["ttft_thinking_ms"]


def test_a_saved_comparison_reads_back_side_by_side(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    args = ["--auto", "--runs", "1", "--warmup", "0", "--num-predict", "8"]
    result = bench(
        "--base-url", sim.url, "--api", "ollama,openai", *args, "--suite", suite_file(tmp_path)
    )
    assert result.returncode == 0, result.output
    found = re.search(r"ollamakit report ([0-9a-f]{12})", result.output)
    assert found, result.output
    run_id = found.group(1)
    shown = run_program(["report", run_id], env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.output
    assert "Servers side by side" in shown.stdout
    assert "fast:1b @ ollama /v1" in shown.stdout
    out = tmp_path / "again.json"
    run_program(["report", run_id, "-o", str(out)])
    doc = json.loads(out.read_text("utf-8"))
    assert {r["server"] for r in doc["results"]} == {"ollama /api", "ollama /v1"}
    assert len(doc["servers"]) == 2
