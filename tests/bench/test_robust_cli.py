"""Issue 9 items 4-9, 12, 13 through the real ``ollamakit bench`` (and doctor), against the
simulator under two version profiles: an old one (0.12.3: thinking off by default, no
capabilities in tags, 4096 default context) and the newest (0.33.0).

Each test reads what the user gets (exit status, the summary, the ``--output`` document) and
what the server was sent (the simulator's request log), never what a mock was told to say.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ollamakit.errors import ExitStatus
from ollamakit.sim import FaultKind, ModelSpec, SimConfig
from tests.support import assert_no_traceback, run_program

from .conftest import FAST, faulty

VERSIONS = ("0.12.3", "0.33.0")
QUICK = ("--auto", "--runs", "1", "--num-predict", "8", "--no-save")


def bench(url: str, *args: str) -> Any:
    result = run_program(["bench", "--base-url", url, *args])
    assert_no_traceback(result)
    return result


def one_prompt(tmp_path: Path, text: str = "Hello!") -> str:
    path = tmp_path / "suite.toml"
    path.write_text(f'[[prompts]]\nid = "hi"\ncategory = "greeting"\nprompt = "{text}"\n', "utf-8")
    return str(path)


def three_prompts(tmp_path: Path) -> str:
    path = tmp_path / "three.toml"
    path.write_text(
        "".join(
            f'[[prompts]]\nid = "p{i}"\ncategory = "c"\nprompt = "Question {i}?"\n'
            for i in range(1, 4)
        ),
        "utf-8",
    )
    return str(path)


def sim_log(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/_sim/requests") as answer:
        records: list[dict[str, Any]] = json.loads(answer.read())
    return records


def chats(url: str, model: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in sim_log(url)
        if r["path"] == "/api/chat" and (model is None or r.get("model") == model)
    ]


# --------------------------------------------------------------------------- item 4: fail fast


@pytest.mark.parametrize("version", VERSIONS)
def test_a_model_whose_warm_up_fails_is_skipped_with_its_reason(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    broken = faulty("broken:1b", FaultKind.STATUS, 500)
    sim = start_sim(SimConfig(models=(FAST, broken), version=version))
    out = tmp_path / "run.json"
    result = bench(
        sim.url, *QUICK, "--runs", "3", "--suite", three_prompts(tmp_path), "--output", str(out)
    )
    assert result.returncode == ExitStatus.FAILURES, result.output
    assert len(chats(sim.url, "broken:1b")) == 1  # the warm-up only, not 3 prompts × 3 runs
    doc = json.loads(out.read_text("utf-8"))
    facts = {m["model"]: m for m in doc["models"]}
    assert facts["fast:1b"]["skipped"] is None
    assert "warm-up failed" in facts["broken:1b"]["skipped"]
    assert "HTTP 500" in facts["broken:1b"]["skipped"]
    assert all(r["model"] == "fast:1b" for r in doc["results"]) and len(doc["results"]) == 9
    assert doc["status"] == "complete"
    assert "Skipped models: 1" in result.stdout and "broken:1b" in result.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_three_failures_in_a_row_skip_the_rest_of_a_model(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    broken = faulty("broken:1b", FaultKind.STATUS, 500)
    sim = start_sim(SimConfig(models=(broken, FAST), version=version))
    out = tmp_path / "run.json"
    result = bench(
        sim.url, *QUICK, "--warmup", "0", "--runs", "3",
        "--suite", three_prompts(tmp_path), "--output", str(out),
    )  # fmt: skip
    assert result.returncode == ExitStatus.FAILURES, result.output
    assert len(chats(sim.url, "broken:1b")) == 3  # not 9
    doc = json.loads(out.read_text("utf-8"))
    broken_rows = [r for r in doc["results"] if r["model"] == "broken:1b"]
    assert len(broken_rows) == 3 and not any(r["ok"] for r in broken_rows)
    assert len([r for r in doc["results"] if r["model"] == "fast:1b"]) == 9  # the next model ran
    facts = {m["model"]: m for m in doc["models"]}
    assert "3 requests in a row failed" in facts["broken:1b"]["skipped"]
    # Failures grouped by model and error: one line, its prompts named once, nothing hidden.
    lines = [line for line in result.stdout.splitlines() if "✘ broken:1b ×" in line]
    assert len(lines) == 1 and "×3 (p1)" in lines[0], result.stdout
    assert "…" not in result.stdout and " more" not in result.stdout.split("Skipped")[1]


def test_a_server_that_goes_away_ends_the_run_failed_exit_2(
    start_sim: Any, proxy: Any, tmp_path: Path
) -> None:
    sim = start_sim(SimConfig(models=(FAST, dataclasses.replace(FAST, name="b:1b"))))
    url = proxy(sim.url, die_after=3)  # a warm-up and two measured requests, then gone
    out = tmp_path / "run.json"
    result = bench(
        url, *QUICK, "--runs", "3", "--suite", three_prompts(tmp_path), "--output", str(out)
    )
    assert result.returncode == ExitStatus.ERROR, result.output
    doc = json.loads(out.read_text("utf-8"))
    assert doc["status"] == "failed"
    assert "connections in a row failed" in doc["failure"]
    assert [r["ok"] for r in doc["results"]][:2] == [True, True]  # the results are kept
    assert len(doc["results"]) == 5  # two good ones, then three refused: the run stopped
    assert "The run failed" in result.stderr


# --------------------------------------------------------------------------- item 5: buffering


@pytest.mark.parametrize("version", VERSIONS)
def test_a_buffering_proxy_is_flagged_and_its_ttft_not_shown(
    start_sim: Any, proxy: Any, tmp_path: Path, version: str
) -> None:
    slow = ModelSpec("slow:1b", load_ms=10, warm_load_ms=1, eval_tps=200, reply_tokens=30)
    sim = start_sim(SimConfig(models=(slow,), version=version))
    out = tmp_path / "run.json"
    result = bench(
        proxy(sim.url), "--auto", "--runs", "2", "--no-save", "--num-predict", "30",
        "--suite", one_prompt(tmp_path), "--output", str(out), "--output", str(tmp_path / "r.md"),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    doc = json.loads(out.read_text("utf-8"))
    assert all(r["buffered"] for r in doc["results"])
    assert doc["summary"][0]["ttft_ms"]["median"] is None  # not a time to first token
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith("slow:1b"))
    assert "— (buffered)" in row
    assert result.stdout.count("proxy_buffering off") == 1  # the hint, once
    assert "ollamakit doctor" in result.stdout
    assert "— (buffered)" in (tmp_path / "r.md").read_text("utf-8")


# --------------------------------------------------------------------------- item 6: residency


@pytest.mark.parametrize("version", VERSIONS)
def test_residency_is_recorded_shown_and_a_partial_offload_explained(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    part = ModelSpec(
        "big:27b", size=10_000_000_000, size_vram=6_300_000_000, load_ms=10, warm_load_ms=1,
        eval_tps=2000, reply_tokens=8, context_length=8192,
    )  # fmt: skip
    sim = start_sim(SimConfig(models=(FAST, part), version=version))
    out, html, md = tmp_path / "run.json", tmp_path / "run.html", tmp_path / "run.md"
    result = bench(
        sim.url, *QUICK, "--suite", one_prompt(tmp_path),
        "--output", str(out), "--output", str(html), "--output", str(md),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    doc = json.loads(out.read_text("utf-8"))
    facts = {m["model"]: m for m in doc["models"]}
    assert facts["big:27b"]["gpu_share"] == pytest.approx(0.63, abs=0.01)
    assert facts["big:27b"]["size"] > facts["big:27b"]["size_vram"] > 0
    assert facts["big:27b"]["context_length"] == 8192
    assert facts["fast:1b"]["gpu_share"] == 1.0
    assert "63% GPU" in result.stdout and "100% GPU" in result.stdout
    hint = next(line for line in result.stdout.splitlines() if "big:27b runs 63% GPU" in line)
    for advice in ("smaller quantization", "--num-ctx", "OLLAMA_FLASH_ATTENTION=1", "q8_0"):
        assert advice in hint
    assert "63% GPU" in html.read_text("utf-8") and "63% GPU" in md.read_text("utf-8")
    doctor = run_program(["doctor", "--base-url", sim.url, "--model", "big:27b"])
    assert "big:27b runs 63% GPU" in doctor.stdout + doctor.stderr
    assert "OLLAMA_KV_CACHE_TYPE=q8_0" in doctor.stdout + doctor.stderr
    assert doctor.returncode == 0  # a warning, not a failure


# --------------------------------------------------------------------------- items 7 and 13


@pytest.mark.parametrize("version", VERSIONS)
def test_cold_loads_on_purpose(start_sim: Any, tmp_path: Path, version: str) -> None:
    model = ModelSpec("cold:1b", load_ms=300, warm_load_ms=1, eval_tps=2000, reply_tokens=8)
    sim = start_sim(SimConfig(models=(model,), version=version))
    warm = tmp_path / "warm.json"
    bench(sim.url, *QUICK, "--suite", one_prompt(tmp_path), "--output", str(warm))
    second = bench(sim.url, *QUICK, "--suite", one_prompt(tmp_path), "--output", str(warm))
    [load] = json.loads(warm.read_text("utf-8"))["cold_loads"]
    assert load["state"] == "already_loaded" and load["load_ms"] < 50  # not a cold load
    assert "Already in memory" in second.stdout
    out = tmp_path / "cold.json"
    result = bench(
        sim.url, *QUICK, "--cold", "--cold-runs", "2", "--suite", one_prompt(tmp_path),
        "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    doc = json.loads(out.read_text("utf-8"))
    [load] = doc["cold_loads"]
    assert load["state"] == "cold" and len(load["load_runs_ms"]) == 2
    assert all(ms >= 250 for ms in load["load_runs_ms"])  # real loads, each one
    assert doc["config"]["cold"] is True and doc["config"]["cold_runs"] == 2
    unloads = [
        r for r in sim_log(sim.url)
        if r["path"] == "/api/generate" and (r.get("body") or {}).get("keep_alive") == 0
    ]  # fmt: skip
    assert len(unloads) == 2
    assert "Cold loads" in result.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_keep_alive_pinned_and_num_ctx_sent_and_recorded(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    sim = start_sim(SimConfig(models=(FAST,), version=version))
    out = tmp_path / "run.json"
    result = bench(
        sim.url, *QUICK, "--num-ctx", "2048", "--suite", one_prompt(tmp_path), "--output", str(out)
    )
    assert result.returncode == 0, result.output
    sent = chats(sim.url)
    assert len(sent) == 2  # warm-up and one measured request
    assert all(r["body"]["keep_alive"] == "30m" for r in sent)
    assert all(r["body"]["options"]["num_ctx"] == 2048 for r in sent)
    doc = json.loads(out.read_text("utf-8"))
    assert doc["config"]["num_ctx"] == 2048 and doc["config"]["keep_alive"] == "30m"
    assert doc["models"][0]["context_length"] == 2048  # what /api/ps says it was loaded with
    assert "reload" in result.stderr  # a different num_ctx reloads the model: said up front


# --------------------------------------------------------------------------- items 8, 9, 12


@pytest.mark.parametrize("version", VERSIONS)
def test_honest_rates_prefill_only_where_measurable_and_overhead_not_network(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    sim = start_sim(SimConfig(models=(FAST,), version=version))
    out = tmp_path / "run.json"
    result = bench(sim.url, *QUICK, "--warmup", "1", "--output", str(out))  # the default suite
    assert result.returncode == 0, result.output
    doc = json.loads(out.read_text("utf-8"))
    rtt = doc["server"]["rtt_ms"]["median"]
    for r in doc["results"]:
        assert r["eval_tps"] and r["e2e_tps"]  # server and client rates, both kept
        if r["prompt_eval_count"] < 512:  # the cached template prefix would inflate it
            assert r["prompt_tps"] is None and r["prompt_tps_absent"] == "short_prompt"
        else:
            assert r["prompt_tps"] and r["prompt_tps_absent"] is None
        assert r["client_overhead_ms"] == pytest.approx(r["network_ms"] - rtt, abs=1e-3)
    assert any(r["prompt_tps"] for r in doc["results"])  # the long prompt has a prefill rate
    header = next(line for line in result.stdout.splitlines() if "OK/n" in line)
    for label in ("Eval rate tok/s", "Client decode tok/s", "Prefill tok/s", "Overhead ms"):
        assert label in header
    assert "Network" not in result.stdout
    assert "— (short prompt)" in result.stdout
    assert 'ollama run --verbose calls "eval rate"' in result.stdout


def test_num_parallel_advice_is_printed_once(start_sim: Any, tmp_path: Path) -> None:
    # 300 ms replies: long beside the client's own delays on a busy machine, which would
    # otherwise read as the one-slot server "scaling" between levels.
    one = ModelSpec("one:1b", load_ms=10, warm_load_ms=1, eval_tps=100, reply_tokens=30)
    other = ModelSpec("other:1b", load_ms=10, warm_load_ms=1, eval_tps=100, reply_tokens=30)
    sim = start_sim(SimConfig(models=(one, other), num_parallel=1))
    result = bench(
        sim.url, *QUICK, "--num-predict", "30", "--concurrency", "1,2",
        "--suite", one_prompt(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    assert result.stdout.count("OLLAMA_NUM_PARALLEL sets how many") == 1, result.stdout
    advice = next(line for line in result.stdout.splitlines() if "OLLAMA_NUM_PARALLEL" in line)
    assert "one:1b" in advice and "other:1b" in advice


@pytest.mark.parametrize("version", VERSIONS)
def test_the_repeat_guard_ending_is_its_own_outcome(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    repeat = faulty("rep:1b", FaultKind.REPEAT_GUARD, 3)
    sim = start_sim(SimConfig(models=(repeat,), version=version))
    out = tmp_path / "run.json"
    result = bench(sim.url, *QUICK, "--suite", one_prompt(tmp_path), "--output", str(out))
    assert result.returncode == 0, result.output  # a usable reply, not a failure
    [row] = json.loads(out.read_text("utf-8"))["results"]
    assert row["ok"] and row["end"] == "clean_eof" and row["eval_count"] is None
    header = next(line for line in result.stdout.splitlines() if "OK/n" in line)
    assert "Repeat guard" in header
    assert "not a proxy problem" in result.stdout and "proxy_buffering" not in result.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_thinking_time_has_its_own_column_apart_from_the_answer_ttft(
    start_sim: Any, tmp_path: Path, version: str
) -> None:
    oss = ModelSpec(
        "gpt-oss:20b",
        family="gptoss",
        thinking=True,
        think_levels_only=True,
        load_ms=10,
        warm_load_ms=1,
        eval_tps=200,
        reply_tokens=8,
        thinking_tokens=20,
    )  # fmt: skip  (100 ms of thinking: apart from the answer even on a busy machine)
    sim = start_sim(SimConfig(models=(oss, FAST), version=version))
    out = tmp_path / "run.json"
    result = bench(
        sim.url, "--auto", "--runs", "1", "--no-save", "--suite", one_prompt(tmp_path),
        "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "OK/n" in line)
    assert "Thinking ms" in header and header.index("TTFT ms") < header.index("Thinking ms")
    rows = {r["model"]: r for r in json.loads(out.read_text("utf-8"))["summary"]}
    thinking = rows["gpt-oss:20b"]["thinking_ms"]["median"]
    assert thinking is not None and thinking > 0
    assert rows["gpt-oss:20b"]["ttft_ms"]["median"] > thinking  # the answer came after it
    assert rows["fast:1b"]["thinking_ms"]["median"] is None
