"""Servers compared: fail fast, residency, the think plan, cold loads and keep_alive are every
server's own (issue 9), through the real ``ollamakit bench`` against two or three simulators
on different version profiles and faults.

Each test reads what the user gets (exit status, the summary, the ``--output`` document) and
what each server was sent (its own request log), never what a mock was told to say.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ollamakit.errors import ExitStatus
from ollamakit.sim import FaultKind, ModelSpec, SimConfig
from ollamakit.sim.config import preset_models
from tests.support import assert_no_traceback, run_program

from .conftest import FAST, faulty

QUICK = ("--auto", "--num-predict", "8", "--no-save")
OTHER = dataclasses.replace(FAST, name="other:1b")
# 5 ms a token: the answer comes after the thinking, as in test_compare.py
THINKER = ModelSpec("thinker:1b", eval_tps=200, reply_tokens=6, thinking=True, thinking_tokens=6)
CHAT_PATHS = ("/api/chat", "/v1/chat/completions")


def bench(*args: str) -> Any:
    result = run_program(["bench", *args], env={"COLUMNS": "240"}, timeout=90)
    assert_no_traceback(result)
    return result


def suite_file(tmp_path: Path, prompts: int = 2) -> str:
    path = tmp_path / "suite.toml"
    path.write_text(
        "".join(
            f'[[prompts]]\nid = "p{i}"\ncategory = "c"\nprompt = "Question {i}?"\n'
            for i in range(1, prompts + 1)
        ),
        "utf-8",
    )
    return str(path)


def chats(sim: Any, model: str | None = None) -> list[Any]:
    """The chat requests a simulator received (either API), warm-ups and unloads excluded."""
    return [
        r for r in sim.requests() if r.path in CHAT_PATHS and (model is None or r.model == model)
    ]


def by_server(doc: dict[str, Any], key: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["server"], row["model"]): row for row in doc[key]}


# --------------------------------------------------------------------------- fail fast


@pytest.mark.parametrize("warmup", ["1", "0"])
def test_a_model_failing_on_b_is_skipped_on_b_only(
    start_sim: Any, tmp_path: Path, warmup: str
) -> None:
    a = start_sim(SimConfig(models=(FAST, OTHER)))
    b = start_sim(
        SimConfig(models=(FAST, faulty("other:1b", FaultKind.STATUS, 500)), version="0.12.4")
    )
    out = tmp_path / "run.json"
    result = bench(
        "--base-url", a.url, "--base-url", b.url, *QUICK, "--runs", "3", "--warmup", warmup,
        "--model", "other:1b", "--model", "fast:1b",
        "--suite", suite_file(tmp_path), "--output", str(out),
    )  # fmt: skip
    assert result.returncode == ExitStatus.FAILURES, result.output
    assert f"Server {a.url} · {b.url} (Ollama 0.33.0 · Ollama 0.12.4)" in result.stderr
    # B: the warm-up only, or three measured requests; A: every request of the plan
    assert len(chats(b, "other:1b")) == (1 if warmup == "1" else 3)
    assert len(chats(a, "other:1b")) == int(warmup) + 2 * 3
    assert len(chats(b, "fast:1b")) == int(warmup) + 2 * 3  # the next model ran on B
    doc = json.loads(out.read_text("utf-8"))
    assert doc["status"] == "complete"
    facts = by_server(doc, "models")
    assert set(facts) == {(s, m) for s in ("ollama /api", "ollama /api #2") for m in
                          ("other:1b", "fast:1b")}  # fmt: skip
    why = facts[("ollama /api #2", "other:1b")]["skipped"]
    assert ("warm-up failed" if warmup == "1" else "3 requests in a row failed") in why
    assert "HTTP 500" in why
    assert facts[("ollama /api", "other:1b")]["skipped"] is None
    assert facts[("ollama /api #2", "fast:1b")]["skipped"] is None
    a_rows = [r for r in doc["results"] if r["server"] == "ollama /api"]
    assert len(a_rows) == 12 and all(r["ok"] for r in a_rows)
    # The summary names B: skipped "other:1b @ ollama /api #2", never A's other:1b.
    skipped = result.stdout.split("Skipped models: 1")[1]
    assert "other:1b @ ollama /api #2" in skipped
    assert "other:1b @ ollama /api:" not in skipped
    side = result.stdout.split("Servers side by side")[1]
    other = [line for line in side.splitlines() if line.strip().startswith("other:1b")]
    assert len(other) == 2, side
    if warmup == "0":  # p1 failed three times on B, then the model was skipped there
        assert "0/3" in other[0], side
    assert "skipped" in other[-1], side  # no measured row on B: its cell says why


@pytest.mark.parametrize("gone", ["first", "second"])
def test_a_server_that_goes_away_ends_its_part_the_other_finishes(
    start_sim: Any, proxy: Any, tmp_path: Path, gone: str
) -> None:
    healthy = start_sim(SimConfig(models=(FAST, OTHER)))
    dying = start_sim(SimConfig(models=(FAST, OTHER), version="0.12.4"))
    proxied = proxy(dying.url, die_after=3)  # a warm-up and two measured, then gone
    urls = [proxied, healthy.url] if gone == "first" else [healthy.url, proxied]
    names = ["ollama /api", "ollama /api #2"]
    dead, alive = names if gone == "first" else names[::-1]
    out = tmp_path / "run.json"
    result = bench(
        "--base-url", urls[0], "--base-url", urls[1], *QUICK, "--runs", "3",
        "--suite", suite_file(tmp_path, 3), "--output", str(out),
    )  # fmt: skip
    assert result.returncode == ExitStatus.ERROR, result.output
    doc = json.loads(out.read_text("utf-8"))
    assert doc["status"] == "failed"
    assert doc["failure"].startswith(f"{dead}: 3 connections in a row failed")
    assert "the other servers went on" in doc["failure"]
    alive_rows = [r for r in doc["results"] if r["server"] == alive]
    dead_rows = [r for r in doc["results"] if r["server"] == dead]
    assert len(alive_rows) == 2 * 3 * 3 and all(r["ok"] for r in alive_rows)  # whole
    # kept: its good rows, then three refused (the proxy's shutdown runs in a thread, so on a
    # busy machine one more request may slip through before it stops listening)
    oks = [r["ok"] for r in dead_rows]
    assert oks[-3:] == [False] * 3 and len(oks) >= 5 and all(oks[:-3]), oks
    assert len(chats(healthy)) == 2 * (1 + 9)
    assert len(chats(dying)) == len(oks) - 3 + 1  # the warm-up and the good ones only
    # the gone server's second model was never asked: no facts, nothing "skipped" for it
    facts = by_server(doc, "models")
    assert (dead, "other:1b") not in facts and facts[(alive, "other:1b")]["skipped"] is None
    assert f"The run failed: {dead}:" in result.stderr
    side = result.stdout.split("Servers side by side")[1]
    assert [line for line in side.splitlines() if line.strip().startswith("other:1b")]


# --------------------------------------------------------------------------- residency


def test_residency_is_each_servers_own(start_sim: Any, tmp_path: Path) -> None:
    offloaded = next(m for m in preset_models("real-world") if m.name == "gemma3:27b")
    whole = dataclasses.replace(offloaded, size_vram=offloaded.size)  # A: all on the GPU
    a = start_sim(SimConfig(models=(whole,), speed=50))
    b = start_sim(SimConfig(models=preset_models("real-world"), speed=50))  # B: 68% GPU
    out, md = tmp_path / "run.json", tmp_path / "run.md"
    result = bench(
        "--base-url", a.url, "--base-url", b.url, "--base-url", a.url,
        "--api", "ollama,ollama,openai", *QUICK, "--runs", "1", "--model", "gemma3:27b",
        "--suite", suite_file(tmp_path, 1), "--output", str(out), "--output", str(md),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    doc = json.loads(out.read_text("utf-8"))
    facts = by_server(doc, "models")
    assert facts[("ollama /api", "gemma3:27b")]["gpu_share"] == 1.0
    b_facts = facts[("ollama /api #2", "gemma3:27b")]
    assert b_facts["gpu_share"] == pytest.approx(0.68, abs=0.01)
    assert b_facts["size"] > b_facts["size_vram"] > 0
    v1 = facts[("ollama /v1", "gemma3:27b")]
    assert "gpu_share" not in v1 and v1["residency_absent"] == "no_api_ps"
    # each Ollama server was asked its own /api/ps after the warm-up
    assert [r.path for r in b.requests()].count("/api/ps") == 1
    assert [r.path for r in a.requests()].count("/api/ps") == 1  # /api asked, /v1 not
    summary, side = result.stdout.split("Servers side by side")
    v1_row = next(line for line in summary.splitlines() if "gemma3:27b @ ollama /v1" in line)
    assert v1_row.rstrip().endswith("no /api/ps"), v1_row  # said, not a silent "—"
    row = next(line for line in side.splitlines() if line.strip().startswith("gemma3:27b"))
    assert row.index("100% GPU") < row.index("68% GPU") < row.index("no /api/ps"), row
    hint = next(line for line in result.stdout.splitlines() if "runs 68% GPU" in line)
    assert hint.startswith("→ ollama /api #2: gemma3:27b")
    assert not [line for line in result.stdout.splitlines() if "ollama /api: gemma3" in line]
    report = md.read_text("utf-8").split("Servers side by side")[1]
    assert "68% GPU" in report and "no /api/ps" in report


# --------------------------------------------------------------------------- think


def test_a_level_an_older_server_cannot_take_is_refused_naming_it(
    start_sim: Any, tmp_path: Path
) -> None:
    a = start_sim(SimConfig(models=(THINKER,)))  # 0.33.0
    b = start_sim(SimConfig(models=(THINKER,), version="0.12.4"))  # levels only from 0.18
    result = bench(
        "--base-url", a.url, "--base-url", b.url, *QUICK, "--runs", "1", "--think", "high",
        "--suite", suite_file(tmp_path, 1),
    )  # fmt: skip
    assert result.returncode == ExitStatus.ERROR, result.output
    assert b.url in result.stderr and "0.12.4" in result.stderr
    assert not chats(a) and not chats(b)  # refused before anything was sent


def test_each_server_gets_its_own_think_value(start_sim: Any, tmp_path: Path) -> None:
    a = start_sim(SimConfig(models=(THINKER,)))  # 0.33.0: unset think = on
    b = start_sim(SimConfig(models=(THINKER,), version="0.12.4"))  # unset = off (<think> tags)
    out = tmp_path / "run.json"
    result = bench(
        "--base-url", a.url, "--base-url", b.url, "--base-url", a.url,
        "--api", "ollama,ollama,openai", *QUICK, "--runs", "1", "--think", "off",
        "--suite", suite_file(tmp_path, 1), "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    native_a = [r.body for r in a.requests() if r.path == "/api/chat"]
    v1_a = [r.body for r in a.requests() if r.path == "/v1/chat/completions"]
    native_b = [r.body for r in b.requests() if r.path == "/api/chat"]
    assert native_a and all(body["think"] is False for body in native_a)
    assert native_b and all(body["think"] is False for body in native_b)
    # /v1 has no on/off field: nothing sent, and the user is told so
    assert v1_a and not any("think" in body or "reasoning_effort" in body for body in v1_a)
    assert "ollama /v1: /v1 has no field to turn thinking on or off" in result.stderr
    doc = json.loads(out.read_text("utf-8"))
    plans = {p["name"]: p for p in doc["config"]["servers"]}
    assert plans["ollama /api"]["think_sent"] == {"thinker:1b": False}
    assert plans["ollama /api #2"]["think_sent"] == {"thinker:1b": False}
    assert plans["ollama /v1"]["think_sent"] == {"thinker:1b": None}
    assert plans["ollama /v1"]["think_field"] == "reasoning_effort"
    assert doc["config"]["think_sent"] == {"thinker:1b": False}  # the first server's, as before
    v1_rows = [r for r in doc["results"] if r["server"] == "ollama /v1"]
    assert v1_rows and all(r["thinking_chunks"] for r in v1_rows)  # the default: it thought


def test_a_think_level_goes_to_v1_as_reasoning_effort(start_sim: Any, tmp_path: Path) -> None:
    oss = ModelSpec(
        "gpt-oss:20b", eval_tps=500, reply_tokens=4, thinking=True, thinking_tokens=4,
        think_levels_only=True,
    )  # fmt: skip
    a = start_sim(SimConfig(models=(oss,)))
    b = start_sim(SimConfig(models=(oss,), version="0.12.4"))  # gpt-oss takes levels in 0.12
    out = tmp_path / "run.json"
    result = bench(
        "--base-url", a.url, "--base-url", b.url, "--base-url", a.url,
        "--api", "ollama,ollama,openai", *QUICK, "--runs", "1", "--think", "low",
        "--suite", suite_file(tmp_path, 1), "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    assert all(r.body["think"] == "low" for r in a.requests() if r.path == "/api/chat")
    assert all(r.body["think"] == "low" for r in b.requests() if r.path == "/api/chat")
    v1 = [r.body for r in a.requests() if r.path == "/v1/chat/completions"]
    assert v1 and all(body["reasoning_effort"] == "low" for body in v1)
    plans = {p["name"]: p for p in json.loads(out.read_text("utf-8"))["config"]["servers"]}
    assert {name: p["think_sent"]["gpt-oss:20b"] for name, p in plans.items()} == {
        "ollama /api": "low",
        "ollama /api #2": "low",
        "ollama /v1": "low",
    }


# --------------------------------------------------------------------------- cold, keep_alive


def test_cold_loads_and_keep_alive_on_every_server(start_sim: Any, tmp_path: Path) -> None:
    a = start_sim(SimConfig(models=(FAST,)))
    b = start_sim(SimConfig(models=(FAST,), version="0.12.4"))
    c = start_sim(SimConfig(models=(FAST,)))  # asked on /v1
    out = tmp_path / "run.json"
    result = bench(
        "--base-url", a.url, "--base-url", b.url, "--base-url", c.url,
        "--api", "ollama,ollama,openai", *QUICK, "--runs", "1", "--cold", "--cold-runs", "2",
        "--num-ctx", "2048", "--suite", suite_file(tmp_path, 1), "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    for sim in (a, b):  # each Ollama server: unload, load, unload, load, then the measured one
        native = [r for r in sim.requests() if r.path in ("/api/chat", "/api/generate")]
        unloads = [r.body.get("keep_alive") == 0 and not r.body.get("messages") for r in native]
        assert unloads == [True, False, True, False, False], [r.body for r in native]
        asked = [r.body for r in native if r.path == "/api/chat"]
        assert all(body["keep_alive"] == "30m" for body in asked)  # pinned for the run
        assert all(body["options"]["num_ctx"] == 2048 for body in asked)
        assert [r.cold_load for r in native if r.path == "/api/chat"] == [True, True, False]
    v1 = [r for r in c.requests() if r.path != "/v1/models" and not r.path.startswith("/api/")]
    assert [r.path for r in v1] == ["/v1/chat/completions"] * 3  # no unload: /v1 has none
    assert not any("keep_alive" in r.body or "num_ctx" in r.body for r in v1)
    doc = json.loads(out.read_text("utf-8"))
    loads = by_server(doc, "cold_loads")
    for name in ("ollama /api", "ollama /api #2"):
        assert loads[(name, "fast:1b")]["state"] == "cold"
        assert len(loads[(name, "fast:1b")]["load_runs_ms"]) == 2
    assert loads[("ollama /v1", "fast:1b")]["state"] is None  # not forced: nothing to claim
    plans = {p["name"]: p for p in doc["config"]["servers"]}
    assert [(p["keep_alive"], p["num_ctx"], p["cold"]) for p in plans.values()] == [
        ("30m", 2048, True),
        ("30m", 2048, True),
        (None, None, False),
    ]
    said = result.stderr.replace("\n", " ")
    for what in ("--num-ctx is not sent on /v1", "/v1 cannot unload", "keep_alive cannot be sent"):
        assert f"ollama /v1: {what}" in said, result.stderr
    assert "reloads" not in said  # /v1 is another server here


def test_num_ctx_on_one_servers_api_and_v1_reloads_and_is_said(
    start_sim: Any, tmp_path: Path
) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    result = bench(
        "--base-url", sim.url, "--api", "ollama,openai", *QUICK, "--runs", "2",
        "--num-ctx", "2048", "--suite", suite_file(tmp_path, 1),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    # /api loads it with num_ctx 2048, /v1 (no num_ctx) with the default: each switch reloads
    native = [r.cold_load for r in sim.requests() if r.path == "/api/chat"]
    assert native == [True, True, True], native
    assert "each switch between them reloads the model" in result.stderr.replace("\n", " ")


def test_llama_cpp_beside_ollama_gets_what_its_api_has(start_sim: Any, tmp_path: Path) -> None:
    ollama = start_sim(SimConfig(models=(THINKER,), version="0.12.4"))
    llama = start_sim(SimConfig(models=(THINKER,), engine="llama.cpp"))
    out = tmp_path / "run.json"
    result = bench(
        "--base-url", ollama.url, "--base-url", llama.url, *QUICK, "--runs", "1",
        "--think", "off", "--cold", "--suite", suite_file(tmp_path, 1), "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    said = result.stderr.replace("\n", " ")
    assert "llama.cpp /v1: /v1 has no field to turn thinking on or off" in said
    assert "llama.cpp /v1: /v1 cannot unload a model" in said
    assert "llama.cpp /v1: keep_alive" not in said  # llama-server never unloads: nothing to say
    sent = [r for r in llama.requests() if r.path == "/v1/chat/completions"]
    assert len(sent) == 2  # the warm-up (not forced cold: it cannot unload) and one measured
    assert not any(k in r.body for r in sent for k in ("think", "reasoning_effort", "keep_alive"))
    assert not [r for r in llama.requests() if r.path in ("/api/ps", "/api/generate")]
    assert all(r.body["think"] is False for r in ollama.requests() if r.path == "/api/chat")
    doc = json.loads(out.read_text("utf-8"))
    facts = by_server(doc, "models")
    assert facts[("llama.cpp /v1", "thinker:1b")]["residency_absent"] == "no_api_ps"
    assert facts[("ollama /api", "thinker:1b")]["gpu_share"] == 1.0
    loads = by_server(doc, "cold_loads")
    assert loads[("ollama /api", "thinker:1b")]["state"] == "cold"
    assert loads[("llama.cpp /v1", "thinker:1b")]["state"] is None
    plans = {p["name"]: p for p in doc["config"]["servers"]}
    assert plans["llama.cpp /v1"]["think_sent"] == {"thinker:1b": None}
    assert plans["ollama /api"]["think_sent"] == {"thinker:1b": False}


def test_a_saved_comparison_keeps_each_servers_facts(
    start_sim: Any, tmp_path: Path, isolated_env: Path
) -> None:
    a = start_sim(SimConfig(models=(FAST, OTHER)))
    b = start_sim(SimConfig(models=(FAST, faulty("other:1b", FaultKind.STATUS, 500))))
    result = bench(
        "--base-url", a.url, "--base-url", b.url, "--auto", "--num-predict", "8", "--runs", "1",
        "--suite", suite_file(tmp_path, 1),
    )  # fmt: skip
    assert result.returncode == ExitStatus.FAILURES, result.output
    found = re.search(r"ollamakit report ([0-9a-f]{12})", result.output)
    assert found, result.output
    shown = run_program(["report", found.group(1)], env={"COLUMNS": "240"})
    assert shown.returncode == 0, shown.output
    assert "other:1b @ ollama /api #2: its warm-up failed" in shown.stdout
    side = shown.stdout.split("Servers side by side")[1]
    assert "skipped" in next(line for line in side.splitlines() if "other:1b" in line)
    out = tmp_path / "again.json"
    assert run_program(["report", found.group(1), "-o", str(out)]).returncode == 0
    doc = json.loads(out.read_text("utf-8"))
    assert len(doc["models"]) == 4 and {m["server"] for m in doc["models"]} == {
        "ollama /api",
        "ollama /api #2",
    }
    assert [p["name"] for p in doc["config"]["servers"]] == ["ollama /api", "ollama /api #2"]
